package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/node/config"
	"github.com/knooppunt/knooppunt/node/db"
	"github.com/knooppunt/knooppunt/node/metrics"
	"github.com/knooppunt/knooppunt/node/store"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// Defaults of the Dispatcher's backoff.
const (
	DefaultMinBackoff = time.Second
	DefaultMaxBackoff = 5 * time.Minute
)

// DispatcherConfig wires a Dispatcher.
type DispatcherConfig struct {
	Store *store.Store
	DB    *db.DB
	// Org is this node's trust domain, named in deliveries of its own records.
	Org string
	// Replica names the sender in the User-Agent header.
	Replica string
	// Settings are the webhooks section of the running config.
	Settings func() config.Webhooks
	// Peers are the running config's peers: a foreign record never goes to one of their hosts.
	Peers  func() []config.Peer
	Logger *slog.Logger
}

// Dispatcher delivers the webhook queue on whichever replica leads. Each webhook is delivered
// in order by one worker: it sends the queue's head until the receiver acknowledges it with a
// 2xx, commits the acknowledgement through Raft, and only then sends the next. A new leader
// reads the queue after a barrier, so it sees every acknowledgement its predecessor committed:
// a delivery is sent again only if its acknowledgement never committed (at least once), always
// with the same webhook-id, its idempotency key.
type Dispatcher struct {
	c DispatcherConfig
}

// NewDispatcher returns a dispatcher; Run starts it.
func NewDispatcher(c DispatcherConfig) *Dispatcher {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Peers == nil {
		c.Peers = func() []config.Peer { return nil }
	}
	return &Dispatcher{c: c}
}

func (d *Dispatcher) settings() config.Webhooks {
	s := config.Webhooks{}
	if d.c.Settings != nil {
		s = d.c.Settings()
	}
	if s.RetryFor <= 0 {
		s.RetryFor = 24 * time.Hour
	}
	if s.Timeout <= 0 {
		s.Timeout = 10 * time.Second
	}
	if s.MinBackoff <= 0 {
		s.MinBackoff = DefaultMinBackoff
	}
	if s.MaxBackoff <= 0 {
		s.MaxBackoff = DefaultMaxBackoff
	}
	return s
}

// Run delivers while this replica leads, until ctx ends.
func (d *Dispatcher) Run(ctx context.Context) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		if d.c.Store.IsLeader() {
			d.lead(ctx)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// lead runs one worker per webhook for as long as this replica leads.
func (d *Dispatcher) lead(ctx context.Context) {
	// Every acknowledgement a predecessor committed is applied here before the queue is read.
	if err := d.c.Store.VerifyLeader(); err != nil {
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	wg.Go(func() { d.gauge(ctx) })
	workers := map[string]func(){} // id+url → stop
	throttle := time.NewTicker(50 * time.Millisecond)
	defer throttle.Stop()
	check := time.NewTicker(time.Second)
	defer check.Stop()
	for {
		changed, gen := d.c.DB.Changed(), d.c.DB.WebhooksGeneration()
		hooks, err := d.c.DB.Webhooks(ctx)
		if err != nil && ctx.Err() == nil {
			d.c.Logger.Warn("webhooks: list", "err", err)
		}
		// A list that could not be read stops no worker.
		seen := map[string]bool{}
		for key := range workers {
			seen[key] = err != nil
		}
		for _, h := range hooks {
			key := h.ID + " " + h.Target
			seen[key] = true
			if workers[key] != nil {
				continue
			}
			wctx, stop := context.WithCancel(ctx)
			workers[key] = stop
			wg.Go(func() { d.work(wctx, h) })
		}
		for key, stop := range workers {
			if !seen[key] {
				stop()
				delete(workers, key)
			}
		}
		// Webhooks change rarely: the list is read again after a commit that changed it (or
		// after any commit, when it could not be read), at most every 50ms; leadership is
		// checked at least every second (workers check it at every delivery).
		select {
		case <-ctx.Done():
			return
		case <-throttle.C:
		}
	wait:
		for {
			select {
			case <-ctx.Done():
				return
			case <-changed:
				changed = d.c.DB.Changed()
				if err == nil && d.c.DB.WebhooksGeneration() == gen {
					continue
				}
				break wait
			case <-check.C:
				if !d.c.Store.IsLeader() {
					return
				}
			}
		}
		if !d.c.Store.IsLeader() {
			return
		}
	}
}

// gaugeEvery is how often, at most, the leader reads the queues for metrics.WebhookQueues.
const gaugeEvery = time.Second

// gauge keeps metrics.WebhookQueues current while this replica leads: it reads the queues after
// a commit, at most every gaugeEvery, and clears them when it stops, so that a follower exports
// none.
func (d *Dispatcher) gauge(ctx context.Context) {
	defer metrics.WebhookQueues.Set(nil)
	for {
		changed := d.c.DB.Changed()
		if by, err := d.queues(ctx); err == nil {
			metrics.WebhookQueues.Set(by)
		} else if ctx.Err() == nil {
			d.c.Logger.Debug("webhooks: read the queues for the metrics", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
		sleep(ctx, gaugeEvery)
	}
}

// queues reads each webhook's queue: its length and the commit time of its head.
func (d *Dispatcher) queues(ctx context.Context) (map[string]metrics.WebhookQueue, error) {
	hooks, err := d.c.DB.Webhooks(ctx)
	if err != nil {
		return nil, err
	}
	by := make(map[string]metrics.WebhookQueue, len(hooks))
	for _, h := range hooks {
		q := metrics.WebhookQueue{Queued: h.Queued}
		if h.Queued > 0 {
			head, err := d.c.DB.WebhookQueue(ctx, h.ID, 1)
			if err != nil {
				return nil, err
			}
			if len(head) > 0 {
				q.Head = head[0].EnqueuedAt
			}
		}
		by[h.ID] = q
	}
	return by, nil
}

// FailingLogEvery is how often, at most, a webhook's failing deliveries are logged at WARN.
const FailingLogEvery = 10 * time.Minute

// health is how a webhook's deliveries fare, as its worker logs them: at WARN when they begin to
// fail, again at most every FailingLogEvery while they keep failing, and at INFO when one is
// delivered after that. Other attempts are logged at DEBUG only, and a receiver that fails and
// recovers in turn gets one WARN per FailingLogEvery, not one per turn.
type health struct {
	since    time.Time // the first failure of this run of failures; zero while delivering
	logged   time.Time // the last WARN
	warned   bool      // this run of failures was logged at WARN
	attempts int       // failed attempts since the last WARN
	dead     int       // deliveries that became failures since the last WARN
}

// failed notes a failed attempt n at delivery x (dead: it became a failure) and logs as above.
func (hl *health) failed(log *slog.Logger, now time.Time, webhook string, x db.Delivery, n int, err error, dead bool) {
	hl.attempts++
	if dead {
		hl.dead++
	}
	begins := hl.since.IsZero()
	if begins {
		hl.since = now
	}
	switch {
	case !hl.logged.IsZero() && now.Sub(hl.logged) < FailingLogEvery:
		log.Debug("webhooks: delivery failed", "webhook", webhook, "message", x.Message, "attempt", n, "dead", dead, "err", err)
		return
	case begins:
		msg := "webhooks: delivery failing: retried until webhooks.retry_for; see knooppunt webhook list"
		if dead {
			msg = "webhooks: delivery failed for good: see knooppunt webhook failures"
		}
		log.Warn(msg, "webhook", webhook, "message", x.Message, "record", x.RecordID, "version", x.Version, "attempt", n, "err", err)
	default:
		log.Warn("webhooks: deliveries still failing: see knooppunt webhook list and failures", "webhook", webhook,
			"failing_for", now.Sub(hl.since).Round(time.Second), "attempts", hl.attempts, "failures", hl.dead, "message", x.Message, "err", err)
	}
	hl.logged, hl.warned, hl.attempts, hl.dead = now, true, 0, 0
}

// delivered notes a delivery, and logs it at INFO after failures that were logged at WARN.
func (hl *health) delivered(log *slog.Logger, now time.Time, webhook string, x db.Delivery) {
	if hl.warned {
		log.Info("webhooks: delivering again", "webhook", webhook, "message", x.Message, "failed_for", now.Sub(hl.since).Round(time.Millisecond))
	}
	*hl = health{logged: hl.logged}
}

// work delivers one webhook's queue in order while ctx lasts and this replica leads.
func (d *Dispatcher) work(ctx context.Context, h db.WebhookRow) {
	u, err := url.Parse(h.Target)
	if err != nil {
		d.c.Logger.Error("webhooks: stored url unreadable", "webhook", h.ID, "err", hideQuery(err))
		return
	}
	set := d.settings()
	client := newClient(u, set)
	defer client.CloseIdleConnections()
	var hl health
	keys := &secrets{db: d.c.DB, log: d.c.Logger, id: h.ID}
	for ctx.Err() == nil && d.c.Store.IsLeader() {
		changed := d.c.DB.Changed()
		queue, err := d.c.DB.WebhookQueue(ctx, h.ID, 64)
		if err == nil && len(queue) == 0 {
			select {
			case <-ctx.Done():
				return
			case <-changed:
			}
			continue
		}
		if err != nil {
			if ctx.Err() == nil {
				d.c.Logger.Warn("webhooks: read queue", "webhook", h.ID, "err", err)
			}
			sleep(ctx, time.Second)
			continue
		}
	deliveries:
		for _, x := range queue {
			// A secret that cannot be read is waited for here, before a delivery's retry time
			// starts, not in its attempts.
			if _, ok := keys.current(ctx); !ok {
				return
			}
			acks, ok := d.attempt(ctx, client, u, keys, h, x, &hl)
			if !ok {
				return // ctx ended or leadership lost: the next leader takes over from the queue
			}
			if _, err := d.c.Store.Apply(ctx, &pb.Command{Cmd: &pb.Command_WebhookAcks{WebhookAcks: acks}}); err != nil {
				if errors.Is(err, store.ErrNotLeader) || ctx.Err() != nil {
					return
				}
				// A passing failure (the Raft queue full, a slow disk): this worker is the only
				// one for the webhook while this replica leads, so it goes on, from the queue as
				// stored. The delivery goes again, under the same message id.
				d.c.Logger.Warn("webhooks: commit acknowledgement: trying again", "webhook", h.ID, "err", err)
				sleep(ctx, time.Second)
				break deliveries
			}
			if len(acks.Delivered) > 0 {
				metrics.WebhookDelivery.Observe(time.Since(x.EnqueuedAt).Seconds())
			}
		}
	}
}

// attempt sends one delivery until the receiver acknowledges it, or its retry time is over, or
// it is refused for good. It returns the acknowledgement to commit, or false when ctx ended or
// this replica no longer leads.
func (d *Dispatcher) attempt(ctx context.Context, client *http.Client, u *url.URL, keys *secrets, h db.WebhookRow, x db.Delivery, hl *health) (*pb.WebhookAcks, bool) {
	body, err := Payload(d.c.Org, x)
	if err != nil {
		hl.failed(d.c.Logger, time.Now(), h.ID, x, 1, err, true)
		return dead(h.ID, x.Seq, 1, time.Now(), err), true
	}
	set := d.settings()
	// The retry time runs from the first failed attempt, which a previous leader may have made.
	first, n0 := time.Now(), int(x.Attempts)
	if !x.FirstAttemptAt.IsZero() {
		first = x.FirstAttemptAt
	}
	for n := n0 + 1; ; n++ {
		// The secrets as they are now, at each attempt: a rotation committed while this
		// delivery waited in the queue or between its attempts signs it (review X, X1). Read
		// before the leadership is checked, as reading may wait (an unreadable secret).
		secret, ok := keys.current(ctx)
		if !ok || ctx.Err() != nil || !d.c.Store.IsLeader() {
			return nil, false // removed, ctx ended, or no longer the leader
		}
		err := d.send(ctx, client, u, secret, x, body, set.Timeout)
		if err == nil {
			metrics.WebhookAttempts.WithLabelValues("delivered").Inc()
			hl.delivered(d.c.Logger, time.Now(), h.ID, x)
			return &pb.WebhookAcks{Webhook: h.ID, Delivered: []int64{x.Seq}, At: timestamppb.Now()}, true
		}
		if ctx.Err() != nil {
			return nil, false
		}
		if refused(err) {
			metrics.WebhookAttempts.WithLabelValues("refused").Inc()
			hl.failed(d.c.Logger, time.Now(), h.ID, x, n, err, true)
			return dead(h.ID, x.Seq, int32(n), first, err), true
		}
		wait := Backoff(n, set.MinBackoff, set.MaxBackoff)
		if time.Since(first)+wait > set.RetryFor {
			metrics.WebhookAttempts.WithLabelValues("dead").Inc()
			hl.attempts++
			hl.dead++
			// Always at WARN: a record the receiver never got is a failure now.
			d.c.Logger.Warn("webhooks: delivery given up: see knooppunt webhook failures", "webhook", h.ID, "message", x.Message, "attempts", n, "err", err)
			return dead(h.ID, x.Seq, int32(n), first, err), true
		}
		if x.FirstAttemptAt.IsZero() && n == n0+1 {
			// Commit when the delivery began to fail, so that a leader change does not restart
			// its retry time.
			failing := &pb.WebhookAcks{Webhook: h.ID, At: timestamppb.Now(), Failing: []*pb.WebhookDead{{
				Seq: x.Seq, Attempts: int32(n), Error: err.Error(), FirstAttemptAt: timestamppb.New(first)}}}
			if _, err := d.c.Store.Apply(ctx, &pb.Command{Cmd: &pb.Command_WebhookAcks{WebhookAcks: failing}}); err != nil {
				if errors.Is(err, store.ErrNotLeader) || ctx.Err() != nil {
					return nil, false
				}
				// Not kept: a leader change would start this delivery's retry time again.
				d.c.Logger.Warn("webhooks: commit the start of failing", "webhook", h.ID, "err", err)
			}
		}
		metrics.WebhookAttempts.WithLabelValues("failed").Inc()
		hl.failed(d.c.Logger, time.Now(), h.ID, x, n, err, false)
		sleep(ctx, wait)
	}
}

func dead(webhook string, seq int64, attempts int32, first time.Time, err error) *pb.WebhookAcks {
	return &pb.WebhookAcks{Webhook: webhook, At: timestamppb.Now(), Dead: []*pb.WebhookDead{{
		Seq: seq, Attempts: attempts, Error: err.Error(), FirstAttemptAt: timestamppb.New(first),
	}}}
}

// refused reports whether an error is a refusal that trying again cannot change.
func refused(err error) bool {
	return errors.Is(err, ErrAddress) || errors.Is(err, ErrRedirect) || errors.Is(err, ErrNoReshare) || errors.Is(err, ErrRejected)
}

// Rejected reports whether a receiver's status refuses a delivery for good: a 4xx but those
// that ask to come back (408 Request Timeout, 409 Conflict, 425 Too Early, 429 Too Many
// Requests). Sending the same body again would get the same answer, and the queue behind it
// would wait for webhooks.retry_for.
func Rejected(code int) bool {
	switch code {
	case http.StatusRequestTimeout, http.StatusConflict, http.StatusTooEarly, http.StatusTooManyRequests:
		return false
	}
	return code >= 400 && code < 500
}

// MaxReason is how much of a receiver's answer a failure keeps, as its reason.
const MaxReason = 512

// Reason is the start of a receiver's answer as one line of printable text, at most MaxReason
// bytes of it, for a failure's last error.
func Reason(b []byte) string {
	cut := len(b) > MaxReason
	if cut {
		b = b[:MaxReason]
	}
	s := strings.Map(func(r rune) rune {
		if !unicode.IsPrint(r) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(string(b), ""))
	s = strings.Join(strings.Fields(s), " ")
	if cut && s != "" {
		s += "…"
	}
	return s
}

// Backoff is the wait before attempt n+1: doubling from min up to max, with full jitter over
// its upper half, so that receivers coming back are not hit by every node at once.
func Backoff(n int, minWait, maxWait time.Duration) time.Duration {
	d := minWait
	for i := 1; i < n && d < maxWait; i++ {
		d *= 2
	}
	d = min(d, maxWait)
	return d/2 + rand.N(d/2+1)
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// send makes one attempt. A foreign record is never sent to a host of another organisation,
// checked at every attempt since peers are added while deliveries wait.
func (d *Dispatcher) send(ctx context.Context, client *http.Client, u *url.URL, secret signer, x db.Delivery, body []byte, timeout time.Duration) error {
	if x.Origin != "" {
		if org := OtherOrg(u.Hostname(), d.c.Peers()); org != "" {
			return fmt.Errorf("%w: a record of %s is not sent to %s, a host of peer %s", ErrNoReshare, x.Origin, u.Host, org)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return hideQuery(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "knooppunt-webhook ("+d.c.Replica+")")
	secret.sign(req.Header, x.Message, time.Now(), body)
	resp, err := client.Do(req)
	if err != nil {
		return hideQuery(err)
	}
	// The start of the answer says why, to the operator; the rest is read so that the
	// connection can be used again.
	head, _ := io.ReadAll(io.LimitReader(resp.Body, MaxReason+1))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	var why string
	if r := Reason(head); r != "" {
		why = ": " + r
	}
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return fmt.Errorf("%w (%s to %q)", ErrRedirect, resp.Status, resp.Header.Get("Location"))
	case Rejected(resp.StatusCode):
		return fmt.Errorf("%w: it answered %s%s", ErrRejected, resp.Status, why)
	}
	return fmt.Errorf("webhook: the receiver answered %s%s", resp.Status, why)
}

// hideQuery keeps the query of the URL an error names out of it, as db.ShownURL does: the
// error goes to logs, to the webhook's last_error and to its dead letters.
func hideQuery(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		ue.URL = db.ShownURL(ue.URL)
	}
	return err
}

// newClient is the HTTP client of one webhook: no proxy (it would dial for us, past the
// guard), no redirects, and every address it dials checked by the guard.
func newClient(u *url.URL, set config.Webhooks) *http.Client {
	dialer := &net.Dialer{Timeout: set.Timeout, Control: dialGuard(config.IsLoopback(u.Hostname()), set.AllowPrivate)}
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   set.Timeout,
		ResponseHeaderTimeout: set.Timeout,
	}
	if set.Roots != nil {
		tr.TLSClientConfig = &tls.Config{RootCAs: set.Roots, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Event is what a delivery's body holds, after the Standard Webhooks convention: a type, a
// timestamp (the commit of the change) and the data.
type Event struct {
	Type      string    `json:"type"`
	Timestamp time.Time `json:"timestamp"`
	Data      EventData `json:"data"`
}

// EventData is a delivery's record.
type EventData struct {
	Webhook string `json:"webhook"`
	// Origin is the trust domain of the org that wrote the record; Own is whether that is this
	// node's org (a foreign record was received from a peer).
	Origin string `json:"origin"`
	Own    bool   `json:"own"`
	// Record is the record as the REST API shows it; Body is its body as JSON.
	Record json.RawMessage `json:"record"`
	Body   json.RawMessage `json:"body,omitempty"`
}

var recordJSON = protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}

// Payload is the body of a delivery.
func Payload(org string, x db.Delivery) ([]byte, error) {
	rec, err := recordJSON.Marshal(x.Record)
	if err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, rec); err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	origin := x.Origin
	if origin == "" {
		origin = org
	}
	ev := Event{Type: x.Event, Timestamp: x.EnqueuedAt, Data: EventData{
		Webhook: x.Webhook, Origin: origin, Own: x.Origin == "", Record: compact.Bytes(),
	}}
	if json.Valid(x.Record.Body) && len(x.Record.Body) > 0 {
		ev.Data.Body = x.Record.Body
	}
	return json.Marshal(ev)
}

// secrets gives a webhook's signer as its stored row says now: read again after any webhook step
// since the last read (a rotation is one), so that every attempt is signed with the secrets in
// force when it is sent.
type secrets struct {
	db  *db.DB
	log *slog.Logger
	id  string
	// gen is the webhooks' generation the signer was read at; read says there is a signer.
	gen    uint64
	read   bool
	signer signer
	// unsigned: the stored secret was unreadable, and that was logged.
	unsigned bool
}

// current is the signer to send with now; false when the webhook is gone or ctx ended. While the
// stored secret is unreadable it sends nothing and waits for the next commit (a new secret).
func (k *secrets) current(ctx context.Context) (signer, bool) {
	for {
		// Taken before the read, so that a step committed after it is not missed.
		gen := k.db.WebhooksGeneration()
		if k.read && gen == k.gen {
			return k.signer, true
		}
		changed := k.db.Changed()
		row, err := k.db.Webhook(ctx, k.id)
		switch {
		case errors.Is(err, db.ErrNotFound) || ctx.Err() != nil:
			return signer{}, false
		case err != nil:
			k.log.Warn("webhooks: read the secret", "webhook", k.id, "err", err)
			sleep(ctx, time.Second)
			continue
		}
		sg, err := newSigner(*row)
		if err != nil {
			if !k.unsigned {
				k.log.Error("webhooks: stored secret unreadable, nothing is sent: give the webhook a new one (knooppunt webhook rotate --overlap 0)", "webhook", k.id, "err", err)
				k.unsigned = true
			}
			k.read = false
			select {
			case <-ctx.Done():
				return signer{}, false
			case <-changed:
			}
			continue
		}
		k.signer, k.gen, k.read, k.unsigned = sg, gen, true, false
		return sg, true
	}
}

// signer signs a webhook's deliveries: with its secret, and with the one before it while a
// rotation's overlap lasts.
type signer struct {
	secret, old Secret
	oldUntil    time.Time
}

func newSigner(h db.WebhookRow) (signer, error) {
	var sg signer
	var err error
	if sg.secret, err = ParseSecret(h.Secret); err != nil {
		return sg, err
	}
	if h.OldSecret != "" && !h.OldSecretUntil.IsZero() {
		if sg.old, err = ParseSecret(h.OldSecret); err != nil {
			return sg, err
		}
		sg.oldUntil = h.OldSecretUntil
	}
	return sg, nil
}

func (sg signer) sign(h http.Header, id string, at time.Time, body []byte) {
	if at.Before(sg.oldUntil) {
		sg.secret.Sign(h, id, at, body, sg.old)
		return
	}
	sg.secret.Sign(h, id, at, body)
}

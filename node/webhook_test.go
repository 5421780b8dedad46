package node_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/node"
	"github.com/knooppunt/knooppunt/node/api"
	"github.com/knooppunt/knooppunt/node/config"
	"github.com/knooppunt/knooppunt/node/proctest"
	"github.com/knooppunt/knooppunt/node/webhook"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// receiver is a webhook receiver on 127.0.0.1 that verifies every delivery with the webhook's
// secret, as a partner's system does, and keeps what arrived in order of arrival.
type receiver struct {
	t      *testing.T
	addr   string
	mu     sync.Mutex
	secret webhook.Secret
	got    []arrival
	// answer, when set, decides the status of a delivery (default 204).
	answer func(r *http.Request) int
	srv    *http.Server
	// arrived is signalled at each delivery.
	arrived chan struct{}
}

type arrival struct {
	message string
	agent   string
	event   webhook.Event
	body    map[string]any
	// header and raw are the delivery as it came, for a check with another secret.
	header http.Header
	raw    []byte
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	rc := &receiver{t: t, arrived: make(chan struct{}, 1)}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rc.addr = lis.Addr().String()
	rc.serve(lis)
	return rc
}

func (rc *receiver) serve(lis net.Listener) {
	rc.srv = &http.Server{Handler: http.HandlerFunc(rc.handle), ReadHeaderTimeout: 5 * time.Second}
	go rc.srv.Serve(lis)
	srv := rc.srv
	rc.t.Cleanup(func() { srv.Close() })
}

// down stops the receiver: its port refuses connections until up.
func (rc *receiver) down() { rc.srv.Close() }

func (rc *receiver) up() {
	lis, err := net.Listen("tcp", rc.addr)
	if err != nil {
		rc.t.Fatalf("listen again on %s: %v", rc.addr, err)
	}
	rc.serve(lis)
}

func (rc *receiver) url(path string) string { return "http://" + rc.addr + path }

func (rc *receiver) setSecret(s string) {
	sec, err := webhook.ParseSecret(s)
	if err != nil {
		rc.t.Fatalf("the secret Add showed: %v", err)
	}
	rc.mu.Lock()
	rc.secret = sec
	rc.mu.Unlock()
}

func (rc *receiver) handle(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.answer != nil {
		if code := rc.answer(r); code != 0 && code/100 != 2 {
			if code/100 == 3 {
				w.Header().Set("Location", "http://"+rc.addr+"/elsewhere")
			}
			w.WriteHeader(code)
			return
		}
	}
	id, err := rc.secret.Verify(r.Header, body, time.Now(), 0)
	if err != nil {
		rc.t.Errorf("delivery %s does not verify: %v", r.Header.Get(webhook.HeaderID), err)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	a := arrival{message: id, agent: r.UserAgent(), header: r.Header.Clone(), raw: body}
	if err := json.Unmarshal(body, &a.event); err != nil {
		rc.t.Errorf("delivery %s: %v", id, err)
	}
	json.Unmarshal(a.event.Data.Body, &a.body)
	rc.got = append(rc.got, a)
	select {
	case rc.arrived <- struct{}{}:
	default:
	}
	w.WriteHeader(http.StatusNoContent)
}

func (rc *receiver) arrivals() []arrival {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.got)
}

// waitFor waits until cond holds of the arrivals.
func (rc *receiver) waitFor(within time.Duration, what string, cond func([]arrival) bool) []arrival {
	rc.t.Helper()
	deadline := time.After(within)
	for {
		if got := rc.arrivals(); cond(got) {
			return got
		}
		select {
		case <-rc.arrived:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			got := rc.arrivals()
			rc.t.Fatalf("%s: not within %s; %d arrived: %v", what, within, len(got), recordVersions(got))
		}
	}
}

// recordVersions is what arrived as "origin/id@version" in order.
func recordVersions(got []arrival) []string {
	var out []string
	for _, a := range got {
		var r struct {
			ID      string `json:"id"`
			Version string `json:"version"`
		}
		json.Unmarshal(a.event.Data.Record, &r)
		out = append(out, fmt.Sprintf("%s/%s@%s", a.event.Data.Origin, r.ID, r.Version))
	}
	return out
}

// startWith starts a single-replica node with cfg changed by change.
func startWith(t *testing.T, change func(*config.Config)) *node.Node {
	t.Helper()
	return startLoggingTo(t, change, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// startLoggingTo starts a single-replica node with cfg changed by change, logging to log: short
// election and webhook backoffs, stopped when the test ends.
func startLoggingTo(t *testing.T, change func(*config.Config), log *slog.Logger) *node.Node {
	t.Helper()
	cfg := config.Default()
	cfg.Raft.ElectionTimeout = 50 * time.Millisecond
	cfg.Webhooks.MinBackoff = 20 * time.Millisecond
	cfg.Webhooks.MaxBackoff = 100 * time.Millisecond
	if change != nil {
		change(cfg)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	n, err := node.Start(ctx, node.Options{DataDir: dataDir(t), Config: cfg, Version: "test", Logger: log})
	if err != nil {
		t.Fatalf("node.Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		n.Stop(ctx)
	})
	return n
}

func addWebhook(t *testing.T, c pb.WebhookServiceClient, rc *receiver, req *pb.AddWebhookRequest) *pb.Webhook {
	t.Helper()
	resp, err := c.Add(callCtx(t), req)
	if err != nil {
		t.Fatalf("Add: %v", err)
	}
	if !strings.HasPrefix(resp.Secret, "whsec_") || resp.Webhook.Secret != "" {
		t.Fatalf("Add shows the secret %q in its answer and %q in the webhook: want it once, in the answer", resp.Secret, resp.Webhook.Secret)
	}
	rc.setSecret(resp.Secret)
	return resp.Webhook
}

// TestWebhookDeliversSignedInOrder: a webhook receives, signed, every change of the records it
// selects (kind, crisis, actual records only) in commit order, each version, deletes too; List
// never shows the secret again and counts the deliveries.
func TestWebhookDeliversSignedInOrder(t *testing.T) {
	n := startWith(t, nil)
	conn := dial(t, n)
	hooks := pb.NewWebhookServiceClient(conn)
	recs := pb.NewRecordServiceClient(conn)
	rc := newReceiver(t)
	wh := addWebhook(t, hooks, rc, &pb.AddWebhookRequest{Url: rc.url("/hook"), Kinds: []string{"shelter.capacity"}, Crises: []string{"oekraine"}})

	put := func(r *pb.Record) {
		t.Helper()
		if _, err := recs.Put(callCtx(t), &pb.PutRequest{Record: r}); err != nil {
			t.Fatalf("Put %s: %v", r.Id, err)
		}
	}
	var want []string
	for i := range 3 {
		for _, id := range []string{"s1", "s2"} {
			r := shelter(id)
			r.Body = fmt.Appendf(nil, `{"municipality":"Utrecht","beds_total":100,"beds_free":%d}`, i)
			put(r)
			want = append(want, fmt.Sprintf("%s/%s@%d", config.DefaultOrg, id, i+1))
		}
	}
	other := shelter("elsewhere")
	other.Crisis = "overstroming"
	put(other)
	sit := &pb.Record{Id: "sr1", Kind: "sitrep", Crisis: "oekraine", Region: "VR09", Classification: pb.Classification_INTERNAL, Body: []byte(`{"title":"calm","summary":"calm"}`)}
	put(sit)
	if _, err := pb.NewExerciseServiceClient(conn).Start(callCtx(t), &pb.ExerciseStepRequest{Name: "oefening-1", Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	ex := shelter("exercise-1")
	ex.Status, ex.Exercise = pb.Status_EXERCISE, "oefening-1"
	put(ex)
	// Delivered before the delete, which takes a record's deliveries not yet made out of the
	// queue (see TestDeleteTakesEarlierDeliveriesOut in node/db).
	rc.waitFor(10*time.Second, "the changes before the delete", func(a []arrival) bool { return len(a) >= len(want) })
	if _, err := recs.Delete(callCtx(t), &pb.DeleteRequest{Id: "s1"}); err != nil {
		t.Fatal(err)
	}
	want = append(want, config.DefaultOrg+"/s1@4")

	got := rc.waitFor(10*time.Second, "every change", func(a []arrival) bool { return len(a) >= len(want) })
	// Nothing else may follow: the last change was the delete, so wait for a later own record.
	time.Sleep(200 * time.Millisecond)
	got = rc.arrivals()
	if g := recordVersions(got); !slices.Equal(g, want) {
		t.Fatalf("arrived %v, want %v", g, want)
	}
	last := got[len(got)-1]
	if last.event.Type != "record.deleted" || got[0].event.Type != "record.changed" || !got[0].event.Data.Own {
		t.Fatalf("events %q … %q (own %v): want record.changed … record.deleted, own", got[0].event.Type, last.event.Type, got[0].event.Data.Own)
	}
	if got[4].body["beds_free"] != float64(2) {
		t.Fatalf("third version's body %v: want beds_free 2", got[4].body)
	}
	seen := map[string]bool{}
	for _, a := range got {
		if seen[a.message] {
			t.Fatalf("message %s arrived twice", a.message)
		}
		seen[a.message] = true
	}
	list, err := hooks.List(callCtx(t), &pb.ListWebhooksRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Webhooks) != 1 || list.Webhooks[0].Id != wh.Id || list.Webhooks[0].Secret != "" ||
		list.Webhooks[0].Delivered != int64(len(want)) || list.Webhooks[0].Queued != 0 {
		t.Fatalf("List: %v: want %s with delivered %d, queued 0 and no secret", list.Webhooks, wh.Id, len(want))
	}
}

// TestWebhookOfACrisisGetsTheAlertsOfAll: a webhook of a crisis also gets the alerts of crisis
// all, which the crisis's picture shows (a CAP alert imported without a crisis, an early-warning
// rule's), and says so in its crises; another crisis's records stay away.
func TestWebhookOfACrisisGetsTheAlertsOfAll(t *testing.T) {
	n := startWith(t, nil)
	conn := dial(t, n)
	hooks := pb.NewWebhookServiceClient(conn)
	recs := pb.NewRecordServiceClient(conn)
	rc := newReceiver(t)
	wh := addWebhook(t, hooks, rc, &pb.AddWebhookRequest{Url: rc.url("/hook"), Crises: []string{"oekraine"}})
	if !slices.Equal(wh.Crises, []string{"all", "oekraine"}) {
		t.Fatalf("webhook of crisis oekraine has crises %q: want [all oekraine]", wh.Crises)
	}
	alert := &pb.Record{Id: "storm", Kind: "alert", Crisis: "all", Region: "NL", Classification: pb.Classification_PUBLIC,
		Body: []byte(`{"identifier":"A1","sender":"knmi.crisis.test","sent":"2026-12-05T09:00:00+01:00","status":"Actual","msgType":"Alert","scope":"Public",
			"info":[{"category":["Met"],"event":"Storm","urgency":"Immediate","severity":"Severe","certainty":"Observed","area":[{"areaDesc":"Nederland"}]}]}`)}
	other := shelter("elsewhere")
	other.Crisis = "overstroming"
	for _, r := range []*pb.Record{other, alert, shelter("s1")} {
		if _, err := recs.Put(callCtx(t), &pb.PutRequest{Record: r}); err != nil {
			t.Fatalf("Put %s: %v", r.Id, err)
		}
	}
	rc.waitFor(10*time.Second, "the alert and s1", func(a []arrival) bool { return len(a) >= 2 })
	time.Sleep(200 * time.Millisecond) // nothing else may follow
	want := []string{config.DefaultOrg + "/storm@1", config.DefaultOrg + "/s1@1"}
	if got := recordVersions(rc.arrivals()); !slices.Equal(got, want) {
		t.Fatalf("arrived %v, want %v: the alert of crisis all and oekraine's record, not overstroming's", got, want)
	}
}

// TestWebhookRotate: a webhook gets a new secret and keeps its id and queue; while the overlap
// lasts, each delivery carries a signature of the old secret and one of the new, so that a
// receiver holding either accepts it; with no overlap, the old secret signs nothing more.
// Rotate refuses an unknown webhook and an overlap out of bounds, naming the field.
func TestWebhookRotate(t *testing.T) {
	n := startWith(t, nil)
	conn := dial(t, n)
	hooks := pb.NewWebhookServiceClient(conn)
	recs := pb.NewRecordServiceClient(conn)
	rc := newReceiver(t)
	wh := addWebhook(t, hooks, rc, &pb.AddWebhookRequest{Url: rc.url("/hook")})
	put := func(id string) {
		t.Helper()
		if _, err := recs.Put(callCtx(t), &pb.PutRequest{Record: shelter(id)}); err != nil {
			t.Fatalf("Put %s: %v", id, err)
		}
	}
	verifies := func(a arrival, secret string) bool {
		t.Helper()
		s, err := webhook.ParseSecret(secret)
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.Verify(a.header, a.raw, time.Now(), 0)
		return err == nil
	}
	put("s1")
	rc.waitFor(10*time.Second, "s1", func(a []arrival) bool { return len(a) == 1 })

	// The receiver keeps the first secret: deliveries still verify with it, and with the new one.
	before := time.Now()
	rot, err := hooks.Rotate(callCtx(t), &pb.RotateWebhookRequest{Id: wh.Id})
	if err != nil {
		t.Fatal(err)
	}
	if rot.Webhook.Id != wh.Id || !strings.HasPrefix(rot.Secret, "whsec_") || rot.Secret == "" || rot.Webhook.Secret != "" {
		t.Fatalf("Rotate answered %v with secret %q: want the same webhook, and the new secret once", rot.Webhook, rot.Secret)
	}
	if until := rot.Webhook.OldSecretUntil.AsTime(); until.Before(before.Add(24*time.Hour)) || until.After(time.Now().Add(24*time.Hour)) {
		t.Fatalf("old secret signs until %s: want 24 hours from the rotation", until)
	}
	put("s2")
	got := rc.waitFor(10*time.Second, "s2", func(a []arrival) bool { return len(a) == 2 })
	if !verifies(got[1], rot.Secret) {
		t.Fatalf("a delivery during the overlap does not verify with the new secret: %q", got[1].header.Get(webhook.HeaderSignature))
	}
	// The acknowledgement is committed after the receiver answered.
	waitWebhook(t, hooks, "the webhook, 2 delivered, the old secret signing until a time after the rotation", func(w *pb.Webhook) bool {
		return w.OldSecretUntil != nil && w.Delivered == 2
	})

	// No overlap: only the newest secret signs.
	last, err := hooks.Rotate(callCtx(t), &pb.RotateWebhookRequest{Id: wh.Id, Overlap: durationpb.New(0)})
	if err != nil {
		t.Fatal(err)
	}
	if last.Webhook.OldSecretUntil != nil {
		t.Fatalf("a rotation with no overlap: the old secret signs until %s", last.Webhook.OldSecretUntil.AsTime())
	}
	rc.setSecret(last.Secret)
	put("s3")
	got = rc.waitFor(10*time.Second, "s3", func(a []arrival) bool { return len(a) == 3 })
	if verifies(got[2], rot.Secret) {
		t.Fatalf("after a rotation with no overlap, a delivery still verifies with the secret before")
	}
	if g, want := recordVersions(got), []string{config.DefaultOrg + "/s1@1", config.DefaultOrg + "/s2@1", config.DefaultOrg + "/s3@1"}; !slices.Equal(g, want) {
		t.Fatalf("arrived %v, want %v", g, want)
	}

	for _, tc := range []struct {
		req  *pb.RotateWebhookRequest
		code codes.Code
		want string
	}{
		{&pb.RotateWebhookRequest{Id: "wh_nope"}, codes.NotFound, `id: no webhook "wh_nope"`},
		{&pb.RotateWebhookRequest{}, codes.InvalidArgument, "id: give the id"},
		{&pb.RotateWebhookRequest{Id: wh.Id, Overlap: durationpb.New(-time.Hour)}, codes.InvalidArgument, "overlap: -1h0m0s"},
		{&pb.RotateWebhookRequest{Id: wh.Id, Overlap: durationpb.New(31 * 24 * time.Hour)}, codes.InvalidArgument, "overlap: 744h0m0s"},
	} {
		_, err := hooks.Rotate(callCtx(t), tc.req)
		if status.Code(err) != tc.code || !strings.Contains(status.Convert(err).Message(), tc.want) {
			t.Errorf("Rotate(%v): %v, want %s with %q", tc.req, err, tc.code, tc.want)
		}
	}
}

// waitWebhook waits up to 10 s until the node lists one webhook, and cond holds of it.
func waitWebhook(t *testing.T, hooks pb.WebhookServiceClient, what string, cond func(*pb.Webhook) bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		list, err := hooks.List(callCtx(t), &pb.ListWebhooksRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if len(list.Webhooks) == 1 && cond(list.Webhooks[0]) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("want %s; List: %v", what, list.Webhooks)
		}
	}
}

// TestWebhookRotateSignsWhatWaits: a rotation reaches the deliveries already queued and those
// being retried: after a rotation with no overlap (a secret that leaked), each is signed with the
// new secret alone, not with the one the worker read before (review X, X1).
func TestWebhookRotateSignsWhatWaits(t *testing.T) {
	n := startWith(t, nil)
	conn := dial(t, n)
	hooks := pb.NewWebhookServiceClient(conn)
	rc := newReceiver(t)
	wh := addWebhook(t, hooks, rc, &pb.AddWebhookRequest{Url: rc.url("/hook")})
	old := rc.secret
	rc.down()
	recs := pb.NewRecordServiceClient(conn)
	for i := range 5 {
		if _, err := recs.Put(callCtx(t), &pb.PutRequest{Record: shelter(fmt.Sprintf("s%d", i))}); err != nil {
			t.Fatal(err)
		}
	}
	// The first is retried, the rest wait behind it: the head has failed once the list says so.
	waitWebhook(t, hooks, "the webhook's head failing while the receiver is down, 5 queued", func(w *pb.Webhook) bool {
		return w.FailingSince != nil && w.Queued == 5
	})
	rot, err := hooks.Rotate(callCtx(t), &pb.RotateWebhookRequest{Id: wh.Id, Overlap: durationpb.New(0)})
	if err != nil {
		t.Fatal(err)
	}
	rc.setSecret(rot.Secret) // the receiver refuses, and the test fails on, a delivery it does not verify
	rc.up()
	got := rc.waitFor(10*time.Second, "the five after the rotation", func(a []arrival) bool { return len(a) >= 5 })
	for _, a := range got {
		if _, err := old.Verify(a.header, a.raw, time.Now(), 0); err == nil {
			t.Errorf("delivery %s after a rotation with no overlap still verifies with the withdrawn secret", a.message)
		}
	}
}

// TestWebhookUnreadableSecretWaitsForANewOne: a webhook whose stored secret cannot be read (a
// damaged database) sends nothing, says so once at ERROR, and delivers what waited once it is
// given a new secret, signed with that (review Y, Y8).
func TestWebhookUnreadableSecretWaitsForANewOne(t *testing.T) {
	logs := &proctest.Buffer{}
	n := startLoggingTo(t, nil, slog.New(slog.NewTextHandler(logs, nil)))
	conn := dial(t, n)
	hooks := pb.NewWebhookServiceClient(conn)
	rc := newReceiver(t)
	wh := addWebhook(t, hooks, rc, &pb.AddWebhookRequest{Url: rc.url("/hook")})
	h, err := sql.Open("sqlite3", "file:"+filepath.Join(filepath.Dir(n.SocketPath()), node.DatabaseName))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Exec(`UPDATE webhooks SET secret = 'whsec_beschadigd' WHERE id = ?`, wh.Id); err != nil {
		t.Fatal(err)
	}
	h.Close()
	if _, err := pb.NewRecordServiceClient(conn).Put(callCtx(t), &pb.PutRequest{Record: shelter("s1")}); err != nil {
		t.Fatal(err)
	}
	const unreadable = "webhooks: stored secret unreadable, nothing is sent"
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), unreadable); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no ERROR for the unreadable secret:\n%s", logs.String())
		}
	}
	time.Sleep(300 * time.Millisecond) // a worker that went on would have sent by now
	if got := rc.arrivals(); len(got) != 0 {
		t.Fatalf("%d deliveries sent with an unreadable secret", len(got))
	}
	if c := strings.Count(logs.String(), unreadable); c != 1 {
		t.Errorf("the unreadable secret logged %d times, want once", c)
	}
	// Down while it is told the new secret: a delivery sent at once after the rotation would
	// otherwise find it with the old one.
	rc.down()
	rot, err := hooks.Rotate(callCtx(t), &pb.RotateWebhookRequest{Id: wh.Id, Overlap: durationpb.New(0)})
	if err != nil {
		t.Fatal(err)
	}
	rc.setSecret(rot.Secret) // the receiver refuses, and the test fails on, a delivery it does not verify
	rc.up()
	rc.waitFor(10*time.Second, "s1 after the new secret", func(a []arrival) bool { return len(a) == 1 })
}

// TestWebhookReceiverDownThenUp: while the receiver refuses connections, deliveries wait and
// are retried; once it is up again everything arrives, in order, none lost.
func TestWebhookReceiverDownThenUp(t *testing.T) {
	n := startWith(t, nil)
	conn := dial(t, n)
	rc := newReceiver(t)
	addWebhook(t, pb.NewWebhookServiceClient(conn), rc, &pb.AddWebhookRequest{Url: rc.url("/hook")})
	rc.down()
	recs := pb.NewRecordServiceClient(conn)
	var want []string
	for i := range 20 {
		id := fmt.Sprintf("s%02d", i%5)
		if _, err := recs.Put(callCtx(t), &pb.PutRequest{Record: shelter(id)}); err != nil {
			t.Fatal(err)
		}
		want = append(want, fmt.Sprintf("%s/%s@%d", config.DefaultOrg, id, i/5+1))
	}
	// Let several attempts fail (the backoff starts at 20ms).
	time.Sleep(300 * time.Millisecond)
	if got := rc.arrivals(); len(got) != 0 {
		t.Fatalf("%d arrived while the receiver was down", len(got))
	}
	rc.up()
	got := rc.waitFor(10*time.Second, "everything after the receiver came up", func(a []arrival) bool { return len(a) >= len(want) })
	if g := recordVersions(got); !slices.Equal(g, want) {
		t.Fatalf("arrived %v, want %v", g, want)
	}
}

// TestWebhookRefusals: Add refuses what a webhook must not reach, naming the field; a receiver
// that redirects is not followed and the delivery becomes a failure at once, which Retry sends
// again with the same webhook-id.
func TestWebhookRefusals(t *testing.T) {
	n := startWith(t, func(c *config.Config) {
		c.Peers = []config.Peer{{Name: "b", TrustDomain: "b.crisis.test", Addresses: []string{"knooppunt.partner-b.nl:7443"}}}
	})
	conn := dial(t, n)
	hooks := pb.NewWebhookServiceClient(conn)
	for _, tc := range []struct {
		url, want string
	}{
		{"http://hooks.example.nl/x", "use https"},
		{"https://10.1.2.3/x", "private address"},
		{"https://192.168.1.10/x", "private address"},
		{"https://169.254.169.254/latest/meta-data", "private address"},
		{"https://[fd00::1]/x", "private address"},
		{"https://0.0.0.0/x", "not a receiver's address"},
		{"https://user:pw@hooks.example.nl/x", "user name or password"},
		{"https://hooks.b.crisis.test/x", "host of peer b.crisis.test"},
		{"https://knooppunt.partner-b.nl/x", "host of peer b.crisis.test"},
		{"hooks.example.nl/x", "not an absolute URL"},
	} {
		_, err := hooks.Add(callCtx(t), &pb.AddWebhookRequest{Url: tc.url})
		msg := status.Convert(err).Message()
		if status.Code(err) != codes.InvalidArgument || !strings.HasPrefix(msg, "url: ") || strings.Contains(msg, "webhook:") || !strings.Contains(msg, tc.want) {
			t.Errorf("Add %s: %v: want INVALID_ARGUMENT naming url once and saying %q", tc.url, err, tc.want)
		}
	}
	// A list's bad element is named by its place in the list.
	for _, tc := range []struct {
		req   *pb.AddWebhookRequest
		field string
	}{
		{&pb.AddWebhookRequest{Url: "https://hooks.example.nl/x", Kinds: []string{"sitrep", "nope"}}, "kinds[1]"},
		{&pb.AddWebhookRequest{Url: "https://hooks.example.nl/x", Crises: []string{"oekraine", "bad crisis!"}}, "crises[1]"},
		// A crisis as people write it, which no record can name: it would deliver nothing, ever.
		{&pb.AddWebhookRequest{Url: "https://hooks.example.nl/x", Crises: []string{"Oekraine"}}, "crises[0]"},
		{&pb.AddWebhookRequest{Url: "https://hooks.example.nl/x", Regions: []string{"VR99"}}, "regions[0]"},
	} {
		if _, err := hooks.Add(callCtx(t), tc.req); status.Code(err) != codes.InvalidArgument || fieldOf(err) != tc.field {
			t.Errorf("Add %v: %v, field %q: want INVALID_ARGUMENT naming %s", tc.req, err, fieldOf(err), tc.field)
		}
	}
	// The kinds it may use, as a list a person reads.
	if _, err := hooks.Add(callCtx(t), &pb.AddWebhookRequest{Url: "https://hooks.example.nl/x", Kinds: []string{"nope"}}); !strings.Contains(err.Error(), "use one of alert, ") {
		t.Errorf("Add with an unknown kind: %v, want the kinds listed with commas", err)
	}
	// A closed exercise takes no records: its webhook would deliver nothing (review Z, Z19).
	ex := pb.NewExerciseServiceClient(conn)
	if _, err := ex.Start(callCtx(t), &pb.ExerciseStepRequest{Name: "oef-dicht"}); err != nil {
		t.Fatal(err)
	}
	if _, err := ex.Close(callCtx(t), &pb.ExerciseStepRequest{Name: "oef-dicht", Reason: "afgelopen"}); err != nil {
		t.Fatal(err)
	}
	if _, err := hooks.Add(callCtx(t), &pb.AddWebhookRequest{Url: "https://hooks.example.nl/x", Exercise: "oef-dicht"}); status.Code(err) != codes.FailedPrecondition || fieldOf(err) != "exercise" || !strings.Contains(err.Error(), "is closed") {
		t.Errorf("Add of a closed exercise: %v, want FAILED_PRECONDITION at exercise saying it is closed", err)
	}

	rc := newReceiver(t)
	elsewhere := 0
	redirect := true
	rc.answer = func(r *http.Request) int {
		if r.URL.Path == "/elsewhere" {
			elsewhere++
			return 204
		}
		if redirect {
			return http.StatusTemporaryRedirect
		}
		return 0
	}
	wh := addWebhook(t, hooks, rc, &pb.AddWebhookRequest{Url: rc.url("/hook")})
	if _, err := pb.NewRecordServiceClient(conn).Put(callCtx(t), &pb.PutRequest{Record: shelter("s1")}); err != nil {
		t.Fatal(err)
	}
	var fails *pb.WebhookFailuresResponse
	waitUntil(t, 10*time.Second, "the redirected delivery to become a failure", func() bool {
		var err error
		fails, err = hooks.Failures(callCtx(t), &pb.WebhookFailuresRequest{Webhook: wh.Id})
		return err == nil && len(fails.Failures) == 1
	})
	f := fails.Failures[0]
	if !strings.Contains(f.LastError, "redirect") || f.Attempts != 1 || f.RecordId != "s1" {
		t.Fatalf("failure %v: want one attempt of s1 refused as a redirect", f)
	}
	rc.mu.Lock()
	if elsewhere != 0 {
		t.Errorf("the redirect was followed %d times", elsewhere)
	}
	redirect = false
	rc.mu.Unlock()
	if _, err := hooks.Retry(callCtx(t), &pb.RetryWebhookRequest{Webhook: "wh_nope"}); status.Code(err) != codes.NotFound || fieldOf(err) != "webhook" {
		t.Errorf("Retry of a webhook that does not exist: %v, want NotFound at webhook", err)
	}
	if _, err := hooks.Retry(callCtx(t), &pb.RetryWebhookRequest{Webhook: wh.Id, MessageIds: make([]string, 10001)}); status.Code(err) != codes.InvalidArgument || fieldOf(err) != "message_ids" {
		t.Errorf("Retry of 10,001 message ids: %v, want InvalidArgument at message_ids", err)
	}
	if _, err := hooks.Retry(callCtx(t), &pb.RetryWebhookRequest{Webhook: wh.Id, MessageIds: []string{"msg_nope"}}); status.Code(err) != codes.NotFound || fieldOf(err) != "message_ids" {
		t.Errorf("Retry of a message that is no failure: %v, want NOT_FOUND", err)
	}
	resp, err := hooks.Retry(callCtx(t), &pb.RetryWebhookRequest{Webhook: wh.Id})
	if err != nil || resp.Queued != 1 {
		t.Fatalf("Retry: %v, %v: want 1 queued", resp, err)
	}
	got := rc.waitFor(10*time.Second, "the retried delivery", func(a []arrival) bool { return len(a) == 1 })
	if got[0].message != f.MessageId {
		t.Fatalf("retried as %s, want its first webhook-id %s", got[0].message, f.MessageId)
	}
	if _, err := hooks.Remove(callCtx(t), &pb.RemoveWebhookRequest{Id: wh.Id}); err != nil {
		t.Fatal(err)
	}
	if _, err := hooks.Remove(callCtx(t), &pb.RemoveWebhookRequest{Id: wh.Id}); status.Code(err) != codes.NotFound || fieldOf(err) != "id" {
		t.Fatalf("Remove twice: %v, want NOT_FOUND", err)
	}
}

// TestWebhookForeignRecordsStayHome: a record a peer shared reaches the node's own webhook,
// marked as not its own, with its origin; a webhook whose host became a peer's (peers are added
// while webhooks exist) never gets it: the delivery is refused as a re-share.
func TestWebhookForeignRecordsStayHome(t *testing.T) {
	peers := []config.Peer{{Name: "b", TrustDomain: "b.crisis.test", Addresses: []string{"127.0.0.1:1"}}}
	n := startWith(t, func(c *config.Config) { c.Peers = peers })
	conn := dial(t, n)
	hooks := pb.NewWebhookServiceClient(conn)
	rc := newReceiver(t)
	own := addWebhook(t, hooks, rc, &pb.AddWebhookRequest{Url: rc.url("/own")})
	// A webhook to a host that is a peer's is refused at Add; one stored before its host became
	// a peer's (here: stored through the log directly) is refused at delivery.
	other := &pb.Webhook{Id: "wh_other", Url: "https://hooks.c.crisis.test/in", Secret: mustSecret(t)}
	if _, err := n.Store().Apply(callCtx(t), &pb.Command{Cmd: &pb.Command_WebhookStep{WebhookStep: &pb.WebhookStep{Action: "add", Webhook: other, By: "test", At: timestamppb.Now()}}}); err != nil {
		t.Fatal(err)
	}
	// Organisation c becomes a peer, through the log as `peer accept` adds one.
	if _, err := n.Store().Apply(callCtx(t), &pb.Command{Cmd: &pb.Command_PeerStep{PeerStep: &pb.PeerStep{Action: "add", Actor: "test", At: timestamppb.Now(),
		Peer: &pb.PeerInfo{Name: "c", TrustDomain: "c.crisis.test", Addresses: []string{"knooppunt.c.crisis.test:7443"}, Bundle: []byte("pem")}}}}); err != nil {
		t.Fatal(err)
	}
	shared := &pb.SharedRecord{Record: &pb.Record{Id: "b-1", Origin: "b.crisis.test", Kind: "shelter.capacity", Crisis: "oekraine", Region: "VR09",
		Classification: pb.Classification_INTERNAL, Body: []byte(`{"beds_free":3}`), Version: 2, UpdatedAt: timestamppb.Now()}}
	if _, err := n.Store().Apply(callCtx(t), &pb.Command{Cmd: &pb.Command_CacheForeign{CacheForeign: &pb.CacheForeign{
		Peer: "b", Origin: "b.crisis.test", Upserts: []*pb.SharedRecord{shared}, Cursor: 1, At: timestamppb.Now()}}}); err != nil {
		t.Fatal(err)
	}
	got := rc.waitFor(10*time.Second, "the peer's record at the own webhook", func(a []arrival) bool { return len(a) == 1 })
	if d := got[0].event.Data; d.Own || d.Origin != "b.crisis.test" || d.Webhook != own.Id {
		t.Fatalf("arrived %+v: want the record of b.crisis.test, not own, for %s", d, own.Id)
	}
	var fails *pb.WebhookFailuresResponse
	waitUntil(t, 10*time.Second, "the re-share to be refused", func() bool {
		var err error
		fails, err = hooks.Failures(callCtx(t), &pb.WebhookFailuresRequest{Webhook: other.Id})
		return err == nil && len(fails.Failures) == 1
	})
	if f := fails.Failures[0]; !strings.Contains(f.LastError, "no re-share") || f.Origin != "b.crisis.test" {
		t.Fatalf("failure %v: want the record of b.crisis.test refused as a re-share", f)
	}
}

func mustSecret(t *testing.T) string {
	s, err := webhook.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	return s.String()
}

func waitUntil(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// fieldOf is the field a refusal's BadRequest detail names, for a program that maps it to a form.
func fieldOf(err error) string {
	field, _ := api.Field(err)
	return field
}

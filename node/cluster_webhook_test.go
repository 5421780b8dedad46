package node_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/knooppunt/knooppunt/node"
	"github.com/knooppunt/knooppunt/node/clustertest"
	"github.com/knooppunt/knooppunt/node/config"
	"github.com/knooppunt/knooppunt/node/metrics"
	"github.com/knooppunt/knooppunt/node/webhook"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestClusterWebhookLeaderKilledDuringDelivery kills the leader of a group of three while it
// delivers a webhook's queue. The new leader goes on from the committed acknowledgements: every
// acknowledged write arrives, in commit order; the only delivery that may arrive twice is the
// old leader's last one, whose acknowledgement had not committed, and it comes again with the
// same webhook-id; no delivery the old leader had acknowledged is sent again.
func TestClusterWebhookLeaderKilledDuringDelivery(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{})
	old := c.Leader(t, 10*time.Second, c.Replicas...)
	rc := newReceiver(t)
	// A receiver that takes a little time, so that the kill finds deliveries in flight.
	rc.answer = func(*http.Request) int { time.Sleep(3 * time.Millisecond); return 0 }
	resp, err := pb.NewWebhookServiceClient(old.Local(t)).Add(clustertest.Call(t), &pb.AddWebhookRequest{Url: rc.url("/hook")})
	if err != nil {
		t.Fatal(err)
	}
	rc.setSecret(resp.Secret)

	var want []string
	last := map[string]int64{}
	put := func(via *clustertest.Replica, i int) {
		id := fmt.Sprintf("s%02d", i%10)
		res := via.Put(t, shelter(id))
		// A write retried across the kill (ABORTED: it may have been stored) that had been
		// committed after all is a version of its own, delivered before the retry's.
		for v := last[id] + 1; v <= res.Version; v++ {
			want = append(want, fmt.Sprintf("%s/%s@%d", c.TD.Name(), id, v))
		}
		last[id] = res.Version
	}
	for i := range 60 {
		put(old, i)
	}
	rc.waitFor(20*time.Second, "a third of the deliveries before the kill", func(a []arrival) bool { return len(a) >= 20 })
	old.Kill(t)
	survivors := others(c, old)
	for i := 60; i < 80; i++ {
		put(survivors[i%2], i)
	}
	got := rc.waitFor(30*time.Second, "every acknowledged write", func(a []arrival) bool { return len(distinct(a)) >= len(want) })

	if g := recordVersions(distinct(got)); !slices.Equal(g, want) {
		t.Fatalf("arrived, first arrivals only, %v\nwant %v", g, want)
	}
	oldAgent := "(" + old.ID + ")"
	lastOld := -1
	for i, a := range got {
		if strings.Contains(a.agent, oldAgent) {
			lastOld = i
		}
	}
	seen := map[string]int{}
	repeats, flapped := 0, false
	for i, a := range got {
		first, again := seen[a.message]
		if !again {
			seen[a.message] = i
			continue
		}
		repeats++
		if !flapped && first == i-1 && first != lastOld && got[first].agent == a.agent {
			// The new leader's delivery in flight, sent again at once by the same replica: it
			// lost the lead and won it back (on a loaded machine), a leader change of its own.
			flapped = true
			continue
		}
		if first != lastOld || strings.Contains(a.agent, oldAgent) {
			t.Errorf("%s arrived at %d from %s and again at %d from %s: only the old leader's last delivery (at %d) may come again, from the new leader",
				a.message, first, got[first].agent, i, a.agent, lastOld)
		}
	}
	t.Logf("%s killed after its delivery %d of %d; %d deliveries arrived again", old.ID, lastOld+1, len(want), repeats)
	if lastOld < 0 || lastOld == len(got)-1 {
		t.Fatalf("the old leader delivered at %d of %d: the kill did not happen during delivery", lastOld, len(got))
	}
	// Each delivery was acknowledged exactly once: the survivors count as many as arrived.
	for _, r := range survivors {
		clustertest.Eventually(t, 10*time.Second, "the acknowledgements on "+r.ID, func() (bool, string) {
			list, err := pb.NewWebhookServiceClient(r.Local(t)).List(clustertest.Call(t), &pb.ListWebhooksRequest{})
			if err != nil || len(list.Webhooks) != 1 {
				return false, fmt.Sprint(list, err)
			}
			w := list.Webhooks[0]
			return w.Delivered == int64(len(want)) && w.Queued == 0, fmt.Sprintf("delivered %d, queued %d", w.Delivered, w.Queued)
		})
	}
}

// distinct is the arrivals without repeats of a webhook-id, in order of first arrival.
func distinct(got []arrival) []arrival {
	seen := map[string]bool{}
	var out []arrival
	for _, a := range got {
		if !seen[a.message] {
			seen[a.message] = true
			out = append(out, a)
		}
	}
	return out
}

// logSink keeps a node's log lines (JSON, from DEBUG up) for a test to read.
type logSink struct {
	mu    sync.Mutex
	lines []map[string]any
}

func (s *logSink) Write(p []byte) (int, error) {
	var line map[string]any
	if err := json.Unmarshal(p, &line); err == nil {
		s.mu.Lock()
		s.lines = append(s.lines, line)
		s.mu.Unlock()
	}
	return len(p), nil
}

// find returns the lines of the level whose message starts with msg and whose attributes hold
// the pairs in with.
func (s *logSink) find(level, msg string, with ...string) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
next:
	for _, l := range s.lines {
		if l["level"] != level || !strings.HasPrefix(fmt.Sprint(l["msg"]), msg) {
			continue
		}
		for i := 0; i+1 < len(with); i += 2 {
			if fmt.Sprint(l[with[i]]) != with[i+1] {
				continue next
			}
		}
		out = append(out, l)
	}
	return out
}

// startLogged starts a single-replica node as startWith does, with its log kept in the sink.
func startLogged(t *testing.T, change func(*config.Config)) (*node.Node, *logSink) {
	t.Helper()
	sink := &logSink{}
	return startLoggingTo(t, change, slog.New(slog.NewJSONHandler(sink, &slog.HandlerOptions{Level: slog.LevelDebug}))), sink
}

// statusReceiver is a receiver on 127.0.0.1 whose answer to each delivery (by record id and
// attempt) the test decides, with a body; it keeps the record ids it acknowledged, in order.
type statusReceiver struct {
	srv      *httptest.Server
	mu       sync.Mutex
	attempts map[string]int
	got      []string
	answer   func(id string, attempt int) (int, string)
}

func newStatusReceiver(t *testing.T, answer func(id string, attempt int) (int, string)) *statusReceiver {
	rc := &statusReceiver{attempts: map[string]int{}, answer: answer}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev webhook.Event
		body, _ := io.ReadAll(r.Body)
		json.Unmarshal(body, &ev)
		var rec struct {
			ID string `json:"id"`
		}
		json.Unmarshal(ev.Data.Record, &rec)
		rc.mu.Lock()
		rc.attempts[rec.ID]++
		code, text := rc.answer(rec.ID, rc.attempts[rec.ID])
		if code/100 == 2 {
			rc.got = append(rc.got, rec.ID)
		}
		rc.mu.Unlock()
		w.WriteHeader(code)
		io.WriteString(w, text)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *statusReceiver) setAnswer(answer func(id string, attempt int) (int, string)) {
	rc.mu.Lock()
	rc.answer = answer
	rc.mu.Unlock()
}

func (rc *statusReceiver) state() (got []string, attempts map[string]int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.got), maps.Clone(rc.attempts)
}

// queueMetric reads a webhook's series of a metric; ok is false when it has none.
func queueMetric(t *testing.T, name, id string) (v float64, ok bool) {
	t.Helper()
	return metrics.Value(name, map[string]string{"webhook": id})
}

// TestWebhookRejectedDeliveryFailsAtOnce: a receiver that rejects one record with a 4xx (422)
// does not hold up the queue for webhooks.retry_for (here the default, 24h): the rejected
// delivery becomes a failure after one attempt, its last error keeps the start of the
// receiver's answer as one line, the deliveries behind it arrive, and the log says it once at
// WARN. A 429 and a 408, which ask to come back, are retried.
func TestWebhookRejectedDeliveryFailsAtOnce(t *testing.T) {
	n, logs := startLogged(t, nil)
	conn := dial(t, n)
	hooks := pb.NewWebhookServiceClient(conn)
	why := "record poison:\n\tbeds_free\x00 must be ≥ 0\r\n" + strings.Repeat("x", 600)
	rc := newStatusReceiver(t, func(id string, attempt int) (int, string) {
		switch {
		case id == "poison":
			return http.StatusUnprocessableEntity, why
		case id == "busy" && attempt <= 2:
			return http.StatusTooManyRequests, "slow down"
		case id == "slow" && attempt == 1:
			return http.StatusRequestTimeout, ""
		}
		return http.StatusNoContent, ""
	})
	resp, err := hooks.Add(callCtx(t), &pb.AddWebhookRequest{Url: rc.srv.URL + "/hook"})
	if err != nil {
		t.Fatal(err)
	}
	wh := resp.Webhook
	recs := pb.NewRecordServiceClient(conn)
	want := []string{"busy", "a1", "slow", "a2"}
	for _, id := range []string{"poison", "busy", "a1", "slow", "a2"} {
		if _, err := recs.Put(callCtx(t), &pb.PutRequest{Record: shelter(id)}); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, 10*time.Second, "the deliveries behind the rejected one", func() bool {
		got, _ := rc.state()
		return len(got) == len(want)
	})
	got, attempts := rc.state()
	if !slices.Equal(got, want) || attempts["poison"] != 1 || attempts["busy"] != 3 || attempts["slow"] != 2 {
		t.Fatalf("acknowledged %v after attempts %v: want %v, poison tried once, busy 3 times, slow twice", got, attempts, want)
	}
	fails, err := hooks.Failures(callCtx(t), &pb.WebhookFailuresRequest{Webhook: wh.Id})
	if err != nil || len(fails.Failures) != 1 {
		t.Fatalf("failures %v, %v: want the one rejected delivery", fails, err)
	}
	f := fails.Failures[0]
	wantErr := "webhook: the receiver rejected the delivery: it answered 422 Unprocessable Entity: record poison: beds_free must be ≥ 0 xxx"
	if f.RecordId != "poison" || f.Attempts != 1 || !strings.HasPrefix(f.LastError, wantErr) || !strings.HasSuffix(f.LastError, "x…") ||
		len(f.LastError) > len(wantErr)+webhook.MaxReason || strings.ContainsAny(f.LastError, "\n\r\t\x00") {
		t.Fatalf("failure of %s after %d attempt(s): %q\nwant one attempt, and the error to start %q and keep at most %d bytes of the answer, on one line",
			f.RecordId, f.Attempts, f.LastError, wantErr, webhook.MaxReason)
	}
	if w := logs.find("WARN", "webhooks: ", "webhook", wh.Id); len(w) != 1 || !strings.Contains(fmt.Sprint(w[0]["err"]), "422") {
		t.Errorf("WARN lines for the webhook: %v: want one, naming the 422", w)
	}
	if i := logs.find("INFO", "webhooks: delivering again", "webhook", wh.Id); len(i) == 0 {
		t.Errorf("no INFO line when the webhook delivered again")
	}
}

// TestWebhookFailingIsLoggedOnceAndGauged: while a receiver answers 503, the webhook's head is
// retried; the log says so at WARN once, not at each attempt, and at INFO when it delivers
// again; knooppunt_webhook_queued and knooppunt_webhook_oldest_queued_seconds show the queue
// waiting and ageing, and empty once it is delivered.
func TestWebhookFailingIsLoggedOnceAndGauged(t *testing.T) {
	n, logs := startLogged(t, nil)
	conn := dial(t, n)
	down := func(string, int) (int, string) { return http.StatusServiceUnavailable, "maintenance until 14:00" }
	rc := newStatusReceiver(t, down)
	resp, err := pb.NewWebhookServiceClient(conn).Add(callCtx(t), &pb.AddWebhookRequest{Url: rc.srv.URL + "/hook"})
	if err != nil {
		t.Fatal(err)
	}
	id := resp.Webhook.Id
	recs := pb.NewRecordServiceClient(conn)
	for _, r := range []string{"a1", "a2", "a3"} {
		if _, err := recs.Put(callCtx(t), &pb.PutRequest{Record: shelter(r)}); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, 10*time.Second, "several attempts at the head, and the queue gauged", func() bool {
		_, attempts := rc.state()
		q, ok := queueMetric(t, "knooppunt_webhook_queued", id)
		return attempts["a1"] >= 6 && ok && q == 3
	})
	age, ok := queueMetric(t, "knooppunt_webhook_oldest_queued_seconds", id)
	if !ok || age <= 0 {
		t.Errorf("knooppunt_webhook_oldest_queued_seconds %g (present %v) while the head waits: want above 0", age, ok)
	}
	waitUntil(t, 5*time.Second, "the head's age to grow", func() bool {
		later, _ := queueMetric(t, "knooppunt_webhook_oldest_queued_seconds", id)
		return later > age
	})
	warns := logs.find("WARN", "webhooks: ", "webhook", id)
	if len(warns) != 1 || !strings.HasPrefix(fmt.Sprint(warns[0]["message"]), "msg_"+id+"_1_") || !strings.Contains(fmt.Sprint(warns[0]["err"]), "503 Service Unavailable: maintenance until 14:00") {
		t.Fatalf("WARN lines while the head fails: %v: want one, for its first failure, with the receiver's answer", warns)
	}
	// The list says since when the head fails, and what the receiver answered.
	list, err := pb.NewWebhookServiceClient(conn).List(callCtx(t), &pb.ListWebhooksRequest{})
	if err != nil || len(list.Webhooks) != 1 || list.Webhooks[0].FailingSince == nil || time.Since(list.Webhooks[0].FailingSince.AsTime()) > time.Minute ||
		!strings.Contains(list.Webhooks[0].LastError, "maintenance until 14:00") {
		t.Errorf("the list while the head fails: %v %v: want since when and the receiver's answer", list, err)
	}
	rc.setAnswer(func(string, int) (int, string) { return http.StatusNoContent, "" })
	waitUntil(t, 10*time.Second, "every delivery once the receiver is back", func() bool {
		got, _ := rc.state()
		return len(got) == 3
	})
	if i := logs.find("INFO", "webhooks: delivering again", "webhook", id); len(i) != 1 {
		t.Errorf("INFO lines when the webhook delivered again: %v: want one", i)
	}
	if w := logs.find("WARN", "webhooks: ", "webhook", id); len(w) != 1 {
		t.Errorf("WARN lines after it delivered again: %v: want still the one", w)
	}
	waitUntil(t, 5*time.Second, "the gauges of an empty queue", func() bool {
		q, ok1 := queueMetric(t, "knooppunt_webhook_queued", id)
		a, ok2 := queueMetric(t, "knooppunt_webhook_oldest_queued_seconds", id)
		return ok1 && ok2 && q == 0 && a == 0
	})
	if list, err := pb.NewWebhookServiceClient(conn).List(callCtx(t), &pb.ListWebhooksRequest{}); err != nil || list.Webhooks[0].FailingSince != nil || list.Webhooks[0].LastError != "" {
		t.Errorf("the list once delivering again: %v %v: want no failure", list, err)
	}
}

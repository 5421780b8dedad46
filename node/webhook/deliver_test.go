package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/knooppunt/knooppunt/node/config"
	"github.com/knooppunt/knooppunt/node/db"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestSendJudgesTheAnswer: one attempt against a receiver on 127.0.0.1: a 2xx delivers; a 4xx
// that does not ask to come back is a rejection for good (ErrRejected), with the start of the
// receiver's answer as one line of text; 408, 409, 425, 429 and a 5xx are retried; a 3xx is a
// redirect, refused for good.
func TestSendJudgesTheAnswer(t *testing.T) {
	for _, tc := range []struct {
		code    int
		body    string
		refused bool
		want    string // in the error; "" for none
	}{
		{204, "", false, ""},
		{200, "ok", false, ""},
		{400, "bad request", true, "rejected the delivery: it answered 400 Bad Request: bad request"},
		{401, "", true, "rejected the delivery: it answered 401 Unauthorized"},
		{404, "<html>\n<h1>Not Found</h1>\n</html>", true, "it answered 404 Not Found: <html> <h1>Not Found</h1> </html>"},
		{413, "", true, "413 Request Entity Too Large"},
		{422, `{"error":"beds_free:` + "\x1b[31m" + ` must be >= 0"}`, true, `422 Unprocessable Entity: {"error":"beds_free: [31m must be >= 0"}`},
		{408, "", false, "the receiver answered 408 Request Timeout"},
		{409, "", false, "409 Conflict"},
		{425, "", false, "425 Too Early"},
		{429, "slow down", false, "the receiver answered 429 Too Many Requests: slow down"},
		{500, "boom", false, "the receiver answered 500 Internal Server Error: boom"},
		{503, "", false, "503 Service Unavailable"},
		{307, "", true, "redirect"},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(tc.code)
			w.Write([]byte(tc.body))
		}))
		u, _ := url.Parse(srv.URL)
		set := config.Webhooks{Timeout: 5 * time.Second}
		client := newClient(u, set)
		d := NewDispatcher(DispatcherConfig{Org: "test.crisis.test", Replica: "r1"})
		secret, err := NewSecret()
		if err != nil {
			t.Fatal(err)
		}
		x := db.Delivery{Webhook: "wh_1", Seq: 1, Message: "msg_wh_1_1", Record: &pb.Record{Id: "r"}}
		err = d.send(context.Background(), client, u, signer{secret: secret}, x, []byte(`{}`), set.Timeout)
		srv.Close()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%d: %v, want delivered", tc.code, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%d: %v, want an error saying %q", tc.code, err, tc.want)
		case err != nil && refused(err) != tc.refused:
			t.Errorf("%d: %v: refused for good %v, want %v", tc.code, err, refused(err), tc.refused)
		case err != nil && errors.Is(err, ErrRejected) != (tc.refused && tc.code/100 == 4):
			t.Errorf("%d: %v: ErrRejected %v", tc.code, err, errors.Is(err, ErrRejected))
		}
	}
}

// TestSendHidesTheQuery: an attempt that fails before an answer names the URL without its
// query, which may hold the receiver's token: the error goes to logs, to last_error and to the
// dead letters (review D, F9). The receiver gets the query.
func TestSendHidesTheQuery(t *testing.T) {
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.URL.RawQuery
		w.WriteHeader(http.StatusNoContent)
	}))
	set := config.Webhooks{Timeout: 5 * time.Second}
	d := NewDispatcher(DispatcherConfig{Org: "test.crisis.test", Replica: "r1"})
	secret, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	x := db.Delivery{Webhook: "wh_1", Seq: 1, Message: "msg_wh_1_1", Record: &pb.Record{Id: "r"}}
	u, _ := url.Parse(srv.URL + "/hook?token=S3CRET")
	if err := d.send(context.Background(), newClient(u, set), u, signer{secret: secret}, x, []byte(`{}`), set.Timeout); err != nil || got != "token=S3CRET" {
		t.Fatalf("delivered with query %q, %v; want token=S3CRET", got, err)
	}
	srv.Close() // nothing listens now: the connection is refused
	err = d.send(context.Background(), newClient(u, set), u, signer{secret: secret}, x, []byte(`{}`), set.Timeout)
	if err == nil || strings.Contains(err.Error(), "S3CRET") || !strings.Contains(err.Error(), srv.URL+"/hook?…") {
		t.Errorf("a refused connection says %v; want the URL without its query", err)
	}
}

// TestReason: a receiver's answer becomes one line of printable text of at most MaxReason bytes
// of it, marked when cut.
func TestReason(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"  \n\t ", ""},
		{"line one\r\nline two\x00\x07end", "line one line two end"},
		{"bad \xff\xfe utf-8 ≥ ok", "bad utf-8 ≥ ok"},
		{strings.Repeat("a", MaxReason), strings.Repeat("a", MaxReason)},
		{strings.Repeat("a", MaxReason+1), strings.Repeat("a", MaxReason) + "…"},
		{strings.Repeat("é", MaxReason), strings.Repeat("é", MaxReason/2) + "…"},
	} {
		if got := Reason([]byte(tc.in)); got != tc.want {
			t.Errorf("Reason(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestHealthLogsTransitions: a webhook's failures are logged at WARN when they begin and then at
// most every FailingLogEvery, each attempt in between at DEBUG; a delivery after a WARN is
// logged at INFO; a receiver that fails again soon after is not warned about again until
// FailingLogEvery has passed.
func TestHealthLogsTransitions(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	levels := func() string {
		var out []string
		for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
			var l struct{ Level, Msg string }
			json.Unmarshal([]byte(line), &l)
			out = append(out, l.Level)
		}
		buf.Reset()
		return strings.Join(out, " ")
	}
	var hl health
	x := db.Delivery{Message: "msg_wh_1_1", RecordID: "r", Version: 1}
	t0 := time.Date(2026, 3, 7, 14, 0, 0, 0, time.UTC)
	fail := errors.New("the receiver answered 503 Service Unavailable")
	for i := range 5 {
		hl.failed(log, t0.Add(time.Duration(i)*time.Minute), "wh_1", x, i+1, fail, false)
	}
	if got := levels(); got != "WARN DEBUG DEBUG DEBUG DEBUG" {
		t.Fatalf("five failures within 4 minutes: %s", got)
	}
	hl.failed(log, t0.Add(FailingLogEvery), "wh_1", x, 6, fail, false)
	hl.failed(log, t0.Add(FailingLogEvery+time.Minute), "wh_1", x, 7, fail, false)
	if got := levels(); got != "WARN DEBUG" {
		t.Fatalf("failures FailingLogEvery after the first WARN: %s", got)
	}
	hl.delivered(log, t0.Add(11*time.Minute), "wh_1", x)
	if got := levels(); got != "INFO" {
		t.Fatalf("a delivery after the WARN: %s", got)
	}
	// It fails again a minute later, and recovers: one WARN in ten minutes was enough.
	hl.failed(log, t0.Add(12*time.Minute), "wh_1", x, 1, fail, true)
	hl.delivered(log, t0.Add(13*time.Minute), "wh_1", x)
	if got := levels(); got != "DEBUG" {
		t.Fatalf("a failure soon after the last WARN, then a delivery: %s", got)
	}
	hl.failed(log, t0.Add(21*time.Minute), "wh_1", x, 1, fail, false)
	hl.delivered(log, t0.Add(22*time.Minute), "wh_1", x)
	if got := levels(); got != "WARN INFO" {
		t.Fatalf("a failure FailingLogEvery after the last WARN, then a delivery: %s", got)
	}
}

// TestSignerOverlap: after a rotation, a delivery made before the overlap ends carries a
// signature each receiver verifies, whichever of the two secrets it holds; one made after it
// verifies only with the new secret.
func TestSignerOverlap(t *testing.T) {
	oldS, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	newS, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	sg, err := newSigner(db.WebhookRow{Secret: newS.String(), OldSecret: oldS.String(), OldSecretUntil: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"type":"record.changed"}`)
	for _, tc := range []struct {
		at        time.Time
		oldVerify bool
	}{{now, true}, {now.Add(2 * time.Hour), false}} {
		h := http.Header{}
		sg.sign(h, "msg_1", tc.at, body)
		if _, err := newS.Verify(h, body, tc.at, 0); err != nil {
			t.Errorf("at %s: the new secret does not verify: %v", tc.at, err)
		}
		if _, err := oldS.Verify(h, body, tc.at, 0); (err == nil) != tc.oldVerify {
			t.Errorf("at %s: the old secret verifies: %v, want %v (%q)", tc.at, err == nil, tc.oldVerify, h.Get(HeaderSignature))
		}
	}
}

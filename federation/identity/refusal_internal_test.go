package identity

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"
	"time"
)

// TestRefusalLogOnceAMinute: the refusals of one caller for one reason are a warning once a
// minute, which says how many came since, and debug lines in between; a reason that differs in
// its digits alone (an expiry's time) is the same; another caller or reason is a warning at once.
func TestRefusalLogOnceAMinute(t *testing.T) {
	var buf bytes.Buffer // identitytest's Log would be an import cycle here
	l := newRefusalLog(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	now := time.Date(2026, 12, 8, 1, 0, 0, 0, time.UTC)
	l.now = func() time.Time { return now }
	expired := func(at time.Time) string {
		return "x509: certificate has expired or is not yet valid: current time " + at.Format(time.RFC3339) + " is after 2026-12-08T00:00:00Z"
	}
	const r2 = "spiffe://vr-utrecht.crisis.test/node/r2"
	for range 4 {
		l.note(r2, expired(now))
		now = now.Add(10 * time.Second)
	}
	l.note("spiffe://vr-utrecht.crisis.test/node/r3", expired(now))
	l.note(r2, "not a replica of this group")
	now = now.Add(30 * time.Second) // 70 s after the first
	l.note(r2, expired(now))
	var got []string
	for _, line := range bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n")) {
		var e struct {
			Level, Caller string
			Repeated      any
		}
		if err := json.Unmarshal(line, &e); err != nil {
			t.Fatal(err)
		}
		repeated := ""
		if e.Repeated != nil {
			repeated = fmt.Sprint(e.Repeated)
		}
		got = append(got, e.Level+" "+e.Caller[len("spiffe://vr-utrecht.crisis.test/node/"):]+" repeated="+repeated)
	}
	want := []string{"WARN r2 repeated=", "DEBUG r2 repeated=", "DEBUG r2 repeated=", "DEBUG r2 repeated=",
		"WARN r3 repeated=", "WARN r2 repeated=", "WARN r2 repeated=3"}
	if len(got) != len(want) {
		t.Fatalf("logged %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("logged %q, want %q", got, want)
		}
	}
}

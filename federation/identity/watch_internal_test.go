package identity

import (
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// TestNextRefreshBacksOff: after a failed fetch of a peer's bundle the next comes after
// firstRetry, doubling with each failure in a row up to the refresh, and after a success after
// the refresh again; the store says when the next is due (review G2: one miss at start, before
// the partner's endpoint listened, waited a whole refresh hint and read as minutes of failing).
func TestNextRefreshBacksOff(t *testing.T) {
	td := spiffeid.RequireTrustDomainFromString("ncc.crisis.test")
	ts := NewTrustStore(nil)
	w := &peerWatcher{t: ts, p: PeerEndpoint{TrustDomain: td}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	refused := errors.New("connection refused")
	// Each step is a fetch (ok or failed) and the wait NextRefresh must give after it, less up to
	// 10% for the jitter.
	steps := []struct {
		hint time.Duration
		ok   bool
		want time.Duration
	}{
		{time.Minute, false, 5 * time.Second},
		{time.Minute, false, 10 * time.Second},
		{time.Minute, false, 20 * time.Second},
		{time.Minute, false, 40 * time.Second},
		{time.Minute, false, time.Minute}, // 80 s capped at the hint
		{time.Minute, false, time.Minute},
		{time.Minute, true, time.Minute},
		{time.Minute, true, time.Minute},
		{time.Minute, false, 5 * time.Second}, // a success starts the backoff over
		{0, false, 10 * time.Second},          // no hint: the default refresh caps it
		{0, true, defaultRefresh},
		{2 * time.Second, false, 2 * time.Second}, // a hint below firstRetry is the cap
	}
	for i, s := range steps {
		if !s.ok {
			w.OnError(refused)
		}
		before := time.Now()
		got := w.NextRefresh(s.hint)
		if got > s.want || got < s.want-s.want/10 {
			t.Errorf("step %d (hint %v, ok %v): next fetch in %v, want %v less up to 10%%", i, s.hint, s.ok, got, s.want)
		}
		f, _ := ts.Fetch(td)
		if f.Next.Before(before.Add(got)) || f.Next.After(time.Now().Add(got)) {
			t.Errorf("step %d: the store says the next fetch is at %v, %v after the fetch", i, f.Next, f.Next.Sub(before))
		}
		if failing := f.Err != ""; failing == s.ok {
			t.Errorf("step %d (ok %v): the store says error %q", i, s.ok, f.Err)
		}
	}
}

package identity

import (
	"bytes"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
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

// TestBundleChangeIsLoggedAtWarn: the first fetch of a run, whose CAs differ from the bundle the
// node started with (a routine rotation since onboarding), is said at INFO; a later fetch whose
// CAs differ from the last fetched is said at WARN with how many came and went (review O, O4;
// review Q, Q7).
func TestBundleChangeIsLoggedAtWarn(t *testing.T) {
	td := spiffeid.RequireTrustDomainFromString("ncc.crisis.test")
	ca := func() *x509.Certificate {
		c, err := NewCA(td, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return c.Cert
	}
	given, rotated, added := ca(), ca(), ca()
	served := func(cas ...*x509.Certificate) *spiffebundle.Bundle {
		return spiffebundle.FromX509Authorities(td, cas)
	}
	var logs bytes.Buffer
	ts := NewTrustStore(nil)
	ts.SetPeerBundle(x509bundle.FromX509Authorities(td, []*x509.Certificate{given}))
	w := &peerWatcher{t: ts, p: PeerEndpoint{TrustDomain: td}, log: slog.New(slog.NewTextHandler(&logs, nil))}
	steps := []struct {
		bundle *spiffebundle.Bundle
		want   string
	}{
		{served(rotated), `level=INFO msg="peer bundle updated" authorities=1`},
		{served(rotated, added), `level=WARN msg="peer bundle updated: its CAs changed; compare the fingerprint in force (knooppunt peer show) with the partner's" authorities=2 added=1 removed=0`},
		{served(added), `level=WARN msg="peer bundle updated: its CAs changed; compare the fingerprint in force (knooppunt peer show) with the partner's" authorities=1 added=0 removed=1`},
	}
	for i, s := range steps {
		logs.Reset()
		w.OnUpdate(s.bundle)
		if got := strings.TrimSpace(logs.String()); !strings.Contains(got, s.want) || strings.Count(got, "\n") > 0 {
			t.Errorf("step %d: logged\n%s\nwant one line with\n%s", i, got, s.want)
		}
		if f, _ := ts.Fetch(td); !f.InForce.Equal(s.bundle.X509Bundle()) {
			t.Errorf("step %d: the bundle in force is not the one fetched", i)
		}
	}
}

// TestRemovePeerForgetsItsMetrics: a removed peer's bundle refresh time and error count go with
// it (review AI, AI1): the time, frozen, fired a stale-bundle alert until the next restart.
func TestRemovePeerForgetsItsMetrics(t *testing.T) {
	td := spiffeid.RequireTrustDomainFromString("removed.crisis.test")
	ts := NewTrustStore(nil)
	bundleRefreshed.WithLabelValues(td.String()).SetToCurrentTime()
	bundleRefreshErrors.WithLabelValues(td.String()).Inc()
	has := func(c prometheus.Collector) bool {
		ch := make(chan prometheus.Metric, 64)
		go func() { c.Collect(ch); close(ch) }()
		found := false
		for m := range ch {
			var d dto.Metric
			if err := m.Write(&d); err != nil {
				t.Fatal(err)
			}
			for _, l := range d.GetLabel() {
				found = found || l.GetValue() == td.String()
			}
		}
		return found
	}
	if !has(bundleRefreshed) || !has(bundleRefreshErrors) {
		t.Fatal("the peer's series are not there to begin with")
	}
	ts.RemovePeer(td)
	if has(bundleRefreshed) || has(bundleRefreshErrors) {
		t.Error("the removed peer's bundle series stay")
	}
}

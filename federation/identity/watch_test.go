package identity_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/knooppunt/knooppunt/federation/identity"
	"github.com/knooppunt/knooppunt/federation/identity/identitytest"
)

// ownSource is a node's own SVID and bundle, as a TrustStore is given them.
type ownSource struct {
	svid   *x509svid.SVID
	bundle *x509bundle.Bundle
}

func (o ownSource) GetX509SVID() (*x509svid.SVID, error) { return o.svid, nil }
func (o ownSource) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	return o.bundle.GetX509BundleForTrustDomain(td)
}
func (o ownSource) Close() error { return nil }

// syncBuffer is a log that the watcher writes and the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestWatchPeerBundleBoundsAFetch: a peer's bundle endpoint that first never answers, then sends
// more than any bundle, then the bundle, costs one bounded failure each: the refresh goes on and
// takes the bundle (review20 M4: a stalled endpoint stopped the refresh for good, and an endless
// answer was read whole into memory).
func TestWatchPeerBundleBoundsAFetch(t *testing.T) {
	own := identitytest.NewCA(t, "vr-utrecht.crisis.test")
	peer := identitytest.NewCA(t, "ncc.crisis.test")
	served, err := spiffebundle.FromX509Bundle(identitytest.Bundle(peer)).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	lis, err := tls.Listen("tcp", "127.0.0.1:0", tlsconfig.TLSServerConfig(identitytest.SVID(t, peer, "/node/r1", identity.SVIDOptions{})))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch calls.Add(1) {
		case 1: // never answers
			<-r.Context().Done()
		case 2: // answers without end
			chunk := bytes.Repeat([]byte(" "), 64<<10)
			for r.Context().Err() == nil {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		default:
			w.Write(served)
		}
	})}
	go srv.Serve(lis)
	t.Cleanup(func() { srv.Close() })

	ts := identity.NewTrustStore(ownSource{identitytest.SVID(t, own, "/node/r1", identity.SVIDOptions{}), identitytest.Bundle(own)})
	ts.SetPeerBundle(identitytest.Bundle(peer))
	p := identity.PeerEndpoint{TrustDomain: peer.TrustDomain, URL: "https://" + lis.Addr().String(), EndpointID: identitytest.ID(peer, "/node/r1"),
		DefaultRefresh: 50 * time.Millisecond, FetchTimeout: 300 * time.Millisecond}
	var logs syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		identity.WatchPeerBundle(ctx, ts, p, slog.New(slog.NewTextHandler(&logs, nil)))
		close(done)
	}()
	defer func() { cancel(); <-done }()
	identitytest.Eventually(t, 20*time.Second, "a fetch after the two bad ones succeeds", func() bool {
		f, ok := ts.Fetch(p.TrustDomain)
		return ok && f.Err == "" && calls.Load() >= 3
	})
	for _, want := range []string{"Client.Timeout exceeded", "sent more than 1048576 bytes"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the log says nothing of %q:\n%s", want, logs.String())
		}
	}
}

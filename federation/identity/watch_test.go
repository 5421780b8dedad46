package identity_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"

	"github.com/knooppunt/knooppunt/federation/identity"
	"github.com/knooppunt/knooppunt/federation/identity/identitytest"
)

// TestWatchPeerBundleBoundsAFetch: a peer's bundle endpoint that first never answers, then sends
// more than any bundle, then the bundle, costs one bounded failure each: the refresh goes on and
// takes the bundle (review20 M4: a stalled endpoint stopped the refresh for good, and an endless
// answer was read whole into memory).
func TestWatchPeerBundleBoundsAFetch(t *testing.T) {
	peer := identitytest.NewCA(t, "ncc.crisis.test")
	served, err := spiffebundle.FromX509Bundle(identitytest.Bundle(peer)).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	// The first answer never comes, whatever the connection does: a handler that returned when
	// its request's context ended would answer 200 with nothing, and the fetch would fail on
	// that, not on its timeout.
	stop := make(chan struct{})
	lis, err := tls.Listen("tcp", "127.0.0.1:0", tlsconfig.TLSServerConfig(identitytest.SVID(t, peer, "/node/r1", identity.SVIDOptions{})))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch calls.Add(1) {
		case 1: // never answers
			<-stop
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
	t.Cleanup(func() { close(stop); srv.Close() })

	ts := identity.NewTrustStore(newOrg(t, "vr-utrecht.crisis.test").src)
	ts.SetPeerBundle(identitytest.Bundle(peer))
	p := identity.PeerEndpoint{TrustDomain: peer.TrustDomain, URL: "https://" + lis.Addr().String(), EndpointID: identitytest.ID(peer, "/node/r1"),
		DefaultRefresh: 50 * time.Millisecond, FetchTimeout: 2 * time.Second} // room to read 1 MiB on a loaded machine
	logs := identitytest.NewLog()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		identity.WatchPeerBundle(ctx, ts, p, logs.Logger)
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

// TestWatchPeerBundleRetriesSoon: a peer's bundle endpoint that does not listen yet at the first
// fetch, as when partners start together, and comes up right after, gives the bundle within
// seconds, not after the refresh (review G2: the retry waited the whole hint, and peer show read
// refresh failing for minutes while the endpoint had been up almost all that time).
func TestWatchPeerBundleRetriesSoon(t *testing.T) {
	peer := identitytest.NewCA(t, "ncc.crisis.test")
	served, err := spiffebundle.FromX509Bundle(identitytest.Bundle(peer)).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	// A free port on loopback, where nothing listens until the first fetch has failed.
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := free.Addr().String()
	free.Close()

	ts := identity.NewTrustStore(newOrg(t, "vr-utrecht.crisis.test").src)
	ts.SetPeerBundle(identitytest.Bundle(peer))
	p := identity.PeerEndpoint{TrustDomain: peer.TrustDomain, URL: "https://" + addr, EndpointID: identitytest.ID(peer, "/node/r1"),
		DefaultRefresh: 10 * time.Minute}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		identity.WatchPeerBundle(ctx, ts, p, identitytest.NewLog().Logger)
		close(done)
	}()
	t.Cleanup(func() { cancel(); <-done })
	identitytest.Eventually(t, 20*time.Second, "the first fetch fails", func() bool {
		f, ok := ts.Fetch(p.TrustDomain)
		return ok && f.Err != ""
	})
	f, _ := ts.Fetch(p.TrustDomain)
	if !strings.Contains(f.Err, "connection refused") || f.Last.IsZero() || f.Next.Sub(f.Last) > 10*time.Second {
		t.Errorf("after the first fetch, refused: error %q, tried at %v, next at %v; want the next within seconds", f.Err, f.Last, f.Next)
	}

	lis, err := tls.Listen("tcp", addr, tlsconfig.TLSServerConfig(identitytest.SVID(t, peer, "/node/r1", identity.SVIDOptions{})))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(served) })}
	go srv.Serve(lis)
	t.Cleanup(func() { srv.Close() })
	identitytest.Eventually(t, 30*time.Second, "a fetch after the endpoint came up succeeds", func() bool {
		f, ok := ts.Fetch(p.TrustDomain)
		return ok && f.Err == "" && !f.OK.IsZero()
	})
}

package bench

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/knooppunt/knooppunt/federation/identity"
)

// serveTLS accepts TLS connections on a free loopback port with cfg. On each it completes the
// handshake, writes one byte and waits for the client to hang up. The byte follows the TLS 1.3
// session ticket, so a client that reads it has the ticket in its session cache.
func serveTLS(tb testing.TB, cfg *tls.Config) string {
	tb.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	tb.Cleanup(func() { lis.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				tc := tls.Server(c, cfg)
				if tc.Handshake() != nil {
					return
				}
				if _, err := tc.Write([]byte{1}); err != nil {
					return
				}
				io.Copy(io.Discard, tc)
			})
		}
	})
	return lis.Addr().String()
}

// handshake opens a connection to addr, completes the TLS handshake with cfg, reads the server's
// byte (and with it the session ticket), and hangs up.
func handshake(addr string, cfg *tls.Config) (tls.ConnectionState, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	tc := tls.Client(c, cfg)
	defer tc.Close()
	if err := tc.Handshake(); err != nil {
		return tls.ConnectionState{}, err
	}
	var one [1]byte
	if _, err := io.ReadFull(tc, one[:]); err != nil {
		return tls.ConnectionState{}, err
	}
	return tc.ConnectionState(), nil
}

// handshakeKind is a client configuration BenchmarkHandshake compares.
type handshakeKind struct {
	name    string
	cfg     *tls.Config
	resume  bool
	n       int64
	resumed int64
	took    time.Duration
}

// BenchmarkHandshake measures full against resumed TLS 1.3 mTLS handshakes with the node's
// server configuration (identity.ServerTLS over the node's files source) and the user's client
// configuration (identity.ClientTLS with AuthorizeReplica): full has no session cache, resumed
// has a tls.NewLRUClientSessionCache, so it resumes with the server's ticket (PSK with a fresh
// key exchange: neither side signs, and neither verifies a certificate). A handshake is a TCP
// connect, the handshake, one byte from the server, and the hang-up.
//
// One iteration is one window per kind, in an order that rotates, of 8 handshakes per worker;
// serial has one worker (latency), concurrent has 4 (throughput with both cores busy: the
// client's and the server's halves run in this one process). Metrics:
//
//	ns/op        full handshake, wall time per handshake in its windows
//	resumed-ns   resumed handshake, likewise
//	full-hs/s    full handshakes per second
//	resumed-hs/s resumed handshakes per second
//	x-resumed    resumed-hs/s ÷ full-hs/s
//	resumed-%    share of the resumed kind's handshakes that did resume (should be 100)
func BenchmarkHandshake(b *testing.B) {
	for _, workers := range []int{1, 4} {
		name := "serial"
		if workers > 1 {
			name = fmt.Sprintf("concurrent=%d", workers)
		}
		b.Run(name, func(b *testing.B) { benchHandshake(b, workers) })
	}
}

func benchHandshake(b *testing.B, workers int) {
	f := newFixture(b)
	addr := serveTLS(b, f.serverTLS(b))
	resumeCfg := f.clientTLS()
	resumeCfg.ClientSessionCache = tls.NewLRUClientSessionCache(64)
	kinds := []*handshakeKind{{name: "full", cfg: f.clientTLS()}, {name: "resumed", cfg: resumeCfg, resume: true}}
	for range 20 { // the first ticket, the key exchange's tables
		for _, k := range kinds {
			if _, err := handshake(addr, k.cfg); err != nil {
				b.Fatalf("%s: %v", k.name, err)
			}
		}
	}
	per := 8
	i := 0
	for b.Loop() {
		for j := range kinds {
			k := kinds[(i+j)%len(kinds)]
			if err := k.window(addr, workers, per); err != nil {
				b.Fatal(err)
			}
		}
		i++
	}
	full, resumed := kinds[0], kinds[1]
	fullRate := float64(full.n) / full.took.Seconds()
	resumedRate := float64(resumed.n) / resumed.took.Seconds()
	b.ReportMetric(1e9/fullRate, "ns/op")
	b.ReportMetric(1e9/resumedRate, "resumed-ns")
	b.ReportMetric(fullRate, "full-hs/s")
	b.ReportMetric(resumedRate, "resumed-hs/s")
	b.ReportMetric(resumedRate/fullRate, "x-resumed")
	b.ReportMetric(100*float64(resumed.resumed)/float64(resumed.n), "resumed-%")
	if full.resumed > 0 {
		b.Fatalf("%d full handshakes resumed", full.resumed)
	}
}

// window runs workers×per handshakes of the kind, workers at a time, and adds them up.
func (k *handshakeKind) window(addr string, workers, per int) error {
	var resumed atomic.Int64
	errs := make([]error, workers)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range workers {
		wg.Go(func() {
			for range per {
				cs, err := handshake(addr, k.cfg)
				if err != nil {
					errs[w] = fmt.Errorf("%s handshake: %w", k.name, err)
					return
				}
				if cs.Version != tls.VersionTLS13 {
					errs[w] = fmt.Errorf("%s handshake: TLS version %#x, want TLS 1.3", k.name, cs.Version)
					return
				}
				if cs.DidResume {
					resumed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	k.took += time.Since(start)
	k.n += int64(workers * per)
	k.resumed += resumed.Load()
	return errors.Join(errs...)
}

// TestResumedHandshakeIsVerified checks what BenchmarkHandshake relies on, that the resumed kind
// does resume, and that its figures are those of a safe resumption: one that still refuses a
// party whose bundle was taken away since the session began, on either side. crypto/tls does
// not call VerifyPeerCertificate on a resumed session; identity checks those in
// VerifyConnection.
func TestResumedHandshakeIsVerified(t *testing.T) {
	for _, tc := range []struct {
		name string
		// revoke takes the client's (server side) or the server's (client side) bundle away.
		revoke func(trust *identity.TrustStore, clientBundles *x509bundle.Set)
		want   string
	}{
		{
			name:   "server refuses a peer that was removed",
			revoke: func(trust *identity.TrustStore, _ *x509bundle.Set) { trust.RemovePeer(peerTD) },
			want:   "remote error: tls: bad certificate",
		},
		{
			name: "client refuses a server whose bundle it no longer holds",
			revoke: func(_ *identity.TrustStore, clientBundles *x509bundle.Set) {
				clientBundles.Remove(spiffeid.RequireTrustDomainFromString("local.crisis.test"))
			},
			want: `x509svid: could not get X509 bundle: x509bundle: no X.509 bundle for trust domain "local.crisis.test"`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			src, err := identity.NewFileSource(f.nodeCert, f.nodeKey, f.bundle, 0, discard)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { src.Close() })
			// The client is a replica of a peer org, as on a federation connection.
			peerCA, err := identity.NewCA(peerTD, 0)
			if err != nil {
				t.Fatal(err)
			}
			trust := identity.NewTrustStore(src)
			trust.SetPeerBundle(x509bundle.FromX509Authorities(peerTD, []*x509.Certificate{peerCA.Cert}))
			peerID := spiffeid.RequireFromPath(peerTD, "/node/r1")
			chain, key, err := peerCA.Issue(peerID, identity.SVIDOptions{})
			if err != nil {
				t.Fatal(err)
			}
			peer := &x509svid.SVID{ID: peerID, Certificates: chain, PrivateKey: key}
			clientBundles := x509bundle.NewSet(f.bundles)
			addr := serveTLS(t, identity.ServerTLS(src, trust, discard))
			client := func() *tls.Config { return identity.ClientTLS(peer, clientBundles, identity.AuthorizeReplica(f.td)) }
			resuming := client()
			resuming.ClientSessionCache = tls.NewLRUClientSessionCache(1)

			for i, want := range []bool{false, true} {
				cs, err := handshake(addr, resuming)
				if err != nil {
					t.Fatalf("handshake %d: %v", i+1, err)
				}
				if cs.DidResume != want || cs.Version != tls.VersionTLS13 {
					t.Fatalf("handshake %d: resumed %t, TLS version %#x; want resumed %t, TLS 1.3", i+1, cs.DidResume, cs.Version, want)
				}
			}
			tc.revoke(trust, clientBundles)
			for _, h := range []struct {
				kind string
				cfg  *tls.Config
			}{{"full", client()}, {"resumed", resuming}} {
				_, err := handshake(addr, h.cfg)
				if err == nil || err.Error() != tc.want {
					t.Errorf("%s handshake after the bundle went: %v, want %q", h.kind, err, tc.want)
				}
			}
		})
	}
}

var peerTD = spiffeid.RequireTrustDomainFromString("peer.crisis.test")

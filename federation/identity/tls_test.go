package identity_test

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/knooppunt/knooppunt/federation/identity"
	"github.com/knooppunt/knooppunt/federation/identity/identitytest"
)

// org is one org's PKI as a node sees it: its CA, its node's SVID and bundle as files, and a
// files source over them.
type org struct {
	td     spiffeid.TrustDomain
	ca     *identity.DevCA
	bundle string // path of the org's bundle file
	src    *identity.FileSource
}

func newOrg(t *testing.T, td string) *org {
	t.Helper()
	dir := t.TempDir()
	o := &org{td: spiffeid.RequireTrustDomainFromString(td), ca: identitytest.NewCA(t, td), bundle: filepath.Join(dir, "bundle.pem")}
	identitytest.WriteBundle(t, o.bundle, o.ca)
	identitytest.WriteSVID(t, o.ca, "/node/r1", filepath.Join(dir, "r1"), identity.SVIDOptions{})
	src, err := identity.NewFileSource(filepath.Join(dir, "r1.crt"), filepath.Join(dir, "r1.key"), o.bundle, 10*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	o.src = src
	return o
}

// serveTLS accepts TLS connections with cfg on loopback. A connection whose handshake succeeds
// gets the caller's SPIFFE ID written back, then is closed.
func serveTLS(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	lis, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lis.Close() })
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				tc := c.(*tls.Conn)
				tc.SetDeadline(time.Now().Add(5 * time.Second))
				if tc.Handshake() != nil {
					return
				}
				id, err := x509svid.IDFromCert(tc.ConnectionState().PeerCertificates[0])
				if err != nil {
					return
				}
				fmt.Fprintf(tc, "%s\n", id)
				io.Copy(io.Discard, tc) // until the client closes
			}()
		}
	}()
	return lis.Addr().String()
}

// handshake connects to addr with cfg and returns the SPIFFE ID the server saw, and whether the
// connection resumed a session. Under TLS 1.3 the client finishes its side of the handshake
// before the server has checked the client's certificate, so a refusal shows on the first read.
func handshake(addr string, cfg *tls.Config) (seen string, resumed bool, err error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return "", false, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 256)
	n, err := c.Read(buf)
	if err != nil {
		return "", false, err
	}
	return strings.TrimSpace(string(buf[:n])), c.ConnectionState().DidResume, nil
}

// TestServerTLSHandshakes runs real handshakes against identity.ServerTLS over a node's trust
// store. Every refusal must reach the client as a TLS alert and be logged with the SPIFFE ID
// the client claimed and the reason.
func TestServerTLSHandshakes(t *testing.T) {
	own := newOrg(t, orgTD)
	peer := newOrg(t, "ncc.crisis.test")
	stranger := newOrg(t, "coa.crisis.test")
	rogue := identitytest.NewCA(t, orgTD) // another CA that claims the org's trust domain
	trust := identity.NewTrustStore(own.src)
	trust.SetPeerBundle(identitytest.Bundle(peer.ca))
	log := identitytest.NewLog()
	addr := serveTLS(t, identity.ServerTLS(own.src, trust, log.Logger))

	past := time.Now().Add(-48 * time.Hour)
	future := time.Now().Add(time.Hour)
	for _, tc := range []struct {
		name   string
		client *x509svid.SVID
		// reason are stable parts of the logged reason; none means the handshake succeeds.
		reason []string
	}{
		{"own user", identitytest.SVID(t, own.ca, "/user/anna", identity.SVIDOptions{}), nil},
		{"own user without a role is still authenticated", identitytest.SVID(t, own.ca, "/user/nobody", identity.SVIDOptions{}), nil},
		{"configured peer", identitytest.SVID(t, peer.ca, "/node/r1", identity.SVIDOptions{}), nil},
		{"CA not trusted", identitytest.SVID(t, rogue, "/user/mallory", identity.SVIDOptions{}),
			[]string{"x509svid: could not verify leaf certificate: x509: certificate signed by unknown authority"}},
		{"trust domain without a bundle", identitytest.SVID(t, stranger.ca, "/node/r1", identity.SVIDOptions{}),
			[]string{`x509svid: could not get X509 bundle: identity: no bundle for trust domain "coa.crisis.test"`}},
		{"expired", identitytest.SVID(t, own.ca, "/user/expired", identity.SVIDOptions{NotBefore: past, TTL: time.Hour}),
			[]string{"x509: certificate has expired or is not yet valid: current time", " is after "}},
		{"not yet valid", identitytest.SVID(t, own.ca, "/user/early", identity.SVIDOptions{NotBefore: future, TTL: time.Hour}),
			[]string{"x509: certificate has expired or is not yet valid: current time", " is before "}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The client trusts the server's org, so whatever fails is the server's refusal.
			cfg := identity.ClientTLS(tc.client, identitytest.Bundle(own.ca), identity.AuthorizeReplica(own.td))
			seen, _, err := handshake(addr, cfg)
			if tc.reason == nil {
				if err != nil || seen != tc.client.ID.String() {
					t.Fatalf("handshake: server saw %q, err %v; want %s accepted", seen, err, tc.client.ID)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "remote error: tls: bad certificate") {
				t.Fatalf("handshake: %v (server saw %q); want remote error: tls: bad certificate", err, seen)
			}
			log.Wait(t, 5*time.Second, "handshake refused", identitytest.Refusal(tc.client.ID.String(), tc.reason...))
		})
	}
	if t.Failed() {
		t.Log(log)
	}

	// Once the peer is removed, its SVIDs no longer verify.
	trust.RemovePeer(peer.td)
	p := identitytest.SVID(t, peer.ca, "/node/r1", identity.SVIDOptions{})
	if _, _, err := handshake(addr, identity.ClientTLS(p, identitytest.Bundle(own.ca), identity.AuthorizeReplica(own.td))); err == nil {
		t.Fatal("a removed peer still completes a handshake")
	}
	log.Wait(t, 5*time.Second, "handshake refused", identitytest.Refusal(p.ID.String(), `identity: no bundle for trust domain "ncc.crisis.test"`))
}

// TestServerTLSNeedsACertificate: a client that presents no certificate at all is refused.
func TestServerTLSNeedsACertificate(t *testing.T) {
	own := newOrg(t, orgTD)
	addr := serveTLS(t, identity.ServerTLS(own.src, identity.NewTrustStore(own.src), identitytest.NewLog().Logger))
	cfg := tlsconfig.TLSClientConfig(identitytest.Bundle(own.ca), tlsconfig.AuthorizeAny())
	if _, _, err := handshake(addr, cfg); err == nil || !strings.Contains(err.Error(), "tls: certificate required") {
		t.Fatalf("handshake without a client certificate: %v; want tls: certificate required", err)
	}
}

// TestReplicaOnlyListener: identity.ServerTLSFor with AuthorizeReplica, as on the Raft port,
// admits the org's replicas and refuses its users and other orgs' replicas at the handshake.
func TestReplicaOnlyListener(t *testing.T) {
	own := newOrg(t, orgTD)
	peer := newOrg(t, "ncc.crisis.test")
	trust := identity.NewTrustStore(own.src)
	trust.SetPeerBundle(identitytest.Bundle(peer.ca))
	log := identitytest.NewLog()
	addr := serveTLS(t, identity.ServerTLSFor(own.src, trust, identity.AuthorizeReplica(own.td), log.Logger))

	replica := identitytest.SVID(t, own.ca, "/node/r2", identity.SVIDOptions{})
	if seen, _, err := handshake(addr, identity.ClientTLS(replica, trust, identity.AuthorizeReplica(own.td))); err != nil || seen != replica.ID.String() {
		t.Fatalf("replica: saw %q, %v", seen, err)
	}
	for _, tc := range []struct {
		client *x509svid.SVID
		reason string
	}{
		{identitytest.SVID(t, own.ca, "/user/admin", identity.SVIDOptions{}),
			"spiffe://vr-utrecht.crisis.test/user/admin is not a replica of vr-utrecht.crisis.test (spiffe://vr-utrecht.crisis.test/node/...)"},
		{identitytest.SVID(t, own.ca, "/nodes/r9", identity.SVIDOptions{}),
			"spiffe://vr-utrecht.crisis.test/nodes/r9 is not a replica of vr-utrecht.crisis.test (spiffe://vr-utrecht.crisis.test/node/...)"},
		{identitytest.SVID(t, peer.ca, "/node/r1", identity.SVIDOptions{}),
			"spiffe://ncc.crisis.test/node/r1 is not a replica of vr-utrecht.crisis.test (spiffe://vr-utrecht.crisis.test/node/...)"},
	} {
		_, _, err := handshake(addr, identity.ClientTLS(tc.client, trust, identity.AuthorizeReplica(own.td)))
		if err == nil || !strings.Contains(err.Error(), "remote error: tls: bad certificate") {
			t.Errorf("%s: %v; want remote error: tls: bad certificate", tc.client.ID, err)
			continue
		}
		e := log.Wait(t, 5*time.Second, "handshake refused", identitytest.Refusal(tc.client.ID.String(), "is not a replica"))
		if !strings.HasSuffix(e.Str("reason"), tc.reason) {
			t.Errorf("%s: logged reason %q, want it to end in %q", tc.client.ID, e.Str("reason"), tc.reason)
		}
	}
	// A caller refused again for the same reason, within a minute, is logged at debug level: a
	// removed replica dials at every election (review AM, AM2).
	admin := identitytest.SVID(t, own.ca, "/user/admin", identity.SVIDOptions{})
	for range 5 {
		if _, _, err := handshake(addr, identity.ClientTLS(admin, trust, identity.AuthorizeReplica(own.td))); err == nil {
			t.Fatal("admin's handshake succeeded")
		}
	}
	level := func(l string) func(identitytest.Entry) bool {
		return func(e identitytest.Entry) bool { return e.Str("caller") == admin.ID.String() && e.Str("level") == l }
	}
	if warn, debug := log.Count("handshake refused", level("WARN")), log.Count("handshake refused", level("DEBUG")); warn != 1 || debug != 5 {
		t.Errorf("six refusals of %s: %d warnings and %d at debug level, want 1 and 5", admin.ID, warn, debug)
	}
}

// TestClientAcceptsOnlyReplicas: a client built with ClientTLS and AuthorizeReplica refuses a
// server that presents an SVID of its trust domain that is not a replica's, so that a user's
// stolen SVID cannot impersonate the node.
func TestClientAcceptsOnlyReplicas(t *testing.T) {
	own := newOrg(t, orgTD)
	impostor := identitytest.SVID(t, own.ca, "/user/mallory", identity.SVIDOptions{})
	addr := serveTLS(t, identity.ServerTLS(impostor, identitytest.Bundle(own.ca), identitytest.NewLog().Logger))
	anna := identitytest.SVID(t, own.ca, "/user/anna", identity.SVIDOptions{})
	_, _, err := handshake(addr, identity.ClientTLS(anna, identitytest.Bundle(own.ca), identity.AuthorizeReplica(own.td)))
	want := "spiffe://vr-utrecht.crisis.test/user/mallory is not a replica of vr-utrecht.crisis.test (spiffe://vr-utrecht.crisis.test/node/...)"
	if err == nil || !strings.HasSuffix(err.Error(), want) {
		t.Fatalf("handshake with a user posing as the node: %v\nwant ...%s", err, want)
	}
}

// TestResumedSessionIsVerifiedAgain: crypto/tls does not call VerifyPeerCertificate when a
// session resumes, so a peer removed from the trust store could otherwise resume its old
// session. The server must check the resumed peer against the current bundles.
func TestResumedSessionIsVerifiedAgain(t *testing.T) {
	own := newOrg(t, orgTD)
	peer := newOrg(t, "ncc.crisis.test")
	trust := identity.NewTrustStore(own.src)
	trust.SetPeerBundle(identitytest.Bundle(peer.ca))
	log := identitytest.NewLog()
	addr := serveTLS(t, identity.ServerTLS(own.src, trust, log.Logger))

	svid := identitytest.SVID(t, peer.ca, "/node/r1", identity.SVIDOptions{})
	cfg := identity.ClientTLS(svid, identitytest.Bundle(own.ca), identity.AuthorizeReplica(own.td))
	cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	if _, resumed, err := handshake(addr, cfg); err != nil || resumed {
		t.Fatalf("first handshake: resumed=%v err=%v", resumed, err)
	}
	// Without a change, the session resumes: this is what the last step must refuse.
	if _, resumed, err := handshake(addr, cfg); err != nil || !resumed {
		t.Fatalf("second handshake: resumed=%v err=%v; want a resumed session", resumed, err)
	}
	trust.RemovePeer(peer.td)
	_, _, err := handshake(addr, cfg)
	if err == nil {
		t.Fatal("a peer removed from the trust store resumed its session")
	}
	log.Wait(t, 5*time.Second, "handshake refused", identitytest.Refusal(svid.ID.String(), `no bundle for trust domain "ncc.crisis.test"`))
}

// TestTrustStore: peers' bundles come first, the own trust domain comes from the source, and
// anything else has no bundle.
func TestTrustStore(t *testing.T) {
	own := newOrg(t, orgTD)
	peerCA := identitytest.NewCA(t, "ncc.crisis.test")
	trust := identity.NewTrustStore(own.src)
	ncc := spiffeid.RequireTrustDomainFromString("ncc.crisis.test")

	b, err := trust.GetX509BundleForTrustDomain(own.td)
	if err != nil || !b.Equal(identitytest.Bundle(own.ca)) {
		t.Errorf("own bundle: %v, %v", b, err)
	}
	_, err = trust.GetX509BundleForTrustDomain(ncc)
	if !errors.Is(err, identity.ErrNoBundle) || err.Error() != `identity: no bundle for trust domain "ncc.crisis.test"` {
		t.Errorf("unknown trust domain: %v", err)
	}
	if trust.HasPeer(ncc) {
		t.Error("HasPeer before SetPeerBundle")
	}
	trust.SetPeerBundle(identitytest.Bundle(peerCA))
	if b, err := trust.GetX509BundleForTrustDomain(ncc); err != nil || !b.Equal(identitytest.Bundle(peerCA)) || !trust.HasPeer(ncc) {
		t.Errorf("after SetPeerBundle: %v, %v", b, err)
	}
	trust.RemovePeer(ncc)
	if _, err := trust.GetX509BundleForTrustDomain(ncc); !errors.Is(err, identity.ErrNoBundle) || trust.HasPeer(ncc) {
		t.Errorf("after RemovePeer: %v", err)
	}
	var _ x509bundle.Source = trust
}

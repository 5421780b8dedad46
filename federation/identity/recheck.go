package identity

import (
	"context"
	"crypto/x509"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// dropAfter is how long after a refusal Check closes the connection.
const dropAfter = 200 * time.Millisecond

// maxRechecked bounds Recheck's memory: past it, it forgets what it verified and verifies again.
const maxRechecked = 4096

// Recheck verifies the X.509-SVID a connection was made with again, on each call that comes in
// over it, against the trust bundle its trust domain has now. The handshake verified it once,
// against the bundle of that moment; an HTTP/2 connection lives on for as long as its client
// keeps it open. Without this, a peer whose bundle was replaced because its CA key was stolen
// (`peer accept --replace`, or a new bundle from its endpoint) would go on being served on the
// connections made with the old CA's SVIDs, open streams included, and an SVID would go on
// being honoured after it expired.
//
// A verification holds while the bundle's authorities are the same certificates and the
// chain's certificates are all still valid: a call costs a map lookup, a verification only
// the first call after a change.
type Recheck struct {
	bundles x509bundle.Source
	now     func() time.Time
	// drop closes the connection from addr, when set (DropWith).
	drop func(addr net.Addr)

	mu   sync.Mutex
	seen map[*x509.Certificate]verified
}

type verified struct {
	authorities []*x509.Certificate
	until       time.Time
}

// NewRecheck returns a Recheck over the bundles the node verifies callers with.
func NewRecheck(bundles x509bundle.Source) *Recheck {
	return &Recheck{bundles: bundles, now: time.Now, seen: map[*x509.Certificate]verified{}}
}

// DropWith makes Check close a connection whose SVID no longer verifies, with drop, so that
// its client connects again: a client of the peer with a current SVID then goes on (its SVID
// was rotated, or its CA was), where the one that holds only the old SVID is refused at the
// handshake. Call it before the servers serve.
func (r *Recheck) DropWith(drop func(addr net.Addr)) { r.drop = drop }

// Check returns nil when the call's connection was made with an SVID that still verifies, or
// when it came in over no TLS connection (the local socket, the in-process channel); else an
// UNAVAILABLE status that says to connect again, and the connection is closed (DropWith). An
// SVID that verifies but for its end having passed is served this call, and its connection
// closed after it: a client of the peer's own, whose SVID was renewed meanwhile, connects again
// with the new one and sees no error (under SPIRE an SVID lives an hour, its connections
// longer), where one that holds only the old SVID has no more than that call.
func (r *Recheck) Check(ctx context.Context) error {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.PeerCertificates) == 0 {
		return nil
	}
	ended, err := r.Certs(info.State.PeerCertificates)
	if (ended || err != nil) && r.drop != nil {
		// After the answer has had time to reach the client, so that it learns why; the calls
		// it makes meanwhile are decided likewise.
		time.AfterFunc(dropAfter, func() { r.drop(p.Addr) })
	}
	return err
}

// Certs is Check for the certificates a client presented in a TLS handshake (an HTTP request's
// TLS.PeerCertificates), leaf first. ended says that they verify but for the time: the caller
// is to serve this request and close the connection after it.
func (r *Recheck) Certs(certs []*x509.Certificate) (ended bool, err error) {
	leaf := certs[0]
	id, err := x509svid.IDFromCert(leaf)
	if err != nil {
		return false, status.Errorf(codes.Unavailable, "the certificate of this connection is no X.509-SVID: %v", err)
	}
	b, err := r.bundles.GetX509BundleForTrustDomain(id.TrustDomain())
	if err != nil {
		return false, status.Errorf(codes.Unavailable, "%s: this node no longer trusts trust domain %s", id, id.TrustDomain())
	}
	authorities := b.X509Authorities()
	now := r.now()
	r.mu.Lock()
	v, ok := r.seen[leaf]
	r.mu.Unlock()
	if ok && now.Before(v.until) && slices.Equal(v.authorities, authorities) {
		return false, nil
	}
	bundle := x509bundle.NewSet(b)
	_, chains, err := x509svid.Verify(certs, bundle, x509svid.WithTime(now))
	if err != nil {
		r.forget(leaf)
		if now.After(leaf.NotAfter) {
			if _, _, err := x509svid.Verify(certs, bundle, x509svid.WithTime(leaf.NotAfter)); err == nil {
				return true, nil
			}
		}
		return false, status.Errorf(codes.Unavailable, "%s: the X.509-SVID this connection was made with no longer verifies against the trust bundle of %s (the bundle changed): connect again with a current SVID", id, id.TrustDomain())
	}
	until := leaf.NotAfter
	for _, c := range chains[0] {
		if c.NotAfter.Before(until) {
			until = c.NotAfter
		}
	}
	r.mu.Lock()
	if len(r.seen) >= maxRechecked {
		clear(r.seen)
	}
	r.seen[leaf] = verified{authorities: authorities, until: until}
	r.mu.Unlock()
	return false, nil
}

func (r *Recheck) forget(leaf *x509.Certificate) {
	r.mu.Lock()
	delete(r.seen, leaf)
	r.mu.Unlock()
}

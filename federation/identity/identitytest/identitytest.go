// Package identitytest is an in-process test PKI for SPIFFE mTLS: development CAs, X.509-SVIDs
// in memory or as the files a node's files source reads, client connections that present an
// SVID, and a fake SPIRE Workload API. Keys are generated once per test binary, so minting an
// SVID costs one signature.
//
// identitytest is for tests only. It mints with identity.DevCA, exactly as `knooppunt ca` does,
// so that what tests verify is what the demo and operators run.
package identitytest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"

	"github.com/knooppunt/knooppunt/federation/identity"
	"github.com/knooppunt/knooppunt/federation/invite"
)

// keyCount keys are generated once; SVIDs take them in turn. Sharing a key between test SVIDs
// changes nothing that a test verifies.
const keyCount = 16

var (
	keysOnce sync.Once
	keys     []crypto.Signer
	nextKey  atomic.Uint64
)

// Key returns one of the pre-generated P-256 keys, a different one on each call until they
// repeat.
func Key() crypto.Signer {
	keysOnce.Do(func() {
		for range keyCount {
			k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				panic(err)
			}
			keys = append(keys, k)
		}
	})
	return keys[nextKey.Add(1)%keyCount]
}

// NewCA makes an in-memory development CA for the trust domain td, such as "a.crisis.test".
// Two calls with the same td make two unrelated CAs of the same trust domain.
func NewCA(tb testing.TB, td string) *identity.DevCA {
	tb.Helper()
	ca, err := identity.NewCA(spiffeid.RequireTrustDomainFromString(td), 0)
	if err != nil {
		tb.Fatalf("identitytest: NewCA(%s): %v", td, err)
	}
	return ca
}

// ID is spiffe://TD/PATH for the CA's trust domain.
func ID(ca *identity.DevCA, path string) spiffeid.ID {
	return spiffeid.RequireFromPath(ca.TrustDomain, path)
}

// SVID mints an SVID for path (such as "/user/anna") in the CA's trust domain, with a
// pre-generated key unless opts names one.
func SVID(tb testing.TB, ca *identity.DevCA, path string, opts identity.SVIDOptions) *x509svid.SVID {
	tb.Helper()
	if opts.Key == nil {
		opts.Key = Key()
	}
	id := ID(ca, path)
	chain, key, err := ca.Issue(id, opts)
	if err != nil {
		tb.Fatalf("identitytest: issue %s: %v", id, err)
	}
	return &x509svid.SVID{ID: id, Certificates: chain, PrivateKey: key}
}

// WriteSVID mints an SVID for path and writes PREFIX.crt and PREFIX.key, as `knooppunt ca
// issue` does. It returns the certificate.
func WriteSVID(tb testing.TB, ca *identity.DevCA, path, prefix string, opts identity.SVIDOptions) *x509.Certificate {
	tb.Helper()
	if opts.Key == nil {
		opts.Key = Key()
	}
	if err := ca.IssueFiles(ID(ca, path), prefix, opts); err != nil {
		tb.Fatalf("identitytest: issue %s to %s: %v", ID(ca, path), prefix, err)
	}
	svid, err := x509svid.Load(prefix+".crt", prefix+".key")
	if err != nil {
		tb.Fatalf("identitytest: %v", err)
	}
	return svid.Certificates[0]
}

// Bundle is the trust bundle of the CAs, which must share one trust domain: an org that rotates
// its CA publishes the old and the new one together.
func Bundle(cas ...*identity.DevCA) *x509bundle.Bundle {
	certs := make([]*x509.Certificate, len(cas))
	for i, ca := range cas {
		certs[i] = ca.Cert
	}
	return x509bundle.FromX509Authorities(cas[0].TrustDomain, certs)
}

// Invitation is an invitation of ca's org, named name, to its node at addr, signed with svid
// (one of ca's, as a node of that org signs one), its bundle ca's alone, valid for an hour from
// now.
func Invitation(tb testing.TB, ca *identity.DevCA, svid *x509svid.SVID, name, addr string) []byte {
	tb.Helper()
	pemBundle, err := Bundle(ca).Marshal()
	if err != nil {
		tb.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	file, err := invite.Sign(invite.Invitation{Name: name, TrustDomain: ca.TrustDomain.Name(), Addresses: []string{addr},
		Bundle: string(pemBundle), IssuedAt: now, ExpiresAt: now.Add(time.Hour)}, svid)
	if err != nil {
		tb.Fatal(err)
	}
	return file
}

// WriteBundle writes the bundle of the CAs as PEM to path, replacing it atomically (a file
// source that reloads it never reads half a file).
func WriteBundle(tb testing.TB, path string, cas ...*identity.DevCA) {
	tb.Helper()
	var data []byte
	for _, ca := range cas {
		data = append(data, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})...)
	}
	WriteFile(tb, path, data)
}

// WriteFile replaces path with data atomically, creating its directory.
func WriteFile(tb testing.TB, path string, data []byte) {
	tb.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		tb.Fatal(err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		tb.Fatal(err)
	}
	if err := tmp.Close(); err != nil {
		tb.Fatal(err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		tb.Fatal(err)
	}
}

// Dial opens a gRPC connection to addr that presents svid and accepts only a replica of the
// server's trust domain, as `knooppunt --node host:port` does. bundles must hold that trust
// domain's bundle. The connection closes when the test ends.
func Dial(tb testing.TB, addr string, svid x509svid.Source, bundles x509bundle.Source, server spiffeid.TrustDomain) *grpc.ClientConn {
	tb.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(identity.ClientCredentials(svid, bundles, identity.AuthorizeReplica(server))))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	return conn
}

// Eventually polls cond every 10ms until it is true, and fails the test when within passes
// first. It never sleeps longer than it must.
func Eventually(tb testing.TB, within time.Duration, what string, cond func() bool) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			tb.Fatalf("identitytest: not within %s: %s", within, what)
		case <-t.C:
		}
	}
}

// Source is an identity.Source of one trust domain whose SVID a test replaces with Set, as an
// agent renews it.
type Source struct {
	svid   atomic.Pointer[x509svid.SVID]
	bundle *x509bundle.Bundle
}

// NewSource gives svid, and bundle for its trust domain.
func NewSource(svid *x509svid.SVID, bundle *x509bundle.Bundle) *Source {
	s := &Source{bundle: bundle}
	s.svid.Store(svid)
	return s
}

// Set gives svid from now on.
func (s *Source) Set(svid *x509svid.SVID) { s.svid.Store(svid) }

// GetX509SVID implements x509svid.Source.
func (s *Source) GetX509SVID() (*x509svid.SVID, error) { return s.svid.Load(), nil }

// GetX509BundleForTrustDomain implements x509bundle.Source.
func (s *Source) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	if td != s.bundle.TrustDomain() {
		return nil, fmt.Errorf("identitytest: no bundle for trust domain %q", td)
	}
	return s.bundle, nil
}

// Close implements identity.Source.
func (s *Source) Close() error { return nil }

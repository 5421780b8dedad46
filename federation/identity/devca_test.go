package identity_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/knooppunt/knooppunt/federation/identity"
	"github.com/knooppunt/knooppunt/federation/identity/identitytest"
)

const orgTD = "vr-utrecht.crisis.test"

// TestIssueFollowsX509SVIDSpec checks an issued SVID against the X.509-SVID specification
// (https://github.com/spiffe/spiffe/blob/main/standards/X509-SVID.md): exactly one URI SAN that
// is the SPIFFE ID, a leaf (basic constraints present, CA false), digitalSignature and no
// keyCertSign or cRLSign, and, for Knooppunt, an ECDSA P-256 key. The files `ca issue` writes
// must load with go-spiffe and verify against the CA directory's bundle.
func TestIssueFollowsX509SVIDSpec(t *testing.T) {
	dir := t.TempDir()
	td := spiffeid.RequireTrustDomainFromString(orgTD)
	ca, err := identity.InitCA(td, filepath.Join(dir, "ca"), 0)
	if err != nil {
		t.Fatal(err)
	}
	id := spiffeid.RequireFromPath(td, "/node/r1")
	prefix := filepath.Join(dir, "certs", "r1")
	if err := ca.IssueFiles(id, prefix, identity.SVIDOptions{TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	svid, err := x509svid.Load(prefix+".crt", prefix+".key")
	if err != nil {
		t.Fatalf("x509svid.Load: %v", err)
	}
	if svid.ID != id {
		t.Errorf("SVID ID = %s, want %s", svid.ID, id)
	}
	if len(svid.Certificates) != 1 {
		t.Fatalf("chain has %d certificates, want the leaf alone", len(svid.Certificates))
	}
	leaf := svid.Certificates[0]
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != id.String() {
		t.Errorf("URI SANs = %v, want exactly [%s]", leaf.URIs, id)
	}
	if len(leaf.DNSNames)+len(leaf.IPAddresses)+len(leaf.EmailAddresses) != 0 {
		t.Errorf("other SANs: DNS %v, IP %v, email %v", leaf.DNSNames, leaf.IPAddresses, leaf.EmailAddresses)
	}
	if !leaf.BasicConstraintsValid || leaf.IsCA {
		t.Errorf("basic constraints valid=%v CA=%v, want a leaf (valid, not a CA)", leaf.BasicConstraintsValid, leaf.IsCA)
	}
	if leaf.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Errorf("key usage = %b, want digitalSignature alone (%b)", leaf.KeyUsage, x509.KeyUsageDigitalSignature)
	}
	if leaf.KeyUsage&(x509.KeyUsageCertSign|x509.KeyUsageCRLSign) != 0 {
		t.Error("a leaf SVID may not sign certificates or CRLs")
	}
	if want := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}; !slices.Equal(leaf.ExtKeyUsage, want) {
		t.Errorf("extended key usage = %v, want server and client auth", leaf.ExtKeyUsage)
	}
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Errorf("public key %T, want ECDSA P-256", leaf.PublicKey)
	}
	if leaf.SignatureAlgorithm != x509.ECDSAWithSHA256 {
		t.Errorf("signature algorithm %s, want ECDSA-SHA256", leaf.SignatureAlgorithm)
	}
	if got := leaf.NotAfter.Sub(leaf.NotBefore); got != time.Hour {
		t.Errorf("validity %s, want the TTL of 1h", got)
	}
	if !bytes.Equal(leaf.AuthorityKeyId, ca.Cert.SubjectKeyId) {
		t.Error("the SVID's authority key ID is not the CA's subject key ID")
	}
	wantMode(t, prefix+".key", 0o600)

	bundle, err := x509bundle.Load(td, filepath.Join(dir, "ca", identity.BundleFile))
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := x509svid.Verify(svid.Certificates, bundle)
	if err != nil || got != id {
		t.Fatalf("x509svid.Verify against bundle.pem = %s, %v; want %s", got, err, id)
	}
}

// TestCAIsASigningCA checks the CA certificate: a CA for its trust domain's ID, that may sign
// certificates, that LoadCA reads back as written, with its key readable by the owner alone.
func TestCAIsASigningCA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	td := spiffeid.RequireTrustDomainFromString(orgTD)
	ca, err := identity.InitCA(td, dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	c := ca.Cert
	if !c.IsCA || !c.BasicConstraintsValid || c.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("CA=%v basic constraints valid=%v key usage=%b: not a signing CA", c.IsCA, c.BasicConstraintsValid, c.KeyUsage)
	}
	if len(c.URIs) != 1 || c.URIs[0].String() != "spiffe://"+orgTD {
		t.Errorf("CA URI SANs = %v, want [spiffe://%s]", c.URIs, orgTD)
	}
	wantMode(t, filepath.Join(dir, "ca.key"), 0o600)
	loaded, err := identity.LoadCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.TrustDomain != td || !loaded.Cert.Equal(ca.Cert) {
		t.Errorf("LoadCA = %s %s, want what InitCA wrote", loaded.TrustDomain, loaded.Cert.SerialNumber)
	}
	// The loaded key signs SVIDs that the bundle verifies.
	svid := identitytest.SVID(t, loaded, "/user/anna", identity.SVIDOptions{})
	if _, _, err := x509svid.Verify(svid.Certificates, identitytest.Bundle(ca)); err != nil {
		t.Errorf("an SVID from the loaded CA does not verify: %v", err)
	}
}

// TestInitCARefusesToOverwrite: a second `ca init` on the same directory would orphan every SVID
// the first CA issued, so it is refused and the first CA's files stay as they were.
func TestInitCARefusesToOverwrite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	td := spiffeid.RequireTrustDomainFromString(orgTD)
	if _, err := identity.InitCA(td, dir, 0); err != nil {
		t.Fatal(err)
	}
	before := map[string][]byte{}
	for _, f := range []string{"ca.crt", "ca.key", identity.BundleFile} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		before[f] = b
	}
	other := spiffeid.RequireTrustDomainFromString("ncc.crisis.test")
	_, err := identity.InitCA(other, dir, 0)
	want := "identity: " + dir + " already holds a CA: use another --dir, or remove it first"
	if err == nil || err.Error() != want {
		t.Fatalf("second InitCA: %v\nwant: %s", err, want)
	}
	for f, b := range before {
		got, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil || !bytes.Equal(got, b) {
			t.Errorf("%s changed after a refused InitCA (%v)", f, err)
		}
	}
}

func TestLoadCAWithoutCA(t *testing.T) {
	dir := t.TempDir()
	_, err := identity.LoadCA(dir)
	want := "identity: " + dir + " holds no CA (run knooppunt ca init): "
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("LoadCA of an empty dir: %v\nwant: %s...", err, want)
	}
}

func TestIssueRefusesIDsItMayNotCertify(t *testing.T) {
	ca := identitytest.NewCA(t, orgTD)
	for _, tc := range []struct {
		id   spiffeid.ID
		want string
	}{
		{spiffeid.RequireFromString("spiffe://ncc.crisis.test/node/r1"),
			"identity: spiffe://ncc.crisis.test/node/r1 is not in the CA's trust domain vr-utrecht.crisis.test"},
		{spiffeid.RequireFromString("spiffe://" + orgTD),
			"identity: spiffe://vr-utrecht.crisis.test has no path: an SVID names a workload, such as spiffe://vr-utrecht.crisis.test/node/r1"},
	} {
		_, _, err := ca.Issue(tc.id, identity.SVIDOptions{})
		if err == nil || err.Error() != tc.want {
			t.Errorf("Issue(%s): %v\nwant: %s", tc.id, err, tc.want)
		}
	}
}

// TestIssueValidity: NotBefore and TTL place the validity window, which the expired and
// not-yet-valid handshake tests rely on.
func TestIssueValidity(t *testing.T) {
	ca := identitytest.NewCA(t, orgTD)
	start := time.Now().Add(time.Hour).Truncate(time.Second)
	svid := identitytest.SVID(t, ca, "/user/later", identity.SVIDOptions{NotBefore: start, TTL: time.Minute})
	c := svid.Certificates[0]
	if !c.NotBefore.Equal(start) || !c.NotAfter.Equal(start.Add(time.Minute)) {
		t.Errorf("validity %s..%s, want %s..%s", c.NotBefore, c.NotAfter, start, start.Add(time.Minute))
	}
	def := identitytest.SVID(t, ca, "/user/now", identity.SVIDOptions{})
	if d := def.Certificates[0].NotAfter.Sub(def.Certificates[0].NotBefore); d != identity.DefaultSVIDTTL {
		t.Errorf("default validity %s, want %s", d, identity.DefaultSVIDTTL)
	}
	if time.Since(def.Certificates[0].NotBefore) < 0 {
		t.Error("a default SVID is not valid yet")
	}
}

func wantMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != want {
		t.Errorf("%s: mode %v, want %v", filepath.Base(path), fi.Mode().Perm(), want)
	}
}

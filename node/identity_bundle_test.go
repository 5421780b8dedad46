package node

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/knooppunt/knooppunt/federation/identity"
	"github.com/knooppunt/knooppunt/federation/identity/identitytest"
	"github.com/knooppunt/knooppunt/node/config"
)

// TestPeerBundleFileOfAnotherTrustDomain: a peer's bundle_file that holds the CA of another trust
// domain is refused, naming the peer, the file and both trust domains; it was taken in, and every
// call to the peer failed later with "x509: certificate signed by unknown authority" (review O,
// O9). The peer's own CA is taken, and so is a CA that names no SPIFFE ID (SPIRE's upstream CAs
// may name none).
func TestPeerBundleFileOfAnotherTrustDomain(t *testing.T) {
	own := identitytest.NewCA(t, "vrbn.crisis.test")
	lcvs := identitytest.NewCA(t, "lcvs.crisis.test")
	utrecht := identitytest.NewCA(t, "vr-utrecht.crisis.test")
	dir := t.TempDir()
	wrong, right, plain := filepath.Join(dir, "utrecht.pem"), filepath.Join(dir, "lcvs.pem"), filepath.Join(dir, "plain.pem")
	identitytest.WriteBundle(t, wrong, utrecht)
	identitytest.WriteBundle(t, right, lcvs)
	// lcvs's CA again, without its SPIFFE ID.
	tmpl := *lcvs.Cert
	tmpl.URIs = nil
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, &tmpl, lcvs.Key.Public(), lcvs.Key)
	if err != nil {
		t.Fatal(err)
	}
	identitytest.WriteFile(t, plain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))

	parts := func() *identityParts {
		src := identitytest.NewSource(identitytest.SVID(t, own, "/node/r1", identity.SVIDOptions{}), identitytest.Bundle(own))
		return &identityParts{trust: identity.NewTrustStore(src), log: slog.New(slog.DiscardHandler), watchers: map[string]peerWatch{}}
	}
	peer := func(file string) []config.Peer {
		return []config.Peer{{Name: "lcvs", TrustDomain: "lcvs.crisis.test", BundleFile: file}}
	}
	err = parts().setPeers(peer(wrong))
	want := "node: bundle_file of peer lcvs (" + wrong + ") holds the CA of vr-utrecht.crisis.test, not of lcvs.crisis.test: is it the right file? Give the bundle that lcvs handed over at onboarding"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("bundle_file with vr-utrecht's CA: %v\nwant an error beginning %s", err, want)
	}
	for _, file := range []string{right, plain} {
		if err := parts().setPeers(peer(file)); err != nil {
			t.Errorf("bundle_file %s: %v, want it taken", filepath.Base(file), err)
		}
	}
}

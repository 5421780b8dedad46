package identity_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"

	"github.com/knooppunt/knooppunt/federation/identity"
)

// TestDevJWTKey: a minted JWT-SVID verifies with go-spiffe against the JWT bundle the key wrote,
// for its audience only; the key is made once and read back after.
func TestDevJWTKey(t *testing.T) {
	dir := t.TempDir()
	td := spiffeid.RequireTrustDomainFromString("vr-utrecht.crisis.test")
	k, created, err := identity.LoadOrCreateJWTKey(dir, td)
	if err != nil || !created {
		t.Fatalf("LoadOrCreateJWTKey: created %v, %v", created, err)
	}
	again, created, err := identity.LoadOrCreateJWTKey(dir, td)
	if err != nil || created || again.KeyID != k.KeyID {
		t.Fatalf("second LoadOrCreateJWTKey: created %v, key id %q (want %q), %v", created, again.KeyID, k.KeyID, err)
	}
	b, err := spiffebundle.Load(td, filepath.Join(dir, identity.JWTBundleFile))
	if err != nil {
		t.Fatal(err)
	}
	jb, _ := b.GetJWTBundleForTrustDomain(td)
	id := spiffeid.RequireFromPath(td, "/user/erik")
	tok, err := again.Mint(id, []string{"spiffe://vr-utrecht.crisis.test/node/r1"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	svid, err := jwtsvid.ParseAndValidate(tok, jb, []string{"spiffe://vr-utrecht.crisis.test/node/r1"})
	if err != nil || svid.ID != id {
		t.Fatalf("ParseAndValidate: %v, %v", svid, err)
	}
	if _, err := jwtsvid.ParseAndValidate(tok, jb, []string{"spiffe://vr-utrecht.crisis.test/node/r2"}); err == nil || !strings.Contains(err.Error(), "audience") {
		t.Fatalf("another audience: %v, want an audience error", err)
	}
	if _, err := k.Mint(spiffeid.RequireFromString("spiffe://ncc.crisis.test/user/x"), []string{"a"}, time.Minute); err == nil {
		t.Fatal("minted a token for another trust domain")
	}
}

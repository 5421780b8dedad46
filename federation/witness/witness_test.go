package witness_test

import (
	"bytes"
	"crypto/sha256"
	"strings"
	"testing"
	"time"

	"github.com/knooppunt/knooppunt/federation/identity"
	"github.com/knooppunt/knooppunt/federation/identity/identitytest"
	"github.com/knooppunt/knooppunt/federation/witness"
)

// TestVerifyBoundsTheChain: a head whose certificate chain is padded past witness.MaxChainBytes
// is refused, where a real SVID's chain verifies: every head is kept with its chain, and a peer
// padded each with megabytes (review D, F1).
func TestVerifyBoundsTheChain(t *testing.T) {
	ca := identitytest.NewCA(t, "ncc.crisis.test")
	svid := identitytest.SVID(t, ca, "/node/r1", identity.SVIDOptions{})
	h, err := witness.Sign(svid, 7, bytes.Repeat([]byte{1}, sha256.Size), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := witness.Verify(h, ca.TrustDomain, identitytest.Bundle(ca)); err != nil {
		t.Fatalf("a head signed with a real SVID: %v", err)
	}
	h.Chain = append(h.Chain, bytes.Repeat([]byte{0x30}, witness.MaxChainBytes))
	if _, err := witness.Verify(h, ca.TrustDomain, identitytest.Bundle(ca)); err == nil || !strings.Contains(err.Error(), "over the 16384 a head may carry") {
		t.Fatalf("a head with a padded chain: %v, want it refused for its size", err)
	}
}

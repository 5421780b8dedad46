package identity_test

import (
	"testing"

	"github.com/knooppunt/knooppunt/federation/identity"
	"github.com/knooppunt/knooppunt/federation/identity/identitytest"
)

// TestSVIDMark: a mark says renewed once its source gives another SVID, and only then.
func TestSVIDMark(t *testing.T) {
	ca := identitytest.NewCA(t, "a.crisis.test")
	src := identitytest.NewSource(identitytest.SVID(t, ca, "/node/r1", identity.SVIDOptions{}), identitytest.Bundle(ca))
	m := identity.MarkSVID(src)
	if m.Renewed() {
		t.Fatal("renewed before the source gave another SVID")
	}
	src.Set(identitytest.SVID(t, ca, "/node/r1", identity.SVIDOptions{}))
	if !m.Renewed() {
		t.Error("not renewed after the source gave another SVID")
	}
	if identity.MarkSVID(src).Renewed() {
		t.Error("a mark of the new SVID is renewed")
	}
	src.Set(nil)
	if m.Renewed() {
		t.Error("renewed while the source gives no SVID")
	}
	if (identity.SVIDMark{}).Renewed() {
		t.Error("the zero mark is renewed")
	}
}

package peerclient

import (
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"

	"github.com/knooppunt/knooppunt/federation/identity"
	"github.com/knooppunt/knooppunt/federation/identity/identitytest"
	"github.com/knooppunt/knooppunt/node/config"
)

// TestConnAfterRenewal: once this node's SVID is renewed, Conn gives a new connection to the
// peer, and the old one stays open for the calls under way on it (connGrace).
func TestConnAfterRenewal(t *testing.T) {
	ca := identitytest.NewCA(t, "b.crisis.test")
	src := identitytest.NewSource(identitytest.SVID(t, ca, "/node/r1", identity.SVIDOptions{}), identitytest.Bundle(ca))
	m := New(Config{SVID: src, Bundles: identity.NewTrustStore(src)})
	p := config.Peer{Name: "a", TrustDomain: "a.crisis.test", Addresses: []string{"127.0.0.1:1"}}
	conn := func() *grpc.ClientConn {
		t.Helper()
		c, err := m.Conn(p)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	first := conn()
	if conn() != first {
		t.Fatal("a second call before any renewal dialled anew")
	}
	src.Set(identitytest.SVID(t, ca, "/node/r1", identity.SVIDOptions{}))
	renewed := conn()
	if renewed == first {
		t.Fatal("the connection made with the old SVID is still given after the renewal")
	}
	if conn() != renewed {
		t.Error("the connection made after the renewal was replaced again")
	}
	if !m.retired.Holds(first) || first.GetState() == connectivity.Shutdown {
		t.Errorf("the old connection: retired %v, state %v; want it retired and open", m.retired.Holds(first), first.GetState())
	}
	m.retired.CloseAll()
	if first.GetState() != connectivity.Shutdown {
		t.Error("a retired connection is open after CloseAll")
	}
}

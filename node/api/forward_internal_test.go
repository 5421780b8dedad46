package api

import (
	"testing"

	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/knooppunt/knooppunt/federation/identity"
	"github.com/knooppunt/knooppunt/federation/identity/identitytest"
)

// TestForwarderDialsAnewAfterRenewal: once the replica's SVID is renewed, a follower forwards on
// a new connection to the leader: the leader would close the old one when the old SVID ends,
// failing a write under way on it. The old one serves what is under way until retiredGrace,
// and Close closes it too.
func TestForwarderDialsAnewAfterRenewal(t *testing.T) {
	ca := identitytest.NewCA(t, "a.crisis.test")
	src := identitytest.NewSource(identitytest.SVID(t, ca, "/node/r2", identity.SVIDOptions{}), identitytest.Bundle(ca))
	f := &Forwarder{Creds: insecure.NewCredentials(), SVID: src}
	const leader = "127.0.0.1:1"
	first, err := f.conn(leader)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := f.conn(leader); again != first {
		t.Fatal("a second call before any renewal dialled anew")
	}
	src.Set(identitytest.SVID(t, ca, "/node/r2", identity.SVIDOptions{}))
	renewed, err := f.conn(leader)
	if err != nil {
		t.Fatal(err)
	}
	if renewed == first {
		t.Fatal("the connection made with the old SVID is still used after the renewal")
	}
	if first.GetState() == connectivity.Shutdown {
		t.Error("the old connection was closed at once, with what is under way on it")
	}
	f.Close()
	for name, c := range map[string]interface{ GetState() connectivity.State }{"old": first, "new": renewed} {
		if c.GetState() != connectivity.Shutdown {
			t.Errorf("the %s connection is open after Close", name)
		}
	}
}

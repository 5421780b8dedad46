package api

import (
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	grpchealth "google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

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

// TestCallsToAReplicaWaitForItToComeUp: a connection whose last attempt failed (this replica
// dialled the leader before it listened) fails a call at once, without sending it; a call to
// another replica waits for the connection's next attempt, which reaches the replica now up,
// instead of failing (a forwarded write, or a command such as a backup's audit entry, was lost
// so). One to a replica still down fails within replicaRedial.
func TestCallsToAReplicaWaitForItToComeUp(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	ca := identitytest.NewCA(t, "a.crisis.test")
	f := &Forwarder{Creds: insecure.NewCredentials(), SVID: identitytest.NewSource(identitytest.SVID(t, ca, "/node/r2", identity.SVIDOptions{}), identitytest.Bundle(ca))}
	defer f.Close()
	conn, err := f.conn(addr)
	if err != nil {
		t.Fatal(err)
	}
	health := healthpb.NewHealthClient(conn)
	start := time.Now()
	_, err = health.Check(t.Context(), &healthpb.HealthCheckRequest{})
	if !unconnected(err) {
		t.Fatalf("a call with nothing listening: %v, want a connection error", err)
	}
	if d := time.Since(start); d > replicaRedial+time.Second {
		t.Fatalf("a call with nothing listening failed after %s, want within about %s", d, replicaRedial)
	}

	// The replica comes up: the next call reaches it, although its connection was waiting.
	lis, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("the port was taken meanwhile: %v", err)
	}
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, grpchealth.NewServer())
	go srv.Serve(lis)
	defer srv.Stop()
	if _, err := health.Check(t.Context(), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("a call once the replica is up: %v (connection %s)", err, conn.GetState())
	}
}

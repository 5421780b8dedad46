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

// TestForwardWaitsForALeaderThatCameUp: a connection whose last attempt failed (this replica
// dialled the leader before it listened) fails a call at once, without sending it; the
// forwarder waits for the next attempt, which reaches the leader now up, instead of refusing the
// write. A leader still down is given up on within leaderRedial.
func TestForwardWaitsForALeaderThatCameUp(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), replicaReconnect)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	health := healthpb.NewHealthClient(conn)
	_, err = health.Check(t.Context(), &healthpb.HealthCheckRequest{})
	if !unconnected(err) {
		t.Fatalf("a call with nothing listening: %v, want a connection error", err)
	}
	start := time.Now()
	if awaitReady(t.Context(), conn, 300*time.Millisecond) {
		t.Fatal("awaitReady with nothing listening: true")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("awaitReady took %s to give up, want about 300ms", d)
	}

	// The leader comes up: the next attempt reaches it.
	lis, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("the port was taken meanwhile: %v", err)
	}
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, grpchealth.NewServer())
	go srv.Serve(lis)
	defer srv.Stop()
	_, err = health.Check(t.Context(), &healthpb.HealthCheckRequest{})
	if !unconnected(err) {
		t.Skipf("the connection tried again before the call (%v): nothing to wait for", err)
	}
	if !awaitReady(t.Context(), conn, leaderRedial) {
		t.Fatalf("not connected within %s of the leader coming up: %s", leaderRedial, conn.GetState())
	}
	if _, err := health.Check(t.Context(), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("a call once connected: %v", err)
	}
}

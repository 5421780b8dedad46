package api

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

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

// TestForwardOutcome: a forwarded call that failed UNAVAILABLE without the leader's own mark
// (AnsweredHeader) broke after it was sent, and may have been proposed: the follower answers
// ABORTED, never UNAVAILABLE, which tells a client that nothing was done. The leader's own
// answers, and a call grpc never sent, pass unchanged.
func TestForwardOutcome(t *testing.T) {
	marked := metadata.Pairs(AnsweredHeader, "r1")
	broken := status.Error(codes.Unavailable, "error reading from server: EOF")
	refused := status.Error(codes.Unavailable, "this replica is not the leader and cannot take writes now: retry shortly")
	neverSent := status.Error(codes.Unavailable, "connection error: desc = \"transport: Error while dialing\"")
	either := ReasonStatus(codes.Unavailable, ReasonNotLeaderEither, "this replica is not the leader either")
	invalid := Invalid("record.id", "missing")
	for _, tc := range []struct {
		name    string
		err     error
		trailer metadata.MD
		moved   bool
		want    codes.Code
		same    bool // the error passes unchanged
	}{
		{"answered", nil, marked, false, codes.OK, true},
		{"connection broke during the call", broken, nil, false, codes.Aborted, false},
		{"connection broke, leader moved", broken, nil, true, codes.Aborted, false},
		{"the leader's own UNAVAILABLE", refused, marked, false, codes.Unavailable, true},
		{"the leader's own UNAVAILABLE as another leads", refused, marked, true, codes.Unavailable, true},
		{"never sent", neverSent, nil, false, codes.Unavailable, true},
		{"a reason, from a release that did not mark", either, nil, true, codes.Unavailable, true},
		{"the leader's refusal of a field", invalid, marked, false, codes.InvalidArgument, true},
		{"cancelled as another leads", status.Error(codes.Canceled, "context canceled"), nil, true, codes.Aborted, false},
		{"an unmarked refusal that is not UNAVAILABLE", status.Error(codes.PermissionDenied, "no"), nil, false, codes.PermissionDenied, true},
	} {
		got := forwardOutcome("r1", true, tc.err, tc.trailer, tc.moved)
		if status.Code(got) != tc.want || (tc.same && !errors.Is(got, tc.err) && got != tc.err) {
			t.Errorf("%s: %v, want %s%s", tc.name, got, tc.want, map[bool]string{true: " (unchanged)"}[tc.same])
		}
	}
	// A read changed nothing, however it ended: sent again, never ABORTED.
	for _, moved := range []bool{false, true} {
		if got := forwardOutcome("r1", false, broken, nil, moved); status.Code(got) != codes.Unavailable {
			t.Errorf("a strong read whose connection broke (another leads: %v): %v, want UNAVAILABLE", moved, got)
		}
	}
}

// TestHandshakeRefused: the forwarder tells a leader it cannot reach because a TLS handshake
// failed over a certificate (a replica's SVID expired, or of a CA the other does not trust), for
// which no election comes, from one that is gone; both messages here are grpc's own, of a real
// handshake and a real refused dial (review AK, AK4). The follower is the one that refuses the
// leader's certificate: refused by the leader instead, TLS 1.3 lets the follower's first write
// fail with a broken pipe or its read with the leader's alert, by timing.
func TestHandshakeRefused(t *testing.T) {
	ca := identitytest.NewCA(t, "a.crisis.test")
	other := identitytest.NewCA(t, "a.crisis.test")
	// A leader whose SVID is of a CA the follower does not trust.
	leader := identitytest.NewSource(identitytest.SVID(t, other, "/node/r1", identity.SVIDOptions{}), identitytest.Bundle(ca))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(identity.ServerCredentials(leader, leader, slog.New(slog.DiscardHandler))))
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	follower := identitytest.NewSource(identitytest.SVID(t, ca, "/node/r2", identity.SVIDOptions{}), identitytest.Bundle(ca))
	call := func(addr string) string {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(identity.ClientCredentials(follower, follower, identity.AuthorizeReplica(ca.TrustDomain))))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		err = conn.Invoke(ctx, "/knooppunt.v1.RecordService/Put", &emptypb.Empty{}, &emptypb.Empty{})
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("a call to %s: %v, want UNAVAILABLE", addr, err)
		}
		return status.Convert(err).Message()
	}
	if msg := call(lis.Addr().String()); !handshakeRefused(msg) {
		t.Errorf("a refused certificate is not told as one: %q", msg)
	}
	gone, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := gone.Addr().String()
	gone.Close()
	if msg := call(addr); handshakeRefused(msg) {
		t.Errorf("a leader that is gone is told as a refused certificate: %q", msg)
	}
}

package api_test

import (
	"context"
	"net"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/knooppunt/knooppunt/node/api"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// replica answers policy steps if it leads, or refuses them naming the one it believes leads,
// as api.Forwarder does.
type replica struct {
	pb.UnimplementedPolicyServiceServer
	leader *atomic.Pointer[string] // nil: this replica leads
	calls  atomic.Int32
}

func (r *replica) Revoke(ctx context.Context, req *pb.PolicyStepRequest) (*pb.PolicyInfo, error) {
	r.calls.Add(1)
	if l := r.leader.Load(); l != nil {
		grpc.SetTrailer(ctx, metadata.Pairs(api.LeaderHeader, *l))
		return nil, status.Errorf(codes.FailedPrecondition, "this replica is not the leader: call %s", *l)
	}
	return &pb.PolicyInfo{Id: req.Id}, nil
}

func (r *replica) List(context.Context, *pb.ListPoliciesRequest) (*pb.ListPoliciesResponse, error) {
	r.calls.Add(1)
	return nil, status.Error(codes.FailedPrecondition, "not followed")
}

// serveReplicas starts n replicas on loopback and returns them with their addresses.
func serveReplicas(t *testing.T, n int) ([]*replica, []string) {
	rs := make([]*replica, n)
	addrs := make([]string, n)
	for i := range rs {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		rs[i] = &replica{leader: new(atomic.Pointer[string])}
		addrs[i] = lis.Addr().String()
		s := grpc.NewServer()
		pb.RegisterPolicyServiceServer(s, rs[i])
		go s.Serve(lis)
		t.Cleanup(s.Stop)
	}
	return rs, addrs
}

// TestFollowLeaderAcrossAChange: during a change of leader, the follower a step first reaches
// names a replica that has stepped down in the meantime, which names the new leader: the step
// follows both refusals and reaches it. A cycle of stale names ends with the refusal, after a
// bounded number of calls, and a method that is not a personal step is never followed.
func TestFollowLeaderAcrossAChange(t *testing.T) {
	rs, addrs := serveReplicas(t, 3)
	rs[0].leader.Store(&addrs[1])
	rs[1].leader.Store(&addrs[2]) // stepped down: r3 leads now
	conn, err := grpc.NewClient(addrs[0], grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithChainUnaryInterceptor(api.FollowLeader(insecure.NewCredentials())))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := pb.NewPolicyServiceClient(conn)
	got, err := client.Revoke(context.Background(), &pb.PolicyStepRequest{Id: "p@1"})
	if err != nil || got.Id != "p@1" {
		t.Fatalf("Revoke through two stale names: %v, %v; want the leader's answer", got, err)
	}
	for i, want := range []int32{1, 1, 1} {
		if n := rs[i].calls.Load(); n != want {
			t.Errorf("replica %d called %d times, want %d", i+1, n, want)
		}
	}

	// r1 and r2 name each other: the refusal comes back, after at most 1 + 3 calls.
	rs[1].leader.Store(&addrs[0])
	for _, r := range rs {
		r.calls.Store(0)
	}
	_, err = client.Revoke(context.Background(), &pb.PolicyStepRequest{Id: "p@1"})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("Revoke in a cycle of stale names: %v, want FAILED_PRECONDITION", err)
	}
	if n := rs[0].calls.Load() + rs[1].calls.Load(); n != 4 {
		t.Errorf("a cycle of stale names made %d calls, want 4 (the first and three follows)", n)
	}

	rs[0].calls.Store(0)
	rs[1].calls.Store(0)
	if _, err := client.List(context.Background(), &pb.ListPoliciesRequest{}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("List: %v", err)
	}
	if n := rs[0].calls.Load() + rs[1].calls.Load(); n != 1 {
		t.Errorf("List, not a personal step, made %d calls, want 1", n)
	}
}

package node_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/knooppunt/knooppunt/federation/identity"
	"github.com/knooppunt/knooppunt/federation/identity/identitytest"
	"github.com/knooppunt/knooppunt/node/clustertest"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestClusterPeerAcceptedOnEveryReplica: a peer accepted on a follower of a three-replica node
// (forwarded to the leader, applied through Raft) is trusted by every replica, with no config
// file edited and no restart: its node's calls pass the handshake and the authorizer on each.
// It stays so across a leader change and a restart of the old leader, and a remove on another
// follower makes every replica refuse it.
func TestClusterPeerAcceptedOnEveryReplica(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{})
	leader := c.Leader(t, 10*time.Second, c.Replicas...)
	follower := others(c, leader)[0]

	ncc := identitytest.NewCA(t, "ncc.crisis.test")
	nccSVID := identitytest.SVID(t, ncc, "/node/r1", identity.SVIDOptions{})
	file := identitytest.Invitation(t, ncc, nccSVID, "NCC", "127.0.0.1:1")
	own, err := x509bundle.Load(c.TD, c.BundleFile)
	if err != nil {
		t.Fatal(err)
	}
	// trusted reports whether NCC's node gets past the handshake and the authorizer of r.
	trusted := func(r *clustertest.Replica) (bool, string) {
		conn := identitytest.Dial(t, r.API, nccSVID, own, c.TD)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := pb.NewFederationServiceClient(conn).Describe(ctx, &pb.DescribeRequest{})
		return err == nil, r.ID + ": " + status.Convert(err).Message()
	}
	// A replica back from a stop is behind until its leader's replication tries it again, which
	// raft backs off to up to 10 s.
	everywhere := func(want bool, what string, rs ...*clustertest.Replica) {
		t.Helper()
		for _, r := range rs {
			clustertest.Eventually(t, 20*time.Second, what, func() (bool, string) {
				ok, detail := trusted(r)
				return ok == want, detail
			})
		}
	}
	everywhere(false, "NCC is refused before it is accepted", c.Replicas...)

	resp, err := pb.NewPeerServiceClient(follower.Local(t)).Accept(clustertest.Call(t), &pb.AcceptRequest{Invitation: file, Groups: []string{"rijk"}})
	if err != nil {
		t.Fatalf("accept on follower %s: %v", follower.ID, err)
	}
	if resp.Outcome != "added" || resp.Peer.Name != "ncc" || len(resp.Answer) == 0 {
		t.Fatalf("accept: %v", resp)
	}
	everywhere(true, "every replica trusts NCC", c.Replicas...)

	// A leader change: the survivors still trust NCC, and so does the old leader when it is back.
	leader.Stop(t)
	survivors := others(c, leader)
	next := c.Leader(t, 10*time.Second, survivors...)
	everywhere(true, "the survivors trust NCC", survivors...)
	leader.Start(t)
	c.Leader(t, 10*time.Second, c.Replicas...)
	everywhere(true, "the old leader, restarted, trusts NCC", leader)

	// Removed on a follower of the new leader: every replica refuses NCC.
	var other *clustertest.Replica
	for _, r := range c.Replicas {
		if r != next {
			other = r
		}
	}
	if _, err := pb.NewPeerServiceClient(other.Local(t)).Remove(clustertest.Call(t), &pb.RemovePeerRequest{Name: "ncc", Reason: "test"}); err != nil {
		t.Fatalf("remove on %s: %v", other.ID, err)
	}
	everywhere(false, "every replica refuses NCC after the remove", c.Replicas...)
	for _, r := range c.Replicas {
		list, err := pb.NewPeerServiceClient(r.Local(t)).List(clustertest.Call(t), &pb.ListPeersRequest{})
		if err != nil || len(list.Peers) != 0 {
			t.Fatalf("%s lists %v (%v) after the remove", r.ID, list, err)
		}
	}
	_, err = pb.NewPeerServiceClient(other.Local(t)).Remove(clustertest.Call(t), &pb.RemovePeerRequest{Name: "ncc", Reason: "test"})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("a second remove: %v, want NOT_FOUND", err)
	}
}

// TestPeerAcceptKeepsNameAndGroups: a partner's new invitation (new addresses) accepted without
// --name or --groups updates the peer and keeps the name and groups this node gave it, which
// policies grant by; accepting an invitation again with other groups changes them, and with none
// and no_groups takes the peer out of every group.
func TestPeerAcceptKeepsNameAndGroups(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Replicas: 1})
	r := c.Leader(t, 10*time.Second, c.Replicas...)
	ncc := identitytest.NewCA(t, "ncc.crisis.test")
	nccSVID := identitytest.SVID(t, ncc, "/node/r1", identity.SVIDOptions{})
	invitation := func(addr string) []byte { return identitytest.Invitation(t, ncc, nccSVID, "NCC", addr) }
	peers := pb.NewPeerServiceClient(r.Local(t))
	accept := func(req *pb.AcceptRequest, outcome, name string, groups ...string) {
		t.Helper()
		resp, err := peers.Accept(clustertest.Call(t), req)
		if err != nil {
			t.Fatalf("accept %v: %v", req.Groups, err)
		}
		p := resp.Peer
		if resp.Outcome != outcome || p.Name != name || strings.Join(p.Groups, " ") != strings.Join(groups, " ") {
			t.Errorf("accept (groups %v, no_groups %v): %s, name %s, groups %v; want %s, %s, %v", req.Groups, req.NoGroups, resp.Outcome, p.Name, p.Groups, outcome, name, groups)
		}
		list, err := peers.List(clustertest.Call(t), &pb.ListPeersRequest{})
		if err != nil || len(list.Peers) != 1 || strings.Join(list.Peers[0].Groups, " ") != strings.Join(groups, " ") {
			t.Errorf("peer list after the accept: %v, %v; want groups %v", list, err, groups)
		}
	}
	first, second := invitation("127.0.0.1:1"), invitation("127.0.0.1:2")
	accept(&pb.AcceptRequest{Invitation: first, Name: "rijk-ncc", Groups: []string{"rijk"}}, "added", "rijk-ncc", "rijk")
	accept(&pb.AcceptRequest{Invitation: second}, "updated", "rijk-ncc", "rijk")
	accept(&pb.AcceptRequest{Invitation: second}, "unchanged", "rijk-ncc", "rijk")
	accept(&pb.AcceptRequest{Invitation: second, Groups: []string{"rijk", "landelijk"}}, "updated", "rijk-ncc", "rijk", "landelijk")
	accept(&pb.AcceptRequest{Invitation: second, NoGroups: true}, "updated", "rijk-ncc")
	_, err := peers.Accept(clustertest.Call(t), &pb.AcceptRequest{Invitation: second, NoGroups: true, Groups: []string{"rijk"}})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "no_groups") {
		t.Errorf("no_groups with groups: %v, want InvalidArgument naming no_groups", err)
	}
}

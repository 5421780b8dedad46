package main

import (
	"strings"
	"testing"
	"time"

	"github.com/knooppunt/knooppunt/node"
	"github.com/knooppunt/knooppunt/node/clustertest"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestStatusSaysWhetherTheReplicaIsAMember: status of a replica removed from its group says it
// is not a member, from the status service itself (which every role may read, where cluster
// status is for admins), not NO LEADER; a replica of a group that lost its majority still says
// NO LEADER, and how long it has been without one.
func TestStatusSaysWhetherTheReplicaIsAMember(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{})
	leader := c.Leader(t, 10*time.Second, c.Replicas...)
	var followers []*clustertest.Replica
	for _, r := range c.Replicas {
		if r != leader {
			followers = append(followers, r)
		}
	}
	removed, other := followers[0], followers[1]
	type statusDoc struct {
		RaftState    string     `json:"raft_state"`
		Leader       string     `json:"leader"`
		NotMember    bool       `json:"not_member"`
		LeaderSeenAt *time.Time `json:"leader_seen_at"`
	}
	status := func(r *clustertest.Replica) (string, statusDoc) {
		t.Helper()
		sock := "unix://" + r.SocketPath()
		var doc statusDoc
		cli(t, nil, "", "status", "--node", sock, "-o", "json").want(t, 0).oneJSON(t, &doc)
		return cli(t, nil, "", "status", "--node", sock).want(t, 0).stdout, doc
	}
	if out, doc := status(other); doc.NotMember || doc.LeaderSeenAt == nil || time.Since(*doc.LeaderSeenAt) > time.Minute || strings.Contains(out, "NO LEADER") {
		t.Fatalf("status of a follower with a leader: %+v\n%s", doc, out)
	}

	if _, err := pb.NewClusterServiceClient(leader.Local(t)).Remove(clustertest.Call(t), &pb.RemoveRequest{Id: removed.ID}); err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, 10*time.Second, removed.ID+" knows it is removed", func() (bool, string) {
		st, err := pb.NewStatusServiceClient(removed.Local(t)).Status(clustertest.Call(t), &pb.StatusRequest{})
		if err != nil {
			return false, err.Error()
		}
		return st.NotMember, st.RaftState
	})
	// Raft stops a removed replica that is up; started again, it is one outside its group's
	// configuration, as one waiting to be joined is.
	removed.Stop(t)
	removed.Start(t)
	out, doc := status(removed)
	if !doc.NotMember || doc.LeaderSeenAt != nil || !strings.Contains(out, node.NotMember) || strings.Contains(out, "NO LEADER") {
		t.Errorf("status of a removed replica: %+v\n%s", doc, out)
	}

	other.Stop(t) // the leader is one of a group of two
	clustertest.Eventually(t, 10*time.Second, leader.ID+" loses its leadership", func() (bool, string) {
		return leader.Node.Store().Leader() == "", leader.Node.Store().State()
	})
	out, doc = status(leader)
	if doc.NotMember || doc.Leader != "" || doc.LeaderSeenAt == nil || !strings.Contains(out, "NO LEADER, none for ") || strings.Contains(out, node.NotMember) {
		t.Errorf("status of a replica of a group without a majority: %+v\n%s", doc, out)
	}
}

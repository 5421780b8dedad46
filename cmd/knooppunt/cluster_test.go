package main

import (
	"strings"
	"testing"

	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestClusterTextsAfterARemoval: a leader that removed itself answers from outside the group:
// the remove command says so instead of a table with no leader; a follower that knows no leader
// does not send the operator to ask nobody; a removed replica's status says it was removed, not that
// it reaches no majority.
func TestClusterTextsAfterARemoval(t *testing.T) {
	removed := &pb.ClusterStatusResponse{Replica: "r3", State: "Shutdown", Replicas: []*pb.Replica{{Id: "r1"}, {Id: "r2"}, {Id: "r3"}}}
	var b strings.Builder
	if err := printRemoved(&b, "", "r3", removed); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.String(), "r3 led the group and is out of it now: the others elect a new leader") {
		t.Errorf("removing the leader printed:\n%s", b.String())
	}
	b.Reset()
	follower := &pb.ClusterStatusResponse{Replica: "r2", State: "Follower", Replicas: removed.Replicas}
	if err := printRemoved(&b, "", "r3", follower); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "Only the leader knows which replicas it reaches: no replica leads just now: ask again in a moment.") {
		t.Errorf("a follower's answer without a leader:\n%s", b.String())
	}
	if line := raftLine(&pb.StatusResponse{RaftState: "Shutdown", AppliedIndex: 55}); !strings.Contains(line, "this replica is out of its group, removed with cluster remove") || strings.Contains(line, "majority") {
		t.Errorf("status of a removed replica: %s", line)
	}
}

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/knooppunt/knooppunt/policy"
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
	if line := raftLine(&pb.StatusResponse{RaftState: "Shutdown", AppliedIndex: 55}, time.Now()); !strings.Contains(line, "this replica is out of its group, removed with cluster remove") || strings.Contains(line, "majority") {
		t.Errorf("status of a removed replica: %s", line)
	}
}

// TestPolicyLintJSON: policy lint -o json gives a pipeline every problem with its place, and
// exits 1 as the text form does; a good document is ok with empty lists.
func TestPolicyLintJSON(t *testing.T) {
	dir := t.TempDir()
	bad, good := filepath.Join(dir, "bad.yaml"), filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(bad, []byte("name: p\npurpose: x\nrecipents: [spiffe://ncc.crisis.test]\nkinds: [sitrep]\nmax_classification: geheimpje\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(good, []byte("name: p\npurpose: x\nrecipients: [spiffe://ncc.crisis.test]\nkinds: [sitrep]\nmax_classification: internal\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	type doc struct {
		File     string           `json:"file"`
		OK       bool             `json:"ok"`
		Problems []policy.Problem `json:"problems"`
		Warnings []policy.Problem `json:"warnings"`
	}
	var got doc
	cli(t, nil, "", "policy", "lint", bad, "-o", "json").want(t, 1).oneJSON(t, &got)
	if got.File != bad || got.OK || len(got.Problems) != 2 || got.Problems[0].Line != 3 || got.Problems[1].Field != "max_classification" || got.Warnings == nil {
		t.Errorf("lint -o json of a bad policy: %+v", got)
	}
	got = doc{}
	cli(t, nil, "", "policy", "lint", good, "-o", "json").want(t, 0).oneJSON(t, &got)
	if !got.OK || got.Problems == nil || len(got.Problems) != 0 {
		t.Errorf("lint -o json of a good policy: %+v", got)
	}
}

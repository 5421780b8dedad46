package peers_test

import (
	"slices"
	"testing"

	"github.com/knooppunt/knooppunt/node/api/peers"
	"github.com/knooppunt/knooppunt/node/config"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestMerge: accepted peers join the config file's, unless the file lists their trust domain or
// name, or they name the node's own org; the file's config is never changed.
func TestMerge(t *testing.T) {
	file := &config.Config{Org: "vrbn.crisis.test", Peers: []config.Peer{
		{Name: "ncc", TrustDomain: "ncc.crisis.test", Source: config.PeerFromConfig},
		{Name: "lcvs", TrustDomain: "lcvs.crisis.test", Source: config.PeerFromConfig},
	}}
	raft := []*pb.PeerInfo{
		{Name: "ncc2", TrustDomain: "ncc.crisis.test"},   // the file's trust domain
		{Name: "lcvs", TrustDomain: "lcvs2.crisis.test"}, // the file's name
		{Name: "self", TrustDomain: "vrbn.crisis.test"},  // the node's own org
		{Name: "szw", TrustDomain: "szw.crisis.test", Groups: []string{"rijk"}, Bundle: []byte("PEM"), EndpointId: "spiffe://szw.crisis.test/node/r2"},
	}
	merged := peers.Merge(file, raft)
	var got []string
	for _, p := range merged.Peers {
		got = append(got, p.Name+"/"+p.Source)
	}
	if want := []string{"ncc/config", "lcvs/config", "szw/raft"}; !slices.Equal(got, want) {
		t.Fatalf("merged peers %v, want %v", got, want)
	}
	szw := merged.Peers[2]
	if szw.TrustDomain != "szw.crisis.test" || szw.Groups[0] != "rijk" || string(szw.Bundle) != "PEM" || szw.EndpointID != "spiffe://szw.crisis.test/node/r2" {
		t.Fatalf("the accepted peer as merged: %+v", szw)
	}
	if len(file.Peers) != 2 {
		t.Fatalf("Merge changed the file's config: %v", file.Peers)
	}
}

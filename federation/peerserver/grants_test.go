package peerserver

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/knooppunt/knooppunt/node/config"
	"github.com/knooppunt/knooppunt/node/db"
	"github.com/knooppunt/knooppunt/node/sharing"
	"github.com/knooppunt/knooppunt/policy"
)

// TestNoPeerIsGrantedNothing: a stream looks whether its peer is still one at each wake
// (stillPeer), and decides its batch a moment later; a peer removed from the running config in
// between is granted nothing, not the node's policies. The peer of the running config is
// decided on them.
func TestNoPeerIsGrantedNothing(t *testing.T) {
	d, err := db.Open(filepath.Join(t.TempDir(), "knooppunt.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	peers := []config.Peer{{Name: "b", TrustDomain: "b.crisis.test", Source: config.PeerFromConfig}}
	sh := sharing.New(d, "a.crisis.test", func() *config.Config { return &config.Config{Peers: peers} }, slog.New(slog.DiscardHandler))
	s := New(Config{DB: d, Sharing: sh})
	to := policy.Recipient{TrustDomain: "b.crisis.test", ID: "spiffe://b.crisis.test/node/r1", Name: "b"}
	node := &policy.Set{Policies: []*policy.Compiled{{}}}
	decide := func(context.Context) (*policy.Set, error) { return node, nil }

	if set, err := s.grants(context.Background(), to, decide); err != nil || set != node {
		t.Fatalf("grants for a peer: %v, %v; want the node's policies", set, err)
	}
	peers = nil
	if set, err := s.grants(context.Background(), to, decide); err != nil || len(set.Policies) != 0 {
		t.Fatalf("grants for a peer no longer in the running config: %v, %v; want none", set, err)
	}
}

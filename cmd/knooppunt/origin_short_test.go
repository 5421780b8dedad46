package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/knooppunt/knooppunt/node"
	"github.com/knooppunt/knooppunt/node/proctest"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestSearchOriginOwnShortName: a node whose name is for people ("NCC (JenV)", as in the demo)
// takes --origin ncc, the first label of its trust domain, as its partners name it, for its own
// records; a search of them alone prints no peer table, as it asked no peer.
func TestSearchOriginOwnShortName(t *testing.T) {
	dir := shortDir(t)
	cfg := filepath.Join(dir, "node.yaml")
	if err := os.WriteFile(cfg, []byte("name: \"NCC (JenV)\"\norg: ncc.crisis.test\nraft:\n  election_timeout: 100ms\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "data", node.SocketName)
	waitServing(t, proctest.Start(t, nil, "serve", "--data-dir", filepath.Join(dir, "data"), "--config", cfg, "--log-level", "warn"), sock)
	addr := "unix://" + sock
	cli(t, nil, "", "record", "put", "--node", addr, "--kind", "sitrep", "--crisis", "oekraine", "--region", "NL", "--classification", "public",
		"--id", "sitrep-ncc-1", "--body", `{"title":"Landelijk beeld opvang Oekraïne","summary":"Instroom stabiel.","severity":"medium"}`).want(t, 0)
	for _, origin := range []string{"ncc", "ncc.crisis.test", "NCC (JenV)"} {
		r := cli(t, nil, "", "search", "--node", addr, "--origin", origin, "--id", "sitrep-ncc-1").want(t, 0)
		if !strings.Contains(lineWith(r.stdout, "sitrep-ncc-1"), "Landelijk beeld opvang") || strings.Contains(r.stdout, "PEER") {
			t.Errorf("search --origin %q: stdout\n%s\nwant the record and no peer table; stderr %q", origin, r.stdout, r.stderr)
		}
	}
	// Named twice, once by its short name.
	r := cli(t, nil, "", "search", "--node", addr, "--origin", "ncc.crisis.test", "--origin", "ncc").want(t, 1)
	if want := `knooppunt: --origin: "ncc" is this node (ncc.crisis.test), named already`; !strings.HasPrefix(r.stderr, want) {
		t.Errorf("search --origin ncc.crisis.test --origin ncc: stderr %q, want %q…", r.stderr, want)
	}
	// Another label of its trust domain is no name of it.
	if r := cli(t, nil, "", "search", "--node", addr, "--origin", "crisis").want(t, 1); !strings.Contains(r.stderr, `"crisis" is neither this node's org`) {
		t.Errorf("search --origin crisis: stderr %q", r.stderr)
	}
}

// TestPrintSearchWithoutPeers: a search that asked no peer (--origin naming this node alone)
// prints no peer table; one that asked a peer does.
func TestPrintSearchWithoutPeers(t *testing.T) {
	resp := &pb.SearchResponse{Hits: []*pb.SearchHit{{Record: &pb.Record{Id: "sitrep-ncc-1", Origin: "ncc.crisis.test", Kind: "sitrep", Region: "NL", Body: []byte(`{"title":"Landelijk beeld"}`)}}}}
	var b strings.Builder
	if err := printSearch(&b, "table", resp, nil); err != nil {
		t.Fatal(err)
	}
	if out := b.String(); strings.Contains(out, "PEER") || !strings.Contains(out, "sitrep-ncc-1") {
		t.Errorf("a search of this node alone:\n%s", out)
	}
	resp.Peers = []*pb.PeerStatus{{Peer: "lcvs", TrustDomain: "lcvs.crisis.test", State: "answered"}}
	b.Reset()
	if err := printSearch(&b, "table", resp, nil); err != nil {
		t.Fatal(err)
	}
	if out := b.String(); !strings.Contains(lineWith(out, "PEER"), "STATE") || !strings.Contains(lineWith(out, "lcvs"), "answered") {
		t.Errorf("a search that asked lcvs:\n%s", out)
	}
}

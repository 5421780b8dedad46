package search_test

import (
	"slices"
	"testing"

	"github.com/knooppunt/knooppunt/federation/search"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestCut: the sources that gave as many hits as the limit, the node's own first, then the peers
// in the answer's order; a source below the limit, or one that answered nothing, is not named.
func TestCut(t *testing.T) {
	hits := func(source string, n int) []*pb.SearchHit {
		out := make([]*pb.SearchHit, n)
		for i := range out {
			out[i] = &pb.SearchHit{Source: source, Record: &pb.Record{}}
		}
		return out
	}
	resp := &pb.SearchResponse{Peers: []*pb.PeerStatus{{Peer: "coa"}, {Peer: "lcvs"}, {Peer: "ncc"}, {Peer: "szw"}}}
	resp.Hits = slices.Concat(hits("", 3), hits("lcvs", 2), hits("coa", 3), hits("ncc", 3), hits("lcvs", 1))
	if got, want := search.Cut(resp, 3), []string{"", "coa", "lcvs", "ncc"}; !slices.Equal(got, want) {
		t.Errorf("Cut at 3 = %q, want %q", got, want)
	}
	if got := search.Cut(resp, 4); len(got) != 0 {
		t.Errorf("Cut at 4 = %q, want none", got)
	}
	resp.Hits = hits("ncc", 3)
	if got, want := search.Cut(resp, 3), []string{"ncc"}; !slices.Equal(got, want) {
		t.Errorf("Cut with the node silent = %q, want %q", got, want)
	}
}

package search

import (
	"slices"
	"strings"
	"testing"

	"github.com/knooppunt/knooppunt/node/record"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestBestFirst: the hits of a search, the first of every source first, then the second,
// sources own first and then by name, whatever order they answered in; documents in force
// before superseded, expired and not yet valid ones.
func TestBestFirst(t *testing.T) {
	hit := func(source, id, validity string) *pb.SearchHit {
		return &pb.SearchHit{Source: source, Record: &pb.Record{Id: id}, Validity: validity}
	}
	hits := []*pb.SearchHit{hit("ncc", "n1", ""), hit("", "o1", record.Superseded), hit("", "o2", ""), hit("", "o3", ""),
		hit("lcvs", "l1", ""), hit("lcvs", "l2", record.Expired), hit("lcvs", "l3", "")}
	// The same hits as sources answered in another order: each source's own order is its rank.
	again := []*pb.SearchHit{hits[4], hits[1], hits[0], hits[5], hits[2], hits[3], hits[6]}
	const want = "o2 l1 n1 o3 l3 o1 l2"
	for _, hs := range [][]*pb.SearchHit{hits, again} {
		var got []string
		for _, h := range bestFirst(hs, nil) {
			got = append(got, h.Record.Id)
		}
		if strings.Join(got, " ") != want {
			t.Errorf("bestFirst = %s, want %s", strings.Join(got, " "), want)
		}
	}
}

// TestBestFirstTitlesFirst: with text, the hits that hold the words in their title come first,
// each tier the first of every source first; documents not in force stay last (review P, P6: a
// title match at one partner ranked below another's match in part of a word).
func TestBestFirstTitlesFirst(t *testing.T) {
	hit := func(source, id, validity string) *pb.SearchHit {
		return &pb.SearchHit{Source: source, Record: &pb.Record{Id: id}, Validity: validity}
	}
	hits := []*pb.SearchHit{hit("", "o1", ""), hit("", "o2-title", ""), hit("ncc", "n1-title", ""), hit("lcvs", "l1", ""),
		hit("lcvs", "l2-title", record.Superseded), hit("ncc", "n2", "")}
	titled := func(h *pb.SearchHit) int {
		if strings.HasSuffix(h.Record.Id, "-title") {
			return 0
		}
		return 1
	}
	var got []string
	for _, h := range bestFirst(hits, titled) {
		got = append(got, h.Record.Id)
	}
	if want := "o2-title n1-title o1 l1 n2 l2-title"; strings.Join(got, " ") != want {
		t.Errorf("bestFirst = %s, want %s", strings.Join(got, " "), want)
	}
}

// TestSourcesOfTheCrisis: a picture's sources are every source with a record of the crisis, one
// whose records another's newer ones outrank too, and not a source of the alerts of every crisis
// alone, which are in each crisis's picture, a misspelt one's too (review J, F1; review K).
func TestSourcesOfTheCrisis(t *testing.T) {
	rec := func(crisis string) *pb.Record { return &pb.Record{Crisis: crisis} }
	items := []Item{
		{Record: rec("oekraine"), Source: "b.test"},
		{Record: rec("oekraine"), Source: "a.test"}, // outranked in its slot by b's: still a source
		{Record: rec("oekraine"), Source: "a.test"},
		{Record: rec("all"), Source: "c.test"},
	}
	if got := sourcesOf(items, "oekraine"); !slices.Equal(got, []string{"a.test", "b.test"}) {
		t.Errorf("sources of oekraine: %v, want a.test and b.test", got)
	}
	if got := sourcesOf(items, "oekrain"); len(got) != 0 {
		t.Errorf("sources of a misspelt crisis: %v, want none", got)
	}
}

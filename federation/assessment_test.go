package federation_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/knooppunt/knooppunt/federation/fedtest"
	"github.com/knooppunt/knooppunt/federation/search"
	"github.com/knooppunt/knooppunt/node/assessment"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestAssessmentAfterAPartnerWithdrew: b writes an assessment of a picture made of a's records,
// which c receives as well. At c, where policies show its own part of every source, a record
// that a deletes after the assessment was written leaves no newer update behind, yet the
// assessment counts a as changed; a deletion from before it does not. While a does not answer, c
// cannot tell whether a changed, and says so.
func TestAssessmentAfterAPartnerWithdrew(t *testing.T) {
	f := fedtest.Start(t, fedtest.Options{Orgs: 3})
	a, b, c := f.Orgs[0], f.Orgs[1], f.Orgs[2]
	const crisis = "duiding"
	a.Approve(t, policyDoc("sitreps-to-b-and-c", spiffeOf(b)+", "+spiffeOf(c), "sitrep", "internal", ""))
	b.Approve(t, policyDoc("assessment-to-c", spiffeOf(c), assessment.Kind, "internal", ""))
	for _, id := range []string{"x1", "x2", "x3"} {
		a.Put(t, fedtest.Sitrep(id, crisis, pb.Classification_INTERNAL, id))
	}
	a.Delete(t, "x3")
	for _, o := range []*fedtest.Org{b, c} {
		waitHeld(t, o, crisis, a.TD.Name(), map[string]int64{"x1": 1, "x2": 1}, o.Name+" holds x1 and x2 of a")
	}

	rec, err := assessment.New(b.Picture(t, crisis), "Twee meldingen", "Stabiel", "Afwachten")
	if err != nil {
		t.Fatal(err)
	}
	put := b.Put(t, rec)
	waitHeld(t, c, crisis, b.TD.Name(), map[string]int64{rec.Id: put.Version}, "c holds b's assessment")
	view := func(behind []string) *assessment.View {
		t.Helper()
		v, err := assessment.Current(c.Picture(t, crisis), c.TD.Name(), behind)
		if err != nil || v == nil {
			t.Fatalf("c's view of b's assessment: %v, %v", v, err)
		}
		return v
	}
	if v := view(nil); v.Changed || v.Exact {
		t.Fatalf("right after it was written, with x3 deleted before: %+v", v)
	}

	// a does not answer: c cannot tell whether it changed.
	a.Stop(t)
	fedtest.Eventually(t, 10*time.Second, "c's probe says a does not answer", func() (bool, string) {
		resp, _ := c.Search(t, &pb.SearchRequest{Filter: &pb.Filter{Crisis: crisis, Limit: 1}, TimeoutMs: 1000})
		behind := search.Behind(resp.Peers)
		return slices.Contains(behind, a.TD.Name()), "behind: " + strings.Join(behind, ", ")
	})
	resp, _ := c.Search(t, &pb.SearchRequest{Filter: &pb.Filter{Crisis: crisis, Limit: 1}, TimeoutMs: 1000})
	if v := view(search.Behind(resp.Peers)); v.Changed || !slices.Equal(v.CannotTell, []string{a.TD.Name()}) {
		t.Fatalf("a stopped: changed %v %v, cannot tell %v; want a as one of which it cannot be told", v.Changed, v.ChangedSources, v.CannotTell)
	}

	a.Start(t)
	a.Delete(t, "x2")
	waitHeld(t, c, crisis, a.TD.Name(), map[string]int64{"x1": 1}, "c no longer holds x2")
	v := view(nil)
	if !v.Changed || !slices.Equal(v.ChangedSources, []string{a.TD.Name()}) {
		t.Fatalf("a deleted x2 after the assessment: changed %v, sources %v; want a", v.Changed, v.ChangedSources)
	}
}

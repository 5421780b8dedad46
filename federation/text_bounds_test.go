package federation_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/knooppunt/knooppunt/federation/fedtest"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestTextSearchPastItsBudget: a text search that spends more than the node's budget on the
// index ends with what it found: a Search of the node's own records names the node in cut, and a
// peer's Query ends its stream, so that the asking node counts the source as answered with what
// came (review S, S1 and S2: one search walked the index for minutes).
func TestTextSearchPastItsBudget(t *testing.T) {
	f := fedtest.Start(t, fedtest.Options{Orgs: 2})
	a, b := f.Orgs[0], f.Orgs[1]
	a.Approve(t, policyDoc("qa-to-b", spiffeOf(b), "qa", "public", ""))
	rc := pb.NewRecordServiceClient(a.Local(t))
	var batch []*pb.Record
	for i := range 600 {
		batch = append(batch, &pb.Record{Id: fmt.Sprintf("q%03d", i), Kind: "qa", Crisis: "oekraine", Region: "NL", Classification: pb.Classification_PUBLIC,
			Body: fmt.Appendf(nil, `{"question":"Waar is opvang %d?","answer":"In de sporthal."}`, i)})
	}
	if _, err := rc.PutBatch(fedtest.Call(t), &pb.PutBatchRequest{Records: batch}); err != nil {
		t.Fatal(err)
	}
	a.TextIndexed(t)
	own := &pb.SearchRequest{Filter: &pb.Filter{Text: "opvang", Limit: 1000}, Origins: []string{a.TD.Name()}}
	if resp, _ := a.Search(t, own); len(resp.Hits) != 600 || len(resp.Cut) != 0 {
		t.Fatalf("within the budget: %d hits, cut %q; want 600 and none", len(resp.Hits), resp.Cut)
	}
	a.Node.DB().SetTextBudget(time.Nanosecond)
	if resp, _ := a.Search(t, own); len(resp.Hits) != 256 || !slices.Equal(resp.Cut, []string{""}) {
		t.Errorf("past the budget: %d hits, cut %q; want the first window's 256, and the node named in cut", len(resp.Hits), resp.Cut)
	}
	// b asks a: a's Query ends at a's budget with the first window, and b counts a as answered
	// with what came, holding more.
	peer := &pb.SearchRequest{Filter: &pb.Filter{Text: "opvang", Limit: 1000}, Origins: []string{a.TD.Name()}}
	resp, _ := b.Search(t, peer)
	if len(resp.Hits) != 256 || resp.Partial || len(resp.Peers) != 1 || resp.Peers[0].State != "answered" || !slices.Equal(resp.Cut, []string{"a"}) {
		t.Errorf("b's search of a past a's budget: %d hits, partial %v, peers %v, cut %q; want a's 256, answered, and a named in cut (review U, U5)",
			len(resp.Hits), resp.Partial, resp.Peers, resp.Cut)
	}
}

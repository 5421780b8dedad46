package federation_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/knooppunt/knooppunt/federation/fedtest"
	"github.com/knooppunt/knooppunt/node/db"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// searchSources searches from o and returns the hits as "source/id" ("" for o itself), sorted,
// and the peers the search asked.
func searchSources(t *testing.T, o *fedtest.Org, req *pb.SearchRequest) (hits, asked []string) {
	t.Helper()
	req.TimeoutMs = 10000
	resp, _ := o.Search(t, req)
	for _, h := range resp.Hits {
		hit := h.Source + "/" + h.Record.Id
		if h.FromCache {
			hit += " (cache)"
		}
		hits = append(hits, hit)
	}
	for _, p := range resp.Peers {
		asked = append(asked, p.Peer+" "+p.State)
	}
	slices.Sort(hits)
	return hits, asked
}

// TestSearchOriginsAndIDs: a search that names its origins asks only those sources, so that a
// peer not named discloses nothing to it; a filter with ids finds those records and no others, at
// each source, in the cache of a peer that does not answer, and with words; and origins or ids
// that are not valid are refused with the field named.
func TestSearchOriginsAndIDs(t *testing.T) {
	f := fedtest.Start(t, fedtest.Options{Orgs: 3})
	a, b, c := f.Orgs[0], f.Orgs[1], f.Orgs[2]
	const crisis = "herkomst"
	a.Approve(t, policyDoc("sitreps-to-c", spiffeOf(c), "sitrep", "internal", ""))
	b.Approve(t, policyDoc("sitreps-to-c", spiffeOf(c), "sitrep", "internal", ""))
	a.Put(t, fedtest.Sitrep("x", crisis, pb.Classification_INTERNAL, "Opvang Jaarbeurs vol"))
	a.Put(t, fedtest.Sitrep("a1", crisis, pb.Classification_INTERNAL, "Opvang Ahoy"))
	b.Put(t, fedtest.Sitrep("x", crisis, pb.Classification_INTERNAL, "Opvang Zeeland"))
	b.Put(t, fedtest.Sitrep("b1", crisis, pb.Classification_INTERNAL, "Vervoer"))
	c.Put(t, fedtest.Sitrep("x", crisis, pb.Classification_INTERNAL, "Eigen opvang"))
	c.Put(t, fedtest.Sitrep("c1", crisis, pb.Classification_INTERNAL, "Eigen vervoer"))
	// The picture merges records of one key, so c's own x hides a's there: ask the cache.
	fedtest.Eventually(t, 10*time.Second, "c holds a's sitreps", func() (bool, string) {
		got, err := c.Node.DB().ForeignList(context.Background(), db.ForeignFilter{Origin: a.TD.Name()})
		var ids []string
		for _, r := range got {
			ids = append(ids, r.Record.Id)
		}
		return slices.Equal(ids, []string{"a1", "x"}), fmt.Sprintf("%v %v", ids, err)
	})

	for _, tc := range []struct {
		name      string
		req       *pb.SearchRequest
		hits, ask []string
	}{
		{"one peer", &pb.SearchRequest{Filter: &pb.Filter{Crisis: crisis}, Origins: []string{a.TD.Name()}},
			[]string{a.Name + "/a1", a.Name + "/x"}, []string{a.Name + " answered"}},
		{"the node itself", &pb.SearchRequest{Filter: &pb.Filter{Crisis: crisis}, Origins: []string{c.TD.Name()}},
			[]string{"/c1", "/x"}, nil},
		{"the node by its name", &pb.SearchRequest{Filter: &pb.Filter{Crisis: crisis}, Origins: []string{c.Name}},
			[]string{"/c1", "/x"}, nil},
		{"a peer by its name", &pb.SearchRequest{Filter: &pb.Filter{Crisis: crisis}, Origins: []string{a.Name}},
			[]string{a.Name + "/a1", a.Name + "/x"}, []string{a.Name + " answered"}},
		{"itself and a peer", &pb.SearchRequest{Filter: &pb.Filter{Crisis: crisis}, Origins: []string{b.TD.Name(), c.TD.Name()}},
			[]string{"/c1", "/x", b.Name + "/b1", b.Name + "/x"}, []string{b.Name + " answered"}},
		{"an id everywhere", &pb.SearchRequest{Filter: &pb.Filter{Ids: []string{"x"}}},
			[]string{"/x", a.Name + "/x", b.Name + "/x"}, []string{a.Name + " answered", b.Name + " answered"}},
		{"ids at one peer", &pb.SearchRequest{Filter: &pb.Filter{Ids: []string{"b1", "a1"}}, Origins: []string{b.TD.Name()}},
			[]string{b.Name + "/b1"}, []string{b.Name + " answered"}},
		{"an id and words", &pb.SearchRequest{Filter: &pb.Filter{Ids: []string{"x", "a1"}, Text: "opvang"}, Origins: []string{a.TD.Name(), b.TD.Name()}},
			[]string{a.Name + "/a1", a.Name + "/x", b.Name + "/x"}, []string{a.Name + " answered", b.Name + " answered"}},
		{"an id and words it lacks", &pb.SearchRequest{Filter: &pb.Filter{Ids: []string{"a1"}, Text: "jaarbeurs"}},
			nil, []string{a.Name + " answered", b.Name + " answered"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hits, asked := searchSources(t, c, tc.req)
			if !slices.Equal(hits, tc.hits) {
				t.Errorf("hits %v, want %v", hits, tc.hits)
			}
			if !slices.Equal(asked, tc.ask) {
				t.Errorf("asked %v, want %v", asked, tc.ask)
			}
		})
	}

	// The source sends only the records asked for (the searcher would drop others, as it does
	// for a source that predates Filter.ids).
	stream, err := pb.NewFederationServiceClient(asPeer(t, c, a)).Query(fedtest.Call(t), &pb.QueryRequest{Filter: &pb.Filter{Ids: []string{"a1"}}})
	if err != nil {
		t.Fatal(err)
	}
	var sent []string
	for r, err := stream.Recv(); err == nil; r, err = stream.Recv() {
		sent = append(sent, r.Record.Id)
	}
	if !slices.Equal(sent, []string{"a1"}) {
		t.Errorf("a's Query for a1 sent %v", sent)
	}

	// A peer that does not answer: its cache stands in, by id too.
	a.Stop(t)
	hits, asked := searchSources(t, c, &pb.SearchRequest{Filter: &pb.Filter{Ids: []string{"x"}}, Origins: []string{a.TD.Name()}})
	if want := []string{a.Name + "/x (cache)"}; !slices.Equal(hits, want) || len(asked) != 1 || !strings.HasPrefix(asked[0], a.Name+" ") {
		t.Errorf("with a stopped: hits %v from %v, want %v from a alone", hits, asked, want)
	}

	for _, tc := range []struct {
		origins []string
		want    string
	}{
		{[]string{"elders.example"}, fmt.Sprintf(`origins[0]: "elders.example" is neither this node's org (%s) nor a peer's trust domain`, c.TD.Name())},
		{[]string{b.TD.Name(), c.TD.Name(), b.TD.Name()}, fmt.Sprintf(`origins[2]: %q is named already, at origins[0]`, b.TD.Name())},
		{[]string{"\xff"}, "origins[0]: not a trust domain"},
		{[]string{b.TD.Name(), b.Name}, fmt.Sprintf(`origins[1]: %q is peer %s (%s), named already`, b.Name, b.Name, b.TD.Name())},
		{[]string{c.TD.Name(), c.Name}, fmt.Sprintf(`origins[1]: %q is this node (%s), named already`, c.Name, c.TD.Name())},
		{manyIDs(1001), "origins: 1001 origins is over the limit of 1000"},
	} {
		_, err := pb.NewSearchServiceClient(c.Local(t)).Search(fedtest.Call(t), &pb.SearchRequest{Origins: tc.origins})
		if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.HasPrefix(st.Message(), tc.want) {
			t.Errorf("origins %q: %v; want InvalidArgument: %s", tc.origins, err, tc.want)
		}
	}
}

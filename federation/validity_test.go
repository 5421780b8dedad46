package federation_test

import (
	"testing"

	"github.com/knooppunt/knooppunt/federation/fedtest"
	"github.com/knooppunt/knooppunt/node/record"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestDocumentsMarkedNotHidden: a superseded Q&A, an expired guidance and a permit rule that is
// not yet in force travel to a partner like any record; the partner's search and picture show each
// of them, marked, beside the documents in force.
func TestDocumentsMarkedNotHidden(t *testing.T) {
	f := fedtest.Start(t, fedtest.Options{Orgs: 2})
	a, b := f.Orgs[0], f.Orgs[1]
	a.Approve(t, policyDoc("docs-to-b", spiffeOf(b), "qa, guidance, permit", "public", ""))
	docs := map[string]struct {
		kind, body, want string
	}{
		"qa-werk-1":   {"qa", `{"question":"Mag ik werken?","answer":"Met een vergunning.","superseded_by":"qa-werk-2"}`, record.Superseded},
		"qa-werk-2":   {"qa", `{"question":"Mag ik werken?","answer":"Zonder vergunning, met een melding.","valid_from":"2022-03-01"}`, ""},
		"hr-opvang-1": {"guidance", `{"title":"Handreiking opvang","text":"Oude versie.","version":"1.0","valid_until":"2023-12-31"}`, record.Expired},
		"twv-2099":    {"permit", `{"title":"Nieuwe regel","authority":"SZW","conditions":"Pas later.","valid_from":"2099-01-01"}`, record.NotYetValid},
	}
	held := map[string]int64{}
	for id, d := range docs {
		a.Put(t, &pb.Record{Id: id, Kind: d.kind, Crisis: "oekraine", Region: "NL", Classification: pb.Classification_PUBLIC, Body: []byte(d.body)})
		held[id] = 1
	}
	waitHeld(t, b, "oekraine", a.TD.Name(), held, "b holds a's documents")

	resp, _ := b.Search(t, &pb.SearchRequest{Filter: &pb.Filter{Crisis: "oekraine"}, TimeoutMs: 10000})
	got := map[string]string{}
	for _, h := range resp.Hits {
		got[h.Record.Id] = h.Validity
	}
	pic := b.Picture(t, "oekraine")
	inPicture := map[string]string{}
	for _, e := range pic.Entries {
		inPicture[e.Record.Id] = e.Validity
	}
	for id, d := range docs {
		if v, ok := got[id]; !ok || v != d.want {
			t.Errorf("search at b: %s validity %q (found %v), want %q", id, v, ok, d.want)
		}
		if v, ok := inPicture[id]; !ok || v != d.want {
			t.Errorf("picture at b: %s validity %q (found %v), want %q", id, v, ok, d.want)
		}
	}
}

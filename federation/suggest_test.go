package federation_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/knooppunt/knooppunt/federation/fedtest"
	"github.com/knooppunt/knooppunt/federation/search"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestSearchSuggestsOnlyWhatTheReaderFinds: a search on a misspelt word that finds nothing offers
// the word of the index that the same search finds a record with, here: in the node's own records
// or the copy of a partner's, in the search's mode and on the kind's text. The index's vocabulary
// also holds the words of an exercise's records, and of fields no search reads: a word only they
// hold is never offered. Making the suggestion asks no partner: the partner's audit log has the
// misspelt search and nothing of the suggestion until the reader searches with it.
func TestSearchSuggestsOnlyWhatTheReaderFinds(t *testing.T) {
	f := fedtest.Start(t, fedtest.Options{Orgs: 2})
	a, b := f.Orgs[0], f.Orgs[1]
	a.Exercise(t, "oef", false)
	qa := func(id, question, answer string) *pb.Record {
		body, _ := json.Marshal(map[string]string{"question": question, "answer": answer})
		return &pb.Record{Id: id, Kind: "qa", Crisis: "oekraine", Region: "NL", Classification: pb.Classification_PUBLIC, Body: body}
	}
	a.Put(t, qa("a-werk", "Mag een ontheemde werken?", "Ja, zonder vergunning."))
	// Coördinatie only in an exercise's record.
	oef := qa("a-oef", "Wie doet de coördinatie?", "De veiligheidsregio.")
	oef.Status, oef.Exercise = pb.Status_EXERCISE, "oef"
	a.Put(t, oef)
	// Wachtcommandant only in a field that no search reads (shelter.capacity searches
	// municipality, location and notes).
	a.Put(t, &pb.Record{Id: "a-opvang", Kind: "shelter.capacity", Crisis: "oekraine", Region: "VR09", Classification: pb.Classification_INTERNAL,
		Body: []byte(`{"municipality":"Utrecht","beds_total":10,"beds_free":2,"contact_phone":"bel de wachtcommandant"}`)})
	// Registratie only in b's guidance, which a holds a copy of.
	b.Approve(t, policyDoc("gids-naar-a", spiffeOf(a), "guidance", "public", ""))
	b.Put(t, &pb.Record{Id: "b-gids", Kind: "guidance", Crisis: "oekraine", Region: "NL", Classification: pb.Classification_PUBLIC,
		Body: []byte(`{"title":"Registratie bij aankomst","text":"Binnen drie dagen."}`)})
	waitHeld(t, a, "oekraine", b.TD.Name(), map[string]int64{"b-gids": 1}, "a holds b's guidance")
	a.TextIndexed(t)

	suggested := func(text string, mode *pb.Mode) string {
		t.Helper()
		var trailer metadata.MD
		resp, err := pb.NewSearchServiceClient(a.Local(t)).Search(fedtest.Call(t), &pb.SearchRequest{Filter: &pb.Filter{Text: text, Mode: mode}, TimeoutMs: 10000},
			grpc.Trailer(&trailer))
		if err != nil {
			t.Fatalf("search %q: %v", text, err)
		}
		if resp.Partial {
			t.Fatalf("search %q was partial: %v", text, resp.Peers)
		}
		if len(resp.Hits) != 0 {
			t.Fatalf("search %q found %d records", text, len(resp.Hits))
		}
		return strings.Join(trailer.Get(search.SuggestTrailer), "|")
	}
	for _, tc := range []struct {
		text string
		mode *pb.Mode
		want string
	}{
		{"vergunnign", nil, "vergunning"},
		{"ontheemde vergunnign", nil, "ontheemde vergunning"},
		// The exercise's word, in the actual mode: not offered. In the exercise it is.
		{"coordinatei", nil, ""},
		{"coordinatei", fedtest.ExerciseMode("oef"), "coordinatie"},
		// A word of the actual mode, in the exercise: not offered.
		{"vergunnign", fedtest.ExerciseMode("oef"), ""},
		// A word of a field no search reads.
		{"wachtcommandnat", nil, ""},
		// Every word corrected must find something together.
		{"vergunnign registratei", nil, ""},
	} {
		if got := suggested(tc.text, tc.mode); got != tc.want {
			t.Errorf("search %q in %v: suggested %q, want %q", tc.text, tc.mode, got, tc.want)
		}
	}

	// From the copy of b's guidance; b hears of the search as typed, once, and of nothing else.
	if got := suggested("registratei", nil); got != "registratie" {
		t.Errorf("search \"registratei\": suggested %q, want registratie", got)
	}
	// The entry of a call that got nothing is written beside the answer, not before it (node's
	// unanswered): waited for, as CI runs on a loaded machine read the log before it, or
	// before the entries of the searches above.
	about := func(text string) (n int) {
		for _, e := range b.Audit(t, "") {
			if strings.Contains(e.Detail, `text:\"`+text+`\"`) {
				n++
			}
		}
		return n
	}
	fedtest.Eventually(t, 10*time.Second, "b audits the search", func() (bool, string) {
		n := about("registratei")
		return n > 0, fmt.Sprint(n)
	})
	if n, fixed := about("registratei"), about("registratie"); n != 1 || fixed != 0 {
		t.Errorf("b's audit log holds %d entries of a search for registratei and %d for registratie, want one and none", n, fixed)
	}
	// Searching with the suggestion is a search like any other: b is asked, and answers.
	resp, _ := a.Search(t, &pb.SearchRequest{Filter: &pb.Filter{Text: "registratie"}, TimeoutMs: 10000})
	if len(resp.Hits) != 1 || resp.Hits[0].Source != b.Name || resp.Hits[0].FromCache {
		t.Errorf("search for registratie: %v, want b's guidance from b", resp.Hits)
	}
}

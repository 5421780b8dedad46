package federation_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/knooppunt/knooppunt/federation/fedtest"
	"github.com/knooppunt/knooppunt/node/attach"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// textHits searches from o with a text query and returns, per source ("" for o itself), the ids
// found, and every hit by id.
func textHits(t *testing.T, o *fedtest.Org, f *pb.Filter) (map[string][]string, map[string]*pb.SearchHit) {
	t.Helper()
	resp, _ := o.Search(t, &pb.SearchRequest{Filter: f, TimeoutMs: 10000})
	if resp.Partial {
		t.Fatalf("%s: search %q was partial: %v", o.Name, f.Text, resp.Peers)
	}
	ids := map[string][]string{}
	hits := map[string]*pb.SearchHit{}
	for _, h := range resp.Hits {
		ids[h.Source] = append(ids[h.Source], h.Record.Id)
		hits[h.Source+"/"+h.Record.Id] = h
	}
	return ids, hits
}

// TestTextSearchAcrossTheFederation: `search --text` finds Dutch compounds and words without
// their diacritics in the node's own records and at every peer, best first, with a snippet; a
// peer answers over its own records only, never over what it holds from others; and bad syntax
// is refused with a clear error naming the field.
func TestTextSearchAcrossTheFederation(t *testing.T) {
	f := fedtest.Start(t, fedtest.Options{Orgs: 3})
	a, b, c := f.Orgs[0], f.Orgs[1], f.Orgs[2]
	qa := func(id, question, answer string) *pb.Record {
		body, _ := json.Marshal(map[string]string{"question": question, "answer": answer})
		return &pb.Record{Id: id, Kind: "qa", Crisis: "oekraine", Region: "NL", Classification: pb.Classification_PUBLIC, Body: body}
	}
	// a: two Q&As about work permits, shared with b and c.
	a.Approve(t, policyDoc("qa-to-all", "group:all", "qa", "public", ""))
	a.Put(t, qa("a-permit", "Mogen vluchtelingen werken?", "Ja, zonder tewerkstellingsvergunning, als de werkgever het meldt."))
	a.Put(t, qa("a-vergunning", "Welke vergunning?", "Geen vergunning: een melding bij het UWV volstaat. Geen vergunning, echt niet."))
	a.Put(t, qa("a-other", "Waar is de coördinatie?", "Bij de veiligheidsregio."))
	// b: one of its own, shared with c; b also holds a's Q&As in its cache.
	b.Approve(t, policyDoc("qa-to-c", spiffeOf(c), "qa", "public", ""))
	b.Put(t, qa("b-own", "Vergunningplicht voor vrijwilligers?", "Nee."))
	waitHeld(t, b, "oekraine", a.TD.Name(), map[string]int64{"a-permit": 1, "a-vergunning": 1, "a-other": 1}, "b holds a's Q&As")

	ids, hits := textHits(t, c, &pb.Filter{Text: "vergunning"})
	if got := ids[a.Name]; !slices.Equal(got, []string{"a-vergunning", "a-permit"}) {
		t.Errorf("c finds at a %v, want a-vergunning (three times) before a-permit (once)", got)
	}
	if got := ids[b.Name]; !slices.Equal(got, []string{"b-own"}) {
		t.Errorf("c finds at b %v, want only b's own record: b never answers over a's", got)
	}
	if got, want := hits[a.Name+"/a-permit"].GetSnippet(), "Ja, zonder tewerkstellings«vergunning», als de werkgever het meldt."; got != want {
		t.Errorf("snippet of a-permit = %q, want %q", got, want)
	}
	if ids, _ := textHits(t, c, &pb.Filter{Text: "coordinatie"}); !slices.Equal(ids[a.Name], []string{"a-other"}) {
		t.Errorf("coordinatie finds %v at a, want a-other (coördinatie)", ids[a.Name])
	}
	if ids, _ := textHits(t, c, &pb.Filter{Text: `"zonder tewerkstelling" werkgever`, Kinds: []string{"qa"}}); !slices.Equal(ids[a.Name], []string{"a-permit"}) {
		t.Errorf("a phrase and a word find %v at a, want a-permit", ids[a.Name])
	}
	// A plural finds the singular, at every source (review I, F19: "vergunningen" found nothing).
	ids, hits = textHits(t, c, &pb.Filter{Text: "vergunningen"})
	if !slices.Equal(ids[a.Name], []string{"a-vergunning", "a-permit"}) || !slices.Equal(ids[b.Name], []string{"b-own"}) {
		t.Errorf("vergunningen finds %v, want a-vergunning and a-permit at a, b-own at b", ids)
	}
	if got, want := hits[a.Name+"/a-permit"].GetSnippet(), "Ja, zonder tewerkstellings«vergunning», als de werkgever het meldt."; got != want {
		t.Errorf("snippet of a-permit for vergunningen = %q, want %q", got, want)
	}
	// With text_any one of the words will do, as the web search asks when all of them together
	// find nothing (review P, P2), at every source; a word no record holds leaves the others.
	anyOf := func(text string, any bool) map[string][]string {
		ids, _ := textHits(t, c, &pb.Filter{Text: text, TextAny: any})
		for _, v := range ids {
			slices.Sort(v)
		}
		return ids
	}
	if ids := anyOf("coordinatie tewerkstellingsvergunning", true); !slices.Equal(ids[a.Name], []string{"a-other", "a-permit"}) || len(ids[b.Name]) != 0 {
		t.Errorf("coordinatie or tewerkstellingsvergunning finds %v, want a-other and a-permit at a", ids)
	}
	if ids := anyOf("coordinatie tewerkstellingsvergunning", false); len(ids[a.Name])+len(ids[b.Name]) != 0 {
		t.Errorf("coordinatie and tewerkstellingsvergunning finds %v, want nothing", ids)
	}
	if ids := anyOf("qwertyzz vrijwilligers", true); !slices.Equal(ids[b.Name], []string{"b-own"}) || len(ids[a.Name]) != 0 {
		t.Errorf("qwertyzz or vrijwilligers finds %v, want b-own at b", ids)
	}
	// A phrase, and a word of two parts, whose first word no record holds (review Q, Q1: the
	// node panicked on them).
	for _, text := range []string{`"qwertyzz opvang" vrijwilligers`, "qwertyzz-19 vrijwilligers", `"qwertyzz vrijwilligers"`} {
		want := []string{"b-own"}
		if strings.HasPrefix(text, `"qwertyzz vrijwilligers"`) {
			want = nil
		}
		if ids := anyOf(text, true); !slices.Equal(ids[b.Name], want) || len(ids[a.Name]) != 0 {
			t.Errorf("%s, any of them, finds %v, want %v at b", text, ids, want)
		}
	}
	if _, err := pb.NewSearchServiceClient(c.Local(t)).Search(fedtest.Call(t), &pb.SearchRequest{Filter: &pb.Filter{TextAny: true}}); status.Code(err) != codes.InvalidArgument ||
		!strings.HasPrefix(status.Convert(err).Message(), "filter.text_any: ") {
		t.Errorf("text_any without text: %v, want INVALID_ARGUMENT naming filter.text_any", err)
	}

	// b's own search finds its own record and, from its cache only when a does not answer, a's.
	if ids, _ := textHits(t, b, &pb.Filter{Text: "vergunning"}); !slices.Equal(ids[""], []string{"b-own"}) || len(ids[a.Name]) != 2 {
		t.Errorf("b finds %v", ids)
	}
	a.Stop(t)
	resp, _ := b.Search(t, &pb.SearchRequest{Filter: &pb.Filter{Text: "vergunning"}, TimeoutMs: 2000})
	var cached []string
	for _, h := range resp.Hits {
		if h.Source == a.Name && h.FromCache && h.Snippet != "" {
			cached = append(cached, h.Record.Id)
		}
	}
	slices.Sort(cached)
	if !resp.Partial || !slices.Equal(cached, []string{"a-permit", "a-vergunning"}) {
		t.Errorf("with a stopped, b's search is partial %v and serves %v from cache with snippets, want a-permit and a-vergunning", resp.Partial, cached)
	}

	for _, tc := range []struct{ text, want string }{
		{`"open`, `filter.text: a phrase opened with " is not closed: add the closing "`},
		{"de", `filter.text: "de" is shorter than 3 characters: search for longer words`},
		{`NEAR(x y) OR *`, `filter.text: "y" is shorter than 3 characters`},
	} {
		_, err := pb.NewSearchServiceClient(c.Local(t)).Search(fedtest.Call(t), &pb.SearchRequest{Filter: &pb.Filter{Text: tc.text}})
		if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.HasPrefix(st.Message(), tc.want) {
			t.Errorf("search %q: %v; want InvalidArgument: %s", tc.text, err, tc.want)
		}
	}
}

// TestTextAnyFromAnEarlierRelease: a peer of an earlier release ignores text_any and answers for
// all of the words, and ends its Query without saying it searched for any of them: a search for
// any of the words names it in cut, as a source that may hold more, and names no current peer;
// a search for all of them names neither (review V, V5).
func TestTextAnyFromAnEarlierRelease(t *testing.T) {
	f := fedtest.Start(t, fedtest.Options{Orgs: 2})
	a, b := f.Orgs[0], f.Orgs[1]
	body, _ := json.Marshal(map[string]string{"question": "Waar is de coördinatie?", "answer": "Bij de veiligheidsregio."})
	a.Approve(t, policyDoc("qa-to-b", spiffeOf(b), "qa", "public", ""))
	a.Put(t, &pb.Record{Id: "a-other", Kind: "qa", Crisis: "oekraine", Region: "NL", Classification: pb.Classification_PUBLIC, Body: body})
	var asked atomic.Int32 // the fake's Queries with text_any
	old := &fakePeer{}
	old.query = func(req *pb.QueryRequest, _ grpc.ServerStreamingServer[pb.SharedRecord]) error {
		if req.GetFilter().GetTextAny() {
			asked.Add(1)
		}
		return nil // no record holds all the words
	}
	old.subscribe = func(_ *pb.SubscribeRequest, s grpc.ServerStreamingServer[pb.FeedEvent]) error {
		return fakeHeartbeats(s, 1, nil)
	}
	startFake(t, f, "vorige", old)
	f.AddPeers(t, old.id.Peer(old.addr, "all"))

	search := func(any bool) *pb.SearchResponse {
		resp, _ := b.Search(t, &pb.SearchRequest{Filter: &pb.Filter{Text: "coordinatie tewerkstellingsvergunning", TextAny: any}, TimeoutMs: 10000})
		if resp.Partial {
			t.Fatalf("search (any %v) was partial: %v", any, resp.Peers)
		}
		return resp
	}
	resp := search(true)
	if len(resp.Hits) != 1 || resp.Hits[0].Source != a.Name || !slices.Equal(resp.Cut, []string{old.id.Name}) || asked.Load() != 1 {
		t.Errorf("any of the words: %d hits, cut %q, the fake asked text_any %d times; want a-other from %s, cut naming %s alone, once",
			len(resp.Hits), resp.Cut, asked.Load(), a.Name, old.id.Name)
	}
	if resp := search(false); len(resp.Hits) != 0 || len(resp.Cut) != 0 {
		t.Errorf("all of the words: %d hits, cut %q; want none, and no source cut", len(resp.Hits), resp.Cut)
	}
}

// TestTextSearchRanksOnWhatThePeerSees: a source orders what it sends a recipient on the text
// the recipient receives, so that a redacted field cannot move a record up: a record that says
// the word once where b can see it, and six times in a field withheld from b, comes after one that
// says it twice where b can see it. The source's own search, which sees everything, ranks them the
// other way round; and ties go newest first, so that no order of the index's shows through.
func TestTextSearchRanksOnWhatThePeerSees(t *testing.T) {
	f := fedtest.Start(t, fedtest.Options{Orgs: 2})
	a, b := f.Orgs[0], f.Orgs[1]
	qa := func(id, question, answer string) *pb.Record {
		body, _ := json.Marshal(map[string]string{"question": question, "answer": answer})
		return &pb.Record{Id: id, Kind: "qa", Crisis: "rang", Region: "NL", Classification: pb.Classification_PUBLIC, Body: body}
	}
	a.Approve(t, policyDoc("qa-to-b", spiffeOf(b), "qa", "public", "redact: [body.answer]\n"))
	a.Put(t, qa("a-twice", "Welke vergunning, welke vergunning?", "Nee."))
	a.Put(t, qa("a-hidden", "Vergunning nodig, zeker weten?", strings.Repeat("vergunning ", 6)))
	a.Put(t, qa("a-same-old", "Een vergunning voor werk in de opvang van de gemeente", "Ja."))
	a.Put(t, qa("a-same-new", "Een vergunning voor werk in de opvang van de gemeente", "Ja."))

	ids, _ := textHits(t, b, &pb.Filter{Text: "vergunning", Crisis: "rang"})
	if want := []string{"a-twice", "a-hidden", "a-same-new", "a-same-old"}; !slices.Equal(ids[a.Name], want) {
		t.Errorf("b finds at a %v, want %v: ranked on what b sees, ties newest first", ids[a.Name], want)
	}
	ids, _ = textHits(t, a, &pb.Filter{Text: "vergunning", Crisis: "rang"})
	if got := ids[""]; len(got) != 4 || got[0] != "a-hidden" {
		t.Errorf("a's own search finds %v, want a-hidden first: a sees its answer", got)
	}
}

// textPolicy is one sharing policy of the leak test, as the reference model reads it.
type textPolicy struct {
	kind    string
	ceiling pb.Classification
	redact  []string // body fields
}

// TestTextSearchNeverLeaks is a property test of federated full-text search against a plain
// reference model: for random records, random policies with random redactions and random
// queries, the records a recipient finds at the source are exactly those the reference says it
// may receive and whose text, as it receives it, matches; no snippet holds a withheld value.
// Some records name a PDF whose text is searched with the record's; a policy may redact the
// attachments, and then the PDF's text is withheld like a field.
func TestTextSearchNeverLeaks(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 7))
	f := fedtest.Start(t, fedtest.Options{Orgs: 2})
	a, b := f.Orgs[0], f.Orgs[1]

	words := []string{"vergunning", "tewerkstellingsvergunning", "opvang", "noodopvang", "coördinatie",
		"gemeente", "werkgever", "melding", "vrijwilliger", "scholing", "zorgverzekering", "huisvesting"}
	// Each field's words come from its own half of the list now and then, so that a query can
	// match a redacted field alone.
	sentence := func() string {
		n := 1 + rng.IntN(4)
		out := make([]string, n)
		for i := range out {
			out[i] = words[rng.IntN(len(words))]
		}
		return strings.Join(out, " ")
	}
	kinds := []string{"qa", "guidance"}
	fields := map[string][]string{"qa": {"question", "answer", "audience", "attachments"}, "guidance": {"title", "summary", "text", "attachments"}}
	classes := []pb.Classification{pb.Classification_PUBLIC, pb.Classification_INTERNAL, pb.Classification_CONFIDENTIAL}

	// Policies: a few random grants to b, each with a random redaction.
	var policies []textPolicy
	for i := range 1 + rng.IntN(3) {
		p := textPolicy{kind: kinds[rng.IntN(len(kinds))], ceiling: classes[rng.IntN(len(classes))]}
		for _, fld := range fields[p.kind] {
			if rng.IntN(3) == 0 {
				p.redact = append(p.redact, fld)
			}
		}
		redact := make([]string, len(p.redact))
		for j, fld := range p.redact {
			redact[j] = "body." + fld
		}
		extra := ""
		if len(redact) > 0 {
			extra = "redact: [" + strings.Join(redact, ", ") + "]\n"
		}
		a.Approve(t, policyDoc(fmt.Sprintf("text-%d", i), spiffeOf(b), p.kind, strings.ToLower(p.ceiling.String()), extra))
		policies = append(policies, p)
	}
	t.Logf("policies: %+v", policies)

	// Records: random kinds, classifications and texts.
	type rec struct {
		kind  string
		class pb.Classification
		body  map[string]string
	}
	recs := map[string]rec{}
	var files []string
	for i := range 120 {
		r := rec{kind: kinds[rng.IntN(len(kinds))], class: classes[rng.IntN(len(classes))], body: map[string]string{}}
		for _, fld := range fields[r.kind] {
			r.body[fld] = sentence()
		}
		// guidance requires title and text, qa question and answer: all fields are set. One
		// record in six names a PDF that holds its "attachments" sentence; the others name none.
		doc := map[string]any{}
		for fld, text := range r.body {
			doc[fld] = text
		}
		delete(doc, "attachments")
		if rng.IntN(6) == 0 {
			pdf := attach.SimplePDF(r.body["attachments"], nil)
			att, err := attach.Upload(fedtest.Call(t), pb.NewAttachmentServiceClient(a.Local(t)), "bijlage.pdf", bytes.NewReader(pdf), int64(len(pdf)), "", nil)
			if err != nil {
				t.Fatal(err)
			}
			doc["attachments"] = []*pb.Attachment{att}
			files = append(files, att.Sha256)
		} else {
			delete(r.body, "attachments")
		}
		body, _ := json.Marshal(doc)
		id := fmt.Sprintf("t%03d", i)
		a.Put(t, &pb.Record{Id: id, Kind: r.kind, Crisis: "leak", Region: "NL", Classification: r.class, Body: body})
		recs[id] = r
	}

	for _, sha := range files {
		fedtest.Eventually(t, 20*time.Second, "a took the text out of its PDFs", func() (bool, string) {
			state, err := a.Node.DB().FileTextState(context.Background(), sha)
			return state == "indexed", fmt.Sprintf("%s: %q (%v)", sha, state, err)
		})
	}

	// The reference: what b may receive of each record, and the text it would see.
	fold := strings.NewReplacer("ö", "o", "é", "e", "ë", "e")
	visible := map[string]map[string]string{} // id → field → text b receives
	for id, r := range recs {
		granted := false
		withheld := map[string]bool{}
		first := true
		for _, p := range policies {
			if p.kind != r.kind || r.class > p.ceiling {
				continue
			}
			granted = true
			// A field is withheld only when every granting policy redacts it.
			this := map[string]bool{}
			for _, f := range p.redact {
				this[f] = true
			}
			if first {
				withheld, first = this, false
				continue
			}
			for f := range withheld {
				if !this[f] {
					delete(withheld, f)
				}
			}
		}
		if !granted {
			continue
		}
		v := map[string]string{}
		for f, text := range r.body {
			if !withheld[f] {
				v[f] = fold.Replace(strings.ToLower(text))
			}
		}
		visible[id] = v
	}
	textFields := map[string][]string{"qa": {"question", "answer", "attachments"}, "guidance": {"title", "summary", "text", "attachments"}}
	matches := func(id string, terms []string) bool {
		v := visible[id]
		for _, term := range terms {
			found := false
			for _, f := range textFields[recs[id].kind] {
				if strings.Contains(v[f], term) {
					found = true
				}
			}
			if !found {
				return false
			}
		}
		return true
	}

	for range 40 {
		// A query of one or two words, or parts of words, from the vocabulary.
		var terms []string
		for range 1 + rng.IntN(2) {
			w := []rune(fold.Replace(words[rng.IntN(len(words))]))
			from := rng.IntN(len(w) - 3)
			terms = append(terms, string(w[from:from+3+rng.IntN(len(w)-from-2)]))
		}
		query := strings.Join(terms, " ")
		var want []string
		for id := range visible {
			if matches(id, terms) {
				want = append(want, id)
			}
		}
		slices.Sort(want)
		ids, hits := textHits(t, b, &pb.Filter{Text: query, Crisis: "leak", Limit: 10000})
		got := slices.Sorted(slices.Values(ids[a.Name]))
		if !slices.Equal(got, want) {
			t.Fatalf("query %q: b finds %v at a, the reference says %v (seed %d)", query, got, want, seed)
		}
		// No snippet holds a withheld value: every marked part is in a field b receives.
		for _, id := range got {
			snippet := fold.Replace(strings.ToLower(hits[a.Name+"/"+id].Snippet))
			plain := strings.NewReplacer("«", "", "»", "", "…", "").Replace(snippet)
			found := false
			for _, f := range slices.Sorted(maps.Keys(visible[id])) {
				if strings.Contains(visible[id][f], strings.TrimSpace(plain)) {
					found = true
				}
			}
			if !found {
				t.Fatalf("query %q: snippet %q of %s is in no field b may see (seed %d)", query, hits[a.Name+"/"+id].Snippet, id, seed)
			}
		}
	}
}

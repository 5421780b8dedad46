package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/federation/fedtest"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestCLISearchByWords: search --text leaves out the words too short to look for, says so on
// stderr, and searches for the rest; a query of nothing else is refused, naming the flag.
func TestCLISearchByWords(t *testing.T) {
	addr, _ := servedNode(t)
	cli(t, nil, "", "record", "put", "--node", addr, "--kind", "qa", "--crisis", "oekraine", "--region", "NL", "--classification", "public",
		"--id", "qa-werk", "--body", `{"question":"Mogen ontheemden werken?","answer":"Ja, zonder tewerkstellingsvergunning."}`).want(t, 0)
	r := cli(t, nil, "", "search", "--node", addr, "--text", "werken in NL zonder vergunning").want(t, 0)
	if !strings.Contains(r.stdout, "qa-werk") || !strings.Contains(r.stdout, "«werken»") {
		t.Errorf("search for werken in NL zonder vergunning printed:\n%s", r.stdout)
	}
	if want := `knooppunt: not searched for "in", "NL": words of fewer than 3 characters cannot be looked for`; !strings.Contains(r.stderr, want) {
		t.Errorf("stderr %q, want %q", r.stderr, want)
	}
	// Every word that is left must occur.
	if r := cli(t, nil, "", "search", "--node", addr, "--text", "werken in Zeeland").want(t, 0); strings.Contains(r.stdout, "qa-werk") || !strings.Contains(r.stdout, "No records found: ") {
		t.Errorf("search for werken in Zeeland found the Q&A:\n%s", r.stdout)
	}
	if r := cli(t, nil, "", "search", "--node", addr, "--text", "in de").want(t, 1); !strings.Contains(r.stderr, `--text: "in", "de": search for words of 3 characters or more`) {
		t.Errorf("search for in de: stderr %q", r.stderr)
	}
	// A misspelt word: the word the node finds something with, as a hint on stderr.
	r = cli(t, nil, "", "search", "--node", addr, "--text", "ontheemden wreken").want(t, 0)
	if want := `knooppunt: did you mean --text 'ontheemden werken'? It finds records here; search again with it to ask the partners too`; !strings.Contains(r.stderr, want) ||
		!strings.Contains(r.stdout, "No records found: ") {
		t.Errorf("search for ontheemden wreken: stdout %q, stderr %q; want nothing found and the hint %q", r.stdout, r.stderr, want)
	}
	// A question pasted whole (30 words): searched on what it is about, its frame named.
	r = cli(t, nil, "", "search", "--node", addr, "--text",
		"Wat als ontheemden hier bij ons willen werken, mogen ze dan werken zonder dat er een tewerkstellingsvergunning is, of moet de werkgever eerst iets doen, en wat dan nu precies?").want(t, 0)
	if want := `knooppunt: not searched for "Wat", "als", "hier", "bij", "ons", "willen", "mogen", "dan", "dat", "een", "moet", "iets", "doen": nearly every question says them`; !strings.Contains(r.stderr, want) ||
		strings.Contains(r.stderr, "at most 16 words") {
		t.Errorf("search for a question of 30 words: stderr %q, want %q", r.stderr, want)
	}
	// A question of few words: its frame is not searched for, and it finds the Q&A.
	r = cli(t, nil, "", "search", "--node", addr, "--text", "Mogen ontheemden werken?").want(t, 0)
	if !strings.Contains(r.stdout, "qa-werk") || !strings.Contains(r.stderr, `knooppunt: not searched for "Mogen": nearly every question says them`) {
		t.Errorf("search for Mogen ontheemden werken?: stdout %q, stderr %q", r.stdout, r.stderr)
	}
}

// TestCLISearchOriginsAndIDs: --origin asks only the sources named and --id finds those records;
// a source that gives --limit records is said, on stderr, to perhaps hold more; an origin that is neither the
// node's org nor a peer is refused, naming it.
func TestCLISearchOriginsAndIDs(t *testing.T) {
	addr, _ := servedNode(t)
	for _, id := range []string{"qa-1", "qa-2", "qa-3"} {
		cli(t, nil, "", "record", "put", "--node", addr, "--kind", "qa", "--crisis", "oekraine", "--region", "NL", "--classification", "public",
			"--id", id, "--body", `{"question":"Vraag?","answer":"Antwoord."}`).want(t, 0)
	}
	var rec struct{ Origin string }
	if err := json.Unmarshal([]byte(cli(t, nil, "", "record", "get", "qa-1", "--node", addr, "-o", "json").want(t, 0).stdout), &rec); err != nil || rec.Origin == "" {
		t.Fatalf("record get -o json: %v, origin %q", err, rec.Origin)
	}
	r := cli(t, nil, "", "search", "--node", addr, "--origin", rec.Origin, "--id", "qa-3", "--id", "qa-1", "-o", "json").want(t, 0)
	var got struct {
		Hits []struct{ Record struct{ Id string } }
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("search -o json: %v\n%s", err, r.stdout)
	}
	var ids []string
	for _, h := range got.Hits {
		ids = append(ids, h.Record.Id)
	}
	if !slices.Equal(ids, []string{"qa-1", "qa-3"}) {
		t.Errorf("search --id qa-3 --id qa-1 found %v, want qa-1 and qa-3", ids)
	}
	// A source that gives as many records as the limit may hold more: said on stderr.
	if r := cli(t, nil, "", "search", "--node", addr, "--kind", "qa", "--limit", "2").want(t, 0); !strings.Contains(r.stderr, "knooppunt: this node may hold more than it gave: a source gives at most --limit records (2 here)") {
		t.Errorf("search --limit 2 of 3 records: stderr %q", r.stderr)
	}
	// And in -o json, by trust domain, where a script reads it (review I, F5).
	if r := cli(t, nil, "", "search", "--node", addr, "--kind", "qa", "--limit", "2", "-o", "json").want(t, 0); !strings.Contains(r.stdout, `"may_hold_more": [`+"\n"+`    "`+rec.Origin+`"`) {
		t.Errorf("search --limit 2 of 3 records -o json: %s, want may_hold_more naming %s", r.stdout, rec.Origin)
	}
	// A kind this node does not know, that found nothing, is said to be unknown here (review I, F10).
	if r := cli(t, nil, "", "search", "--node", addr, "--kind", "shelter").want(t, 0); !strings.Contains(r.stderr, `Note: this node knows no kind "shelter" (it knows `) {
		t.Errorf("search --kind shelter: stderr %q", r.stderr)
	}
	if r := cli(t, nil, "", "search", "--node", addr, "--kind", "qa", "--limit", "4").want(t, 0); r.stderr != "" {
		t.Errorf("search --limit 4 of 3 records: stderr %q, want nothing", r.stderr)
	}
	// A refusal names the flag the value came from, not the request's field.
	r = cli(t, nil, "", "search", "--node", addr, "--origin", rec.Origin, "--origin", "elders.example").want(t, 1)
	if want := `knooppunt: --origin: "elders.example" is neither this node's org (` + rec.Origin + `) nor a peer's trust domain`; !strings.HasPrefix(r.stderr, want) {
		t.Errorf("search --origin elders.example: stderr %q, want %q", r.stderr, want)
	}
	r = cli(t, nil, "", "search", "--node", addr, "--id", "qa-1", "--id", "no id").want(t, 1)
	if want := "knooppunt: --id: "; !strings.HasPrefix(r.stderr, want) || !strings.HasSuffix(r.stderr, "(InvalidArgument)\n") {
		t.Errorf("search --id 'no id': stderr %q, want %q…", r.stderr, want)
	}
	r = cli(t, nil, "", "search", "--node", addr, "--limit", "20000").want(t, 1)
	if want := "knooppunt: --limit: 20000: use 0 (default 1000) to 10000 (InvalidArgument)\n"; r.stderr != want {
		t.Errorf("search --limit 20000: stderr %q, want %q", r.stderr, want)
	}
	// A region that is none is refused, not answered with nothing.
	r = cli(t, nil, "", "search", "--node", addr, "--region", "VR99").want(t, 1)
	if want := `knooppunt: --region: "VR99" is not a region`; !strings.HasPrefix(r.stderr, want) {
		t.Errorf("search --region VR99: stderr %q, want %q…", r.stderr, want)
	}
	// So is a crisis no record can name; one nothing names is searched, with a note.
	r = cli(t, nil, "", "search", "--node", addr, "--crisis", "Oekraïne").want(t, 1)
	if want := `knooppunt: --crisis: "Oekraïne" is not a crisis name`; !strings.HasPrefix(r.stderr, want) {
		t.Errorf("search --crisis Oekraïne: stderr %q, want %q…", r.stderr, want)
	}
	if r := cli(t, nil, "", "search", "--node", addr, "--crisis", "oekriane").want(t, 0); !strings.Contains(r.stderr, `Note: no record here or from a partner names crisis "oekriane": check the spelling`) {
		t.Errorf("search --crisis oekriane: stderr %q", r.stderr)
	}
	if r := cli(t, nil, "", "search", "--node", addr, "--crisis", "oekraine").want(t, 0); strings.Contains(r.stderr, "names crisis") {
		t.Errorf("search --crisis oekraine: stderr %q", r.stderr)
	}

	// The picture says whether the peers answer now; a crisis nothing names gets a note.
	var pic struct {
		Partial *bool
		Entries []any
	}
	if err := json.Unmarshal([]byte(cli(t, nil, "", "picture", "--node", addr, "--crisis", "oekraine", "-o", "json").want(t, 0).stdout), &pic); err != nil ||
		pic.Partial == nil || *pic.Partial || len(pic.Entries) != 3 {
		t.Errorf("picture -o json: %v, partial %v, %d entries; want partial false and 3 entries", err, pic.Partial, len(pic.Entries))
	}
	if r := cli(t, nil, "", "picture", "--node", addr, "--crisis", "oekriane").want(t, 0); !strings.Contains(r.stderr, `no record here or from a partner names crisis "oekriane" now: check the spelling`) {
		t.Errorf("picture of a crisis nothing names: stderr %q", r.stderr)
	}
	// With -o json too, a script's sums of 0 are not taken for the crisis's; --fail-on-partial
	// fails on it, and not on a crisis that is named.
	if r := cli(t, nil, "", "picture", "--node", addr, "--crisis", "oekriane", "-o", "json").want(t, 0); !strings.Contains(r.stderr, `no record here or from a partner names crisis "oekriane" now: check the spelling`) ||
		json.Unmarshal([]byte(r.stdout), &pic) != nil {
		t.Errorf("picture -o json of a crisis nothing names: stderr %q, stdout %q", r.stderr, r.stdout)
	}
	if r := cli(t, nil, "", "picture", "--node", addr, "--crisis", "oekriane", "-o", "json", "--fail-on-partial").want(t, 3); !strings.Contains(r.stderr, `names crisis "oekriane"`) {
		t.Errorf("picture --fail-on-partial of a crisis nothing names: stderr %q", r.stderr)
	}
	cli(t, nil, "", "picture", "--node", addr, "--crisis", "oekraine", "-o", "json", "--fail-on-partial").want(t, 0)
	// One no record can name is refused at the flag.
	if r := cli(t, nil, "", "picture", "--node", addr, "--crisis", "Oekraine").want(t, 1); !strings.Contains(r.stderr, `--crisis: "Oekraine" is not a crisis name: use 1 to 64 of a-z 0-9 . _ -, such as oekraine (InvalidArgument)`) {
		t.Errorf("picture of a crisis no record can name: stderr %q", r.stderr)
	}
}

// TestPeerStatesSayHowOldTheCopyIs: a peer that did not answer is served from a copy whose note
// says its age, how long since its feed, still open, last spoke (a peer that hangs: not
// current), or that there is none; and PARTIAL names each.
func TestPeerStatesSayHowOldTheCopyIs(t *testing.T) {
	var b strings.Builder
	printPeerStates(&b, nil, []*pb.PeerStatus{
		{Peer: "lcvs", State: "timed_out", Count: 3, FeedOpen: true, CacheAgeMs: 2_400, Error: "deadline"},
		{Peer: "ncc", State: "unreachable", Count: 2, CacheAgeMs: 90_000, Error: "refused"},
		{Peer: "vrz", State: "unreachable", Error: "refused"},
	}, true, true)
	out := b.String()
	for _, want := range []string{"served from cache as of its feed's last message, 2s ago (the feed is still open); deadline", "served from cache, 1m30s old; refused",
		"no copy: it never sent this node anything; refused", "PARTIAL: lcvs, ncc, vrz did not answer"} {
		if !strings.Contains(out, want) {
			t.Errorf("the peer states lack %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "current") {
		t.Errorf("a peer that timed out is called current:\n%s", out)
	}
}

// TestFailOnPartial: with --fail-on-partial, a search or picture that a peer did not answer
// prints what it has and exits 3; while every peer answers, and without the flag, it exits 0.
func TestFailOnPartial(t *testing.T) {
	f := fedtest.Start(t, fedtest.Options{Orgs: 2})
	a, b := f.Org("a"), f.Org("b")
	b.Put(t, fedtest.Sitrep("s1", "oekraine", pb.Classification_INTERNAL, "v1")) // a picture of a crisis nothing names fails too
	addr := "unix://" + b.SocketPath()
	for _, args := range [][]string{{"search", "--crisis", "oekraine"}, {"picture", "--crisis", "oekraine"}} {
		cli(t, nil, "", append(args, "--fail-on-partial", "--node", addr)...).want(t, 0)
	}
	a.Stop(t)
	for _, args := range [][]string{{"search", "--crisis", "oekraine"}, {"picture", "--crisis", "oekraine"}} {
		if r := cli(t, nil, "", append(args, "--fail-on-partial", "--node", addr)...).want(t, 3); !strings.Contains(r.stdout, "PARTIAL: a did not answer") {
			t.Errorf("%s --fail-on-partial with a stopped:\n%s", args[0], r.stdout)
		}
		cli(t, nil, "", append(args, "--node", addr)...).want(t, 0)
	}
}

// TestPictureStaleAfterRefused: a --stale-after under a second would reach the node as 0, each
// kind's own limit: it is refused, naming the flag.
func TestPictureStaleAfterRefused(t *testing.T) {
	for _, v := range []string{"500ms", "-1h", "0s"} {
		if r := cli(t, nil, "", "picture", "--crisis", "oekraine", "--stale-after", v, "--node", "unix:///nonexistent.sock").want(t, 1); !strings.Contains(r.stderr, "--stale-after: ") || !strings.Contains(r.stderr, "use 1s or more") {
			t.Errorf("picture --stale-after %s: %q", v, r.stderr)
		}
	}
}

// TestSearchTimeoutRange: search refuses a --timeout out of the node's range itself, naming the
// flag and in its own units, before it asks a node; one past int32 milliseconds is refused too,
// not wrapped around.
func TestSearchTimeoutRange(t *testing.T) {
	for _, timeout := range []string{"-1s", "61s", "600h", "1000h"} {
		r := cli(t, nil, "", "search", "--crisis", "oekraine", "--timeout", timeout, "--node", "unix:///nonexistent/knooppunt.sock").want(t, 1)
		if want := "knooppunt: --timeout: "; !strings.HasPrefix(r.stderr, want) || !strings.Contains(r.stderr, "use 0 (the node's default, 2s) to 1m0s") {
			t.Errorf("search --timeout %s: stderr %q", timeout, r.stderr)
		}
	}
}

// TestPrintPictureDeniedPeer: a partner that refuses this node (it removed it) did not answer:
// its records are its last copy, flagged CACHED, the PEER table says so, and PARTIAL names it
// (review onboard F2). A picture of no source says so rather than nothing after "sources:".
func TestPrintPictureDeniedPeer(t *testing.T) {
	resp := &pb.PictureResponse{Crisis: "oekraine", Sources: []string{"ncc.crisis.test"}, Entries: []*pb.PictureEntry{
		{Kind: "sitrep", Region: "NL", Key: "landelijk", Source: "ncc.crisis.test", Record: &pb.Record{Id: "landelijk", Body: []byte(`{"title":"Landelijk beeld"}`)}},
	}}
	resp.Partial, resp.Peers = true, []*pb.PeerStatus{{Peer: "ncc", TrustDomain: "ncc.crisis.test", State: "denied", Count: 1, CacheAgeMs: 60000,
		Error: "it refuses this node: this partner removed you, or has not accepted your answer yet"}}
	var b strings.Builder
	if err := printPicture(&b, "", resp, nil); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if !strings.Contains(lineWith(out, "Landelijk beeld"), "CACHED") || !strings.Contains(out, "\nPARTIAL: ncc did not answer") ||
		!strings.Contains(lineWith(out, "denied"), "served from cache, 1m0s old; it refuses this node: this partner removed you") {
		t.Errorf("the picture with ncc refusing this node:\n%s", out)
	}
	b.Reset()
	if err := printPicture(&b, "", &pb.PictureResponse{Crisis: "oekraine", Phase: "cold"}, nil); err != nil {
		t.Fatal(err)
	}
	if out := b.String(); !strings.Contains(out, "sources: none: no record of this crisis here or from a partner\n") {
		t.Errorf("a picture of no source:\n%s", out)
	}
}

// TestPrintPictureSaysWhatSumsLack: a sum that lacks entries of its kind (a partner's policy
// withheld beds_total) prints RECORDS as 4 of 7 and a note under the sums names it, so that
// beds_free over 7 entries is not read beside beds_total over 4 as a ratio (review I, F1); -o
// json carries entries. A sum of a million or more is a plain decimal, not 1.234567e+06 (F12).
func TestPrintPictureSaysWhatSumsLack(t *testing.T) {
	resp := &pb.PictureResponse{Crisis: "oekraine", Sources: []string{"lcvs.crisis.test"},
		Aggregates: []*pb.Aggregate{
			{Kind: "shelter.capacity", Field: "beds_free", Region: "VR19", Sum: 1234567, Records: 7, Entries: 7},
			{Kind: "shelter.capacity", Field: "beds_total", Region: "VR19", Sum: 460, Records: 4, Entries: 7},
			{Kind: "shelter.capacity", Field: "beds_total", Region: "NL", Sum: 1450.5, Records: 9, Entries: 12},
		}}
	var b strings.Builder
	if err := printPicture(&b, "", resp, nil); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	row := func(s string) string { return strings.Join(strings.Fields(lineWith(out, s)), " ") }
	if free := row("beds_free"); free != "shelter.capacity beds_free VR19 1234567 7" {
		t.Errorf("the beds_free row %q: want the sum as a plain decimal and 7 records", free)
	}
	if vr19 := row("beds_total  VR19"); vr19 != "shelter.capacity beds_total VR19 460 4 of 7" {
		t.Errorf("the beds_total VR19 row %q: want RECORDS 4 of 7", vr19)
	}
	if nl := row("beds_total  NL"); nl != "shelter.capacity beds_total NL 1450.5 9 of 12" {
		t.Errorf("the beds_total NL row %q: want RECORDS 9 of 12", nl)
	}
	if want := "\nshelter.capacity beds_total VR19 sums 4 of 7 entries: 3 lack the field; shelter.capacity beds_total NL sums 9 of 12 entries: 3 lack the field (withheld by a partner's policy, or not reported as a number).\n"; !strings.Contains(out, want) {
		t.Errorf("the picture does not say which sums lack entries (%q):\n%s", want, out)
	}
	if strings.Contains(out, "beds_free VR19 sums") {
		t.Errorf("a sum of every entry is said to lack some:\n%s", out)
	}
	b.Reset()
	if err := printPicture(&b, "json", resp, nil); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Aggregates []struct {
			Field   string `json:"field"`
			Records int64  `json:"records"`
			Entries int64  `json:"entries"`
		} `json:"aggregates"`
	}
	if err := json.Unmarshal([]byte(b.String()), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Aggregates) != 3 || doc.Aggregates[1].Records != 4 || doc.Aggregates[1].Entries != 7 {
		t.Errorf("picture -o json: aggregates %+v\n%s", doc.Aggregates, b.String())
	}
}

// TestSearchWideIsWhole: the search table cuts a summary to fit a terminal, and --wide prints it
// whole, as picture --wide does (review I, F4: a shelter's figures were cut off).
func TestSearchWideIsWhole(t *testing.T) {
	body := `{"municipality":"Amersfoort","location":"Sporthal De Ganzenhoek","beds_total":260,"beds_free":26,"contact_phone":"033 123 45 67"}`
	resp := &pb.SearchResponse{Hits: []*pb.SearchHit{{Record: &pb.Record{Id: "shelter-amersfoort", Origin: "lcvs.crisis.test", Kind: "shelter.capacity",
		Region: "VR09", Body: []byte(body)}, Source: "lcvs"}}}
	var cut, whole strings.Builder
	if err := printSearchCut(&cut, "table", resp, nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := printSearchCut(&whole, tableFormat("table", true), resp, nil, nil); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(cut.String(), "…") || strings.Contains(cut.String(), "contact_phone 033") {
		t.Errorf("the table does not cut the summary:\n%s", cut.String())
	}
	if !strings.Contains(whole.String(), "Amersfoort · beds_total 260 · beds_free 26 · location Sporthal De Ganzenhoek · contact_phone 033 123 45 67") {
		t.Errorf("--wide cuts the summary:\n%s", whole.String())
	}
}

// TestPrintSearchJSONSaysUnderWhichPolicyAndPurpose: -o json gives each hit the source's policies
// that granted it, the purpose this node stated, and for a cached one when it came, so that a
// recipient can check what it holds against the source's federation.disclose entries (review O,
// O8); an own record has none of them.
func TestPrintSearchJSONSaysUnderWhichPolicyAndPurpose(t *testing.T) {
	at := time.Date(2026, 12, 6, 15, 20, 2, 0, time.UTC)
	resp := &pb.SearchResponse{Hits: []*pb.SearchHit{
		{Record: &pb.Record{Id: "sitrep-ncc-1", Origin: "ncc.crisis.test"}, Source: "ncc", FromCache: true,
			Policies: []string{"ncc-to-vrbn@2"}, Purpose: "crisisbeheer", ReceivedAt: timestamppb.New(at)},
		{Record: &pb.Record{Id: "sitrep-own-1", Origin: "vrbn.crisis.test"}},
	}}
	var b strings.Builder
	if err := printSearch(&b, "json", resp, nil); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Hits []map[string]any `json:"hits"`
	}
	if err := json.Unmarshal([]byte(b.String()), &doc); err != nil || len(doc.Hits) != 2 {
		t.Fatalf("search -o json: %v\n%s", err, b.String())
	}
	got := doc.Hits[0]
	if p, _ := got["policies"].([]any); len(p) != 1 || p[0] != "ncc-to-vrbn@2" || got["purpose"] != "crisisbeheer" || got["received_at"] != "2026-12-06T15:20:02Z" {
		t.Errorf("a peer's hit: %v, want its policies, purpose and received_at", got)
	}
	for _, k := range []string{"policies", "purpose", "received_at"} {
		if _, ok := doc.Hits[1][k]; ok {
			t.Errorf("an own record's hit has %s: %v", k, doc.Hits[1])
		}
	}
}

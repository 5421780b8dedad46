package ui_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html"
	"maps"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/knooppunt/knooppunt/federation/fedtest"
	"github.com/knooppunt/knooppunt/node/attach"
	"github.com/knooppunt/knooppunt/node/db"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// fedEnv is a federation of three orgs; the first, vr-utrecht, serves the web interface.
type fedEnv struct {
	f                  *fedtest.Federation
	utrecht, lcvs, ncc *fedtest.Org
	url                string
	// nccURL is ncc's web interface: a browser on the peer, for the picture that updates live.
	nccURL string
	op     *provider
	// pdf is the file ncc's guidance richtlijn-1 names; pdfSHA its SHA-256.
	pdf    []byte
	pdfSHA string
}

// startFederation starts vr-utrecht, lcvs and ncc in-process over real mTLS. lcvs shares shelter
// capacity with vr-utrecht and withholds the contact phone; ncc shares its sitreps and guidance
// with everyone. vr-utrecht's officers set the crisis lukewarm. It returns once vr-utrecht
// holds what both shared. Each opt changes the federation's options.
func startFederation(t *testing.T, opts ...func(*fedtest.Options)) *fedEnv {
	t.Helper()
	p := newProvider(t)
	secret := secretFile(t, fedtest.ShortDir(t))
	o := fedtest.Options{Orgs: 3, Names: []string{"vr-utrecht", "lcvs", "ncc"}, Roles: func(name string) []string {
		// vr-utrecht's administrator, for the node's page.
		if name != "vr-utrecht" {
			return nil
		}
		return []string{"{id: spiffe://vr-utrecht.crisis.test/user/ada, role: admin}"}
	}, Extra: func(name string) string {
		if name != "vr-utrecht" && name != "ncc" {
			return ""
		}
		return fmt.Sprintf("ui:\n  listen: \"127.0.0.1:0\"\n  oidc:\n    issuer: %s\n    client_id: %s\n    client_secret_file: %s\n", p.issuer, testClientID, secret)
	}}
	for _, opt := range opts {
		opt(&o)
	}
	f := fedtest.Start(t, o)
	e := &fedEnv{f: f, utrecht: f.Org("vr-utrecht"), lcvs: f.Org("lcvs"), ncc: f.Org("ncc"), op: p}
	e.url = "http://" + e.utrecht.Node.UIAddr().String()
	e.nccURL = "http://" + e.ncc.Node.UIAddr().String()
	p.serve(t, e.url, e.nccURL)

	e.lcvs.Approve(t, "name: lcvs-capaciteit\npurpose: spreiding en opvang vluchtelingen\nrecipients: [spiffe://vr-utrecht.crisis.test]\n"+
		"kinds: [shelter.capacity]\nmax_classification: internal\nredact: [body.contact_phone]\n")
	e.ncc.Approve(t, "name: ncc-landelijk-beeld\npurpose: landelijk beeld\nrecipients: [group:all]\nkinds: [sitrep, guidance]\nmax_classification: internal\n")
	e.utrecht.SetPhase(t, "oekraine", "lukewarm")
	shelter := func(id, region, town string, total, free int) *pb.Record {
		return &pb.Record{Id: id, Kind: "shelter.capacity", Crisis: "oekraine", Region: region, Classification: pb.Classification_INTERNAL,
			Body: fmt.Appendf(nil, `{"municipality":%q,"beds_total":%d,"beds_free":%d,"contact_phone":"+31 30 123 4567"}`, town, total, free)}
	}
	for _, r := range []*pb.Record{
		shelter("utrecht", "VR09", "Utrecht", 120, 14), shelter("amersfoort", "VR09", "Amersfoort", 80, 6),
		shelter("middelburg", "VR19", "Middelburg", 60, 22), shelter("rotterdam", "VR17", "Rotterdam", 300, 41),
	} {
		e.lcvs.Put(t, r)
	}
	e.ncc.Put(t, fedtest.Sitrep("landelijk-1", "oekraine", pb.Classification_PUBLIC, "Landelijk beeld opvang Oekraïne"))
	// The guidance comes with its PDF, which vr-utrecht fetches in the background.
	e.pdf = attach.SimplePDF("Richtlijn registratie bij aankomst", []string{"Registreer iedere aankomst binnen 24 uur in de BRP."})
	att, err := attach.Upload(fedtest.Call(t), pb.NewAttachmentServiceClient(e.ncc.Local(t)), "Richtlijn aankomst.pdf", bytes.NewReader(e.pdf), int64(len(e.pdf)), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	e.pdfSHA = att.Sha256
	guidance, _ := json.Marshal(map[string]any{"title": "Richtlijn registratie bij aankomst", "text": "Registreer iedere aankomst binnen 24 uur.", "attachments": []*pb.Attachment{att}})
	e.ncc.Put(t, &pb.Record{Id: "richtlijn-1", Kind: "guidance", Crisis: "oekraine", Region: "NL", Classification: pb.Classification_PUBLIC, Body: guidance})
	e.utrecht.Put(t, fedtest.Sitrep("regio-1", "oekraine", pb.Classification_INTERNAL, "Regionaal beeld VR Utrecht"))
	// VR Utrecht's own early-warning rule fires in its region: the picture shows it first. Put
	// by hand under an id the evaluator does not use, or its next tick would resolve it as the
	// alert of a rule the node does not hold.
	e.utrecht.Put(t, &pb.Record{Id: "handmatig-bedden-laag-VR09", Kind: "alert", Crisis: "oekraine", Region: "VR09", Classification: pb.Classification_INTERNAL,
		Labels: map[string]string{"rule": "bedden-laag", "status": "firing"}, Body: []byte(`{"identifier":"alert-bedden-laag-VR09","sender":"vr-utrecht.crisis.test",
		"sent":"2026-12-04T08:00:00+00:00","status":"Actual","msgType":"Alert","scope":"Restricted","info":[{"category":["Other"],"event":"bedden-laag",
		"urgency":"Expected","severity":"Severe","certainty":"Likely","headline":"Early-warning rule bedden-laag fires in VR09",
		"description":"Minder dan 25 vrije opvangplaatsen in de regio: zoek uitwijkmogelijkheden bij de buurregio's."}],
		"rule":"bedden-laag","rule_version":1,"region":"VR09","state":"firing","fired_at":"` + time.Now().Add(-40*time.Minute).UTC().Format(time.RFC3339) + `"}`)})

	want := map[string]map[string]bool{
		e.lcvs.TD.Name(): {"utrecht": true, "amersfoort": true, "middelburg": true, "rotterdam": true},
		e.ncc.TD.Name():  {"landelijk-1": true, "richtlijn-1": true},
	}
	fedtest.Eventually(t, 15*time.Second, "vr-utrecht holds what lcvs and ncc shared", func() (bool, string) {
		var got []string
		ok := true
		for origin, ids := range want {
			held := e.utrecht.Held(t, "oekraine", origin)
			got = append(got, origin+": "+fedtest.Describe(held))
			ok = ok && maps.Equal(keys(held), ids)
		}
		return ok, strings.Join(got, "; ")
	})
	return e
}

func keys(m map[string]int64) map[string]bool {
	out := map[string]bool{}
	for k := range m {
		out[k] = true
	}
	return out
}

// searchingFederation is the federation with officer-a signed in at vr-utrecht's web interface,
// the browser, and a search of vr-utrecht's search page for q, giving its status and page.
func searchingFederation(t *testing.T) (*fedEnv, *browser, func(q string) (int, string)) {
	e := startFederation(t)
	b := newBrowser(t)
	e.op.signInAs("officer-a")
	return e, b, func(q string) (int, string) {
		t.Helper()
		resp, page := b.get(t, e.url+"/zoeken?"+url.Values{"q": {q}}.Encode())
		return resp.StatusCode, page
	}
}

// TestSearchByWords: the search box finds records by the words in their text, here and at the
// partners, each with where it matched marked; words too short to look for are left out and
// named, and a query of nothing else, or with a phrase left open, is said to be wrong at the box.
func TestSearchByWords(t *testing.T) {
	e, b, search := searchingFederation(t)

	// "regio" is part of "Regionaal": only this node's own sitrep has both words.
	code, page := search("beeld in de regio")
	if code != http.StatusOK || !strings.Contains(page, "Resultaten (1)") || !strings.Contains(page, "regio-1") {
		t.Fatalf("search for beeld in de regio: %d, want this node's sitrep alone:\n%s", code, page)
	}
	if !strings.Contains(page, `"><mark>Regio</mark>naal <mark>beeld</mark> VR Utrecht</a>`) {
		t.Errorf("the hit does not show where it matched:\n%s", page)
	}
	if !strings.Contains(page, `id="genegeerd"><p class="utrecht-paragraph">Niet gezocht op “in”, “de”: woorden van minder dan 3 tekens`) {
		t.Errorf("the page does not say which words it left out:\n%s", page)
	}
	if !strings.Contains(page, `name="q" value="beeld in de regio"`) {
		t.Error("the search box does not keep the words searched for")
	}

	// Across the federation: this node's sitrep and ncc's, each marked.
	_, page = search("Beeld")
	if !strings.Contains(page, "Resultaten (2)") || !strings.Contains(page, "Landelijk <mark>beeld</mark> opvang Oekraïne</a>") ||
		!strings.Contains(page, "Regionaal <mark>beeld</mark> VR Utrecht</a>") || strings.Contains(page, `id="genegeerd"`) {
		t.Errorf("search for Beeld: want this node's sitrep and ncc's, nothing left out:\n%s", page)
	}
	// A guidance document's text, with a number too short to look for.
	_, page = search("aankomst binnen 24 uur")
	// A guidance document, by words of its title and its text; the match in its title is marked there.
	if !strings.Contains(page, "Resultaten (1)") || !strings.Contains(page, `>Richtlijn registratie bij <mark>aankomst</mark></a> <span class="kp-tag kp-tag--info">met bijlage</span>`) ||
		!strings.Contains(page, "Niet gezocht op “24”") {
		t.Errorf("search for aankomst binnen 24 uur: want ncc's guidance, 24 left out:\n%s", page)
	}
	if strings.Contains(page, "Gevonden in bijlage") {
		t.Errorf("search for aankomst binnen 24 uur matched in the record's own text, but the page says in its file:\n%s", page)
	}
	// A word only ncc's PDF holds: the hit says which file it is in, and links it, so that
	// nobody looks for the word in the record's text.
	fedtest.Eventually(t, 20*time.Second, "ncc took the PDF's text in", func() (bool, string) {
		state, err := e.ncc.Node.DB().FileTextState(t.Context(), e.pdfSHA)
		return state == "indexed", fmt.Sprintf("%q (%v)", state, err)
	})
	_, page = search("BRP")
	if !strings.Contains(page, "Resultaten (1)") || !strings.Contains(page, `<span class="kp-muted">Gevonden in bijlage <a class="utrecht-link" href="/bijlage?`) ||
		!strings.Contains(page, "sha256="+e.pdfSHA) || !strings.Contains(page, `" download>Richtlijn aankomst.pdf</a>:</span> `) || strings.Contains(page, "Gevonden in de tekst") {
		t.Errorf("search for BRP: want ncc's guidance, found in its PDF, the file linked:\n%s", page)
	}

	// A word that names a safety region offers the same search in that region, without the word.
	if _, page = search("opvang Zeeland"); !strings.Contains(page, `id="regio-aanbod"`) || !strings.Contains(page, `href="/zoeken?q=opvang&amp;region=VR19">Zoek in VR19 Zeeland</a>`) {
		t.Errorf("search for opvang Zeeland: want the search in VR19 offered:\n%s", page)
	}
	if _, page = search("aankomst"); strings.Contains(page, `id="regio-aanbod"`) {
		t.Error("a search that names no region offers one")
	}
	// The crisis as people write it is the one the records name; a name no record can have is
	// refused at the field, with the known crises; a name no record here has is searched, and said.
	withCrisis := func(crisis string) (int, string) {
		t.Helper()
		resp, page := b.get(t, e.url+"/zoeken?"+url.Values{"q": {"beeld"}, "crisis": {crisis}}.Encode())
		return resp.StatusCode, page
	}
	if code, page := withCrisis("Oekraïne"); code != http.StatusOK || !strings.Contains(page, "Resultaten (2)") || !strings.Contains(page, `name="crisis" value="oekraine"`) ||
		!strings.Contains(page, `<datalist id="zoek-crises"><option value="oekraine"></option>`) {
		t.Errorf("search in crisis Oekraïne: %d, want oekraine's two sitreps and the known crises offered:\n%s", code, page)
	}
	if code, page := withCrisis("Noord-Holland!"); code != http.StatusBadRequest || fieldError(page, "crisis") != "“Noord-Holland!” is geen crisisnaam: een crisis heet zoals de records haar noemen, in kleine letters zonder accenten. Bekende crises: oekraine." {
		t.Errorf("search in crisis Noord-Holland!: %d, want 400 at the field:\n%s", code, page)
	}
	if code, page := withCrisis("oekriane"); code != http.StatusOK || !strings.Contains(page, `id="onbekende-crisis"`) || !strings.Contains(page, "Resultaten (0)") ||
		!strings.Contains(page, `Bedoelde u <a class="utrecht-link" href="/zoeken?crisis=oekraine&amp;q=beeld">oekraine</a>?`) {
		t.Errorf("search in crisis oekriane: %d, want it searched, said that nothing here names it, and oekraine offered:\n%s", code, page)
	}
	if _, page := withCrisis("hoogwater"); strings.Contains(page, "Bedoelde u") {
		t.Errorf("search in crisis hoogwater offers another crisis:\n%s", page)
	}
	// A * as other search boxes take it: dropped, the word is found as part of longer ones.
	if _, page = search("aankomst*"); !strings.Contains(page, "Resultaten (1)") {
		t.Errorf("search for aankomst*: want ncc's guidance:\n%s", page)
	}

	// A misspelt word: nothing found, and the word of ncc's guidance, which this node holds a
	// copy of, offered; the link searches with it.
	if _, page = search("aankomts"); !strings.Contains(page, "Resultaten (0)") ||
		!strings.Contains(page, `id="bedoeld"><p class="utrecht-paragraph">Bedoelde u <a class="utrecht-link" href="/zoeken?q=aankomst"><strong>aankomst</strong></a>?</p>`) {
		t.Errorf("search for aankomts: want nothing found and aankomst offered:\n%s", page)
	}
	// Of two words, the one corrected is marked; the other reads as typed, folded.
	if _, page = search("Registratie aankomts"); !strings.Contains(page, `">registratie <strong>aankomst</strong></a>?</p>`) {
		t.Errorf("search for Registratie aankomts: want aankomst offered and marked beside registratie:\n%s", page)
	}
	if _, page = search("aankomst"); strings.Contains(page, `id="bedoeld"`) {
		t.Errorf("search for aankomst offers another word:\n%s", page)
	}
	// A question pasted whole, of 30 words: searched on what it is about, its frame named once.
	code, page = search("Wat moet er bij de registratie van iedere aankomst binnen 24 uur, en wat als het niet kan binnen 24 uur, wie moet dan nu de registratie en hoe dan?")
	if code != http.StatusOK || !strings.Contains(page, "Resultaten (1)") || !strings.Contains(page, "richtlijn-1") ||
		strings.Contains(page, `id="weggelaten"`) ||
		!strings.Contains(page, `id="vraagwoorden"><p class="utrecht-paragraph">Niet gezocht op “Wat”, “moet”, “bij”, “van”, “als”, “het”, “niet”, “kan”, “wie”, “dan”, “hoe”: die woorden`) {
		t.Errorf("search for a question of 30 words: %d, want ncc's guidance and the words left out named:\n%s", code, page)
	}

	for _, tc := range []struct{ q, want string }{
		{"in de", "Zoek op woorden van ten minste 3 tekens: “in”, “de” zijn te kort."},
		{"in", "Zoek op woorden van ten minste 3 tekens: “in” is te kort."},
		{`"opvang in`, "Een zinsdeel begint met een aanhalingsteken maar sluit niet af"},
		{strings.Repeat("opvang ", 80), "Dit is te lang om op te zoeken: zoek met minder woorden (ten hoogste 512 tekens)."},
		// In the page's language, not the node's.
		{`"" ***`, "Er staan geen woorden in om op te zoeken: typ een of meer woorden van minstens 3 letters of cijfers."},
		{"opvang \xff", "De zoekwoorden bevatten tekens die geen tekst zijn"},
	} {
		code, page := search(tc.q)
		if code != http.StatusBadRequest || !strings.Contains(page, tc.want) || !strings.Contains(page, `aria-invalid="true"`) || strings.Contains(page, "Resultaten (") {
			t.Errorf("search for %s: %d, want 400 with %q at the box and no results:\n%s", tc.q, code, tc.want, page)
		}
	}
}

// TestFilesOfARecord: a record page lists the files its record names, and each link saves the
// file as the partner sent it, never shown in the page's origin; a file the record does not name
// is refused, and so is a link that is not one.
func TestFilesOfARecord(t *testing.T) {
	e := startFederation(t)
	fedtest.Eventually(t, 20*time.Second, "vr-utrecht fetched ncc's PDF", func() (bool, string) {
		var out bytes.Buffer
		err := attach.Download(fedtest.Call(t), pb.NewAttachmentServiceClient(e.utrecht.Local(t)), e.ncc.TD.Name()+"/richtlijn-1", e.pdfSHA, nil, &out, nil)
		return err == nil, fmt.Sprint(err)
	})
	b := newBrowser(t)
	e.op.signInAs("officer-a")
	q := url.Values{"origin": {e.ncc.TD.Name()}, "id": {"richtlijn-1"}, "kind": {"guidance"}, "crisis": {"oekraine"}, "region": {"NL"}}
	resp, page := b.get(t, e.url+"/record?"+q.Encode())
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("record: %d\n%s", resp.StatusCode, page)
	}
	link := "/bijlage?" + url.Values{"id": {"richtlijn-1"}, "origin": {e.ncc.TD.Name()}, "sha256": {e.pdfSHA}}.Encode()
	href := regexp.MustCompile(`<a class="utrecht-link" href="([^"]*)" download>Richtlijn aankomst.pdf</a> <span class="kp-muted">PDF-document, 829 bytes</span>`).FindStringSubmatch(page)
	if !strings.Contains(page, `id="bijlagen">Bijlagen</h2>`) || href == nil || html.UnescapeString(href[1]) != link {
		t.Fatalf("the record page does not list the PDF to take (%s):\n%s", link, page)
	}
	if strings.Contains(page, `data-field="attachments"`) {
		t.Error("the record page shows the attachments field as well as the list")
	}
	// Printed, the record says its classification at the top and the bottom.
	if n := strings.Count(page, `<p class="kp-print-mark__class"><strong>openbaar</strong> · de rubricering van dit record`); n != 2 || !strings.Contains(page, `data-print hidden>Afdrukken</button>`) ||
		!strings.Contains(page, `<html lang="nl" data-marking="OPENBAAR"`) {
		t.Errorf("the record page has %d print marks of its classification, want 2, a print button and the marking for the page margins:\n%s", n, page)
	}

	resp, got := b.get(t, e.url+link)
	h := resp.Header
	if resp.StatusCode != http.StatusOK || got != string(e.pdf) {
		t.Fatalf("the file: %d, %d bytes; want ncc's PDF of %d bytes", resp.StatusCode, len(got), len(e.pdf))
	}
	if h.Get("Content-Type") != "application/pdf" || h.Get("Content-Disposition") != `attachment; filename="Richtlijn aankomst.pdf"` ||
		!strings.Contains(h.Get("Content-Security-Policy"), "sandbox") || h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Cache-Control") != "no-store" {
		t.Errorf("the file's headers: %v; want a PDF to save, sandboxed, not kept", h)
	}

	// An own record's file, by the link on its page.
	own := attach.SimplePDF("Draaiboek opvang", []string{"Eigen draaiboek van de veiligheidsregio."})
	att, err := attach.Upload(fedtest.Call(t), pb.NewAttachmentServiceClient(e.utrecht.Local(t)), "draaiboek.pdf", bytes.NewReader(own), int64(len(own)), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]any{"title": "Draaiboek opvang", "text": "Zie de bijlage.", "attachments": []*pb.Attachment{att}})
	e.utrecht.Put(t, &pb.Record{Id: "draaiboek", Kind: "guidance", Crisis: "oekraine", Region: "VR09", Classification: pb.Classification_INTERNAL, Body: body})
	_, page = b.get(t, e.url+"/record?id=draaiboek")
	href = regexp.MustCompile(`href="(/bijlage[^"]*)" download>draaiboek.pdf</a>`).FindStringSubmatch(page)
	if href == nil {
		t.Fatalf("the own record's page does not list its file:\n%s", page)
	}
	if resp, got := b.get(t, e.url+html.UnescapeString(href[1])); resp.StatusCode != http.StatusOK || got != string(own) {
		t.Errorf("the own record's file: %d, %d bytes; want its %d", resp.StatusCode, len(got), len(own))
	}

	for _, tc := range []struct {
		q    url.Values
		code int
	}{
		{url.Values{"origin": {e.ncc.TD.Name()}, "id": {"richtlijn-1"}, "sha256": {strings.Repeat("0", 64)}}, http.StatusNotFound},
		{url.Values{"origin": {e.ncc.TD.Name()}, "id": {"landelijk-1"}, "sha256": {e.pdfSHA}}, http.StatusNotFound},
		{url.Values{"origin": {e.ncc.TD.Name()}, "id": {"richtlijn-1"}, "sha256": {"../../etc/passwd"}}, http.StatusBadRequest},
		{url.Values{"sha256": {e.pdfSHA}}, http.StatusBadRequest},
	} {
		resp, page := b.get(t, e.url+"/bijlage?"+tc.q.Encode())
		if resp.StatusCode != tc.code || strings.Contains(page, "%PDF") {
			t.Errorf("/bijlage?%s: %d, want %d and no file", tc.q.Encode(), resp.StatusCode, tc.code)
		}
	}

	// A partner's replaced guidance links its successor by the successor's title, as the partner
	// shares it (review P, P11), and by its id where the successor is not shared.
	guide := func(id, title, next string) *pb.Record {
		body, _ := json.Marshal(map[string]string{"title": title, "text": "Zie de nieuwe versie.", "superseded_by": next})
		if next == "" {
			body, _ = json.Marshal(map[string]string{"title": title, "text": "Registreer binnen 12 uur."})
		}
		return &pb.Record{Id: id, Kind: "guidance", Crisis: "oekraine", Region: "NL", Classification: pb.Classification_PUBLIC, Body: body}
	}
	e.ncc.Put(t, guide("aankomst-2", "Richtlijn aankomst, tweede versie", ""))
	e.ncc.Put(t, guide("aankomst-1", "Richtlijn aankomst, eerste versie", "aankomst-2"))
	e.ncc.Put(t, guide("vertrek-1", "Richtlijn vertrek", "vertrek-geheim"))
	fedtest.Eventually(t, 15*time.Second, "vr-utrecht holds ncc's guidance", func() (bool, string) {
		held := e.utrecht.Held(t, "oekraine", e.ncc.TD.Name())
		return held["aankomst-1"] > 0 && held["aankomst-2"] > 0 && held["vertrek-1"] > 0, fedtest.Describe(held)
	})
	partner := func(id string) string { return url.Values{"origin": {e.ncc.TD.Name()}, "id": {id}}.Encode() }
	_, page = b.get(t, e.url+"/record?"+partner("aankomst-1"))
	if !strings.Contains(page, `Dit document is vervangen. Lees het nieuwe: <a class="utrecht-link" href="/record?`+html.EscapeString(partner("aankomst-2"))+`">Richtlijn aankomst, tweede versie</a>`) {
		t.Errorf("ncc's replaced guidance does not link its successor by title:\n%s", page)
	}
	_, page = b.get(t, e.url+"/record?"+partner("vertrek-1"))
	if !strings.Contains(page, `Lees het nieuwe: <a class="utrecht-link" href="/record?`+html.EscapeString(partner("vertrek-geheim"))+`">vertrek-geheim</a>`) {
		t.Errorf("ncc's guidance replaced by a record it does not share does not name the successor by its id:\n%s", page)
	}
}

// TestAttachmentOfAnExerciseRecord: an exercise record's page links its file in the exercise's
// mode, and the file downloads only in that mode (review 22 M4); the name it is saved under is
// the record's, whatever name a link asks for (L4).
func TestAttachmentOfAnExerciseRecord(t *testing.T) {
	e := startFederation(t)
	e.utrecht.Exercise(t, "oef-bijlage", false)
	pdf := attach.SimplePDF("Oefenkaart", []string{"Fictieve evacuatie van Zeeland."})
	att, err := attach.Upload(fedtest.Call(t), pb.NewAttachmentServiceClient(e.utrecht.Local(t)), "kaart.pdf", bytes.NewReader(pdf), int64(len(pdf)), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]any{"title": "Oefenkaart", "text": "Zie de bijlage.", "attachments": []*pb.Attachment{att}})
	e.utrecht.Put(t, &pb.Record{Id: "oef-kaart", Kind: "guidance", Crisis: "oekraine", Region: "VR09", Classification: pb.Classification_INTERNAL, Body: body,
		Status: pb.Status_EXERCISE, Exercise: "oef-bijlage"})
	b := newBrowser(t)
	e.op.signInAs("officer-a")
	_, page := b.get(t, e.url+"/record?id=oef-kaart&exercise=oef-bijlage")
	href := regexp.MustCompile(`href="(/bijlage[^"]*)" download>kaart.pdf</a>`).FindStringSubmatch(page)
	if href == nil {
		t.Fatalf("the exercise record's page does not list its file:\n%s", page)
	}
	link := html.UnescapeString(href[1])
	want := "/bijlage?" + url.Values{"exercise": {"oef-bijlage"}, "id": {"oef-kaart"}, "origin": {e.utrecht.TD.Name()}, "sha256": {att.Sha256}}.Encode()
	if link != want {
		t.Errorf("the file's link is %s, want %s", link, want)
	}
	resp, got := b.get(t, e.url+link+"&naam=rapport.bat")
	if resp.StatusCode != http.StatusOK || got != string(pdf) || resp.Header.Get("Content-Disposition") != "attachment; filename=kaart.pdf" {
		t.Errorf("the file in the exercise, with naam=rapport.bat: %d, %d bytes, %q; want its %d bytes saved as kaart.pdf", resp.StatusCode, len(got), resp.Header.Get("Content-Disposition"), len(pdf))
	}
	actual := "/bijlage?" + url.Values{"id": {"oef-kaart"}, "sha256": {att.Sha256}}.Encode()
	if resp, got := b.get(t, e.url+actual); resp.StatusCode != http.StatusNotFound || strings.Contains(got, "%PDF") {
		t.Errorf("the exercise's file without the exercise: %d; want 404 and no file", resp.StatusCode)
	}
}

// TestPictureOfAFederation: the picture shows the partners that answered, what they shared,
// the capacity per region, the phase; a record shows the field its source withheld as
// withheld, never its value; a partner that stops is shown as unreachable, served from cache.
func TestPictureOfAFederation(t *testing.T) {
	e := startFederation(t)
	b := newBrowser(t)
	e.op.signInAs("officer-a")
	resp, page := b.get(t, e.url+"/?crisis=oekraine")
	if resp.StatusCode != 200 {
		t.Fatalf("picture: %d\n%s", resp.StatusCode, page)
	}
	for _, want := range []string{
		`id="fase">lauw</span>`,
		"Olga Bakker", `<span id="rol">beveiligingsfunctionaris</span>`, "vr-utrecht (vr-utrecht.crisis.test)",
		// VR09: 14+6 free of 120+80; NL: 14+6+22+41 = 83 free of 560.
		`<td class="utrecht-table__cell kp-num">20</td>`, `<td class="utrecht-table__cell kp-num">200</td>`,
		`<td class="utrecht-table__cell kp-num">83</td>`, `<td class="utrecht-table__cell kp-num">560</td>`,
		"Landelijk beeld opvang Oekraïne", "Regionaal beeld VR Utrecht",
		// The guidance says it comes with a file.
		`Richtlijn registratie bij aankomst</a> <span class="kp-tag kp-tag--info">met bijlage</span>`,
		// The charts: VR17's 300 places are the longest bar (260 units), VR09's 200 two thirds;
		// each bar is labelled with its region's name.
		`<svg class="kp-chart__wide" viewBox="0 0 576 92" role="img" aria-labelledby="grafiek-0"`, `width="260.0" height="20"/>`, `width="173.3" height="20"/>`,
		// On a phone, the same bars, each name on a line of its own above its bar.
		`<svg class="kp-chart__narrow" viewBox="0 0 280 130" role="img" aria-labelledby="grafiek-0"`, `width="280.0" height="14"/>`, `width="186.7" height="14"/>`,
		`<text class="kp-chart__label kp-chart__label--narrow" x="0" y="58">VR17 Rotterdam-Rijnmond</text>`,
		`<text class="kp-chart__label" x="0" y="47">VR17 Rotterdam-Rijnmond</text>`,
		// Regions by their names; the latest records' sources by the names this node knows
		// them by, its own by its own.
		`region=VR17">VR17 Rotterdam-Rijnmond</a></th>`,
		"data-label=\"Soort\">Handreiking</td>\n      <td class=\"utrecht-table__cell\" role=\"cell\" data-label=\"Regio\">NL (heel Nederland)</td>\n      <td class=\"utrecht-table__cell\" role=\"cell\" data-label=\"Bron\">ncc</td>",
		"data-label=\"Soort\">Situatierapport</td>\n      <td class=\"utrecht-table__cell\" role=\"cell\" data-label=\"Regio\">NL (heel Nederland)</td>\n      <td class=\"utrecht-table__cell\" role=\"cell\" data-label=\"Bron\">vr-utrecht</td>",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the picture lacks %q", want)
		}
	}
	for _, p := range []string{"lcvs", "ncc"} {
		row := partnerRow(page, p)
		if !strings.Contains(row, "geantwoord") {
			t.Errorf("partner %s: want answered:\n%s", p, row)
		}
	}
	if strings.Contains(page, "onvolledig") {
		t.Error("the picture says it is incomplete while every partner answered")
	}

	// The record lcvs shared without its contact phone.
	q := url.Values{"origin": {e.lcvs.TD.Name()}, "id": {"utrecht"}}
	resp, page = b.get(t, e.url+"/record?"+q.Encode())
	if resp.StatusCode != 200 {
		t.Fatalf("record: %d\n%s", resp.StatusCode, page)
	}
	if !strings.Contains(page, `data-withheld="contact_phone">achtergehouden door de bron</span>`) || !strings.Contains(page, "<dd>Utrecht</dd>") {
		t.Errorf("the record does not show contact_phone as withheld:\n%s", page)
	}
	if strings.Contains(page, "123 4567") {
		t.Error("the record page shows the withheld phone number")
	}
	// How it came: under lcvs's policy, for the purpose this node states.
	if !strings.Contains(page, `id="beleid">lcvs-capaciteit@1</dd>`) {
		t.Errorf("the record page does not say under which policy it came:\n%s", page)
	}
	// Search on organisation: only lcvs's records. The policy each came under is on the
	// record's page, not in the results, where staff do not need it.
	_, page = b.get(t, e.url+"/zoeken?crisis=oekraine&org="+e.lcvs.TD.Name())
	if !strings.Contains(page, "Resultaten (4)") || strings.Contains(page, "lcvs-capaciteit@1") || strings.Contains(page, "Landelijk beeld") {
		t.Errorf("search on lcvs: want its four shelters, without their policy:\n%s", page)
	}
	if !strings.Contains(page, `href="/record?`+html.EscapeString(q.Encode())+`&amp;terug=`) {
		t.Errorf("search on lcvs: no link to /record?%s", q.Encode())
	}
	// An organisation that is no partner: said at the field, nobody asked.
	resp, page = b.get(t, e.url+"/zoeken?crisis=oekraine&org=elders.example")
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(page, `id="org-fout">elders.example is geen partner van dit knooppunt (meer)`) ||
		!strings.Contains(page, `aria-invalid="true" aria-describedby="org-fout"`) || strings.Contains(page, "Resultaten (") ||
		!strings.Contains(page, "<title>Fout: Zoeken · ") {
		t.Errorf("search on elders.example: %d, want 400 with the error at the organisation field:\n%s", resp.StatusCode, page)
	}
	// Only lcvs was asked: ncc disclosed nothing to that search.
	searches := e.utrecht.Audit(t, db.AuditSearch)
	if d := searches[len(searches)-1].Detail; !strings.Contains(d, `"peers":{"lcvs":"answered"}`) || !strings.Contains(d, `"origins":["`+e.lcvs.TD.Name()+`"]`) {
		t.Errorf("the search on lcvs asked %s, want lcvs alone", d)
	}
	_, page = b.get(t, e.url+"/zoeken?kind=shelter.capacity&crisis=oekraine&region=VR09")
	// Each partner's row links to the same search at that partner alone.
	only := "/zoeken?" + url.Values{"kind": {"shelter.capacity"}, "crisis": {"oekraine"}, "region": {"VR09"}, "org": {e.lcvs.TD.Name()}}.Encode()
	if !strings.Contains(page, `<a class="utrecht-link" href="`+html.EscapeString(only)+`" aria-label="Alleen bij lcvs zoeken">lcvs</a>`) {
		t.Errorf("search: lcvs's row does not link to %s:\n%s", only, page)
	}
	if _, page := b.get(t, e.url+only); !strings.Contains(page, "Resultaten (2)") || strings.Contains(page, `aria-label="Alleen bij`) {
		t.Errorf("search at lcvs alone: want its two VR09 shelters, and no links to narrow further:\n%s", page)
	}
	if !strings.Contains(page, "Resultaten (2)") || !strings.Contains(page, "1 veld achtergehouden") {
		t.Errorf("search: want the two VR09 shelters, each with a withheld field:\n%s", page)
	}
	// The region chosen in its list; each result's origin by the partner's name.
	if !strings.Contains(page, `<option value="VR09" selected>VR09 Utrecht</option>`) ||
		strings.Count(page, "data-label=\"Regio\">VR09 Utrecht</td>\n      <td class=\"utrecht-table__cell\" role=\"cell\" data-label=\"Herkomst\">lcvs</td>") != 2 {
		t.Errorf("search: want VR09 chosen, and two results from lcvs in VR09 Utrecht:\n%s", page)
	}
	// Each with its figures, read in the list.
	for _, want := range []string{
		`<p class="kp-figures"><span class="kp-figure">Opvangplaatsen totaal: <strong>120</strong></span> · <span class="kp-figure">Vrije opvangplaatsen: <strong>14</strong></span></p>`,
		`<p class="kp-figures"><span class="kp-figure">Opvangplaatsen totaal: <strong>80</strong></span> · <span class="kp-figure">Vrije opvangplaatsen: <strong>6</strong></span></p>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("search: a shelter's figures are not %s:\n%s", want, page)
		}
	}

	// The administrator's page: each peer answered, and its subscription's cursor has moved.
	// On a busy machine a subscription may be between two connections when the page is read:
	// the page is read again until both rows say so, within a deadline.
	ab := newBrowser(t)
	resp, page = e.signIn(t, ab, "ada", "/beheer")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the node's page: %d\n%s", resp.StatusCode, page)
	}
	searchEntries := func() int {
		t.Helper()
		resp, err := pb.NewAuditServiceClient(e.utrecht.Local(t)).List(fedtest.Call(t), &pb.ListAuditRequest{Action: "search", Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		return len(resp.Entries)
	}
	before := searchEntries()
	fedtest.Eventually(t, 15*time.Second, "the node's page shows each peer's subscription open, with a cursor and a delivery just now", func() (bool, string) {
		for _, p := range []string{"lcvs", "ncc"} {
			i := strings.Index(page, `data-peer="`+p+`"`)
			if i < 0 {
				t.Fatalf("the node's page has no row for %s:\n%s", p, page)
			}
			row := page[i : i+strings.Index(page[i:], "</tr>")]
			if !strings.Contains(row, `<span class="kp-tag kp-tag--ok">open</span> <span class="kp-muted">sinds `) || strings.Contains(row, `data-cursor="0"`) || !strings.Contains(row, "zojuist") {
				_, page = ab.get(t, e.url+"/beheer")
				return false, "peer " + p + ":\n" + row
			}
		}
		return true, ""
	})
	// A look at the page asks no partner: it is no search, audited here and at every partner in
	// the administrator's name (review W, L1). A search after it is audited once its entry is
	// applied, and so would the page's be by then, which came first.
	ab.get(t, e.url+"/beheer")
	b.get(t, e.url+"/zoeken?q=beeld")
	fedtest.Eventually(t, 10*time.Second, "the search after the page is audited", func() (bool, string) {
		n := searchEntries()
		return n > before, fmt.Sprint(n - before)
	})
	if after := searchEntries(); after != before+1 {
		t.Errorf("the node's page and one search made %d search audit entries, want 1: the page searched", after-before)
	}
	// It says the replica's SVID and until when, and links the policies waiting for an officer.
	if _, err := pb.NewPolicyServiceClient(e.utrecht.As(t, e.utrecht.Officers[0])).Propose(fedtest.Call(t), &pb.ProposeRequest{Source: []byte(sitrepPolicy)}); err != nil {
		t.Fatal(err)
	}
	if _, page := ab.get(t, e.url+"/beheer"); !strings.Contains(page, `id="wachtend"><a class="utrecht-link" href="/beleid?state=proposed">1 voorstel(len)</a>`) ||
		!regexp.MustCompile(`id="svid">spiffe:/<wbr>/<wbr>vr-utrecht\.<wbr>crisis\.<wbr>test/<wbr>node/<wbr>r1<br>geldig tot \d{4}-\d\d-\d\d \d\d:\d\d`).MatchString(page) {
		t.Errorf("the node's page does not link the waiting proposal, or say the SVID:\n%s", page)
	}

	// ncc stops: the picture says so, and serves what ncc sent before from the cache.
	e.ncc.Stop(t)
	_, page = b.get(t, e.url+"/?crisis=oekraine")
	row := partnerRow(page, "ncc")
	// Both its newest record's age and the age of the cache it is served from are shown.
	// The copy says until when it was complete, not an age alone that reads as fresh (review T, T10).
	if !strings.Contains(row, "onbereikbaar") || strings.Count(row, "zojuist") != 2 || !regexp.MustCompile(`volledig tot \d\d:\d\d \(zojuist\)`).MatchString(row) ||
		!regexp.MustCompile(`Het beeld is onvolledig: ncc antwoordt niet \(kopie volledig tot \d\d:\d\d\)`).MatchString(page) {
		t.Errorf("with ncc stopped: want it unreachable, and the picture incomplete, naming ncc and until when its copy was complete:\n%s", row)
	}
	if !strings.Contains(page, "Landelijk beeld opvang Oekraïne") {
		t.Error("with ncc stopped, what it sent before is gone from the picture")
	}
	// Its record's page shows the copy vr-utrecht holds, and says so; a record it does not hold
	// may exist, and the page says ncc does not answer rather than that there is none.
	resp, page = b.get(t, e.url+"/record?"+url.Values{"origin": {e.ncc.TD.Name()}, "id": {"landelijk-1"}}.Encode())
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "De bron antwoordde niet; dit is de laatst ontvangen versie.") {
		t.Errorf("ncc's record with ncc stopped: %d, want its cached copy, marked:\n%s", resp.StatusCode, page)
	}
	resp, page = b.get(t, e.url+"/record?"+url.Values{"origin": {e.ncc.TD.Name()}, "id": {"nooit-gedeeld"}}.Encode())
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(page, "De partner die dit record beheert is nu niet bereikbaar") {
		t.Errorf("a record ncc never shared, with ncc stopped: %d, want 502 saying ncc does not answer:\n%s", resp.StatusCode, page)
	}
	// An origin that is no partner: nothing to show.
	if resp, _ = b.get(t, e.url+"/record?origin=elders.example&id=landelijk-1"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("a record of an org that is no partner: %d, want 404", resp.StatusCode)
	}
}

// partnerRow is the partner table's row of name.
func partnerRow(page, name string) string {
	i := strings.Index(page, `scope="row">`+name)
	if i < 0 {
		return "(no row for " + name + ")"
	}
	j := strings.Index(page[i:], "</tr>")
	return page[i : i+j]
}

// signIn signs name in at vr-utrecht's web interface, starting at path.
func (e *fedEnv) signIn(t *testing.T, b *browser, name, path string) (*http.Response, string) {
	t.Helper()
	e.op.signInAs(name)
	return b.get(t, e.url+path)
}

// TestSearchAsStaffAsk: staff type the words that label figures and questions as questions
// (review P, P1 and P2): words of a kind's figures offer that kind's records; a question's frame
// words are not searched for, and named; when no record holds all the words, those that hold one
// or more are shown, and said to be.
func TestSearchAsStaffAsk(t *testing.T) {
	e, b, search := searchingFederation(t)
	// Words that name the figures of a kind offer the search of that kind (review P, P1): the
	// records hold the figures, not the words; with a region's name, in that region.
	if _, page := search("vrije opvangplaatsen Middelburg"); !strings.Contains(page, `id="soort-aanbod"`) ||
		!strings.Contains(page, `href="/zoeken?kind=shelter.capacity&amp;q=middelburg">Bekijk alle opvangcapaciteit</a>`) {
		t.Errorf("search for vrije opvangplaatsen Middelburg: want the search of Opvangcapaciteit offered:\n%s", page)
	}
	// Zeeland is the region, not the organisation named after it (review R, R2).
	if _, page := search("bedden Zeeland"); !strings.Contains(page, `href="/zoeken?kind=shelter.capacity&amp;region=VR19">Bekijk alle opvangcapaciteit</a>`) ||
		strings.Contains(page, `id="regio-aanbod"`) || strings.Contains(page, `id="org-aanbod"`) {
		t.Errorf("search for bedden Zeeland: want Opvangcapaciteit in VR19 offered, and no second offer:\n%s", page)
	}
	if resp, page := b.get(t, e.url+"/zoeken?kind=shelter.capacity&q=middelburg"); resp.StatusCode != http.StatusOK || !strings.Contains(page, "Resultaten (1)") || !strings.Contains(page, "Middelburg") {
		t.Errorf("the offered search of Opvangcapaciteit in Middelburg: %d, want LCVS's record:\n%s", resp.StatusCode, page)
	}
	// A word of a label alone (vrije) names no kind (review Q, Q10).
	if _, page := search("vrije dagen"); strings.Contains(page, `id="soort-aanbod"`) {
		t.Errorf("search for vrije dagen offers a kind:\n%s", page)
	}
	if _, page := search("aankomst"); strings.Contains(page, `id="soort-aanbod"`) || strings.Contains(page, `id="org-aanbod"`) {
		t.Error("a search that names no kind's figures, nor an organisation, offers one")
	}
	// A word that found nothing, of which crisis records often use another, offers that one
	// (review P, P10).
	if _, page := search("tuberculose"); !strings.Contains(page, `id="synoniem"`) || !strings.Contains(page, `<a class="utrecht-link" href="/zoeken?q=tbc">tbc</a>`) {
		t.Errorf("search for tuberculose: want tbc offered:\n%s", page)
	}
	if _, page := search("beeld"); strings.Contains(page, `id="synoniem"`) {
		t.Error("a search that found records offers another word")
	}
	// A word that names an organisation offers the search of its records alone (review P, P8).
	if _, page := search("ncc beeld"); !strings.Contains(page, `id="org-aanbod"`) || !strings.Contains(page, `href="/zoeken?org=ncc.crisis.test&amp;q=beeld">Zoek alleen bij ncc</a>`) {
		t.Errorf("search for ncc beeld: want the search of ncc's records offered:\n%s", page)
	}
	// A question typed as one (review P, P2): its frame words are not searched for, and named.
	if _, page := search("Wat is het regionaal beeld?"); !strings.Contains(page, "Resultaten (1)") || !strings.Contains(page, "regio-1") ||
		!strings.Contains(page, `id="vraagwoorden"><p class="utrecht-paragraph">Niet gezocht op “Wat”, “het”: die woorden staan in bijna elke vraag.`) {
		t.Errorf("search for Wat is het regionaal beeld?: want this node's sitrep, the frame words named:\n%s", page)
	}
	// No record holds all the words: those that hold one or more, here and at the partners, said,
	// and which word none of them holds (review R, R11).
	if _, page := search("beeld kwartelkoning"); !strings.Contains(page, "Resultaten (2)") || !strings.Contains(page, "Landelijk <mark>beeld</mark> opvang Oekraïne</a>") ||
		!strings.Contains(page, `id="enkele-woorden"><p class="utrecht-paragraph">Geen resultaten met al deze woorden samen. Hieronder staan resultaten met “beeld”, de beste eerst; geen ervan bevat “kwartelkoning”.`) {
		t.Errorf("search for beeld kwartelkoning: want both sitreps, with one of the words, said:\n%s", page)
	}
	// A title that holds the words comes before a record that holds them elsewhere (review P,
	// P6), whatever source it is from: this node's own sitrep, which says it in its summary, came
	// first.
	e.utrecht.Put(t, &pb.Record{Id: "dagrapport", Kind: "sitrep", Crisis: "oekraine", Region: "VR09", Classification: pb.Classification_INTERNAL,
		Body: []byte(`{"title":"Dagrapport","summary":"De opvang loopt."}`)})
	_, page := search("opvang")
	first := regexp.MustCompile(`(?s)id="resultaten".*?kp-card-title" role="cell"><a class="utrecht-link" href="[^"]*">(.*?)</a>`).FindStringSubmatch(page)
	if first == nil || first[1] != "Landelijk beeld <mark>opvang</mark> Oekraïne" {
		t.Errorf("search for opvang: first %q, want ncc's sitrep, whose title says it:\n%s", first, page)
	}
	// Of the records that hold some of the words, those that hold more come first: not the ones
	// that hold recht only inside Utrecht (review R, R1).
	e.ncc.Put(t, fedtest.Sitrep("vaccinatie-1", "oekraine", pb.Classification_PUBLIC, "Vaccinaties voor ontheemden"))
	_, page = search("Hebben ontheemden recht op vaccinaties?")
	first = regexp.MustCompile(`(?s)id="resultaten".*?kp-card-title" role="cell"><a class="utrecht-link" href="([^"]*)"`).FindStringSubmatch(page)
	if first == nil || !strings.Contains(first[1], "id=vaccinatie-1") || !strings.Contains(page, `id="enkele-woorden"`) {
		t.Errorf("search for Hebben ontheemden recht op vaccinaties?: first %q, want ncc's sitrep that holds two of the words:\n%s", first, page)
	}
	if _, page := search("Beeld"); strings.Contains(page, `id="enkele-woorden"`) || strings.Contains(page, `id="vraagwoorden"`) {
		t.Errorf("a search whose words all match says it matched one of them, or left out frame words:\n%s", page)
	}
}

// TestPictureNamesWhoDisagrees: a record another source reports otherwise is marked in the
// page's text, naming that source by the name this node knows it by: not in a tooltip only,
// which keyboard, touch and screen-reader users do not reach (WCAG 1.3.1); under it the page says
// what that source reports instead, with how long ago. A shelter whose figures two sources
// report otherwise, which the page shows only in its sums, is named under the sums with the
// figures of each: the one the sums count and the other's; one that two sources report with the
// same figures, differing in a note, is only counted there (review I, F3).
func TestPictureNamesWhoDisagrees(t *testing.T) {
	e := startFederation(t)
	// VR Utrecht writes a sitrep under the id of NCC's national one: an id is its own
	// organisation's, so the two are two entries, neither reporting the other otherwise (review
	// I, F25). Of Den Haag both write a sitrep, and VR Utrecht's, the later, is reported
	// otherwise by NCC. And VR Utrecht reports the beds in Middelburg that LCVS reports (60 in
	// all, 22 free) otherwise.
	e.utrecht.Put(t, fedtest.Sitrep("landelijk-1", "oekraine", pb.Classification_PUBLIC, "Landelijk beeld volgens VR Utrecht"))
	denHaag := func(id, title string) *pb.Record {
		return &pb.Record{Id: id, Kind: "sitrep", Crisis: "oekraine", Region: "VR15", Classification: pb.Classification_PUBLIC,
			Body: fmt.Appendf(nil, `{"municipality":"Den Haag","title":%q,"summary":"fedtest"}`, title)}
	}
	e.ncc.Put(t, denHaag("den-haag-ncc", "Den Haag volgens NCC"))
	fedtest.Eventually(t, 15*time.Second, "vr-utrecht holds ncc's sitrep of Den Haag", func() (bool, string) {
		held := e.utrecht.Held(t, "oekraine", e.ncc.TD.Name())
		return held["den-haag-ncc"] > 0, fedtest.Describe(held)
	})
	e.utrecht.Put(t, denHaag("den-haag", "Den Haag volgens VR Utrecht"))
	e.utrecht.Put(t, &pb.Record{Id: "opvang-middelburg", Kind: "shelter.capacity", Crisis: "oekraine", Region: "VR19", Classification: pb.Classification_INTERNAL,
		Body: []byte(`{"municipality":"Middelburg","beds_total":60,"beds_free":15}`)})
	// Of Rotterdam it reports LCVS's figures, with a note: that differs, and does not dispute.
	e.utrecht.Put(t, &pb.Record{Id: "opvang-rotterdam", Kind: "shelter.capacity", Crisis: "oekraine", Region: "VR17", Classification: pb.Classification_INTERNAL,
		Body: []byte(`{"municipality":"Rotterdam","beds_total":300,"beds_free":41,"notes":"geteld door VR Utrecht"}`)})
	b := newBrowser(t)
	e.op.signInAs("officer-a")
	_, page := b.get(t, e.url+"/?crisis=oekraine")
	if !strings.Contains(page, `Landelijk beeld volgens VR Utrecht</a></td>`) || !strings.Contains(page, `Landelijk beeld opvang Oekraïne</a></td>`) {
		t.Errorf("the picture does not list both organisations' sitrep landelijk-1, each as its own:\n%s", page)
	}
	if !strings.Contains(page, `Den Haag volgens VR Utrecht</a> <span class="kp-tag kp-tag--bad">ncc meldt het anders</span>`) {
		t.Errorf("the picture does not name who reports the record otherwise:\n%s", page)
	}
	nccSays := regexp.MustCompile(`Den Haag volgens VR Utrecht</a>.*\s*<ul class="utrecht-unordered-list">\s*<li><a class="utrecht-link" href="/record\?[^"]*">ncc meldt: [^<]*Den Haag volgens NCC[^<]*</a> <span class="kp-muted">\(<time datetime="[^"]+" title="[^"]+">(zojuist|1 min geleden)</time><span class="kp-visually-hidden kp-print-inline">, \d{1,2} [a-z]+ \d{4}, \d\d:\d\d</span>\)</span></li>`)
	if !nccSays.MatchString(page) {
		t.Errorf("the picture does not say, under the sitrep, what ncc reports instead:\n%s", page)
	}
	disputed := "(no block anders-gemeld)"
	if i := strings.Index(page, `id="anders-gemeld"`); i >= 0 {
		disputed = page[i : i+strings.Index(page[i:], "</div>")]
	}
	if !strings.Contains(disputed, "Bij 1 plaats melden bronnen andere cijfers.") || strings.Contains(disputed, "Rotterdam") ||
		!regexp.MustCompile(`>Middelburg</a> \(VR19 Zeeland\): vr-utrecht meldt: Opvangplaatsen totaal 60, Vrije opvangplaatsen 15 \(telt mee\)`).MatchString(disputed) ||
		!regexp.MustCompile(`>lcvs meldt: Opvangplaatsen totaal 60, Vrije opvangplaatsen 22</a> <span class="kp-muted">\(<time datetime="[^"]+" title="[^"]+">(zojuist|1 min geleden)</time><span class="kp-visually-hidden kp-print-inline">, \d{1,2} [a-z]+ \d{4}, \d\d:\d\d</span>\)</span>`).MatchString(disputed) {
		t.Errorf("the picture does not say, under the sums, what each source reports of Middelburg (and only of it):\n%s", disputed)
	}
	if !strings.Contains(page, `<p class="utrecht-paragraph kp-muted" id="elders-anders">Dezelfde cijfers, maar iets anders verschilt (een notitie, of een veld dat niet elke bron met u deelt) bij: Rotterdam (VR17 Rotterdam-Rijnmond).</p>`) {
		t.Errorf("the picture does not say that the sources report Rotterdam with the same figures, differing elsewhere:\n%s", page)
	}
	// Search marks the two reports of Middelburg as the picture does, the newest as such; of
	// Rotterdam, with the same figures, neither (review P, P3).
	_, page = b.get(t, e.url+"/zoeken?q=Middelburg&kind=shelter.capacity")
	// Each links the other (review R, R10).
	own := regexp.MustCompile(`href="/record\?id=opvang-middelburg[^"]*"><mark>Middelburg</mark></a> <span class="kp-tag kp-tag--bad">lcvs meldt andere cijfers</span> <span class="kp-tag kp-tag--info">nieuwste melding</span> <a class="utrecht-link kp-other-link" href="/record\?id=middelburg&amp;[^"]*">bekijk die melding</a>`)
	theirs := regexp.MustCompile(`href="/record\?id=middelburg[^"]*"><mark>Middelburg</mark></a> <span class="kp-tag kp-tag--bad">vr-utrecht meldt andere cijfers</span> <a class="utrecht-link kp-other-link" href="/record\?id=opvang-middelburg&amp;[^"]*">bekijk die melding</a> <span class="kp-tag kp-tag--info" title`)
	if !strings.Contains(page, "Resultaten (2)") || !own.MatchString(page) || !theirs.MatchString(page) {
		t.Errorf("search for Middelburg does not mark the two reports with other figures:\n%s", page)
	}
	if _, page = b.get(t, e.url+"/zoeken?q=Rotterdam&kind=shelter.capacity"); !strings.Contains(page, "Resultaten (2)") || strings.Contains(page, "meldt andere cijfers") {
		t.Errorf("search for Rotterdam marks reports of the same figures:\n%s", page)
	}
}

// TestPartnersByTheirNames: a partner whose config entry gives its organisation's name
// (org_name) is called by it wherever a source is shown, not by its peer name, with its trust
// domain after it on the record page.
func TestPartnersByTheirNames(t *testing.T) {
	e := startFederation(t)
	file := e.utrecht.ConfigFile()
	yaml, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	named := strings.Replace(string(yaml), "  - name: ncc\n", "  - name: ncc\n    org_name: \"Nationaal Crisiscentrum\"\n", 1)
	if named == string(yaml) {
		t.Fatalf("no peer ncc in vr-utrecht's config:\n%s", yaml)
	}
	if err := os.WriteFile(file, []byte(named), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := e.utrecht.Node.Reload(file); err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t)
	e.op.signInAs("officer-a")
	pages := map[string]string{
		"picture": "/?crisis=oekraine",
		"search":  "/zoeken?crisis=oekraine&q=landelijk",
		"record":  "/record?" + url.Values{"origin": {e.ncc.TD.Name()}, "id": {"landelijk-1"}}.Encode(),
	}
	for name, path := range pages {
		_, page := b.get(t, e.url+path)
		if !strings.Contains(page, "Nationaal Crisiscentrum") || regexp.MustCompile(`>\s*ncc\s*<`).MatchString(page) {
			t.Errorf("the %s calls ncc by its peer name, not Nationaal Crisiscentrum:\n%s", name, page)
		}
	}
	_, page := b.get(t, e.url+pages["record"])
	if !strings.Contains(page, `Nationaal Crisiscentrum <span class="kp-muted">(ncc.crisis.test)</span>`) {
		t.Errorf("the record page does not say its source's name, then its trust domain:\n%s", page)
	}
	// The search's choice of organisation offers it by its name too.
	_, page = b.get(t, e.url+"/zoeken")
	if !strings.Contains(page, `<option value="ncc.crisis.test">Nationaal Crisiscentrum</option>`) {
		t.Errorf("the search's organisation choice lacks ncc by its name:\n%s", page)
	}

	// A withheld field's tag says what it means; a search that finds nothing says what to try.
	_, page = b.get(t, e.url+"/zoeken?kind=shelter.capacity&region=VR09")
	if !strings.Contains(page, `title="Eén veld van dit record heeft de bron niet met u gedeeld.">1 veld achtergehouden</span>`) {
		t.Errorf("the withheld field's tag does not say what it means:\n%s", page)
	}
	_, page = b.get(t, e.url+"/zoeken?q=onvindbaarwoord")
	if !strings.Contains(page, `id="geen-resultaten">Geen resultaten voor ‘onvindbaarwoord’. Controleer de spelling`) {
		t.Errorf("a search without results does not say what to try next:\n%s", page)
	}
}

// shortPictures bounds the federation's pictures to 64 KiB, which the long sitrep (putLongSitrep)
// does not fit in.
func shortPictures(o *fedtest.Options) { o.PictureBytes = 64 << 10 }

// longSitrep is the title of the long sitrep putLongSitrep shares.
const longSitrep = "Uitgebreide situatieschets opvang"

// putLongSitrep has ncc share a sitrep with a summary of about 100 KiB, and waits until
// vr-utrecht holds it.
func (e *fedEnv) putLongSitrep(t *testing.T) {
	t.Helper()
	long, _ := json.Marshal(map[string]string{"title": longSitrep, "summary": strings.Repeat("Opvanglocaties melden hun bezetting per dagdeel. ", 2000)})
	e.ncc.Put(t, &pb.Record{Id: "landelijk-lang", Kind: "sitrep", Crisis: "oekraine", Region: "NL", Classification: pb.Classification_PUBLIC, Body: long})
	fedtest.Eventually(t, 15*time.Second, "vr-utrecht holds ncc's long sitrep", func() (bool, string) {
		held := e.utrecht.Held(t, "oekraine", e.ncc.TD.Name())
		return held["landelijk-lang"] > 0, fedtest.Describe(held)
	})
}

// TestPictureMarksShortenedEntries: when a crisis's picture is larger than its bound, the answer
// leaves out the long fields of the largest records (federation/search fit.go), and the page
// marks those records as shortened, naming the fields, and says how to see them whole; the
// records that were not shortened carry no mark, and the sums still count every record.
func TestPictureMarksShortenedEntries(t *testing.T) {
	e := startFederation(t, shortPictures)
	e.putLongSitrep(t)
	b := newBrowser(t)
	e.op.signInAs("officer-a")
	_, page := b.get(t, e.url+"/?crisis=oekraine")
	row := func(title string) string {
		i := strings.Index(page, ">"+title+"</a>")
		if i < 0 {
			t.Fatalf("the picture lacks %q:\n%s", title, page)
		}
		return page[i : i+strings.Index(page[i:], "</td>")]
	}
	if got := row(longSitrep); !strings.Contains(got, `<span class="kp-tag kp-tag--info kp-shortened">ingekort: Samenvatting</span>`) {
		t.Errorf("the long sitrep is not marked shortened, naming its summary: %s", got)
	}
	for _, title := range []string{"Landelijk beeld opvang Oekraïne", "Regionaal beeld VR Utrecht"} {
		if got := row(title); strings.Contains(got, "kp-shortened") {
			t.Errorf("%s is marked shortened: %s", title, got)
		}
	}
	if !strings.Contains(page, `id="ingekort">Ingekort: dit beeld laat de lange velden`) {
		t.Errorf("the picture does not say what shortened means:\n%s", page)
	}
	// The sums count lcvs's shelters as before: 14 + 6 free beds in VR09, 83 in all.
	for _, want := range []string{`<td class="utrecht-table__cell kp-num">20</td>`, `<td class="utrecht-table__cell kp-num">83</td>`} {
		if !strings.Contains(page, want) {
			t.Errorf("the sums changed with the shortened answer, %s is gone:\n%s", want, page)
		}
	}
}

// TestRuleAlertInThePagesLanguage: a rule's alert, whose CAP headline the node writes in English,
// is called by its rule's description, region and name in the page's language in the search
// results and on its record's page, as on the picture.
func TestRuleAlertInThePagesLanguage(t *testing.T) {
	e := startFederation(t)
	b := newBrowser(t)
	e.op.signInAs("officer-a")
	for _, path := range []string{"/zoeken?crisis=oekraine&kind=alert", "/record?id=handmatig-bedden-laag-VR09&origin=" + e.utrecht.TD.Name()} {
		_, page := b.get(t, e.url+path)
		// The alert's own headline, in English for any receiver, stays among the stored fields
		// alone: the record's page says it in Dutch (review F, F2).
		if !strings.Contains(page, "— VR09 Utrecht (regel bedden-laag)") || strings.Contains(page, "<title>Early-warning") || strings.Contains(page, ">Early-warning rule bedden-laag fires in VR09</") {
			t.Errorf("%s does not call the rule's alert in Dutch:\n%s", path, page)
		}
		if strings.HasPrefix(path, "/record") && !strings.Contains(page, ">Regel bedden-laag slaat aan in VR09 Utrecht</") {
			t.Errorf("%s does not give the rule's alert its headline in Dutch:\n%s", path, page)
		}
		// The alert's times (fired, sent) are said as the record's others are: 5 december 2026, 20:28.
		if strings.HasPrefix(path, "/record") && (!dutchWhen.MatchString(page) || isoCell.MatchString(page)) {
			t.Errorf("%s gives the alert's times not in words:\n%s", path, page)
		}
	}
}

// TestPictureShowsAlertsThatEnded: an alert whose rule resolved leaves the alerts in force and
// shows, for a shift, under "Opgeheven" with the time it cleared (review T, T1: it vanished, and
// one who looked away could not tell cleared from withdrawn); one that ended longer ago does not.
func TestPictureShowsAlertsThatEnded(t *testing.T) {
	e := startFederation(t)
	b := newBrowser(t)
	e.op.signInAs("officer-a")
	if _, page := b.get(t, e.url+"/?crisis=oekraine"); !strings.Contains(page, `id="waarschuwingen-blok"`) || strings.Contains(page, `id="opgeheven-blok"`) {
		t.Fatalf("the picture before: want the firing alert in force and none ended:\n%s", page)
	}
	resolved := func(id, rule string, cleared time.Time) *pb.Record {
		return &pb.Record{Id: id, Kind: "alert", Crisis: "oekraine", Region: "VR09", Classification: pb.Classification_INTERNAL,
			Labels: map[string]string{"rule": rule, "status": "resolved"}, Body: []byte(`{"identifier":"` + id + `","sender":"vr-utrecht.crisis.test",
		"sent":"2026-12-04T08:00:00+00:00","status":"Actual","msgType":"Update","scope":"Restricted","info":[{"category":["Other"],"event":"` + rule + `",
		"urgency":"Past","severity":"Severe","certainty":"Observed","headline":"Early-warning rule ` + rule + ` resolved in VR09",
		"description":"Minder dan 25 vrije opvangplaatsen in de regio: zoek uitwijkmogelijkheden bij de buurregio's."}],
		"rule":"` + rule + `","rule_version":1,"region":"VR09","state":"resolved","fired_at":"2026-12-04T07:00:00Z","resolved_at":"` + cleared.UTC().Format(time.RFC3339) + `"}`)}
	}
	cleared := time.Now().Add(-40 * time.Minute)
	e.utrecht.Put(t, resolved("handmatig-bedden-laag-VR09", "bedden-laag", cleared))
	e.utrecht.Put(t, resolved("handmatig-oud-VR09", "oud", time.Now().Add(-13*time.Hour)))
	_, page := b.get(t, e.url+"/?crisis=oekraine")
	block := "(no block opgeheven-blok)"
	if i := strings.Index(page, `id="opgeheven-blok"`); i >= 0 {
		block = page[i : i+strings.Index(page[i:], "</section>")]
	}
	want := regexp.MustCompile(`<h2 class="utrecht-heading-3" id="opgeheven">Opgeheven in de laatste 12 uur \(1\)</h2>\s*<ul class="kp-alert-list">\s*<li><span class="kp-tag kp-tag--ok">opgeheven om \d\d:\d\d \((40|41) min geleden\)</span>\s*<a class="utrecht-link" href="/record\?[^"]*id=handmatig-bedden-laag-VR09[^"]*">Minder dan 25 vrije opvangplaatsen in de regio: zoek uitwijkmogelijkheden bij de buurregio&#39;s — VR09 Utrecht \(regel bedden-laag\)</a>`)
	if strings.Contains(page, `id="waarschuwingen-blok"`) || !want.MatchString(block) || strings.Contains(block, "regel oud") {
		t.Errorf("the picture after the rule resolved: want no alert in force, and the one that cleared 40 minutes ago under Opgeheven, not the one of 13 hours ago:\n%s", page)
	}
}

var (
	dutchWhen = regexp.MustCompile(`\d{1,2} (januari|februari|maart|april|mei|juni|juli|augustus|september|oktober|november|december) \d{4}, \d{2}:\d{2}`)
	isoCell   = regexp.MustCompile(`>\d{4}-\d{2}-\d{2} \d{2}:\d{2}<`)
)

// TestSearchNamesWhoDidNotAnswer: with a partner down, the search says which partner did not
// answer and how old its copy is, as the picture does, and marks its results as the earlier copy
// (review P, P4: it said only that not all partners answered).
func TestSearchNamesWhoDidNotAnswer(t *testing.T) {
	e := startFederation(t)
	b := newBrowser(t)
	e.op.signInAs("officer-a")
	e.ncc.Stop(t)
	resp, page := b.get(t, e.url+"/zoeken?"+url.Values{"q": {"beeld"}}.Encode())
	if resp.StatusCode != http.StatusOK ||
		!regexp.MustCompile(`id="onvolledig"><p class="utrecht-paragraph">Het resultaat is onvolledig: ncc antwoordt niet \(kopie [^)]+\)\. Van hen staan hieronder de versies die zij eerder deelden`).MatchString(page) ||
		!regexp.MustCompile(`Landelijk <mark>beeld</mark> opvang Oekraïne</a>.*<span class="kp-tag kp-tag--warn">eerdere kopie</span>`).MatchString(page) {
		t.Errorf("search with ncc down: %d, want ncc named as not answering, its sitrep marked as the earlier copy:\n%s", resp.StatusCode, page)
	}
	// With nothing of its copy in the results, the warning does not point to it (review R, R9).
	_, page = b.get(t, e.url+"/zoeken?"+url.Values{"q": {"kwartelkoning"}}.Encode())
	if !regexp.MustCompile(`id="onvolledig"><p class="utrecht-paragraph">Het resultaat is onvolledig: ncc antwoordt niet \(kopie [^)]+\)\.</p>`).MatchString(page) {
		t.Errorf("search for kwartelkoning with ncc down: want ncc named, no pointer to results of its copy:\n%s", page)
	}
}

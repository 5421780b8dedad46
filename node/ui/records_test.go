package ui_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/knooppunt/knooppunt/node/config"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// records is the node's RecordService over its local socket: the gRPC API, beside the browser.
func (e *env) records(t *testing.T) pb.RecordServiceClient {
	t.Helper()
	return pb.NewRecordServiceClient(e.local(t))
}

// stored lists the node's own records of kind through the gRPC API.
func stored(t *testing.T, rc pb.RecordServiceClient, kind string) []*pb.Record {
	t.Helper()
	resp, err := rc.List(context.Background(), &pb.ListRequest{Kind: kind, PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return resp.Records
}

// shelterForm is a filled-in form for a shelter.capacity record; change overrides fields.
func shelterForm(csrf string, change map[string]string) url.Values {
	f := url.Values{"csrf": {csrf}, "kind": {"shelter.capacity"}, "id": {"zeist"}, "crisis": {"oekraine"}, "region": {"VR09"},
		"classification": {"internal"}, "labels": {"bron=gemeente"}, "body.municipality": {"Zeist"}, "body.beds_total": {"40"},
		"body.beds_free": {"12"}, "body.contact_phone": {""}}
	for k, v := range change {
		f.Set(k, v)
	}
	return f
}

// fieldError is the message the form shows at field, or "".
func fieldError(page, field string) string {
	i := strings.Index(page, `id="`+field+`-fout">`)
	if i < 0 {
		return ""
	}
	rest := page[i+len(`id="`+field+`-fout">`):]
	return html.UnescapeString(rest[:strings.Index(rest, "</p>")])
}

// inOrder reports whether s holds each of parts, in that order.
func inOrder(s string, parts ...string) bool {
	for _, p := range parts {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return true
}

// TestRecordForm: an editor creates a record with the form generated from its kind's schema; a
// bad value shows a message at its field and nothing is stored; the record created
// is visible through the gRPC API; a change goes in as the next version, and a stale one is
// refused; a reader's form is refused.
func TestRecordForm(t *testing.T) {
	e := start(t)
	rc := e.records(t)
	b := newBrowser(t)
	resp, page := e.signIn(t, b, "eva", "/records/nieuw")
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, `href="/records/nieuw?kind=shelter.capacity"`) {
		t.Fatalf("the choice of kind: %d\n%s", resp.StatusCode, page)
	}
	_, page = b.get(t, e.url+"/records/nieuw?kind=shelter.capacity")
	// The schema's properties, in its order, typed: a number field for beds_free.
	for _, want := range []string{`id="body.municipality" name="body.municipality"`, `id="body.beds_total-hint">Minstens 0.</p>`, `id="body.beds_total" name="body.beds_total" value="" inputmode="numeric"`,
		`id="body.beds_free"`, `id="body.contact_phone"`, `<textarea class="utrecht-textarea utrecht-textarea--html-textarea" id="body.notes"`} {
		if !strings.Contains(page, want) {
			t.Errorf("the form lacks %q", want)
		}
	}
	if strings.Index(page, `id="body.municipality"`) > strings.Index(page, `id="body.beds_free"`) {
		t.Error("the form does not follow the schema's order")
	}
	csrf := csrfOf(t, page)

	for _, tc := range []struct {
		name, field, want string
		change            map[string]string
	}{
		// What the kind's schema wants, in the person's words (the node's own refusal is English).
		{"below the minimum", "body.beds_free", "vul een waarde van minstens 0 in", map[string]string{"body.beds_free": "-3"}},
		{"a word for a number", "body.beds_total", "vul een geheel getal in, zoals 12", map[string]string{"body.beds_total": "veel"}},
		{"a required field left empty", "body.municipality", "vul dit veld in", map[string]string{"body.municipality": ""}},
		{"more free places than places", "body.beds_free", "mag niet meer zijn dan Opvangplaatsen totaal: controleer beide getallen", map[string]string{"body.beds_free": "300", "body.beds_total": "10"}},
		{"a bad crisis name", "crisis", "dit is geen geldige naam van een crisis: gebruik 1 tot 64 kleine letters", map[string]string{"crisis": "Oekraïne!"}},
		{"no crisis", "crisis", "vul dit veld in", map[string]string{"crisis": ""}},
		{"no region", "region", "geen veiligheidsregio", map[string]string{"region": ""}},
		{"a label without a value", "labels", "gebruik sleutel=waarde, gescheiden door komma's", map[string]string{"labels": "bron"}},
		{"no classification", "classification", "geen rubricering: gebruik openbaar, intern, vertrouwelijk of geheim", map[string]string{"classification": "staatsgeheim"}},
		{"a bad id", "id", "dit is geen geldig ID", map[string]string{"id": "-zeist"}},
	} {
		resp, page := b.post(t, e.url+"/records/nieuw", shelterForm(csrf, tc.change))
		if resp.StatusCode != http.StatusUnprocessableEntity {
			t.Errorf("%s: %d, want 422", tc.name, resp.StatusCode)
		}
		if got := fieldError(page, tc.field); !strings.Contains(got, tc.want) {
			t.Errorf("%s: the message at %s is %q, want %q\n%s", tc.name, tc.field, got, tc.want, page)
		}
		if !strings.Contains(page, `id="`+tc.field+`"`) || !strings.Contains(page, `id="niet-opgeslagen"`) {
			t.Errorf("%s: the form is not shown again with its summary", tc.name)
		}
		if !strings.Contains(page, "<title>Fout: Nieuw record · ") {
			t.Errorf("%s: the window's title does not say the form was refused", tc.name)
		}
		// What the person typed stays in the form.
		if !strings.Contains(page, `value="Zeist"`) && tc.field != "body.municipality" {
			t.Errorf("%s: the form lost the values typed", tc.name)
		}
	}
	// Every field the schema refuses at once, each at its field; the summary lists them by their
	// labels, in the form's order, and says how many.
	resp, page = b.post(t, e.url+"/records/nieuw", shelterForm(csrf, map[string]string{"body.beds_free": "-3", "body.beds_total": "veel", "body.municipality": ""}))
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("three wrong fields: %d, want 422", resp.StatusCode)
	}
	for field, want := range map[string]string{"body.beds_free": "minstens 0", "body.beds_total": "geheel getal", "body.municipality": "vul dit veld in"} {
		if got := fieldError(page, field); !strings.Contains(got, want) {
			t.Errorf("three wrong fields: the message at %s is %q, want %q", field, got, want)
		}
	}
	summary := page[strings.Index(page, `id="niet-opgeslagen"`):]
	summary = summary[:strings.Index(summary, "</div>")]
	if !strings.Contains(summary, "Verbeter de 3 velden") || strings.Contains(summary, `">body.`) ||
		!inOrder(summary, `href="#body.municipality">Gemeente</a>`, `href="#body.beds_total">Opvangplaatsen totaal</a>`, `href="#body.beds_free">Vrije opvangplaatsen</a>`) {
		t.Errorf("three wrong fields: the summary\n%s", summary)
	}
	if got := stored(t, rc, "shelter.capacity"); len(got) != 0 {
		t.Fatalf("refused forms stored %d records", len(got))
	}
	// Without its CSRF token the form is refused too.
	if resp, _ := b.post(t, e.url+"/records/nieuw", shelterForm("", nil)); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a form without its CSRF token: %d, want 403", resp.StatusCode)
	}

	resp, page = b.post(t, e.url+"/records/nieuw", shelterForm(csrf, nil))
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, `id="opgeslagen"`) || resp.Request.URL.Path != "/records/wijzigen" ||
		!strings.Contains(page, "<title>Opgeslagen: ") {
		t.Fatalf("save: %d at %s, want it saved and said in the title\n%s", resp.StatusCode, resp.Request.URL, page)
	}
	// Visible through the gRPC API, with the body typed by the schema.
	rec, err := rc.Get(context.Background(), &pb.GetRequest{Id: "zeist"})
	if err != nil {
		t.Fatalf("the record created with the form, through gRPC: %v", err)
	}
	if string(rec.Body) != `{"beds_free":12,"beds_total":40,"municipality":"Zeist"}` || rec.Labels["bron"] != "gemeente" || rec.Region != "VR09" ||
		rec.Classification != pb.Classification_INTERNAL || rec.Version != 1 {
		t.Errorf("the record through gRPC: %v", rec)
	}

	// The form for a new record does not overwrite one that has its ID.
	resp, page = b.post(t, e.url+"/records/nieuw", shelterForm(csrf, map[string]string{"body.beds_free": "0"}))
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(fieldError(page, "id"), "er is al een record met het ID zeist") {
		t.Errorf("a new record with a taken ID: %d\n%s", resp.StatusCode, fieldError(page, "id"))
	}

	// The list of own records, printed, says the highest classification of those it lists.
	_, page = b.get(t, e.url+"/records")
	if n := strings.Count(page, `<p class="kp-print-mark__class"><strong>intern</strong> · de hoogste rubricering van deze records`); n != 2 ||
		!strings.Contains(page, `data-marking="INTERN"`) {
		t.Errorf("the own records' list has %d print marks of intern, want 2, and the marking for the page margins:\n%s", n, page)
	}

	// A record opened from the own records' list leads back there, not to search.
	if _, page := b.get(t, e.url+"/record?id=zeist&terug=%2Frecords"); !strings.Contains(page, `href="/records" id="terug">Terug naar eigen records</a>`) {
		t.Errorf("the record page reached from the own records' list does not lead back there:\n%s", page)
	}
	if !strings.Contains(page, `terug=%2Frecords`) {
		t.Errorf("the own records' list does not link its records with the way back:\n%s", page)
	}

	// A page link the node no longer takes (an old one, or one of another mode) opens the first page.
	if resp, page := b.get(t, e.url+"/records?pagina=bm9wZQ"); resp.StatusCode != http.StatusOK || !strings.Contains(page, `/records/wijzigen?id=zeist`) {
		t.Errorf("the own records' list with a page token of another listing: %d\n%s", resp.StatusCode, page)
	}

	// Change it: the form comes filled in, and goes in as version 2.
	_, page = b.get(t, e.url+"/records/wijzigen?id=zeist")
	if !strings.Contains(page, `name="version" value="1"`) || !strings.Contains(page, `id="body.beds_free" name="body.beds_free" value="12"`) {
		t.Fatalf("the edit form is not filled in:\n%s", page)
	}
	f := shelterForm(csrf, map[string]string{"body.beds_free": "9", "version": "1"})
	if resp, page := b.post(t, e.url+"/records/wijzigen", f); resp.StatusCode != http.StatusOK || !strings.Contains(page, "versie 2") {
		t.Fatalf("change: %d\n%s", resp.StatusCode, page)
	}
	// The same form again holds version 1, which is stale now: refused, and nothing changes.
	resp, page = b.post(t, e.url+"/records/wijzigen", shelterForm(csrf, map[string]string{"body.beds_free": "1", "version": "1"}))
	if resp.StatusCode != http.StatusConflict || !strings.Contains(page, "iemand anders heeft het intussen gewijzigd. Nu staat versie 2, van ") ||
		!strings.Contains(page, `id="nieuwe-versie">Bekijk versie 2`) || !strings.Contains(page, `name="version" value="1"`) ||
		!strings.Contains(page, `id="body.beds_free" name="body.beds_free" value="1"`) || !strings.Contains(page, "<title>Fout: ") {
		t.Errorf("a stale change: %d, want 409 saying so, with the form as typed and its old version\n%s", resp.StatusCode, page)
	}
	// A change whose form lost its version, or garbled it, would overwrite whatever stands: it
	// is refused, and nothing changes.
	for _, version := range []string{"", "twee", "0"} {
		resp, page = b.post(t, e.url+"/records/wijzigen", shelterForm(csrf, map[string]string{"body.beds_free": "1", "version": version}))
		if resp.StatusCode != http.StatusUnprocessableEntity || fieldError(page, "id") != "het formulier zegt niet welke versie u wijzigt: open het record opnieuw en wijzig het daar" {
			t.Errorf("a change with version %q: %d, want 422 saying so at the id:\n%s", version, resp.StatusCode, page)
		}
	}
	if rec, _ := rc.Get(context.Background(), &pb.GetRequest{Id: "zeist"}); rec.GetVersion() != 2 || !strings.Contains(string(rec.GetBody()), `"beds_free":9`) {
		t.Errorf("after a stale change the record is %v", rec)
	}

	// A reader sees no form, and a form sent anyway is refused by the service.
	rb := newBrowser(t)
	resp, page = e.signIn(t, rb, "bram", "/records/nieuw?kind=shelter.capacity")
	if resp.StatusCode != http.StatusForbidden || strings.Contains(page, `id="nav-records"`) {
		t.Errorf("a reader's form page: %d\n%s", resp.StatusCode, page)
	}
	_, page = rb.get(t, e.url+"/")
	resp, _ = rb.post(t, e.url+"/records/nieuw", shelterForm(csrfOf(t, page), map[string]string{"id": "van-bram"}))
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("a reader's forged form: %d, want 403", resp.StatusCode)
	}
	if _, err := rc.Get(context.Background(), &pb.GetRequest{Id: "van-bram"}); err == nil {
		t.Error("a reader's forged form stored a record")
	}
	// A reader's form with a file is refused before the file is read (review web-adversary
	// L5): the answer comes while the file is still being sent.
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	sending := make(chan struct{})
	defer close(sending)
	go func() {
		mw.WriteField("csrf", csrfOf(t, page))
		fw, _ := mw.CreateFormFile("bijlagen", "groot.pdf")
		fw.Write(append([]byte("%PDF-1.4\n"), make([]byte, 1<<20)...))
		<-sending // the rest of the file never comes until the test ends
		pw.CloseWithError(io.ErrUnexpectedEOF)
	}()
	answered := make(chan int, 1)
	go func() {
		resp, err := rb.Post(e.url+"/records/nieuw", mw.FormDataContentType(), pr)
		if err != nil {
			answered <- 0
			return
		}
		resp.Body.Close()
		answered <- resp.StatusCode
	}()
	select {
	case code := <-answered:
		if code != http.StatusForbidden {
			t.Errorf("a reader's form with a file: %d, want 403", code)
		}
	case <-time.After(10 * time.Second):
		t.Error("a reader's form with a file is read to its end before it is refused")
	}
}

// TestReaderIsOfferedNoWrites: a reader who opens the own records' list (by a link: the menu does
// not offer it) reads it, but sees no new record, no file to load and no change, on the list or on
// a record's page, since the forms refuse them; an editor sees all three (review AL, AL12).
func TestReaderIsOfferedNoWrites(t *testing.T) {
	e := start(t)
	if _, err := e.records(t).Put(context.Background(), &pb.PutRequest{Record: &pb.Record{Id: "goes", Kind: "shelter.capacity", Crisis: "oekraine",
		Region: "VR19", Classification: pb.Classification_INTERNAL, Body: []byte(`{"municipality":"Goes","beds_total":120,"beds_free":7}`)}}); err != nil {
		t.Fatal(err)
	}
	writes := []string{`id="nieuw-record"`, `href="/records/nieuw`, `id="importeren"`, `href="/records/importeren"`, `/records/wijzigen`, `>Wijzigen<`}

	eb := newBrowser(t)
	resp, page := e.signIn(t, eb, "eva", "/records")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("an editor's own records: %d\n%s", resp.StatusCode, page)
	}
	for _, w := range writes {
		if !strings.Contains(page, w) {
			t.Errorf("an editor's own records do not offer %s:\n%s", w, page)
		}
	}
	if _, page := eb.get(t, e.url+"/record?id=goes&terug=%2Frecords"); !strings.Contains(page, `id="wijzigen" href="/records/wijzigen?id=goes"`) {
		t.Errorf("an editor's record page offers no change:\n%s", page)
	}

	rb := newBrowser(t)
	resp, page = e.signIn(t, rb, "bram", "/records")
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, `data-record="goes"`) || strings.Contains(page, `id="nav-records"`) {
		t.Fatalf("a reader's own records: %d, want the list, without the menu's link\n%s", resp.StatusCode, page)
	}
	if !strings.Contains(page, "Wijzigen doen de redacteuren en beheerders van de organisatie.") {
		t.Errorf("a reader's own records do not say who changes them:\n%s", page)
	}
	for _, w := range writes {
		if strings.Contains(page, w) {
			t.Errorf("a reader's own records offer %s:\n%s", w, page)
		}
	}
	resp, page = rb.get(t, e.url+"/record?id=goes&terug=%2Frecords")
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, `id="terug">Terug naar eigen records</a>`) {
		t.Errorf("a reader's record page: %d\n%s", resp.StatusCode, page)
	}
	for _, w := range writes {
		if strings.Contains(page, w) {
			t.Errorf("a reader's record page offers %s:\n%s", w, page)
		}
	}
	// What the links would have opened is refused to a reader anyway.
	for _, path := range []string{"/records/nieuw", "/records/importeren", "/records/wijzigen?id=goes"} {
		if resp, _ := rb.get(t, e.url+path); resp.StatusCode != http.StatusForbidden {
			t.Errorf("a reader's %s: %d, want 403", path, resp.StatusCode)
		}
	}
}

// TestEditKeepsWhatTheFormDoesNotShow: saving the edit form of a record keeps the fields of its
// body that the form has no field for (an attachments list, a field another system wrote), and
// says so on the form; a field the form shows and the person emptied goes.
func TestEditKeepsWhatTheFormDoesNotShow(t *testing.T) {
	e := start(t)
	rc := e.records(t)
	if _, err := rc.Put(context.Background(), &pb.PutRequest{Record: &pb.Record{Id: "zeist", Kind: "shelter.capacity", Crisis: "oekraine", Region: "VR09",
		Classification: pb.Classification_INTERNAL, Labels: map[string]string{"bron": "gemeente"},
		Body: []byte(`{"municipality":"Zeist","beds_total":40,"beds_free":12,"notes":"via LCMS","lcms_ref":"LCMS-42"}`)}}); err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t)
	_, page := e.signIn(t, b, "eva", "/records/wijzigen?id=zeist")
	if !strings.Contains(page, `id="blijft">Opslaan laat staan wat dit formulier niet toont: lcms_ref.</p>`) {
		t.Errorf("the edit form does not say that it keeps lcms_ref:\n%s", page)
	}
	f := shelterForm(csrfOf(t, page), map[string]string{"body.beds_free": "9", "version": "1", "body.notes": ""})
	if resp, page := b.post(t, e.url+"/records/wijzigen", f); resp.StatusCode != http.StatusOK || !strings.Contains(page, "versie 2") {
		t.Fatalf("change: %d\n%s", resp.StatusCode, page)
	}
	rec, err := rc.Get(context.Background(), &pb.GetRequest{Id: "zeist"})
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]any
	if err := json.Unmarshal(rec.Body, &body); err != nil {
		t.Fatal(err)
	}
	if body["lcms_ref"] != "LCMS-42" || body["beds_free"] != float64(9) || body["notes"] != nil {
		t.Errorf("after the edit the body is %s: want lcms_ref kept, beds_free 9 and no notes", rec.Body)
	}
}

// TestDocumentFormTellsItsDatesApart: a document's form has the record's end of validity and
// its content's own dates; each says which it is, so that nobody fills in one for the other.
func TestDocumentFormTellsItsDatesApart(t *testing.T) {
	e := start(t)
	b := newBrowser(t)
	_, page := e.signIn(t, b, "eva", "/records/nieuw?kind=qa")
	for _, want := range []string{`for="valid_until">Geldig tot <span class="kp-muted">(niet verplicht)</span></label>`, "Daarna telt het hele record als verlopen. Wanneer de inhoud geldt, vult u in bij Inhoud geldig vanaf en Inhoud geldig tot",
		`for="body.valid_until">Inhoud geldig tot`, `for="body.valid_from">Inhoud geldig vanaf`} {
		if !strings.Contains(page, want) {
			t.Errorf("the Q&A form lacks %q", want)
		}
	}
	if _, page := b.get(t, e.url+"/records/nieuw?kind=shelter.capacity"); strings.Contains(page, "Inhoud geldig") || strings.Contains(page, `id="valid_until-hint"`) {
		t.Errorf("the form of a kind without dates of its own speaks of them:\n%s", page)
	}
	// The list of own records marks a document no longer in force, as search does.
	if _, err := e.records(t).Put(context.Background(), &pb.PutRequest{Record: &pb.Record{Id: "qa-oud", Kind: "qa", Crisis: "oekraine", Region: "NL",
		Classification: pb.Classification_PUBLIC, Body: []byte(`{"question":"Mag ik werken?","answer":"Ja.","superseded_by":"qa-nieuw"}`)}}); err != nil {
		t.Fatal(err)
	}
	if _, page := b.get(t, e.url+"/records"); !strings.Contains(page, `>Mag ik werken?</a> <span class="kp-tag kp-tag--warn">vervangen</span>`) {
		t.Errorf("the own records' list does not mark the replaced Q&A:\n%s", page)
	}
}

// upload sends file as the form on the upload page does: the CSRF token first, then the
// defaults, then the file.
func upload(t *testing.T, b *browser, base, csrf, name, content string, defaults map[string]string) (*http.Response, string) {
	t.Helper()
	form := url.Values{"csrf": {csrf}}
	for k, v := range defaults {
		form.Set(k, v)
	}
	return postMultipart(t, b, base+"/records/importeren", form, sentFile{"bestand", name, []byte(content)})
}

// TestUpload: a CSV file is stored row by row, with a report of each refused row; an oversized
// upload is refused before it is read whole, and stores nothing.
func TestUpload(t *testing.T) {
	e := start(t)
	rc := e.records(t)
	b := newBrowser(t)
	resp, page := e.signIn(t, b, "eva", "/records/importeren")
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, `<progress id="voortgang"`) || !strings.Contains(page, `src="/assets/upload-progress.js"`) {
		t.Fatalf("the upload page: %d\n%s", resp.StatusCode, page)
	}
	csrf := csrfOf(t, page)
	// Each refused row says, in the person's words, every field that is wrong by its label.
	csv := "id,municipality,region,beds_total,beds_free\nhouten,Houten,VR09,30,4\nnergens,Nergens,VR99,10,-1\ngoes,Goes,VR19,25,7\n"
	resp, page = upload(t, b, e.url, csrf, "opvang.csv", csv, map[string]string{"kind": "shelter.capacity", "crisis": "oekraine", "classification": "internal"})
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Request.URL.Path, "/records/importeren/verslag") {
		t.Fatalf("upload: %d at %s\n%s", resp.StatusCode, resp.Request.URL, page)
	}
	if !strings.Contains(page, "2 regels opgeslagen, 1 geweigerd") || !strings.Contains(page, `data-line="3"`) ||
		!strings.Contains(page, "Regio: geen veiligheidsregio: gebruik VR01 tot en met VR25, of NL voor het hele land; Vrije opvangplaatsen: vul een waarde van minstens 0 in") {
		t.Errorf("the report:\n%s", page)
	}
	if got := stored(t, rc, "shelter.capacity"); len(got) != 2 {
		t.Errorf("the upload stored %d records, want 2", len(got))
	}
	// The example file of a kind: its columns, with semicolons as a Dutch spreadsheet has them;
	// filled in as a spreadsheet saves it, with a decimal comma, it loads.
	_, form := b.get(t, e.url+"/records/importeren")
	if !strings.Contains(form, `href="/records/importeren/voorbeeld?kind=shelter.capacity" download>Opvangcapaciteit</a>`) {
		t.Errorf("the upload page offers no example file of shelter.capacity:\n%s", form)
	}
	tresp, template := b.get(t, e.url+"/records/importeren/voorbeeld?kind=shelter.capacity")
	if !strings.HasPrefix(template, "\ufeffid;kind;crisis;region;classification;municipality;") || !strings.Contains(template, ";beds_total;beds_free") ||
		tresp.Header.Get("Content-Type") != "text/csv; charset=utf-8" || !strings.Contains(tresp.Header.Get("Content-Disposition"), "voorbeeld-shelter.capacity.csv") {
		t.Fatalf("the example file: %q %v", template, tresp.Header)
	}
	header := strings.Split(strings.TrimSpace(strings.TrimPrefix(template, "\ufeff")), ";")
	row := make([]string, len(header))
	for i, c := range header {
		row[i] = map[string]string{"id": "bunnik", "kind": "shelter.capacity", "crisis": "oekraine", "region": "VR09", "classification": "internal",
			"municipality": "Bunnik", "beds_total": "12", "beds_free": "3"}[c]
	}
	if resp, page := upload(t, b, e.url, csrf, "voorbeeld.csv", template+strings.Join(row, ";")+"\r\n", nil); !strings.Contains(page, "1 regel opgeslagen, 0 geweigerd") {
		t.Errorf("the filled-in example file: %d\n%s", resp.StatusCode, page)
	}
	if _, err := rc.Get(context.Background(), &pb.GetRequest{Id: "bunnik"}); err != nil {
		t.Errorf("the filled-in example file stored no bunnik: %v", err)
	}
	if _, err := rc.Delete(context.Background(), &pb.DeleteRequest{Id: "bunnik"}); err != nil {
		t.Fatal(err) // the counts below are of the first upload's records
	}
	// A spreadsheet whose columns are named in Dutch, as the form names the fields, loads too.
	dutch := "ID;Gemeente;Regio;Opvangplaatsen totaal;Vrije  opvangplaatsen;Rubricering\nwijk;Wijk bij Duurstede;VR09;25;3;intern\n"
	if resp, page := upload(t, b, e.url, csrf, "gemeenten.csv", dutch, map[string]string{"kind": "shelter.capacity", "crisis": "oekraine"}); !strings.Contains(page, "1 regel opgeslagen, 0 geweigerd") {
		t.Errorf("a file with Dutch column names: %d\n%s", resp.StatusCode, page)
	}
	if got, err := rc.Get(context.Background(), &pb.GetRequest{Id: "wijk"}); err != nil || string(got.Body) != `{"beds_free":3,"beds_total":25,"municipality":"Wijk bij Duurstede"}` || got.Region != "VR09" || got.Classification != pb.Classification_INTERNAL {
		t.Errorf("the file with Dutch column names stored %v, %v", got, err)
	}
	if _, err := rc.Delete(context.Background(), &pb.DeleteRequest{Id: "wijk"}); err != nil {
		t.Fatal(err)
	}
	// A comma in a text that is not quoted: the row is said to have a field too many, and how to
	// mend it.
	_, page = upload(t, b, e.url, csrf, "komma.csv", "id,municipality,region,beds_total,beds_free,notes\nbunnik,Bunnik,VR09,20,3,Sporthal, ingang B\n",
		map[string]string{"kind": "shelter.capacity", "crisis": "oekraine", "classification": "internal"})
	if !strings.Contains(page, "0 regels opgeslagen, 1 geweigerd") || !strings.Contains(page, "deze regel heeft 7 velden, de kopregel 6: staat er een komma in een tekst?") {
		t.Errorf("the report of a row with a comma:\n%s", page)
	}
	// Columns the file's reader cannot read: each said by its label, in the person's words.
	_, page = upload(t, b, e.url, csrf, "kolommen.csv", "id,municipality,region,beds_total,beds_free,classification,valid_until,labels,body\n"+
		"b-1,Bunnik,VR09,20,3,staatsgeheim,,,\n"+
		"b-2,Bunnik,VR09,20,3,intern,morgen,,\n"+
		"b-3,Bunnik,VR09,20,3,intern,,bron,\n"+
		"b-4,Bunnik,VR09,20,3,intern,,,[1]\n",
		map[string]string{"kind": "shelter.capacity", "crisis": "oekraine"})
	for _, want := range []string{"0 regels opgeslagen, 4 geweigerd", "Rubricering: geen rubricering: gebruik openbaar, intern, vertrouwelijk of geheim",
		"Geldig tot: geen datum en tijd: gebruik RFC 3339", "Labels: gebruik sleutel=waarde, gescheiden door puntkomma&#39;s", "Inhoud: geen JSON-object"} {
		if !strings.Contains(page, want) {
			t.Errorf("the report of rows with columns that cannot be read lacks %q:\n%s", want, page)
		}
	}
	// Lines the reader cannot read as a record: said in the person's words, with the id where
	// the line gave one.
	_, page = upload(t, b, e.url, csrf, "regels.jsonl", "{\"id\": \"j-1\", \"kind\": \n"+
		`{"id":"j-2","kind":"shelter.capacity","regio":"VR09"}`+"\n"+
		`{"id":"j-3","kind":"shelter.capacity","region":9}`+"\n"+
		`{"id":"j-4","kind":"shelter.capacity","valid_until":"morgen"}`+"\n",
		map[string]string{"kind": "shelter.capacity", "crisis": "oekraine"})
	for _, want := range []string{"0 regels opgeslagen, 4 geweigerd", "geen record: elke regel van een JSON Lines-bestand is één JSON-object",
		"een record heeft geen veld „regio”", "het veld „region” heeft een waarde van de verkeerde soort", "Geldig tot: geen datum en tijd",
		`<td class="utrecht-table__cell">j-2</td>`, `<td class="utrecht-table__cell">j-4</td>`} {
		if !strings.Contains(page, want) {
			t.Errorf("the report of JSON lines that are no records lacks %q:\n%s", want, page)
		}
	}
	_, page = upload(t, b, e.url, csrf, "aanhalingstekens.csv", "id,municipality,region,beds_total,beds_free\nk-1,Sporthal \"De Klup\",VR09,20,3\n", map[string]string{"kind": "shelter.capacity", "crisis": "oekraine"})
	if !strings.Contains(page, "een aanhalingsteken (&#34;) midden in een tekst") {
		t.Errorf("the report of a quote inside a text:\n%s", page)
	}
	_, page = upload(t, b, e.url, csrf, "open.csv", "id,municipality,region,beds_total,beds_free\nk-2,\"Sporthal,VR09,20,3\n", map[string]string{"kind": "shelter.capacity", "crisis": "oekraine"})
	if !strings.Contains(page, "een tekst tussen aanhalingstekens is niet goed afgesloten") {
		t.Errorf("the report of a quote not closed:\n%s", page)
	}
	// A file whose every row is refused: the report keeps its first rows, and says how many
	// more there were.
	_, page = upload(t, b, e.url, csrf, "leeg.jsonl", strings.Repeat("{}\n", 500+1234), map[string]string{"kind": "shelter.capacity", "crisis": "oekraine"})
	if n := strings.Count(page, "<tr class=\"utrecht-table__row\" data-line="); !strings.Contains(page, "0 regels opgeslagen, 1734 geweigerd") || n != 500 ||
		!strings.Contains(page, "Dit zijn de eerste 500 geweigerde regels; de 1.234 andere laat dit verslag weg.") {
		t.Errorf("the report of 1,734 refused rows shows %d of them:\n%.3000s", n, page)
	}

	// The report is the person's own: another person's browser cannot read it.
	other := newBrowser(t)
	e.signIn(t, other, "ada", "/")
	if r, _ := other.get(t, e.url+resp.Request.URL.RequestURI()); r.StatusCode != http.StatusNotFound {
		t.Errorf("another person opens the report: %d, want 404", r.StatusCode)
	}

	// Without the token first, nothing is read.
	if resp, _ := upload(t, b, e.url, "wrong", "opvang.csv", csv, nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("an upload without its CSRF token: %d, want 403", resp.StatusCode)
	}

	// Oversized, announced: refused on its Content-Length, before a byte of the body is read. The
	// request announces a gigabyte and sends a few bytes: a server that read on would wait.
	u, _ := url.Parse(e.url)
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	var cookies []string
	for _, c := range b.Jar.Cookies(u) {
		cookies = append(cookies, c.Name+"="+c.Value)
	}
	fmt.Fprintf(conn, "POST /records/importeren HTTP/1.1\r\nHost: %s\r\nCookie: %s\r\nContent-Type: multipart/form-data; boundary=x\r\nContent-Length: 1000000000\r\n\r\n--x\r\n",
		u.Host, strings.Join(cookies, "; "))
	r, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("an announced gigabyte: no answer before the body was sent: %v", err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("an announced gigabyte: %d, want 413", r.StatusCode)
	}

	// Oversized, not announced (chunked): refused once the limit is passed, and nothing stored.
	var big strings.Builder
	big.WriteString("id,municipality,region,beds_total,beds_free\n")
	for i := 0; big.Len() <= 17<<20; i++ {
		fmt.Fprintf(&big, "groot-%d,Plaats %d met een lange naam om de regel te vullen,VR09,100,50\n", i, i)
	}
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		mw.WriteField("csrf", csrf)
		fw, _ := mw.CreateFormFile("bestand", "groot.csv")
		io.WriteString(fw, big.String())
		mw.Close()
		pw.Close()
	}()
	req, _ := http.NewRequest("POST", e.url+"/records/importeren", pr)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err = b.Do(req)
	if err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(body), "groter dan 16 MB") {
			t.Errorf("an upload over the limit: %d\n%.2000s", resp.StatusCode, body)
		}
	}
	pr.Close()
	if got := stored(t, rc, "shelter.capacity"); len(got) != 2 {
		t.Errorf("after an upload over the limit the node holds %d records, want the 2 from before", len(got))
	}
}

// TestAdminPage: an admin sees the node's health, its Raft group and its peers; others get 403.
func TestAdminPage(t *testing.T) {
	e := start(t)
	b := newBrowser(t)
	resp, page := e.signIn(t, b, "ada", "/beheer")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the node's page: %d\n%s", resp.StatusCode, page)
	}
	for _, want := range []string{`id="raft-staat">leider</dd>`, `data-replica="`, `>leider</span>`, "VR Utrecht", `id="nav-beheer"`, "Dit knooppunt heeft geen partners.",
		"geen: draait alleen, zonder raft.listen"} { // start runs one replica without raft.listen
		if !strings.Contains(page, want) {
			t.Errorf("the node's page lacks %q", want)
		}
	}
	// What a host keeps an eye on (review W, L8): no backup taken yet, no policy waiting; the
	// disk with its reserve.
	for _, want := range []string{`id="laatste-backup">geen bekend op deze replica <span class="kp-tag kp-tag--warn">maak een backup (knooppunt backup)</span>`,
		`id="wachtend">geen</dd>`} {
		if !strings.Contains(page, want) {
			t.Errorf("the node's page lacks %q", want)
		}
	}
	if !regexp.MustCompile(`id="schijf">[0-9.,]+ MB vrij, reserve [0-9.,]+ MB`).MatchString(page) {
		t.Errorf("the node's page does not say the disk's room:\n%s", page)
	}
	// Exact times, with their zone: the page is read by hosts in more than one place.
	if !regexp.MustCompile(`<dd>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [A-Z+\-0-9]+</dd>`).MatchString(page) {
		t.Errorf("the node's page gives its start without a zone:\n%s", page)
	}
	for _, who := range []string{"anna", "eva"} {
		ob := newBrowser(t)
		resp, page := e.signIn(t, ob, who, "/beheer")
		if resp.StatusCode != http.StatusForbidden || strings.Contains(page, `id="nav-beheer"`) {
			t.Errorf("%s on the node's page: %d", who, resp.StatusCode)
		}
	}
}

// TestFormInStaffsWords: the choice of kind and the form say what a kind holds in staff's words,
// without the field names, standards or terms of the node's own (superseded_by, CAP 1.2).
func TestFormInStaffsWords(t *testing.T) {
	e := start(t)
	b := newBrowser(t)
	_, chooser := e.signIn(t, b, "eva", "/records/nieuw")
	_, form := b.get(t, e.url+"/records/nieuw?kind=qa")
	tags := regexp.MustCompile(`<[^>]*>`)
	for name, page := range map[string]string{"the choice of kind": chooser, "the form": form} {
		text := tags.ReplaceAllString(page, " ")
		for _, word := range []string{"superseded_by", "CAP 1.2", "episode", "schema"} {
			if strings.Contains(text, word) {
				t.Errorf("%s says %q:\n%s", name, word, page)
			}
		}
	}
	if !strings.Contains(form, "Het formulier vraagt wat bij deze soort hoort") {
		t.Errorf("the form does not say what it asks:\n%s", form)
	}
}

// TestFormPutsTheContentFirst: the editor's form starts with the kind's own fields; ID and labels
// fold under Geavanceerd, which opens when one of them is wrong; an optional field says so in its
// label, never in its hint; and the form can be left without saving.
func TestFormPutsTheContentFirst(t *testing.T) {
	e := start(t)
	b := newBrowser(t)
	_, page := e.signIn(t, b, "eva", "/records/nieuw?kind=shelter.capacity")
	first := regexp.MustCompile(`<(?:input|select|textarea) class="utrecht-[^"]*" id="([^"]+)"`).FindStringSubmatch(page)
	if first == nil || first[1] != "body.municipality" {
		t.Errorf("the form's first field is %v, want body.municipality:\n%s", first, page)
	}
	adv := strings.Index(page, `<details class="kp-details" id="geavanceerd">`)
	if adv < 0 || strings.Index(page, `id="id"`) < adv || strings.Index(page, `id="labels"`) < adv || strings.Index(page, `id="crisis"`) > adv {
		t.Errorf("ID and labels are not folded under Geavanceerd, closed, after the rest:\n%s", page)
	}
	if strings.Contains(page, "Niet verplicht") || !strings.Contains(page, `for="labels">Labels <span class="kp-muted">(niet verplicht)</span>`) {
		t.Errorf("an optional field does not say so in its label alone:\n%s", page)
	}
	if !strings.Contains(page, `href="/records" id="annuleren">Annuleren</a>`) {
		t.Errorf("the new record's form has no way out:\n%s", page)
	}
	csrf := csrfOf(t, page)
	_, page = b.post(t, e.url+"/records/nieuw", shelterForm(csrf, map[string]string{"labels": "bron"}))
	if !strings.Contains(page, `<details class="kp-details" id="geavanceerd" open>`) {
		t.Errorf("a wrong label is folded away:\n%s", page)
	}
	// A change goes back to the record.
	if _, err := e.records(t).Put(context.Background(), &pb.PutRequest{Record: &pb.Record{Id: "zeist", Kind: "shelter.capacity", Crisis: "oekraine",
		Region: "VR09", Classification: pb.Classification_INTERNAL, Body: []byte(`{"municipality":"Zeist","beds_total":40,"beds_free":3}`)}}); err != nil {
		t.Fatal(err)
	}
	_, page = b.get(t, e.url+"/records/wijzigen?id=zeist")
	if !strings.Contains(page, `href="/record?id=zeist&amp;origin=" id="annuleren">Terug naar het record</a>`) {
		t.Errorf("the edit page has no way back to the record:\n%s", page)
	}
}

// TestRecordFormOnALowDisk: a record the node refuses because its disk is under the reserve
// (limits.disk_reserve_mib, here larger than any disk) is said so in the person's words, with
// what to do, and the form keeps what was typed.
func TestRecordFormOnALowDisk(t *testing.T) {
	reserve := int64(1 << 30)
	e := start(t, func(c *config.Config) { c.Limits.DiskReserveMiB = &reserve })
	b := newBrowser(t)
	_, page := e.signIn(t, b, "eva", "/records/nieuw?kind=shelter.capacity")
	resp, page := b.post(t, e.url+"/records/nieuw", shelterForm(csrfOf(t, page), nil))
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("a record under the reserve: %d, want 422", resp.StatusCode)
	}
	if !strings.Contains(page, "de schijf van het knooppunt is bijna vol") || !strings.Contains(page, `value="Zeist"`) {
		t.Errorf("the form does not say the disk is almost full, or lost what was typed:\n%s", page)
	}
	if recs := stored(t, e.records(t), "shelter.capacity"); len(recs) != 0 {
		t.Errorf("stored %v under the reserve", recs)
	}
}

package ui_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"maps"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/knooppunt/knooppunt/federation/fedtest"
	"github.com/knooppunt/knooppunt/node/attach"
	"github.com/knooppunt/knooppunt/node/record"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// sentFile is a file a form sends, in its field.
type sentFile struct {
	field, name string
	content     []byte
}

// postMultipart sends a form as a browser sends one with enctype multipart/form-data: the CSRF
// token first, then the other fields (sorted), then the files.
func postMultipart(t *testing.T, b *browser, u string, form url.Values, files ...sentFile) (*http.Response, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	mw.WriteField("csrf", form.Get("csrf"))
	for _, k := range slices.Sorted(maps.Keys(form)) {
		for _, v := range form[k] {
			if k != "csrf" {
				mw.WriteField(k, v)
			}
		}
	}
	for _, f := range files {
		fw, _ := mw.CreateFormFile(f.field, f.name)
		fw.Write(f.content)
	}
	mw.Close()
	resp, err := b.Post(u, mw.FormDataContentType(), &buf)
	if err != nil {
		t.Fatalf("POST %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// picked is a file picked in the record form's file input.
func picked(name string, content []byte) sentFile { return sentFile{"bijlagen", name, content} }

func sha(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// filesOf are the files rec names.
func filesOf(t *testing.T, rec *pb.Record) []record.Attachment {
	t.Helper()
	files, err := record.Attachments(rec.Body)
	if err != nil {
		t.Fatalf("the attachments of %s: %v", rec.Id, err)
	}
	return files
}

// download takes the file the page links as name, and returns its bytes.
func download(t *testing.T, b *browser, base, page, name string) []byte {
	t.Helper()
	m := regexp.MustCompile(`href="(/bijlage\?[^"]+)" download>` + regexp.QuoteMeta(name) + `</a>`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("the page links no file %s:\n%s", name, page)
	}
	resp, body := b.get(t, base+html.UnescapeString(m[1]))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the download of %s: %d\n%s", name, resp.StatusCode, body)
	}
	return []byte(body)
}

// png is the start of a PNG image, as the node sniffs one.
var png = append([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), bytes.Repeat([]byte{1}, 200)...)

// TestFormAttachesFiles: an editor adds a PDF to a new record with its form; the node stores it
// as hers, the record's page lists it, and its link gives the same bytes. Changing the record
// adds an image and takes the PDF off, by its box, while a field the form does not show stays;
// a change that touches no file keeps the record's files.
func TestFormAttachesFiles(t *testing.T) {
	e := start(t)
	rc := e.records(t)
	b := newBrowser(t)
	_, page := e.signIn(t, b, "eva", "/records/nieuw?kind=shelter.capacity")
	for _, want := range []string{`enctype="multipart/form-data"`, `<legend class="utrecht-form-fieldset__legend">Bijlagen</legend>`,
		`<label class="utrecht-form-label" for="bijlagen">Bestanden toevoegen <span class="kp-muted">(niet verplicht)</span></label>`,
		`id="bijlagen-hint">Een of meer bestanden: PDF-document, Word-document, Excel-werkblad,`, "Samen hoogstens 52,4 MB per keer opslaan",
		`<input class="kp-file" type="file" id="bijlagen" name="bijlagen" multiple accept=".pdf,.docx,.xlsx,.pptx,.odt,.ods,.doc,.ppt,.xls,.png,.jpeg,.jpg,.gif,.webp,.log,.md,.text,.txt,.csv" aria-describedby="bijlagen-hint">`} {
		if !strings.Contains(page, want) {
			t.Errorf("the new record's form lacks %q", want)
		}
	}
	csrf := csrfOf(t, page)
	pdf := attach.SimplePDF("Draaiboek opvang Zeist", []string{"Sporthal De Koppel, vanaf vrijdag."})
	resp, page := postMultipart(t, b, e.url+"/records/nieuw", shelterForm(csrf, nil), picked("draaiboek.pdf", pdf))
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, `id="opgeslagen"`) {
		t.Fatalf("save with a PDF: %d\n%s", resp.StatusCode, page)
	}
	rec, err := rc.Get(context.Background(), &pb.GetRequest{Id: "zeist"})
	if err != nil {
		t.Fatal(err)
	}
	if files := filesOf(t, rec); len(files) != 1 || files[0] != (record.Attachment{SHA256: sha(pdf), Size: int64(len(pdf)), MediaType: attach.PDF, Filename: "draaiboek.pdf"}) {
		t.Fatalf("the record saved with a PDF names %+v", files)
	}
	_, page = b.get(t, e.url+"/record?id=zeist")
	if !strings.Contains(page, `<h2 class="utrecht-heading-2" id="bijlagen">Bijlagen</h2>`) {
		t.Errorf("the record's page lists no files:\n%s", page)
	}
	if got := download(t, b, e.url, page, "draaiboek.pdf"); !bytes.Equal(got, pdf) {
		t.Errorf("the PDF downloaded from the record's page has %d bytes, not the %d uploaded", len(got), len(pdf))
	}

	// Another system adds a field the form does not show.
	var body map[string]any
	json.Unmarshal(rec.Body, &body)
	body["lcms_ref"] = "LCMS-42"
	rec.Body, _ = json.Marshal(body)
	if _, err := rc.Put(context.Background(), &pb.PutRequest{Record: rec}); err != nil {
		t.Fatal(err)
	}
	_, page = b.get(t, e.url+"/records/wijzigen?id=zeist")
	if !strings.Contains(page, `<input class="utrecht-checkbox utrecht-checkbox--html-input" type="checkbox" id="verwijder-0" name="verwijder" value="`+sha(pdf)+`">`) ||
		!strings.Contains(page, `for="verwijder-0">Verwijderen<span class="kp-visually-hidden"> draaiboek.pdf</span></label>`) ||
		!strings.Contains(page, `id="blijft">Opslaan laat staan wat dit formulier niet toont: lcms_ref.</p>`) {
		t.Fatalf("the edit form does not list the PDF with a box to take it off, or names it among what it keeps:\n%s", page)
	}
	// A change that touches no file keeps them.
	f := shelterForm(csrf, map[string]string{"version": "2", "body.beds_free": "10"})
	if resp, page := postMultipart(t, b, e.url+"/records/wijzigen", f); resp.StatusCode != http.StatusOK || !strings.Contains(page, "versie 3") {
		t.Fatalf("a change without files: %d\n%s", resp.StatusCode, page)
	}
	rec, _ = rc.Get(context.Background(), &pb.GetRequest{Id: "zeist"})
	if files := filesOf(t, rec); len(files) != 1 || files[0].SHA256 != sha(pdf) || !strings.Contains(string(rec.Body), `"lcms_ref":"LCMS-42"`) {
		t.Fatalf("a change that touched no file left %s", rec.Body)
	}
	// Add an image, take the PDF off.
	f = shelterForm(csrf, map[string]string{"version": "3", "verwijder": sha(pdf)})
	if resp, page := postMultipart(t, b, e.url+"/records/wijzigen", f, picked("kaart.png", png)); resp.StatusCode != http.StatusOK || !strings.Contains(page, "versie 4") {
		t.Fatalf("a change that adds an image and takes the PDF off: %d\n%s", resp.StatusCode, page)
	}
	rec, _ = rc.Get(context.Background(), &pb.GetRequest{Id: "zeist"})
	if files := filesOf(t, rec); len(files) != 1 || files[0].Filename != "kaart.png" || files[0].SHA256 != sha(png) || files[0].MediaType != "image/png" ||
		!strings.Contains(string(rec.Body), `"lcms_ref":"LCMS-42"`) || !strings.Contains(string(rec.Body), `"beds_free":12`) {
		t.Fatalf("after the change the body is %s: want kaart.png alone, lcms_ref kept", rec.Body)
	}
	_, page = b.get(t, e.url+"/record?id=zeist")
	if strings.Contains(page, "draaiboek.pdf") {
		t.Error("the record's page still lists the PDF taken off")
	}
	if got := download(t, b, e.url, page, "kaart.png"); !bytes.Equal(got, png) {
		t.Errorf("the image downloaded has %d bytes, not the %d uploaded", len(got), len(png))
	}
	// Taking the last file off leaves no attachments field.
	f = shelterForm(csrf, map[string]string{"version": "4", "verwijder": sha(png)})
	if resp, page := postMultipart(t, b, e.url+"/records/wijzigen", f); resp.StatusCode != http.StatusOK {
		t.Fatalf("taking the last file off: %d\n%s", resp.StatusCode, page)
	}
	if rec, _ = rc.Get(context.Background(), &pb.GetRequest{Id: "zeist"}); strings.Contains(string(rec.Body), "attachments") {
		t.Errorf("with its last file taken off the body is %s", rec.Body)
	}
}

// TestFormRefusesFiles: a file the node would not take is refused on the form, in the person's
// words, naming the file and what to do; what was typed stays, the files picked beside it are to
// be picked again, and the record does not change. The limits are the node's as configured: a
// lower attachments.max_bytes is in the hint, and refuses a larger file.
func TestFormRefusesFiles(t *testing.T) {
	e := start(t)
	rc := e.records(t)
	b := newBrowser(t)
	_, page := e.signIn(t, b, "eva", "/records/nieuw?kind=shelter.capacity")
	csrf := csrfOf(t, page)
	pdf := attach.SimplePDF("Draaiboek", []string{"Sporthal De Koppel."})
	if resp, page := postMultipart(t, b, e.url+"/records/nieuw", shelterForm(csrf, nil), picked("draaiboek.pdf", pdf)); resp.StatusCode != http.StatusOK {
		t.Fatalf("save: %d\n%s", resp.StatusCode, page)
	}
	before, err := rc.Get(context.Background(), &pb.GetRequest{Id: "zeist"})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "node.yaml")
	yaml := "org: " + testOrg + "\nroles:\n  - {id: spiffe://" + testOrg + "/user/eva, role: editor}\nattachments:\n  max_bytes: 300000\n"
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := e.node.Reload(file); err != nil {
		t.Fatal(err)
	}
	if _, page := b.get(t, e.url+"/records/wijzigen?id=zeist"); !strings.Contains(page, "Samen hoogstens 300 kB per keer opslaan") {
		t.Errorf("the form does not say the node's limit of 300 kB:\n%s", page)
	}
	good := attach.SimplePDF("Kaart", []string{"Route naar de sporthal."})
	large := append(bytes.Clone(pdf), bytes.Repeat([]byte{' '}, 400_000)...)
	for _, tc := range []struct {
		name    string
		content []byte
		want    string
	}{
		{"rooster.pdf", append([]byte("\x7fELF\x02\x01\x01"), make([]byte, 100)...), "rooster.pdf is een programma: programma's worden nooit opgeslagen"},
		{"instructies.bat", []byte("Lees dit eerst.\n"), "instructies.bat eindigt op .bat, de naam van een programma of van actieve inhoud"},
		{"foto.png", pdf, "De naam foto.png past niet bij wat erin zit: PDF-document. Geef het bestand de extensie die daarbij hoort (.pdf) en kies het opnieuw."},
		{"plattegrond.pdf", append([]byte("\x89PNG\r\n\x1a\n"), make([]byte, 100)...), "De naam plattegrond.pdf past niet bij wat erin zit: Afbeelding (PNG). Geef het bestand de extensie die daarbij hoort (.png) en kies het opnieuw."},
		{"notitie.txt", []byte("<!DOCTYPE html><html><body>Zie bijlage</body></html>"), "De naam notitie.txt past niet bij wat erin zit: text/html; charset=utf-8. Kies het bestand dat u bedoelde"},
		{"archief.zip", append([]byte("PK\x03\x04"), make([]byte, 100)...), "archief.zip is een ZIP-archief, en dat neemt dit knooppunt niet aan. Sla het op als een van deze soorten: PDF-document, Word-document"},
		{"leeg.pdf", nil, "leeg.pdf is leeg: kies het bestand met zijn inhoud"},
		{"verslag\u200b.pdf", pdf, "De naam verslag\u200b.pdf kan niet"},
		{"groot.pdf", large, "groot.pdf is 401 kB, groter dan de 300 kB die dit knooppunt per bestand aanneemt: maak het kleiner"},
		// Over what one save takes: the rest of the form is not read, but its fields, which come
		// before the files, are.
		{"enorm.pdf", append(bytes.Clone(pdf), make([]byte, 4<<20)...), "enorm.pdf is niet gelezen, en wat erna kwam ook niet: de gekozen bestanden zijn samen groter dan 300 kB"},
	} {
		f := shelterForm(csrf, map[string]string{"version": "1", "body.beds_free": "5", "labels": "bron=lcms"})
		resp, page := postMultipart(t, b, e.url+"/records/wijzigen", f, picked("kaart.pdf", good), picked(tc.name, tc.content))
		if resp.StatusCode != http.StatusUnprocessableEntity {
			t.Errorf("%s: %d, want 422", tc.name, resp.StatusCode)
		}
		if got := fieldError(page, "bijlagen"); !strings.Contains(got, tc.want) {
			t.Errorf("%s: the message at the files is %q, want %q", tc.name, got, tc.want)
		} else if strings.Count(got, tc.name) != 1 {
			// A file cut off in its reading is named once, without the size of its part read.
			t.Errorf("%s: the message at the files names it more than once: %q", tc.name, got)
		}
		if !strings.Contains(page, `id="body.beds_free" name="body.beds_free" value="5"`) || !strings.Contains(page, `value="bron=lcms"`) ||
			!strings.Contains(page, `href="#bijlagen">Bestanden toevoegen</a>`) || !strings.Contains(page, `aria-describedby="bijlagen-hint bijlagen-opnieuw bijlagen-fout" aria-invalid="true"`) {
			t.Errorf("%s: the form lost what was typed, or does not lead to the files:\n%s", tc.name, page)
		}
		if !strings.Contains(page, `id="bijlagen-opnieuw">Nog niet toegevoegd, want het record is niet opgeslagen: kaart.pdf. Kies ze opnieuw`) {
			t.Errorf("%s: the form does not say to pick kaart.pdf again:\n%s", tc.name, page)
		}
		if rec, _ := rc.Get(context.Background(), &pb.GetRequest{Id: "zeist"}); rec.GetVersion() != 1 || !bytes.Equal(rec.GetBody(), before.Body) {
			t.Errorf("%s: the record changed to %v", tc.name, rec)
		}
	}
	// Two files refused are named on a line each, in the order picked.
	_, page = postMultipart(t, b, e.url+"/records/wijzigen", shelterForm(csrf, map[string]string{"version": "1"}),
		picked("leeg.pdf", nil), picked("instructies.bat", []byte("Lees dit eerst.\n")))
	if got, want := fieldError(page, "bijlagen"), "leeg.pdf is leeg: kies het bestand met zijn inhoud.\ninstructies.bat eindigt op .bat"; !strings.HasPrefix(got, want) {
		t.Errorf("two refused files: the message at the files is %q, want it to begin %q", got, want)
	}
	// A field the form refuses keeps the files from going up: they are to be picked again.
	resp, page := postMultipart(t, b, e.url+"/records/wijzigen", shelterForm(csrf, map[string]string{"version": "1", "body.beds_free": "-1"}), picked("kaart.pdf", good))
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, `id="bijlagen-opnieuw">Nog niet toegevoegd, want het record is niet opgeslagen: kaart.pdf.`) ||
		fieldError(page, "bijlagen") != "" {
		t.Errorf("a refused field with a good file: %d\n%s", resp.StatusCode, page)
	}
	// The form without a token, in multipart, is refused before a file is read.
	if resp, _ := postMultipart(t, b, e.url+"/records/wijzigen", shelterForm("", map[string]string{"version": "1"}), picked("kaart.pdf", good)); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a multipart form without its CSRF token: %d, want 403", resp.StatusCode)
	}
	if rec, _ := rc.Get(context.Background(), &pb.GetRequest{Id: "zeist"}); rec.GetVersion() != 1 {
		t.Errorf("the record changed to %v", rec)
	}
}

// TestSameNameFilesLinkTheirOwnBytes: two files of a record may have one name; each is linked by
// its hash, so that each link gives its own bytes, and the form takes off the one ticked. A
// search hit in one of them, which names its file by name alone, links neither rather than the
// first.
func TestSameNameFilesLinkTheirOwnBytes(t *testing.T) {
	e := start(t)
	rc := e.records(t)
	ac := pb.NewAttachmentServiceClient(e.local(t))
	first := attach.SimplePDF("Verslag", []string{"Overleg met de gemeente over de sporthal."})
	second := attach.SimplePDF("Verslag", []string{"Zandzakken bij de dijk in Culemborg."})
	var atts []*pb.Attachment
	for _, content := range [][]byte{first, second} {
		a, err := attach.Upload(fedtest.Call(t), ac, "verslag.pdf", bytes.NewReader(content), int64(len(content)), "", nil)
		if err != nil {
			t.Fatal(err)
		}
		atts = append(atts, a)
	}
	body, _ := json.Marshal(map[string]any{"title": "Verslagen van de week", "text": "Twee verslagen.", "attachments": atts})
	if _, err := rc.Put(context.Background(), &pb.PutRequest{Record: &pb.Record{Id: "verslagen", Kind: "guidance", Crisis: "oekraine", Region: "VR09",
		Classification: pb.Classification_INTERNAL, Body: body}}); err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t)
	_, page := e.signIn(t, b, "eva", "/record?id=verslagen")
	links := regexp.MustCompile(`href="(/bijlage\?[^"]+)" download>verslag.pdf</a>`).FindAllStringSubmatch(page, -1)
	if len(links) != 2 {
		t.Fatalf("the record's page links %d files named verslag.pdf, want 2:\n%s", len(links), page)
	}
	for i, want := range [][]byte{first, second} {
		if resp, got := b.get(t, e.url+html.UnescapeString(links[i][1])); resp.StatusCode != http.StatusOK || got != string(want) {
			t.Errorf("the link of file %d gives %d bytes (%d), not its own %d", i, len(got), resp.StatusCode, len(want))
		}
	}

	fedtest.Eventually(t, 20*time.Second, "the PDFs' text is in the index", func() (bool, string) {
		var states []string
		for _, a := range atts {
			state, _ := e.node.DB().FileTextState(t.Context(), a.Sha256)
			states = append(states, state)
		}
		return states[0] == "indexed" && states[1] == "indexed", fmt.Sprint(states)
	})
	_, page = b.get(t, e.url+"/zoeken?"+url.Values{"q": {"zandzakken"}}.Encode())
	if !strings.Contains(page, "Resultaten (1)") || !strings.Contains(page, "Gevonden in bijlage") {
		t.Fatalf("search for zandzakken: want the record, found in its file:\n%s", page)
	}
	if strings.Contains(page, "sha256="+atts[0].Sha256) || !strings.Contains(page, "Gevonden in bijlage verslag.pdf:</span>") {
		t.Errorf("the hit in the second verslag.pdf links the first, or does not name its file:\n%s", page)
	}

	// The form takes off the file ticked, not the other of the same name.
	_, page = b.get(t, e.url+"/records/wijzigen?id=verslagen")
	f := url.Values{"csrf": {csrfOf(t, page)}, "kind": {"guidance"}, "version": {"1"}, "id": {"verslagen"}, "crisis": {"oekraine"}, "region": {"VR09"},
		"classification": {"internal"}, "body.title": {"Verslagen van de week"}, "body.text": {"Twee verslagen."}, "verwijder": {atts[0].Sha256}}
	if resp, page := postMultipart(t, b, e.url+"/records/wijzigen", f); resp.StatusCode != http.StatusOK {
		t.Fatalf("take the first verslag.pdf off: %d\n%s", resp.StatusCode, page)
	}
	rec, _ := rc.Get(context.Background(), &pb.GetRequest{Id: "verslagen"})
	if files := filesOf(t, rec); len(files) != 1 || files[0].SHA256 != atts[1].Sha256 {
		t.Errorf("after taking the first verslag.pdf off the record names %+v", files)
	}
}

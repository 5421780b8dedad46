package ui_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/knooppunt/knooppunt/node/attach"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestBrowserOwnRecords: in headless chromium, an editor fills in the form of a shelter record,
// gets the service's message at the field she got wrong, corrects it and saves; the record is
// then there through the gRPC API. She uploads a CSV file (the script sends it and shows its
// progress) and reads the report, and adds a PDF to the record with its form. axe-core runs on
// every page, and the pages are photographed for docs/ui.md.
func TestBrowserOwnRecords(t *testing.T) {
	e := start(t)
	rc := e.records(t)
	chrome := newChromium(t)
	shots := map[string][]byte{}

	eva := newTab(t, chrome)
	e.op.signInAs("eva")
	eva.run("sign in and open own records", chromedp.Steps(
		chromedp.Navigate(e.url+"/taal?lang=nl&terug=/records"),
		chromedp.WaitVisible(chromedp.CSS("#nieuw-record")),
	))
	eva.check("eigen records, leeg")
	eva.run("choose a kind", chromedp.Steps(
		chromedp.Click(chromedp.CSS("#nieuw-record")),
		chromedp.WaitVisible(chromedp.CSS(`a[href="/records/nieuw?kind=shelter.capacity"]`)),
	))
	eva.check("soort kiezen")
	eva.run("fill in the form with a negative number of free beds", chromedp.Steps(
		chromedp.Click(chromedp.CSS(`a[href="/records/nieuw?kind=shelter.capacity"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[id="body.beds_free"]`)),
		// The ID is under Geavanceerd, after the content.
		chromedp.Click(chromedp.CSS("#geavanceerd > summary")),
		chromedp.SendKeys(chromedp.CSS("#id"), "zeist"),
		chromedp.SendKeys(chromedp.CSS("#crisis"), "oekraine"),
		chromedp.SetValue(chromedp.CSS("#region"), "VR09"),
		chromedp.SendKeys(chromedp.CSS(`[id="body.municipality"]`), "Zeist"),
		chromedp.SendKeys(chromedp.CSS(`[id="body.beds_total"]`), "40"),
		chromedp.SendKeys(chromedp.CSS(`[id="body.beds_free"]`), "-3"),
		chromedp.SendKeys(chromedp.CSS(`[id="body.notes"]`), "Sporthal De Koppel, vanaf vrijdag."),
		chromedp.Click(chromedp.CSS("#opslaan")),
		chromedp.WaitVisible(chromedp.CSS(`[id="body.beds_free-fout"]`)),
	))
	if m := eva.text("the field's message", chromedp.Text(chromedp.CSS(`[id="body.beds_free-fout"]`))); !strings.Contains(m, "vul een waarde van minstens 0 in") {
		t.Errorf("the message at beds_free: %q", m)
	}
	if inv := eva.text("aria-invalid", chromedp.Evaluate[string](`document.getElementById("body.beds_free").getAttribute("aria-invalid") || ""`)); inv != "true" {
		t.Errorf("the wrong field is not marked invalid: %q", inv)
	}
	// The summary above the form takes the focus, where its links to the fields are (review AB, AB1).
	eva.focusedOn("the record refused", "niet-opgeslagen")
	eva.check("formulier met fout", 422)
	eva.shot(shots, "record-formulier.png")
	if _, err := rc.Get(context.Background(), &pb.GetRequest{Id: "zeist"}); err == nil {
		t.Fatal("a form with a wrong value stored the record")
	}
	eva.run("correct and save", chromedp.Steps(
		chromedp.SetValue(chromedp.CSS(`[id="body.beds_free"]`), "12"),
		chromedp.Click(chromedp.CSS("#opslaan")),
		chromedp.WaitVisible(chromedp.CSS("#opgeslagen")),
	))
	eva.focusedOn("the record saved", "opgeslagen")
	eva.check("opgeslagen")
	if rec, err := rc.Get(context.Background(), &pb.GetRequest{Id: "zeist"}); err != nil || !strings.Contains(string(rec.Body), `"beds_free":12`) {
		t.Fatalf("the record saved in the browser, through gRPC: %v %v", rec, err)
	}

	csv := filepath.Join(t.TempDir(), "opvang.csv")
	if err := os.WriteFile(csv, []byte("id,municipality,region,beds_total,beds_free\nhouten,Houten,VR09,30,4\nnergens,Nergens,VR99,10,1\ngoes,Goes,VR19,25,7\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	eva.run("open the upload", chromedp.Steps(
		chromedp.Navigate(e.url+"/records/importeren"),
		chromedp.WaitVisible(chromedp.CSS("#bestand")),
	))
	eva.check("bestand laden")
	eva.shot(shots, "records-laden.png")
	eva.run("upload a CSV file", chromedp.Steps(
		chromedp.SetValue(chromedp.CSS("#kind"), "shelter.capacity"),
		chromedp.SendKeys(chromedp.CSS("#crisis"), "oekraine"),
		chromedp.SetValue(chromedp.CSS("#classification"), "internal"),
		chromedp.SetUploadFiles(chromedp.CSS("#bestand"), []string{csv}),
		chromedp.Click(chromedp.CSS("#laden-knop")),
		chromedp.WaitVisible(chromedp.CSS("#verslag")),
	))
	if s := eva.text("summary", chromedp.Text(chromedp.CSS("#verslag"))); !strings.Contains(s, "2 regels opgeslagen, 1 geweigerd") {
		t.Errorf("the report says %q", s)
	}
	eva.check("verslag")
	eva.shot(shots, "records-verslag.png")

	eva.run("own records", chromedp.Steps(
		chromedp.Navigate(e.url+"/records"),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-record="goes"]`)),
	))
	eva.check("eigen records")
	eva.shot(shots, "records.png")
	// On a phone each record is a card, its Wijzigen link on screen.
	eva.run("a phone", chromedp.EmulateViewport(390, 844))
	if r := eva.number("the edit link", `document.querySelector('tr[data-record="goes"] a[href*="wijzigen"]').getBoundingClientRect().right`); r <= 0 || r > 390 {
		t.Errorf("at 390 px the Wijzigen link of goes ends at x=%.0f, want it on screen", r)
	}
	eva.check("eigen records (390 px)")
	eva.shot(shots, "records-390.png")
	eva.run("wide again", chromedp.EmulateViewport(1280, 900))

	// Two more versions through the gRPC API, the free beds changing: the record's page offers
	// the form that changes it, and lists the three versions with the changed number marked.
	for _, free := range []string{"8", "3"} {
		rec, err := rc.Get(context.Background(), &pb.GetRequest{Id: "zeist"})
		if err != nil {
			t.Fatal(err)
		}
		rec.Body = regexp.MustCompile(`"beds_free":\d+`).ReplaceAll(rec.Body, []byte(`"beds_free":`+free))
		if _, err := rc.Put(context.Background(), &pb.PutRequest{Record: rec}); err != nil {
			t.Fatalf("put beds_free %s: %v", free, err)
		}
	}
	eva.run("the record's page", chromedp.Steps(
		chromedp.Click(chromedp.CSS(`tr[data-record="zeist"] a`)),
		chromedp.WaitVisible(chromedp.CSS("#wijzigen")),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-version="3"] mark[data-changed="beds_free"]`)),
	))
	if n := eva.text("versions", chromedp.Evaluate[string](`String(document.querySelectorAll("tr[data-version]").length)`)); n != "3" {
		t.Errorf("the record's page lists %s versions, want 3", n)
	}
	eva.check("record met wijzigen en versies")
	eva.shot(shots, "record-versies.png")
	eva.run("a phone", chromedp.EmulateViewport(390, 844))
	if w := eva.number("the versions", `document.querySelector('.kp-table-wrap[aria-labelledby=versies]').scrollWidth - innerWidth`); w > 0 {
		t.Errorf("at 390 px the versions table is %.0f px wider than the window", w)
	}
	eva.shot(shots, "record-versies-390.png")
	eva.run("wide again", chromedp.EmulateViewport(1280, 900))

	// A PDF added with the form goes up with the save, and the form lists it, with its box to
	// take it off.
	pdf := filepath.Join(t.TempDir(), "draaiboek-opvang.pdf")
	if err := os.WriteFile(pdf, attach.SimplePDF("Draaiboek opvang Zeist", []string{"Sporthal De Koppel, vanaf vrijdag."}), 0o600); err != nil {
		t.Fatal(err)
	}
	eva.run("add a PDF", chromedp.Steps(
		chromedp.Navigate(e.url+"/records/wijzigen?id=zeist"),
		chromedp.WaitVisible(chromedp.CSS("#bijlagen")),
		chromedp.SetUploadFiles(chromedp.CSS("#bijlagen"), []string{pdf}),
		chromedp.Click(chromedp.CSS("#opslaan")),
		chromedp.WaitVisible(chromedp.CSS("#opgeslagen")),
		chromedp.WaitVisible(chromedp.CSS("#bijlagen-lijst")),
	))
	if got := eva.text("the files listed", chromedp.Text(chromedp.CSS("#bijlagen-lijst"))); !strings.Contains(got, "draaiboek-opvang.pdf") || !strings.Contains(got, "Verwijderen") {
		t.Errorf("the form lists %q, want the PDF with its box", got)
	}
	eva.check("formulier met bijlage")
	eva.shot(shots, "record-formulier-bijlagen.png")
	if rec, err := rc.Get(context.Background(), &pb.GetRequest{Id: "zeist"}); err != nil || !strings.Contains(string(rec.Body), `"filename":"draaiboek-opvang.pdf"`) {
		t.Fatalf("the record after the PDF was added, through gRPC: %v %v", rec, err)
	}

	// At 200% zoom (half the width) the new pages reflow.
	eva.reflows(e.url, "/records", "/records/nieuw?kind=shelter.capacity", "/records/wijzigen?id=zeist", "/records/importeren")

	// Last, as its refusal (400) stays in the browser's console: a file that is no file of
	// records is refused in place; the window's title says so, and the focus, which was on the
	// button that went, is on the page's heading.
	bad := filepath.Join(t.TempDir(), "notities.txt")
	if err := os.WriteFile(bad, []byte("\x00\x01\x02 dit is geen lijst"), 0o600); err != nil {
		t.Fatal(err)
	}
	eva.run("upload a file that is no list of records", chromedp.Steps(
		chromedp.Navigate(e.url+"/records/importeren"),
		chromedp.WaitVisible(chromedp.CSS("#bestand")),
		chromedp.SetValue(chromedp.CSS("#kind"), "shelter.capacity"),
		chromedp.SendKeys(chromedp.CSS("#crisis"), "oekraine"),
		chromedp.SetUploadFiles(chromedp.CSS("#bestand"), []string{bad}),
		chromedp.Click(chromedp.CSS("#laden-knop")),
		chromedp.WaitVisible(chromedp.CSS("#niet-geladen")),
	))
	if got := eva.text("after the refusal", chromedp.Evaluate[string](`document.title.slice(0, 5) + " | " + document.activeElement.tagName`)); got != "Fout: | H1" {
		t.Errorf("after a refused upload the title and focus are %q, want the title to start Fout: and the focus on the heading", got)
	}

	writeShots(t, shots)
}

// writeShots writes the screenshots to a temporary directory, or to KNOOPPUNT_UI_SCREENSHOTS
// (make ui-screenshots), and checks that each is a real picture.
func writeShots(t *testing.T, shots map[string][]byte) {
	t.Helper()
	dir := t.TempDir()
	if d := os.Getenv("KNOOPPUNT_UI_SCREENSHOTS"); d != "" {
		dir = d
	}
	for name, b := range shots {
		if len(b) < 10000 || string(b[1:4]) != "PNG" {
			t.Errorf("%s: %d bytes, not a PNG screenshot", name, len(b))
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

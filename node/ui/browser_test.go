package ui_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/knooppunt/knooppunt/federation/fedtest"
	"github.com/knooppunt/knooppunt/node/proctest"
	"github.com/knooppunt/knooppunt/node/record"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestBrowser signs in with a real browser (headless chromium) through the provider, reads the
// picture, a search and a record, checks that the styles load under the CSP, runs axe-core on
// every page, and takes screenshots. With KNOOPPUNT_UI_SCREENSHOTS=DIR the screenshots are written to DIR too (make
// ui-screenshots writes those of docs/ui.md).
func TestBrowser(t *testing.T) {
	opts := proctest.ChromiumOptions(t, chromedp.WindowSize(1280, 900), chromedp.Flag("lang", "nl-NL"))
	// A picture larger than its bound: the page marks the entry it shortened.
	e := startFederation(t, shortPictures)
	e.putLongSitrep(t)
	// Sources that disagree: the page says what each reports, under the sums and under a sitrep.
	e.utrecht.Put(t, &pb.Record{Id: "opvang-middelburg", Kind: "shelter.capacity", Crisis: "oekraine", Region: "VR19", Classification: pb.Classification_INTERNAL,
		Body: []byte(`{"municipality":"Middelburg","beds_total":60,"beds_free":15}`)})
	e.utrecht.Put(t, fedtest.Sitrep("landelijk-1", "oekraine", pb.Classification_PUBLIC, "Landelijke situatie volgens VR Utrecht"))
	actx, cancel := chromedp.NewExecAllocator(t.Context(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()

	// The first Run starts the browser; it must not carry the timeout, which would stop it.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	browser := ctx
	ctx, cancel = context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	run := func(what string, a chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, a); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	get := func(what string, a chromedp.Action[string]) string {
		t.Helper()
		v, err := chromedp.Run(ctx, a)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
	shot := func(name string) []byte {
		t.Helper()
		b, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		return b
	}
	shots := map[string][]byte{}
	// Every console message and exception of every page: a page that breaks its CSP (a
	// stylesheet or image refused), or throws, fails the test.
	cctx, stopConsole := context.WithCancel(ctx)
	var console []string
	consoleDone := make(chan struct{})
	messages := chromedp.Console(cctx)
	go func() {
		defer close(consoleDone)
		for m, err := range messages {
			if err != nil {
				return
			}
			console = append(console, m.String())
		}
	}()
	axeSource, err := os.ReadFile("testdata/axe-core/axe.min.js")
	if err != nil {
		t.Fatal(err)
	}
	// accessible runs axe-core on the page (WCAG 2.1 A and AA); any violation fails the test.
	// DevTools evaluation is not bound by the page's CSP, which would refuse the script.
	accessible := func(page string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](string(axeSource)+";true")); err != nil {
			t.Fatalf("%s: load axe-core: %v", page, err)
		}
		report, err := chromedp.Run(ctx, chromedp.Evaluate[string](`axe.run(document, {runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}})
			.then(r => JSON.stringify(r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.target.join(" "))}))))`, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("%s: axe-core: %v", page, err)
		}
		if report != "[]" {
			t.Errorf("%s: accessibility violations (WCAG 2.1 AA): %s", page, report)
		}
	}

	e.op.signInAs("officer-a")
	// Dutch, whatever the browser's language: the switch in the menu bar.
	run("sign in and open the picture", chromedp.Steps(
		chromedp.Navigate(e.url+"/taal?lang=nl&terug="+url.QueryEscape("/?crisis=oekraine")),
		chromedp.WaitVisible(chromedp.CSS("#fase")),
	))
	role := get("role", chromedp.Text(chromedp.CSS("#rol")))
	title := get("title", chromedp.Title())
	// The header band has the theme's colour: the stylesheets loaded under the CSP.
	colour := get("header colour", chromedp.Evaluate[string](`getComputedStyle(document.querySelector('.kp-header')).backgroundColor`))
	if role != "beveiligingsfunctionaris" || colour != "rgb(28, 63, 110)" || !strings.Contains(title, "Het beeld") {
		t.Errorf("picture in the browser: role %q, header colour %q, title %q", role, colour, title)
	}
	accessible("het beeld")
	if s := get("shortened", chromedp.Text(chromedp.CSS(".kp-shortened"))); s != "ingekort: Samenvatting" {
		t.Errorf("the long sitrep is marked %q, want ingekort: Samenvatting", s)
	}
	// The charts name the regions as the table does; the column for those names holds the
	// longest of the 25, short of the bars.
	if l := get("chart labels", chromedp.Evaluate[string](`[...document.querySelectorAll('.kp-chart__label')].map(t => t.textContent).join(", ")`)); !strings.HasPrefix(l, "VR09 Utrecht, VR17 Rotterdam-Rijnmond, VR19 Zeeland") {
		t.Errorf("the chart's bars are labelled %q, want the regions' names", l)
	}
	var names []string
	for i := 1; i <= 25; i++ {
		code := fmt.Sprintf("VR%02d", i)
		names = append(names, code+" "+record.RegionName(code))
	}
	list, _ := json.Marshal(names)
	room := get("label column", chromedp.Evaluate[string](`(() => {
		const label = document.querySelector('.kp-chart__label'), probe = label.cloneNode();
		label.parentNode.appendChild(probe);
		const widest = Math.max(...`+string(list)+`.map(n => { probe.textContent = n; return probe.getComputedTextLength(); }));
		probe.remove();
		return String(document.querySelector('.kp-chart__track').x.baseVal.value - label.x.baseVal[0].value - widest);
	})()`))
	if gap, err := strconv.ParseFloat(room, 64); err != nil || gap < 4 {
		t.Errorf("the longest region's name leaves %s units before the bars, want at least 4", room)
	}
	// With the keyboard alone: the first Tab reaches the skip link, Enter goes to the content.
	run("tab to the skip link", chromedp.KeyEvent("\t"))
	if f := get("focus", chromedp.Evaluate[string](`document.activeElement.textContent`)); f != "Naar de inhoud" {
		t.Errorf("the first Tab focuses %q, want the skip link", f)
	}
	run("follow the skip link", chromedp.KeyEvent("\r"))
	if h := get("location", chromedp.Location()); !strings.HasSuffix(h, "#inhoud") {
		t.Errorf("after the skip link the browser is at %s", h)
	}
	shots["beeld.png"] = shot("beeld")
	// Printed: the script shows the print button; on paper, the menu, the forms and the button
	// go, and the classification mark shows at the top and the bottom.
	if d := get("print button", chromedp.Evaluate[string](`getComputedStyle(document.querySelector('#afdrukken')).display`)); d == "none" {
		t.Error("the print button stays hidden with the script")
	}
	media := func(m string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Media: m})
			return err
		})
	}
	run("print media", media("print"))
	shown := `[...document.querySelectorAll('.kp-nav, .kp-filters, #afdrukken, .kp-print-mark')].map(e => getComputedStyle(e).display === "none" ? "-" : "+").join("")`
	if got := get("printed", chromedp.Evaluate[string](shown)); got != "---++" {
		t.Errorf("printed, the menu, the crisis form, the print button and the two marks show as %q, want ---++", got)
	}
	if m := get("mark", chromedp.Text(chromedp.CSS(".kp-print-mark__class strong"))); m != "INTERN" {
		t.Errorf("the printout is marked %q, want INTERN", m)
	}
	if m := get("margin mark", chromedp.Evaluate[string](`getComputedStyle(document.documentElement).getPropertyValue('--kp-mark')`)); !strings.Contains(m, "INTERN") {
		t.Errorf("the printed pages' margins are to say %q, want INTERN", m)
	}
	shots["beeld-afdruk.png"] = shot("beeld-afdruk")
	run("screen media", media(""))
	// Printed for real, as a PDF, and shown in chromium's PDF viewer in a tab of its own: the
	// classification in every page's margins.
	var pdf []byte
	run("print to PDF", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		res, err := cdp.Call(ctx, tg, page.PrintToPDF, page.PrintToPDFParams{})
		pdf = res.Data
		return err
	}))
	if len(pdf) < 1000 || string(pdf[:5]) != "%PDF-" {
		t.Fatalf("the picture printed to %d bytes, not a PDF", len(pdf))
	}
	pdfFile := filepath.Join(t.TempDir(), "beeld.pdf")
	if err := os.WriteFile(pdfFile, pdf, 0o600); err != nil {
		t.Fatal(err)
	}
	// A tab of its own, with a deadline of its own: the wait below does not eat into the
	// steps' time after it.
	vctx, cancelViewer := context.WithTimeout(browser, 30*time.Second)
	defer cancelViewer()
	viewer, closeViewer := chromedp.NewContext(vctx)
	if _, err := chromedp.Run(viewer, chromedp.Navigate("file://"+pdfFile)); err != nil {
		t.Fatalf("open the printed picture: %v", err)
	}
	// The viewer draws the pages some time after it loads, later on a busy machine: until then
	// a screenshot is an empty grey one (a few KB), which writeShots refuses.
	for deadline := time.Now().Add(20 * time.Second); ; {
		time.Sleep(500 * time.Millisecond)
		b, err := chromedp.Run(viewer, chromedp.CaptureScreenshot())
		if err != nil {
			t.Errorf("screenshot of the printed picture: %v", err)
			break
		}
		if shots["beeld-pdf.png"] = b; len(b) >= 10000 || time.Now().After(deadline) {
			break
		}
	}
	closeViewer()
	// From any page, words in the menu bar's box search the network.
	run("search from the menu bar", chromedp.Steps(
		chromedp.SendKeys(chromedp.CSS("#snelzoeken"), "beeld\r"),
		chromedp.WaitVisible(chromedp.CSS("#resultaten")),
	))
	if h := get("results", chromedp.Text(chromedp.CSS("#resultaten"))); h != "Resultaten (2)" {
		t.Errorf("a search for beeld from the menu bar: %q, want two results", h)
	}
	if q := get("the box", chromedp.Value(chromedp.CSS("#q"))); q != "beeld" {
		t.Errorf("the search page's box holds %q, want the words searched for", q)
	}

	run("search", chromedp.Steps(
		chromedp.Navigate(e.url+"/zoeken"),
		chromedp.SetValue(chromedp.CSS("#kind"), "shelter.capacity"),
		chromedp.SendKeys(chromedp.CSS("#crisis"), "oekraine"),
		chromedp.Submit(chromedp.CSS("#crisis")),
		chromedp.WaitVisible(chromedp.CSS("#resultaten")),
	))
	accessible("zoeken")
	shots["zoeken.png"] = shot("zoeken")
	run("open a record", chromedp.Steps(
		chromedp.Click(chromedp.CSS(`a[href*="id=utrecht"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-withheld="contact_phone"]`)),
	))
	if w := get("withheld", chromedp.Text(chromedp.CSS(`[data-withheld="contact_phone"]`))); w != "achtergehouden door de bron" {
		t.Errorf("withheld field shows %q", w)
	}
	accessible("record")
	shots["record.png"] = shot("record")
	// Words typed into the search box, as people type them: the short ones are left out, and
	// each hit shows where it matched.
	run("search by words", chromedp.Steps(
		chromedp.Navigate(e.url+"/zoeken"),
		chromedp.SendKeys(chromedp.CSS("#q"), "beeld in VR\r"),
		chromedp.WaitVisible(chromedp.CSS("#genegeerd")),
	))
	if marks := get("marks", chromedp.Evaluate[string](`[...document.querySelectorAll('.kp-table mark')].map(m => m.textContent).join(",")`)); marks != "beeld,beeld" {
		t.Errorf("a search for beeld in VR marks %q, want beeld in both sitreps", marks)
	}
	accessible("zoeken op woorden")
	// Printed, the search says what was searched for (its form, without the buttons) and the
	// results' highest classification.
	run("print media", media("print"))
	shown = `[...document.querySelectorAll('form[role=search] #q, form[role=search] button, #afdrukken, .kp-print-mark')].map(e => getComputedStyle(e).display === "none" ? "-" : "+").join("")`
	if got := get("printed", chromedp.Evaluate[string](shown)); got != "++--+" {
		t.Errorf("printed, the mark at the top, the words box, the search button, the print button and the mark at the bottom show as %q, want ++--+", got)
	}
	shots["zoeken-afdruk.png"] = shot("zoeken-afdruk")
	run("screen media", media(""))
	shots["zoeken-woorden.png"] = shot("zoeken-woorden")
	// A guidance document with its PDF to take.
	guidance := url.Values{"origin": {e.ncc.TD.Name()}, "id": {"richtlijn-1"}, "kind": {"guidance"}, "crisis": {"oekraine"}, "region": {"NL"}}
	run("a guidance document", chromedp.Steps(
		chromedp.Navigate(e.url+"/record?"+guidance.Encode()),
		chromedp.WaitVisible(chromedp.CSS("#bijlagen")),
	))
	if f := get("the file", chromedp.Text(chromedp.CSS(".kp-files li"))); !strings.HasPrefix(f, "Richtlijn aankomst.pdf PDF-document") {
		t.Errorf("the guidance's file is listed as %q", f)
	}
	accessible("record met bijlage")
	if d := get("print button", chromedp.Evaluate[string](`getComputedStyle(document.querySelector('#afdrukken')).display`)); d == "none" {
		t.Error("the record page's print button stays hidden with the script")
	}
	shots["record-bijlage.png"] = shot("record-bijlage")

	// ncc stops: the picture, opened anew, shows it unreachable, with the age of the copy it is
	// served from.
	e.ncc.Stop(t)
	run("the picture with ncc stopped", chromedp.Steps(
		chromedp.Navigate(e.url+"/?crisis=oekraine"),
		chromedp.WaitVisible(chromedp.CSS("#fase")),
	))
	row := get("ncc's row", chromedp.Evaluate[string](`[...document.querySelectorAll('#beeld-live tr')].map(r => r.textContent).find(t => t.includes("ncc.crisis.test")) || ""`))
	if !strings.Contains(row, "onbereikbaar") || strings.Count(row, "zojuist") != 2 {
		t.Errorf("with ncc stopped, its row on the picture: %q, want unreachable with its cache age", row)
	}
	accessible("het beeld zonder ncc")
	shots["beeld-onbereikbaar.png"] = shot("beeld-onbereikbaar")

	// The picture in English, then sign out with the button (a form with its CSRF token).
	run("switch to English", chromedp.Steps(
		chromedp.Navigate(e.url+"/taal?lang=en&terug="+url.QueryEscape("/?crisis=oekraine")),
		chromedp.WaitVisible(chromedp.CSS("#fase")),
	))
	if h := get("heading", chromedp.Text(chromedp.CSS("h1"))); h != "The picture: oekraine" {
		t.Errorf("English picture heading %q", h)
	}
	accessible("the picture")
	// At 200% zoom (half the width) the page reflows: nothing but a wide table scrolls
	// sideways, and that inside its own box.
	run("zoom to 200%", chromedp.EmulateViewport(640, 900))
	if w := get("overflow", chromedp.Evaluate[string](`String(document.documentElement.scrollWidth - window.innerWidth)`)); w != "0" {
		t.Errorf("at 200%% zoom the page is %s px wider than the window", w)
	}
	shots["beeld-200.png"] = shot("beeld-200")
	// At 400 % (320 px) too, and the charts' names stay legible: the narrow drawing, each name
	// above its bar, stands in for the wide one, whose names would be some 6 px high.
	chartText := `(() => {
		const t = [...document.querySelectorAll('.kp-chart__label')].find(e => e.getBoundingClientRect().width > 0);
		return t ? t.closest('svg').getAttribute('class') + " " + Math.round(t.getScreenCTM().a * parseFloat(getComputedStyle(t).fontSize)) : "none";
	})()`
	run("zoom to 400%", chromedp.EmulateViewport(320, 900))
	if w := get("overflow", chromedp.Evaluate[string](`String(document.documentElement.scrollWidth - window.innerWidth)`)); w != "0" {
		t.Errorf("at 400%% zoom the page is %s px wider than the window", w)
	}
	got := get("chart text at 320 px", chromedp.Evaluate[string](chartText))
	if drawing, size, _ := strings.Cut(got, " "); drawing != "kp-chart__narrow" || len(size) != 2 || size < "10" {
		t.Errorf("at 320 px the chart's first shown name is in %q (drawing and px), want the narrow drawing at 10 px or more", got)
	}
	shots["beeld-320.png"] = shot("beeld-320")
	run("zoom back", chromedp.EmulateViewport(1280, 900))
	got = get("chart text at 1280 px", chromedp.Evaluate[string](chartText))
	if drawing, size, _ := strings.Cut(got, " "); drawing != "kp-chart__wide" || len(size) != 2 || size < "12" {
		t.Errorf("at 1280 px the chart's first shown name is in %q (drawing and px), want the wide drawing at 12 px or more", got)
	}
	run("sign out", chromedp.Steps(
		chromedp.Click(chromedp.CSS(`form[action="/afmelden"] button`)),
		chromedp.WaitNotPresent(chromedp.CSS("#persoon")),
	))
	if loc := get("location", chromedp.Location()); !strings.HasSuffix(loc, "/afgemeld") {
		t.Errorf("after signing out the browser is at %s", loc)
	}
	accessible("signed out")

	// The administrator's page, with ncc still stopped.
	e.op.signInAs("ada")
	run("the node's page", chromedp.Steps(
		chromedp.Navigate(e.url+"/taal?lang=nl&terug=/beheer"),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-peer="ncc"]`)),
	))
	accessible("beheer")
	// ncc's subscription is down, with the error its last attempt gave: the node's English, so
	// marked in the Dutch page, for a screen reader's voice to read it as English (review AB, AB5).
	subErr := `(() => { const e = document.querySelector('tr[data-peer="ncc"] td br + span'); return e ? (e.getAttribute("lang") || "no lang") + " | " + e.textContent : ""; })()`
	for deadline := time.Now().Add(10 * time.Second); ; {
		se := get("ncc's subscription error", chromedp.Evaluate[string](subErr))
		if se != "" {
			if !strings.HasPrefix(se, "en | ") {
				t.Errorf("ncc's subscription error on the node's page: %q, want it marked lang=en", se)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the node's page shows no error for ncc's subscription, which is down")
		}
		time.Sleep(500 * time.Millisecond)
		run("the node's page again", chromedp.Steps(chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(`tr[data-peer="ncc"]`))))
	}
	shots["beheer.png"] = shot("beheer")

	stopConsole()
	<-consoleDone
	for _, m := range console {
		t.Errorf("the browser reported: %s", m)
	}

	writeShots(t, shots)
}

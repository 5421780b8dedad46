package ui_test

import (
	"context"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/accessibility"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// TestBrowserPhone: the picture, a search and a record at 1280 by 900 px and on a phone (390 by
// 844 px). Wide, the capacity comes before the partners and above the fold, and every control
// the keyboard reaches has the same strong focus ring. On the phone the header is short, no
// table scrolls sideways (a list table's rows are cards, a table of figures fits), every cell is
// on screen and still a table cell to a screen reader, and a record's fields stand apart.
func TestBrowserPhone(t *testing.T) {
	e := startFederation(t)
	chrome := newChromium(t)
	shots := map[string][]byte{}
	tb := newTab(t, chrome)
	e.op.signInAs("officer-a")
	tb.run("open the picture", chromedp.Steps(
		chromedp.Navigate(e.url+"/taal?lang=nl&terug="+url.QueryEscape("/?crisis=oekraine")),
		chromedp.WaitVisible(chromedp.CSS("#fase")),
	))
	// The figures first: alerts, capacity, latest, then the assessment and the partners.
	order := tb.text("order", chromedp.Evaluate[string](`["waarschuwingen", "capaciteit", "laatste", "duiding", "partners"]
		.map(id => { const e = document.getElementById(id); return e ? String(Math.round(e.getBoundingClientRect().top + scrollY)) : "-" }).join(" ")`))
	var last int
	for i, f := range strings.Fields(order) {
		y, err := strconv.Atoi(f)
		if err != nil || y <= last {
			t.Errorf("the picture's sections (alerts, capacity, latest, assessment, partners) start at %s, want each below the one before", order)
			break
		}
		if last = y; i == 1 && y > 700 {
			t.Errorf("the capacity heading starts at y=%d, want it above the fold of a 900 px window", y)
		}
	}
	if b := tb.text("phase border", chromedp.Evaluate[string](`getComputedStyle(document.getElementById("fase")).borderTopWidth`)); b != "0px" {
		t.Errorf("the phase has a %s border, want none: it is a status, not a button", b)
	}
	// The keyboard: the menu bar's search box and, on the search page, the blue search button
	// get the same ring as the header's buttons.
	tabTo := func(what, test string) string {
		t.Helper()
		for range 40 {
			tb.run("tab", chromedp.KeyEvent("\t"))
			if tb.text("focus", chromedp.Evaluate[string](`String(document.activeElement.matches(`+strconv.Quote(test)+`))`)) == "true" {
				return tb.text("focus style", chromedp.Evaluate[string](`(() => { const a = document.activeElement, s = getComputedStyle(a);
					return [a.matches(":focus-visible"), s.outlineStyle, s.outlineWidth, s.boxShadow.includes("rgb(255, 224, 102)")].join(" ") })()`))
			}
		}
		t.Fatalf("Tab does not reach %s", what)
		return ""
	}
	const ring = "true solid 3px true"
	if s := tabTo("Afmelden", `form[action="/afmelden"] button`); s != ring {
		t.Errorf("the focused sign-out button: %q (focus-visible, outline, width, yellow ring), want %q", s, ring)
	}
	if s := tabTo("the menu bar's search box", "#snelzoeken"); s != ring {
		t.Errorf("the focused search box in the menu bar: %q (focus-visible, outline, width, yellow ring), want %q", s, ring)
	}
	tb.run("search", chromedp.Steps(
		chromedp.Navigate(e.url+"/zoeken?kind=shelter.capacity&crisis=oekraine"),
		chromedp.WaitVisible(chromedp.CSS("#resultaten")),
	))
	if s := tabTo("the search button", "form[role=search] .utrecht-button--primary-action"); s != ring {
		t.Errorf("the focused search button: %q (focus-visible, outline, width, yellow ring), want %q", s, ring)
	}
	// The results leave the policies they came under to the record's page.
	if h := tb.text("columns", chromedp.Evaluate[string](`[...document.querySelectorAll("table[aria-labelledby=resultaten] thead th")].map(h => h.textContent).join(", ")`)); h != "Titel, Soort, Crisis, Regio, Herkomst, Rubricering, Bijgewerkt" {
		t.Errorf("the results' columns: %s", h)
	}

	tb.run("a phone", chromedp.EmulateViewport(390, 844))
	fits := func(page string) {
		t.Helper()
		if w := tb.text("overflow", chromedp.Evaluate[string](`String(document.documentElement.scrollWidth - innerWidth)`)); w != "0" {
			t.Errorf("%s at 390 px is %s px wider than the window", page, w)
		}
		if h := tb.number("header", `document.querySelector(".kp-header").getBoundingClientRect().height`); h > 150 {
			t.Errorf("%s at 390 px: the header is %.0f px high, want at most 150", page, h)
		}
		if s := tb.text("scrolling tables", chromedp.Evaluate[string](`[...document.querySelectorAll(".kp-table-wrap")].filter(w => w.scrollWidth > w.clientWidth + 1).map(w => w.getAttribute("aria-labelledby")).join(" ")`)); s != "" {
			t.Errorf("%s at 390 px: the tables %s scroll sideways", page, s)
		}
		if s := tb.text("cells off screen", chromedp.Evaluate[string](`[...document.querySelectorAll(".kp-table td, .kp-table tbody th")].filter(c => { const r = c.getBoundingClientRect(); return r.width == 0 || r.left < 0 || r.right > innerWidth + 0.5 || c.scrollHeight > c.clientHeight + 1 }).map(c => c.dataset.label || c.textContent).slice(0, 5).join(" | ")`)); s != "" {
			t.Errorf("%s at 390 px: cells not on screen, or their content not in them: %s", page, s)
		}
		tb.check(page + " (390 px)")
	}
	// A cell of a card is still a table cell, named by its content alone: the column's name
	// drawn before it is no part of what a screen reader reads.
	cell := func(css string) string {
		t.Helper()
		nodes := tb.nodes(css)
		var role, name string
		tb.run("the cell's accessibility", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			res, err := cdp.Call(ctx, tg, accessibility.GetPartialAXTree, accessibility.GetPartialAXTreeParams{BackendNodeID: nodes[0].BackendNodeID, FetchRelatives: new(false)})
			if err == nil && len(res.Nodes) > 0 && res.Nodes[0].Role != nil && res.Nodes[0].Name != nil {
				role, name = string(res.Nodes[0].Role.Value), string(res.Nodes[0].Name.Value)
			}
			return err
		}))
		return role + " " + name
	}
	if c := cell(`table[aria-labelledby=resultaten] td[data-label="Herkomst"]`); !strings.HasPrefix(c, `"cell" `) || strings.Contains(c, "Herkomst") {
		t.Errorf("the results' Herkomst cell at 390 px is %s to a screen reader, want a cell without its column's name", c)
	}
	fits("zoeken")
	// After a search the results start in the first screen (review P, P5: 1000 px down).
	if y := tb.number("results", `document.getElementById("resultaten").getBoundingClientRect().top + scrollY`); y > 844 {
		t.Errorf("the results at 390 px start %.0f px down, want within the first screen (844)", y)
	}
	tb.shot(shots, "zoeken-390.png")
	// With notes above the results (an offer, the words not searched for), a link in the first
	// screen leads to them (review R, R4).
	tb.run("a search with notes", chromedp.Steps(
		chromedp.Navigate(e.url+"/zoeken?q=Wat+zijn+de+vrije+bedden+in+Zeeland%3F"),
		chromedp.WaitVisible(chromedp.CSS("#naar-resultaten")),
	))
	if y := tb.number("the link to the results", `document.getElementById("naar-resultaten").getBoundingClientRect().bottom + scrollY`); y > 844 {
		t.Errorf("the link to the results at 390 px ends %.0f px down, want within the first screen (844)", y)
	}
	fits("zoeken met notities")

	tb.run("the picture", chromedp.Steps(
		chromedp.Navigate(e.url+"/?crisis=oekraine"),
		chromedp.WaitVisible(chromedp.CSS("#fase")),
	))
	fits("het beeld")
	// The figures start in the first screen: the page's actions share a row (review T, T9: the
	// capacity heading was 800 px down).
	if y := tb.number("the first region's figures", `document.querySelector("table[aria-labelledby=capaciteit] tbody tr").getBoundingClientRect().bottom + scrollY`); y > 844 {
		t.Errorf("at 390 px the capacity table's first row ends %.0f px down, want within the first screen (844)", y)
	} else {
		t.Logf("at 390 px the capacity table's first row ends %.0f px down", y)
	}
	// The menu folds beside the search box, and opens.
	if r := tb.text("menu row", chromedp.Evaluate[string](`String(Math.abs(document.querySelector(".kp-nav__toggle").getBoundingClientRect().top - document.getElementById("snelzoeken").getBoundingClientRect().top) < 20)`)); r != "true" {
		t.Error("at 390 px the menu and the search box are not on one row")
	}
	tb.shot(shots, "beeld-390.png")
	tb.run("open the menu", chromedp.Steps(
		chromedp.Click(chromedp.CSS(".kp-nav__toggle")),
		chromedp.WaitVisible(chromedp.CSS("#nav-audit")),
	))
	tb.check("het beeld met het menu open (390 px)")
	tb.shot(shots, "beeld-menu-390.png")

	tb.run("a record", chromedp.Steps(
		chromedp.Navigate(e.url+"/record?"+url.Values{"origin": {e.ncc.TD.Name()}, "id": {"richtlijn-1"}, "kind": {"guidance"}, "crisis": {"oekraine"}, "region": {"NL"}}.Encode()),
		chromedp.WaitVisible(chromedp.CSS("#gegevens")),
	))
	fits("record")
	// Each label and value pair stands apart from the next.
	if g := tb.number("gaps", `Math.min(...[...document.querySelectorAll("dl[aria-labelledby=gegevens] > dd + dt")].map(dt => dt.getBoundingClientRect().top - dt.previousElementSibling.getBoundingClientRect().bottom))`); g < 8 {
		t.Errorf("at 390 px a record's pairs are %.0f px apart, want at least 8", g)
	}
	tb.shot(shots, "record-390.png")

	// A policy's preview: its records are cards, what is withheld on screen (review W, L6).
	id := e.utrecht.Approve(t, sitrepPolicy)
	tb.run("a policy's preview", chromedp.Steps(
		chromedp.Navigate(e.url+"/beleid/voorbeeld?"+url.Values{"id": {id}, "recipient": {"ncc"}}.Encode()),
		chromedp.WaitVisible(chromedp.CSS("#uitkomst")),
	))
	fits("voorbeeld")
	tb.shot(shots, "voorbeeld-390.png")

	// The administrator's page: its partners are cards too.
	e.op.signInAs("ada")
	tb.run("the node's page as its administrator", chromedp.Steps(
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, network.ClearBrowserCookies, cdp.Empty{})
			return err
		}),
		chromedp.Navigate(e.url+"/beheer"),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-peer]`)),
	))
	fits("beheer")
	tb.shot(shots, "beheer-390.png")
	writeShots(t, shots)
}

// number evaluates a JavaScript expression that gives a number.
func (tb *tab) number(what, js string) float64 {
	tb.t.Helper()
	s := tb.text(what, chromedp.Evaluate[string]("String("+js+")"))
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		tb.t.Fatalf("%s: %q is no number", what, s)
	}
	return f
}

// nodes finds the nodes css selects, within a bound.
func (tb *tab) nodes(css string) []*chromedp.Node {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 30*time.Second)
	defer cancel()
	n, err := chromedp.Run(ctx, chromedp.Nodes(chromedp.CSS(css)))
	if err != nil || len(n) == 0 {
		tb.t.Fatalf("%s: %v", css, err)
	}
	return n
}

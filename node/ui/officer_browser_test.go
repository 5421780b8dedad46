package ui_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/knooppunt/knooppunt/node/proctest"
)

// tab is one page in headless chromium, in a browser context of its own (its own cookies: one
// person's browser), with the checks every page gets: axe-core, and no console message.
type tab struct {
	t   *testing.T
	ctx context.Context
	axe string

	mu      sync.Mutex
	console []string
}

// newChromium starts headless chromium; each newTab opens a browser context in it.
func newChromium(t *testing.T) context.Context {
	t.Helper()
	opts := proctest.ChromiumOptions(t, chromedp.WindowSize(1280, 900), chromedp.Flag("lang", "nl-NL"))
	actx, cancel := chromedp.NewExecAllocator(t.Context(), opts...)
	t.Cleanup(cancel)
	bctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	// The first Run starts the browser; it must not carry a timeout, which would stop it.
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return bctx
}

// newTab opens a tab in a new browser context of the browser, so that it shares no cookies
// with the others: a second person, or a second browser of the same person.
func newTab(t *testing.T, browserCtx context.Context) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browserCtx, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("open a browser context: %v", err)
	}
	axe, err := os.ReadFile("testdata/axe-core/axe.min.js")
	if err != nil {
		t.Fatal(err)
	}
	tb := &tab{t: t, ctx: ctx, axe: string(axe)}
	go func() {
		for m, err := range chromedp.Console(ctx) {
			if err != nil {
				return
			}
			tb.mu.Lock()
			tb.console = append(tb.console, m.String())
			tb.mu.Unlock()
		}
	}()
	return tb
}

// run does a, within a bound.
func (tb *tab) run(what string, a chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, a); err != nil {
		tb.t.Fatalf("%s: %v", what, err)
	}
}

func (tb *tab) text(what string, a chromedp.Action[string]) string {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		tb.t.Fatalf("%s: %v", what, err)
	}
	return v
}

// check runs axe-core on the page (WCAG 2.1 A and AA) and fails the test on any violation,
// and on any console message the page caused, but the HTTP status of a page that is meant to
// be a refusal (status, when not 0).
func (tb *tab) check(page string, status ...int) {
	tb.t.Helper()
	if _, err := chromedp.Run(tb.ctx, chromedp.Evaluate[bool](tb.axe+";true")); err != nil {
		tb.t.Fatalf("%s: load axe-core: %v", page, err)
	}
	report := tb.text(page+": axe-core", chromedp.Evaluate[string](`axe.run(document, {runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}})
		.then(r => JSON.stringify(r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.target.join(" "))}))))`, chromedp.EvalAwaitPromise))
	if report != "[]" {
		tb.t.Errorf("%s: accessibility violations (WCAG 2.1 AA): %s", page, report)
	}
	tb.mu.Lock()
	defer tb.mu.Unlock()
	for _, m := range tb.console {
		if len(status) == 1 && strings.Contains(m, fmt.Sprintf("the server responded with a status of %d ", status[0])) {
			continue
		}
		tb.t.Errorf("%s: the browser reported: %s", page, m)
	}
	tb.console = nil
}

// reflows opens each page at 200% zoom (half the width) and fails the test when one is wider
// than the window: only a wide table may scroll, inside its own box.
func (tb *tab) reflows(base string, paths ...string) {
	tb.t.Helper()
	// 200 % and 400 % of a 1280 px window: WCAG 1.4.10 asks for 320 px without scrolling sideways.
	for _, width := range []int64{640, 320} {
		tb.run(fmt.Sprintf("zoom to %d px", width), chromedp.EmulateViewport(width, 900))
		for _, path := range paths {
			tb.run("open "+path, chromedp.Steps(chromedp.Navigate(base+path), chromedp.WaitVisible(chromedp.CSS("h1"))))
			if w := tb.text("overflow", chromedp.Evaluate[string](`String(document.documentElement.scrollWidth - window.innerWidth)`)); w != "0" {
				wide := tb.text("wide", chromedp.Evaluate[string](`[...document.querySelectorAll('*')].filter(e => e.getBoundingClientRect().right > window.innerWidth).map(e => e.tagName + "." + e.className).slice(0, 8).join(" | ")`))
				tb.t.Errorf("%s at %d px is %s px wider than the window: %s", path, width, w, wide)
			}
			// The menu bar's search box has its placeholder as its only visible label: it must
			// be seen whole, not cut off (Zoek op wo, review AB, AB7).
			if c := tb.text("the search box's placeholder", chromedp.Evaluate[string](clippedPlaceholder)); c != "" {
				tb.t.Errorf("%s at %d px: the menu bar's search box cuts its placeholder off: %s", path, width, c)
			}
		}
	}
	tb.run("zoom back", chromedp.EmulateViewport(1280, 900))
}

// clippedPlaceholder says how the menu bar's search box cuts off its placeholder, "" when it
// shows it whole (or the page has no such box): the text's width in the box's font against the
// room inside its padding.
const clippedPlaceholder = `(() => {
	const box = document.getElementById("snelzoeken");
	if (!box) return "";
	const s = getComputedStyle(box), c = document.createElement("canvas").getContext("2d");
	c.font = s.font;
	const room = box.clientWidth - parseFloat(s.paddingLeft) - parseFloat(s.paddingRight), need = c.measureText(box.placeholder).width;
	return need > room ? box.placeholder + ": " + Math.ceil(need) + " px in " + Math.floor(room) + " px" : "";
})()`

// focusedOn waits until the keyboard's focus is on the element with the id want: the message a
// page comes back with after a step takes it (review AB, AB1). It fails the test when the focus
// stays elsewhere.
func (tb *tab) focusedOn(what, want string) {
	tb.t.Helper()
	var got string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if got = tb.text(what, chromedp.Evaluate[string](`document.activeElement ? document.activeElement.id || document.activeElement.tagName : ""`)); got == want {
			return
		}
		if time.Now().After(deadline) {
			tb.t.Errorf("%s: the focus is on %q, want it on #%s", what, got, want)
			return
		}
	}
}

func (tb *tab) shot(shots map[string][]byte, name string) {
	tb.t.Helper()
	b, err := chromedp.Run(tb.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		tb.t.Fatalf("screenshot %s: %v", name, err)
	}
	shots[name] = b
}

// TestBrowserOfficers: two officers of vr-utrecht, each in a browser of their own, propose and
// approve a policy; the author's approve is refused; the other officer's old sign-in is renewed
// on the way to the approval; a browser on the peer ncc, with its picture open all along, sees
// the sitrep the policy shares appear without a reload; a phase change and the audit log.
// axe-core runs on every page, and the pages are photographed for docs/ui.md.
func TestBrowserOfficers(t *testing.T) {
	e := startFederation(t)
	chrome := newChromium(t)
	shots := map[string][]byte{}
	const id = "utrecht-sitreps@1"

	// An officer of ncc has the picture open at ncc before vr-utrecht shares anything with it.
	peer := newTab(t, chrome)
	e.op.signInAs("officer-a")
	peer.run("sign in at ncc and open its picture", chromedp.Steps(
		chromedp.Navigate(e.nccURL+"/taal?lang=nl&terug="+url.QueryEscape("/?crisis=oekraine")),
		chromedp.WaitVisible(chromedp.CSS(`#beeld-live[data-live]`)),
		chromedp.WaitVisible(chromedp.CSS(`a[href*="id=landelijk-1"]`)),
	))
	if n := peer.text("utrecht's sitrep before", chromedp.Evaluate[string](`String(document.querySelectorAll('a[href*="id=regio-1"]').length)`)); n != "0" {
		t.Fatalf("ncc shows vr-utrecht's sitrep before any policy shares it (%s links)", n)
	}
	if m := peer.text("marking before", chromedp.Evaluate[string](`document.documentElement.dataset.marking`)); m != "OPENBAAR" {
		t.Errorf("ncc's picture of public records is marked %q for print, want OPENBAAR", m)
	}
	// A mark on the page: a reload would lose it.
	peer.text("mark the page", chromedp.Evaluate[string](`window.kpNotReloaded = true; "marked"`))
	peer.check("het beeld bij ncc")

	olga := newTab(t, chrome)
	e.op.signInAs("officer-a")
	olga.run("sign in and open the policies", chromedp.Steps(
		chromedp.Navigate(e.url+"/taal?lang=nl&terug="+url.QueryEscape("/beleid")),
		chromedp.WaitVisible(chromedp.CSS("#voorstellen")),
	))
	olga.check("beleid")
	olga.run("open the propose form", chromedp.Steps(
		chromedp.Click(chromedp.CSS("#voorstellen")),
		chromedp.WaitVisible(chromedp.CSS("#bron")),
	))
	olga.check("voorstellen")
	// Before the first lint the live box shows nothing: no empty bar under the field.
	if h := olga.text("empty live box", chromedp.Evaluate[string](`String(document.querySelector('#bron-live').getBoundingClientRect().height)`)); h != "0" {
		t.Errorf("the empty live box under the policy field is %s px high, want 0", h)
	}
	bad := strings.Replace(sitrepPolicy, "spiffe://ncc.crisis.test", "spiffe://defensie.crisis.test", 1)
	// As she types, the linter's messages appear under the field, before any submit.
	olga.run("type a policy with an unknown recipient", chromedp.Steps(
		chromedp.SetValue(chromedp.CSS("#bron"), strings.TrimSuffix(bad, "\n")),
		chromedp.SendKeys(chromedp.CSS("#bron"), "\n"),
		chromedp.WaitVisible(chromedp.CSS("#bron-live li")),
	))
	if p := olga.text("live problems", chromedp.Text(chromedp.CSS("#bron-live"))); !strings.Contains(p, "recipients[0]") || !strings.Contains(p, "defensie.crisis.test") {
		t.Errorf("lint as you type: %q", p)
	}
	olga.run("type a good policy", chromedp.Steps(
		chromedp.SetValue(chromedp.CSS("#bron"), strings.TrimSuffix(sitrepPolicy, "\n")),
		chromedp.SendKeys(chromedp.CSS("#bron"), "\n"),
		chromedp.WaitVisible(chromedp.CSS("#bron-live .kp-live__clean")),
	))
	olga.check("voorstellen, al typend gecontroleerd")
	// The recipient field offers the partners, as the browser sees its list.
	if l := olga.text("suggestions", chromedp.Evaluate[string](`[...document.querySelector('#recipient').list.options].map(o => o.value + " " + o.label).join(", ")`)); l != "lcvs lcvs.crisis.test, ncc ncc.crisis.test" {
		t.Errorf("the recipient field suggests %q, want lcvs and ncc", l)
	}
	// Enter in the recipient's box shows the preview, as its button does; not the check, the
	// form's first button (review AB, AB2).
	olga.run("preview the draft for ncc with Enter", chromedp.Steps(
		chromedp.SendKeys(chromedp.CSS("#recipient"), "ncc"+kb.Enter),
		chromedp.WaitVisible(chromedp.CSS("#uitkomst, #schoon")),
	))
	if got := olga.text("after Enter", chromedp.Evaluate[string](`document.querySelectorAll("#uitkomst").length + " " + document.querySelector("#recipient").value`)); got != "1 ncc" {
		t.Errorf("after Enter in the recipient's box: %q previews and recipient, want the preview for ncc", got)
	}
	olga.check("voorbeeld van het concept")
	olga.run("check a policy with an unknown recipient", chromedp.Steps(
		chromedp.SetValue(chromedp.CSS("#bron"), bad),
		chromedp.Click(chromedp.CSS("#controleren")),
		chromedp.WaitVisible(chromedp.CSS("#problemen")),
	))
	if p := olga.text("problems", chromedp.Text(chromedp.CSS("#problemen"))); !strings.Contains(p, "recipients[0]") {
		t.Errorf("the linter's messages: %q", p)
	}
	// The refusal's summary, above the form, takes the focus and links to the field.
	olga.focusedOn("the proposal refused", "fouten")
	if l := olga.text("summary", chromedp.Evaluate[string](`[...document.querySelectorAll("#fouten a")].map(a => a.getAttribute("href") + " " + a.textContent).join("; ")`)); !strings.HasPrefix(l, "#bron Beleid: de controle vond een probleem") {
		t.Errorf("the refused proposal's summary links %q, want the policy's field", l)
	}
	olga.check("voorstellen met fouten", http.StatusUnprocessableEntity)
	olga.shot(shots, "beleid-voorstellen.png")
	olga.run("propose the policy", chromedp.Steps(
		chromedp.SetValue(chromedp.CSS("#bron"), sitrepPolicy),
		chromedp.Click(chromedp.CSS("#indienen")),
		chromedp.WaitVisible(chromedp.CSS("#gedaan")),
	))
	if st := olga.text("state", chromedp.Text(chromedp.CSS("#staat"))); st != "voorgesteld" {
		t.Errorf("after proposing, the state is %q", st)
	}
	olga.focusedOn("the policy proposed", "gedaan")
	olga.check("beleid voorgesteld")

	// The author goes to approve anyway, by the address: the page says another officer must,
	// and offers no button (the node would refuse it).
	olga.run("the author approves", chromedp.Steps(
		chromedp.Navigate(e.url+"/beleid/stap?stap=goedkeuren&id="+url.QueryEscape(id)),
		chromedp.WaitVisible(chromedp.CSS("#kan-niet")),
	))
	if m := olga.text("refusal", chromedp.Text(chromedp.CSS("#kan-niet"))); !strings.Contains(m, "Een andere beveiligingsfunctionaris moet het goedkeuren") {
		t.Errorf("the author's approve page: %q, want that another officer must approve", m)
	}
	olga.check("goedkeuren door de auteur")

	// The other officer signed in an hour ago at the provider: the approval sends him to sign
	// in again, and back to the confirmation.
	daan := newTab(t, chrome)
	e.op.signInLongAgo(time.Hour)
	e.op.signInAs("officer-b")
	daan.run("sign in and open the policy", chromedp.Steps(
		chromedp.Navigate(e.url+"/taal?lang=nl&terug="+url.QueryEscape("/beleid/toon?id="+id)),
		chromedp.WaitVisible(chromedp.CSS("#goedkeuren")),
	))
	daan.check("beleid voor de tweede functionaris")
	daan.shot(shots, "beleid.png")
	daan.run("approve", chromedp.Steps(
		chromedp.Click(chromedp.CSS("#goedkeuren")),
		chromedp.WaitVisible(chromedp.CSS("#gevolgen")),
	))
	if loc := daan.text("location", chromedp.Location()); !strings.Contains(loc, "/beleid/stap?") {
		t.Errorf("after signing in again the browser is at %s", loc)
	}
	if c := daan.text("approve button", chromedp.Evaluate[string](`getComputedStyle(document.getElementById("bevestigen")).backgroundColor`)); c != "rgb(28, 63, 110)" {
		t.Errorf("the approve's button is %s, want blue (rgb(28, 63, 110))", c)
	}
	daan.check("goedkeuren bevestigen")
	daan.shot(shots, "beleid-goedkeuren.png")
	daan.run("confirm", chromedp.Steps(
		chromedp.Click(chromedp.CSS("#bevestigen")),
		chromedp.WaitVisible(chromedp.CSS("#gedaan")),
	))
	if st := daan.text("state", chromedp.Text(chromedp.CSS("#staat"))); !strings.Contains(st, "goedgekeurd") || !strings.Contains(st, "actief") {
		t.Errorf("after the approval, the state is %q", st)
	}
	daan.check("beleid goedgekeurd")

	// The policy shares regio-1 with ncc: its picture, open all along, shows it without a reload.
	peer.run("the shared sitrep appears at ncc", chromedp.WaitVisible(chromedp.CSS(`#beeld-live a[href*="id=regio-1"]`)))
	if still := peer.text("no reload", chromedp.Evaluate[string](`String(window.kpNotReloaded === true)`)); still != "true" {
		t.Error("ncc's picture was reloaded to show the shared sitrep, not updated in place")
	}
	// The internal sitrep raises what the printed pages' margins say, without a reload too.
	if m := peer.text("marking after", chromedp.Evaluate[string](`document.documentElement.dataset.marking`)); m != "INTERN" {
		t.Errorf("after the internal sitrep arrived, ncc's picture is marked %q for print, want INTERN", m)
	}
	// The time in Dutch, 24 hours and no AM or PM, whatever the browser's own language.
	if st := peer.text("status", chromedp.Text(chromedp.CSS("#beeld-status"))); !regexp.MustCompile(`bijgewerkt.* \d{1,2}:\d\d:\d\d$`).MatchString(st) {
		t.Errorf("the picture's status line after the update: %q, want bijgewerkt and a Dutch time", st)
	}
	peer.check("het beeld bij ncc, bijgewerkt")
	peer.shot(shots, "beeld-live.png")
	// Left open, the picture is fetched again by the clock too (ages, partners' answers), with no
	// change to show; here every second instead of every minute.
	if r := peer.text("refresh", chromedp.Evaluate[string](`document.getElementById("beeld-live").dataset.refresh`)); r != "60" {
		t.Errorf("the picture refreshes every %q s, want 60", r)
	}
	updates := func() string {
		return peer.text("updates", chromedp.Evaluate[string](`document.getElementById("beeld-live").dataset.updates`))
	}
	before := updates()
	peer.text("refresh every second", chromedp.Evaluate[string](`document.getElementById("beeld-live").dataset.refresh = "1"`))
	for deadline := time.Now().Add(10 * time.Second); updates() == before; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the open picture was not fetched again by the clock: %s updates", before)
		}
	}
	waitUpdate := func(what string) {
		t.Helper()
		before := updates()
		for deadline := time.Now().Add(10 * time.Second); updates() == before; time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: the open picture was not fetched again: %s updates", what, before)
			}
		}
	}
	// A fetch by the clock that finds nothing new leaves what is the same as it was: a link with
	// keyboard focus keeps it, and the status line, which screen readers speak, says nothing new.
	href := peer.text("focus a link", chromedp.Evaluate[string](`var a = document.querySelector("#beeld-live a[href]"); a.focus(); a.getAttribute("href")`))
	said := peer.text("status before", chromedp.Text(chromedp.CSS("#beeld-status")))
	waitUpdate("with a link in focus")
	if got := peer.text("focus after", chromedp.Evaluate[string](`var f = document.activeElement; f && f.closest && f.closest("#beeld-live") ? f.getAttribute("href") : "lost to " + (f ? f.tagName : "nothing")`)); got != href {
		t.Errorf("after a fetch by the clock the focus is on %q, want it still on %q", got, href)
	}
	if now := peer.text("status after", chromedp.Text(chromedp.CSS("#beeld-status"))); now != said {
		t.Errorf("a fetch by the clock with nothing new changed the status line from %q to %q", said, now)
	}
	// Paused, the picture is not fetched; resumed, it is again.
	peer.run("pause", chromedp.Click(chromedp.CSS("#beeld-pauze")))
	if st := peer.text("paused", chromedp.Evaluate[string](`document.getElementById("beeld-pauze").getAttribute("aria-pressed") + " | " + document.getElementById("beeld-status").textContent`)); !strings.HasPrefix(st, "true | ") || !strings.Contains(st, "gepauzeerd") {
		t.Errorf("after pausing: %q, want the button pressed and the status saying it is paused", st)
	}
	paused := updates()
	time.Sleep(2500 * time.Millisecond)
	if updates() != paused {
		t.Errorf("the paused picture was fetched again: %s updates, then %s", paused, updates())
	}
	peer.shot(shots, "beeld-gepauzeerd.png")
	peer.run("resume", chromedp.Click(chromedp.CSS("#beeld-pauze")))
	waitUpdate("after resuming")
	peer.text("refresh every minute", chromedp.Evaluate[string](`document.getElementById("beeld-live").dataset.refresh = "60"`))

	daan.run("preview to ncc", chromedp.Steps(
		chromedp.SendKeys(chromedp.CSS("#recipient"), "spiffe://ncc.crisis.test/node/r1"),
		chromedp.Submit(chromedp.CSS("#recipient")),
		chromedp.WaitVisible(chromedp.CSS("#uitkomst")),
	))
	daan.check("voorbeeld")
	daan.shot(shots, "beleid-voorbeeld.png")

	daan.run("the phase", chromedp.Steps(
		chromedp.Navigate(e.url+"/fase"),
		chromedp.WaitVisible(chromedp.CSS("#fase-verder")),
	))
	daan.check("fase")
	daan.run("change the phase with nothing filled in", chromedp.Steps(
		chromedp.Click(chromedp.CSS("#fase-verder")),
		chromedp.WaitVisible(chromedp.CSS("#fouten")),
	))
	daan.focusedOn("the phase refused", "fouten")
	daan.check("fase met fouten", http.StatusBadRequest)
	daan.run("change the phase", chromedp.Steps(
		chromedp.SendKeys(chromedp.CSS("#crisis"), "oekraine"),
		chromedp.SetValue(chromedp.CSS("#phase"), "warm"),
		chromedp.SendKeys(chromedp.CSS("#reden"), "instroom verdubbeld"),
		chromedp.Click(chromedp.CSS("#fase-verder")),
		chromedp.WaitVisible(chromedp.CSS("#gevolgen")),
	))
	// The confirmation says the reason that goes in the audit log (review W, L3).
	if g := daan.text("effects", chromedp.Text(chromedp.CSS("#gevolgen"))); !strings.Contains(g, "Reden, in het auditlog: “instroom verdubbeld”.") {
		t.Errorf("the phase confirmation does not say the reason: %q", g)
	}
	// The form went with POST: the reason, which goes to the audit log, is not in the address,
	// nor in the browser's history (review AB).
	if u := daan.text("the confirmation's address", chromedp.Location()); u != e.url+"/fase/bevestigen" {
		t.Errorf("the phase confirmation is at %s, want %s/fase/bevestigen, without the reason", u, e.url)
	}
	daan.check("fase bevestigen")
	daan.shot(shots, "fase-bevestigen.png")
	daan.run("confirm the phase", chromedp.Steps(
		chromedp.Click(chromedp.CSS("#bevestigen")),
		chromedp.WaitVisible(chromedp.CSS("#gedaan")),
	))
	daan.focusedOn("the phase changed", "gedaan")
	daan.check("fase gewijzigd")
	daan.shot(shots, "fase.png")
	// A step that takes something away has a red button, the approve a blue one (review W, L7);
	// the revoke is not confirmed here.
	daan.run("the revoke's confirmation", chromedp.Steps(
		chromedp.Navigate(e.url+"/beleid/stap?stap=intrekken&id="+url.QueryEscape(id)),
		chromedp.WaitVisible(chromedp.CSS("#bevestigen")),
	))
	if c := daan.text("revoke button", chromedp.Evaluate[string](`getComputedStyle(document.getElementById("bevestigen")).backgroundColor`)); c != "rgb(164, 22, 26)" {
		t.Errorf("the revoke's button is %s, want red (rgb(164, 22, 26))", c)
	}
	daan.check("intrekken bevestigen")
	daan.shot(shots, "beleid-intrekken.png")

	olga.run("the policy list", chromedp.Steps(
		chromedp.Navigate(e.url+"/beleid"),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-policy="`+id+`"]`)),
	))
	olga.check("beleid na goedkeuring")
	olga.shot(shots, "beleid-lijst.png")
	olga.run("explain a record for ncc", chromedp.Steps(
		chromedp.Click(chromedp.CSS("#uitleggen")),
		chromedp.WaitVisible(chromedp.CSS("#record")),
		chromedp.SendKeys(chromedp.CSS("#record"), "regio-1"),
		chromedp.SendKeys(chromedp.CSS("#recipient"), "spiffe://ncc.crisis.test/node/r1"),
		chromedp.Submit(chromedp.CSS("#record")),
		chromedp.WaitVisible(chromedp.CSS("#uitkomst")),
	))
	if d := olga.text("decision", chromedp.Text(chromedp.CSS("#uitkomst"))); d != "wordt gedeeld" {
		t.Errorf("explain regio-1 for ncc: %q", d)
	}
	olga.check("uitleg")
	// At 200% zoom (half the width) the officers' pages reflow too.
	olga.reflows(e.url, "/beleid", "/beleid/voorstel", "/beleid/toon?id="+url.QueryEscape(id), "/audit?controle=1")
	olga.run("the audit log, verified", chromedp.Steps(
		chromedp.Navigate(e.url+"/audit?action=policy.&controle=1"),
		chromedp.WaitVisible(chromedp.CSS("#controle")),
	))
	if rows := olga.text("audit rows", chromedp.Evaluate[string](`String(document.querySelectorAll('tr[data-action^="policy."]').length)`)); rows != "2" {
		t.Errorf("the audit log shows %s policy steps, want the proposal and the approval", rows)
	}
	olga.check("auditlog")
	olga.shot(shots, "audit.png")

	// On a phone's width the wide tables scroll in their boxes, which the keyboard must reach.
	olga.run("the picture and a search on a phone", chromedp.Steps(
		chromedp.EmulateViewport(390, 844),
		chromedp.Navigate(e.url+"/?crisis=oekraine"),
		chromedp.WaitVisible(chromedp.CSS("h1")),
	))
	olga.check("het beeld op een telefoon")
	olga.run("a search on a phone", chromedp.Steps(
		chromedp.Navigate(e.url+"/zoeken?q=beeld"),
		chromedp.WaitVisible(chromedp.CSS("h1")),
	))
	olga.check("zoeken op een telefoon")
	olga.run("back to a desktop's width", chromedp.EmulateViewport(1280, 900))

	// With an exercise open, every page carries the mode switch in the header, which must pass
	// the same checks (its label on the header's blue failed contrast).
	e.utrecht.Exercise(t, "oef-browser", false)
	olga.run("the picture with the mode switch", chromedp.Steps(
		chromedp.Navigate(e.url+"/?crisis=oekraine"),
		chromedp.WaitVisible(chromedp.CSS("#modus")),
	))
	olga.check("het beeld met de modusschakelaar")

	writeShots(t, shots)
}

package ui_test

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/knooppunt/knooppunt/federation/fedtest"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// openLivePicture signs officer-a of vr-utrecht in, in chromium, and opens the picture of
// oekraine, which keeps itself up to date.
func openLivePicture(t *testing.T, e *fedEnv) *tab {
	t.Helper()
	tb := newTab(t, newChromium(t))
	e.op.signInAs("officer-a")
	tb.run("sign in and open the picture", chromedp.Steps(
		chromedp.Navigate(e.url+"/taal?lang=nl&terug="+url.QueryEscape("/?crisis=oekraine")),
		chromedp.WaitVisible(chromedp.CSS(`#beeld-live[data-live]`)),
	))
	return tb
}

// TestBrowserPictureWhenItsNodeIsGone: a picture left open says, as a warning, since when it could
// not be updated when its node stops answering, and greys out; once the node answers again it
// updates and the warning goes. When the node stops, the page says so at once.
func TestBrowserPictureWhenItsNodeIsGone(t *testing.T) {
	e := startFederation(t)
	tb := openLivePicture(t, e)
	state := func() string {
		// The line people see shows the warning; the status line, out of sight, says it.
		return tb.text("state", chromedp.Evaluate[string](`document.getElementById("beeld-bijgewerkt").className + " | " +
			document.getElementById("beeld-live").className + " | " + document.getElementById("beeld-status").textContent`))
	}
	waitFor := func(what string, ok func(string) bool) string {
		t.Helper()
		var s string
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			if s = state(); ok(s) {
				return s
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the page says %q", what, s)
			}
		}
	}
	block := func(on bool) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			var p []*network.BlockPattern
			if on {
				p = []*network.BlockPattern{{URLPattern: e.url + "/*", Block: true}}
			}
			_, err := cdp.Call(ctx, tg, network.SetBlockedURLs, network.SetBlockedURLsParams{URLPatterns: p})
			return err
		})
	}
	// The node no longer answers the page (here: the browser cannot reach it); the picture is
	// fetched again each second instead of each minute.
	tb.run("network", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, network.Enable, network.EnableParams{})
		return err
	}))
	tb.run("block the node", block(true))
	tb.text("refresh every second", chromedp.Evaluate[string](`document.getElementById("beeld-live").dataset.refresh = "1"`))
	s := waitFor("the warning", func(s string) bool { return strings.Contains(s, "kp-live-status--gone") })
	if !strings.Contains(s, "kp-live--stale") || !strings.Contains(s, "kon sinds") || !strings.Contains(s, "niet worden bijgewerkt") {
		t.Errorf("a picture its node does not answer: %q, want it greyed out, and since when it could not be updated", s)
	}
	shots := map[string][]byte{}
	tb.shot(shots, "beeld-verouderd.png")
	tb.check("het beeld, de node antwoordt niet")

	tb.run("unblock the node", block(false))
	s = waitFor("the warning gone", func(s string) bool { return !strings.Contains(s, "kp-live-status--gone") })
	if strings.Contains(s, "kp-live--stale") || !strings.Contains(s, "bijgewerkt om") {
		t.Errorf("once the node answers again: %q, want the picture updated and not greyed out", s)
	}

	// The node stops: the page says since when it could not be updated (not "reload": a node
	// that comes back may answer it), without waiting for its next look.
	tb.text("refresh every minute", chromedp.Evaluate[string](`document.getElementById("beeld-live").dataset.refresh = "60"`))
	e.utrecht.Stop(t)
	s = waitFor("the warning after the node stopped", func(s string) bool { return strings.Contains(s, "kp-live-status--gone") })
	if !strings.Contains(s, "kp-live--stale") || !strings.Contains(s, "kon sinds") {
		t.Errorf("after the node stopped the page says %q, want since when it could not be updated", s)
	}
	writeShots(t, shots)
}

// TestBrowserExercise: an exercise's picture in chromium: the banner, named in the page's title,
// names the partner that does not take part, passes axe-core, and leads back to the same picture
// in the actual crisis.
func TestBrowserExercise(t *testing.T) {
	e := startFederation(t)
	const name = "oefening-utrecht"
	for _, o := range []*fedtest.Org{e.utrecht, e.ncc} {
		o.Exercise(t, name, false)
	}
	// LCVS would share its exercise records with VR Utrecht, but has not started the exercise.
	e.lcvs.Approve(t, "name: lcvs-oefening\npurpose: oefening\nrecipients: [spiffe://vr-utrecht.crisis.test]\nkinds: [sitrep]\nmax_classification: internal\nstatuses: [exercise]\n")
	r := fedtest.Sitrep("oef-1", "oekraine", pb.Classification_INTERNAL, "OEFENING: opvang Amersfoort vol")
	r.Status, r.Exercise = pb.Status_EXERCISE, name
	e.utrecht.Put(t, r)
	tb := newTab(t, newChromium(t))
	e.op.signInAs("officer-a")
	page := "/?crisis=oekraine&exercise=" + name
	tb.run("sign in and open the exercise's picture", chromedp.Steps(
		chromedp.Navigate(e.url+"/taal?lang=nl&terug="+url.QueryEscape(page)),
		chromedp.WaitVisible(chromedp.CSS(`#oefening`)),
	))
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if strings.Contains(tb.text("banner", chromedp.Text(chromedp.CSS("#oefening"))), "Doet niet mee: lcvs") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the banner does not name lcvs: %q", tb.text("banner", chromedp.Text(chromedp.CSS("#oefening"))))
		}
		tb.run("reload", chromedp.Reload())
	}
	if title := tb.text("title", chromedp.Title()); !strings.HasPrefix(title, "OEFENING "+name+" · ") {
		t.Errorf("the exercise's picture is titled %q", title)
	}
	tb.check("het beeld van een oefening")
	shots := map[string][]byte{}
	tb.shot(shots, "oefening.png")
	tb.run("back to the actual crisis", chromedp.Steps(
		chromedp.Click(chromedp.CSS(`#oefening a`)),
		chromedp.WaitNotPresent(chromedp.CSS(`#oefening`)),
	))
	if loc := tb.text("location", chromedp.Location()); !strings.HasSuffix(loc, "/?crisis=oekraine") {
		t.Errorf("the banner led to %s, want the actual picture of oekraine", loc)
	}
	writeShots(t, shots)
}

// TestBrowserPictureKeepsFocus: when a partner stops answering, the picture's next look adds a
// warning above the rest; a link that had the keyboard's focus in the table below keeps it, and
// the warning is the one thing added.
func TestBrowserPictureKeepsFocus(t *testing.T) {
	e := startFederation(t)
	tb := openLivePicture(t, e)
	if n := tb.text("warning before", chromedp.Evaluate[string](`String(document.querySelectorAll("#onvolledig").length)`)); n != "0" {
		t.Fatalf("the picture says it is partial before lcvs stopped")
	}
	href := tb.text("focus a link", chromedp.Evaluate[string](`var a = [...document.querySelectorAll("#beeld-live table a[href]")].pop(); a.focus(); a.getAttribute("href")`))
	e.lcvs.Stop(t)
	tb.text("refresh every second", chromedp.Evaluate[string](`document.getElementById("beeld-live").dataset.refresh = "1"`))
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if tb.text("warning", chromedp.Evaluate[string](`String(document.querySelectorAll("#onvolledig").length)`)) == "1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the picture does not say that lcvs does not answer")
		}
	}
	if got := tb.text("focus after", chromedp.Evaluate[string](`var f = document.activeElement; f && f.closest && f.closest("#beeld-live") ? f.getAttribute("href") : "lost to " + (f ? f.tagName : "nothing")`)); got != href {
		t.Errorf("after the warning came the focus is on %q, want it still on %q", got, href)
	}
}

package ui_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/knooppunt/knooppunt/federation/fedtest"
	"github.com/knooppunt/knooppunt/node/assessment"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// liveWatch has the open picture note what its status line says, each change of its text (the
// status line is a live region: each change is spoken), and each time the element el (a JS
// expression) loses the keyboard's focus.
const liveWatch = `(() => {
	const st = document.getElementById("beeld-status");
	window.kpSaid = [];
	new MutationObserver(() => { if (window.kpSaid[window.kpSaid.length - 1] !== st.textContent) window.kpSaid.push(st.textContent); })
		.observe(st, {childList: true, characterData: true, subtree: true});
	const shown = document.getElementById("beeld-bijgewerkt");
	window.kpShown = [];
	if (shown) {
		new MutationObserver(() => window.kpShown.push(shown.textContent)).observe(shown, {childList: true, characterData: true, subtree: true});
	}
	return "";
})()`

// said is what the open picture's status line said since liveWatch, one change a line.
func said(tb *tab) []string {
	s := tb.text("said", chromedp.Evaluate[string](`window.kpSaid.join("\n")`))
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// waitPicture waits until js (a JS expression giving a string) gives want on the open picture.
func waitPicture(t *testing.T, tb *tab, what, js, want string) {
	t.Helper()
	var got string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if got = tb.text(what, chromedp.Evaluate[string](js)); got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %q, want %q", what, got, want)
		}
	}
}

// TestBrowserPictureFocusWhenBlocksGo: a link in the latest sitreps, below the alerts and the
// partial warning, keeps the keyboard's focus (it does not lose it even for a moment) while the
// alerts' block goes and comes back, and the partial warning comes and goes, above it. The status
// line says the warning's text once when it comes, and once that the picture is complete again
// when it goes (review T, T4).
func TestBrowserPictureFocusWhenBlocksGo(t *testing.T) {
	e := startFederation(t)
	tb := openLivePicture(t, e)
	alerts := `String(document.querySelectorAll("#beeld-live .kp-alerts").length)`
	partial := `String(document.querySelectorAll("#beeld-live #onvolledig").length)`
	if a, p := tb.text("alerts", chromedp.Evaluate[string](alerts)), tb.text("partial", chromedp.Evaluate[string](partial)); a != "1" || p != "0" {
		t.Fatalf("before: %s alert blocks and %s partial warnings, want 1 and 0", a, p)
	}
	// The first link in the latest sitreps, focused anew after each check: each change is
	// checked by itself.
	focus := func() string {
		return tb.text("focus a link", chromedp.Evaluate[string](`(() => {
			const a = document.querySelector('#beeld-live table[aria-labelledby="laatste"] a[href]');
			window.kpBlurred = 0;
			if (!a.kpWatched) {
				a.addEventListener("blur", () => window.kpBlurred++);
				a.kpWatched = true;
			}
			a.focus();
			return a.getAttribute("href");
		})()`))
	}
	href := focus()
	tb.text("watch", chromedp.Evaluate[string](liveWatch))
	focused := func(after string) {
		t.Helper()
		got := tb.text("focus", chromedp.Evaluate[string](`(() => { const f = document.activeElement;
			return (f && f.closest && f.closest("#beeld-live") ? f.getAttribute("href") : "lost to " + (f ? f.tagName : "nothing")) + " | blurred " + window.kpBlurred; })()`))
		if got != href+" | blurred 0" {
			t.Errorf("after %s the focus: %q, want it still on %q and never lost", after, got, href)
		}
		focus()
	}
	// The alert is retracted: its block above goes.
	e.utrecht.Delete(t, "handmatig-bedden-laag-VR09")
	waitPicture(t, tb, "the alerts' block gone", alerts, "0")
	focused("the alerts' block went")
	// Another fires: the block comes back.
	e.utrecht.Put(t, firingAlert("handmatig-bedden-laag-VR19", "VR19"))
	waitPicture(t, tb, "the alerts' block back", alerts, "1")
	focused("the alerts' block came back")
	// The new alert is said at once, by its title, which names its region (review AB, AB3).
	waitPicture(t, tb, "the new alert said", `window.kpSaid.length ? window.kpSaid[window.kpSaid.length - 1] : ""`,
		"Nieuwe waarschuwing: Minder dan 25 vrije opvangplaatsen in de regio — VR19 Zeeland (regel bedden-laag)")

	// A partner stops answering: the partial warning comes above, and the status line says it.
	tb.text("refresh every second", chromedp.Evaluate[string](`document.getElementById("beeld-live").dataset.refresh = "1"`))
	e.lcvs.Stop(t)
	waitPicture(t, tb, "the partial warning", partial, "1")
	focused("the partial warning came")
	warning := tb.text("warning", chromedp.Evaluate[string](`document.getElementById("onvolledig").textContent.replace(/\s+/g, " ").trim()`))
	if s := said(tb); len(s) == 0 || !strings.Contains(s[len(s)-1], warning) {
		t.Errorf("when the partial warning came the status line said %q, want %q", s, warning)
	}
	shots := map[string][]byte{}
	tb.shot(shots, "beeld-focus-onvolledig.png")
	tb.check("het beeld, onvolledig")
	// It answers again: the warning goes, and the status line says the picture is complete.
	e.lcvs.Start(t)
	waitPicture(t, tb, "the partial warning gone", partial, "0")
	focused("the partial warning went")
	complete := tb.text("complete", chromedp.Evaluate[string](`document.getElementById("beeld-status").dataset.complete || ""`))
	if s := said(tb); complete != "Het beeld is weer volledig: alle partners antwoorden." || len(s) == 0 || !strings.Contains(s[len(s)-1], complete) {
		t.Errorf("when the partial warning went the status line said %q, want %q", s, complete)
	}
	tb.text("refresh every minute", chromedp.Evaluate[string](`document.getElementById("beeld-live").dataset.refresh = "60"`))
	tb.shot(shots, "beeld-focus.png")
	tb.check("het beeld, weer volledig")
	writeShots(t, shots)
}

// TestBrowserPictureStatusSpeaksSeldom: in a burst of changes, each shown on the picture a
// second or so after the last, the line people see shows each update's time, but the status line,
// which screen readers speak, changes at most once: to say, with the first change, that the
// shared assessment is out of date now, which its warning, no live region, does not say again at
// each change (review T, T5).
func TestBrowserPictureStatusSpeaksSeldom(t *testing.T) {
	e := startFederation(t)
	rec, err := assessment.New(e.utrecht.Picture(t, "oekraine"), "Opvang Utrecht raakt vol", "Binnen twee dagen vol", "Spreid naar VR19")
	if err != nil {
		t.Fatal(err)
	}
	e.utrecht.Put(t, rec)
	tb := openLivePicture(t, e)
	if n := tb.text("assessment", chromedp.Evaluate[string](`document.querySelectorAll("#duiding-actueel").length + " " + document.querySelectorAll("#duiding-gewijzigd").length`)); n != "1 0" {
		t.Fatalf("before the changes, current and changed assessments: %s, want 1 0", n)
	}
	tb.text("watch", chromedp.Evaluate[string](liveWatch))
	digest := func() string {
		return tb.text("digest", chromedp.Evaluate[string](`document.getElementById("beeld-live").dataset.digest`))
	}
	const burst = 5
	for i := range burst {
		before := digest()
		time.Sleep(1100 * time.Millisecond) // another second on the clock
		e.utrecht.Put(t, fedtest.Sitrep("regio-1", "oekraine", pb.Classification_INTERNAL, fmt.Sprintf("Regionaal beeld VR Utrecht, stand %d", i+1)))
		for deadline := time.Now().Add(15 * time.Second); digest() == before; time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("change %d did not reach the open picture", i+1)
			}
		}
	}
	outdated := tb.text("outdated", chromedp.Evaluate[string](`(() => { const d = document.getElementById("duiding-gewijzigd");
		return d ? d.dataset.say + " | role " + d.getAttribute("role") + " | " + d.querySelectorAll("[role]").length : "no warning"; })()`))
	if !strings.HasPrefix(outdated, "De gedeelde duiding van vr-utrecht is niet meer actueel") || !strings.HasSuffix(outdated, " | role null | 0") {
		t.Errorf("after the changes the assessment's warning: %q, want it to say it is out of date, and no live region", outdated)
	}
	if s, say := said(tb), strings.Split(outdated, " | ")[0]; len(s) != 1 || s[0] != say {
		t.Errorf("in a burst of %d changes the status line said %q; want once, %q", burst, s, say)
	}
	shown := tb.text("shown", chromedp.Evaluate[string](`String(new Set(window.kpShown).size) + " | " + document.getElementById("beeld-bijgewerkt").textContent`))
	if n, _ := strconv.Atoi(strings.Split(shown, " | ")[0]); n < burst-1 || !strings.Contains(shown, "bijgewerkt om") {
		t.Errorf("in a burst of %d changes the line people see showed %q, want each update's time", burst, shown)
	}
	if hidden := tb.text("hidden", chromedp.Evaluate[string](`document.getElementById("beeld-bijgewerkt").getAttribute("aria-hidden") + " " +
		document.getElementById("beeld-status").getBoundingClientRect().width`)); hidden != "true 1" {
		t.Errorf("the line people see's aria-hidden, and the status line's width: %q, want \"true 1\" (screen readers skip the one, the other is out of sight)", hidden)
	}
	tb.check("het beeld na een reeks wijzigingen")
}

// firingAlert is an alert of VR Utrecht's early-warning rule bedden-laag that fires in region.
func firingAlert(id, region string) *pb.Record {
	return &pb.Record{Id: id, Kind: "alert", Crisis: "oekraine", Region: region, Classification: pb.Classification_INTERNAL,
		Labels: map[string]string{"rule": "bedden-laag", "status": "firing"}, Body: []byte(`{"identifier":"alert-bedden-laag-` + region + `","sender":"vr-utrecht.crisis.test",
		"sent":"2026-12-04T08:00:00+00:00","status":"Actual","msgType":"Alert","scope":"Restricted","info":[{"category":["Other"],"event":"bedden-laag",
		"urgency":"Expected","severity":"Severe","certainty":"Likely","headline":"Early-warning rule bedden-laag fires in ` + region + `",
		"description":"Minder dan 25 vrije opvangplaatsen in de regio."}],
		"rule":"bedden-laag","rule_version":1,"region":"` + region + `","state":"firing","fired_at":"` + time.Now().Add(-5*time.Minute).UTC().Format(time.RFC3339) + `"}`)}
}

package ui_test

import (
	"bufio"
	"context"
	"html"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/knooppunt/knooppunt/federation/fedtest"
)

// TestLivePictureWhenAPartnerGoesAndComes: with vr-utrecht's picture open, lcvs stops and starts
// again (review T, T3). vr-utrecht's subscription to it breaks and opens again at once, and the
// open picture learns it within seconds, not at its next minute: the stream tells the page, and
// the page it then fetches (as its script does, for a change) asks the partners, and says lcvs is
// unreachable, and then that it answered.
func TestLivePictureWhenAPartnerGoesAndComes(t *testing.T) {
	e := startFederation(t)
	b := newBrowser(t)
	e.op.signInAs("officer-a")
	picture := e.url + "/?crisis=oekraine"
	// vr-utrecht's subscriptions to its partners are open before the page is made: lcvs's break
	// is what the stream tells (one that never opened does not break; on a loaded machine it may
	// still be connecting here), and one that opened after the page the stream would tell at
	// once, before lcvs stops.
	for _, partner := range []string{"lcvs", "ncc"} {
		fedtest.Eventually(t, 20*time.Second, "vr-utrecht's subscription to "+partner+" open", func() (bool, string) {
			p := e.utrecht.Peer(t, partner)
			return p.Subscription == "open", p.Subscription + " " + p.SubscriptionError
		})
	}
	_, page := b.get(t, picture)
	if !strings.Contains(partnerRow(page, "lcvs"), "geantwoord") {
		t.Fatalf("before lcvs stops: want it answered:\n%s", partnerRow(page, "lcvs"))
	}
	refetch := func() string { return liveRefetch(t, b, picture) }
	// The stream, opened from what the page shows: it sends nothing until that changes.
	digest := attr(t, page, "data-digest")
	events := liveEvents(t, b, e.url+html.UnescapeString(attr(t, page, "data-live"))+"&sinds="+digest)
	next := func(what string, from time.Time, within time.Duration) {
		t.Helper()
		nextEvent(t, events, digest, what, from, within)
	}

	// Under the minute the page would wait for otherwise (it took 0.1 s here; the bound leaves
	// room for a loaded machine, where the subscription may learn of the stop only at its idle
	// timeout, 20 s, and the stream tells at most once per 5 s).
	// Counted from when the stop returned: a stop that takes long on a loaded machine (a CI
	// run with the race detector waited out the bound in it) is not the page's delay; an event
	// that came during it is taken.
	from := time.Now()
	e.lcvs.Stop(t)
	t.Logf("lcvs took %s to stop", time.Since(from).Round(time.Millisecond))
	next("lcvs stopped", time.Now(), 40*time.Second)
	page = refetch()
	if row := partnerRow(page, "lcvs"); !strings.Contains(row, "onbereikbaar") || !strings.Contains(page, "Het beeld is onvolledig: lcvs antwoordt niet") {
		t.Fatalf("the page fetched after lcvs stopped: want lcvs unreachable and the picture incomplete:\n%s", row)
	}
	digest = attr(t, page, "data-digest")

	// vr-utrecht reconnects as soon as lcvs calls it (peerclient.Manager.Retry), or after its
	// backoff, up to 10 s.
	from = time.Now()
	e.lcvs.Start(t)
	next("lcvs started", from, 15*time.Second)
	page = refetch()
	if row := partnerRow(page, "lcvs"); !strings.Contains(row, "geantwoord") || strings.Contains(page, "Het beeld is onvolledig") {
		t.Fatalf("the page fetched after lcvs started: want lcvs answered and the picture whole:\n%s", row)
	}
}

// liveRefetch is the page's fetch of picture for a change its stream announced, as its script
// makes it.
func liveRefetch(t *testing.T, b *browser, picture string) string {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "GET", picture, nil)
	req.Header.Set("X-Knooppunt-Live", "wijziging")
	resp, err := b.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the page's fetch for a change: %d\n%s", resp.StatusCode, body)
	}
	return string(body)
}

// nextEvent waits for the next event of a stream whose page shows digest, one the script acts
// on (its data is not digest), for what, within within of from. An event that came is taken
// even when the wait is over: a stop that took long on a busy machine (the race detector, CI)
// must not lose it to the timer.
func nextEvent(t *testing.T, events <-chan [2]string, digest, what string, from time.Time, within time.Duration) {
	t.Helper()
	check := func(ev [2]string, ok bool) {
		t.Helper()
		if !ok || ev[0] != "beeld" || ev[1] == digest {
			t.Fatalf("%s: event %q, want beeld with data other than the page's digest", what, ev)
		}
		t.Logf("%s: told %s after", what, time.Since(from).Round(time.Millisecond))
	}
	select {
	case ev, ok := <-events:
		check(ev, ok)
		return
	default:
	}
	select {
	case ev, ok := <-events:
		check(ev, ok)
	case <-time.After(within - time.Since(from)):
		t.Fatalf("%s: no event within %s", what, within)
	}
}

// attr is the value of the first attribute name in page.
func attr(t *testing.T, page, name string) string {
	t.Helper()
	_, v, ok := strings.Cut(page, name+`="`)
	if !ok {
		t.Fatalf("the page has no %s", name)
	}
	v, _, _ = strings.Cut(v, `"`)
	return v
}

// liveEvents opens a picture's stream in the browser's session, and gives each event's name and
// data, until the test ends.
func liveEvents(t *testing.T, b *browser, u string) <-chan [2]string {
	t.Helper()
	return liveEventsUntil(t.Context(), t, b, u)
}

// liveEventsUntil is liveEvents until ctx ends: the stream is closed then.
func liveEventsUntil(ctx context.Context, t *testing.T, b *browser, u string) <-chan [2]string {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", u, nil)
	// The browser's client gives up after 10 s; a stream lasts.
	resp, err := (&http.Client{Jar: b.Jar}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the picture's stream: %d", resp.StatusCode)
	}
	events := make(chan [2]string, 64)
	go func() {
		defer close(events)
		var ev [2]string
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			line := sc.Text()
			if name, ok := strings.CutPrefix(line, "event: "); ok {
				ev[0] = name
			} else if data, ok := strings.CutPrefix(line, "data: "); ok {
				ev[1] = data
			} else if line == "" && ev[0] != "" {
				events <- ev
				ev = [2]string{}
			}
		}
	}()
	return events
}

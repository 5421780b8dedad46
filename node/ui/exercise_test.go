package ui_test

import (
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/knooppunt/knooppunt/federation/fedtest"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestExerciseMode: with ?exercise= every page carries the OEFENING banner and every table its
// mark, and shows the exercise's records only, own and a partner's; without it no page shows an
// exercise record or an OEFENING mark, and the mode switch offers the open exercises.
func TestExerciseMode(t *testing.T) {
	e := startFederation(t)
	for _, o := range []*fedtest.Org{e.utrecht, e.ncc} {
		o.Exercise(t, "oef-utrecht", false)
	}
	e.ncc.Approve(t, "name: ncc-oefening\npurpose: oefening\nrecipients: [group:all]\nkinds: [sitrep]\nmax_classification: internal\nstatuses: [exercise]\n")
	// LCVS would share its exercise records with VR Utrecht, but has not started the exercise.
	e.lcvs.Approve(t, "name: lcvs-oefening\npurpose: oefening\nrecipients: [spiffe://vr-utrecht.crisis.test]\nkinds: [sitrep]\nmax_classification: internal\nstatuses: [exercise]\n")
	for _, r := range []*pb.Record{
		fedtest.Sitrep("oef-ncc", "oekraine", pb.Classification_PUBLIC, "Oefenbeeld NCC"),
		fedtest.Sitrep("oef-eigen", "oekraine", pb.Classification_PUBLIC, "Oefenbeeld eigen regio"),
	} {
		r.Status, r.Exercise = pb.Status_EXERCISE, "oef-utrecht"
		if r.Id == "oef-ncc" {
			e.ncc.Put(t, r)
		} else {
			e.utrecht.Put(t, r)
		}
	}
	fedtest.Eventually(t, 10*time.Second, "vr-utrecht holds ncc's exercise sitrep", func() (bool, string) {
		n := 0
		for _, en := range e.utrecht.PictureIn(t, "oekraine", fedtest.ExerciseMode("oef-utrecht")).Entries {
			if en.Record.Id == "oef-ncc" {
				n++
			}
		}
		return n == 1, "not yet"
	})

	b := newBrowser(t)
	e.op.signInAs("officer-a")
	tables := regexp.MustCompile(`<table `)
	marks := regexp.MustCompile(`<p class="kp-oefening-mark" data-exercise="oef-utrecht"><strong>OEFENING</strong> oef-utrecht</p>\s*<div class="kp-table-wrap"[^>]*>\s*<table `)
	for _, path := range []string{"/?crisis=oekraine&exercise=oef-utrecht", "/zoeken?crisis=oekraine&exercise=oef-utrecht"} {
		resp, page := b.get(t, e.url+path)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d\n%s", path, resp.StatusCode, page)
		}
		if !strings.Contains(page, `<section class="kp-oefening" aria-label="OEFENING oef-utrecht" id="oefening" data-exercise="oef-utrecht">`) {
			t.Errorf("%s: no OEFENING banner", path)
		}
		// A tab of the exercise is told apart from one of the crisis by its title too, and the
		// banner leads back to the same page in the actual crisis.
		if !strings.Contains(page, "<title>OEFENING oef-utrecht · ") {
			t.Errorf("%s: the title does not name the exercise", path)
		}
		if back := strings.SplitN(path, "?", 2)[0] + "?crisis=oekraine"; !strings.Contains(page, `href="`+back+`">Terug naar de werkelijkheid`) {
			t.Errorf("%s: the banner does not lead back to %s", path, back)
		}
		// Printed, every page's margins say it too (the print style reads data-exercise).
		if !regexp.MustCompile(`<html lang="nl"[^>]* data-exercise="OEFENING oef-utrecht"`).MatchString(page) {
			t.Errorf("%s: the html element does not carry the exercise for the printed pages' margins", path)
		}
		if n, m := len(tables.FindAllString(page, -1)), len(marks.FindAllString(page, -1)); n == 0 || n != m {
			t.Errorf("%s: %d tables, %d with the OEFENING mark", path, n, m)
		}
		for _, want := range []string{"Oefenbeeld NCC", "Oefenbeeld eigen regio"} {
			if !strings.Contains(page, want) {
				t.Errorf("%s: lacks the exercise record %q", path, want)
			}
		}
		// LCVS did not start the exercise, and its heartbeats say so (its policy grants VR
		// Utrecht exercise records); NCC did.
		fedtest.Eventually(t, 10*time.Second, path+": the banner names the partner that does not take part", func() (bool, string) {
			_, page := b.get(t, e.url+path)
			return strings.Contains(page, `id="oefening-afwezig">Doet niet mee: lcvs. Wie de oefening niet gestart heeft`), "not yet"
		})
		for _, real := range []string{"Landelijk beeld opvang Oekraïne", "Regionaal beeld VR Utrecht", "Richtlijn registratie bij aankomst"} {
			if strings.Contains(page, real) {
				t.Errorf("%s: shows the actual record %q in the exercise", path, real)
			}
		}
		if !strings.Contains(page, `<input type="hidden" name="exercise" value="oef-utrecht">`) {
			t.Errorf("%s: its form drops the mode", path)
		}
	}
	// The exercise's capacity CSV says OEFENING in its first row, which stays with the figures
	// when they are pasted into a report, as well as in its name.
	if resp, csvFile := b.get(t, e.url+"/beeld/csv?crisis=oekraine&exercise=oef-utrecht"); !strings.HasPrefix(csvFile, "\ufeffOEFENING;oef-utrecht\n") ||
		!strings.Contains(resp.Header.Get("Content-Disposition"), "OEFENING-oef-utrecht") {
		t.Errorf("the exercise's CSV (%s): %q", resp.Header.Get("Content-Disposition"), csvFile)
	}
	// An exercise record's page, reached by its link, is in the exercise's mode.
	_, page := b.get(t, e.url+"/?crisis=oekraine&exercise=oef-utrecht")
	// The live picture watches the exercise's picture, not the actual one.
	if !strings.Contains(page, `data-live="/beeld/live?crisis=oekraine&amp;exercise=oef-utrecht&amp;partners=`) {
		t.Errorf("the exercise's picture streams changes of another mode:\n%s", page)
	}
	link := regexp.MustCompile(`href="(/record\?[^"]*id=oef-eigen[^"]*)"`).FindStringSubmatch(page)
	if link == nil {
		t.Fatalf("no link to the own exercise record:\n%s", page)
	}
	resp, rec := b.get(t, e.url+strings.ReplaceAll(link[1], "&amp;", "&"))
	if resp.StatusCode != 200 || !strings.Contains(rec, `id="oefening"`) || !strings.Contains(rec, "Oefenbeeld eigen regio") {
		t.Fatalf("the exercise record's page: %d, banner or record missing:\n%s", resp.StatusCode, rec)
	}

	// The actual mode: no exercise record, no OEFENING mark, and the switch offers the exercise.
	for _, path := range []string{"/?crisis=oekraine", "/zoeken?crisis=oekraine"} {
		_, page := b.get(t, e.url+path)
		for _, bad := range []string{"Oefenbeeld NCC", "Oefenbeeld eigen regio", `id="oefening"`, "kp-oefening-mark"} {
			if strings.Contains(page, bad) {
				t.Errorf("%s in the actual mode shows %q", path, bad)
			}
		}
		if !strings.Contains(page, "Landelijk beeld opvang Oekraïne") {
			t.Errorf("%s in the actual mode lacks the actual records", path)
		}
		if !strings.Contains(page, `<option value="oef-utrecht">OEFENING oef-utrecht</option>`) {
			t.Errorf("%s: the mode switch does not offer the open exercise", path)
		}
		// It says what it switches between, in words: whose data the page shows.
		if !strings.Contains(page, `for="exercise">Gegevens van</label>`) || !strings.Contains(page, `<option value="">de werkelijke crisis</option>`) {
			t.Errorf("%s: the mode switch does not say what it switches", path)
		}
		// The switch stays on the page, with what it shows: the crisis.
		if u, _ := url.Parse(path); !strings.Contains(page, `<form class="kp-mode" method="get" action="`+u.Path+`" id="modus"><input type="hidden" name="crisis" value="oekraine">`) {
			t.Errorf("%s: the mode switch does not keep the page and its crisis", path)
		}
	}
	// From a record, whose mode is its own, the switch goes to the picture.
	if _, page := b.get(t, e.url+"/record?origin="+e.ncc.TD.Name()+"&id=landelijk-1"); !strings.Contains(page, `<form class="kp-mode" method="get" action="/" id="modus">`+"\n") {
		t.Error("on a record's page the mode switch does not go to the picture")
	}
	// An officer sets the exercise's own phase on the phases page in its mode; the actual
	// crisis keeps its phase.
	_, phaseForm := b.get(t, e.url+"/fase?exercise=oef-utrecht")
	if !strings.Contains(phaseForm, `<input type="hidden" name="exercise" value="oef-utrecht">`) {
		t.Errorf("the phase form in the exercise's mode does not keep it:\n%s", phaseForm)
	}
	resp, confirm := b.post(t, e.url+"/fase/bevestigen", url.Values{"csrf": {csrfOf(t, phaseForm)}, "crisis": {"oekraine"}, "phase": {"warm"}, "exercise": {"oef-utrecht"}, "reden": {"test"}})
	if resp.StatusCode != 200 || !strings.Contains(confirm, `id="oefening"`) || !strings.Contains(confirm, `name="exercise" value="oef-utrecht"`) {
		t.Fatalf("the exercise's phase confirmation: %d, without its banner or mode:\n%s", resp.StatusCode, confirm)
	}
	resp, _ = b.post(t, e.url+"/fase/wijzigen", url.Values{"csrf": {csrfOf(t, confirm)}, "crisis": {"oekraine"}, "phase": {"warm"}, "exercise": {"oef-utrecht"}, "reden": {"test"}})
	if resp.StatusCode != 200 {
		t.Fatalf("setting the exercise's phase: %d", resp.StatusCode)
	}
	if p := e.utrecht.PictureIn(t, "oekraine", fedtest.ExerciseMode("oef-utrecht")); p.Phase != "warm" {
		t.Errorf("the exercise's phase is %s, want warm", p.Phase)
	}
	if p := e.utrecht.Picture(t, "oekraine"); p.Phase != "lukewarm" {
		t.Errorf("the actual crisis is %s after the exercise's phase changed, want lukewarm", p.Phase)
	}
	// A step refused is shown again in the exercise, with its mode in the form: sent again, it
	// could not change the actual crisis. The crisis's name is checked as the service does.
	resp, page = b.post(t, e.url+"/fase/wijzigen", url.Values{"csrf": {csrfOf(t, confirm)}, "crisis": {"Noord"}, "phase": {"warm"}, "exercise": {"oef-utrecht"}, "reden": {"test"}})
	if resp.StatusCode != 400 || !strings.Contains(page, `id="oefening"`) || !strings.Contains(page, `name="exercise" value="oef-utrecht"`) ||
		!strings.Contains(page, "Crisis: dit is geen geldige naam van een crisis") {
		t.Errorf("a phase step refused in the exercise: %d, want 400 in the exercise's mode with the crisis's error:\n%s", resp.StatusCode, page)
	}
	if _, page := b.get(t, e.url+"/fase?exercise=oef-utrecht"); !strings.Contains(page, `id="oefening"`) || !strings.Contains(page, "kp-oefening-mark") ||
		!strings.Contains(page, `<a class="utrecht-link" href="/?crisis=oekraine&amp;exercise=oef-utrecht">oekraine</a>`) {
		t.Errorf("the phases page of the exercise lacks its OEFENING banner or table mark, or its crisis's link leaves the exercise:\n%s", page)
	}

	// An exercise that is not open, reached by an old link, is said to be so on every page.
	if _, page := b.get(t, e.url+"/?crisis=oekraine&exercise=oef-nooit"); !strings.Contains(page, `id="oefening-dicht"`) {
		t.Error("the picture of an exercise never started does not say that it is not open")
	}
	if _, page := b.get(t, e.url+"/?crisis=oekraine&exercise=oef-utrecht"); strings.Contains(page, `id="oefening-dicht"`) {
		t.Error("the picture of an open exercise says that it is not open")
	}
	// A link whose exercise is no name at all (mangled in a mail) says so in the page's words,
	// the service's under it, and claims no exercise's mode (review F, F1).
	resp, page = b.get(t, e.url+"/?crisis=oekraine&exercise=oef+1")
	if resp.StatusCode != 400 || strings.Contains(page, `id="oefening"`) || !strings.Contains(page, "Deze link klopt niet") ||
		!strings.Contains(page, `is not an exercise name`) {
		t.Errorf("a link with an exercise name that is none: %d, want 400 saying the link is wrong, with no OEFENING banner:\n%s", resp.StatusCode, page)
	}
	// An own exercise record asked for without its mode does not exist there.
	resp, _ = b.get(t, e.url+"/record?id=oef-eigen")
	if resp.StatusCode != 404 {
		t.Errorf("an exercise record in the actual mode: %d, want 404", resp.StatusCode)
	}

	// The own records' pages in the exercise: its records only, and what is written there is
	// the exercise's, never an actual record.
	w := newBrowser(t)
	resp, list := e.signIn(t, w, "ada", "/records?exercise=oef-utrecht")
	if resp.StatusCode != 200 || !strings.Contains(list, "Oefenbeeld eigen regio") || strings.Contains(list, "Regionaal beeld VR Utrecht") {
		t.Fatalf("the own records of the exercise: %d, want oef-eigen and no actual record:\n%s", resp.StatusCode, list)
	}
	for _, link := range []string{`href="/records/nieuw?exercise=oef-utrecht"`, `href="/records/importeren?exercise=oef-utrecht"`,
		`href="/records/wijzigen?id=oef-eigen&amp;exercise=oef-utrecht"`, `href="/records?exercise=oef-utrecht" id="nav-records"`} {
		if !strings.Contains(list, link) {
			t.Errorf("the own records of the exercise lack %s", link)
		}
	}
	resp, form := w.get(t, e.url+"/records/wijzigen?id=oef-eigen&exercise=oef-utrecht")
	if resp.StatusCode != 200 || !strings.Contains(form, `action="/records/wijzigen?exercise=oef-utrecht"`) {
		t.Fatalf("the form of an exercise record: %d, want it to post in the exercise:\n%s", resp.StatusCode, form)
	}
	_, form = w.get(t, e.url+"/records/nieuw?kind=shelter.capacity&exercise=oef-utrecht")
	resp, _ = w.post(t, e.url+"/records/nieuw?exercise=oef-utrecht", url.Values{"csrf": {csrfOf(t, form)}, "kind": {"shelter.capacity"}, "id": {"oef-opvang"},
		"crisis": {"oekraine"}, "region": {"VR09"}, "classification": {"internal"}, "body.municipality": {"Zeist"}, "body.beds_total": {"40"}, "body.beds_free": {"12"}})
	if resp.StatusCode != 200 || !strings.Contains(resp.Request.URL.RawQuery, "exercise=oef-utrecht") {
		t.Fatalf("a new record in the exercise: %d at %s", resp.StatusCode, resp.Request.URL)
	}
	if _, err := pb.NewRecordServiceClient(e.utrecht.Local(t)).Get(fedtest.Call(t), &pb.GetRequest{Id: "oef-opvang", Mode: fedtest.ExerciseMode("oef-utrecht")}); err != nil {
		t.Errorf("the record written in the exercise is not the exercise's: %v", err)
	}
	if _, err := pb.NewRecordServiceClient(e.utrecht.Local(t)).Get(fedtest.Call(t), &pb.GetRequest{Id: "oef-opvang"}); err == nil {
		t.Error("the record written in the exercise is an actual record")
	}
}

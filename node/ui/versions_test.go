package ui_test

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"

	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// versionRows splits a record page's versions table into its rows, by version.
func versionRows(page string) map[string]string {
	rows := map[string]string{}
	for _, part := range strings.Split(page, `<tr class="utrecht-table__row" data-version="`)[1:] {
		v, rest, _ := strings.Cut(part, `"`)
		row, _, _ := strings.Cut(rest, "</tr>")
		rows[v] = row
	}
	return rows
}

// TestRecordPageShowsVersions: a record written in three versions through the gRPC API, its
// free beds changing each time, shows on its page in three rows, newest first, each marking the
// number that changed from the version before and nothing else.
func TestRecordPageShowsVersions(t *testing.T) {
	e := start(t)
	rc := e.records(t)
	for _, free := range []int{12, 8, 3} {
		body := fmt.Appendf(nil, `{"municipality":"Zeist","beds_total":40,"beds_free":%d}`, free)
		if _, err := rc.Put(context.Background(), &pb.PutRequest{Record: &pb.Record{Id: "zeist", Kind: "shelter.capacity", Crisis: "oekraine",
			Region: "VR09", Classification: pb.Classification_INTERNAL, Body: body}}); err != nil {
			t.Fatalf("put beds_free %d: %v", free, err)
		}
	}
	b := newBrowser(t)
	resp, page := e.signIn(t, b, "bram", "/record?id=zeist")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("record page: %d\n%s", resp.StatusCode, page)
	}
	if !strings.Contains(page, `<h2 class="utrecht-heading-2" id="versies">Versies</h2>`) || !strings.Contains(page, "niet de hele inhoud") {
		t.Errorf("the record page lacks its versions and the note on what they keep:\n%s", page)
	}
	rows := versionRows(page)
	if len(rows) != 3 || strings.Index(page, `data-version="3"`) > strings.Index(page, `data-version="1"`) {
		t.Fatalf("the record page lists versions %v, want 3, 2 and 1, newest first:\n%s", rows, page)
	}
	for v, free := range map[string]string{"3": "3", "2": "8"} {
		row := rows[v]
		if !strings.Contains(row, `<mark data-changed="beds_free">Vrije opvangplaatsen: `+free+`</mark>`) || strings.Count(row, "<mark") != 1 {
			t.Errorf("version %s: want beds_free %s marked as the one change:\n%s", v, free, row)
		}
		if !strings.Contains(row, "Gemeente: Zeist<br>Opvangplaatsen totaal: 40<br>") || !strings.Contains(row, "zojuist") {
			t.Errorf("version %s: want the values kept, in the schema's order by their names in Dutch, unmarked, and its age:\n%s", v, row)
		}
	}
	if row := rows["1"]; !strings.Contains(row, "Vrije opvangplaatsen: 12") || strings.Contains(row, "<mark") || !strings.Contains(row, "oudste bewaarde versie") {
		t.Errorf("version 1: want beds_free 12, nothing marked, the oldest kept:\n%s", row)
	}

	// A version that changed only what the history does not keep (a long text) says so, not
	// "–", which read as "nothing changed".
	long := strings.Repeat("Sporthal De Koppel, vanaf vrijdag. ", 10)
	if _, err := rc.Put(context.Background(), &pb.PutRequest{Record: &pb.Record{Id: "zeist", Kind: "shelter.capacity", Crisis: "oekraine",
		Region: "VR09", Classification: pb.Classification_INTERNAL, Body: fmt.Appendf(nil, `{"municipality":"Zeist","beds_total":40,"beds_free":3,"notes":%q}`, long)}}); err != nil {
		t.Fatalf("put notes: %v", err)
	}
	_, page = b.get(t, e.url+"/record?id=zeist")
	if row := versionRows(page)["4"]; !strings.Contains(row, "niets van wat bewaard blijft") || strings.Contains(row, "<mark") {
		t.Errorf("version 4 changed only a long text: want it said that nothing kept changed:\n%s", row)
	}

	// An exercise's page never shows the actual record's versions: there it does not exist.
	resp, _ = b.get(t, e.url+"/record?id=zeist&exercise=oef-1")
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("the actual record in an exercise's mode: %d, want 404", resp.StatusCode)
	}
}

// TestSeverityInDutch: a sitrep's severity, a value from a fixed list, is said in Dutch in the
// editor's form (its choices) and in the record's versions, as the record page says it.
func TestSeverityInDutch(t *testing.T) {
	e := start(t)
	rc := e.records(t)
	for _, sev := range []string{"low", "medium"} {
		body := fmt.Appendf(nil, `{"title":"Beeld Zeist","summary":"Rustig.","severity":%q}`, sev)
		if _, err := rc.Put(context.Background(), &pb.PutRequest{Record: &pb.Record{Id: "sitrep-zeist", Kind: "sitrep", Crisis: "oekraine",
			Region: "VR09", Classification: pb.Classification_INTERNAL, Body: body}}); err != nil {
			t.Fatalf("put severity %s: %v", sev, err)
		}
	}
	b := newBrowser(t)
	_, page := e.signIn(t, b, "eva", "/record?id=sitrep-zeist")
	if !strings.Contains(page, `<mark data-changed="severity">Ernst: gemiddeld</mark>`) || !strings.Contains(page, "Ernst: laag") || strings.Contains(page, "Ernst: medium") {
		t.Errorf("the versions do not say the severity in Dutch:\n%s", page)
	}
	// Dates in words, the exact time kept in the time element; on the record page with its age.
	month := `(januari|februari|maart|april|mei|juni|juli|augustus|september|oktober|november|december)`
	when := `<time datetime="[^"]+" title="\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [^"]+">\d{1,2} ` + month + ` \d{4}, \d\d:\d\d</time>`
	if !regexp.MustCompile(`<dd>`+when+` \(zojuist\)</dd>`).MatchString(page) || !regexp.MustCompile(`<span class="kp-muted">`+when+`</span>`).MatchString(page) {
		t.Errorf("the record page does not write its dates in words:\n%s", page)
	}
	_, page = b.get(t, e.url+"/records/nieuw?kind=sitrep")
	for _, want := range []string{`<option value="low">laag</option>`, `<option value="medium">gemiddeld</option>`, `<option value="critical">kritiek</option>`} {
		if !strings.Contains(page, want) {
			t.Errorf("the form's severity lacks %s", want)
		}
	}
}

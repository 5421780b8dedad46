package main

import (
	"reflect"
	"strings"
	"testing"

	"github.com/knooppunt/knooppunt/node/assessment"
)

// TestCLIAssessmentSumsMoved: show says how much the picture changed since the assessment was
// written (review I, F21). A note fixed in a record is a change that moves no sum, and says so;
// free beds in Zeeland falling from 54 to 15 names that sum and the national total, regions
// first, as plain decimals; a record deleted since counts its records; -o json gives the same
// in sums_moved.
func TestCLIAssessmentSumsMoved(t *testing.T) {
	addr, _ := servedNode(t)
	put := func(id, body string) {
		cli(t, nil, "", "record", "put", "--node", addr, "--kind", "shelter.capacity", "--crisis", "oekraine", "--region", "VR19",
			"--classification", "internal", "--id", id, "--body", body).want(t, 0)
	}
	show := func() string {
		return cli(t, nil, "", "assessment", "show", "--node", addr, "--crisis", "oekraine").want(t, 0).stdout
	}
	// The sums that moved by their names in -o json, as a pipeline reads them.
	var v struct {
		Changed bool             `json:"picture_changed"`
		Kept    bool             `json:"sums_kept"`
		Minor   bool             `json:"minor_change"`
		Moved   []map[string]any `json:"sums_moved"`
	}
	showJSON := func() {
		cli(t, nil, "", "assessment", "show", "--node", addr, "--crisis", "oekraine", "-o", "json").want(t, 0).oneJSON(t, &v)
	}
	put("shelter-goes", `{"municipality":"Goes","beds_total":120,"beds_free":40}`)
	put("shelter-hulst", `{"municipality":"Hulst","beds_total":30,"beds_free":14}`)
	cli(t, nil, "", "assessment", "publish", "--node", addr, "--crisis", "oekraine", "--text", "Zeeland heeft 54 plekken",
		"--development", "d", "--advice", "Spreid naar VR09").want(t, 0)
	if out := show(); strings.Contains(out, "Sums") || strings.Contains(out, "sums") {
		t.Errorf("show right after publish speaks of sums:\n%s", out)
	}
	showJSON()
	if v.Changed || !v.Kept || v.Minor || v.Moved == nil || len(v.Moved) != 0 {
		t.Fatalf("show -o json right after publish: %+v", v)
	}

	put("shelter-goes", `{"municipality":"Goes","beds_total":120,"beds_free":40,"notes":"ingang aan de achterkant"}`)
	if out := show(); !strings.Contains(out, "THE PICTURE CHANGED since it was written (") || !strings.Contains(out, "\nThe picture changed, but none of its sums moved.\n") {
		t.Errorf("show after a note was added:\n%s", out)
	}
	showJSON()
	if !v.Changed || !v.Minor || len(v.Moved) != 0 {
		t.Fatalf("show -o json after a note was added: %+v", v)
	}

	put("shelter-goes", `{"municipality":"Goes","beds_total":120,"beds_free":1}`)
	want := "Sums that moved:\n" +
		"  shelter.capacity beds_free VR19  54 → 15 (2 records)\n" +
		"  shelter.capacity beds_free NL  54 → 15 (2 records)\n"
	if out := show(); !strings.Contains(out, want) || strings.Contains(out, "none of its sums") {
		t.Errorf("show after Goes's free beds fell:\n%s\nwant\n%s", out, want)
	}

	cli(t, nil, "", "record", "delete", "shelter-hulst", "--node", addr).want(t, 0)
	want = "Sums that moved:\n" +
		"  shelter.capacity beds_free VR19  54 → 1 (2 → 1 records)\n" +
		"  shelter.capacity beds_free NL  54 → 1 (2 → 1 records)\n" +
		"  shelter.capacity beds_total VR19  150 → 120 (2 → 1 records)\n" +
		"  shelter.capacity beds_total NL  150 → 120 (2 → 1 records)\n"
	if out := show(); !strings.Contains(out, want) {
		t.Errorf("show after Hulst's record was deleted:\n%s\nwant\n%s", out, want)
	}
	showJSON()
	moved := func(field, region string, before, after, recordsBefore, recordsAfter float64) map[string]any {
		return map[string]any{"kind": "shelter.capacity", "field": field, "region": region, "before": before, "after": after,
			"records_before": recordsBefore, "records_after": recordsAfter}
	}
	wantJSON := []map[string]any{moved("beds_free", "VR19", 54, 1, 2, 1), moved("beds_free", "NL", 54, 1, 2, 1),
		moved("beds_total", "VR19", 150, 120, 2, 1), moved("beds_total", "NL", 150, 120, 2, 1)}
	if !v.Changed || !v.Kept || v.Minor || !reflect.DeepEqual(v.Moved, wantJSON) {
		t.Fatalf("show -o json after Hulst's record was deleted: %+v, want sums moved %+v", v, wantJSON)
	}
}

// TestPrintAssessmentSumsMoved: a sum prints as a plain decimal, never in exponent form, with one
// record said as one; an assessment of a release that kept no sums says so once the picture
// changed, and nothing while it did not; on a partner's node whose sums differ though no source
// changed, the difference is named as that, not as a change.
func TestPrintAssessmentSumsMoved(t *testing.T) {
	v := &assessment.View{ID: "assessment-oekraine", Origin: "ncc.crisis.test", Version: 1, Changed: true, ChangedSources: []string{"lcvs.crisis.test"},
		SumsKept: true, SumsMoved: []assessment.Moved{{Kind: "shelter.capacity", Field: "beds_free", Region: "VR19", Before: 1234567, After: 0.5, RecordsBefore: 1, RecordsAfter: 1}}}
	var b strings.Builder
	printAssessment(&b, v)
	if want := "records of lcvs.crisis.test are newer, or left the picture\nSums that moved:\n  shelter.capacity beds_free VR19  1234567 → 0.5 (1 record)\n"; !strings.Contains(b.String(), want) {
		t.Errorf("a sum of a million:\n%s\nwant\n%s", b.String(), want)
	}
	v.SumsKept, v.SumsMoved = false, []assessment.Moved{}
	b.Reset()
	printAssessment(&b, v)
	if want := "\nThe sums it saw were not kept by the release that wrote it: how much they moved is not said.\n"; !strings.Contains(b.String(), want) {
		t.Errorf("an earlier release's assessment:\n%s", b.String())
	}
	v.Changed, v.ChangedSources = false, []string{}
	b.Reset()
	printAssessment(&b, v)
	if strings.Contains(b.String(), "sums") || strings.Contains(b.String(), "Sums") {
		t.Errorf("an earlier release's assessment of a picture that did not change speaks of sums:\n%s", b.String())
	}
	v.SumsKept, v.SumsMoved = true, []assessment.Moved{{Kind: "shelter.capacity", Field: "beds_free", Region: "VR19", Before: 54, After: 40, RecordsBefore: 7, RecordsAfter: 5}}
	b.Reset()
	printAssessment(&b, v)
	if want := "No source this node shows has changed since it was written.\nSums here that differ from the ones it saw, though no source changed (this node is shown less of some sources than its author):\n  shelter.capacity beds_free VR19  54 → 40 (7 → 5 records)\n"; !strings.Contains(b.String(), want) {
		t.Errorf("a partner shown less:\n%s\nwant\n%s", b.String(), want)
	}
}

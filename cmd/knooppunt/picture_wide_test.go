package main

import (
	"strings"
	"testing"
)

// TestPictureFiguresFirstAndWide: a shelter's row in the picture leads with the figures the sums
// add up, so that they survive the cut to fit a terminal, and does not repeat the municipality
// its WHAT names; a cut id or summary ends in … and a note after the table names --wide, which
// prints them whole.
func TestPictureFiguresFirstAndWide(t *testing.T) {
	addr, _ := servedNode(t)
	put := func(kind, region, id, body string) {
		cli(t, nil, "", "record", "put", "--node", addr, "--kind", kind, "--crisis", "oekraine", "--region", region, "--classification", "internal",
			"--id", id, "--body", body).want(t, 0)
	}
	// In the order a partner writes it: municipality and location first.
	put("shelter.capacity", "VR19", "shelter-goes", `{"municipality":"Goes","location":"Sporthal De Ganzevoort, Goes","beds_total":150,"beds_free":3,"notes":"demo figures, made up"}`)
	put("sitrep", "VR19", "sitrep-zeeland-beds-low-VR19-1", `{"title":"Opvang Zeeland raakt vol","summary":"Nog 3 bedden vrij.","severity":"high"}`)

	out := cli(t, nil, "", "picture", "--node", addr, "--crisis", "oekraine").want(t, 0).stdout
	// The summary is the last cell, after two spaces of padding.
	if goes := lineWith(out, "shelter.capacity  VR19"); !strings.Contains(goes, "  Goes  ") || !strings.HasSuffix(goes, "  beds_free 3 · beds_total 150 · location Sporthal De Ganzevo…\n") {
		t.Errorf("the shelter's row:\n%s\nwant WHAT Goes and the summary led by beds_free and beds_total, without the municipality; the picture:\n%s", goes, out)
	}
	if sitrep := lineWith(out, "sitrep"); !strings.Contains(sitrep, "  sitrep-zeeland-beds-low…  ") {
		t.Errorf("the sitrep's row:\n%s\nwant its id cut at 24 characters; the picture:\n%s", sitrep, out)
	}
	if !strings.Contains(out, "\nCells ending in … are cut to fit a terminal: --wide prints ids and summaries whole.\n") {
		t.Errorf("the picture does not name --wide after cutting cells:\n%s", out)
	}

	out = cli(t, nil, "", "picture", "--node", addr, "--crisis", "oekraine", "--wide").want(t, 0).stdout
	if goes := lineWith(out, "shelter.capacity  VR19"); !strings.HasSuffix(goes, "  beds_free 3 · beds_total 150 · location Sporthal De Ganzevoort, Goes · notes demo figures, made up\n") {
		t.Errorf("the shelter's row with --wide:\n%s", out)
	}
	if !strings.Contains(lineWith(out, "sitrep"), "  sitrep-zeeland-beds-low-VR19-1  ") || strings.Contains(out, "…") || strings.Contains(out, "--wide") {
		t.Errorf("the picture with --wide cuts a cell, or says it did:\n%s", out)
	}
	// -o json is whole anyway: --wide leaves it as it is.
	if out := cli(t, nil, "", "picture", "--node", addr, "--crisis", "oekraine", "--wide", "-o", "json").want(t, 0).stdout; !strings.HasPrefix(out, "{") {
		t.Errorf("picture --wide -o json:\n%s", out)
	}
}

package ui_test

import (
	"context"
	"strings"
	"testing"

	"github.com/knooppunt/knooppunt/node/assessment"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestPictureShowsAssessment: the picture page shows the current assessment with its texts, says
// it interprets the picture as shown, lists who endorsed it, and flags it once the picture changed.
func TestPictureShowsAssessment(t *testing.T) {
	e := start(t)
	conn := e.local(t)
	rc, sc := pb.NewRecordServiceClient(conn), pb.NewSearchServiceClient(conn)
	ctx := context.Background()
	beds := func(free string) {
		t.Helper()
		if _, err := rc.Put(ctx, &pb.PutRequest{Record: &pb.Record{Id: "goes", Kind: "shelter.capacity", Crisis: "oekraine", Region: "VR19",
			Classification: pb.Classification_INTERNAL, Body: []byte(`{"municipality":"Goes","beds_total":120,"beds_free":` + free + `}`)}}); err != nil {
			t.Fatal(err)
		}
	}
	beds("7")
	b := newBrowser(t)
	_, page := e.signIn(t, b, "bram", "/?crisis=oekraine")
	if !strings.Contains(page, "Er is nog geen duiding van deze crisis bij dit knooppunt.") {
		t.Fatalf("the picture without an assessment does not say so:\n%s", page)
	}

	pic, err := sc.Picture(ctx, &pb.PictureRequest{Crisis: "oekraine"})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := assessment.New(pic, "Zeeland raakt <vol>", "Binnen twee dagen vol", "Spreid naar VR09")
	if err != nil {
		t.Fatal(err)
	}
	put, err := rc.Put(ctx, &pb.PutRequest{Record: rec})
	if err != nil {
		t.Fatal(err)
	}
	rec.Origin, rec.Version = testOrg, put.Version
	resp, err := assessment.NewResponse(rec, testOrg, assessment.Endorse, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rc.Put(ctx, &pb.PutRequest{Record: resp}); err != nil {
		t.Fatal(err)
	}
	_, page = b.get(t, e.url+"/?crisis=oekraine")
	for _, want := range []string{
		// Organisations by the names this node knows them by: its own by its own.
		"Gedeelde duiding", "Door VR Utrecht, versie 1,", "Zeeland raakt &lt;vol&gt;", "Binnen twee dagen vol", "Spreid naar VR09",
		`id="duiding-actueel">Het beeld is nog precies zoals toen deze duiding werd geschreven.`,
		`id="duiding-onderschreven">VR Utrecht</dd>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the picture with an assessment lacks %q", want)
		}
	}

	beds("2")
	_, page = b.get(t, e.url+"/?crisis=oekraine")
	if !strings.Contains(page, `id="duiding-gewijzigd"><p class="utrecht-paragraph">Het beeld is veranderd sinds deze duiding is geschreven. Veranderd: VR Utrecht.`) {
		t.Errorf("the picture changed, and the page does not flag the assessment:\n%s", page)
	}
	// How much it changed: the free beds the assessment saw, and now (review I, F21).
	for _, want := range []string{
		`<li class="utrecht-unordered-list__item">Vrije opvangplaatsen, VR19 Zeeland: 7 → 2 (meldingen: 1)</li>`,
		`<li class="utrecht-unordered-list__item">Vrije opvangplaatsen, Nederland (totaal): 7 → 2 (meldingen: 1)</li>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the changed assessment lacks %q", want)
		}
	}
	if strings.Contains(page, "Opvangplaatsen totaal, VR19") {
		t.Errorf("a sum that did not move is named as moved:\n%s", page)
	}

	// An assessment and a response have no title: they are called by who wrote them on what,
	// never by their ids, in the own records and in the search.
	for _, path := range []string{"/records", "/zoeken?crisis=oekraine&kind=assessment", "/zoeken?crisis=oekraine&kind=assessment.response"} {
		_, page = b.get(t, e.url+path)
		if !strings.Contains(page, "Duiding VR Utrecht: oekraine") && !strings.Contains(page, "Reactie van VR Utrecht op de duiding van VR Utrecht") {
			t.Errorf("%s does not call the assessment or its response by a title:\n%s", path, page)
		}
		if strings.Contains(page, ">"+rec.Id+"<") || strings.Contains(page, ">"+resp.Id+"<") {
			t.Errorf("%s calls a record by its id:\n%s", path, page)
		}
	}
	// A record's edit page is headed by its title, not its id.
	_, page = e.signIn(t, newBrowser(t), "eva", "/records/wijzigen?id=goes")
	if !strings.Contains(page, `<h1 class="utrecht-heading-1">‘Goes’ wijzigen</h1>`) {
		t.Errorf("the edit page is not headed by the record's title:\n%s", page)
	}
}

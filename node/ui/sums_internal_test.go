package ui

import (
	"strings"
	"testing"

	"github.com/knooppunt/knooppunt/node/record"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestPictureSaysWhatSumsLack: a sum that lacks entries of its kind (a partner's policy withheld
// beds_total of three of Zeeland's seven shelters) says "4 van 7" in its cell, and a warning
// under the sums names it, so that 54 free beds are not read as a share of 460 (review I, F1). A
// sum of every entry says nothing of the kind; the CSV's cells stay figures.
func TestPictureSaysWhatSumsLack(t *testing.T) {
	pages, cats := pagesAndCatalogues(t)
	l := &Lang{Code: "nl", cat: cats["nl"]}
	kinds, err := record.NewKinds(record.DemoKinds())
	if err != nil {
		t.Fatal(err)
	}
	pic := &pb.PictureResponse{Crisis: "oekraine", Aggregates: []*pb.Aggregate{
		{Kind: "shelter.capacity", Field: "beds_free", Region: "VR19", Sum: 54, Records: 7, Entries: 7},
		{Kind: "shelter.capacity", Field: "beds_free", Region: "NL", Sum: 203, Records: 12, Entries: 12},
		{Kind: "shelter.capacity", Field: "beds_total", Region: "VR19", Sum: 460, Records: 4, Entries: 7},
		{Kind: "shelter.capacity", Field: "beds_total", Region: "NL", Sum: 1450, Records: 9, Entries: 12},
	}}
	v := &pictureView{Crisis: "oekraine", Assessment: &assessmentPart{L: l}}
	v.Columns, v.Rows = capacity(l, kinds, pic)
	v.Lacking = lackingSums(l, pic)
	var b strings.Builder
	if err := pages["picture"].ExecuteTemplate(&b, "content", &page{L: l, Content: v}); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, want := range []string{
		`<td class="utrecht-table__cell kp-num">54</td>`,
		`<td class="utrecht-table__cell kp-num">460<br><span class="kp-muted">4 van 7</span></td>`,
		`<td class="utrecht-table__cell kp-num">1.450<br><span class="kp-muted">9 van 12</span></td>`,
		`id="onvolledige-sommen"`,
		"<li>Opvangplaatsen totaal, VR19 Zeeland: 4 van 7 meldingen; bij 3 ontbreekt het</li>",
		"<li>Opvangplaatsen totaal, Nederland (totaal): 9 van 12 meldingen; bij 3 ontbreekt het</li>",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the picture lacks %q:\n%s", want, page)
		}
	}
	if strings.Contains(page, "7 van 7") || strings.Contains(page, "Vrije opvangplaatsen, VR19") {
		t.Errorf("a sum of every entry is said to lack some:\n%s", page)
	}
	for _, row := range v.Rows {
		for _, c := range row.Cells {
			if strings.Contains(c, "van") {
				t.Errorf("a cell, which the CSV writes as a figure, is %q", c)
			}
		}
	}
}

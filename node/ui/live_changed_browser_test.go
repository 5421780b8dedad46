package ui_test

import (
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/knooppunt/knooppunt/federation/fedtest"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestBrowserPictureMarksWhatChanged: a figure of the sums that a live update changes is marked
// until the next update, with the earlier figure in its title, so that a coordinator sees at a
// glance what moved (review T, T6), and in text a screen reader reads (review AB, AB4); the
// figures that did not change are not marked.
func TestBrowserPictureMarksWhatChanged(t *testing.T) {
	e := startFederation(t)
	tb := openLivePicture(t, e)
	// The mark: the cell's colour, its title, and the text out of sight after the figure that a
	// screen reader reads with it (review AB, AB4).
	marked := `Array.from(document.querySelectorAll("#beeld-live .kp-figures-table td")).filter(td => td.classList.contains("kp-changed") || td.querySelector(".kp-visually-hidden"))
		.map(td => td.firstChild.nodeValue.trim() + " (" + td.title + ") [" + [...td.querySelectorAll(".kp-visually-hidden")].map(s => s.textContent).join("|") + "]").join("; ")`
	if got := tb.text("marked", chromedp.Evaluate[string](marked)); got != "" {
		t.Fatalf("before any update: marked %q, want nothing", got)
	}
	// Utrecht's free beds, 14 of its 120, go to 9: VR09's free beds and the national total move.
	e.lcvs.Put(t, &pb.Record{Id: "utrecht", Kind: "shelter.capacity", Crisis: "oekraine", Region: "VR09", Classification: pb.Classification_INTERNAL,
		Body: []byte(`{"municipality":"Utrecht","beds_total":120,"beds_free":9,"contact_phone":"+31 30 123 4567"}`)})
	waitPicture(t, tb, "the changed figures marked", marked, "15 (eerder 20) [ gewijzigd, eerder 20]; 78 (eerder 83) [ gewijzigd, eerder 83]")
	shots := map[string][]byte{}
	tb.shot(shots, "beeld-gewijzigd.png")
	tb.check("het beeld, cijfers gewijzigd")
	// A change elsewhere: the marks of the last update go.
	e.ncc.Put(t, fedtest.Sitrep("landelijk-2", "oekraine", pb.Classification_PUBLIC, "Tweede landelijk beeld"))
	waitPicture(t, tb, "the marks gone at the next update", marked, "")
	writeShots(t, shots)
}

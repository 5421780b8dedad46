package ui

import (
	"fmt"

	"github.com/knooppunt/knooppunt/node/assessment"
)

// sumsMoved are the sums that moved since the assessment was written, one a line in the page's
// language, the picture's order: "Vrije opvangplaatsen, VR19 Zeeland: 54 → 15 (meldingen: 7 →
// 5)". A coordinator then tells a change the advice rests on from a typo fixed in a note
// (review I, F21).
func sumsMoved(l *Lang, v *assessment.View) []string {
	var out []string
	for _, m := range v.SumsMoved {
		region := l.Region(m.Region)
		if m.Region == "NL" {
			region = l.T("picture.national")
		}
		records := fmt.Sprint(m.RecordsAfter)
		if m.RecordsBefore != m.RecordsAfter {
			records = fmt.Sprintf("%d → %d", m.RecordsBefore, m.RecordsAfter)
		}
		out = append(out, l.T("assessment.sums_moved_item", aggLabel(l, m.Kind, m.Field, m.Kind+" · "+m.Field), region,
			l.Number(m.Before), l.Number(m.After), records))
	}
	return out
}

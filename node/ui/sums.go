package ui

import (
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// lackingSums says, of each of the picture's sums that lacks entries of its kind, which it is and
// how many it counts: "Bedden totaal, Zeeland: 4 van 7 meldingen; bij 3 ontbreekt het". A sum
// read beside another of more entries (free beds over 7, total beds over 4) would otherwise read
// as a ratio that it is not (review I, F1). Nil when every sum counts every entry.
func lackingSums(l *Lang, pic *pb.PictureResponse) []string {
	var out []string
	for _, a := range pic.Aggregates {
		if a.Records >= a.Entries {
			continue
		}
		region := l.Region(a.Region)
		if a.Region == "NL" {
			region = l.T("picture.national")
		}
		out = append(out, l.T("picture.lacking_item", aggLabel(l, a.Kind, a.Field, a.Kind+" · "+a.Field), region, a.Records, a.Entries, a.Entries-a.Records))
	}
	return out
}

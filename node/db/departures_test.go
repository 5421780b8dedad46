package db_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/knooppunt/knooppunt/node/db"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// departure is what a test reads of a change or a listed record: which version, in which shape,
// and whether it is a tombstone (with its body).
type departure struct {
	seq                  int64
	id                   string
	version              int64
	kind, crisis, region string
	tombstone            bool
	body                 string
}

func (d departure) String() string {
	return fmt.Sprintf("%d:%s@v%d %s/%s/%s tomb=%v %s", d.seq, d.id, d.version, d.kind, d.crisis, d.region, d.tombstone, d.body)
}

func departureOf(seq int64, r *pb.Record) departure {
	return departure{seq, r.Id, r.Version, r.Kind, r.Crisis, r.Region, r.Tombstone, string(r.Body)}
}

// moves writes records that move between crises, kinds and regions, each change an hour after
// the one before it (hour(1) on), and returns the applier:
//
//	seq 1  a v1 oekraine VR01      seq 2  a v2 hoogwater VR02     seq 3  a v3 deleted (in hoogwater)
//	seq 4  b v1 oekraine           seq 5  b v2 hoogwater          seq 6  b v3 oekraine again
//	seq 7  c v1 hoogwater          seq 8  c v2 hoogwater          (never in oekraine)
//	seq 9  e v1 oekraine VR01      seq 10 e v2 oekraine VR05      seq 11 e v3 hoogwater VR06
//	seq 12 k v1 sitrep             seq 13 k v2 shelter.capacity
//	seq 14 r v1 oekraine VR01      seq 15 r v2 oekraine VR02
//	seq 16 m v1 oekraine           seq 17 m v2 hoogwater          seq 18 m v3 hoogwater
func moves(t *testing.T) *applier {
	t.Helper()
	a := &applier{t: t, d: newDB(t)}
	const shelter = "shelter.capacity"
	for at, w := range []struct{ id, kind, crisis, region string }{
		{"a", shelter, "oekraine", "VR01"}, {"a", shelter, "hoogwater", "VR02"}, {id: "a"}, // a delete
		{"b", shelter, "oekraine", "VR01"}, {"b", shelter, "hoogwater", "VR01"}, {"b", shelter, "oekraine", "VR01"},
		{"c", shelter, "hoogwater", "VR01"}, {"c", shelter, "hoogwater", "VR01"},
		{"e", shelter, "oekraine", "VR01"}, {"e", shelter, "oekraine", "VR05"}, {"e", shelter, "hoogwater", "VR06"},
		{"k", "sitrep", "oekraine", "VR01"}, {"k", shelter, "oekraine", "VR01"},
		{"r", shelter, "oekraine", "VR01"}, {"r", shelter, "oekraine", "VR02"},
		{"m", shelter, "oekraine", "VR01"}, {"m", shelter, "hoogwater", "VR01"}, {"m", shelter, "hoogwater", "VR01"},
	} {
		r := del(w.id, 0)
		if w.kind != "" {
			r = put(w.id, fmt.Sprintf(`{"beds_free":%d}`, at+1))
			r.Kind, r.Crisis, r.Region = w.kind, w.crisis, w.region
		}
		r.UpdatedAt = hour(at + 1)
		a.mustApply(r)
	}
	return a
}

// TestChangesDepartures: a filtered change feed sends a record that left its crisis or kind, and
// one deleted after it left, as a tombstone of the shape it left; a record that came back comes
// as it is, and one that never was of the filter not at all. The unfiltered feed is as it was.
func TestChangesDepartures(t *testing.T) {
	a := moves(t)
	ctx := context.Background()
	const shelter = "shelter.capacity"
	tests := []struct {
		name         string
		after, upTo  int64
		kind, crisis string
		want         []departure
	}{
		{name: "crisis", upTo: 15, crisis: "oekraine", want: []departure{
			{3, "a", 3, shelter, "oekraine", "VR01", true, "{}"},               // moved out, then deleted
			{6, "b", 3, shelter, "oekraine", "VR01", false, `{"beds_free":6}`}, // back in
			{11, "e", 3, shelter, "oekraine", "VR05", true, "{}"},              // the last version in oekraine
			{13, "k", 2, shelter, "oekraine", "VR01", false, `{"beds_free":13}`},
			{15, "r", 2, shelter, "oekraine", "VR02", false, `{"beds_free":15}`},
		}},
		{name: "crisis after a cursor", after: 10, upTo: 15, crisis: "oekraine", want: []departure{
			{11, "e", 3, shelter, "oekraine", "VR05", true, "{}"},
			{13, "k", 2, shelter, "oekraine", "VR01", false, `{"beds_free":13}`},
			{15, "r", 2, shelter, "oekraine", "VR02", false, `{"beds_free":15}`},
		}},
		{name: "kind", upTo: 15, kind: "sitrep", want: []departure{
			{13, "k", 2, "sitrep", "oekraine", "VR01", true, "{}"},
		}},
		{name: "kind and crisis", upTo: 15, kind: shelter, crisis: "hoogwater", want: []departure{
			{3, "a", 3, shelter, "hoogwater", "VR02", true, "{}"}, // deleted there: its own tombstone
			{6, "b", 3, shelter, "hoogwater", "VR01", true, "{}"},
			{8, "c", 2, shelter, "hoogwater", "VR01", false, `{"beds_free":8}`},
			{11, "e", 3, shelter, "hoogwater", "VR06", false, `{"beds_free":11}`},
		}},
		{name: "crisis no record ever had", upTo: 15, crisis: "bosbrand", want: nil},
		// A record that left comes as a departure at each later change of it that a reader
		// reads: the feed cannot tell whether the reader read the change that took it out.
		{name: "a later change of one that left", after: 17, upTo: 18, crisis: "oekraine", want: []departure{
			{18, "m", 3, shelter, "oekraine", "VR01", true, "{}"},
		}},
		{name: "unfiltered", upTo: 15, want: []departure{
			{3, "a", 3, shelter, "hoogwater", "VR02", true, "{}"},
			{6, "b", 3, shelter, "oekraine", "VR01", false, `{"beds_free":6}`},
			{8, "c", 2, shelter, "hoogwater", "VR01", false, `{"beds_free":8}`},
			{11, "e", 3, shelter, "hoogwater", "VR06", false, `{"beds_free":11}`},
			{13, "k", 2, shelter, "oekraine", "VR01", false, `{"beds_free":13}`},
			{15, "r", 2, shelter, "oekraine", "VR02", false, `{"beds_free":15}`},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := a.d.Changes(ctx, tt.after, tt.upTo, 100, db.Actual, tt.kind, tt.crisis)
			if err != nil {
				t.Fatal(err)
			}
			var g []departure
			for _, c := range got {
				g = append(g, departureOf(c.Seq, c.Record))
			}
			if !slices.Equal(g, tt.want) {
				t.Fatalf("Changes(%d, %d, %q, %q) =\n%v, want\n%v", tt.after, tt.upTo, tt.kind, tt.crisis, g, tt.want)
			}
		})
	}
	// A page of the filtered feed counts departures like any change, so that a reader pages on.
	t.Run("paged", func(t *testing.T) {
		var seqs []int64
		for after := int64(0); ; {
			page, err := a.d.Changes(ctx, after, 15, 1, db.Actual, "", "oekraine")
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			seqs = append(seqs, page[0].Seq)
			after = page[0].Seq
		}
		if want := []int64{3, 6, 11, 13, 15}; !slices.Equal(seqs, want) {
			t.Fatalf("paged seqs %v, want %v", seqs, want)
		}
	})
}

// TestListDepartures: a sync poll (deletes too, since a time) by crisis, kind or region lists a
// record that left them since the cut as a tombstone of the shape it left, in the order of
// update and across pages; a record that never was of them is not listed, nor one that left
// before the cut (the poll before listed it), nor is a departure in a listing that is no sync
// poll.
func TestListDepartures(t *testing.T) {
	a := moves(t)
	ctx := context.Background()
	const shelter = "shelter.capacity"
	since := hour(1).AsTime()
	tests := []struct {
		name string
		f    db.Filter
		want []departure
	}{
		{name: "crisis", f: db.Filter{Crisis: "oekraine", UpdatedSince: since, Deleted: true}, want: []departure{
			{0, "a", 3, shelter, "oekraine", "VR01", true, "{}"},
			{0, "b", 3, shelter, "oekraine", "VR01", false, `{"beds_free":6}`},
			{0, "e", 3, shelter, "oekraine", "VR05", true, "{}"},
			{0, "k", 2, shelter, "oekraine", "VR01", false, `{"beds_free":13}`},
			{0, "r", 2, shelter, "oekraine", "VR02", false, `{"beds_free":15}`},
			{0, "m", 3, shelter, "oekraine", "VR01", true, "{}"},
		}},
		{name: "crisis since a later cut", f: db.Filter{Crisis: "oekraine", UpdatedSince: hour(7).AsTime(), Deleted: true}, want: []departure{
			{0, "e", 3, shelter, "oekraine", "VR05", true, "{}"},
			{0, "k", 2, shelter, "oekraine", "VR01", false, `{"beds_free":13}`},
			{0, "r", 2, shelter, "oekraine", "VR02", false, `{"beds_free":15}`},
			{0, "m", 3, shelter, "oekraine", "VR01", true, "{}"},
		}},
		// m left at hour 17: a poll since then lists it, at its version now; one since its
		// next update (a poll after the one that listed it as it left) does not.
		{name: "crisis since the move", f: db.Filter{Crisis: "oekraine", UpdatedSince: hour(17).AsTime(), Deleted: true}, want: []departure{
			{0, "m", 3, shelter, "oekraine", "VR01", true, "{}"},
		}},
		{name: "crisis since after the move", f: db.Filter{Crisis: "oekraine", UpdatedSince: hour(18).AsTime(), Deleted: true}, want: nil},
		{name: "kind", f: db.Filter{Kind: "sitrep", UpdatedSince: since, Deleted: true}, want: []departure{
			{0, "k", 2, "sitrep", "oekraine", "VR01", true, "{}"},
		}},
		{name: "region", f: db.Filter{Region: "VR01", UpdatedSince: since, Deleted: true}, want: []departure{
			{0, "a", 3, shelter, "oekraine", "VR01", true, "{}"},
			{0, "b", 3, shelter, "oekraine", "VR01", false, `{"beds_free":6}`},
			{0, "c", 2, shelter, "hoogwater", "VR01", false, `{"beds_free":8}`},
			{0, "e", 3, shelter, "oekraine", "VR01", true, "{}"},
			{0, "k", 2, shelter, "oekraine", "VR01", false, `{"beds_free":13}`},
			{0, "r", 2, shelter, "oekraine", "VR01", true, "{}"},
			{0, "m", 3, shelter, "hoogwater", "VR01", false, `{"beds_free":18}`},
		}},
		{name: "crisis and region", f: db.Filter{Crisis: "oekraine", Region: "VR05", UpdatedSince: since, Deleted: true}, want: []departure{
			{0, "e", 3, shelter, "oekraine", "VR05", true, "{}"},
		}},
		{name: "kind and crisis", f: db.Filter{Kind: shelter, Crisis: "hoogwater", UpdatedSince: since, Deleted: true}, want: []departure{
			{0, "a", 3, shelter, "hoogwater", "VR02", true, "{}"},
			{0, "b", 3, shelter, "hoogwater", "VR01", true, "{}"},
			{0, "c", 2, shelter, "hoogwater", "VR01", false, `{"beds_free":8}`},
			{0, "e", 3, shelter, "hoogwater", "VR06", false, `{"beds_free":11}`},
			{0, "m", 3, shelter, "hoogwater", "VR01", false, `{"beds_free":18}`},
		}},
		{name: "live records only", f: db.Filter{Crisis: "oekraine", UpdatedSince: since}, want: []departure{
			{0, "b", 3, shelter, "oekraine", "VR01", false, `{"beds_free":6}`},
			{0, "k", 2, shelter, "oekraine", "VR01", false, `{"beds_free":13}`},
			{0, "r", 2, shelter, "oekraine", "VR02", false, `{"beds_free":15}`},
		}},
		{name: "not since a time", f: db.Filter{Crisis: "oekraine", Deleted: true}, want: []departure{
			{0, "b", 3, shelter, "oekraine", "VR01", false, `{"beds_free":6}`},
			{0, "k", 2, shelter, "oekraine", "VR01", false, `{"beds_free":13}`},
			{0, "r", 2, shelter, "oekraine", "VR02", false, `{"beds_free":15}`},
		}},
		{name: "crisis no record ever had", f: db.Filter{Crisis: "bosbrand", UpdatedSince: since, Deleted: true}, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var whole []departure
			recs, next, err := a.d.List(ctx, tt.f)
			if err != nil {
				t.Fatal(err)
			}
			if next != "" {
				t.Fatalf("List gave a next page token for %d records", len(recs))
			}
			for _, r := range recs {
				whole = append(whole, departureOf(0, r))
			}
			if !slices.Equal(whole, tt.want) {
				t.Fatalf("List(%+v) =\n%v, want\n%v", tt.f, whole, tt.want)
			}
			// A page at a time gives the same, in the same order.
			var paged []departure
			f := tt.f
			f.PageSize = 1
			for {
				recs, next, err := a.d.List(ctx, f)
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range recs {
					paged = append(paged, departureOf(0, r))
				}
				if next == "" {
					break
				}
				f.PageToken = next
			}
			if !slices.Equal(paged, tt.want) {
				t.Fatalf("List(%+v) a page at a time =\n%v, want\n%v", tt.f, paged, tt.want)
			}
		})
	}
}

// TestListDeparturesByClassificationAndLabels: a sync poll by classification or labels lists a
// record that left them since the cut (raised above the ceiling, its label taken off) as a
// tombstone in the classification and labels it left, as a poll by crisis lists one that moved;
// one that never was of them is not listed. A version kept before the history held them counts
// as having been of the poll's filter (review X, X2).
func TestListDeparturesByClassificationAndLabels(t *testing.T) {
	path := filepath.Join(t.TempDir(), "knooppunt.db")
	a := &applier{t: t, d: openDB(t, path)}
	ctx := context.Background()
	feed := map[string]string{"feed": "public"}
	for at, w := range []struct {
		id     string
		class  pb.Classification
		labels map[string]string
	}{
		{"p", pb.Classification_PUBLIC, feed}, {"p", pb.Classification_CONFIDENTIAL, feed}, // raised: leaves max public
		{"l", pb.Classification_PUBLIC, feed}, {"l", pb.Classification_PUBLIC, nil}, // its label taken off
		{"s", pb.Classification_PUBLIC, feed},                                             // stays in both
		{"n", pb.Classification_CONFIDENTIAL, nil},                                        // never in either
		{"o", pb.Classification_PUBLIC, feed}, {"o", pb.Classification_CONFIDENTIAL, nil}, // its first version's kept before
	} {
		r := put(w.id, fmt.Sprintf(`{"beds_free":%d}`, at+1))
		r.Classification, r.Labels, r.UpdatedAt = w.class, w.labels, hour(at+1)
		a.mustApply(r)
	}
	// o's first version as a release before migration 27 kept it: neither classification nor labels.
	h, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Exec(`UPDATE history SET classification = NULL, labels = NULL WHERE id = 'o' AND version = 1`); err != nil {
		t.Fatal(err)
	}
	h.Close()

	type got struct {
		id      string
		version int64
		class   pb.Classification
		labels  string
		tomb    bool
	}
	since := hour(1).AsTime()
	pub, conf := pb.Classification_PUBLIC, pb.Classification_CONFIDENTIAL
	for _, tt := range []struct {
		name string
		f    db.Filter
		want []got
	}{
		{"max classification", db.Filter{MaxClassification: pub, UpdatedSince: since, Deleted: true}, []got{
			{"p", 2, pub, "map[feed:public]", true}, // in the classification it left
			{"l", 2, pub, "map[]", false},
			{"s", 1, pub, "map[feed:public]", false},
			{"o", 2, conf, "map[]", true}, // not known what its first version was: taken as public
		}},
		{"label", db.Filter{Labels: feed, UpdatedSince: since, Deleted: true}, []got{
			{"p", 2, conf, "map[feed:public]", false},
			{"l", 2, pub, "map[feed:public]", true}, // in the labels it left
			{"s", 1, pub, "map[feed:public]", false},
			{"o", 2, conf, "map[]", true},
		}},
		{"has label", db.Filter{HasLabels: []string{"feed"}, UpdatedSince: since, Deleted: true}, []got{
			{"p", 2, conf, "map[feed:public]", false},
			{"l", 2, pub, "map[feed:public]", true},
			{"s", 1, pub, "map[feed:public]", false},
			{"o", 2, conf, "map[]", true},
		}},
		{"max classification, live records only", db.Filter{MaxClassification: pub, UpdatedSince: since}, []got{
			{"l", 2, pub, "map[]", false},
			{"s", 1, pub, "map[feed:public]", false},
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var all []got
			f := tt.f
			f.PageSize = 1 // a page at a time: the departures page as the rest
			for {
				recs, next, err := a.d.List(ctx, f)
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range recs {
					all = append(all, got{r.Id, r.Version, r.Classification, fmt.Sprint(r.Labels), r.Tombstone})
				}
				if next == "" {
					break
				}
				f.PageToken = next
			}
			if !slices.Equal(all, tt.want) {
				t.Fatalf("List(%+v) =\n%v, want\n%v", tt.f, all, tt.want)
			}
		})
	}
}

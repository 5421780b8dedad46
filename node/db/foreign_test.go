package db_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/node/db"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestForeignListPages checks that reading the cache a page at a time, each page after the last
// record of the one before, gives every record of the filter once, in the order of one read:
// across origins, with ids that repeat between origins, and with records of another crisis in
// between.
func TestForeignListPages(t *testing.T) {
	d := newDB(t)
	index := uint64(1)
	for _, origin := range []string{"a.crisis.test", "b.crisis.test", "c.crisis.test"} {
		c := &pb.CacheForeign{Peer: origin, Origin: origin, Cursor: 1, At: timestamppb.New(t0)}
		for i := range 7 {
			crisis := "oekraine"
			if i%3 == 2 {
				crisis = "other"
			}
			c.Upserts = append(c.Upserts, &pb.SharedRecord{Record: &pb.Record{Id: fmt.Sprintf("r%d", i), Origin: origin,
				Kind: "sitrep", Crisis: crisis, Region: "NL", Body: []byte(`{}`), Version: 1, UpdatedAt: hour(i)}})
		}
		if err := d.ApplyCacheForeign(index, c); err != nil {
			t.Fatal(err)
		}
		index++
	}
	key := func(recs []db.Foreign) []string {
		var out []string
		for _, fr := range recs {
			out = append(out, fr.Record.Origin+"/"+fr.Record.Id)
		}
		return out
	}
	all, err := d.ForeignList(context.Background(), db.ForeignFilter{Crisis: "oekraine"})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 15 {
		t.Fatalf("one read lists %d records, want 15: %v", len(all), key(all))
	}
	for _, tc := range []struct {
		f    db.ForeignFilter
		want int
	}{
		{db.ForeignFilter{Crisis: "oekraine"}, 15},
		{db.ForeignFilter{Crisis: "oekraine", Origin: "b.crisis.test"}, 5},
		{db.ForeignFilter{Crisis: "other"}, 6},
		{db.ForeignFilter{Crisis: "oekraine", Limit: 4}, 4},
	} {
		if n, err := d.ForeignCount(context.Background(), tc.f); err != nil || n != tc.want {
			t.Errorf("ForeignCount(%+v) = %d, %v; want %d", tc.f, n, err, tc.want)
		}
	}
	for _, size := range []int{1, 2, 4, 5, 15, 16} {
		var paged []db.Foreign
		f := db.ForeignFilter{Crisis: "oekraine", Limit: size}
		for pages := 0; ; pages++ {
			if pages > 20 {
				t.Fatalf("page size %d: more than 20 pages", size)
			}
			page, err := d.ForeignList(context.Background(), f)
			if err != nil {
				t.Fatal(err)
			}
			paged = append(paged, page...)
			if len(page) < size {
				break
			}
			last := page[len(page)-1].Record
			f.AfterOrigin, f.AfterID = last.Origin, last.Id
		}
		if !slices.Equal(key(paged), key(all)) {
			t.Errorf("page size %d lists\n\t%v\nwant\n\t%v", size, key(paged), key(all))
		}
	}
}

package db_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
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

// TestRemovals: the picture's removals of a crisis say when a record of each source and kind last
// left it: an own record deleted or moved to another crisis, a cached one retracted or moved; in
// the mode asked; and the alerts of crisis all in every crisis. A write that stays, and a
// retraction of a record not held, leave none.
func TestRemovals(t *testing.T) {
	d := newDB(t)
	a := &applier{t: t, d: d}
	ctx := context.Background()
	moved := put("moved", `{"municipality":"Goes"}`)
	a.mustApply(put("stays", `{"municipality":"Hulst"}`), put("gone", `{"municipality":"Vlissingen"}`), moved)
	a.mustApply(put("stays", `{"municipality":"Hulst","beds_free":1}`))
	moved = put("moved", `{"municipality":"Goes"}`)
	moved.Crisis, moved.UpdatedAt = "elders", hour(2)
	a.mustApply(del("gone", 1), moved)

	const lcvs = "lcvs.crisis.test"
	shared := func(id, kind, crisis string) *pb.SharedRecord {
		return &pb.SharedRecord{Record: &pb.Record{Id: id, Origin: lcvs, Kind: kind, Crisis: crisis, Region: "NL", Body: []byte(`{}`), Version: 1, UpdatedAt: hour(0)}}
	}
	next := func() uint64 { a.index++; return a.index }
	deliver := func(at int, c *pb.CacheForeign) {
		t.Helper()
		c.Peer, c.Origin, c.Cursor, c.At, c.PictureBookkeeping = "lcvs", lcvs, int64(at), hour(at), true
		if err := d.ApplyCacheForeign(next(), c); err != nil {
			t.Fatal(err)
		}
	}
	deliver(3, &pb.CacheForeign{Upserts: []*pb.SharedRecord{shared("s1", "sitrep", "oekraine"), shared("s2", "qa", "oekraine"),
		shared("s3", "sitrep", "oekraine"), shared("warn", "alert", db.AllCrises), shared("other", "sitrep", db.AllCrises)}})
	deliver(4, &pb.CacheForeign{Retractions: []string{"s1", "never-held"}})
	deliver(5, &pb.CacheForeign{Upserts: []*pb.SharedRecord{shared("s2", "qa", "elders")}})
	deliver(6, &pb.CacheForeign{Retractions: []string{"warn", "other"}})
	deliver(7, &pb.CacheForeign{Retractions: []string{"s3"}})

	got := func(crisis string, m db.Mode) []string {
		t.Helper()
		rs, err := d.Removals(ctx, crisis, m)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range rs {
			out = append(out, fmt.Sprintf("%s %s %g", r.Origin, r.Kind, r.At.Sub(t0).Hours()))
		}
		return out
	}
	// Hours after t0: the own delete and move were written at 1 and 2.
	if g, want := got("oekraine", db.Actual), []string{" shelter.capacity 2", lcvs + " alert 6", lcvs + " qa 5", lcvs + " sitrep 7"}; !slices.Equal(g, want) {
		t.Errorf("removals of oekraine = %q, want %q", g, want)
	}
	if g, want := got("elders", db.Actual), []string{lcvs + " alert 6"}; !slices.Equal(g, want) {
		t.Errorf("removals of elders = %q, want %q (only the alerts of every crisis)", g, want)
	}
	if g := got("oekraine", db.Mode{Status: pb.Status_EXERCISE, Exercise: "oef"}); len(g) != 0 {
		t.Errorf("removals of an exercise = %q, want none", g)
	}

	// Entries of the version before (unmarked) are applied as it did: they note nothing, so
	// that a replica that applies one late agrees with those that applied it then.
	old := newDB(t)
	if _, err := old.ApplyWrites([]db.WriteEntry{{Index: 1, Writes: []*db.Write{put("x", `{}`)}}, {Index: 2, Writes: []*db.Write{del("x", 1)}}}); err != nil {
		t.Fatal(err)
	}
	for i, c := range []*pb.CacheForeign{{Upserts: []*pb.SharedRecord{shared("s1", "sitrep", "oekraine")}}, {Retractions: []string{"s1"}}} {
		c.Peer, c.Origin, c.Cursor, c.At = "lcvs", lcvs, int64(i+1), hour(i+3)
		if err := old.ApplyCacheForeign(uint64(3+i), c); err != nil {
			t.Fatal(err)
		}
	}
	if rs, err := old.Removals(ctx, "oekraine", db.Actual); err != nil || len(rs) != 0 {
		t.Errorf("removals after unmarked entries = %v, %v; want none", rs, err)
	}
}

// TestDeliveryActsOnlyInItsMode: the cache holds one copy of a partner's id, in one mode. A
// delivery on an exercise's subscription that retracts or sends an id held as an actual copy
// leaves that copy, its webhook and its picture as they were (review D, F4); an actual copy of
// an id held for an exercise replaces it, and the exercise hears of the retraction.
func TestDeliveryActsOnlyInItsMode(t *testing.T) {
	d := newDB(t)
	ctx := context.Background()
	idx := uint64(0)
	next := func() uint64 { idx++; return idx }
	if out, err := d.ApplyExerciseStep(next(), &pb.ExerciseStep{Action: "start", Name: "ex-1", Actor: "t", At: hour(0)}); err != nil || out.Refusal != nil {
		t.Fatalf("start ex-1: %v %v", err, out.Refusal)
	}
	ex1 := db.Mode{Status: pb.Status_EXERCISE, Exercise: "ex-1"}
	for _, m := range []db.Mode{db.Actual, ex1} {
		if _, _, refusal, err := d.ApplyWebhookStep(next(), &pb.WebhookStep{Action: "add", By: "t", At: hour(0),
			Webhook: &pb.Webhook{Id: "hook-" + m.Exercise, Url: "https://hooks.example.nl/" + m.Exercise, Exercise: m.Exercise, Secret: "whsec_x"}}); err != nil || refusal != nil {
			t.Fatalf("add a webhook of %s: %v %v", m, refusal, err)
		}
	}
	const lcvs = "lcvs.crisis.test"
	shared := func(id, body string, m db.Mode) *pb.SharedRecord {
		return &pb.SharedRecord{Record: &pb.Record{Id: id, Origin: lcvs, Kind: "sitrep", Crisis: "oekraine", Region: "NL", Body: []byte(body),
			Version: 1, UpdatedAt: hour(0), Status: m.Status, Exercise: m.Exercise}}
	}
	deliver := func(m db.Mode, c *pb.CacheForeign) {
		t.Helper()
		c.Peer, c.Origin, c.Exercise, c.Cursor, c.At, c.PictureBookkeeping, c.ByMode = "lcvs", lcvs, m.Exercise, int64(idx), hour(1), true, true
		if err := d.ApplyCacheForeign(next(), c); err != nil {
			t.Fatal(err)
		}
	}
	state := func() string {
		t.Helper()
		var out []string
		for _, m := range []db.Mode{db.Actual, ex1} {
			ids, err := d.ForeignIDs(ctx, lcvs, m)
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(ids)
			removals, err := d.Removals(ctx, "oekraine", m)
			if err != nil {
				t.Fatal(err)
			}
			q, err := d.WebhookQueue(ctx, "hook-"+m.Exercise, 100)
			if err != nil {
				t.Fatal(err)
			}
			var events []string
			for _, x := range q {
				events = append(events, x.Event+" "+x.RecordID)
			}
			out = append(out, fmt.Sprintf("%s: held %v, removals %d, webhook %v", m, ids, len(removals), events))
		}
		return strings.Join(out, "; ")
	}

	deliver(db.Actual, &pb.CacheForeign{Upserts: []*pb.SharedRecord{shared("r1", `{"title":"echt"}`, db.Actual), shared("r2", `{"title":"echt"}`, db.Actual)}})
	want := "actual: held [r1 r2], removals 0, webhook [record.changed r1 record.changed r2]; exercise ex-1: held [], removals 0, webhook []"
	if got := state(); got != want {
		t.Fatalf("after the actual delivery:\n\t%s\nwant\n\t%s", got, want)
	}
	deliver(ex1, &pb.CacheForeign{Retractions: []string{"r1"}})
	deliver(ex1, &pb.CacheForeign{Upserts: []*pb.SharedRecord{shared("r2", `{"title":"oefening"}`, ex1)}})
	if got := state(); got != want {
		t.Errorf("after the exercise's retraction of r1 and copy of r2:\n\t%s\nwant\n\t%s", got, want)
	}
	if f, err := d.ForeignList(ctx, db.ForeignFilter{IDs: []string{"r2"}}); err != nil || len(f) != 1 || string(f[0].Record.Body) != `{"title":"echt"}` {
		t.Errorf("the actual r2 is %v, %v; want its actual body", f, err)
	}

	deliver(ex1, &pb.CacheForeign{Upserts: []*pb.SharedRecord{shared("x1", `{"title":"oefening"}`, ex1)}})
	deliver(db.Actual, &pb.CacheForeign{Upserts: []*pb.SharedRecord{shared("x1", `{"title":"echt"}`, db.Actual)}})
	want = "actual: held [r1 r2 x1], removals 0, webhook [record.changed r1 record.changed r2 record.changed x1]; " +
		"exercise ex-1: held [], removals 1, webhook [record.changed x1 record.retracted x1]"
	if got := state(); got != want {
		t.Errorf("after an actual copy of an id held for the exercise:\n\t%s\nwant\n\t%s", got, want)
	}

	// A delivery of the exercise after its close here keeps only its retractions: of its own
	// copies, which the close dropped, not of the actual ones.
	if out, err := d.ApplyExerciseStep(next(), &pb.ExerciseStep{Action: "close", Name: "ex-1", Actor: "t", At: hour(2)}); err != nil || out.Refusal != nil {
		t.Fatalf("close ex-1: %v %v", err, out.Refusal)
	}
	deliver(ex1, &pb.CacheForeign{Retractions: []string{"r1", "x1"}})
	ids, err := d.ForeignIDs(ctx, lcvs, db.Actual)
	slices.Sort(ids)
	if err != nil || !slices.Equal(ids, []string{"r1", "r2", "x1"}) {
		t.Errorf("after the closed exercise's retractions the actual copies are %v, %v; want [r1 r2 x1]", ids, err)
	}

	// An entry of a node before by_mode is applied as it was, so that every replica holds the
	// same: its retraction takes the copy in whatever mode.
	if err := d.ApplyCacheForeign(next(), &pb.CacheForeign{Peer: "lcvs", Origin: lcvs, Exercise: "ex-1", Cursor: int64(idx), At: hour(3), Retractions: []string{"r1"}}); err != nil {
		t.Fatal(err)
	}
	if ids, err := d.ForeignIDs(ctx, lcvs, db.Actual); err != nil || slices.Contains(ids, "r1") {
		t.Errorf("after a retraction without by_mode the actual copies are %v, %v; want r1 gone, as before", ids, err)
	}
}

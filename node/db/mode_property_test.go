package db_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/knooppunt/knooppunt/node/db"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestModeIsolationProperty draws random sequences of writes, deletes, deliveries from a peer and
// exercise closes, in random modes, and after each step reads in every mode with every read the
// store has (List by each filter, Get, the change feed, the cache, full-text search) and checks
// each against a reference model that keeps, per id, the mode and whether the record is live: a
// read returns exactly the live records of its mode, never one of another.
func TestModeIsolationProperty(t *testing.T) {
	modes := []db.Mode{db.Actual, {Status: pb.Status_EXERCISE, Exercise: "ex-1"}, {Status: pb.Status_EXERCISE, Exercise: "ex-2"},
		{Status: pb.Status_TEST}, {Status: pb.Status_DRAFT}}
	rapid.Check(t, func(rt *rapid.T) {
		d, err := db.Open(filepath.Join(t.TempDir(), fmt.Sprintf("p%d.db", rapid.IntRange(0, 1<<30).Draw(rt, "file"))))
		if err != nil {
			rt.Fatal(err)
		}
		defer d.Close()
		ctx := context.Background()
		idx := uint64(0)
		next := func() uint64 { idx++; return idx }
		open := map[string]bool{"ex-1": true, "ex-2": true}
		for name := range open {
			if _, err := d.ApplyExerciseStep(next(), &pb.ExerciseStep{Action: "start", Name: name, Actor: "t", At: hour(0)}); err != nil {
				rt.Fatal(err)
			}
		}
		// The model: id → mode of the live record (own, or cached from the peer).
		own, cached := map[string]db.Mode{}, map[string]db.Mode{}
		ids := []string{"r0", "r1", "r2", "r3", "r4", "r5"}
		for step := range rapid.IntRange(1, 25).Draw(rt, "steps") {
			id := rapid.SampledFrom(ids).Draw(rt, "id")
			m := rapid.SampledFrom(modes).Draw(rt, "mode")
			switch rapid.IntRange(0, 4).Draw(rt, "op") {
			case 0, 1: // put
				w := put(id, `{"title":"oefenbeeld woord","summary":"s"}`)
				w.Kind, w.Status, w.Exercise = "qa", m.Status, m.Exercise
				res, err := d.Apply(next(), []*db.Write{w})
				if err != nil {
					rt.Fatal(err)
				}
				cur, live := own[id]
				want := "stored"
				switch {
				case live && cur != m:
					want = "mode change refused"
				case m.Status == pb.Status_EXERCISE && !open[m.Exercise]:
					want = "closed exercise refused"
				}
				if got := outcome(res[0].Err); got != want {
					rt.Fatalf("step %d: put %s in %s over %v (live %v): %s, want %s", step, id, m, cur, live, got, want)
				}
				if want == "stored" {
					own[id] = m
				}
			case 2: // delete
				res, err := d.Apply(next(), []*db.Write{{Id: id, Tombstone: true, UpdatedAt: hour(1)}})
				if err != nil {
					rt.Fatal(err)
				}
				if _, live := own[id]; live != (res[0].Err == nil) {
					rt.Fatalf("step %d: delete %s: %v, live %v", step, id, res[0].Err, live)
				}
				delete(own, id)
			case 3: // a delivery from the peer, in the mode of a subscription
				if m.Status == pb.Status_TEST || m.Status == pb.Status_DRAFT {
					continue // never shared
				}
				r := put(id, `{"title":"gedeeld woord","summary":"s"}`)
				r.Kind, r.Origin, r.Version, r.Status, r.Exercise = "qa", "peer.test", 1, m.Status, m.Exercise
				if err := d.ApplyCacheForeign(next(), &pb.CacheForeign{Peer: "peer", Origin: "peer.test", Exercise: m.Exercise, At: hour(1), ByMode: true,
					Upserts: []*pb.SharedRecord{{Record: r}}}); err != nil {
					rt.Fatal(err)
				}
				// The cache holds one copy of an id: an actual one replaces an exercise's, an
				// exercise's replaces none of another mode.
				if cur, held := cached[id]; (m == db.Actual || open[m.Exercise]) && (!held || cur == m || m == db.Actual) {
					cached[id] = m
				}
			case 4: // close an exercise
				if m.Status != pb.Status_EXERCISE || !open[m.Exercise] {
					continue
				}
				if _, err := d.ApplyExerciseStep(next(), &pb.ExerciseStep{Action: "close", Name: m.Exercise, Actor: "t", At: hour(2)}); err != nil {
					rt.Fatal(err)
				}
				open[m.Exercise] = false
				for id, om := range own {
					if om == m {
						delete(own, id)
					}
				}
				for id, cm := range cached {
					if cm == m {
						delete(cached, id)
					}
				}
			}
			if _, err := d.IndexText(1000); err != nil {
				rt.Fatal(err)
			}
			for _, m := range modes {
				wantOwn, wantCached := idsIn(own, m), idsIn(cached, m)
				for _, f := range []db.Filter{{Mode: m}, {Mode: m, Kind: "qa"}, {Mode: m, Crisis: "oekraine"}, {Mode: m, Region: "VR01"}, {Mode: m, Crisis: "oekraine", Kind: "qa", Region: "VR01"}} {
					recs, _, err := d.List(ctx, f)
					if err != nil {
						rt.Fatal(err)
					}
					if got := recIDs(rt, recs, m); !slices.Equal(got, wantOwn) {
						rt.Fatalf("step %d: List %+v = %v, want %v", step, f, got, wantOwn)
					}
				}
				var got []string
				for _, id := range ids {
					if r, err := d.Get(ctx, id); err == nil && m.Holds(r) {
						got = append(got, id)
					}
				}
				if !slices.Equal(got, wantOwn) {
					rt.Fatalf("step %d: Get in %s finds %v, want %v", step, m, got, wantOwn)
				}
				last, _ := d.LastSeq()
				changes, err := d.Changes(ctx, 0, last, 1000, m, "", "")
				if err != nil {
					rt.Fatal(err)
				}
				live := map[string]bool{}
				for _, c := range changes {
					if !m.Holds(c.Record) {
						rt.Fatalf("step %d: the feed of %s has %s of %s", step, m, c.Record.Id, db.ModeOf(c.Record))
					}
					live[c.Record.Id] = !c.Record.Tombstone
				}
				got = got[:0]
				for id, l := range live {
					if l {
						got = append(got, id)
					}
				}
				slices.Sort(got)
				if !slices.Equal(got, wantOwn) {
					rt.Fatalf("step %d: the feed of %s ends with %v live, want %v", step, m, got, wantOwn)
				}
				foreign, err := d.ForeignList(ctx, db.ForeignFilter{Mode: m})
				if err != nil {
					rt.Fatal(err)
				}
				got = got[:0]
				for _, f := range foreign {
					if !m.Holds(f.Record) {
						rt.Fatalf("step %d: the cache in %s has %s of %s", step, m, f.Record.Id, db.ModeOf(f.Record))
					}
					got = append(got, f.Record.Id)
				}
				if !slices.Equal(got, wantCached) {
					rt.Fatalf("step %d: the cache in %s holds %v, want %v", step, m, got, wantCached)
				}
				var text []*pb.Record
				if err := d.EachTextMatch(ctx, db.TextFilter{Terms: []string{"woord"}, Mode: m}, func(r *pb.Record) (bool, error) {
					text = append(text, r)
					return true, nil
				}); err != nil {
					rt.Fatal(err)
				}
				if got := recIDs(rt, text, m); !slices.Equal(got, wantOwn) {
					rt.Fatalf("step %d: text search in %s = %v, want %v", step, m, got, wantOwn)
				}
			}
		}
	})
}

func outcome(err error) string {
	var mc *db.ModeChangeError
	switch {
	case err == nil:
		return "stored"
	case errors.As(err, &mc):
		return "mode change refused"
	case errors.Is(err, db.ErrExerciseClosed):
		return "closed exercise refused"
	}
	return err.Error()
}

func idsIn(m map[string]db.Mode, mode db.Mode) []string {
	var ids []string
	for id, x := range m {
		if x == mode {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

func recIDs(rt *rapid.T, recs []*pb.Record, m db.Mode) []string {
	var ids []string
	for _, r := range recs {
		if !m.Holds(r) {
			rt.Fatalf("a read in %s returned %s of %s", m, r.Id, db.ModeOf(r))
		}
		ids = append(ids, r.Id)
	}
	slices.Sort(ids)
	return ids
}

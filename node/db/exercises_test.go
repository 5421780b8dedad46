package db_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/knooppunt/knooppunt/node/db"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestExerciseCloseAtARecipient: the copies a peer sent of an exercise's records, and the cursor
// of that exercise's subscription, leave with the exercise's close here, and the exercise's
// webhooks hear of it (record.retracted) when the close is marked retract_copies; a delivery of
// the closed exercise that was still in flight stores nothing; other modes keep theirs.
func TestExerciseCloseAtARecipient(t *testing.T) {
	d := newDB(t)
	ctx := context.Background()
	idx := uint64(0)
	next := func() uint64 { idx++; return idx }
	for _, name := range []string{"ex-1", "ex-2"} {
		out, err := d.ApplyExerciseStep(next(), &pb.ExerciseStep{Action: "start", Name: name, Actor: "t", At: hour(0)})
		if err != nil || out.Refusal != nil {
			t.Fatalf("start %s: %v %v", name, err, out.Refusal)
		}
	}
	for _, ex := range []string{"ex-1", "ex-2"} {
		if _, _, refusal, err := d.ApplyWebhookStep(next(), &pb.WebhookStep{Action: "add", By: "t", At: hour(0),
			Webhook: &pb.Webhook{Id: "hook-" + ex, Url: "https://hooks.example.nl/" + ex, Exercise: ex, Secret: "whsec_x"}}); err != nil || refusal != nil {
			t.Fatalf("add a webhook of %s: %v %v", ex, refusal, err)
		}
	}
	queue := func(hook string) string {
		t.Helper()
		q, err := d.WebhookQueue(ctx, hook, 100)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, x := range q {
			out = append(out, x.Event+" "+x.Origin+"/"+x.RecordID)
		}
		return strings.Join(out, ", ")
	}
	shared := func(id string, m db.Mode) *pb.SharedRecord {
		r := put(id, `{"a":1}`)
		r.Origin, r.Version, r.Status, r.Exercise = "lcvs.crisis.test", 1, m.Status, m.Exercise
		return &pb.SharedRecord{Record: r, Policies: []string{"p@1"}}
	}
	ex1, ex2 := db.Mode{Status: pb.Status_EXERCISE, Exercise: "ex-1"}, db.Mode{Status: pb.Status_EXERCISE, Exercise: "ex-2"}
	deliver := func(m db.Mode, cursor int64, recs ...*pb.SharedRecord) {
		t.Helper()
		if err := d.ApplyCacheForeign(next(), &pb.CacheForeign{Peer: "lcvs", Origin: "lcvs.crisis.test", Upserts: recs, Cursor: cursor, At: hour(1), Exercise: m.Exercise}); err != nil {
			t.Fatal(err)
		}
	}
	deliver(db.Actual, 5, shared("real", db.Actual))
	deliver(ex1, 7, shared("oef-1", ex1))
	deliver(ex2, 9, shared("oef-2", ex2))
	held := func(m db.Mode) []string {
		t.Helper()
		got, err := d.ForeignList(ctx, db.ForeignFilter{Mode: m})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, f := range got {
			if !m.Holds(f.Record) {
				t.Fatalf("a read in %s returned %s of %s", m, f.Record.Id, db.ModeOf(f.Record))
			}
			ids = append(ids, f.Record.Id)
		}
		return ids
	}
	cursor := func(ex string) int64 {
		c, _, err := d.ModeCursor(ctx, "lcvs", ex)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if a, e1, e2 := held(db.Actual), held(ex1), held(ex2); len(a) != 1 || len(e1) != 1 || len(e2) != 1 {
		t.Fatalf("before the close: actual %v, ex-1 %v, ex-2 %v", a, e1, e2)
	}
	if cursor("") != 5 || cursor("ex-1") != 7 || cursor("ex-2") != 9 {
		t.Fatalf("cursors %d %d %d, want 5 7 9: each mode has its own", cursor(""), cursor("ex-1"), cursor("ex-2"))
	}
	out, err := d.ApplyExerciseStep(next(), &pb.ExerciseStep{Action: "close", Name: "ex-1", Actor: "t", At: hour(2), RetractCopies: true})
	if err != nil || out.Refusal != nil || out.Purged != 1 {
		t.Fatalf("close: %v %v, purged %d", err, out.Refusal, out.Purged)
	}
	if got, want := queue("hook-ex-1"), "record.changed lcvs.crisis.test/oef-1, record.retracted lcvs.crisis.test/oef-1"; got != want {
		t.Errorf("ex-1's webhook after the close: %s, want %s", got, want)
	}
	deliver(ex1, 8, shared("oef-late", ex1))
	if e1 := held(ex1); len(e1) != 0 {
		t.Fatalf("after the close ex-1's copies are %v", e1)
	}
	if cursor("ex-1") != 0 {
		t.Fatalf("after the close ex-1's cursor is %d", cursor("ex-1"))
	}
	if a, e2 := held(db.Actual), held(ex2); len(a) != 1 || len(e2) != 1 || cursor("") != 5 || cursor("ex-2") != 9 {
		t.Fatalf("the close touched other modes: actual %v (cursor %d), ex-2 %v (cursor %d)", a, cursor(""), e2, cursor("ex-2"))
	}
	// Closing twice, or starting it again, is refused and changes nothing.
	if out, _ := d.ApplyExerciseStep(next(), &pb.ExerciseStep{Action: "close", Name: "ex-1", Actor: "t", At: hour(3)}); out.Refusal == nil {
		t.Fatal("a second close was not refused")
	}
	if out, _ := d.ApplyExerciseStep(next(), &pb.ExerciseStep{Action: "start", Name: "ex-1", Actor: "t", At: hour(3)}); out.Refusal == nil {
		t.Fatal("starting a closed exercise again was not refused")
	}
	// An own record of the closed exercise, written again at the version it had (an import of
	// the file kept at the close), is refused as the exercise's, not as a stale version to retry
	// with the close's (review AE, AE7).
	if _, err := d.ApplyExerciseStep(next(), &pb.ExerciseStep{Action: "start", Name: "ex-3", Actor: "t", At: hour(3)}); err != nil {
		t.Fatal(err)
	}
	own := put("oef-eigen", `{"a":1}`)
	own.Status, own.Exercise = pb.Status_EXERCISE, "ex-3"
	if res, err := d.Apply(next(), []*db.Write{own}); err != nil || res[0].Err != nil {
		t.Fatalf("write into ex-3: %v %v", err, res[0].Err)
	}
	if _, err := d.ApplyExerciseStep(next(), &pb.ExerciseStep{Action: "close", Name: "ex-3", Actor: "t", At: hour(3)}); err != nil {
		t.Fatal(err)
	}
	own.Version = 1
	if res, err := d.Apply(next(), []*db.Write{own}); err != nil || !errors.Is(res[0].Err, db.ErrExerciseClosed) {
		t.Fatalf("write at version 1 into the closed ex-3: %v %v, want the exercise closed", err, res[0].Err)
	}
	// A close written before retract_copies drops the copies as it did: no delivery.
	if out, err := d.ApplyExerciseStep(next(), &pb.ExerciseStep{Action: "close", Name: "ex-2", Actor: "t", At: hour(4)}); err != nil || out.Purged != 1 {
		t.Fatalf("close ex-2: %v, purged %d", err, out.Purged)
	}
	if got, want := queue("hook-ex-2"), "record.changed lcvs.crisis.test/oef-2"; got != want {
		t.Errorf("ex-2's webhook after an unmarked close: %s, want %s", got, want)
	}
}

// TestCrises: the crises there is something to see of, in a mode: those the node's own live
// records name and those of the peers' records it holds, once each, in order; not a crisis whose
// only record was deleted, nor one of another mode's records, nor a record without a crisis, nor
// the alerts of every crisis (db.AllCrises).
func TestCrises(t *testing.T) {
	d := newDB(t)
	ctx := context.Background()
	a := &applier{t: t, d: d, index: 1}
	if _, err := d.ApplyExerciseStep(1, &pb.ExerciseStep{Action: "start", Name: "ex-1", Actor: "t", At: hour(0)}); err != nil {
		t.Fatal(err)
	}
	in := func(id, crisis string, m db.Mode) *db.Write {
		w := put(id, `{}`)
		w.Crisis, w.Status, w.Exercise = crisis, m.Status, m.Exercise
		return w
	}
	ex1 := db.Mode{Status: pb.Status_EXERCISE, Exercise: "ex-1"}
	a.mustApply(in("a1", "oekraine", db.Actual), in("a2", "oekraine", db.Actual), in("a3", "hitte", db.Actual),
		in("gone", "verwijderd", db.Actual), in("e1", "oefenramp", ex1), in("none", "", db.Actual), in("everywhere", db.AllCrises, db.Actual))
	a.mustApply(del("gone", 1))
	shared := func(id, crisis string, m db.Mode) *pb.SharedRecord {
		r := in(id, crisis, m)
		r.Origin, r.Version = "lcvs.crisis.test", 1
		return &pb.SharedRecord{Record: r, Policies: []string{"p@1"}}
	}
	if err := d.ApplyCacheForeign(2000, &pb.CacheForeign{Peer: "lcvs", Origin: "lcvs.crisis.test", Cursor: 3, At: hour(1),
		Upserts: []*pb.SharedRecord{shared("f1", "droogte", db.Actual), shared("f2", "hitte", db.Actual)}}); err != nil {
		t.Fatal(err)
	}
	if err := d.ApplyCacheForeign(2001, &pb.CacheForeign{Peer: "lcvs", Origin: "lcvs.crisis.test", Cursor: 4, At: hour(1), Exercise: "ex-1",
		Upserts: []*pb.SharedRecord{shared("f3", "stroomuitval", ex1)}}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		mode db.Mode
		want string
	}{
		{db.Actual, "droogte hitte oekraine"},
		{ex1, "oefenramp stroomuitval"},
		{db.Mode{Status: pb.Status_EXERCISE, Exercise: "ex-2"}, ""},
	} {
		got, err := d.Crises(ctx, c.mode)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(got, " ") != c.want {
			t.Errorf("Crises(%s) = %q, want %q", c.mode, got, c.want)
		}
	}
}

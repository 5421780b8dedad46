package db_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/node/db"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// applyOwn applies the own record w as entry index, and fails the test if it is refused.
func applyOwn(t *testing.T, d *db.DB, index uint64, w *pb.Record) {
	t.Helper()
	res, err := d.Apply(index, []*pb.Record{w})
	if err != nil || res[0].Err != nil {
		t.Fatalf("apply %d: %v %v", index, err, res)
	}
}

// TestHistoryKeepsVersionsAndDropsRetracted checks that every applied version of an own or cached
// record is in the history with its body's numbers, that a delete ends an own record's
// contribution without erasing its past, and that a retraction removes every version a cached
// record ever contributed.
func TestHistoryKeepsVersionsAndDropsRetracted(t *testing.T) {
	d := newDB(t)
	ctx := context.Background()
	own := func(index uint64, w *pb.Record) { applyOwn(t, d, index, w) }
	own(1, &pb.Record{Id: "s1", Kind: "shelter.capacity", Crisis: "oekraine", Region: "VR19", Body: []byte(`{"beds_free": 40, "beds_total": 100, "name": "x"}`), UpdatedAt: hour(0)})
	own(2, &pb.Record{Id: "s1", Kind: "shelter.capacity", Crisis: "oekraine", Region: "VR19", Body: []byte(`{"beds_free": 2.5, "beds_total": 100}`), UpdatedAt: hour(1)})
	own(3, &pb.Record{Id: "s1", Tombstone: true, UpdatedAt: hour(2)})
	cache := &pb.CacheForeign{Peer: "lcvs.crisis.test", Origin: "lcvs.crisis.test", Cursor: 1, At: timestamppb.New(t0)}
	for v := int64(1); v <= 2; v++ {
		cache.Upserts = append(cache.Upserts, &pb.SharedRecord{Record: &pb.Record{Id: "f1", Origin: "lcvs.crisis.test", Kind: "shelter.capacity",
			Crisis: "oekraine", Region: "VR19", Body: []byte(`{"beds_free": 7}`), Version: v, UpdatedAt: hour(int(v))}})
	}
	if err := d.ApplyCacheForeign(4, cache); err != nil {
		t.Fatal(err)
	}
	rows, err := d.History(ctx, db.HistoryFilter{Kinds: []string{"shelter.capacity"}, Region: "VR19"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 5 {
		t.Fatalf("history has %d rows, want 5: %+v", len(rows), rows)
	}
	if r := rows[0]; r.Origin != "" || r.ID != "s1" || r.Version != 1 || r.Fields["beds_free"] != 40 || r.Fields["beds_total"] != 100 || len(r.Fields) != 2 {
		t.Errorf("first row %+v, want own s1 v1 with beds_free 40 and beds_total 100 only", r)
	}
	if last := rows[3]; !last.Tombstone || last.ID != "s1" || !last.At.Equal(hour(2).AsTime()) {
		t.Errorf("fourth row %+v, want the delete of s1 at hour 2 (own rows before a peer's at equal times)", last)
	}

	if err := d.ApplyCacheForeign(5, &pb.CacheForeign{Peer: "lcvs.crisis.test", Origin: "lcvs.crisis.test", Cursor: 2, At: timestamppb.New(t0), Retractions: []string{"f1"}}); err != nil {
		t.Fatal(err)
	}
	rows, err = d.History(ctx, db.HistoryFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if r.Origin != "" {
			t.Errorf("retracted record's version is still in the history: %+v", r)
		}
	}
	if len(rows) != 3 {
		t.Errorf("history has %d rows after the retraction, want own s1's 3", len(rows))
	}
}

// TestPruneHistoryKeepsBaseline checks that pruning keeps, for each record, the last version
// before the cut, so that what the record counted at the cut is still known, and drops a record
// deleted before the cut altogether.
func TestPruneHistoryKeepsBaseline(t *testing.T) {
	d := newDB(t)
	for i := range 4 {
		if _, err := d.Apply(uint64(i+1), []*pb.Record{{Id: "a", Kind: "k", Crisis: "c", Region: "R", Body: []byte(`{"n": 1}`), UpdatedAt: hour(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.Apply(5, []*pb.Record{{Id: "b", Kind: "k", Crisis: "c", Region: "R", Body: []byte(`{"n": 1}`), UpdatedAt: hour(0)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Apply(6, []*pb.Record{{Id: "b", Tombstone: true, UpdatedAt: hour(1)}}); err != nil {
		t.Fatal(err)
	}
	n, err := d.PruneHistory(t0.Add(2*time.Hour + time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	rows, _ := d.History(context.Background(), db.HistoryFilter{})
	var got []string
	for _, r := range rows {
		got = append(got, r.ID+"@"+r.At.Format("15"))
	}
	// a's versions at 09 and 10 go; its 11 stays as the baseline, its 12 is after the cut.
	// b's version at 09 has a newer one before the cut, and b's delete ends it: both go.
	if n != 4 || len(got) != 2 || got[0] != "a@11" || got[1] != "a@12" {
		t.Errorf("pruned %d rows, left %v; want 4 pruned, [a@11 a@12] left", n, got)
	}
}

// TestVersionsClipToTheWindow: Versions answers the same from a replica that pruned at any time
// before the start of the window as from one that never pruned (review14 M4): a read since S holds
// the versions after S and the newest at or before S unless it deletes the record. a has a
// version each hour; b is deleted at hour 2 and put again at hour 3.
func TestVersionsClipToTheWindow(t *testing.T) {
	build := func() *db.DB {
		d := newDB(t)
		for i := range 5 {
			if _, err := d.Apply(uint64(i+1), []*pb.Record{{Id: "a", Kind: "k", Crisis: "c", Region: "R", Body: []byte(fmt.Sprintf(`{"n": %d}`, i)), UpdatedAt: hour(i)}}); err != nil {
				t.Fatal(err)
			}
		}
		for i, r := range []*pb.Record{
			{Id: "b", Kind: "k", Crisis: "c", Region: "R", Body: []byte(`{"n": 1}`), UpdatedAt: hour(1)},
			{Id: "b", Tombstone: true, UpdatedAt: hour(2)},
			{Id: "b", Kind: "k", Crisis: "c", Region: "R", Body: []byte(`{"n": 3}`), UpdatedAt: hour(3)},
		} {
			if _, err := d.Apply(uint64(10+i), []*pb.Record{r}); err != nil {
				t.Fatal(err)
			}
		}
		return d
	}
	versions := func(d *db.DB, id string, since time.Time) string {
		t.Helper()
		vs, err := d.Versions(context.Background(), "", id, db.Actual, since)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, v := range vs {
			s := fmt.Sprintf("%d@%s", v.Version, v.At.Format("15:04"))
			if v.Tombstone {
				s += "-deleted"
			}
			out = append(out, s)
		}
		return strings.Join(out, " ")
	}
	whole := build()
	half := func(h int) time.Time { return t0.Add(time.Duration(h)*time.Hour + 30*time.Minute) }
	for _, c := range []struct {
		since time.Time
		a, b  string
	}{
		{since: half(0), a: "5@13:00 4@12:00 3@11:00 2@10:00 1@09:00", b: "3@12:00 2@11:00-deleted 1@10:00"},
		{since: hour(2).AsTime(), a: "5@13:00 4@12:00 3@11:00", b: "3@12:00"},
		{since: half(2), a: "5@13:00 4@12:00 3@11:00", b: "3@12:00"},
		{since: half(4), a: "5@13:00", b: "3@12:00"},
	} {
		if got := versions(whole, "a", c.since) + " | " + versions(whole, "b", c.since); got != c.a+" | "+c.b {
			t.Fatalf("since %s, nothing pruned: %s, want %s | %s", c.since.Format("15:04"), got, c.a, c.b)
		}
		for _, cut := range []time.Time{hour(0).AsTime(), half(0), hour(2).AsTime(), c.since} {
			if cut.After(c.since) {
				continue
			}
			d := build()
			if _, err := d.PruneHistory(cut); err != nil {
				t.Fatal(err)
			}
			if got := versions(d, "a", c.since) + " | " + versions(d, "b", c.since); got != c.a+" | "+c.b {
				t.Errorf("since %s, pruned at %s: %s, want %s | %s", c.since.Format("15:04"), cut.Format("15:04"), got, c.a, c.b)
			}
		}
	}
}

// TestHistoryKeepsStringsUntilDelete checks that the history keeps a body's booleans and short
// strings beside its numbers, leaves out a string over MaxHistoryString, and that a delete erases
// the strings of every earlier version of the record while its numbers stay.
func TestHistoryKeepsStringsUntilDelete(t *testing.T) {
	d := newDB(t)
	ctx := context.Background()
	long := make([]byte, db.MaxHistoryString+1)
	for i := range long {
		long[i] = 'x'
	}
	for i, w := range []*pb.Record{
		{Id: "r1", Kind: "sitrep", Crisis: "oekraine", Region: "VR19", Body: []byte(`{"severity":"high","urgent":true,"n":3,"summary":"` + string(long) + `"}`), UpdatedAt: hour(0)},
		{Id: "r1", Kind: "sitrep", Crisis: "oekraine", Region: "VR19", Body: []byte(`{"severity":"low","n":4}`), UpdatedAt: hour(1)},
	} {
		if res, err := d.Apply(uint64(i+1), []*pb.Record{w}); err != nil || res[0].Err != nil {
			t.Fatal(err, res)
		}
	}
	rows, err := d.History(ctx, db.HistoryFilter{Kinds: []string{"sitrep"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].Values["severity"] != "high" || rows[0].Values["urgent"] != true || rows[0].Fields["n"] != 3 ||
		len(rows[0].Values) != 2 || rows[1].Values["severity"] != "low" {
		t.Fatalf("history %+v, want severity and urgent beside n, and no summary over the bound", rows)
	}
	if res, err := d.Apply(3, []*pb.Record{{Id: "r1", Tombstone: true, UpdatedAt: hour(2)}}); err != nil || res[0].Err != nil {
		t.Fatal(err, res)
	}
	rows, err = d.History(ctx, db.HistoryFilter{Kinds: []string{"sitrep"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 || rows[0].Values != nil || rows[1].Values != nil || rows[0].Fields["n"] != 3 || rows[1].Fields["n"] != 4 {
		t.Fatalf("after the delete: %+v, want the numbers only", rows)
	}
}

// TestVersionsOfOneRecord checks that Versions reads the history of one record only, newest
// first: not that of another id, nor that of a peer's record with the same id; that a delete is
// marked and leaves the earlier versions their numbers only; and that a record is read only in its
// mode.
func TestVersionsOfOneRecord(t *testing.T) {
	d := newDB(t)
	ctx := context.Background()
	own := func(index uint64, w *pb.Record) { applyOwn(t, d, index, w) }
	shelter := func(id, body string, h int) *pb.Record {
		return &pb.Record{Id: id, Kind: "shelter.capacity", Crisis: "oekraine", Region: "VR19", Body: []byte(body), UpdatedAt: hour(h)}
	}
	own(1, shelter("s1", `{"beds_free": 40, "open": true, "name": "Jaarbeurs"}`, 0))
	own(2, shelter("s1", `{"beds_free": 30, "open": true, "name": "Jaarbeurs"}`, 1))
	own(3, shelter("s2", `{"beds_free": 99}`, 1))
	test := shelter("t1", `{"beds_free": 5}`, 1)
	test.Status = pb.Status_TEST
	own(4, test)
	cached := shelter("s1", `{"beds_free": 7}`, 1)
	cached.Origin, cached.Version = "lcvs.crisis.test", 1
	if err := d.ApplyCacheForeign(5, &pb.CacheForeign{Peer: "lcvs.crisis.test", Origin: "lcvs.crisis.test", Cursor: 1, At: timestamppb.New(t0),
		Upserts: []*pb.SharedRecord{{Record: cached}}}); err != nil {
		t.Fatal(err)
	}

	vs, err := d.Versions(ctx, "", "s1", db.Actual, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 2 || vs[0].Version != 2 || vs[1].Version != 1 {
		t.Fatalf("versions of s1: %+v, want versions 2 and 1, newest first", vs)
	}
	if vs[0].Fields["beds_free"] != 30 || vs[1].Fields["beds_free"] != 40 || vs[0].Values["name"] != "Jaarbeurs" || vs[0].Values["open"] != true {
		t.Errorf("versions of s1: %+v, want beds_free 30 then 40, with name and open", vs)
	}
	if !vs[0].At.Equal(hour(1).AsTime()) || vs[0].ID != "s1" || vs[0].Origin != "" {
		t.Errorf("newest version of s1: %+v, want own s1 at hour 1", vs[0])
	}
	foreign, err := d.Versions(ctx, "lcvs.crisis.test", "s1", db.Actual, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(foreign) != 1 || foreign[0].Origin != "lcvs.crisis.test" || foreign[0].Fields["beds_free"] != 7 {
		t.Errorf("versions of the peer's s1: %+v, want its one version with beds_free 7", foreign)
	}

	own(6, &pb.Record{Id: "s1", Tombstone: true, UpdatedAt: hour(2)})
	vs, err = d.Versions(ctx, "", "s1", db.Actual, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 3 || !vs[0].Tombstone || vs[1].Tombstone || vs[2].Tombstone {
		t.Fatalf("versions of deleted s1: %+v, want 3 with only the newest marked deleted", vs)
	}
	if vs[1].Fields["beds_free"] != 30 || len(vs[1].Values) != 0 {
		t.Errorf("version 2 after the delete: %+v, want its numbers only", vs[1])
	}

	for _, c := range []struct {
		origin, id string
		mode       db.Mode
	}{
		{"", "nope", db.Actual},
		{"lcvs.crisis.test", "s2", db.Actual},
		{"other.crisis.test", "s1", db.Actual},
		{"", "t1", db.Actual},
		{"", "s2", db.Mode{Status: pb.Status_TEST}},
		{"", "s2", db.Mode{Status: pb.Status_EXERCISE, Exercise: "oefening-1"}},
	} {
		if vs, err := d.Versions(ctx, c.origin, c.id, c.mode, time.Time{}); !errors.Is(err, db.ErrNotFound) {
			t.Errorf("versions of %q %q in mode %s: %+v, %v; want ErrNotFound", c.origin, c.id, c.mode, vs, err)
		}
	}
	if vs, err := d.Versions(ctx, "", "t1", db.Mode{Status: pb.Status_TEST}, time.Time{}); err != nil || len(vs) != 0 {
		t.Errorf("versions of test record t1 in test mode: %+v, %v; want none (only actual records have a history)", vs, err)
	}
}

// TestHistoryOfAnExercise: an exercise's records, own and cached, have a history of their own:
// a read of the actual history never holds them, a read in the exercise's mode holds nothing
// else, and closing the exercise drops it, and what its picture noted of records that left.
func TestHistoryOfAnExercise(t *testing.T) {
	d := newDB(t)
	ctx := context.Background()
	ex := db.Mode{Status: pb.Status_EXERCISE, Exercise: "oefening-1"}
	if _, err := d.ApplyExerciseStep(1, &pb.ExerciseStep{Action: "start", Name: ex.Exercise, Actor: "t", At: hour(0)}); err != nil {
		t.Fatal(err)
	}
	applyOwn(t, d, 2, &pb.Record{Id: "real", Kind: "shelter.capacity", Crisis: "oekraine", Region: "VR19", Body: []byte(`{"beds_free": 40}`), UpdatedAt: hour(1)})
	applyOwn(t, d, 3, &pb.Record{Id: "oef", Kind: "shelter.capacity", Crisis: "oekraine", Region: "VR19", Body: []byte(`{"beds_free": 2}`), UpdatedAt: hour(1),
		Status: pb.Status_EXERCISE, Exercise: ex.Exercise})
	if err := d.ApplyCacheForeign(4, &pb.CacheForeign{Peer: "lcvs", Origin: "lcvs.crisis.test", Cursor: 1, At: hour(2), Exercise: ex.Exercise, PictureBookkeeping: true,
		Upserts: []*pb.SharedRecord{{Record: &pb.Record{Id: "f1", Origin: "lcvs.crisis.test", Kind: "shelter.capacity", Crisis: "oekraine", Region: "VR19",
			Body: []byte(`{"beds_free": 7}`), Version: 1, UpdatedAt: hour(2), Status: pb.Status_EXERCISE, Exercise: ex.Exercise}}}}); err != nil {
		t.Fatal(err)
	}
	ids := func(m db.Mode) []string {
		t.Helper()
		rows, err := d.History(ctx, db.HistoryFilter{Kinds: []string{"shelter.capacity"}, Crisis: "oekraine", Mode: m})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range rows {
			out = append(out, r.Origin+"/"+r.ID)
		}
		return out
	}
	if got := ids(db.Actual); len(got) != 1 || got[0] != "/real" {
		t.Errorf("the actual history holds %v, want /real alone", got)
	}
	if got := ids(ex); len(got) != 2 || got[0] != "/oef" || got[1] != "lcvs.crisis.test/f1" {
		t.Errorf("the exercise's history holds %v, want /oef and lcvs.crisis.test/f1", got)
	}
	// LCVS withdraws its copy: the exercise's picture notes it, until the close.
	if err := d.ApplyCacheForeign(5, &pb.CacheForeign{Peer: "lcvs", Origin: "lcvs.crisis.test", Cursor: 2, At: hour(3), Exercise: ex.Exercise, PictureBookkeeping: true,
		Retractions: []string{"f1"}}); err != nil {
		t.Fatal(err)
	}
	if rs, err := d.Removals(ctx, "oekraine", ex); err != nil || len(rs) != 1 {
		t.Fatalf("the exercise's removals after LCVS withdrew f1: %v, %v; want one", rs, err)
	}
	if _, err := d.ApplyExerciseStep(6, &pb.ExerciseStep{Action: "close", Name: ex.Exercise, Actor: "t", At: hour(3), RetractCopies: true}); err != nil {
		t.Fatal(err)
	}
	if got := ids(ex); len(got) != 0 {
		t.Errorf("after the close the exercise's history holds %v, want nothing", got)
	}
	if rs, err := d.Removals(ctx, "oekraine", ex); err != nil || len(rs) != 0 {
		t.Errorf("after the close the exercise's removals are %v, %v; want none", rs, err)
	}
	if got := ids(db.Actual); len(got) != 1 {
		t.Errorf("after the close the actual history holds %v, want /real alone", got)
	}

	// An exercise record of an entry of the version before (unmarked) has no history, as then.
	if _, err := d.ApplyExerciseStep(7, &pb.ExerciseStep{Action: "start", Name: "oefening-2", Actor: "t", At: hour(4)}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ApplyWrites([]db.WriteEntry{{Index: 8, Writes: []*db.Write{{Id: "oef-2", Kind: "shelter.capacity", Crisis: "oekraine", Region: "VR19",
		Body: []byte(`{"beds_free": 1}`), UpdatedAt: hour(5), Status: pb.Status_EXERCISE, Exercise: "oefening-2"}}}}); err != nil {
		t.Fatal(err)
	}
	if got := ids(db.Mode{Status: pb.Status_EXERCISE, Exercise: "oefening-2"}); len(got) != 0 {
		t.Errorf("an unmarked entry's exercise record has a history: %v", got)
	}
}

package db_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/node/db"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestHistoryKeepsVersionsAndDropsRetracted checks that every applied version of an own or cached
// record is in the history with its body's numbers, that a delete ends an own record's
// contribution without erasing its past, and that a retraction removes every version a cached
// record ever contributed.
func TestHistoryKeepsVersionsAndDropsRetracted(t *testing.T) {
	d := newDB(t)
	ctx := context.Background()
	own := func(index uint64, w *pb.Record) {
		t.Helper()
		res, err := d.Apply(index, []*pb.Record{w})
		if err != nil || res[0].Err != nil {
			t.Fatalf("apply %d: %v %v", index, err, res)
		}
	}
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

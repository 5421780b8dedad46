package db_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/knooppunt/knooppunt/node/db"
	"github.com/knooppunt/knooppunt/node/record"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// textIDs runs a full-text query against own records and returns the ids found, best first.
func textIDs(t *testing.T, d *db.DB, query string, f db.TextFilter, limit int) []string {
	t.Helper()
	q, err := record.ParseText("text", query)
	if err != nil {
		t.Fatal(err)
	}
	f.Terms = q.Terms
	if left, err := d.CatchUpText(context.Background(), db.CatchUpBudget); err != nil || left != 0 {
		t.Fatalf("CatchUpText: %d left, %v", left, err)
	}
	var ids []string
	err = d.EachTextMatch(context.Background(), f, func(r *pb.Record) (bool, error) {
		ids = append(ids, r.Id)
		return len(ids) < limit, nil
	})
	if err != nil {
		t.Fatalf("EachTextMatch(%q): %v", query, err)
	}
	return ids
}

// TestTextIndex: the trigram index finds Dutch compounds by their parts and words without their
// diacritics, ranks with bm25, follows updates and deletes, filters like List, and indexes the
// records cached from peers apart from own ones.
func TestTextIndex(t *testing.T) {
	d := newDB(t)
	a := &applier{t: t, d: d}
	qa := func(id, question, answer string) *db.Write {
		w := put(id, `{"question":"`+question+`","answer":"`+answer+`"}`)
		w.Kind = "qa"
		return w
	}
	a.apply(
		qa("q1", "Mag ik werken?", "Ja, zonder tewerkstellingsvergunning."),
		qa("q2", "Wie doet de coördinatie?", "De veiligheidsregio."),
		qa("q3", "Vergunning nodig?", "Een vergunning, vergunning en nog eens vergunning."),
		put("s1", `{"municipality":"Utrecht","beds_total":10,"beds_free":3}`),
	)
	for _, tc := range []struct {
		query string
		f     db.TextFilter
		want  string
	}{
		{"vergunning", db.TextFilter{}, "q3 q1"}, // q3 says it four times: first by bm25
		{"werkstelling", db.TextFilter{}, "q1"},
		{"coordinatie", db.TextFilter{}, "q2"},
		{"COÖRDINATIE", db.TextFilter{}, "q2"},
		{"utrecht", db.TextFilter{}, "s1"},
		{"utrecht", db.TextFilter{Kinds: []string{"qa"}}, ""},
		{"vergunning", db.TextFilter{Kinds: []string{"qa"}, Crisis: "oekraine", Region: "VR01"}, "q3 q1"},
		{"vergunning", db.TextFilter{Region: "VR02"}, ""},
		{"vergunning", db.TextFilter{}, "q3"}, // the first only
		{`"zonder tewerkstelling"`, db.TextFilter{}, "q1"},
		{"werken vergunning", db.TextFilter{}, "q1"},
	} {
		limit := 100
		if !strings.Contains(tc.want, " ") {
			limit = 1
		}
		if got := strings.Join(textIDs(t, d, tc.query, tc.f, limit), " "); got != tc.want {
			t.Errorf("%q %+v: found %q, want %q", tc.query, tc.f, got, tc.want)
		}
	}

	// An update replaces what the index holds of a record; a delete takes it out.
	a.apply(withVersion(qa("q1", "Mag ik werken?", "Ja, zonder papieren."), 1), del("q3", 1))
	if got := textIDs(t, d, "vergunning", db.TextFilter{}, 100); len(got) != 0 {
		t.Errorf("after the update and the delete, vergunning finds %q", got)
	}
	if got := textIDs(t, d, "papieren", db.TextFilter{}, 100); strings.Join(got, " ") != "q1" {
		t.Errorf("papieren finds %q, want q1 with its new answer", got)
	}

	// Records cached from a peer are found apart from own ones, and leave with their retraction.
	cache := func(index uint64, upserts []*pb.SharedRecord, retract ...string) {
		t.Helper()
		if err := d.ApplyCacheForeign(index, &pb.CacheForeign{Peer: "szw", Origin: "szw.crisis.test", Cursor: int64(index), At: hour(2), Upserts: upserts, Retractions: retract}); err != nil {
			t.Fatal(err)
		}
	}
	cache(a.index+1, []*pb.SharedRecord{{Record: &pb.Record{Id: "g1", Origin: "szw.crisis.test", Kind: "guidance", Crisis: "oekraine", Region: "NL",
		Classification: pb.Classification_PUBLIC, Body: []byte(`{"title":"Werkvergunning","text":"Regels voor werk."}`), Version: 1, UpdatedAt: hour(1)}}})
	if got := textIDs(t, d, "vergunning", db.TextFilter{}, 100); len(got) != 0 {
		t.Errorf("own search found cached records: %q", got)
	}
	q, _ := record.ParseText("text", "vergunning")
	found := func() []db.Foreign {
		t.Helper()
		if _, err := d.CatchUpText(context.Background(), db.CatchUpBudget); err != nil {
			t.Fatal(err)
		}
		var fs []db.Foreign
		err := d.EachForeignTextMatch(context.Background(), "szw.crisis.test", db.TextFilter{Terms: q.Terms}, func(f db.Foreign) (bool, error) {
			fs = append(fs, f)
			return true, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return fs
	}
	if fs := found(); len(fs) != 1 || fs[0].Record.Id != "g1" || fs[0].Peer != "szw" {
		t.Fatalf("cache search found %v, want g1 from szw", fs)
	}
	cache(a.index+2, nil, "g1")
	if fs := found(); len(fs) != 0 {
		t.Errorf("after the retraction the cache search found %v", fs)
	}
}

// TestTextIndexerRunsInTheBackground: the FSM only queues a written record; the indexer takes it
// into the index by itself once the store is quiet, with no search to ask for it, and stops when
// its context ends.
func TestTextIndexerRunsInTheBackground(t *testing.T) {
	d := newDB(t)
	a := &applier{t: t, d: d}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.RunTextIndexer(ctx, func(err error) { t.Errorf("indexer: %v", err) })
	}()
	a.apply(put("s1", `{"municipality":"Tewerkstellingsvergunningstad","beds_total":1,"beds_free":1}`))
	q, _ := record.ParseText("text", "vergunning")
	deadline := time.Now().Add(5 * time.Second)
	for {
		var ids []string
		err := d.EachTextMatch(context.Background(), db.TextFilter{Terms: q.Terms}, func(r *pb.Record) (bool, error) {
			ids = append(ids, r.Id)
			return true, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(ids, " ") == "s1" {
			break
		}
		if time.Now().After(deadline) {
			n, _ := d.TextPending(context.Background())
			t.Fatalf("the indexer did not take s1 in within 5s; %d queued", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n, err := d.TextPending(context.Background()); err != nil || n != 0 {
		t.Errorf("%d records queued after the indexer ran (%v)", n, err)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the indexer did not stop when its context ended")
	}
}

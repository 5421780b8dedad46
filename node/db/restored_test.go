package db_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/knooppunt/knooppunt/node/db"
)

// TestRestoreNumbersAnew: a node restored from a backup (knooppunt restore: MarkRestored, then
// Open) gives neither a change-feed seq nor a webhook message id that the database lost at the
// restore gave for another change, and refuses a cursor that only the lost database gave, or one
// past its feed's end (review J, F9). The very same change gets the same message id.
func TestRestoreNumbersAnew(t *testing.T) {
	ctx := context.Background()
	lost, next := withHookAll(t)
	if _, err := lost.Apply(next(), []*db.Write{put("a", `{"beds_free":1}`)}); err != nil {
		t.Fatal(err)
	}
	bk := backup(t, lost)
	backupSeq, _ := lost.LastSeq()
	applied, _ := lost.AppliedIndex()
	res, err := lost.Apply(next(), []*db.Write{put("after-1", `{"beds_free":2}`), put("after-2", `{"beds_free":3}`), put("after-3", `{"beds_free":4}`)})
	if err != nil {
		t.Fatal(err)
	}
	var lostSeqs []int64
	for _, r := range res {
		lostSeqs = append(lostSeqs, r.Seq)
	}
	messages := func(d *db.DB) map[string]string {
		t.Helper()
		q, err := d.WebhookQueue(ctx, "all", 100)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, x := range q {
			out[x.RecordID] = x.Message
		}
		return out
	}
	lostIDs := messages(lost)

	path := filepath.Join(t.TempDir(), "knooppunt.db")
	copyFile(t, bk, path)
	at := time.Now()
	if kept, err := db.MarkRestored(path, at); err != nil || kept {
		t.Fatalf("MarkRestored = %v, %v; want marks of its own", kept, err)
	}
	d := openDB(t, path)
	restored, resumed := d.Restored()
	if last, _ := d.LastSeq(); restored != backupSeq || resumed != last || resumed < at.UnixMicro() || resumed <= slices.Max(lostSeqs) {
		t.Fatalf("restored at %d, resumed at %d, last seq %d: want the backup's %d, and the last seq, at least the restore's time %d and past the lost %v",
			restored, resumed, last, backupSeq, at.UnixMicro(), lostSeqs)
	}

	res, err = d.Apply(applied+1, []*db.Write{put("restored-1", `{"beds_free":5}`), put("restored-2", `{"beds_free":6}`), put("after-3", `{"beds_free":4}`)})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Err != nil || r.Seq <= resumed || slices.Contains(lostSeqs, r.Seq) {
			t.Fatalf("a change after the restore: %+v; want a seq past %d, none of the lost %v", r, resumed, lostSeqs)
		}
	}
	ids := messages(d)
	for _, id := range []string{"restored-1", "restored-2"} {
		for was, m := range lostIDs {
			if ids[id] == m {
				t.Errorf("%s was queued as %s, the message id of the lost %s", id, m, was)
			}
		}
	}
	// The third write is the lost database's third change again, at the same place in the queue:
	// its id is the same, and a receiver that drops it loses nothing.
	if ids["after-3"] != lostIDs["after-3"] {
		t.Errorf("the same change again is %s, was %s: want the same id", ids["after-3"], lostIDs["after-3"])
	}

	last, _ := d.LastSeq()
	for _, c := range []struct {
		cursor        int64
		refused, gone bool
	}{
		{0, false, false}, {backupSeq, false, false}, {resumed, false, false}, {last, false, false},
		{lostSeqs[0], true, true}, {lostSeqs[2], true, true}, {resumed - 1, true, true},
		{last + 1, true, false},
	} {
		err := d.CheckCursor(ctx, c.cursor, 10*time.Millisecond)
		var ce *db.CursorError
		if refused := errors.As(err, &ce); refused != c.refused || (refused && ce.BeforeRestore != c.gone) || (!refused && err != nil) {
			t.Errorf("CheckCursor(%d) = %v; want refused %v, before the restore %v", c.cursor, err, c.refused, c.gone)
		}
		if d.BeforeRestore(c.cursor) != c.gone {
			t.Errorf("BeforeRestore(%d) = %v, want %v", c.cursor, !c.gone, c.gone)
		}
	}
	// A cursor past the end that the feed reaches while CheckCursor waits is taken.
	done := make(chan error, 1)
	go func() { done <- d.CheckCursor(ctx, last+1, 10*time.Second) }()
	if _, err := d.Apply(applied+2, []*db.Write{put("restored-3", `{}`)}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Errorf("CheckCursor of a cursor the feed reached meanwhile: %v", err)
	}
}

// TestRestoreOfAFreshRestoreKeepsItsNumbers: a restore of a database that a restore made and no
// node opened since (one restore, copied to a Raft group's replicas) keeps its numbers, so that
// every replica's feed is the same; once a node opened it, a restore of it numbers anew.
func TestRestoreOfAFreshRestoreKeepsItsNumbers(t *testing.T) {
	src := newDB(t)
	fillForBackup(t, src, "src", 3)
	bk := backup(t, src)
	dir := t.TempDir()
	first, second, third := filepath.Join(dir, "1.db"), filepath.Join(dir, "2.db"), filepath.Join(dir, "3.db")
	copyFile(t, bk, first)
	at := time.Now()
	if kept, err := db.MarkRestored(first, at); err != nil || kept {
		t.Fatalf("MarkRestored of the backup = %v, %v", kept, err)
	}
	copyFile(t, first, second)
	if kept, err := db.MarkRestored(second, at.Add(time.Hour)); err != nil || !kept {
		t.Fatalf("MarkRestored of a fresh restore = %v, %v; want its marks kept", kept, err)
	}
	a, b := openDB(t, first), openDB(t, second)
	ar, aj := a.Restored()
	br, bj := b.Restored()
	if ar != br || aj != bj || aj != at.UnixMicro() {
		t.Fatalf("restores (%d, %d) and (%d, %d); want the same, resumed at %d", ar, aj, br, bj, at.UnixMicro())
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	copyFile(t, first, third)
	later := at.Add(2 * time.Hour) // past the margin of the first restore
	if kept, err := db.MarkRestored(third, later); err != nil || kept {
		t.Fatalf("MarkRestored of a database a node opened = %v, %v; want marks anew", kept, err)
	}
	c := openDB(t, third)
	if cr, cj := c.Restored(); cr != aj || cj != later.UnixMicro() {
		t.Fatalf("restore of a restore a node opened: (%d, %d), want (%d, %d)", cr, cj, aj, later.UnixMicro())
	}
}

package db_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
)

// TestDeletedBodyLeavesTheFiles: once a record is deleted and the database checkpointed, its
// body is in neither the database file nor its WAL. Without secure_delete the deleted cell would
// stay in the file's free space; without the checkpoint, in the WAL.
func TestDeletedBodyLeavesTheFiles(t *testing.T) {
	d := newDB(t)
	a := &applier{t: t, d: d}
	text := "geheime-opvanglocatie-7f3a"
	// A body larger than a page, so that it spills into overflow pages, which a delete frees
	// whole: without secure_delete they keep their bytes on the free list.
	a.apply(put("gone", fmt.Sprintf(`{"note":%q,"more":%q}`, text, strings.Repeat(text+" ", 600))))
	for i := range 50 {
		a.apply(put(fmt.Sprintf("stays-%02d", i), `{"beds_free":1}`))
	}
	files := func() []string {
		var out []string
		for _, p := range []string{d.Path(), d.Path() + "-wal"} {
			b, err := os.ReadFile(p)
			if err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			if bytes.Contains(b, []byte(text)) {
				out = append(out, p)
			}
		}
		return out
	}
	if err := d.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(files()) == 0 {
		t.Fatal("the live record's body is in no file: the scan is broken")
	}
	a.apply(del("gone", 0))
	if len(files()) == 0 {
		t.Fatal("before the checkpoint the WAL should still hold the page as it was")
	}
	if err := d.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := files(); len(got) != 0 {
		t.Fatalf("the deleted body is still in %v after the checkpoint", got)
	}
	if fi, err := os.Stat(d.Path() + "-wal"); err == nil && fi.Size() != 0 {
		t.Fatalf("the WAL has %d bytes after a truncating checkpoint, want 0", fi.Size())
	}
}

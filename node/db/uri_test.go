package db_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/knooppunt/knooppunt/node/db"
)

// TestOddPathNames: a database, its backup, copy and restore stay in the directory they are
// named in, whatever the names hold of what a SQLite URI reads as its own ('#' a fragment, '?'
// a query, '%' an escape, a leading "//" a host, "file:" a URI). Unescaped, n#1/knooppunt.db
// opened the database n in the parent, shared by every node in n#1, n#2, ...
func TestOddPathNames(t *testing.T) {
	inParent := func(parent, name string) string { return filepath.Join(parent, name) }
	for _, c := range []struct {
		name string
		dir  func(parent, name string) string
	}{
		{"n#1", inParent},
		{"n?mode=memory", inParent},
		{"n%41", inParent},
		{"a#b?c%41d", inParent},
		// A leading "//" names a host in a URI; on the file system it is the same directory (the
		// paths below are joined by hand, as filepath.Join would clean it away).
		{"n#2", func(parent, name string) string { return "/" + filepath.Join(parent, name) }},
		// Relative, so that "file:" begins it.
		{"file:n#1", func(_, name string) string { return name }},
	} {
		name := c.name
		parent := t.TempDir()
		t.Chdir(parent)
		dir := c.dir(parent, name)
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		d := openDB(t, dir+"/knooppunt.db")
		if _, err := os.Stat(dir + "/knooppunt.db"); err != nil {
			entries, _ := os.ReadDir(parent)
			t.Fatalf("%s: the database is not in its directory (%v); the parent holds %v", name, err, entries)
		}
		fillForBackup(t, d, "r", 3)
		applied, err := d.AppliedIndex()
		if err != nil {
			t.Fatal(err)
		}
		bk := dir + "/backup" + name + ".db"
		if err := d.Backup(bk); err != nil {
			t.Fatalf("%s: Backup: %v", name, err)
		}
		cp := dir + "/copy" + name + ".db"
		if got, err := d.Copy(t.Context(), cp); err != nil || got != applied {
			t.Fatalf("%s: Copy = %d, %v; want %d", name, got, err, applied)
		}
		for _, p := range []string{bk, cp} {
			if got, origin, err := db.CheckBackup(t.Context(), p); err != nil || got != applied || origin != "vr-utrecht.crisis.test" {
				t.Errorf("%s: CheckBackup(%s) = %d, %q, %v; want %d", name, p, got, origin, err, applied)
			}
		}
		f, err := os.Open(bk)
		if err != nil {
			t.Fatal(err)
		}
		err = d.Restore(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: Restore: %v", name, err)
		}
		if _, err := d.Get(t.Context(), "r-00"); err != nil {
			t.Errorf("%s: Get after Restore: %v", name, err)
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		if err := db.FoldWAL(cp); err != nil {
			t.Errorf("%s: FoldWAL: %v", name, err)
		}
		entries, _ := os.ReadDir(parent)
		if len(entries) != 1 || entries[0].Name() != name {
			t.Errorf("%s: the parent directory holds %v, want %s alone", name, entries, name)
		}
		var names []string
		entries, _ = os.ReadDir(dir)
		for _, e := range entries {
			names = append(names, e.Name())
		}
		if want := []string{"backup" + name + ".db", "copy" + name + ".db", "knooppunt.db"}; !slices.Equal(names, want) {
			t.Errorf("%s: its directory holds %v, want %v", name, names, want)
		}
	}
}

// TestMatchingTakesTheDirectoryAsItIs: what an earlier restore or snapshot left is found in the
// directory named, and only there, whatever characters its name holds: filepath.Glob read
// r?1 as a pattern, so a restore into it swept rx1's leftovers, and r[1 as a bad one, so it
// swept nothing.
func TestMatchingTakesTheDirectoryAsItIs(t *testing.T) {
	parent := t.TempDir()
	for _, d := range []string{"r?1", "rx1", "r[1"} {
		if err := os.MkdirAll(filepath.Join(parent, d, ".knooppunt-restore-1"), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"r?1", "r[1"} {
		dir := filepath.Join(parent, d)
		got := db.Matching(dir, ".knooppunt-restore-*")
		if want := []string{filepath.Join(dir, ".knooppunt-restore-1")}; !slices.Equal(got, want) {
			t.Errorf("in %s: %v, want %v", d, got, want)
		}
	}
}

package store

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// dirHas reports whether any file under dir holds b.
func dirHas(t *testing.T, dir string, b []byte) bool {
	t.Helper()
	found := false
	err := filepath.Walk(dir, func(path string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		found = found || bytes.Contains(data, b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// TestCompactLogKeepsOnlyWhatFollows: compacting the log keeps the entries from the given index
// on, byte for byte, and the term and vote; the entries before it are in no file of the log
// directory any more; appends go on after it, also once the log is opened again. Compacting
// past the end leaves an empty log that takes the next index.
func TestCompactLogKeepsOnlyWhatFollows(t *testing.T) {
	dir := t.TempDir()
	l := mustOpenLog(t, dir, segmentSize, reopenSegments*segmentSize)
	entry := func(i uint64) *raft.Log {
		return &raft.Log{Index: i, Term: 3, Type: raft.LogCommand, Data: []byte("entry-" + string(rune('a'+i)) + "-body")}
	}
	for i := uint64(1); i <= 10; i++ {
		if err := l.StoreLog(entry(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := errors.Join(l.SetUint64([]byte("CurrentTerm"), 3), l.Set([]byte("LastVoteCand"), []byte("r2"))); err != nil {
		t.Fatal(err)
	}
	if err := l.compactLog(8); err != nil {
		t.Fatal(err)
	}
	check := func(l *raftLog, first, last uint64) {
		t.Helper()
		if f, l := mustIndex(t, l.FirstIndex), mustIndex(t, l.LastIndex); f != first || l != last {
			t.Fatalf("log holds %d…%d, want %d…%d", f, l, first, last)
		}
		for i := first; i <= last && i > 0; i++ {
			var got raft.Log
			if err := l.GetLog(i, &got); err != nil || !bytes.Equal(got.Data, entry(i).Data) || got.Term != 3 {
				t.Fatalf("entry %d: %q term %d (%v), want %q", i, got.Data, got.Term, err, entry(i).Data)
			}
		}
		if term, err := l.GetUint64([]byte("CurrentTerm")); err != nil || term != 3 {
			t.Fatalf("CurrentTerm %d (%v), want 3", term, err)
		}
		if cand, err := l.Get([]byte("LastVoteCand")); err != nil || string(cand) != "r2" {
			t.Fatalf("LastVoteCand %q (%v), want r2", cand, err)
		}
	}
	check(l, 8, 10)
	for i := uint64(1); i < 8; i++ {
		if dirHas(t, dir, entry(i).Data) {
			t.Fatalf("entry %d, before the compaction's start, is still in a file", i)
		}
	}
	if err := l.StoreLog(entry(11)); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = mustOpenLog(t, dir, segmentSize, reopenSegments*segmentSize)
	check(l, 8, 11)
	if err := l.compactLog(12); err != nil {
		t.Fatal(err)
	}
	check(l, 0, 0)
	if err := l.StoreLog(entry(12)); err != nil {
		t.Fatalf("append to the emptied log: %v", err)
	}
	check(l, 12, 12)
	l.Close()
}

// TestRecoverCompaction: a compaction cut short by a crash at each step is finished or undone
// when the log opens: whichever log was whole is the one that opens, and no other copy is left.
func TestRecoverCompaction(t *testing.T) {
	for _, tc := range []struct {
		name string
		// dirs are the log directories present after the crash, each with the entries 1…n.
		dirs map[string]uint64
		want uint64 // the last index of the log that opens
	}{
		{"while building the new log", map[string]uint64{walDir: 5, walNewDir: 2}, 5},
		{"between the renames", map[string]uint64{walOldDir: 5, walNewDir: 3}, 3},
		{"before removing the old log", map[string]uint64{walOldDir: 5, walDir: 3}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, n := range tc.dirs {
				w, err := openWAL(filepath.Join(dir, name), 64<<10, nil, hclog.NewNullLogger())
				if err != nil {
					t.Fatal(err)
				}
				for i := uint64(1); i <= n; i++ {
					if err := w.StoreLogs([]*raft.Log{{Index: i, Term: 1, Type: raft.LogCommand, Data: []byte{byte(i)}}}); err != nil {
						t.Fatal(err)
					}
				}
				if err := errors.Join(awaitNextSegment(w), w.Close()); err != nil {
					t.Fatal(err)
				}
			}
			l := mustOpenLog(t, dir, 64<<10, 0)
			defer l.Close()
			if last := mustIndex(t, l.LastIndex); last != tc.want {
				t.Fatalf("the log that opened ends at %d, want %d", last, tc.want)
			}
			for _, name := range []string{walNewDir, walOldDir} {
				if _, err := os.Stat(filepath.Join(dir, name)); !os.IsNotExist(err) {
					t.Errorf("%s is left after opening (%v)", name, err)
				}
			}
		})
	}
}

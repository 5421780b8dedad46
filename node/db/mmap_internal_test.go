package db

import (
	"path/filepath"
	"testing"
)

// TestReadsMapTheFile checks that read connections read the file through a memory map, and that
// the read-write connection does not: with the default, a List that looks labels up all over a
// large database copies every page it touches through a system call.
func TestReadsMapTheFile(t *testing.T) {
	d, err := Open(filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	// SQLite caps the size at its compile-time limit; any size above zero maps.
	var ro, rw int64
	if err := d.ro.QueryRow(`PRAGMA mmap_size`).Scan(&ro); err != nil {
		t.Fatal(err)
	}
	if err := d.rw.QueryRow(`PRAGMA mmap_size`).Scan(&rw); err != nil {
		t.Fatal(err)
	}
	t.Logf("read connections map up to %d bytes", ro)
	if ro <= 0 {
		t.Errorf("read connections: mmap_size %d, want the file mapped", ro)
	}
	if rw != 0 {
		t.Errorf("read-write connection: mmap_size %d, want 0 (mapping slowed the write path)", rw)
	}
}

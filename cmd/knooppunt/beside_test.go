package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBesideFile: until commit, the target's name holds nothing (or what it held); a discarded
// file leaves nothing behind; a committed one is the target, mode 0600.
func TestBesideFile(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "backup.db")
	if err := os.WriteFile(target, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := createBeside(target)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("half")
	f.discard()
	if b, _ := os.ReadFile(target); string(b) != "old" {
		t.Errorf("after a discard the target holds %q, want what it held", b)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("a discarded file was left behind: %v", entries)
	}

	f, err = createBeside(target)
	if err != nil {
		t.Fatal(err)
	}
	defer f.discard()
	f.WriteString("whole")
	if b, _ := os.ReadFile(target); string(b) != "old" {
		t.Errorf("before the commit the target holds %q", b)
	}
	if err := f.commit(); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(target)
	if b, _ := os.ReadFile(target); string(b) != "whole" || err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("after the commit the target holds %q (%v, %v), want whole with mode 0600", b, info, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("the commit left another file: %v", entries)
	}
}

// TestBesideFileErrorNamesTheTarget: a file that cannot be made is said of the name asked for,
// not of the hidden one it is written under first.
func TestBesideFileErrorNamesTheTarget(t *testing.T) {
	target := filepath.Join(t.TempDir(), "nodir", "x.db")
	_, err := createBeside(target)
	if err == nil || !strings.HasPrefix(err.Error(), target+": no such file or directory (in ") || strings.Contains(err.Error(), ".x.db.") {
		t.Fatalf("createBeside in a directory that does not exist: %v", err)
	}
}

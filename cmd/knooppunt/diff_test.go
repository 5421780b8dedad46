package main

import (
	"slices"
	"strings"
	"testing"
)

// TestDiffLines: a changed line reads old, then new, so that a ceiling raised from internal to
// confidential is read as such; kept lines stay, in order.
func TestDiffLines(t *testing.T) {
	a := []string{"name: p", "max_classification: internal", "kinds: [sitrep]"}
	b := []string{"name: p", "max_classification: confidential", "kinds: [sitrep]", "purpose: x"}
	got := strings.Join(diffLines(a, b), "\n")
	want := " name: p\n-max_classification: internal\n+max_classification: confidential\n kinds: [sitrep]\n+purpose: x"
	if got != want {
		t.Errorf("diffLines:\n%s\nwant:\n%s", got, want)
	}
	if d := diffLines(a, a); slices.ContainsFunc(d, func(l string) bool { return l[0] != ' ' }) {
		t.Errorf("a document against itself: %q", d)
	}
}

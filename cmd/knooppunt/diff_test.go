package main

import (
	"os"
	"path/filepath"
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

// TestPolicyDiffExitCodes: policy diff exits as diff(1) does, so that a pipeline can tell a
// stored policy that drifted from its repository (1) from one that did not (0) and from a
// comparison that could not be made (2).
func TestPolicyDiffExitCodes(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml")
	if err := os.WriteFile(a, []byte("name: p\nmax_classification: internal\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(b, []byte("name: p\nmax_classification: confidential\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := cli(t, nil, "", "policy", "diff", a, a).want(t, 0); !strings.Contains(r.stdout, "are the same document") {
		t.Errorf("the same file twice: %q", r.stdout)
	}
	if r := cli(t, nil, "", "policy", "diff", a, b).want(t, 1); !strings.Contains(r.stdout, "-max_classification: internal\n+max_classification: confidential") {
		t.Errorf("two versions: %q", r.stdout)
	}
	// No node answers on this socket: the stored policy cannot be read.
	r := cli(t, nil, "", "policy", "diff", a, "p@1", "--node", "unix://"+filepath.Join(dir, "none.sock")).want(t, 2)
	if !strings.HasPrefix(r.stderr, "knooppunt: ") || r.stdout != "" {
		t.Errorf("no node: stdout %q, stderr %q", r.stdout, r.stderr)
	}
}

package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestNodeStatesNamesWhatFailed: when the demo fails after the nodes started, its error must say
// which node exited, with the end of its log, and which running node logged errors.
func TestNodeStatesNamesWhatFailed(t *testing.T) {
	mk := func(name, log string, exited error) *demoOrg {
		o := &demoOrg{name: name, dir: t.TempDir(), done: make(chan struct{})}
		if err := os.WriteFile(filepath.Join(o.dir, "node.log"), []byte(log), 0o600); err != nil {
			t.Fatal(err)
		}
		if exited != nil {
			o.exitErr = exited
			close(o.done)
		}
		return o
	}
	var long strings.Builder
	for i := range 30 {
		long.WriteString("line " + string(rune('a'+i%26)) + "\n")
	}
	long.WriteString("panic: the last words\n")
	got := nodeStates([]*demoOrg{
		mk("lcvs", long.String(), errors.New("exit status 2")),
		mk("ncc", "level=INFO msg=fine\nlevel=ERROR msg=\"peer down\"\nlevel=INFO msg=fine\n", nil),
		mk("szw", "level=INFO msg=fine\n", nil),
	})
	for _, want := range []string{
		"lcvs: the node exited (exit status 2); the end of ",
		"  panic: the last words",
		"ncc: running; the last errors in ",
		`  level=ERROR msg="peer down"`,
		"szw: running, no errors in ",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("nodeStates does not say %q:\n%s", want, got)
		}
	}
	if n := strings.Count(got, "\n  line "); n > 19 {
		t.Errorf("nodeStates shows %d lines of the exited node's log, want its last 20 only:\n%s", n+1, got)
	}
}

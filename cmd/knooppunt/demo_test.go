package main

import (
	"errors"
	"fmt"
	"net"
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

// TestDemoPortsAvoidTheEphemeralRange: the demo's ports come from below the kernel's ephemeral
// range, which other programs' connections and port-0 listeners draw from, are free when picked,
// and are never handed out twice; a range that cannot be read leaves the choice to the kernel.
func TestDemoPortsAvoidTheEphemeralRange(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, c := range []struct {
		body string
		lo   int
		ok   bool
	}{{"32768\t60999\n", 32768, true}, {"1024 65535", 1024, true}, {"", 0, false}, {"x 60999", 0, false}, {"70000 80000", 0, false}} {
		if lo, ok := ephemeralLow(write("range", c.body)); lo != c.lo || ok != c.ok {
			t.Errorf("ephemeralLow(%q) = %d, %v; want %d, %v", c.body, lo, ok, c.lo, c.ok)
		}
	}
	if _, ok := ephemeralLow(filepath.Join(dir, "missing")); ok {
		t.Error("ephemeralLow of a missing file reports a range")
	}

	lo, ok := ephemeralLow(portRangeFile)
	if !ok || lo <= lowestDemoPort {
		t.Skipf("this kernel's ephemeral range (%s) leaves no room below it", portRangeFile)
	}
	// Ports are never handed out twice: with the range narrowed to 20 ports free now, 20 picks
	// take each of them.
	window := map[int]bool{}
	for p := lowestDemoPort; p < lo && len(window) < 20; p++ {
		if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p)); err == nil {
			l.Close()
			window[p] = true
		}
	}
	if len(window) < 20 {
		t.Skipf("fewer than 20 free ports below %d", lo)
	}
	ps := ports{}
	for p := lowestDemoPort; p < lo; p++ {
		if !window[p] {
			ps[p] = true
		}
	}
	for range 20 {
		p, err := ps.free()
		if err != nil {
			t.Fatal(err)
		}
		if !window[p] {
			t.Fatalf("ports.free() = %d, want one of the 20 left free below %d", p, lo)
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			t.Fatalf("port %d from ports.free is not free: %v", p, err)
		}
		l.Close()
	}
	if len(ps) != lo-lowestDemoPort {
		t.Fatalf("%d ports handed out or reserved, want %d: a port was handed out twice", len(ps), lo-lowestDemoPort)
	}
}

// TestDemoDirHelpSaysNew: the help of demo --dir asks for a new directory, as the demo refuses
// one a demo used.
func TestDemoDirHelpSaysNew(t *testing.T) {
	usage := newDemoCmd().Flags().Lookup("dir").Usage
	if !strings.HasPrefix(usage, "a new directory") {
		t.Errorf("demo --dir: %q, want it to ask for a new directory", usage)
	}
}

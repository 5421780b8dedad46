package proctest

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) { Main(m) }

func TestEnvDropsWhatPicksANode(t *testing.T) {
	t.Setenv("KNOOPPUNT_NODE", "unix:///somewhere/knooppunt.sock")
	t.Setenv("SPIFFE_ENDPOINT_SOCKET", "unix:///run/agent.sock")
	t.Setenv("GORACE", "halt_on_error=1")
	env := Env("EXTRA=1")
	for _, kv := range env {
		if strings.HasPrefix(kv, "KNOOPPUNT_NODE=") || strings.HasPrefix(kv, "SPIFFE_ENDPOINT_SOCKET=") {
			t.Errorf("Env keeps %s", kv)
		}
	}
	if !slices.Contains(env, "GORACE=halt_on_error=1 atexit_sleep_ms=20") {
		t.Errorf("Env does not keep the caller's GORACE options and add the short exit sleep: %v", env)
	}
	if env[len(env)-1] != "EXTRA=1" {
		t.Errorf("Env ends in %q, want the extra variable", env[len(env)-1])
	}
}

// TestProcessExitCodes runs the real binary: a usage error exits non-zero with its message in
// Out, help exits 0.
func TestProcessExitCodes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the knooppunt binary")
	}
	bad := Start(t, nil, "no-such-command")
	if code := bad.ExitCode(t, time.Minute); code == 0 {
		t.Fatalf("an unknown command exited 0; output:\n%s", bad.Out.String())
	}
	if !strings.Contains(bad.Out.String(), "no-such-command") {
		t.Errorf("the error does not name the unknown command:\n%s", bad.Out.String())
	}
	var log Buffer
	help := Start(t, &log, "--help")
	if code := help.ExitCode(t, time.Minute); code != 0 {
		t.Fatalf("--help exited %d; output:\n%s", code, help.Out.String())
	}
	if log.String() == "" || log.String() != help.Out.String() {
		t.Errorf("the log writer got %d bytes, Out %d: want the same output in both", len(log.String()), len(help.Out.String()))
	}
}

// TestTermStopsAServingNode stops `knooppunt serve` with SIGTERM and requires a clean exit.
func TestTermStopsAServingNode(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the knooppunt binary")
	}
	p := Start(t, nil, "serve", "--data-dir", t.TempDir(), "--log-level", "info")
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(p.Out.String(), "node serving") {
		if p.Exited() || time.Now().After(deadline) {
			t.Fatalf("the node did not log that it serves; output:\n%s", p.Out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := p.Term(t, 30*time.Second); err != nil {
		t.Fatalf("exit after SIGTERM: %v; output:\n%s", err, p.Out.String())
	}
	if !strings.Contains(p.Out.String(), "node stopped") {
		t.Errorf("the node did not log a clean stop; output:\n%s", p.Out.String())
	}
}

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/knooppunt/knooppunt/node/proctest"
)

// TestServeEmptyDataDir: serve --data-dir "" names the flag and what to give.
func TestServeEmptyDataDir(t *testing.T) {
	r := cli(t, nil, "", "serve", "--data-dir", "").want(t, 1)
	if !strings.HasPrefix(r.stderr, "knooppunt: --data-dir: empty: name the node's data directory") {
		t.Errorf("serve --data-dir \"\": %q", r.stderr)
	}
}

// TestServeSaysItWaitsForTheWorkloadAPI: a node whose Workload API socket is not there says so
// at once, naming the socket, rather than waiting half a minute in silence.
func TestServeSaysItWaitsForTheWorkloadAPI(t *testing.T) {
	dir := shortDir(t)
	sock := filepath.Join(dir, "agent", "api.sock")
	cfg := filepath.Join(dir, "node.yaml")
	if err := os.WriteFile(cfg, []byte("org: vr-test.crisis.test\nlisten: "+freeAddrs(t, 1)[0]+"\nmetrics_addr: \"\"\nidentity: {source: workloadapi, workload_api: unix://"+sock+"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := proctest.Start(t, nil, "serve", "--data-dir", filepath.Join(dir, "data"), "--config", cfg, "--log-level", "warn")
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.Out.String(), "no Workload API socket yet") {
		if p.Exited() || time.Now().After(deadline) {
			t.Fatalf("serve with no Workload API socket said nothing within 10s (exited: %v):\n%s", p.Exited(), p.Out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if out := p.Out.String(); !strings.Contains(out, "socket="+sock) {
		t.Errorf("the warning does not name the socket %s:\n%s", sock, out)
	}
	p.Kill(t)
}

package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/knooppunt/knooppunt/node"
	"github.com/knooppunt/knooppunt/node/proctest"
)

// TestHealthCommand: `knooppunt health` is the probe a supervisor runs. A replica whose group has
// a leader serves and is live (exit 0). A replica that knows no leader, here one waiting to be
// joined, does not serve (exit 1, for a readiness probe) but is live (exit 0, for a liveness
// probe that must not kill the survivors of a lost majority).
func TestHealthCommand(t *testing.T) {
	dir := t.TempDir()
	serveNode(t, dir)
	sock := "unix://" + filepath.Join(dir, "data", node.SocketName)
	if out := cli(t, nil, "", "health", "--node", sock).want(t, 0).stdout; out != "serving: SERVING\n" {
		t.Errorf("health said %q", out)
	}
	var doc struct {
		Check, Status string
		OK            bool
	}
	cli(t, nil, "", "health", "--live", "--node", sock, "-o", "json").want(t, 0).oneJSON(t, &doc)
	if doc.Check != "live" || doc.Status != "SERVING" || !doc.OK {
		t.Errorf("health --live -o json: %+v", doc)
	}
	// A node that does not answer at all still gives the probe's script its one document, with
	// the error as every command's -o json says it on standard error, which says it too.
	var down struct {
		Status string
		Error  errorBody
		OK     bool
	}
	r := cli(t, nil, "", "health", "--live", "--node", "unix://"+filepath.Join(dir, "none.sock"), "-o", "json").want(t, 1)
	r.oneJSON(t, &down)
	if down.Status != "UNREACHABLE" || down.OK || down.Error.Code != "UNAVAILABLE" || !strings.Contains(down.Error.Message, "cannot reach the node") {
		t.Errorf("health --live -o json of no node: %+v", down)
	}
	if got := oneError(t, r.stderr); got != down.Error {
		t.Errorf("health --live -o json of no node: stderr %+v, want the document's error %+v", got, down.Error)
	}

	// The Kubernetes probes are these commands, on the pod's socket.
	probes := kubernetesProbes(t)
	for _, probe := range []string{"startupProbe", "readinessProbe", "livenessProbe"} {
		cli(t, nil, "", onSocket(t, probes[probe], sock)...).want(t, 0)
	}

	// A replica waiting to be joined knows no leader, and says so from its first answer: with
	// an election timeout of 20s, a grace of two election timeouts at start would have it ready
	// for 40s before it knew a leader.
	alone := t.TempDir()
	cfg := filepath.Join(alone, "node.yaml")
	if err := os.WriteFile(cfg, []byte("raft:\n  bootstrap: false\n  election_timeout: 20s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := proctest.Start(t, nil, "serve", "--data-dir", filepath.Join(alone, "data"), "--config", cfg, "--log-level", "warn")
	lonely := "unix://" + filepath.Join(alone, "data", node.SocketName)
	var last result
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-p.Done():
			t.Fatalf("the replica waiting to be joined exited:\n%s", p.Out.String())
		default:
		}
		if last = cli(t, nil, "", "health", "--node", lonely, "--timeout", "1s"); strings.HasPrefix(last.stdout, "serving: ") {
			if last.code != 1 || last.stdout != "serving: NOT_SERVING\n" {
				t.Fatalf("the first health answer of a replica with no leader: exit %d, %q %q", last.code, last.stdout, last.stderr)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("health of a replica with no leader: exit %d, %q %q", last.code, last.stdout, last.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(last.stderr, "knows no leader") {
		t.Errorf("health without a leader says nothing of why: %q", last.stderr)
	}
	notServing := cli(t, nil, "", "health", "--node", lonely, "--timeout", "1s", "-o", "json").want(t, 1)
	if got := oneError(t, notServing.stderr); got.Code != "UNAVAILABLE" || !strings.Contains(got.Message, "knows no leader") || !strings.Contains(notServing.stdout, `"status": "NOT_SERVING"`) {
		t.Errorf("health -o json without a leader: stdout %q, error %+v", notServing.stdout, got)
	}
	if out := cli(t, nil, "", "health", "--live", "--node", lonely).want(t, 0).stdout; out != "live: SERVING\n" {
		t.Errorf("health --live of a replica with no leader said %q", out)
	}
	// Kubernetes keeps it (startup, liveness) but sends it no clients (readiness).
	cli(t, nil, "", onSocket(t, probes["startupProbe"], lonely)...).want(t, 0)
	cli(t, nil, "", onSocket(t, probes["livenessProbe"], lonely)...).want(t, 0)
	cli(t, nil, "", onSocket(t, probes["readinessProbe"], lonely)...).want(t, 1)

	// No node there, and a bad timeout, are errors that say what to fix.
	none := cli(t, nil, "", "health", "--node", "unix://"+filepath.Join(t.TempDir(), node.SocketName), "--timeout", "1s")
	if none.code != 1 || !strings.Contains(none.stderr, "is `knooppunt serve` running?") {
		t.Errorf("health with no node: exit %d, %q", none.code, none.stderr)
	}
	if r := cli(t, nil, "", "health", "--node", sock, "--timeout", "0s"); r.code != 1 || !strings.Contains(r.stderr, "--timeout 0s") {
		t.Errorf("health --timeout 0s: exit %d, %q", r.code, r.stderr)
	}
}

// kubernetesProbes are the commands of the probes of deploy/kubernetes/statefulset.yaml, by probe.
func kubernetesProbes(t *testing.T) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "kubernetes", "statefulset.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	type probe struct {
		Exec struct{ Command []string }
	}
	var sts struct {
		Spec struct {
			Template struct {
				Spec struct {
					Containers []struct {
						Startup   probe `yaml:"startupProbe"`
						Readiness probe `yaml:"readinessProbe"`
						Liveness  probe `yaml:"livenessProbe"`
					}
				}
			}
		}
	}
	if err := yaml.Unmarshal(b, &sts); err != nil {
		t.Fatal(err)
	}
	c := sts.Spec.Template.Spec.Containers[0]
	probes := map[string][]string{
		"startupProbe": c.Startup.Exec.Command, "readinessProbe": c.Readiness.Exec.Command, "livenessProbe": c.Liveness.Exec.Command,
	}
	return probes
}

// onSocket is a probe's command, without the program's name, with its --node set to sock.
func onSocket(t *testing.T, command []string, sock string) []string {
	t.Helper()
	if len(command) < 2 || command[0] != "knooppunt" {
		t.Fatalf("probe command %q: want knooppunt health", command)
	}
	args := slices.Clone(command[1:])
	for i, a := range args {
		if strings.HasPrefix(a, "--node=") {
			args[i] = "--node=" + sock
			return args
		}
	}
	t.Fatalf("probe command %q names no --node", command)
	return nil
}

package federation_test

// The tests of this file run a federation of four organisations with every node in its own
// `knooppunt serve` process, and the demo federation of `knooppunt demo --once`. The binary is
// built once, with the race detector when the tests run with it, so that a race in a real node
// fails the test that saw it.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/knooppunt/knooppunt/federation/fedtest"
	"github.com/knooppunt/knooppunt/node/proctest"
)

func TestMain(m *testing.M) { proctest.Main(m) }

// procs runs the orgs' nodes as processes. Their lifetime is the test's that made procs, also
// when a subtest restarts one.
type procs struct {
	t   *testing.T
	bin string
	f   *fedtest.Federation

	mu      sync.Mutex
	running map[string]*nodeProc
}

type nodeProc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func startProcs(t *testing.T, f *fedtest.Federation) *procs {
	ps := &procs{t: t, bin: proctest.Binary(t), f: f, running: map[string]*nodeProc{}}
	t.Cleanup(func() { ps.stopAll(f) })
	for _, o := range f.Orgs {
		ps.launch(t, o)
	}
	for _, o := range f.Orgs {
		ps.waitServing(t, o)
	}
	waitConnected(t, f)
	return ps
}

// waitConnected waits until every org's subscription to every other org is up. The nodes start
// one after another, so the first dials between them are refused; until the connection retries,
// a search would rightly call such a peer unreachable.
func waitConnected(t *testing.T, f *fedtest.Federation) {
	t.Helper()
	fedtest.Eventually(t, 30*time.Second, "every org subscribes to every other", func() (bool, string) {
		var down []string
		for _, o := range f.Orgs {
			for _, p := range f.Orgs {
				if p != o && o.Metric(t, "knooppunt_federation_subscription_up", map[string]string{"peer": p.Name}) != 1 {
					down = append(down, o.Name+"→"+p.Name)
				}
			}
		}
		return len(down) == 0, "down: " + strings.Join(down, " ")
	})
}

func (ps *procs) launch(t *testing.T, o *fedtest.Org) {
	t.Helper()
	logf, err := os.OpenFile(filepath.Join(o.Dir, "node.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	p := &nodeProc{cmd: exec.Command(ps.bin, "serve", "--data-dir", o.DataDir(), "--config", o.ConfigFile(), "--log-level", "info"),
		done: make(chan struct{})}
	p.cmd.Env = proctest.Env()
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	ps.mu.Lock()
	ps.running[o.Name] = p
	ps.mu.Unlock()
}

// waitServing waits, bounded, until the org's node answers a health check on its socket; it
// gives up at once when the process exits.
func (ps *procs) waitServing(t *testing.T, o *fedtest.Org) {
	t.Helper()
	ps.mu.Lock()
	p := ps.running[o.Name]
	ps.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	go func() {
		select {
		case <-p.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	if _, err := healthpb.NewHealthClient(o.Local(t)).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true)); err != nil {
		t.Fatalf("%s is not serving: %v\n%s", o.Name, err, logTail(o))
	}
}

func (ps *procs) kill(t *testing.T, o *fedtest.Org) {
	t.Helper()
	ps.mu.Lock()
	p := ps.running[o.Name]
	delete(ps.running, o.Name)
	ps.mu.Unlock()
	p.cmd.Process.Kill()
	<-p.done
	// The others learn of it from their broken connections, each in its own time: until they
	// have, a stream to the killed node may still take a change (and its node count it as
	// disclosed). Return once every running node's own subscription to it is down, as after a
	// real crash a node notices before it writes again.
	fedtest.Eventually(t, 10*time.Second, "the others see "+o.Name+" gone", func() (bool, string) {
		var up []string
		for _, other := range ps.f.Orgs {
			ps.mu.Lock()
			_, running := ps.running[other.Name]
			ps.mu.Unlock()
			if running && other.Metric(t, "knooppunt_federation_subscription_up", map[string]string{"peer": o.Name}) != 0 {
				up = append(up, other.Name)
			}
		}
		return len(up) == 0, "still subscribed: " + strings.Join(up, " ")
	})
}

func (ps *procs) restart(t *testing.T, o *fedtest.Org) {
	t.Helper()
	ps.launch(t, o)
	ps.waitServing(t, o)
}

func (ps *procs) freshMetrics() bool { return true }

// stopAll stops every node with SIGTERM, as an operator would, and fails the test if a node
// does not stop within 20s or the race detector reported in any node's log.
func (ps *procs) stopAll(f *fedtest.Federation) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for _, p := range ps.running {
		p.cmd.Process.Signal(syscall.SIGTERM)
	}
	for name, p := range ps.running {
		select {
		case <-p.done:
		case <-time.After(20 * time.Second):
			ps.t.Errorf("%s did not stop within 20s of SIGTERM", name)
			p.cmd.Process.Kill()
			<-p.done
		}
	}
	for _, o := range f.Orgs {
		log := logOf(o)
		if proctest.Raced(log) || strings.Contains(log, "panic:") {
			ps.t.Errorf("node %s reported a race or panicked:\n%s", o.Name, log)
		} else if ps.t.Failed() {
			ps.t.Logf("log of %s:\n%s", o.Name, logTail(o))
		}
	}
}

func logOf(o *fedtest.Org) string {
	b, _ := os.ReadFile(filepath.Join(o.Dir, "node.log"))
	return string(b)
}

func logTail(o *fedtest.Org) string {
	log := logOf(o)
	if len(log) > 4000 {
		log = "..." + log[len(log)-4000:]
	}
	return log
}

// TestProcessFederation runs the scenarios of the in-process tests against four node processes:
// the life of a shared record (grant, update, revoke, delete, reclassify, phase), and a peer
// that is killed with SIGKILL and restarted, then a subscriber that is.
func TestProcessFederation(t *testing.T) {
	if testing.Short() {
		t.Skip("starts four node processes")
	}
	f := fedtest.Prepare(t, fedtest.Options{Metrics: true, Reevaluate: 10 * time.Minute})
	ps := startProcs(t, f)
	lifecycle(t, f)
	killAndRestart(t, f, ps)
}

// TestDemoOnce runs `knooppunt demo --once`: it must exit 0, show that of the six organisations
// only VR Utrecht holds NCC's confidential record, and play early warning through to VR Utrecht's
// endorsement of NCC's assessment.
func TestDemoOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("starts six node processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := fedtest.ShortDir(t)
	cmd := exec.CommandContext(ctx, proctest.Binary(t), "demo", "--once", "--dir", dir)
	cmd.Env = proctest.Env()
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		// The directory goes with the test: say what the nodes logged while it is there.
		logs, _ := filepath.Glob(filepath.Join(dir, "*", "node.log"))
		for _, l := range logs {
			if b, err := os.ReadFile(l); err == nil {
				fmt.Fprintf(&out, "\n--- %s (its last 4 kB):\n%s", l, b[max(0, len(b)-4096):])
			}
		}
		t.Fatalf("knooppunt demo --once: %v\n%s", err, out.String())
	}
	// The picture as VR Utrecht sees it marks the confidential record it holds.
	_, fromUtrecht, _ := strings.Cut(out.String(), "=== The picture as seen from VR Utrecht")
	fromUtrecht, _, _ = strings.Cut(fromUtrecht, "\n=== ")
	if !strings.Contains(fromUtrecht, " CONFIDENTIAL ") {
		t.Errorf("VR Utrecht's picture does not mark the confidential record it holds:\n%s", fromUtrecht)
	}
	_, where, ok := strings.Cut(out.String(), "=== Where did the confidential record")
	if !ok {
		t.Fatalf("demo did not say where the confidential record went:\n%s", out.String())
	}
	holds := map[string]string{}
	for _, line := range strings.Split(where, "\n")[1:] {
		for _, verdict := range []string{"HOLDS it", "does not hold it", "is its origin"} {
			if org, ok := strings.CutSuffix(strings.TrimSpace(line), verdict); ok {
				holds[strings.TrimSpace(org)] = verdict
			}
		}
	}
	want := map[string]string{
		"NCC (JenV)": "is its origin", "VR Utrecht": "HOLDS it",
		"LCVS": "does not hold it", "VR Zeeland": "does not hold it", "GGD GHOR": "does not hold it", "SZW": "does not hold it",
	}
	if fmt.Sprint(holds) != fmt.Sprint(want) {
		t.Fatalf("where the confidential record went: %v, want %v\n%s", holds, want, out.String())
	}
	// Early warning: VR Zeeland's rule fired on LCVS's beds, NCC saw the alert and published an
	// assessment of the picture as it showed it, and VR Utrecht's endorsement reached NCC.
	_, warn, ok := strings.Cut(out.String(), "=== Early warning")
	if !ok {
		t.Fatalf("the demo did not play early warning:\n%s", out.String())
	}
	for _, want := range []string{"VR Zeeland   the rule fired: alert alert-zeeland-beds-low-VR19-", "NCC          its picture shows the alert",
		"published its assessment assessment-oekraine version 1", "Assessment assessment-oekraine of ncc.crisis.test, version 1",
		"The picture is the one it interprets", "Endorsed by: vr-utrecht.crisis.test"} {
		if !strings.Contains(warn, want) {
			t.Errorf("the demo's early warning does not say %q:\n%s", want, warn)
		}
	}
	if proctest.Raced(out.String()) {
		t.Fatalf("the race detector reported in the demo:\n%s", out.String())
	}
}

package spiretest

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/workloadapi"

	"github.com/knooppunt/knooppunt/node/proctest"
)

// TestSPIREOnboarding: two organisations whose SPIRE servers know nothing of each other (no
// SPIRE federation, no bundle handed over by hand) come to trust each other with `knooppunt
// init --spire`, `peer invite` and `peer accept` alone. Each node's SVID comes from its own SPIRE
// agent and rotates every 10 to 15 seconds meanwhile; the invitations carry the SPIRE trust
// bundles. Both subscriptions come up.
func TestSPIREOnboarding(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two SPIRE servers, two agents and two node processes")
	}
	h := newHarness(t, spireBinaries(t))
	exeC := h.buildKnooppunt()
	type org struct {
		td, name, agent, dataDir, metrics string
		s                                 *spireServer
	}
	orgs := []*org{{td: "vr-brabant-noord.crisis.test", name: "VR Brabant-Noord"}, {td: nccTD, name: "NCC"}}
	for _, o := range orgs {
		o.s = h.newServer(o.td)
		o.s.run()
		o.agent = o.s.startAgent("h1")
		o.s.cli("entry", "create", "-parentID", o.s.id("host/h1").String(), "-spiffeID", o.s.id("node/r1").String(),
			"-selector", fmt.Sprintf("unix:uid:%d", os.Getuid()), "-x509SVIDTTL", fmt.Sprint(svidTTL))
	}
	exe := <-exeC
	if exe == "" {
		t.FailNow()
	}
	run := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, exe, args...)
		cmd.Env = proctest.Env()
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("knooppunt %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	sock := func(o *org) string { return "unix://" + filepath.Join(o.dataDir, "knooppunt.sock") }
	for _, o := range orgs {
		h.waitFor(30*time.Second, "the agent of "+o.td+" serves the node's SVID", func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			x, err := workloadapi.FetchX509Context(ctx, workloadapi.WithAddr("unix://"+o.agent))
			if err != nil {
				return err
			}
			if x.DefaultSVID().ID != o.s.id("node/r1") {
				return fmt.Errorf("the agent serves %s", x.DefaultSVID().ID)
			}
			return nil
		})
		o.dataDir, o.metrics = filepath.Join(o.s.dir, "kp"), h.addr()
		out := run("init", "--org", o.td, "--name", o.name, "--spire", "unix://"+o.agent, "--data-dir", o.dataDir,
			"--host", "127.0.0.1", "--listen", h.addr(), "--bundle-listen", h.addr(), "--metrics-addr", o.metrics, "--admin", "ops")
		if !strings.Contains(out, "spire-server entry create -spiffeID spiffe://"+o.td+"/node/r1") {
			t.Fatalf("init --spire did not name the SPIRE entry to create:\n%s", out)
		}
		h.start("knooppunt "+o.td, filepath.Join(o.s.dir, "node.log"), true, exe, "serve", "--data-dir", o.dataDir,
			"--config", filepath.Join(o.dataDir, "node.yaml"))
		h.waitFor(30*time.Second, o.td+" serves", func() error {
			cmd := exec.Command(exe, "status", "--node", sock(o))
			cmd.Env = proctest.Env()
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			return nil
		})
	}
	vrbn, ncc := orgs[0], orgs[1]

	work := t.TempDir()
	invitation, answer := filepath.Join(work, "ncc.json"), filepath.Join(work, "answer.json")
	run("peer", "invite", "--node", sock(ncc), "-o", invitation)
	run("peer", "accept", invitation, "--yes", "--node", sock(vrbn), "--answer", answer)
	run("peer", "accept", answer, "--yes", "--groups", "veiligheidsregios", "--node", sock(ncc))

	for _, c := range []struct {
		o    *org
		peer string
	}{{vrbn, "ncc"}, {ncc, "vr-brabant-noord"}} {
		h.waitFor(60*time.Second, c.o.td+"'s subscription to "+c.peer+" is up", func() error {
			v, err := metric(c.o.metrics, "knooppunt_federation_subscription_up", `peer="`+c.peer+`"`)
			if err != nil {
				return err
			}
			if v != "1" {
				return fmt.Errorf("knooppunt_federation_subscription_up is %s", v)
			}
			return nil
		})
	}
}

// metric reads one sample from the /metrics of a node.
func metric(addr, name, labels string) (string, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+"{"+labels+"} "); ok {
			return v, nil
		}
	}
	return "", fmt.Errorf("no %s{%s} in /metrics", name, labels)
}

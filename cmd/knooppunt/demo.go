package main

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/knooppunt/knooppunt/federation/identity"
	"github.com/knooppunt/knooppunt/node/record"
	"github.com/knooppunt/knooppunt/node/record/importfile"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

//go:embed scenario/oekraine.jsonl
var oekraineScenario []byte

// demoOrg is one organisation of the demo federation.
type demoOrg struct {
	name, title, td string
	// orgName is what its partners' web interfaces call the org (its peers' org_name).
	orgName      string
	groups       []string
	dir          string
	port, bePort int
	// uiPort is the web interface's, opPort the demo OpenID provider's; secret is the web
	// interface's client secret there. restPort is the REST API's.
	uiPort, opPort, restPort int
	secret                   string
	cmd                      *exec.Cmd
	done                     chan struct{} // closed when the node's process has exited
	exitErr                  error         // what waiting for it returned, once done is closed
}

func demoOrgs() []*demoOrg {
	return []*demoOrg{
		{name: "ncc", title: "NCC (JenV)", orgName: "NCC", td: "ncc.crisis.test", groups: []string{"rijk"}},
		{name: "lcvs", title: "LCVS", orgName: "LCVS", td: "lcvs.crisis.test", groups: []string{"partners"}},
		{name: "vr-utrecht", title: "VR Utrecht", orgName: "VR Utrecht", td: "vr-utrecht.crisis.test", groups: []string{"veiligheidsregios"}},
		{name: "vr-zeeland", title: "VR Zeeland", orgName: "VR Zeeland", td: "vr-zeeland.crisis.test", groups: []string{"veiligheidsregios"}},
		{name: "ggdghor", title: "GGD GHOR", orgName: "GGD GHOR Nederland", td: "ggdghor.crisis.test", groups: []string{"partners"}},
		{name: "szw", title: "SZW", orgName: "SZW", td: "szw.crisis.test", groups: []string{"rijk"}},
	}
}

func newDemoCmd() *cobra.Command {
	var (
		dir  string
		once bool
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the demo federation: six organisations and the Ukraine reception scenario",
		Long: `Start six organisations as separate node processes on loopback: NCC (JenV), LCVS, VR Utrecht,
VR Zeeland, GGD GHOR and SZW. Each has its own trust domain and development CA, and they keep each
other's trust bundles current through their bundle endpoints. The demo then:

  1. loads the Ukraine refugee reception scenario: shelter capacity per municipality (LCVS),
     situation reports (NCC, the regions), Q&As and guidance (GGD GHOR, one Q&A superseded),
     work-permit guidance and rules (SZW), and one confidential record (NCC, for VR Utrecht only);
  2. has two officers per organisation propose and approve the scenario's policies;
  3. prints the picture as seen from VR Utrecht and from NCC;
  4. searches the federation's texts from VR Utrecht (search --text vergunning), fetches GGD
     GHOR's guidance, a PDF, and finds it by a word only the PDF holds, and reads VR Utrecht's
     picture over its REST API as a system of its own would (mutual TLS; it prints the curl line);
  5. shows that the confidential record reached only its recipient;
  6. plays early warning: VR Zeeland applies a rule (free beds in Zeeland under 5%), LCVS lowers
     free beds in Zeeland step by step, the rule fires, NCC's picture shows VR Zeeland's alert,
     NCC publishes its assessment of the picture, and VR Utrecht endorses it;
  7. runs a short exercise beside the real crisis: VR Zeeland and NCC start oefening-zeeland,
     VR Zeeland shares exercise sitreps with NCC under a policy with statuses: [exercise], the
     real picture stays untouched, and closing the exercise removes its records at NCC too;
  8. stays up and prints how to try commands against it, and each organisation's web interface
     with its sign-ins: a small OpenID provider inside the demo, on loopback only, holds each
     organisation's people (a staff member who reads, an editor, two officers and the node's
     administrator). Ctrl-C stops everything cleanly, and exits 0.

Ctrl-C before the scenario is done stops the federation too, and exits 130; a second Ctrl-C
kills the nodes rather than waiting for them to stop. The shelter figures are made up. With
--once it prints and exits 0.`,
		Example: `  knooppunt demo
  knooppunt demo --once`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				d, err := os.MkdirTemp("", "kpdemo-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(d)
				dir = d
			}
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			return runDemo(cmd.Context(), cmd.OutOrStdout(), exe, dir, once)
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "a new directory to keep the demo's CAs, configs and data in, after the demo too; one a demo used is refused (default: a temporary directory, removed at the end)")
	cmd.Flags().BoolVar(&once, "once", false, "print the pictures and exit")
	return cmd
}

// ports hands out loopback ports for the demo's nodes, each free when picked and none twice: a
// port is closed again once checked, so the kernel could offer it again.
type ports map[int]bool

// free returns a port that is free now, for a node to bind a moment later. It picks one below
// the kernel's range of ephemeral ports when it can read that range: outgoing connections and
// every listener on port 0 draw from that range, and one of them taking the port in that moment
// would stop the node.
func (ps ports) free() (int, error) {
	if lo, ok := ephemeralLow(portRangeFile); ok && lo > lowestDemoPort {
		n := lo - lowestDemoPort
		start := rand.IntN(n)
		for i := range n {
			if p := lowestDemoPort + (start+i)%n; ps.take(p) {
				return p, nil
			}
		}
	}
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !ps[p] {
			ps[p] = true
			return p, nil
		}
	}
	return 0, errors.New("no free loopback port found")
}

// take claims p if it was not handed out before and is free now.
func (ps ports) take(p int) bool {
	if ps[p] {
		return false
	}
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
	if err != nil {
		return false
	}
	l.Close()
	ps[p] = true
	return true
}

// lowestDemoPort is the lowest port the demo picks, above the well-known and most registered
// ports.
const lowestDemoPort = 20000

const portRangeFile = "/proc/sys/net/ipv4/ip_local_port_range"

// ephemeralLow reads the lowest ephemeral port from a file like portRangeFile ("32768	60999").
func ephemeralLow(path string) (int, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, false
	}
	lo, err := strconv.Atoi(f[0])
	if err != nil || lo <= 0 || lo > 65535 {
		return 0, false
	}
	return lo, true
}

func runDemo(ctx context.Context, out io.Writer, exe, dir string, once bool) error {
	orgs := demoOrgs()
	fmt.Fprintf(out, "Knooppunt demo federation in %s\n", dir)
	ps := ports{}
	for _, o := range orgs {
		if err := o.prepare(dir, ps); err != nil {
			return fmt.Errorf("%s: %w", o.name, err)
		}
	}
	for _, o := range orgs {
		if err := o.writeConfig(orgs); err != nil {
			return fmt.Errorf("%s: %w", o.name, err)
		}
	}
	defer stopOrgs(orgs)
	if !once {
		// The providers matter only to people who sign in; --once stays fast without them.
		for _, o := range orgs {
			srv, err := o.startProvider()
			if err != nil {
				return fmt.Errorf("%s: %w", o.name, err)
			}
			defer srv.Close()
		}
	}
	for _, o := range orgs {
		if err := o.start(exe); err != nil {
			return fmt.Errorf("%s: %w", o.name, err)
		}
	}
	for _, o := range orgs {
		if err := o.waitReady(ctx); err != nil {
			if ctx.Err() != nil {
				return demoStopped(out)
			}
			return fmt.Errorf("%s: %w (see %s)", o.name, err, filepath.Join(o.dir, "node.log"))
		}
	}
	fmt.Fprintf(out, "six nodes up: %s\n", orgNames(orgs))
	if err := runScenario(ctx, out, orgs, dir, once); err != nil {
		if ctx.Err() != nil {
			return demoStopped(out)
		}
		return fmt.Errorf("%w\n%s", err, nodeStates(orgs))
	}
	return nil
}

// exitInterrupted is the exit code of a demo stopped (Ctrl-C) before its scenario was done.
const exitInterrupted = 130

// demoStopped says that the person stopped the demo before its scenario was done: not a failure
// of the nodes, whose state is therefore not shown.
func demoStopped(out io.Writer) error {
	fmt.Fprintln(out, "stopped before the scenario was done: stopping the federation")
	return exitError(exitInterrupted)
}

// sleepCtx waits d, or less when ctx ends first, and then says so.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// nodeStates says, for a failed demo, which nodes have exited and what their logs end with, and
// the errors the running ones logged.
func nodeStates(orgs []*demoOrg) string {
	var b strings.Builder
	for _, o := range orgs {
		logPath := filepath.Join(o.dir, "node.log")
		log, _ := os.ReadFile(logPath)
		lines := strings.Split(strings.TrimRight(string(log), "\n"), "\n")
		select {
		case <-o.done:
			fmt.Fprintf(&b, "%s: the node exited (%v); the end of %s:\n", o.name, o.exitErr, logPath)
			lines = lines[max(0, len(lines)-20):]
		default:
			var errs []string
			for _, l := range lines {
				if strings.Contains(l, "level=ERROR") {
					errs = append(errs, l)
				}
			}
			if len(errs) == 0 {
				fmt.Fprintf(&b, "%s: running, no errors in %s\n", o.name, logPath)
				continue
			}
			fmt.Fprintf(&b, "%s: running; the last errors in %s:\n", o.name, logPath)
			lines = errs[max(0, len(errs)-5):]
		}
		for _, l := range lines {
			fmt.Fprintf(&b, "  %s\n", l)
		}
	}
	return strings.TrimRight(b.String(), "\n")
}

// runScenario loads the scenario into the running nodes, has the officers approve the policies,
// and prints the pictures; without once it then waits for ctx to end.
func runScenario(ctx context.Context, out io.Writer, orgs []*demoOrg, dir string, once bool) error {
	byName := map[string]*demoOrg{}
	for _, o := range orgs {
		byName[o.name] = o
	}
	if err := loadScenario(ctx, byName); err != nil {
		return err
	}
	handreiking, err := shareHandreiking(ctx, byName["ggdghor"])
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "scenario loaded; officers propose and approve the policies (four eyes)")
	if err := approvePolicies(ctx, out, byName); err != nil {
		return err
	}

	// Wait, bounded, until the subscriptions have delivered what the policies grant.
	utrecht, ncc := byName["vr-utrecht"], byName["ncc"]
	deadline := time.Now().Add(30 * time.Second)
	for {
		p, err := utrecht.picture(ctx)
		if err == nil && len(p.Sources) >= 5 {
			if q, err := ncc.picture(ctx); err == nil && len(q.Sources) >= 4 {
				break
			}
		}
		if time.Now().After(deadline) {
			return errors.New("the pictures did not fill within 30s: see the node.log files")
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}

	for _, o := range []*demoOrg{utrecht, ncc} {
		p, err := o.picture(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "\n=== The picture as seen from %s (shelter figures are made up) ===\n", o.title)
		if err := printPicture(out, "table", p, nil); err != nil {
			return err
		}
	}

	fmt.Fprintf(out, "\n=== knooppunt search --text %s, from %s ===\n", demoText, utrecht.title)
	if err := utrecht.searchText(ctx, out); err != nil {
		return err
	}
	if err := showHandreiking(ctx, out, utrecht, handreiking); err != nil {
		return err
	}
	if err := showREST(ctx, out, utrecht); err != nil {
		return err
	}

	fmt.Fprintf(out, "\n=== Where did the confidential record %q go? ===\n", confidentialID)
	for _, o := range orgs {
		holds, err := o.holds(ctx, "ncc.crisis.test", confidentialID)
		if err != nil {
			return err
		}
		mark := "does not hold it"
		if holds {
			mark = "HOLDS it"
		}
		if o.name == "ncc" {
			mark = "is its origin"
		}
		fmt.Fprintf(out, "  %-12s %s\n", o.title, mark)
	}
	if err := runEarlyWarning(ctx, out, byName); err != nil {
		return err
	}
	if err := runExercise(ctx, out, byName); err != nil {
		return err
	}
	if once {
		return nil
	}
	fmt.Fprintf(out, "\nEach organisation's web interface. Sign in as medewerker (staff who read), editor,\nofficer-a or officer-b (security officers), or beheerder (the node's administrator), password %s,\nat the demo's own OpenID provider:\n\n", demoPassword)
	for _, o := range orgs {
		fmt.Fprintf(out, "  %-12s %s/\n", o.title, o.webURL())
	}
	if u := byName["vr-utrecht"]; u != nil {
		fmt.Fprintf(out, "\nSearch by words in the browser, as VR Utrecht: %s/zoeken?q=vergunning\n", u.webURL())
	}
	fmt.Fprintf(out, `
The federation is running. Each organisation's files are in %s/<org>. Try, for VR Utrecht:

%s  export KNOOPPUNT_NODE=unix://%s
  knooppunt picture --crisis oekraine
  knooppunt search --crisis oekraine --kind shelter.capacity
  knooppunt search --text vergunning
  knooppunt search --text "infectieziektebestrijding"
  knooppunt record list --crisis oekraine
  knooppunt assessment show --crisis oekraine
  knooppunt alert list --partners --node unix://%[4]s     # as NCC: VR Zeeland's alert
  knooppunt exercise list --all --node unix://%[4]s       # as NCC: the exercise, closed

As an LCVS officer, over mTLS with your own SVID:

  cd %s
  knooppunt policy list --node 127.0.0.1:%d --svid-cert certs/officer-a.crt --svid-key certs/officer-a.key --bundle ca/bundle.pem
  knooppunt policy explain --record shelter-utrecht --recipient spiffe://ncc.crisis.test/node/r1 --node unix://%s

As a system of VR Utrecht's own, over its REST API with the editor's SVID (docs/integration.md):

  cd %s
  %s

Stop one organisation (kill the process whose --data-dir is %s/data) and search again from
VR Utrecht to see it marked unreachable and answered from cache. Press Ctrl-C to stop everything.
`, dir, pathLine(), filepath.Join(utrecht.dir, "data", "knooppunt.sock"), filepath.Join(ncc.dir, "data", "knooppunt.sock"), byName["lcvs"].dir, byName["lcvs"].port,
		filepath.Join(byName["lcvs"].dir, "data", "knooppunt.sock"), utrecht.dir, utrecht.restCurl("/v1/pictures/oekraine"), byName["lcvs"].dir)
	<-ctx.Done()
	fmt.Fprintln(out, "stopping the federation")
	return nil
}

// pathLine is the line that puts this program on the PATH, for the commands the demo suggests,
// when `knooppunt` there is not this program (make demo builds it into a cache directory); "" when
// it is.
func pathLine() string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	if found, err := exec.LookPath("knooppunt"); err == nil {
		a, errA := filepath.EvalSymlinks(found)
		b, errB := filepath.EvalSymlinks(exe)
		if errA == nil && errB == nil && a == b {
			return ""
		}
	}
	return "  export PATH=" + filepath.Dir(exe) + ":$PATH\n"
}

func orgNames(orgs []*demoOrg) string {
	names := make([]string, len(orgs))
	for i, o := range orgs {
		names[i] = o.title
	}
	return strings.Join(names, ", ")
}

// prepare makes the org's CA and SVIDs: the node, two officers and an editor.
func (o *demoOrg) prepare(dir string, ps ports) error {
	o.dir = filepath.Join(dir, o.name)
	td, err := spiffeid.TrustDomainFromString(o.td)
	if err != nil {
		return err
	}
	ca, err := identity.InitCA(td, filepath.Join(o.dir, "ca"), 0)
	if err != nil {
		return err
	}
	for _, id := range []string{"node/r1", "user/officer-a", "user/officer-b", "user/editor"} {
		sid, err := spiffeid.FromSegments(td, strings.Split(id, "/")...)
		if err != nil {
			return err
		}
		opts := identity.SVIDOptions{TTL: 7 * 24 * time.Hour}
		if id == "node/r1" {
			opts.Hosts = []string{"127.0.0.1", "localhost"} // for curl on the REST API
		}
		if err := ca.IssueFiles(sid, filepath.Join(o.dir, "certs", filepath.Base(id)), opts); err != nil {
			return err
		}
	}
	for _, p := range []*int{&o.port, &o.bePort, &o.uiPort, &o.opPort, &o.restPort} {
		if *p, err = ps.free(); err != nil {
			return err
		}
	}
	return o.writeClientSecret()
}

func (o *demoOrg) writeConfig(all []*demoOrg) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s, the demo federation's node for %s.\n", o.name, o.title)
	// The name people read in the web interface's header and in an invitation.
	fmt.Fprintf(&b, "name: %q\norg: %s\nlisten: \"127.0.0.1:%d\"\n", o.title, o.td, o.port)
	fmt.Fprintf(&b, "identity:\n  source: files\n  cert_file: certs/r1.crt\n  key_file: certs/r1.key\n  bundle_file: ca/bundle.pem\n")
	fmt.Fprintf(&b, "bundle_endpoint:\n  listen: \"127.0.0.1:%d\"\n  refresh_hint: 1m\n", o.bePort)
	fmt.Fprintf(&b, "federation:\n  heartbeat: 1s\n  reevaluate: 5s\n  purpose: opvang ontheemden uit Oekraïne\n")
	fmt.Fprintf(&b, "# Early-warning rules are evaluated every second, so that the demo's alert comes at once.\nrules:\n  every: 1s\n")
	fmt.Fprintf(&b, "# The web interface; its people sign in at the demo's own OpenID provider.\n")
	fmt.Fprintf(&b, "ui:\n  listen: \"127.0.0.1:%d\"\n  oidc:\n    issuer: %q\n    client_id: %s\n    client_secret_file: oidc-client-secret\n    claim: preferred_username  # the demo's provider keeps it fixed\n",
		o.uiPort, o.issuer(), o.clientID())
	fmt.Fprintf(&b, "# The REST API for the org's own systems, over mutual TLS with their SVIDs (docs/integration.md).\nhttp:\n  listen: \"127.0.0.1:%d\"\n", o.restPort)
	fmt.Fprintf(&b, "roles:\n")
	for _, p := range demoPeople {
		fmt.Fprintf(&b, "  - id: spiffe://%s/user/%s\n    role: %s\n", o.td, p.user, p.role)
	}
	fmt.Fprintf(&b, "peers:\n")
	for _, p := range all {
		if p == o {
			continue
		}
		fmt.Fprintf(&b, "  - name: %s\n    org_name: %q\n    trust_domain: %s\n    addresses: [\"127.0.0.1:%d\"]\n", p.name, p.orgName, p.td, p.port)
		fmt.Fprintf(&b, "    bundle_file: ../%s/ca/bundle.pem\n    bundle_endpoint: \"https://127.0.0.1:%d\"\n", p.name, p.bePort)
		fmt.Fprintf(&b, "    groups: [%s]\n", strings.Join(p.groups, ", "))
	}
	return os.WriteFile(filepath.Join(o.dir, "node.yaml"), []byte(b.String()), 0o644)
}

func (o *demoOrg) start(exe string) error {
	logf, err := os.Create(filepath.Join(o.dir, "node.log"))
	if err != nil {
		return err
	}
	o.cmd = exec.Command(exe, "serve", "--data-dir", filepath.Join(o.dir, "data"), "--config", filepath.Join(o.dir, "node.yaml"))
	o.cmd.Stdout, o.cmd.Stderr = logf, logf
	o.cmd.SysProcAttr = demoNodeAttr()
	if err := o.cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	o.done = make(chan struct{})
	go func() {
		o.exitErr = o.cmd.Wait()
		logf.Close()
		close(o.done)
	}()
	return nil
}

// stopOrgs stops the nodes with SIGTERM and waits for them, at most 15s each. A SIGINT or
// SIGTERM meanwhile (a second Ctrl-C) kills those still running at once: the program would
// otherwise end and leave them running.
func stopOrgs(orgs []*demoOrg) {
	again := make(chan os.Signal, 1)
	signal.Notify(again, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(again)
	for _, o := range orgs {
		if o.cmd != nil && o.cmd.Process != nil {
			o.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	kill := false
	for _, o := range orgs {
		if o.done == nil {
			continue
		}
		if !kill {
			select {
			case <-o.done:
				continue
			case <-again:
				kill = true
			case <-time.After(15 * time.Second):
			}
		}
		o.cmd.Process.Kill()
		<-o.done
	}
}

func (o *demoOrg) local() *clientFlags {
	return &clientFlags{node: "unix://" + filepath.Join(o.dir, "data", "knooppunt.sock"), output: "table"}
}

func (o *demoOrg) as(who string) *clientFlags {
	return &clientFlags{node: fmt.Sprintf("127.0.0.1:%d", o.port), output: "table",
		svidCert: filepath.Join(o.dir, "certs", who+".crt"), svidKey: filepath.Join(o.dir, "certs", who+".key"),
		bundle: filepath.Join(o.dir, "ca", "bundle.pem")}
}

// waitReady waits, at most 30s, until the node answers on its socket; it gives up at once when
// the node exits or ctx ends.
func (o *demoOrg) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(30 * time.Second)
	f := o.local()
	for {
		select {
		case <-o.done:
			return fmt.Errorf("the node exited: %v", o.exitErr)
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		conn, err := f.dial()
		if err == nil {
			cctx, cancel := context.WithTimeout(ctx, time.Second)
			_, err = pb.NewStatusServiceClient(conn).Status(cctx, &pb.StatusRequest{})
			cancel()
			conn.Close()
			if err == nil {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not serving after 30s: %v", err)
		}
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
}

func (o *demoOrg) picture(ctx context.Context) (*pb.PictureResponse, error) {
	return o.pictureIn(ctx, nil)
}

// pictureIn is the org's picture of the scenario's crisis in a mode (nil: actual), without asking
// the peers whether they answer now: the demo reads it in loops, and prints no peer table.
func (o *demoOrg) pictureIn(ctx context.Context, mode *pb.Mode) (*pb.PictureResponse, error) {
	f := o.local()
	conn, err := f.dial()
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return pb.NewSearchServiceClient(conn).Picture(ctx, &pb.PictureRequest{Crisis: "oekraine", Mode: mode, SkipPeerCheck: true})
}

// demoText is the full-text search the demo shows: it finds SZW's guidance and LCVS's Q&A by a
// part of the compound "tewerkstellingsvergunning".
const demoText = "vergunning"

// searchText prints the org's full-text search for demoText across the federation.
func (o *demoOrg) searchText(ctx context.Context, out io.Writer) error {
	f := o.local()
	conn, err := f.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	resp, err := pb.NewSearchServiceClient(conn).Search(ctx, &pb.SearchRequest{Filter: &pb.Filter{Text: demoText}, TimeoutMs: 5000})
	if err != nil {
		return callError(f, err)
	}
	return printSearch(out, "table", resp, nil)
}

// holds reports whether the org's cache of foreign records holds a record.
func (o *demoOrg) holds(ctx context.Context, origin, id string) (bool, error) {
	p, err := o.picture(ctx)
	if err != nil {
		return false, err
	}
	for _, e := range p.Entries {
		if e.Record.Origin == origin && e.Record.Id == id && e.Source != o.td {
			return true, nil
		}
	}
	return false, nil
}

const confidentialID = "sitrep-ncc-vertrouwelijk"

// demoRecords are the scenario's records per org, beyond LCVS's shelter capacity.
var demoRecords = map[string]string{
	"ncc": `{"id":"sitrep-ncc-1","kind":"sitrep","crisis":"oekraine","region":"NL","classification":"public","body":{"title":"Landelijk beeld opvang Oekraïne","summary":"Instroom stabiel, druk op opvang in VR09 en VR19. Demo data.","severity":"medium"}}
{"id":"` + confidentialID + `","kind":"sitrep","crisis":"oekraine","region":"VR09","classification":"confidential","labels":{"audience":"vr-utrecht"},"body":{"title":"Vertrouwelijk: verwachte extra instroom Utrecht","summary":"Alleen voor VR Utrecht. Demo data.","severity":"high"}}`,
	"vr-utrecht": `{"id":"sitrep-vr09-1","kind":"sitrep","crisis":"oekraine","region":"VR09","classification":"internal","body":{"title":"Regionaal beeld VR Utrecht","summary":"Opvanglocaties Utrecht en Amersfoort bijna vol. Demo data.","severity":"medium"}}
{"id":"signal-vr09-1","kind":"signal","crisis":"oekraine","region":"VR09","classification":"internal","body":{"summary":"Meer aanmeldingen bij gemeente Zeist verwacht","source":"gemeente","confidence":0.6}}`,
	"vr-zeeland": `{"id":"sitrep-vr19-1","kind":"sitrep","crisis":"oekraine","region":"VR19","classification":"internal","body":{"title":"Regionaal beeld VR Zeeland","summary":"Voldoende plekken in Goes en Terneuzen. Demo data.","severity":"low"}}`,
	"ggdghor": `{"id":"qa-ggd-vaccinatie","kind":"qa","crisis":"oekraine","region":"NL","classification":"public","body":{"question":"Krijgen ontheemden toegang tot vaccinaties?","answer":"Ja, via de GGD in de opvanggemeente. Demo data.","audience":"gemeenten"}}
{"id":"qa-ggd-vaccinatie-2022","kind":"qa","crisis":"oekraine","region":"NL","classification":"public","body":{"question":"Krijgen ontheemden toegang tot vaccinaties?","answer":"Alleen op de opvanglocatie, op afspraak. Demo data.","audience":"gemeenten","valid_from":"2022-03-15","superseded_by":"qa-ggd-vaccinatie"}}
{"id":"guidance-ggd-tbc","kind":"guidance","crisis":"oekraine","region":"NL","classification":"public","body":{"title":"Handreiking tbc-screening","text":"Screening binnen drie maanden na aankomst. Demo data.","version":"2.0"}}`,
	"szw": `{"id":"guidance-szw-werk","kind":"guidance","crisis":"oekraine","region":"NL","classification":"public","body":{"title":"Werken zonder tewerkstellingsvergunning","text":"Werkgevers melden het werk vooraf bij het UWV. Demo data.","url":"https://example.invalid/szw"}}
{"id":"permit-szw-twv-oekraine","kind":"permit","crisis":"oekraine","region":"NL","classification":"public","body":{"title":"Geen tewerkstellingsvergunning voor ontheemden uit Oekraïne","authority":"Ministerie van SZW","applies_to":"ontheemden met een verblijfsdocument onder de Richtlijn tijdelijke bescherming","conditions":"De werkgever meldt het werk uiterlijk twee werkdagen vooraf bij het UWV. Demo data.","permit_needed":false,"valid_from":"2022-04-01","valid_until":"2027-03-04"}}`,
}

func loadScenario(ctx context.Context, orgs map[string]*demoOrg) error {
	files := map[string][]byte{"lcvs": oekraineScenario}
	for org, lines := range demoRecords {
		files[org] = []byte(lines)
	}
	for org, data := range files {
		rows, err := importfile.ReadJSONL(bytes.NewReader(data), record.JSON{})
		if err != nil {
			return err
		}
		f := orgs[org].local()
		c, closeConn, err := f.records()
		if err != nil {
			return err
		}
		sum, err := importfile.Import(ctx, c, rows, 100, nil)
		closeConn()
		if err != nil {
			return fmt.Errorf("%s: %w", org, callError(f, err))
		}
		if sum.Rejected > 0 {
			return fmt.Errorf("%s: scenario rejected: %+v", org, sum.Rejections)
		}
	}
	return nil
}

// demoPolicies are the scenario's sharing policies per org.
var demoPolicies = map[string][]string{
	"lcvs": {`name: lcvs-capacity-to-regions
purpose: spreiding en opvang vluchtelingen
recipients: [group:veiligheidsregios, spiffe://ncc.crisis.test, group:rijk]
kinds: [shelter.capacity]
max_classification: internal
when: record.crisis == "oekraine" && record.body.beds_free >= 0
redact: [body.contact_phone]
`, `name: lcvs-qa-public
purpose: publieksinformatie opvang ontheemden
recipients: [group:veiligheidsregios, group:rijk, group:partners]
kinds: [qa]
max_classification: public
`},
	"ncc": {`name: ncc-sitreps-to-partners
purpose: gedeeld situatiebeeld crisis
recipients: [group:veiligheidsregios, group:rijk, group:partners]
kinds: [sitrep]
max_classification: public
`, `name: ncc-confidential-to-utrecht
purpose: voorbereiding extra opvang regio Utrecht
recipients: [spiffe://vr-utrecht.crisis.test]
kinds: [sitrep]
max_classification: confidential
when: record.labels["audience"] == "vr-utrecht"
`, `name: ncc-assessment-to-partners
purpose: gedeelde duiding van het crisisbeeld
recipients: [group:veiligheidsregios, group:rijk, group:partners]
kinds: [assessment]
max_classification: internal
`},
	"vr-utrecht": {`name: vr09-beeld-to-rijk
purpose: regionaal beeld voor landelijke coördinatie
recipients: [spiffe://ncc.crisis.test, spiffe://lcvs.crisis.test]
kinds: [sitrep, signal]
max_classification: internal
`, `name: vr09-responses-to-ncc
purpose: reactie op de landelijke duiding
recipients: [spiffe://ncc.crisis.test]
kinds: [assessment.response]
max_classification: internal
`},
	"vr-zeeland": {`name: vr19-beeld-to-rijk
purpose: regionaal beeld voor landelijke coördinatie
recipients: [spiffe://ncc.crisis.test, spiffe://lcvs.crisis.test]
kinds: [sitrep]
max_classification: internal
`, `name: vr19-alerts-to-ncc
purpose: vroegtijdige waarschuwing voor landelijke coördinatie
recipients: [spiffe://ncc.crisis.test]
kinds: [alert]
max_classification: internal
`},
	"ggdghor": {`name: ggd-guidance-public
purpose: publieksinformatie gezondheid ontheemden
recipients: [group:veiligheidsregios, group:rijk, group:partners]
kinds: [qa, guidance]
max_classification: public
`},
	"szw": {`name: szw-werk-public
purpose: informatie werken door ontheemden
recipients: [group:veiligheidsregios, group:rijk, group:partners]
kinds: [guidance, permit]
max_classification: public
`},
}

func approvePolicies(ctx context.Context, out io.Writer, orgs map[string]*demoOrg) error {
	names := make([]string, 0, len(demoPolicies))
	for n := range demoPolicies {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, org := range names {
		for _, src := range demoPolicies[org] {
			if err := orgs[org].approve(ctx, out, src); err != nil {
				return err
			}
		}
	}
	return nil
}

// approve has officer-a propose the policy and officer-b approve it.
func (o *demoOrg) approve(ctx context.Context, out io.Writer, src string) error {
	a, closeA, err := o.as("officer-a").policies()
	if err != nil {
		return err
	}
	p, err := a.Propose(ctx, &pb.ProposeRequest{Source: []byte(src)})
	closeA()
	if err != nil {
		return fmt.Errorf("%s: propose: %w", o.name, callError(o.as("officer-a"), err))
	}
	b, closeB, err := o.as("officer-b").policies()
	if err != nil {
		return err
	}
	p, err = b.Approve(ctx, &pb.PolicyStepRequest{Id: p.Id})
	closeB()
	if err != nil {
		return fmt.Errorf("%s: approve: %w", o.name, callError(o.as("officer-b"), err))
	}
	fmt.Fprintf(out, "  %-11s %s: proposed by officer-a, approved by officer-b\n", o.title, p.Id)
	return nil
}

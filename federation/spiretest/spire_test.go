package spiretest

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/knooppunt/knooppunt/federation/identity"
	"github.com/knooppunt/knooppunt/node/api"
	"github.com/knooppunt/knooppunt/node/clustertest"
	"github.com/knooppunt/knooppunt/node/proctest"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// The two orgs of the test, each its own trust domain under its own SPIRE server.
const (
	utrechtTD = "vr-utrecht.crisis.test"
	nccTD     = "ncc.crisis.test"
)

// svidTTL is the x509SVIDTTL, in seconds, of every workload entry. SPIRE backdates an SVID by
// 10s and its agent renews it once less than about half its lifetime is left, checking every 5s,
// so a workload gets a new SVID every 10 to 15 seconds.
const svidTTL = 30

// spireVersion is the release `make spire` builds; deploy/spire/build/go.mod pins it.
const spireVersion = "v1.13.3"

// TestSPIRE runs a node of two replicas for VR Utrecht and a node for NCC, each replica and each
// user with its identity from a SPIRE agent, the two orgs' SPIRE servers federated. Officers of
// VR Utrecht approve a policy that shares sitreps with NCC, and then, while every SVID rotates,
// an editor writes sitreps through both replicas and NCC searches VR Utrecht: no call may fail,
// every replica must present a new SVID, and NCC must end up with every sitrep.
func TestMain(m *testing.M) { proctest.Main(m) }

func TestSPIRE(t *testing.T) {
	if testing.Short() {
		t.Skip("starts SPIRE servers, agents and three node processes; takes about a minute")
	}
	bins := spireBinaries(t)
	h := newHarness(t, bins)
	built := h.buildKnooppunt()

	utrecht := h.newServer(utrechtTD)
	ncc := h.newServer(nccTD)
	utrecht.federate(ncc)

	// One agent per host, as in production: each replica runs on a host of its own, and the
	// people's tools on a workstation. An agent gives a workload only the entries parented to it.
	agents := map[string]string{
		"utrecht-r1": utrecht.startAgent("r1"),
		"utrecht-r2": utrecht.startAgent("r2"),
		"utrecht-ws": utrecht.startAgent("workstation"),
		"ncc-r1":     ncc.startAgent("r1"),
	}
	utrecht.register("r1", "node/r1", ncc)
	utrecht.register("r2", "node/r2", ncc)
	for _, u := range []string{"user/editor", "user/officer-a", "user/officer-b"} {
		utrecht.register("workstation", u, ncc)
	}
	ncc.register("r1", "node/r1", utrecht)
	h.waitSVIDs(agents["utrecht-r1"], utrecht.id("node/r1"), ncc.td)
	h.waitSVIDs(agents["utrecht-r2"], utrecht.id("node/r2"), ncc.td)
	h.waitSVIDs(agents["utrecht-ws"], utrecht.id("user/editor"), ncc.td)
	h.waitSVIDs(agents["utrecht-ws"], utrecht.id("user/officer-a"), ncc.td)
	h.waitSVIDs(agents["utrecht-ws"], utrecht.id("user/officer-b"), ncc.td)
	h.waitSVIDs(agents["ncc-r1"], ncc.id("node/r1"), utrecht.td)

	exe := <-built
	if exe == "" {
		t.FailNow()
	}
	u1 := &nodeSpec{Name: "vr-utrecht", Org: utrechtTD, Replica: "r1", API: h.addr(), Raft: h.addr(), AgentSocket: agents["utrecht-r1"]}
	u2 := &nodeSpec{Name: "vr-utrecht", Org: utrechtTD, Replica: "r2", API: h.addr(), Raft: h.addr(), AgentSocket: agents["utrecht-r2"]}
	n1 := &nodeSpec{Name: "ncc", Org: nccTD, Replica: "r1", API: h.addr(), AgentSocket: agents["ncc-r1"]}
	for _, s := range []*nodeSpec{u1, u2} {
		s.Servers = []*nodeSpec{u1, u2}
		s.Peers = []peerSpec{{Name: n1.Name, Org: n1.Org, APIs: []string{n1.API}}}
	}
	n1.Peers = []peerSpec{{Name: u1.Name, Org: u1.Org, APIs: []string{u1.API, u2.API}}}
	for _, s := range []*nodeSpec{u1, u2, n1} {
		h.startNode(exe, s)
	}
	for _, s := range []*nodeSpec{u1, u2, n1} {
		h.waitReady(s)
	}

	editor := h.userSource(agents["utrecht-ws"], utrecht.id("user/editor"))
	officerA := h.userSource(agents["utrecht-ws"], utrecht.id("user/officer-a"))
	officerB := h.userSource(agents["utrecht-ws"], utrecht.id("user/officer-b"))

	// Four eyes over mTLS, on different replicas: whichever is the follower names the leader, and
	// the officer's client takes the step there under the officer's own SVID.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	proposed, err := pb.NewPolicyServiceClient(h.dial(u2.API, officerA, utrecht.td)).Propose(ctx, &pb.ProposeRequest{Source: []byte(sharingPolicy)})
	if err != nil {
		t.Fatalf("officer-a proposes the policy on r2: %v", err)
	}
	approved, err := pb.NewPolicyServiceClient(h.dial(u1.API, officerB, utrecht.td)).Approve(ctx, &pb.PolicyStepRequest{Id: proposed.Id})
	if err != nil {
		t.Fatalf("officer-b approves %s on r1: %v", proposed.Id, err)
	}
	if !approved.Active || approved.Author != utrecht.id("user/officer-a").String() {
		t.Fatalf("approved policy: active %v, author %q; want active, by officer-a", approved.Active, approved.Author)
	}

	// Before the rotation: the first sitrep reaches NCC through SPIRE's federated bundles.
	if _, err := pb.NewRecordServiceClient(h.dial(u1.API, editor, utrecht.td)).Put(ctx, &pb.PutRequest{Record: sitrep(0)}); err != nil {
		t.Fatalf("editor writes the first sitrep: %v", err)
	}
	h.waitPicture(n1, 1)

	rot := h.rotateUnderTraffic(editor, utrecht.td, map[string]string{"vr-utrecht/r1": u1.API, "vr-utrecht/r2": u2.API, "ncc/r1": n1.API}, []string{u1.API, u2.API}, n1)

	// After the rotation: both replicas hold every sitrep, and so does NCC.
	want := int64(rot.written + 1)
	for _, s := range []*nodeSpec{u1, u2} {
		h.waitFor(30*time.Second, s.Name+"/"+s.Replica+" holds every sitrep", func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			st, err := pb.NewStatusServiceClient(h.local(s)).Status(ctx, &pb.StatusRequest{})
			if err != nil {
				return err
			}
			if st.Records != want {
				return fmt.Errorf("%d records, want %d", st.Records, want)
			}
			return nil
		})
	}
	h.waitPicture(n1, int(want))
}

// sharingPolicy is VR Utrecht's policy that shares its sitreps with NCC.
const sharingPolicy = `name: sitreps-to-ncc
purpose: gedeeld situatiebeeld met het NCC
recipients: [spiffe://ncc.crisis.test]
kinds: [sitrep]
max_classification: internal
`

func sitrep(i int) *pb.Record {
	return &pb.Record{
		Id: fmt.Sprintf("sitrep-%05d", i), Kind: "sitrep", Crisis: "oekraine", Region: "VR09",
		Classification: pb.Classification_INTERNAL,
		Body:           fmt.Appendf(nil, `{"title":"Regionaal beeld VR Utrecht %d","summary":"Opvang Utrecht. Testdata.","severity":"low"}`, i),
	}
}

// rotation is what rotateUnderTraffic saw.
type rotation struct {
	written  int // sitreps written during the traffic: sitrep-00001 up to sitrep-<written>
	searches int
	probes   int
}

// failures collects the failed calls of the traffic goroutines.
type failures struct {
	mu   sync.Mutex
	list []string
}

func (f *failures) add(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.list = append(f.list, time.Now().Format("15:04:05.000")+" "+fmt.Sprintf(format, args...))
}

func (f *failures) all() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.list...)
}

// rotateUnderTraffic runs writes through both replicas (on long-lived connections and on new
// ones) and searches from NCC to VR Utrecht until every node and the editor have a new SVID, and
// a little longer. It fails the test on any failed call, handshake included.
func (h *harness) rotateUnderTraffic(editor *workloadapi.X509Source, td spiffeid.TrustDomain, nodes map[string]string, replicas []string, ncc *nodeSpec) rotation {
	t := h.t
	var (
		stop     = make(chan struct{})
		wg       sync.WaitGroup
		written  atomic.Int64
		searches atomic.Int64
		failed   failures
	)
	// A long-lived connection is made anew once the editor's SVID is renewed, as a client that
	// keeps one is to (integration.md): the node closes it after the old SVID ends, and a call
	// under way on it then fails. It lives on across the nodes' renewals.
	long := make([]pb.RecordServiceClient, len(replicas))
	longMark := make([]identity.SVIDMark, len(replicas))
	dialLong := func(r int) {
		long[r], longMark[r] = pb.NewRecordServiceClient(h.dial(replicas[r], editor, td)), identity.MarkSVID(editor)
	}
	for i := range replicas {
		dialLong(i)
	}

	wg.Add(2)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(40 * time.Millisecond)
		defer tick.Stop()
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			r := i % len(replicas)
			if longMark[r].Renewed() {
				dialLong(r)
			}
			c, how := long[r], "long-lived connection"
			var fresh *grpc.ClientConn
			if i%4 == 0 {
				// A new connection: a new handshake, with whatever SVIDs both sides hold now.
				var err error
				if fresh, err = grpc.NewClient(replicas[r], grpc.WithTransportCredentials(identity.ClientCredentials(editor, editor, identity.AuthorizeReplica(td)))); err != nil {
					failed.add("put sitrep %d: new connection to %s: %v", i, replicas[r], err)
					return
				}
				c, how = pb.NewRecordServiceClient(fresh), "new connection"
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err := c.Put(ctx, &pb.PutRequest{Record: sitrep(i)})
			cancel()
			if fresh != nil {
				fresh.Close()
			}
			if err != nil {
				failed.add("put sitrep %d to %s on a %s: %v", i, replicas[r], how, err)
				return
			}
			written.Store(int64(i))
		}
	}()
	go func() {
		defer wg.Done()
		search := pb.NewSearchServiceClient(h.local(ncc))
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			resp, err := search.Search(ctx, &pb.SearchRequest{Filter: &pb.Filter{Crisis: "oekraine", Kinds: []string{"sitrep"}, Limit: 10}, TimeoutMs: 10000})
			cancel()
			if err != nil {
				failed.add("search from NCC: %v", err)
				return
			}
			if len(resp.Peers) != 1 || resp.Peers[0].State != "answered" || resp.Partial {
				failed.add("search from NCC: peers %v, partial %v; want vr-utrecht answered", resp.Peers, resp.Partial)
				return
			}
			searches.Add(1)
		}
	}()
	stopped := false
	stopTraffic := func() {
		if !stopped {
			stopped = true
			close(stop)
			wg.Wait()
		}
	}
	defer stopTraffic()

	var (
		serials      map[string]string // what each node presented once the traffic flowed
		editorSerial string
		started      time.Time
		rotated      = map[string]time.Duration{}
		probes       int
		settled      int64 = -1 // the write count to reach once everything has rotated
	)
	const within = 90 * time.Second
	deadline := time.Now().Add(within)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for ; len(failed.all()) == 0; <-tick.C {
		if time.Now().After(deadline) {
			failed.add("not every SVID rotated within %s: traffic flowing %v, rotated %v of %d nodes and the editor",
				within, serials != nil, rotated, len(nodes))
			break
		}
		if serials == nil {
			// Take the serials to compare with once writes and searches succeed.
			if written.Load() < 5 || searches.Load() < 1 {
				continue
			}
			serials = map[string]string{}
			for name, addr := range nodes {
				s, err := servedSerial(addr, editor)
				if err != nil {
					failed.add("handshake with %s: %v", name, err)
				}
				serials[name] = s
			}
			editorSerial, started = ownSerial(t, editor), time.Now()
			t.Logf("traffic flows; SVID serials: %v, editor %s", serials, editorSerial)
			continue
		}
		for name, addr := range nodes {
			if _, ok := rotated[name]; ok {
				continue
			}
			s, err := servedSerial(addr, editor)
			probes++
			if err != nil {
				failed.add("handshake with %s: %v", name, err)
				continue
			}
			if s != serials[name] {
				rotated[name] = time.Since(started)
				t.Logf("%s rotated after %s: serial %s -> %s", name, rotated[name].Round(time.Millisecond), serials[name], s)
			}
		}
		if _, ok := rotated["editor"]; !ok {
			if s := ownSerial(t, editor); s != editorSerial {
				rotated["editor"] = time.Since(started)
				t.Logf("editor rotated after %s: serial %s -> %s", rotated["editor"].Round(time.Millisecond), editorSerial, s)
			}
		}
		if len(rotated) == len(nodes)+1 && settled < 0 {
			// Keep the traffic going a little past the last rotation.
			settled = written.Load() + 25
		}
		if settled >= 0 && written.Load() >= settled {
			break
		}
	}
	stopTraffic()
	for _, f := range failed.all() {
		t.Errorf("during the rotation: %s", f)
	}
	if t.Failed() {
		t.FailNow()
	}
	rot := rotation{written: int(written.Load()), searches: int(searches.Load()), probes: probes}
	t.Logf("rotation done in %s: %d sitreps written, %d searches from NCC, %d handshake probes, none failed",
		time.Since(started).Round(time.Millisecond), rot.written, rot.searches, rot.probes)
	return rot
}

// servedSerial does a new mTLS handshake with a node's listener, as the client src, and returns
// the serial of the SVID the node presented.
func servedSerial(addr string, src *workloadapi.X509Source) (string, error) {
	cfg := identity.ClientTLS(src, src, tlsconfig.AuthorizeAny())
	cfg.NextProtos = []string{"h2"}
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: cfg}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	return c.(*tls.Conn).ConnectionState().PeerCertificates[0].SerialNumber.Text(16), nil
}

func ownSerial(t *testing.T, src *workloadapi.X509Source) string {
	t.Helper()
	svid, err := src.GetX509SVID()
	if err != nil {
		t.Fatalf("editor SVID: %v", err)
	}
	return svid.Certificates[0].SerialNumber.Text(16)
}

// harness owns the test's directory and processes.
type harness struct {
	t     *testing.T
	bins  string
	dir   string
	procs []*proc
}

func spireBinaries(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("KNOOPPUNT_SPIRE_DIR")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			t.Fatalf("KNOOPPUNT_SPIRE_DIR is unset and there is no home directory: %v", err)
		}
		dir = filepath.Join(home, ".cache", "knooppunt", "spire-"+spireVersion)
	}
	for _, b := range []string{"spire-server", "spire-agent"} {
		fi, err := os.Stat(filepath.Join(dir, b))
		if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			t.Fatalf("%s of SPIRE %s is not at %s (%v): run make spire, which builds SPIRE into "+
				"$HOME/.cache/knooppunt/spire-%s, or set KNOOPPUNT_SPIRE_DIR to a directory that "+
				"holds spire-server and spire-agent", b, spireVersion, filepath.Join(dir, b), err, spireVersion)
		}
	}
	return dir
}

func newHarness(t *testing.T, bins string) *harness {
	// Unix socket paths must stay under 108 bytes: a short directory under /tmp, not t.TempDir.
	dir, err := os.MkdirTemp("", "spire")
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, bins: bins, dir: dir}
	// Cleanups run last in, first out: the processes stop first, then their logs are shown,
	// then the directory goes.
	t.Cleanup(func() { os.RemoveAll(dir) })
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, p := range h.procs {
			t.Logf("--- %s (%s), last lines:\n%s", p.name, p.log, tail(p.log, 40))
		}
	})
	return h
}

// buildKnooppunt builds the knooppunt binary in the background (node/proctest: with the race
// detector when this test has it), and sends its path, or "" after reporting the failure.
func (h *harness) buildKnooppunt() <-chan string {
	out := make(chan string, 1)
	finished := make(chan struct{})
	// A test that fails before it takes the binary must not end while the build still runs.
	h.t.Cleanup(func() { <-finished })
	go func() {
		defer close(finished)
		exe, err := proctest.Build()
		if err != nil {
			h.t.Error(err)
		}
		out <- exe
	}()
	return out
}

// addr picks a loopback port for a listener that a process opens later.
func (h *harness) addr() string { return clustertest.FreeAddr(h.t) }

func (h *harness) port() string {
	_, p, _ := net.SplitHostPort(h.addr())
	return p
}

func (h *harness) render(tmpl, out string, data any) {
	h.t.Helper()
	tp, err := template.ParseFiles(filepath.Join("testdata", tmpl))
	if err != nil {
		h.t.Fatal(err)
	}
	var b bytes.Buffer
	if err := tp.Execute(&b, data); err != nil {
		h.t.Fatalf("%s: %v", tmpl, err)
	}
	if err := os.WriteFile(out, b.Bytes(), 0o600); err != nil {
		h.t.Fatal(err)
	}
}

// waitFor polls cond until it returns nil, and fails the test with its last error after within.
func (h *harness) waitFor(within time.Duration, what string, cond func() error) {
	h.t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return
		}
		for _, p := range h.procs {
			if p.exited() {
				h.t.Fatalf("%s: %s exited: %v", what, p.name, p.err)
			}
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("%s: not within %s: %v", what, within, err)
		}
		<-tick.C
	}
}

// proc is a process the test started, in a process group of its own so that stopping it stops
// whatever it started too.
type proc struct {
	name, log string
	node      bool // a knooppunt node: it must stop cleanly, and its log must not report a race
	cmd       *exec.Cmd
	done      chan struct{}
	err       error
}

func (h *harness) start(name, log string, node bool, argv ...string) *proc {
	h.t.Helper()
	f, err := os.Create(log)
	if err != nil {
		h.t.Fatal(err)
	}
	p := &proc{name: name, log: log, node: node, cmd: exec.Command(argv[0], argv[1:]...), done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = f, f
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		f.Close()
		h.t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		f.Close()
		close(p.done)
	}()
	h.procs = append(h.procs, p)
	h.t.Cleanup(func() { p.stop(h.t) })
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) stop(t *testing.T) {
	if p.exited() {
		return // the test already failed on it
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Errorf("%s did not stop within 20s of SIGTERM: killed", p.name)
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		return
	}
	if !p.node {
		return
	}
	if b, err := os.ReadFile(p.log); err == nil && proctest.Raced(string(b)) {
		t.Errorf("%s reported a data race: see its log below", p.name)
	} else if p.err != nil {
		t.Errorf("%s did not stop cleanly on SIGTERM: %v", p.name, p.err)
	}
}

// spireServer is one org's SPIRE server.
type spireServer struct {
	h                *harness
	td               spiffeid.TrustDomain
	dir, socket      string
	port, bundlePort string
}

func (h *harness) newServer(td string) *spireServer {
	h.t.Helper()
	s := &spireServer{h: h, td: spiffeid.RequireTrustDomainFromString(td), dir: filepath.Join(h.dir, strings.Split(td, ".")[0]),
		port: h.port(), bundlePort: h.port()}
	s.socket = filepath.Join(s.dir, "server.sock")
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		h.t.Fatal(err)
	}
	return s
}

type federatesWith struct{ TrustDomain, BundlePort string }

// federate starts both servers, each federating with the other through its bundle endpoint
// (federates_with in server.conf.tmpl), and hands each the other's first bundle, as an operator
// does at onboarding with `spire-server bundle show` and `spire-server bundle set`. Each server
// then fetches the other's bundle from its bundle endpoint, authenticated with that first one.
func (s *spireServer) federate(o *spireServer) {
	s.run(o)
	o.run(s)
	for _, pair := range [][2]*spireServer{{s, o}, {o, s}} {
		from, to := pair[0], pair[1]
		f := filepath.Join(to.dir, from.td.Name()+".bundle")
		if err := os.WriteFile(f, []byte(from.cli("bundle", "show", "-format", "spiffe")), 0o600); err != nil {
			s.h.t.Fatal(err)
		}
		to.cli("bundle", "set", "-format", "spiffe", "-id", from.td.IDString(), "-path", f)
	}
	for _, pair := range [][2]*spireServer{{s, o}, {o, s}} {
		from, to := pair[0], pair[1]
		s.h.waitFor(30*time.Second, to.td.Name()+" fetches the bundle of "+from.td.Name()+" from its bundle endpoint", func() error {
			_, err := to.try("federation", "refresh", "-id", from.td.IDString())
			return err
		})
	}
}

// run starts the server, federating with peers through their bundle endpoints (none: a server
// that knows no other trust domain).
func (s *spireServer) run(peers ...*spireServer) {
	h := s.h
	conf := filepath.Join(s.dir, "server.conf")
	var fw []federatesWith
	for _, p := range peers {
		fw = append(fw, federatesWith{TrustDomain: p.td.Name(), BundlePort: p.bundlePort})
	}
	h.render("server.conf.tmpl", conf, map[string]any{
		"TrustDomain": s.td.Name(), "Port": s.port, "BundlePort": s.bundlePort, "Dir": s.dir,
		"FederatesWith": fw,
	})
	h.start("spire-server "+s.td.Name(), filepath.Join(s.dir, "server.log"), false,
		filepath.Join(h.bins, "spire-server"), "run", "-config", conf)
	h.waitFor(30*time.Second, "SPIRE server "+s.td.Name()+" healthy", func() error {
		_, err := s.try("healthcheck")
		return err
	})
}

func (s *spireServer) try(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, filepath.Join(s.h.bins, "spire-server"), append(args, "-socketPath", s.socket)...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("spire-server %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func (s *spireServer) cli(args ...string) string {
	s.h.t.Helper()
	out, err := s.try(args...)
	if err != nil {
		s.h.t.Fatal(err)
	}
	return out
}

func (s *spireServer) id(path string) spiffeid.ID {
	id, err := spiffeid.FromPath(s.td, "/"+path)
	if err != nil {
		s.h.t.Fatal(err)
	}
	return id
}

// startAgent starts the agent of a host, attested with a join token whose alias is
// spiffe://TD/host/HOST, and returns its Workload API socket.
func (s *spireServer) startAgent(host string) string {
	h := s.h
	h.t.Helper()
	out := s.cli("token", "generate", "-spiffeID", s.id("host/"+host).String(), "-ttl", "600")
	token, ok := strings.CutPrefix(strings.TrimSpace(out), "Token: ")
	if !ok {
		h.t.Fatalf("spire-server token generate: unexpected output %q", out)
	}
	dir := filepath.Join(s.dir, "agent-"+host)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		h.t.Fatal(err)
	}
	bundle := filepath.Join(dir, "bootstrap.pem")
	if err := os.WriteFile(bundle, []byte(s.cli("bundle", "show")), 0o600); err != nil {
		h.t.Fatal(err)
	}
	socket := filepath.Join(s.dir, host+".sock")
	conf := filepath.Join(dir, "agent.conf")
	h.render("agent.conf.tmpl", conf, map[string]any{
		"TrustDomain": s.td.Name(), "ServerPort": s.port, "Dir": dir, "Socket": socket, "TrustBundle": bundle,
	})
	bin := filepath.Join(h.bins, "spire-agent")
	h.start("spire-agent "+s.td.Name()+" "+host, filepath.Join(dir, "agent.log"), false, bin, "run", "-config", conf, "-joinToken", token)
	h.waitFor(30*time.Second, "SPIRE agent "+s.td.Name()+"/"+host+" healthy", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if out, err := exec.CommandContext(ctx, bin, "healthcheck", "-socketPath", socket).CombinedOutput(); err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	return socket
}

// register creates the workload entry of path (node/r1, user/editor) on host: workloads of this
// test's uid that call that host's agent get it, with the other org's bundle alongside.
func (s *spireServer) register(host, path string, federated *spireServer) {
	s.h.t.Helper()
	s.cli("entry", "create", "-parentID", s.id("host/"+host).String(), "-spiffeID", s.id(path).String(),
		"-selector", fmt.Sprintf("unix:uid:%d", os.Getuid()), "-x509SVIDTTL", fmt.Sprint(svidTTL),
		"-federatesWith", federated.td.IDString())
}

// waitSVIDs waits until the agent at socket gives this process the SVID id and the bundle of
// the federated trust domain.
func (h *harness) waitSVIDs(socket string, id spiffeid.ID, federated spiffeid.TrustDomain) {
	h.t.Helper()
	h.waitFor(30*time.Second, "the agent at "+socket+" serves "+id.String(), func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		x, err := workloadapi.FetchX509Context(ctx, workloadapi.WithAddr("unix://"+socket))
		if err != nil {
			return err
		}
		if !x.Bundles.Has(federated) {
			return fmt.Errorf("no bundle for %s yet", federated)
		}
		for _, s := range x.SVIDs {
			if s.ID == id {
				return nil
			}
		}
		return errors.New("the SVID is not issued yet")
	})
}

// userSource is a person's identity from the workstation's agent, which gives this process
// every user's SVID: the picker keeps one.
func (h *harness) userSource(socket string, id spiffeid.ID) *workloadapi.X509Source {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	src, err := workloadapi.NewX509Source(ctx,
		workloadapi.WithClientOptions(workloadapi.WithAddr("unix://"+socket)),
		workloadapi.WithDefaultX509SVIDPicker(func(svids []*x509svid.SVID) *x509svid.SVID {
			for _, s := range svids {
				if s.ID == id {
					return s
				}
			}
			return nil
		}))
	if err != nil {
		h.t.Fatalf("workload API source for %s: %v", id, err)
	}
	h.t.Cleanup(func() { src.Close() })
	return src
}

// dial connects to a node's mTLS listener as the user src.
func (h *harness) dial(addr string, src *workloadapi.X509Source, td spiffeid.TrustDomain) *grpc.ClientConn {
	h.t.Helper()
	creds := identity.ClientCredentials(src, src, identity.AuthorizeReplica(td))
	// As the CLI does: a follower sends a policy step to the leader, which the caller then calls.
	c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds), grpc.WithChainUnaryInterceptor(api.FollowLeader(creds)))
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { c.Close() })
	return c
}

// nodeSpec is one replica's config, rendered from testdata/node.yaml.tmpl.
type nodeSpec struct {
	Name, Org, Replica string
	API, Raft          string
	AgentSocket        string
	Servers            []*nodeSpec
	Peers              []peerSpec

	dir  string
	conn *grpc.ClientConn // over the local socket
}

type peerSpec struct {
	Name, Org string
	APIs      []string
}

func (h *harness) startNode(exe string, s *nodeSpec) {
	h.t.Helper()
	s.dir = filepath.Join(h.dir, s.Name+"-"+s.Replica)
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		h.t.Fatal(err)
	}
	conf := filepath.Join(s.dir, "node.yaml")
	h.render("node.yaml.tmpl", conf, s)
	h.start("knooppunt "+s.Name+"/"+s.Replica, filepath.Join(s.dir, "node.log"), true,
		exe, "serve", "--data-dir", filepath.Join(s.dir, "data"), "--config", conf)
}

// local is a connection to the node's local socket.
func (h *harness) local(s *nodeSpec) *grpc.ClientConn {
	h.t.Helper()
	if s.conn == nil {
		c, err := grpc.NewClient("unix://"+filepath.Join(s.dir, "data", "knooppunt.sock"), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			h.t.Fatal(err)
		}
		h.t.Cleanup(func() { c.Close() })
		s.conn = c
	}
	return s.conn
}

func (h *harness) waitReady(s *nodeSpec) {
	h.t.Helper()
	h.waitFor(60*time.Second, s.Name+"/"+s.Replica+" serving", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		st, err := pb.NewStatusServiceClient(h.local(s)).Status(ctx, &pb.StatusRequest{})
		if err != nil {
			return err
		}
		if st.Leader == "" {
			return errors.New("no leader yet")
		}
		return nil
	})
}

// waitPicture waits until NCC's picture of the crisis holds n sitreps from VR Utrecht.
func (h *harness) waitPicture(ncc *nodeSpec, n int) {
	h.t.Helper()
	h.waitFor(30*time.Second, fmt.Sprintf("NCC's picture holds %d sitreps of VR Utrecht", n), func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		p, err := pb.NewSearchServiceClient(h.local(ncc)).Picture(ctx, &pb.PictureRequest{Crisis: "oekraine"})
		if err != nil {
			return err
		}
		got := 0
		for _, e := range p.Entries {
			if e.Source == utrechtTD && e.Record.GetOrigin() == utrechtTD && e.Kind == "sitrep" {
				got++
			}
		}
		if got != n {
			return fmt.Errorf("%d sitreps", got)
		}
		return nil
	})
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

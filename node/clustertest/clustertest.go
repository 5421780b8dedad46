// Package clustertest builds the replicas of one node's Raft group for tests and benchmarks: a
// development CA of the org, an SVID per replica (spiffe://TD/node/rN) in files, free loopback
// ports for each replica's API and Raft listeners, and a config file per replica that lists
// every replica in raft.servers. The replicas run in-process (Start) or as `knooppunt serve`
// processes that the caller starts from the prepared files (New).
//
// clustertest uses only real parts: real nodes, real Raft over mutual TLS, real SQLite files.
// Everything it waits for, it waits for with a deadline.
package clustertest

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3" // reading a stopped replica's database, read-only
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/knooppunt/knooppunt/federation/identity"
	"github.com/knooppunt/knooppunt/federation/identity/identitytest"
	"github.com/knooppunt/knooppunt/node"
	"github.com/knooppunt/knooppunt/node/api"
	"github.com/knooppunt/knooppunt/node/config"
	"github.com/knooppunt/knooppunt/node/db"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// Org is the trust domain of the test node.
const Org = "kc.crisis.test"

// Options shape a cluster.
type Options struct {
	// Replicas is the number of voters the group starts with, r1..rN. Default 3.
	Replicas int
	// ElectionTimeout is raft.election_timeout of every replica. Default 200ms; a negative
	// value leaves it unset, so that the node's own default (500ms) applies.
	ElectionTimeout time.Duration
	// SnapshotThreshold is raft.snapshot_threshold. Zero: the node's default.
	SnapshotThreshold uint64
	// TrailingLogs is raft.trailing_logs. Zero: the node's default.
	TrailingLogs uint64
	// EraseWithin is erasure.within of every replica. Zero: the node's default.
	EraseWithin time.Duration
	// RulesEvery is rules.every of every replica. Zero: the node's default.
	RulesEvery time.Duration
	// Peers are other orgs' nodes, listed in every replica's config.
	Peers []config.Peer
	// Roles are the roles section of every replica's config, as YAML list items under roles:.
	Roles []string
	// CommitTimeout is raft.commit_timeout of every replica. Zero: the node's default.
	CommitTimeout time.Duration
	// UI, when set, gives every replica a web interface on a loopback port of its own, whose
	// people sign in at this provider, and names each replica's in raft.servers[].ui.
	UI *config.OIDC
	// Feed, when set, gives every replica the alert feed on a loopback port of its own
	// (feed.listen).
	Feed bool
	// Extra is YAML appended to every replica's config, such as an attachments section.
	Extra string
	// Logger receives the in-process nodes' logs. Default: discarded, unless the environment
	// variable KNOOPPUNT_TEST_LOG is set, which sends them to stderr.
	Logger *slog.Logger
}

func (o *Options) defaults() {
	if o.Replicas == 0 {
		o.Replicas = 3
	}
	if o.ElectionTimeout == 0 {
		o.ElectionTimeout = 200 * time.Millisecond
	}
	if o.Logger == nil {
		if os.Getenv("KNOOPPUNT_TEST_LOG") != "" {
			o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
		} else {
			o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		}
	}
}

// Cluster is the replicas of one node.
type Cluster struct {
	TD       spiffeid.TrustDomain
	CA       *identity.DevCA
	Replicas []*Replica
	// BundleFile is the org's trust bundle.
	BundleFile string
	opts       Options
	dir        string
}

// Replica is one replica: its files, its addresses and, in-process, its running node.
type Replica struct {
	ID string
	// Dir holds certs/, data/ and node.yaml. It is short, because the node's unix socket path
	// must fit in 108 bytes.
	Dir string
	// API is the mTLS gRPC listener (listen), Raft the Raft transport (raft.listen).
	API, Raft string
	// Bootstrap is false for a replica that waits to be joined.
	Bootstrap bool
	// UI is the web interface's listener (ui.listen) when Options.UI is set.
	UI string
	// Feed is the alert feed's listener (feed.listen) when Options.Feed is set.
	Feed string
	// Node is the running in-process node, nil while stopped.
	Node *node.Node
	// ApplyLevel, when not 0, is the apply level the replica says at its next start
	// (node.Options.ApplyLevel): a test stands in a replica of another release with it.
	ApplyLevel uint32

	c     *Cluster
	mu    sync.Mutex
	conns []*grpc.ClientConn
	local *grpc.ClientConn
}

// DataDir is the replica's data directory.
func (r *Replica) DataDir() string { return filepath.Join(r.Dir, "data") }

// ConfigFile is the replica's config.
func (r *Replica) ConfigFile() string { return filepath.Join(r.Dir, "node.yaml") }

// SocketPath is the replica's local socket.
func (r *Replica) SocketPath() string { return filepath.Join(r.DataDir(), node.SocketName) }

// DBPath is the replica's database file.
func (r *Replica) DBPath() string { return filepath.Join(r.DataDir(), "knooppunt.db") }

// ShortDir is a fresh temporary directory with a short path, removed when the test ends.
func ShortDir(tb testing.TB) string {
	tb.Helper()
	d, err := os.MkdirTemp("", "kp")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// FreeAddr is a loopback address with a port that was free a moment ago and that no other test
// process holds. The port lies below the kernel's ephemeral range: a process restarted on the
// same address later (a replica that was killed, a peer that comes back) must find it free, and a
// port from that range can be taken in the meantime by any of the outgoing connections the tests
// make, each of which gets an ephemeral port. Test binaries of several packages run at once, and
// each starts nodes on ports it drew seconds before: a port is therefore reserved, by a file in
// the temporary directory, until the test ends, so that no other process draws it meanwhile.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	low := min(ephemeralLow(), maxTestPort)
	for range 200 {
		port := minTestPort + rand.IntN(low-minTestPort)
		release, ok := reservePort(port)
		if !ok {
			continue // another test process holds it: draw again
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			release()
			continue // taken: draw again
		}
		defer l.Close()
		tb.Cleanup(release)
		return l.Addr().String()
	}
	tb.Fatalf("no free port between %d and %d on 127.0.0.1", minTestPort, low)
	return ""
}

// reservationTTL is how long a reservation holds when the process that made it did not remove
// it (killed during a test).
const reservationTTL = 30 * time.Minute

// reservePort reserves port for this process: it creates a file named after the port, which
// must not exist or must be older than reservationTTL.
func reservePort(port int) (release func(), ok bool) {
	dir := filepath.Join(os.TempDir(), "knooppunt-test-ports")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return func() {}, true // no way to coordinate: the listen check alone decides
	}
	path := filepath.Join(dir, strconv.Itoa(port))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		fi, statErr := os.Stat(path)
		if statErr != nil || time.Since(fi.ModTime()) < reservationTTL {
			return nil, false
		}
		// A stale reservation: take it over.
		now := time.Now()
		if os.Chtimes(path, now, now) != nil {
			return nil, false
		}
	} else {
		f.Close()
	}
	return func() { os.Remove(path) }, true
}

// minTestPort is the lowest port FreeAddr draws, and maxTestPort the first above its range:
// `knooppunt demo` draws its nodes' ports from 20000 up (cmd/knooppunt, lowestDemoPort) without
// these reservations, and a demo run as a test beside other test packages lost a node to a port
// one of them had drawn a moment before.
const (
	minTestPort = 10000
	maxTestPort = 20000
)

// ephemeralLow is the first port of the kernel's ephemeral range (Linux: 32768 unless
// configured), or 32768 where it cannot be read.
func ephemeralLow() int {
	const fallback = 32768
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return fallback
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return fallback
	}
	low, err := strconv.Atoi(f[0])
	if err != nil || low < minTestPort+1000 {
		return fallback
	}
	return low
}

// New makes the org's CA, the replicas' SVIDs and directories, picks their ports and writes
// their config files. No node runs yet.
func New(tb testing.TB, opts Options) *Cluster {
	tb.Helper()
	opts.defaults()
	c := &Cluster{TD: spiffeid.RequireTrustDomainFromString(Org), opts: opts, dir: ShortDir(tb)}
	ca, err := identity.InitCA(c.TD, filepath.Join(c.dir, "ca"), 0)
	if err != nil {
		tb.Fatal(err)
	}
	c.CA = ca
	c.BundleFile = filepath.Join(c.dir, "ca", identity.BundleFile)
	for i := range opts.Replicas {
		c.Replicas = append(c.Replicas, c.newReplica(tb, fmt.Sprintf("r%d", i+1), true))
	}
	c.WriteConfigs(tb)
	return c
}

func (c *Cluster) newReplica(tb testing.TB, id string, bootstrap bool) *Replica {
	tb.Helper()
	r := &Replica{ID: id, Dir: ShortDir(tb), API: FreeAddr(tb), Raft: FreeAddr(tb), Bootstrap: bootstrap, c: c}
	if c.opts.UI != nil {
		r.UI = FreeAddr(tb)
	}
	if c.opts.Feed {
		r.Feed = FreeAddr(tb)
	}
	if err := c.CA.IssueFiles(spiffeid.RequireFromPath(c.TD, "/node/"+id), filepath.Join(r.Dir, "certs", id), identity.SVIDOptions{}); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(r.closeConns)
	return r
}

// Start makes a cluster and starts every replica in-process. The replicas start together: each
// waits in node.Start until the group has a leader, which takes a majority.
func Start(tb testing.TB, opts Options) *Cluster {
	tb.Helper()
	c := New(tb, opts)
	c.StartAll(tb)
	return c
}

// StartAll starts every stopped replica in-process, together.
func (c *Cluster) StartAll(tb testing.TB) {
	tb.Helper()
	var wg sync.WaitGroup
	errs := make([]error, len(c.Replicas))
	for i, r := range c.Replicas {
		if r.Node != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = r.start(tb)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			tb.Fatalf("start %s: %v", c.Replicas[i].ID, err)
		}
	}
}

// Replica returns the replica with the id.
func (c *Cluster) Replica(id string) *Replica {
	for _, r := range c.Replicas {
		if r.ID == id {
			return r
		}
	}
	panic("clustertest: no replica " + id)
}

// Running are the replicas whose in-process node runs.
func (c *Cluster) Running() []*Replica {
	var out []*Replica
	for _, r := range c.Replicas {
		if r.Node != nil {
			out = append(out, r)
		}
	}
	return out
}

// AddReplica prepares a new replica that waits to be joined (raft.bootstrap: false), adds its
// API address to raft.servers in every replica's config file, and reloads the running
// in-process nodes, so that they can forward writes to it should it lead. It does not start it.
func (c *Cluster) AddReplica(tb testing.TB, id string) *Replica {
	tb.Helper()
	r := c.newReplica(tb, id, false)
	c.Replicas = append(c.Replicas, r)
	c.WriteConfigs(tb)
	for _, o := range c.Running() {
		if err := o.Node.Reload(o.ConfigFile()); err != nil {
			tb.Fatalf("reload %s: %v", o.ID, err)
		}
	}
	return r
}

// WriteConfigs writes every replica's config file.
func (c *Cluster) WriteConfigs(tb testing.TB) {
	tb.Helper()
	for _, r := range c.Replicas {
		if err := os.WriteFile(r.ConfigFile(), []byte(c.Config(r)), 0o600); err != nil {
			tb.Fatal(err)
		}
	}
}

// Config is a replica's node config. Host:port values are quoted: YAML reads an unquoted one in
// a flow list as a mapping.
func (c *Cluster) Config(r *Replica) string {
	var b strings.Builder
	fmt.Fprintf(&b, "name: kc\norg: %s\nreplica_id: %s\nlisten: %q\n", c.TD.Name(), r.ID, r.API)
	fmt.Fprintf(&b, "identity:\n  source: files\n  cert_file: %s\n  key_file: %s\n  bundle_file: %s\n",
		filepath.Join(r.Dir, "certs", r.ID+".crt"), filepath.Join(r.Dir, "certs", r.ID+".key"), c.BundleFile)
	fmt.Fprintf(&b, "raft:\n  listen: %q\n", r.Raft)
	if c.opts.ElectionTimeout > 0 {
		fmt.Fprintf(&b, "  election_timeout: %s\n", c.opts.ElectionTimeout)
	}
	if c.opts.CommitTimeout > 0 {
		fmt.Fprintf(&b, "  commit_timeout: %s\n", c.opts.CommitTimeout)
	}
	if c.opts.SnapshotThreshold > 0 {
		fmt.Fprintf(&b, "  snapshot_threshold: %d\n", c.opts.SnapshotThreshold)
	}
	if c.opts.TrailingLogs > 0 {
		fmt.Fprintf(&b, "  trailing_logs: %d\n", c.opts.TrailingLogs)
	}
	if !r.Bootstrap {
		fmt.Fprintf(&b, "  bootstrap: false\n")
	}
	fmt.Fprintf(&b, "  servers:\n")
	// Every replica lists every replica, joined ones too: forwarding looks up the leader's API
	// address here. The list bootstraps a group only on an empty data directory.
	for _, s := range c.Replicas {
		fmt.Fprintf(&b, "    - id: %s\n      address: %q\n      api: %q\n", s.ID, s.Raft, s.API)
		if s.UI != "" {
			fmt.Fprintf(&b, "      ui: %q\n", "http://"+s.UI)
		}
	}
	if o := c.opts.UI; o != nil {
		fmt.Fprintf(&b, "ui:\n  listen: %q\n  oidc:\n    issuer: %q\n    client_id: %q\n", r.UI, o.Issuer, o.ClientID)
		if o.ClientSecretFile != "" {
			fmt.Fprintf(&b, "    client_secret_file: %q\n", o.ClientSecretFile)
		}
	}
	if r.Feed != "" {
		fmt.Fprintf(&b, "feed:\n  listen: %q\n", r.Feed)
	}
	if c.opts.EraseWithin > 0 {
		fmt.Fprintf(&b, "erasure:\n  within: %s\n", c.opts.EraseWithin)
	}
	if c.opts.RulesEvery > 0 {
		fmt.Fprintf(&b, "rules:\n  every: %s\n", c.opts.RulesEvery)
	}
	if len(c.opts.Roles) > 0 {
		fmt.Fprintf(&b, "roles:\n")
		for _, r := range c.opts.Roles {
			fmt.Fprintf(&b, "  - %s\n", r)
		}
	}
	if len(c.opts.Peers) > 0 {
		fmt.Fprintf(&b, "federation:\n  heartbeat: 250ms\n  idle_timeout: 1s\n")
		b.WriteString(PeersYAML(c.opts.Peers))
	}
	b.WriteString(c.opts.Extra)
	return b.String()
}

// PeersYAML is the peers section of a node config that lists peers. Host:port values are
// quoted: YAML reads an unquoted one in a flow list as a mapping.
func PeersYAML(peers []config.Peer) string {
	if len(peers) == 0 {
		return "peers: []\n"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "peers:\n")
	for _, p := range peers {
		quoted := make([]string, len(p.Addresses))
		for i, a := range p.Addresses {
			quoted[i] = fmt.Sprintf("%q", a)
		}
		fmt.Fprintf(&b, "  - name: %s\n    trust_domain: %s\n    addresses: [%s]\n    bundle_file: %s\n",
			p.Name, p.TrustDomain, strings.Join(quoted, ", "), p.BundleFile)
		if len(p.Groups) > 0 {
			fmt.Fprintf(&b, "    groups: [%s]\n", strings.Join(p.Groups, ", "))
		}
	}
	return b.String()
}

// StartNode starts a node in-process from a config file and a data directory, as `knooppunt
// serve` does, within 30 seconds. with changes the options, as to record traces.
func StartNode(configFile, dataDir, version string, log *slog.Logger, with ...func(*node.Options)) (*node.Node, error) {
	cfg, err := config.Load(configFile)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	opts := node.Options{DataDir: dataDir, Config: cfg, Version: version, Logger: log}
	for _, w := range with {
		w(&opts)
	}
	return node.Start(ctx, opts)
}

func (r *Replica) start(tb testing.TB) error {
	n, err := StartNode(r.ConfigFile(), r.DataDir(), "clustertest", r.c.opts.Logger.With("replica", r.ID),
		func(o *node.Options) { o.ApplyLevel = r.ApplyLevel })
	if err != nil {
		return err
	}
	r.Node = n
	tb.Cleanup(func() {
		if r.Node == n {
			r.stop()
		}
	})
	return nil
}

// Start starts (or restarts) the replica in-process from its config file and data directory.
// A bootstrapping replica returns once the group has a leader.
func (r *Replica) Start(tb testing.TB) {
	tb.Helper()
	if r.Node != nil {
		tb.Fatalf("%s is already running", r.ID)
	}
	if err := r.start(tb); err != nil {
		tb.Fatalf("start %s: %v", r.ID, err)
	}
}

// Stop stops the replica's in-process node cleanly.
func (r *Replica) Stop(tb testing.TB) {
	tb.Helper()
	if r.Node == nil {
		tb.Fatalf("%s is not running", r.ID)
	}
	if err := r.stop(); err != nil {
		tb.Fatalf("stop %s: %v", r.ID, err)
	}
}

// Kill takes the replica away as abruptly as an in-process node allows: it is first cut off
// from its group, so that from the other replicas' side it stops in the middle of whatever it
// was doing, and then stopped. What it had not replicated to a majority when it was cut off
// never commits.
func (r *Replica) Kill(tb testing.TB) {
	tb.Helper()
	if r.Node == nil {
		tb.Fatalf("%s is not running", r.ID)
	}
	r.Node.Store().Isolate(true)
	r.stop() // errors of writes that could not commit are expected here
}

func (r *Replica) stop() error {
	n := r.Node
	r.Node = nil
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return n.Stop(ctx)
}

// SetBootstrap sets raft.bootstrap in the replica's config file (false: the replica waits to be
// brought in by the group's leader) for its next start.
func (r *Replica) SetBootstrap(tb testing.TB, bootstrap bool) {
	tb.Helper()
	r.Bootstrap = bootstrap
	r.c.WriteConfigs(tb)
}

// Wipe removes the replica's data directory: the database, the Raft log and the snapshots.
func (r *Replica) Wipe(tb testing.TB) {
	tb.Helper()
	if r.Node != nil {
		tb.Fatalf("%s is running: stop it before wiping its disk", r.ID)
	}
	if err := os.RemoveAll(r.DataDir()); err != nil {
		tb.Fatal(err)
	}
}

// A short reconnect backoff: test clients outlive replica restarts and must not wait grpc's
// default second (and more) to notice the replica is back.
var quickReconnect = grpc.WithConnectParams(grpc.ConnectParams{
	Backoff:           backoff.Config{BaseDelay: 10 * time.Millisecond, Multiplier: 1.5, MaxDelay: 100 * time.Millisecond},
	MinConnectTimeout: time.Second,
})

// Local is the test's shared connection to the replica's local socket (the Local role: it may
// write records and administer the group). It works for in-process replicas and processes.
func (r *Replica) Local(tb testing.TB) *grpc.ClientConn {
	tb.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.local == nil {
		r.local = r.dialLocal(tb)
	}
	return r.local
}

// NewLocal is a connection of its own to the replica's local socket, for a client that must
// not share one (each client of a linearizability history, each benchmark writer).
func (r *Replica) NewLocal(tb testing.TB) *grpc.ClientConn {
	tb.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.dialLocal(tb)
}

func (r *Replica) dialLocal(tb testing.TB) *grpc.ClientConn {
	tb.Helper()
	conn, err := grpc.NewClient("unix://"+r.SocketPath(), grpc.WithTransportCredentials(insecure.NewCredentials()), quickReconnect)
	if err != nil {
		tb.Fatal(err)
	}
	r.conns = append(r.conns, conn)
	return conn
}

func (r *Replica) closeConns() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.conns {
		c.Close()
	}
	r.conns, r.local = nil, nil
}

// Records is a RecordService client on the replica's local socket.
func (r *Replica) Records(tb testing.TB) pb.RecordServiceClient {
	return pb.NewRecordServiceClient(r.Local(tb))
}

// Call is a context for one call: 10s, within the test.
func Call(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

// Put writes a record through the replica's local socket, retrying for up to 20s while the
// group has no leader (UNAVAILABLE), as a client of a replicated node does.
//
// When the leader is deposed while the write is being committed (ABORTED: it may have been
// stored), Put reads the record: a version above the one it had before means the write was
// applied, and Put answers it, as a client must, instead of writing it twice.
func (r *Replica) Put(tb testing.TB, rec *pb.Record) *pb.PutResponse {
	tb.Helper()
	var before int64
	if got, err := r.Records(tb).Get(Call(tb), &pb.GetRequest{Id: rec.Id, Mode: db.ModeOf(rec).Proto()}); err == nil {
		before = got.Version
	}
	var resp *pb.PutResponse
	untilLed(tb, "write "+rec.Id+" through "+r.ID, func() (err error) {
		resp, err = r.Records(tb).Put(Call(tb), &pb.PutRequest{Record: rec})
		if status.Code(err) != codes.Aborted || !strings.Contains(status.Convert(err).Message(), "may have been stored") {
			return err
		}
		got, gerr := r.Records(tb).Get(Call(tb), &pb.GetRequest{Id: rec.Id, Consistency: "strong", Mode: db.ModeOf(rec).Proto()})
		switch {
		case gerr == nil && got.Version > before:
			resp = &pb.PutResponse{Id: got.Id, Version: got.Version, UpdatedAt: got.UpdatedAt}
			return nil
		case gerr == nil || status.Code(gerr) == codes.NotFound || status.Code(gerr) == codes.Unavailable:
			return status.Error(codes.Unavailable, "not stored: write it again") // read again, then write
		}
		return gerr
	})
	return resp
}

// untilLed makes the call what does until it succeeds, while it fails UNAVAILABLE (the group
// had no leader, and the call was never proposed), for up to 20 s; any other error fails tb.
func untilLed(tb testing.TB, what string, call func() error) {
	tb.Helper()
	Eventually(tb, 20*time.Second, what, func() (bool, string) {
		err := call()
		if status.Code(err) != codes.Unavailable && err != nil {
			tb.Fatalf("%s: %v", what, err)
		}
		return err == nil, fmt.Sprint(err)
	})
}

// Delete deletes the record through the replica, trying again while the group has no leader
// (UNAVAILABLE: such a call was never proposed), as Put does.
func (r *Replica) Delete(tb testing.TB, id string) {
	tb.Helper()
	untilLed(tb, "delete "+id+" through "+r.ID, func() error {
		_, err := r.Records(tb).Delete(Call(tb), &pb.DeleteRequest{Id: id})
		return err
	})
}

// Status is the replica's view of its group, or an error when it does not answer.
func (r *Replica) Status(ctx context.Context, tb testing.TB) (*pb.ClusterStatusResponse, error) {
	return pb.NewClusterServiceClient(r.Local(tb)).Status(ctx, &pb.ClusterStatusRequest{})
}

// Leader waits, up to within, until one of among leads and every one of among agrees that it
// does, and returns it.
func (c *Cluster) Leader(tb testing.TB, within time.Duration, among ...*Replica) *Replica {
	tb.Helper()
	var leader *Replica
	Eventually(tb, within, "a leader that all of "+ids(among)+" agree on", func() (bool, string) {
		leader = nil
		var views []string
		agreed := ""
		for i, r := range among {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			st, err := r.Status(ctx, tb)
			cancel()
			if err != nil {
				return false, fmt.Sprintf("%s: %v", r.ID, err)
			}
			views = append(views, fmt.Sprintf("%s is %s, leader %q", r.ID, st.State, st.Leader))
			if st.Leader == "" || (i > 0 && st.Leader != agreed) {
				return false, strings.Join(views, "; ")
			}
			agreed = st.Leader
			if st.State == "Leader" {
				leader = r
			}
		}
		return leader != nil && leader.ID == agreed, strings.Join(views, "; ")
	})
	return leader
}

// Converged waits, up to within, until among have applied the same Raft entries and hold the
// same change feed: the same applied index, commit index, change-feed sequence number and
// record count on each.
func (c *Cluster) Converged(tb testing.TB, within time.Duration, among ...*Replica) {
	tb.Helper()
	Eventually(tb, within, "replicas "+ids(among)+" converged", func() (bool, string) {
		var views []string
		var first string
		same := true
		for i, r := range among {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			cs, err := r.Status(ctx, tb)
			if err != nil {
				cancel()
				return false, fmt.Sprintf("%s: %v", r.ID, err)
			}
			ns, err := pb.NewStatusServiceClient(r.Local(tb)).Status(ctx, &pb.StatusRequest{})
			cancel()
			if err != nil {
				return false, fmt.Sprintf("%s: %v", r.ID, err)
			}
			view := fmt.Sprintf("applied %d, committed %d, seq %d, records %d", cs.AppliedIndex, cs.CommitIndex, ns.LastSeq, ns.Records)
			// Who leads as each sees it, for a failure's message: not compared.
			views = append(views, fmt.Sprintf("%s (%s, leader %q, last snapshot %d): %s", r.ID, cs.State, cs.Leader, cs.LastSnapshotIndex, view))
			if cs.AppliedIndex != cs.CommitIndex || (i > 0 && view != first) {
				same = false
			}
			if i == 0 {
				first = view
			}
		}
		return same, strings.Join(views, "; ")
	})
}

func ids(rs []*Replica) string {
	var s []string
	for _, r := range rs {
		s = append(s, r.ID)
	}
	return strings.Join(s, ",")
}

// Checksum is the SHA-256 of the records table of a stopped replica's database, every column of
// every row in id order, and the number of rows. It opens the file read-only.
func Checksum(tb testing.TB, dbPath string) (string, int) {
	tb.Helper()
	h, err := sql.Open("sqlite3", db.FileURI(dbPath, "mode=ro&_busy_timeout=5000"))
	if err != nil {
		tb.Fatal(err)
	}
	defer h.Close()
	rows, err := h.Query(`SELECT id, origin, kind, crisis, region, classification, labels, body, version,
		updated_at, valid_until, tombstone, seq, status, exercise FROM records ORDER BY id`)
	if err != nil {
		tb.Fatalf("checksum %s: %v", dbPath, err)
	}
	defer rows.Close()
	sum := sha256.New()
	n := 0
	for rows.Next() {
		var (
			id, origin, kind, crisis, region, labels, exercise string
			body                                               []byte
			class, version, updated, valid, tomb, sq, status   int64
		)
		if err := rows.Scan(&id, &origin, &kind, &crisis, &region, &class, &labels, &body, &version, &updated, &valid, &tomb, &sq, &status, &exercise); err != nil {
			tb.Fatalf("checksum %s: %v", dbPath, err)
		}
		fmt.Fprintf(sum, "%q %q %q %q %q %d %q %q %d %d %d %d %d %d %q\n", id, origin, kind, crisis, region, class, labels, body, version, updated, valid, tomb, sq, status, exercise)
		n++
	}
	if err := rows.Err(); err != nil {
		tb.Fatalf("checksum %s: %v", dbPath, err)
	}
	return hex.EncodeToString(sum.Sum(nil)), n
}

// Eventually waits, up to within, until cond holds, checking every 10ms. When it does not, the
// test fails with what and the last state cond described.
func Eventually(tb testing.TB, within time.Duration, what string, cond func() (bool, string)) {
	tb.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not within %s; last: %s", what, within, state)
		}
		<-tick.C
	}
}

// Shelter is a shelter.capacity record whose beds_free is free.
func Shelter(id string, free int64) *pb.Record {
	return &pb.Record{
		Id: id, Kind: "shelter.capacity", Crisis: "oekraine", Region: "VR09",
		Classification: pb.Classification_INTERNAL,
		Body:           fmt.Appendf(nil, `{"municipality":"Utrecht","beds_total":1000000000,"beds_free":%d}`, free),
	}
}

// EachFile calls fn with the path (relative to dir) and the raw bytes of every regular file under
// dir, for tests that look for what a node left on disk. A file that goes away while the walk
// runs, such as a snapshot or a log segment being replaced, is passed over.
func EachFile(tb testing.TB, dir string, fn func(rel string, data []byte)) {
	tb.Helper()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		data, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		fn(rel, data)
		return nil
	})
	if err != nil {
		tb.Fatalf("walk %s: %v", dir, err)
	}
}

// ApplyRule stores an early-warning rule as the org's editor (spiffe://TD/user/editor, which
// Options.Roles must make an editor), over mTLS through r, following the leader.
func (c *Cluster) ApplyRule(tb testing.TB, r *Replica, src string) {
	tb.Helper()
	editor := identitytest.SVID(tb, c.CA, "/user/editor", identity.SVIDOptions{})
	creds := identity.ClientCredentials(editor, identitytest.Bundle(c.CA), identity.AuthorizeReplica(c.TD))
	conn, err := grpc.NewClient(r.API, grpc.WithTransportCredentials(creds), grpc.WithChainUnaryInterceptor(api.FollowLeader(creds)))
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close()
	if _, err := pb.NewRuleServiceClient(conn).Apply(Call(tb), &pb.ApplyRuleRequest{Source: []byte(src)}); err != nil {
		tb.Fatalf("apply the rule through %s: %v", r.ID, err)
	}
}

// Alerts are the replica's alert records as id=status, sorted.
func (r *Replica) Alerts(tb testing.TB) []string {
	tb.Helper()
	resp, err := r.Records(tb).List(Call(tb), &pb.ListRequest{Kind: "alert"})
	if err != nil {
		tb.Fatal(err)
	}
	var out []string
	for _, rec := range resp.Records {
		out = append(out, rec.Id+"="+rec.Labels["status"])
	}
	slices.Sort(out)
	return out
}

// WaitAlerts waits, up to 30s, until the replica's alerts (as Alerts gives them) satisfy ok, and
// returns them.
func (r *Replica) WaitAlerts(tb testing.TB, what string, ok func([]string) bool) []string {
	tb.Helper()
	var got []string
	Eventually(tb, 30*time.Second, what+" on "+r.ID, func() (bool, string) {
		got = r.Alerts(tb)
		return ok(got), fmt.Sprint(got)
	})
	return got
}

// ZeelandBedsLow is an early-warning rule on free beds in VR19: it fires under 10 and clears
// above 20.
const ZeelandBedsLow = `name: zeeland-beds-low
severity: severe
crisis: oekraine
regions: [VR19]
when: sum("shelter.capacity", "beds_free") < 10
clear: sum("shelter.capacity", "beds_free") > 20
`

// PutBeds writes Middelburg's shelter record in VR19 with free beds through r.
func (r *Replica) PutBeds(tb testing.TB, free int) {
	tb.Helper()
	r.Put(tb, &pb.Record{Id: "middelburg", Kind: "shelter.capacity", Crisis: "oekraine", Region: "VR19", Classification: pb.Classification_INTERNAL,
		Body: fmt.Appendf(nil, `{"municipality":"Middelburg","beds_total":100,"beds_free":%d}`, free)})
}

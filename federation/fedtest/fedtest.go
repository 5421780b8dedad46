// Package fedtest builds federations of organisations for tests and benchmarks. Each
// organisation gets its own trust domain and development CA, the SVIDs of its node (on disk, for
// the node's files source) and of two officers and its node replica (in memory, for clients), and
// a config file that names every other organisation as a peer. The nodes run in-process (Start)
// or as `knooppunt serve` processes that the caller starts from the prepared files (Prepare).
//
// fedtest uses only real parts: real nodes, real mTLS with SPIFFE IDs, real SQLite and Raft. It
// never fakes a node; tests that need a misbehaving peer write one against PeerIdentity.
package fedtest

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/time/rate"

	"github.com/knooppunt/knooppunt/federation/identity"
	"github.com/knooppunt/knooppunt/node"
	"github.com/knooppunt/knooppunt/node/clustertest"
	"github.com/knooppunt/knooppunt/node/config"
)

// Options shape a federation.
type Options struct {
	// Orgs is the number of organisations, named a, b, c, ... (aa, ab, ... past z). Default 4.
	Orgs int
	// Groups gives an organisation's peer groups by its name. Default: every org is in "all".
	Groups func(name string) []string
	// Heartbeat, Reevaluate and IdleTimeout are the federation knobs of every node. Defaults
	// 250ms, 2s and 1s, so that a test sees a dead stream within a second.
	Heartbeat, Reevaluate, IdleTimeout time.Duration
	// EventsPerSecond bounds the events a node takes in from one peer. Zero: the node default.
	EventsPerSecond float64
	// PeerRequestsPerSecond and PeerCalls bound the FederationService calls of one peer to a
	// node. Zero: the node defaults.
	PeerRequestsPerSecond float64
	PeerCalls             int
	// Purpose gives an org's federation.purpose, the purpose its node states on subscriptions
	// and searches, by its name. Default: none.
	Purpose func(name string) string
	// WitnessInterval is every node's federation.witness_interval. Zero: the node default.
	WitnessInterval time.Duration
	// EraseWithin is every node's erasure.within. Zero: the node default.
	EraseWithin time.Duration
	// Metrics gives each org a /metrics listener (Prepare only: in-process nodes share the
	// process's registry, which tests read directly).
	Metrics bool
	// PeersOf, when set, limits the peers in an org's config to the names it returns. Default:
	// every other org.
	PeersOf func(name string) []string
	// Via, when set, gives the address from's node dials to reach to's, such as a proxy in front
	// of to's node; "" dials to's own address.
	Via func(from, to *Org) string
	// Kinds are declared in every org's config in place of the built-in demo kinds, each with
	// its schema inline or in a schema_file (a relative path is read from the org's Dir).
	Kinds []config.KindConfig
	// Names, when set, name the orgs instead of a, b, c, ...; org i's trust domain is then
	// Names[i].crisis.test. It must have Orgs entries.
	Names []string
	// Roles, when set, gives an org's role bindings besides its two officers, by its name, each
	// as a YAML flow mapping such as {id: spiffe://vr-utrecht.crisis.test/user/ada, role: admin}.
	Roles func(name string) []string
	// Extra, when set, gives YAML appended to an org's config by its name, such as a ui section.
	Extra func(name string) string
	// Tracing, when set, gives the tracer provider an org's node records its traces to (see
	// node.Options.TracerProvider); nil for an org records none.
	Tracing func(name string) trace.TracerProvider
	// PictureBytes is every in-process node's bound of a picture's answer (node.Options). Zero:
	// the node default, search.MaxAnswerBytes.
	PictureBytes int
	// SearchRate is every in-process node's limit of searches that ask the partners, per caller
	// and in all (node.Options). Zero: the node's defaults; rate.Inf: none.
	SearchRate rate.Limit
	// Logger receives the in-process nodes' logs. Default: discarded, unless the environment
	// variable KNOOPPUNT_TEST_LOG is set, which sends them to stderr.
	Logger *slog.Logger
}

func (o *Options) defaults() {
	if o.Orgs == 0 {
		o.Orgs = 4
	}
	if o.Groups == nil {
		o.Groups = func(string) []string { return []string{"all"} }
	}
	if o.Heartbeat == 0 {
		o.Heartbeat = 250 * time.Millisecond
	}
	if o.Reevaluate == 0 {
		o.Reevaluate = 2 * time.Second
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = time.Second
	}
	if o.Logger == nil {
		if os.Getenv("KNOOPPUNT_TEST_LOG") != "" {
			o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
		} else {
			o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		}
	}
}

// Federation is a set of organisations that are each other's peers.
type Federation struct {
	Orgs []*Org
	opts Options

	mu    sync.Mutex
	extra []config.Peer // peers that are not orgs of the federation, such as test fakes
	// dropped are the peers DropPeer took out of an org's config file, by the org's name.
	dropped map[string][]string
}

// Org is one organisation: its PKI, its files, and, in-process, its running node.
type Org struct {
	Name   string
	TD     spiffeid.TrustDomain
	Groups []string
	// Dir holds ca/, certs/, data/ and node.yaml. It is short, because the node's unix socket
	// path must fit in 108 bytes.
	Dir  string
	CA   *identity.DevCA
	Addr string // the node's mTLS listener, host:port
	// MetricsAddr is the node's /metrics listener when Options.Metrics is set.
	MetricsAddr string
	// Officers are two officers of the org; Replica is an SVID of the org's node, for tests
	// that call a peer as this org.
	Officers [2]*x509svid.SVID
	Replica  *x509svid.SVID
	// Node is the running in-process node, nil while stopped.
	Node *node.Node

	fed   *Federation
	mu    sync.Mutex
	conns map[string]*connEntry
}

// DataDir is the org's node data directory.
func (o *Org) DataDir() string { return filepath.Join(o.Dir, "data") }

// ConfigFile is the org's node config.
func (o *Org) ConfigFile() string { return filepath.Join(o.Dir, "node.yaml") }

// BundleFile is the org's trust bundle, the file handed to peers at onboarding.
func (o *Org) BundleFile() string { return filepath.Join(o.Dir, "ca", identity.BundleFile) }

// Bundle is the org's trust bundle.
func (o *Org) Bundle() *x509bundle.Bundle {
	return x509bundle.FromX509Authorities(o.TD, []*x509.Certificate{o.CA.Cert})
}

// SocketPath is the node's local socket.
func (o *Org) SocketPath() string { return filepath.Join(o.DataDir(), node.SocketName) }

// Org returns the org named name.
func (f *Federation) Org(name string) *Org {
	for _, o := range f.Orgs {
		if o.Name == name {
			return o
		}
	}
	panic("fedtest: no org " + name)
}

// OrgName is the name of the i-th org: a, b, ..., z, aa, ab, ...
func OrgName(i int) string {
	if i < 26 {
		return string(rune('a' + i))
	}
	return OrgName(i/26-1) + string(rune('a'+i%26))
}

// Hub is a PeersOf for a federation of n+1 orgs in which the first, a, peers with the n others
// and each of them with a only.
func Hub(n int) func(name string) []string {
	return func(name string) []string {
		if name != "a" {
			return []string{"a"}
		}
		all := make([]string, 0, n)
		for i := 1; i <= n; i++ {
			all = append(all, OrgName(i))
		}
		return all
	}
}

// TrustDomainOf is the trust domain of the org named name.
func TrustDomainOf(name string) string { return name + ".crisis.test" }

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

// New makes the organisations' CAs, SVIDs and directories. No node runs yet and no config is
// written: Start does both in-process, Prepare writes configs for processes.
func New(tb testing.TB, opts Options) *Federation {
	tb.Helper()
	opts.defaults()
	f := &Federation{opts: opts}
	if opts.Names != nil && len(opts.Names) != opts.Orgs {
		tb.Fatalf("fedtest: %d names for %d orgs", len(opts.Names), opts.Orgs)
	}
	for i := range opts.Orgs {
		name := OrgName(i)
		if opts.Names != nil {
			name = opts.Names[i]
		}
		td := spiffeid.RequireTrustDomainFromString(TrustDomainOf(name))
		o := &Org{Name: name, TD: td, Groups: opts.Groups(name), Dir: ShortDir(tb), fed: f, conns: map[string]*connEntry{}}
		ca, err := identity.InitCA(td, filepath.Join(o.Dir, "ca"), 0)
		if err != nil {
			tb.Fatal(err)
		}
		o.CA = ca
		if err := ca.IssueFiles(spiffeid.RequireFromPath(td, "/node/r1"), filepath.Join(o.Dir, "certs", "r1"), identity.SVIDOptions{}); err != nil {
			tb.Fatal(err)
		}
		o.Officers[0] = o.Issue(tb, "/user/officer-a")
		o.Officers[1] = o.Issue(tb, "/user/officer-b")
		o.Replica = o.Issue(tb, "/node/r1")
		f.Orgs = append(f.Orgs, o)
		tb.Cleanup(o.closeConns)
	}
	return f
}

// Issue mints an in-memory SVID of the org for path, such as /user/anna.
func (o *Org) Issue(tb testing.TB, path string) *x509svid.SVID {
	tb.Helper()
	id := spiffeid.RequireFromPath(o.TD, path)
	chain, key, err := o.CA.Issue(id, identity.SVIDOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	return &x509svid.SVID{ID: id, Certificates: chain, PrivateKey: key}
}

// Prepare makes a federation for processes: free loopback ports are picked for every org and
// the config files written. Start each node with `knooppunt serve --data-dir DataDir()
// --config ConfigFile()`.
func Prepare(tb testing.TB, opts Options) *Federation {
	tb.Helper()
	f := New(tb, opts)
	for _, o := range f.Orgs {
		o.Addr = clustertest.FreeAddr(tb)
		if f.opts.Metrics {
			o.MetricsAddr = clustertest.FreeAddr(tb)
		}
	}
	f.WriteConfigs(tb)
	return f
}

// Start runs every org's node in-process. Each node first listens on a free port; once all
// listen, the configs are written with every peer's address and the nodes reload them.
func Start(tb testing.TB, opts Options) *Federation {
	tb.Helper()
	f := New(tb, opts)
	errs := make([]error, len(f.Orgs))
	var wg sync.WaitGroup
	for i, o := range f.Orgs {
		if err := os.WriteFile(o.ConfigFile(), []byte(o.config("127.0.0.1:0", nil)), 0o600); err != nil {
			tb.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = o.start(tb)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			tb.Fatalf("start %s: %v", f.Orgs[i].Name, err)
		}
	}
	for _, o := range f.Orgs {
		o.Addr = o.Node.Addr().String()
	}
	f.WriteConfigs(tb)
	f.Reload(tb)
	return f
}

// WriteConfigs writes every org's config file with every peer's address.
func (f *Federation) WriteConfigs(tb testing.TB) {
	tb.Helper()
	f.mu.Lock()
	extra := append([]config.Peer(nil), f.extra...)
	dropped := maps.Clone(f.dropped)
	f.mu.Unlock()
	for _, o := range f.Orgs {
		var peers []config.Peer
		for _, p := range f.Orgs {
			if p == o || (f.opts.PeersOf != nil && !slices.Contains(f.opts.PeersOf(o.Name), p.Name)) || slices.Contains(dropped[o.Name], p.Name) {
				continue
			}
			addr := p.Addr
			if f.opts.Via != nil {
				if v := f.opts.Via(o, p); v != "" {
					addr = v
				}
			}
			peers = append(peers, config.Peer{Name: p.Name, TrustDomain: p.TD.Name(), Addresses: []string{addr}, BundleFile: p.BundleFile(), Groups: p.Groups})
		}
		peers = append(peers, extra...)
		if err := os.WriteFile(o.ConfigFile(), []byte(o.config(o.Addr, peers)), 0o600); err != nil {
			tb.Fatal(err)
		}
	}
}

// Reload makes every running in-process node reload its config file.
func (f *Federation) Reload(tb testing.TB) {
	tb.Helper()
	for _, o := range f.Orgs {
		if o.Node != nil {
			if err := o.Node.Reload(o.ConfigFile()); err != nil {
				tb.Fatalf("reload %s: %v", o.Name, err)
			}
		}
	}
}

// DropPeer rewrites o's config file without the peer named name, and reloads o.
func (f *Federation) DropPeer(tb testing.TB, o *Org, name string) {
	tb.Helper()
	f.mu.Lock()
	if f.dropped == nil {
		f.dropped = map[string][]string{}
	}
	f.dropped[o.Name] = append(f.dropped[o.Name], name)
	f.mu.Unlock()
	f.WriteConfigs(tb)
	if err := o.Node.Reload(o.ConfigFile()); err != nil {
		tb.Fatalf("reload %s: %v", o.Name, err)
	}
}

// AddPeers adds peers that are not orgs of the federation, such as test fakes, to every org's
// config, and reloads the running in-process nodes.
func (f *Federation) AddPeers(tb testing.TB, peers ...config.Peer) {
	tb.Helper()
	f.mu.Lock()
	f.extra = append(f.extra, peers...)
	f.mu.Unlock()
	f.WriteConfigs(tb)
	f.Reload(tb)
}

// config is the org's node config. Host:port values are quoted: YAML reads an unquoted one in a
// flow list as a mapping.
func (o *Org) config(listen string, peers []config.Peer) string {
	opts := o.fed.opts
	var b strings.Builder
	fmt.Fprintf(&b, "name: %s\norg: %s\nlisten: %q\n", o.Name, o.TD.Name(), listen)
	if o.MetricsAddr != "" {
		fmt.Fprintf(&b, "metrics_addr: %q\n", o.MetricsAddr)
	}
	fmt.Fprintf(&b, "identity:\n  source: files\n  cert_file: %s\n  key_file: %s\n  bundle_file: %s\n",
		filepath.Join(o.Dir, "certs", "r1.crt"), filepath.Join(o.Dir, "certs", "r1.key"), o.BundleFile())
	fmt.Fprintf(&b, "raft:\n  election_timeout: 50ms\n")
	fmt.Fprintf(&b, "federation:\n  heartbeat: %s\n  reevaluate: %s\n  idle_timeout: %s\n", opts.Heartbeat, opts.Reevaluate, opts.IdleTimeout)
	if opts.EventsPerSecond > 0 {
		fmt.Fprintf(&b, "  events_per_second: %g\n", opts.EventsPerSecond)
	}
	if opts.PeerRequestsPerSecond > 0 {
		fmt.Fprintf(&b, "  peer_requests_per_second: %g\n", opts.PeerRequestsPerSecond)
	}
	if opts.PeerCalls > 0 {
		fmt.Fprintf(&b, "  peer_calls: %d\n", opts.PeerCalls)
	}
	if opts.WitnessInterval > 0 {
		fmt.Fprintf(&b, "  witness_interval: %s\n", opts.WitnessInterval)
	}
	if opts.Purpose != nil {
		q, _ := json.Marshal(opts.Purpose(o.Name))
		fmt.Fprintf(&b, "  purpose: %s\n", q)
	}
	if opts.EraseWithin > 0 {
		fmt.Fprintf(&b, "erasure:\n  within: %s\n", opts.EraseWithin)
	}
	b.WriteString(kindsYAML(opts.Kinds))
	fmt.Fprintf(&b, "roles:\n")
	for _, s := range o.Officers {
		fmt.Fprintf(&b, "  - id: %s\n    role: officer\n", s.ID)
	}
	if opts.Roles != nil {
		for _, r := range opts.Roles(o.Name) {
			fmt.Fprintf(&b, "  - %s\n", r)
		}
	}
	b.WriteString(clustertest.PeersYAML(peers))
	if opts.Extra != nil {
		b.WriteString(opts.Extra(o.Name))
	}
	return b.String()
}

// kindsYAML is the kinds section of a config, empty for none. Strings are quoted as JSON, which
// YAML reads as its double-quoted strings; an inline schema is compacted JSON, which YAML reads
// as a flow mapping.
func kindsYAML(kinds []config.KindConfig) string {
	if len(kinds) == 0 {
		return ""
	}
	q := func(s string) string { j, _ := json.Marshal(s); return string(j) }
	var b strings.Builder
	b.WriteString("kinds:\n")
	for _, k := range kinds {
		fmt.Fprintf(&b, "  - name: %s\n", q(k.Name))
		if k.Description != "" {
			fmt.Fprintf(&b, "    description: %s\n", q(k.Description))
		}
		if len(k.Aggregate) > 0 {
			agg := make([]string, len(k.Aggregate))
			for i, a := range k.Aggregate {
				agg[i] = q(a)
			}
			fmt.Fprintf(&b, "    aggregate: [%s]\n", strings.Join(agg, ", "))
		}
		if len(k.Schema) > 0 {
			var c bytes.Buffer
			if err := json.Compact(&c, k.Schema); err != nil {
				panic(fmt.Sprintf("fedtest: kind %s: schema: %v", k.Name, err))
			}
			fmt.Fprintf(&b, "    schema: %s\n", c.String())
		}
		if k.SchemaFile != "" {
			fmt.Fprintf(&b, "    schema_file: %s\n", q(k.SchemaFile))
		}
	}
	return b.String()
}

func (o *Org) start(tb testing.TB) error {
	var tp trace.TracerProvider
	if o.fed.opts.Tracing != nil {
		tp = o.fed.opts.Tracing(o.Name)
	}
	n, err := clustertest.StartNode(o.ConfigFile(), o.DataDir(), "fedtest", o.fed.opts.Logger.With("org", o.Name),
		func(opts *node.Options) {
			opts.TracerProvider, opts.PictureBytes = tp, o.fed.opts.PictureBytes
			opts.SearchCallerRate, opts.SearchNodeRate = o.fed.opts.SearchRate, o.fed.opts.SearchRate
		})
	if err != nil {
		return err
	}
	o.Node = n
	tb.Cleanup(func() {
		if o.Node == n {
			o.stop()
		}
	})
	return nil
}

// Start starts (or restarts) the org's node in-process from its config file and data directory.
func (o *Org) Start(tb testing.TB) {
	tb.Helper()
	if o.Node != nil {
		tb.Fatalf("%s is already running", o.Name)
	}
	if err := o.start(tb); err != nil {
		tb.Fatalf("start %s: %v", o.Name, err)
	}
	if got := o.Node.Addr().String(); got != o.Addr {
		tb.Fatalf("%s listens on %s, its peers expect %s", o.Name, got, o.Addr)
	}
}

// Stop stops the org's in-process node.
func (o *Org) Stop(tb testing.TB) {
	tb.Helper()
	if o.Node == nil {
		tb.Fatalf("%s is not running", o.Name)
	}
	if err := o.stop(); err != nil {
		tb.Fatalf("stop %s: %v", o.Name, err)
	}
}

func (o *Org) stop() error {
	n := o.Node
	o.Node = nil
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return n.Stop(ctx)
}

// PeerIdentity is the PKI of a peer that is not a node of the federation, such as a fake peer in
// a test: its trust domain, its CA and bundle file, and the SVID of its "node".
type PeerIdentity struct {
	Name       string
	TD         spiffeid.TrustDomain
	CA         *identity.DevCA
	BundleFile string
	SVID       *x509svid.SVID
}

// NewPeerIdentity makes the PKI of a peer named name, of trust domain name.crisis.test.
func NewPeerIdentity(tb testing.TB, name string) *PeerIdentity {
	tb.Helper()
	td := spiffeid.RequireTrustDomainFromString(TrustDomainOf(name))
	dir := ShortDir(tb)
	ca, err := identity.InitCA(td, filepath.Join(dir, "ca"), 0)
	if err != nil {
		tb.Fatal(err)
	}
	id := spiffeid.RequireFromPath(td, "/node/r1")
	chain, key, err := ca.Issue(id, identity.SVIDOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	return &PeerIdentity{Name: name, TD: td, CA: ca, BundleFile: filepath.Join(dir, "ca", identity.BundleFile),
		SVID: &x509svid.SVID{ID: id, Certificates: chain, PrivateKey: key}}
}

// Bundle is the peer's trust bundle.
func (p *PeerIdentity) Bundle() *x509bundle.Bundle {
	return x509bundle.FromX509Authorities(p.TD, []*x509.Certificate{p.CA.Cert})
}

// Peer is the peer's entry in an org's config, listening at addr.
func (p *PeerIdentity) Peer(addr string, groups ...string) config.Peer {
	return config.Peer{Name: p.Name, TrustDomain: p.TD.Name(), Addresses: []string{addr}, BundleFile: p.BundleFile, Groups: groups}
}

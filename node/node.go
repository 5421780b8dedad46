// Package node wires one replica of a Knooppunt node: the SQLite database, the Raft store, the
// gRPC services on the local socket, and /metrics. It owns start-up order and clean shutdown;
// the parts it wires own everything else.
package node

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/raft"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/federation/identity"
	"github.com/knooppunt/knooppunt/federation/peerclient"
	"github.com/knooppunt/knooppunt/federation/peerserver"
	"github.com/knooppunt/knooppunt/federation/search"
	"github.com/knooppunt/knooppunt/federation/witness"
	"github.com/knooppunt/knooppunt/node/alerting"
	"github.com/knooppunt/knooppunt/node/api"
	"github.com/knooppunt/knooppunt/node/api/attachments"
	"github.com/knooppunt/knooppunt/node/api/audit"
	"github.com/knooppunt/knooppunt/node/api/cluster"
	"github.com/knooppunt/knooppunt/node/api/exercises"
	"github.com/knooppunt/knooppunt/node/api/nodestatus"
	"github.com/knooppunt/knooppunt/node/api/peers"
	"github.com/knooppunt/knooppunt/node/api/phases"
	"github.com/knooppunt/knooppunt/node/api/policies"
	"github.com/knooppunt/knooppunt/node/api/records"
	"github.com/knooppunt/knooppunt/node/api/rules"
	"github.com/knooppunt/knooppunt/node/api/webhooks"
	"github.com/knooppunt/knooppunt/node/attach"
	"github.com/knooppunt/knooppunt/node/cap"
	"github.com/knooppunt/knooppunt/node/config"
	"github.com/knooppunt/knooppunt/node/db"
	"github.com/knooppunt/knooppunt/node/metrics"
	"github.com/knooppunt/knooppunt/node/record"
	"github.com/knooppunt/knooppunt/node/sharing"
	"github.com/knooppunt/knooppunt/node/store"
	"github.com/knooppunt/knooppunt/node/tracing"
	"github.com/knooppunt/knooppunt/node/ui"
	"github.com/knooppunt/knooppunt/node/webhook"
	"github.com/knooppunt/knooppunt/policy"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// SocketName is the local socket's file name inside the data directory.
const SocketName = "knooppunt.sock"

// NotMember says what a replica outside its group's latest Raft configuration is, and what to do.
const NotMember = "not a member of the group: removed, or waiting to be joined (knooppunt cluster join on the leader)"

// LockName is the file in the data directory that a running node holds locked (flock): a
// second node, or a restore, on the directory is refused while it runs.
const LockName = "knooppunt.lock"

// LiveService is the gRPC health service name that says whether the node runs, whatever its
// group does: SERVING from the start until a clean stop begins. The overall service, "", says
// whether the replica knows a leader (trackQuorum): a readiness check, where this is a liveness
// check that does not kill the survivors of a lost majority.
const LiveService = "knooppunt.live"

// DatabaseName is the file in the data directory that holds the database.
const DatabaseName = "knooppunt.db"

// MaxMessageBytes bounds one gRPC message, above the record body limit so that an oversized body
// is refused by the record check, which names the field, rather than by the transport.
const MaxMessageBytes = 64 << 20

// Options start a node.
type Options struct {
	// DataDir holds the database, the Raft log and the local socket.
	DataDir string
	Config  *config.Config
	// ConfigFile, when set, is watched: roles and peers reload from it without a restart.
	ConfigFile string
	// ReloadInterval is how often ConfigFile is checked. Default 1s. The replica's SVID is
	// checked for renewal and expiry every 15 s, or every ReloadInterval when that is shorter (as
	// in tests).
	ReloadInterval time.Duration
	Logger         *slog.Logger
	// Version is the release of the binary: Status reports it, and Describe tells it to peers.
	Version string
	// TracerProvider, when set, records the node's traces instead of the tracing section's
	// OTLP collector (tests record to memory).
	TracerProvider trace.TracerProvider
	// Extractor takes the text out of files for full-text search. Default attach.Extract, in
	// this process; `knooppunt serve` reads each PDF in a child process instead
	// (attach.ExtractIn), which a hostile file can end without ending the node.
	Extractor db.Extractor
	// PictureBytes bounds a picture's answer. Default search.MaxAnswerBytes; tests set less, so
	// that a few records reach it.
	PictureBytes int
	// ApplyLevel, when not 0, is the apply level this replica says instead of
	// store.ApplyLevel: tests stand in a replica of an earlier release with it.
	ApplyLevel uint32
	// SearchCallerRate and SearchNodeRate bound the searches that ask the partners, of one
	// caller and of all (search.Config). Zero: the defaults; rate.Inf: no limit, for benchmarks
	// that search far faster than people do.
	SearchCallerRate, SearchNodeRate rate.Limit
	// Stop, when set, ends the process when a committed entry cannot be applied (store.Config.Stop);
	// `knooppunt serve` exits. Nil: a panic, which a test of an in-process node may recover.
	Stop func(msg string)
}

// Node is a running replica.
type Node struct {
	opts   Options
	log    *slog.Logger
	db     *db.DB
	store  *store.Store
	opened atomic.Pointer[store.Store] // store, for the Raft transport's handshakes once it is open
	grpc   *grpc.Server
	tcp    *grpc.Server
	// tcpPeers serves the mTLS listener's callers of other trust domains, which split hands it
	// (byCaller), as it hands tcp the org's own.
	tcpPeers *grpc.Server
	split    *byCaller
	tcpAddr  net.Addr
	ident    *identityParts
	authz    *api.Authorizer
	// recheck verifies callers' SVIDs again on each call over mTLS (identity.Recheck).
	recheck *identity.Recheck
	health  *health.Server
	records *records.Service
	forward *api.Forwarder
	sharing *sharing.Sharing
	cfg     atomic.Pointer[config.Config] // the running config; roles and peers reload
	// fileCfg is the running config as its file gives it; cfg is fileCfg with the peers
	// accepted through Raft merged in. peersMu orders the merges of reloads and peer steps.
	fileCfg atomic.Pointer[config.Config]
	// cfgState is what the last look at the config file found: why it does not load, and the
	// keys that wait for a restart (status shows it).
	cfgState atomic.Pointer[configState]
	// seenMu orders the writes of ConfigSeenFile; seenPending, under it, says that the audit of
	// the edits made while the replica was stopped is not taken yet.
	seenMu      sync.Mutex
	seenPending bool
	// seenLater is the config of the last reload audited while seenPending.
	seenLater  *config.Config
	peersMu    sync.Mutex
	peersGen   uint64 // the db's peers generation of the last merge, under peersMu
	peers      *peerclient.Manager
	federation *peerserver.Service
	// replicas is the ReplicaService: a stop ends its followers' watches of the partners.
	replicas   *cluster.ReplicaService
	witnesses  *witness.Witnesses
	stopPeers  context.CancelFunc
	peersDone  chan struct{}
	metrics    *http.Server
	web        *http.Server // the web interface (node/ui), when ui.listen is set
	webAddr    net.Addr
	feed       *http.Server // the alert feed's own listener, when feed.listen is set
	feedAddr   net.Addr
	rest       *http.Server // the REST API (node/api/rest), when http.listen is set
	restAddr   net.Addr
	raftAddr   net.Addr // where Raft listens, as bound
	metricAddr net.Addr
	sockPath   string
	unreg      []func()
	tracing    *tracing.Tracing
	served     chan error
	stopWatch  chan struct{}
	stopHealth chan struct{}
	// background are the stops of the node's background loops (see goBackground); close calls
	// each and waits for it.
	background []func()
	// refusals audits the handshakes the TCP listener refuses; stopRefusals ends it once its
	// last entries are written.
	refusals *refusals
	denials  *refusals // the federation calls the authorizer refuses, likewise
	// unanswered audits the federation calls that got nothing, likewise; made with the
	// FederationService, run with the others.
	unanswered   *refusals
	stopRefusals func()
	// dirLock holds the data directory's LockName while the node runs.
	dirLock *os.File
}

// Start opens the node's state in opts.DataDir and serves the local socket. It returns once the
// node accepts writes, or fails.
func Start(ctx context.Context, opts Options) (*Node, error) {
	if opts.Config == nil {
		opts.Config = config.Default()
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	cfg := opts.Config
	n := &Node{opts: opts, log: opts.Logger.With("node", cfg.Name), served: make(chan error, 5), stopWatch: make(chan struct{})}
	ok := false
	defer func() {
		if !ok {
			n.close()
		}
	}()

	if err := os.MkdirAll(opts.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("node: data dir: %w", err)
	}
	if err := checkWritable(opts.DataDir); err != nil {
		return nil, err
	}
	// The directory's lock first, then the ports, then the data: a second node on this
	// directory is told so rather than that a port is taken, and a port another process holds
	// stops even a first start before it has made a database or a Raft log.
	lock, err := lockDataDir(opts.DataDir)
	if err != nil {
		return nil, err
	}
	n.dirLock = lock
	if err := checkPorts(cfg); err != nil {
		return nil, err
	}
	kinds, err := cfg.KindSet()
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	if n.db, err = db.Open(filepath.Join(opts.DataDir, DatabaseName)); err != nil {
		return nil, err
	}
	if from := n.db.MigratedFrom(); from > 0 {
		n.log.Info("database migrated to this release's schema: an earlier release can no longer open this data directory; to go back, restore the backup taken before the upgrade",
			"from_schema", from, "schema", db.SchemaVersion)
	}
	if err := n.checkOrigin(ctx); err != nil {
		return nil, err
	}
	if cfg.Listen != "" {
		if n.ident, err = startIdentity(ctx, cfg, n.log); err != nil {
			return nil, err
		}
	}
	var own spiffeid.TrustDomain
	if n.ident != nil {
		own = n.ident.trustDomain
	}
	if n.tracing, err = tracing.Start(ctx, cfg.Tracing, own, cfg.Org, cfg.ReplicaID, opts.TracerProvider, n.log); err != nil {
		return nil, err
	}
	sc := store.Config{
		Dir:               filepath.Join(opts.DataDir, "raft"),
		DB:                n.db,
		ReplicaID:         cfg.ReplicaID,
		Bootstrap:         cfg.Raft.Bootstrap == nil || *cfg.Raft.Bootstrap,
		SnapshotThreshold: cfg.Raft.SnapshotThreshold,
		SnapshotSize:      cfg.Raft.SnapshotSize,
		TrailingLogs:      cfg.Raft.TrailingLogs,
		EraseWithin:       cfg.Erasure.Within,
		ElectionTimeout:   cfg.Raft.ElectionTimeout,
		CommitTimeout:     cfg.Raft.CommitTimeout,
		Reserve:           cfg.Limits.DiskReserve(),
		Stop:              opts.Stop,
		Free:              n.db.DiskFreeBytes,
		Logger:            n.log,
	}
	if cfg.Raft.Listen != "" {
		td := n.ident.trustDomain
		tr, err := store.TLSTransport(cfg.Raft.Listen, cfg.Raft.Advertise,
			identity.ServerTLSFor(n.ident.source, n.ident.trust, n.authorizeRaft(td), n.log),
			identity.ClientTLS(n.ident.source, n.ident.trust, identity.AuthorizeReplica(td)), n.log)
		if err != nil {
			return nil, err
		}
		sc.Transport, n.raftAddr = tr, tr.ListenAddr()
		for _, s := range cfg.Raft.Servers {
			sc.Servers = append(sc.Servers, raft.Server{ID: raft.ServerID(s.ID), Address: raft.ServerAddress(s.Address), Suffrage: raft.Voter})
		}
		n.forward = &api.Forwarder{
			Creds:      identity.ClientCredentials(n.ident.source, n.ident.trust, identity.AuthorizeReplica(td)),
			SVID:       n.ident.source,
			APIAddress: func(id string) string { return n.cfg.Load().APIAddress(id) },
			Forms:      cluster.Forms,
		}
		sc.Forward = n.forwardCommand
		sc.AskLevel, sc.Level = n.forward.ApplyLevel, opts.ApplyLevel
	}
	n.cfg.Store(cfg)
	if n.store, err = store.Open(sc); err != nil {
		return nil, err
	}
	n.opened.Store(n.store)
	// A disk already under the reserve is said now, not at the first write it refuses, and a
	// crossing later within roomEvery, on every replica, writes or none (review AC, AC7).
	n.store.CheckRoom()
	n.goBackground(n.store.WatchRoom)
	// The full-text index is kept beside the write path, on every replica (db.RunTextIndexer).
	n.goBackground(func(ctx context.Context) {
		n.db.RunTextIndexer(ctx, func(err error) { n.log.Warn("full-text index", "err", err) })
	})
	// The history of the early-warning rules keeps to its retention, on every replica.
	n.goBackground(n.pruneHistory)
	// The index reads the text of PDF attachments (node/attach), and the leader sweeps stale
	// uploads and unnamed files.
	extract := opts.Extractor
	if extract == nil {
		extract = attach.Extract
	}
	n.db.SetExtractor(extract, attach.MaxExtractBytes)
	n.goBackground(n.sweepFiles)
	if n.forward != nil {
		n.forward.Store = n.store
	}
	if member := n.store.InGroup(cfg.ReplicaID); sc.Bootstrap || member {
		// A replica waiting to be joined (raft.bootstrap: false, and not in the group's
		// configuration) has no leader until an admin adds it. Any other waits a little for its
		// group, so that its first reads are of what the group holds; one whose group has lost
		// its majority serves without it: its local reads, backups and web interface go on
		// (health says NOT_SERVING), and it follows a leader once there is one.
		wait := leaderWait(sc.ElectionTimeout)
		waitCtx, cancel := context.WithTimeout(ctx, wait)
		defer cancel()
		if err := n.store.WaitLeader(waitCtx); err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			if member {
				n.log.Warn("no leader known: serving local reads only, and health NOT_SERVING, until this replica reaches a majority of its group (docs/cluster.md, A majority is lost)", "waited", wait)
			} else {
				n.log.Warn(NotMember+": serving local reads only, and health NOT_SERVING", "waited", wait)
			}
		}
		// A leader applies the entries its log holds beyond the database (those committed
		// before a crash) only after it takes office. Wait for them, so that the first reads
		// after a restart see every write acknowledged before it.
		if n.store.IsLeader() {
			if err := n.store.VerifyLeader(); err != nil {
				n.log.Warn("could not apply the log before serving; reads may lag until the next write", "err", err)
			}
		}
		// A replica that started empty (new, or its disk lost) waits, within the same bound, to
		// hold what its leader committed: its first reads are then the group's, and a new group
		// whose first leader stops at once has another replica that may stand (store.catchUp).
		if err := n.store.WaitCaughtUp(waitCtx); err != nil && ctx.Err() == nil && n.store.Leader() != "" {
			n.log.Info("still catching up with the leader: serving what this replica holds so far", "waited", wait, "applied_index", n.store.AppliedIndex())
		}
	}

	// Peers accepted through Raft count from the start, merged with the config file's; the log
	// was replayed into the database above.
	n.fileCfg.Store(cfg)
	n.peersGen = n.db.PeersGeneration()
	fileCfg := cfg
	// What was changed in the file while the replica was stopped is audited, once there is a
	// leader to take it.
	n.seenPending = true
	n.goBackground(func(ctx context.Context) { n.auditEditsWhileStopped(ctx, fileCfg) })
	if cfg, err = n.mergePeers(ctx, fileCfg); err != nil {
		return nil, err
	}
	if n.ident != nil {
		if err := n.ident.setPeers(cfg.Peers); err != nil {
			return nil, err
		}
	}
	access, err := api.NewAccess(cfg)
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	n.authz = api.NewAuthorizer(access, n.log)
	if n.ident != nil {
		n.recheck = identity.NewRecheck(n.ident.trust)
		n.authz.SetRecheck(n.recheck)
	}
	n.authz.OnFederationDenied(func(caller, method, reason string) { n.auditDenied(db.AuditFederationDenied, caller, method, reason) })
	n.authz.SetMembers(n.isReplica)
	checker := &record.Checker{Kinds: kinds, Origin: cfg.Org, MaxBody: cfg.Limits.MaxBodyBytes, Scopes: cfg.CAP.ScopeClassifications()}
	n.records = records.New(records.Config{Store: n.store, DB: n.db, Checker: checker, Logger: n.log,
		Retention: func() time.Duration { return n.cfg.Load().History.RetentionOrDefault() }})
	status := nodestatus.New(nodestatus.Config{
		SVID: n.SVID, Renewal: n.svidRenewal, ConfigState: n.configState,
		Name: cfg.Name, Org: cfg.Org, Version: opts.Version, Kinds: kinds.Names(), Replica: cfg.ReplicaID,
		Store: n.store, DB: n.db, StartedAt: time.Now(), Logger: n.log,
	})
	n.health = health.NewServer()
	n.health.SetServingStatus(LiveService, healthpb.HealthCheckResponse_SERVING)
	// Ready once this replica knows a leader (trackQuorum), not before: a replica that waits to
	// be joined, or whose group has not elected yet, gets no clients.
	leader := n.store.Leader() != ""
	n.health.SetServingStatus("", servingStatus(leader))
	n.stopHealth = make(chan struct{})
	go n.trackQuorum(cfg.Raft.ElectionTimeout, n.stopHealth, leader)
	n.cfg.Store(cfg)
	n.sharing = sharing.New(n.db, cfg.Org, n.cfg.Load, n.log)
	// Off the start: it lints every approved policy.
	n.goBackground(func(ctx context.Context) { warnPoliciesThatNoLongerLint(ctx, n.db, n.log) })
	policySvc := policies.New(policies.Config{
		Store: n.store, DB: n.db, Sharing: n.sharing, Kinds: kinds, Logger: n.log,
		Approvals: func() int { return n.cfg.Load().Policy.Approvals },
	})
	phaseSvc := phases.New(phases.Config{Store: n.store, DB: n.db, Logger: n.log})
	auditSvc := audit.New(n.db, n.log)
	n.startAlerting(kinds, cfg)
	ruleSvc := rules.New(rules.Config{Store: n.store, DB: n.db, Kinds: kinds, Logger: n.log,
		Retention: func() time.Duration { return n.cfg.Load().History.RetentionOrDefault() }})
	runningPeers := func() []config.Peer { return n.cfg.Load().Peers }
	auditSvc.Peers = runningPeers // audit list --recipient takes a peer's name
	if n.ident != nil {
		// In a group, a follower watches its leader's subscriptions' changes (peerclient.Manager.Changed).
		var leader func() (*grpc.ClientConn, error)
		if n.forward != nil {
			leader = n.forward.Leader
		}
		n.peers = peerclient.New(peerclient.Config{
			Store: n.store, DB: n.db, SVID: n.ident.source, Bundles: n.ident.trust, Peers: runningPeers,
			IdleTimeout: cfg.Federation.IdleTimeout, EventsPerSecond: cfg.Federation.EventsPerSecond, Purpose: cfg.Federation.Purpose, Logger: n.log,
			DialOptions: n.tracing.PeerDialOptions(),
			FileLimits:  n.attachLimits, FileBytesPerSecond: cfg.Attachments.FetchBytesPerSecond, Leader: leader,
		})
		n.unanswered = newUnanswered(refusalWindow, n.appendAudit, n.log)
		n.federation = peerserver.New(peerserver.Config{
			Store: n.store, DB: n.db, Sharing: n.sharing, Kinds: kinds, Name: cfg.Name, Version: opts.Version,
			Heartbeat: cfg.Federation.Heartbeat, Reevaluate: cfg.Federation.Reevaluate,
			RequestsPerSecond: cfg.Federation.PeerRequestsPerSecond, MaxCalls: cfg.Federation.PeerCalls,
			Bundles: n.ident.trust, Recheck: n.recheck, Logger: n.log,
			OnPeerCall: n.peers.Retry,
			Current:    n.currentForPeers,
			Unanswered: n.unanswered.unanswered,
		})
		n.witnesses = witness.New(witness.Config{
			DB: n.db, Org: cfg.Org, SVID: n.ident.source, Bundles: n.ident.trust, Peers: runningPeers, Conn: n.peers.Conn,
			Leading: n.store.IsLeader, Interval: cfg.Federation.WitnessInterval, Logger: n.log,
			Apply: func(ctx context.Context, c *pb.Command) error { _, err := n.store.Apply(ctx, c); return err },
		})
		auditSvc.Witnesses = n.witnesses.Check
	}
	exerciseCfg := exercises.Config{Store: n.store, DB: n.db, Logger: n.log, Changed: func() {
		if n.peers != nil {
			n.peers.Reconcile()
		}
	}}
	if n.peers != nil {
		exerciseCfg.Partners = n.peers.ExercisePartners
	}
	exerciseSvc := exercises.New(exerciseCfg)
	searchSvc := search.New(search.Config{Store: n.store, DB: n.db, Sharing: n.sharing, Name: cfg.Name, Peers: runningPeers, Manager: n.peers, Kinds: kinds, Purpose: cfg.Federation.Purpose, Tracer: n.tracing.Tracer(), Logger: n.log, PictureBytes: opts.PictureBytes,
		CallerRate: opts.SearchCallerRate, NodeRate: opts.SearchNodeRate})
	auditSvc.Settle = n.store.Settle
	var svid identity.Source
	if n.ident != nil {
		svid = n.ident.source
	}
	var subscription func(string) (peerclient.SubscriptionState, bool)
	if n.peers != nil {
		subscription = n.peers.Subscription
	}
	var bundleFetch func(spiffeid.TrustDomain) (identity.BundleFetch, bool)
	if n.ident != nil {
		bundleFetch = n.ident.trust.Fetch
	}
	peerSvc := peers.New(peers.Config{Store: n.store, DB: n.db, SVID: svid, File: n.fileCfg.Load, Logger: n.log,
		Refresh: n.refreshPeers, Subscription: subscription, Bundle: bundleFetch})
	// A peer that `peer remove` made leave is refused, by the leader, once its node holds nothing.
	n.goBackground(func(ctx context.Context) { peerSvc.RunLeaving(ctx, time.Second, cfg.Federation.LeaveTimeout) })
	webhookSettings := func() config.Webhooks { return n.cfg.Load().Webhooks }
	webhookSvc := webhooks.New(webhooks.Config{Store: n.store, DB: n.db, Kinds: kinds, Settings: webhookSettings, Peers: runningPeers, Logger: n.log})
	// The leader delivers the webhook queue the FSM keeps (see node/webhook).
	n.goBackground(webhook.NewDispatcher(webhook.DispatcherConfig{
		Store: n.store, DB: n.db, Org: cfg.Org, Replica: cfg.ReplicaID, Settings: webhookSettings, Peers: runningPeers, Logger: n.log,
	}).Run)
	attachSvc := attachments.New(attachments.Config{Store: n.store, DB: n.db, Limits: n.attachLimits, Logger: n.log, Peers: runningPeers})
	clusterSvc := cluster.New(n.store, n.db, cfg.ReplicaID, n.log)
	clusterSvc.SetCurrent(n.currentForPeers)
	clusterSvc.SetUnaddressed(n.unaddressed)
	n.goBackground(n.watchAPIAddresses)
	replicaSvc := cluster.NewReplicaService(n.store, n.log)
	if n.peers != nil {
		replicaSvc.SetPartners(n.peers.Changed)
	}
	n.replicas = replicaSvc
	register := func(s reflection.GRPCServer) {
		search.RegisterService(s, searchSvc)
		if n.federation != nil {
			peerserver.RegisterService(s, n.federation)
		}
		records.RegisterService(s, n.records)
		attachments.RegisterService(s, attachSvc)
		cluster.RegisterService(s, clusterSvc)
		cluster.RegisterReplicaService(s, replicaSvc)
		policies.RegisterService(s, policySvc)
		phases.RegisterService(s, phaseSvc)
		exercises.RegisterService(s, exerciseSvc)
		rules.RegisterService(s, ruleSvc)
		webhooks.RegisterService(s, webhookSvc)
		peers.RegisterService(s, peerSvc)
		audit.RegisterService(s, auditSvc)
		nodestatus.RegisterService(s, status)
		healthpb.RegisterHealthServer(s, n.health)
		reflection.Register(s)
	}

	// The ports are bound, and the gauges registered, before the local socket serves, so that a
	// node that answers on its socket is listening for peers and scrapes too: a port another
	// process took stops the start here, rather than after a supervisor or a readiness check saw
	// the node up.
	var tl net.Listener
	if cfg.Listen != "" {
		if tl, err = net.Listen("tcp", cfg.Listen); err != nil {
			return nil, fmt.Errorf("node: listen %s: %w", cfg.Listen, err)
		}
		if n.recheck != nil {
			tracked := trackConns(tl)
			n.recheck.DropWith(tracked.drop)
			tl = tracked
		}
		defer func() {
			if !ok {
				tl.Close()
			}
		}()
	}
	if err := n.registerGauges(); err != nil {
		return nil, err
	}
	if cfg.MetricsAddr != "" {
		if err := n.serveMetrics(cfg.MetricsAddr); err != nil {
			return nil, err
		}
		defer func() {
			if !ok {
				n.metrics.Close()
			}
		}()
	}
	if cfg.Listen != "" {
		// Before any TLS listener serves: the gRPC listener and the REST API both audit the
		// handshakes they refuse here.
		n.refusals = newRefusals(refusalWindow, n.appendAudit, n.log)
		n.denials = newDenials(refusalWindow, n.appendAudit, n.log)
		rctx, cancel := context.WithCancel(context.Background())
		var done sync.WaitGroup
		done.Go(func() { n.refusals.run(rctx) })
		done.Go(func() { n.denials.run(rctx) })
		if n.unanswered != nil {
			done.Go(func() { n.unanswered.run(rctx) })
		}
		n.stopRefusals = func() { cancel(); done.Wait() }
	}
	if cfg.UI.Listen != "" {
		if err := n.serveUI(cfg, kinds, register); err != nil {
			return nil, err
		}
		defer func() {
			if !ok {
				n.web.Close()
			}
		}()
	}
	if cfg.Feed.Listen != "" {
		if err := n.serveFeed(cfg); err != nil {
			return nil, err
		}
		defer func() {
			if !ok {
				n.feed.Close()
			}
		}()
	}
	if cfg.HTTP.Listen != "" {
		if err := n.serveREST(ctx, cfg, register); err != nil {
			return nil, err
		}
		defer func() {
			if !ok {
				n.rest.Close()
			}
		}()
	}
	n.grpc = n.newServer(true)
	register(n.grpc)
	sockPath := filepath.Join(opts.DataDir, SocketName)
	lis, err := listenUnix(sockPath)
	if err != nil {
		return nil, err
	}
	// Set only now: close removes it, and a path listenUnix refused is not the node's to remove.
	n.sockPath = sockPath
	go func() { n.served <- n.grpc.Serve(lis) }()

	if cfg.Listen != "" {
		n.split = splitByCaller(tl, identity.ServerTLSReporting(n.ident.source, n.ident.trust, n.log, n.refusals.refused), n.ident.trustDomain)
		tap := grpc.InTapHandle(n.authz.Tap)
		n.tcp = n.newServer(false, grpc.Creds(handshaken{}), tap, grpc.MaxRecvMsgSize(MaxMessageBytes))
		n.tcpPeers = n.newServer(false, grpc.Creds(handshaken{}), tap, grpc.MaxRecvMsgSize(MaxPeerMessageBytes), grpc.MaxConcurrentStreams(maxPeerStreams))
		register(n.tcp)
		register(n.tcpPeers)
		n.tcpAddr = tl.Addr()
		go func() { n.served <- n.tcp.Serve(n.split.own) }()
		go func() { n.served <- n.tcpPeers.Serve(n.split.peers) }()
	}
	go n.watchPeers(n.stopWatch)
	if n.ident != nil {
		every := 15 * time.Second
		if opts.ReloadInterval > 0 && opts.ReloadInterval < every {
			every = opts.ReloadInterval
		}
		n.goBackground(func(ctx context.Context) { n.watchSVID(ctx, every) })
	}
	if opts.ConfigFile != "" {
		// The channel is handed over here: close sets the field to nil while the watcher runs.
		go n.watchConfig(opts.ConfigFile, configStamp(opts.ConfigFile), opts.ReloadInterval, n.stopWatch)
	}
	if n.peers != nil {
		pctx, cancel := context.WithCancel(context.Background())
		n.stopPeers = cancel
		n.peersDone = make(chan struct{})
		go func() {
			defer close(n.peersDone)
			var wg sync.WaitGroup
			wg.Go(func() { n.witnesses.Run(pctx) })
			n.peers.Run(pctx)
			wg.Wait()
		}()
	}

	// With every address the node listens on, as bound (review AA, AA14; review AC, AC11): a
	// port of 0 or a host name shows where the node is reached, not what the config says.
	attrs := []any{"org", cfg.Org, "replica", cfg.ReplicaID, "socket", n.sockPath}
	bound := func(a net.Addr) string {
		if a == nil {
			return ""
		}
		return a.String()
	}
	for _, l := range []struct{ name, addr string }{{"listen", bound(n.tcpAddr)}, {"raft", bound(n.raftAddr)}, {"bundle_endpoint", n.BundleEndpointAddr()},
		{"ui", bound(n.webAddr)}, {"http", bound(n.restAddr)}, {"feed", bound(n.feedAddr)}, {"metrics", bound(n.metricAddr)}} {
		if l.addr != "" {
			attrs = append(attrs, l.name, l.addr)
		}
	}
	n.log.Info("node serving", attrs...)
	ok = true
	return n, nil
}

func (n *Node) newServer(local bool, opts ...grpc.ServerOption) *grpc.Server {
	opts = append(opts, n.tracing.ServerOptions()...)
	if local {
		opts = append(opts, grpc.MaxRecvMsgSize(MaxMessageBytes))
	}
	opts = append(opts,
		grpc.ChainUnaryInterceptor(n.authz.Unary(local), n.forwardUnary(), api.LogUnary(n.log), api.CutUnary()),
		grpc.ChainStreamInterceptor(n.authz.Stream(local), api.CutStream()),
		// Without this, grpc-go answers a method it does not know with Unimplemented before any
		// interceptor runs: the call escapes the method→role table and its log, and the answer
		// tells any authenticated caller which services exist. With it, such calls pass the
		// stream interceptor, which denies every unlisted method.
		grpc.UnknownServiceHandler(func(any, grpc.ServerStream) error {
			return status.Error(codes.Unimplemented, "unknown method")
		}),
	)
	return grpc.NewServer(opts...)
}

// auditDenied records a refused call in the audit log under action: a federation call, or a
// person's call through the web interface. It runs in the background with a bound, so a flood
// of refused calls cannot hold up the refusals themselves.
//
// A refused federation call is audited as a refused handshake is, at most once a minute per
// caller and method with a count: a removed peer retries without end.
func (n *Node) auditDenied(action, caller, method, reason string) {
	if action == db.AuditFederationDenied && n.denials != nil {
		n.denials.denied(caller, method, reason)
		return
	}
	detail, _ := json.Marshal(map[string]string{"method": method, "reason": reason})
	entry := &pb.AuditEntry{At: timestamppb.Now(), Actor: caller, Action: action, Subject: method, Detail: string(detail)}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := n.appendAudit(ctx, []*pb.AuditEntry{entry}); err != nil {
			n.log.Warn("could not audit a denied request", "action", action, "caller", caller, "err", err)
		}
	}()
}

// appendAudit appends entries to the audit log through Raft.
func (n *Node) appendAudit(ctx context.Context, entries []*pb.AuditEntry) error {
	_, err := n.store.Apply(ctx, &pb.Command{Cmd: &pb.Command_AppendAudit{AppendAudit: &pb.AppendAudit{Entries: entries}}})
	return err
}

// forwardUnary forwards writes that reach a follower to the leader; a single replica is always
// the leader, so it passes everything through.
func (n *Node) forwardUnary() grpc.UnaryServerInterceptor {
	if n.forward != nil {
		return n.forward.Unary()
	}
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		return h(ctx, req)
	}
}

// currentWait bounds how long a follower asks its leader, and catches up, before it decides what
// a peer gets.
const currentWait = 2 * time.Second

// currentForPeers is peerserver.Config.Current: a follower decides what a peer gets only once it
// has applied all that its leader had committed when the peer asked (a read index, asked of the
// leader's ClusterService). A follower a few milliseconds behind disclosed under a policy the
// officer had been told was revoked, and one cut off from its group went on deciding on what it
// held when it was cut off, for as long as that lasted, while the disclosures it could not record
// went unaudited (review B, H1 and M1). The leader is current: an officer's step is acknowledged
// once the leader applied it. A leader cut off from the others stays leader for at most
// raft's leader lease. Its refusals carry api.ReasonNotCurrent: a peer's node then asks
// another replica of this node.
//
// Nor does it while a replica of the group runs an earlier release (store.OlderReplicaError):
// what it sent could not be recorded, as the leader takes no writes, and a revoke would not
// retract it.
func (n *Node) currentForPeers(ctx context.Context) error {
	if n.forward == nil {
		return nil
	}
	notCurrent := func(format string, a ...any) error {
		return api.ReasonStatus(codes.Unavailable, api.ReasonNotCurrent, fmt.Sprintf(format, a...))
	}
	older := func(id string) error {
		return notCurrent("replica %s of this node runs an earlier knooppunt release: the node records nothing, and so gives peers nothing, until it is upgraded", id)
	}
	if n.store.IsLeader() {
		if err, ok := errors.AsType[*store.OlderReplicaError](n.store.OlderReplica()); ok {
			return older(err.Replica)
		}
		return nil
	}
	conn, err := n.forward.Leader()
	if err != nil {
		return notCurrent("%s", status.Convert(err).Message())
	}
	ctx, cancel := context.WithTimeout(ctx, currentWait)
	defer cancel()
	st, err := pb.NewClusterServiceClient(conn).Status(ctx, &pb.ClusterStatusRequest{})
	if err != nil {
		return notCurrent("this replica could not learn from its leader how far the group is: %s: retry, or ask another replica", status.Convert(err).Message())
	}
	if i := slices.IndexFunc(st.Replicas, (*pb.Replica).GetOlderRelease); i >= 0 {
		return older(st.Replicas[i].Id)
	}
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !n.store.SettledThrough(st.CommitIndex) {
		select {
		case <-ctx.Done():
			return notCurrent("this replica is behind its group (applied %d of %d): retry, or ask another replica", n.store.AppliedIndex(), st.CommitIndex)
		case <-tick.C:
		}
	}
	return nil
}

// forwardCommand hands a command to the leader's ReplicaService.
func (n *Node) forwardCommand(ctx context.Context, c *pb.Command) error {
	return n.forward.Invoke(ctx, pb.ReplicaService_Apply_FullMethodName, &pb.ApplyRequest{Command: c}, &pb.ApplyResponse{})
}

// listenUnix listens on the local socket, which only the owner of the data directory may use:
// the socket carries no identity, so the file mode is its access control.
func listenUnix(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("node: %s exists and is not a socket: move it away", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("node: another node is serving %s: stop it or use another --data-dir", path)
		}
		os.Remove(path) // left behind by a node that did not stop cleanly
	}
	lis, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("node: listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		lis.Close()
		return nil, fmt.Errorf("node: %w", err)
	}
	return lis, nil
}

// watchAPIAddresses says at WARN when the group has replicas that this replica's raft.servers
// gives no API address (one joined, and this config not told): a write it forwards while one of
// them leads fails. It looks at start and every apiAddressEvery, and says each change once.
func (n *Node) watchAPIAddresses(ctx context.Context) {
	if n.store.Alone() {
		return
	}
	t := time.NewTicker(apiAddressEvery)
	defer t.Stop()
	said := ""
	for {
		if servers, err := n.store.Servers(); err == nil {
			if now := strings.Join(n.unaddressed(servers), ", "); now != said {
				if now != "" {
					n.log.Warn("raft.servers gives no API address for replicas of the group: a write this replica forwards while one of them leads fails; add them to raft.servers (docs/cluster.md)", "replicas", now)
				} else {
					n.log.Info("raft.servers gives every replica of the group its API address again")
				}
				said = now
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// unaddressed are the replicas of servers, other than this one, that this replica's
// raft.servers gives no API address: a write it forwards while one of them leads fails. None for
// a replica that runs alone.
func (n *Node) unaddressed(servers []store.Server) []string {
	if n.store.Alone() {
		return nil
	}
	cfg := n.cfg.Load()
	var out []string
	for _, srv := range servers {
		if srv.ID != cfg.ReplicaID && cfg.APIAddress(srv.ID) == "" {
			out = append(out, srv.ID)
		}
	}
	return out
}

// apiAddressEvery is how often watchAPIAddresses looks.
var apiAddressEvery = 10 * time.Second

func (n *Node) registerGauges() error {
	name := n.opts.Config.Name + "/" + n.opts.Config.ReplicaID
	for _, g := range []struct {
		name, help string
		f          func() float64
	}{
		{"store_bytes", "Size of the SQLite database files.", func() float64 {
			_, b, _ := n.db.Stats(context.Background())
			return float64(b)
		}},
		{"store_records", "Live records in the store.", func() float64 {
			r, _, _ := n.db.Stats(context.Background())
			return float64(r)
		}},
		{"raft_applied_index", "Index of the last Raft entry applied.", func() float64 {
			return float64(n.store.AppliedIndex())
		}},
		{"disk_free_bytes", "Bytes free to the node on the file system of its data directory.", func() float64 {
			return float64(n.db.DiskFree())
		}},
		{"disk_reserve_bytes", "Bytes of the disk that writes adding data leave free (limits.disk_reserve_mib): under it the leader refuses them (DISK_LOW).", func() float64 {
			return float64(n.store.Reserve())
		}},
		{"raft_has_leader", "1 while this replica knows a leader of its group, itself included; 0 while it knows none (a lost majority, a split): no write is taken.", func() float64 {
			if n.store.Leader() != "" {
				return 1
			}
			return 0
		}},
		{"raft_leader", "1 on the replica that leads its group, 0 on the others.", func() float64 {
			if n.store.IsLeader() {
				return 1
			}
			return 0
		}},
		{"svid_expiry_timestamp_seconds", "When the X.509-SVID this replica serves with expires, Unix seconds; 0 without one.", func() float64 {
			if _, notAfter := n.SVID(); !notAfter.IsZero() {
				return float64(notAfter.Unix())
			}
			return 0
		}},
		{"svid_renewal_failing_since_timestamp_seconds", "Since when the SPIRE Workload API has not renewed this replica's SVID (it does not answer, or no longer offers the replica's ID), Unix seconds; 0 while it does, and for an SVID from files.", func() float64 {
			if since, _ := n.svidRenewal(); !since.IsZero() {
				return float64(since.Unix())
			}
			return 0
		}},
	} {
		unreg, err := metrics.GaugeFunc(name, g.name, g.help, g.f)
		if err != nil {
			return fmt.Errorf("node: metrics: %w", err)
		}
		n.unreg = append(n.unreg, unreg)
	}
	return nil
}

func (n *Node) serveMetrics(addr string) error {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("node: metrics_addr %s: %w (set another address, or empty to turn /metrics off)", addr, err)
	}
	n.metricAddr = lis.Addr()
	mux := http.NewServeMux()
	mux.Handle("/metrics", metrics.Handler())
	n.metrics = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := n.metrics.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.served <- err
		}
	}()
	return nil
}

// serveUI starts the web interface on cfg.UI.Listen. Its pages reach the node's services on an
// in-process channel, registered with the same services and put through the same authorizer and
// interceptors as the gRPC servers, as the signed-in person: see package ui.
func (n *Node) serveUI(cfg *config.Config, kinds *record.Kinds, register func(reflection.GRPCServer)) error {
	var tlsConf *tls.Config
	if cfg.UI.TLS.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.UI.TLS.CertFile, cfg.UI.TLS.KeyFile)
		if err != nil {
			return fmt.Errorf("node: ui.tls: %w", err)
		}
		tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	lis, err := net.Listen("tcp", cfg.UI.Listen)
	if err != nil {
		return fmt.Errorf("node: ui.listen %s: %w", cfg.UI.Listen, err)
	}
	if cfg.UI.OIDC.ClaimDefaulted {
		// Roles hang on the name this claim gives (review AD, AD7).
		n.log.Warn("ui.oidc.claim is not set: people's names, and so their roles, come from the preferred_username claim, which some providers let a person change (one who renamed herself to an officer's name would hold that officer's role); set ui.oidc.claim to a claim the provider keeps fixed, or to preferred_username once you have checked that yours does",
			"claim", cfg.UI.OIDC.Claim)
	}
	uc := cfg.UI
	if uc.PublicURL == "" {
		// Loopback only (config checks it): the address the node listens on.
		scheme := "http"
		if tlsConf != nil {
			scheme = "https"
		}
		uc.PublicURL = scheme + "://" + lis.Addr().String()
	}
	inproc := api.NewInProcess(n.authz, n.forwardUnary(), api.LogUnary(n.log), api.CutUnary())
	inproc.OnDenied(func(person, method, reason string) { n.auditDenied(db.AuditAccessDenied, person, method, reason) })
	register(inproc)
	uiConf := ui.Config{UI: uc, Org: cfg.Org, Name: cfg.Name, Conn: inproc, Resolve: n.authz.Resolve, Logger: n.log, Leader: n.uiLeader,
		Kinds: kinds, MaxBodyBytes: cfg.Limits.MaxBodyBytes, FileLimits: n.attachLimits, Changed: n.db.Changed}
	if n.peers != nil {
		uiConf.PartnersChanged = n.peers.Changed
	}
	web, err := ui.New(uiConf)
	if err != nil {
		lis.Close()
		return fmt.Errorf("node: %w", err)
	}
	if tlsConf != nil {
		lis = tls.NewListener(lis, tlsConf)
	}
	n.webAddr = lis.Addr()
	mux := http.NewServeMux()
	mux.Handle(cap.FeedPath, n.alertFeed(cfg))
	mux.Handle("/", web)
	n.web = n.serveHTTP(lis, mux)
	// The picture's live streams never end by themselves: a shutdown ends them first.
	n.web.RegisterOnShutdown(web.Stop)
	n.log.Info("web interface serving", "listen", n.webAddr.String(), "public_url", uc.PublicURL)
	return nil
}

// alertFeed is the Atom feed of the node's public, actual alerts (package cap). It reads the
// database directly, as the feed needs no sign-in: only own public alert records are read.
func (n *Node) alertFeed(cfg *config.Config) *cap.Feed {
	return cap.NewFeed(cap.FeedConfig{Org: cfg.Org, Name: cfg.Name, Logger: n.log, Alerts: func(ctx context.Context) ([]*pb.Record, error) {
		var out []*pb.Record
		f := db.Filter{Kind: cap.Kind, MaxClassification: pb.Classification_PUBLIC, PageSize: 1000}
		for {
			recs, next, err := n.db.List(ctx, f)
			if err != nil {
				return nil, err
			}
			out = append(out, recs...)
			if next == "" {
				return out, nil
			}
			f.PageToken = next
		}
	}, Changed: func(ctx context.Context) (time.Time, error) {
		return n.db.NewestChange(ctx, cap.Kind, pb.Classification_PUBLIC)
	}, Version: func(ctx context.Context) (time.Time, error) {
		// Of every classification: an alert made internal leaves the feed at once.
		return n.db.NewestChange(ctx, cap.Kind, pb.Classification_SECRET)
	}})
}

// serveFeed serves the alert feed on cfg.Feed.Listen, a listener of its own.
func (n *Node) serveFeed(cfg *config.Config) error {
	lis, err := net.Listen("tcp", cfg.Feed.Listen)
	if err != nil {
		return fmt.Errorf("node: feed.listen %s: %w", cfg.Feed.Listen, err)
	}
	if cfg.Feed.TLS.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.Feed.TLS.CertFile, cfg.Feed.TLS.KeyFile)
		if err != nil {
			lis.Close()
			return fmt.Errorf("node: feed.tls: %w", err)
		}
		lis = tls.NewListener(lis, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	}
	mux := http.NewServeMux()
	mux.Handle(cap.FeedPath, n.alertFeed(cfg))
	n.feedAddr = lis.Addr()
	n.feed = n.serveHTTP(lis, mux)
	n.log.Info("alert feed serving", "listen", n.feedAddr.String(), "path", cap.FeedPath)
	return nil
}

// serveHTTP serves h on lis with the node's HTTP limits; a server that stops on its own is
// reported on Failed.
func (n *Node) serveHTTP(lis net.Listener, h http.Handler) *http.Server {
	srv := &http.Server{
		Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10,
		ErrorLog: slog.NewLogLogger(n.log.Handler(), slog.LevelWarn),
	}
	go func() {
		if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.served <- err
		}
	}()
	return srv
}

// FeedAddr is the alert feed's own listener, or nil when feed.listen is not set.
func (n *Node) FeedAddr() net.Addr { return n.feedAddr }

// uiLeader tells the web interface whether this replica leads its Raft group, and if not, the
// leader's web interface (raft.servers[].ui) where an officer takes policy steps and phase
// changes, which a follower never forwards (api.PersonalMethods).
func (n *Node) uiLeader() (bool, string) {
	if n.store.IsLeader() {
		return true, ""
	}
	return false, n.cfg.Load().UIAddress(n.store.Leader())
}

// UIAddr is the web interface's address, or nil when ui.listen is not set.
func (n *Node) UIAddr() net.Addr { return n.webAddr }

// Addr is the mTLS listener's address, or nil when the node serves only its local socket.
func (n *Node) Addr() net.Addr { return n.tcpAddr }

// BundleEndpointAddr is where the node serves its trust bundle, or "".
func (n *Node) BundleEndpointAddr() string {
	if n.ident == nil || n.ident.endpoint == nil {
		return ""
	}
	return n.ident.endpoint.Addr()
}

// SocketPath is the local socket.
func (n *Node) SocketPath() string { return n.sockPath }

// Store is the node's Raft store.
func (n *Node) Store() *store.Store { return n.store }

// DB is the node's database.
func (n *Node) DB() *db.DB { return n.db }

// Failed reports a server that stopped on its own.
func (n *Node) Failed() <-chan error { return n.served }

// leaderWait is how long a replica waits at start for a leader of its group before it serves
// without one: ten election timeouts, from 2 to 30 seconds.
func leaderWait(electionTimeout time.Duration) time.Duration {
	if electionTimeout <= 0 {
		electionTimeout = 500 * time.Millisecond
	}
	return min(max(10*electionTimeout, 2*time.Second), 30*time.Second)
}

// trackQuorum keeps the gRPC health status NOT_SERVING while this replica knows no leader, as
// when it is cut off from a majority of its group, so that a load balancer or a Kubernetes
// readiness probe sends clients elsewhere. A replica starts serving once it knows a leader
// (serving: it knew one at start), and stops only once it has known none for two election
// timeouts, so that a normal election does not flap it.
func (n *Node) trackQuorum(electionTimeout time.Duration, stop <-chan struct{}, serving bool) {
	if electionTimeout <= 0 {
		electionTimeout = 500 * time.Millisecond
	}
	grace := 2 * electionTimeout
	t := time.NewTicker(max(electionTimeout/4, 20*time.Millisecond))
	defer t.Stop()
	var lastLeader time.Time // none known: not serving until one is
	warned := false          // that it cannot restore its leader's snapshot
	if serving {
		lastLeader = time.Now()
	}
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		if n.store.Leader() != "" {
			lastLeader = time.Now()
		}
		if _, refused := n.store.SnapshotRefused(); refused != nil {
			// It may know the leader, but takes in nothing more: what it serves falls behind
			// (review AH, AH2: a replica of an earlier release, upgraded last, served 4 of 155
			// records as SERVING).
			if !warned {
				n.log.Warn("this replica cannot restore its leader's snapshot: health is NOT_SERVING until it can; what it serves is behind its group. A snapshot of a newer release: upgrade this replica", "err", refused)
				warned = true
			}
			if serving {
				serving = false
				n.health.SetServingStatus("", servingStatus(serving))
			}
			continue
		}
		warned = false
		switch ok := time.Since(lastLeader) < grace; {
		case ok && !serving:
			n.log.Info("a leader is known: serving")
			serving = true
		case !ok && serving && n.store.State() == "Shutdown":
			n.log.Warn("this replica is out of its group (removed with cluster remove): health is NOT_SERVING; stop it, or start it again with an empty data directory and join it (cluster join)")
			serving = false
		case !ok && serving && !n.store.InGroup(n.opts.Config.ReplicaID):
			n.log.Warn("this replica is " + NotMember + ": health is NOT_SERVING")
			serving = false
		case !ok && serving:
			n.log.Warn("no leader known: health is NOT_SERVING until this replica reaches a majority of its group", "for", time.Since(lastLeader).Round(time.Millisecond))
			serving = false
		default:
			continue
		}
		n.health.SetServingStatus("", servingStatus(serving))
	}
}

// servingStatus is the overall health status of a replica that knows a leader, or not.
func servingStatus(serving bool) healthpb.HealthCheckResponse_ServingStatus {
	if serving {
		return healthpb.HealthCheckResponse_SERVING
	}
	return healthpb.HealthCheckResponse_NOT_SERVING
}

// Stop shuts down cleanly: no new calls, in-flight calls finish (until ctx ends), queued writes
// commit, then Raft and the database close.
func (n *Node) Stop(ctx context.Context) error {
	if n.stopHealth != nil {
		close(n.stopHealth)
		n.stopHealth = nil
	}
	if n.health != nil {
		n.health.Shutdown()
	}
	if n.records != nil {
		n.records.Shutdown()
	}
	if n.federation != nil {
		n.federation.Shutdown()
	}
	if n.replicas != nil {
		n.replicas.Shutdown()
	}
	if n.web != nil {
		// Pages in flight finish (their calls still reach the services), then no more.
		if err := n.web.Shutdown(ctx); err != nil {
			n.web.Close()
		}
	}
	if n.rest != nil {
		if err := n.rest.Shutdown(ctx); err != nil {
			n.rest.Close()
		}
	}
	if n.feed != nil {
		if err := n.feed.Shutdown(ctx); err != nil {
			n.feed.Close()
		}
	}
	if n.stopPeers != nil {
		n.stopPeers()
		<-n.peersDone
		n.stopPeers = nil
	}
	if n.split != nil {
		n.split.Close() // no new connections; the servers end theirs below
	}
	for _, srv := range []*grpc.Server{n.grpc, n.tcp, n.tcpPeers} {
		if srv == nil {
			continue
		}
		wait := ctx
		if srv == n.tcpPeers {
			// A peer's call that is cut asks again, of another replica or later: a Query whose
			// peer stopped reading held the stop for the whole grace (review S, S3).
			var cancel context.CancelFunc
			wait, cancel = context.WithTimeout(ctx, peerGrace)
			defer cancel()
		}
		done := make(chan struct{})
		go func() { srv.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-wait.Done():
			srv.Stop()
		}
	}
	if n.metrics != nil {
		n.metrics.Shutdown(ctx)
	}
	if n.stopRefusals != nil {
		n.stopRefusals() // the refusals of the last window, while Raft still runs
		n.stopRefusals = nil
	}
	err := n.close()
	n.log.Info("node stopped")
	return err
}

// peerGrace bounds how long a stopping node waits for its peers' calls to end before it cuts
// them.
const peerGrace = 5 * time.Second

// warnPoliciesThatNoLongerLint says, at start, which approved policies this release's linter
// refuses: an earlier release read them more leniently (a second YAML document it ignored, a
// comment that hid part of a condition, an invisible character). Each stays in force as it was
// read, which may not be what its officers read in it: they should propose a new version.
func warnPoliciesThatNoLongerLint(ctx context.Context, d *db.DB, log *slog.Logger) {
	rows, err := d.ListPolicies(ctx, policy.StateApproved, "")
	if err != nil {
		if ctx.Err() == nil { // else the start failed or the node stops: nothing to warn of
			log.Warn("policies: could not list the approved policies to lint them", "err", err)
		}
		return
	}
	for _, r := range rows {
		if _, err := policy.Lint(r.Source, nil); err != nil {
			log.Warn("an approved policy does not lint with this release: it stays in force as approved, which may not be what its officers read in it; propose a new version and revoke this one",
				"policy", r.ID, "problems", err.Error())
		}
	}
}

// pruneHistory forgets the history beyond its retention, at start and hourly after. Each replica
// prunes on its own clock: reads clip to the same window, so the answers do not depend on when a
// replica last pruned (see db.PruneHistory).
func (n *Node) pruneHistory(ctx context.Context) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		keep := n.cfg.Load().History.RetentionOrDefault()
		if pruned, err := n.db.PruneHistory(time.Now().Add(-keep)); err != nil {
			n.log.Warn("history prune", "err", err)
		} else if pruned > 0 {
			n.log.Info("history pruned", "rows", pruned, "retention", keep)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// attachLimits are the limits of files as the running config gives them.
func (n *Node) attachLimits() attach.Limits {
	a := n.cfg.Load().Attachments
	return attach.Limits{MaxBytes: a.MaxBytes, MediaTypes: a.MediaTypes}
}

// sweepFiles has the leader remove, now and then, uploads that broke off and uploaded files that
// no record names (see attach.Sweep).
func (n *Node) sweepFiles(ctx context.Context) {
	for {
		a := n.cfg.Load().Attachments
		select {
		case <-ctx.Done():
			return
		case <-time.After(a.SweepInterval):
		}
		if !n.store.IsLeader() {
			continue
		}
		if err := attach.Sweep(ctx, n.store, n.db, a.StaleAfter); err != nil && ctx.Err() == nil {
			n.log.Warn("file sweep", "err", err)
		}
	}
}

// startAlerting runs the stored early-warning rules on whichever replica leads (see
// node/alerting).
func (n *Node) startAlerting(kinds *record.Kinds, cfg *config.Config) {
	e := alerting.New(alerting.Config{Store: n.store, DB: n.db, Kinds: kinds, Org: cfg.Org, Every: cfg.Rules.Every, Logger: n.log,
		Retention: func() time.Duration { return n.cfg.Load().History.RetentionOrDefault() }})
	n.goBackground(e.Run)
}

// goBackground runs fn until the node closes, which cancels its context and waits for it.
// SVID is the SPIFFE ID and the expiry of the X.509-SVID this replica serves with now; zero
// without an identity (a node of its local socket alone).
func (n *Node) SVID() (string, time.Time) {
	if n.ident == nil {
		return "", time.Time{}
	}
	svid, err := n.ident.source.GetX509SVID()
	if err != nil || len(svid.Certificates) == 0 {
		return "", time.Time{}
	}
	return svid.ID.String(), svid.Certificates[0].NotAfter
}

// svidRenewal says since when the SPIRE Workload API has not renewed the replica's SVID, and
// why (identity.NewWorkloadSource's Renewal); the zero time while it does, and for an SVID from
// files, which the node reloads itself.
func (n *Node) svidRenewal() (time.Time, string) {
	if n.ident == nil {
		return time.Time{}, ""
	}
	if r, ok := n.ident.source.(interface{ Renewal() (time.Time, string) }); ok {
		return r.Renewal()
	}
	return time.Time{}, ""
}

// watchSVID says in the log when the replica's SVID is renewed, and, once, when it has expired
// with no new one: partners and the other replicas then refuse its new connections at the
// handshake, and they, not this node, would otherwise be the ones to say why.
func (n *Node) watchSVID(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	var serial string
	said := false
	for {
		// A source holds an SVID from its start on (a Workload API source keeps its last one
		// when the agent stops offering it, identity.NewWorkloadSource); an error is its close.
		if svid, err := n.ident.source.GetX509SVID(); err == nil && len(svid.Certificates) > 0 {
			c := svid.Certificates[0]
			if s := c.SerialNumber.String(); s != serial {
				if serial != "" {
					n.log.Info("this replica's SVID was renewed", "id", svid.ID.String(), "not_after", c.NotAfter)
				}
				serial, said = s, false
			}
			if !said && time.Now().After(c.NotAfter) {
				args := []any{"id", svid.ID.String(), "not_after", c.NotAfter}
				if since, why := n.svidRenewal(); !since.IsZero() {
					args = append(args, "renewal_failing_since", since, "why", why)
				}
				n.log.Error("this replica's SVID expired and no new one came: partners and the other replicas refuse its new connections. "+
					"With SPIRE, check that the agent runs and answers at identity.workload_api (its log says why it issues none); with identity files, issue new ones",
					args...)
				said = true
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (n *Node) goBackground(fn func(ctx context.Context)) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(ctx)
	}()
	n.background = append(n.background, func() { cancel(); <-done })
}

// checkOrigin refuses another org's database (by the org its node noted, or its records): a
// data directory or a backup of another organisation would otherwise be served, and shared
// under this org's policies, as this org's own.
func (n *Node) checkOrigin(ctx context.Context) error {
	org := n.opts.Config.Org
	origin, err := n.db.Origin(ctx)
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	if org == "" {
		return nil
	}
	if origin != "" && origin != org {
		return fmt.Errorf("node: the database in %s is that of %s, not of this node's org %s: it is another organisation's data directory or backup; start the node on its own data directory (or restore its own backup), or correct org in the config", n.opts.DataDir, origin, org)
	}
	// Noted, so that the database says whose it is even while it holds no records of its own.
	if err := n.db.KeepOrg(org); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	return nil
}

func (n *Node) close() error {
	for _, stop := range n.background {
		stop()
	}
	n.background = nil
	if n.stopRefusals != nil {
		n.stopRefusals()
		n.stopRefusals = nil
	}
	if n.stopHealth != nil {
		close(n.stopHealth)
		n.stopHealth = nil
	}
	if n.stopWatch != nil {
		close(n.stopWatch)
		n.stopWatch = nil
	}
	if n.forward != nil {
		n.forward.Close()
	}
	if n.ident != nil {
		n.ident.close()
	}
	for _, u := range n.unreg {
		u()
	}
	n.unreg = nil
	var errs []error
	if n.tracing != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := n.tracing.Shutdown(ctx); err != nil {
			n.log.Warn("tracing: spans not exported at stop", "err", err)
		}
		cancel()
	}
	if n.store != nil {
		errs = append(errs, n.store.Close())
	}
	if n.db != nil {
		errs = append(errs, n.db.Close())
	}
	if n.sockPath != "" {
		os.Remove(n.sockPath)
	}
	if n.dirLock != nil {
		n.dirLock.Close() // last: the directory is free once all else is closed
		n.dirLock = nil
	}
	return errors.Join(errs...)
}

// isReplica reports whether a replica id holds the replica role in calls to this replica
// (admits).
func (n *Node) isReplica(id string) bool {
	return n.admits(n.store, id) == nil
}

// admits says why replica id may not reach this replica, with s this replica's store (nil while
// it opens), as the replica role and on the Raft transport; nil when it may. A replica of the
// group (store.InGroup: of the newest configuration, or of the committed one while a change is
// pending) may. So may one that raft.servers of the config names: always before the group has a
// configuration here (the store is opening, or this replica waits to be joined), so that a new
// replica accepts the leader that adds it; after that while this replica knows no leader, or
// when it is the leader this replica follows. A replica that was down while the group changed
// knows the group as it was, and the replica that leads now may have joined meanwhile: only its
// entries would tell this one so (review AM). raft.servers is the operator's list of the group,
// kept up to date as it changes.
func (n *Node) admits(s *store.Store, id string) error {
	if s != nil && s.InGroup(id) {
		return nil // first: every forwarded write asks
	}
	listed := false
	if c := n.cfg.Load(); c != nil {
		listed = slices.ContainsFunc(c.Raft.Servers, func(s config.RaftServer) bool { return s.ID == id })
	}
	grouped := false
	if s != nil {
		servers, err := s.Servers()
		grouped = err == nil && len(servers) > 0
	}
	if !grouped {
		if listed {
			return nil
		}
		return fmt.Errorf("replica %s is not in raft.servers of this replica's config, and this replica has no group yet", id)
	}
	switch leader := s.Leader(); {
	case listed && (leader == "" || leader == id):
		return nil
	case listed:
		return fmt.Errorf("replica %s is not in this replica's Raft group, whose leader is %s (raft.servers lists it: cluster join adds it)", id, leader)
	}
	return fmt.Errorf("replica %s is not in this replica's Raft group, nor in raft.servers of its config: a removed replica is refused (stop it); one joined while this replica was down is taken in once raft.servers lists it", id)
}

// authorizeRaft admits to the Raft transport only the replicas of the group (admits): node SVIDs
// of the org. Raft trusts its messages as they are, so any other node SVID the org's CA issued
// must not reach it.
func (n *Node) authorizeRaft(td spiffeid.TrustDomain) tlsconfig.Authorizer {
	replica := identity.AuthorizeReplica(td)
	return func(id spiffeid.ID, chains [][]*x509.Certificate) error {
		if err := replica(id, chains); err != nil {
			return err
		}
		return n.admits(n.opened.Load(), strings.TrimPrefix(id.Path(), "/node/"))
	}
}

// checkWritable makes sure this process can create files in the data directory: SQLite's
// write-ahead log, the Raft log and snapshots go there, and SQLite alone would say only that it
// is "unable to open database file".
func checkWritable(dir string) error {
	f, err := os.CreateTemp(dir, ".write-check-*")
	if err != nil {
		return fmt.Errorf("node: data dir %s is not writable by this process (uid %d): %w: make the user that runs the node its owner, or choose another --data-dir", dir, os.Getuid(), err)
	}
	f.Close()
	return os.Remove(f.Name())
}

// lockDataDir takes the lock of the data directory dir (LockName), or says that another node
// runs on it. Closing the file releases it; so does the end of the process, however it ends.
func lockDataDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, LockName)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("node: data dir lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("node: another node runs on this data directory (%s): stop it, or use another --data-dir", dir)
		}
		return nil, fmt.Errorf("node: lock %s: %w", path, err)
	}
	return f, nil
}

// Serving reports whether a node runs on the data directory dir: one of this release holds its
// lock, and one of any release answers on its local socket.
func Serving(dir string) bool {
	if c, err := net.DialTimeout("unix", filepath.Join(dir, SocketName), time.Second); err == nil {
		c.Close()
		return true
	}
	f, err := os.Open(filepath.Join(dir, LockName))
	if err != nil {
		return false
	}
	defer f.Close() // releases the shared lock taken below, if it was
	return errors.Is(syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB), syscall.EWOULDBLOCK)
}

// checkPorts binds, and lets go again, each TCP address the config has the node listen on, so
// that a port another process holds stops the start before the node writes its data. The node
// binds them for good later; one taken in between still fails there.
func checkPorts(cfg *config.Config) error {
	for _, p := range []struct{ setting, addr string }{
		{"listen", cfg.Listen}, {"raft.listen", cfg.Raft.Listen}, {"bundle_endpoint.listen", cfg.BundleEndpoint.Listen},
		{"metrics_addr", cfg.MetricsAddr}, {"ui.listen", cfg.UI.Listen}, {"feed.listen", cfg.Feed.Listen}, {"http.listen", cfg.HTTP.Listen},
	} {
		if p.addr == "" {
			continue
		}
		lis, err := net.Listen("tcp", p.addr)
		if err != nil {
			return fmt.Errorf("node: %s %s: %w: stop the process that holds it, or set another address", p.setting, p.addr, err)
		}
		lis.Close()
	}
	return nil
}

// Package peerclient is the receiving side of federation: connections to peers, and the
// subscriptions that the Raft leader keeps: one per peer and mode, the actual mode and that of
// every exercise open on this node, each with its own cursor. What a subscription delivers goes through
// Raft into the read-only cache of foreign records, together with the cursor, so that after a
// restart or a disconnect it resumes with no gap and no duplicate.
//
// A peer is never trusted beyond its own records: a record that names another origin, or that
// is malformed, is dropped. Per-peer message size limits, rate limits and idle deadlines keep a
// slow or malicious peer from blocking the others.
package peerclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"golang.org/x/sync/semaphore"
	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/federation/identity"
	"github.com/knooppunt/knooppunt/node/api"
	"github.com/knooppunt/knooppunt/node/attach"
	"github.com/knooppunt/knooppunt/node/config"
	"github.com/knooppunt/knooppunt/node/db"
	"github.com/knooppunt/knooppunt/node/metrics"
	"github.com/knooppunt/knooppunt/node/record"
	"github.com/knooppunt/knooppunt/node/store"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

var (
	received = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "knooppunt", Name: "federation_received_total",
		Help: "Events received from peers' subscriptions, by peer and kind of event.",
	}, []string{"peer", "event"})
	dropped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "knooppunt", Name: "federation_dropped_total",
		Help: "Records from peers that were dropped as malformed or not the peer's own.",
	}, []string{"peer"})
	connected = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "knooppunt", Name: "federation_subscription_up",
		Help: "1 while the subscription to a peer is connected.",
	}, []string{"peer"})
)

func init() { metrics.Registry.MustRegister(received, dropped, connected) }

// Config wires the manager.
type Config struct {
	Store *store.Store
	DB    *db.DB
	// SVID and Bundles authenticate this node to peers and peers to it.
	SVID    identity.Source
	Bundles *identity.TrustStore
	// Peers returns the configured peers; it is called again as the config reloads.
	Peers func() []config.Peer
	// MaxMessageBytes bounds one message from a peer. Default 4 MiB.
	MaxMessageBytes int
	// EventsPerSecond bounds how fast one peer's events are taken in. Default 2000.
	EventsPerSecond float64
	// IdleTimeout ends a subscription that sent nothing, not even a heartbeat. Default 20s.
	IdleTimeout time.Duration
	// Backoff is the first reconnect delay; it doubles to MaxBackoff, with jitter.
	Backoff, MaxBackoff time.Duration
	// MaxDeniedBackoff is where the delay stops doubling while the peer refuses this node
	// (PermissionDenied). Default 5m.
	MaxDeniedBackoff time.Duration
	// Purpose is what the node states it needs peers' records for, on every subscription.
	Purpose string
	// DialOptions are added to every connection to a peer, such as tracing's.
	DialOptions []grpc.DialOption
	// FileLimits are the node's limits for files, which files fetched from peers meet too.
	FileLimits func() attach.Limits
	// FileBytesPerSecond bounds the bytes of files fetched from one peer. Default 8 MiB.
	FileBytesPerSecond int64
	// Leader, in a Raft group, returns a connection to the leader's API, over which a follower
	// watches the leader's subscriptions' changes (see watchLeader). Nil: a single replica.
	Leader func() (*grpc.ClientConn, error)
	Logger *slog.Logger
}

// Manager keeps the connections to peers and, on the leader, one subscription per peer.
type Manager struct {
	c Config

	// connMu guards conns and mu guards subs. They are apart because reconcile and stopAll
	// hold mu while a subscription ends, and a subscription that is starting takes connMu.
	connMu sync.Mutex
	conns  map[string]*peerConn // by peer name
	// retired are connections taken out of conns that calls may still use: each is closed
	// connGrace after, or when Run ends.
	retired identity.Retired
	// first is, by peer name, the index of the address a new connection tries first (see
	// MoveOn).
	first map[string]int
	mu    sync.Mutex
	subs  map[string]*subscription
	// known are the peers of the last reconcile, by name: one that is gone since has its
	// series deleted. Only Run reconciles.
	known map[string]config.Peer
	// changed is closed, and replaced, when a subscription opens or breaks (Changed).
	changedMu sync.Mutex
	changed   chan struct{}
	flips     uint64 // how often changed was closed: a generation a page can name
	// watch is, on a follower, its watch of the leader's changes (watchLeader). Only Run uses it.
	watch leaderWatch
	// wake asks Run to reconcile now rather than at its next tick.
	wake chan struct{}
	// files wakes a peer's file fetcher (by peer name) when records arrived.
	files sync.Map
}

type peerConn struct {
	key  string
	conn *grpc.ClientConn
	// svid is this node's SVID when the connection was made.
	svid identity.SVIDMark
}

// connGrace is how long a connection taken out of use (the peer's addresses changed, or a
// subscription dials anew) stays open for the calls under way on it: a search or a file fetch
// that is given a connection must not lose it half-way.
const connGrace = time.Minute

// retire takes pc out of use: new calls dial anew, and calls under way on it keep it for
// connGrace. The caller holds connMu.
func (m *Manager) retire(name string, pc *peerConn) {
	m.retireFor(name, pc, connGrace)
}

// retireFor is retire with a grace of its own.
func (m *Manager) retireFor(name string, pc *peerConn, grace time.Duration) {
	delete(m.conns, name)
	m.retired.Add(pc.conn, grace)
}

type subscription struct {
	peer config.Peer
	// exercise is the subscription's mode: "" for actual records, else an open exercise's name.
	exercise string
	cancel   context.CancelFunc
	done     chan struct{}
	// retry cuts a reconnect's wait short: the peer showed it is reachable and trusts us. It is
	// given only while waiting is set, between a stream's end and the next attempt.
	retry   chan struct{}
	waiting atomic.Bool
	// state is how the subscription fares, for Subscription.
	stateMu sync.Mutex
	state   SubscriptionState
	// heard is when the open stream last gave anything (Unix nanoseconds): SubscriptionState.Heard.
	heard atomic.Int64
	// flipped is called when the subscription opens or breaks (Manager.Changed).
	flipped func()
	// version and describedAt are what the peer last said of its release (describe), under
	// stateMu. They outlast the stream they were said on: a peer that is down is still known to
	// run the release it last said.
	version     string
	describedAt time.Time
}

// SubscriptionState is how a subscription to a peer fares: open, or not, since when, and while
// it is not, the error of its last attempt ("" before the first attempt ended).
type SubscriptionState struct {
	Open  bool
	Since time.Time
	Err   string
	// Opened is whether it has been open since this replica began to follow the peer (it
	// started, or became the leader). Until then Since is when it began, not when the peer went
	// down: the cache may be older.
	Opened bool
	// Heard is when the peer last sent anything on it, open now or last: a change or a
	// heartbeat. A peer that hangs leaves it open until the idle timeout, and Heard then says
	// how long it has been silent; once it is closed, Heard is when the copy was last known
	// complete if the stream that ended had caught up (CaughtUpAt, kept when it closes). Zero
	// until it was open.
	Heard time.Time
	// CaughtUpAt is when the peer last said, with a heartbeat, that this node had all of its
	// feed: a source sends one only when it has nothing more to send. Every is the spacing of
	// its last two heartbeats: the partner's federation.heartbeat, which may differ from ours.
	CaughtUpAt time.Time
	Every      time.Duration
	// ExerciseState, on a subscription of an exercise, is the peer's own state of it, as its
	// last heartbeat said (pb.Heartbeat.exercise_state): "" until one did.
	ExerciseState string
	// Version, on the subscription of actual records, is the peer's release as it last said
	// (pb.DescribeResponse.version): "" from a node of an earlier release. DescribedAt is when it
	// said so; zero until it did since this replica began to follow the peer.
	Version     string
	DescribedAt time.Time
}

// CatchingUp reports since when a subscription has not reached the end of the peer's feed: while
// it is not open (since it began, or went down: the copy takes in nothing, though the peer may
// answer a search), from its opening until the peer's first heartbeat on it (a peer sends one
// as soon as it has sent all: what a restart or a move of the leader left to take in is not
// hidden), and once it had one, when none came for longer than within while changes keep
// coming. Zero when it has.
func (st SubscriptionState) CatchingUp(within time.Duration, now time.Time) time.Time {
	last := st.caughtUp()
	if last.IsZero() {
		return st.Since
	}
	// Two of the partner's own heartbeats, when they are further apart than within; no more
	// than twice the idle timeout (within is half of it), past which the stream would have
	// ended: a spacing measured across a catch-up does not count for more.
	if e := 2 * st.Every; e > within {
		within = min(e, 4*within)
	}
	if now.Sub(last) <= within {
		return time.Time{}
	}
	return last
}

// caughtUp notes a heartbeat: the peer had nothing more to send, and, on a subscription of an
// exercise, its state of the exercise.
func (s *subscription) caughtUp(at time.Time, exerciseState string) {
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	if !s.state.CaughtUpAt.IsZero() && s.state.CaughtUpAt.After(s.state.Since) {
		s.state.Every = at.Sub(s.state.CaughtUpAt)
	}
	s.state.CaughtUpAt, s.state.ExerciseState = at, exerciseState
}

// caughtUp is when the open stream last had a heartbeat; zero when it had none since it opened,
// or is not open.
func (st SubscriptionState) caughtUp() time.Time {
	if !st.Open || !st.CaughtUpAt.After(st.Since) {
		return time.Time{}
	}
	return st.CaughtUpAt
}

// caughtUpSinceOpened is the state's caughtUp.
func (s *subscription) caughtUpSinceOpened() time.Time {
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	return s.state.caughtUp()
}

// set is the subscription's new state; one that opens or breaks tells flipped, and so does the
// first attempt's failure: a peer that stopped while the subscription was still connecting
// answered a picture that asked it meanwhile, and that picture must hear that it is gone. A
// failed attempt to reconnect leaves it broken, and tells nothing.
func (s *subscription) set(st SubscriptionState) {
	s.stateMu.Lock()
	first := !s.state.Open && !s.state.Opened && s.state.Err == "" && st.Err != ""
	flip := s.state.Open != st.Open || first
	s.state = st
	s.stateMu.Unlock()
	if flip && s.flipped != nil {
		s.flipped()
	}
}

// Changed returns a channel that is closed when a subscription of this replica to a peer next
// opens or breaks: when whether the peer is heard from changes, as Subscription says. On a
// follower, which subscribes to none, it is closed when one of the leader's does, and when the
// follower begins to watch a leader (see watchLeader). It carries no data, and a peer that
// comes and goes closes it each time: a reader that acts on it holds back on its own. Failed
// attempts to reconnect, which go on while a peer is down, do not close it.
// gen counts the channels closed before it since this replica started: a reader that took gen
// earlier (a page, when it asked the partners) and sees another one now missed a change.
func (m *Manager) Changed() (changed <-chan struct{}, gen uint64) {
	m.changedMu.Lock()
	defer m.changedMu.Unlock()
	return m.changed, m.flips
}

// flip closes the channel Changed returned, and gives the next one.
func (m *Manager) flip() {
	m.changedMu.Lock()
	defer m.changedMu.Unlock()
	close(m.changed)
	m.changed = make(chan struct{})
	m.flips++
}

// CatchUpGrace is how long an open subscription may go without the peer saying it has sent all
// before it counts as catching up: half the idle timeout, two of a peer's heartbeats by default.
func (m *Manager) CatchUpGrace() time.Duration { return m.c.IdleTimeout / 2 }

// Subscription says how this replica's subscription to a peer's actual records fares. ok is
// false when this replica runs none: only the leader subscribes.
func (m *Manager) Subscription(peer string) (st SubscriptionState, ok bool) {
	return m.stateOf(peer, "")
}

// stateOf is how this replica's subscription to a peer in the mode of exercise fares; ok is
// false when it has none.
func (m *Manager) stateOf(peer, exercise string) (SubscriptionState, bool) {
	m.mu.Lock()
	s, ok := m.subs[subKey(peer, exercise)]
	m.mu.Unlock()
	if !ok {
		return SubscriptionState{}, false
	}
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	st := s.state
	st.Version, st.DescribedAt = s.version, s.describedAt
	if h := s.heard.Load(); st.Opened && h != 0 {
		st.Heard = time.Unix(0, h)
	}
	return st, true
}

// ExercisePartners says of each peer whether it takes part in an exercise, as its heartbeats on
// this replica's subscription of the exercise say: open, closed, none, or unknown while the
// subscription is down or the peer has not said (earlier_release when it answers and runs a
// release that does not say). A peer this replica does not follow in the exercise (it is not
// open here, or this replica does not lead) is left out.
func (m *Manager) ExercisePartners(exercise string) []*pb.ExercisePartner {
	var out []*pb.ExercisePartner
	for _, p := range m.c.Peers() {
		st, ok := m.stateOf(p.Name, exercise)
		if !ok {
			continue
		}
		part := &pb.ExercisePartner{Peer: p.Name, State: db.ExerciseUnknown, Error: st.Err}
		switch {
		case st.Open && st.ExerciseState != "":
			part.State = st.ExerciseState
		case !st.caughtUp().IsZero():
			// Heard from, and not told: its policies grant this node none of the exercise's
			// records, or it runs an earlier release. A release that says exercise_state says
			// its own too (both came in one), which tells the two apart.
			actual, _ := m.stateOf(p.Name, "")
			part.EarlierRelease = !actual.DescribedAt.IsZero() && actual.Version == ""
		}
		out = append(out, part)
	}
	return out
}

// New returns a manager.
func New(c Config) *Manager {
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = 4 << 20
	}
	if c.EventsPerSecond <= 0 {
		c.EventsPerSecond = 2000
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 20 * time.Second
	}
	if c.Backoff <= 0 {
		c.Backoff = 200 * time.Millisecond
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 10 * time.Second
	}
	if c.MaxDeniedBackoff <= 0 {
		c.MaxDeniedBackoff = 5 * time.Minute
	}
	if c.FileBytesPerSecond <= 0 {
		c.FileBytesPerSecond = 8 << 20
	}
	if c.FileLimits == nil {
		c.FileLimits = func() attach.Limits { return attach.Limits{} }
	}
	return &Manager{c: c, conns: map[string]*peerConn{}, subs: map[string]*subscription{}, wake: make(chan struct{}, 1),
		changed: make(chan struct{})}
}

// Conn returns the connection to a peer. It tries the peer's replicas in order and accepts only
// a replica SVID of the peer's trust domain. Once this node's SVID is renewed, it dials anew
// (identity.SVIDMark): the peer would close the connection of the old SVID when it ends, with
// a call under way on it perhaps.
func (m *Manager) Conn(p config.Peer) (*grpc.ClientConn, error) {
	pc, err := m.peerConn(p)
	if err != nil {
		return nil, err
	}
	return pc.conn, nil
}

// peerConn is Conn with the SVID the connection was made with.
func (m *Manager) peerConn(p config.Peer) (*peerConn, error) {
	key := p.TrustDomain + "|" + strings.Join(p.Addresses, ",")
	m.connMu.Lock()
	defer m.connMu.Unlock()
	if pc, ok := m.conns[p.Name]; ok {
		if pc.key == key && !pc.svid.Renewed() {
			return pc, nil
		}
		if pc.key == key {
			// Renewed: the calls under way keep it until the old SVID ends (review N, N7).
			m.retireFor(p.Name, pc, pc.svid.Grace(connGrace))
		} else {
			m.retire(p.Name, pc)
		}
	}
	if len(p.Addresses) == 0 {
		return nil, fmt.Errorf("peer %s has no addresses in the config", p.Name)
	}
	td, err := spiffeid.TrustDomainFromString(p.TrustDomain)
	if err != nil {
		return nil, err
	}
	r := manual.NewBuilderWithScheme("knooppunt-peer")
	addrs := make([]resolver.Address, len(p.Addresses))
	first := m.first[p.Name]
	for i := range p.Addresses {
		addrs[i] = resolver.Address{Addr: p.Addresses[(first+i)%len(p.Addresses)]}
	}
	r.InitialState(resolver.State{Addresses: addrs})
	conn, err := grpc.NewClient(r.Scheme()+":///"+p.Name, append([]grpc.DialOption{
		grpc.WithResolvers(r),
		grpc.WithTransportCredentials(identity.ClientCredentials(m.c.SVID, m.c.Bundles, identity.AuthorizeReplica(td))),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(m.c.MaxMessageBytes)),
		// grpc's own reconnect backoff grows to two minutes, and calls fail at once until the
		// next attempt: a peer that came back would stay unreachable to search that long.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: m.c.Backoff, Multiplier: 1.6, Jitter: 0.2, MaxDelay: m.c.MaxBackoff},
			MinConnectTimeout: 5 * time.Second,
		})}, m.c.DialOptions...)...)
	if err != nil {
		return nil, fmt.Errorf("peer %s: %w", p.Name, err)
	}
	pc := &peerConn{key: key, conn: conn, svid: identity.MarkSVID(m.c.SVID)}
	m.conns[p.Name] = pc
	return pc, nil
}

// MoveOn takes from, the connection to peer on which a call was refused, out of use: the next
// call dials anew and tries the peer's addresses starting one further along. A caller
// calls it when a replica refused it as not current with its group (api.ReasonNotCurrent): one
// removed from its group, cut off from it or behind it discloses nothing, and grpc's pick_first
// would stay with it for as long as it is reachable. Calls that failed on one connection at once
// move on once: from is no longer in use after the first.
func (m *Manager) MoveOn(peer string, from *grpc.ClientConn) {
	m.connMu.Lock()
	defer m.connMu.Unlock()
	pc, ok := m.conns[peer]
	if !ok || pc.conn != from {
		return
	}
	if m.first == nil {
		m.first = map[string]int{}
	}
	m.first[peer]++
	m.retire(peer, pc)
}

// Reconcile asks Run to bring the subscriptions in line with the peers now, as after a peer was
// added or removed, instead of at its next tick.
func (m *Manager) Reconcile() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// Retry cuts short the wait before a subscription to the named peer reconnects. The node calls
// it when that peer calls this node: the peer is reachable and trusts this node now, as when it
// just accepted this node's invitation, so a subscription that it refused until then need not
// wait out its backoff (up to MaxBackoff). A subscription that is not waiting to reconnect is
// left alone: partners call each other all the time, and a token kept for later would cut the
// next backoff short for no reason.
func (m *Manager) Retry(peer string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.subs {
		if s.peer.Name != peer || !s.waiting.Load() {
			continue
		}
		select {
		case s.retry <- struct{}{}:
		default: // a retry is pending already
		}
	}
}

// subKey is the key of the subscription to a peer in the mode of an exercise ("" actual).
func subKey(peer, exercise string) string { return peer + "\x00" + exercise }

// fresh retires the connection to a peer, so that the next call dials anew. A subscription that
// is retried calls it: the connection keeps a reconnect backoff of its own, which would fail the
// retry at once. (grpc's ResetConnectBackoff would do, but it reads the connection's subchannels
// while grpc may be adding one: a data race.) Searches and file fetches under way keep it.
func (m *Manager) fresh(peer string) {
	m.connMu.Lock()
	defer m.connMu.Unlock()
	if pc, ok := m.conns[peer]; ok {
		m.retire(peer, pc)
	}
}

// Run keeps one subscription per configured peer while this replica leads, until ctx ends.
func (m *Manager) Run(ctx context.Context) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		m.reconcile(ctx)
		select {
		case <-ctx.Done():
			m.stopWatch()
			m.stopAll()
			m.connMu.Lock()
			for _, pc := range m.conns {
				pc.conn.Close()
			}
			m.retired.CloseAll()
			m.conns = map[string]*peerConn{}
			m.connMu.Unlock()
			return
		case <-t.C:
		case <-m.wake:
		}
	}
}

func (m *Manager) reconcile(ctx context.Context) {
	leader := m.c.Store.State() == "Leader"
	m.watchLeader(ctx, leader)
	type wanted struct {
		peer     config.Peer
		exercise string
	}
	want := map[string]wanted{}
	peers := m.c.Peers()
	// A peer that is gone keeps no connection, after the grace of the calls under way on it.
	names := map[string]bool{}
	for _, p := range peers {
		names[p.Name] = true
	}
	var gone []config.Peer
	for name, p := range m.known {
		if !names[name] {
			gone = append(gone, p)
		}
	}
	m.known = map[string]config.Peer{}
	for _, p := range peers {
		m.known[p.Name] = p
	}
	m.connMu.Lock()
	for name, pc := range m.conns {
		if !names[name] {
			m.retire(name, pc)
		}
	}
	m.connMu.Unlock()
	if leader {
		modes := []string{""}
		open, err := m.c.DB.Exercises(ctx, false)
		if err != nil {
			m.c.Logger.Warn("could not read the open exercises: subscribing to actual records only", "err", err)
		}
		for _, e := range open {
			modes = append(modes, e.Name)
		}
		for _, p := range peers {
			for _, ex := range modes {
				want[subKey(p.Name, ex)] = wanted{p, ex}
			}
		}
	}
	m.mu.Lock()
	var ending []*subscription
	for key, s := range m.subs {
		if w, ok := want[key]; !ok || w.peer.TrustDomain != s.peer.TrustDomain || !slices.Equal(w.peer.Addresses, s.peer.Addresses) {
			s.cancel()
			ending = append(ending, s)
			delete(m.subs, key)
		}
	}
	m.mu.Unlock()
	// Waited for without the lock, which a peer's call (Retry) and a search (stateOf) take: a
	// subscription may take a while to end, storing its last batch. Its successor starts only
	// after, from the cursor it stored. Only Run reconciles, so nothing starts meanwhile.
	for _, s := range ending {
		<-s.done
	}
	// Once its subscriptions ended, which set their gauge as they end: a removed partner's
	// series would stay until the next restart, and alerts on them fire for good (review AI,
	// AI1).
	for _, p := range gone {
		forgetPeer(p)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for key, w := range want {
		if _, ok := m.subs[key]; ok {
			continue
		}
		sctx, cancel := context.WithCancel(ctx)
		s := &subscription{peer: w.peer, exercise: w.exercise, cancel: cancel, done: make(chan struct{}), retry: make(chan struct{}, 1),
			state: SubscriptionState{Since: time.Now()}, flipped: m.flip}
		m.subs[key] = s
		go func() {
			defer close(s.done)
			var wg sync.WaitGroup
			if w.exercise == "" {
				// One fetcher a peer: files are fetched for every mode's records alike.
				wg.Go(func() { m.fetchFiles(sctx, w.peer) })
			}
			m.follow(sctx, w.peer, w.exercise, s)
			wg.Wait()
		}()
	}
}

// forgetPeer deletes the series of a peer that is no longer one.
func forgetPeer(p config.Peer) {
	connected.DeleteLabelValues(p.Name)
	dropped.DeleteLabelValues(p.Name)
	received.DeletePartialMatch(prometheus.Labels{"peer": p.Name})
	metrics.ForgetPeer(p.Name, p.TrustDomain)
}

func (m *Manager) stopAll() {
	m.mu.Lock()
	subs := m.subs
	m.subs = map[string]*subscription{}
	m.mu.Unlock()
	for _, s := range subs {
		s.cancel()
	}
	for _, s := range subs {
		<-s.done
	}
}

// outageWarnFor is how long into an outage each failed attempt is logged at WARN; after it, at
// most one a outageWarnEvery, so that a peer down for a weekend is not thousands of lines.
const (
	outageWarnFor   = time.Minute
	outageWarnEvery = 10 * time.Minute
)

// outage follows one subscription's outages for the log: since when it is down, how many
// attempts failed, and when it last warned.
type outage struct {
	since, warned time.Time
	attempts      int
}

// failed notes a failed attempt at now and reports whether to log it at WARN: each in the
// outage's first outageWarnFor, then one a outageWarnEvery.
func (o *outage) failed(now time.Time) bool {
	o.attempts++
	if o.since.IsZero() {
		o.since = now
	}
	if now.Sub(o.since) < outageWarnFor || now.Sub(o.warned) >= outageWarnEvery {
		o.warned = now
		return true
	}
	return false
}

// up notes that the subscription is open again, and reports how long it was down and after how
// many failed attempts; ok is false when it was not down.
func (o *outage) up(now time.Time) (down time.Duration, attempts int, ok bool) {
	if o.since.IsZero() {
		return 0, 0, false
	}
	down, attempts = now.Sub(o.since), o.attempts
	*o = outage{}
	return down, attempts, true
}

// follow subscribes to a peer until ctx ends, reconnecting with backoff and jitter.
func (m *Manager) follow(ctx context.Context, p config.Peer, exercise string, s *subscription) {
	log := m.c.Logger.With("peer", p.Name)
	if exercise != "" {
		log = log.With("exercise", exercise)
	}
	delay := m.c.Backoff
	var out outage
	everOpened := false
	// ask: the peer is asked its release once the next stream has caught up (describe), as it
	// may have been upgraded while the stream was down. A stream that this node opens again on a
	// renewed SVID of its own does not ask again.
	ask := exercise == ""
	var asking sync.WaitGroup
	defer asking.Wait()
	caughtUp := func(at time.Time, exerciseState string) {
		s.caughtUp(at, exerciseState)
		if ask {
			// Once the stream has caught up: a peer walks its store for a Describe, which
			// would wait for, or hold up, a resync of the stream.
			ask = false
			asking.Go(func() { m.describe(ctx, p, s, log) })
		}
	}
	opened := func() {
		everOpened = true
		s.set(SubscriptionState{Open: true, Since: time.Now(), Opened: true})
		if down, attempts, ok := out.up(time.Now()); ok {
			log.Info("subscription open again", "down_for", down.Round(time.Second), "attempts", attempts)
		}
	}
	for ctx.Err() == nil {
		progressed, err := m.subscribeOnce(ctx, p, exercise, opened, caughtUp, &s.heard)
		if errors.Is(err, errRenewed) && ctx.Err() == nil {
			log.Info("this node's SVID was renewed: subscribing again on a new connection")
			continue
		}
		ask = exercise == ""
		if exercise == "" {
			connected.WithLabelValues(p.Name).Set(0)
		}
		if ctx.Err() != nil {
			return
		}
		if progressed {
			delay = m.c.Backoff
		}
		warn := out.failed(time.Now())
		// Whether the stream that ended had caught up stays known: its copy was complete as of
		// what was last heard on it only then.
		s.set(SubscriptionState{Since: out.since, Err: errText(err), Opened: everOpened, CaughtUpAt: s.caughtUpSinceOpened()})
		if warn {
			log.Warn("subscription ended: reconnecting", "err", err, "in", delay, "down_for", time.Since(out.since).Round(time.Second), "attempts", out.attempts)
		} else {
			log.Debug("subscription ended: reconnecting", "err", err, "in", delay)
		}
		// Full jitter: many nodes that lost the same peer do not come back in step.
		wait := delay/2 + time.Duration(rand.Int64N(int64(delay/2)+1))
		s.waiting.Store(true)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
			delay = m.next(delay, err)
		case <-s.retry:
			log.Info("the peer called this node: reconnecting now")
			m.fresh(p.Name)
			delay = m.c.Backoff
		}
		s.waiting.Store(false)
		select {
		case <-s.retry: // given as the wait ended: this attempt is the retry
		default:
		}
	}
}

// describe asks the peer its release (Describe) and keeps what it said for Subscription. A node
// of an earlier release says none. When the peer does not answer, what it said before stays:
// it is asked again when the subscription opens next.
func (m *Manager) describe(ctx context.Context, p config.Peer, s *subscription, log *slog.Logger) {
	pc, err := m.peerConn(p)
	if err != nil {
		log.Debug("the peer was not asked its release", "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, m.c.IdleTimeout)
	defer cancel()
	resp, err := pb.NewFederationServiceClient(pc.conn).Describe(ctx, &pb.DescribeRequest{Purpose: m.c.Purpose})
	if err != nil {
		log.Debug("the peer did not say its release", "err", err)
		return
	}
	s.stateMu.Lock()
	changed := s.describedAt.IsZero() || s.version != resp.Version
	s.version, s.describedAt = resp.Version, time.Now()
	s.stateMu.Unlock()
	if changed {
		v := resp.Version
		if v == "" {
			v = "unknown (earlier release)"
		}
		log.Info("the peer runs release "+v, "version", resp.Version)
	}
}

// next is the delay after delay, once an attempt failed with err. A peer that refuses this node
// removed it, or has not accepted its answer yet: no retry within seconds changes that, and each
// refusal is an entry in the peer's audit log, so the delay grows to MaxDeniedBackoff. The peer's
// own call to this node, when it accepts it again, cuts the wait short (Retry).
func (m *Manager) next(delay time.Duration, err error) time.Duration {
	if status.Code(err) == codes.PermissionDenied {
		return min(delay*2, max(m.c.MaxBackoff, m.c.MaxDeniedBackoff))
	}
	return min(delay*2, m.c.MaxBackoff)
}

type event struct {
	ev   *pb.FeedEvent
	err  error
	size int64 // of ev, encoded, as the read-ahead counts it
}

// readAheadBytes bounds the events a subscription reads ahead of what it stored.
const readAheadBytes = 64 << 20

// errRenewed ends a subscription stream that had caught up when this node's SVID was renewed:
// the next is opened at once, on a new connection, with no outage.
var errRenewed = errors.New("this node's SVID was renewed")

// subscribeOnce runs one subscription stream, calling opened once it is open. It reports whether
// anything was stored.
func (m *Manager) subscribeOnce(ctx context.Context, p config.Peer, exercise string, opened func(), caughtUp func(time.Time, string), heard *atomic.Int64) (progressed bool, err error) {
	pc, err := m.peerConn(p)
	if err != nil {
		return false, err
	}
	// The SVID the connection was made with: once another is given, move.
	conn, svid := pc.conn, pc.svid
	defer func() {
		if api.Reason(err) == api.ReasonNotCurrent {
			m.MoveOn(p.Name, conn)
		}
	}()
	cursor, _, err := m.c.DB.ModeCursor(ctx, p.Name, exercise)
	if err != nil {
		return false, err
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req := &pb.SubscribeRequest{Cursor: cursor, Purpose: m.c.Purpose}
	if exercise != "" {
		req.Mode = &pb.Mode{Status: pb.Status_EXERCISE, Exercise: exercise}
	}
	stream, err := pb.NewFederationServiceClient(conn).Subscribe(sctx, req)
	if err != nil {
		return false, err
	}
	// Open once the peer took it: its node sends the headers after its checks, and a refusal
	// (not a peer now, no leader, too many streams) ends the call without them. A node of an
	// earlier release sends them with its first event. A peer that sends neither is left at
	// the idle timeout, as one that goes silent later is.
	quiet := time.AfterFunc(m.c.IdleTimeout, cancel)
	md, err := stream.Header()
	quiet.Stop()
	if err == nil && md == nil {
		// Ended without headers: its status says why. (An event cannot come without them;
		// should one, the next attempt resumes from the cursor, which it did not move.)
		if _, err = stream.Recv(); err == nil {
			err = fmt.Errorf("peer %s sent an event without headers", p.Name)
		}
	}
	if err != nil {
		if ctx.Err() == nil && sctx.Err() != nil {
			return false, fmt.Errorf("peer %s sent nothing for %s", p.Name, m.c.IdleTimeout)
		}
		return false, err
	}
	// Events are read ahead while a batch is stored, up to 256 of them and readAheadBytes: a
	// peer's may be 4 MiB each.
	events := make(chan event, 256)
	ahead := semaphore.NewWeighted(readAheadBytes)
	// heard is when the reader last took an event off the wire (Unix nanoseconds): while this
	// node is slow to store a batch, events wait in the channel, and the peer was not silent.
	heard.Store(time.Now().UnixNano())
	go func() {
		defer close(events)
		for {
			ev, err := stream.Recv()
			if err == nil {
				// Not the error: a stream the idle timeout cancelled heard nothing then.
				heard.Store(time.Now().UnixNano())
			}
			size := min(int64(proto.Size(ev)), readAheadBytes)
			if ahead.Acquire(sctx, size) != nil {
				return
			}
			select {
			case events <- event{ev, err, size}:
			case <-sctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	if exercise == "" {
		// The gauge is the actual mode's subscription: an exercise's comes and goes with it.
		connected.WithLabelValues(p.Name).Set(1)
	}
	opened()
	limiter := rate.NewLimiter(rate.Limit(m.c.EventsPerSecond), int(m.c.EventsPerSecond))
	idle := time.NewTimer(m.c.IdleTimeout)
	defer idle.Stop()
	progressed = false
	b := m.newBatch(p, exercise, cursor)
	flushAt := time.NewTimer(time.Hour)
	defer flushAt.Stop()
	scheduled := false
	for {
		select {
		case <-ctx.Done():
			return progressed, ctx.Err()
		case <-idle.C:
			if quiet := time.Since(time.Unix(0, heard.Load())); quiet < m.c.IdleTimeout {
				idle.Reset(m.c.IdleTimeout - quiet)
				continue
			}
			return progressed, fmt.Errorf("peer %s sent nothing for %s", p.Name, m.c.IdleTimeout)
		case <-flushAt.C:
			scheduled = false
			if err := b.flush(ctx); err != nil {
				return progressed, err
			}
			progressed = true
		case e, ok := <-events:
			if !ok {
				return progressed, errors.New("stream closed")
			}
			ahead.Release(e.size)
			if e.err != nil {
				if err := b.flush(ctx); err != nil {
					return progressed, err
				}
				return progressed, e.err
			}
			if err := limiter.Wait(ctx); err != nil {
				return progressed, err
			}
			idle.Reset(m.c.IdleTimeout)
			hb := e.ev.GetHeartbeat()
			if hb != nil && !hb.Full && !hb.FullEnd && b.size() > 0 {
				// What came before the heartbeat is in the cache before the copy counts as
				// caught up: a picture read in between would lack it.
				if err := b.flush(ctx); err != nil {
					return progressed, err
				}
				progressed = true
			}
			if hb != nil && !hb.Full && !hb.FullEnd {
				caughtUp(time.Now(), hb.ExerciseState)
			}
			if b.add(e.ev) && !scheduled {
				flushAt.Reset(flushDelay)
				scheduled = true
			}
			if b.fullEnded {
				if err := b.dropUnsent(ctx); err != nil {
					return progressed, err
				}
				progressed = true
			}
			// Store changes at once when nothing more has arrived, so that a lone change is not
			// held back; under load, events queue up meanwhile and go into one command together.
			if b.filled() || (b.size() > 0 && len(events) == 0) {
				if err := b.flush(ctx); err != nil {
					return progressed, err
				}
				progressed = true
			}
			if hb != nil && !hb.Full && !hb.FullEnd && b.full == nil && svid.Renewed() {
				// Caught up, on a connection the peer will close when this node's old SVID
				// ends: subscribe again on a new one now, from the heartbeat's cursor.
				if err := b.flush(ctx); err != nil {
					return progressed, err
				}
				return true, errRenewed
			}
		}
	}
}

// flushDelay is how long a subscription holds a cursor that moved with no change to store (a
// heartbeat past changes not shared with this node) before it stores it. Changes themselves are
// stored as soon as the stream has nothing more queued.
const flushDelay = 20 * time.Millisecond

// batch collects a subscription's events into one CacheForeign command.
type batch struct {
	m        *Manager
	peer     config.Peer
	exercise string
	cmd      *pb.CacheForeign
	stored   int64 // the cursor already stored
	// full holds the ids a full stream sent (see pb.Heartbeat), from its first heartbeat until
	// its full_end, which sets fullEnded; nil otherwise.
	full      map[string]bool
	fullEnded bool
	// reasons counts the batch's retractions by the reason the source gave, for the log line
	// that tells the operator why records went (the picture only loses them).
	reasons map[string]int
	// bytes is the size of the batch's upserts, encoded.
	bytes int
}

// maxBatchBytes bounds the upserts of one command a subscription stores: a peer's records may be
// up to the message limit each (4 MiB), and 256 of them would make one Raft entry of a gigabyte.
const maxBatchBytes = 8 << 20

func (m *Manager) newBatch(p config.Peer, exercise string, cursor int64) *batch {
	b := &batch{m: m, peer: p, exercise: exercise, stored: cursor}
	b.reset()
	b.cmd.Cursor = cursor
	return b
}

func (b *batch) reset() {
	cursor := int64(0)
	if b.cmd != nil {
		cursor = b.cmd.Cursor
	}
	b.cmd = &pb.CacheForeign{Peer: b.peer.Name, Origin: b.peer.TrustDomain, Cursor: cursor, Exercise: b.exercise, PictureBookkeeping: true, ByMode: true, PurgesDeliveries: true}
	b.reasons, b.bytes = nil, 0
}

func (b *batch) size() int { return len(b.cmd.Upserts) + len(b.cmd.Retractions) }

// filled says the batch is to be stored now, whatever else is queued: 256 changes, or
// maxBatchBytes of records.
func (b *batch) filled() bool { return b.size() >= 256 || b.bytes >= maxBatchBytes }

// add takes one event; it reports whether the event needs storing.
func (b *batch) add(ev *pb.FeedEvent) bool {
	if ev.Seq > b.cmd.Cursor {
		b.cmd.Cursor = ev.Seq
	}
	switch e := ev.Event.(type) {
	case *pb.FeedEvent_Upsert:
		received.WithLabelValues(b.peer.Name, "upsert").Inc()
		err := CheckShared(b.peer.TrustDomain, e.Upsert)
		if err == nil {
			err = checkMode(b.exercise, e.Upsert.GetRecord())
		}
		if err != nil {
			dropped.WithLabelValues(b.peer.Name).Inc()
			b.m.c.Logger.Warn("dropped a record from a peer", "peer", b.peer.Name, "err", err)
			return b.pending()
		}
		b.cmd.Upserts = append(b.cmd.Upserts, e.Upsert)
		b.bytes += proto.Size(e.Upsert)
		if b.full != nil {
			b.full[e.Upsert.Record.Id] = true
		}
	case *pb.FeedEvent_Retraction:
		received.WithLabelValues(b.peer.Name, "retraction").Inc()
		b.cmd.Retractions = append(b.cmd.Retractions, e.Retraction.RecordId)
		if b.reasons == nil {
			b.reasons = map[string]int{}
		}
		b.reasons[e.Retraction.Reason]++
	case *pb.FeedEvent_Heartbeat:
		received.WithLabelValues(b.peer.Name, "heartbeat").Inc()
		switch {
		case e.Heartbeat.Full:
			b.m.c.Logger.Warn("a peer's feed ends before this node's cursor (restored from a backup, or a replica behind its leader): taking all it grants again", "peer", b.peer.Name, "cursor", b.cmd.Cursor, "feed", ev.Seq)
			b.full = map[string]bool{}
		case e.Heartbeat.FullEnd && b.full != nil:
			// The feed numbers its changes anew from here: the cursor goes back with it.
			b.cmd.Cursor, b.fullEnded = ev.Seq, true
		}
	}
	return b.pending()
}

// dropUnsent ends a full stream: it retracts every record of the peer in this mode that this
// node holds and the stream did not send, and stores that at once, so that nothing the feed
// sends after full_end is retracted with it.
func (b *batch) dropUnsent(ctx context.Context) error {
	mode := db.Actual
	if b.exercise != "" {
		mode = db.Mode{Status: pb.Status_EXERCISE, Exercise: b.exercise}
	}
	ids, err := b.m.c.DB.ForeignIDs(ctx, b.peer.TrustDomain, mode)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if !b.full[id] {
			b.cmd.Retractions = append(b.cmd.Retractions, id)
		}
	}
	if n := len(b.cmd.Retractions); n > 0 {
		b.m.c.Logger.Warn("dropped what a peer no longer sends after its feed went back", "peer", b.peer.Name, "records", n)
	}
	b.full, b.fullEnded = nil, false
	return b.flush(ctx)
}

// pending reports whether the batch holds anything not yet stored.
func (b *batch) pending() bool { return b.size() > 0 || b.cmd.Cursor != b.stored }

func (b *batch) flush(ctx context.Context) error {
	if !b.pending() {
		return nil
	}
	b.cmd.At = timestamppb.Now()
	if _, err := b.m.c.Store.Apply(ctx, &pb.Command{Cmd: &pb.Command_CacheForeign{CacheForeign: b.cmd}}); err != nil {
		return fmt.Errorf("store what %s sent: %w", b.peer.Name, err)
	}
	b.stored = b.cmd.Cursor
	if len(b.cmd.Upserts) > 0 {
		b.m.wakeFiles(b.peer.Name)
	}
	if len(b.reasons) > 0 {
		// Why records left the cache: the question after "where did it go?" (the source's audit
		// log has each retraction; this node has only this line and the counter).
		ids := b.cmd.Retractions
		if len(ids) > 10 {
			ids = ids[:10]
		}
		b.m.c.Logger.Info("a peer withdrew records it had shared", "peer", b.peer.Name, "records", len(b.cmd.Retractions), "reasons", b.reasons, "ids", ids, "exercise", b.exercise)
	}
	b.reset()
	return nil
}

// checkMode checks that a record a subscription delivered is of its mode: the exercise's, or
// actual for "". A record of another mode never enters the cache under this one.
func checkMode(exercise string, r *pb.Record) error {
	want := db.Actual
	if exercise != "" {
		want = db.Mode{Status: pb.Status_EXERCISE, Exercise: exercise}
	}
	if !want.Holds(r) {
		return fmt.Errorf("record %q is not of the subscription's mode, %s", r.GetId(), want)
	}
	return nil
}

// CheckShared checks a record a peer sent: it must be the peer's own and well formed.
func CheckShared(origin string, s *pb.SharedRecord) error {
	r := s.GetRecord()
	switch {
	case r == nil:
		return errors.New("no record")
	case r.Origin != origin:
		return fmt.Errorf("record %q names origin %q, not the peer's %q: peers send only their own records", r.Id, r.Origin, origin)
	case r.Tombstone:
		return fmt.Errorf("record %q is a tombstone: peers retract instead", r.Id)
	}
	if err := record.CheckID("record.id", r.Id); err != nil {
		return err
	}
	// The rules of an own record: a region no partner has (=HYPERLINK(…), a second "VR09" with a
	// newline) would be summed in the picture and written into its spreadsheet.
	for _, err := range []error{record.CheckKindName("record.kind", r.Kind), record.CheckCrisis("record.crisis", r.Crisis), record.CheckRegion("record.region", r.Region)} {
		if err != nil {
			return fmt.Errorf("record %q: %w", r.Id, err)
		}
	}
	// No node writes a larger body (limits.max_body_bytes is at most that): a peer's message may
	// be 4 MiB, and one that filled it record after record filled the disk (review AD, AD3).
	if len(r.Body) > config.MaxBodyLimit {
		return fmt.Errorf("record %q: body is %d bytes, over the %d that any node writes", r.Id, len(r.Body), config.MaxBodyLimit)
	}
	if !utf8.Valid(r.Body) || !json.Valid(r.Body) || !bytes.HasPrefix(bytes.TrimSpace(r.Body), []byte("{")) {
		return fmt.Errorf("record %q: body is not a JSON object", r.Id)
	}
	// Not the characters of a label's value: an own record's are held to fewer since review AF,
	// and a partner of an earlier release may have written any (review AG, AG3).
	return record.CheckReceivedLabels("record.labels", r.Labels)
}

// errText is an attempt's error as an operator reads it: a gRPC status's message and code, not
// the wrapping of grpc's transport.
func errText(err error) string {
	if err == nil {
		return "the peer ended the subscription"
	}
	if st, ok := status.FromError(err); ok {
		return st.Message() + " (" + st.Code().String() + ")"
	}
	return err.Error()
}

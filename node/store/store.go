// Package store is a node's replicated state: a hashicorp/raft log in front of the SQLite database
// of package db.
//
// Every write becomes a typed command in the Raft log, and the FSM applies each command in one
// SQLite transaction. Concurrent writes are coalesced into one log entry (group commit), so many
// writers share one fsync. Reads go straight to the database.
//
// The database is durable on its own and records the last applied Raft index in the same
// transaction as the records, so a restart replays only the entries it has not applied yet. Raft
// snapshots are consistent SQLite copies; restoring one swaps in a new database file.
//
// store never validates records: the API layer checks them before they reach Write.
package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/node/db"
	"github.com/knooppunt/knooppunt/node/metrics"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

var (
	// ErrNotLeader means this replica cannot accept writes; Leader tells where to send them.
	ErrNotLeader = errors.New("store: this replica is not the leader")
	// ErrMaybeCommitted means the leader lost its leadership while a write it had proposed was
	// being committed: a new leader may still commit it, so the write may have been applied.
	// Unlike ErrNotLeader, it is not safe to write the same again without reading first.
	ErrMaybeCommitted = errors.New("store: the leader changed while the write was being committed: it may have been applied")
	// ErrClosed means the store is shutting down.
	ErrClosed = errors.New("store: closed")
	// ErrAlone means the replica runs without a Raft transport (no raft.listen): no other replica
	// can reach it, so none can join its group.
	ErrAlone = errors.New("store: this replica runs alone, without raft.listen: no replica can join it")
)

// Config configures a Store.
type Config struct {
	// Dir holds the Raft log and snapshots.
	Dir string
	// Stop, when set, ends the process when a committed entry cannot be applied (a full disk):
	// the replica must stop, and replays the entry when it starts. It is called with what to say
	// and must not return. Nil: a panic, which a test in the same process may recover.
	Stop func(msg string)
	// DB is the database the FSM applies to. The store does not close it.
	DB *db.DB
	// ReplicaID names this replica in the Raft configuration.
	ReplicaID string
	// Transport carries Raft traffic between replicas. Nil means a single replica with an
	// in-memory transport.
	Transport raft.Transport
	// Bootstrap creates a new group when the log is empty: of Servers, or of this replica alone.
	Bootstrap bool
	// Servers are the voters of a new group. Every replica must be given the same list.
	Servers []raft.Server
	// MaxBatch caps the record writes coalesced into one log entry. Default 2048.
	MaxBatch int
	// SnapshotThreshold is the number of log entries between snapshots. Default 8192.
	SnapshotThreshold uint64
	// TrailingLogs is how many log entries a snapshot leaves behind it. Default 4096.
	TrailingLogs uint64
	// SnapshotSize is the bytes of log entries since the last snapshot that trigger a snapshot,
	// whatever their number. Default 64 MiB.
	SnapshotSize int64
	// SnapshotInterval is how often the thresholds are checked. Default 30s.
	SnapshotInterval time.Duration
	// EraseWithin bounds how long a deleted record's body, or a retracted record of a peer,
	// stays in any file of the Raft directory or the database after the delete or retraction is
	// applied (see eraseNow). Default 10 minutes.
	EraseWithin time.Duration
	// ElectionTimeout tunes failure detection. Default 500ms, for a LAN.
	ElectionTimeout time.Duration
	// CommitTimeout is how long the leader waits, with no new entries, before it tells each
	// follower the commit index again, so that a follower applies the last entries of a burst
	// within about that long. Each such message costs a little CPU on every replica, all the
	// time: at the 5ms hashicorp/raft suggests, an idle group of three spends a fifth of a core.
	// Default 50ms.
	CommitTimeout time.Duration
	// Forward hands a command that Forwardable admits (audit entries, disclosures, kept heads,
	// file steps) to the leader when this replica is a follower. Nil: such commands fail with
	// ErrNotLeader.
	Forward func(ctx context.Context, c *pb.Command) error
	// Reserve, when set, is the bytes of the data directory's disk that a write adding data
	// leaves free, and Free how many are free now. Below the reserve the leader refuses what adds
	// data (own records other than deletes, files) with a *LowDiskError: a full disk stops a
	// replica (settle), reads and all, and is not to be reached in the normal course. Deletes,
	// partners' records and retractions, officers' steps, audit entries and Raft's own entries
	// still go in, within the reserve.
	Reserve uint64
	Free    func() (uint64, error)
	Logger  *slog.Logger
	// AskLevel asks replica id of the group, over its API, which apply level its release says
	// (ClusterService/Status): 0 for a release before levels. While one says less than this
	// replica's, this replica as leader refuses writes with an *OlderReplicaError (see
	// ApplyLevel). It says too why it fails to restore this leader's snapshots, if it does
	// (SnapshotRefused), which the leader's Servers then give. Nil: no replica is asked (a group
	// of one).
	AskLevel func(ctx context.Context, id string) (ReplicaSays, error)
	// Level, when not 0, is the apply level this replica says instead of ApplyLevel: tests
	// stand in a replica of an earlier release with it.
	Level uint32

	// shutdownWait, when set, is Close's bound on Raft's shutdown (raftShutdownWait).
	shutdownWait time.Duration

	// openLog opens the Raft log in a directory; nil is openLog. Tests give a log whose segment
	// files fail as on a full disk.
	openLog func(dir string, hl hclog.Logger, log *slog.Logger) (*raftLog, error)
}

// Store is a node's replicated state.
type Store struct {
	cfg Config
	log *slog.Logger
	// freeMu guards the last reading of the free space room took (Config.Free), at freeAt; it is
	// taken again after freeEvery.
	freeMu    sync.Mutex
	free      uint64
	freeErr   error
	freeAt    time.Time
	freeEvery time.Duration
	// low is whether the last reading was under the reserve: a crossing either way is logged.
	low    bool
	raft   *raft.Raft
	logs   *raftLog
	snaps  *snapshotStore
	erase  *eraser
	erased chan struct{} // closed when eraseLoop returns
	trans  raft.Transport
	// catchUp is set on a replica its group reached on an empty Raft directory (see catchUp).
	catchUp *catchUp
	fsm     *fsm
	queue   chan *pending
	stop    chan struct{}
	done    chan struct{}
	mu      sync.RWMutex // held for reading while a write is being queued
	closed  bool
	// readTerm is the last term in which this replica, as leader, applied every entry of
	// earlier terms: strong reads in it need no barrier.
	readTerm atomic.Uint64
	// unreachable are the replicas this replica, as leader, fails to reach, with the last time
	// each answered (see watchReplicas).
	unreachableMu sync.Mutex
	unreachable   map[raft.ServerID]time.Time
	// replicating is when this replica, as leader, began to replicate to each other one: Raft
	// counts that as a contact, which a replica that never answered has not made.
	replicating map[raft.ServerID]time.Time
	// moved is closed, and replaced, when this replica learns of another leader or loses the
	// one it knew (see LeaderChanged).
	movedMu sync.Mutex
	moved   chan struct{}
	// leaderLost is when this replica last lost the leader it knew, and leaderFound when it last
	// learned of one, in Unix nanoseconds; 0 when it has not since it started (see LeaderSeen).
	leaderLost, leaderFound atomic.Int64
	// lv is what this replica, as leader, knows of the others' apply levels (see levels.go).
	lv levels
	// bg counts the commands committed in the background (see Background).
	bg background
}

type pending struct {
	// actor is who writes the records (see pb.WriteRecords.actors); "" is the node itself.
	actor   string
	records []*pb.Record
	results []db.Result
	err     error
	done    chan struct{}
}

// Open starts the Raft replica over cfg.DB.
func Open(cfg Config) (*Store, error) {
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 2048
	}
	if cfg.SnapshotThreshold == 0 {
		cfg.SnapshotThreshold = 8192
	}
	if cfg.TrailingLogs == 0 {
		cfg.TrailingLogs = 4096
	}
	if cfg.SnapshotSize <= 0 {
		cfg.SnapshotSize = 64 << 20
	}
	if cfg.EraseWithin <= 0 {
		cfg.EraseWithin = DefaultEraseWithin
	}
	if cfg.SnapshotInterval == 0 {
		cfg.SnapshotInterval = 30 * time.Second
	}
	if cfg.ElectionTimeout == 0 {
		cfg.ElectionTimeout = 500 * time.Millisecond
	}
	if cfg.CommitTimeout == 0 {
		cfg.CommitTimeout = 50 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.ReplicaID)
	rc.HeartbeatTimeout = cfg.ElectionTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.ElectionTimeout / 2
	rc.CommitTimeout = cfg.CommitTimeout
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.TrailingLogs = cfg.TrailingLogs
	// The database is durable and knows its applied index; Raft must not restore over it.
	rc.NoSnapshotRestoreOnStart = true
	rc.Logger = hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Warn, DisableTime: true, Output: newSlogWriter(cfg.Logger)})

	openRaftLog := cfg.openLog
	if openRaftLog == nil {
		openRaftLog = openLog
	}
	logs, err := openRaftLog(cfg.Dir, rc.Logger, cfg.Logger)
	if err != nil {
		return nil, err
	}
	// A copy of the database that a snapshot left behind when the process died holds whatever
	// was deleted since: it is never read again, so it goes, with SQLite's journal of it. The
	// log's lock is held by now: no other process on this directory writes one.
	for _, p := range db.Matching(filepath.Dir(cfg.DB.Path()), "snapshot-*.db.tmp*") {
		if err := os.Remove(p); err != nil {
			logs.Close()
			return nil, fmt.Errorf("store: remove a snapshot copy left behind: %w", err)
		}
	}
	snaps, err := openSnapshots(cfg.Dir, rc.Logger, cfg.Logger)
	if err != nil {
		logs.Close()
		return nil, err
	}
	if err := catchUpFromSnapshot(cfg.DB, logs, snaps, cfg.Logger); err != nil {
		logs.Close()
		return nil, err
	}

	trans := cfg.Transport
	if trans == nil {
		_, trans = raft.NewInmemTransport(raft.ServerAddress(cfg.ReplicaID))
	}
	conf := raft.Configuration{Servers: cfg.Servers}
	if len(conf.Servers) == 0 {
		conf.Servers = []raft.Server{{ID: rc.LocalID, Address: trans.LocalAddr(), Suffrage: raft.Voter}}
	}
	has, err := raft.HasExistingState(logs, logs, snaps)
	if err != nil {
		logs.Close()
		return nil, fmt.Errorf("store: %w", err)
	}
	if !has {
		if has, err = adoptDatabase(cfg, conf, snaps, trans); err != nil {
			logs.Close()
			return nil, err
		}
	}
	// A replica of a group of several that starts with an empty log bootstraps only if no
	// group reaches it first (see bootstrapUnlessJoined).
	var lateBootstrap *raft.Configuration
	if cfg.Bootstrap {
		if !has {
			if len(conf.Servers) > 1 {
				lateBootstrap = &conf
			} else if err := raft.BootstrapCluster(rc, logs, logs, snaps, trans, conf); err != nil {
				logs.Close()
				return nil, fmt.Errorf("store: bootstrap: %w", err)
			}
		}
	}

	// A replica its group reaches on an empty Raft directory, or on a log that lost its tail
	// (logCut), asks for no vote until it holds what its leader committed (catchUp), also after a
	// restart meanwhile; one that bootstraps a new group stands at once.
	raftTrans := trans
	cut, err := logCut(cfg.DB, logs, snaps)
	if err != nil {
		logs.Close()
		return nil, fmt.Errorf("store: %w", err)
	}
	several := len(conf.Servers) > 1 || !cfg.Bootstrap // a group with others to catch up from
	if !several {
		cut = 0 // none would ever lead
	}
	cu, err := startCatchUp(cfg, trans, !has && several, cut)
	if err != nil {
		logs.Close()
		return nil, err
	}
	if cu != nil {
		raftTrans = cu
	}

	erase := newEraser()
	machine := &fsm{db: cfg.DB, log: cfg.Logger, erased: erase.note, stop: cfg.Stop, snaps: snaps}
	machine.settleAtDB()
	committed, err := committedAtStart(logs, snaps)
	if err != nil {
		if cu != nil {
			cu.Close()
		}
		logs.Close()
		return nil, err
	}
	machine.committed.Store(committed)
	// The leader reads back the entry before a follower's next one at every message to it, an
	// idle group every CommitTimeout; raft-wal would read it from the segment file, with a fresh
	// buffer, however large (about 300 KB after a 1000-record batch). The newest entries stay in
	// memory instead. A few suffice: a follower that is further behind is sent whole batches.
	cached, err := raft.NewLogCache(logCacheEntries, logs)
	if err != nil {
		logs.Close()
		return nil, fmt.Errorf("store: log cache: %w", err)
	}
	r, err := raft.NewRaft(rc, machine, cached, logs, snaps, raftTrans)
	if err != nil {
		if cu != nil {
			cu.Close()
		}
		logs.Close()
		return nil, fmt.Errorf("store: start raft: %w", err)
	}
	s := &Store{
		freeEvery: freeEvery,
		cfg:       cfg,
		log:       cfg.Logger,
		raft:      r,
		logs:      logs,
		snaps:     snaps,
		erase:     erase,
		erased:    make(chan struct{}),
		trans:     trans,
		catchUp:   cu,
		fsm:       machine,
		queue:     make(chan *pending, 4096),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
		bg:        background{open: map[uint64]bool{}},
	}
	s.bg.cnd = sync.NewCond(&s.bg.mu)
	if lateBootstrap != nil {
		s.bootstrapUnlessJoined(*lateBootstrap, 4*cfg.ElectionTimeout)
	}
	switch {
	case cu == nil || cu.done.Load():
	case cut > 0:
		last, _ := logs.LastIndex()
		s.log.Warn("this replica's Raft log ends below what its database applied: it lost entries its group committed, and is catching up: it asks for votes once it holds what its leader committed",
			"applied_index", cut, "last_log_index", last)
		go s.followUntilCaughtUp()
	default:
		s.log.Info("this replica is catching up (it started on an empty Raft directory): it asks for votes once it holds what its leader committed")
		go s.followUntilCaughtUp()
	}
	go s.commitLoop()
	go s.snapshotBySize(machine)
	go s.eraseLoop()
	if !s.Alone() {
		go s.watchReplicas()
		if cfg.AskLevel != nil {
			go s.watchLevels()
		}
	}
	return s, nil
}

// watchReplicas keeps, while this replica leads, the replicas it cannot reach (Raft's failed
// heartbeats) and the gauge knooppunt_raft_replica_reachable, for `cluster status` and alerts.
// Each time this replica becomes leader it also runs ownAddress, so that a replica that began
// alone and now has raft.listen is in its group under an address others can reach before
// anyone joins.
func (s *Store) watchReplicas() {
	ch := make(chan raft.Observation, 64)
	obs := raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.FailedHeartbeatObservation, raft.ResumedHeartbeatObservation, raft.LeaderObservation, raft.PeerObservation:
			return true
		}
		return false
	})
	s.raft.RegisterObserver(obs)
	defer s.raft.DeregisterObserver(obs)
	fix := func() {
		if err := s.ownAddress(); err != nil {
			s.log.Warn("raft: could not set this replica's address in the group: `cluster join` tries again", "err", err)
		}
	}
	if s.Leader() != "" {
		s.leaderFound.Store(time.Now().UnixNano()) // found before the observer was there to see it
	}
	if s.IsLeader() {
		go fix() // it led before the observer was there to see it
	}
	for {
		select {
		case <-s.stop:
			return
		case o := <-ch:
			s.unreachableMu.Lock()
			switch d := o.Data.(type) {
			case raft.FailedHeartbeatObservation:
				s.levelCut(string(d.PeerID))
				if _, ok := s.unreachable[d.PeerID]; !ok {
					if s.unreachable == nil {
						s.unreachable = map[raft.ServerID]time.Time{}
					}
					last := d.LastContact
					if !last.After(s.replicating[d.PeerID]) {
						last = time.Time{} // never answered in this term
					}
					s.unreachable[d.PeerID] = last
					metrics.ReplicaReachable.WithLabelValues(label(d.PeerID)).Set(0)
					answered := "never in this term"
					if !last.IsZero() {
						answered = last.UTC().Format(time.RFC3339)
					}
					s.log.Warn("raft: a replica does not answer: it gets no new entries until it does; see knooppunt cluster status", "replica", d.PeerID, "last_answered", answered)
				}
			case raft.PeerObservation:
				if !d.Removed {
					if s.replicating == nil {
						s.replicating = map[raft.ServerID]time.Time{}
					}
					s.replicating[d.Peer.ID] = time.Now()
				}
			case raft.ResumedHeartbeatObservation:
				s.levelCut(string(d.PeerID)) // what it says from now on is the replica that came back
				if _, ok := s.unreachable[d.PeerID]; ok {
					s.log.Info("raft: a replica answers again", "replica", d.PeerID)
				}
				delete(s.unreachable, d.PeerID)
				metrics.ReplicaReachable.WithLabelValues(label(d.PeerID)).Set(1)
			case raft.LeaderObservation:
				s.leaderMoved()
				// Another leader, or this one anew: what the last term saw no longer holds.
				clear(s.unreachable)
				metrics.ReplicaReachable.Reset()
				switch {
				case d.LeaderID == "":
					s.leaderLost.Store(time.Now().UnixNano())
				case string(d.LeaderID) == s.cfg.ReplicaID:
					s.leaderFound.Store(time.Now().UnixNano())
					s.log.Info("raft: this replica leads now")
					go fix() // a configuration change: not on the observer's loop
				case d.LeaderID != "":
					s.leaderFound.Store(time.Now().UnixNano())
					s.log.Info("raft: the group has a leader", "leader", d.LeaderID)
				}
			}
			s.unreachableMu.Unlock()
		}
	}
}

// adoptDatabase makes a database that holds applied entries the start of an empty Raft state:
// one restored from a backup into a data directory without its Raft directory (knooppunt
// restore). Raft would number its first entries from 1 and the database skip every entry up to
// its applied index as applied before, so the replica first takes the database as a snapshot at
// that index, with conf as the group; its log then continues after it. A replica of a group
// that still runs gets the group's state from the leader as usual: the leader's log, if it is
// further along, or its snapshot. adopted reports whether it took a snapshot.
func adoptDatabase(cfg Config, conf raft.Configuration, snaps raft.SnapshotStore, trans raft.Transport) (adopted bool, err error) {
	applied, err := cfg.DB.AppliedIndex()
	if err != nil || applied == 0 {
		return false, err
	}
	if !cfg.Bootstrap && len(cfg.Servers) == 0 {
		return false, fmt.Errorf("store: the database has applied entries up to %d, but the Raft directory %s is empty and raft.bootstrap is false: "+
			"start the replica with an empty data directory to be joined, or with raft.bootstrap true to serve this database", applied, cfg.Dir)
	}
	path, err := CopyPath(cfg.DB)
	if err != nil {
		return false, fmt.Errorf("store: adopt the database: %w", err)
	}
	snap := &snapshot{path: path}
	defer snap.Release()
	if err := cfg.DB.Backup(path); err != nil {
		return false, fmt.Errorf("store: adopt the database: %w", err)
	}
	sink, err := snaps.Create(raft.SnapshotVersionMax, applied, 1, conf, applied, trans)
	if err != nil {
		return false, fmt.Errorf("store: adopt the database: %w", err)
	}
	if err := snap.Persist(sink); err != nil {
		return false, fmt.Errorf("store: adopt the database: %w", err)
	}
	cfg.Logger.Info("took the database as the Raft state's start (restored from a backup?)", "applied_index", applied)
	return true, nil
}

// bootstrapUnlessJoined bootstraps an empty replica of a group of several, unless a group that
// exists reaches it within wait: a leader that counts it as a voter sends it entries, and a
// replica that still holds the group's log asks for its vote, which an empty replica grants and
// which then makes that replica leader. Only when nothing happens does it bootstrap, as every
// replica of a new group does. Two replicas whose disks were lost would otherwise bootstrap
// together, make a majority of the static server list with an empty log, and go on as a new,
// empty group beside the third replica's records.
func (s *Store) bootstrapUnlessJoined(conf raft.Configuration, wait time.Duration) {
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		// A vote it granted shows as a term: a replica of the group is campaigning.
		if s.raft.LastIndex() > 0 || s.raft.CurrentTerm() > 0 || s.raft.Leader() != "" {
			s.log.Info("not bootstrapping: the group reached this replica", "leader", s.raft.Leader())
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	err := s.raft.BootstrapCluster(conf).Error()
	switch {
	case err == nil:
		s.standForElection("bootstrapped a new group")
	case errors.Is(err, raft.ErrCantBootstrap):
		s.log.Info("not bootstrapping: the group reached this replica as it was about to")
	default:
		s.log.Warn("bootstrap failed", "err", err)
	}
}

// snapshotBySize takes a snapshot, and so compacts the log, once the entries applied since the
// last one add up to SnapshotSize bytes. Raft's own threshold counts entries only, and a few
// large entries (batches of 1000 records) would otherwise grow the log far beyond it.
func (s *Store) snapshotBySize(f *fsm) {
	t := time.NewTicker(min(s.cfg.SnapshotInterval, time.Second))
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		if f.sinceSnapshot.Load() < s.cfg.SnapshotSize {
			continue
		}
		err := s.raft.Snapshot().Error()
		switch {
		case err == nil:
			metrics.SnapshotsBySize.Inc()
		case errors.Is(err, raft.ErrNothingNewToSnapshot), errors.Is(err, raft.ErrRaftShutdown):
		default:
			s.log.Warn("snapshot by size failed: will try again", "err", err)
		}
	}
}

// catchUpFromSnapshot restores the newest snapshot when the database is behind it, as after the
// database file was lost: the log before a snapshot is compacted away, so replay alone cannot
// rebuild it. A database behind it by entries of Raft's own alone (a new leader's no-op, a
// barrier, a change of the group), which never reach it, is not: it lacks nothing, and a
// replica whose last entries were such restored its whole database at every start, and could
// not start on a disk with less free than the database (review H, F4).
func catchUpFromSnapshot(d *db.DB, logs raft.LogStore, snaps raft.SnapshotStore, log *slog.Logger) error {
	list, err := snaps.List()
	if err != nil || len(list) == 0 {
		return err
	}
	applied, err := d.AppliedIndex()
	if err != nil {
		return err
	}
	if list[0].Index <= applied || raftsOwn(logs, applied+1, list[0].Index) {
		return nil
	}
	log.Info("restoring the database from the newest snapshot: it lacks entries the log no longer holds",
		"applied", applied, "snapshot", list[0].ID, "snapshot_index", list[0].Index, "bytes", list[0].Size)
	_, rc, err := snaps.Open(list[0].ID)
	if err != nil {
		return fmt.Errorf("store: open snapshot %s: %w", list[0].ID, err)
	}
	defer rc.Close()
	if err := d.Restore(rc); err != nil {
		return fmt.Errorf("store: restore snapshot %s: %w", list[0].ID, err)
	}
	return nil
}

// raftsOwn reports whether the log holds every entry from first to last, and none of them is
// one the database applies (a command).
func raftsOwn(logs raft.LogStore, first, last uint64) bool {
	for i := first; i <= last; i++ {
		var l raft.Log
		if err := logs.GetLog(i, &l); err != nil || l.Type == raft.LogCommand {
			return false
		}
	}
	return true
}

// NodeActor is the actor the audit log names for writes the node makes itself (early warning).
const NodeActor = "node"

// Write commits records through the Raft log and returns one result per record. It returns an
// error when nothing was committed (ErrNotLeader, ErrClosed, or a Raft failure), or
// ErrMaybeCommitted when the leader was deposed before the entry committed. A database failure
// in the FSM stops the replica (see settle) rather than reach the writer.
func (s *Store) Write(ctx context.Context, records []*pb.Record) ([]db.Result, error) {
	return s.WriteAs(ctx, "", records)
}

// WriteAs is Write on behalf of actor, the caller's SPIFFE ID or "local socket", whom the audit
// log names for the deletes and classification changes among the records.
func (s *Store) WriteAs(ctx context.Context, actor string, records []*pb.Record) ([]db.Result, error) {
	if len(records) == 0 {
		return nil, nil
	}
	if s.IsLeader() && slices.ContainsFunc(records, func(r *pb.Record) bool { return !r.GetTombstone() }) {
		// Deletes alone go in within the reserve. (A follower's write fails as not the leader's.)
		if err := s.room(); err != nil {
			metrics.RecordWrites.WithLabelValues("disk_low").Add(float64(len(records)))
			return nil, err
		}
	}
	p := &pending{actor: actor, records: records, done: make(chan struct{})}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return nil, ErrClosed
	}
	select {
	case s.queue <- p:
		metrics.WriteQueue.Add(float64(len(records)))
	case <-ctx.Done():
		s.mu.RUnlock()
		return nil, ctx.Err()
	}
	s.mu.RUnlock()
	// Once queued, a write is committed or failed by the commit loop even if the caller gives
	// up, so that Close can wait for every write in flight.
	select {
	case <-p.done:
		return p.results, p.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// commitDepth is how many log entries of record writes may be in flight at once. With two, one
// entry's append (an fsync) overlaps the previous entry's apply to SQLite.
const commitDepth = 2

// commitLoop coalesces queued writes into log entries, at most commitDepth in flight: while
// entries are being committed, the next writes queue up and go together into the next one.
func (s *Store) commitLoop() {
	var wg sync.WaitGroup
	defer func() {
		wg.Wait()
		close(s.done)
	}()
	slots := make(chan struct{}, commitDepth)
	// Entries are proposed here, in order, so that updated_at follows the change feed's order;
	// only the wait for each is concurrent.
	start := func(batch []*pending) {
		wait := s.propose(batch)
		wg.Go(func() {
			defer func() { <-slots }()
			wait()
		})
	}
	for {
		// Take a slot before the batch, so that writes keep gathering while every slot is busy.
		slots <- struct{}{}
		var first *pending
		select {
		case first = <-s.queue:
		case <-s.stop:
			<-slots
			// Close stopped new writes from being queued; commit those already queued.
			for {
				select {
				case p := <-s.queue:
					slots <- struct{}{}
					start([]*pending{p})
				default:
					return
				}
			}
		}
		batch := []*pending{first}
		n := len(first.records)
	fill:
		for n < s.cfg.MaxBatch {
			select {
			case p := <-s.queue:
				batch = append(batch, p)
				n += len(p.records)
			default:
				break fill
			}
		}
		start(batch)
	}
}

// propose stamps and proposes one entry of record writes, and returns the function that waits for
// it to be applied and answers its writers. A batch that cannot be proposed is failed at once.
func (s *Store) propose(batch []*pending) (wait func()) {
	var (
		records []*pb.Record
		actors  []string
	)
	for _, p := range batch {
		records = append(records, p.records...)
		actor := p.actor
		if actor == "" {
			actor = NodeActor
		}
		for range p.records {
			actors = append(actors, actor)
		}
	}
	metrics.WriteQueue.Sub(float64(len(records)))
	metrics.BatchSize.Observe(float64(len(records)))
	fail := func(err error) {
		for _, p := range batch {
			p.err = err
			close(p.done)
		}
		metrics.RecordWrites.WithLabelValues("failed").Add(float64(len(records)))
	}
	if s.raft.State() != raft.Leader {
		fail(s.notLeader())
		return func() {}
	}
	if err := s.olderReplica(); err != nil {
		fail(err)
		return func() {}
	}
	now := timestamppb.Now()
	for _, r := range records {
		r.UpdatedAt = now
	}
	if len(slices.Compact(slices.Clone(actors))) == 1 {
		actors = actors[:1] // one writer for all, as a batch has: not one copy a record
	}
	data, err := encode(&pb.Command{Cmd: &pb.Command_WriteRecords{WriteRecords: &pb.WriteRecords{Records: records, Actors: actors, PictureBookkeeping: true, PurgesDeliveries: true}}})
	if err != nil {
		fail(err)
		return func() {}
	}
	start := time.Now()
	f := s.raft.Apply(data, 10*time.Second)
	return func() {
		if err := f.Error(); err != nil {
			fail(fmt.Errorf("store: commit: %w", s.commitFailure(err, start)))
			return
		}
		metrics.ApplyLatency.Observe(time.Since(start).Seconds())
		resp := f.Response().(applyResponse)
		if resp.err != nil {
			fail(resp.err)
			return
		}
		if len(resp.results) != len(records) {
			// The database skipped the entry as already applied: it is ahead of this Raft log, as
			// when the log was wiped and bootstrapped anew. Slicing the nil results would panic.
			fail(fmt.Errorf("store: commit: log entry %d was not applied: the database has applied a later entry than this Raft log holds", f.Index()))
			return
		}
		i := 0
		for _, p := range batch {
			p.results = resp.results[i : i+len(p.records)]
			i += len(p.records)
			close(p.done)
		}
		for _, r := range resp.results {
			if r.Err == nil {
				metrics.RecordWrites.WithLabelValues("ok").Inc()
			} else {
				metrics.RecordWrites.WithLabelValues("refused").Inc()
			}
		}
	}
}

// Apply commits one command that is not a record write (those go through Write, to be
// coalesced) and returns what the FSM answered for it.
func (s *Store) Apply(ctx context.Context, c *pb.Command) (any, error) {
	return s.ApplyAsync(ctx, c)()
}

// ApplyAsync proposes c and returns a function that waits for its outcome, as Apply gives it.
// On the leader, commands proposed one after another enter the log in that order while earlier
// ones are still being committed, so that a writer of many entries (a file's chunks) keeps the
// log busy. On a follower it forwards c, or fails, before it returns.
func (s *Store) ApplyAsync(ctx context.Context, c *pb.Command) func() (any, error) {
	done := func(v any, err error) func() (any, error) { return func() (any, error) { return v, err } }
	s.mu.RLock()
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		return done(nil, ErrClosed)
	}
	if s.raft.State() != raft.Leader {
		if s.cfg.Forward == nil || !Forwardable(c) {
			return done(nil, s.notLeader())
		}
		// One that became the leader while the command waited for the old one proposes it.
		if err := s.cfg.Forward(ctx, c); !errors.Is(err, ErrLeadsNow) || s.raft.State() != raft.Leader {
			return done(nil, err)
		}
	}
	if addsData(c) {
		if err := s.room(); err != nil {
			return done(nil, err)
		}
	}
	if err := s.olderReplica(); err != nil {
		return done(nil, err)
	}
	data, err := encode(c)
	if err != nil {
		return done(nil, err)
	}
	timeout := 10 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	start := time.Now()
	f := s.raft.Apply(data, timeout)
	return func() (any, error) {
		if err := f.Error(); err != nil {
			if err = s.commitFailure(err, start); errors.Is(err, ErrNotLeader) {
				return nil, err
			}
			return nil, fmt.Errorf("store: commit: %w", err)
		}
		resp := f.Response().(applyResponse)
		return resp.value, resp.err
	}
}

// LowDiskError is a write refused because the data directory's disk has less free than the
// reserve (Config.Reserve).
type LowDiskError struct{ Free, Reserve uint64 }

func (e *LowDiskError) Error() string {
	return fmt.Sprintf("store: the disk of the data directory has %d MiB free, under the reserve of %d MiB", e.Free>>20, e.Reserve>>20)
}

// Reserve is the bytes of the disk that writes adding data leave free; 0 for none.
func (s *Store) Reserve() uint64 { return s.cfg.Reserve }

// room refuses a write that adds data while the disk has less free than the reserve.
// The free space is read at most once a freeEvery: a write is on the leader's hot path, and a
// disk fills over minutes, not milliseconds.
func (s *Store) room() error {
	if s.cfg.Free == nil {
		return nil
	}
	reserve := s.Reserve()
	s.freeMu.Lock()
	crossed := 0 // 1: under the reserve since this reading, -1: above it again
	if now := time.Now(); now.Sub(s.freeAt) >= s.freeEvery {
		s.free, s.freeErr = s.cfg.Free()
		s.freeAt = now
		if low := s.freeErr == nil && s.free < reserve; low != s.low {
			s.low, crossed = low, 1
			if !low {
				crossed = -1
			}
		}
	}
	free, err := s.free, s.freeErr
	s.freeMu.Unlock()
	// Said once a crossing, not at each write refused (review AA, AA3), outside the lock every
	// leader write takes (review AC, AC7).
	switch crossed {
	case 1:
		s.log.Warn("the disk of the data directory has less free than the reserve: this replica, while it leads, refuses writes that add data (DISK_LOW) until there is room; free space, or lower disk_reserve_mib",
			"free_mib", free>>20, "reserve_mib", reserve>>20)
	case -1:
		s.log.Info("the disk of the data directory has room again: writes are taken", "free_mib", free>>20, "reserve_mib", reserve>>20)
	}
	if err == nil && free < reserve {
		return &LowDiskError{Free: free, Reserve: reserve}
	}
	return nil
}

// CheckRoom reads the free space of the data directory's disk now, and logs when it went under
// the reserve or above it again since the last reading: at start, and every roomEvery on every
// replica (WatchRoom), whether or not writes come. It returns what a write would be told.
func (s *Store) CheckRoom() error {
	s.freeMu.Lock()
	s.freeAt = time.Time{}
	s.freeMu.Unlock()
	return s.room()
}

// WatchRoom calls CheckRoom every roomEvery until ctx ends.
func (s *Store) WatchRoom(ctx context.Context) {
	t := time.NewTicker(roomEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.CheckRoom()
		}
	}
}

// roomEvery is how often WatchRoom reads the free space.
const roomEvery = 10 * time.Second

// freeEvery is how long room takes a reading of the free space for.
const freeEvery = time.Second

// addsData reports whether c is a command that room refuses on a low disk: files' chunks and
// commits. Partners' records are not: a subscription's batch holds what the partner withdrew
// beside what it sent, and a batch refused whole kept withdrawn records in the cache, the
// picture and search (review N, N1); they take from the reserve.
func addsData(c *pb.Command) bool {
	switch c := c.Cmd.(type) {
	case *pb.Command_FileChunk:
		return true
	case *pb.Command_FileStep:
		return c.FileStep.Action == "commit"
	}
	return false
}

// notLeader is ErrNotLeader, with the reason when this replica knows no leader because its own
// Raft log refuses appends (a full disk among them, syscall.ENOSPC): Raft steps down when its log
// fails and every election it then wins fails the same way, so a single replica would otherwise
// tell its writers to retry shortly, and why nowhere, for as long as it lasts.
func (s *Store) notLeader() error {
	if s.Leader() == "" {
		if _, err := s.logs.failure(); err != nil {
			return fmt.Errorf("%w: its raft log cannot be written: %w", ErrNotLeader, err)
		}
	}
	return ErrNotLeader
}

// commitFailure is commitError for a proposal made at start, or the error of this replica's
// own log when that refused the entry since: Raft's log cache passes that error on as text only,
// and a writer should learn that the disk is full (syscall.ENOSPC) rather than of an internal
// error.
func (s *Store) commitFailure(err error, start time.Time) error {
	err = commitError(err)
	if errors.Is(err, ErrNotLeader) || errors.Is(err, ErrMaybeCommitted) {
		return err
	}
	if at, logErr := s.logs.failure(); logErr != nil && !at.Before(start) {
		return fmt.Errorf("the raft log cannot be written: %w", logErr)
	}
	return err
}

// LogWriteFailure is the last failure to append to this replica's Raft log, and when, if no
// append succeeded since; the zero time and nil otherwise. A replica whose log cannot be written
// cannot lead, however many replicas it reaches: this, not a lost majority, is then why it has
// no leader.
func (s *Store) LogWriteFailure() (time.Time, error) { return s.logs.failure() }

// SnapshotRefused is why this replica failed to restore the last snapshot its leader sent, and
// since when restores fail, if none succeeded since; the zero time and nil otherwise. Such a
// replica takes in nothing more, and serves what it held before, falling further behind: a
// snapshot of a newer release's database (review AH, AH2), a damaged one, or a full disk.
func (s *Store) SnapshotRefused() (time.Time, error) {
	if r := s.fsm.refused.Load(); r != nil {
		return r.since, r.err
	}
	return time.Time{}, nil
}

// commitError is what a proposal's failure means for its caller. raft.ErrNotLeader, and
// raft.ErrLeadershipTransferInProgress (the leader hands the lead on: handOver, HandLead): the
// entry never entered the log. raft.ErrLeadershipLost: it did, and the leader was deposed before it
// committed, so the next leader may still commit it (hashicorp/raft says so of the error): the
// caller must not be told it is safe to try again, as a client that did would write twice.
func commitError(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return ErrNotLeader
	case errors.Is(err, raft.ErrLeadershipLost):
		return ErrMaybeCommitted
	}
	return err
}

// notLeading reports whether Raft refused a configuration change or a check of the lead as this
// replica leads no more, or hands the lead on.
func notLeading(err error) bool {
	return errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) || errors.Is(err, raft.ErrLeadershipTransferInProgress)
}

// Forwardable reports whether a follower may hand c to the leader (ReplicaService.Apply): only
// commands whose answer the follower can do without, as the forward returns nothing but an error.
// A kept head answers the evidence of a fork, but the evidence is kept and counted (by the FSM,
// on every replica) whoever handed it over. A file step's refusal never reaches a follower that
// forwarded it; the follower learns the outcome from its own database once it applied the entry
// (see WaitApplied).
func Forwardable(c *pb.Command) bool {
	switch c.Cmd.(type) {
	case *pb.Command_AppendAudit, *pb.Command_RecordDisclosures, *pb.Command_KeepHead,
		*pb.Command_FileChunk, *pb.Command_FileStep:
		return true
	}
	return false
}

// WaitLeader waits until the group has a leader, or ctx ends.
func (s *Store) WaitLeader(ctx context.Context) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		if addr, _ := s.raft.LeaderWithID(); addr != "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("store: no leader yet: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// LogEntry returns the command of the log entry at index, as this replica's log holds it, and
// the entry's size in bytes: for tests and tools that look at what went through Raft.
func (s *Store) LogEntry(index uint64) (*pb.Command, int, error) {
	var l raft.Log
	if err := s.logs.GetLog(index, &l); err != nil {
		return nil, 0, fmt.Errorf("store: log entry %d: %w", index, err)
	}
	if l.Type != raft.LogCommand {
		return nil, len(l.Data), nil
	}
	var c pb.Command
	if err := proto.Unmarshal(l.Data, &c); err != nil {
		return nil, 0, fmt.Errorf("store: log entry %d: %w", index, err)
	}
	return &c, len(l.Data), nil
}

// State is the Raft state of this replica: Leader, Follower, Candidate or Shutdown.
func (s *Store) State() string { return s.raft.State().String() }

// Leader is the replica id of the current leader, or "".
func (s *Store) Leader() string {
	_, id := s.raft.LeaderWithID()
	return string(id)
}

// LeaderSeen is when this replica last knew a leader of its group, itself included: now while
// it knows one, the zero time when it has known none since it started. Raft's own last contact
// will not do: a vote it grants counts as one, and the survivors of a lost majority go on
// voting for each other. Raft tells of a lost leader a moment after it forgot it: until then,
// it was last known when it was found.
func (s *Store) LeaderSeen() time.Time {
	if s.Leader() != "" {
		return time.Now()
	}
	if ns := max(s.leaderLost.Load(), s.leaderFound.Load()); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// SettledThrough reports whether this replica has applied every log entry up to index, all
// each does included (fsm.settled): a reader that sees true sees everything they changed.
// Entries the FSM never sees (the no-op a new leader writes) do not hold it back.
func (s *Store) SettledThrough(index uint64) bool {
	settled := s.fsm.settled.Load()
	if settled >= index {
		return true
	}
	if s.raft.AppliedIndex() < index {
		return false
	}
	for i := settled + 1; i <= index; i++ {
		var l raft.Log
		if err := s.logs.GetLog(i, &l); err != nil || l.Type == raft.LogCommand || l.Type == raft.LogConfiguration {
			return false
		}
	}
	return true
}

// AppliedIndex is the index of the last log entry applied to the database.
func (s *Store) AppliedIndex() uint64 { return s.raft.AppliedIndex() }

// Snapshot takes a Raft snapshot now and compacts the log.
func (s *Store) Snapshot() error {
	return s.raft.Snapshot().Error()
}

// Close stops accepting writes, commits those already queued, and shuts Raft down cleanly.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	<-s.done
	<-s.erased // an erasure under way finishes while Raft and the log are still open
	s.handOver()
	shut := s.raft.Shutdown()
	stopped := make(chan error, 1)
	go func() { stopped <- shut.Error() }()
	var err error
	select {
	case err = <-stopped:
	case <-time.After(s.shutdownWait()):
		// hashicorp/raft's pipelined replication can wedge (a response that nobody takes any
		// more after a step-down), and its shutdown then waits for good. What it wrote is on
		// disk: the process can stop without it, and its log stays open until it does.
		s.log.Error("raft did not shut down: stopping without it; its log and the database are on disk", "waited", s.shutdownWait())
		if c, ok := s.trans.(io.Closer); ok {
			c.Close()
		}
		return ErrShutdownTimeout
	}
	if c, ok := s.trans.(io.Closer); ok {
		c.Close()
	}
	return errors.Join(err, s.logs.Close())
}

// ErrLeadsNow is Config.Forward's error when this replica became the leader while the command
// waited to be forwarded: the command is then its own.
var ErrLeadsNow = errors.New("store: this replica became the leader while the command waited for the old one: send it again")

// ErrShutdownTimeout is Close's error when Raft did not shut down within its bound.
var ErrShutdownTimeout = errors.New("store: raft did not shut down in time; stopped without it")

// raftShutdownWait bounds how long Close waits for Raft to shut down: within the 30 s that a
// clean stop takes at most (docs/operator.md).
const raftShutdownWait = 15 * time.Second

func (s *Store) shutdownWait() time.Duration {
	if s.cfg.shutdownWait > 0 {
		return s.cfg.shutdownWait
	}
	return raftShutdownWait
}

// handOver makes the most up-to-date follower the leader before this leader stops: the group
// writes on at once, instead of refusing writes until the followers' election timeout has passed
// and one of them is elected (a rolling restart, an upgrade). It tries only when another voter
// answers, and never longer than Raft's own bound (the election timeout); if it fails, the
// others elect a leader as after a crash.
func (s *Store) handOver() {
	if !s.IsLeader() {
		return
	}
	servers, err := s.Servers()
	if err != nil || !slices.ContainsFunc(servers, func(srv Server) bool {
		return srv.Suffrage == raft.Voter.String() && srv.ID != s.cfg.ReplicaID && !srv.Unreachable
	}) {
		return
	}
	if err := s.HandLead(); err != nil {
		s.log.Info("raft: could not hand the lead to another replica before stopping: the others elect a leader", "err", err)
		return
	}
	s.log.Info("raft: handed the lead to another replica before stopping")
}

// HandLead makes the most up-to-date other voter the leader, and returns once this replica no
// longer leads; ErrNotLeader when it did not lead. Raft bounds the wait by its election timeout.
func (s *Store) HandLead() error {
	if s.raft.State() != raft.Leader {
		return ErrNotLeader
	}
	if err := s.raft.LeadershipTransfer().Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) {
			return ErrNotLeader
		}
		return fmt.Errorf("store: hand the lead to another replica: %w", err)
	}
	return nil
}

// ReplicaID is this replica's id in its group.
func (s *Store) ReplicaID() string { return s.cfg.ReplicaID }

// slogWriter sends Raft's log lines to the node's logger, so that one logger decides where
// everything goes. Raft says again at every failed heartbeat or send that a peer does not answer,
// dozens of times a second at first: such a line is logged once a repeatEvery for each peer, as a
// warning with how often it came since, and at debug level in between.
type slogWriter struct {
	log *slog.Logger
	now func() time.Time
	mu  *sync.Mutex
	// repeats holds, by message and peer, when the line was last logged and how often it came
	// since.
	repeats map[string]*repeat
	// handshakes are the refusals the Raft port's TLS config has logged itself, when set.
	handshakes *handshakeRefusals
}

type repeat struct {
	logged time.Time
	since  int
}

// repeatEvery is how often a line of a peer that does not answer is logged.
const repeatEvery = time.Minute

// peerFailure matches Raft's lines of a peer that does not answer: the message and the peer.
// hashicorp/raft (v1.8.0) names the peer peer= or server-id=, and target= in a failed
// requestVote, which a replica cut off from its majority logs for each other replica at every
// election, about once a second.
var peerFailure = regexp.MustCompile(`^(failed to (?:heartbeat to|appendEntries to|contact)|failed to make requestVote RPC)\b.*?\b(?:peer|server-id|target)=("[^"]*"|\S+)`)

// electionAgain matches the lines a replica that cannot win an election (cut off from its
// majority) logs at each of its elections, once or twice a second: logged once a repeatEvery,
// at their own level, as a peer's failure is.
var electionAgain = regexp.MustCompile(`^(Election timeout reached, restarting election|entering candidate state)\b`)

// decodeFailed matches raft-net's line of an incoming connection it could not read: the error.
// The TLS handshake of an accepted connection is made at its first read, so a refused one is
// said here, at every attempt, as an ERROR (review AK, AK5).
var decodeFailed = regexp.MustCompile(`^raft-net: failed to decode incoming command: error=(?:"((?:[^"\\]|\\.)*)"|(\S+))$`)

// tlsFailure matches an error of a TLS handshake: one the other side refused ("remote error: tls:
// bad certificate") or this side did.
var tlsFailure = regexp.MustCompile(`^(remote error: )?tls: |x509`)

func newSlogWriter(log *slog.Logger) slogWriter {
	return slogWriter{log: log, now: time.Now, mu: new(sync.Mutex), repeats: map[string]*repeat{}}
}

// hclogLevels are the level prefixes of hclog's lines.
var hclogLevels = []struct {
	prefix string
	level  slog.Level
}{{"[ERROR]", slog.LevelError}, {"[WARN]", slog.LevelWarn}, {"[INFO]", slog.LevelInfo}, {"[DEBUG]", slog.LevelDebug}}

// Write logs a line of hashicorp/raft's at its own level ("[ERROR] raft: …" as an error), without
// the prefix. An election at start is how every replica finds its leader, and is not a warning.
func (w slogWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level := slog.LevelWarn
	for _, h := range hclogLevels {
		if rest, ok := strings.CutPrefix(line, h.prefix); ok {
			level, line = h.level, strings.TrimSpace(rest)
			break
		}
	}
	line = strings.TrimPrefix(line, "raft: ")
	if strings.HasPrefix(line, "heartbeat timeout reached, starting election") {
		level = slog.LevelInfo
	}
	if strings.HasSuffix(line, `error="transport shutdown"`) {
		// This replica's own transport closing as it stops: nothing is wrong, and an ERROR at
		// every restart would page whoever alerts on them (review AH, AH3).
		level = slog.LevelDebug
	}
	if strings.HasSuffix(line, `use of closed network connection"`) {
		// A connection this replica closed: the transport closes one whose certificate no
		// longer verifies, and says so (review AK, AK6); Raft then makes a new one.
		level = slog.LevelDebug
	}
	if m := decodeFailed.FindStringSubmatch(line); m != nil && level >= slog.LevelWarn && w.decodeFailed(line, m[1]+m[2]) {
		return len(p), nil
	}
	if m := peerFailure.FindStringSubmatch(line); m != nil && level >= slog.LevelWarn {
		w.throttled(m[1]+" "+m[2], slog.LevelWarn, line)
		return len(p), nil
	}
	if m := electionAgain.FindStringSubmatch(line); m != nil {
		w.throttled(m[1], level, line)
		return len(p), nil
	}
	w.log.Log(context.Background(), level, line, "component", "raft")
	return len(p), nil
}

// decodeFailed logs raft-net's line of an incoming connection it could not read, whose error is
// reason (as hclog escaped it), when it is a TLS handshake's, and reports whether it did. A
// handshake the TLS config refused and logged itself ("handshake refused", with the caller) is
// logged at debug level; any other is said to be a TLS failure, once a repeatEvery.
func (w slogWriter) decodeFailed(line, reason string) bool {
	reason = strings.ReplaceAll(reason, `\"`, `"`)
	switch m := tlsFailure.FindStringSubmatch(reason); {
	case w.handshakes != nil && w.handshakes.take(reason):
		w.log.Log(context.Background(), slog.LevelDebug, line, "component", "raft")
	case m != nil && m[1] != "":
		w.throttled("tls refused by the other side", slog.LevelWarn, fmt.Sprintf("raft-net: a replica that connected refused this "+
			"replica's certificate in the TLS handshake: it has ended, or that replica's bundle no longer holds its CA: error=%q", reason))
	case m != nil:
		w.throttled("tls refused", slog.LevelWarn, fmt.Sprintf("raft-net: refused an incoming connection in the TLS handshake: error=%q", reason))
	default:
		return false
	}
	return true
}

// throttled logs line, which repeats under key, at level once a repeatEvery, with how often it
// came since; at debug level in between.
func (w slogWriter) throttled(key string, level slog.Level, line string) {
	w.mu.Lock()
	now := w.now()
	r := w.repeats[key]
	if r != nil && now.Sub(r.logged) < repeatEvery {
		r.since++
		w.mu.Unlock()
		w.log.Log(context.Background(), slog.LevelDebug, line, "component", "raft")
		return
	}
	since := 0
	if r != nil {
		since = r.since
	}
	w.repeats[key] = &repeat{logged: now}
	w.mu.Unlock()
	attrs := []any{"component", "raft"}
	if since > 0 {
		attrs = append(attrs, "repeated", since)
	}
	w.log.Log(context.Background(), level, line, append(attrs, "next_in", repeatEvery)...)
}

// Server is one replica in the Raft configuration.
type Server struct {
	ID, Address, Suffrage string
	// Unreachable is set on the leader for a replica it cannot reach: the last time it
	// answered (zero if it never did in this term).
	Unreachable bool
	LastContact time.Time
	// SnapshotRefused is, on the leader, why the replica said it fails to restore the
	// snapshots this leader sends (its SnapshotRefused), when it last said so in this term.
	SnapshotRefused string
}

// ReplicaSays is what a replica says of itself when the leader asks (Config.AskLevel).
type ReplicaSays struct {
	Level           uint32
	SnapshotRefused string
}

// logCacheEntries is how many of the newest log entries the leader keeps in memory: at most
// some 10 MB with 1000-record entries.
const logCacheEntries = 32

// Servers returns the current Raft configuration.
func (s *Store) Servers() ([]Server, error) {
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("store: configuration: %w", err)
	}
	leading := s.IsLeader()
	refusing := s.refusingReplicas()
	s.unreachableMu.Lock()
	defer s.unreachableMu.Unlock()
	var out []Server
	for _, srv := range f.Configuration().Servers {
		last, down := s.unreachable[srv.ID]
		out = append(out, Server{ID: string(srv.ID), Address: string(srv.Address), Suffrage: srv.Suffrage.String(),
			Unreachable: leading && down, LastContact: last, SnapshotRefused: refusing[string(srv.ID)]})
	}
	return out, nil
}

// LeaderChanged returns a channel that is closed when this replica next learns of another leader,
// or loses the one it knows. A group of one never closes it.
func (s *Store) LeaderChanged() <-chan struct{} {
	s.movedMu.Lock()
	defer s.movedMu.Unlock()
	if s.moved == nil {
		s.moved = make(chan struct{})
	}
	return s.moved
}

func (s *Store) leaderMoved() {
	s.movedMu.Lock()
	defer s.movedMu.Unlock()
	if s.moved != nil {
		close(s.moved)
		s.moved = nil
	}
}

// LeaderAddress is the Raft address of the current leader, or "".
func (s *Store) LeaderAddress() string {
	addr, _ := s.raft.LeaderWithID()
	return string(addr)
}

// RaftStats returns hashicorp/raft's counters: commit_index, last_snapshot_index and others.
func (s *Store) RaftStats() map[string]string { return s.raft.Stats() }

// label is a replica's id as a metric's label value: a label must be UTF-8, and an id that is
// not (a join before ids were checked, review AF, AF1) panicked the leader that met it.
func label[S ~string](id S) string { return strings.ToValidUTF8(string(id), "\uFFFD") }

// Alone reports whether the replica runs without a Raft transport (no raft.listen).
func (s *Store) Alone() bool { return s.cfg.Transport == nil }

// Member reports whether this replica is in its group's latest configuration: false for one
// removed, or waiting to be joined; true when the configuration cannot be read (shutting down),
// which is not known to exclude it.
func (s *Store) Member() bool {
	servers, err := s.Servers()
	return err != nil || slices.ContainsFunc(servers, func(srv Server) bool { return srv.ID == s.cfg.ReplicaID })
}

// AddVoter adds a replica to the group. Only the leader can.
func (s *Store) AddVoter(id, address string) error {
	if s.Alone() {
		// A voter that can never be reached would take the majority away for good.
		return ErrAlone
	}
	if s.raft.State() != raft.Leader {
		return ErrNotLeader
	}
	if err := s.ownAddress(); err != nil {
		return err
	}
	if err := s.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(address), 0, 30*time.Second).Error(); err != nil {
		if notLeading(err) {
			return ErrNotLeader // the change may have committed; adding a voter again changes nothing
		}
		return fmt.Errorf("store: add %s: %w", id, err)
	}
	return nil
}

// ownAddress makes the leader's own entry in the group's configuration name the address its
// transport advertises, when the entry is its bare id, or an IP address where it advertises a
// name. A replica that began alone (no raft.listen) is in the configuration under its id, which
// no other replica can dial: once others join, a new leader could never reach it again, and it
// could never rejoin. A release before this one wrote the IP an advertised name resolved to at
// start, which a restarted pod no longer has. Adding a voter that is one already only changes
// its address. Any other entry is left as raft.servers or a join gave it.
func (s *Store) ownAddress() error {
	if s.Alone() || s.raft.State() != raft.Leader {
		return nil
	}
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return fmt.Errorf("store: read the group's configuration: %w", err)
	}
	self, want := raft.ServerID(s.cfg.ReplicaID), s.trans.LocalAddr()
	for _, srv := range f.Configuration().Servers {
		if srv.ID != self || srv.Address == want || srv.Suffrage != raft.Voter || srv.Address != raft.ServerAddress(self) && !ipForName(srv.Address, want) {
			continue
		}
		if err := s.raft.AddVoter(self, want, 0, 30*time.Second).Error(); err != nil {
			if notLeading(err) {
				return ErrNotLeader
			}
			return fmt.Errorf("store: set this replica's address in the group to %s: %w", want, err)
		}
		s.log.Info("raft: this replica's address in the group now names its transport", "replica", self, "was", srv.Address, "now", want)
	}
	return nil
}

// ipForName reports whether have is an IP address and port where want is a host name.
func ipForName(have, want raft.ServerAddress) bool {
	h, _, err := net.SplitHostPort(string(have))
	w, _, werr := net.SplitHostPort(string(want))
	return err == nil && werr == nil && net.ParseIP(h) != nil && net.ParseIP(w) == nil
}

// RemoveServer takes a replica out of the group. Only the leader can: ErrNotLeader when this
// replica does not lead and nothing was proposed, ErrMaybeCommitted when it was deposed while the
// change was being committed.
func (s *Store) RemoveServer(id string) error {
	if s.raft.State() != raft.Leader {
		return ErrNotLeader
	}
	if err := s.raft.RemoveServer(raft.ServerID(id), 0, 30*time.Second).Error(); err != nil {
		// Unlike adding a voter, removing one is not the same twice: a second remove of a
		// replica that is gone is refused, so a change that may have committed is not one the
		// caller may safely send again.
		if err := commitError(err); errors.Is(err, ErrNotLeader) || errors.Is(err, ErrMaybeCommitted) {
			return err
		}
		return fmt.Errorf("store: remove %s: %w", id, err)
	}
	return nil
}

// VerifyLeader confirms with a quorum that this replica still leads, and that its database holds
// every write committed so far, for strong reads.
//
// Leading is not enough: a new leader learns that its predecessor's last entries committed only
// when an entry of its own term commits, and applies them after that. Until then a read on it
// can miss a write its predecessor acknowledged. So the first strong read of each term waits for
// a barrier, which commits after every earlier entry and returns once they are applied; within
// the term, the leader applies each write before acknowledging it.
func (s *Store) VerifyLeader() error {
	if err := s.raft.VerifyLeader().Error(); err != nil {
		if notLeading(err) {
			return ErrNotLeader
		}
		return fmt.Errorf("store: verify leader: %w", err)
	}
	term := s.raft.CurrentTerm()
	if s.readTerm.Load() == term {
		return nil
	}
	if err := s.raft.Barrier(10 * time.Second).Error(); err != nil {
		if notLeading(err) {
			return ErrNotLeader
		}
		return fmt.Errorf("store: barrier: %w", err)
	}
	if s.raft.CurrentTerm() == term {
		s.readTerm.Store(term)
	}
	return nil
}

// Isolate cuts this replica off from the rest of its group (on) or reconnects it (off); see
// Transport.Isolate. A store without a TLS transport (a single replica) has nothing to cut.
func (s *Store) Isolate(on bool) {
	if t, ok := s.trans.(*Transport); ok {
		t.Isolate(on)
	}
}

// Barrier waits until every entry committed before it is applied to this replica's database:
// a new leader calls it before it decides from what the log holds.
func (s *Store) Barrier(timeout time.Duration) error { return s.raft.Barrier(timeout).Error() }

// IsLeader reports whether this replica leads the group now.
func (s *Store) IsLeader() bool { return s.raft.State() == raft.Leader }

package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/knooppunt/knooppunt/node/db"
)

// catchUp keeps a replica that its group reached on an empty Raft directory (a new replica, or one
// whose disk was lost), or on a log that lost its tail (logCut), from being elected until it holds
// every entry its leader has committed.
// Raft alone lets it stand as soon as it has the group's configuration: should the leader stop
// while two such replicas hold only part of its log, they elect one of themselves, and the entries
// that only the leader held, committed as the two had acknowledged them before they lost their
// disks, are overwritten when it comes back. Until it has caught up, the replica asks nobody for a
// vote: Raft asks for pre-votes first (hashicorp/raft does, over a transport that carries them),
// and catchUp answers each of its own as refused without sending it, so that it never gets to the
// election proper. It still notices a leader that went (and forgets it), and it still votes, so
// that a replica that holds the log can lead with it.
//
// Caught up means: it has applied the leader's commit index, as the leader's last AppendEntries
// gave it, and the entry there is of the leader's term. A leader knows every entry committed
// before its term to be committed only once it committed one of its own, and a replica that
// holds that entry holds everything before it.
//
// catchUp sits between the transport and Raft to read the leader's term and commit index off
// each AppendEntries, which Raft does not tell: on the replica, Raft's commit index stops at the
// last entry it holds.
type catchUp struct {
	raft.Transport
	preVote  raft.WithPreVote
	rpcs     chan raft.RPC
	closed   chan struct{}
	close    sync.Once
	done     atomic.Bool   // caught up: nothing more is noted, and pre-votes go out
	caughtUp chan struct{} // closed once done

	// floor, when set, is the index the replica's log must reach too: its database had applied
	// entries up to there when it started, but its log ended below them (see logCut). The
	// leader's commit index is past it unless the whole group lost those entries; then the
	// replica, whose database holds what the group no longer does, stands only once the group's
	// log has passed it again, and no sooner than that (which no test builds: it takes a
	// majority that lost committed entries).
	floor uint64

	mu     sync.Mutex
	term   uint64 // the newest term of a leader heard from
	commit uint64 // the highest commit index that leader gave
}

// catchUpFile, in the Raft directory, says that the replica is catching up: a restart before it
// has caught up (its log no longer empty) catches up still.
const catchUpFile = "catching-up"

// startCatchUp returns the catchUp of a replica that starts empty (empty: reached by its group on
// an empty Raft directory), whose log ends below what its database applied (cut, see logCut), or
// that had not caught up when it stopped, and nil for any other (catchUp is nil too over a
// transport without pre-votes, or without a transport).
func startCatchUp(cfg Config, t raft.Transport, empty bool, cut uint64) (*catchUp, error) {
	marker := filepath.Join(cfg.Dir, catchUpFile)
	_, err := os.Stat(marker)
	restarted := err == nil
	if cfg.Transport == nil || !empty && cut == 0 && !restarted {
		return nil, removeCatchUpFile(cfg.Dir)
	}
	c := newCatchUp(t)
	if c == nil {
		return nil, removeCatchUpFile(cfg.Dir)
	}
	c.floor = cut
	if !restarted {
		why := "started on an empty Raft directory"
		if !empty {
			why = fmt.Sprintf("started with a Raft log that ends below entry %d, which its database had applied", cut)
		}
		text := "This replica " + why + " at " + time.Now().UTC().Format(time.RFC3339) +
			", and asks for no vote until it holds everything its leader committed (docs/cluster.md,\n" +
			"A replica whose disk was lost). Knooppunt removes this file then.\n"
		if err := writeSynced(marker, []byte(text)); err != nil {
			c.Close()
			return nil, fmt.Errorf("store: %w", err)
		}
	}
	return c, nil
}

// logCut is the index up to which the database has applied entries when the log ends below it
// and no snapshot holds them, and 0 otherwise. Such a log lost its tail, entries the group had
// committed (a Raft directory put back from an older copy than the database, a disk that lost its
// last writes). The replica would vote on a log that lacks them and, elected, write other entries
// at their indexes, which its database skips as applied: it would go its own way from its group
// (review AJ, HIGH-2). It catches up as a replica that lost its disk does.
func logCut(d *db.DB, logs raft.LogStore, snaps raft.SnapshotStore) (uint64, error) {
	applied, err := d.AppliedIndex()
	if err != nil || applied == 0 {
		return 0, err
	}
	last, err := logs.LastIndex()
	if err != nil || last >= applied {
		return 0, err
	}
	list, err := snaps.List()
	if err != nil || len(list) > 0 && list[0].Index >= applied {
		return 0, err
	}
	return applied, nil
}

// removeCatchUpFile removes the file that says the replica is catching up, if there is one.
func removeCatchUpFile(dir string) error {
	if err := os.Remove(filepath.Join(dir, catchUpFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

// newCatchUp wraps t, or returns nil when t carries no pre-votes: Raft then asks for votes
// directly, each time in a new term, and refusing those would unseat the leader at every try.
func newCatchUp(t raft.Transport) *catchUp {
	pv, ok := t.(raft.WithPreVote)
	if !ok {
		return nil
	}
	c := &catchUp{Transport: t, preVote: pv, rpcs: make(chan raft.RPC), closed: make(chan struct{}), caughtUp: make(chan struct{})}
	go c.forward(t.Consumer())
	return c
}

// RequestPreVote asks target for a pre-vote once this replica has caught up; before, it answers
// as target would to a replica whose log is behind its own.
func (c *catchUp) RequestPreVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestPreVoteRequest, resp *raft.RequestPreVoteResponse) error {
	if !c.done.Load() {
		resp.Term, resp.Granted = args.Term, false
		return nil
	}
	return c.preVote.RequestPreVote(id, target, args, resp)
}

// Consumer is where Raft takes the RPCs that reach the replica.
func (c *catchUp) Consumer() <-chan raft.RPC { return c.rpcs }

// Close stops the forwarding and closes the transport under it (Raft closes its transport when
// it shuts down).
func (c *catchUp) Close() error {
	c.close.Do(func() { close(c.closed) })
	if t, ok := c.Transport.(raft.WithClose); ok {
		return t.Close()
	}
	return nil
}

// forward hands Raft every RPC, and notes the term and commit index of each AppendEntries until
// the replica has caught up.
func (c *catchUp) forward(in <-chan raft.RPC) {
	for {
		select {
		case rpc := <-in:
			if a, ok := rpc.Command.(*raft.AppendEntriesRequest); ok && !c.done.Load() {
				c.note(a.Term, a.LeaderCommitIndex)
			}
			select {
			case c.rpcs <- rpc:
			case <-c.closed:
				return
			}
		case <-c.closed:
			return
		}
	}
}

func (c *catchUp) note(term, commit uint64) {
	c.mu.Lock()
	switch {
	case term > c.term:
		c.term, c.commit = term, commit
	case term == c.term:
		c.commit = max(c.commit, commit)
	}
	c.mu.Unlock()
}

// leader is the newest leader's term and commit index heard.
func (c *catchUp) leader() (term, commit uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.term, c.commit
}

// catchUpCheck is how often a catching-up replica looks whether it has caught up: it applies
// what it took in a moment after the AppendEntries that gave the commit index, so a look at each
// message would seldom find more.
const catchUpCheck = 10 * time.Millisecond

// followUntilCaughtUp waits until this replica has caught up (see catchUp), then lets it stand
// for election. It returns when the store closes first.
func (s *Store) followUntilCaughtUp() {
	t := time.NewTicker(catchUpCheck)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		if s.caughtUp() {
			s.standForElection("caught up with the leader: this replica now stands for election", "applied_index", s.raft.AppliedIndex())
			return
		}
	}
}

// caughtUp reports whether this replica has applied its leader's commit index, at an entry of
// that leader's term.
func (s *Store) caughtUp() bool {
	term, commit := s.catchUp.leader()
	// SettledThrough, not Raft's applied index, which counts entries handed to the FSM.
	if commit == 0 || term != s.raft.CurrentTerm() || !s.SettledThrough(commit) {
		return false
	}
	if last, err := s.logs.LastIndex(); err != nil || last < s.catchUp.floor {
		return false
	}
	var l raft.Log
	if err := s.logs.GetLog(commit, &l); err == nil {
		return l.Term == term
	}
	// Not in the log: the entry a snapshot ends with, if it is the one.
	metas, err := s.snaps.List()
	return err == nil && len(metas) > 0 && metas[0].Index == commit && metas[0].Term == term
}

// standForElection ends the catching up: this replica asks for votes from now on. It says why in
// the log.
func (s *Store) standForElection(msg string, args ...any) {
	if s.catchUp == nil || s.catchUp.done.Swap(true) {
		return
	}
	close(s.catchUp.caughtUp)
	if err := removeCatchUpFile(s.cfg.Dir); err != nil {
		// Harmless but for a restart: the replica would catch up again, which takes a moment.
		s.log.Warn("caught up, but cannot remove the file that says this replica is catching up", "err", err)
	}
	s.log.Info(msg, args...)
}

// WaitCaughtUp waits until this replica is not catching up (see CatchingUp), or ctx ends.
func (s *Store) WaitCaughtUp(ctx context.Context) error {
	if s.catchUp == nil {
		return nil
	}
	select {
	case <-s.catchUp.caughtUp:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// CatchingUp reports whether this replica, reached by its group on an empty Raft directory or on
// a log that lost its tail, does not yet hold everything its leader has committed, and so asks
// nobody for a vote.
func (s *Store) CatchingUp() bool { return s.catchUp != nil && !s.catchUp.done.Load() }

// writeSynced writes data to path, and syncs it and its directory, so that a crash keeps it.
func writeSynced(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/knooppunt/knooppunt/node/db"
	"github.com/knooppunt/knooppunt/node/metrics"
)

// Erasure: a deleted record's body, or a retracted record of a peer, must leave every file of the
// data directory within a bound (Config.EraseWithin). The database overwrites deleted content
// (secure_delete), but copies stay behind it in three places: the SQLite WAL, which holds pages
// as they were before each change until it is checkpointed; the Raft log, whose entries carry
// every record written and received; and the Raft snapshot taken before the delete. So after a
// delete or a retraction is applied the store, on every replica, within half the bound:
//
//  1. takes a Raft snapshot, a fresh copy of the database, which replaces the older one (the
//     snapshot store keeps one), and removes those a crash or a full disk left unfinished;
//  2. rewrites the Raft log with only the entries after that snapshot (compactLog): raft-wal cuts
//     the head of the log only by whole segments, so the segment that holds the entry would stay;
//  3. checkpoints the SQLite WAL and truncates it to zero bytes.
//
// A step that fails is tried again a tenth of the bound later. What the operating system keeps
// of a file's earlier blocks (a copy-on-write file system, a disk's spare sectors) is beyond the
// node: docs/operator.md advises disk encryption for the data directory.

// DefaultEraseWithin is the bound when the config gives none.
const DefaultEraseWithin = 10 * time.Minute

// eraser tracks the deletes and retractions applied since the last erasure.
type eraser struct {
	mu      sync.Mutex
	pending time.Time // when the oldest delete or retraction not yet erased was applied
	applied uint64    // deletes and retractions applied, ever
	kick    chan struct{}
}

func newEraser() *eraser { return &eraser{kick: make(chan struct{}, 1)} }

// note records that a delete or retraction was applied: its content must be erased.
func (e *eraser) note() {
	e.mu.Lock()
	if e.pending.IsZero() {
		e.pending = time.Now()
	}
	e.applied++
	e.mu.Unlock()
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// due returns when the oldest pending erasure was noted (zero for none) and the count so far.
func (e *eraser) due() (time.Time, uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.pending, e.applied
}

// done marks the erasure that started at start, with applied deletes noted by then, as
// complete: what was noted meanwhile is pending from start on, which is no later than it was
// noted.
func (e *eraser) done(start time.Time, applied uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.applied == applied {
		e.pending = time.Time{}
	} else {
		e.pending = start
	}
}

// eraseLoop runs the erasures, each half the bound after the oldest delete or retraction it
// covers, so that the other half is left for a retry.
func (s *Store) eraseLoop() {
	defer close(s.erased)
	within := s.cfg.EraseWithin
	retry := max(within/10, 100*time.Millisecond)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		pending, _ := s.erase.due()
		if pending.IsZero() {
			select {
			case <-s.erase.kick:
				continue
			case <-s.stop:
				return
			}
		}
		timer.Reset(time.Until(pending.Add(within / 2)))
		select {
		case <-timer.C:
		case <-s.stop:
			timer.Stop()
			return
		}
		start := time.Now()
		_, applied := s.erase.due()
		if err := s.eraseNow(); err != nil {
			metrics.Erasures.WithLabelValues("error").Inc()
			if errors.Is(err, raft.ErrRaftShutdown) || errors.Is(err, errLogClosed) || errors.Is(err, db.ErrClosed) {
				return
			}
			s.log.Warn("could not erase deleted and retracted records from the data directory yet; trying again", "err", err, "retry_in", retry,
				"pending_for", time.Since(pending).Round(time.Millisecond))
			timer.Reset(retry)
			select {
			case <-timer.C:
			case <-s.stop:
				timer.Stop()
				return
			}
			continue
		}
		s.erase.done(start, applied)
		metrics.Erasures.WithLabelValues("ok").Inc()
		s.log.Debug("erased deleted and retracted records from the data directory", "took", time.Since(start).Round(time.Millisecond),
			"pending_for", time.Since(pending).Round(time.Millisecond))
	}
}

// eraseNow removes the snapshots whose writing did not finish, takes a snapshot, cuts the Raft
// log behind it, and checkpoints the database.
func (s *Store) eraseNow() error {
	// One that Raft writes now (by count or size, or one a leader sends) is left to finish: a
	// snapshot is either renamed into place and then replaced by the one taken here, or removed
	// when it fails (snapshotStore).
	if err := s.snaps.sweep(); err != nil {
		return fmt.Errorf("store: erase: %w", err)
	}
	// A snapshot taken since the delete (by size or count) serves as well: Raft then has nothing
	// new to snapshot, and the newest snapshot is the one to keep the log behind.
	if err := s.raft.Snapshot().Error(); err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
		return fmt.Errorf("store: erase: snapshot: %w", err)
	}
	metas, err := s.snaps.List()
	if err != nil {
		return fmt.Errorf("store: erase: list snapshots: %w", err)
	}
	if len(metas) == 0 {
		return errors.New("store: erase: no snapshot after taking one")
	}
	if err := s.logs.compactLog(metas[0].Index + 1); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return s.cfg.DB.Checkpoint(ctx)
}

// The Raft log is rewritten beside itself and swapped in by renames, so that a crash at any
// point leaves one whole log: walNewDir is built, walDir is renamed to walOldDir, walNewDir to
// walDir, and walOldDir is removed. recoverCompaction finishes or undoes a swap a crash cut
// short.
const (
	walNewDir = walDir + ".new"
	walOldDir = walDir + ".old"
)

// compactLog rewrites the log with only the entries from keepFrom on, and the stable store,
// into fresh segment files, and removes the old ones. Raft's own compaction cuts the head of the
// log by whole segments only, and keeps TrailingLogs entries besides; the entries this drops are
// all in a snapshot, and a follower that needs them gets the snapshot instead.
func (l *raftLog) compactLog(keepFrom uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.wal == nil {
		return errLogClosed
	}
	first, err := l.wal.FirstIndex()
	if err != nil {
		return err
	}
	last, err := l.wal.LastIndex()
	if err != nil {
		return err
	}
	var kept []*raft.Log
	for i := max(first, keepFrom); i <= last && i > 0; i++ {
		e := new(raft.Log)
		if err := l.wal.GetLog(i, e); err != nil {
			return fmt.Errorf("store: compact the raft log: read entry %d: %w", i, err)
		}
		kept = append(kept, e)
	}
	stable := map[string]uint64{}
	for _, k := range stableUint64 {
		if v, err := l.wal.GetUint64([]byte(k)); err == nil {
			stable[k] = v
		}
	}
	stableB := map[string][]byte{}
	for _, k := range stableBytes {
		if v, err := l.wal.Get([]byte(k)); err == nil && v != nil {
			stableB[k] = v
		}
	}

	parent := filepath.Dir(l.dir)
	newDir, oldDir := filepath.Join(parent, walNewDir), filepath.Join(parent, walOldDir)
	if err := os.RemoveAll(newDir); err != nil {
		return fmt.Errorf("store: compact the raft log: %w", err)
	}
	w, err := openWAL(newDir, l.size, l.files, l.hl)
	if err != nil {
		return err
	}
	build := func() error {
		for i := 0; i < len(kept); i += 256 {
			if err := w.StoreLogs(kept[i:min(i+256, len(kept))]); err != nil {
				return err
			}
			if err := awaitNextSegment(w); err != nil {
				return err
			}
		}
		for k, v := range stable {
			if err := w.SetUint64([]byte(k), v); err != nil {
				return err
			}
		}
		for k, v := range stableB {
			if err := w.Set([]byte(k), v); err != nil {
				return err
			}
		}
		return nil
	}
	if err := errors.Join(build(), w.Close()); err != nil {
		os.RemoveAll(newDir)
		return fmt.Errorf("store: compact the raft log: write the new log: %w", err)
	}
	// From here the old log is closed: a failure leaves the log closed, as a failed reopen does,
	// and the node must be restarted, which finishes or undoes the swap.
	closeErr := l.wal.Close()
	l.wal = nil
	// One step after the other: the old log goes only once the new one is in its place.
	for _, step := range []func() error{
		func() error { return closeErr },
		func() error { return os.Rename(l.dir, oldDir) },
		func() error { return os.Rename(newDir, l.dir) },
		func() error { return syncDir(parent) },
		func() error { return os.RemoveAll(oldDir) },
		func() error { return syncDir(parent) },
	} {
		if err := step(); err != nil {
			l.log.Error("could not swap in the compacted raft log: restart the node", "err", err)
			return fmt.Errorf("store: compact the raft log: swap: %w", err)
		}
	}
	nw, err := openWAL(l.dir, l.size, l.files, l.hl)
	if err != nil {
		l.log.Error("could not open the compacted raft log: restart the node", "err", err)
		return err
	}
	l.wal = nw
	l.appended.Store(0)
	return nil
}

// recoverCompaction finishes or undoes a swap of compactLog that a crash cut short, in the
// directory that holds walDir.
func recoverCompaction(parent string) error {
	exists := func(name string) (bool, error) {
		_, err := os.Stat(filepath.Join(parent, name))
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		return err == nil, err
	}
	hasOld, err := exists(walOldDir)
	if err != nil {
		return err
	}
	hasLog, err := exists(walDir)
	if err != nil {
		return err
	}
	if hasOld && !hasLog {
		// Cut between the two renames: the new log is whole (it was closed before them).
		if err := os.Rename(filepath.Join(parent, walNewDir), filepath.Join(parent, walDir)); err != nil {
			return fmt.Errorf("store: finish compacting the raft log: %w", err)
		}
	}
	// An old log left behind is behind a snapshot; a new one not swapped in was never used.
	if err := errors.Join(os.RemoveAll(filepath.Join(parent, walOldDir)), os.RemoveAll(filepath.Join(parent, walNewDir))); err != nil {
		return fmt.Errorf("store: finish compacting the raft log: %w", err)
	}
	return syncDir(parent)
}

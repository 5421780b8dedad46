package store

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// snapshotsDir is where hashicorp/raft's file snapshot store keeps its snapshots, under the
// directory it is given; tmpSuffix ends the name of one being written.
const (
	snapshotsDir = "snapshots"
	tmpSuffix    = ".tmp"
)

// snapshotStore is Raft's file snapshot store, but a snapshot whose writing did not finish leaves
// nothing behind. hashicorp/raft (v1.8.0) writes a snapshot into DIR/snapshots/<id>.tmp, a copy
// of the database, and renames it when it is whole; its listing and reaping skip such
// directories, nothing else removes one a crash left, and FileSnapshotSink.Cancel returns before
// it removes its directory when the flush fails, as on a full disk. A deleted record's body would
// stay there past every erasure, and the disk of a replica short of disk would go with it. So a
// sink that fails or is cancelled removes its directory, and sweep removes every one that no sink
// writes now: at start, and at each erasure.
type snapshotStore struct {
	raft.SnapshotStore
	dir string // DIR/snapshots
	log *slog.Logger
	// mu is held while a sink is created, finished or swept, so that sweep never removes the
	// directory of a sink that is being written.
	mu      sync.Mutex
	writing map[string]int // sinks not yet closed or cancelled, by id
}

// openSnapshots removes the snapshots that a process before this one left unfinished, and opens
// the store in dir, which keeps one snapshot: each is a full copy of the database, and the
// database itself is durable (a replica never restores its own snapshot on start), so a second
// copy would only double the Raft directory.
func openSnapshots(dir string, hl hclog.Logger, log *slog.Logger) (*snapshotStore, error) {
	s := &snapshotStore{dir: filepath.Join(dir, snapshotsDir), log: log, writing: map[string]int{}}
	if err := s.sweep(); err != nil {
		return nil, err
	}
	files, err := raft.NewFileSnapshotStoreWithLogger(dir, 1, hl)
	if err != nil {
		return nil, fmt.Errorf("store: open snapshots: %w", err)
	}
	s.SnapshotStore = files
	return s, nil
}

// Create begins a snapshot, as raft.FileSnapshotStore does.
func (s *snapshotStore) Create(version raft.SnapshotVersion, index, term uint64, conf raft.Configuration, confIndex uint64, trans raft.Transport) (raft.SnapshotSink, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sink, err := s.SnapshotStore.Create(version, index, term, conf, confIndex, trans)
	if err != nil {
		// Create leaves the directory it made when it cannot write the snapshot's meta.
		return nil, errors.Join(err, s.sweepLocked())
	}
	s.writing[sink.ID()]++
	return &snapshotSink{SnapshotSink: sink, store: s}, nil
}

// sweep removes every snapshot directory whose writing did not finish and that no sink writes.
func (s *snapshotStore) sweep() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sweepLocked()
}

func (s *snapshotStore) sweepLocked() error {
	entries, err := os.ReadDir(s.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("store: remove unfinished snapshots: %w", err)
	}
	var errs []error
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), tmpSuffix)
		if !ok || !e.IsDir() || s.writing[id] > 0 {
			continue
		}
		path := filepath.Join(s.dir, e.Name())
		if err := os.RemoveAll(path); err != nil {
			errs = append(errs, fmt.Errorf("store: remove an unfinished snapshot: %w", err))
			continue
		}
		s.log.Info("removed a Raft snapshot whose writing did not finish (the process stopped, or the disk was full)", "path", path)
	}
	return errors.Join(errs...)
}

// snapshotSink removes its directory when the snapshot is not whole.
type snapshotSink struct {
	raft.SnapshotSink
	store *snapshotStore
	done  bool
}

// Close finishes the snapshot; if that fails, its directory goes.
func (k *snapshotSink) Close() error {
	err := k.SnapshotSink.Close()
	return errors.Join(err, k.finish(err != nil))
}

// Cancel abandons the snapshot and removes its directory, whatever the flush of what was written
// says.
func (k *snapshotSink) Cancel() error {
	err := k.SnapshotSink.Cancel()
	return errors.Join(err, k.finish(true))
}

func (k *snapshotSink) finish(failed bool) error {
	s := k.store
	s.mu.Lock()
	defer s.mu.Unlock()
	id := k.ID()
	if !k.done {
		k.done = true
		if s.writing[id]--; s.writing[id] <= 0 {
			delete(s.writing, id)
		}
	}
	if !failed {
		return nil
	}
	// Only a Close that succeeded renames the directory; a failed one may have renamed it and
	// then failed to sync, and the snapshot is then whole and in its place.
	if err := os.RemoveAll(filepath.Join(s.dir, id+tmpSuffix)); err != nil {
		return fmt.Errorf("store: remove an unfinished snapshot: %w", err)
	}
	return nil
}

package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/migrate"
	"go.etcd.io/bbolt"
)

// The Raft log and stable store live in DIR/wal (hashicorp/raft-wal): segment files with one
// fsync per appended batch, where the bolt log before it took two (its pages, then its meta
// page). A replica that still has a bolt log, DIR/raft.db, moves it there when it opens.
const (
	walDir   = "wal"
	boltFile = "raft.db"
	lockFile = "raft.lock"
	// segmentSize is the size of one log segment, which raft-wal allocates when it starts the
	// segment: a quarter of the library's default, so that a small node, or a test federation of
	// a hundred nodes, does not hold 64 MiB per replica ahead of use. An entry larger than the
	// rest of a segment is still written whole; the segment is then sealed.
	segmentSize = 16 << 20
)

// raftLog is the replica's Raft log and stable store, held under the lock of its directory.
type raftLog struct {
	*wal.WAL
	lock *os.File
}

// Close closes the log and releases the directory.
func (l *raftLog) Close() error {
	err := l.WAL.Close()
	return errors.Join(err, l.lock.Close()) // closing the file releases its flock
}

// GetLog reads the entry at index, or returns raft.ErrLogNotFound for an entry before the first
// index. raft-wal (v0.4.1) cuts the head of the log by moving its first index and deleting only
// whole segments, and still reads a cut entry that is in the tail segment; a leader would then
// send a wiped follower the entries behind a snapshot instead of the snapshot.
func (l *raftLog) GetLog(index uint64, log *raft.Log) error {
	first, err := l.WAL.FirstIndex()
	if err != nil {
		return err
	}
	if index < first {
		return raft.ErrLogNotFound
	}
	return l.WAL.GetLog(index, log)
}

// openLog locks dir, so that a second replica on it is refused instead of sharing the log, moves
// a bolt log into the WAL if there is one, and opens the WAL.
func openLog(dir string, hl hclog.Logger, log *slog.Logger) (*raftLog, error) {
	lockPath := filepath.Join(dir, lockFile)
	lock, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: lock raft log: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("store: %s is locked by another process: is another node running on this data directory? Stop it or use another --data-dir", dir)
		}
		return nil, fmt.Errorf("store: lock raft log %s: %w", lockPath, err)
	}
	if err := migrateBolt(dir, hl, log); err != nil {
		lock.Close()
		return nil, err
	}
	w, err := openWAL(filepath.Join(dir, walDir), hl)
	if err != nil {
		lock.Close()
		return nil, err
	}
	return &raftLog{WAL: w, lock: lock}, nil
}

// openWAL opens the WAL in dir. raft-wal must be v0.4.1 or later: v0.4.0 marked a segment
// sealed when Raft cut the tail of the log without writing the segment's index, and a replica
// killed after that panicked at its next start ("sealed segment has no index block").
func openWAL(dir string, hl hclog.Logger) (*wal.WAL, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: open raft log: %w", err)
	}
	w, err := wal.Open(dir, wal.WithSegmentSize(segmentSize), wal.WithLogger(hl))
	if err != nil {
		return nil, fmt.Errorf("store: open raft log %s: %w", dir, err)
	}
	return w, nil
}

// stableUint64 and stableBytes are the keys hashicorp/raft keeps in its stable store (unexported in raft): the
// current term and the last vote, which a replica must not forget or it could vote twice in a
// term.
var (
	stableUint64 = []string{"CurrentTerm", "LastVoteTerm"}
	stableBytes  = []string{"LastVoteCand"}
)

// migrateBolt moves the bolt log at dir/raft.db, if there is one, into dir/wal: every entry and
// the stable store, written to dir/wal.tmp, which is renamed into place before raft.db is removed.
// A migration cut short by a crash is started over from raft.db; one that renamed but did not
// remove finishes by removing it.
func migrateBolt(dir string, hl hclog.Logger, log *slog.Logger) error {
	old, dst := filepath.Join(dir, boltFile), filepath.Join(dir, walDir)
	if _, err := os.Stat(old); errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if _, err := os.Stat(dst); err == nil {
		log.Info("removing the bolt Raft log, already moved to the WAL", "path", old)
		return removeSynced(old)
	}
	start := time.Now()
	tmp := dst + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("store: move raft log: %w", err)
	}
	src, err := raftboltdb.New(raftboltdb.Options{Path: old, BoltOptions: &bbolt.Options{Timeout: 2 * time.Second}})
	if err != nil {
		return fmt.Errorf("store: move raft log: open %s: %w", old, err)
	}
	defer src.Close()
	w, err := openWAL(tmp, hl)
	if err != nil {
		return err
	}
	if err := copyLog(w, src); err != nil {
		w.Close()
		return fmt.Errorf("store: move raft log from %s: %w", old, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("store: move raft log: %w", err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("store: move raft log: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("store: move raft log: %w", err)
	}
	first, _ := src.FirstIndex()
	last, _ := src.LastIndex()
	log.Info("moved the Raft log from bolt to the WAL", "from", old, "to", dst, "first_index", first, "last_index", last, "took", time.Since(start).Round(time.Millisecond))
	return removeSynced(old)
}

// copyLog copies every entry and the stable store from src to dst.
func copyLog(dst *wal.WAL, src *raftboltdb.BoltStore) error {
	first, err := src.FirstIndex()
	if err != nil {
		return err
	}
	if first > 0 {
		if err := migrate.CopyLogs(context.Background(), dst, src, 4<<20, nil); err != nil {
			return err
		}
	}
	if err := copyKeys(stableUint64, src.GetUint64, dst.SetUint64); err != nil {
		return err
	}
	return copyKeys(stableBytes, src.Get, dst.Set)
}

// copyKeys copies each of keys that get finds to set.
func copyKeys[V any](keys []string, get func([]byte) (V, error), set func([]byte, V) error) error {
	for _, k := range keys {
		v, err := get([]byte(k))
		if errors.Is(err, raftboltdb.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", k, err)
		}
		if err := set([]byte(k), v); err != nil {
			return err
		}
	}
	return nil
}

func removeSynced(path string) error {
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("store: remove %s: %w", path, err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("store: remove %s: %w", path, err)
	}
	return nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// raft truncates a monotonic store whole when it installs a snapshot, as raft-wal requires.
var _ raft.MonotonicLogStore = (*raftLog)(nil)

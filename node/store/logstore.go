package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	wal "github.com/hashicorp/raft-wal"
	walfs "github.com/hashicorp/raft-wal/fs"
	"github.com/hashicorp/raft-wal/migrate"
	"github.com/hashicorp/raft-wal/segment"
	"github.com/hashicorp/raft-wal/types"
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
//
// raft-wal (v0.4.1 and v0.4.2) keeps the writer of every segment it started as that segment's
// reader for as long as the segment stays in the log, and a writer keeps its write buffer: at
// least 64 KiB, and as large as the largest batch appended to the segment (about 1 MiB under
// bulk writes), with a 128 KiB index. A segment opened from disk is read through a reader that
// holds only its index. So once every reopenAfter bytes appended, raftLog closes the WAL and
// opens it again: the segments written before are then read from disk, and at most the last few
// hold a buffer. Without this a node holds a buffer for every segment it wrote that is still in
// the log: 22 MiB of heap at the end of a load of a million records in batches of 1000, whose
// whole log Raft keeps (4096 trailing entries), and about twice that in resident memory.
type raftLog struct {
	mu          sync.RWMutex // held for writing only while the WAL is opened again or repaired
	wal         *wal.WAL     // nil once closed, or when opening it again failed
	dir         string       // the WAL's directory
	size        int          // segment size
	files       types.VFS    // the file system of the segments; nil is the disk's
	reopenAfter int64        // bytes appended between reopenings; 0 never reopens
	appended    atomic.Int64 // bytes appended since the WAL was opened
	hl          hclog.Logger
	log         *slog.Logger
	lock        *os.File
	closed      atomic.Bool // by Close, not by an opening that failed

	// failMu guards the last append that failed and the last that succeeded (see failure).
	failMu   sync.Mutex
	failErr  error
	failedAt time.Time
	storedAt time.Time
}

// failure is the error of the last append that failed, and when, if none succeeded since: the
// replica then cannot lead (Raft steps down when its own log refuses an entry), however many
// replicas it reaches.
func (l *raftLog) failure() (time.Time, error) {
	l.failMu.Lock()
	defer l.failMu.Unlock()
	if l.failErr == nil || !l.failedAt.After(l.storedAt) {
		return time.Time{}, nil
	}
	return l.failedAt, l.failErr
}

// noteAppend keeps the outcome of an append for failure.
func (l *raftLog) noteAppend(err error) {
	l.failMu.Lock()
	defer l.failMu.Unlock()
	if err != nil {
		l.failErr, l.failedAt = err, time.Now()
	} else {
		l.storedAt = time.Now()
	}
}

// reopenSegments is how many segments' worth of appended bytes open the WAL again.
const reopenSegments = 4

// errLogClosed is what the log answers once closed, or once opening it again failed.
var errLogClosed = errors.New("store: the raft log is closed")

// with runs fn on the WAL, which is not opened again meanwhile.
func with[T any](l *raftLog, fn func(*wal.WAL) (T, error)) (T, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.wal == nil {
		var zero T
		return zero, errLogClosed
	}
	return fn(l.wal)
}

func (l *raftLog) FirstIndex() (uint64, error) {
	return with(l, func(w *wal.WAL) (uint64, error) { return w.FirstIndex() })
}

func (l *raftLog) LastIndex() (uint64, error) {
	return with(l, func(w *wal.WAL) (uint64, error) { return w.LastIndex() })
}

// GetLog reads the entry at index, or returns raft.ErrLogNotFound for an entry before the first
// index. raft-wal (v0.4.1) cuts the head of the log by moving its first index and deleting only
// whole segments, and still reads a cut entry that is in the tail segment; a leader would then
// send a wiped follower the entries behind a snapshot instead of the snapshot.
func (l *raftLog) GetLog(index uint64, log *raft.Log) error {
	_, err := with(l, func(w *wal.WAL) (struct{}, error) {
		first, err := w.FirstIndex()
		if err != nil {
			return struct{}{}, err
		}
		if index < first {
			return struct{}{}, raft.ErrLogNotFound
		}
		return struct{}{}, w.GetLog(index, log)
	})
	return err
}

func (l *raftLog) StoreLog(log *raft.Log) error { return l.StoreLogs([]*raft.Log{log}) }

// StoreLogs appends entries, and opens the WAL again once reopenAfter bytes were appended since
// it was last opened.
//
// raft-wal seals a full segment in the append that fills it and records the next segment in the
// background. StoreLogs returns only once that is recorded too, so that a crash cannot leave an
// acknowledged entry in a sealed last segment with no next one (see unseal).
func (l *raftLog) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil // a DeleteRange of index 0 on an empty log would cut its head
	}
	err := l.storeLogs(logs)
	l.noteAppend(err)
	return err
}

func (l *raftLog) storeLogs(logs []*raft.Log) error {
	store := func(w *wal.WAL) (struct{}, error) {
		if err := w.StoreLogs(logs); err != nil {
			return struct{}{}, err
		}
		return struct{}{}, awaitNextSegment(w)
	}
	_, err := with(l, store)
	if errors.Is(err, wal.ErrSealed) {
		if err := l.unseal(); err != nil {
			return err
		}
		_, err = with(l, store)
	}
	if err != nil {
		return err
	}
	if l.reopenAfter == 0 {
		return nil
	}
	var n int64
	for _, e := range logs {
		n += int64(len(e.Data) + len(e.Extensions))
	}
	if l.appended.Add(n) < l.reopenAfter {
		return nil
	}
	return l.reopen()
}

// awaitNextSegment waits until a next segment that an append started in the background is
// recorded. raft-wal exports no call for it, but every change to the log waits for it first, and
// a DeleteRange of index 0 changes nothing.
func awaitNextSegment(w *wal.WAL) error {
	if err := w.DeleteRange(0, 0); err != nil {
		return fmt.Errorf("store: wait for the raft log's next segment: %w", err)
	}
	return nil
}

// unseal repairs a log whose last segment is sealed while raft-wal's meta store still names it
// the tail. raft-wal (v0.4.1, v0.4.2) seals a full segment in the append that fills it and
// records the next segment in the background; a crash in between leaves this state, and raft-wal
// then refuses every append with ErrSealed, so the replica could never write again. Cutting the
// last entry off the tail starts a new segment, and the entry is then appended again.
//
// A crash between that cut and the append loses the last entry. That is safe: StoreLogs waits for
// the next segment before it returns, so an entry left in a sealed last segment was never
// acknowledged to Raft.
func (l *raftLog) unseal() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.wal == nil {
		return errLogClosed
	}
	last, err := l.wal.LastIndex()
	if err != nil || last == 0 {
		return errors.Join(wal.ErrSealed, err)
	}
	var e raft.Log
	if err := l.wal.GetLog(last, &e); err != nil {
		return fmt.Errorf("store: repair the raft log's sealed last segment: read entry %d: %w", last, err)
	}
	if err := l.wal.DeleteRange(last, last); err != nil {
		return fmt.Errorf("store: repair the raft log's sealed last segment: cut entry %d: %w", last, err)
	}
	if err := l.wal.StoreLogs([]*raft.Log{&e}); err != nil {
		return fmt.Errorf("store: repair the raft log's sealed last segment: append entry %d again: %w", last, err)
	}
	l.log.Warn("repaired the raft log: its last segment was sealed with no next segment, as a crash while a segment filled up leaves it; entry written again into a new segment", "index", last)
	return nil
}

func (l *raftLog) DeleteRange(min, max uint64) error {
	_, err := with(l, func(w *wal.WAL) (struct{}, error) { return struct{}{}, w.DeleteRange(min, max) })
	return err
}

// reopen closes the WAL and opens it again. The WAL cannot be open twice (its meta store is
// locked), so a failure leaves the log closed: every later call fails, Raft reports it, and the
// node must be restarted.
func (l *raftLog) reopen() error {
	start := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.wal == nil {
		return errLogClosed
	}
	if l.appended.Load() < l.reopenAfter {
		return nil // another append opened it again meanwhile
	}
	l.appended.Store(0)
	// No next segment is pending: StoreLogs waited for it. raft-wal's Close would abandon one, and
	// the WAL would then open with a sealed last segment.
	closeErr := l.wal.Close()
	w, err := openWAL(l.dir, l.size, l.files, l.hl)
	if err != nil {
		l.wal = nil
		l.log.Error("could not open the raft log again: restart the node", "err", err, "close_err", closeErr)
		return fmt.Errorf("store: open the raft log again: %w", err)
	}
	l.wal = w
	l.log.Debug("opened the raft log again, to release the write buffers of its older segments", "took", time.Since(start))
	return nil
}

func (l *raftLog) Set(key, val []byte) error {
	_, err := with(l, func(w *wal.WAL) (struct{}, error) { return struct{}{}, w.Set(key, val) })
	return l.stable(err)
}

// stable is the outcome of a write of Raft's stable store (its term, its vote). Raft panics
// when one fails, which is right while it runs: a replica must not go on without its term on
// disk. But the log is closed after Raft's Shutdown, and Raft's network transport does not wait
// for the handlers of connections it had open: a heartbeat being handled then raised the term
// after the close and panicked the stopping process. Such a write waits for good instead: its
// answer would say that the term was kept, and the process is stopping.
func (l *raftLog) stable(err error) error {
	if errors.Is(err, errLogClosed) && l.closed.Load() {
		select {}
	}
	return err
}

func (l *raftLog) Get(key []byte) ([]byte, error) {
	return with(l, func(w *wal.WAL) ([]byte, error) { return w.Get(key) })
}

func (l *raftLog) SetUint64(key []byte, val uint64) error {
	_, err := with(l, func(w *wal.WAL) (struct{}, error) { return struct{}{}, w.SetUint64(key, val) })
	return l.stable(err)
}

func (l *raftLog) GetUint64(key []byte) (uint64, error) {
	return with(l, func(w *wal.WAL) (uint64, error) { return w.GetUint64(key) })
}

// IsMonotonic tells Raft that the log has no gaps, as raft-wal requires (raft.MonotonicLogStore).
func (l *raftLog) IsMonotonic() bool { return true }

// Close closes the log and releases the directory.
func (l *raftLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var err error
	if l.wal != nil {
		err = l.wal.Close()
		l.wal = nil
	}
	l.closed.Store(true)
	return errors.Join(err, l.lock.Close()) // closing the file releases its flock
}

// openLog locks dir, so that a second replica on it is refused instead of sharing the log, moves
// a bolt log into the WAL if there is one, and opens the WAL.
func openLog(dir string, hl hclog.Logger, log *slog.Logger) (*raftLog, error) {
	return openLogSized(dir, segmentSize, reopenSegments*segmentSize, nil, hl, log)
}

// openLogSized is openLog with segments of size bytes on files (nil: the disk), opened again
// every reopenAfter bytes appended (never with 0).
func openLogSized(dir string, size, reopenAfter int, files types.VFS, hl hclog.Logger, log *slog.Logger) (*raftLog, error) {
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
	if err := recoverCompaction(dir); err != nil {
		lock.Close()
		return nil, err
	}
	if err := migrateBolt(dir, hl, log); err != nil {
		lock.Close()
		return nil, err
	}
	walPath := filepath.Join(dir, walDir)
	w, err := openWAL(walPath, size, files, hl)
	if err != nil {
		lock.Close()
		return nil, err
	}
	return &raftLog{wal: w, dir: walPath, size: size, files: files, reopenAfter: int64(reopenAfter), hl: hl, log: log, lock: lock}, nil
}

// openWAL opens the WAL in dir, its segments on files (nil: the disk). raft-wal must be v0.4.1
// or later: v0.4.0 marked a segment sealed when Raft cut the tail of the log without writing the
// segment's index, and a replica killed after that panicked at its next start ("sealed segment
// has no index block").
func openWAL(dir string, size int, files types.VFS, hl hclog.Logger) (*wal.WAL, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: open raft log: %w", err)
	}
	if files == nil {
		files = walfs.New()
	}
	w, err := wal.Open(dir, wal.WithSegmentSize(size), wal.WithLogger(hl), wal.WithSegmentFiler(segment.NewFiler(dir, segmentFiles{files})))
	if err != nil {
		return nil, fmt.Errorf("store: open raft log %s: %w", dir, err)
	}
	return w, nil
}

// segmentFiles are the files of the log's segments, but a segment that could not be created
// leaves no file behind. raft-wal (v0.4.1) records a new segment's name in its meta store, then
// creates the file exclusively (O_EXCL) and preallocates it; on a full disk the preallocation
// fails and leaves the file, empty. Its next attempt, at Raft's next append or election, takes the
// same name, and failed with "file exists" for good, space or no space, until a restart: a
// single replica could not lead again. So the file of a failed creation goes at once, and an
// empty one is taken as left by such a creation (a segment that was created is as large as its
// preallocation) and goes before the file is created anew.
type segmentFiles struct{ types.VFS }

func (f segmentFiles) Create(dir, name string, size uint64) (types.WritableFile, error) {
	path := filepath.Join(dir, name)
	if fi, err := os.Lstat(path); err == nil && fi.Mode().IsRegular() && fi.Size() == 0 {
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("store: remove the empty raft log segment that a failed creation left: %w", err)
		}
	}
	w, err := f.VFS.Create(dir, name, size)
	if err != nil && !errors.Is(err, fs.ErrExist) {
		// The file, if there is one, is this call's (it was created exclusively), with nothing in it.
		if rmErr := os.Remove(path); rmErr != nil && !errors.Is(rmErr, fs.ErrNotExist) {
			err = errors.Join(err, rmErr)
		}
	}
	return w, err
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
	w, err := openWAL(tmp, segmentSize, nil, hl)
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

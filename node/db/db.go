// Package db owns a node's SQLite database: the records, the change feed and the Raft applied
// index.
//
// It keeps two handles on one file in WAL mode. The read-write handle has a single connection, so
// there is exactly one writer: the FSM through the Apply methods, and the replica's own local work
// (localTx: the text index and file text; PruneHistory, Backup, Checkpoint). The read-only handle
// serves every query. See DESIGN.md. Restore never mutates the live database: it builds a new file and swaps it
// in under a lock.
//
// db never talks to Raft and never validates records; callers hand it writes that are already
// checked and ordered.
package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mattn/go-sqlite3"
)

// readDriver is go-sqlite3 with every connection set to read the file through a memory map. A
// query that touches pages all over a large database (a label lookup per candidate record) then
// reads them from the page cache in place, where the default copies each page through a system
// call into a small cache per connection: at a million records, List with two labels went from
// a p99 of 8.6–10.6 ms to 6.9–7.5 ms when it came in. Only the read-only handle maps; the
// FSM's writes measured no better with it.
//
// The mapped pages count in the process's resident memory, but they are page cache that the
// kernel reclaims under pressure. The live file never shrinks under a mapping: nothing vacuums it
// in place, and Restore closes every connection before it swaps the file. A disk read error on a
// mapped page ends the process (SIGBUS) instead of failing the one query.
const readDriver = "sqlite3-knooppunt-read"

// mmapBytes is the most of the file a read connection maps. SQLite caps it at its compile-time
// limit (2 GiB by default); a larger file is read past that point the usual way.
const mmapBytes = 1 << 40

// writeDriver is go-sqlite3 with the FSM's connection set for the write path. A record write
// changes a leaf page in each of about ten B-trees (the records and their List indexes, the
// history, the feed, the text queue), wherever its id falls, so that a transaction of a few dozen
// records dirties hundreds of pages. Two settings keep that from being paid twice:
//
//   - writeCacheKiB of page cache. SQLite's default of 2 MiB is less than what a transaction of
//     64 records dirties (some 700 pages), so that pages were spilled and read again with system
//     calls; 4 MiB took most of the gain, 16 leaves room for larger transactions. It is memory
//     of the process's own (RssAnon), up to that size once the database is larger.
//   - a checkpoint every walCheckpointPages pages of WAL instead of 1000: the checkpoint copies
//     each page the WAL holds into the database file once, however often it was written since,
//     and the leaf pages that every transaction changes are copied once for many transactions.
//     The WAL file grows to that size (32 MiB) and stays; the eraser still truncates it (see
//     Checkpoint).
const (
	writeDriver        = "sqlite3-knooppunt-write"
	writeCacheKiB      = 16 << 10
	walCheckpointPages = 8192
)

func init() {
	sql.Register(readDriver, &sqlite3.SQLiteDriver{ConnectHook: func(c *sqlite3.SQLiteConn) error {
		_, err := c.Exec("PRAGMA mmap_size = "+strconv.Itoa(mmapBytes), nil)
		return err
	}})
	sql.Register(writeDriver, &sqlite3.SQLiteDriver{ConnectHook: func(c *sqlite3.SQLiteConn) error {
		if _, err := c.Exec("PRAGMA cache_size = -"+strconv.Itoa(writeCacheKiB), nil); err != nil {
			return err
		}
		_, err := c.Exec("PRAGMA wal_autocheckpoint = "+strconv.Itoa(walCheckpointPages), nil)
		return err
	}})
}

var (
	// ErrNotFound means no live record has the id.
	ErrNotFound = errors.New("db: record not found")
	// ErrClosed means the database was closed.
	ErrClosed = errors.New("db: closed")
)

// DB is a node's SQLite database.
type DB struct {
	path string
	// migratedFrom is the schema version the database had when Open migrated it; 0 when it
	// needed none, or was new.
	migratedFrom int

	mu     sync.RWMutex // held for reading by every query, for writing while handles are swapped
	rw     *sql.DB
	ro     *sql.DB
	get    *sql.Stmt // Get, prepared once on the read-only handle: the hottest read
	closed bool

	feedMu  sync.Mutex
	changed chan struct{} // closed and replaced after every commit

	generation atomic.Uint64 // grows with every policy step and phase change, and at Restore
	restores   atomic.Uint64 // grows at Restore
	peersGen   atomic.Uint64 // grows with every peer step that changed a peer, and at Restore
	// textWork grows with every commit that queued text for the index or stored a file, and at
	// Restore; hooksGen with every webhook step, and at Restore (see writeTx).
	textWork atomic.Uint64
	hooksGen atomic.Uint64

	// The meta row values, kept here by the only writer so that neither applyTx nor the
	// subscriptions, which read last_seq at every commit, need a query. open loads them;
	// applyTx stores them after each commit, under applyMu.
	applyMu sync.Mutex
	applied atomic.Uint64
	lastSeq atomic.Int64
	// Where the last restore from a backup left the feed (MarkRestored): open loads them.
	restoredSeq, resumedSeq atomic.Int64

	// ownRefs is set once any own record names a file (file_refs with origin ''): until then a
	// record write that names no file need not look for refs to drop (see setRefs).
	ownRefs atomic.Bool

	// extractor takes the text out of files for the index (SetExtractor).
	extractMu  sync.Mutex
	extractor  Extractor
	extractMax int64

	// textBudget bounds the time one text search spends on the index, textSlots how many of its
	// statements run at once, node-wide (eachText).
	textBudget time.Duration
	textSlots  chan struct{}
}

// SetTextBudget sets how long the statements on the index of one text search may take in all
// (DefaultTextBudget unless set; eachText). It is for tests, and before the node serves.
func (d *DB) SetTextBudget(b time.Duration) { d.textBudget = b }

// stmtCache is the number of prepared statements each connection keeps (go-sqlite3's
// _stmt_cache_size): every Exec and Query with arguments reuses its statement instead of
// preparing it again, which costs more than the statement's work in a small Raft entry.
const stmtCache = 64

// Matching are the paths of the entries of dir whose names match pattern (filepath.Match), dir's
// own name taken as it is: filepath.Glob reads it as a pattern too, so that a restore into r?1
// swept what an earlier restore left in rx1, and a '[' in it swept nothing.
func Matching(dir, pattern string) []string {
	entries, _ := os.ReadDir(dir)
	var out []string
	for _, e := range entries {
		if ok, _ := filepath.Match(pattern, e.Name()); ok {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	return out
}

// FileURI is the SQLite URI of the file at path with the query parameters query ("" for none).
// In a URI, '?' starts the query, '#' a fragment and '%' an escape, and a path that begins with
// "//" names a host: unescaped, a data directory named n#1 opened the database n in its parent.
// VACUUM INTO's file goes through it too, as a connection that takes URIs reads a name that
// begins with "file:" as one.
func FileURI(path, query string) string {
	uri := "file:"
	if strings.HasPrefix(path, "/") {
		// An empty host, so that the path's own leading slashes stay the path's.
		uri = "file://"
	}
	uri += uriEscaper.Replace(path)
	if query != "" {
		uri += "?" + query
	}
	return uri
}

var uriEscaper = strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23")

// Open opens or creates the database at path and brings its schema up to date.
func Open(path string) (*DB, error) {
	d := &DB{path: path, changed: make(chan struct{}), textBudget: DefaultTextBudget, textSlots: make(chan struct{}, DefaultTextSlots)}
	if err := d.open(); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *DB) open() error {
	cache := "&_stmt_cache_size=" + strconv.Itoa(stmtCache)
	// secure_delete: SQLite overwrites deleted content with zeros, so that a deleted record's
	// body or a retracted foreign record is not left in the file's free space (see the store's
	// eraser, which bounds how long the WAL and the Raft log keep it).
	rw, err := sql.Open(writeDriver, FileURI(d.path, "_journal_mode=WAL&_synchronous=NORMAL&_busy_timeout=5000&_txlock=immediate&_secure_delete=on"+cache))
	if err != nil {
		return fmt.Errorf("db: open %s: %w", d.path, err)
	}
	rw.SetMaxOpenConns(1)
	rw.SetConnMaxLifetime(0)
	from, err := migrate(rw)
	if err != nil {
		rw.Close()
		return fmt.Errorf("db: migrate %s: %w", d.path, err)
	}
	if from > 0 && from < len(migrations) {
		d.migratedFrom = from
	}
	if err := d.loadRestored(rw); err != nil {
		rw.Close()
		return fmt.Errorf("db: open %s: read meta: %w", d.path, err)
	}
	var applied uint64
	var seq int64
	if err := rw.QueryRow(`SELECT (SELECT value FROM meta WHERE key='applied_index'), (SELECT value FROM meta WHERE key='last_seq')`).Scan(&applied, &seq); err != nil {
		rw.Close()
		return fmt.Errorf("db: open %s: read meta: %w", d.path, err)
	}
	ro, err := sql.Open(readDriver, FileURI(d.path, "mode=ro&_query_only=1&_busy_timeout=5000"+cache))
	if err != nil {
		rw.Close()
		return fmt.Errorf("db: open %s read-only: %w", d.path, err)
	}
	ro.SetMaxOpenConns(8)
	ro.SetMaxIdleConns(8)
	get, err := ro.Prepare(`SELECT ` + recordColumns + ` FROM records WHERE id = ? AND tombstone = 0`)
	if err != nil {
		ro.Close()
		rw.Close()
		return fmt.Errorf("db: prepare: %w", err)
	}
	var ownRefs bool
	if err := rw.QueryRow(`SELECT EXISTS (SELECT 1 FROM file_refs WHERE origin = '')`).Scan(&ownRefs); err != nil {
		get.Close()
		ro.Close()
		rw.Close()
		return fmt.Errorf("db: open %s: %w", d.path, err)
	}
	d.ownRefs.Store(ownRefs)
	d.rw, d.ro, d.get = rw, ro, get
	d.applied.Store(applied)
	d.lastSeq.Store(seq)
	return nil
}

// Path is the database file.
func (d *DB) Path() string { return d.path }

// Close closes both handles.
func (d *DB) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	return errors.Join(d.get.Close(), d.ro.Close(), d.rw.Close())
}

// read runs fn with the read-only handle, holding the swap lock.
func (d *DB) read(fn func(ro *sql.DB) error) error {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		return ErrClosed
	}
	return fn(d.ro)
}

// AppliedIndex is the index of the last Raft entry applied to the database.
func (d *DB) AppliedIndex() (uint64, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		return 0, ErrClosed
	}
	return d.applied.Load(), nil
}

// LastSeq is the sequence number of the newest change in the feed. It moves only once the
// change is committed, so a reader that reads the feed up to it sees every change it names.
func (d *DB) LastSeq() (int64, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		return 0, ErrClosed
	}
	return d.lastSeq.Load(), nil
}

// Stats reports the number of live records and the size of the database files.
func (d *DB) Stats(ctx context.Context) (records int64, bytes int64, err error) {
	err = d.read(func(ro *sql.DB) error {
		return ro.QueryRowContext(ctx, `SELECT count(*) FROM records WHERE tombstone = 0`).Scan(&records)
	})
	for _, suffix := range []string{"", "-wal"} {
		if fi, statErr := os.Stat(d.path + suffix); statErr == nil {
			bytes += fi.Size()
		}
	}
	return records, bytes, err
}

// Generation grows with every policy step and phase change: what may be shared changed. A
// Restore moves it too.
func (d *DB) Generation() uint64 { return d.generation.Load() }

// Restores counts the Restores since Open: each may have replaced every record, policy and
// phase at once.
func (d *DB) Restores() uint64 { return d.restores.Load() }

// Changed returns a channel that is closed at the next commit.
func (d *DB) Changed() <-chan struct{} {
	d.feedMu.Lock()
	defer d.feedMu.Unlock()
	return d.changed
}

// announce counts what a committed transaction changed for the indexer and the webhook
// dispatcher. It runs before notify, so that whoever wakes at the commit sees the count.
func (d *DB) announce(tx *writeTx) {
	if tx.text {
		d.textWork.Add(1)
	}
	if tx.hooks {
		d.hooksGen.Add(1)
	}
}

// WebhooksGeneration grows with every webhook step and at Restore: while it stays, the list of
// webhooks (not their queues or counts) is as it was.
func (d *DB) WebhooksGeneration() uint64 { return d.hooksGen.Load() }

func (d *DB) notify() {
	d.feedMu.Lock()
	close(d.changed)
	d.changed = make(chan struct{})
	d.feedMu.Unlock()
}

// Backup writes a consistent copy of the database to dst, which must not exist. The caller must
// make sure no Apply runs at the same time (the Raft FSM does so by design).
func (d *DB) Backup(dst string) error {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		return ErrClosed
	}
	if _, err := d.rw.Exec(`VACUUM INTO ?`, FileURI(dst, "")); err != nil {
		return fmt.Errorf("db: backup to %s: %w", dst, err)
	}
	return nil
}

// removeFiles removes a database file with its WAL and shared-memory files.
func removeFiles(path string) {
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(path + suffix)
	}
}

// Restore replaces the whole database with the one read from r. The new file is built and
// checked beside the live one, then swapped in under the lock; a failure leaves the live
// database as it was.
func (d *DB) Restore(r io.Reader) error {
	tmp := d.path + ".restore"
	// With its WAL and shared memory: a restore that a crash cut short while it migrated the
	// staged copy leaves a WAL behind, which SQLite would replay onto the next snapshot.
	removeFiles(tmp)
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("db: restore: %w", err)
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("db: restore: copy snapshot: %w", err)
	}
	if err := errors.Join(f.Sync(), f.Close()); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("db: restore: %w", err)
	}
	if err := IntegrityCheck(tmp); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("db: restore: snapshot is damaged: %w", err)
	}
	if _, err := checkSchema(tmp); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("db: restore: snapshot is not a knooppunt database: %w", err)
	}
	// Migrated here, beside the live file: a snapshot of an older release that does not migrate
	// is refused before anything live is touched.
	staged, err := Open(tmp)
	if err == nil {
		err = staged.Close()
	}
	if err != nil {
		removeFiles(tmp)
		return fmt.Errorf("db: restore: snapshot: %w", err)
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		removeFiles(tmp)
		return ErrClosed
	}
	// From here the live handles are gone: a failure leaves the database closed (ErrClosed to
	// every caller), never handles that fail each call in their own words.
	if err := errors.Join(d.get.Close(), d.ro.Close(), d.rw.Close()); err != nil {
		d.closed = true
		return fmt.Errorf("db: restore: close live database: %w (%w)", err, ErrClosed)
	}
	for _, suffix := range []string{"-wal", "-shm"} {
		os.Remove(d.path + suffix)
	}
	if err := os.Rename(tmp, d.path); err != nil {
		d.closed = true
		return fmt.Errorf("db: restore: swap: %w (%w)", err, ErrClosed)
	}
	if err := d.open(); err != nil {
		d.closed = true
		return fmt.Errorf("%w (%w)", err, ErrClosed)
	}
	// The snapshot may hold other policies and phases: what may be shared changed.
	d.restores.Add(1)
	d.generation.Add(1)
	d.peersGen.Add(1)
	d.textWork.Add(1)
	d.hooksGen.Add(1)
	d.notify()
	return nil
}

// ErrCheckpointBusy means a checkpoint could not finish because readers still used the WAL.
var ErrCheckpointBusy = errors.New("db: the WAL is in use by readers: checkpoint again later")

// Checkpoint copies every page of the WAL into the database file and truncates the WAL to zero
// bytes (wal_checkpoint(TRUNCATE)). With secure_delete, that leaves no copy of deleted content in
// either file: the WAL holds the pages as they were before each change until it is checkpointed.
// It returns ErrCheckpointBusy when readers kept it from finishing.
func (d *DB) Checkpoint(ctx context.Context) error {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		return ErrClosed
	}
	var busy, frames, done int
	if err := d.rw.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &frames, &done); err != nil {
		return fmt.Errorf("db: checkpoint: %w", err)
	}
	if busy != 0 {
		return ErrCheckpointBusy
	}
	return nil
}

// IntegrityCheck runs SQLite's integrity_check on the file at path.
func IntegrityCheck(path string) error { return integrityCheck(context.Background(), path) }

// FoldWAL writes into the database file at path what its write-ahead log beside it (path-wal)
// holds, and empties the log: the file alone is then the whole database. A node's database left
// by a crash or a kill keeps its latest commits in that log. Run it on a copy of both files: it
// writes.
func FoldWAL(path string) error {
	h, err := sql.Open("sqlite3", FileURI(path, "_journal_mode=WAL"))
	if err != nil {
		return err
	}
	defer h.Close()
	var busy, frames, done int
	if err := h.QueryRow(`PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &frames, &done); err != nil {
		return fmt.Errorf("db: fold the write-ahead log of %s: %w", path, err)
	}
	if busy != 0 {
		return fmt.Errorf("db: fold the write-ahead log of %s: the database is in use", path)
	}
	return nil
}

// integrityCheck is IntegrityCheck, interrupted when ctx ends: it reads every page.
func integrityCheck(ctx context.Context, path string) error {
	h, err := sql.Open("sqlite3", FileURI(path, "mode=ro"))
	if err != nil {
		return err
	}
	defer h.Close()
	var res string
	if err := h.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&res); err != nil {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		return err
	}
	if res != "ok" {
		return fmt.Errorf("integrity_check: %s", res)
	}
	return nil
}

// checkSchema checks that the file at path is a knooppunt database this build can open, and
// returns the index of the last Raft log entry it applied. An empty file passes
// integrity_check, and swapping it in would wipe every record; a database from a newer release
// would be swapped in and then fail to open, leaving no live database.
func checkSchema(path string) (applied uint64, err error) {
	h, err := sql.Open("sqlite3", FileURI(path, "mode=ro"))
	if err != nil {
		return 0, err
	}
	defer h.Close()
	var v int
	if err := h.QueryRow(`PRAGMA user_version`).Scan(&v); err != nil {
		return 0, err
	}
	if v > len(migrations) {
		return 0, &NewerSchemaError{Schema: v}
	}
	if v < 1 {
		return 0, fmt.Errorf("schema version %d, want 1 to %d", v, len(migrations))
	}
	if err := h.QueryRow(`SELECT value FROM meta WHERE key = 'applied_index'`).Scan(&applied); err != nil {
		return 0, fmt.Errorf("applied index: %w", err)
	}
	return applied, nil
}

// NewerSchemaError is the error of a database file from a newer release than this build: its
// schema version is past SchemaVersion.
type NewerSchemaError struct{ Schema int }

func (e *NewerSchemaError) Error() string {
	return fmt.Sprintf("schema version %d, want 1 to %d: it comes from a newer release; restore it with that release, or restore a backup this release made", e.Schema, SchemaVersion)
}

// CheckBackup checks that the file at path is a whole knooppunt database this build can open
// (integrity_check, and its schema), and returns the index of the last Raft log entry it holds
// and the org whose records it holds ("" when it holds none). The check reads every page; it
// stops with ctx's cause when ctx ends. A whole file of a newer release fails with a
// *NewerSchemaError, after its pages were checked.
func CheckBackup(ctx context.Context, path string) (applied uint64, origin string, err error) {
	if err := integrityCheck(ctx, path); err != nil {
		return 0, "", err
	}
	if applied, err = checkSchema(path); err != nil {
		return 0, "", err
	}
	h, err := sql.Open("sqlite3", FileURI(path, "mode=ro"))
	if err != nil {
		return 0, "", err
	}
	defer h.Close()
	origin, err = readOrigin(ctx, h)
	return applied, origin, err
}

// Origin is the trust domain of the org whose database it is: the one its node noted (KeepOrg),
// or else the origin of any record, as a node stores only its own org's ("" when it holds
// neither). A node started on another org's database (a data directory or backup mixed up)
// finds it here before it serves them.
func (d *DB) Origin(ctx context.Context) (origin string, err error) {
	err = d.read(func(ro *sql.DB) error {
		origin, err = readOrigin(ctx, ro)
		return err
	})
	return origin, err
}

// Copy writes a consistent copy of the database as committed to dst, which must not exist, from
// a read-only connection of its own, so that writes go on meanwhile. It returns the index of the
// last Raft log entry the copy holds.
func (d *DB) Copy(ctx context.Context, dst string) (applied uint64, err error) {
	d.mu.RLock()
	closed := d.closed
	d.mu.RUnlock()
	if closed {
		return 0, ErrClosed
	}
	// Not the pool's read connections: query_only refuses VACUUM INTO.
	h, err := sql.Open(readDriver, FileURI(d.path, "mode=ro&_busy_timeout=5000"))
	if err != nil {
		return 0, fmt.Errorf("db: copy: %w", err)
	}
	defer h.Close()
	if _, err := h.ExecContext(ctx, `VACUUM INTO ?`, FileURI(dst, "")); err != nil {
		return 0, fmt.Errorf("db: copy to %s: %w", dst, err)
	}
	if applied, err = checkSchema(dst); err != nil {
		return 0, fmt.Errorf("db: copy to %s: %w", dst, err)
	}
	return applied, nil
}

// DiskFree is the bytes an unprivileged process may still write on the file system that holds
// the database, or 0 when it cannot be read. A full disk stops the replica (see store's fsm).
func (d *DB) DiskFree() uint64 {
	free, _ := d.DiskFreeBytes()
	return free
}

// DiskFreeBytes is DiskFree, with the error when the file system cannot be read.
func (d *DB) DiskFreeBytes() (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(filepath.Dir(d.path), &st); err != nil {
		return 0, err
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// StorageFault reports whether err is the storage's (an I/O error, a full disk, a damaged or
// locked file), which another try may not meet, rather than one of what was asked: an entry a
// database of this release cannot apply (an unknown action, a column its schema lacks) fails
// the same way at every try.
func StorageFault(err error) bool {
	var se sqlite3.Error
	if errors.As(err, &se) {
		switch se.Code {
		case sqlite3.ErrIoErr, sqlite3.ErrFull, sqlite3.ErrCorrupt, sqlite3.ErrNotADB, sqlite3.ErrCantOpen, sqlite3.ErrNomem,
			sqlite3.ErrReadonly, sqlite3.ErrBusy, sqlite3.ErrLocked, sqlite3.ErrPerm, sqlite3.ErrProtocol:
			return true
		}
		return false
	}
	var pe *os.PathError
	var errno syscall.Errno
	return errors.As(err, &pe) || errors.As(err, &errno)
}

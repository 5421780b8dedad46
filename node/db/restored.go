package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// A restore from a backup (knooppunt restore) gives the node the backup's change feed, which
// ends at the backup's last seq; the database that was lost went on from there, and the seqs it
// gave out after it were given again for other changes, so that a consumer resuming at its
// cursor skipped them unawares (review J, F9). MarkRestored moves the feed past every seq the
// lost database can have given, and notes where the gap lies, in the restored file itself:
// every replica started from it holds the same feed, and a snapshot or backup carries it.
const (
	// metaRestoredSeq is the last seq of the backup's feed, metaResumedSeq the feed's last seq
	// as the restore left it: the first change after the restore is one past it.
	metaRestoredSeq = "restored_seq"
	metaResumedSeq  = "resumed_seq"
	// metaRestorePending is set by MarkRestored and dropped when a node first opens the
	// database: until then the database gave no seq, and a restore of it (into a Raft group's
	// other replicas) keeps its marks, so that the replicas' feeds are the same.
	metaRestorePending = "restore_pending"
)

// restoreMargin is how far past the backup's last seq a restore moves the feed at the least: more
// changes than a node writes between a backup and the next, so that a clock far behind still
// leaves the lost database's seqs behind.
const restoreMargin = 1 << 32

// MarkRestored marks the database file at path, which no node has open, as restored from a
// backup at now: its feed goes on past the backup's last seq from the larger of now in Unix
// microseconds and that seq plus restoreMargin. Seqs are given one per change, so a database lost
// after the backup gave none as large, unless it wrote a change every microsecond since the last
// restore. A database that MarkRestored marked and no node opened since keeps its marks (kept).
func MarkRestored(path string, now time.Time) (kept bool, err error) {
	h, err := sql.Open("sqlite3", FileURI(path, "_txlock=immediate"))
	if err != nil {
		return false, fmt.Errorf("db: mark %s restored: %w", path, err)
	}
	defer func() {
		if cerr := h.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("db: mark %s restored: %w", path, cerr)
		}
	}()
	h.SetMaxOpenConns(1)
	tx, err := h.Begin()
	if err != nil {
		return false, fmt.Errorf("db: mark %s restored: %w", path, err)
	}
	defer tx.Rollback()
	var last int64
	if err := tx.QueryRow(`SELECT EXISTS (SELECT 1 FROM meta WHERE key = ?), (SELECT value FROM meta WHERE key = 'last_seq')`, metaRestorePending).Scan(&kept, &last); err != nil {
		return false, fmt.Errorf("db: mark %s restored: %w", path, err)
	}
	if kept {
		return true, nil
	}
	resumed := max(now.UnixMicro(), last+restoreMargin)
	for _, kv := range []struct {
		key   string
		value int64
	}{{metaRestoredSeq, last}, {metaResumedSeq, resumed}, {"last_seq", resumed}, {metaRestorePending, 1}} {
		if _, err := tx.Exec(`INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, kv.key, kv.value); err != nil {
			return false, fmt.Errorf("db: mark %s restored: %w", path, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("db: mark %s restored: %w", path, err)
	}
	return false, nil
}

// Restored is where the last restore from a backup left the change feed: restored is the
// backup's last seq, resumed the feed's last seq after the restore (0 and 0 for a database never
// restored, or restored without MarkRestored).
func (d *DB) Restored() (restored, resumed int64) {
	return d.restoredSeq.Load(), d.resumedSeq.Load()
}

// BeforeRestore reports whether cursor lies between the backup's last seq and where the feed
// resumed after a restore: a seq that only the database lost before the restore gave out.
func (d *DB) BeforeRestore(cursor int64) bool {
	restored, resumed := d.Restored()
	return restored < cursor && cursor < resumed
}

// CursorError refuses a cursor of the change feed that the feed cannot resume at: one given
// before the node was restored from a backup, or one past the feed's end.
type CursorError struct {
	Cursor, LastSeq int64
	// BeforeRestore: the cursor lies in the seqs that only the database lost at the restore
	// gave out; Restored is the backup's last seq.
	BeforeRestore bool
	Restored      int64
}

func (e *CursorError) Error() string { return "db: cursor: " + e.Reason() }

// Reason says why the cursor is refused, and what to do, for the caller who gave it.
func (e *CursorError) Reason() string {
	why := fmt.Sprintf("%d is past the end of this node's change feed (%d): it is from before this node was restored from a backup, or is not from this node", e.Cursor, e.LastSeq)
	if e.BeforeRestore {
		why = fmt.Sprintf("%d is from before this node was restored from a backup: the changes after the backup's last (%d) are gone, and changes made since have other seqs", e.Cursor, e.Restored)
	}
	return why + ": read last_seq from Status (`knooppunt status`: change feed at N), list again, then watch from that last_seq"
}

// CheckCursor returns a *CursorError when the change feed cannot resume at cursor: one from
// before a restore (BeforeRestore), or one past the feed's end that the feed does not reach
// within wait (a replica behind the one that gave the cursor catches up meanwhile). It returns
// ctx's error when ctx ends first.
func (d *DB) CheckCursor(ctx context.Context, cursor int64, wait time.Duration) error {
	if d.BeforeRestore(cursor) {
		last, err := d.LastSeq()
		if err != nil {
			return err
		}
		restored, _ := d.Restored()
		return &CursorError{Cursor: cursor, LastSeq: last, BeforeRestore: true, Restored: restored}
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		changed := d.Changed()
		last, err := d.LastSeq()
		if err != nil {
			return err
		}
		if cursor <= last {
			return nil
		}
		select {
		case <-changed:
		case <-timer.C:
			return &CursorError{Cursor: cursor, LastSeq: last}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// loadRestored reads the marks of the last restore, and drops the mark that no node opened the
// database since (metaRestorePending): from here it gives seqs.
func (d *DB) loadRestored(rw *sql.DB) error {
	if _, err := rw.Exec(`DELETE FROM meta WHERE key = ?`, metaRestorePending); err != nil {
		return err
	}
	var restored, resumed int64
	err := rw.QueryRow(`SELECT coalesce((SELECT value FROM meta WHERE key = ?), 0), coalesce((SELECT value FROM meta WHERE key = ?), 0)`,
		metaRestoredSeq, metaResumedSeq).Scan(&restored, &resumed)
	if errors.Is(err, sql.ErrNoRows) {
		err = nil
	}
	if err != nil {
		return err
	}
	d.restoredSeq.Store(restored)
	d.resumedSeq.Store(resumed)
	return nil
}

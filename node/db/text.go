package db

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// The full-text index. text_index is an FTS5 table with the trigram tokenizer, which finds a term
// anywhere in a word (Dutch compounds: "vergunning" in "tewerkstellingsvergunning") and, with
// remove_diacritics, "coordinatie" in "coördinatie". It holds every string value of each live
// record's body, own (origin '') and cached from peers (origin: the peer's trust domain), so that
// what it holds follows from the record alone. It is contentless, the text being in the records,
// and text_keys maps each record to its row.
//
// The index is kept beside the replicated state, not in it. A trigram index costs about twice
// what the rest of a write costs, so the FSM only queues the record (text_pending, one small row
// in the same transaction), and IndexText takes the queue into the index in batches: at once
// when the node is quiet, slowly while writes keep coming (see RunTextIndexer), and fully before
// a search reads it (CatchUpText). A bulk load thus runs at the speed of the store, and the index
// catches up when it ends. Every replica keeps its own index; a snapshot carries the queue, so a
// restored replica finishes what it holds.
//
// The index only finds candidates. Which fields a kind searches, whether the words really occur,
// and what a reader may see of a record are decided above it (record.TextQuery.Match): a
// redacted field can never make a record match for a recipient.

// The statements of the index.
const (
	sqlTextQueue   = `INSERT OR IGNORE INTO text_pending (origin, id) VALUES (?, ?)`
	sqlTextPending = `SELECT origin, id FROM text_pending LIMIT +?`
	sqlTextDone    = `DELETE FROM text_pending WHERE origin = +? AND id = +?`
	sqlTextOwn     = `SELECT body FROM records WHERE id = +? AND tombstone = 0`
	sqlTextForeign = `SELECT body FROM foreign_records WHERE origin = +? AND id = +?`
	sqlTextKey     = `INSERT OR IGNORE INTO text_keys (origin, id) VALUES (?, ?)`
	sqlTextRow     = `SELECT rowid FROM text_keys WHERE origin = +? AND id = +?`
	sqlTextDrop    = `DELETE FROM text_index WHERE rowid = (SELECT rowid FROM text_keys WHERE origin = +? AND id = +?)`
	sqlTextUnkey   = `DELETE FROM text_keys WHERE origin = +? AND id = +?`
	sqlTextAdd     = `INSERT INTO text_index (rowid, text) VALUES (?, ?)`
	sqlTextDropRow = `DELETE FROM text_index WHERE rowid = +?`
	// sqlTextFiles is the text extracted from the files a record names (see files.go).
	sqlTextFiles = `SELECT group_concat(t.text, char(10)) FROM file_refs r JOIN file_text t ON t.sha256 = r.sha256
		WHERE r.origin = +? AND r.id = +? AND t.text != ''`
)

// queueText marks a record whose text changed (written, deleted, cached or retracted) for the
// index. It is all the FSM does for the index.
func queueText(tx *writeTx, origin, id string) error {
	if textIndexOff {
		return nil
	}
	if _, err := tx.Exec(sqlTextQueue, origin, id); err != nil {
		return fmt.Errorf("text queue: %w", err)
	}
	tx.text = true
	return nil
}

// IndexText takes up to max queued records into the index, in one transaction, and returns how
// many it took. Each is indexed as it is now, or taken out when it is gone.
func (d *DB) IndexText(max int) (int, error) {
	var taken int
	err := d.localTx(func(tx *writeTx) (bool, error) {
		type key struct{ origin, id string }
		var queued []key
		rows, err := tx.Query(sqlTextPending, max)
		if err != nil {
			return false, err
		}
		for rows.Next() {
			var k key
			if err := rows.Scan(&k.origin, &k.id); err != nil {
				rows.Close()
				return false, err
			}
			queued = append(queued, k)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return false, err
		}
		for _, k := range queued {
			var body []byte
			if k.origin == "" {
				err = tx.QueryRow(sqlTextOwn, k.id).Scan(&body)
			} else {
				err = tx.QueryRow(sqlTextForeign, k.origin, k.id).Scan(&body)
			}
			switch {
			case errors.Is(err, sql.ErrNoRows):
				err = unindexText(tx, k.origin, k.id)
			case err == nil:
				var files sql.NullString
				if err = tx.QueryRow(sqlTextFiles, k.origin, k.id).Scan(&files); err == nil {
					err = indexText(tx, k.origin, k.id, body, files.String)
				}
			}
			if err == nil {
				_, err = tx.Exec(sqlTextDone, k.origin, k.id)
			}
			if err != nil {
				return false, fmt.Errorf("%s/%s: %w", k.origin, k.id, err)
			}
		}
		taken = len(queued)
		return taken > 0, nil
	})
	if err != nil {
		if errors.Is(err, ErrClosed) {
			return 0, err
		}
		return 0, fmt.Errorf("db: text index: %w", err)
	}
	return taken, nil
}

// localTx runs fn in one write transaction that is no Raft entry, for what each replica keeps
// beside the replicated state (the full-text index, the text of files), and commits it when fn
// asks to. It holds the writer as the FSM does, so that the two never interleave.
func (d *DB) localTx(fn func(tx *writeTx) (commit bool, err error)) error {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		return ErrClosed
	}
	d.applyMu.Lock()
	defer d.applyMu.Unlock()
	tx, err := d.begin()
	if err != nil {
		return err
	}
	defer tx.rollback()
	commit, err := fn(tx)
	if err != nil || !commit {
		return err
	}
	if err := tx.commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	d.announce(tx)
	return nil
}

// TextPending is how many records wait to be taken into the index.
func (d *DB) TextPending(ctx context.Context) (int64, error) {
	var n int64
	err := d.read(func(ro *sql.DB) error {
		return ro.QueryRowContext(ctx, `SELECT count(*) FROM text_pending`).Scan(&n)
	})
	return n, err
}

// Indexer batches: a batch holds the FSM back for a few milliseconds at most.
const (
	textBatch = 256
	// textQuiet is how long the store must have had no commit before the indexer takes the
	// whole queue; textEvery is how often, while writes keep coming, it takes one batch.
	textQuiet = 20 * time.Millisecond
	textEvery = 250 * time.Millisecond
)

// RunTextIndexer keeps the index up to date until ctx ends. Once the store has had no commit for
// a moment it takes the whole queue in, a batch at a time, and stops at the next commit; while
// writes keep coming without such a moment, it takes one batch every textEvery, so that a bulk
// load is hardly slowed and the index still moves. Errors go to logErr, and it goes on.
func (d *DB) RunTextIndexer(ctx context.Context, logErr func(error)) {
	every := time.NewTicker(textEvery)
	defer every.Stop()
	// emptyAt is textWork when the queue was last found empty with no file left to extract:
	// until a commit queues text or stores a file, neither a tick nor a commit costs a query,
	// such as the disclosures a peer's every Query commits.
	emptyAt, known := uint64(0), false
	for ctx.Err() == nil {
		if known && d.textWork.Load() == emptyAt {
			// Nothing was queued since the queue emptied.
		} else if d.quiet(ctx, every.C) {
			at := d.textWork.Load()
			more := d.ExtractPending(ctx, logErr) == extractBatch // files may be left
			for {
				changed := d.Changed()
				n, err := d.IndexText(textBatch)
				if err != nil {
					logErr(err)
				}
				if err == nil && n == 0 && !more {
					emptyAt, known = at, true
				}
				if err != nil || n < textBatch || isClosed(changed) {
					break
				}
			}
		} else if _, err := d.IndexText(textBatch); err != nil && ctx.Err() == nil {
			logErr(err)
		}
		select {
		case <-ctx.Done():
		case <-d.Changed():
		case <-every.C:
		}
	}
}

// quiet waits until the store has had no commit for textQuiet, and reports true; or false when
// ctx ends or a tick comes first (the store stayed busy).
func (d *DB) quiet(ctx context.Context, tick <-chan time.Time) bool {
	t := time.NewTimer(textQuiet)
	defer t.Stop()
	for {
		changed := d.Changed()
		select {
		case <-ctx.Done():
			return false
		case <-tick:
			return false
		case <-changed:
			t.Reset(textQuiet)
		case <-t.C:
			return true
		}
	}
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// CatchUpBudget is how many queued records a search takes into the index before it reads: some
// tens of milliseconds of work at most.
const CatchUpBudget = 4096

// CatchUpText takes the queue into the index before a search reads it, within a budget: a
// search sees every write the node stored before it, unless a bulk load left more than budget
// records queued, which the indexer then takes in over the next moments. It returns how many
// records were left queued.
func (d *DB) CatchUpText(ctx context.Context, budget int) (int64, error) {
	// Most searches find the queue empty: asked on the read handle, they never wait for the
	// writer, which IndexText takes even to find nothing.
	var queued bool
	if err := d.read(func(ro *sql.DB) error {
		return ro.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM text_pending)`).Scan(&queued)
	}); err != nil || !queued {
		return 0, err
	}
	for taken := 0; taken < budget; {
		n, err := d.IndexText(min(textBatch, budget-taken))
		if err != nil {
			return 0, err
		}
		if n == 0 {
			return 0, nil
		}
		taken += n
	}
	return d.TextPending(ctx)
}

// textIndexOff skips the index and its queue. Only BenchmarkTextIndexWrite sets it, to measure
// the same writes without them in the same run.
var textIndexOff bool

// indexText puts a live record's body, and the text of the files it names, in the index,
// replacing what it held of the record.
func indexText(tx *writeTx, origin, id string, body []byte, files string) error {
	if textIndexOff {
		return nil
	}
	res, err := tx.Exec(sqlTextKey, origin, id)
	if err != nil {
		return fmt.Errorf("text index: %w", err)
	}
	var row int64
	if n, _ := res.RowsAffected(); n == 1 {
		row, err = res.LastInsertId() // a new key: nothing of it in the index yet
	} else if err = tx.QueryRow(sqlTextRow, origin, id).Scan(&row); err == nil {
		_, err = tx.Exec(sqlTextDropRow, row)
	}
	if err != nil {
		return fmt.Errorf("text index: %w", err)
	}
	text := bodyText(body)
	if files != "" {
		text += "\n" + files
	}
	if _, err := tx.Exec(sqlTextAdd, row, text); err != nil {
		return fmt.Errorf("text index: %w", err)
	}
	return nil
}

// bodyText is what the index holds of a body: its string values, not its keys, one per line, in
// the order they stand. SQLite's json_tree gives the same, at several times the cost.
func bodyText(body []byte) string {
	dec := json.NewDecoder(bytes.NewReader(body))
	var b strings.Builder
	key := false // the next string is an object's key
	var stack []bool
	for {
		tok, err := dec.Token()
		if err != nil {
			return b.String()
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{':
				stack = append(stack, true)
				key = true
				continue
			case '[':
				stack = append(stack, false)
			default:
				stack = stack[:len(stack)-1]
			}
		case string:
			if !key {
				if b.Len() > 0 {
					b.WriteByte('\n')
				}
				b.WriteString(t)
			}
		}
		// After a key comes its value; after a value in an object, the next key.
		key = len(stack) > 0 && stack[len(stack)-1] && !key
	}
}

// unindexText takes a record out of the index.
func unindexText(tx *writeTx, origin, id string) error {
	if textIndexOff {
		return nil
	}
	if _, err := tx.Exec(sqlTextDrop, origin, id); err != nil {
		return fmt.Errorf("text index: %w", err)
	}
	if _, err := tx.Exec(sqlTextUnkey, origin, id); err != nil {
		return fmt.Errorf("text index: %w", err)
	}
	return nil
}

// TextFilter selects the candidates of a full-text search. Zero fields do not filter.
type TextFilter struct {
	// Terms are the words and phrases each of which a record must hold (record.TextQuery.Terms).
	Terms  []string
	Kinds  []string
	Crisis string
	Region string
	Labels map[string]string
	// UpdatedSince keeps records updated at or after it.
	UpdatedSince time.Time
	// Mode is the mode of the search: the zero Mode finds actual records only.
	Mode Mode
}

// Ranking reads windows of the newest matches. bm25 must score every match before it can order
// them, and a common word matches a fifth of a million records: at some 2 µs a match that is
// most of a second. A window of the newest textWindow matches is scored and read best first, a
// page at a time, then the next older window, so that a query costs about the same however much
// it matches, and recent records come first among equals.
const (
	textWindow = 1024
	textPage   = 128
)

// textWhere is f's filters on table t (records or foreign_records), with the window of index rows
// from lower (inclusive, 0: none) to upper (exclusive, 0: none).
func textWhere(t string, f TextFilter, lower, upper int64) (string, []any) {
	where := []string{"text_index MATCH ?"}
	args := []any{matchExpr(f.Terms)}
	if lower > 0 {
		where, args = append(where, "text_index.rowid >= ?"), append(args, lower)
	}
	if upper > 0 {
		where, args = append(where, "text_index.rowid < ?"), append(args, upper)
	}
	where, args = append(where, t+".status = ?", t+".exercise = ?"), append(args, int32(f.Mode.Status), f.Mode.Exercise)
	if len(f.Kinds) > 0 {
		where = append(where, t+".kind IN ("+strings.TrimSuffix(strings.Repeat("?,", len(f.Kinds)), ",")+")")
		args = append(args, anySlice(f.Kinds)...)
	}
	if f.Crisis != "" {
		where, args = append(where, t+".crisis = ?"), append(args, f.Crisis)
	}
	if f.Region != "" {
		where, args = append(where, t+".region = ?"), append(args, f.Region)
	}
	for _, k := range sortedLabelKeys(f.Labels) {
		where = append(where, "json_extract("+t+".labels, '$.' || json_quote(?)) = ?")
		args = append(args, k, f.Labels[k])
	}
	if !f.UpdatedSince.IsZero() {
		where, args = append(where, t+".updated_at >= ?"), append(args, f.UpdatedSince.UnixNano())
	}
	return " WHERE " + strings.Join(where, " AND ") + " ORDER BY text_index.rank", args
}

// eachText runs a ranked query (from: its SELECT … FROM … JOIN part, with pre its arguments;
// t: its records table) over the windows of f's matches, newest window first, and calls fn for
// each row scan reads, best first, until fn returns false. A page of rows is read and its
// statement done before fn sees any of it, so fn may take its time.
func eachText[T any](ctx context.Context, d *DB, f TextFilter, from, t string, pre []any, scan func(*sql.Rows) (T, error), fn func(T) (bool, error)) error {
	match := matchExpr(f.Terms)
	upper := int64(0)
	for {
		// The window's lower bound: the textWindow-th newest match below upper, if there is one.
		bq := `SELECT rowid FROM text_index WHERE text_index MATCH ?`
		bargs := []any{match}
		if upper > 0 {
			bq, bargs = bq+` AND rowid < ?`, append(bargs, upper)
		}
		bq += ` ORDER BY rowid DESC LIMIT 1 OFFSET ` + strconv.Itoa(textWindow-1)
		var lower int64
		err := d.read(func(ro *sql.DB) error { return ro.QueryRowContext(ctx, bq, bargs...).Scan(&lower) })
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		last := errors.Is(err, sql.ErrNoRows) // the window reaches the oldest match
		where, args := textWhere(t, f, lower, upper)
		for offset := 0; ; offset += textPage {
			var page []T
			q := from + where + ` LIMIT ` + strconv.Itoa(textPage) + ` OFFSET ` + strconv.Itoa(offset)
			err := d.eachRow(ctx, q, append(append([]any{}, pre...), args...), func(rows *sql.Rows) error {
				v, err := scan(rows)
				page = append(page, v)
				return err
			})
			if err != nil {
				return err
			}
			for _, v := range page {
				if more, err := fn(v); err != nil || !more {
					return err
				}
			}
			if len(page) < textPage {
				break
			}
		}
		if last {
			return nil
		}
		upper = lower
	}
}

// EachTextMatch calls fn for the live own records the index finds for f, best first within
// windows of the newest matches (see textWindow), until fn returns false. A page of records is
// read before fn sees any of it, so fn may take its time.
func (d *DB) EachTextMatch(ctx context.Context, f TextFilter, fn func(*pb.Record) (bool, error)) error {
	from := `SELECT ` + qualified("records", recordColumns) + ` FROM text_index
		JOIN text_keys ON text_keys.rowid = text_index.rowid AND text_keys.origin = ''
		JOIN records ON records.id = text_keys.id AND records.tombstone = 0`
	if err := eachText(ctx, d, f, from, "records", nil, func(rows *sql.Rows) (*pb.Record, error) { return scanRecord(rows) }, fn); err != nil {
		return fmt.Errorf("db: text search: %w", err)
	}
	return nil
}

// EachForeignTextMatch is EachTextMatch over the records cached from origin.
func (d *DB) EachForeignTextMatch(ctx context.Context, origin string, f TextFilter, fn func(Foreign) (bool, error)) error {
	from := `SELECT ` + qualified("foreign_records", foreignColumns) + ` FROM text_index
		JOIN text_keys ON text_keys.rowid = text_index.rowid AND text_keys.origin = ?
		JOIN foreign_records ON foreign_records.origin = text_keys.origin AND foreign_records.id = text_keys.id`
	if err := eachText(ctx, d, f, from, "foreign_records", []any{origin}, scanForeign, fn); err != nil {
		return fmt.Errorf("db: text search of the cache: %w", err)
	}
	return nil
}

// matchExpr is the FTS5 query that finds the candidates for terms: each term a phrase of its
// trigrams, quoted as a string so that nothing in it is read as syntax.
func matchExpr(terms []string) string {
	parts := make([]string, len(terms))
	for i, t := range terms {
		parts[i] = `"` + strings.ReplaceAll(t, `"`, `""`) + `"`
	}
	return strings.Join(parts, " AND ")
}

// qualified prefixes every column of a comma-separated list with its table.
func qualified(table, columns string) string {
	cols := strings.Split(columns, ", ")
	for i, c := range cols {
		cols[i] = table + "." + strings.TrimSpace(c)
	}
	return strings.Join(cols, ", ")
}

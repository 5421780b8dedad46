package db

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tidwall/gjson"
	"google.golang.org/grpc/codes"

	"github.com/knooppunt/knooppunt/node/record"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// The full-text index is a word index. Each record's text (every string value of its body, and
// the text of the files it names) is folded as record.Normalize folds it and split into words
// (record.AppendWords); the words go into an FTS5 table with the ascii tokenizer, which then
// sees exactly those words. Every word also goes into the vocabulary (text_words), which has a
// trigram index of its own (text_vocab). A query term is found through its words: a part of a
// word ("vergunning", "coordinatie") is looked up in the vocabulary, which names the words that
// hold it ("tewerkstellingsvergunning", "coördinatie" folded), and the index is asked for any of
// them (see matchExpr). Common words thus cost what their own postings cost, not what the
// postings of their trigrams cost. The index holds own records (origin '') and those cached from
// peers (origin: the peer's trust domain); text_keys maps each record to its row. It is
// contentless, the text being in the records.
//
// A search of own records, which is what a peer's Query reads, expands a part of a word only to
// the words own records hold (text_own_words). The vocabulary also holds the words of every
// partner's records, which each partner chooses: were they counted, a partner could send 4,096
// words that hold a part and learn, from whether its search of that part is then refused as too
// broad, whether any other record here holds it, confidential ones and other partners' included
// (review fed-adversary 1), and could make its searches expand to thousands of its own words.
//
// The index is sharded by row: text_shard_N holds the rows N·2^16 to (N+1)·2^16-1, in the order
// records were first indexed. bm25 counts, for each word of a query, the rows that hold it
// before it scores one; over a shard that is at most 65,536 rows, not the whole index, so a query
// costs about the same at a million records as at a hundred thousand. A search reads the newest
// shard first, in windows of its newest matches (see textWindow). Once a record was taken out or
// replaced, a sweep of the vocabulary takes out the words no shard holds any more (SweepText), so
// that a deleted record's words leave the vocabulary as its body leaves the records.
//
// The index is kept beside the replicated state, not in it. The FSM only queues the record
// (one small row at the end of text_queue, in the same transaction), and IndexText takes the
// queue into the index in batches: at once when the node is quiet, slowly while writes keep
// coming (see RunTextIndexer), and fully before a search reads it (CatchUpText). A bulk load
// thus runs at the speed of the store, and the index catches up when it ends. Every replica keeps its own
// index; a snapshot carries the queue, so a restored replica finishes what it holds.
//
// The index only finds candidates. Which fields a kind searches, whether the words really occur,
// and what a reader may see of a record are decided above it (record.TextQuery.Match): a
// redacted field can never make a record match for a recipient.

// textShardBits is log2 of the rows of a shard; a test makes shards small.
var textShardBits = 16

// The statements of the index.
const (
	// The queue: written at its end, taken from its start, so that neither the FSM nor the
	// indexer changes a page of it wherever a record's id falls.
	sqlTextQueue   = `INSERT INTO text_queue (origin, id) VALUES (?, ?)`
	sqlTextPending = `SELECT seq, origin, id FROM text_queue ORDER BY seq LIMIT +?`
	sqlTextDone    = `DELETE FROM text_queue WHERE seq <= +?`
	sqlTextOwn     = `SELECT body FROM records WHERE id = +? AND tombstone = 0`
	sqlTextForeign = `SELECT body FROM foreign_records WHERE origin = +? AND id = +?`
	sqlTextKey     = `INSERT OR IGNORE INTO text_keys (origin, id) VALUES (?, ?)`
	sqlTextRow     = `SELECT rowid FROM text_keys WHERE origin = +? AND id = +?`
	sqlTextUnkey   = `DELETE FROM text_keys WHERE origin = +? AND id = +?`
	// sqlTextFiles is the text extracted from the files a record names and that are stored for
	// it: fetched from its origin, or uploaded here (see files.go).
	sqlTextFiles = `SELECT group_concat(t.text, char(10)) FROM file_refs r JOIN file_text t ON t.sha256 = r.sha256
		WHERE r.origin = +? AND r.id = +? AND t.text != ''
		AND ` + sqlStoredForRef
	// The vocabulary: a batch's words go in at once, and the new ones (above the highest id
	// before) into its trigram index.
	sqlTextWordsTop = `SELECT coalesce(max(id), 0) FROM text_words`
	sqlTextWordsAdd = `INSERT OR IGNORE INTO text_words (word) SELECT value FROM json_each(?)`
	sqlTextVocabAdd = `INSERT INTO text_vocab (rowid, word) SELECT id, word FROM text_words WHERE id > +?`
	sqlTextOwnAdd   = `INSERT OR IGNORE INTO text_own_words (id) SELECT id FROM text_words WHERE word IN (SELECT value FROM json_each(?))`
)

// textShard is the table of the shard that holds row.
func textShard(row int64) string { return textShardName(row >> textShardBits) }

func textShardName(n int64) string { return "text_shard_" + strconv.FormatInt(n, 10) }

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

// IndexText takes up to max queued writes into the index, in one transaction, and returns how
// many it took. Each record is indexed as it is now, or taken out when it is gone, once however
// often it was queued among them.
func (d *DB) IndexText(max int) (int, error) {
	var taken int
	err := d.localTx(func(tx *writeTx) (bool, error) {
		type key struct{ origin, id string }
		// A record queued more than once in the batch is indexed once, as it is now.
		var (
			queued []key
			seen   = map[key]bool{}
			last   int64
		)
		rows, err := tx.Query(sqlTextPending, max)
		if err != nil {
			return false, err
		}
		for rows.Next() {
			var k key
			if err := rows.Scan(&last, &k.origin, &k.id); err != nil {
				rows.Close()
				return false, err
			}
			taken++
			if !seen[k] {
				seen[k] = true
				queued = append(queued, k)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return false, err
		}
		if taken == 0 {
			return false, nil
		}
		b := textBatchState{tx: tx, shards: map[int64]bool{}, words: map[string]struct{}{}, own: map[string]struct{}{}}
		for _, k := range queued {
			var body []byte
			if k.origin == "" {
				err = tx.QueryRow(sqlTextOwn, k.id).Scan(&body)
			} else {
				err = tx.QueryRow(sqlTextForeign, k.origin, k.id).Scan(&body)
			}
			switch {
			case errors.Is(err, sql.ErrNoRows):
				err = b.unindex(k.origin, k.id)
			case err == nil:
				var files sql.NullString
				if err = tx.QueryRow(sqlTextFiles, k.origin, k.id).Scan(&files); err == nil {
					err = b.index(k.origin, k.id, body, files.String)
				}
			}
			if err != nil {
				return false, fmt.Errorf("%s/%s: %w", k.origin, k.id, err)
			}
		}
		if _, err := tx.Exec(sqlTextDone, last); err != nil {
			return false, err
		}
		if err := b.addWords(); err != nil {
			return false, err
		}
		if b.dropped {
			if _, err := tx.Exec(`UPDATE text_sweep SET dirty = dirty + 1`); err != nil {
				return false, err
			}
		}
		return true, nil
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

// TextPending is how many writes wait to be taken into the index: a record written twice since
// the indexer last took it counts twice.
func (d *DB) TextPending(ctx context.Context) (int64, error) {
	var n int64
	err := d.read(func(ro *sql.DB) error {
		return ro.QueryRowContext(ctx, `SELECT count(*) FROM text_queue`).Scan(&n)
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
// a moment it takes the whole queue in, a batch at a time, then sweeps the vocabulary (SweepText),
// and stops at the next commit; while
// writes keep coming without such a moment, it takes one batch every textEvery, so that a bulk
// load is hardly slowed and the index still moves (and the sweep takes a step). Errors go to
// logErr, and it goes on.
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
			swept := false
			for changed := d.Changed(); ctx.Err() == nil && !isClosed(changed); {
				done, err := d.SweepText(ctx)
				if err != nil && ctx.Err() == nil {
					logErr(err)
				}
				if swept = done; err != nil || done {
					break
				}
			}
			if !swept {
				known = false // a commit cut the sweep short: go on at the next quiet moment
			}
		} else {
			if _, err := d.IndexText(textBatch); err != nil && ctx.Err() == nil {
				logErr(err)
			}
			if _, err := d.SweepText(ctx); err != nil && ctx.Err() == nil {
				logErr(err)
			}
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
		return ro.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM text_queue)`).Scan(&queued)
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

// textBatchState is one IndexText batch: the shards it made sure of, and the words it saw, for
// the vocabulary.
type textBatchState struct {
	tx     *writeTx
	shards map[int64]bool
	words  map[string]struct{}
	// own are the words of own records among words.
	own map[string]struct{}
	buf []string
	// dropped is set when the batch took a record's words out: some may be in no record now.
	dropped bool
}

// index puts a live record's body, and the text of the files it names, in the index, replacing
// what it held of the record.
func (b *textBatchState) index(origin, id string, body []byte, files string) error {
	if textIndexOff {
		return nil
	}
	res, err := b.tx.Exec(sqlTextKey, origin, id)
	if err != nil {
		return fmt.Errorf("text index: %w", err)
	}
	var row int64
	fresh := false
	if n, _ := res.RowsAffected(); n == 1 {
		row, err = res.LastInsertId() // a new key: nothing of it in the index yet
		fresh = true
	} else {
		err = b.tx.QueryRow(sqlTextRow, origin, id).Scan(&row)
	}
	if err != nil {
		return fmt.Errorf("text index: %w", err)
	}
	if err := b.shard(row); err != nil {
		return err
	}
	if !fresh {
		if _, err := b.tx.Exec(`DELETE FROM `+textShard(row)+` WHERE rowid = ?`, row); err != nil {
			return fmt.Errorf("text index: %w", err)
		}
		b.dropped = true
	}
	text := bodyText(body)
	if files != "" {
		text += "\n" + files
	}
	b.buf = record.AppendWords(b.buf[:0], record.Normalize(text))
	for _, w := range b.buf {
		b.words[w] = struct{}{}
		if origin == "" {
			b.own[w] = struct{}{}
		}
	}
	if _, err := b.tx.Exec(`INSERT INTO `+textShard(row)+` (rowid, text) VALUES (?, ?)`, row, strings.Join(b.buf, " ")); err != nil {
		return fmt.Errorf("text index: %w", err)
	}
	return nil
}

// shard makes sure the shard of row exists.
func (b *textBatchState) shard(row int64) error {
	n := row >> textShardBits
	if b.shards[n] {
		return nil
	}
	if _, err := b.tx.Exec(`CREATE VIRTUAL TABLE IF NOT EXISTS ` + textShardName(n) +
		` USING fts5(text, tokenize = 'ascii', content = '', contentless_delete = 1)`); err != nil {
		return fmt.Errorf("text index: shard %d: %w", n, err)
	}
	b.shards[n] = true
	return nil
}

// unindex takes a record out of the index.
func (b *textBatchState) unindex(origin, id string) error {
	if textIndexOff {
		return nil
	}
	var row int64
	err := b.tx.QueryRow(sqlTextRow, origin, id).Scan(&row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err == nil {
		err = b.shard(row)
	}
	if err == nil {
		_, err = b.tx.Exec(`DELETE FROM `+textShard(row)+` WHERE rowid = ?`, row)
	}
	if err == nil {
		_, err = b.tx.Exec(sqlTextUnkey, origin, id)
	}
	if err != nil {
		return fmt.Errorf("text index: %w", err)
	}
	b.dropped = true
	return nil
}

// textSweepChunk is how many words of the vocabulary one SweepText step checks.
const textSweepChunk = 256

// SweepText takes one step of the vocabulary's sweep: it checks the next words against every
// shard and takes out those no shard holds. A pass starts once records were taken out or
// replaced, and another after it if more were meanwhile. It reports whether no pass is under way
// or due any more. The words are checked on the read handle, and the few orphans again in the
// write transaction that takes them out, so that the writer is held briefly.
func (d *DB) SweepText(ctx context.Context) (done bool, err error) {
	var dirty, next int64
	if err := d.read(func(ro *sql.DB) error {
		return ro.QueryRowContext(ctx, `SELECT dirty, next FROM text_sweep`).Scan(&dirty, &next)
	}); err != nil {
		return false, fmt.Errorf("db: text sweep: %w", err)
	}
	if dirty == 0 && next == 0 {
		return true, nil
	}
	var words []textWord
	err = d.eachRow(ctx, `SELECT w.id, w.word, o.id IS NOT NULL FROM text_words AS w LEFT JOIN text_own_words AS o ON o.id = w.id
		WHERE w.id >= ? ORDER BY w.id LIMIT `+strconv.Itoa(textSweepChunk), []any{next}, func(rows *sql.Rows) error {
		var w textWord
		err := rows.Scan(&w.id, &w.text, &w.own)
		words = append(words, w)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("db: text sweep: %w", err)
	}
	shards, err := d.textShards(ctx)
	if err != nil {
		return false, fmt.Errorf("db: text sweep: %w", err)
	}
	// held reports whether a record holds w; with own, an own record.
	held := func(q interface {
		QueryRowContext(context.Context, string, ...any) *sql.Row
	}, w string, own bool) (bool, error) {
		for _, shard := range shards {
			query := `SELECT EXISTS (SELECT 1 FROM ` + shard + ` WHERE ` + shard + ` MATCH ?)`
			if own {
				query = `SELECT EXISTS (SELECT 1 FROM ` + shard + ` JOIN text_keys AS k ON k.rowid = ` + shard + `.rowid
					WHERE ` + shard + ` MATCH ? AND k.origin = '')`
			}
			var in bool
			if err := q.QueryRowContext(ctx, query, ftsString(w)).Scan(&in); err != nil || in {
				return in, err
			}
		}
		return false, nil
	}
	// orphans are held by no record; unowned by no own record, though marked as own's.
	var orphans, unowned []textWord
	err = d.read(func(ro *sql.DB) error {
		for _, w := range words {
			in, err := held(ro, w.text, w.own)
			if err != nil {
				return err
			}
			if in {
				continue
			}
			if w.own {
				if in, err = held(ro, w.text, false); err != nil {
					return err
				}
			}
			if in {
				unowned = append(unowned, w)
			} else {
				orphans = append(orphans, w)
			}
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("db: text sweep: %w", err)
	}
	err = d.localTx(func(tx *writeTx) (bool, error) {
		// Each is checked again, in the transaction: a record may have taken the word in since.
		// An orphan leaves the vocabulary, its trigrams and the marks; an unowned word its mark.
		for _, c := range []struct {
			words []textWord
			own   bool
			stmts []string
		}{
			{orphans, false, []string{`INSERT INTO text_vocab (text_vocab, rowid, word) VALUES ('delete', ?1, ?2)`, `DELETE FROM text_words WHERE id = ?1`, `DELETE FROM text_own_words WHERE id = ?1`}},
			{unowned, true, []string{`DELETE FROM text_own_words WHERE id = ?1`}},
		} {
			for _, w := range c.words {
				if in, err := held(tx.c, w.text, c.own); err != nil || in {
					if err != nil {
						return false, err
					}
					continue
				}
				for _, q := range c.stmts {
					if _, err := tx.Exec(q, w.id, w.text); err != nil {
						return false, err
					}
				}
			}
		}
		switch {
		case next == 0: // a pass begins: what was dropped so far is in it
			_, err = tx.Exec(`UPDATE text_sweep SET dirty = 0, next = ?`, nextWord(words, 1))
		case len(words) < textSweepChunk: // the pass ends
			_, err = tx.Exec(`UPDATE text_sweep SET next = 0`)
			done = true
		default:
			_, err = tx.Exec(`UPDATE text_sweep SET next = ?`, nextWord(words, next))
		}
		return err == nil, err
	})
	if err != nil {
		return false, fmt.Errorf("db: text sweep: %w", err)
	}
	return done && dirty == 0, nil
}

// textWord is a word of the vocabulary.
type textWord struct {
	id   int64
	text string
	own  bool // marked as a word of own records
}

// nextWord is the id after the last of words, or from when there are none.
func nextWord(words []textWord, from int64) int64 {
	if len(words) == 0 {
		return from
	}
	return words[len(words)-1].id + 1
}

// addWords puts the batch's words in the vocabulary.
func (b *textBatchState) addWords() error {
	if len(b.words) == 0 {
		return nil
	}
	words := make([]string, 0, len(b.words))
	for w := range b.words {
		words = append(words, w)
	}
	list, err := json.Marshal(words)
	if err != nil {
		return err
	}
	var top int64
	if err := b.tx.QueryRow(sqlTextWordsTop).Scan(&top); err != nil {
		return fmt.Errorf("text vocabulary: %w", err)
	}
	res, err := b.tx.Exec(sqlTextWordsAdd, string(list))
	if err != nil {
		return fmt.Errorf("text vocabulary: %w", err)
	}
	if n, _ := res.RowsAffected(); n > 0 {
		if _, err := b.tx.Exec(sqlTextVocabAdd, top); err != nil {
			return fmt.Errorf("text vocabulary: %w", err)
		}
	}
	if len(b.own) > 0 {
		own, err := json.Marshal(slices.Collect(maps.Keys(b.own)))
		if err != nil {
			return err
		}
		if _, err := b.tx.Exec(sqlTextOwnAdd, string(own)); err != nil {
			return fmt.Errorf("text vocabulary: %w", err)
		}
	}
	return nil
}

// bodyText is what the index holds of a body: its string values, not its keys, one per line, in
// the order they stand, decoded as encoding/json decodes them (see jsonString). A body that is
// not JSON has none: a record's body passed json.Valid before it was stored. gjson walks the
// body in place; encoding/json's Decoder, which did this first, cost the indexer more than
// FTS5's own work (BenchmarkBodyText), and SQLite's json_tree several times that.
func bodyText(body []byte) string {
	if !json.Valid(body) {
		return ""
	}
	var b strings.Builder
	var walk func(v gjson.Result) bool
	walk = func(v gjson.Result) bool {
		switch {
		case v.Type == gjson.String:
			if b.Len() > 0 {
				b.WriteByte('\n')
			}
			b.WriteString(jsonString(v.Raw))
		case v.IsObject(), v.IsArray():
			v.ForEach(func(_, x gjson.Result) bool { return walk(x) })
		}
		return true
	}
	walk(gjson.ParseBytes(body))
	return b.String()
}

// TextFilter selects the candidates of a full-text search. Zero fields do not filter.
type TextFilter struct {
	// Terms are the words and phrases each of which a record must hold (record.TextQuery.Terms);
	// with Any, one of which it must.
	Terms  []string
	Any    bool
	Kinds  []string
	Crisis string
	Region string
	Labels map[string]string
	// UpdatedSince keeps records updated at or after it.
	UpdatedSince time.Time
	// Mode is the mode of the search: the zero Mode finds actual records only.
	Mode Mode
	// IDs, when set, keeps only the records with these ids.
	IDs []string
	// Newest leaves bm25 out: the matches come newest first. The index ranks a record on all
	// its text; a caller that ranks on what its reader may see of each record
	// (record.TextQuery.Rank) takes them this way, so that no other text orders them.
	Newest bool
}

// Ranking reads windows of the newest matches of a shard. bm25 must score every match before it
// can order them: a window of the newest textWindow matches is ranked, on the index alone, and
// its records read best first, a page at a time, then the next older window, then the next older
// shard, so that a query costs about the same however much it matches, and recent records come
// first among equals.
const (
	textWindow = 256
	textPage   = 100
	// maxTextChunk is the most matches of a shard one statement reads (see eachText).
	maxTextChunk = 16384
)

// textWhere is f's filters on table t (records or foreign_records).
func textWhere(t string, f TextFilter) (string, []any) {
	where := []string{t + ".status = ?", t + ".exercise = ?"}
	args := []any{int32(f.Mode.Status), f.Mode.Exercise}
	if len(f.Kinds) > 0 {
		where = append(where, t+".kind IN ("+marks("?", len(f.Kinds))+")")
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
	if len(f.IDs) > 0 {
		where = append(where, t+".id IN ("+marks("?", len(f.IDs))+")")
		args = append(args, anySlice(f.IDs)...)
	}
	return strings.Join(where, " AND "), args
}

// eachText runs f's query over the shards, newest first, and the windows of its matches in
// each, newest window first. It reads the rows of a shard's matches newest first, in growing
// chunks, ranks each window's on the index (unless f.Newest), then reads their records (from: textOwnFrom or
// textForeignFrom, with pre its arguments; t: its records table) a page at a time, and calls fn
// for each that f's filters keep, best first, until fn returns false. A page is read and its
// statement done before fn sees any of it, so fn may take its time. The statements on the index
// take one of the node's textSlots, and the whole walk at most textBudget of them: past it,
// eachText stops with ErrTextBudget, after fn saw what it found.
func eachText[T any](ctx context.Context, d *DB, f TextFilter, from, t string, pre []any, scan func(scanner, ...any) (T, error), fn func(T) (bool, error)) error {
	match, leftOut, err := d.matchExpr(ctx, f.Terms, t == "records", f.Any)
	if err != nil || match == "" {
		return err
	}
	shards, err := d.textShards(ctx)
	if err != nil {
		return err
	}
	filters, fargs := textWhere(t, f)
	var spent time.Duration
	served := false // fn has seen the first window's records: the budget holds from then on
	// onIndex runs a statement on the index in one of the node's slots, and counts its time.
	onIndex := func(q string, args []any, each func(*sql.Rows) error) error {
		if served && spent > d.textBudget {
			return ErrTextBudget
		}
		select {
		case d.textSlots <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		defer func() { <-d.textSlots }()
		began := time.Now()
		defer func() { spent += time.Since(began) }()
		return d.eachRow(ctx, q, args, each)
	}
	stop := false // fn said it has enough
	// eachWindow ranks a window's rows on the index (unless f.Newest) and hands fn their records
	// a page at a time.
	eachWindow := func(shard string, window []int64) error {
		ranked := window
		if !f.Newest && len(window) > 1 {
			ranked = make([]int64, 0, len(window))
			q := `SELECT rowid FROM ` + shard + ` WHERE ` + shard + ` MATCH ? AND rowid >= ? AND rowid <= ? ORDER BY rank`
			err := onIndex(q, []any{match, window[len(window)-1], window[0]}, func(rows *sql.Rows) error {
				var row int64
				err := rows.Scan(&row)
				ranked = append(ranked, row)
				return err
			})
			if err != nil {
				return err
			}
		}
		for len(ranked) > 0 {
			page := ranked[:min(textPage, len(ranked))]
			ranked = ranked[len(page):]
			args := append(append(slices.Clone(pre), anySlice(page)...), fargs...)
			found := make(map[int64]T, len(page))
			err := d.eachRow(ctx, textPageQuery(from, filters, len(page)), args, func(rows *sql.Rows) error {
				var row int64
				v, err := scan(rows, &row)
				found[row] = v
				return err
			})
			if err != nil {
				return err
			}
			for _, row := range page {
				v, ok := found[row]
				if !ok {
					continue
				}
				more, err := fn(v)
				if err != nil || !more {
					stop = true
					return err
				}
			}
		}
		served = true
		return nil
	}
	for _, shard := range shards {
		// The shard's matches, newest first, in chunks: the first a window, each next four times
		// the last, so that a search that ends in its first window reads no more, and one that
		// walks many windows takes a few statements, not one a window (each statement evaluates
		// the whole query again).
		upper, chunk := int64(0), textWindow
		for {
			q, args := `SELECT rowid FROM `+shard+` WHERE `+shard+` MATCH ?`, []any{match}
			if upper > 0 {
				q, args = q+` AND rowid < ?`, append(args, upper)
			}
			var matched []int64
			err := onIndex(q+` ORDER BY rowid DESC LIMIT `+strconv.Itoa(chunk), args, func(rows *sql.Rows) error {
				var row int64
				err := rows.Scan(&row)
				matched = append(matched, row)
				return err
			})
			if err != nil {
				return err
			}
			last := len(matched) < chunk // the shard's oldest match is in this chunk
			if len(matched) > 0 {
				upper = matched[len(matched)-1]
			}
			chunk = min(4*chunk, maxTextChunk)
			for len(matched) > 0 {
				window := matched[:min(textWindow, len(matched))]
				matched = matched[len(window):]
				if err := eachWindow(shard, window); err != nil || stop {
					return err
				}
			}
			if last {
				break
			}
		}
	}
	if leftOut {
		return ErrTextWordsLeftOut
	}
	return nil
}

// ErrTextWordsLeftOut ends a search for any of its words that left out a word too broad for the
// index (see maxPartWords and maxQueryWords): fn saw every match of the others, and the records
// that hold only that word were not among them.
var ErrTextWordsLeftOut = errors.New("a word of the search is part of too many words of the index, and was left out: the records that hold only it are not among the results")

// TextCut says whether err is one of a text search that ended with what it found, while the
// records searched may hold more matches (ErrTextBudget, ErrTextWordsLeftOut).
func TextCut(err error) bool {
	return errors.Is(err, ErrTextBudget) || errors.Is(err, ErrTextWordsLeftOut)
}

// ErrTextBudget stops a text search whose statements on the index took more than the node's
// budget for one search (DefaultTextBudget, SetTextBudget): its caller has what it found
// until then, and says so.
var ErrTextBudget = errors.New("the search took more than this node's budget for one text search: search with longer or fewer words, or narrow it by kind, crisis or region")

// DefaultTextBudget is how long the statements on the index of one text search may take in all;
// DefaultTextSlots how many such statements a node runs at once, for every caller together.
const (
	DefaultTextBudget = 2 * time.Second
	DefaultTextSlots  = 2
)

// textPageQuery reads the records of n rows of the index that filters keep.
func textPageQuery(from, filters string, n int) string {
	return from + ` WHERE text_keys.rowid IN (` + marks("?", n) + `) AND ` + filters
}

// The FROM parts of EachTextMatch and EachForeignTextMatch, whose last column is the row of the
// index. A CROSS JOIN and +text_keys.origin keep the planner on the page's rows, not on the
// records of a mode or kind, nor on every key of an origin (TestTextPagePlan).
var (
	textOwnFrom = `SELECT ` + qualified("records", recordColumns) + `, text_keys.rowid FROM text_keys
		CROSS JOIN records ON records.id = text_keys.id AND records.tombstone = 0 AND +text_keys.origin = ''`
	textForeignFrom = `SELECT ` + qualified("foreign_records", foreignColumns) + `, text_keys.rowid FROM text_keys
		CROSS JOIN foreign_records ON foreign_records.origin = text_keys.origin AND foreign_records.id = text_keys.id AND +text_keys.origin = ?`
)

// textShards are the tables of the index's shards, newest first.
func (d *DB) textShards(ctx context.Context) ([]string, error) {
	var ns []int64
	err := d.eachRow(ctx, `SELECT name FROM sqlite_master WHERE type = 'table' AND name GLOB 'text_shard_[0-9]*'`, nil, func(rows *sql.Rows) error {
		var name string
		if err := rows.Scan(&name); err != nil {
			return err
		}
		// Not the shards' own tables (text_shard_N_data and the like).
		if n, err := strconv.ParseInt(strings.TrimPrefix(name, "text_shard_"), 10, 64); err == nil {
			ns = append(ns, n)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(ns)
	shards := make([]string, len(ns))
	for i, n := range ns {
		shards[len(ns)-1-i] = textShardName(n)
	}
	return shards, nil
}

// EachTextMatch calls fn for the live own records the index finds for f, best first within
// windows of the newest matches (see textWindow), until fn returns false. A page of records is
// read before fn sees any of it, so fn may take its time.
func (d *DB) EachTextMatch(ctx context.Context, f TextFilter, fn func(*pb.Record) (bool, error)) error {
	if err := eachText(ctx, d, f, textOwnFrom, "records", nil, func(rows scanner, extra ...any) (*pb.Record, error) { return scanRecord(rows, extra...) }, fn); err != nil {
		return fmt.Errorf("db: text search: %w", err)
	}
	return nil
}

// EachForeignTextMatch is EachTextMatch over the records cached from origin.
func (d *DB) EachForeignTextMatch(ctx context.Context, origin string, f TextFilter, fn func(Foreign) (bool, error)) error {
	if err := eachText(ctx, d, f, textForeignFrom, "foreign_records", []any{origin}, scanForeignExtra, fn); err != nil {
		return fmt.Errorf("db: text search of the cache: %w", err)
	}
	return nil
}

// Limits of a query's expansion through the vocabulary.
const (
	// maxPartWords is how many words of the vocabulary a part of a word may stand for. A part
	// that stands for more leaves the choice to the query's other words, or, with none, the
	// query is refused as too broad.
	maxPartWords = 4096
	// maxQueryWords is how many words of the vocabulary the parts of a query's words may stand
	// for together: a part past it, in the order typed, is left to the query's other words as a
	// part too broad is. The index's work, and memory, for a query grows with its words: 16
	// parts of 4,000 words each cost seconds and gigabytes a statement (review S, S1).
	maxQueryWords = 4096
	// maxTermPhrases is how many phrases a term of several words may become (the words its
	// first word may be the end of); beyond, its words are asked for each on its own.
	maxTermPhrases = 16
)

// matchExpr is the FTS5 query that finds the candidates for terms: every term, as the words of
// the index that it spans (record.TermWords). A word that a term may hold only in part stands
// for the words of the vocabulary that end with it, or, alone, that hold it; the last word for
// every word that starts with it (a prefix query). Each word is quoted as a string, so that
// nothing in it is read as syntax. It is "" when no record can hold a term: a part of a word
// that is in no word of the vocabulary. own says that the query is of own records: the words
// own records hold are its vocabulary. With any, a record need hold one term: the query is "" when
// none can be held, and a term no record can hold is left out.
func (d *DB) matchExpr(ctx context.Context, terms []string, own, any bool) (expr string, leftOut bool, err error) {
	// The vocabulary's words of every part of a word, and which parts the query may stand for:
	// the narrowest first, within maxQueryWords together, so that a broad part typed first does
	// not crowd out the narrow ones that decide (review U, U1).
	type part struct {
		w     string
		right bool
	}
	found := map[part][]string{}
	for _, term := range terms {
		words, openStart, openEnd := record.TermWords(term)
		for i, w := range words {
			k := part{w, i == len(words)-1 && openEnd}
			if _, ok := found[k]; ok || !inVocabulary(w, i == 0 && openStart) {
				continue
			}
			if found[k], err = d.vocabulary(ctx, w, k.right, own); err != nil {
				return "", false, err
			}
		}
	}
	parts := slices.Collect(maps.Keys(found))
	slices.SortFunc(parts, func(a, b part) int {
		return cmp.Or(cmp.Compare(len(found[a]), len(found[b])), cmp.Compare(a.w, b.w), cmp.Compare(boolInt(a.right), boolInt(b.right)))
	})
	allowed := map[part]bool{}
	budget := maxQueryWords
	for _, k := range parts {
		if n := len(found[k]); n <= maxPartWords && n <= budget {
			allowed[k], budget = true, budget-n
		}
	}
	var exprs []string
	held := false // with any: a term some record may hold
	for _, term := range terms {
		words, openStart, openEnd := record.TermWords(term)
		alts := make([][]string, len(words)) // nil: any word
		broad, unheld := true, false
	word:
		for i, w := range words {
			left, right := i == 0 && openStart, i == len(words)-1 && openEnd
			switch {
			case !left && !right:
				alts[i] = []string{ftsString(w)}
			case !left:
				alts[i] = []string{ftsString(w) + " *"}
			case !inVocabulary(w, left):
				// Too short for the vocabulary's trigrams: any word, the other words decide.
				continue
			default:
				k := part{w, right}
				if len(found[k]) == 0 && any {
					unheld = true
					break word
				}
				if len(found[k]) == 0 {
					return "", false, nil
				}
				if !allowed[k] {
					// Too broad, or past the query's words: the other words decide. With any, the
					// term is left out: the records that hold it alone are not found.
					leftOut = leftOut || any
					continue
				}
				for _, v := range found[k] {
					alts[i] = append(alts[i], ftsString(v))
				}
			}
			broad = false
		}
		if unheld {
			continue // with any: no record holds it
		}
		if broad {
			held = true // any word: a match the text decides
			continue
		}
		held = true
		exprs = append(exprs, termExpr(alts))
	}
	if any && !held {
		return "", false, nil
	}
	if any && len(exprs) > 0 {
		return strings.Join(exprs, " OR "), leftOut, nil
	}
	if len(exprs) == 0 {
		return "", false, &record.FieldError{Field: "filter.text", Code: codes.InvalidArgument,
			Reason: fmt.Sprintf("every word is part of more than %d words: search for a longer word", maxPartWords)}
	}
	return strings.Join(exprs, " AND "), false, nil
}

// inVocabulary says whether a word of a term stands for the vocabulary's words that end with it
// or hold it: one the term may hold only in part at its start (left), of three letters or more.
func inVocabulary(w string, left bool) bool {
	return left && utf8.RuneCountInString(w) >= 3
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// termExpr is one term's query: a phrase of its words, or several where its first word stands
// for several, or, where that makes too many phrases or a word may be any, each word on its own.
func termExpr(alts [][]string) string {
	phrases := 1
	for _, a := range alts {
		if phrases *= len(a); len(a) == 0 || phrases > maxTermPhrases {
			phrases = maxTermPhrases + 1
			break
		}
	}
	if phrases <= maxTermPhrases {
		out := []string{""}
		for _, a := range alts {
			var next []string
			for _, p := range out {
				for _, w := range a {
					if p == "" {
						next = append(next, w)
					} else {
						next = append(next, p+" + "+w)
					}
				}
			}
			out = next
		}
		return "(" + strings.Join(out, " OR ") + ")"
	}
	var groups []string
	for _, a := range alts {
		if len(a) > 0 {
			groups = append(groups, "("+strings.Join(a, " OR ")+")")
		}
	}
	return "(" + strings.Join(groups, " AND ") + ")"
}

// vocabulary is the words of the vocabulary that hold part, or, unless anywhere, end with it;
// at most maxPartWords+1 of them; with own, only words that own records hold.
func (d *DB) vocabulary(ctx context.Context, part string, anywhere, own bool) ([]string, error) {
	var found []string
	enough := errors.New("enough")
	q := `SELECT word FROM text_vocab WHERE text_vocab MATCH ?`
	if own {
		q = `SELECT v.word FROM text_vocab AS v JOIN text_own_words AS o ON o.id = v.rowid WHERE text_vocab MATCH ?`
	}
	err := d.eachRow(ctx, q, []any{ftsString(part)}, func(rows *sql.Rows) error {
		var w string
		if err := rows.Scan(&w); err != nil {
			return err
		}
		if anywhere || strings.HasSuffix(w, part) {
			found = append(found, w)
		}
		if len(found) > maxPartWords {
			return enough
		}
		return nil
	})
	if err != nil && err != enough {
		return nil, fmt.Errorf("vocabulary: %w", err)
	}
	return found, nil
}

// ftsString quotes s as an FTS5 string.
func ftsString(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// qualified prefixes every column of a comma-separated list with its table.
func qualified(table, columns string) string {
	cols := strings.Split(columns, ", ")
	for i, c := range cols {
		cols[i] = table + "." + strings.TrimSpace(c)
	}
	return strings.Join(cols, ", ")
}

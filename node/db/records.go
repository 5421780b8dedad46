package db

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mattn/go-sqlite3"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/node/record"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// StaleVersionError refuses a write whose expected version is not the current one.
type StaleVersionError struct {
	ID       string
	Expected int64
	Current  int64
}

func (e *StaleVersionError) Error() string {
	return fmt.Sprintf("db: record %q is at version %d, not %d", e.ID, e.Current, e.Expected)
}

// ModeChangeError refuses a write that would move a live record to another mode.
type ModeChangeError struct {
	ID       string
	From, To Mode
}

func (e *ModeChangeError) Error() string {
	return fmt.Sprintf("db: record %q is a record of the %s mode, not %s: a record keeps its mode; delete it and write it anew", e.ID, e.From, e.To)
}

// Write is one change for Apply. Record holds the new state; its Version is the version the writer
// expects to replace (0: any) and its UpdatedAt the commit time chosen by the leader. A write with
// Tombstone set deletes: only its ID, Version and UpdatedAt are read.
type Write = pb.Record

// Result is Apply's answer for one write.
type Result struct {
	Err     error // nil, ErrNotFound, *StaleVersionError, *ModeChangeError, ErrExerciseUnknown or ErrExerciseClosed
	Version int64
	Seq     int64
}

// Apply applies writes, in order, in one transaction, and records index as the applied Raft index.
// It applies them as an entry of this release does (WriteEntry.Bookkeeping set); ApplyWrites
// applies entries of any.
// Each write succeeds or fails on its own. An entry at or below the applied index was applied
// before (the log is being replayed over a durable database) and is skipped: Apply then returns
// nil results.
func (d *DB) Apply(index uint64, writes []*Write) ([]Result, error) {
	res, err := d.ApplyWrites([]WriteEntry{{Index: index, Writes: writes, Bookkeeping: true, Purges: true}})
	if err != nil {
		return nil, err
	}
	return res[0], nil
}

// WriteEntry is one Raft entry's record writes, for ApplyWrites.
type WriteEntry struct {
	Index  uint64
	Writes []*Write
	// Actors are who wrote each of Writes, or one who wrote them all (see
	// pb.WriteRecords.actors). With them, deletes and classification changes are audited; an
	// entry written before them has none.
	Actors []string
	// Bookkeeping marks an entry of this release (pb.WriteRecords.picture_bookkeeping): it notes
	// when a record left a crisis's picture, and keeps an exercise's records' history.
	Bookkeeping bool
	// Purges: a delete takes the record's earlier webhook deliveries out of the queues
	// (pb.WriteRecords.purges_deliveries).
	Purges bool
}

// ApplyWrites applies several Raft entries of record writes, in order, as Apply does each, but in
// one transaction: a group that takes many small writes at once commits once for all of them
// rather than once an entry. The results are per entry; an entry applied before gets nil results.
func (d *DB) ApplyWrites(entries []WriteEntry) ([][]Result, error) {
	results := make([][]Result, len(entries))
	steps := make([]txStep, len(entries))
	for k, e := range entries {
		steps[k] = txStep{index: e.Index, fn: func(tx *writeTx, seq *int64) error {
			a := d.newApplier(tx)
			a.bookkeeping, a.hooks.purge = e.Bookkeeping, e.Purges
			results[k] = make([]Result, len(e.Writes))
			for i, w := range e.Writes {
				switch len(e.Actors) {
				case 0:
					a.actor = ""
				case 1:
					a.actor = e.Actors[0]
				default:
					a.actor = e.Actors[min(i, len(e.Actors)-1)]
				}
				res, err := a.apply(w, *seq+1)
				if err != nil {
					return fmt.Errorf("record %q: %w", w.GetId(), err)
				}
				if res.Err == nil {
					*seq++
				}
				results[k][i] = res
			}
			return nil
		}}
	}
	if err := d.applySteps(steps); err != nil {
		return nil, err
	}
	return results, nil
}

// txStep is one Raft entry's part of a transaction.
type txStep struct {
	index uint64
	fn    func(tx *writeTx, seq *int64) error
}

// applyTx runs fn in one transaction for the Raft entry at index, and records the index and the
// change-feed seq fn leaves. It skips (fn is not called) an entry applied before.
func (d *DB) applyTx(index uint64, fn func(tx *writeTx, seq *int64) error) error {
	return d.applySteps([]txStep{{index, fn}})
}

// applySteps runs the steps of Raft entries, in order, in one transaction, and records the last
// index and the change-feed seq they leave. A step whose entry was applied before is skipped.
// One that fails rolls the whole transaction back.
func (d *DB) applySteps(steps []txStep) error {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		return ErrClosed
	}
	d.applyMu.Lock()
	defer d.applyMu.Unlock()
	applied := d.applied.Load()
	var todo []txStep
	for _, st := range steps {
		if st.index > applied { // Raft numbers its entries from 1
			todo = append(todo, st)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	index := todo[len(todo)-1].index
	seq := d.lastSeq.Load()
	tx, err := d.begin()
	if err != nil {
		return fmt.Errorf("db: apply %d: %w", index, err)
	}
	defer tx.rollback()
	for _, st := range todo {
		if err := st.fn(tx, &seq); err != nil {
			return fmt.Errorf("db: apply %d: %w", st.index, err)
		}
	}
	// Two statements of one row each: one UPDATE of both rows (CASE key … WHERE key IN …) took
	// some 60 µs in a transaction of record writes, against 3 µs for these two.
	if _, err := tx.Exec(sqlSetApplied, index); err != nil {
		return fmt.Errorf("db: apply %d: %w", index, err)
	}
	if _, err := tx.Exec(sqlSetLastSeq, seq); err != nil {
		return fmt.Errorf("db: apply %d: %w", index, err)
	}
	if err := tx.commit(); err != nil {
		return fmt.Errorf("db: apply %d: commit: %w", index, err)
	}
	d.applied.Store(index)
	d.lastSeq.Store(seq)
	d.announce(tx)
	d.notify()
	return nil
}

// writeTx is the transaction of one Raft entry, on the read-write handle's connection. It is not
// a *sql.Tx: database/sql starts a goroutine to watch every Tx, and one more for every Query in
// it, to cancel them with their context. The FSM never cancels, and in a batch of 1000 records
// those goroutines cost more than the statements. Every statement runs with no context that can
// be cancelled, through the connection's statement cache.
type writeTx struct {
	c    *sql.Conn
	done bool
	// text is set by a step that queued a record for the full-text index or stored a file whose
	// text the indexer extracts; hooks by one that changed the webhooks. The commit announces
	// them (textWork, hooksGen) before it wakes anyone, so that the indexer and the webhook
	// dispatcher need not look after every commit.
	text, hooks bool
}

// begin starts a write transaction; the caller must call rollback when done.
func (d *DB) begin() (*writeTx, error) {
	c, err := d.rw.Conn(context.Background())
	if err != nil {
		return nil, err
	}
	tx := &writeTx{c: c}
	if _, err := tx.Exec(`BEGIN IMMEDIATE`); err != nil {
		c.Close()
		return nil, err
	}
	return tx, nil
}

func (tx *writeTx) Exec(query string, args ...any) (sql.Result, error) {
	return tx.c.ExecContext(context.Background(), query, args...)
}

func (tx *writeTx) Query(query string, args ...any) (*sql.Rows, error) {
	return tx.c.QueryContext(context.Background(), query, args...)
}

func (tx *writeTx) QueryRow(query string, args ...any) *sql.Row {
	return tx.c.QueryRowContext(context.Background(), query, args...)
}

func (tx *writeTx) commit() error {
	if _, err := tx.Exec(`COMMIT`); err != nil {
		return err
	}
	tx.done = true
	return nil
}

// rollback ends the transaction if commit did not, and hands the connection back. A connection
// that cannot roll back is thrown away rather than left inside a transaction, where every later
// BEGIN would fail.
func (tx *writeTx) rollback() {
	if !tx.done {
		if _, err := tx.Exec(`ROLLBACK`); err != nil && tx.inTx() {
			tx.c.Raw(func(any) error { return driver.ErrBadConn })
		}
	}
	tx.c.Close()
}

// inTx reports whether the connection is still inside a transaction: SQLite ends some on an
// error of its own, and a ROLLBACK then fails harmlessly.
func (tx *writeTx) inTx() bool {
	inTx := true
	tx.c.Raw(func(dc any) error {
		if c, ok := dc.(*sqlite3.SQLiteConn); ok {
			inTx = !c.AutoCommit()
		}
		return nil
	})
	return inTx
}

// The statements of a record write, run through the connection's statement cache; values the
// planner reads are bound as +? (see noReprepare).
const (
	sqlCurrent   = `SELECT version, tombstone, labels != '{}', status, exercise, classification, kind, crisis, region FROM records WHERE id = +?`
	sqlWhole     = `SELECT ` + recordColumns + ` FROM records WHERE id = +?`
	sqlUpsert    = `INSERT OR REPLACE INTO records (` + recordColumns + `, seq) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`
	sqlDelLabels = `DELETE FROM record_labels WHERE id = +?`
	sqlAddLabel  = `INSERT INTO record_labels (key, value, id) VALUES (?,?,?)`
	sqlChange    = `INSERT INTO changes (seq, id, version, status, exercise) VALUES (?,?,?,?,?)`

	sqlSetApplied = `UPDATE meta SET value = ? WHERE key = 'applied_index'`
	sqlSetLastSeq = `UPDATE meta SET value = ? WHERE key = 'last_seq'`
)

type applier struct {
	tx      *writeTx
	hooks   hookQueue
	ownRefs *atomic.Bool
	// actor writes the record being applied; "" for an entry without actors, which audits
	// nothing (see WriteEntry.Actors).
	actor string
	audit *auditor // made at the first entry of a transaction's writes that audits
	// bookkeeping: the entry is marked (WriteEntry.Bookkeeping).
	bookkeeping bool
}

// newApplier is the applier of record writes in tx.
func (d *DB) newApplier(tx *writeTx) applier {
	return applier{tx: tx, hooks: hookQueue{tx: tx}, ownRefs: &d.ownRefs}
}

func (a *applier) apply(w *Write, seq int64) (Result, error) {
	// Most writes need only the current version; a delete reads the whole record below.
	var (
		curVersion             int64
		exists, dead, hasLabel bool
		cur                    Mode
		curClass               int32
		curKind, curCrisis     string
		curRegion              string
	)
	switch err := a.tx.QueryRow(sqlCurrent, w.GetId()).Scan(&curVersion, &dead, &hasLabel, &cur.Status, &cur.Exercise, &curClass, &curKind, &curCrisis, &curRegion); {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return Result{}, err
	default:
		exists = true
	}
	// A delete of a record that is gone is not found, whatever version it names: a client that
	// retries a delete that went through must not be told to retry with another version.
	if w.Tombstone && (!exists || dead) {
		return Result{Err: ErrNotFound}, nil
	}
	// A live record keeps its mode: an actual record that became an exercise's would vanish from
	// the actual feed without a retraction, and the other way round.
	if exists && !dead && !w.Tombstone && cur != ModeOf(w) {
		return Result{Err: &ModeChangeError{ID: w.Id, From: cur, To: ModeOf(w)}}, nil
	}
	// An exercise record is written only while its exercise is open: a write that raced the
	// close would otherwise outlive it. Before the version: a record of a closed exercise is
	// at the version of the close's deletion, and a retry with it is refused all the same
	// (review AE, AE7).
	if !w.Tombstone && w.Status == pb.Status_EXERCISE {
		switch state, err := exerciseState(a.tx, w.Exercise); {
		case err != nil:
			return Result{}, err
		case state == "":
			return Result{Err: fmt.Errorf("%w: %s: start it first", ErrExerciseUnknown, w.Exercise)}, nil
		case state != ExerciseOpen:
			return Result{Err: fmt.Errorf("%w: %s", ErrExerciseClosed, w.Exercise)}, nil
		}
	}
	if w.Version != 0 && w.Version != curVersion {
		return Result{Err: &StaleVersionError{ID: w.Id, Expected: w.Version, Current: curVersion}}, nil
	}

	next := w
	if w.Tombstone {
		cur, err := scanRecord(a.tx.QueryRow(sqlWhole, w.GetId()))
		if err != nil {
			return Result{}, err
		}
		next = cur
		next.Tombstone = true
		next.Body = []byte("{}")
		next.UpdatedAt = w.UpdatedAt
	}
	version := curVersion + 1
	if a.bookkeeping && exists && !dead && (next.Tombstone || next.Crisis != curCrisis) {
		// It leaves the crisis's picture: an assessment of it counts this node's records changed.
		if err := noteRemoval(a.tx, cur, curCrisis, "", curKind, tsNanos(next.UpdatedAt)); err != nil {
			return Result{}, err
		}
	}

	labels, err := json.Marshal(nonNil(next.Labels))
	if err != nil {
		return Result{}, err
	}
	if _, err := a.tx.Exec(sqlUpsert, next.Id, next.Origin, next.Kind, next.Crisis, next.Region, int32(next.Classification),
		string(labels), next.Body, version, tsNanos(next.UpdatedAt), tsNanos(next.ValidUntil), next.Tombstone, int32(next.Status), next.Exercise, seq); err != nil {
		return Result{}, err
	}
	if hasLabel {
		if _, err := a.tx.Exec(sqlDelLabels, next.Id); err != nil {
			return Result{}, err
		}
	}
	for k, v := range next.Labels {
		if _, err := a.tx.Exec(sqlAddLabel, k, v, next.Id); err != nil {
			return Result{}, err
		}
	}
	if _, err := a.tx.Exec(sqlChange, seq, next.Id, version, int32(next.Status), next.Exercise); err != nil {
		return Result{}, err
	}
	if err := queueText(a.tx, "", next.Id); err != nil {
		return Result{}, err
	}
	// Most writes name no file on a node where no own record ever named one: no refs to keep.
	if record.MayNameFiles(next.Body) || a.ownRefs.Load() {
		// Only a body that does name a file turns this on: MayNameFiles also passes any body
		// with an escape in it.
		named, err := setRefs(a.tx, "", next.Id, next.Body)
		if err != nil {
			return Result{}, err
		}
		if named > 0 {
			a.ownRefs.Store(true)
		}
	}
	if err := addHistory(a.tx, "", next, version, next.Tombstone, a.bookkeeping, labels); err != nil {
		return Result{}, err
	}
	if err := a.auditWrite(next, version, exists && !dead, pb.Classification(curClass)); err != nil {
		return Result{}, err
	}
	event := EventChanged
	if next.Tombstone {
		event = EventDeleted
	}
	var was *pb.Record // the version a webhook may hold
	if exists && !dead {
		was = &pb.Record{Kind: curKind, Crisis: curCrisis, Region: curRegion, Classification: pb.Classification(curClass), Status: cur.Status, Exercise: cur.Exercise}
	}
	if err := a.hooks.add(event, "", next, version, tsNanos(next.UpdatedAt), was); err != nil {
		return Result{}, err
	}
	return Result{Version: version, Seq: seq}, nil
}

// auditWrite keeps, for an entry with actors, who deleted a record or changed its
// classification: the two writes that change who may receive it. held says the record was live
// before, with classification was.
func (a *applier) auditWrite(r *pb.Record, version int64, held bool, was pb.Classification) error {
	if a.actor == "" || !held || (!r.Tombstone && r.Classification == was) {
		return nil
	}
	if a.audit == nil {
		au, err := newAuditor(a.tx)
		if err != nil {
			return err
		}
		a.audit = au
	}
	detail := map[string]any{"version": version, "kind": r.Kind, "crisis": r.Crisis, "classification": record.ClassificationName(r.Classification)}
	action := AuditRecordDelete
	if !r.Tombstone {
		action = AuditRecordClassify
		detail["from"] = record.ClassificationName(was)
	}
	if m := ModeOf(r); m != Actual {
		detail["mode"] = m.String()
	}
	return a.audit.add(r.UpdatedAt.AsTime(), a.actor, action, r.Id, detail)
}

const recordColumns = `id, origin, kind, crisis, region, classification, labels, body, version, updated_at, valid_until, tombstone, status, exercise`

// Mode is the mode of a read: actual records (the zero Mode), the records of one exercise, or
// the node's own test or draft records. A read in one mode never returns a record of another.
type Mode struct {
	Status   pb.Status
	Exercise string
}

// Actual is the mode of the actual records, the default of every read.
var Actual = Mode{}

// ModeOf is the mode a record belongs to.
func ModeOf(r *pb.Record) Mode { return Mode{Status: r.GetStatus(), Exercise: r.GetExercise()} }

// ModeFrom is the mode a request names; nil is Actual.
func ModeFrom(m *pb.Mode) Mode { return Mode{Status: m.GetStatus(), Exercise: m.GetExercise()} }

// Proto is the mode as a request carries it; nil for Actual.
func (m Mode) Proto() *pb.Mode {
	if m == Actual {
		return nil
	}
	return &pb.Mode{Status: m.Status, Exercise: m.Exercise}
}

// Holds reports whether r is of mode m.
func (m Mode) Holds(r *pb.Record) bool {
	return r.GetStatus() == m.Status && r.GetExercise() == m.Exercise
}

// String is "actual", "exercise NAME", "test" or "draft".
func (m Mode) String() string {
	switch m.Status {
	case pb.Status_ACTUAL:
		return "actual"
	case pb.Status_EXERCISE:
		return "exercise " + m.Exercise
	}
	return strings.ToLower(m.Status.String())
}

type scanner interface{ Scan(dest ...any) error }

func scanRecord(row scanner, extra ...any) (*pb.Record, error) {
	var (
		r                     pb.Record
		class, status         int32
		labels                string
		updatedAt, validUntil int64
	)
	dest := append([]any{&r.Id, &r.Origin, &r.Kind, &r.Crisis, &r.Region, &class, &labels, &r.Body, &r.Version, &updatedAt, &validUntil, &r.Tombstone, &status, &r.Exercise}, extra...)
	if err := row.Scan(dest...); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, ErrNotFound
		}
		return nil, err
	}
	r.Classification = pb.Classification(class)
	r.Status = pb.Status(status)
	if labels != "{}" {
		if err := json.Unmarshal([]byte(labels), &r.Labels); err != nil {
			return nil, fmt.Errorf("labels of %q: %w", r.Id, err)
		}
	}
	r.UpdatedAt = nanosTs(updatedAt)
	r.ValidUntil = nanosTs(validUntil)
	return &r, nil
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func tsNanos(ts *timestamppb.Timestamp) int64 {
	if ts == nil {
		return 0
	}
	return ts.AsTime().UnixNano()
}

func nanosTs(n int64) *timestamppb.Timestamp {
	if n == 0 {
		return nil
	}
	return timestamppb.New(time.Unix(0, n))
}

// Get returns the live record with the id, or ErrNotFound.
func (d *DB) Get(ctx context.Context, id string) (*pb.Record, error) {
	var rec *pb.Record
	err := d.read(func(ro *sql.DB) error {
		var err error
		// A lookup by primary key takes microseconds. With a context that can be cancelled,
		// go-sqlite3 would start a goroutine per call to watch it, which costs more than the read.
		rec, err = scanRecord(d.get.QueryRowContext(context.WithoutCancel(ctx), id))
		return err
	})
	return rec, err
}

// DefaultPageSize is the page size of a List whose Filter.PageSize is zero or negative.
const DefaultPageSize = 100

// Filter selects records for List. Zero fields do not filter; a zero PageSize means
// DefaultPageSize.
type Filter struct {
	Kind, Crisis, Region string
	Labels               map[string]string
	MaxClassification    pb.Classification
	UpdatedSince         time.Time
	PageSize             int
	PageToken            string
	// Mode is the mode of the listing: the zero Mode lists actual records only.
	Mode Mode
	// IDs, when set, keeps only the records with these ids.
	IDs []string
	// Deleted lists deleted records too: their tombstones, which keep a record's id, mode and
	// labels (see ListRequest.include_deleted). With UpdatedSince and a kind, crisis, region,
	// classification or labels, it lists the records that left them since as tombstones too (see
	// departures).
	Deleted bool
	// HasLabels keeps the records that have each of these labels, whatever its value.
	HasLabels []string
	// MaxBytes, when set, ends a page before the record that would take its bodies past it (a
	// page holds one record at least): a page of large records would not fit in one message.
	MaxBytes int
}

// errPageFull ends List's rows once a page holds Filter.MaxBytes.
var errPageFull = errors.New("db: page full")

// ErrBadPageToken means a page token was not made by List.
var ErrBadPageToken = errors.New("db: page token is not one this node issued")

// ErrOtherListing means a page token was made by a List with other filters: going on from its
// place with these filters would skip or repeat records without a word.
var ErrOtherListing = errors.New("db: page token belongs to a listing with other filters")

// List returns a page of live records and the token of the next page ("" at the end). Pages come
// in id order; with UpdatedSince they come in order of update (updated_at, then id), which an
// index serves however far back the cut lies, and which lets a client that syncs by time page
// through what changed oldest first.
//
// A listing of deletes too since a time, by kind, crisis, region, classification or labels, lists
// a record that has left them since as a departure: its tombstone in the shape it left (see Filter.departures and
// Changes).
func (d *DB) List(ctx context.Context, f Filter) ([]*pb.Record, string, error) {
	q, args, size, byUpdate, err := listQuery(f)
	if err != nil {
		return nil, "", err
	}
	departures := f.departures()
	var out []*pb.Record
	bytes := 0
	err = d.eachRow(ctx, q, args, func(rows *sql.Rows) error {
		var r *pb.Record
		var err error
		if !departures {
			r, err = scanRecord(rows)
		} else {
			var was shape
			if r, err = scanRecord(rows, was.dest()...); err == nil {
				was.depart(r)
			}
		}
		if err != nil {
			return err
		}
		// A body and what goes with it, roughly: the body is most of a large record.
		if bytes += len(r.Body) + 512; f.MaxBytes > 0 && bytes > f.MaxBytes && len(out) > 0 && len(out) < size {
			return errPageFull
		}
		out = append(out, r)
		return nil
	})
	full := errors.Is(err, errPageFull)
	if err != nil && !full {
		return nil, "", fmt.Errorf("db: list: %w", err)
	}
	next := ""
	switch {
	case len(out) > size:
		out = out[:size]
		next = pageToken(out[size-1], byUpdate, f.listing())
	case full:
		next = pageToken(out[len(out)-1], byUpdate, f.listing())
	}
	return out, next, nil
}

// listQuery is List's statement and its arguments for f, with the page size and whether the
// listing goes by update time.
func listQuery(f Filter) (q string, args []any, size int, byUpdate bool, err error) {
	p, err := listParts(f)
	if err != nil {
		return "", nil, 0, false, err
	}
	if f.departures() {
		q, args = p.withDepartures()
	} else {
		q, args = p.plain()
	}
	return q, args, p.size, p.byUpdate, nil
}

// listing is the parts of List's statement for a filter.
type listing struct {
	from, idCol, order string
	size               int
	byUpdate           bool
	// The conditions, each with its arguments, in the order of the statement: before the
	// mode, the mode, the page token's place, the kind, crisis and region (now), and the rest.
	pre, mode, token, now, rest []string
	preArgs, modeArgs           []any
	tokenArgs, nowArgs          []any
	restArgs                    []any
	// was is now of the history's rows (alias h), with wasArgs.
	was     string
	wasArgs []any
	// since is the cut of a listing by update, in Unix nanoseconds.
	since int64
}

func listParts(f Filter) (*listing, error) {
	p := &listing{byUpdate: !f.UpdatedSince.IsZero()}
	keys := make([]string, 0, len(f.Labels)+len(f.HasLabels))
	for k := range f.Labels {
		keys = append(keys, k)
	}
	anyValue := map[string]bool{} // a key of HasLabels
	for _, k := range f.HasLabels {
		if _, ok := f.Labels[k]; !ok && !anyValue[k] {
			anyValue[k] = true
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	// A listing in id order with labels and no kind, crisis or region walks the first label's
	// index, which holds its records in id order: every row it reads has that label. Otherwise
	// the planner walks an index of records.
	byLabel := !p.byUpdate && len(keys) > 0 && f.Kind == "" && f.Crisis == "" && f.Region == ""
	p.from, p.idCol = "records", "records.id"
	if byLabel {
		p.from, p.idCol = "record_labels l0 JOIN records ON records.id = l0.id", "l0.id"
		if anyValue[keys[0]] {
			p.pre, p.preArgs = append(p.pre, "l0.key = +?"), append(p.preArgs, keys[0])
		} else {
			p.pre, p.preArgs = append(p.pre, "l0.key = +?", "l0.value = +?"), append(p.preArgs, keys[0], f.Labels[keys[0]])
		}
		keys = keys[1:]
	}
	if !f.Deleted {
		p.pre = append(p.pre, "records.tombstone = 0")
	}
	p.mode, p.modeArgs = []string{"records.status = +?", "records.exercise = +?"}, []any{int32(f.Mode.Status), f.Mode.Exercise}
	if byLabel || p.byUpdate && f.Kind == "" && f.Crisis == "" && f.Region == "" {
		// Nearly every record is of the mode: with no kind, crisis or region to lead a
		// mode-led index, records_mode would drive the walk over all of them, a million rows
		// for a label a thousand records have. The label's or the update time's index drives;
		// the mode is checked on each row it reads (the unary + keeps the planner off the
		// mode's indexes).
		p.mode = []string{"+records.status = +?", "+records.exercise = +?"}
	}
	if f.PageToken != "" {
		at, after, err := parsePageToken(f.PageToken, p.byUpdate, f.listing())
		if err != nil {
			return nil, err
		}
		if p.byUpdate {
			p.token, p.tokenArgs = []string{"(records.updated_at, records.id) > (+?, +?)"}, []any{at, after}
		} else {
			p.token, p.tokenArgs = []string{p.idCol + " > +?"}, []any{after}
		}
	}
	// What a record is of (its kind, crisis, region, classification and labels) is the shape of
	// a sync poll (now, and was of the history's versions): a record that left it is a
	// departure. In any other listing the classification and labels are of the rest.
	var shape filterShape
	shape.add(shapeOf("records", f.Kind, f.Crisis, f.Region))
	shape.was(shapeOf("h", f.Kind, f.Crisis, f.Region))
	departs := f.departures()
	if len(f.IDs) > 0 {
		// The primary key serves a lookup of each id.
		p.rest, p.restArgs = append(p.rest, "records.id IN ("+marks("+?", len(f.IDs))+")"), append(p.restArgs, anySlice(f.IDs)...)
	}
	if f.MaxClassification != pb.Classification_CLASSIFICATION_UNSPECIFIED {
		if departs {
			shape.add("records.classification <= +?", []any{int32(f.MaxClassification)})
			shape.was("(h.classification IS NULL OR h.classification <= +?)", []any{int32(f.MaxClassification)})
		} else {
			p.rest, p.restArgs = append(p.rest, "records.classification <= +?"), append(p.restArgs, int32(f.MaxClassification))
		}
	}
	if p.byUpdate {
		p.since = f.UpdatedSince.UnixNano()
		p.rest, p.restArgs = append(p.rest, "records.updated_at >= +?"), append(p.restArgs, p.since)
	}
	for _, k := range keys {
		// A correlated lookup per candidate row, on the (id, key, value) index: "id IN (SELECT
		// ...)" would first gather every record with the label, a fifth of the table for a
		// common one. A version in the history has its labels as a JSON object.
		cond, was, args := "EXISTS (SELECT 1 FROM record_labels l WHERE l.id = records.id AND l.key = +? AND l.value = +?)",
			"(h.labels IS NULL OR EXISTS (SELECT 1 FROM json_each(h.labels) j WHERE j.key = +? AND j.value = +?))", []any{k, f.Labels[k]}
		if anyValue[k] {
			cond, was, args = "EXISTS (SELECT 1 FROM record_labels l WHERE l.id = records.id AND l.key = +?)",
				"(h.labels IS NULL OR EXISTS (SELECT 1 FROM json_each(h.labels) j WHERE j.key = +?))", []any{k}
		}
		if departs {
			shape.add(cond, args)
			shape.was(was, args)
			continue
		}
		p.rest, p.restArgs = append(p.rest, cond), append(p.restArgs, args...)
	}
	if len(shape.now) > 0 {
		p.now, p.nowArgs = []string{strings.Join(shape.now, " AND ")}, shape.nowArgs
		p.was, p.wasArgs = strings.Join(shape.wasConds, " AND "), shape.wasArgs
	}
	p.size = f.PageSize
	if p.size <= 0 {
		// A zero page size used to index out[-1] and panic once a record matched.
		p.size = DefaultPageSize
	}
	p.order = p.idCol
	if p.byUpdate {
		p.order = "records.updated_at, records.id"
	}
	return p, nil
}

// where is the conditions of the records of the shape now, with their arguments.
func (p *listing) where() (string, []any) {
	where := slices.Concat(p.pre, p.mode, p.token, p.now, p.rest)
	return strings.Join(where, " AND "), slices.Concat(p.preArgs, p.modeArgs, p.tokenArgs, p.nowArgs, p.restArgs)
}

// plain is the statement of a listing of the records of the shape now.
func (p *listing) plain() (string, []any) {
	where, args := p.where()
	// The page's ids first, then its rows: the indexes carry every filtered column, so the
	// inner query never reads a row it does not return. Values are bound as +? and the page size
	// is written into the text (see noReprepare).
	return `SELECT ` + recordColumns + ` FROM records WHERE id IN (SELECT ` + p.idCol + ` FROM ` + p.from +
		` WHERE ` + where + ` ORDER BY ` + p.order + ` LIMIT ` + strconv.Itoa(p.size+1) + `) ORDER BY ` + strings.ReplaceAll(p.order, "l0.", ""), args
}

// withDepartures is the statement of a sync poll (see Filter.departures), which also lists the
// records that left the shape since the cut: not of it now, and of it at the version they had at
// the cut or at a later one, in the mode. What the poller may hold of a record is the version
// it had at the cut, or one a page of this sync listed: one that left before the cut was listed
// as it left by the poll before, and is not listed again at each later update.
//
// The page of those of the shape now is read as plain reads it (a); those that left are read on
// the update time's index from the page's place up to a's last update time when a is a whole
// page, so that a sync passes every record updated since the cut once, not once a page; and of
// each that is not of the shape, the versions since the cut and the one before, on the history's
// primary key from the newest down. The two are merged in the listing's order, and each record
// that left comes with the shape it left (see departedJoin).
func (p *listing) withDepartures() (string, []any) {
	where, args := p.where()
	n := strconv.Itoa(p.size + 1)
	left := slices.Concat([]string{"+records.status = +?", "+records.exercise = +?"}, p.token, p.rest, []string{
		"records.updated_at <= (SELECT CASE WHEN count(*) < " + n + " THEN 9223372036854775807 ELSE max(at) END FROM a)",
		"NOT (" + p.now[0] + ")",
		"EXISTS (SELECT 1 FROM history h WHERE h.origin = '' AND h.id = records.id AND h.version < records.version AND h.version >= COALESCE((SELECT b.version FROM history b " +
			"WHERE b.origin = '' AND b.id = records.id AND b.version < records.version AND b.at < +? ORDER BY b.version DESC LIMIT 1), 0) " +
			"AND h.status = records.status AND h.exercise = records.exercise AND " + p.was + ")",
	})
	leftArgs := slices.Concat(p.modeArgs, p.tokenArgs, p.restArgs, p.nowArgs, []any{p.since}, p.wasArgs)
	join, joinArgs := departedJoin("records", p.now[0], p.was), slices.Concat(p.nowArgs, p.wasArgs)
	q := `WITH a (id, at) AS MATERIALIZED (SELECT records.id, records.updated_at FROM records WHERE ` + where + ` ORDER BY records.updated_at, records.id LIMIT ` + n + `)
		SELECT ` + columnsOf("records") + `, ` + shapeColumns + ` FROM records` + join + `
		WHERE records.id IN (SELECT id FROM (SELECT id, at FROM a UNION ALL SELECT records.id, records.updated_at FROM records WHERE ` + strings.Join(left, " AND ") + `
			ORDER BY 2, 1 LIMIT ` + n + `)) ORDER BY records.updated_at, records.id`
	return q, slices.Concat(args, joinArgs, leftArgs)
}

// departures says whether a listing takes the records that left its kind, crisis, region,
// classification or labels: one of deletes too since a time, as a sync poll is (see
// ListRequest.include_deleted), in a mode the history keeps (see addHistory). A record that left
// is listed as its tombstone in the shape it left, for a poller that deletes on a tombstone to
// drop its copy.
func (f Filter) departures() bool {
	return f.Deleted && !f.UpdatedSince.IsZero() &&
		(f.Kind != "" || f.Crisis != "" || f.Region != "" || f.MaxClassification != pb.Classification_CLASSIFICATION_UNSPECIFIED ||
			len(f.Labels) > 0 || len(f.HasLabels) > 0) &&
		(f.Mode.Status == pb.Status_ACTUAL || f.Mode.Status == pb.Status_EXERCISE)
}

// filterShape gathers the conditions of a sync poll's shape: now of the records (alias records),
// was of the history's versions (alias h), each with its arguments.
type filterShape struct {
	now, wasConds    []string
	nowArgs, wasArgs []any
}

func (s *filterShape) add(cond string, args []any) {
	if cond != "" {
		s.now, s.nowArgs = append(s.now, cond), append(s.nowArgs, args...)
	}
}

func (s *filterShape) was(cond string, args []any) {
	if cond != "" {
		s.wasConds, s.wasArgs = append(s.wasConds, cond), append(s.wasArgs, args...)
	}
}

// shapeOf is the condition that the row alias (of records or history) has the kind, crisis and
// region given, those that are not empty ("" for none), with its arguments.
func shapeOf(alias, kind, crisis, region string) (string, []any) {
	var (
		conds []string
		args  []any
	)
	for _, c := range []struct{ col, v string }{{"kind", kind}, {"crisis", crisis}, {"region", region}} {
		if c.v != "" {
			conds, args = append(conds, alias+"."+c.col+" = +?"), append(args, c.v)
		}
	}
	return strings.Join(conds, " AND "), args
}

// departedJoin joins history d to the record alias of records when it is not of a shape (now,
// the condition on alias) and an earlier version of it in its mode was (was, the same condition
// on history h): d is the last such version, whose kind, crisis, region, classification and
// labels a departure takes;
// NULL beside any other record. An own record's versions are one range of the history's primary
// key, read newest first.
func departedJoin(alias, now, was string) string {
	return ` LEFT JOIN history d ON NOT (` + now + `) AND d.origin = '' AND d.id = ` + alias + `.id AND d.version = (SELECT h.version FROM history h
		WHERE h.origin = '' AND h.id = ` + alias + `.id AND h.version < ` + alias + `.version AND h.status = ` + alias + `.status AND h.exercise = ` + alias + `.exercise AND ` + was + `
		ORDER BY h.version DESC LIMIT 1)`
}

// columnsOf is recordColumns of the table alias.
func columnsOf(alias string) string {
	return alias + "." + strings.ReplaceAll(recordColumns, ", ", ", "+alias+".")
}

// shape is the kind, crisis, region, classification and labels of the version of a record that
// a filter last took, read beside a record that has left the filter since (see departedJoin);
// NULL beside any other. A version kept before the history held classification and labels has
// none of them.
type shape struct {
	kind, crisis, region sql.NullString
	classification       sql.NullInt32
	labels               sql.NullString
}

func (s *shape) dest() []any {
	return []any{&s.kind, &s.crisis, &s.region, &s.classification, &s.labels}
}

// shapeColumns are the columns of the history row d that shape.dest reads.
const shapeColumns = `d.kind, d.crisis, d.region, d.classification, d.labels`

// depart makes r, when it left the filter, a departure: its tombstone (as a delete leaves it, with
// an empty body) in the shape it left, at its current version and time, so that a reader that
// drops a record on its tombstone drops its copy of one that moved out of what it reads.
func (s shape) depart(r *pb.Record) {
	if r == nil || !s.kind.Valid {
		return
	}
	r.Kind, r.Crisis, r.Region = s.kind.String, s.crisis.String, s.region.String
	if s.classification.Valid {
		r.Classification = pb.Classification(s.classification.Int32)
	}
	if s.labels.Valid {
		var labels map[string]string
		if json.Unmarshal([]byte(s.labels.String), &labels) == nil {
			r.Labels = labels
			if len(labels) == 0 {
				r.Labels = nil
			}
		}
	}
	r.Tombstone, r.Body = true, []byte("{}")
}

// changesQuery is Changes' statement and its arguments. With a kind or crisis, a change of a
// record that is not of them now but was at an earlier version comes as a departure (see
// departedJoin): its row carries the shape it left, and the filter's other changes none.
func changesQuery(after, upTo int64, limit int, m Mode, kind, crisis string) (string, []any) {
	q := `SELECT r.id, r.origin, r.kind, r.crisis, r.region, r.classification, r.labels, r.body, r.version,
	             r.updated_at, r.valid_until, r.tombstone, r.status, r.exercise, c.seq`
	from := ` FROM changes c JOIN records r ON r.id = c.id AND r.version = c.version`
	where := ` WHERE c.seq > +? AND c.seq <= +? AND c.status = +? AND c.exercise = +?`
	args := []any{after, upTo, int32(m.Status), m.Exercise}
	if kind != "" || crisis != "" {
		// The unfiltered feed, every subscription's, reads no history.
		now, nowArgs := shapeOf("r", kind, crisis, "")
		was, wasArgs := shapeOf("h", kind, crisis, "")
		q, from = q+`, `+shapeColumns, from+departedJoin("r", now, was)
		where += ` AND (` + now + ` OR d.version IS NOT NULL)`
		args = slices.Concat(nowArgs, wasArgs, args, nowArgs)
	}
	return q + from + where + ` ORDER BY c.seq LIMIT ` + strconv.Itoa(limit), args // see noReprepare
}

// noReprepare: SQLite (3.54, as go-sqlite3 builds it) marks a statement to be prepared again when
// a value bound to a plain ? that its query planner looked at changes, and go-sqlite3 binds every
// parameter anew at each run, so that a statement with ORDER BY and a bound filter value or LIMIT
// was parsed and planned again on every run: 12–14 µs for the page query of an empty table, where
// the same statement with +? takes 3 µs. List and Changes, which every search, Query and
// subscription runs, and ForeignList therefore bind their values as +? (the same value, with no
// affinity as a plain ? has none, but not a parameter the planner reads) and write the page size,
// an int, into the text. So do the statements of a record write, which every replica runs for
// every record: the text indexer's look-up of a record's file text took 19 µs a run with plain ?
// and 1.3 µs with +?. TestHotQueriesBindNoPlainParameters holds them to it.

// eachRow runs a query whose work its LIMIT bounds and calls fn for each row, checking ctx
// between rows.
func (d *DB) eachRow(ctx context.Context, q string, args []any, fn func(*sql.Rows) error) error {
	return d.read(func(ro *sql.DB) error {
		rows, err := boundedQuery(ctx, ro, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := fn(rows); err != nil {
				return err
			}
		}
		return rows.Err()
	})
}

// boundedQuery runs a query whose work is bounded by its LIMIT (a page of List, a batch of the
// feed) without handing ctx to the driver: with a context that can be cancelled, database/sql
// and go-sqlite3 each start a goroutine per query to watch it, which cost more than a small
// page (90 µs against 140 µs for ten records). The caller checks ctx between rows instead.
func boundedQuery(ctx context.Context, ro *sql.DB, q string, args ...any) (*sql.Rows, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return ro.QueryContext(context.WithoutCancel(ctx), q, args...)
}

// listing is what a page token belongs to: every part of the filter but the page, as 16 hex
// digits of its SHA-256. A page size may change from page to page; nothing else may.
func (f Filter) listing() string {
	labels := make([]string, 0, len(f.Labels))
	for k, v := range f.Labels {
		labels = append(labels, strconv.Quote(k)+"="+strconv.Quote(v))
	}
	slices.Sort(labels)
	has, ids := slices.Sorted(slices.Values(f.HasLabels)), slices.Sorted(slices.Values(f.IDs))
	h := sha256.New()
	fmt.Fprintf(h, "%q %q %q %q %q %d %d %d %q %t %q", f.Kind, f.Crisis, f.Region, labels, has, f.MaxClassification,
		f.UpdatedSince.UnixNano(), f.Mode.Status, f.Mode.Exercise, f.Deleted, ids)
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// A page token is the listing it belongs to (Filter.listing), "~", and the last record of the
// page: its id, or for a listing by update "~", its updated_at in Unix nanoseconds, "~" and its
// id. Ids never hold "~", so one kind of token is never taken for the other.
func pageToken(last *pb.Record, byUpdate bool, listing string) string {
	t := last.Id
	if byUpdate {
		t = "~" + strconv.FormatInt(tsNanos(last.UpdatedAt), 10) + "~" + last.Id
	}
	return base64.RawURLEncoding.EncodeToString([]byte(listing + "~" + t))
}

func parsePageToken(token string, byUpdate bool, listing string) (at int64, after string, err error) {
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(raw) == 0 {
		return 0, "", ErrBadPageToken
	}
	of, t, ok := strings.Cut(string(raw), "~")
	switch {
	case !ok || len(of) != len(listing):
		return 0, "", ErrBadPageToken
	case of != listing:
		return 0, "", ErrOtherListing
	}
	if !byUpdate {
		// Any base64 decodes to something: what is no record id (a token cut short or mangled
		// on its way) must not read as a place past the last record, an empty page that
		// tells a sync loop it is done.
		if record.CheckID("page_token", t) != nil {
			return 0, "", ErrBadPageToken
		}
		return 0, t, nil
	}
	nanos, id, ok := strings.Cut(strings.TrimPrefix(t, "~"), "~")
	if !ok || !strings.HasPrefix(t, "~") || record.CheckID("page_token", id) != nil {
		return 0, "", ErrBadPageToken
	}
	if at, err = strconv.ParseInt(nanos, 10, 64); err != nil {
		return 0, "", ErrBadPageToken
	}
	return at, id, nil
}

// Change is one entry of the change feed.
type Change struct {
	Seq    int64
	Record *pb.Record
}

// Changes returns up to limit changes of records of mode m with after < seq <= upTo, in commit
// order, including tombstones (which keep their record's mode). A change that a later change to
// the same record superseded is left out; the later one carries the record's state.
//
// With a kind or crisis, a change of a record that is not of them now, but was at an earlier
// version that the history keeps, is a departure: the record's tombstone, with an empty body and
// the kind, crisis and region of its last version of them, at its version and seq now. A reader
// that drops a record on its tombstone so drops its copy of one that moved out of what it
// reads, or was deleted after it moved. A record that never was of them is left out.
func (d *DB) Changes(ctx context.Context, after, upTo int64, limit int, m Mode, kind, crisis string) ([]Change, error) {
	q, args := changesQuery(after, upTo, limit, m, kind, crisis)
	filtered := kind != "" || crisis != ""
	var out []Change
	err := d.eachRow(ctx, q, args, func(rows *sql.Rows) error {
		var seq int64
		if !filtered {
			r, err := scanRecord(rows, &seq)
			out = append(out, Change{Seq: seq, Record: r})
			return err
		}
		var was shape
		r, err := scanRecord(rows, append([]any{&seq}, was.dest()...)...)
		if err == nil {
			was.depart(r)
		}
		out = append(out, Change{Seq: seq, Record: r})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("db: changes: %w", err)
	}
	return out, nil
}

// NewestChange is the time of the newest version of the node's own actual records of kind up to
// maxClass, deleted ones included (the zero time when there is none): when a listing last
// changed, also when its last change took a record away.
func (d *DB) NewestChange(ctx context.Context, kind string, maxClass pb.Classification) (time.Time, error) {
	var ns int64
	err := d.read(func(ro *sql.DB) error {
		return ro.QueryRowContext(ctx, `SELECT COALESCE(MAX(updated_at), 0) FROM records INDEXED BY records_kind
			WHERE status = ?1 AND exercise = '' AND kind = ?2 AND classification <= ?3`,
			int32(pb.Status_ACTUAL), kind, int32(maxClass)).Scan(&ns)
	})
	if err != nil || ns == 0 {
		return time.Time{}, err
	}
	return time.Unix(0, ns), nil
}

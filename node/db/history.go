package db

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/tidwall/gjson"

	"github.com/knooppunt/knooppunt/node/internal/jsonstr"
	"github.com/knooppunt/knooppunt/node/warn"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// HistoryVersion is one applied version of an own or cached record, as the history keeps it: where
// and when it counted, and the scalars of its body. The early-warning rules derive their sums,
// deltas and counts from these rows alone (see node/warn), so every replica, which applies the
// same entries, derives the same values. Its Values are the body's top-level strings (up to
// MaxHistoryString bytes) and booleans; versions stored before they were kept have none.
type HistoryVersion = warn.Version

// The statements of the history on the write path; values the planner reads are bound as +? (see
// noReprepare).
const (
	sqlHistoryAdd     = `INSERT OR REPLACE INTO history (origin, id, version, kind, crisis, region, at, tombstone, fields, status, exercise, classification, labels) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)`
	sqlHistoryNumbers = `UPDATE history SET fields = (SELECT json_group_object(key, value) FROM json_each(fields) WHERE type IN ('integer', 'real'))
		WHERE origin = +? AND id = +?`
	sqlHistoryDrop = `DELETE FROM history WHERE origin = +? AND id = +?`
)

// addHistory keeps the version of r that the entry applies. It is called in the entry's
// transaction, so the history never holds what the records do not.
//
// Actual records and exercises' records have a history, each in its mode (see HistoryFilter):
// the early-warning rules watch the actual crisis, and run apart in each open exercise, which
// must never fire a real alert. Test and draft records have none. exercises says the entry is
// marked (pb.WriteRecords.picture_bookkeeping): one written before kept actual records' alone.
// labels are r's labels as a JSON object, as the caller wrote them to the record's row.
func addHistory(tx *writeTx, origin string, r *pb.Record, version int64, tombstone, exercises bool, labels []byte) error {
	if r.Status != pb.Status_ACTUAL && (!exercises || r.Status != pb.Status_EXERCISE) {
		return nil
	}
	fields := "{}"
	if !tombstone {
		fields = scalarsOf(r.Body)
	} else {
		// A delete erases the record's text (see store's erasure): its earlier versions keep
		// only their numbers, which say what they counted, and lose their strings.
		if _, err := tx.Exec(sqlHistoryNumbers, origin, r.Id); err != nil {
			return err
		}
	}
	_, err := tx.Exec(sqlHistoryAdd,
		origin, r.Id, version, r.Kind, r.Crisis, r.Region, tsNanos(r.UpdatedAt), tombstone, fields, int32(r.Status), r.Exercise,
		int32(r.Classification), string(labels))
	return err
}

// dropHistory removes every version of a cached record: a retraction withdraws what the record
// ever contributed, so that a trend never shows what a policy no longer grants.
func dropHistory(tx *writeTx, origin, id string) error {
	_, err := tx.Exec(sqlHistoryDrop, origin, id)
	return err
}

// MaxHistoryString bounds the strings the history keeps: a body's top-level strings up to it are
// kept for the conditions on a record's fields (a sitrep with severity high); longer text is for
// search, not for rules, and is left out.
const MaxHistoryString = 256

// scalarsOf returns the body's top-level numbers, booleans and strings of up to MaxHistoryString
// bytes as a JSON object with sorted keys. A body that is not a JSON object has none. The numbers
// pass through float64, as CEL reads them, and the encoding is canonical, so every replica stores
// the same text: exactly what encoding/json makes of a map[string]any of them, which replicas of
// earlier releases stored. Every replica runs it for every record; it walks the body once, where
// decoding it into a map of raw values and encoding a map by reflection cost 6 µs a record.
func scalarsOf(body []byte) string {
	if !json.Valid(body) {
		return "{}"
	}
	doc := gjson.ParseBytes(body)
	if !doc.IsObject() {
		return "{}" // null, an array or a scalar: json.Unmarshal into a map left it empty or failed
	}
	out := map[string]any{}
	doc.ForEach(func(key, value gjson.Result) bool {
		k, v := jsonString(key.Raw), value.Raw
		switch {
		case v[0] == '-' || (v[0] >= '0' && v[0] <= '9'):
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				out[k] = f
			} else {
				delete(out, k) // a later duplicate key replaces an earlier one, as in a map
			}
		case v[0] == 't' || v[0] == 'f':
			out[k] = v[0] == 't'
		case v[0] == '"':
			if s := jsonString(v); len(s) <= MaxHistoryString {
				out[k] = s
			} else {
				delete(out, k)
			}
		default:
			delete(out, k)
		}
		return true
	})
	keys := make([]string, 0, len(out))
	for k := range out {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	b := make([]byte, 0, 16*len(keys)+2)
	b = append(b, '{')
	for n, k := range keys {
		if n > 0 {
			b = append(b, ',')
		}
		b = jsonstr.AppendEncodingJSON(b, k)
		b = append(b, ':')
		switch v := out[k].(type) {
		case float64:
			b = appendJSONFloat(b, v)
		case bool:
			b = strconv.AppendBool(b, v)
		case string:
			b = jsonstr.AppendEncodingJSON(b, v)
		}
	}
	return string(append(b, '}'))
}

// jsonString decodes a JSON string token as encoding/json does (gjson's own unescaping differs
// on invalid UTF-8 and lone surrogates). Most need no unescaping.
func jsonString(tok string) string {
	if plainJSON(tok[1 : len(tok)-1]) {
		return tok[1 : len(tok)-1]
	}
	var s string
	json.Unmarshal([]byte(tok), &s) // valid: the body passed json.Valid
	return s
}

// plainJSON reports whether s is printable ASCII that encoding/json writes as it is (no quote,
// backslash, or <, > and &, which it escapes for HTML).
func plainJSON(s string) bool {
	for i := range len(s) {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// appendJSONFloat appends f as encoding/json encodes a float64.
func appendJSONFloat(b []byte, f float64) []byte {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if n := len(b); format == 'e' && n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
		b[n-2] = b[n-1] // e-09 is written e-9
		b = b[:n-1]
	}
	return b
}

// HistoryFilter selects history rows. Empty fields do not filter, but for Mode: the zero Mode
// is the actual records'.
type HistoryFilter struct {
	Kinds  []string
	Crisis string
	Region string
	Mode   Mode
}

// where is the WHERE clause that selects what f does from a table with the columns of history
// (records and foreign_records have them too), with its arguments.
func (f HistoryFilter) where() (string, []any) {
	q := ` WHERE status = ? AND exercise = ?`
	args := []any{int32(f.Mode.Status), f.Mode.Exercise}
	if len(f.Kinds) > 0 {
		q += ` AND kind IN (SELECT value FROM json_each(?))`
		b, _ := json.Marshal(f.Kinds)
		args = append(args, string(b))
	}
	if f.Crisis != "" {
		q += ` AND crisis = ?`
		args = append(args, f.Crisis)
	}
	if f.Region != "" {
		q += ` AND region = ?`
		args = append(args, f.Region)
	}
	return q, args
}

// History returns the rows the filter selects in the order they counted: by time, then origin,
// id and version, so that equal times are walked the same way everywhere.
func (d *DB) History(ctx context.Context, f HistoryFilter) ([]HistoryVersion, error) {
	where, args := f.where()
	q := `SELECT origin, id, version, kind, crisis, region, at, tombstone, fields FROM history` + where + ` ORDER BY at, origin, id, version`
	var out []HistoryVersion
	err := d.read(func(ro *sql.DB) error {
		var err error
		out, err = scanHistory(ctx, ro, q, args...)
		return err
	})
	return out, err
}

// HighestClassification is the highest classification of the records of the filter's kinds,
// crisis and region in its mode that the node holds now, its own and partners' copies: what a
// rule that reads them passes on in its alert. CLASSIFICATION_UNSPECIFIED when there is none.
func (d *DB) HighestClassification(ctx context.Context, f HistoryFilter) (pb.Classification, error) {
	where, args := f.where()
	where += ` AND tombstone = 0`
	var c sql.NullInt32
	err := d.read(func(ro *sql.DB) error {
		return ro.QueryRowContext(ctx, `SELECT MAX(c) FROM (SELECT MAX(classification) AS c FROM records`+where+
			` UNION ALL SELECT MAX(classification) FROM foreign_records`+where+`)`, append(args, args...)...).Scan(&c)
	})
	return pb.Classification(c.Int32), err
}

// scanHistory runs a query of history rows (origin, id, version, kind, crisis, region, at,
// tombstone, fields) and splits each row's scalars into its numbers and its other values.
func scanHistory(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, query string, args ...any) ([]HistoryVersion, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []HistoryVersion
	for rows.Next() {
		var (
			v      HistoryVersion
			at     int64
			fields string
		)
		if err := rows.Scan(&v.Origin, &v.ID, &v.Version, &v.Kind, &v.Crisis, &v.Region, &at, &v.Tombstone, &fields); err != nil {
			return nil, err
		}
		v.At = time.Unix(0, at).UTC()
		var scalars map[string]any
		if err := json.Unmarshal([]byte(fields), &scalars); err != nil {
			return nil, fmt.Errorf("db: history of %s %q: %w", v.Origin, v.ID, err)
		}
		for k, x := range scalars {
			if f, ok := x.(float64); ok {
				if v.Fields == nil {
					v.Fields = map[string]float64{}
				}
				v.Fields[k] = f
			} else {
				if v.Values == nil {
					v.Values = map[string]any{}
				}
				v.Values[k] = x
			}
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// Versions returns the versions of one record that the history keeps since the start of the
// retention window, newest first: an own record (origin "") or a cached one (origin the peer's
// trust domain). The record must be held in mode m, live or deleted, else ErrNotFound: a read in
// one mode never learns of a record of another. The history keeps exercises' records for their
// rules alone: a record of another mode than actual has no versions here. The primary key
// (origin, id, version) serves the read, however long the history is.
//
// Like the rules' reads, it clips to the window: the versions after since, and the newest at or
// before it unless that deletes the record. So every replica answers the same, whenever each
// last pruned before since (see PruneHistory). A zero since reads all the history keeps.
func (d *DB) Versions(ctx context.Context, origin, id string, m Mode, since time.Time) ([]HistoryVersion, error) {
	var out []HistoryVersion
	err := d.read(func(ro *sql.DB) error {
		tx, err := ro.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
		if err != nil {
			return err
		}
		defer func() { _ = tx.Rollback() }()
		held := `SELECT status, exercise FROM records WHERE id = ?2 AND ?1 = ''`
		if origin != "" {
			held = `SELECT status, exercise FROM foreign_records WHERE origin = ?1 AND id = ?2`
		}
		var (
			status   int32
			exercise string
		)
		switch err := tx.QueryRowContext(ctx, held, origin, id).Scan(&status, &exercise); {
		case errors.Is(err, sql.ErrNoRows):
			return ErrNotFound
		case err != nil:
			return err
		}
		if pb.Status(status) != m.Status || exercise != m.Exercise {
			return ErrNotFound
		}
		if m != Actual {
			return nil
		}
		cut := int64(math.MinInt64)
		if !since.IsZero() {
			cut = since.UnixNano()
		}
		out, err = scanHistory(ctx, tx, `SELECT origin, id, version, kind, crisis, region, at, tombstone, fields
			FROM history WHERE origin = ?1 AND id = ?2 AND (at > ?3 OR tombstone = 0 AND version =
				(SELECT MAX(version) FROM history WHERE origin = ?1 AND id = ?2 AND at <= ?3))
			ORDER BY version DESC`, origin, id, cut)
		return err
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("db: versions of %s %q: %w", origin, id, err)
	}
	return out, err
}

// VersionsClassification is the highest classification the history keeps of the versions of one
// own (origin "") or cached record; unspecified (0) when it keeps none, as of versions written
// before migration 27.
func (d *DB) VersionsClassification(ctx context.Context, origin, id string) (pb.Classification, error) {
	var c int32
	err := d.read(func(ro *sql.DB) error {
		return ro.QueryRowContext(ctx, `SELECT COALESCE(MAX(classification), 0) FROM history WHERE origin = ? AND id = ?`, origin, id).Scan(&c)
	})
	return pb.Classification(c), err
}

// PruneHistory forgets what the history needs no longer: rows older than before, except each
// record's last row at or before it, which still says what the record counted at before. Reads
// clip to the retention window (warn.History's since, Versions'), so a replica that prunes later than
// another still answers the same. It is not a Raft command. One read does not clip: a filtered
// Watch finds a record that left its filter by the version that matched (departedJoin), and
// once that version is pruned, past the retention, a watcher resuming from before the move is
// not told on a replica that pruned it, and is on one that did not yet.
func (d *DB) PruneHistory(before time.Time) (int64, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		return 0, ErrClosed
	}
	d.applyMu.Lock()
	defer d.applyMu.Unlock()
	cut := before.UnixNano()
	res, err := d.rw.Exec(`DELETE FROM history AS h WHERE at < ?1 AND (tombstone = 1 OR EXISTS (
		SELECT 1 FROM history AS n WHERE n.origin = h.origin AND n.id = h.id AND n.version > h.version AND n.at <= ?1))`, cut)
	if err != nil {
		return 0, fmt.Errorf("db: prune history: %w", err)
	}
	return res.RowsAffected()
}

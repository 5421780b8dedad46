package db

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
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
// what it holds follows from the record alone and every replica builds the same index. It is
// contentless, the text being in the records, and text_keys maps each record to its row.
//
// The index only finds candidates. Which fields a kind searches, whether the words really
// occur, and what a reader may see of a record are decided above it (record.TextQuery.Match): a
// redacted field can never make a record match for a recipient.

// The statements of the index.
const (
	sqlTextKey   = `INSERT OR IGNORE INTO text_keys (origin, id) VALUES (?, ?)`
	sqlTextRow   = `SELECT rowid FROM text_keys WHERE origin = ? AND id = ?`
	sqlTextDrop  = `DELETE FROM text_index WHERE rowid = (SELECT rowid FROM text_keys WHERE origin = ? AND id = ?)`
	sqlTextUnkey = `DELETE FROM text_keys WHERE origin = ? AND id = ?`
	sqlTextAdd   = `INSERT INTO text_index (rowid, text) VALUES (?, ?)`
)

// textIndexOff skips the index. Only BenchmarkTextIndexWrite sets it, to measure the same writes
// without the index in the same run.
var textIndexOff bool

// indexText puts a live record's body in the index, replacing what it held of the record.
// existed says whether the record may be in the index already.
func indexText(tx *writeTx, origin, id string, body []byte, existed bool) error {
	if textIndexOff {
		return nil
	}
	if existed {
		if _, err := tx.Exec(sqlTextDrop, origin, id); err != nil {
			return fmt.Errorf("text index: %w", err)
		}
	}
	res, err := tx.Exec(sqlTextKey, origin, id)
	if err != nil {
		return fmt.Errorf("text index: %w", err)
	}
	var row int64
	if n, _ := res.RowsAffected(); n == 1 {
		row, err = res.LastInsertId()
	} else {
		err = tx.QueryRow(sqlTextRow, origin, id).Scan(&row)
	}
	if err != nil {
		return fmt.Errorf("text index: %w", err)
	}
	if _, err := tx.Exec(sqlTextAdd, row, bodyText(body)); err != nil {
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
	// Limit caps the candidates; default 1000. Offset skips the first, for the next page.
	Limit, Offset int
}

// textWhere adds f's filters on table t (records or foreign_records) to a statement.
func textWhere(t string, f TextFilter) (string, []any) {
	where := []string{"text_index MATCH ?"}
	args := []any{matchExpr(f.Terms)}
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
	limit := f.Limit
	if limit <= 0 {
		limit = 1000
	}
	return " WHERE " + strings.Join(where, " AND ") + " ORDER BY text_index.rank LIMIT " + strconv.Itoa(limit) + " OFFSET " + strconv.Itoa(max(0, f.Offset)), args
}

// TextSearch returns the live own records the index finds for f, best first (bm25).
func (d *DB) TextSearch(ctx context.Context, f TextFilter) ([]*pb.Record, error) {
	where, args := textWhere("records", f)
	q := `SELECT ` + qualified("records", recordColumns) + ` FROM text_index
		JOIN text_keys ON text_keys.rowid = text_index.rowid AND text_keys.origin = ''
		JOIN records ON records.id = text_keys.id AND records.tombstone = 0` + where
	var out []*pb.Record
	err := d.eachRow(ctx, q, args, func(rows *sql.Rows) error {
		r, err := scanRecord(rows)
		out = append(out, r)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("db: text search: %w", err)
	}
	return out, nil
}

// ForeignTextSearch returns the cached records of origin ("" for every origin) that the index
// finds for f, best first (bm25).
func (d *DB) ForeignTextSearch(ctx context.Context, origin string, f TextFilter) ([]Foreign, error) {
	where, args := textWhere("foreign_records", f)
	join := ""
	if origin != "" {
		join, args = " AND text_keys.origin = ?", append([]any{origin}, args...)
	} else {
		join = " AND text_keys.origin != ''"
	}
	q := `SELECT ` + qualified("foreign_records", foreignColumns) + ` FROM text_index
		JOIN text_keys ON text_keys.rowid = text_index.rowid` + join + `
		JOIN foreign_records ON foreign_records.origin = text_keys.origin AND foreign_records.id = text_keys.id` + where
	var out []Foreign
	err := d.eachRow(ctx, q, args, func(rows *sql.Rows) error {
		fr, err := scanForeign(rows)
		out = append(out, fr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("db: text search of the cache: %w", err)
	}
	return out, nil
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

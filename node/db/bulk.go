package db

import (
	"database/sql"
	"strconv"
	"strings"
)

// bulkMax is the most rows one bulk statement takes. A command of n rows runs as n/bulkMax
// statements of bulkMax rows and one statement for each bit set in the rest (10 rows: 8, then 2),
// so each table has a handful of statement texts, which the connection's statement cache keeps
// prepared. Past 32 rows the size hardly matters: a disclosures row took 2.7–2.9 µs at 32, 128 and
// 256 rows a statement, where INSERT … SELECT FROM json_each(?) of the same rows took 3.5–3.9 µs.
const bulkMax = 64

// bulk is a statement run once per chunk of rows: an INSERT with a multi-row VALUES, or a DELETE
// or SELECT with an IN list. Parameters ?1 … ?shared are bound once per statement; every row binds
// perRow more.
type bulk struct {
	shared, perRow int
	sql            map[int]string // by rows: 1, 2, 4, … bulkMax
}

// newBulk builds the statement texts. head is the text before the rows; row gives one row's text
// from the numbers of its parameters; sep goes between rows and tail after the last.
func newBulk(head string, shared, perRow int, row func(p []int) string, sep, tail string) *bulk {
	b := &bulk{shared: shared, perRow: perRow, sql: map[int]string{}}
	p := make([]int, perRow)
	for n := 1; n <= bulkMax; n *= 2 {
		var s strings.Builder
		s.WriteString(head)
		next := shared + 1
		for i := range n {
			if i > 0 {
				s.WriteString(sep)
			}
			for j := range p {
				p[j] = next
				next++
			}
			s.WriteString(row(p))
		}
		s.WriteString(tail)
		b.sql[n] = s.String()
	}
	return b
}

// param is the text of parameter n: ?n.
func param(n int) string { return "?" + strconv.Itoa(n) }

// exec runs the statement over rows 0 … n-1. shared holds the shared parameters; row appends
// row i's parameters to args and returns it.
func (b *bulk) exec(tx *writeTx, shared []any, n int, row func(i int, args []any) []any) error {
	return b.each(shared, n, row, func(query string, args []any) error {
		_, err := tx.Exec(query, args...)
		return err
	})
}

// query runs the statement, a SELECT, over rows 0 … n-1 as exec does, and calls scan for every
// row of every result.
func (b *bulk) query(tx *writeTx, shared []any, n int, row func(i int, args []any) []any, scan func(*sql.Rows) error) error {
	return b.each(shared, n, row, func(query string, args []any) error {
		rows, err := tx.Query(query, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			if err := scan(rows); err != nil {
				return err
			}
		}
		return rows.Err()
	})
}

// each splits rows 0 … n-1 into the statement's chunks and runs each with its arguments.
func (b *bulk) each(shared []any, n int, row func(i int, args []any) []any, run func(query string, args []any) error) error {
	args := make([]any, 0, len(shared)+b.perRow*min(n, bulkMax))
	for done := 0; done < n; {
		size := bulkMax
		for size > n-done {
			size /= 2
		}
		args = append(args[:0], shared...)
		for i := done; i < done+size; i++ {
			args = row(i, args)
		}
		if err := run(b.sql[size], args); err != nil {
			return err
		}
		done += size
	}
	return nil
}

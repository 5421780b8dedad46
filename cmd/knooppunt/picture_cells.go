package main

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/knooppunt/knooppunt/node/record"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// wideTable is the format of a table whose cells are whole (--wide), for the printers that cut
// ids and summaries to fit a terminal.
const wideTable = "wide"

// tableFormat is the format --output and --wide ask a printer for.
func tableFormat(output string, wide bool) string {
	if wide && output != "json" {
		return wideTable
	}
	return output
}

// pictureCells are the WHAT and SUMMARY cells of a picture's table: cut to fit a terminal,
// unless the table is wide, and each summary led by its kind's aggregate figures, so that a
// shelter's row shows its free beds before the cut.
type pictureCells struct {
	wide bool
	// figures are each kind's aggregate fields, as the picture's sums name them.
	figures map[string][]string
	cut     bool
}

func newPictureCells(format string, aggregates []*pb.Aggregate) *pictureCells {
	c := &pictureCells{wide: format == wideTable, figures: map[string][]string{}}
	for _, a := range aggregates {
		if !slices.Contains(c.figures[a.Kind], a.Field) {
			c.figures[a.Kind] = append(c.figures[a.Kind], a.Field)
		}
	}
	return c
}

// what is the entry's key, the municipality or the record id, on one line.
func (c *pictureCells) what(e *pb.PictureEntry) string {
	return record.OneLine(c.fit(e.Key, 24))
}

// summary is the entry's body in one line: its figures first, without the municipality its key
// names already.
func (c *pictureCells) summary(e *pb.PictureEntry) string {
	whole := record.RowSummary(e.Record.Body, 0, c.figures[e.Kind], e.Key)
	return c.fit(whole, 60)
}

// disagreeing is a line for each source that disagrees with the entry, to go under its row: what
// the source reports instead, its figures first, and which of its records says it, of which
// version, how long ago. A source whose record the answer left out to stay within its bound is
// named, with the search that shows it.
func (c *pictureCells) disagreeing(e *pb.PictureEntry, now time.Time) []string {
	var lines []string
	for _, r := range e.Disagreeing {
		says := c.fit(record.RowSummary(r.Body, 0, c.figures[e.Kind], e.Key), 60)
		ago := roughly(max(now.Sub(r.GetUpdatedAt().AsTime()), 0))
		lines = append(lines, fmt.Sprintf("%s says: %s (%s, v%d, %s ago)", r.Origin, says, r.Id, r.Version, ago))
	}
	if len(e.Disagreeing) == 0 {
		for _, src := range e.Conflict {
			lines = append(lines, fmt.Sprintf("%s says otherwise: its record was left out to keep the picture within its bound; `knooppunt search --origin %s --crisis %s --kind %s --region %s` shows it",
				src, src, e.Record.GetCrisis(), record.OneLine(e.Kind), record.OneLine(e.Region)))
		}
	}
	return lines
}

func (c *pictureCells) fit(s string, n int) string {
	if c.wide || len([]rune(s)) <= n {
		return s
	}
	c.cut = true
	return truncate(s, n)
}

// noteCut says, after the table, that cells were cut and how to see them whole.
func (c *pictureCells) noteCut(w io.Writer) {
	if c.cut {
		fmt.Fprintln(w, "\nCells ending in … are cut to fit a terminal: --wide prints ids and summaries whole.")
	}
}

// sumCell is a sum as a plain decimal: 1234567, not %g's 1.234567e+06.
func sumCell(a *pb.Aggregate) string {
	return strconv.FormatFloat(a.Sum, 'f', -1, 64)
}

// recordsCell is how many entries a sum added, and of how many of its kind when it lacks some:
// 4 of 7.
func recordsCell(a *pb.Aggregate) string {
	if a.Records < a.Entries {
		return fmt.Sprintf("%d of %d", a.Records, a.Entries)
	}
	return strconv.FormatInt(a.Records, 10)
}

// noteLacking says, under the sums, which of them lack entries of their kind and why: a sum
// beside another of the same entries (beds_free over 7, beds_total over 4) reads as a ratio
// that it is not.
func noteLacking(w io.Writer, aggregates []*pb.Aggregate) {
	var lacking []string
	for _, a := range aggregates {
		if a.Records < a.Entries {
			lacking = append(lacking, fmt.Sprintf("%s %s %s sums %d of %d entries: %d lack the field", record.OneLine(a.Kind), record.OneLine(a.Field),
				record.OneLine(a.Region), a.Records, a.Entries, a.Entries-a.Records))
		}
	}
	if len(lacking) > 0 {
		fmt.Fprintf(w, "\n%s (withheld by a partner's policy, or not reported as a number).\n", strings.Join(lacking, "; "))
	}
}

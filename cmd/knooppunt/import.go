package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	"github.com/knooppunt/knooppunt/node/cap"
	"github.com/knooppunt/knooppunt/node/record"
	"github.com/knooppunt/knooppunt/node/record/importfile"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

func newImportCmd() *cobra.Command {
	var (
		f        clientFlags
		format   string
		batch    int
		defaults record.JSON
		quiet    bool
		exercise string
		capOpts  cap.ImportOptions
	)
	cmd := &cobra.Command{
		Use:   "import FILE|-",
		Short: "Load records from a JSON or CSV file, or a CAP 1.2 alert",
		Long: `Load records in batches and print how many were accepted and, for each rejected row, why.
FILE - reads standard input.

JSON (a .json, .jsonl or .ndjson file) in one of three forms, told from its first line:
  - JSON Lines: one record object a line; empty lines and lines that start with # are skipped:
    {"id":"utr-1","kind":"shelter.capacity","crisis":"oekraine","region":"VR09","classification":"internal","body":{"municipality":"Utrecht","beds_total":120,"beds_free":14}}
  - one JSON array of records, as "record list -o json" writes it;
  - records spread over several lines each, one after another, as "record get -o json" writes
    one.
So what "record list -o json --all" kept goes back in with import. A rejection names the line
where its record starts. JSON of another shape (an array of ids, a number, an object that
breaks off) is refused whole, and nothing is stored. Of the fields "record get -o json" prints,
updated_at is the node's and not read; origin must be the node's own org, or left out; version is
the version last read: a record the node holds at another version is refused (Aborted: read it
again), and one the node has never held is written as new.

CSV: a header row names the columns. id, kind, crisis, region, classification, status, exercise,
valid_until and labels (key=value;key=value) fill the record; body holds a whole JSON object;
label.KEY sets one label; every other column, or body.FIELD (body.status for a body field of that
name), becomes a body field (numbers and true/false are typed; a number with a leading zero or a +
in front, such as a phone number, stays text). A file that a Dutch spreadsheet saved, with
semicolons between the cells and decimal commas (3,5), is read as such. --kind, --crisis, --region
and --classification fill what a row leaves empty.

Exercises: --exercise NAME writes every row that names no status and no exercise as an exercise
record of that open exercise, as "record put --exercise" does; a NAME that is no open exercise on
the node (misspelt, or closed) is refused before any row is sent. A row may name its own (status
exercise, exercise NAME; a row that names an exercise and no status is one of it).

Standard input (-) is JSON, in any of its three forms, unless --format says otherwise. A row without an id gets a new
one each time: importing the same file again stores such rows twice, so give rows an id when a
file may be imported more than once.

CAP (--format cap, or a .cap or .xml file): one CAP 1.2 alert becomes a record of the built-in
alert kind, its CAP fields in the body. Its status becomes the record's status; its scope the
classification (Public public, Restricted internal, Private confidential, unless the node's
cap.scopes say otherwise, or --classification overrides it). An Update or Cancel rewrites or
deletes the record of the alert it references, in the alert's own mode only: a Test or Exercise
message never changes an actual alert. An alert the node holds already, or one a later Update
superseded, is "unchanged" and nothing is written; a cancelled alert is refused, and so is an
alert stored under another crisis or region than --crisis or --region name. An Exercise alert
needs its exercise's name: --exercise NAME, or the name in the alert's <note>. --crisis and
--region default to all and NL. A document with a DTD, over 1 MiB, not well-formed, or not
valid CAP 1.2 is refused and nothing is stored. A file that starts with < is XML: without
--format cap (or a .xml or .cap name) it is refused, not read as rows.

-o json prints the summary as JSON: each rejection's line, id (when the row gave one), code, field
(the record's field the node refused, such as record.region, or the column the file's reader could
not read, such as valid_until) and reason.

The progress bar counts the rows the node has answered for. The exit code is 0 when every row was
stored (or the alert taken), 2 when some were rejected (or the alert refused: -o json then says
why on stdout), 1 when the import stopped (the node went away, or Ctrl-C): the
summary then says up to which line the node answered, which lines were sent but not answered
(they may be stored), and that the rest were not sent; -o json has it in "stopped".`,
		Example: `  knooppunt import shelters.csv --kind shelter.capacity --crisis oekraine --classification internal
  knooppunt record list -o json --all > keep.json
  knooppunt import keep.json
  knooppunt import export.jsonl --batch 1000 -o json
  knooppunt import oefening.csv --kind sitrep --crisis oekraine --exercise oefening-2026-12-vr09
  knooppunt import --format cap nl-alert.xml --crisis overstroming --region VR19
  curl -s https://example.nl/alert.xml | knooppunt import --format cap - --exercise oefening-zeeland`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			err := f.checkOutput()
			if err != nil {
				return err
			}
			if capOpts.Classification, err = optionalClassification(defaults.Classification); err != nil {
				return err
			}
			capOpts.Crisis, capOpts.Region, capOpts.Exercise = defaults.Crisis, defaults.Region, exercise
			if batch < 1 || batch > 10000 {
				return fmt.Errorf("--batch %d: use 1 to 10000", batch)
			}
			file := os.Stdin
			if args[0] != "-" {
				if file, err = os.Open(args[0]); err != nil {
					return err
				}
				defer file.Close()
			}
			if format == "" {
				if format = importfile.FormatOf(args[0]); format == "" {
					format = strings.TrimPrefix(strings.ToLower(filepath.Ext(args[0])), ".")
					if format == "xml" {
						format = "cap"
					}
				}
				if args[0] == "-" {
					format = "jsonl" // standard input has no name to tell: JSON Lines, unless --format says
				}
			}
			switch format {
			case "jsonl", "ndjson", "json", "csv", "cap":
			default:
				return fmt.Errorf("--format %q: use jsonl, csv or cap (without --format, a file name ending in .jsonl, .csv, .xml or .cap says it; standard input is jsonl)", format)
			}
			if format == "cap" {
				return importCAP(cmd, &f, file, args[0], capOpts)
			}
			defaults.Exercise = exercise
			in := bufio.NewReader(file)
			if looksLikeXML(in) {
				// Read as JSON Lines or CSV, every line of an alert would be a rejected row.
				return fmt.Errorf("%s: this looks like XML, not %s: add --format cap to import a CAP alert", args[0], format)
			}
			rows, err := importfile.Read(in, format, defaults)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			conn, err := f.dial()
			if err != nil {
				return err
			}
			defer conn.Close()
			if err := checkOpenExercise(cmd.Context(), conn, exercise); err != nil {
				return err
			}
			c := pb.NewRecordServiceClient(conn)
			// The bar counts rows the node has answered for, not bytes read: reading the file
			// takes a moment, writing its rows the rest.
			bar := progressbar.NewOptions(len(rows),
				progressbar.OptionSetWriter(cmd.ErrOrStderr()),
				progressbar.OptionSetVisibility(!quiet && f.output != "json"),
				progressbar.OptionSetDescription("importing rows"),
				progressbar.OptionShowCount(),
				progressbar.OptionThrottle(100*time.Millisecond),
				progressbar.OptionClearOnFinish())
			handled := 0
			sum, err := importfile.Import(cmd.Context(), c, rows, batch, func(n int) { handled = n; bar.Set(n) })
			bar.Finish()
			sum.File = args[0]
			if err != nil {
				// What went in is said before the error, so that nobody has to guess which
				// rows to load again.
				// The batch after the last answer may have been written: a write cut off, or
				// whose node went away, can still commit.
				first, last := lastLine(rows, handled+1), lastLine(rows, min(handled+batch, len(rows)))
				sum.Stopped = fmt.Sprintf("stopped after %d of %d rows: the node answered for the rows up to line %d; lines %d to %d were sent but not answered, and may be stored; the rest were not sent. "+
					"Importing again writes a row with an id once more, and gives a row without one a new record: check lines %d to %d first",
					handled, len(rows), lastLine(rows, handled), first, last, first, last)
				printSummary(cmd.OutOrStdout(), f.output, sum)
				if cmd.Context().Err() != nil {
					// Ctrl-C or SIGTERM: said as such, not as a call cancelled (review Z, Z11).
					return errors.New("interrupted: the summary above says what went in")
				}
				return callError(&f, err)
			}
			if err := printSummary(cmd.OutOrStdout(), f.output, sum); err != nil {
				return err
			}
			if sum.Rejected > 0 {
				return exitError(2)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&format, "format", "", "jsonl (JSON in any of its three forms), csv or cap (default: from the file name; jsonl for standard input)")
	fl.StringVar(&exercise, "exercise", "", "the open exercise for rows that name no mode; for CAP, the exercise of an alert of status Exercise")
	fl.IntVar(&batch, "batch", 500, "records per write")
	fl.StringVar(&defaults.Kind, "kind", "", "kind for rows that name none")
	fl.StringVar(&defaults.Crisis, "crisis", "", "crisis for rows that name none")
	fl.StringVar(&defaults.Region, "region", "", "region for rows that name none")
	fl.StringVar(&defaults.Classification, "classification", "", "classification for rows that name none")
	fl.BoolVarP(&quiet, "quiet", "q", false, "no progress bar")
	f.register(cmd, true)
	return cmd
}

func printSummary(w io.Writer, format string, sum importfile.Summary) error {
	if sum.Rejections == nil {
		sum.Rejections = []importfile.Rejection{}
	}
	if format == "json" {
		return printJSON(w, sum)
	}
	fmt.Fprintf(w, "%s: %d accepted, %d rejected\n", sum.File, sum.Accepted, sum.Rejected)
	if sum.Stopped != "" {
		fmt.Fprintf(w, "%s: %s\n", sum.File, sum.Stopped)
	}
	if sum.Rejected == 0 {
		return nil
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "LINE\tID\tCODE\tREASON")
	for _, r := range sum.Rejections {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", r.Line, r.ID, r.Code, r.Reason)
	}
	return tw.Flush()
}

// lastLine is the file line of the last of the first n rows, 0 when n is 0.
func lastLine(rows []importfile.Row, n int) int {
	if n == 0 || n > len(rows) {
		return 0
	}
	return rows[n-1].Line
}

// looksLikeXML reports whether the first byte after a byte order mark and white space is <.
// Neither a JSON Lines row nor a CSV header starts with one. It peeks no further than that
// byte, so that a slow pipe is not waited for.
func looksLikeXML(r *bufio.Reader) bool {
	bom := []byte("\uFEFF")
	for n := 1; n <= 512; n++ {
		b, err := r.Peek(n)
		if err != nil {
			return false
		}
		if len(b) < len(bom) && bytes.HasPrefix(bom, b) {
			continue // perhaps the start of a byte order mark
		}
		if head := bytes.TrimLeft(bytes.TrimPrefix(b, bom), " \t\r\n"); len(head) > 0 {
			return head[0] == '<'
		}
	}
	return false
}

// importCAP stores one CAP 1.2 alert as an alert record, or applies its Update or Cancel.
func importCAP(cmd *cobra.Command, f *clientFlags, r io.Reader, name string, opts cap.ImportOptions) error {
	// A refused alert exits 2, as a rejected row of JSON Lines or CSV does, and says why in
	// -o json too: a gateway that scripts the import must tell "this alert is wrong, do not send
	// it again" from "the node is away, try again" (1).
	refused := func(err error) error {
		if f.output == "json" {
			printJSON(cmd.OutOrStdout(), struct {
				File   string `json:"file"`
				Action string `json:"action"`
				Reason string `json:"reason"`
			}{name, "refused", err.Error()})
		} else {
			fmt.Fprintf(cmd.ErrOrStderr(), "knooppunt: %s: %v\n", name, err)
		}
		return exitError(2)
	}
	a, err := cap.Parse(r, cap.DefaultMaxBytes)
	if err != nil {
		return refused(err)
	}
	var (
		res cap.Result
		raw error
	)
	err = f.call(func(conn *grpc.ClientConn) error {
		res, raw = cap.Apply(cmd.Context(), pb.NewRecordServiceClient(conn), a, opts)
		return raw
	})
	if err != nil {
		st, isStatus := status.FromError(raw)
		switch {
		case raw == nil, isStatus && !slices.Contains([]codes.Code{codes.InvalidArgument, codes.NotFound, codes.FailedPrecondition, codes.AlreadyExists, codes.ResourceExhausted}, st.Code()):
			return fmt.Errorf("%s: %w", name, err) // the call, not the alert: try again
		}
		return refused(err)
	}
	if f.output == "json" {
		return printJSON(cmd.OutOrStdout(), struct {
			File string `json:"file"`
			cap.Result
		}{name, res})
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%s: %s\n", name, res.Describe())
	return nil
}

// optionalClassification parses a classification flag that may be left empty.
func optionalClassification(s string) (pb.Classification, error) {
	if s == "" {
		return pb.Classification_CLASSIFICATION_UNSPECIFIED, nil
	}
	c, err := record.ParseClassification(s)
	if err != nil {
		return 0, fmt.Errorf("--classification %q: use public, internal, confidential or secret", s)
	}
	return c, nil
}

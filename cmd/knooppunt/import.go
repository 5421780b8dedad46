package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/knooppunt/knooppunt/node/cap"
	"github.com/knooppunt/knooppunt/node/record"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// row is one record read from an import file, or the reason it could not be read.
type row struct {
	line   int
	record *pb.Record
	err    error
}

// rejection says why one row was not stored.
type rejection struct {
	Line   int    `json:"line"`
	ID     string `json:"id,omitempty"`
	Code   string `json:"code"`
	Reason string `json:"reason"`
}

type importSummary struct {
	File       string      `json:"file"`
	Accepted   int         `json:"accepted"`
	Rejected   int         `json:"rejected"`
	Rejections []rejection `json:"rejections"`
}

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
		Short: "Load records from a JSON Lines or CSV file, or a CAP 1.2 alert",
		Long: `Load records in batches and print how many were accepted and, for each rejected row, why.
FILE - reads standard input.

JSON Lines: one record per line, as "record get -o json" prints it:
  {"id":"utr-1","kind":"shelter.capacity","crisis":"oekraine","region":"VR09",
   "classification":"internal","body":{"municipality":"Utrecht","beds_total":120,"beds_free":14}}

CSV: a header row names the columns. id, kind, crisis, region, classification, valid_until and
labels (key=value;key=value) fill the record; body holds a whole JSON object; label.KEY sets one
label; every other column, or body.FIELD, becomes a body field (numbers and true/false are typed).
--kind, --crisis, --region and --classification fill what a row leaves empty.

CAP (--format cap, or a .cap or .xml file): one CAP 1.2 alert becomes a record of the built-in
alert kind, its CAP fields in the body. Its status becomes the record's status; its scope the
classification (Public public, Restricted internal, Private confidential, unless the node's
cap.scopes say otherwise, or --classification overrides it). An Update or Cancel rewrites or
deletes the record of the alert it references. An Exercise alert needs its exercise's name:
--exercise NAME, or the name in the alert's <note>. --crisis and --region default to all and NL.
A document with a DTD, over 1 MiB, not well-formed, or not valid CAP 1.2 is refused and nothing
is stored.

The exit code is 0 when every row was stored, 2 when some were rejected.`,
		Example: `  knooppunt import shelters.csv --kind shelter.capacity --crisis oekraine --classification internal
  knooppunt import export.jsonl --batch 1000 -o json
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
				format = strings.TrimPrefix(strings.ToLower(filepath.Ext(args[0])), ".")
				if format == "xml" {
					format = "cap"
				}
			}
			if format == "cap" {
				return importCAP(cmd, &f, file, args[0], capOpts)
			}
			if exercise != "" {
				return fmt.Errorf("--exercise names the exercise of a CAP alert: use it with --format cap")
			}
			size := int64(-1)
			if fi, err := file.Stat(); err == nil && fi.Mode().IsRegular() {
				size = fi.Size()
			}
			bar := progressbar.NewOptions64(size,
				progressbar.OptionSetWriter(cmd.ErrOrStderr()),
				progressbar.OptionSetVisibility(!quiet && f.output != "json"),
				progressbar.OptionSetDescription("importing"),
				progressbar.OptionShowBytes(true),
				progressbar.OptionThrottle(100*time.Millisecond),
				progressbar.OptionClearOnFinish())
			rows, err := readRows(io.TeeReader(file, bar), format, defaults)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			c, closeConn, err := f.records()
			if err != nil {
				return err
			}
			defer closeConn()
			sum, err := importRows(cmd.Context(), c, rows, batch)
			bar.Finish()
			if err != nil {
				return callError(&f, err)
			}
			sum.File = args[0]
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
	fl.StringVar(&format, "format", "", "jsonl, csv or cap (default: from the file name)")
	fl.StringVar(&exercise, "exercise", "", "the exercise a CAP alert of status Exercise belongs to")
	fl.IntVar(&batch, "batch", 500, "records per write")
	fl.StringVar(&defaults.Kind, "kind", "", "kind for rows that name none")
	fl.StringVar(&defaults.Crisis, "crisis", "", "crisis for rows that name none")
	fl.StringVar(&defaults.Region, "region", "", "region for rows that name none")
	fl.StringVar(&defaults.Classification, "classification", "", "classification for rows that name none")
	fl.BoolVarP(&quiet, "quiet", "q", false, "no progress bar")
	f.register(cmd, true)
	return cmd
}

func printSummary(w io.Writer, format string, sum importSummary) error {
	if sum.Rejections == nil {
		sum.Rejections = []rejection{}
	}
	if format == "json" {
		return printJSON(w, sum)
	}
	fmt.Fprintf(w, "%s: %d accepted, %d rejected\n", sum.File, sum.Accepted, sum.Rejected)
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

// importRows writes the rows in batches of size n. A row that could not be read, or that the node
// refused, is a rejection; an error is returned only when the node could not be asked at all.
func importRows(ctx context.Context, c pb.RecordServiceClient, rows []row, n int) (importSummary, error) {
	var sum importSummary
	reject := func(r row, code, reason string) {
		id := ""
		if r.record != nil {
			id = r.record.Id
		}
		sum.Rejected++
		sum.Rejections = append(sum.Rejections, rejection{Line: r.line, ID: id, Code: code, Reason: reason})
	}
	var pending []row
	flush := func() error {
		if len(pending) == 0 {
			return nil
		}
		req := &pb.PutBatchRequest{Records: make([]*pb.Record, len(pending))}
		for i, r := range pending {
			req.Records[i] = r.record
		}
		resp, err := c.PutBatch(ctx, req)
		if err != nil {
			return err
		}
		for _, res := range resp.Results {
			r := pending[res.Index]
			if res.Code != 0 {
				reject(r, codes.Code(res.Code).String(), res.Message)
				continue
			}
			sum.Accepted++
		}
		pending = pending[:0]
		return nil
	}
	for _, r := range rows {
		if r.err != nil {
			reject(r, codes.InvalidArgument.String(), r.err.Error())
			continue
		}
		pending = append(pending, r)
		if len(pending) == n {
			if err := flush(); err != nil {
				return sum, err
			}
		}
	}
	return sum, flush()
}

// readRows reads every row of an import file. A row that cannot be read is returned with its
// error; only a file that cannot be read at all is an error.
func readRows(r io.Reader, format string, defaults record.JSON) ([]row, error) {
	switch format {
	case "jsonl", "ndjson", "json":
		return readJSONL(r, defaults)
	case "csv":
		return readCSV(r, defaults)
	}
	return nil, fmt.Errorf("format %q: use --format jsonl or csv", format)
}

func fillDefaults(j *record.JSON, d record.JSON) {
	for _, p := range []struct {
		dst *string
		def string
	}{
		{&j.Kind, d.Kind}, {&j.Crisis, d.Crisis}, {&j.Region, d.Region}, {&j.Classification, d.Classification},
	} {
		if *p.dst == "" {
			*p.dst = p.def
		}
	}
}

func readJSONL(r io.Reader, defaults record.JSON) ([]row, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var rows []row
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		var j record.JSON
		dec := json.NewDecoder(strings.NewReader(text))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&j); err != nil {
			rows = append(rows, row{line: line, err: fmt.Errorf("not a record: %v", err)})
			continue
		}
		fillDefaults(&j, defaults)
		rec, err := record.FromJSON(j)
		rows = append(rows, row{line: line, record: rec, err: err})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("line %d: %w", line+1, err)
	}
	return rows, nil
}

func readCSV(r io.Reader, defaults record.JSON) ([]row, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("header row: %w", err)
	}
	for i := range header {
		header[i] = strings.TrimSpace(header[i])
	}
	var rows []row
	for {
		fields, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		line, _ := cr.FieldPos(0)
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				rows = append(rows, row{line: pe.Line, err: err})
				continue
			}
			return nil, err
		}
		rec, err := csvRecord(header, fields, defaults)
		rows = append(rows, row{line: line, record: rec, err: err})
	}
	return rows, nil
}

func csvRecord(header, fields []string, defaults record.JSON) (*pb.Record, error) {
	if len(fields) != len(header) {
		return nil, fmt.Errorf("%d fields, the header has %d", len(fields), len(header))
	}
	var j record.JSON
	body := map[string]any{}
	for i, col := range header {
		v := strings.TrimSpace(fields[i])
		switch {
		case col == "id":
			j.ID = v
		case col == "kind":
			j.Kind = v
		case col == "crisis":
			j.Crisis = v
		case col == "region":
			j.Region = v
		case col == "classification":
			j.Classification = v
		case col == "valid_until":
			if v != "" {
				t, err := time.Parse(time.RFC3339, v)
				if err != nil {
					return nil, fmt.Errorf("valid_until %q: use RFC 3339", v)
				}
				j.ValidUntil = &t
			}
		case col == "labels":
			if v == "" {
				continue
			}
			labels, err := parseLabels(strings.Split(v, ";"))
			if err != nil {
				return nil, fmt.Errorf("labels: %w", err)
			}
			j.Labels = labels
		case strings.HasPrefix(col, "label."):
			if v != "" {
				if j.Labels == nil {
					j.Labels = map[string]string{}
				}
				j.Labels[strings.TrimPrefix(col, "label.")] = v
			}
		case col == "body":
			if v == "" {
				continue
			}
			if err := json.Unmarshal([]byte(v), &body); err != nil {
				return nil, fmt.Errorf("body: not a JSON object: %v", err)
			}
		default:
			if v != "" {
				body[strings.TrimPrefix(col, "body.")] = csvValue(v)
			}
		}
	}
	fillDefaults(&j, defaults)
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	j.Body = b
	return record.FromJSON(j)
}

// csvValue types a CSV cell: integers, numbers and booleans become JSON numbers and booleans.
func csvValue(v string) any {
	if i, err := strconv.ParseInt(v, 10, 64); err == nil {
		return i
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		return f
	}
	if b, err := strconv.ParseBool(v); err == nil && (v == "true" || v == "false") {
		return b
	}
	return v
}

// importCAP stores one CAP 1.2 alert as an alert record, or applies its Update or Cancel.
func importCAP(cmd *cobra.Command, f *clientFlags, r io.Reader, name string, opts cap.ImportOptions) error {
	a, err := cap.Parse(r, cap.DefaultMaxBytes)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	var res cap.Result
	err = f.call(func(conn *grpc.ClientConn) error {
		res, err = cap.Apply(cmd.Context(), pb.NewRecordServiceClient(conn), a, opts)
		return err
	})
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
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

// Package importfile reads records from the files people load in bulk, JSON Lines and CSV, and
// writes them through a RecordService client in batches, reporting on every row. The command
// line (`knooppunt import`) and the web interface's upload use it, so that a file means the same
// in both and a row is refused with the same message.
//
// importfile never checks a record itself beyond its shape: the RecordService does, as for any
// other write.
package importfile

import (
	"bufio"
	"cmp"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/knooppunt/knooppunt/node/record"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// Row is one record read from a file, or the reason it could not be read.
type Row struct {
	// Line is the row's line in the file, counting from 1.
	Line int
	// ID is the row's id, when its id could be read, also for a row that could not be read whole.
	ID     string
	Record *pb.Record
	Err    error
}

// Rejection says why one row was not stored.
type Rejection struct {
	Line int    `json:"line"`
	ID   string `json:"id,omitempty"`
	Code string `json:"code"`
	// Field is the record's field the node refused (record.region), or the file's column the
	// reader could not read (valid_until), when either named one.
	Field  string `json:"field,omitempty"`
	Reason string `json:"reason"`
}

// Summary is what an import did.
type Summary struct {
	File       string      `json:"file"`
	Accepted   int         `json:"accepted"`
	Rejected   int         `json:"rejected"`
	Rejections []Rejection `json:"rejections"`
	// Stopped, when the import ended before its last row (the node went away), says after which
	// row, and what to do.
	Stopped string `json:"stopped,omitempty"`
}

// Formats are the file formats Read knows.
var Formats = []string{"jsonl", "csv"}

// FormatOf is the format a file name suggests: its extension, with ndjson and json read as
// JSON Lines; "" when the name says nothing Read knows.
func FormatOf(name string) string {
	switch strings.TrimPrefix(strings.ToLower(filepath.Ext(name)), ".") {
	case "jsonl", "ndjson", "json":
		return "jsonl"
	case "csv":
		return "csv"
	}
	return ""
}

// Read reads every row of a file. A row that cannot be read is returned with its error; only a
// file that cannot be read at all is an error. defaults fills what a row leaves empty: kind,
// crisis, region and classification.
func Read(r io.Reader, format string, defaults record.JSON) ([]Row, error) {
	return ReadNamed(r, format, defaults, nil)
}

// ReadNamed is Read with a CSV file's columns renamed by name, when it is not nil: a column that
// names a field in people's words (Gemeente) becomes the field (municipality). name returns a
// column it does not know as it is.
func ReadNamed(r io.Reader, format string, defaults record.JSON, name func(column string) string) ([]Row, error) {
	switch format {
	case "jsonl", "ndjson", "json":
		return ReadJSONL(r, defaults)
	case "csv":
		return readCSV(r, defaults, name)
	}
	return nil, fmt.Errorf("format %q: use jsonl or csv", format)
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
	// A row that names no mode goes to the exercise of the import, if it has one; a row that
	// names an exercise and no status is an exercise record of it.
	if j.Status == "" && j.Exercise == "" {
		j.Exercise = d.Exercise
	}
	if j.Status == "" && j.Exercise != "" {
		j.Status = "exercise"
	}
}

// ReadJSONL reads one record per line, as `record get -o json` prints it. Empty lines and lines
// that start with # are skipped.
func ReadJSONL(r io.Reader, defaults record.JSON) ([]Row, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var rows []Row
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
			rows = append(rows, Row{Line: line, ID: j.ID, Err: notRecord(text, err)})
			continue
		}
		fillDefaults(&j, defaults)
		rec, err := record.FromJSON(j)
		rows = append(rows, Row{Line: line, ID: j.ID, Record: rec, Err: err})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("line %d: %w", line+1, err)
	}
	return rows, nil
}

// ReadCSV reads a CSV file whose header row names the columns. id, kind, crisis, region,
// classification, valid_until and labels (key=value;key=value) fill the record; body holds a
// whole JSON object; label.KEY sets one label; every other column, or body.FIELD, becomes a body
// field (numbers and true/false are typed).
//
// A spreadsheet's CSV is read as it comes: a byte-order mark before the header is skipped, and a
// header with more semicolons than commas makes the file one that Dutch spreadsheets write, with
// semicolons between the cells and decimal commas in the numbers (3,5).
func ReadCSV(r io.Reader, defaults record.JSON) ([]Row, error) {
	return readCSV(r, defaults, nil)
}

func readCSV(r io.Reader, defaults record.JSON, name func(string) string) ([]Row, error) {
	br := bufio.NewReader(r)
	first, err := br.ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("header row: %w", err)
	}
	first = strings.TrimPrefix(first, "\ufeff")
	if strings.TrimSpace(first) == "" {
		return nil, errors.New("header row: the file is empty: a CSV file starts with a row that names the columns, such as id,kind,crisis,region,classification,municipality")
	}
	cr := csv.NewReader(io.MultiReader(strings.NewReader(first), br))
	cr.FieldsPerRecord = -1
	value := csvValue
	if strings.Count(first, ";") > strings.Count(first, ",") {
		cr.Comma, value = ';', csvValueDecimalComma
	}
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("header row: %w", err)
	}
	for i := range header {
		header[i] = strings.TrimSpace(header[i])
		if name != nil {
			header[i] = name(header[i])
		}
	}
	var rows []Row
	for {
		fields, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		line, _ := cr.FieldPos(0)
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				problem := QuoteMissing
				if errors.Is(err, csv.ErrBareQuote) {
					problem = BareQuote
				}
				rows = append(rows, Row{Line: pe.Line, Err: &LineError{Problem: problem, err: err}})
				continue
			}
			return nil, err
		}
		rec, err := csvRecord(header, fields, defaults, value)
		row := Row{Line: line, Record: rec, Err: err}
		if i := slices.Index(header, "id"); i >= 0 && i < len(fields) {
			row.ID = strings.TrimSpace(fields[i])
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// badTime refuses a column or field that holds no time.
func badTime(field, v string) *record.FieldError {
	return &record.FieldError{Field: field, Code: codes.InvalidArgument, Reason: fmt.Sprintf("%q: use RFC 3339, such as 2026-12-31T00:00:00Z", v)}
}

// Problem is why the reader could not read a line as a record.
type Problem int

const (
	// NotJSON: a JSON Lines line that is no JSON object.
	NotJSON Problem = iota + 1
	// UnknownField: a JSON Lines record with a field that a record has not (Field).
	UnknownField
	// WrongType: a JSON Lines record with a value of another type than its field's (Field).
	WrongType
	// BareQuote: a CSV field that is not quoted but holds a double quote.
	BareQuote
	// QuoteMissing: a quoted CSV field whose quote is not closed, or is followed by more text.
	QuoteMissing
)

// LineError refuses a line that the reader cannot read as a record, and says why in Problem, so
// that the web interface can say it in the person's words.
type LineError struct {
	Problem Problem
	// Field is the record's field, for UnknownField and WrongType.
	Field string
	err   error
}

func (e *LineError) Error() string {
	if e.Problem == BareQuote || e.Problem == QuoteMissing {
		return e.err.Error() + ": quote a text that holds a double quote, and double the quote inside it"
	}
	if te, ok := errors.AsType[*json.UnmarshalTypeError](e.err); ok && e.Problem == WrongType && te.Field != "" {
		// Not encoding/json's Go type names (JSON.version of type int64): what to write.
		return fmt.Sprintf("not a record: %s: got a JSON %s, want %s", te.Field, te.Value, jsonWant(te.Type.Kind()))
	}
	return "not a record: " + e.err.Error()
}

// jsonWant says what JSON a field of Go kind k takes.
func jsonWant(k reflect.Kind) string {
	switch k {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number, not in quotes"
	case reflect.Float32, reflect.Float64:
		return "a number"
	}
	return "another type"
}

func (e *LineError) Unwrap() error { return e.err }

// notRecord says why a JSON Lines line, text, did not decode as a record (err): a LineError, or
// a record.FieldError for a time that is none, as ReadCSV says it.
func notRecord(text string, err error) error {
	var fields map[string]json.RawMessage
	if json.Unmarshal([]byte(text), &fields) != nil {
		return &LineError{Problem: NotJSON, err: err}
	}
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		return &LineError{Problem: WrongType, Field: te.Field, err: err}
	}
	if _, ok := errors.AsType[*time.ParseError](err); ok {
		for _, name := range []string{"valid_until", "updated_at"} {
			var t time.Time
			if v, ok := fields[name]; ok && json.Unmarshal(v, &t) != nil {
				return badTime(name, strings.Trim(string(v), `"`))
			}
		}
	}
	known := recordFields()
	for name := range fields {
		if !known[name] {
			return &LineError{Problem: UnknownField, Field: name, err: err}
		}
	}
	return &LineError{Problem: NotJSON, err: err}
}

// recordFields is the set of a JSON record's field names, read once from record.JSON's tags.
var recordFields = sync.OnceValue(func() map[string]bool {
	known := map[string]bool{}
	for f := range reflect.TypeFor[record.JSON]().Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		known[name] = true
	}
	return known
})

// FieldCountError refuses a CSV row with another number of fields than its header: most often a
// comma in a text that is not quoted.
type FieldCountError struct {
	Got, Header int
}

func (e *FieldCountError) Error() string {
	return fmt.Sprintf("%d fields, the header has %d: quote a text that holds a comma", e.Got, e.Header)
}

func csvRecord(header, fields []string, defaults record.JSON, value func(string) any) (*pb.Record, error) {
	if len(fields) != len(header) {
		return nil, &FieldCountError{Got: len(fields), Header: len(header)}
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
		case col == "status":
			j.Status = v
		case col == "exercise":
			j.Exercise = v
		case col == "valid_until":
			if v != "" {
				t, err := time.Parse(time.RFC3339, v)
				if err != nil {
					return nil, badTime("valid_until", v)
				}
				j.ValidUntil = &t
			}
		case col == "labels":
			if v == "" {
				continue
			}
			labels, err := ParseLabels(strings.Split(v, ";"))
			if err != nil {
				return nil, &record.FieldError{Field: "labels", Code: codes.InvalidArgument, Reason: err.Error()}
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
				return nil, &record.FieldError{Field: "body", Code: codes.InvalidArgument, Reason: fmt.Sprintf("not a JSON object: %v", err)}
			}
		default:
			if v != "" {
				body[strings.TrimPrefix(col, "body.")] = value(v)
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

// ParseLabels reads key=value pairs; empty items are skipped.
func ParseLabels(kvs []string) (map[string]string, error) {
	var out map[string]string
	for _, kv := range kvs {
		kv = strings.TrimSpace(kv)
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("%q: use key=value", kv)
		}
		if out == nil {
			out = map[string]string{}
		}
		out[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return out, nil
}

// csvNumber is a cell that reads as a number: digits with an optional sign and decimals, and no
// leading zero before another digit. 0612345678 (a phone number), 0123 (a code) and +31… stay
// text, and so do 1e5, Inf and NaN, which a spreadsheet's text cell can hold.
var csvNumber = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?$`)

// csvValue types a CSV cell: integers, numbers and booleans become JSON numbers and booleans;
// everything else, a number with a leading zero among it, stays text.
func csvValue(v string) any {
	if csvNumber.MatchString(v) {
		if i, err := strconv.ParseInt(v, 10, 64); err == nil {
			return i
		}
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			return f
		}
	}
	if v == "true" || v == "false" {
		return v == "true"
	}
	return v
}

// csvValueDecimalComma types a cell of a file with semicolons between the cells, whose numbers
// may have a decimal comma (3,5) as a Dutch spreadsheet writes them.
func csvValueDecimalComma(v string) any {
	if d := strings.Replace(v, ",", ".", 1); d != v && csvNumber.MatchString(d) {
		return csvValue(d)
	}
	return csvValue(v)
}

// maxBatchBytes bounds the records of one batch, encoded: half of what a node's gRPC server and
// the client take in one message (node.MaxMessageBytes, 64 MiB), so that a file of large rows
// goes in smaller batches rather than failing whole.
const maxBatchBytes = 32 << 20

// Import writes rows in batches of n through c, or fewer when they would pass maxBatchBytes. A row that could not be read, or that the node
// refused, is a rejection; an error is returned only when the node could not be asked at all.
// done, when not nil, is told after each batch how many rows were handled.
func Import(ctx context.Context, c pb.RecordServiceClient, rows []Row, n int, done func(handled int)) (Summary, error) {
	var sum Summary
	handled := 0
	reject := func(r Row, code, field, reason string) {
		sum.Rejected++
		sum.Rejections = append(sum.Rejections, Rejection{Line: r.Line, ID: r.ID, Code: code, Field: field, Reason: reason})
	}
	var (
		pending      []Row
		pendingBytes int
	)
	flush := func() error {
		if len(pending) == 0 {
			return nil
		}
		req := &pb.PutBatchRequest{Records: make([]*pb.Record, len(pending))}
		for i, r := range pending {
			req.Records[i] = r.Record
		}
		resp, err := c.PutBatch(ctx, req)
		if err != nil {
			return err
		}
		for _, res := range resp.Results {
			r := pending[res.Index]
			if res.Code != 0 {
				reject(r, codes.Code(res.Code).String(), res.Field, res.Message)
				continue
			}
			sum.Accepted++
		}
		handled += len(pending)
		pending, pendingBytes = pending[:0], 0
		if done != nil {
			done(handled)
		}
		return nil
	}
	for _, r := range rows {
		if r.Err != nil {
			code, field := codes.InvalidArgument, ""
			if fe, ok := errors.AsType[*record.FieldError](r.Err); ok {
				code, field = fe.Code, fe.Field
			}
			reject(r, code.String(), field, r.Err.Error())
			handled++
			continue
		}
		size := proto.Size(r.Record)
		if len(pending) > 0 && pendingBytes+size > maxBatchBytes {
			if err := flush(); err != nil {
				return sum, err
			}
		}
		pending = append(pending, r)
		pendingBytes += size
		if len(pending) == n {
			if err := flush(); err != nil {
				return sum, err
			}
		}
	}
	err := flush()
	// A row the reader refused is rejected at once, one the node refused with its batch: the
	// report reads in the file's order.
	slices.SortStableFunc(sum.Rejections, func(a, b Rejection) int { return cmp.Compare(a.Line, b.Line) })
	return sum, err
}

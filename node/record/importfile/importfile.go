// Package importfile reads records from the files people load in bulk, JSON (JSON Lines, or what
// record list and record get -o json write) and CSV, and writes them through a RecordService
// client in batches, reporting on every row. The command line (`knooppunt import`) and the web
// interface's upload use it, so that a file means the same in both and a row is refused with the
// same message.
//
// importfile never checks a record itself beyond its shape: the RecordService does, as for any
// other write.
package importfile

import (
	"bufio"
	"bytes"
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

	rpccode "google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/knooppunt/knooppunt/node/api"
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
	// Code is the gRPC code's name as every JSON error of the command line writes it
	// (INVALID_ARGUMENT).
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

// Forms says what JSON ReadJSONL takes, for the errors that refuse a file of another shape.
const Forms = `import takes JSON Lines (one record object a line), one JSON array of record objects (as "record list -o json" writes it), or record objects spread over several lines (as "record get -o json" writes it)`

// maxLine bounds a line of JSON Lines.
const maxLine = 16 << 20

// ReadJSONL reads records written as JSON in one of the forms that the command line writes and
// people keep (Forms): JSON Lines, one record a line, in which empty lines and lines that start
// with # are skipped; one JSON array of records; or records spread over several lines each. The
// first line that is neither empty nor a comment tells which: [ starts an array, a whole JSON
// object on its line is JSON Lines, and an object that goes on past its line is records over
// lines.
//
// A record that is not one is a row with its error, at the line where it starts. JSON of another
// shape, or JSON that breaks off where no line ends a record, is an error: such a file is refused
// once, not with a rejection for every line of it. An array is read a record at a time, so that
// a large one is not held whole besides its rows.
func ReadJSONL(r io.Reader, defaults record.JSON) ([]Row, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	// head is what was read to tell the form; the reader of that form reads it again.
	var head []byte
	line := 1
	for {
		start := len(head)
		chunk, err := br.ReadSlice('\n')
		head = append(head, chunk...)
		if start == 0 {
			head = bytes.TrimPrefix(head, []byte("\uFEFF"))
		}
		// A line is read whole to tell whether it is a record (JSON Lines); the start of an array
		// is enough to know one.
		for errors.Is(err, bufio.ErrBufferFull) && len(head)-start < maxLine && !bytes.HasPrefix(bytes.TrimSpace(head[start:]), []byte("[")) {
			chunk, err = br.ReadSlice('\n')
			head = append(head, chunk...)
		}
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		text := bytes.TrimSpace(head[start:])
		// JSON Lines skips its comments itself; the other forms are read from their first line,
		// as JSON has no comments.
		rest := io.MultiReader(bytes.NewReader(head[start:]), br)
		switch {
		case len(text) == 0 || text[0] == '#':
			if errors.Is(err, io.EOF) {
				return nil, nil
			}
			line++
			continue
		case text[0] == '[':
			return readValues(rest, line, defaults, true)
		case text[0] == '{' && json.Valid(text):
			return readLines(io.MultiReader(bytes.NewReader(head), br), defaults)
		case text[0] == '{':
			rows, err := readValues(rest, line, defaults, false)
			if lines, ok := errors.AsType[*jsonLinesAfterAll](err); ok {
				return readLines(io.MultiReader(bytes.NewReader(head[:start]), bytes.NewReader(lines.read), rest), defaults)
			}
			return rows, err
		}
		return nil, fmt.Errorf("line %d: %s, not a record object or an array of them: %s", line, jsonKind(text), Forms)
	}
}

// readLines reads JSON Lines, one record a line.
func readLines(r io.Reader, defaults record.JSON) ([]Row, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	var rows []Row
	line := 0
	for sc.Scan() {
		line++
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 || text[0] == '#' {
			continue
		}
		rows = append(rows, readRecord(text, line, defaults))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("line %d: %w", line+1, err)
	}
	return rows, nil
}

// readValues reads JSON arrays of records, one after another (array), or records one after
// another, each over as many lines as it takes. r starts at line first of the file.
func readValues(r io.Reader, first int, defaults record.JSON, array bool) ([]Row, error) {
	lc := &lineCounter{r: r, line: first - 1}
	dec := json.NewDecoder(lc)
	var rows []Row
	// broken stops the file where the decoder could read no further: past that point no record
	// can be told from the next.
	broken := func(err error) error {
		off := dec.InputOffset()
		if se, ok := errors.AsType[*json.SyntaxError](err); ok {
			off = se.Offset
		}
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return fmt.Errorf("line %d: the file ends here, inside its JSON: it is cut off", lc.lineAt(max(off, lc.read-1)))
		}
		return fmt.Errorf("line %d: not JSON (%v): %s", lc.lineAt(off), err, Forms)
	}
	next := func(n int) error {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return err
		}
		line := lc.lineAt(dec.InputOffset() - int64(len(raw)))
		if raw[0] != '{' {
			if array {
				return fmt.Errorf("line %d: record %d of the array is %s, not a record object: %s", line, n, jsonKind(raw), Forms)
			}
			return fmt.Errorf("line %d: %s, not a record object: %s", line, jsonKind(raw), Forms)
		}
		rows = append(rows, readRecord(raw, line, defaults))
		lc.keeping, lc.kept = false, nil
		return nil
	}
	if !array {
		// A first record that goes on past its line may be a line of JSON Lines that is no
		// record: JSON that breaks on that line, or that the decoder takes the lines after for
		// the rest of, until it meets a whole record that cannot go on it. What it read is kept
		// to read again as JSON Lines.
		lc.keeping = true
		for {
			err := next(0)
			if errors.Is(err, io.EOF) {
				return rows, nil
			}
			if se, ok := errors.AsType[*json.SyntaxError](err); ok && lc.keeping && (lc.firstLine(se.Offset-1) || lc.wholeObjectAt(se.Offset-1)) {
				return nil, &jsonLinesAfterAll{read: lc.kept}
			}
			lc.keeping, lc.kept = false, nil
			if _, ok := errors.AsType[*json.SyntaxError](err); ok || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, broken(err)
			}
			if err != nil {
				return nil, err
			}
		}
	}
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return rows, nil
		}
		if err != nil {
			return nil, broken(err)
		}
		if tok != json.Delim('[') {
			return nil, fmt.Errorf("line %d: after the array comes something else than another array: %s", lc.lineAt(dec.InputOffset()), Forms)
		}
		for n := 1; dec.More(); n++ {
			err := next(n)
			if _, ok := errors.AsType[*json.SyntaxError](err); ok || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				return nil, broken(err)
			}
			if err != nil {
				return nil, err
			}
		}
		if _, err := dec.Token(); err != nil {
			return nil, broken(err)
		}
	}
}

// readRecord reads one record, text, that starts at line.
func readRecord(text []byte, line int, defaults record.JSON) Row {
	var j record.JSON
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return Row{Line: line, ID: j.ID, Err: notRecord(string(text), err)}
	}
	fillDefaults(&j, defaults)
	rec, err := record.FromJSON(j)
	return Row{Line: line, ID: j.ID, Record: rec, Err: err}
}

// jsonKind says what JSON value text starts, in words.
func jsonKind(text []byte) string {
	switch text[0] {
	case '{':
		return "a JSON object"
	case '[':
		return "a JSON array"
	case '"':
		return "a JSON string"
	case 't', 'f':
		return "true or false"
	case 'n':
		return "null"
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return "a number"
	}
	return "no JSON"
}

// jsonLinesAfterAll says that a file taken for records over lines is JSON Lines after all, whose
// first line is no record; read is what was read of it.
type jsonLinesAfterAll struct{ read []byte }

func (e *jsonLinesAfterAll) Error() string { return "JSON Lines after all" }

// lineCounter counts the lines of what is read through it, so that a record read by a
// json.Decoder, which reads ahead, can be named by the line where it starts.
type lineCounter struct {
	r    io.Reader
	read int64
	// newlines are the offsets of the newlines read and not yet counted in line.
	newlines []int64
	line     int
	// kept is what was read from the start, while keeping.
	kept    []byte
	keeping bool
}

// firstLine reports whether the byte at offset off, of what was kept, is on the first line.
func (c *lineCounter) firstLine(off int64) bool {
	return off >= 0 && off < int64(len(c.kept)) && bytes.IndexByte(c.kept[:off], '\n') < 0
}

// wholeObjectAt reports whether the line of the byte at offset off, of what was kept, is a
// whole JSON object on its own. It reads on to the end of that line.
func (c *lineCounter) wholeObjectAt(off int64) bool {
	if off < 0 || off >= int64(len(c.kept)) {
		return false
	}
	start := bytes.LastIndexByte(c.kept[:off], '\n') + 1
	buf := make([]byte, 4096)
	for !bytes.Contains(c.kept[start:], []byte("\n")) && len(c.kept)-start < maxLine {
		if n, err := c.Read(buf); n == 0 || err != nil {
			break
		}
	}
	text, _, _ := bytes.Cut(c.kept[start:], []byte("\n"))
	text = bytes.TrimSpace(text)
	return len(text) > 0 && text[0] == '{' && json.Valid(text)
}

func (c *lineCounter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if c.keeping {
		c.kept = append(c.kept, p[:n]...)
	}
	for i, b := range p[:n] {
		if b == '\n' {
			c.newlines = append(c.newlines, c.read+int64(i))
		}
	}
	c.read += int64(n)
	return n, err
}

// lineAt is the line, from 1, of the byte at offset off. off never goes back from one call to
// the next.
func (c *lineCounter) lineAt(off int64) int {
	i := 0
	for i < len(c.newlines) && c.newlines[i] < off {
		i++
	}
	c.line += i
	c.newlines = c.newlines[i:]
	return c.line + 1
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
	// Not encoding/json's words either (Go value of type record.JSON, unexpected EOF).
	switch te, isType := errors.AsType[*json.UnmarshalTypeError](e.err); {
	case isType && te.Field == "":
		return fmt.Sprintf("not a record: got a JSON %s, want a JSON object of a record's fields (%s)", te.Value, recordFieldNames())
	case e.Problem == UnknownField:
		return fmt.Sprintf("not a record: %q is no field of a record: use %s", e.Field, recordFieldNames())
	case errors.Is(e.err, io.ErrUnexpectedEOF):
		return "not a record: the line ends before its JSON object does: JSON Lines holds each record whole on one line"
	}
	if se, ok := errors.AsType[*json.SyntaxError](e.err); ok {
		return fmt.Sprintf("not a record: not JSON (%v): JSON Lines holds one JSON object a line", se)
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

// recordFieldNames names a JSON record's fields, in the order record get -o json prints them.
var recordFieldNames = sync.OnceValue(func() string {
	var names []string
	for f := range reflect.TypeFor[record.JSON]().Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		names = append(names, name)
	}
	return strings.Join(names, ", ")
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

// neverHeld reports whether the node refused r, a record that names a version, as one it has
// never held: a stale version, the node's at 0.
func neverHeld(r Row, res *pb.PutBatchResult) bool {
	return r.Record.Version > 0 && res.Reason == api.ReasonStaleVersion && res.CurrentVersion == 0
}

// maxBatchBytes bounds the records of one batch, encoded: half of what a node's gRPC server and
// the client take in one message (node.MaxMessageBytes, 64 MiB), so that a file of large rows
// goes in smaller batches rather than failing whole.
const maxBatchBytes = 32 << 20

// codeName is c's name as google.rpc.Code writes it: INVALID_ARGUMENT, not InvalidArgument
// (review Z, Z10).
func codeName(c codes.Code) string { return rpccode.Code(c).String() }

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
		var again []Row
		for _, res := range resp.Results {
			r := pending[res.Index]
			if neverHeld(r, res) {
				again = append(again, r)
				continue
			}
			if res.Code != 0 {
				reject(r, codeName(codes.Code(res.Code)), res.Field, res.Message)
				continue
			}
			sum.Accepted++
		}
		if len(again) > 0 {
			// A record kept from a node (record list -o json) names the version it had there.
			// The node this one goes to has never held it, so that version is no one's it
			// could have read since: the record is written as new (version 0, which would also
			// overwrite one written in the moment between). A node that holds the record at
			// another version, deleted or not, still refuses it.
			req := &pb.PutBatchRequest{Records: make([]*pb.Record, len(again))}
			for i, r := range again {
				req.Records[i] = proto.CloneOf(r.Record)
				req.Records[i].Version = 0
			}
			resp, err := c.PutBatch(ctx, req)
			if err != nil {
				return err
			}
			for _, res := range resp.Results {
				if res.Code != 0 {
					reject(again[res.Index], codeName(codes.Code(res.Code)), res.Field, res.Message)
					continue
				}
				sum.Accepted++
			}
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
			reject(r, codeName(code), field, r.Err.Error())
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

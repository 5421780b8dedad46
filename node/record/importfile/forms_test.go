package importfile_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/knooppunt/knooppunt/node/record"
	"github.com/knooppunt/knooppunt/node/record/importfile"
)

// TestJSONForms: the records the command line writes read back as the same records, whether a
// file is JSON Lines, one indented array (record list -o json) or indented records one after
// another (record get -o json, twice); each row is at the line where its record starts, and a
// record a node refuses is one row, not one for each of its lines.
func TestJSONForms(t *testing.T) {
	recs := []record.JSON{
		{ID: "a", Origin: "local.crisis.test", Kind: "sitrep", Crisis: "c", Region: "VR19", Classification: "internal",
			Labels: map[string]string{"bron": "lcvs"}, Body: json.RawMessage(`{"title":"t","summary":"s"}`), Version: 3},
		{ID: "b", Kind: "sitrep", Crisis: "c", Region: "VR19", Classification: "internal", Body: json.RawMessage(`{"title":"u"}`), Status: "exercise", Exercise: "oef"},
		{ID: "c", Kind: "sitrep", Crisis: "c", Region: "VR99", Classification: "geheimzinnig", Body: json.RawMessage(`{}`)},
	}
	indent := func(v any) string {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		return string(b) + "\n"
	}
	var lines, objects []string
	for _, r := range recs {
		b, _ := json.Marshal(r)
		lines = append(lines, string(b))
		objects = append(objects, indent(r))
	}
	array := indent(recs)
	// The line where each record starts: 2, then after the lines of those before it.
	startsIn := func(file string) []int {
		var at []int
		for i, l := range strings.Split(file, "\n") {
			if strings.TrimSpace(l) == "{" {
				at = append(at, i+1)
			}
		}
		return at
	}
	for _, tc := range []struct {
		name, file string
		lines      []int
	}{
		{"JSON Lines", "# kept\n" + strings.Join(lines, "\n") + "\n", []int{2, 3, 4}},
		{"an array", array, startsIn(array)},
		{"an array on one line, after a byte order mark", "\ufeff[" + strings.Join(lines, ",") + "]", []int{1, 1, 1}},
		{"records over lines", strings.Join(objects, ""), startsIn(strings.Join(objects, ""))},
		{"a record over lines after an empty line", "\n" + objects[0], []int{2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rows, err := importfile.Read(strings.NewReader(tc.file), "jsonl", record.JSON{})
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != len(tc.lines) {
				t.Fatalf("%d rows, want %d: %+v", len(rows), len(tc.lines), rows)
			}
			for i, r := range rows {
				if r.Line != tc.lines[i] || r.ID != recs[i].ID {
					t.Errorf("row %d at line %d id %q, want line %d id %q", i, r.Line, r.ID, tc.lines[i], recs[i].ID)
				}
				if recs[i].ID == "c" {
					if r.Err == nil || !strings.Contains(r.Err.Error(), `"geheimzinnig" is not a classification`) {
						t.Errorf("row c: %v, want its classification refused", r.Err)
					}
					continue
				}
				if r.Err != nil {
					t.Fatalf("row %d: %v", i, r.Err)
				}
				got, _ := json.Marshal(record.ToJSON(r.Record))
				want := recs[i]
				want.Body, _ = json.Marshal(json.RawMessage(want.Body))
				if w, _ := json.Marshal(want); string(got) != string(w) {
					t.Errorf("row %d:\n got %s\nwant %s", i, got, w)
				}
			}
		})
	}
}

// TestJSONOfAnotherShape: JSON that is none of the forms is refused once, naming the line and
// the forms, not with a rejection for each of its lines.
func TestJSONOfAnotherShape(t *testing.T) {
	record1 := `{"id":"a","kind":"sitrep","crisis":"c","region":"VR19","classification":"internal","body":{}}`
	for _, tc := range []struct{ name, file, want string }{
		{"an array of ids", "[\n  \"a\",\n  \"b\"\n]\n", `line 2: record 1 of the array is a JSON string, not a record object: import takes JSON Lines`},
		{"an array of records and ids", "[\n" + record1 + ",\n\"b\"\n]\n", `line 3: record 2 of the array is a JSON string, not a record object: import takes JSON Lines`},
		{"a number", "42\n", `line 1: a number, not a record object or an array of them: import takes JSON Lines`},
		{"a text", "# ids\n\"a\"\n", `line 2: a JSON string, not a record object or an array of them: import takes JSON Lines`},
		{"CSV", "id,kind\na,sitrep\n", `line 1: no JSON, not a record object or an array of them: import takes JSON Lines`},
		{"a record cut off", "{\n  \"id\": \"a\",\n  \"kind\": \"sitrep\",\n", `line 3: the file ends here, inside its JSON: it is cut off`},
		{"an array cut off", "[\n" + record1 + ",\n", `line 2: the file ends here, inside its JSON: it is cut off`},
		{"records over lines and then no JSON", "{\n  \"id\": \"a\"\n}\n{\n  \"id\": \"b\",,\n}\n", `line 5: not JSON (invalid character ',' looking for beginning of object key string): import takes JSON Lines`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rows, err := importfile.Read(strings.NewReader(tc.file), "jsonl", record.JSON{})
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("rows %+v, error %v; want an error %q…", rows, err, tc.want)
			}
		})
	}
}

// TestNotARecordSaysWhatIsWanted: a line of JSON Lines that is no record says what a record is,
// in JSON's words, not encoding/json's (Go value of type record.JSON, unexpected EOF).
func TestNotARecordSaysWhatIsWanted(t *testing.T) {
	const good = `{"id":"ok","kind":"sitrep","crisis":"c","region":"VR19","classification":"internal","body":{}}`
	fields := "id, origin, kind, crisis, region, classification, labels, body, version, updated_at, valid_until, tombstone, status, exercise"
	for _, tc := range []struct{ line, want string }{
		{`"a"`, "not a record: got a JSON string, want a JSON object of a record's fields (" + fields + ")"},
		{`[1, 2]`, "not a record: got a JSON array, want a JSON object of a record's fields (" + fields + ")"},
		{`{"id": "x", "kind": `, "not a record: the line ends before its JSON object does: JSON Lines holds each record whole on one line"},
		{`{"id": x}`, "not a record: not JSON (invalid character 'x' looking for beginning of value): JSON Lines holds one JSON object a line"},
		{`{"id":"u","regio":"VR09"}`, `not a record: "regio" is no field of a record: use ` + fields},
	} {
		t.Run(tc.line, func(t *testing.T) {
			rows, err := importfile.Read(strings.NewReader(good+"\n"+tc.line+"\n"), "jsonl", record.JSON{})
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != 2 || rows[1].Err == nil || rows[1].Line != 2 {
				t.Fatalf("rows %+v, want the second refused", rows)
			}
			if got := rows[1].Err.Error(); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
			if got := fmt.Sprint(rows[1].Err); strings.Contains(got, "Go value") || strings.Contains(got, "record.JSON") {
				t.Errorf("%q names a Go type", got)
			}
		})
	}
}

// TestJSONLinesWhoseFirstLineIsNoRecord: a first line that starts a JSON object and does not end
// it is JSON Lines still, when a line the object cannot go on with is a whole record: the first
// line is one rejection, and the records after it are read, as they were before the other forms.
func TestJSONLinesWhoseFirstLineIsNoRecord(t *testing.T) {
	const good = `{"id":"ok","kind":"sitrep","crisis":"c","region":"VR19","classification":"internal","body":{}}`
	for _, tc := range []struct {
		name, file string
		lines      []int
	}{
		{"no JSON on the first line", "{\"id\": \"x\", \"kind\": x}\n" + good + "\n", []int{1, 2}},
		{"the next line a record", "# kept\n{\"id\": \"x\", \"kind\": \n" + good + "\n" + good + "\n", []int{2, 3, 4}},
		// The decoder takes the second line for the first one's kind; the third cannot follow.
		{"the next line taken into it", "{\"id\": \"x\", \"kind\": \n" + good + "\n" + good + "\n" + good + "\n", []int{1, 2, 3, 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rows, err := importfile.Read(strings.NewReader(tc.file), "jsonl", record.JSON{})
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != len(tc.lines) || rows[0].Err == nil || !strings.HasPrefix(rows[0].Err.Error(), "not a record: ") {
				t.Fatalf("rows %+v, want the first refused", rows)
			}
			for i, r := range rows {
				if r.Line != tc.lines[i] || (i > 0 && r.Err != nil) {
					t.Errorf("row %d at line %d (%v), want line %d", i, r.Line, r.Err, tc.lines[i])
				}
			}
		})
	}
}

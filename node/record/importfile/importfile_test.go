package importfile_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/knooppunt/knooppunt/node/record"
	"github.com/knooppunt/knooppunt/node/record/importfile"
)

// TestUnreadableLines checks that a line the reader cannot read says why in a form the web
// interface can put in the person's words (a Problem and the field, or the column's FieldError),
// with the row's line and, where it could be read, its id.
func TestUnreadableLines(t *testing.T) {
	const good = `{"id":"ok","kind":"shelter.capacity","crisis":"c","region":"VR09","classification":"internal","body":{}}`
	tests := []struct {
		name, format, file string
		line               int
		id                 string
		problem            importfile.Problem
		field              string // the LineError's Field, or the FieldError's with problem 0
	}{
		{"no JSON", "jsonl", good + "\n{\"id\": \"x\", \"kind\": \n", 2, "", importfile.NotJSON, ""},
		{"a JSON array", "jsonl", good + "\n[1, 2]\n", 2, "", importfile.NotJSON, ""},
		{"a field a record has not", "jsonl", good + "\n" + `{"id":"u","kind":"shelter.capacity","regio":"VR09"}` + "\n", 2, "u", importfile.UnknownField, "regio"},
		{"a number for a text", "jsonl", good + "\n" + `{"id":"n","kind":"shelter.capacity","region":9}` + "\n", 2, "n", importfile.WrongType, "region"},
		{"a version in quotes", "jsonl", good + "\n" + `{"id":"q","kind":"shelter.capacity","version":"1"}` + "\n", 2, "q", importfile.WrongType, "version"},
		{"a time that is none", "jsonl", good + "\n" + `{"id":"v","kind":"shelter.capacity","valid_until":"morgen"}` + "\n", 2, "v", 0, "valid_until"},
		{"a quote inside a text", "csv", "id,region,municipality\nq-1,VR09,Sporthal \"De Klup\"\n", 2, "", importfile.BareQuote, ""},
		{"a quote not closed", "csv", "id,region,municipality\nq-1,VR09,Zeist\nq-2,VR09,\"Sporthal\n", 3, "", importfile.QuoteMissing, ""},
		{"a CSV time that is none", "csv", "id,region,valid_until\nq-1,VR09,morgen\n", 2, "q-1", 0, "valid_until"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rows, err := importfile.Read(strings.NewReader(tc.file), tc.format, record.JSON{})
			if err != nil {
				t.Fatal(err)
			}
			var bad []importfile.Row
			for _, r := range rows {
				if r.Err != nil {
					bad = append(bad, r)
				}
			}
			if len(bad) != 1 {
				t.Fatalf("rows %+v, want one refused", rows)
			}
			r := bad[0]
			if r.Line != tc.line || r.ID != tc.id {
				t.Errorf("line %d id %q, want line %d id %q", r.Line, r.ID, tc.line, tc.id)
			}
			if tc.problem == 0 {
				fe, ok := errors.AsType[*record.FieldError](r.Err)
				if !ok || fe.Field != tc.field {
					t.Fatalf("error %v (%T), want a record.FieldError at %s", r.Err, r.Err, tc.field)
				}
				return
			}
			le, ok := errors.AsType[*importfile.LineError](r.Err)
			if !ok || le.Problem != tc.problem || le.Field != tc.field {
				t.Fatalf("error %v (%+v), want problem %d field %q", r.Err, le, tc.problem, tc.field)
			}
			// A wrong type says what to write, not a Go type.
			if tc.problem == importfile.WrongType && (strings.Contains(r.Err.Error(), "Go struct") || !strings.Contains(r.Err.Error(), tc.field+": got a JSON ")) {
				t.Errorf("wrong type: %q, want the field, what came and what it takes", r.Err)
			}
		})
	}
}

// TestCSVFromASpreadsheet: a Dutch spreadsheet's CSV (a byte-order mark, semicolons between the
// cells, decimal commas) reads as the same records as the comma-separated file, and cells that
// look like numbers but are codes (a phone number, a postcode with a leading zero, +31…) stay
// text in both.
func TestCSVFromASpreadsheet(t *testing.T) {
	const want = `{"beds_free":3.5,"beds_total":40,"contact_phone":"0612345678","municipality":"Houten","open":true,"postcode":"0123","whatsapp":"+31612345678"}`
	files := map[string]string{
		"commas":     "id,kind,region,municipality,beds_total,beds_free,contact_phone,postcode,whatsapp,open\nh-1,shelter.capacity,VR09,Houten,40,3.5,0612345678,0123,+31612345678,true\n",
		"semicolons": "\ufeffid;kind;region;municipality;beds_total;beds_free;contact_phone;postcode;whatsapp;open\r\nh-1;shelter.capacity;VR09;Houten;40;3,5;0612345678;0123;+31612345678;true\r\n",
	}
	for name, file := range files {
		t.Run(name, func(t *testing.T) {
			rows, err := importfile.Read(strings.NewReader(file), "csv", record.JSON{Crisis: "c", Classification: "internal"})
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != 1 || rows[0].Err != nil || rows[0].Line != 2 {
				t.Fatalf("rows: %+v", rows)
			}
			r := rows[0].Record
			if r.Id != "h-1" || r.Kind != "shelter.capacity" || r.Region != "VR09" || string(r.Body) != want {
				t.Errorf("record %s %s %s, body %s; want h-1 shelter.capacity VR09 %s", r.Id, r.Kind, r.Region, r.Body, want)
			}
		})
	}
	if _, err := importfile.Read(strings.NewReader("\ufeff\n"), "csv", record.JSON{}); err == nil || !strings.Contains(err.Error(), "the file is empty") {
		t.Errorf("an empty CSV file: %v, want that it is empty", err)
	}
}

// TestRowModes: a CSV file's status and exercise columns are the record's mode, as in a JSON Lines
// row, not body fields (where an exercise row would go to the real crisis); body.status is a
// body field of that name. The import's exercise goes to the rows that name no mode, and a row
// that names an exercise and no status is one of it.
func TestRowModes(t *testing.T) {
	const header = "id,kind,crisis,region,classification,status,exercise,body.status,title\n"
	file := header +
		"a,sitrep,c,VR19,internal,,,open,actual or the import's\n" +
		"b,sitrep,c,VR19,internal,exercise,oef-b,,its own exercise\n" +
		"c,sitrep,c,VR19,internal,,oef-c,,an exercise without a status\n" +
		"d,sitrep,c,VR19,internal,test,,,a test record\n"
	jsonl := `{"id":"e","kind":"sitrep","crisis":"c","region":"VR19","classification":"internal","body":{}}` + "\n" +
		`{"id":"f","kind":"sitrep","crisis":"c","region":"VR19","classification":"internal","exercise":"oef-f","body":{}}` + "\n"
	for _, tc := range []struct {
		name, format, file, exercise string
		want                         map[string]string // id: status/exercise
	}{
		{"csv", "csv", file, "", map[string]string{"a": "ACTUAL/", "b": "EXERCISE/oef-b", "c": "EXERCISE/oef-c", "d": "TEST/"}},
		{"csv --exercise", "csv", file, "oef-x", map[string]string{"a": "EXERCISE/oef-x", "b": "EXERCISE/oef-b", "c": "EXERCISE/oef-c", "d": "TEST/"}},
		{"jsonl --exercise", "jsonl", jsonl, "oef-x", map[string]string{"e": "EXERCISE/oef-x", "f": "EXERCISE/oef-f"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rows, err := importfile.Read(strings.NewReader(tc.file), tc.format, record.JSON{Exercise: tc.exercise})
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, r := range rows {
				if r.Err != nil {
					t.Fatalf("line %d: %v", r.Line, r.Err)
				}
				got[r.Record.Id] = r.Record.Status.String() + "/" + r.Record.Exercise
				if strings.Contains(string(r.Record.Body), `"exercise":`) || strings.Contains(string(r.Record.Body), `oef-`) {
					t.Errorf("%s: body %s holds the mode", r.Record.Id, r.Record.Body)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("modes %v, want %v", got, tc.want)
			}
			if tc.format == "csv" && string(rows[0].Record.Body) != `{"status":"open","title":"actual or the import's"}` {
				t.Errorf("body.status: body %s", rows[0].Record.Body)
			}
		})
	}
}

package ui

import (
	"encoding/json"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/knooppunt/knooppunt/node/api"
	"github.com/knooppunt/knooppunt/node/record"
)

// TestBodyFieldsFromSchema: a kind declared in config, with a schema of every property type the
// form knows, becomes form fields in the schema's order, typed; the form's values become a body
// typed by the schema, and a value that does not parse is sent as typed, for the service to
// refuse.
func TestBodyFieldsFromSchema(t *testing.T) {
	kinds, err := record.NewKinds([]record.Kind{{Name: "road.closure", Text: []string{"road", "details"}, Schema: json.RawMessage(`{
		"type": "object", "required": ["road", "lanes"],
		"properties": {
			"road":     {"type": "string", "title": "Weg", "description": "Zoals A12"},
			"lanes":    {"type": "integer", "minimum": 0, "maximum": 6},
			"speed":    {"type": "number"},
			"detour":   {"type": "boolean"},
			"level":    {"enum": [1, 2, "full"]},
			"exits":    {"type": "array"},
			"details":  {"type": "string"},
			"reason":   {"type": "string", "maxLength": 2000}
		}}`)}})
	if err != nil {
		t.Fatal(err)
	}
	fields := bodyFieldsOf(kinds.Get("road.closure"))
	want := []struct{ name, input string }{{"road", inputText}, {"lanes", inputInteger}, {"speed", inputNumber}, {"detour", inputBoolean},
		{"level", inputChoice}, {"exits", inputJSON}, {"details", inputTextarea}, {"reason", inputTextarea}}
	if len(fields) != len(want) {
		t.Fatalf("%d fields, want %d: %+v", len(fields), len(want), fields)
	}
	for i, w := range want {
		if fields[i].Name != w.name || fields[i].Input != w.input {
			t.Errorf("field %d: %s as %s, want %s as %s", i, fields[i].Name, fields[i].Input, w.name, w.input)
		}
	}
	if f := fields[0]; f.Title != "Weg" || f.Description != "Zoals A12" || !f.Required {
		t.Errorf("road: %+v", f)
	}
	if f := fields[1]; f.Min != "0" || f.Max != "6" || !f.Required {
		t.Errorf("lanes: %+v", f)
	}
	values := map[string]string{"road": "A12", "lanes": "2", "speed": "7,5", "detour": "true", "level": "2", "exits": `["Bunnik"]`, "details": "", "reason": "werk"}
	for i := range fields {
		fields[i].Value = values[fields[i].Name]
	}
	if got := string(bodyOf(fields)); got != `{"detour":true,"exits":["Bunnik"],"lanes":2,"level":2,"reason":"werk","road":"A12","speed":7.5}` {
		t.Errorf("body %s", got)
	}
	// The choice "full" stays a string; a word in a number field is sent as the word.
	fields[4].Value, fields[1].Value = "full", "twee"
	if got := string(bodyOf(fields)); got != `{"detour":true,"exits":["Bunnik"],"lanes":"twee","level":"full","reason":"werk","road":"A12","speed":7.5}` {
		t.Errorf("body %s", got)
	}
	// A stored body fills the form back in.
	fillFields(fields, []byte(`{"road":"A2","lanes":3,"exits":["Zaltbommel"]}`))
	if fields[0].Value != "A2" || fields[1].Value != "3" || fields[5].Value != `["Zaltbommel"]` {
		t.Errorf("filled: %+v", fields[:6])
	}
	// No schema: no fields, and the form asks for the body as JSON.
	if f := bodyFieldsOf(&record.Kind{Name: "note"}); f != nil {
		t.Errorf("a kind without a schema has fields %+v", f)
	}
}

func TestFieldOf(t *testing.T) {
	invalid := func(field, reason string) error { return api.Invalid(field, "%s", reason) }
	for _, c := range []struct {
		err           error
		field, reason string
	}{
		{invalid("record.body.beds_free", "minimum: got -3, want 0 (kind shelter.capacity)"), "body.beds_free", "minimum: got -3, want 0 (kind shelter.capacity)"},
		{invalid("record.body", "missing property 'municipality' (kind shelter.capacity)"), "body.municipality", "missing property 'municipality' (kind shelter.capacity)"},
		{invalid("record.crisis", `"X" is not a crisis name: use a name such as oekraine`), "crisis", `"X" is not a crisis name: use a name such as oekraine`},
		{invalid("record.body.exits.0", "got number, want string"), "body.exits", "got number, want string"},
		{invalid("records[2].crisis", "missing"), "", "records[2].crisis: missing"},
		{status.Error(codes.Aborted, `record "x" is at version 2, not 1: read it again`), "", `record "x" is at version 2, not 1: read it again`},
	} {
		f, r := fieldOf(c.err)
		if f != c.field || r != c.reason {
			t.Errorf("fieldOf(%v) = %q, %q; want %q, %q", c.err, f, r, c.field, c.reason)
		}
	}
}

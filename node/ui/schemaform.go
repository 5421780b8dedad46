package ui

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/big"
	"slices"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6/kind"

	"github.com/knooppunt/knooppunt/node/record"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// The own-record form is generated from the kind's JSON Schema: one field per property of the
// body, in the schema's order, typed by the property's type. Before it sends a record, the
// interface checks what it can say in the person's words, each at its field (recordProblems:
// the node's own checks of the id, crisis and region, and the kind's schema); every value then
// goes to RecordService.Put as typed as the person left it (a word in a number field stays a
// word), which checks all of it again, as for a write over gRPC.

// Form field types.
const (
	inputText     = "text"
	inputTextarea = "textarea"
	inputInteger  = "integer"
	inputNumber   = "number"
	inputBoolean  = "boolean"
	inputChoice   = "choice"
	inputJSON     = "json"
)

// bodyField is one field of the body in the form.
type bodyField struct {
	// Name is the property's name; the form field is body.NAME.
	Name        string
	Title       string
	Description string
	Input       string
	Required    bool
	Choices     []string
	// Min and Max are a number field's bounds, as the schema gives them ("" for none).
	Min, Max string
	// Value is the field's value as the form shows it; Error the service's message about it.
	Value, Error string
	// jsonChoices are the choices that are not strings (numbers, true, null): sent as JSON.
	jsonChoices map[string]bool
}

// schemaProp is the part of a JSON Schema property the form uses.
type schemaProp struct {
	Type        any      `json:"type"`
	Title       string   `json:"title"`
	Description string   `json:"description"`
	Enum        []any    `json:"enum"`
	Minimum     *float64 `json:"minimum"`
	Maximum     *float64 `json:"maximum"`
	MaxLength   *int     `json:"maxLength"`
}

// bodyFields are the form fields of kind's body; nil when the kind has no schema with
// properties (the form then has one field for the whole body as JSON).
func bodyFieldsOf(k *record.Kind) []bodyField {
	doc := schemaDoc(k)
	if len(doc.Properties) == 0 {
		return nil
	}
	var props map[string]schemaProp
	if json.Unmarshal(doc.Properties, &props) != nil {
		return nil
	}
	var out []bodyField
	for _, name := range k.Fields() {
		p := props[name]
		f := bodyField{Name: name, Title: p.Title, Description: p.Description, Required: slices.Contains(doc.Required, name)}
		if f.Title == "" {
			f.Title = name
		}
		typ, _ := p.Type.(string)
		switch {
		case len(p.Enum) > 0:
			f.Input = inputChoice
			for _, e := range p.Enum {
				if s, ok := e.(string); ok {
					f.Choices = append(f.Choices, s)
					continue
				}
				b, _ := json.Marshal(e)
				if f.jsonChoices == nil {
					f.jsonChoices = map[string]bool{}
				}
				f.jsonChoices[string(b)] = true
				f.Choices = append(f.Choices, string(b))
			}
		case typ == "integer":
			f.Input = inputInteger
		case typ == "number":
			f.Input = inputNumber
		case typ == "boolean":
			f.Input = inputBoolean
		case typ == "string":
			f.Input = inputText
			// Prose: the last of the kind's text fields, when it has more than one (a sitrep's
			// summary, an answer, notes), or a string that may be long.
			if (len(k.Text) > 1 && k.Text[len(k.Text)-1] == name) || (p.MaxLength != nil && *p.MaxLength > 200) {
				f.Input = inputTextarea
			}
		default:
			f.Input = inputJSON
		}
		if p.Minimum != nil {
			f.Min = strconv.FormatFloat(*p.Minimum, 'f', -1, 64)
		}
		if p.Maximum != nil {
			f.Max = strconv.FormatFloat(*p.Maximum, 'f', -1, 64)
		}
		out = append(out, f)
	}
	return out
}

// kindSchema is what the pages read of a kind's JSON Schema: its title, its properties and which
// are required.
type kindSchema struct {
	Title      string          `json:"title"`
	Properties json.RawMessage `json:"properties"`
	Required   []string        `json:"required"`
}

// schemaDoc is k's schema as kindSchema; empty for no kind, no schema or one it cannot read.
func schemaDoc(k *record.Kind) kindSchema {
	var doc kindSchema
	if k != nil && len(k.Schema) > 0 {
		if json.Unmarshal(k.Schema, &doc) != nil {
			return kindSchema{}
		}
	}
	return doc
}

// fillFields sets each field's value from a stored body.
func fillFields(fields []bodyField, body []byte) {
	var b map[string]json.RawMessage
	_ = json.Unmarshal(body, &b)
	for i := range fields {
		raw, ok := b[fields[i].Name]
		if !ok {
			continue
		}
		var s string
		if json.Unmarshal(raw, &s) == nil {
			fields[i].Value = s
		} else {
			fields[i].Value = string(raw)
		}
	}
}

// unshownFields are the top-level fields of a stored body that the form has no field for (an
// attachments list, a field another system wrote), by name; nil when the body is not an object.
func unshownFields(fields []bodyField, stored []byte) map[string]json.RawMessage {
	var b map[string]json.RawMessage
	if json.Unmarshal(stored, &b) != nil {
		return nil
	}
	for _, f := range fields {
		delete(b, f.Name)
	}
	return b
}

// unshown are the names of unshownFields, sorted: an edit keeps them as they are.
func unshown(fields []bodyField, stored []byte) []string {
	return slices.Sorted(maps.Keys(unshownFields(fields, stored)))
}

// keepUnshown is the body an edit writes: the form's fields as the form sent them (formBody,
// from bodyOf), and every other field of the stored body as it stands, so that saving a form
// never drops what the form cannot show; and the names of those it kept.
func keepUnshown(fields []bodyField, stored, formBody []byte) ([]byte, []string) {
	kept := unshownFields(fields, stored)
	names := slices.Sorted(maps.Keys(kept))
	var sent map[string]json.RawMessage
	if len(kept) == 0 || json.Unmarshal(formBody, &sent) != nil {
		return formBody, names
	}
	maps.Copy(kept, sent)
	b, err := json.Marshal(kept)
	if err != nil {
		return formBody, names
	}
	return b, names
}

// bodyOf builds the body from the form's values (each field's Value, as the form sent it). An empty field
// is left out; a value that does not parse as its field's type is sent as the text it is, for
// the service to refuse with its own message.
func bodyOf(fields []bodyField) []byte {
	body := map[string]any{}
	for _, f := range fields {
		v := f.Value
		if v == "" {
			continue
		}
		switch f.Input {
		case inputInteger:
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				body[f.Name] = n
				continue
			}
		case inputNumber:
			if n, err := strconv.ParseFloat(strings.Replace(v, ",", ".", 1), 64); err == nil {
				body[f.Name] = n
				continue
			}
		case inputBoolean:
			if b, err := strconv.ParseBool(v); err == nil {
				body[f.Name] = b
				continue
			}
		case inputChoice, inputJSON:
			var j any
			if (f.Input == inputJSON || f.jsonChoices[v]) && json.Unmarshal([]byte(v), &j) == nil {
				body[f.Name] = j
				continue
			}
		}
		body[f.Name] = v
	}
	b, _ := json.Marshal(body)
	return b
}

// fieldProblem is what the node would refuse at one field of a record: id, crisis, region, kind,
// or body.NAME.
type fieldProblem struct {
	Field, Message string
}

// recordProblems are what the node would refuse in rec that the interface can say in the
// person's words, each at its field: the id, crisis and region as the node checks them, an
// unknown kind, and every place where the body breaks its kind's schema (the node names only the
// first, in the API's English). The node checks all of it again when the record is sent.
func recordProblems(l *Lang, kinds *record.Kinds, rec *pb.Record) []fieldProblem {
	var out []fieldProblem
	add := func(field, msg string) { out = append(out, fieldProblem{field, msg}) }
	if rec.Id != "" && record.CheckID("id", rec.Id) != nil {
		add("id", l.T("recordform.id_bad"))
	}
	switch {
	case rec.Crisis == "":
		add("crisis", l.T("schema.required"))
	case record.CheckCrisis("crisis", rec.Crisis) != nil:
		add("crisis", l.T("recordform.crisis_bad"))
	}
	if record.CheckRegion("region", rec.Region) != nil {
		add("region", l.T("recordform.region_bad"))
	}
	k := kinds.Get(rec.Kind)
	if k == nil {
		add("kind", l.T("recordform.kind_unknown", strings.Join(kinds.Names(), ", ")))
		return out
	}
	for _, p := range k.SchemaProblems(rec.Body) {
		if req, ok := p.What.(*kind.Required); ok && len(p.Path) == 0 {
			for _, m := range req.Missing {
				add("body."+m, l.T("schema.required"))
			}
		} else if len(p.Path) > 0 {
			add("body."+p.Path[0], schemaText(l, p))
		}
	}
	label := fieldLabeler(l, k)
	for _, pair := range k.AtMostBroken(rec.Body) {
		add("body."+pair[0], l.T("recordform.at_most", label(pair[1])))
	}
	return out
}

// inWords says problems on one line, each field by its label: "Regio: geen …; Vrije
// opvangplaatsen: vul …".
func inWords(l *Lang, k *record.Kind, problems []fieldProblem) string {
	label := fieldLabeler(l, k)
	parts := make([]string, len(problems))
	for i, p := range problems {
		name, ok := strings.CutPrefix(p.Field, "body.")
		if ok {
			name = label(name)
		} else {
			key := "field." + p.Field // field.id, field.crisis, field.region, field.kind
			name = l.T(key)
		}
		parts[i] = name + ": " + p.Message
	}
	return strings.Join(parts, "; ")
}

// schemaText says what a schema wants of a value, for a person filling in a form.
func schemaText(l *Lang, p record.SchemaProblem) string {
	switch w := p.What.(type) {
	case *kind.Required:
		return l.T("schema.required")
	case *kind.Minimum:
		return l.T("schema.minimum", ratText(w.Want))
	case *kind.Maximum:
		return l.T("schema.maximum", ratText(w.Want))
	case *kind.ExclusiveMinimum:
		return l.T("schema.exclusive_minimum", ratText(w.Want))
	case *kind.ExclusiveMaximum:
		return l.T("schema.exclusive_maximum", ratText(w.Want))
	case *kind.MinLength:
		return l.T("schema.min_length", w.Want)
	case *kind.MaxLength:
		return l.T("schema.max_length", w.Want, w.Got)
	case *kind.Enum:
		choices := make([]string, len(w.Want))
		for i, c := range w.Want {
			choices[i] = fmt.Sprint(c)
		}
		return l.T("schema.enum", strings.Join(choices, ", "))
	case *kind.Type:
		if slices.Contains(w.Want, "integer") {
			return l.T("schema.integer")
		}
		if slices.Contains(w.Want, "number") {
			return l.T("schema.number")
		}
	case *kind.Format:
		return l.T("schema.format", w.Want)
	case *kind.Pattern:
		return l.T("schema.pattern", w.Want)
	}
	return p.Reason()
}

// ratText writes a schema's bound as the form's hints do: 0, 12.5.
func ratText(r *big.Rat) string {
	if r.IsInt() {
		return r.Num().String()
	}
	f, _ := r.Float64()
	return strconv.FormatFloat(f, 'f', -1, 64)
}

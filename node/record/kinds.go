// Package record checks records before they are written: identifiers, classification, labels,
// and the body against the JSON Schema of its kind. Kinds are declared in config, so a new kind of
// information needs no code change.
//
// record never does I/O and never touches the store; a check either passes or returns a
// *FieldError that names the field and says what to fix.
package record

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// Kind is a declared record type.
type Kind struct {
	// Name is how records refer to the kind, such as shelter.capacity.
	Name string `json:"name" yaml:"name"`
	// Description says what records of the kind hold.
	Description string `json:"description,omitempty" yaml:"description,omitempty"`
	// Schema is a JSON Schema (draft 2020-12 unless it says otherwise) for the body. Empty means
	// any JSON object.
	Schema json.RawMessage `json:"schema,omitempty" yaml:"schema,omitempty"`
	// Aggregate lists numeric body fields that may be summed across records, per region and
	// nationally, in the picture.
	Aggregate []string `json:"aggregate,omitempty" yaml:"aggregate,omitempty"`
	// Text lists the body fields (strings, or arrays of strings) that full-text search reads, in
	// the order a snippet prefers them. Empty means every string in the body.
	Text []string `json:"text,omitempty" yaml:"text,omitempty"`

	compiled *jsonschema.Schema
}

// Kinds is the set of kinds a node accepts.
type Kinds struct {
	byName map[string]*Kind
}

// NewKinds compiles the schemas of kinds. It fails on a duplicate name or a schema that does not
// compile, naming the kind.
func NewKinds(kinds []Kind) (*Kinds, error) {
	ks := &Kinds{byName: make(map[string]*Kind, len(kinds))}
	for i := range kinds {
		k := kinds[i]
		if !kindName.MatchString(k.Name) {
			return nil, fmt.Errorf("kinds[%d].name: %q is not a kind name: use lower-case words joined by dots, such as shelter.capacity", i, k.Name)
		}
		if _, dup := ks.byName[k.Name]; dup {
			return nil, fmt.Errorf("kinds[%d].name: kind %q is declared twice", i, k.Name)
		}
		for j, f := range k.Text {
			if f == "" || strings.ContainsAny(f, ". ") {
				return nil, fmt.Errorf("kinds[%d].text[%d] (%s): %q is not a top-level body field name", i, j, k.Name, f)
			}
			if slices.Index(k.Text, f) < j {
				return nil, fmt.Errorf("kinds[%d].text[%d] (%s): %q is listed twice", i, j, k.Name, f)
			}
		}
		if len(k.Schema) > 0 {
			doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(k.Schema))
			if err != nil {
				return nil, fmt.Errorf("kinds[%d].schema (%s): not JSON: %w", i, k.Name, err)
			}
			c := jsonschema.NewCompiler()
			c.DefaultDraft(jsonschema.Draft2020)
			url := "urn:knooppunt:kind:" + k.Name
			if err := c.AddResource(url, doc); err != nil {
				return nil, fmt.Errorf("kinds[%d].schema (%s): %w", i, k.Name, err)
			}
			if k.compiled, err = c.Compile(url); err != nil {
				return nil, fmt.Errorf("kinds[%d].schema (%s): %w", i, k.Name, err)
			}
		}
		ks.byName[k.Name] = &k
	}
	return ks, nil
}

// Get returns the kind with the name, or nil (also on a nil Kinds).
func (ks *Kinds) Get(name string) *Kind {
	if ks == nil {
		return nil
	}
	return ks.byName[name]
}

// Names lists the declared kinds in order.
func (ks *Kinds) Names() []string {
	names := make([]string, 0, len(ks.byName))
	for n := range ks.byName {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

var printer = message.NewPrinter(language.English)

// checkBody validates a decoded body against the kind's schema. The error names the JSON path of
// the first offending value.
func (k *Kind) checkBody(body any) *FieldError {
	if k.compiled == nil {
		return nil
	}
	err := k.compiled.Validate(body)
	if err == nil {
		return nil
	}
	ve, ok := err.(*jsonschema.ValidationError)
	if !ok {
		return invalid("record.body", "%v", err)
	}
	leaf := ve
	for len(leaf.Causes) > 0 {
		leaf = leaf.Causes[0]
	}
	field := "record.body"
	for _, seg := range leaf.InstanceLocation {
		field += "." + seg
	}
	return invalid(field, "%s (kind %s)", leaf.ErrorKind.LocalizedString(printer), k.Name)
}

// DemoKinds are the kinds a node accepts when its config declares none: the Ukraine-refugee
// reception scenario of the demo.
func DemoKinds() []Kind {
	return []Kind{
		{
			Name:        "shelter.capacity",
			Description: "Shelter places of one municipality: total, free, and whom to call.",
			Text:        []string{"municipality", "location", "notes"},
			Aggregate:   []string{"beds_total", "beds_free"},
			Schema: json.RawMessage(`{
  "type": "object",
  "required": ["municipality", "beds_total", "beds_free"],
  "properties": {
    "municipality":  {"type": "string", "minLength": 1},
    "location":      {"type": "string"},
    "beds_total":    {"type": "integer", "minimum": 0},
    "beds_free":     {"type": "integer", "minimum": 0},
    "contact_phone": {"type": "string"},
    "notes":         {"type": "string"}
  }
}`),
		},
		{
			Name:        "sitrep",
			Description: "A situation report.",
			Text:        []string{"title", "summary"},
			Schema: json.RawMessage(`{
  "type": "object",
  "required": ["title", "summary"],
  "properties": {
    "title":    {"type": "string", "minLength": 1},
    "summary":  {"type": "string"},
    "severity": {"enum": ["low", "medium", "high", "critical"]}
  }
}`),
		},
		{
			Name:        "qa",
			Description: "A question and its answer, for the public or for partners.",
			Text:        []string{"question", "answer"},
			Schema: json.RawMessage(`{
  "type": "object",
  "required": ["question", "answer"],
  "properties": {
    "question": {"type": "string", "minLength": 1},
    "answer":   {"type": "string", "minLength": 1},
    "audience": {"type": "string"}
  }
}`),
		},
		{
			Name:        "guidance",
			Description: "Guidance or rules from a ministry, such as work-permit rules.",
			Text:        []string{"title", "summary", "text"},
			Schema: json.RawMessage(`{
  "type": "object",
  "required": ["title", "text"],
  "properties": {
    "title":   {"type": "string", "minLength": 1},
    "summary": {"type": "string"},
    "text":    {"type": "string"},
    "url":     {"type": "string"}
  }
}`),
		},
		{
			Name:        "assessment",
			Description: "A coordinating org's shared assessment (duiding) of a crisis: what the picture means, how it is expected to develop, the advice; tied to the picture it interprets by its content hash and per-source cursors.",
			Text:        []string{"text", "development", "advice"},
			Schema: json.RawMessage(`{
  "type": "object",
  "required": ["text", "development", "advice", "picture"],
  "properties": {
    "text":        {"type": "string", "minLength": 1, "maxLength": 4000},
    "development": {"type": "string", "minLength": 1, "maxLength": 4000},
    "advice":      {"type": "string", "minLength": 1, "maxLength": 4000},
    "picture": {
      "type": "object",
      "required": ["hash", "sources"],
      "properties": {
        "hash":    {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"},
        "sources": {"type": "array", "items": {
          "type": "object",
          "required": ["source", "newest", "entries", "hash"],
          "properties": {
            "source":  {"type": "string"},
            "newest":  {"type": "string"},
            "entries": {"type": "integer", "minimum": 0},
            "hash":    {"type": "string"}
          }
        }}
      }
    }
  }
}`),
		},
		{
			Name:        "assessment.response",
			Description: "A partner's response to a shared assessment: it endorses it, or adds a remark.",
			Text:        []string{"text"},
			Schema: json.RawMessage(`{
  "type": "object",
  "required": ["assessment_origin", "assessment_id", "assessment_version", "response"],
  "properties": {
    "assessment_origin":  {"type": "string", "minLength": 1},
    "assessment_id":      {"type": "string", "minLength": 1},
    "assessment_version": {"type": "integer", "minimum": 1},
    "response":           {"enum": ["endorse", "remark"]},
    "text":               {"type": "string", "maxLength": 4000}
  }
}`),
		},
		{
			Name:        "signal",
			Description: "An early signal that a crisis may be coming (cold phase).",
			Text:        []string{"summary"},
			Schema: json.RawMessage(`{
  "type": "object",
  "required": ["summary"],
  "properties": {
    "summary":    {"type": "string", "minLength": 1},
    "source":     {"type": "string"},
    "confidence": {"type": "number", "minimum": 0, "maximum": 1}
  }
}`),
		},
		{
			Name:        "alert",
			Description: "An early-warning rule fired in a region: which rule, when, on which values; resolved when it cleared. Written by the node, one per episode.",
			Text:        []string{"rule", "description"},
			Schema: json.RawMessage(`{
  "type": "object",
  "required": ["rule", "severity", "region", "status", "fired_at"],
  "properties": {
    "rule":         {"type": "string", "minLength": 1},
    "rule_version": {"type": "integer"},
    "severity":     {"enum": ["minor", "moderate", "severe", "extreme"]},
    "description":  {"type": "string"},
    "region":       {"type": "string"},
    "status":       {"enum": ["firing", "resolved"]},
    "fired_at":     {"type": "string"},
    "resolved_at":  {"type": "string"},
    "condition":    {"type": "string"},
    "values":       {"type": "array"},
    "clear_values": {"type": "array"},
    "history":      {"type": "string"}
  }
}`),
		},
	}
}

func quoteAll(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}

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
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"github.com/tidwall/gjson"
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
	// Aggregate lists numeric top-level body fields that may be summed across records, per region
	// and nationally, in the picture: each once, and declared integer or number when the kind has
	// a schema. A record with a value above MaxAggregate in magnitude in one is refused.
	Aggregate []string `json:"aggregate,omitempty" yaml:"aggregate,omitempty"`
	// AtMost pairs two of the Aggregate fields where the first can never be more than the
	// second, such as [beds_free, beds_total]: a record where it is, a typing error that would
	// replace a partner's figure in the sums, is refused.
	AtMost [][2]string `json:"at_most,omitempty" yaml:"at_most,omitempty"`
	// Text lists the body fields (strings, or arrays of strings) that full-text search reads, in
	// the order a snippet prefers them. Empty means every string in the body.
	Text []string `json:"text,omitempty" yaml:"text,omitempty"`
	// StaleAfter is how long a record of the kind counts as current on the picture: a duration
	// of a minute or more (12h, 90m), or never, for a document that stays current until it is
	// superseded or expires. Empty: a day.
	StaleAfter string `json:"stale_after,omitempty" yaml:"stale_after,omitempty"`

	compiled   *jsonschema.Schema
	staleAfter time.Duration // StaleAfter read; NeverStale for never
}

// DefaultStaleAfter is how long a record counts as current on the picture when its kind says
// nothing else.
const DefaultStaleAfter = 24 * time.Hour

// NeverStale is the stale limit of a kind whose records are never stale.
const NeverStale time.Duration = -1

// StaleLimit is how long a record of the kind counts as current on the picture: its StaleAfter,
// DefaultStaleAfter, or NeverStale. A nil kind (one the node does not know) has the default.
func (k *Kind) StaleLimit() time.Duration {
	if k == nil || k.staleAfter == 0 {
		return DefaultStaleAfter
	}
	return k.staleAfter
}

// Kinds is the set of kinds a node accepts.
type Kinds struct {
	byName map[string]*Kind
}

// NewKinds compiles the schemas of kinds. It fails, naming the kind, on a name CheckKindName
// refuses or given twice, a text or aggregate field that is not a top-level name or is listed
// twice, an aggregate field the schema does not declare a number, or a schema that does not
// compile (one that refers to a file or URL does not).
func NewKinds(kinds []Kind) (*Kinds, error) {
	ks := &Kinds{byName: make(map[string]*Kind, len(kinds))}
	for i := range kinds {
		k := kinds[i]
		if err := CheckKindName(fmt.Sprintf("kinds[%d].name", i), k.Name); err != nil {
			return nil, err
		}
		if _, dup := ks.byName[k.Name]; dup {
			return nil, fmt.Errorf("kinds[%d].name: kind %q is declared twice", i, k.Name)
		}
		for _, list := range []struct {
			name   string
			fields []string
		}{{"text", k.Text}, {"aggregate", k.Aggregate}} {
			for j, f := range list.fields {
				if f == "" || strings.ContainsAny(f, ". ") {
					return nil, fmt.Errorf("kinds[%d].%s[%d] (%s): %q is not a top-level body field name", i, list.name, j, k.Name, f)
				}
				if slices.Index(list.fields, f) < j {
					return nil, fmt.Errorf("kinds[%d].%s[%d] (%s): %q is listed twice", i, list.name, j, k.Name, f)
				}
			}
		}
		for j, pair := range k.AtMost {
			for _, f := range pair {
				if !slices.Contains(k.Aggregate, f) {
					return nil, fmt.Errorf("kinds[%d].at_most[%d] (%s): %q is not one of the kind's aggregate fields (%s)", i, j, k.Name, f, strings.Join(k.Aggregate, ", "))
				}
			}
			if pair[0] == pair[1] {
				return nil, fmt.Errorf("kinds[%d].at_most[%d] (%s): %q is compared with itself: name two fields, the smaller first", i, j, k.Name, pair[0])
			}
		}
		switch d, err := time.ParseDuration(k.StaleAfter); {
		case k.StaleAfter == "":
		case k.StaleAfter == "never":
			k.staleAfter = NeverStale
		case err != nil || d < time.Minute:
			return nil, fmt.Errorf("kinds[%d].stale_after (%s): %q is not a duration of a minute or more: write one such as 12h or 90m, or never", i, k.Name, k.StaleAfter)
		default:
			k.staleAfter = d
		}
		if len(k.Schema) > 0 {
			doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(k.Schema))
			if err != nil {
				return nil, fmt.Errorf("kinds[%d].schema (%s): not JSON: %w", i, k.Name, err)
			}
			for j, f := range k.Aggregate {
				if !numeric(doc, f) {
					return nil, fmt.Errorf("kinds[%d].aggregate[%d] (%s): the schema does not declare %q a number: give it \"type\": \"integer\" or \"number\" in the schema's top-level properties", i, j, k.Name, f)
				}
			}
			c := jsonschema.NewCompiler()
			c.DefaultDraft(jsonschema.Draft2020)
			// A schema is the kind's declaration alone: a file or URL it named would be read at
			// start, and could differ between replicas, so one write would pass on one and not on
			// another. Only the drafts' own metaschemas, which the library holds, resolve.
			c.UseLoader(noLoader{})
			// format is asserted, not only an annotation: a kind that says "format": "date-time"
			// or "email" means it. A format the library does not know is not checked.
			c.AssertFormat()
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

// noLoader refuses to load any schema a kind's schema refers to by URL.
type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("a kind's schema may refer only to its own parts (#/$defs/…) and to the JSON Schema drafts, not to %s: put what it needs in the schema", url)
}

// numeric says whether schema, decoded, declares the top-level body field a number: in its
// properties, with type integer or number, or a list of types that are those and null, written
// there or in the part of the schema its $ref names (#/$defs/count, #/definitions/count).
func numeric(schema any, field string) bool {
	obj, _ := schema.(map[string]any)
	props, _ := obj["properties"].(map[string]any)
	prop, _ := props[field].(map[string]any)
	for range 8 { // a $ref to a $ref, and so on, but not for ever
		ref, ok := prop["$ref"].(string)
		if !ok {
			break
		}
		prop = localPart(obj, ref)
	}
	isNumber := func(t any) bool { return t == "integer" || t == "number" }
	switch t := prop["type"].(type) {
	case string:
		return isNumber(t)
	case []any:
		n := 0
		for _, e := range t {
			switch {
			case isNumber(e):
				n++
			case e != "null":
				return false
			}
		}
		return n > 0
	}
	return false
}

// localPart is the part of schema that a local $ref names, such as #/$defs/count; nil for any
// other.
func localPart(schema map[string]any, ref string) map[string]any {
	path, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil
	}
	var at any = schema
	for _, seg := range strings.Split(path, "/") {
		m, _ := at.(map[string]any)
		at = m[strings.ReplaceAll(strings.ReplaceAll(seg, "~1", "/"), "~0", "~")]
	}
	part, _ := at.(map[string]any)
	return part
}

// Get returns the kind with the name, or nil (also on a nil Kinds).
func (ks *Kinds) Get(name string) *Kind {
	if ks == nil {
		return nil
	}
	return ks.byName[name]
}

// Names lists the declared kinds in order; none for a nil set.
func (ks *Kinds) Names() []string {
	if ks == nil {
		return nil
	}
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
	problems := schemaProblems(err)
	if len(problems) == 0 {
		return invalid("record.body", "%v", err)
	}
	field := "record.body"
	for _, seg := range problems[0].Path {
		field += "." + seg
	}
	return invalid(field, "%s (kind %s)", problems[0].Reason(), k.Name)
}

// SchemaProblem is a place where a body breaks its kind's schema: Path, the members and indexes
// that lead to the value (none: the body itself), and What, what the schema wants there, as
// jsonschema reports it (*kind.Minimum, *kind.Required, *kind.Type, …), for a caller that says
// it in its own words.
type SchemaProblem struct {
	Path []string
	What jsonschema.ErrorKind
}

// Reason says what the schema wants, as the node's refusal says it: "minimum: got -3, want 0". A
// CAP time that is not one says what one is, not the pattern (review X, X6).
func (p SchemaProblem) Reason() string {
	if pt, ok := p.What.(*kind.Pattern); ok && pt.Want == capTimePattern {
		return fmt.Sprintf("%q is not a CAP time: write YYYY-MM-DDThh:mm:ss±hh:mm, such as 2026-12-06T10:00:00+01:00 (CAP writes UTC as +00:00, not Z)", pt.Got)
	}
	return p.What.LocalizedString(printer)
}

// capTimePattern is the pattern of a CAP time in alertSchema ($defs.time), as the schema
// compiler reads it.
const capTimePattern = `^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[-+]\d\d:\d\d$`

// SchemaProblems are the places where a JSON body breaks the kind's schema, the one that
// Checker.CheckPut names first; none for a body that keeps it, for a kind without a schema, and
// for a body that is not JSON or that CheckPut refuses before the schema (a key twice, a number
// out of range, nesting too deep), which CheckPut refuses as such.
func (k *Kind) SchemaProblems(body []byte) []SchemaProblem {
	if k == nil || k.compiled == nil {
		return nil
	}
	// A body the scan refuses is refused as such by CheckPut, before the schema: its numbers
	// would cost the schema check what their exponents say.
	if !json.Valid(body) || scanBody(body, "record.body") != nil {
		return nil
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return nil
	}
	return schemaProblems(k.compiled.Validate(doc))
}

// schemaProblems are the leaves of a validation error, depth first: each a value that breaks a
// keyword, under the groups (allOf, properties, …) that hold them.
func schemaProblems(err error) []SchemaProblem {
	ve, ok := err.(*jsonschema.ValidationError)
	if !ok {
		return nil
	}
	var out []SchemaProblem
	var walk func(*jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			out = append(out, SchemaProblem{Path: e.InstanceLocation, What: e.ErrorKind})
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	return out
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
			AtMost:      [][2]string{{"beds_free", "beds_total"}},
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
			StaleAfter:  "never", // current until superseded or expired (validity)
			Description: "A question and its answer, for the public or for partners. A newer answer names the old one's successor in superseded_by.",
			Text:        []string{"question", "answer"},
			Schema: json.RawMessage(`{
  "type": "object",
  "required": ["question", "answer"],
  "properties": {
    "question":      {"type": "string", "minLength": 1},
    "answer":        {"type": "string", "minLength": 1},
    "audience":      {"type": "string"},
    "language":      ` + languageSchema + `,
    "valid_from":    ` + dateSchema + `,
    "valid_until":   ` + dateSchema + `,
    "superseded_by": ` + idSchema + `
  }
}`),
		},
		{
			Name:        "guidance",
			StaleAfter:  "never", // current until superseded or expired (validity)
			Description: "Guidance from a ministry or partner, such as a handreiking: title, summary, full text, version.",
			Text:        []string{"title", "summary", "text"},
			Schema: json.RawMessage(`{
  "type": "object",
  "required": ["title", "text"],
  "properties": {
    "title":         {"type": "string", "minLength": 1},
    "summary":       {"type": "string"},
    "text":          {"type": "string"},
    "url":           {"type": "string"},
    "version":       {"type": "string", "minLength": 1},
    "language":      ` + languageSchema + `,
    "valid_from":    ` + dateSchema + `,
    "valid_until":   ` + dateSchema + `,
    "superseded_by": ` + idSchema + `
  }
}`),
		},
		{
			Name:        "permit",
			StaleAfter:  "never", // current until superseded or expired (validity)
			Description: "A rule that says who may do what under which conditions, such as SZW's rules on work by people who fled Ukraine.",
			Text:        []string{"title", "summary", "conditions", "applies_to"},
			Schema: json.RawMessage(`{
  "type": "object",
  "required": ["title", "authority", "conditions"],
  "properties": {
    "title":         {"type": "string", "minLength": 1},
    "authority":     {"type": "string", "minLength": 1},
    "applies_to":    {"type": "string"},
    "summary":       {"type": "string"},
    "conditions":    {"type": "string", "minLength": 1},
    "permit_needed": {"type": "boolean"},
    "legal_basis":   {"type": "string"},
    "url":           {"type": "string"},
    "language":      ` + languageSchema + `,
    "valid_from":    ` + dateSchema + `,
    "valid_until":   ` + dateSchema + `,
    "superseded_by": ` + idSchema + `
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
		Alert(),
	}
}

// AlertKind is the name of the built-in alert kind.
const AlertKind = "alert"

// Builtin are the kinds every node accepts whatever kinds its config declares: the alert, which
// early-warning rules and CAP imports write, and the shared assessment with the partners'
// responses to it, which the federation exchanges. A config that declares a kind of one of these
// names replaces it.
func Builtin() []Kind {
	var out []Kind
	for _, k := range DemoKinds() {
		switch k.Name {
		case AlertKind, "assessment", "assessment.response":
			out = append(out, k)
		}
	}
	return out
}

// Alert is the built-in alert kind: a CAP 1.2 alert, its body holding the CAP fields under their
// CAP names (see node/cap), imported with `knooppunt import --format cap` or written by the
// node's early-warning rules, which add what fired, where, when and on which values. A node
// accepts it whatever kinds its config declares.
func Alert() Kind {
	return Kind{
		Name:        AlertKind,
		Description: "A CAP 1.2 alert: imported, or written by an early-warning rule when it fires in a region (one per episode, resolved when it clears).",
		// Never stale: a rule writes its alert once an episode and not again while it keeps
		// firing, so a limit would flag an alert that is still firing STALE; its state says
		// whether it is in force.
		StaleAfter: "never",
		// No text fields: search reads every string, the info blocks' headlines and
		// descriptions in every language among them.
		Schema: json.RawMessage(alertSchema),
	}
}

// alertSchema is CAP 1.2 as JSON: the elements under their CAP names, repeated ones as arrays,
// with CAP's required elements and enumerations; the early-warning rules' fields beside them.
const alertSchema = `{
  "type": "object",
  "required": ["identifier", "sender", "sent", "status", "msgType", "scope"],
  "$defs": {
    "time":  {"type": "string", "pattern": "^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d[-+]\\d\\d:\\d\\d$"},
    "named": {"type": "object", "required": ["valueName", "value"],
              "properties": {"valueName": {"type": "string", "minLength": 1}, "value": {"type": "string"}}},
    "info": {
      "type": "object",
      "required": ["category", "event", "urgency", "severity", "certainty"],
      "properties": {
        "language":     {"type": "string"},
        "category":     {"type": "array", "minItems": 1, "items": {"enum": ["Geo", "Met", "Safety", "Security", "Rescue", "Fire", "Health", "Env", "Transport", "Infra", "CBRNE", "Other"]}},
        "event":        {"type": "string", "minLength": 1},
        "responseType": {"type": "array", "items": {"enum": ["Shelter", "Evacuate", "Prepare", "Execute", "Avoid", "Monitor", "Assess", "AllClear", "None"]}},
        "urgency":      {"enum": ["Immediate", "Expected", "Future", "Past", "Unknown"]},
        "severity":     {"enum": ["Extreme", "Severe", "Moderate", "Minor", "Unknown"]},
        "certainty":    {"enum": ["Observed", "Likely", "Possible", "Unlikely", "Unknown"]},
        "audience":     {"type": "string"},
        "eventCode":    {"type": "array", "items": {"$ref": "#/$defs/named"}},
        "effective":    {"$ref": "#/$defs/time"},
        "onset":        {"$ref": "#/$defs/time"},
        "expires":      {"$ref": "#/$defs/time"},
        "senderName":   {"type": "string"},
        "headline":     {"type": "string"},
        "description":  {"type": "string"},
        "instruction":  {"type": "string"},
        "web":          {"type": "string"},
        "contact":      {"type": "string"},
        "parameter":    {"type": "array", "items": {"$ref": "#/$defs/named"}},
        "resource":     {"type": "array", "items": {"type": "object", "required": ["resourceDesc", "mimeType"],
                         "properties": {"resourceDesc": {"type": "string"}, "mimeType": {"type": "string"}, "size": {"type": "string"},
                                        "uri": {"type": "string"}, "derefUri": {"type": "string"}, "digest": {"type": "string"}}}},
        "area":         {"type": "array", "items": {"type": "object", "required": ["areaDesc"],
                         "properties": {"areaDesc": {"type": "string", "minLength": 1},
                                        "polygon": {"type": "array", "items": {"type": "string"}},
                                        "circle": {"type": "array", "items": {"type": "string"}},
                                        "geocode": {"type": "array", "items": {"$ref": "#/$defs/named"}},
                                        "altitude": {"type": "string"}, "ceiling": {"type": "string"}}}}
      }
    }
  },
  "properties": {
    "identifier":   {"type": "string", "minLength": 1},
    "sender":       {"type": "string", "minLength": 1},
    "sent":         {"$ref": "#/$defs/time"},
    "status":       {"enum": ["Actual", "Exercise", "System", "Test", "Draft"]},
    "msgType":      {"enum": ["Alert", "Update", "Cancel", "Ack", "Error"]},
    "source":       {"type": "string"},
    "scope":        {"enum": ["Public", "Restricted", "Private"]},
    "restriction":  {"type": "string"},
    "addresses":    {"type": "string"},
    "code":         {"type": "array", "items": {"type": "string"}},
    "note":         {"type": "string"},
    "references":   {"type": "string"},
    "incidents":    {"type": "string"},
    "info":         {"type": "array", "items": {"$ref": "#/$defs/info"}},
    "rule":         {"type": "string", "minLength": 1},
    "rule_version": {"type": "integer"},
    "region":       {"type": "string"},
    "state":        {"enum": ["firing", "resolved"]},
    "fired_at":     {"type": "string"},
    "resolved_at":  {"type": "string"},
    "condition":    {"type": "string"},
    "values":       {"type": "array"},
    "clear_values": {"type": "array"},
    "history":      {"type": "string"}
  }
}`

// The schemas of the fields that documents (qa, guidance, permit) share.
const (
	// dateSchema is an RFC 3339 time or a plain date; a plain valid_until runs to the end of its day.
	dateSchema = `{"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2}))?$"}`
	// languageSchema is a BCP 47 tag such as nl, en or uk.
	languageSchema = `{"type": "string", "pattern": "^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$"}`
	// idSchema is the id of the record, of the same origin, that takes this one's place.
	idSchema = `{"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"}`
)

// QuoteAll is names quoted and separated by commas, as messages name them: "in", "de".
func QuoteAll(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}

// Fields are the top-level body fields k's schema declares (its properties), in the schema's
// order; nil for no kind, no schema, or none declared.
func (k *Kind) Fields() []string {
	if k == nil || len(k.Schema) == 0 {
		return nil
	}
	var out []string
	gjson.GetBytes(k.Schema, "properties").ForEach(func(key, _ gjson.Result) bool {
		out = append(out, key.String())
		return true
	})
	return out
}

// ClosedFields are Fields when k's schema is closed (additionalProperties: false); nil when a
// body may hold other fields too (an open schema, as the built-in kinds have, or none), so that
// no field can be ruled out.
func (k *Kind) ClosedFields() []string {
	if k == nil || gjson.GetBytes(k.Schema, "additionalProperties").Type != gjson.False {
		return nil
	}
	return k.Fields()
}

// Package policy decides what leaves a node. It owns the sharing-policy document, its CEL
// conditions, the lifecycle rules (four eyes, supersession, expiry) and the decision function
// through which every record bound for a peer passes.
//
// policy decides; it never does I/O. Callers load policies and records, and store the outcome.
package policy

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// MaxPurposeBytes bounds a purpose a requester states, and so each of a policy's accept_purposes.
const MaxPurposeBytes = 256

// Bounds of a document that Lint holds it to, so that what officers read, what every replica
// stores and audits, and what a decision walks stay about as large as the source itself.
const (
	// MaxEntries bounds each list: kinds, recipients, redact, phases, statuses, accept_purposes
	// and exercises.
	MaxEntries = 256
	// MaxKindBytes bounds an entry of kinds.
	MaxKindBytes = 128
	// MaxRedactBytes bounds a path of redact.
	MaxRedactBytes = 256
	// MaxRecipientBytes bounds an entry of recipients: a SPIFFE ID's own limit.
	MaxRecipientBytes = 2048
	// MaxPolicyPurposeBytes bounds the policy's purpose.
	MaxPolicyPurposeBytes = 4096
)

// maxQuoted bounds the bytes of a value that a message quotes (Quote).
const maxQuoted = 80

// SchemaVersion is the version of the policy document schema this build reads.
const SchemaVersion = 1

// Phases of a crisis, from quiet to acute.
const (
	PhaseCold     = "cold"
	PhaseLukewarm = "lukewarm"
	PhaseWarm     = "warm"
)

// Phases lists the phases in order.
var Phases = []string{PhaseCold, PhaseLukewarm, PhaseWarm}

// PhaseRank orders phases: cold 0, lukewarm 1, warm 2, unknown -1.
func PhaseRank(p string) int {
	for i, q := range Phases {
		if q == p {
			return i
		}
	}
	return -1
}

// Document is a sharing policy as an officer writes it.
type Document struct {
	// Version is the schema version; 1, or omitted for 1.
	Version int    `yaml:"version,omitempty" json:"version,omitempty"`
	Name    string `yaml:"name" json:"name"`
	// Purpose binds the sharing to a purpose (doelbinding). Required.
	Purpose string `yaml:"purpose" json:"purpose"`
	// AcceptPurposes, when set, are the only purposes a requester may state to receive anything
	// under the policy. A request that states another purpose, or none, gets nothing under it,
	// and the source audits the refusal. Omitted: the policy does not look at the stated purpose.
	AcceptPurposes []string `yaml:"accept_purposes,omitempty" json:"accept_purposes,omitempty"`
	// Recipients are SPIFFE IDs (spiffe://td/... for one workload, spiffe://td for the whole
	// org), bare trust domains, or group:NAME for a peer group from config.
	Recipients        []string   `yaml:"recipients" json:"recipients"`
	Kinds             []string   `yaml:"kinds" json:"kinds"`
	MaxClassification string     `yaml:"max_classification" json:"max_classification"`
	When              string     `yaml:"when,omitempty" json:"when,omitempty"`
	Redact            []string   `yaml:"redact,omitempty" json:"redact,omitempty"`
	Phases            []string   `yaml:"phases,omitempty" json:"phases,omitempty"`
	ValidFrom         *time.Time `yaml:"valid_from,omitempty" json:"valid_from,omitempty"`
	ValidUntil        *time.Time `yaml:"valid_until,omitempty" json:"valid_until,omitempty"`
	// Statuses are the record statuses the policy grants: actual, exercise or both. Omitted:
	// actual records only, so that no policy written before exercises existed ever shares one.
	// Test and draft records never leave the node.
	Statuses []string `yaml:"statuses,omitempty" json:"statuses,omitempty"`
	// Exercises, with statuses naming exercise, limits the exercise records granted to those of
	// the named exercises. Omitted: every exercise's.
	Exercises []string `yaml:"exercises,omitempty" json:"exercises,omitempty"`
}

// Statuses a policy may grant.
const (
	StatusActual   = "actual"
	StatusExercise = "exercise"
)

var exerciseRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)

// Problem is one thing wrong with a document, at a line and column of its YAML (0 when unknown).
type Problem struct {
	Line    int    `json:"line"`
	Column  int    `json:"column"`
	Field   string `json:"field"`
	Message string `json:"message"`
	// Code names the message (a key of LintMessages), for an interface that says it in another
	// language; Args are its arguments, each written out already (a quoted value, a number),
	// one for each %s of the message.
	Code string   `json:"code,omitempty"`
	Args []string `json:"args,omitempty"`
}

// LintMessages are the linter's messages in English, by code. Each %s takes one of a problem's
// Args, in order. A message of code yaml or when carries the YAML parser's or the CEL
// compiler's own words, which no table holds.
var LintMessages = map[string]string{
	"empty":                    "the document is empty",
	"yaml":                     "%s",
	"documents":                "a second YAML document: a policy is one document, and nothing would read this one; remove the --- and put its fields in the first",
	"anchor":                   "a YAML anchor or alias: a policy writes out every value where it holds",
	"entries":                  "%s entries is over the limit of %s",
	"long":                     "%s bytes is over the limit of %s",
	"unknown_field":            "unknown field %s: did you mean %s?",
	"unknown_field.none":       "unknown field %s: a policy has %s",
	"when":                     "%s",
	"version":                  "schema version %s is not supported: this knooppunt reads version %s",
	"name":                     "%s is not a policy name: use 1 to 63 of a-z 0-9 -, such as lcvs-capacity-to-regions",
	"purpose.missing":          "missing: say what the sharing is for (doelbinding)",
	"accept_purposes.empty":    "empty: name a purpose a requester may state, or leave accept_purposes out",
	"accept_purposes.long":     "%s bytes is over the limit of %s: a requester can state at most that",
	"accept_purposes.twice":    "%s is listed already: list each purpose once",
	"accept_purposes.none":     "empty, which would accept every purpose: leave accept_purposes out for every purpose, or name the purposes",
	"recipients.missing":       "missing: name at least one recipient",
	"recipient.group":          "%s is not a group: use group:NAME",
	"recipient.spiffe":         "%s is not a SPIFFE ID",
	"recipient.spiffe_case":    "%s is not a SPIFFE ID: a trust domain is lower case, such as %s",
	"recipient.peer_name":      "%s is the name of a peer, not a recipient: name it by its trust domain, %s",
	"recipient.spiffe_path":    "%s is not a SPIFFE ID: %s",
	"recipients.twice":         "%s names the recipient of %s again: list each recipient once",
	"recipient":                "%s is not a recipient: use a SPIFFE ID, a trust domain or group:NAME",
	"recipients.unknown_peer":  "unknown peer %s: it is not one of the node's peers (peer list shows them)",
	"recipients.unknown_group": "unknown group %s: no peer of the node is in it (peer list shows each peer's groups)",
	"recipients.group_ceiling": "%s gets %s records: so does every peer that joins the group later, without a new approval; name the peers themselves if only they may",
	"valid_until.past":         "%s has passed: the policy would grant nothing, and its approval is refused; give a later valid_until",
	"kinds.missing":            "missing: name at least one kind",
	"kinds.unknown":            "unknown kind %s: the node knows %s",
	"kinds.twice":              "%s is listed already: list each kind once",
	"max_classification":       "%s is not a classification: use public, internal, confidential or secret",
	"redact":                   "%s is not a body path: use body.FIELD or body.FIELD.SUB",
	"redact.twice":             "%s is listed already: list each path once",
	"redact.field":             "%s: no kind this policy shares (%s) has a field %s, so nothing is withheld; check the field's name",
	"control":                  "%s: a policy holds printable text only: a control, bidirectional or invisible character makes what an officer reads differ from what the node enforces; remove it",
	"when.undeclared":          "record.body.%s: no kind this policy shares declares a field %s; the open kinds (%s) may carry it, but if the name is misspelt the condition holds for no record and nothing is shared: check it, and policy preview shows what would go",
	"redact.undeclared":        "%s: no kind this policy shares declares a field %s; the open kinds (%s) may carry it, but if the name is misspelt nothing is withheld: check it, and policy preview shows whether any record has it",
	"when.crisis":              "record.crisis %s: no record here or from a partner names this crisis, so the condition holds for none of its records; check the spelling (phase show lists the crises)",
	"when.field":               "record.body.%s: no kind this policy shares (%s) has a field %s, so the condition never holds for any record; check the field's name",
	"when.comment":             "a // comment in a condition that YAML folds from several lines into one hides every line after it: write the condition as a block that keeps its lines (when: |)",
	"phases":                   "%s is not a phase: use cold, lukewarm or warm",
	"phases.twice":             "%s is listed already: list each phase once",
	"phases.none":              "empty, which would mean every phase: leave phases out for every phase, or name the phases",
	"statuses.never":           "%s records never leave the node: use actual or exercise",
	"statuses":                 "%s is not a status a policy grants: use actual or exercise",
	"statuses.twice":           "%s is listed already: list each status once",
	"exercises.status":         "names exercises, but statuses does not grant exercise records: add statuses: [exercise]",
	"exercises":                "%s is not an exercise name: use 1 to 128 of A-Z a-z 0-9 . _ : -, such as oefening-2026-12-vr09",
	"exercises.twice":          "%s is listed already: list each exercise once",
	"exercises.none":           "empty, which would mean every exercise: leave exercises out for every exercise, or name the exercises",
	"time":                     "not a time: use RFC 3339, such as 2026-12-31T00:00:00Z",
	"time.date":                "%s is a date alone: give the time of day too, in RFC 3339, such as %sT00:00:00Z",
	"valid_until.before":       "%s ends before the validity window starts (valid_from %s)",
}

// lintProblem is the problem of code, with args, at line and column.
func lintProblem(line, col int, field, code string, args ...string) Problem {
	format, ok := LintMessages[code]
	if !ok {
		panic("policy: no lint message " + code)
	}
	return Problem{Line: line, Column: col, Field: field, Message: formatCoded(format, args), Code: code, Args: args}
}

// format2 is fmt.Sprintf of a coded message (LintMessages, VerdictMessages) with its arguments,
// each already written out.
func formatCoded(format string, args []string) string {
	a := make([]any, len(args))
	for i, s := range args {
		a[i] = s
	}
	return fmt.Sprintf(format, a...)
}

func (p Problem) String() string {
	loc := ""
	if p.Line > 0 {
		loc = fmt.Sprintf("line %d, column %d: ", p.Line, p.Column)
	}
	if p.Field != "" {
		return loc + p.Field + ": " + p.Message
	}
	return loc + p.Message
}

// Problems is the error of a document that does not lint.
type Problems []Problem

// sort orders problems as they stand in the document: by line, then column; problems at one
// place keep their order.
func (ps Problems) sort() {
	slices.SortStableFunc(ps, func(a, b Problem) int { return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column)) })
}

func (ps Problems) Error() string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, "\n")
}

var (
	nameRe     = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	redactRe   = regexp.MustCompile(`^body(\.[A-Za-z0-9_-]+)+$`)
	yamlPosRe  = regexp.MustCompile(`^\[(\d+):(\d+)\]\s*(.*)$`)
	classWords = map[string]pb.Classification{
		"public": pb.Classification_PUBLIC, "internal": pb.Classification_INTERNAL,
		"confidential": pb.Classification_CONFIDENTIAL, "secret": pb.Classification_SECRET,
	}
)

// Parsed is a document with the positions of its fields, for error messages.
type Parsed struct {
	Doc  Document
	Src  []byte
	file *ast.File
}

// Parse reads a policy document. It checks the YAML and the schema; Compile checks the rest.
//
// Parse reads a stored document as it always has, so that every release reads what an earlier
// one stored and every replica of a group applies a step alike: what is refused since is refused
// by Lint, which every document passes before it is stored.
func Parse(src []byte) (*Parsed, error) {
	p, probs, err := parse(src, false)
	if err != nil {
		return nil, err
	}
	if len(probs) > 0 {
		return nil, probs
	}
	return p, nil
}

// parse reads the YAML of a document (an error when it cannot be read at all) and checks it
// against the schema, returning the document also when it breaks the schema, so that Lint can
// report the rest at once. With lint, it first refuses what YAML can hide or multiply (a second
// document, anchors and aliases), before decoding anything, and lists over MaxEntries; it then
// checks the rest of what Lint holds a new document to (lintSchema).
func parse(src []byte, lint bool) (*Parsed, Problems, error) {
	if len(strings.TrimSpace(string(src))) == 0 {
		return nil, nil, Problems{lintProblem(0, 0, "", "empty")}
	}
	file, err := parser.ParseBytes(src, 0)
	if err != nil {
		return nil, nil, Problems{yamlProblem(err)}
	}
	if lint {
		if probs := checkYAML(file); len(probs) > 0 {
			return nil, nil, probs
		}
	}
	// Every unknown field at the top, in the document's order: the decoder names one of them,
	// whichever its map walk meets first. Lint goes on to the known fields, so that one run
	// reports a misspelt field and the problems of the others.
	keys := UnknownKeys(file, documentFields)
	unknown := unknownFields(keys)
	if len(unknown) > 0 && !lint {
		return nil, nil, unknown
	}
	var d Document
	var opts []yaml.DecodeOption
	if len(unknown) == 0 {
		opts = append(opts, yaml.DisallowUnknownField())
	}
	if err := yaml.UnmarshalWithOptions(src, &d, opts...); err != nil {
		return nil, nil, append(unknown, yamlProblem(err))
	}
	p := &Parsed{Doc: d, Src: src, file: file}
	if !lint {
		return p, p.checkSchema(), nil
	}
	// A list over its bound is all that is said of it: its entries are not what anyone meant.
	if probs := p.checkEntries(); len(probs) > 0 {
		return nil, nil, append(unknown, probs...)
	}
	probs := WithoutMisspelt(append(p.checkSchema(), p.lintSchema()...), keys)
	probs = append(unknown, probs...)
	probs.sort()
	return p, probs, nil
}

// Unprintable returns the first character of s that a policy may not hold, and its byte offset:
// a Hidden character other than tab, newline and carriage return. A terminal or an editor acts on
// such a character, or shows nothing for it, so that what the approving officer reads could
// differ from what the node enforces: an escape sequence that moves the cursor up and prints
// another max_classification over the real one, or a zero-width space inside a string of a
// condition (record.crisis != "oekra\u200bine" holds for every record of oekraine).
func Unprintable(s string) (r rune, offset int, ok bool) {
	for i, c := range s {
		if c != '\t' && c != '\n' && c != '\r' && Hidden(c) {
			return c, i, true
		}
	}
	return 0, 0, false
}

// Hidden reports whether c is a character that a terminal or an editor acts on, or shows as
// nothing, instead of showing it: a control character (tab, newline and carriage return among
// them), a format character (Unicode's Cf: the bidirectional controls, zero-width spaces and
// joiners, the byte order mark, the soft hyphen, the tag characters), another default-ignorable
// code point (the Hangul fillers U+115F, U+1160, U+3164 and U+FFA0, variation selectors, and
// those Unicode keeps unassigned as such), or a line or paragraph separator (U+2028, U+2029).
func Hidden(c rune) bool {
	return unicode.IsControl(c) ||
		unicode.In(c, unicode.Cf, unicode.Zl, unicode.Zp, unicode.Other_Default_Ignorable_Code_Point, unicode.Variation_Selector)
}

// position is the line and column (1-based, in bytes) of offset in src.
func position(src []byte, offset int) (line, col int) {
	line = 1 + strings.Count(string(src[:offset]), "\n")
	return line, offset - strings.LastIndexByte(string(src[:offset]), '\n')
}

// stringValues are the document's decoded strings, by field (kinds[1], purpose), in no order.
func (p *Parsed) stringValues() map[string]string {
	out := map[string]string{}
	v := reflect.ValueOf(p.Doc)
	for i := range v.NumField() {
		name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ",")
		switch f := v.Field(i); f.Kind() {
		case reflect.String:
			out[name] = f.String()
		case reflect.Slice:
			if f.Type().Elem().Kind() == reflect.String {
				for j := range f.Len() {
					out[fmt.Sprintf("%s[%d]", name, j)] = f.Index(j).String()
				}
			}
		}
	}
	return out
}

// documentFields are the top-level fields of a policy document, from Document's yaml tags.
var documentFields = YAMLFields(reflect.TypeFor[Document]())

// DocumentFields are a policy document's fields as an officer writes them, from Document's yaml
// tags: those it must have, and those it may leave out (omitempty). version, the schema's, is
// left out: a document without it is read as this release's.
func DocumentFields() (required, optional []string) {
	t := reflect.TypeFor[Document]()
	for i := range t.NumField() {
		name, opts, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		switch {
		case name == "" || name == "-" || name == "version":
		case opts == "omitempty":
			optional = append(optional, name)
		default:
			required = append(required, name)
		}
	}
	return required, optional
}

// YAMLFields are the names of the fields of struct type t in YAML, from their yaml tags.
func YAMLFields(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); name != "" && name != "-" {
			out = append(out, name)
		}
	}
	return out
}

// UnknownKey is a key at the top of a YAML document that is none of its fields.
type UnknownKey struct {
	Key          string
	Line, Column int
	// Near is the field the key most resembles, a likely misspelling of it; "" when none does.
	Near string
}

// UnknownKeys lists the keys at the top of file's document that are not among fields, in the
// document's order: a decoder names one of them, whichever its map walk meets first.
func UnknownKeys(file *ast.File, fields []string) []UnknownKey {
	if len(file.Docs) == 0 || file.Docs[0] == nil {
		return nil
	}
	var pairs []*ast.MappingValueNode
	switch n := file.Docs[0].Body.(type) {
	case *ast.MappingNode:
		pairs = n.Values
	case *ast.MappingValueNode:
		pairs = []*ast.MappingValueNode{n}
	}
	var out []UnknownKey
	for _, kv := range pairs {
		tok := kv.Key.GetToken()
		if tok == nil || slices.Contains(fields, tok.Value) {
			continue
		}
		u := UnknownKey{Key: tok.Value, Line: tok.Position.Line, Column: tok.Position.Column}
		if near, ok := Closest(tok.Value, fields); ok {
			u.Near = near
		}
		out = append(out, u)
	}
	return out
}

// WithoutMisspelt drops from probs each problem of a field that is missing (no position)
// because one of unknown misspells it: it is said once, as the misspelling.
func WithoutMisspelt(probs Problems, unknown []UnknownKey) Problems {
	return slices.DeleteFunc(probs, func(p Problem) bool {
		return p.Line == 0 && slices.ContainsFunc(unknown, func(u UnknownKey) bool { return u.Near != "" && u.Near == p.Field })
	})
}

// unknownFields are the problems of the top-level keys that are no field of a document, each
// with the field it most resembles.
func unknownFields(unknown []UnknownKey) Problems {
	var probs Problems
	for _, u := range unknown {
		if u.Near != "" {
			probs = append(probs, lintProblem(u.Line, u.Column, "", "unknown_field", Quote(u.Key), strconv.Quote(u.Near)))
		} else {
			probs = append(probs, lintProblem(u.Line, u.Column, "", "unknown_field.none", Quote(u.Key), strings.Join(documentFields, ", ")))
		}
	}
	return probs
}

// SecondDocument is where the second YAML document of file that holds anything begins, which a
// decoder never reads: a comment, a --- at the end or a directive holds nothing. ok is false when
// there is none. A node's config, as a policy, is one document.
func SecondDocument(file *ast.File) (line, col int, ok bool) {
	seen := false
	for i, doc := range file.Docs {
		if doc == nil || doc.Body == nil {
			continue
		}
		switch doc.Body.(type) {
		case *ast.CommentGroupNode, *ast.CommentNode, *ast.DirectiveNode:
			continue
		}
		if seen {
			line, col := documentStart(file, i)
			return line, col, true
		}
		seen = true
	}
	return 0, 0, false
}

// checkYAML refuses what YAML can hide from a reader or multiply for a decoder: a second
// document, which the decoder never reads (a redact or phases there would be read by the
// approving officer and enforced by no one), and anchors and aliases, through which a short
// source decodes to a huge one (each alias repeats what its anchor holds, once per mention).
// Documents holding nothing (a comment, a --- at the end, a directive) are no second document.
func checkYAML(file *ast.File) Problems {
	var probs Problems
	if line, col, ok := SecondDocument(file); ok {
		probs = append(probs, lintProblem(line, col, "", "documents"))
	}
	if line, col, ok := FirstAlias(file); ok {
		probs = append(probs, lintProblem(line, col, "", "anchor"))
	}
	probs.sort()
	return probs
}

// FirstAlias finds the first YAML anchor or alias of a file, and where it is (0, 0 when the
// parser gave no position). Aliases expand as they decode: a few hundred bytes of them ask for
// gigabytes, so a document of policy or rule refuses them before it is decoded.
func FirstAlias(file *ast.File) (line, col int, ok bool) {
	// The first: there may be thousands.
	var first ast.Node
	for _, doc := range file.Docs {
		if doc == nil || doc.Body == nil || first != nil {
			continue
		}
		ast.Walk(visitFunc(func(n ast.Node) bool {
			switch n.(type) {
			case *ast.AnchorNode, *ast.AliasNode:
				first = n
			}
			return first == nil
		}), doc.Body)
	}
	if first == nil {
		return 0, 0, false
	}
	if t := tokenOf(first); t != nil {
		return t.Position.Line, t.Position.Column, true
	}
	return 0, 0, true
}

// tokenOf is a node's token, nil when it has none or no position.
func tokenOf(n ast.Node) *token.Token {
	if n == nil {
		return nil
	}
	if t := n.GetToken(); t != nil && t.Position != nil {
		return t
	}
	return nil
}

// documentStart is the line and column where the document at i of file starts: its ---, else
// the ... that ended the one before it, else its first token.
func documentStart(file *ast.File, i int) (int, int) {
	var t *token.Token
	switch doc := file.Docs[i]; {
	case doc.Start != nil:
		t = doc.Start
	case i > 0 && file.Docs[i-1] != nil && file.Docs[i-1].End != nil:
		t = file.Docs[i-1].End
	default:
		t = doc.Body.GetToken()
	}
	if t == nil || t.Position == nil {
		return 0, 0
	}
	return t.Position.Line, t.Position.Column
}

// visitFunc is an ast.Visitor that calls itself on every node, and goes on into the node's
// children while it returns true.
type visitFunc func(ast.Node) bool

func (f visitFunc) Visit(n ast.Node) ast.Visitor {
	if !f(n) {
		return nil
	}
	return f
}

// Closest is the word of words nearest to s by edit distance, if it is near enough to be what
// s meant: a third of its letters, or two, changed at most.
func Closest(s string, words []string) (string, bool) {
	best, dist := "", -1
	for _, w := range words {
		if d := EditDistance(s, w); dist < 0 || d < dist {
			best, dist = w, d
		}
	}
	return best, dist >= 0 && dist <= max(2, len(s)/3)
}

// EditDistance is the number of edits between a and b: runes added, dropped or changed, and two
// neighbours swapped (the optimal string alignment distance). Lint's "did you mean" and search's
// suggestions both weigh words by it.
func EditDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}

func yamlProblem(err error) Problem {
	msg := yaml.FormatError(err, false, false)
	first := strings.SplitN(strings.TrimSpace(msg), "\n", 2)[0]
	if m := yamlPosRe.FindStringSubmatch(first); m != nil {
		line, _ := strconv.Atoi(m[1])
		col, _ := strconv.Atoi(m[2])
		return lintProblem(line, col, "", "yaml", m[3])
	}
	return lintProblem(0, 0, "", "yaml", first)
}

// pos finds the line and column of a field, such as "kinds[1]".
func (p *Parsed) pos(field string) (int, int) {
	t := tokenOf(p.node(field))
	if t == nil {
		return 0, 0
	}
	return t.Position.Line, t.Position.Column
}

// node is the YAML node of a field's value, such as "kinds[1]"; nil when the document has none.
func (p *Parsed) node(field string) ast.Node {
	if p.file == nil || field == "" {
		return nil
	}
	path, err := yaml.PathString("$." + field)
	if err != nil {
		return nil
	}
	node, err := path.FilterFile(p.file)
	if err != nil {
		return nil
	}
	return node
}

// scalar is the text a scalar node was written with, without a tag (!!str); "" for any other.
func scalar(node ast.Node) string {
	if tag, ok := node.(*ast.TagNode); ok {
		node = tag.Value
	}
	if _, ok := node.(ast.ScalarNode); !ok || node.GetToken() == nil {
		return ""
	}
	return node.GetToken().Value
}

// Quote is a value as a message quotes it (a lint problem, a refusal): at most 80 bytes of it,
// and an ellipsis when there is more, so that a long value does not make a longer message.
func Quote(s string) string {
	return strconv.Quote(cut(s))
}

// cut is at most maxQuoted bytes of s, cut at a character, and an ellipsis when there is more.
func cut(s string) string { return Cut(s, maxQuoted) }

// Cut is at most n bytes of s, cut at a character's start, and an ellipsis when there is more.
func Cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func (p *Parsed) problem(field, code string, args ...string) Problem {
	line, col := p.pos(field)
	return lintProblem(line, col, field, code, args...)
}

func (p *Parsed) checkSchema() Problems {
	d := &p.Doc
	var probs Problems
	add := func(field, code string, args ...string) { probs = append(probs, p.problem(field, code, args...)) }
	q := Quote
	if d.Version != 0 && d.Version != SchemaVersion {
		add("version", "version", strconv.Itoa(d.Version), strconv.Itoa(SchemaVersion))
	}
	if !nameRe.MatchString(d.Name) {
		add("name", "name", q(d.Name))
	}
	if strings.TrimSpace(d.Purpose) == "" {
		add("purpose", "purpose.missing")
	}
	for i, ap := range d.AcceptPurposes {
		field := fmt.Sprintf("accept_purposes[%d]", i)
		switch {
		case strings.TrimSpace(ap) == "":
			add(field, "accept_purposes.empty")
		case len(ap) > MaxPurposeBytes:
			add(field, "accept_purposes.long", strconv.Itoa(len(ap)), strconv.Itoa(MaxPurposeBytes))
		case slices.Index(d.AcceptPurposes, ap) < i:
			add(field, "accept_purposes.twice", q(ap))
		}
	}
	if len(d.Recipients) == 0 {
		add("recipients", "recipients.missing")
	}
	for i, r := range d.Recipients {
		var re *recipientError
		if _, err := ParseRecipient(r); errors.As(err, &re) {
			add(fmt.Sprintf("recipients[%d]", i), re.code, re.args(q)...)
		}
	}
	if len(d.Kinds) == 0 {
		add("kinds", "kinds.missing")
	}
	if _, ok := classWords[d.MaxClassification]; !ok {
		add("max_classification", "max_classification", q(d.MaxClassification))
	}
	for i, r := range d.Redact {
		if !redactRe.MatchString(r) {
			add(fmt.Sprintf("redact[%d]", i), "redact", q(r))
		}
	}
	for i, ph := range d.Phases {
		if PhaseRank(ph) < 0 {
			add(fmt.Sprintf("phases[%d]", i), "phases", q(ph))
		}
	}
	for i, st := range d.Statuses {
		field := fmt.Sprintf("statuses[%d]", i)
		switch {
		case st == "test" || st == "draft":
			add(field, "statuses.never", st)
		case st != StatusActual && st != StatusExercise:
			add(field, "statuses", q(st))
		case slices.Index(d.Statuses, st) < i:
			add(field, "statuses.twice", q(st))
		}
	}
	if len(d.Exercises) > 0 && !slices.Contains(d.Statuses, StatusExercise) {
		add("exercises", "exercises.status")
	}
	for i, e := range d.Exercises {
		if !exerciseRe.MatchString(e) {
			add(fmt.Sprintf("exercises[%d]", i), "exercises", q(e))
		}
	}
	// The YAML decoder leaves a time it cannot read as the zero time instead of failing: a
	// mistyped valid_from would otherwise open the window from the beginning of time.
	badTime := false
	for _, w := range []struct {
		field string
		t     *time.Time
	}{{"valid_from", d.ValidFrom}, {"valid_until", d.ValidUntil}} {
		if w.t != nil && w.t.IsZero() {
			badTime = true
			add(w.field, "time")
		}
	}
	if !badTime && d.ValidFrom != nil && d.ValidUntil != nil && !d.ValidUntil.After(*d.ValidFrom) {
		add("valid_until", "valid_until.before", d.ValidUntil.Format(time.RFC3339), d.ValidFrom.Format(time.RFC3339))
	}
	probs.sort()
	return probs
}

// checkEntries refuses a list over MaxEntries entries.
func (p *Parsed) checkEntries() Problems {
	var probs Problems
	for _, l := range p.Doc.lists() {
		if len(l.entries) > MaxEntries {
			probs = append(probs, p.problem(l.field, "entries", strconv.Itoa(len(l.entries)), strconv.Itoa(MaxEntries)))
		}
	}
	probs.sort()
	return probs
}

// list is one of a document's lists, by field.
type list struct {
	field   string
	entries []string
}

func (d *Document) lists() []list {
	return []list{
		{"accept_purposes", d.AcceptPurposes}, {"recipients", d.Recipients}, {"kinds", d.Kinds}, {"redact", d.Redact},
		{"phases", d.Phases}, {"statuses", d.Statuses}, {"exercises", d.Exercises},
	}
}

// lintSchema is what Lint holds a new document to beyond the schema that Parse reads a stored
// one with: bounded strings, no entry twice, no empty list where an omitted one means every
// (phases: [] would share in every phase), recipients that are SPIFFE IDs a caller can have,
// an integer version, times of day, and no comment that YAML's folding makes hide part of the
// condition. Each is something that parses but means other than it reads.
func (p *Parsed) lintSchema() Problems {
	d := &p.Doc
	var probs Problems
	add := func(field, code string, args ...string) { probs = append(probs, p.problem(field, code, args...)) }
	n := strconv.Itoa
	// The decoder rounds a version: 1.5 would read as 1.
	if node := p.node("version"); node != nil && (d.Version == 0 || d.Version == SchemaVersion) {
		if _, null := node.(*ast.NullNode); !null {
			if v := scalar(node); strings.Trim(v, "0123456789") != "" || v == "" {
				add("version", "version", cut(v), n(SchemaVersion))
			}
		}
	}
	if len(d.Purpose) > MaxPolicyPurposeBytes {
		add("purpose", "long", n(len(d.Purpose)), n(MaxPolicyPurposeBytes))
	}
	for _, field := range []string{"accept_purposes", "phases", "exercises"} {
		if seq, ok := p.node(field).(*ast.SequenceNode); ok && len(seq.Values) == 0 {
			add(field, field+".none")
		}
	}
	named := map[RecipientRef]int{}
	for i, r := range d.Recipients {
		field := fmt.Sprintf("recipients[%d]", i)
		if len(r) > MaxRecipientBytes {
			add(field, "long", n(len(r)), n(MaxRecipientBytes))
			continue
		}
		ref, err := ParseRecipient(r)
		if err != nil {
			continue // checkSchema's
		}
		// No caller has an ID with a wildcard, an empty segment or a dot segment: a policy
		// naming one would share with no one, silently.
		if ref.Kind == RecipientID {
			if _, err := spiffeid.FromString(ref.Value); err != nil {
				add(field, "recipient.spiffe_path", Quote(r), err.Error())
				continue
			}
		}
		if j, ok := named[ref]; ok {
			add(field, "recipients.twice", Quote(r), Quote(d.Recipients[j]))
			continue
		}
		named[ref] = i
	}
	for i, k := range d.Kinds {
		field := fmt.Sprintf("kinds[%d]", i)
		switch {
		case len(k) > MaxKindBytes:
			add(field, "long", n(len(k)), n(MaxKindBytes))
		case slices.Index(d.Kinds, k) < i:
			add(field, "kinds.twice", Quote(k))
		}
	}
	for i, r := range d.Redact {
		field := fmt.Sprintf("redact[%d]", i)
		switch {
		case !redactRe.MatchString(r):
			// checkSchema's
		case len(r) > MaxRedactBytes:
			add(field, "long", n(len(r)), n(MaxRedactBytes))
		case slices.Index(d.Redact, r) < i:
			add(field, "redact.twice", Quote(r))
		}
	}
	for i, ph := range d.Phases {
		if PhaseRank(ph) >= 0 && slices.Index(d.Phases, ph) < i {
			add(fmt.Sprintf("phases[%d]", i), "phases.twice", Quote(ph))
		}
	}
	for i, e := range d.Exercises {
		if exerciseRe.MatchString(e) && slices.Index(d.Exercises, e) < i {
			add(fmt.Sprintf("exercises[%d]", i), "exercises.twice", Quote(e))
		}
	}
	// The decoder reads a date alone as its midnight in UTC, and other forms YAML has for times;
	// a document says RFC 3339: a time of day, with its offset.
	for _, w := range []struct {
		field string
		t     *time.Time
	}{{"valid_from", d.ValidFrom}, {"valid_until", d.ValidUntil}} {
		if w.t == nil || w.t.IsZero() {
			continue // omitted, or checkSchema's
		}
		v := scalar(p.node(w.field))
		if _, err := time.Parse(time.RFC3339, v); err == nil {
			continue
		}
		if _, err := time.Parse(time.DateOnly, v); err == nil {
			add(w.field, "time.date", v, v)
		} else {
			add(w.field, "time")
		}
	}
	if prob, ok := p.whenComment(); ok {
		probs = append(probs, prob)
	}
	return probs
}

// whenComment refuses a CEL comment (//) in a condition that YAML folds: a plain or quoted
// scalar over several lines, or a folded block (>), reaches CEL as one line, so a comment runs
// to its end and hides every line after it from CEL, while the officers read them as conditions.
// A literal block (|) keeps its lines, and a comment in it ends where it reads.
func (p *Parsed) whenComment() (Problem, bool) {
	node := p.node("when")
	if tag, ok := node.(*ast.TagNode); ok {
		node = tag.Value
	}
	folded := false
	switch n := node.(type) {
	case *ast.LiteralNode:
		folded = n.Start != nil && n.Start.Type == token.FoldedType && n.Value != nil && multiline(n.Value.Token)
	case *ast.StringNode:
		folded = multiline(n.Token)
	}
	if !folded {
		return Problem{}, false
	}
	at := celComments(p.Doc.When)
	if len(at) == 0 {
		return Problem{}, false
	}
	line, col := p.pos("when")
	// Folding changes only white space, so the comment is the // in the source with as many
	// before it, from the condition's first line, as it has in the condition.
	if l, c, ok := nthFrom(p.Src, line, strings.Count(p.Doc.When[:at[0]], "//")); ok {
		line, col = l, c
	}
	return lintProblem(line, col, "when", "when.comment"), true
}

// multiline reports whether a scalar's token was written over more than one line.
func multiline(t *token.Token) bool {
	return t != nil && strings.Contains(strings.TrimSpace(t.Origin), "\n")
}

// nthFrom finds the // that has n others before it from the start of line on, and returns its
// line and column.
func nthFrom(src []byte, line, n int) (int, int, bool) {
	off := 0
	for l := 1; l < line; l++ {
		i := bytes.IndexByte(src[off:], '\n')
		if i < 0 {
			return 0, 0, false
		}
		off += i + 1
	}
	for {
		i := bytes.Index(src[off:], []byte("//"))
		if i < 0 {
			return 0, 0, false
		}
		off += i
		if n == 0 {
			l, c := position(src, off)
			return l, c, true
		}
		n--
		off += 2
	}
}

// celComments returns the byte offsets of the comments in a CEL expression: each // outside its
// string and bytes literals (in ' or ", tripled or not, raw with an r before them).
func celComments(expr string) []int {
	var out []int
	for i := 0; i < len(expr); {
		switch c := expr[i]; {
		case strings.HasPrefix(expr[i:], "//"):
			out = append(out, i)
			end := strings.IndexByte(expr[i:], '\n')
			if end < 0 {
				return out
			}
			i += end + 1
		case c == '"' || c == '\'':
			raw := false // r, R, and with b or B: rb"…", Br'…'
			for k := i - 1; k >= 0 && k >= i-2 && strings.IndexByte("rRbB", expr[k]) >= 0; k-- {
				raw = raw || expr[k] == 'r' || expr[k] == 'R'
			}
			delim := expr[i : i+1]
			if strings.HasPrefix(expr[i:], strings.Repeat(delim, 3)) {
				delim = strings.Repeat(delim, 3)
			}
			i += len(delim)
			for i < len(expr) && !strings.HasPrefix(expr[i:], delim) {
				if len(delim) == 1 && expr[i] == '\n' {
					break // unterminated: CEL says so
				}
				if expr[i] == '\\' && !raw {
					i++
				}
				i++
			}
			i += len(delim)
		default:
			i++
		}
	}
	return out
}

// Classification is the document's ceiling.
func (d *Document) Classification() pb.Classification { return classWords[d.MaxClassification] }

// RecipientKind says what a recipient entry names.
type RecipientKind int

// Recipient kinds.
const (
	RecipientID RecipientKind = iota
	RecipientTrustDomain
	RecipientGroup
)

// RecipientRef is a parsed recipients entry.
type RecipientRef struct {
	Kind  RecipientKind
	Value string // the ID, the trust domain name, or the group name
}

var tdRe = regexp.MustCompile(`^[a-z0-9._-]+$`)

// recipientError is a recipients entry that is not one, with the code of its lint message and
// any argument after the entry (a suggestion).
type recipientError struct {
	code, value string
	more        []string
}

func (e *recipientError) Error() string {
	return lintProblem(0, 0, "", e.code, e.args(Quote)...).Message
}

func (e *recipientError) args(q func(string) string) []string {
	return append([]string{q(e.value)}, e.more...)
}

// ParseRecipient reads a recipients entry.
func ParseRecipient(s string) (RecipientRef, error) {
	switch {
	case strings.HasPrefix(s, "group:"):
		g := strings.TrimPrefix(s, "group:")
		if !nameRe.MatchString(g) {
			return RecipientRef{}, &recipientError{"recipient.group", s, nil}
		}
		return RecipientRef{Kind: RecipientGroup, Value: g}, nil
	case strings.HasPrefix(s, "spiffe://"):
		rest := strings.TrimSuffix(strings.TrimPrefix(s, "spiffe://"), "/")
		td, path, _ := strings.Cut(rest, "/")
		if !tdRe.MatchString(td) {
			if lower := strings.ToLower(td); tdRe.MatchString(lower) {
				return RecipientRef{}, &recipientError{"recipient.spiffe_case", s, []string{Quote("spiffe://" + lower + strings.TrimPrefix(s, "spiffe://"+td))}}
			}
			return RecipientRef{}, &recipientError{"recipient.spiffe", s, nil}
		}
		if path == "" {
			return RecipientRef{Kind: RecipientTrustDomain, Value: td}, nil
		}
		return RecipientRef{Kind: RecipientID, Value: "spiffe://" + td + "/" + path}, nil
	case tdRe.MatchString(s) && strings.Contains(s, "."):
		return RecipientRef{Kind: RecipientTrustDomain, Value: s}, nil
	}
	return RecipientRef{}, &recipientError{"recipient", s, nil}
}

// PhaseSwitch says what a crisis going from phase from to phase to does to a policy of this
// document: 1 when it starts sharing, -1 when it stops, 0 when neither (it is not limited to
// phases, or is in force in both or neither).
func (d *Document) PhaseSwitch(from, to string) int {
	if len(d.Phases) == 0 {
		return 0
	}
	was, will := slices.Contains(d.Phases, from), slices.Contains(d.Phases, to)
	switch {
	case will && !was:
		return 1
	case was && !will:
		return -1
	}
	return 0
}

// PhaseSwitches lists, of the policies given (as the PolicyService lists them), those whose grant
// of a crisis's records changes when the crisis goes from phase from to phase to: the break-glass
// an officer opens or closes. A policy is named only when it covers one of records, the crisis's
// own live records (Compiled.Covers): one limited to the phase but whose kinds or condition take
// none of them neither starts nor stops anything of this crisis, and an officer who read it named
// took a break-glass for closed that was open for another crisis (review L, L1). A policy whose
// source does not compile is left out.
func PhaseSwitches(policies []*pb.PolicyInfo, records []*pb.Record, from, to string, now time.Time) (start, stop []string) {
	for _, p := range policies {
		c, err := Compile(Policy{ID: p.Id, Source: p.Source, State: StateApproved})
		if err != nil {
			continue
		}
		sw := c.Doc.PhaseSwitch(from, to)
		in := to // a policy that starts grants in the phase the crisis goes to, one that stops in the one it leaves
		if sw < 0 {
			in = from
		}
		if sw == 0 || !slices.ContainsFunc(records, func(r *pb.Record) bool { return c.Covers(r, in, now) }) {
			continue
		}
		if sw > 0 {
			start = append(start, p.Id)
		} else {
			stop = append(stop, p.Id)
		}
	}
	return start, stop
}

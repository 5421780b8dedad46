package warn

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	yast "github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"

	"github.com/knooppunt/knooppunt/node/record"
	"github.com/knooppunt/knooppunt/policy"
)

// Document is a rule as its author writes it, for example:
//
//	name: zeeland-beds-low
//	severity: severe
//	crisis: oekraine
//	when: ratio(sum("shelter.capacity", "beds_free"), sum("shelter.capacity", "beds_total")) < 0.05
//	clear: ratio(sum("shelter.capacity", "beds_free"), sum("shelter.capacity", "beds_total")) > 0.08
//	for: 1h
type Document struct {
	// Name names the rule and its alerts.
	Name string `yaml:"name" json:"name"`
	// Description says what the rule watches for, in words for the people it alerts.
	Description string `yaml:"description,omitempty" json:"description,omitempty"`
	// Severity is the CAP severity of its alerts: minor, moderate, severe or extreme.
	Severity string `yaml:"severity" json:"severity"`
	// Crisis limits the rule to one crisis's records. Omitted: every crisis's.
	Crisis string `yaml:"crisis,omitempty" json:"crisis,omitempty"`
	// Regions limits the rule to some regions. Omitted: every region with records of the kinds
	// the conditions read.
	Regions []string `yaml:"regions,omitempty" json:"regions,omitempty"`
	// When is the CEL condition that, held for For, fires the rule in a region.
	When string `yaml:"when" json:"when"`
	// Clear is the CEL condition that resolves a firing rule. Omitted: !(when). A clear
	// condition stricter than !(when) is the hysteresis that keeps a value hovering at the
	// threshold from firing and resolving in turn.
	Clear string `yaml:"clear,omitempty" json:"clear,omitempty"`
	// For is how long When must hold, at every evaluation, before the rule fires. Omitted: 0,
	// it fires at the first evaluation where When holds.
	For string `yaml:"for,omitempty" json:"for,omitempty"`
}

// Severities are the CAP severities a rule may have, from least to most severe.
var Severities = []string{"minor", "moderate", "severe", "extreme"}

var nameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// CheckName checks a rule's name: 1 to 63 lower-case letters, digits and dashes. The error quotes
// at most the name's first 64 bytes.
func CheckName(name string) error {
	if nameRe.MatchString(name) {
		return nil
	}
	if len(name) > 64 {
		name = name[:64] + "…"
	}
	return fmt.Errorf("%q is not a rule name: use 1 to 63 lower-case letters, digits and dashes, such as zeeland-beds-low", name)
}

// ruleFields are the fields of a rule document.
var ruleFields = policy.YAMLFields(reflect.TypeFor[Document]())

// MaxFor bounds `for:`: longer than the default retention of the history could never be seen
// to hold.
const MaxFor = 90 * 24 * time.Hour

// Rule is a compiled, checked rule.
type Rule struct {
	Doc    Document
	Source []byte
	For    time.Duration
	when   *condition
	clear  *condition // nil: !when
}

// Kinds lists the kinds the rule's conditions read, sorted.
func (r *Rule) Kinds() []string {
	ks := slices.Clone(r.when.kinds)
	if r.clear != nil {
		ks = append(ks, r.clear.kinds...)
	}
	slices.Sort(ks)
	return slices.Compact(ks)
}

// Windows lists the durations of the rule's delta and count windows.
func (r *Rule) Windows() []time.Duration {
	ws := slices.Clone(r.when.windows)
	if r.clear != nil {
		ws = append(ws, r.clear.windows...)
	}
	slices.Sort(ws)
	return slices.Compact(ws)
}

// Lint parses and compiles a rule document against the kinds a node accepts (nil: the demo
// kinds). Every problem comes with the line and column of the YAML where it is: for a condition,
// the position inside it.
func Lint(src []byte, kinds *record.Kinds) (*Rule, error) {
	if kinds == nil {
		var err error
		if kinds, err = record.NewKinds(record.DemoKinds()); err != nil {
			return nil, err
		}
	}
	if len(strings.TrimSpace(string(src))) == 0 {
		return nil, policy.Problems{{Message: "the document is empty: a rule needs at least name, severity and when"}}
	}
	file, err := parser.ParseBytes(src, 0)
	if err != nil {
		return nil, policy.Problems{yamlProblem(err)}
	}
	// Before anything decodes it: 427 bytes of aliases took 340 MB (review AD, AD4).
	if line, col, ok := policy.FirstAlias(file); ok {
		return nil, policy.Problems{{Line: line, Column: col, Message: "a YAML anchor or alias: a rule writes out every value where it holds"}}
	}
	// A misspelt field is said with the field it most resembles, and the rest of the rule is
	// checked too, so that one lint reports every problem.
	var probs policy.Problems
	unknown := policy.UnknownKeys(file, ruleFields)
	for _, u := range unknown {
		pr := policy.Problem{Line: u.Line, Column: u.Column, Message: fmt.Sprintf("unknown field %q: a rule has %s", u.Key, strings.Join(ruleFields, ", "))}
		if u.Near != "" {
			pr.Message = fmt.Sprintf("unknown field %q: did you mean %q?", u.Key, u.Near)
		}
		probs = append(probs, pr)
	}
	var d Document
	var opts []yaml.DecodeOption
	if len(unknown) == 0 {
		opts = append(opts, yaml.DisallowUnknownField())
	}
	if err := yaml.UnmarshalWithOptions(src, &d, opts...); err != nil {
		return nil, append(probs, yamlProblem(err))
	}
	p := &parsed{file: file, src: src}
	r := &Rule{Doc: d, Source: src}
	if err := CheckName(d.Name); err != nil {
		probs = append(probs, p.problem("name", "%v", err))
	}
	switch {
	case d.Severity == "":
		probs = append(probs, p.problem("severity", "a rule needs a severity: use one of %s", strings.Join(Severities, ", ")))
	case !slices.Contains(Severities, d.Severity):
		probs = append(probs, p.problem("severity", "%q is not a severity: use one of %s", d.Severity, strings.Join(Severities, ", ")))
	}
	// A crisis no record can name: the rule would never fire, without a word.
	var fe *record.FieldError
	if err := record.CheckCrisis("crisis", d.Crisis); d.Crisis != "" && errors.As(err, &fe) {
		probs = append(probs, p.problem("crisis", "%s", fe.Reason))
	}
	for i, reg := range d.Regions {
		field := fmt.Sprintf("regions[%d]", i)
		switch {
		case strings.TrimSpace(reg) == "" || slices.Index(d.Regions, reg) < i:
			probs = append(probs, p.problem(field, "%q is empty or listed twice", reg))
		case record.CheckRegion(field, reg) != nil:
			// A region no record can have: the rule would never fire, without a word.
			probs = append(probs, p.problem(field, "%q is not a region: use a safety-region code VR01 to VR25 (upper case), or NL for the whole country", reg))
		}
	}
	if d.For != "" {
		f, err := time.ParseDuration(d.For)
		switch {
		case err != nil:
			probs = append(probs, p.problem("for", "%q is not a duration: use one such as 30m or 24h", d.For))
		case f < 0 || f > MaxFor:
			probs = append(probs, p.problem("for", "%s is out of range: use a duration from 0 to %s", d.For, MaxFor))
		default:
			r.For = f
		}
	}
	if strings.TrimSpace(d.When) == "" {
		probs = append(probs, p.problem("when", "a rule needs a condition: write one such as count(\"signal\", duration(\"6h\")) >= 3"))
	} else {
		c, cp := compileCondition(d.When, kinds)
		probs = append(probs, p.celProblems("when", cp)...)
		r.when = c
	}
	if strings.TrimSpace(d.Clear) != "" {
		c, cp := compileCondition(d.Clear, kinds)
		probs = append(probs, p.celProblems("clear", cp)...)
		r.clear = c
	}
	probs = policy.WithoutMisspelt(probs, unknown)
	if len(probs) > 0 {
		slices.SortStableFunc(probs, func(a, b policy.Problem) int {
			if a.Line != b.Line {
				return a.Line - b.Line
			}
			return a.Column - b.Column
		})
		return nil, probs
	}
	return r, nil
}

// parsed is a document's YAML with the positions of its fields.
type parsed struct {
	file *yast.File
	src  []byte
}

var yamlPosRe = regexp.MustCompile(`^\[(\d+):(\d+)\]\s*(.*)$`)

func yamlProblem(err error) policy.Problem {
	msg := yaml.FormatError(err, false, false)
	first := strings.SplitN(strings.TrimSpace(msg), "\n", 2)[0]
	if m := yamlPosRe.FindStringSubmatch(first); m != nil {
		line, _ := strconv.Atoi(m[1])
		col, _ := strconv.Atoi(m[2])
		return policy.Problem{Line: line, Column: col, Message: m[3]}
	}
	return policy.Problem{Message: first}
}

func (p *parsed) token(field string) *token.Token {
	path, err := yaml.PathString("$." + field)
	if err != nil {
		return nil
	}
	node, err := path.FilterFile(p.file)
	if err != nil || node == nil {
		return nil
	}
	return node.GetToken()
}

func (p *parsed) problem(field, format string, args ...any) policy.Problem {
	pr := policy.Problem{Field: field, Message: fmt.Sprintf(format, args...)}
	if t := p.token(field); t != nil {
		pr.Line, pr.Column = t.Position.Line, t.Position.Column
	}
	return pr
}

// celProblems places the problems of a condition in the YAML: CEL counts lines and columns in
// the condition's text, which starts after the key (plain or quoted) or on the lines after it
// (a block scalar, `|` or `>`).
func (p *parsed) celProblems(field string, cps []celProblem) policy.Problems {
	var out policy.Problems
	t := p.token(field)
	for _, cp := range cps {
		pr := policy.Problem{Field: field, Message: cp.msg}
		if t != nil {
			pr.Line, pr.Column = t.Position.Line, t.Position.Column
			if cp.line > 0 {
				switch {
				case t.Type == token.LiteralType || t.Type == token.FoldedType:
					// The value's lines start on the line after the indicator, after the block's
					// indentation.
					pr.Line = t.Position.Line + cp.line
					pr.Column = indentOf(p.src, pr.Line) + cp.col + 1
				case cp.line == 1:
					quote := 0
					if t.Type == token.DoubleQuoteType || t.Type == token.SingleQuoteType {
						quote = 1
					}
					pr.Column = t.Position.Column + quote + cp.col
				default:
					pr.Line = t.Position.Line + cp.line - 1
					pr.Column = indentOf(p.src, pr.Line) + cp.col + 1
				}
			}
		}
		out = append(out, pr)
	}
	return out
}

// indentOf is the number of leading spaces of a line (1-based) of src.
func indentOf(src []byte, line int) int {
	lines := strings.Split(string(src), "\n")
	if line < 1 || line > len(lines) {
		return 0
	}
	l := lines[line-1]
	return len(l) - len(strings.TrimLeft(l, " "))
}

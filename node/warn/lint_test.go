package warn_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/knooppunt/knooppunt/node/warn"
	"github.com/knooppunt/knooppunt/policy"
)

const head = "name: r\nseverity: severe\n"

// TestLintRefusesWithPosition checks that each kind of bad rule is refused, with the line and
// column of the YAML where the problem is (inside the condition for a CEL problem), and a message
// that says what to fix.
func TestLintRefusesWithPosition(t *testing.T) {
	for _, tc := range []struct {
		name, src    string
		line, column int
		field, msg   string
	}{
		{"syntax", head + `when: sum("shelter.capacity", "beds_free") < `, 3, 45, "when", "Syntax error"},
		{"unknown kind", head + `when: sum("shelter.capaciti", "beds_free") < 5`, 3, 11, "when", `unknown kind "shelter.capaciti"`},
		{"unknown field", head + `when: sum("shelter.capacity", "beds_fre") < 5`, 3, 31, "when", `"beds_fre" is not an aggregate field of "shelter.capacity": use one of beds_total, beds_free`},
		{"kind without aggregates", head + `when: sum("signal", "level") < 5`, 3, 21, "when", `has no aggregate fields`},
		{"count of unknown kind", head + "when: |\n  count(\"signal\", duration(\"6h\")) >= 3 ||\n  count(\"signals\", duration(\"6h\")) >= 3", 5, 9, "when", `count: unknown kind "signals"`},
		{"wrong types", head + `when: ratio(count("signal", duration("6h")), 2.0) > 1.0`, 3, 12, "when", "found no matching overload for 'ratio' applied to '(int, double)'"},
		{"not bool", head + `when: sum("shelter.capacity", "beds_free")`, 3, 7, "when", "yields double, not bool"},
		{"window not literal", head + `when: delta(sum("shelter.capacity", "beds_free"), duration("2" + "4h")) < -100`, 3, 59, "when", "the window must be a literal duration"},
		{"bad window", head + `when: count("signal", duration("-6h")) > 1`, 3, 31, "when", `"-6h" is not a window`},
		{"over cost", head + `when: '[1,2,3,4,5,6,7,8,9,10].all(a, [1,2,3,4,5,6,7,8,9,10].all(b, [1,2,3,4,5,6,7,8,9,10].all(c, sum("shelter.capacity", "beds_free") > double(a+b+c))))'`, 3, 8, "when", "over the budget of 10000"},
		{"clear quoted", head + "when: count(\"signal\", duration(\"6h\")) >= 3\nclear: \"count('signal', duration('6h')) < x\"", 4, 43, "clear", "undeclared reference to 'x'"},
		{"severity", "name: r\nseverity: loud\nwhen: count(\"signal\", duration(\"6h\")) >= 3", 2, 11, "severity", `"loud" is not a severity`},
		{"severity missing", "name: r\nseverity:\nwhen: count(\"signal\", duration(\"6h\")) >= 3", 2, 10, "severity", `a rule needs a severity: use one of minor, moderate, severe, extreme`},
		{"crisis with a capital", head + "crisis: Oekraïne\nwhen: count(\"signal\", duration(\"6h\")) >= 3", 3, 9, "crisis", `"Oekraïne" is not a crisis name: use 1 to 64 of a-z 0-9 . _ -`},
		{"for", head + "when: count(\"signal\", duration(\"6h\")) >= 3\nfor: soon", 4, 6, "for", `"soon" is not a duration`},
		{"region lower case", head + "regions: [VR09, vr10]\nwhen: count(\"signal\", duration(\"6h\")) >= 3", 3, 17, "regions[1]", `"vr10" is not a region: use a safety-region code VR01 to VR25`},
		{"no such region", head + "regions: [VR99]\nwhen: count(\"signal\", duration(\"6h\")) >= 3", 3, 11, "regions[0]", `"VR99" is not a region`},
		{"records of unknown kind", head + `when: records("sitreps").exists(r, r.severity == "high")`, 3, 15, "when", `records: unknown kind "sitreps"`},
		{"records field unknown", head + `when: records("sitrep").exists(r, r.severty == "high")`, 3, 36, "when", "undefined field 'severty'"},
		{"records field wrong type", head + `when: records("sitrep").exists(r, r.severity > 3)`, 3, 46, "when", "found no matching overload for '_>_' applied to '(string, int)'"},
		{"records field not scalar", head + `when: records("alert").exists(a, size(a.values) > 0)`, 3, 40, "when", "undefined field 'values'"},
		{"records over cost", head + `when: records("sitrep").exists(a, records("sitrep").exists(b, a.title == b.title && a.summary != b.summary))`, 3, 7, "when", "over the budget of 10000"},
		{"records kind not literal", head + `when: records("sit" + "rep").size() > 0`, 3, 21, "when", "the kind must be a string literal"},
		{"unknown key", head + "when: count(\"signal\", duration(\"6h\")) >= 3\nwhn: x", 4, 1, "", `unknown field "whn"`},
		// Aliases expand as they decode: refused before, as a policy's are (review AD, AD4).
		{"alias", "a0: &a0 [x, x, x]\na1: &a1 [*a0, *a0, *a0]\n" + head + "description: *a1\nwhen: count(\"signal\", duration(\"6h\")) >= 3", 1, 5, "", "a YAML anchor or alias"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := warn.Lint([]byte(tc.src), nil)
			var ps policy.Problems
			if !errors.As(err, &ps) || r != nil {
				t.Fatalf("Lint = %v, %v; want problems", r, err)
			}
			p := ps[0]
			if p.Line != tc.line || p.Column != tc.column || p.Field != tc.field || !strings.Contains(p.Message, tc.msg) {
				t.Errorf("problem %d:%d %s: %s\nwant      %d:%d %s: ...%s...", p.Line, p.Column, p.Field, p.Message, tc.line, tc.column, tc.field, tc.msg)
			}
		})
	}
}

// TestLintGoesOnPastAMisspeltField: a misspelt field is named with the field it most resembles,
// the rest of the rule is still checked in the same run, and the field it stands for is not also
// said to be missing.
func TestLintGoesOnPastAMisspeltField(t *testing.T) {
	src := "nam: r\nseverity: severe\ncolour: red\nwhen: count(\"signal\", duration(\"6h\")) >= 3\nfor: soon\n"
	_, err := warn.Lint([]byte(src), nil)
	var got []string
	for _, p := range err.(policy.Problems) {
		got = append(got, fmt.Sprintf("%d:%d %s: %s", p.Line, p.Column, p.Field, p.Message))
	}
	want := []string{
		`1:1 : unknown field "nam": did you mean "name"?`,
		`3:1 : unknown field "colour": a rule has name, description, severity, crisis, regions, when, clear, for`,
		`5:6 for: "soon" is not a duration: use one such as 30m or 24h`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("lint:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestLintAcceptsIssueExamples checks that the issue's examples lint, with the kinds and windows
// they read.
func TestLintAcceptsIssueExamples(t *testing.T) {
	for _, when := range []string{
		`ratio(sum("shelter.capacity", "beds_free"), sum("shelter.capacity", "beds_total")) < 0.05`,
		`delta(sum("shelter.capacity", "beds_free"), duration("24h")) < -100.0`,
		`count("signal", duration("6h")) >= 3`,
		`delta(ratio(sum("shelter.capacity", "beds_free"), sum("shelter.capacity", "beds_total")), duration("1h")) < -0.1 && region == "VR19"`,
		`records("sitrep").exists(r, r.severity == "high" || r.severity == "critical")`,
		`records("signal").filter(s, has(s.confidence) && s.confidence >= 0.8).size() >= 2`,
		`records("shelter.capacity").exists(s, s.beds_free < 5 && s.municipality.startsWith("Goe"))`,
	} {
		r, err := warn.Lint([]byte(head+"when: '"+when+"'\nfor: 30m\n"), nil)
		if err != nil {
			t.Errorf("%s: %v", when, err)
			continue
		}
		if len(r.Kinds()) != 1 {
			t.Errorf("%s: kinds %v", when, r.Kinds())
		}
	}
}

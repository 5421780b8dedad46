package policy_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/knooppunt/knooppunt/policy"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// good is a policy document that parses, lints and compiles. Its fields are on lines 1 to 9, so
// a case that appends a line puts it on line 10.
const good = `name: lcvs-capacity-to-regions
purpose: spreiding en opvang vluchtelingen
recipients: [group:veiligheidsregios, spiffe://ncc.crisis.test]
kinds: [shelter.capacity]
max_classification: internal
when: record.crisis == "oekraine" && record.body.beds_free >= 0
redact: [body.contact_phone]
phases: [lukewarm, warm]
valid_until: 2026-12-31T00:00:00Z
`

// head is the first five lines of good: every required field and nothing else.
const head = `name: p
purpose: x
recipients: [spiffe://ncc.crisis.test]
kinds: [sitrep]
max_classification: internal
`

func TestParseGood(t *testing.T) {
	p, err := policy.Parse([]byte(good))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	until := time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC)
	d := p.Doc
	if d.Name != "lcvs-capacity-to-regions" || d.Purpose != "spreiding en opvang vluchtelingen" ||
		!slices.Equal(d.Recipients, []string{"group:veiligheidsregios", "spiffe://ncc.crisis.test"}) ||
		!slices.Equal(d.Kinds, []string{"shelter.capacity"}) || d.MaxClassification != "internal" ||
		d.When != `record.crisis == "oekraine" && record.body.beds_free >= 0` ||
		!slices.Equal(d.Redact, []string{"body.contact_phone"}) || !slices.Equal(d.Phases, []string{"lukewarm", "warm"}) ||
		d.ValidFrom != nil || d.ValidUntil == nil || !d.ValidUntil.Equal(until) {
		t.Fatalf("Parse = %+v", d)
	}
	if d.Classification() != pb.Classification_INTERNAL {
		t.Fatalf("Classification() = %v, want INTERNAL", d.Classification())
	}
}

// TestParseBadInput is the table of documents that do not parse: each case names the exact
// line, column, field and message an officer sees.
func TestParseBadInput(t *testing.T) {
	cases := []struct {
		name string
		src  string
		want []policy.Problem
	}{
		{"empty", "", []policy.Problem{{Message: "the document is empty"}}},
		{"only white space", " \n\t\n", []policy.Problem{{Message: "the document is empty"}}},
		{"malformed YAML: open flow sequence", "name: [a\n", []policy.Problem{
			{Line: 1, Column: 7, Message: "sequence end token ']' not found"}}},
		{"malformed YAML: bad indentation", "name: p\npurpose: x\n  bad: indent\n", []policy.Problem{
			{Line: 2, Column: 10, Message: "mapping value is not allowed in this context"}}},
		{"not a mapping", "- a\n- b\n", []policy.Problem{
			{Line: 1, Column: 1, Message: "sequence was used where mapping is expected"}}},
		{"a string where a list belongs", "name: p\npurpose: x\nrecipients: spiffe://ncc.crisis.test\n", []policy.Problem{
			{Line: 3, Column: 13, Message: "string was used where sequence is expected"}}},
		{"a field twice", head + "kinds: [qa]\n", []policy.Problem{
			{Line: 6, Column: 1, Message: `mapping key "kinds" already defined at [4:1]`}}},
		{"unknown field", head + "colour: red\n", []policy.Problem{
			{Line: 6, Column: 1, Message: `unknown field "colour": a policy has version, name, purpose, accept_purposes, recipients, kinds, max_classification, when, redact, phases, valid_from, valid_until, statuses, exercises`}}},
		{"misspelt field", head + "redacts: [body.x]\n", []policy.Problem{
			{Line: 6, Column: 1, Message: `unknown field "redacts": did you mean "redact"?`}}},
		{"two misspelt fields, in the document's order", "name: p\nrecipient: [x]\npurpose: x\nmax_clasification: internal\nkinds: [qa]\n", []policy.Problem{
			{Line: 2, Column: 1, Message: `unknown field "recipient": did you mean "recipients"?`},
			{Line: 4, Column: 1, Message: `unknown field "max_clasification": did you mean "max_classification"?`}}},
		{"a number where a time belongs", head + "valid_until: 12\n", []policy.Problem{
			{Line: 6, Column: 14, Message: "cannot unmarshal uint64 into Go struct field Document.ValidUntil of type time.Time"}}},
		{"unreadable valid_until", head + "valid_until: tomorrow\n", []policy.Problem{
			{Line: 6, Column: 14, Field: "valid_until", Message: "not a time: use RFC 3339, such as 2026-12-31T00:00:00Z"}}},
		{"unreadable valid_from", head + "valid_from: 2026-12-31 23:00\n", []policy.Problem{
			{Line: 6, Column: 13, Field: "valid_from", Message: "not a time: use RFC 3339, such as 2026-12-31T00:00:00Z"}}},
		{"empty valid_until", head + "valid_until: \"\"\n", []policy.Problem{
			{Line: 6, Column: 14, Field: "valid_until", Message: "not a time: use RFC 3339, such as 2026-12-31T00:00:00Z"}}},
		{"window ends before it starts", head + "valid_from: 2026-06-02T00:00:00Z\nvalid_until: 2026-06-01T00:00:00Z\n", []policy.Problem{
			{Line: 7, Column: 14, Field: "valid_until", Message: "2026-06-01T00:00:00Z ends before the validity window starts (valid_from 2026-06-02T00:00:00Z)"}}},
		{"window of no time at all", head + "valid_from: 2026-06-01T00:00:00Z\nvalid_until: 2026-06-01T00:00:00Z\n", []policy.Problem{
			{Line: 7, Column: 14, Field: "valid_until", Message: "2026-06-01T00:00:00Z ends before the validity window starts (valid_from 2026-06-01T00:00:00Z)"}}},
		{"bad classification", strings.Replace(head, "max_classification: internal", "max_classification: geheim", 1), []policy.Problem{
			{Line: 5, Column: 21, Field: "max_classification", Message: `"geheim" is not a classification: use public, internal, confidential or secret`}}},
		{"classification in capitals", strings.Replace(head, "max_classification: internal", "max_classification: Internal", 1), []policy.Problem{
			{Line: 5, Column: 21, Field: "max_classification", Message: `"Internal" is not a classification: use public, internal, confidential or secret`}}},
		{"missing classification", strings.Replace(head, "max_classification: internal\n", "", 1), []policy.Problem{
			{Field: "max_classification", Message: `"" is not a classification: use public, internal, confidential or secret`}}},
		{"bad phase", head + "phases: [cold, hot]\n", []policy.Problem{
			{Line: 6, Column: 16, Field: "phases[1]", Message: `"hot" is not a phase: use cold, lukewarm or warm`}}},
		{"a test status", head + "statuses: [exercise, test]\n", []policy.Problem{
			{Line: 6, Column: 22, Field: "statuses[1]", Message: "test records never leave the node: use actual or exercise"}}},
		{"an unknown status", head + "statuses: [real]\n", []policy.Problem{
			{Line: 6, Column: 12, Field: "statuses[0]", Message: `"real" is not a status a policy grants: use actual or exercise`}}},
		{"a status twice", head + "statuses: [exercise, exercise]\n", []policy.Problem{
			{Line: 6, Column: 22, Field: "statuses[1]", Message: `"exercise" is listed already: list each status once`}}},
		{"exercises without statuses", head + "exercises: [oef-1]\n", []policy.Problem{
			{Line: 6, Column: 12, Field: "exercises", Message: "names exercises, but statuses does not grant exercise records: add statuses: [exercise]"}}},
		{"a bad exercise name", head + "statuses: [exercise]\nexercises: [\"oef 1\"]\n", []policy.Problem{
			{Line: 7, Column: 13, Field: "exercises[0]", Message: `"oef 1" is not an exercise name: use 1 to 128 of A-Z a-z 0-9 . _ : -, such as oefening-2026-12-vr09`}}},
		{"bad redact paths", head + "redact: [body.a.b, contact_phone, body, body.a..b]\n", []policy.Problem{
			{Line: 6, Column: 20, Field: "redact[1]", Message: `"contact_phone" is not a body path: use body.FIELD or body.FIELD.SUB`},
			{Line: 6, Column: 35, Field: "redact[2]", Message: `"body" is not a body path: use body.FIELD or body.FIELD.SUB`},
			{Line: 6, Column: 41, Field: "redact[3]", Message: `"body.a..b" is not a body path: use body.FIELD or body.FIELD.SUB`}}},
		{"missing purpose", strings.Replace(head, "purpose: x\n", "", 1), []policy.Problem{
			{Field: "purpose", Message: "missing: say what the sharing is for (doelbinding)"}}},
		{"blank purpose", strings.Replace(head, "purpose: x", `purpose: "  "`, 1), []policy.Problem{
			{Line: 2, Column: 10, Field: "purpose", Message: "missing: say what the sharing is for (doelbinding)"}}},
		{"missing recipients", strings.Replace(head, "recipients: [spiffe://ncc.crisis.test]\n", "", 1), []policy.Problem{
			{Field: "recipients", Message: "missing: name at least one recipient"}}},
		{"empty recipients", strings.Replace(head, "[spiffe://ncc.crisis.test]", "[]", 1), []policy.Problem{
			{Line: 3, Column: 13, Field: "recipients", Message: "missing: name at least one recipient"}}},
		{"bad recipients", strings.Replace(head, "[spiffe://ncc.crisis.test]", "[group:, group:Vr, spiffe://, ncc, NCC.test]", 1), []policy.Problem{
			{Line: 3, Column: 14, Field: "recipients[0]", Message: `"group:" is not a group: use group:NAME`},
			{Line: 3, Column: 22, Field: "recipients[1]", Message: `"group:Vr" is not a group: use group:NAME`},
			{Line: 3, Column: 32, Field: "recipients[2]", Message: `"spiffe://" is not a SPIFFE ID`},
			{Line: 3, Column: 43, Field: "recipients[3]", Message: `"ncc" is not a recipient: use a SPIFFE ID, a trust domain or group:NAME`},
			{Line: 3, Column: 48, Field: "recipients[4]", Message: `"NCC.test" is not a recipient: use a SPIFFE ID, a trust domain or group:NAME`}}},
		{"empty kinds", strings.Replace(head, "[sitrep]", "[]", 1), []policy.Problem{
			{Line: 4, Column: 8, Field: "kinds", Message: "missing: name at least one kind"}}},
		{"bad name", strings.Replace(head, "name: p", "name: P_Q", 1), []policy.Problem{
			{Line: 1, Column: 7, Field: "name", Message: `"P_Q" is not a policy name: use 1 to 63 of a-z 0-9 -, such as lcvs-capacity-to-regions`}}},
		{"newer schema", head + "version: 2\n", []policy.Problem{
			{Line: 6, Column: 10, Field: "version", Message: "schema version 2 is not supported: this knooppunt reads version 1"}}},
		{"several problems, in line order", "version: 3\nname: x\nrecipients: [x]\nkinds: [sitrep]\nmax_classification: top\npurpose: p\n", []policy.Problem{
			{Line: 1, Column: 10, Field: "version", Message: "schema version 3 is not supported: this knooppunt reads version 1"},
			{Line: 3, Column: 14, Field: "recipients[0]", Message: `"x" is not a recipient: use a SPIFFE ID, a trust domain or group:NAME`},
			{Line: 5, Column: 21, Field: "max_classification", Message: `"top" is not a classification: use public, internal, confidential or secret`}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := policy.Parse([]byte(tc.src))
			if err == nil {
				t.Fatalf("Parse accepted it: %+v", p.Doc)
			}
			var got policy.Problems
			if !errors.As(err, &got) {
				t.Fatalf("Parse error %T %v, want policy.Problems", err, err)
			}
			if !sameProblems(got, tc.want) {
				t.Fatalf("problems\n got %#v\nwant %#v", got, tc.want)
			}
			// Lint and Compile report the same problems: they parse first.
			if _, err := policy.Lint([]byte(tc.src), nil); err == nil || err.Error() != got.Error() {
				t.Fatalf("Lint = %v, want the problems of Parse", err)
			}
			if _, err := policy.Compile(policy.Policy{Source: []byte(tc.src)}); err == nil || err.Error() != got.Error() {
				t.Fatalf("Compile = %v, want the problems of Parse", err)
			}
		})
	}
}

func TestParseTimes(t *testing.T) {
	cases := []struct {
		line string
		want *time.Time
	}{
		{"valid_until: 2026-12-31T23:00:00+02:00", ptr(time.Date(2026, 12, 31, 21, 0, 0, 0, time.UTC))},
		{"valid_until: 2026-12-01", ptr(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))},
		{"valid_until:", nil},
		{"valid_until: null", nil},
	}
	for _, tc := range cases {
		p, err := policy.Parse([]byte(head + tc.line + "\n"))
		if err != nil {
			t.Errorf("%s: %v", tc.line, err)
			continue
		}
		if got := p.Doc.ValidUntil; (got == nil) != (tc.want == nil) || got != nil && !got.Equal(*tc.want) {
			t.Errorf("%s: ValidUntil = %v, want %v", tc.line, got, tc.want)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func TestProblemText(t *testing.T) {
	ps := policy.Problems{
		{Line: 3, Column: 14, Field: "recipients[0]", Message: "bad"},
		{Field: "purpose", Message: "missing"},
		{Line: 1, Column: 7, Message: "yaml"},
		{Message: "the document is empty"},
	}
	want := "line 3, column 14: recipients[0]: bad\npurpose: missing\nline 1, column 7: yaml\nthe document is empty"
	if ps.Error() != want {
		t.Fatalf("Error() = %q, want %q", ps.Error(), want)
	}
}

func TestParseRecipient(t *testing.T) {
	cases := []struct {
		in   string
		want policy.RecipientRef
		err  string
	}{
		{in: "group:veiligheidsregios", want: policy.RecipientRef{Kind: policy.RecipientGroup, Value: "veiligheidsregios"}},
		{in: "spiffe://ncc.crisis.test", want: policy.RecipientRef{Kind: policy.RecipientTrustDomain, Value: "ncc.crisis.test"}},
		{in: "spiffe://ncc.crisis.test/", want: policy.RecipientRef{Kind: policy.RecipientTrustDomain, Value: "ncc.crisis.test"}},
		{in: "ncc.crisis.test", want: policy.RecipientRef{Kind: policy.RecipientTrustDomain, Value: "ncc.crisis.test"}},
		{in: "spiffe://ncc.crisis.test/node/r1", want: policy.RecipientRef{Kind: policy.RecipientID, Value: "spiffe://ncc.crisis.test/node/r1"}},
		{in: "spiffe://ncc.crisis.test/node/r1/", want: policy.RecipientRef{Kind: policy.RecipientID, Value: "spiffe://ncc.crisis.test/node/r1"}},
		{in: "ncc", err: `"ncc" is not a recipient: use a SPIFFE ID, a trust domain or group:NAME`},
		{in: "spiffe://NCC.test/node/r1", err: `"spiffe://NCC.test/node/r1" is not a SPIFFE ID: a trust domain is lower case, such as "spiffe://ncc.test/node/r1"`},
		{in: "spiffe://ncc test", err: `"spiffe://ncc test" is not a SPIFFE ID`},
		{in: "group:a b", err: `"group:a b" is not a group: use group:NAME`},
		{in: "", err: `"" is not a recipient: use a SPIFFE ID, a trust domain or group:NAME`},
	}
	for _, tc := range cases {
		got, err := policy.ParseRecipient(tc.in)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("ParseRecipient(%q) = %+v, %v; want error %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseRecipient(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestPhaseRank(t *testing.T) {
	for want, p := range []string{"cold", "lukewarm", "warm"} {
		if got := policy.PhaseRank(p); got != want {
			t.Errorf("PhaseRank(%q) = %d, want %d", p, got, want)
		}
	}
	for _, p := range []string{"", "hot", "Warm"} {
		if got := policy.PhaseRank(p); got != -1 {
			t.Errorf("PhaseRank(%q) = %d, want -1", p, got)
		}
	}
}

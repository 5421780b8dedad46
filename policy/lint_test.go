package policy_test

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/knooppunt/knooppunt/policy"
)

// nodeContext is a node that knows three kinds, two peers and their groups.
var nodeContext = &policy.Context{
	Kinds: []string{"shelter.capacity", "sitrep", "qa"},
	Peers: []policy.Recipient{
		{ID: "spiffe://ncc.crisis.test/node/r1", TrustDomain: "ncc.crisis.test", Name: "ncc", Groups: []string{"rijk"}},
		{ID: "spiffe://vr-utrecht.crisis.test/node/r1", TrustDomain: "vr-utrecht.crisis.test", Name: "vr-utrecht", Groups: []string{"veiligheidsregios"}},
	},
	Groups: []string{"rijk", "veiligheidsregios"},
}

func lintProblems(t *testing.T, src string, ctx *policy.Context) policy.Problems {
	t.Helper()
	c, err := policy.Lint([]byte(src), ctx)
	if err == nil {
		t.Fatalf("Lint accepted it: %+v", c.Doc)
	}
	var ps policy.Problems
	if !errors.As(err, &ps) {
		t.Fatalf("Lint error %T %v, want policy.Problems", err, err)
	}
	return ps
}

func TestLintGood(t *testing.T) {
	c, err := policy.Lint([]byte(good), nodeContext)
	if err != nil {
		t.Fatalf("Lint: %v", err)
	}
	if c.Name != "lcvs-capacity-to-regions" || string(c.Source) != good || c.Doc.Name != c.Name {
		t.Fatalf("Lint = name %q, source %q", c.Name, c.Source)
	}
	// Offline, without a node, the same document lints too.
	if _, err := policy.Lint([]byte(good), nil); err != nil {
		t.Fatalf("Lint without a node: %v", err)
	}
	// Every variable and field that `when` may use type-checks.
	every := head + `when: >-
  now > timestamp("2026-01-01T00:00:00Z") && phase == "warm" && "rijk" in recipient.groups &&
  record.labels.exists(k, k == "x") && record.updated_at < now && record.version > 1 &&
  record.id.startsWith("a") && record.classification == "public" && record.origin == "x" &&
  record.kind == "x" && record.region == "VR01" && recipient.id == "x" &&
  recipient.trust_domain == "x" && recipient.name == "ncc" && record.body.a.b == 1
`
	if _, err := policy.Lint([]byte(every), nil); err != nil {
		t.Fatalf("Lint of a condition over every variable: %v", err)
	}
}

// TestLintBadCondition is the table of `when` conditions that do not lint. The problem is at the
// `when` field (line 6, column 7 of head+when); CEL's own message locates it in the expression.
func TestLintBadCondition(t *testing.T) {
	cases := []struct {
		name, when, msg string
	}{
		{"syntax error", `record.crisis ==`,
			"ERROR: <input>:1:17: Syntax error: mismatched input '<EOF>' expecting {'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER}\n | record.crisis ==\n | ................^"},
		{"type error", `record.crisis == 1`,
			"ERROR: <input>:1:15: found no matching overload for '_==_' applied to '(string, int)'\n | record.crisis == 1\n | ..............^"},
		{"unknown field of record", `record.nosuch == "x"`,
			"ERROR: <input>:1:7: undefined field 'nosuch'\n | record.nosuch == \"x\"\n | ......^"},
		{"unknown variable", `crisis == "x"`,
			"ERROR: <input>:1:1: undeclared reference to 'crisis'\n | crisis == \"x\"\n | ^"},
		{"not a bool", `record.crisis`, "yields string, not bool"},
		{"dyn, not a bool", `record.body.n`, "yields dyn, not bool"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := lintProblems(t, head+"when: '"+strings.ReplaceAll(tc.when, "'", "''")+"'\n", nil)
			want := policy.Problems{{Line: 6, Column: 7, Field: "when", Message: tc.msg, Code: "when", Args: []string{tc.msg}}}
			if !slices.EqualFunc(got, want, func(a, b policy.Problem) bool { return reflect.DeepEqual(a, b) }) {
				t.Fatalf("problems\n got %#v\nwant %#v", got, want)
			}
		})
	}
}

// TestLintCostBudget checks that a condition whose worst case is over the budget is refused, and
// that the message gives the estimate and the budget.
func TestLintCostBudget(t *testing.T) {
	msgRe := regexp.MustCompile(`^worst-case cost (\d+) is over the budget of 10000: simplify it, or bound the lists it walks$`)
	for _, when := range []string{
		`record.labels.all(k, record.labels.all(j, record.body.exists(x, x == k + j)))`,
		`record.body.a.exists(x, record.body.b.exists(y, record.body.c.exists(z, x == y)))`,
	} {
		got := lintProblems(t, head+"when: '"+when+"'\n", nil)
		if len(got) != 1 || got[0].Line != 6 || got[0].Column != 7 || got[0].Field != "when" {
			t.Fatalf("%s: problems %#v, want one at line 6, column 7, field when", when, got)
		}
		m := msgRe.FindStringSubmatch(got[0].Message)
		if m == nil {
			t.Fatalf("%s: message %q", when, got[0].Message)
		}
		if n, _ := strconv.ParseUint(m[1], 10, 64); n <= policy.CostBudget {
			t.Fatalf("%s: estimate %d is within the budget %d it was refused for", when, n, policy.CostBudget)
		}
	}
	// One walk over a bounded list fits.
	if _, err := policy.Lint([]byte(head+"when: 'record.labels.exists(k, k == \"x\")'\n"), nil); err != nil {
		t.Fatalf("a single walk over labels: %v", err)
	}
}

// TestLintAgainstNode checks the names a document uses against what a node knows: kinds,
// peers (by SPIFFE ID or trust domain) and groups.
func TestLintAgainstNode(t *testing.T) {
	src := `name: p
purpose: x
recipients: [spiffe://ncc.crisis.test, group:vr, spiffe://defensie.crisis.test/node/r1, ministerie.crisis.test, group:rijk, vr-utrecht.crisis.test, spiffe://ncc.crisis.test/user/x]
kinds: [sitrep, foo, qa]
max_classification: internal
`
	want := policy.Problems{
		{Line: 3, Column: 40, Field: "recipients[1]", Message: `unknown group "group:vr": no peer of the node is in it (peer list shows each peer's groups)`},
		{Line: 3, Column: 50, Field: "recipients[2]", Message: `unknown peer "spiffe://defensie.crisis.test/node/r1": it is not one of the node's peers (peer list shows them)`},
		{Line: 3, Column: 89, Field: "recipients[3]", Message: `unknown peer "ministerie.crisis.test": it is not one of the node's peers (peer list shows them)`},
		{Line: 4, Column: 17, Field: "kinds[1]", Message: `unknown kind "foo": the node knows shelter.capacity, sitrep, qa`},
	}
	if got := lintProblems(t, src, nodeContext); !sameProblems(got, want) {
		t.Fatalf("problems\n got %#v\nwant %#v", got, want)
	}
	// Offline, those names cannot be checked, and the document lints.
	if _, err := policy.Lint([]byte(src), nil); err != nil {
		t.Fatalf("Lint without a node: %v", err)
	}
	// A node with no peers knows no recipient at all.
	got := lintProblems(t, head, &policy.Context{Kinds: []string{"sitrep"}})
	want = policy.Problems{{Line: 3, Column: 14, Field: "recipients[0]", Message: `unknown peer "spiffe://ncc.crisis.test": it is not one of the node's peers (peer list shows them)`}}
	if !sameProblems(got, want) {
		t.Fatalf("no peers: problems\n got %#v\nwant %#v", got, want)
	}
}

// TestLintReportsEverything checks that schema, condition and node problems come together when
// the schema is sound, sorted by line.
func TestLintReportsEverything(t *testing.T) {
	src := `name: p
purpose: x
recipients: [group:nobody]
kinds: [nokind]
max_classification: internal
when: record.crisis == 1
`
	got := lintProblems(t, src, nodeContext)
	want := policy.Problems{
		{Line: 3, Column: 14, Field: "recipients[0]", Message: `unknown group "group:nobody": no peer of the node is in it (peer list shows each peer's groups)`},
		{Line: 4, Column: 9, Field: "kinds[0]", Message: `unknown kind "nokind": the node knows shelter.capacity, sitrep, qa`},
		{Line: 6, Column: 7, Field: "when", Message: "ERROR: <input>:1:15: found no matching overload for '_==_' applied to '(string, int)'\n | record.crisis == 1\n | ..............^"},
	}
	if !sameProblems(got, want) {
		t.Fatalf("problems\n got %#v\nwant %#v", got, want)
	}
}

// TestCompileRefusesBadCondition checks that a stored policy whose condition no longer compiles
// is not silently compiled without it: a policy without its condition would grant more.
func TestCompileRefusesBadCondition(t *testing.T) {
	_, err := policy.Compile(policy.Policy{ID: "p@1", Source: []byte(head + "when: record.crisis == 1\n"), State: policy.StateApproved})
	var ps policy.Problems
	if !errors.As(err, &ps) || len(ps) != 1 || ps[0].Field != "when" {
		t.Fatalf("Compile = %v, want the when problem", err)
	}
	c, err := policy.Compile(policy.Policy{ID: "p@1", Name: "p", Version: 1, Source: []byte(good), State: policy.StateApproved, Author: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if c.ID != "p@1" || c.State != policy.StateApproved || c.Author != "a" || c.Doc.Name != "lcvs-capacity-to-regions" {
		t.Fatalf("Compile = %+v", c)
	}
}

// TestLintBodyFields: a condition that names a body field that none of the policy's kinds has is
// refused, since it would hold for no record and the policy would share nothing; so is a field
// to withhold that none has, which would withhold nothing. A field that any of the kinds has, or
// a kind whose schema declares no fields, passes.
func TestLintBodyFields(t *testing.T) {
	ctx := &policy.Context{Kinds: []string{"shelter.capacity", "sitrep", "free"}, Peers: []policy.Recipient{{TrustDomain: "ncc.crisis.test"}},
		Fields: map[string][]string{"shelter.capacity": {"municipality", "beds_total", "beds_free"}, "sitrep": {"title", "summary", "severity"}}}
	doc := func(kinds, when string) string {
		return "name: p\npurpose: x\nrecipients: [spiffe://ncc.crisis.test]\nkinds: " + kinds + "\nmax_classification: internal\nwhen: '" + when + "'\n"
	}
	// A field to withhold that no kind has: a misspelling that would let the meant field go out.
	redact := "name: p\npurpose: x\nrecipients: [spiffe://ncc.crisis.test]\nkinds: [shelter.capacity, sitrep]\nmax_classification: internal\nredact: [body.contact_phone, body.municipality]\n"
	_, err := policy.Lint([]byte(redact), ctx)
	if probs, ok := err.(policy.Problems); !ok || len(probs) != 1 || probs[0].Field != "redact[0]" ||
		probs[0].Message != `body.contact_phone: no kind this policy shares (shelter.capacity, sitrep) has a field "contact_phone", so nothing is withheld; check the field's name` {
		t.Errorf("redact of a field no kind has: %v", err)
	}
	for _, c := range []struct{ kinds, when, want string }{
		{"[shelter.capacity]", `record.body.beds > 5`, `record.body.beds: no kind this policy shares (shelter.capacity) has a field "beds", so the condition never holds for any record; check the field's name`},
		{"[shelter.capacity, sitrep]", `has(record.body.bedden) && record.body["bedden"] > 0`, `record.body.bedden: no kind this policy shares (shelter.capacity, sitrep) has a field "bedden", so the condition never holds for any record; check the field's name`},
		{"[shelter.capacity]", `record.body.beds_free > 5`, ""},
		{"[shelter.capacity, sitrep]", `has(record.body.severity) && record.body.severity == "high"`, ""},
		{"[shelter.capacity, free]", `record.body.anything == 1`, ""},
	} {
		var got string
		if _, err := policy.Lint([]byte(doc(c.kinds, c.when)), ctx); err != nil {
			probs, ok := err.(policy.Problems)
			if !ok || len(probs) != 1 || probs[0].Field != "when" {
				t.Fatalf("%s: %v", c.when, err)
			}
			got = probs[0].Message
		}
		if got != c.want {
			t.Errorf("kinds %s, when %s:\n got %q\nwant %q", c.kinds, c.when, got, c.want)
		}
	}
}

// TestLintDoubts: a redact path or a condition's field that no kind of the policy declares,
// while an open kind might carry it, is not refused but doubted, with its place; a field some kind declares is not,
// and a document without a context or that does not parse gives none.
func TestLintDoubts(t *testing.T) {
	ctx := &policy.Context{Kinds: []string{"water.level", "sitrep"}, Peers: []policy.Recipient{{TrustDomain: "ncc.crisis.test"}},
		Fields:   map[string][]string{"water.level": {"station", "level_cm", "dike_inspector_phone"}},
		Declared: map[string][]string{"water.level": {"station", "level_cm", "dike_inspector_phone"}, "sitrep": {"title", "summary"}}}
	doc := func(kinds, redact string) []byte {
		return []byte("name: p\npurpose: x\nrecipients: [spiffe://ncc.crisis.test]\nkinds: " + kinds + "\nmax_classification: internal\nredact: " + redact + "\n")
	}
	src := doc("[water.level, sitrep]", "[body.dike_inspecter_phone, body.summary, body.dike_inspector_phone]")
	if _, err := policy.Lint(src, ctx); err != nil {
		t.Fatalf("lint: %v; an open kind might carry the field, so it is no problem", err)
	}
	got := policy.LintDoubts(src, ctx)
	want := `body.dike_inspecter_phone: no kind this policy shares declares a field "dike_inspecter_phone"; the open kinds (sitrep) may carry it, but if the name is misspelt nothing is withheld: check it, and policy preview shows whether any record has it`
	if len(got) != 1 || got[0].Field != "redact[0]" || got[0].Line != 6 || got[0].Message != want {
		t.Fatalf("doubts %+v, want one at redact[0], line 6:\n%s", got, want)
	}
	if got := policy.LintDoubts(src, nil); got != nil {
		t.Errorf("doubts without a context: %+v", got)
	}
	if got := policy.LintDoubts(doc("[sitrep]", "[body.title]"), ctx); got != nil {
		t.Errorf("a field the open kind declares: %+v", got)
	}
	// The same of a field the condition names: misspelt, it holds for no record.
	cond := append(doc("[sitrep]", "[]"), "when: record.body.sumary == \"x\" || record.body.title == \"y\"\n"...)
	if _, err := policy.Lint(cond, ctx); err != nil {
		t.Fatalf("lint: %v", err)
	}
	got = policy.LintDoubts(cond, ctx)
	want = `record.body.sumary: no kind this policy shares declares a field "sumary"; the open kinds (sitrep) may carry it, but if the name is misspelt the condition holds for no record and nothing is shared: check it, and policy preview shows what would go`
	if len(got) != 1 || got[0].Field != "when" || got[0].Line != 7 || got[0].Message != want {
		t.Fatalf("doubts %+v, want one at when, line 7:\n%s", got, want)
	}
	// A window that has ended: proposed, it could only be refused at approval (review L, L9).
	ended := append(doc("[sitrep]", "[]"), "valid_until: 2026-01-01T00:00:00Z\n"...)
	got = policy.LintDoubts(ended, nil)
	want = "2026-01-01T00:00:00Z has passed: the policy would grant nothing, and its approval is refused; give a later valid_until"
	if len(got) != 1 || got[0].Field != "valid_until" || got[0].Message != want {
		t.Errorf("doubts of a window that ended: %+v, want one at valid_until:\n%s", got, want)
	}
	if got := policy.LintDoubts(append(doc("[sitrep]", "[]"), "valid_until: 2999-01-01T00:00:00Z\n"...), nil); got != nil {
		t.Errorf("doubts of a window that ends later: %+v", got)
	}
}

// TestLintRefusesControlCharacters: an escape sequence in a comment that would print another
// max_classification over the real one in the approving officer's terminal is refused at its
// place, as is one a YAML escape puts in a value, and a bidirectional override; tabs pass.
func TestLintRefusesControlCharacters(t *testing.T) {
	head := "name: p\npurpose: x\nrecipients: [spiffe://ncc.crisis.test]\nkinds: [sitrep]\n"
	for _, c := range []struct{ name, src, field, char string }{
		{"escape in a comment", head + "max_classification: secret\n# \x1b[1F\x1b[2Kmax_classification: internal\n", "", "U+001B"},
		{"YAML escape in a value", "name: p\npurpose: \"x\\e[8m\"\nrecipients: [spiffe://ncc.crisis.test]\nkinds: [sitrep]\nmax_classification: internal\n", "purpose", "U+001B"},
		{"right-to-left override", head + "max_classification: internal\n# \u202e\n", "", "U+202E"},
	} {
		_, err := policy.Lint([]byte(c.src), nil)
		probs, ok := err.(policy.Problems)
		if !ok || len(probs) != 1 || probs[0].Code != "control" || probs[0].Field != c.field || !strings.HasPrefix(probs[0].Message, c.char+": a policy holds printable text only") || probs[0].Line == 0 {
			t.Errorf("%s: %v, want one control problem at %q naming %s, with its line", c.name, err, c.field, c.char)
		}
	}
	if _, err := policy.Lint([]byte(head+"max_classification: internal\t# tab\r\n"), nil); err != nil {
		t.Errorf("a tab and a carriage return: %v", err)
	}
}

// sameProblems compares problems as people read them: place, field and message. Their codes and
// arguments are TestLintMessages's.
func sameProblems(got, want policy.Problems) bool {
	return slices.EqualFunc(got, want, func(a, b policy.Problem) bool {
		return a.Line == b.Line && a.Column == b.Column && a.Field == b.Field && a.Message == b.Message
	})
}

// TestLintMessages: every message of LintMessages is one the linter gives, and each problem
// carries its code and arguments, so that an interface can say it in another language: the
// message is the code's English text with the arguments, one for each %s.
func TestLintMessages(t *testing.T) {
	ctx := &policy.Context{Kinds: []string{"shelter.capacity", "sitrep"}, Peers: nodeContext.Peers, Groups: nodeContext.Groups,
		Fields: map[string][]string{"shelter.capacity": {"municipality", "beds_free"}}}
	long := strings.Repeat("x", policy.MaxPurposeBytes+1)
	docs := []string{
		"",
		"name: [a\n",
		"name: p\nrecipient: [x]\ncolour: red\n",
		"version: 9\nname: Bad Name\nrecipients: []\nkinds: []\nmax_classification: top\n",
		"name: p\npurpose: x\nrecipients: ['group:Bad Name', 'spiffe://Bad/x', 'spiffe://b d/x', x, ncc]\nkinds: [qa]\nmax_classification: internal\n" +
			"accept_purposes: ['', " + long + ", a, a]\nredact: [phone]\nphases: [hot]\nstatuses: [test, gone, actual, actual]\nexercises: ['bad name']\n",
		"name: p\npurpose: x\nrecipients: [spiffe://ncc.crisis.test]\nkinds: [shelter.capacity]\nmax_classification: internal\nvalid_from: tomorrow\n",
		"name: p\npurpose: x\nrecipients: [spiffe://ncc.crisis.test]\nkinds: [shelter.capacity]\nmax_classification: internal\n" +
			"valid_from: 2026-06-02T00:00:00Z\nvalid_until: 2026-06-01T00:00:00Z\n",
		"name: p\npurpose: x\nrecipients: ['group:vr', defensie.crisis.test]\nkinds: [shelter.capacity]\nmax_classification: internal\n" +
			"redact: [body.phone]\nwhen: 'record.body.beds > 1'\n",
		"name: p\npurpose: x\nrecipients: [spiffe://ncc.crisis.test]\nkinds: [shelter.capacity, foo]\nmax_classification: internal\nwhen: 'record.nosuch'\n",
		"name: p\n# \x1b[2K\n",
		"name: p\n---\npurpose: x\n",
		"name: &n p\n",
		"name: p\nkinds: [" + strings.Repeat("a, ", policy.MaxEntries) + "a]\n",
		"version: 1.5\nname: p\npurpose: x\nrecipients: ['spiffe://ncc.crisis.test/node/*', ncc.crisis.test, spiffe://ncc.crisis.test]\n" +
			"kinds: [shelter.capacity, shelter.capacity, " + strings.Repeat("k", policy.MaxKindBytes+1) + "]\nmax_classification: internal\n" +
			"accept_purposes: []\nredact: [body.a, body.a]\nphases: [warm, warm]\nstatuses: [exercise]\nexercises: [a, a]\nvalid_until: 2026-12-31\n" +
			"when: record.crisis == 'x' // a\n  && record.region == 'VR01'\n",
		"name: p\npurpose: x\nrecipients: [spiffe://ncc.crisis.test]\nkinds: [shelter.capacity]\nmax_classification: internal\nphases: []\nstatuses: [exercise]\nexercises: []\n",
	}
	seen := map[string]bool{}
	// A doubt, which is no problem: a field no kind declares, which the open sitrep may carry.
	doubted := "name: p\npurpose: x\nrecipients: [spiffe://ncc.crisis.test, 'group:rijk']\nkinds: [shelter.capacity, sitrep]\nmax_classification: secret\nredact: [body.telefon]\nwhen: \"record.body.telefon == 'x' && record.crisis == 'oekrain'\"\nvalid_until: 2026-01-01T00:00:00Z\n"
	ctx.Crises = []string{"oekraine"}
	doubts := policy.LintDoubts([]byte(doubted), ctx)
	for i, doc := range append(docs, doubted) {
		_, err := policy.Lint([]byte(doc), ctx)
		var probs policy.Problems
		if i == len(docs) {
			probs = doubts
		} else if !errors.As(err, &probs) {
			t.Fatalf("%q: %v, want problems", doc, err)
		}
		for _, p := range probs {
			format, ok := policy.LintMessages[p.Code]
			if !ok {
				t.Errorf("%s: %q has code %q, which LintMessages does not hold", p.Field, p.Message, p.Code)
				continue
			}
			args := make([]any, len(p.Args))
			for i, a := range p.Args {
				args[i] = a
			}
			if strings.Count(format, "%s") != len(p.Args) || fmt.Sprintf(format, args...) != p.Message {
				t.Errorf("%s: code %s with %q gives %q, want the message %q", p.Field, p.Code, p.Args, fmt.Sprintf(format, args...), p.Message)
			}
			seen[p.Code] = true
		}
	}
	for code := range policy.LintMessages {
		if !seen[code] {
			t.Errorf("no document gave the message %s", code)
		}
	}
}

// TestLintReportsAllAtOnce: a document that breaks the schema is checked further, so that one
// lint gives the schema's problems, the condition's and, with a node, the unknown kinds and
// recipients together, in the order of their lines. A YAML that cannot be read stops there.
func TestLintReportsAllAtOnce(t *testing.T) {
	src := "name: Bad Name\npurpose: x\nrecipients: [spiffe://defensie.crisis.test, x]\nkinds: [foo]\nmax_classification: top\nwhen: 'record.nosuch'\n"
	var fields []string
	for _, p := range lintProblems(t, src, nodeContext) {
		fields = append(fields, p.Field)
	}
	if want := []string{"name", "recipients[0]", "recipients[1]", "kinds[0]", "max_classification", "when"}; !slices.Equal(fields, want) {
		t.Errorf("problems at %v, want %v", fields, want)
	}
	// Offline, the schema's and the condition's.
	fields = nil
	for _, p := range lintProblems(t, src, nil) {
		fields = append(fields, p.Field)
	}
	if want := []string{"name", "recipients[1]", "max_classification", "when"}; !slices.Equal(fields, want) {
		t.Errorf("offline, problems at %v, want %v", fields, want)
	}
	// Parse, which Compile uses, still stops at the schema.
	if _, err := policy.Parse([]byte(src)); err == nil || strings.Contains(err.Error(), "when") {
		t.Errorf("Parse: %v, want the schema's problems only", err)
	}
	if ps := lintProblems(t, "name: [a\nwhen: 'record.nosuch'\n", nil); len(ps) != 1 || ps[0].Code != "yaml" {
		t.Errorf("unreadable YAML: %v, want its one problem", ps)
	}
}

// TestLintGoesOnPastAMisspeltField: a misspelt field does not hide the other problems of the
// document (officer.md: all of them in one run), and the field it stands for is not also said to
// be missing. Parse, which reads what is stored, still stops at it.
func TestLintGoesOnPastAMisspeltField(t *testing.T) {
	src := "name: p\npurpose: x\nrecipents: [spiffe://ncc.crisis.test]\nkinds: [sitrep]\nmax_classification: geheimpje\nphases: [heet]\n"
	var got []string
	for _, p := range lintProblems(t, src, nil) {
		got = append(got, fmt.Sprintf("%d:%d %s: %s", p.Line, p.Column, p.Field, p.Message))
	}
	want := []string{
		`3:1 : unknown field "recipents": did you mean "recipients"?`,
		`5:21 max_classification: "geheimpje" is not a classification: use public, internal, confidential or secret`,
		`6:10 phases[0]: "heet" is not a phase: use cold, lukewarm or warm`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("lint:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if _, err := policy.Parse([]byte(src)); err == nil || !strings.Contains(err.Error(), `unknown field "recipents"`) {
		t.Errorf("Parse: %v, want the misspelt field", err)
	}
}

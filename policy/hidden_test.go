package policy_test

// What a YAML source can hold that an officer reads one way and the node enforces another, and
// what it can hold that makes a short source a huge document: Lint refuses each, at its place.

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/knooppunt/knooppunt/policy"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// oneProblem lints src offline and checks that it gives exactly one problem, of code, at line
// and column, for field.
func oneProblem(t *testing.T, what, src, code, field string, line, col int) policy.Problem {
	t.Helper()
	_, err := policy.Lint([]byte(src), nil)
	probs, ok := err.(policy.Problems)
	if !ok || len(probs) != 1 || probs[0].Code != code || probs[0].Field != field || probs[0].Line != line || probs[0].Column != col {
		t.Errorf("%s: %v\nwant one %s problem of %q at line %d, column %d", what, err, code, field, line, col)
		return policy.Problem{}
	}
	return probs[0]
}

// TestLintRefusesACommentThatFoldingHides: YAML folds a plain or quoted scalar over several
// lines, and a folded block (>), into one line, so a CEL comment in it runs to the end of the
// condition and hides the lines after it, which both officers read as part of it. Lint refuses
// it at the comment, and says to write a literal block (|), in which the comment ends where it
// reads and the condition after it holds.
func TestLintRefusesACommentThatFoldingHides(t *testing.T) {
	hidden := `record.crisis == "oekraine"   // alleen Oekraïne`
	rest := `&& record.classification == "public"`
	for _, c := range []struct {
		name, when string
		line, col  int
	}{
		{"plain", "when: " + hidden + "\n  " + rest + "\n", 6, 37},
		{"folded", "when: >\n  " + hidden + "\n  " + rest + "\n", 7, 33},
		{"folded, kept", "when: >-\n  " + hidden + "\n  " + rest + "\n", 7, 33},
		{"double-quoted", "when: \"record.crisis == \\\"oekraine\\\"   // alleen Oekraïne\n  " + strings.ReplaceAll(rest, `"`, `\"`) + "\"\n", 6, 40},
		{"single-quoted", "when: 'record.crisis == \"oekraine\"   // alleen Oekraïne\n  " + rest + "'\n", 6, 38},
	} {
		p := oneProblem(t, c.name, head+c.when, "when.comment", "when", c.line, c.col)
		if p.Code != "" && !strings.Contains(p.Message, "when: |") {
			t.Errorf("%s: %q does not say to write a literal block", c.name, p.Message)
		}
	}
	// The comment is found after others in strings, and after a // in a string on its line.
	src := head + "when: record.body.url == \"https://a//b\" &&\n  record.body.note == '//' // url\n  && record.crisis == \"x\"\n"
	oneProblem(t, "after // in strings", src, "when.comment", "when", 7, 28)

	// A literal block keeps its lines: the condition after the comment holds.
	literal := strings.Replace(good, `when: record.crisis == "oekraine" && record.body.beds_free >= 0`, "when: |\n  "+hidden+"\n  "+rest, 1)
	c, err := policy.Lint([]byte(literal), nil)
	if err != nil {
		t.Fatalf("a literal block: %v", err)
	}
	c.ID, c.State = "p@1", policy.StateApproved
	set := &policy.Set{Org: "lcvs.crisis.test", Policies: []*policy.Compiled{c}}
	to := policy.Recipient{ID: "spiffe://ncc.crisis.test/node/r1", TrustDomain: "ncc.crisis.test"}
	internal := &pb.Record{Id: "r", Origin: "lcvs.crisis.test", Kind: "shelter.capacity", Crisis: "oekraine", Classification: pb.Classification_INTERNAL, Body: []byte(`{"beds_free":1}`)}
	if d := set.Decide(internal, to, policy.PhaseWarm, time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)); d.Allow {
		t.Errorf("a literal block: an internal record is granted; the line after the comment was lost")
	}
	// A comment on one line, and // in strings of a condition over several lines, pass.
	for _, when := range []string{
		"when: record.crisis == \"oekraine\" // alleen Oekraïne\n",
		"when: record.body.url == \"https://a//b\" &&\n  record.body.path == r'//' && record.body.s == '''//''' && record.body.t == \"\"\"a\n  //\"\"\"\n",
		"when: >\n  record.body.url == 'https://x'\n  && record.crisis == \"oekraine\"\n",
	} {
		if _, err := policy.Lint([]byte(head+when), nil); err != nil {
			t.Errorf("%q: %v", when, err)
		}
	}
}

// TestLintRefusesASecondDocument: the decoder reads the first YAML document of a source only, so
// a redact or phases in a second one would be read by the approving officer and enforced by no
// one. Lint refuses it at its ---; a --- that starts the only document, or ends it with nothing
// after it but comments, passes.
func TestLintRefusesASecondDocument(t *testing.T) {
	oneProblem(t, "a second document", head+"---\n# beperkingen\nredact: [body.contact_phone]\nphases: [warm]\n", "documents", "", 6, 1)
	oneProblem(t, "after an end of document", head+"...\nredact: [body.contact_phone]\n", "documents", "", 6, 1)
	oneProblem(t, "a third", head+"---\nredact: [body.a]\n---\nphases: [warm]\n", "documents", "", 6, 1)
	for _, src := range []string{"---\n" + head, head + "---\n", head + "--- # einde\n# niets meer\n", "%YAML 1.2\n---\n" + head} {
		if _, err := policy.Lint([]byte(src), nil); err != nil {
			t.Errorf("%q: %v", src, err)
		}
	}
}

// TestLintRefusesInvisibleCharacters: a character that shows as nothing, in a string of the
// condition, makes it test another value than the officers read: record.crisis != "oekra​ine",
// with a zero-width space, is true for every record of oekraine. Lint refuses each such
// character, written as itself or as a YAML escape.
func TestLintRefusesInvisibleCharacters(t *testing.T) {
	for _, r := range []rune{
		0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF, 0x00AD, 0x180E, 0x034F, 0xFE0F, 0x2028, 0x2029,
		0x115F, 0x1160, 0x3164, 0xFFA0, 0xE0001, 0xE0041, 0xE007F, 0x2065, 0x202E, 0x1B, 0x85,
	} {
		name := fmt.Sprintf("U+%04X", r)
		src := head + "when: record.crisis != \"oekra" + string(r) + "ine\"\n"
		if p := oneProblem(t, name, src, "control", "", 6, 30); p.Code != "" && !strings.HasPrefix(p.Message, name+": ") {
			t.Errorf("%s: %q does not name it", name, p.Message)
		}
		escaped := head + fmt.Sprintf("when: \"record.crisis != 'oekra\\U%08Xine'\"\n", r)
		oneProblem(t, name+" as a YAML escape", escaped, "control", "when", 6, 7)
		if !policy.Hidden(r) {
			t.Errorf("Hidden(%s) = false", name)
		}
	}
	// Letters, marks, spaces and symbols of other scripts show: they pass.
	for _, s := range []string{"Oekraïne", "Україна", "ﬁ", "e\u0301", "a\u00a0b", "€", "✓"} {
		if _, err := policy.Lint([]byte(head+"when: record.crisis != \""+s+"\"\n"), nil); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
}

// TestLintRefusesAnchorsAndAliases: an alias repeats what its anchor holds wherever it is named,
// so that a 64 KiB source decoded to hundreds of MiB, quoted again in every problem. Lint refuses
// the first anchor or alias at its place, before anything is decoded, and says so once.
func TestLintRefusesAnchorsAndAliases(t *testing.T) {
	oneProblem(t, "an anchor and an alias", "name: &n p\npurpose: *n\nrecipients: [ncc.crisis.test]\nkinds: [sitrep]\nmax_classification: internal\n", "anchor", "", 1, 7)
	oneProblem(t, "a merge key", "base: &b {max_classification: secret}\n<<: *b\n"+head, "anchor", "", 1, 7)
	var b strings.Builder
	b.WriteString("name: p\npurpose: &r " + strings.Repeat("y", 30<<10) + "\nrecipients: [ncc.crisis.test]\nkinds: [shelter.capacity]\nmax_classification: internal\nredact: [")
	for b.Len() < 64<<10-10 {
		b.WriteString("*r,")
	}
	b.WriteString("*r]\n")
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	p := oneProblem(t, "thousands of aliases of 30 KiB", b.String(), "anchor", "", 2, 10)
	runtime.ReadMemStats(&after)
	if len(p.Message) > 200 {
		t.Errorf("the problem is %d bytes", len(p.Message))
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
		t.Errorf("Lint of a %d-byte source allocated %d MiB", b.Len(), alloc>>20)
	}
}

// TestLintBoundsDocuments: each list holds at most MaxEntries, each once; a kind, a redact path,
// a recipient and the purpose are bounded; and a problem quotes at most 80 bytes of a value, so
// that no source makes a message, an audit entry or a decision much larger than itself.
func TestLintBoundsDocuments(t *testing.T) {
	paths := make([]string, policy.MaxEntries+1)
	for i := range paths {
		paths[i] = fmt.Sprintf("body.f%d", i)
	}
	p := oneProblem(t, "257 paths", head+"redact: ["+strings.Join(paths, ", ")+"]\n", "entries", "redact", 6, 9)
	if p.Message != "257 entries is over the limit of 256" {
		t.Errorf("257 paths: %q", p.Message)
	}
	if _, err := policy.Lint([]byte(head+"redact: ["+strings.Join(paths[:policy.MaxEntries], ", ")+"]\n"), nil); err != nil {
		t.Errorf("256 paths: %v", err)
	}
	long := func(n int) string { return strings.Repeat("a", n) }
	for _, c := range []struct{ name, src, field, msg string }{
		{"a long kind", strings.Replace(head, "[sitrep]", "[sitrep, "+long(129)+"]", 1), "kinds[1]", "129 bytes is over the limit of 128"},
		{"a long path", head + "redact: [body." + long(252) + "]\n", "redact[0]", "257 bytes is over the limit of 256"},
		{"a long recipient", strings.Replace(head, "[spiffe://ncc.crisis.test]", "[spiffe://ncc.crisis.test/"+long(2030)+"]", 1), "recipients[0]", "2055 bytes is over the limit of 2048"},
		{"a long purpose", strings.Replace(head, "purpose: x", "purpose: "+long(4097), 1), "purpose", "4097 bytes is over the limit of 4096"},
		{"a kind twice", strings.Replace(head, "[sitrep]", "[sitrep, qa, sitrep]", 1), "kinds[2]", `"sitrep" is listed already: list each kind once`},
		{"a path twice", head + "redact: [body.a, body.a]\n", "redact[1]", `"body.a" is listed already: list each path once`},
		{"a phase twice", head + "phases: [warm, warm]\n", "phases[1]", `"warm" is listed already: list each phase once`},
		{"an exercise twice", head + "statuses: [exercise]\nexercises: [oef-1, oef-1]\n", "exercises[1]", `"oef-1" is listed already: list each exercise once`},
		{"a recipient twice, in two ways", strings.Replace(head, "[spiffe://ncc.crisis.test]", "[spiffe://ncc.crisis.test, ncc.crisis.test]", 1), "recipients[1]",
			`"ncc.crisis.test" names the recipient of "spiffe://ncc.crisis.test" again: list each recipient once`},
		{"a long value quoted", head + "redact: [" + long(10000) + "]\n", "redact[0]", `"` + long(80) + `…" is not a body path: use body.FIELD or body.FIELD.SUB`},
		{"a long key quoted", head + long(5000) + ": x\n", "", `unknown field "` + long(80) + `…": a policy has version, name, purpose, accept_purposes, recipients, kinds, max_classification, when, redact, phases, valid_from, valid_until, statuses, exercises`},
	} {
		_, err := policy.Lint([]byte(c.src), nil)
		probs, ok := err.(policy.Problems)
		if !ok || len(probs) != 1 || probs[0].Field != c.field || probs[0].Message != c.msg {
			t.Errorf("%s: %.300v\nwant %s: %s", c.name, err, c.field, c.msg)
		}
	}
}

// TestLintRefusesEmptyLists: an omitted accept_purposes, phases or exercises means every purpose,
// phase or exercise; written as [], it reads as none, and would grant the most. Lint refuses it,
// naming the field and saying to leave it out.
func TestLintRefusesEmptyLists(t *testing.T) {
	for _, c := range []struct{ extra, field, every string }{
		{"accept_purposes: []\n", "accept_purposes", "every purpose"},
		{"phases: []\n", "phases", "every phase"},
		{"statuses: [exercise]\nexercises: []\n", "exercises", "every exercise"},
	} {
		line := 6 + strings.Count(c.extra, "\n") - 1
		p := oneProblem(t, c.field, head+c.extra, c.field+".none", c.field, line, len(c.field)+3)
		if p.Code != "" && !strings.Contains(p.Message, "leave "+c.field+" out for "+c.every) {
			t.Errorf("%s: %q", c.field, p.Message)
		}
	}
	// Omitted, or null, they pass; an empty redact or statuses means what omitting it does.
	for _, extra := range []string{"phases:\n", "accept_purposes: null\n", "redact: []\n", "statuses: []\n"} {
		if _, err := policy.Lint([]byte(head+extra), nil); err != nil {
			t.Errorf("%q: %v", extra, err)
		}
	}
}

// TestLintRefusesWhatReadsOtherwise: a recipient that no caller can be (a wildcard, an empty or
// a dot segment) would share with no one; a date alone reads as its midnight in UTC; a version
// 1.5 reads as 1. Lint refuses each, saying why.
func TestLintRefusesWhatReadsOtherwise(t *testing.T) {
	for _, c := range []struct{ name, src, field, msg string }{
		{"a wildcard", strings.Replace(head, "[spiffe://ncc.crisis.test]", "[spiffe://ncc.crisis.test/node/*]", 1), "recipients[0]",
			`"spiffe://ncc.crisis.test/node/*" is not a SPIFFE ID: path segment characters are limited to letters, numbers, dots, dashes, and underscores`},
		{"an empty segment", strings.Replace(head, "[spiffe://ncc.crisis.test]", "[spiffe://ncc.crisis.test//node/r1]", 1), "recipients[0]",
			`"spiffe://ncc.crisis.test//node/r1" is not a SPIFFE ID: path cannot contain empty segments`},
		{"a dot segment", strings.Replace(head, "[spiffe://ncc.crisis.test]", "[spiffe://ncc.crisis.test/node/../user/x]", 1), "recipients[0]",
			`"spiffe://ncc.crisis.test/node/../user/x" is not a SPIFFE ID: path cannot contain dot segments`},
		{"a date alone", head + "valid_until: 2026-12-31\n", "valid_until", "2026-12-31 is a date alone: give the time of day too, in RFC 3339, such as 2026-12-31T00:00:00Z"},
		{"a time without its offset", head + "valid_from: 2026-12-31T10:00:00\n", "valid_from", "not a time: use RFC 3339, such as 2026-12-31T00:00:00Z"},
		{"a version 1.5", head + "version: 1.5\n", "version", "schema version 1.5 is not supported: this knooppunt reads version 1"},
	} {
		_, err := policy.Lint([]byte(c.src), nil)
		probs, ok := err.(policy.Problems)
		if !ok || len(probs) != 1 || probs[0].Field != c.field || probs[0].Message != c.msg {
			t.Errorf("%s: %v\nwant %s: %s", c.name, err, c.field, c.msg)
		}
	}
	for _, extra := range []string{"version: 1\n", "valid_until: 2026-12-31T23:00:00+01:00\n", "valid_until: \"2026-12-31T00:00:00.5Z\"\n"} {
		if _, err := policy.Lint([]byte(head+extra), nil); err != nil {
			t.Errorf("%q: %v", extra, err)
		}
	}
	// A stored document is read as it always was: Parse is no stricter than the release that
	// stored it, so every replica reads it alike.
	for _, extra := range []string{"valid_until: 2026-12-31\n", "phases: []\n", "redact: [body.a, body.a]\n", "---\nphases: [warm]\n"} {
		if _, err := policy.Parse([]byte(head + extra)); err != nil {
			t.Errorf("Parse of %q: %v", extra, err)
		}
	}
}

// TestLintRefusesUnboundedStringFunctions: the strings extension's cost model leaves out format
// and strings.quote, so that one call costs 1 however much it writes: a condition within the
// budget copied a 256 KiB field a thousand times per decision. A condition cannot call them;
// the functions the model bounds still lint.
func TestLintRefusesUnboundedStringFunctions(t *testing.T) {
	for _, when := range []string{
		`'"%s%s".format([record.body.s, record.body.s]).size() > 0'`,
		`strings.quote(record.crisis) != ""`,
	} {
		_, err := policy.Lint([]byte(head+"when: "+when+"\n"), nil)
		probs, ok := err.(policy.Problems)
		if !ok || len(probs) != 1 || probs[0].Field != "when" || !strings.Contains(probs[0].Message, "has no cost the budget can bound: a policy's condition cannot call it") {
			t.Errorf("%s: %v", when, err)
		}
		// A stored one, which an earlier release let through, still compiles: refusing it there
		// would stop every other policy of the node (review21 H1).
		if _, err := policy.Compile(policy.Policy{ID: "p@1", Source: []byte(head + "when: " + when + "\n")}); err != nil {
			t.Errorf("%s: a stored policy does not compile: %v", when, err)
		}
	}
	for _, when := range []string{
		`record.crisis.lowerAscii() == "oekraine"`,
		`record.region.substring(0, 2) == "VR" && record.crisis.split("-").size() < 3`,
		`record.crisis.indexOf("oek") == 0 && ["a", "b"].join(",") == "a,b"`,
	} {
		if _, err := policy.Lint([]byte(head+"when: '"+when+"'\n"), nil); err != nil {
			t.Errorf("%s: %v", when, err)
		}
	}
}

// TestPresentWalksOnce: Present names the paths a body has, nested ones inside a removed field
// too, in the order given; and deciding a record under 256 paths walks its body once, not once a
// path (which allocated a copy of a large body per path).
func TestPresentWalksOnce(t *testing.T) {
	body := []byte(`{"a":{"b":1,"c":[{"d":2}]},"x":3}`)
	if got := policy.Present(body, []string{"body.x", "body.a.c.d", "body.a", "body.y", "body.a.b", "body.a"}); !slices.Equal(got, []string{"body.x", "body.a.c.d", "body.a", "body.a.b", "body.a"}) {
		t.Errorf("Present = %v", got)
	}
	paths := make([]string, policy.MaxEntries)
	for i := range paths {
		paths[i] = fmt.Sprintf("body.f%d", i)
	}
	src := head + "redact: [" + strings.Join(paths, ", ") + "]\n"
	c, err := policy.Lint([]byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	c.ID, c.State = "p@1", policy.StateApproved
	set := &policy.Set{Org: "lcvs.crisis.test", Policies: []*policy.Compiled{c}}
	large := []byte(`{"f1":"x","text":"` + strings.Repeat("a", 1<<20) + `"}`)
	r := &pb.Record{Id: "r", Origin: "lcvs.crisis.test", Kind: "sitrep", Classification: pb.Classification_PUBLIC, Body: large}
	to := policy.Recipient{ID: "spiffe://ncc.crisis.test/node/r1", TrustDomain: "ncc.crisis.test"}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	d := set.Decide(r, to, policy.PhaseCold, time.Now())
	runtime.ReadMemStats(&after)
	if !d.Allow || !slices.Equal(d.Withheld, []string{"body.f1"}) || len(d.Redacted) != policy.MaxEntries {
		t.Fatalf("Decide = allow %v, withheld %v, %d redacted", d.Allow, d.Withheld, len(d.Redacted))
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8*uint64(len(large)) {
		t.Errorf("one decision of a %d KiB body under %d paths allocated %d KiB", len(large)>>10, len(paths), alloc>>10)
	}
}

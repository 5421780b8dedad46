package policy_test

// The property test of the decision engine. It draws random records, recipients, phases and
// policy sets, and checks Set.Decide, Set.Explain and a preview (a set of one policy forced
// approved) against a reference model written here from DESIGN.md, without the engine's code:
//
//   - deny by default; a record of another org is never re-shared; a tombstone is never sent;
//   - a policy grants when it is approved, inside its validity window [valid_from, valid_until),
//     in phase (or limited to no phase), names the recipient (its SPIFFE ID, its trust domain or
//     one of its groups), covers the record's kind, has a ceiling at or above the record's
//     classification, and its condition is true;
//   - the recipient sees the union of what the granting policies reveal: a body field is removed
//     only if every granting policy redacts it or a field it sits in.
//
// Conditions are drawn from a small set of atoms whose value the model computes itself, with
// CEL's three-valued logic: a condition that errs (a missing key, a string compared with a
// number) grants nothing.

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
	"pgregory.net/rapid"

	"github.com/knooppunt/knooppunt/policy"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

const ownOrg = "lcvs.crisis.test"

var (
	propNow     = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	trustDomain = []string{"ncc.crisis.test", "vr-utrecht.crisis.test", "coa.crisis.test"}
	peerName    = map[string]string{"ncc.crisis.test": "ncc", "vr-utrecht.crisis.test": "vr-utrecht", "coa.crisis.test": "coa"}
	groupNames  = []string{"rijk", "veiligheidsregios"}
	kindNames   = []string{"sitrep", "qa", "shelter.capacity"}
	ceilings    = []string{"public", "internal", "confidential", "secret"}
	redactPaths = []string{"body.a", "body.a.b", "body.a.c", "body.a.b.e", "body.b", "body.c", "body.n", "body.tag", "body.zz"}
	// Approved is drawn half the time, so that sets often grant.
	allStates = []string{policy.StateApproved, policy.StateApproved, policy.StateApproved, policy.StateApproved,
		policy.StateProposed, policy.StateRejected, policy.StateRevoked, policy.StateSuperseded}
)

// tri is CEL's outcome of a condition: true, false or an error.
type tri int

const (
	triFalse tri = iota
	triTrue
	triErr
)

func triOf(b bool) tri {
	if b {
		return triTrue
	}
	return triFalse
}

// input is everything a condition can see, in the model's own terms.
type input struct {
	rec   *modelRecord
	to    policy.Recipient
	phase string
}

// cond is a condition: its CEL source and the model's value of it.
type cond struct {
	src  string
	eval func(in input) tri
}

func numberOf(v any) (float64, bool) {
	switch n := v.(type) {
	case int:
		return float64(n), true
	case float64:
		return n, true
	}
	return 0, false
}

// atoms are the conditions the generator combines.
var atoms = []cond{
	{`record.crisis == "oekraine"`, func(in input) tri { return triOf(in.rec.crisis == "oekraine") }},
	{`record.region == "VR09"`, func(in input) tri { return triOf(in.rec.region == "VR09") }},
	{`recipient.name == "ncc"`, func(in input) tri { return triOf(in.to.Name == "ncc") }},
	{`"rijk" in recipient.groups`, func(in input) tri { return triOf(slices.Contains(in.to.Groups, "rijk")) }},
	{`phase == "warm"`, func(in input) tri { return triOf(in.phase == "warm") }},
	{`record.classification == "public"`, func(in input) tri { return triOf(in.rec.class == pb.Classification_PUBLIC) }},
	{`has(record.body.a)`, func(in input) tri { _, ok := in.rec.body["a"]; return triOf(ok) }},
	{`record.labels.k1 == "v1"`, func(in input) tri {
		v, ok := in.rec.labels["k1"]
		if !ok {
			return triErr // no such key
		}
		return triOf(v == "v1")
	}},
	{`record.body.tag == "x"`, func(in input) tri {
		v, ok := in.rec.body["tag"]
		if !ok {
			return triErr
		}
		return triOf(v == "x") // CEL equality across types is false, not an error
	}},
	atomNumber(0), atomNumber(3), atomNumber(7),
}

// atomNumber is record.body.n >= k: an error when n is missing or not a number.
func atomNumber(k int) cond {
	return cond{fmt.Sprintf("record.body.n >= %d", k), func(in input) tri {
		v, ok := in.rec.body["n"]
		if !ok {
			return triErr
		}
		n, ok := numberOf(v)
		if !ok {
			return triErr
		}
		return triOf(n >= float64(k))
	}}
}

func not(c cond) cond {
	return cond{"!(" + c.src + ")", func(in input) tri {
		switch c.eval(in) {
		case triTrue:
			return triFalse
		case triFalse:
			return triTrue
		}
		return triErr
	}}
}

func and(a, b cond) cond {
	return cond{"(" + a.src + ") && (" + b.src + ")", func(in input) tri {
		x, y := a.eval(in), b.eval(in)
		switch {
		case x == triFalse || y == triFalse:
			return triFalse
		case x == triErr || y == triErr:
			return triErr
		}
		return triTrue
	}}
}

func or(a, b cond) cond {
	return cond{"(" + a.src + ") || (" + b.src + ")", func(in input) tri {
		x, y := a.eval(in), b.eval(in)
		switch {
		case x == triTrue || y == triTrue:
			return triTrue
		case x == triErr || y == triErr:
			return triErr
		}
		return triFalse
	}}
}

var genCond = rapid.Custom(func(t *rapid.T) cond {
	atom := func(label string) cond { return rapid.SampledFrom(atoms).Draw(t, label) }
	switch rapid.IntRange(0, 3).Draw(t, "cond shape") {
	case 0:
		return atom("atom")
	case 1:
		return not(atom("atom"))
	case 2:
		return and(atom("left"), atom("right"))
	}
	return or(atom("left"), atom("right"))
})

// modelPolicy is a drawn policy in the model's terms, with its YAML.
type modelPolicy struct {
	id         string
	state      string
	recipients []string
	kinds      []string
	ceiling    pb.Classification
	when       *cond
	redact     []string
	phases     []string
	from, till *time.Time
}

func at(d time.Duration) *time.Time { t := propNow.Add(d); return &t }

// windows are validity windows around propNow: open, current, starting exactly now, ending
// exactly now (so over), over, and not yet begun. Open ones are drawn most.
var windows = [][2]*time.Time{
	{nil, nil}, {nil, nil}, {nil, nil}, {nil, nil},
	{at(-24 * time.Hour), at(24 * time.Hour)},
	{at(0), nil},
	{nil, at(time.Second)},
	{nil, at(0)},
	{nil, at(-time.Hour)},
	{at(-2 * time.Hour), at(-time.Hour)},
	{at(time.Second), nil},
	{at(time.Hour), at(2 * time.Hour)},
}

func jsonList(s []string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func (p *modelPolicy) yaml() string {
	var b strings.Builder
	fmt.Fprintf(&b, "name: %s\npurpose: property test\n", strings.TrimSuffix(p.id, "@1"))
	fmt.Fprintf(&b, "recipients: %s\nkinds: %s\nmax_classification: %s\n", jsonList(p.recipients), jsonList(p.kinds), ceilings[p.ceiling-1])
	if p.when != nil {
		fmt.Fprintf(&b, "when: '%s'\n", strings.ReplaceAll(p.when.src, "'", "''"))
	}
	if len(p.redact) > 0 {
		fmt.Fprintf(&b, "redact: %s\n", jsonList(p.redact))
	}
	if len(p.phases) > 0 {
		fmt.Fprintf(&b, "phases: %s\n", jsonList(p.phases))
	}
	if p.from != nil {
		fmt.Fprintf(&b, "valid_from: %s\n", p.from.Format(time.RFC3339))
	}
	if p.till != nil {
		fmt.Fprintf(&b, "valid_until: %s\n", p.till.Format(time.RFC3339))
	}
	return b.String()
}

func genPolicy(i int) *rapid.Generator[*modelPolicy] {
	return rapid.Custom(func(t *rapid.T) *modelPolicy {
		entries := []string{}
		for _, td := range trustDomain {
			entries = append(entries, "spiffe://"+td+"/node/r1", "spiffe://"+td, td)
		}
		for _, g := range groupNames {
			entries = append(entries, "group:"+g)
		}
		p := &modelPolicy{
			id:         fmt.Sprintf("p%d@1", i),
			state:      rapid.SampledFrom(allStates).Draw(t, "state"),
			recipients: rapid.SliceOfNDistinct(rapid.SampledFrom(entries), 1, 3, rapid.ID[string]).Draw(t, "recipients"),
			kinds:      rapid.SliceOfNDistinct(rapid.SampledFrom(kindNames), 1, 2, rapid.ID[string]).Draw(t, "kinds"),
			ceiling:    pb.Classification(rapid.IntRange(1, 4).Draw(t, "ceiling")),
			redact:     rapid.SliceOfN(rapid.SampledFrom(redactPaths), 0, 3).Draw(t, "redact"),
		}
		if rapid.Bool().Draw(t, "limited to phases") {
			p.phases = rapid.SliceOfNDistinct(rapid.SampledFrom(policy.Phases), 1, 2, rapid.ID[string]).Draw(t, "phases")
		}
		if rapid.Bool().Draw(t, "has when") {
			c := genCond.Draw(t, "when")
			p.when = &c
		}
		w := rapid.SampledFrom(windows).Draw(t, "window")
		p.from, p.till = w[0], w[1]
		return p
	})
}

// modelRecord is a drawn record in the model's terms.
type modelRecord struct {
	id, origin, kind, crisis, region string
	class                            pb.Classification
	labels                           map[string]string
	body                             map[string]any
	tombstone                        bool
}

func (r *modelRecord) proto() *pb.Record {
	body, err := json.Marshal(r.body)
	if err != nil {
		panic(err)
	}
	return &pb.Record{
		Id: r.id, Origin: r.origin, Kind: r.kind, Crisis: r.crisis, Region: r.region, Classification: r.class,
		Labels: r.labels, Body: body, Version: 3, UpdatedAt: timestamppb.New(propNow.Add(-time.Minute)),
		ValidUntil: timestamppb.New(propNow.Add(time.Hour)), Tombstone: r.tombstone,
	}
}

var genScalar = rapid.OneOf(
	rapid.Map(rapid.IntRange(-2, 12), func(n int) any { return n }),
	rapid.Map(rapid.IntRange(-4, 24), func(n int) any { return float64(n) / 2 }),
	rapid.Map(rapid.SampledFrom([]string{"x", "y", "5", ""}), func(s string) any { return s }),
	rapid.Map(rapid.Bool(), func(b bool) any { return b }),
	rapid.Just[any](nil),
	rapid.Map(rapid.SliceOfN(rapid.IntRange(0, 3), 0, 3), func(s []int) any { return s }),
)

// genObject draws a JSON object with some of keys, nested depth levels deep.
func genObject(keys []string, depth int) *rapid.Generator[map[string]any] {
	return rapid.Custom(func(t *rapid.T) map[string]any {
		m := map[string]any{}
		for _, k := range keys {
			if !rapid.Bool().Draw(t, "has "+k) {
				continue
			}
			switch nest := rapid.IntRange(0, 3).Draw(t, "nest "+k); {
			case depth > 0 && nest == 0:
				m[k] = genObject([]string{"b", "c", "d", "e", "f"}, depth-1).Draw(t, k)
			case depth > 0 && nest == 1:
				// A list of objects, and a scalar among them: redaction goes into each object.
				list := []any{}
				for i := range rapid.IntRange(0, 3).Draw(t, "len "+k) {
					if rapid.IntRange(0, 3).Draw(t, fmt.Sprintf("%s[%d] scalar", k, i)) == 0 {
						list = append(list, genScalar.Draw(t, fmt.Sprintf("%s[%d]", k, i)))
					} else {
						list = append(list, genObject([]string{"b", "c", "d", "e", "f"}, depth-1).Draw(t, fmt.Sprintf("%s[%d]", k, i)))
					}
				}
				m[k] = list
			default:
				m[k] = genScalar.Draw(t, k)
			}
		}
		return m
	})
}

// genDenseBody draws a body that has every field a policy may redact but body.zz.
var genDenseBody = rapid.Custom(func(t *rapid.T) map[string]any {
	b := genObject([]string{"e", "f"}, 0).Draw(t, "a.b")
	b["e"] = genScalar.Draw(t, "a.b.e")
	return map[string]any{
		"a":   map[string]any{"b": b, "c": genScalar.Draw(t, "a.c"), "d": genScalar.Draw(t, "a.d")},
		"b":   genScalar.Draw(t, "b"),
		"c":   genScalar.Draw(t, "c"),
		"n":   genScalar.Draw(t, "n"),
		"tag": rapid.SampledFrom([]any{"x", "y", 1.0}).Draw(t, "tag"),
	}
})

var genRecord = rapid.Custom(func(t *rapid.T) *modelRecord {
	r := &modelRecord{
		id:        "r-" + rapid.StringMatching(`[a-z0-9]{4}`).Draw(t, "id"),
		origin:    rapid.SampledFrom([]string{ownOrg, ownOrg, ownOrg, ownOrg, ownOrg, ownOrg, "ncc.crisis.test", "vr-utrecht.crisis.test"}).Draw(t, "origin"),
		kind:      rapid.SampledFrom(kindNames).Draw(t, "kind"),
		crisis:    rapid.SampledFrom([]string{"oekraine", "hoogwater"}).Draw(t, "crisis"),
		region:    rapid.SampledFrom([]string{"VR01", "VR09"}).Draw(t, "region"),
		class:     pb.Classification(rapid.IntRange(0, 4).Draw(t, "classification")),
		labels:    rapid.MapOfN(rapid.SampledFrom([]string{"k1", "k2"}), rapid.SampledFrom([]string{"v1", "v2"}), 0, 2).Draw(t, "labels"),
		body:      genObject([]string{"a", "b", "c", "n", "tag", "zz"}, 2).Draw(t, "body"),
		tombstone: rapid.IntRange(0, 9).Draw(t, "tombstone") == 0,
	}
	return r
})

var genRecipient = rapid.Custom(func(t *rapid.T) policy.Recipient {
	td := rapid.SampledFrom(trustDomain).Draw(t, "recipient trust domain")
	return policy.Recipient{
		ID:          "spiffe://" + td + "/node/" + rapid.SampledFrom([]string{"r1", "r2"}).Draw(t, "replica"),
		TrustDomain: td,
		Name:        peerName[td],
		Groups:      rapid.SliceOfNDistinct(rapid.SampledFrom(groupNames), 0, 2, rapid.ID[string]).Draw(t, "groups"),
	}
})

// The model.

func (p *modelPolicy) inWindow() bool {
	return (p.from == nil || !propNow.Before(*p.from)) && (p.till == nil || propNow.Before(*p.till))
}

func (p *modelPolicy) names(to policy.Recipient) bool {
	for _, e := range p.recipients {
		switch {
		case strings.HasPrefix(e, "group:"):
			if slices.Contains(to.Groups, strings.TrimPrefix(e, "group:")) {
				return true
			}
		case strings.Count(e, "/") == 4: // spiffe://td/node/r1
			if e == to.ID {
				return true
			}
		default:
			if strings.TrimPrefix(e, "spiffe://") == to.TrustDomain {
				return true
			}
		}
	}
	return false
}

// outcome is the model's verdict of one policy: whether it grants and, if not, the first
// requirement it fails.
type outcome struct {
	grants bool
	failed string // state, window, phase, recipient, kind, classification, when-false, when-error
}

func (p *modelPolicy) judge(r *modelRecord, to policy.Recipient, phase string, ignoreState bool) outcome {
	switch {
	case !ignoreState && p.state != policy.StateApproved:
		return outcome{failed: "state"}
	case !p.inWindow():
		return outcome{failed: "window"}
	case len(p.phases) > 0 && !slices.Contains(p.phases, phase):
		return outcome{failed: "phase"}
	case !p.names(to):
		return outcome{failed: "recipient"}
	case !slices.Contains(p.kinds, r.kind):
		return outcome{failed: "kind"}
	case r.class == pb.Classification_CLASSIFICATION_UNSPECIFIED || r.class > p.ceiling:
		return outcome{failed: "classification"}
	case p.when != nil:
		switch p.when.eval(input{rec: r, to: to, phase: phase}) {
		case triFalse:
			return outcome{failed: "when-false"}
		case triErr:
			return outcome{failed: "when-error"}
		}
	}
	return outcome{grants: true}
}

// covered reports whether redacting paths removes the field at path.
func covered(paths []string, path string) bool {
	for _, q := range paths {
		if q == path || strings.HasPrefix(path, q+".") {
			return true
		}
	}
	return false
}

// visibleBody is what the granting policies reveal of body: a field goes only if every one of
// them redacts it or a field it sits in.
func visibleBody(body map[string]any, prefix string, granting []*modelPolicy) map[string]any {
	out := map[string]any{}
	for k, v := range body {
		path := prefix + "." + k
		hidden := true
		for _, p := range granting {
			if !covered(p.redact, path) {
				hidden = false
				break
			}
		}
		if hidden {
			continue
		}
		out[k] = visibleValue(v, path, granting)
	}
	return out
}

// visibleValue is v at path as the recipient sees it: an object's fields, and those of every
// object in a list, at any depth of lists, with the redacted ones left out.
func visibleValue(v any, path string, granting []*modelPolicy) any {
	switch v := v.(type) {
	case map[string]any:
		return visibleBody(v, path, granting)
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = visibleValue(e, path, granting)
		}
		return out
	}
	return v
}

// redactedPaths is what a decision reports as redacted: the redact paths every granting policy
// covers, leaving out those inside another.
func redactedPaths(granting []*modelPolicy) []string {
	var all []string
	for _, p := range granting {
		for _, path := range p.redact {
			every := true
			for _, q := range granting {
				every = every && covered(q.redact, path)
			}
			if every && !slices.Contains(all, path) {
				all = append(all, path)
			}
		}
	}
	var out []string
	for _, path := range all {
		inside := false
		for _, q := range all {
			inside = inside || strings.HasPrefix(path, q+".")
		}
		if !inside {
			out = append(out, path)
		}
	}
	sort.Strings(out)
	return out
}

// modelDecision is the model's decision for a record.
type modelDecision struct {
	allow    bool
	policies []string
	body     map[string]any
	redacted []string
}

func decideModel(ps []*modelPolicy, r *modelRecord, to policy.Recipient, phase string, ignoreState bool) modelDecision {
	if r.origin != ownOrg || r.tombstone {
		return modelDecision{}
	}
	var granting []*modelPolicy
	for _, p := range ps {
		if p.judge(r, to, phase, ignoreState).grants {
			granting = append(granting, p)
		}
	}
	if len(granting) == 0 {
		return modelDecision{}
	}
	d := modelDecision{allow: true, body: visibleBody(r.body, "body", granting), redacted: redactedPaths(granting)}
	for _, p := range granting {
		d.policies = append(d.policies, p.id)
	}
	return d
}

// hasPath reports whether v has a member at the keys path, in an object or in any object of a
// list on the way.
func hasPath(v any, path []string) bool {
	if len(path) == 0 {
		return true
	}
	switch v := v.(type) {
	case map[string]any:
		sub, ok := v[path[0]]
		return ok && hasPath(sub, path[1:])
	case []any:
		return slices.ContainsFunc(v, func(e any) bool { return hasPath(e, path) })
	}
	return false
}

// canonical is a JSON value as encoding/json reads it, so that two encodings compare equal.
func canonical(t *rapid.T, v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// checkDecision compares a decision of the engine with the model's.
func checkDecision(t *rapid.T, what string, got policy.Decision, want modelDecision, in *pb.Record) {
	t.Helper()
	if got.Allow != want.allow {
		t.Fatalf("%s: Allow = %v, model says %v (policies %v)", what, got.Allow, want.allow, want.policies)
	}
	if !got.Allow {
		if got.Record != nil || len(got.Policies) > 0 || len(got.Redacted) > 0 {
			t.Fatalf("%s: a denial carries %+v", what, got)
		}
		return
	}
	if !slices.Equal(got.Policies, want.policies) {
		t.Fatalf("%s: granted by %v, model says %v", what, got.Policies, want.policies)
	}
	if !slices.Equal(got.Redacted, want.redacted) {
		t.Fatalf("%s: redacted %v, model says %v", what, got.Redacted, want.redacted)
	}
	// Withheld are the redacted paths the record has.
	var orig any
	if err := json.Unmarshal(in.Body, &orig); err != nil {
		t.Fatal(err)
	}
	var has []string
	for _, p := range want.redacted {
		if hasPath(orig, strings.Split(strings.TrimPrefix(p, "body."), ".")) {
			has = append(has, p)
		}
	}
	if !slices.Equal(got.Withheld, has) {
		t.Fatalf("%s: withheld %v, but of %v the body %s has %v", what, got.Withheld, want.redacted, in.Body, has)
	}
	var body any
	if err := json.Unmarshal(got.Record.Body, &body); err != nil {
		t.Fatalf("%s: the shared body is not JSON: %v", what, err)
	}
	if w := canonical(t, want.body); !reflect.DeepEqual(body, w) {
		t.Fatalf("%s: shared body\n %s\nmodel says\n %s", what, got.Record.Body, mustJSON(w))
	}
	// Everything but the body goes as it is.
	out := proto.Clone(got.Record).(*pb.Record)
	out.Body = in.Body
	if !proto.Equal(out, in) {
		t.Fatalf("%s: shared record\n %v\nwant\n %v", what, out, in)
	}
}

// mustJSON encodes v; encoding/json sorts map keys, so equal values encode alike.
func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// coverage counts what the drawn cases exercised, so that a generator that stops reaching the
// interesting cases fails the test instead of passing it vacuously.
type coverage struct {
	decisions, allowed, foreign, multiGrant, redacted, union, whenErr int
}

func TestDecideMatchesModel(t *testing.T) {
	var cov coverage
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(0, 5).Draw(t, "policies")
		var (
			models []*modelPolicy
			set    = &policy.Set{Org: ownOrg}
		)
		for i := range n {
			m := genPolicy(i).Draw(t, fmt.Sprintf("policy %d", i))
			if i > 0 && rapid.Bool().Draw(t, fmt.Sprintf("policy %d overlaps policy 0", i)) {
				// Policies over the same records and recipients make decisions with several
				// grants, where the union of what they reveal matters.
				m.kinds, m.recipients, m.phases = models[0].kinds, models[0].recipients, models[0].phases
			}
			c, err := policy.Compile(policy.Policy{ID: m.id, Name: fmt.Sprintf("p%d", i), Version: 1, Source: []byte(m.yaml()), State: m.state, Author: "a"})
			if err != nil {
				t.Fatalf("policy %s does not compile: %v\n%s", m.id, err, m.yaml())
			}
			models = append(models, m)
			set.Policies = append(set.Policies, c)
		}
		for i := range 10 {
			mr := genRecord.Draw(t, fmt.Sprintf("record %d", i))
			to := genRecipient.Draw(t, fmt.Sprintf("recipient %d", i))
			phase := rapid.SampledFrom(policy.Phases).Draw(t, fmt.Sprintf("phase %d", i))
			if aim := rapid.IntRange(-1, n-1).Draw(t, fmt.Sprintf("aim %d", i)); aim >= 0 {
				// Most random records match no policy; aim this one at a policy's kinds,
				// ceiling, recipients and phases, leaving its state, window and condition
				// to chance.
				aimAt(t, models[aim], mr, &to, &phase)
			}
			rec := mr.proto()
			orig := proto.Clone(rec).(*pb.Record)

			want := decideModel(models, mr, to, phase, false)
			got := set.Decide(rec, to, phase, propNow)
			checkDecision(t, "Decide", got, want, orig)
			cov.count(models, mr, to, phase, want)

			// Explain reaches the same decision, and gives each policy's verdict with the
			// first requirement it fails.
			ed, verdicts := set.Explain(rec, to, phase, propNow)
			checkDecision(t, "Explain", ed, want, orig)
			checkVerdicts(t, models, verdicts, mr, to, phase)

			// A preview runs one policy alone, as if approved. It grants exactly when the
			// model says that policy would once approved, and the full set allows a record
			// exactly when one of its approved policies' previews does.
			anyPreview := false
			for j, c := range set.Policies {
				forced := *c
				forced.State = policy.StateApproved
				one := &policy.Set{Org: ownOrg, Policies: []*policy.Compiled{&forced}}
				pd := one.Decide(rec, to, phase, propNow)
				checkDecision(t, "preview of "+c.ID, pd, decideModel(models[j:j+1], mr, to, phase, true), orig)
				anyPreview = anyPreview || pd.Allow && c.State == policy.StateApproved
			}
			if anyPreview != got.Allow {
				t.Fatalf("Decide allows %v, but the previews of approved policies allow %v", got.Allow, anyPreview)
			}
			if !proto.Equal(rec, orig) {
				t.Fatalf("deciding changed the record:\n %v\nwas\n %v", rec, orig)
			}
		}
	})
	t.Logf("coverage: %+v", cov)
	if cov.allowed*20 < cov.decisions || cov.foreign == 0 || cov.multiGrant == 0 || cov.redacted == 0 || cov.whenErr == 0 {
		t.Fatalf("the drawn cases miss what the test is for: %+v", cov)
	}
}

// TestDecideUnionOfGrants draws sets whose policies all grant, or all but their conditions do,
// and differ in what they redact: the recipient sees the union of what they reveal.
func TestDecideUnionOfGrants(t *testing.T) {
	var cov coverage
	rapid.Check(t, func(t *rapid.T) {
		var (
			models []*modelPolicy
			set    = &policy.Set{Org: ownOrg}
		)
		for i := range rapid.IntRange(2, 4).Draw(t, "policies") {
			m := &modelPolicy{
				id: fmt.Sprintf("p%d@1", i), state: policy.StateApproved,
				recipients: []string{"ncc.crisis.test"}, kinds: []string{"sitrep"}, ceiling: pb.Classification_SECRET,
				redact: rapid.SliceOfN(rapid.SampledFrom(redactPaths), 0, 4).Draw(t, fmt.Sprintf("redact %d", i)),
			}
			if rapid.IntRange(0, 3).Draw(t, fmt.Sprintf("has when %d", i)) == 0 {
				c := genCond.Draw(t, fmt.Sprintf("when %d", i))
				m.when = &c
			}
			c, err := policy.Compile(policy.Policy{ID: m.id, Source: []byte(m.yaml()), State: m.state})
			if err != nil {
				t.Fatalf("policy %s does not compile: %v\n%s", m.id, err, m.yaml())
			}
			models = append(models, m)
			set.Policies = append(set.Policies, c)
		}
		to := genRecipient.Draw(t, "recipient")
		to.ID, to.TrustDomain, to.Name = "spiffe://ncc.crisis.test/node/r1", "ncc.crisis.test", "ncc"
		for i := range 5 {
			mr := genRecord.Draw(t, fmt.Sprintf("record %d", i))
			mr.origin, mr.kind, mr.tombstone = ownOrg, "sitrep", false
			mr.body = genDenseBody.Draw(t, fmt.Sprintf("dense body %d", i))
			if mr.class == pb.Classification_CLASSIFICATION_UNSPECIFIED {
				mr.class = pb.Classification_PUBLIC
			}
			rec := mr.proto()
			orig := proto.Clone(rec).(*pb.Record)
			want := decideModel(models, mr, to, policy.PhaseWarm, false)
			checkDecision(t, "Decide", set.Decide(rec, to, policy.PhaseWarm, propNow), want, orig)
			cov.count(models, mr, to, policy.PhaseWarm, want)
		}
	})
	t.Logf("coverage: %+v", cov)
	if cov.multiGrant*4 < cov.decisions || cov.union*50 < cov.decisions {
		t.Fatalf("the drawn cases miss what the test is for: %+v", cov)
	}
}

func (c *coverage) count(models []*modelPolicy, r *modelRecord, to policy.Recipient, phase string, d modelDecision) {
	c.decisions++
	if r.origin != ownOrg {
		c.foreign++
	}
	for _, m := range models {
		if m.judge(r, to, phase, false).failed == "when-error" {
			c.whenErr++
			break
		}
	}
	if !d.allow {
		return
	}
	c.allowed++
	if len(d.policies) > 1 {
		c.multiGrant++
	}
	if mustJSON(d.body) != mustJSON(r.body) {
		c.redacted++
		// A field one granting policy redacts is revealed by another.
		for _, m := range models {
			if slices.Contains(d.policies, m.id) && mustJSON(visibleBody(r.body, "body", []*modelPolicy{m})) != mustJSON(d.body) {
				c.union++
				break
			}
		}
	}
}

// aimAt changes the record, recipient and phase so that m's kinds, ceiling, recipients and
// phases admit them.
func aimAt(t *rapid.T, m *modelPolicy, r *modelRecord, to *policy.Recipient, phase *string) {
	r.kind = rapid.SampledFrom(m.kinds).Draw(t, "aimed kind")
	r.class = pb.Classification(rapid.IntRange(1, int(m.ceiling)).Draw(t, "aimed classification"))
	e := rapid.SampledFrom(m.recipients).Draw(t, "aimed recipient")
	switch {
	case strings.HasPrefix(e, "group:"):
		if g := strings.TrimPrefix(e, "group:"); !slices.Contains(to.Groups, g) {
			to.Groups = append(slices.Clone(to.Groups), g)
		}
	default:
		td, path, _ := strings.Cut(strings.TrimPrefix(e, "spiffe://"), "/")
		to.TrustDomain, to.Name = td, peerName[td]
		to.ID = "spiffe://" + td + "/node/r2"
		if path != "" {
			to.ID = e
		}
	}
	if len(m.phases) > 0 {
		*phase = rapid.SampledFrom(m.phases).Draw(t, "aimed phase")
	}
}

func checkVerdicts(t *rapid.T, models []*modelPolicy, verdicts []policy.Verdict, r *modelRecord, to policy.Recipient, phase string) {
	t.Helper()
	if r.origin != ownOrg {
		want := []policy.Verdict{{Reason: "record of " + r.origin + ": a node never re-shares another org's records", Code: "reshare", Args: []string{r.origin}}}
		if !reflect.DeepEqual(verdicts, want) {
			t.Fatalf("verdicts on a foreign record %+v, want %+v", verdicts, want)
		}
		return
	}
	if r.tombstone {
		return
	}
	if len(verdicts) != len(models) {
		t.Fatalf("%d verdicts for %d policies: %+v", len(verdicts), len(models), verdicts)
	}
	for i, v := range verdicts {
		m := models[i]
		o := m.judge(r, to, phase, false)
		if v.PolicyID != m.id || v.Grants != o.grants {
			t.Fatalf("verdict %+v, model says %s grants %v (%s)", v, m.id, o.grants, o.failed)
		}
		var ok bool
		switch o.failed {
		case "":
			ok = v.Reason == "grants" && slices.Equal(v.Redact, m.redact)
		case "state":
			ok = v.Reason == "not active: "+m.state
		case "window":
			ok = v.Reason == "outside its validity window"
		case "phase":
			ok = v.Reason == fmt.Sprintf("limited to phases %s; the crisis is %s", strings.Join(m.phases, ", "), phase)
		case "recipient":
			ok = v.Reason == "does not name the recipient"
		case "kind":
			ok = v.Reason == "does not cover kind "+r.kind
		case "classification":
			ok = strings.HasPrefix(v.Reason, "record is ") && strings.HasSuffix(v.Reason, ", above the ceiling "+ceilings[m.ceiling-1])
		case "when-false":
			ok = v.Reason == "when is false"
		case "when-error":
			ok = strings.HasPrefix(v.Reason, "when: ")
		}
		if !ok {
			t.Fatalf("verdict of %s: reason %q (redact %v), model says it fails on %q", m.id, v.Reason, v.Redact, o.failed)
		}
	}
}

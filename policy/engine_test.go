package policy_test

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/knooppunt/knooppunt/policy"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

var ncc = policy.Recipient{ID: "spiffe://ncc.crisis.test/node/r1", TrustDomain: "ncc.crisis.test", Name: "ncc", Groups: []string{"rijk"}}

// approved compiles an approved policy named name that gives every sitrep up to secret to
// ncc.crisis.test, with extra lines appended.
func approved(t *testing.T, name, extra string) *policy.Compiled {
	t.Helper()
	src := "name: " + name + "\npurpose: x\nrecipients: [ncc.crisis.test]\nkinds: [sitrep]\nmax_classification: secret\n" + extra
	c, err := policy.Compile(policy.Policy{ID: name + "@1", Name: name, Version: 1, Source: []byte(src), State: policy.StateApproved})
	if err != nil {
		t.Fatalf("Compile %s: %v", name, err)
	}
	return c
}

func sitrep(body string) *pb.Record {
	return &pb.Record{Id: "r1", Origin: ownOrg, Kind: "sitrep", Crisis: "oekraine", Classification: pb.Classification_INTERNAL, Body: []byte(body)}
}

func bodyOf(t *testing.T, d policy.Decision) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(d.Record.Body, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestDecideNestedRedaction is the case the property test found: one policy redacts body.a,
// another body.a.b. Both remove body.a.b, so the recipient must not see it; body.a.c only the
// first removes, so the second reveals it.
func TestDecideNestedRedaction(t *testing.T) {
	set := &policy.Set{Org: ownOrg, Policies: []*policy.Compiled{
		approved(t, "a", "redact: [body.a]\n"),
		approved(t, "b", "redact: [body.a.b, body.x]\n"),
	}}
	d := set.Decide(sitrep(`{"a":{"b":{"secret":1},"c":2},"x":3}`), ncc, policy.PhaseCold, propNow)
	if !d.Allow || !slices.Equal(d.Policies, []string{"a@1", "b@1"}) {
		t.Fatalf("Decide = %+v", d)
	}
	want := map[string]any{"a": map[string]any{"c": 2.0}, "x": 3.0}
	if got := bodyOf(t, d); !reflect.DeepEqual(got, want) {
		t.Fatalf("shared body %s, want %v", d.Record.Body, want)
	}
	if !slices.Equal(d.Redacted, []string{"body.a.b"}) {
		t.Fatalf("Redacted = %v, want [body.a.b]", d.Redacted)
	}
	// One policy that names a field and a field inside it reports the outer one.
	set = &policy.Set{Org: ownOrg, Policies: []*policy.Compiled{approved(t, "c", "redact: [body.a.b, body.a]\n")}}
	d = set.Decide(sitrep(`{"a":{"b":1},"y":1}`), ncc, policy.PhaseCold, propNow)
	if !slices.Equal(d.Redacted, []string{"body.a"}) || !reflect.DeepEqual(bodyOf(t, d), map[string]any{"y": 1.0}) {
		t.Fatalf("Decide = %+v, body %s", d, d.Record.GetBody())
	}
}

// TestWithheldNamesOnlyWhatTheRecordHad checks that a decision names as withheld only the
// redacted paths the record has: a misspelt path, or a field of another kind, withheld nothing,
// and the audit and the preview must not say it did.
func TestWithheldNamesOnlyWhatTheRecordHad(t *testing.T) {
	set := &policy.Set{Org: ownOrg, Policies: []*policy.Compiled{approved(t, "a", "redact: [body.contact_phon, body.trend, body.place.lat]\n")}}
	for _, c := range []struct {
		body string
		want []string
	}{
		{`{"contact_phone":"06","level":3}`, nil},
		{`{"trend":"up","level":3}`, []string{"body.trend"}},
		{`{"trend":"up","place":{"lat":52,"lon":5}}`, []string{"body.place.lat", "body.trend"}},
		{`{"place":{"lon":5}}`, nil},
	} {
		d := set.Decide(sitrep(c.body), ncc, policy.PhaseCold, propNow)
		if !d.Allow || len(d.Redacted) != 3 || !slices.Equal(d.Withheld, c.want) {
			t.Fatalf("Decide(%s): redacted %v, withheld %v; want all three redacted and %v withheld", c.body, d.Redacted, d.Withheld, c.want)
		}
	}
}

// TestDecideUnionRevealsWhatAnyGrantReveals checks that a policy without redactions reveals the
// whole body, whatever the other granting policies redact.
func TestDecideUnionRevealsWhatAnyGrantReveals(t *testing.T) {
	set := &policy.Set{Org: ownOrg, Policies: []*policy.Compiled{
		approved(t, "a", "redact: [body.phone]\n"),
		approved(t, "b", ""),
	}}
	r := sitrep(`{"phone":"06","beds":3}`)
	d := set.Decide(r, ncc, policy.PhaseCold, propNow)
	if !d.Allow || len(d.Redacted) != 0 || string(d.Record.Body) != string(r.Body) {
		t.Fatalf("Decide = %+v, body %s", d, d.Record.GetBody())
	}
	// With only the first, the phone goes, and the record itself is left alone.
	set.Policies = set.Policies[:1]
	d = set.Decide(r, ncc, policy.PhaseCold, propNow)
	if !reflect.DeepEqual(bodyOf(t, d), map[string]any{"beds": 3.0}) || string(r.Body) != `{"phone":"06","beds":3}` {
		t.Fatalf("Decide body %s, record body %s", d.Record.Body, r.Body)
	}
}

// TestDecideConditionCostAtRuntime checks that a condition whose lint estimate fits the budget
// but whose evaluation on a large body does not is cut off, and grants nothing.
func TestDecideConditionCostAtRuntime(t *testing.T) {
	set := &policy.Set{Org: ownOrg, Policies: []*policy.Compiled{approved(t, "a", "when: record.body.xs.exists(x, x == 0)\n")}}
	if d := set.Decide(sitrep(`{"xs":[1,2,0]}`), ncc, policy.PhaseCold, propNow); !d.Allow {
		t.Fatalf("a small list: Decide = %+v", d)
	}
	big := `{"xs":[` + strings.Repeat("1,", 5000) + `0]}`
	d, verdicts := set.Explain(sitrep(big), ncc, policy.PhaseCold, propNow)
	want := []policy.Verdict{{PolicyID: "a@1", Reason: "when: operation cancelled: actual cost limit exceeded", Code: "when_fails", Args: []string{"operation cancelled: actual cost limit exceeded"}}}
	if d.Allow || !reflect.DeepEqual(verdicts, want) {
		t.Fatalf("a large list: Explain = %+v, %+v; want a denial, %+v", d, verdicts, want)
	}
	if d := set.Decide(sitrep(big), ncc, policy.PhaseCold, propNow); d.Allow {
		t.Fatalf("a large list: Decide = %+v", d)
	}
}

// TestDecideFailsClosed checks the records that are never shared, whatever the policies say.
func TestDecideFailsClosed(t *testing.T) {
	set := &policy.Set{Org: ownOrg, Policies: []*policy.Compiled{
		approved(t, "a", ""),
		approved(t, "b", "when: record.crisis == \"oekraine\"\nredact: [body.x]\n"),
	}}
	if d := set.Decide(sitrep(`{}`), ncc, policy.PhaseCold, propNow); !d.Allow {
		t.Fatalf("the control record is denied: %+v", d)
	}
	foreign := sitrep(`{}`)
	foreign.Origin = "ncc.crisis.test"
	tomb := sitrep(`{}`)
	tomb.Tombstone = true
	unclassified := sitrep(`{}`)
	unclassified.Classification = pb.Classification_CLASSIFICATION_UNSPECIFIED
	for name, r := range map[string]*pb.Record{"another org's record": foreign, "a tombstone": tomb, "an unclassified record": unclassified} {
		if d := set.Decide(r, ncc, policy.PhaseCold, propNow); d.Allow || d.Record != nil {
			t.Errorf("%s: Decide = %+v", name, d)
		}
	}
	// A body that cannot be read is not sent, neither to evaluate a condition nor to redact.
	for name, s := range map[string]*policy.Set{
		"condition": {Org: ownOrg, Policies: set.Policies[1:]},
		"redaction": {Org: ownOrg, Policies: []*policy.Compiled{approved(t, "c", "redact: [body.x]\n")}},
	} {
		if d := s.Decide(sitrep(`{"x":`), ncc, policy.PhaseCold, propNow); d.Allow {
			t.Errorf("unreadable body, %s: Decide = %+v", name, d)
		}
	}
	// An empty set and a nil set of policies share nothing.
	for _, s := range []*policy.Set{{Org: ownOrg}, {}} {
		if d := s.Decide(sitrep(`{}`), ncc, policy.PhaseCold, propNow); d.Allow {
			t.Errorf("no policies: Decide = %+v", d)
		}
	}
}

func TestActive(t *testing.T) {
	c := approved(t, "a", "phases: [warm]\nvalid_from: 2026-06-01T12:00:00Z\nvalid_until: 2026-06-02T00:00:00Z\n")
	cases := []struct {
		state, phase string
		at           string
		want         bool
	}{
		{policy.StateApproved, policy.PhaseWarm, "2026-06-01T12:00:00Z", true},
		{policy.StateApproved, policy.PhaseWarm, "2026-06-01T23:59:59Z", true},
		{policy.StateApproved, policy.PhaseWarm, "2026-06-02T00:00:00Z", false},
		{policy.StateApproved, policy.PhaseWarm, "2026-06-01T11:59:59Z", false},
		{policy.StateApproved, policy.PhaseLukewarm, "2026-06-01T13:00:00Z", false},
		{policy.StateProposed, policy.PhaseWarm, "2026-06-01T13:00:00Z", false},
		{policy.StateRevoked, policy.PhaseWarm, "2026-06-01T13:00:00Z", false},
	}
	for _, tc := range cases {
		cur := *c
		cur.State = tc.state
		if got := cur.Active(tc.phase, mustTime(t, tc.at)); got != tc.want {
			t.Errorf("Active(%s, %s) of a %s policy = %v, want %v", tc.phase, tc.at, tc.state, got, tc.want)
		}
	}
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestTimeDependent: a decision can change with time alone only at a window boundary of a
// policy that can grant the recipient, or under a condition that reads now.
func TestTimeDependent(t *testing.T) {
	t0 := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) string { return t0.Add(d).Format(time.RFC3339) }
	other := policy.Recipient{ID: "spiffe://coa.crisis.test/node/r1", TrustDomain: "coa.crisis.test", Name: "coa"}
	revoked := approved(t, "revoked", "valid_until: "+at(30*time.Second)+"\n")
	revoked.State = policy.StateRevoked
	for _, tc := range []struct {
		name     string
		policies []*policy.Compiled
		to       policy.Recipient
		want     bool
	}{
		{"no window, no condition", []*policy.Compiled{approved(t, "a", "")}, ncc, false},
		{"a condition without now", []*policy.Compiled{approved(t, "a", "when: record.crisis == 'oekraine'\n")}, ncc, false},
		{"a condition that reads now", []*policy.Compiled{approved(t, "a", "when: now > timestamp('2026-01-01T00:00:00Z')\n")}, ncc, true},
		{"a window that closes in between", []*policy.Compiled{approved(t, "a", "valid_until: "+at(30*time.Second)+"\n")}, ncc, true},
		{"a window that closes exactly at the end", []*policy.Compiled{approved(t, "a", "valid_until: "+at(time.Minute)+"\n")}, ncc, true},
		{"a window that closed exactly at the start", []*policy.Compiled{approved(t, "a", "valid_until: "+at(0)+"\n")}, ncc, false},
		{"a window that opens in between", []*policy.Compiled{approved(t, "a", "valid_from: "+at(30*time.Second)+"\n")}, ncc, true},
		{"a window that closes later", []*policy.Compiled{approved(t, "a", "valid_until: "+at(time.Hour)+"\n")}, ncc, false},
		{"another recipient's window", []*policy.Compiled{approved(t, "a", "valid_until: "+at(30*time.Second)+"\n")}, other, false},
		{"a revoked policy's window", []*policy.Compiled{revoked}, ncc, false},
	} {
		set := &policy.Set{Org: ownOrg, Policies: tc.policies}
		if got := set.TimeDependent(tc.to, t0, t0.Add(time.Minute)); got != tc.want {
			t.Errorf("%s: TimeDependent = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestDecideStatuses: a policy grants actual records only, unless statuses says exercise, and
// then only the listed exercises' when it lists any; test and draft records are never granted.
// Explain names the reason, and a granted record keeps its status and exercise.
func TestDecideStatuses(t *testing.T) {
	rec := func(st pb.Status, exercise string) *pb.Record {
		r := sitrep(`{"a":1}`)
		r.Status, r.Exercise = st, exercise
		return r
	}
	actual, ex1, ex2 := rec(pb.Status_ACTUAL, ""), rec(pb.Status_EXERCISE, "ex-1"), rec(pb.Status_EXERCISE, "ex-2")
	test, draft := rec(pb.Status_TEST, ""), rec(pb.Status_DRAFT, "")
	now := time.Now()
	for _, tc := range []struct {
		extra string
		grant []*pb.Record
	}{
		{"", []*pb.Record{actual}},
		{"statuses: [actual]\n", []*pb.Record{actual}},
		{"statuses: [exercise]\n", []*pb.Record{ex1, ex2}},
		{"statuses: [actual, exercise]\n", []*pb.Record{actual, ex1, ex2}},
		{"statuses: [exercise]\nexercises: [ex-2]\n", []*pb.Record{ex2}},
	} {
		set := &policy.Set{Org: ownOrg, Policies: []*policy.Compiled{approved(t, "p", tc.extra)}}
		// Whether the org takes part in an exercise is said to whom it may grant its records.
		for _, r := range []*pb.Record{ex1, ex2} {
			if got, want := set.CoversExercise(ncc, r.Exercise, now), slices.Contains(tc.grant, r); got != want {
				t.Errorf("%q: CoversExercise(ncc, %s) = %v, want %v", tc.extra, r.Exercise, got, want)
			}
		}
		if set.CoversExercise(policy.Recipient{ID: "spiffe://other.crisis.test/node/r1", TrustDomain: "other.crisis.test"}, "ex-1", now) {
			t.Errorf("%q: CoversExercise of a recipient the policy does not name", tc.extra)
		}
		// Nor to a recipient whose stated purpose the policy does not accept: it grants that
		// one nothing (review18's unconfirmed third).
		picky := &policy.Set{Org: ownOrg, Policies: []*policy.Compiled{approved(t, "p", tc.extra+"accept_purposes: [oefenen]\n")}}
		other := ncc
		other.Purpose = "iets heel anders"
		if picky.CoversExercise(other, "ex-1", now) {
			t.Errorf("%q: CoversExercise of a recipient whose purpose no policy accepts", tc.extra)
		}
		for _, r := range []*pb.Record{actual, ex1, ex2, test, draft} {
			d := set.Decide(r, ncc, "cold", now)
			if want := slices.Contains(tc.grant, r); d.Allow != want {
				t.Errorf("%q: a %s record of %q: allowed %v, want %v", tc.extra, r.Status, r.Exercise, d.Allow, want)
			}
			if d.Allow && (d.Record.Status != r.Status || d.Record.Exercise != r.Exercise) {
				t.Errorf("%q: the granted record is %s %q, want %s %q: the mode must go with it", tc.extra, d.Record.Status, d.Record.Exercise, r.Status, r.Exercise)
			}
		}
	}
	// A policy past its validity says nothing of the exercises any more.
	expired := &policy.Set{Org: ownOrg, Policies: []*policy.Compiled{approved(t, "p", "statuses: [exercise]\nvalid_until: 2020-01-01T00:00:00Z\n")}}
	if expired.CoversExercise(ncc, "ex-1", now) {
		t.Error("CoversExercise of a policy past its valid_until")
	}
	set := &policy.Set{Org: ownOrg, Policies: []*policy.Compiled{approved(t, "p", "")}}
	for r, want := range map[*pb.Record]string{
		ex1:   "grants actual records only (no statuses: [exercise]); the record is of exercise ex-1",
		test:  "the record is a test record, which never leaves the node",
		draft: "the record is a draft record, which never leaves the node",
	} {
		_, verdicts := set.Explain(r, ncc, "cold", now)
		if len(verdicts) != 1 || verdicts[0].Reason != want {
			t.Errorf("Explain of a %s record: %+v, want %q", r.Status, verdicts, want)
		}
	}
	only := &policy.Set{Org: ownOrg, Policies: []*policy.Compiled{approved(t, "p", "statuses: [exercise]\nexercises: [ex-2]\n")}}
	for r, want := range map[*pb.Record]string{
		actual: "grants exercise records only; the record is actual",
		ex1:    "grants the records of exercises ex-2; the record is of exercise ex-1",
	} {
		_, verdicts := only.Explain(r, ncc, "cold", now)
		if len(verdicts) != 1 || verdicts[0].Reason != want {
			t.Errorf("Explain of %s %q: %+v, want %q", r.Status, r.Exercise, verdicts, want)
		}
	}
}

// TestPhaseSwitchesOfACrisis: a phase change names the policies limited to phases that cover one
// of the crisis's records (kind, ceiling, condition); one whose condition takes another crisis,
// or whose kinds take none of its records, neither starts nor stops anything of it (review L,
// L1); a crisis without records names none.
func TestPhaseSwitchesOfACrisis(t *testing.T) {
	pol := func(name, extra string) *pb.PolicyInfo {
		return &pb.PolicyInfo{Id: name + "@1", Source: []byte("name: " + name + "\npurpose: opschaling\nrecipients: [spiffe://ncc.crisis.test]\nkinds: [signal]\nmax_classification: internal\n" + extra)}
	}
	pols := []*pb.PolicyInfo{
		pol("signalen-warm", "phases: [warm]\n"),
		pol("oekraine-warm", "phases: [warm]\nwhen: record.crisis == \"oekraine\"\n"),
		pol("altijd", ""),
		pol("geheim-warm", "phases: [warm]\nwhen: record.body.summary.contains(\"geheim\")\n"),
	}
	hoogwater := []*pb.Record{{Id: "s1", Origin: "o", Kind: "signal", Crisis: "hoogwater", Region: "VR09", Classification: pb.Classification_INTERNAL, Status: pb.Status_ACTUAL, Body: []byte(`{"summary":"rivier stijgt"}`)}}
	now := time.Now()
	start, stop := policy.PhaseSwitches(pols, hoogwater, "cold", "warm", now)
	if !slices.Equal(start, []string{"signalen-warm@1"}) || stop != nil {
		t.Errorf("warming hoogwater starts %v and stops %v, want signalen-warm@1 alone", start, stop)
	}
	if start, stop = policy.PhaseSwitches(pols, hoogwater, "warm", "cold", now); start != nil || !slices.Equal(stop, []string{"signalen-warm@1"}) {
		t.Errorf("cooling hoogwater starts %v and stops %v, want signalen-warm@1 stopped", start, stop)
	}
	if start, stop = policy.PhaseSwitches(pols, nil, "cold", "warm", now); start != nil || stop != nil {
		t.Errorf("a crisis without records starts %v and stops %v, want nothing", start, stop)
	}
	secret := &pb.Record{Id: "s2", Origin: "o", Kind: "signal", Crisis: "hoogwater", Region: "VR09", Classification: pb.Classification_CONFIDENTIAL, Status: pb.Status_ACTUAL, Body: []byte(`{"summary":"geheim"}`)}
	if start, _ = policy.PhaseSwitches(pols, []*pb.Record{secret}, "cold", "warm", now); start != nil {
		t.Errorf("a record above every ceiling starts %v, want nothing", start)
	}
}

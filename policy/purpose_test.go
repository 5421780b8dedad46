package policy_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/knooppunt/knooppunt/policy"
)

// TestDecideAcceptPurposes: a policy with accept_purposes grants only to a request that states
// one of them; another purpose, or none, gets nothing under it, and the decision names it as
// refused, whether or not another policy grants the record. Only a policy that would otherwise
// grant counts as refused: one whose condition is false does not. recipient.purpose is the
// stated purpose in a condition.
func TestDecideAcceptPurposes(t *testing.T) {
	set := &policy.Set{Org: ownOrg, Policies: []*policy.Compiled{
		approved(t, "opvang", "accept_purposes: [opvang, spreiding]\n"),
		approved(t, "never", "accept_purposes: [opvang]\nwhen: 'false'\n"),
		approved(t, "cond", "when: recipient.purpose == 'onderzoek'\n"),
	}}
	for _, tc := range []struct {
		purpose          string
		granted, refused []string
	}{
		{"opvang", []string{"opvang@1"}, nil},
		{"spreiding", []string{"opvang@1"}, nil},
		{"onderzoek", []string{"cond@1"}, []string{"opvang@1"}},
		{"", nil, []string{"opvang@1"}},
		{"Opvang", nil, []string{"opvang@1"}},
	} {
		to := ncc
		to.Purpose = tc.purpose
		d := set.Decide(sitrep(`{"a":1}`), to, policy.PhaseCold, propNow)
		if d.Allow != (len(tc.granted) > 0) || !slices.Equal(d.Policies, tc.granted) || !slices.Equal(d.Refused, tc.refused) {
			t.Errorf("stating %q: Decide = allow %v, policies %v, refused %v; want policies %v, refused %v",
				tc.purpose, d.Allow, d.Policies, d.Refused, tc.granted, tc.refused)
		}
	}
	to := ncc
	to.Purpose = "anders"
	_, verdicts := set.Explain(sitrep(`{}`), to, policy.PhaseCold, propNow)
	if v := verdicts[0]; v.Grants || !v.Refused || !strings.Contains(v.Reason, `accepts the purposes opvang, spreiding; the request states "anders"`) {
		t.Errorf("Explain's verdict of opvang@1 for %q = %+v, want refused, naming the purposes", to.Purpose, v)
	}
}

// TestLintAcceptPurposes: each accepted purpose must be non-empty, within the limit a requester
// can state, and listed once.
func TestLintAcceptPurposes(t *testing.T) {
	src := "name: p\npurpose: x\nrecipients: [ncc.crisis.test]\nkinds: [sitrep]\nmax_classification: internal\naccept_purposes: [a, ' ', a, " +
		strings.Repeat("x", policy.MaxPurposeBytes+1) + "]\n"
	_, err := policy.Lint([]byte(src), nil)
	var probs policy.Problems
	if !errors.As(err, &probs) {
		t.Fatalf("Lint = %v, want problems", err)
	}
	want := []string{"accept_purposes[1]: empty", "accept_purposes[2]: \"a\" is listed already", "accept_purposes[3]: 257 bytes is over the limit of 256"}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("Lint problems\n%v\nwant one with %q", err, w)
		}
	}
	if len(probs) != len(want) {
		t.Errorf("Lint gave %d problems, want %d:\n%v", len(probs), len(want), err)
	}
}

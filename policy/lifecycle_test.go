package policy_test

import (
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/knooppunt/knooppunt/policy"
)

const (
	officerA = "spiffe://lcvs.crisis.test/user/officer-a"
	officerB = "spiffe://lcvs.crisis.test/user/officer-b"
	officerC = "spiffe://lcvs.crisis.test/user/officer-c"
)

var (
	proposedAt = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	stepAt     = proposedAt.Add(time.Hour)
)

// proposed is a policy officer A proposed, in state, with the document's validity window ending
// at until (none when zero).
func proposed(state string, until time.Time) (*policy.Policy, *policy.Document) {
	p := &policy.Policy{ID: "p@1", Name: "p", Version: 1, Source: []byte(head), Author: officerA, ProposedAt: proposedAt, State: state}
	d := &policy.Document{Name: "p"}
	if !until.IsZero() {
		d.ValidUntil = &until
	}
	return p, d
}

func clonePolicy(p *policy.Policy) policy.Policy {
	c := *p
	c.Approvers = slices.Clone(p.Approvers)
	return c
}

// TestApproveRefusals is the table of approvals the lifecycle refuses. A refusal changes nothing.
func TestApproveRefusals(t *testing.T) {
	cases := []struct {
		name      string
		state     string
		approvers []string
		until     time.Time
		officer   string
		required  int
		err       error
		msg       string
	}{
		{name: "self-approval", state: policy.StateProposed, officer: officerA, required: 1,
			err: policy.ErrSelfApproval, msg: "policy: the author cannot approve their own policy (four eyes)"},
		{name: "self-approval after another approval", state: policy.StateProposed, approvers: []string{officerB}, officer: officerA, required: 2,
			err: policy.ErrSelfApproval, msg: "policy: the author cannot approve their own policy (four eyes)"},
		{name: "the same officer twice", state: policy.StateProposed, approvers: []string{officerB}, officer: officerB, required: 2,
			err: policy.ErrAlreadyApproved, msg: "policy: this officer has approved it already"},
		{name: "approved already", state: policy.StateApproved, approvers: []string{officerB}, officer: officerC, required: 1,
			err: policy.ErrNotProposed, msg: "policy: only a proposed policy can be approved or rejected: p@1 is approved"},
		{name: "revoked", state: policy.StateRevoked, approvers: []string{officerB}, officer: officerC, required: 1,
			err: policy.ErrNotProposed, msg: "policy: only a proposed policy can be approved or rejected: p@1 is revoked"},
		{name: "rejected", state: policy.StateRejected, officer: officerB, required: 1,
			err: policy.ErrNotProposed, msg: "policy: only a proposed policy can be approved or rejected: p@1 is rejected"},
		{name: "superseded", state: policy.StateSuperseded, officer: officerB, required: 1,
			err: policy.ErrNotProposed, msg: "policy: only a proposed policy can be approved or rejected: p@1 is superseded"},
		{name: "after expiry", state: policy.StateProposed, until: stepAt.Add(-time.Second), officer: officerB, required: 1,
			err: policy.ErrExpired, msg: "policy: its validity window has ended at 2026-03-01T09:59:59Z: propose a new version"},
		{name: "at the moment of expiry", state: policy.StateProposed, until: stepAt, officer: officerB, required: 1,
			err: policy.ErrExpired, msg: "policy: its validity window has ended at 2026-03-01T10:00:00Z: propose a new version"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, d := proposed(tc.state, tc.until)
			p.Approvers = tc.approvers
			before := clonePolicy(p)
			ok, err := policy.Approve(p, d, tc.officer, stepAt, tc.required)
			if ok || !errors.Is(err, tc.err) || err.Error() != tc.msg {
				t.Fatalf("Approve = %v, %v; want false, %q", ok, err, tc.msg)
			}
			if !reflect.DeepEqual(*p, before) {
				t.Fatalf("a refused approval changed the policy:\n got %+v\nwant %+v", *p, before)
			}
		})
	}
}

func TestApproveOne(t *testing.T) {
	p, d := proposed(policy.StateProposed, stepAt.Add(time.Second))
	ok, err := policy.Approve(p, d, officerB, stepAt, 1)
	if !ok || err != nil {
		t.Fatalf("Approve = %v, %v", ok, err)
	}
	if p.State != policy.StateApproved || !slices.Equal(p.Approvers, []string{officerB}) || p.DecidedBy != officerB || !p.DecidedAt.Equal(stepAt) {
		t.Fatalf("after approval %+v", p)
	}
	// A required count below one means the default, one.
	p, d = proposed(policy.StateProposed, time.Time{})
	if ok, err := policy.Approve(p, d, officerB, stepAt, 0); !ok || err != nil || policy.DefaultApprovals != 1 {
		t.Fatalf("Approve with required 0 = %v, %v", ok, err)
	}
}

// TestApproveMany checks a node that requires two approvals: the first leaves the policy
// proposed, the same officer cannot count twice, the author never counts, and the second
// approval by another officer activates it.
func TestApproveMany(t *testing.T) {
	p, d := proposed(policy.StateProposed, time.Time{})
	ok, err := policy.Approve(p, d, officerB, stepAt, 2)
	if ok || err != nil || p.State != policy.StateProposed || !slices.Equal(p.Approvers, []string{officerB}) || p.DecidedBy != "" {
		t.Fatalf("first of two approvals = %v, %v, %+v", ok, err, p)
	}
	if _, err := policy.Approve(p, d, officerB, stepAt, 2); !errors.Is(err, policy.ErrAlreadyApproved) {
		t.Fatalf("B again = %v", err)
	}
	if _, err := policy.Approve(p, d, officerA, stepAt, 2); !errors.Is(err, policy.ErrSelfApproval) {
		t.Fatalf("the author = %v", err)
	}
	if p.State != policy.StateProposed || len(p.Approvers) != 1 {
		t.Fatalf("refusals counted: %+v", p)
	}
	later := stepAt.Add(time.Minute)
	ok, err = policy.Approve(p, d, officerC, later, 2)
	if !ok || err != nil || p.State != policy.StateApproved || !slices.Equal(p.Approvers, []string{officerB, officerC}) ||
		p.DecidedBy != officerC || !p.DecidedAt.Equal(later) {
		t.Fatalf("second of two approvals = %v, %v, %+v", ok, err, p)
	}
	// Three required: two approvals are not enough.
	p, d = proposed(policy.StateProposed, time.Time{})
	for _, o := range []string{officerB, officerC} {
		if ok, err := policy.Approve(p, d, o, stepAt, 3); ok || err != nil {
			t.Fatalf("approval by %s of three = %v, %v", o, ok, err)
		}
	}
	if p.State != policy.StateProposed {
		t.Fatalf("two of three approvals activated it: %+v", p)
	}
}

func TestReject(t *testing.T) {
	p, _ := proposed(policy.StateProposed, time.Time{})
	if err := policy.Reject(p, officerB, "", stepAt); err == nil || err.Error() != "policy: a rejection needs a reason" || p.State != policy.StateProposed {
		t.Fatalf("Reject without a reason = %v, state %s", err, p.State)
	}
	if err := policy.Reject(p, officerB, "too wide", stepAt); err != nil {
		t.Fatal(err)
	}
	if p.State != policy.StateRejected || p.DecidedBy != officerB || p.Reason != "too wide" || !p.DecidedAt.Equal(stepAt) {
		t.Fatalf("after Reject %+v", p)
	}
	for _, state := range []string{policy.StateApproved, policy.StateRejected, policy.StateRevoked, policy.StateSuperseded} {
		p, _ := proposed(state, time.Time{})
		err := policy.Reject(p, officerB, "r", stepAt)
		if !errors.Is(err, policy.ErrNotProposed) || err.Error() != "policy: only a proposed policy can be approved or rejected: p@1 is "+state || p.State != state {
			t.Errorf("Reject of a %s policy = %v, state %s", state, err, p.State)
		}
	}
}

func TestRevoke(t *testing.T) {
	for _, state := range []string{policy.StateProposed, policy.StateRejected, policy.StateRevoked, policy.StateSuperseded} {
		p, _ := proposed(state, time.Time{})
		before := clonePolicy(p)
		err := policy.Revoke(p, officerB, "purpose ended", stepAt)
		want := "policy: only an approved policy can be revoked: p@1 is " + state
		if state == policy.StateProposed {
			want += ": reject it instead (policy reject p@1 --reason …)"
		}
		if !errors.Is(err, policy.ErrNotActive) || err.Error() != want {
			t.Errorf("Revoke of a %s policy = %v", state, err)
		}
		if !reflect.DeepEqual(*p, before) {
			t.Errorf("a refused revocation changed the policy: %+v", p)
		}
	}
	p, _ := proposed(policy.StateApproved, time.Time{})
	if err := policy.Revoke(p, officerB, "", stepAt); err == nil || err.Error() != "policy: a revocation needs a reason" || p.State != policy.StateApproved {
		t.Fatalf("Revoke without a reason = %v, state %s", err, p.State)
	}
	// Any officer may revoke, the author included: stopping a disclosure needs no second pair
	// of eyes.
	if err := policy.Revoke(p, officerA, "purpose ended", stepAt); err != nil {
		t.Fatal(err)
	}
	if p.State != policy.StateRevoked || p.DecidedBy != officerA || p.Reason != "purpose ended" || !p.DecidedAt.Equal(stepAt) {
		t.Fatalf("after Revoke %+v", p)
	}
}

func TestSupersede(t *testing.T) {
	for _, tc := range []struct {
		state string
		ok    bool
	}{
		{policy.StateApproved, true}, {policy.StateProposed, true},
		{policy.StateRejected, false}, {policy.StateRevoked, false}, {policy.StateSuperseded, false},
	} {
		p, _ := proposed(tc.state, time.Time{})
		before := clonePolicy(p)
		ok := policy.Supersede(p, "p@2", stepAt)
		if ok != tc.ok {
			t.Errorf("Supersede of a %s policy = %v, want %v", tc.state, ok, tc.ok)
			continue
		}
		if !ok {
			if !reflect.DeepEqual(*p, before) {
				t.Errorf("Supersede of a %s policy changed it: %+v", tc.state, p)
			}
			continue
		}
		if p.State != policy.StateSuperseded || p.Reason != "superseded by p@2" || !p.DecidedAt.Equal(stepAt) {
			t.Errorf("after Supersede of a %s policy: %+v", tc.state, p)
		}
		// What superseded it is read back from the policy, as the web interface names it; an
		// officer's reason of another state that starts the same way names nothing.
		if by, ok := policy.SupersededBy(p.State, p.Reason); !ok || by != "p@2" {
			t.Errorf("SupersededBy of a %s policy superseded by p@2: %q %v", tc.state, by, ok)
		}
		if by, ok := policy.SupersededBy(policy.StateRevoked, p.Reason); ok {
			t.Errorf("SupersededBy of a revoked policy whose reason reads %q: %q", p.Reason, by)
		}
		// A superseded policy cannot be approved any more.
		if _, err := policy.Approve(p, &policy.Document{}, officerB, stepAt, 1); !errors.Is(err, policy.ErrNotProposed) {
			t.Errorf("Approve after Supersede = %v", err)
		}
	}
	if got := policy.PolicyID("lcvs-capacity-to-regions", 2); got != "lcvs-capacity-to-regions@2" {
		t.Fatalf("PolicyID = %q", got)
	}
}

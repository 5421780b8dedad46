package db_test

// Policy steps, phase steps and the audit log's hash chain, through the real SQLite database.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/node/db"
	"github.com/knooppunt/knooppunt/policy"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

const (
	paOfficerA = "spiffe://lcvs.crisis.test/user/officer-a"
	paOfficerB = "spiffe://lcvs.crisis.test/user/officer-b"
	paOfficerC = "spiffe://lcvs.crisis.test/user/officer-c"
)

// paStart is the time of the first step; each later step is a minute after the one before.
var paStart = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

// paSource is a version of the policy lcvs-capacity; purpose tells the versions apart.
func paSource(purpose string) []byte {
	return []byte("name: lcvs-capacity\npurpose: " + purpose + "\nrecipients: [group:veiligheidsregios]\nkinds: [shelter.capacity]\nmax_classification: internal\n")
}

// paSteps applies policy and phase steps as the FSM would: each at the next Raft index and a
// minute after the one before.
type paSteps struct {
	t     *testing.T
	d     *db.DB
	index uint64
	at    time.Time
}

func newPASteps(t *testing.T, path string) *paSteps {
	t.Helper()
	d, err := db.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return &paSteps{t: t, d: d, at: paStart}
}

func (s *paSteps) next() (uint64, *timestamppb.Timestamp) {
	s.index++
	at := s.at
	s.at = s.at.Add(time.Minute)
	return s.index, timestamppb.New(at)
}

// policy applies a step and returns the row and the lifecycle's refusal.
func (s *paSteps) policy(st *pb.PolicyStep) (*db.PolicyRow, error) {
	s.t.Helper()
	idx, at := s.next()
	st.At = at
	row, refusal, err := s.d.ApplyPolicyStep(idx, st)
	if err != nil {
		s.t.Fatalf("ApplyPolicyStep(%d, %s %s): %v", idx, st.Action, st.PolicyId, err)
	}
	return row, refusal
}

// ok applies a step the lifecycle must accept.
func (s *paSteps) ok(st *pb.PolicyStep) *db.PolicyRow {
	s.t.Helper()
	row, refusal := s.policy(st)
	if refusal != nil || row == nil {
		s.t.Fatalf("%s %s by %s: refused: %v", st.Action, st.PolicyId, st.Officer, refusal)
	}
	return row
}

func (s *paSteps) propose(officer, purpose string, required int32) *db.PolicyRow {
	s.t.Helper()
	return s.ok(&pb.PolicyStep{Action: db.StepPropose, Source: paSource(purpose), Officer: officer, ApprovalsRequired: required})
}

func (s *paSteps) phase(crisis, phase, officer, reason string) string {
	s.t.Helper()
	idx, at := s.next()
	prev, err := s.d.ApplyPhaseStep(idx, &pb.PhaseStep{Crisis: crisis, Phase: phase, Officer: officer, Reason: reason, At: at})
	if err != nil {
		s.t.Fatalf("ApplyPhaseStep(%d): %v", idx, err)
	}
	return prev
}

func (s *paSteps) get(id string) *db.PolicyRow {
	s.t.Helper()
	p, err := s.d.GetPolicy(context.Background(), id)
	if err != nil {
		s.t.Fatalf("GetPolicy(%s): %v", id, err)
	}
	return p
}

func (s *paSteps) audit() []db.AuditEntry {
	s.t.Helper()
	entries, err := s.d.AuditList(context.Background(), db.AuditFilter{Limit: 1000})
	if err != nil {
		s.t.Fatal(err)
	}
	return entries
}

// paEntry is the part of an audit entry a test states.
type paEntry struct {
	actor, action, subject string
	detail                 map[string]any
}

func paCheckAudit(t *testing.T, got []db.AuditEntry, want []paEntry) {
	t.Helper()
	if len(got) != len(want) {
		for _, e := range got {
			t.Logf("  %d %s %s %s %s", e.Seq, e.Actor, e.Action, e.Subject, e.Detail)
		}
		t.Fatalf("%d audit entries, want %d", len(got), len(want))
	}
	for i, e := range got {
		w := want[i]
		var detail map[string]any
		if err := json.Unmarshal([]byte(e.Detail), &detail); err != nil {
			t.Fatalf("entry %d: detail %q is not a JSON object: %v", e.Seq, e.Detail, err)
		}
		wd := map[string]any{}
		b, _ := json.Marshal(w.detail)
		json.Unmarshal(b, &wd)
		if e.Seq != int64(i+1) || e.Actor != w.actor || e.Action != w.action || e.Subject != w.subject || fmt.Sprint(detail) != fmt.Sprint(wd) {
			t.Fatalf("entry %d = %d %s %s %s %s\nwant %s %s %s %v", i+1, e.Seq, e.Actor, e.Action, e.Subject, e.Detail, w.actor, w.action, w.subject, wd)
		}
	}
}

// TestApplyPolicyStepVersions walks a policy through proposal, the four-eyes refusal, approval,
// a second version that supersedes the first, and a proposed version left behind by a newer
// approval; and checks the stored rows and the audit trail of each step.
func TestApplyPolicyStepVersions(t *testing.T) {
	s := newPASteps(t, filepath.Join(t.TempDir(), "knooppunt.db"))
	ctx := context.Background()
	gen := s.d.Generation()

	v1 := s.propose(paOfficerA, "opvang v1", 1)
	if v1.ID != "lcvs-capacity@1" || v1.Name != "lcvs-capacity" || v1.Version != 1 || v1.State != policy.StateProposed ||
		v1.Author != paOfficerA || v1.Required != 1 || !v1.ProposedAt.Equal(paStart) || len(v1.Approvers) != 0 {
		t.Fatalf("proposed v1 = %+v", v1)
	}
	if s.d.Generation() <= gen {
		t.Fatalf("Generation did not grow with a policy step")
	}

	// The author's own approval is refused, changes nothing, and is not audited; the index
	// still moves on.
	row, refusal := s.policy(&pb.PolicyStep{Action: db.StepApprove, PolicyId: v1.ID, Officer: paOfficerA})
	if row != nil || !errors.Is(refusal, policy.ErrSelfApproval) {
		t.Fatalf("self-approval = %+v, %v", row, refusal)
	}
	if idx, _ := s.d.AppliedIndex(); idx != s.index {
		t.Fatalf("AppliedIndex = %d after a refused step at %d", idx, s.index)
	}
	if got := s.get(v1.ID); got.State != policy.StateProposed || len(got.Approvers) != 0 {
		t.Fatalf("after self-approval: %+v", got)
	}

	approved := s.ok(&pb.PolicyStep{Action: db.StepApprove, PolicyId: v1.ID, Officer: paOfficerB})
	if approved.State != policy.StateApproved || !slices.Equal(approved.Approvers, []string{paOfficerB}) || approved.DecidedBy != paOfficerB {
		t.Fatalf("approved v1 = %+v", approved)
	}
	// Approving an approved policy is refused.
	if _, refusal := s.policy(&pb.PolicyStep{Action: db.StepApprove, PolicyId: v1.ID, Officer: paOfficerC}); !errors.Is(refusal, policy.ErrNotProposed) {
		t.Fatalf("second approval of an approved policy: %v", refusal)
	}

	// Version 2 by officer B, approved by A: v1 is superseded in the same step.
	v2 := s.propose(paOfficerB, "opvang v2", 1)
	if v2.ID != "lcvs-capacity@2" || v2.Version != 2 {
		t.Fatalf("proposed v2 = %+v", v2)
	}
	if got := s.get(v1.ID); got.State != policy.StateApproved {
		t.Fatalf("v1 after v2 was proposed = %s, want approved until v2 is", got.State)
	}
	s.ok(&pb.PolicyStep{Action: db.StepApprove, PolicyId: v2.ID, Officer: paOfficerA})
	old := s.get(v1.ID)
	if old.State != policy.StateSuperseded || old.Reason != "superseded by lcvs-capacity@2" || old.DecidedBy != paOfficerB {
		t.Fatalf("v1 after v2 was approved = %+v", old)
	}
	if string(old.Source) != string(paSource("opvang v1")) {
		t.Fatalf("superseding changed v1's source: %s", old.Source)
	}

	// v3 stays proposed while v4 is approved: v3 is superseded with v2.
	v3 := s.propose(paOfficerA, "opvang v3", 1)
	v4 := s.propose(paOfficerA, "opvang v4", 1)
	s.ok(&pb.PolicyStep{Action: db.StepApprove, PolicyId: v4.ID, Officer: paOfficerC})
	for id, want := range map[string]string{v1.ID: policy.StateSuperseded, v2.ID: policy.StateSuperseded, v3.ID: policy.StateSuperseded, v4.ID: policy.StateApproved} {
		if got := s.get(id); got.State != want {
			t.Errorf("%s is %s, want %s", id, got.State, want)
		}
	}
	if _, refusal := s.policy(&pb.PolicyStep{Action: db.StepApprove, PolicyId: v3.ID, Officer: paOfficerB}); !errors.Is(refusal, policy.ErrNotProposed) {
		t.Fatalf("approval of superseded v3: %v", refusal)
	}

	// Revoking the active version ends it; a second revocation is refused.
	if _, refusal := s.policy(&pb.PolicyStep{Action: db.StepRevoke, PolicyId: v4.ID, Officer: paOfficerB}); refusal == nil || refusal.Error() != "policy: a revocation needs a reason" {
		t.Fatalf("revocation without a reason: %v", refusal)
	}
	s.ok(&pb.PolicyStep{Action: db.StepRevoke, PolicyId: v4.ID, Officer: paOfficerB, Reason: "purpose ended"})
	if _, refusal := s.policy(&pb.PolicyStep{Action: db.StepRevoke, PolicyId: v4.ID, Officer: paOfficerC, Reason: "again"}); !errors.Is(refusal, policy.ErrNotActive) {
		t.Fatalf("second revocation: %v", refusal)
	}

	list, err := s.d.ListPolicies(ctx, "", "lcvs-capacity")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range list {
		got = append(got, p.ID+" "+p.State)
	}
	want := []string{"lcvs-capacity@4 revoked", "lcvs-capacity@3 superseded", "lcvs-capacity@2 superseded", "lcvs-capacity@1 superseded"}
	if !slices.Equal(got, want) {
		t.Fatalf("ListPolicies = %v, want %v", got, want)
	}
	if list, _ := s.d.ListPolicies(ctx, policy.StateRevoked, ""); len(list) != 1 || list[0].ID != v4.ID {
		t.Fatalf("ListPolicies(revoked) = %v", list)
	}

	recipients := []any{"group:veiligheidsregios"}
	kinds := []any{"shelter.capacity"}
	paCheckAudit(t, s.audit(), []paEntry{
		{paOfficerA, db.AuditPolicyPropose, "lcvs-capacity@1", map[string]any{"purpose": "opvang v1", "recipients": recipients, "kinds": kinds}},
		{paOfficerB, db.AuditPolicyApprove, "lcvs-capacity@1", map[string]any{"approvals": 1, "required": 1, "active": true}},
		{paOfficerB, db.AuditPolicyPropose, "lcvs-capacity@2", map[string]any{"purpose": "opvang v2", "recipients": recipients, "kinds": kinds}},
		{paOfficerA, db.AuditPolicyApprove, "lcvs-capacity@2", map[string]any{"approvals": 1, "required": 1, "active": true}},
		{paOfficerA, db.AuditPolicySupersede, "lcvs-capacity@1", map[string]any{"by": "lcvs-capacity@2"}},
		{paOfficerA, db.AuditPolicyPropose, "lcvs-capacity@3", map[string]any{"purpose": "opvang v3", "recipients": recipients, "kinds": kinds}},
		{paOfficerA, db.AuditPolicyPropose, "lcvs-capacity@4", map[string]any{"purpose": "opvang v4", "recipients": recipients, "kinds": kinds}},
		{paOfficerC, db.AuditPolicyApprove, "lcvs-capacity@4", map[string]any{"approvals": 1, "required": 1, "active": true}},
		{paOfficerC, db.AuditPolicySupersede, "lcvs-capacity@2", map[string]any{"by": "lcvs-capacity@4"}},
		{paOfficerC, db.AuditPolicySupersede, "lcvs-capacity@3", map[string]any{"by": "lcvs-capacity@4"}},
		{paOfficerB, db.AuditPolicyRevoke, "lcvs-capacity@4", map[string]any{"reason": "purpose ended"}},
	})
	if rep, err := verifyChain(ctx, s.d); err != nil || rep != (db.AuditReport{Entries: 11}) {
		t.Fatalf("AuditVerify = %+v, %v", rep, err)
	}
}

// TestApplyPolicyStepTwoApprovals checks that the number of approvals required is the one in
// force when the policy was proposed, and that the same officer cannot give two of them.
func TestApplyPolicyStepTwoApprovals(t *testing.T) {
	s := newPASteps(t, filepath.Join(t.TempDir(), "knooppunt.db"))
	p := s.propose(paOfficerA, "twee", 2)
	if p.Required != 2 {
		t.Fatalf("Required = %d, want 2", p.Required)
	}
	first := s.ok(&pb.PolicyStep{Action: db.StepApprove, PolicyId: p.ID, Officer: paOfficerB, ApprovalsRequired: 1})
	if first.State != policy.StateProposed || !slices.Equal(first.Approvers, []string{paOfficerB}) {
		t.Fatalf("after one of two approvals: %+v", first)
	}
	if _, refusal := s.policy(&pb.PolicyStep{Action: db.StepApprove, PolicyId: p.ID, Officer: paOfficerB}); !errors.Is(refusal, policy.ErrAlreadyApproved) {
		t.Fatalf("B twice: %v", refusal)
	}
	second := s.ok(&pb.PolicyStep{Action: db.StepApprove, PolicyId: p.ID, Officer: paOfficerC})
	if second.State != policy.StateApproved || !slices.Equal(second.Approvers, []string{paOfficerB, paOfficerC}) || second.DecidedBy != paOfficerC {
		t.Fatalf("after two approvals: %+v", second)
	}
	entries := s.audit()
	if len(entries) != 3 || entries[1].Detail != `{"active":false,"approvals":1,"required":2}` || entries[2].Detail != `{"active":true,"approvals":2,"required":2}` {
		t.Fatalf("audit %+v", entries)
	}
}

func TestApplyPolicyStepRefusals(t *testing.T) {
	s := newPASteps(t, filepath.Join(t.TempDir(), "knooppunt.db"))
	p := s.propose(paOfficerA, "x", 1)

	// A document that does not parse is refused with its problems; nothing is stored.
	row, refusal := s.policy(&pb.PolicyStep{Action: db.StepPropose, Source: []byte("name: x\ncolour: red\n"), Officer: paOfficerA})
	var probs policy.Problems
	if row != nil || !errors.As(refusal, &probs) || !strings.HasPrefix(probs[0].Message, `unknown field "colour": `) {
		t.Fatalf("bad source: %+v, %v", row, refusal)
	}
	// Steps on a policy that does not exist.
	for _, action := range []string{db.StepApprove, db.StepReject, db.StepRevoke} {
		if _, refusal := s.policy(&pb.PolicyStep{Action: action, PolicyId: "nope@1", Officer: paOfficerB, Reason: "r"}); !errors.Is(refusal, db.ErrPolicyNotFound) {
			t.Errorf("%s of an unknown policy: %v", action, refusal)
		}
	}
	// Rejection needs a reason and then ends the proposal for good.
	if _, refusal := s.policy(&pb.PolicyStep{Action: db.StepReject, PolicyId: p.ID, Officer: paOfficerB}); refusal == nil || refusal.Error() != "policy: a rejection needs a reason" {
		t.Fatalf("rejection without a reason: %v", refusal)
	}
	rej := s.ok(&pb.PolicyStep{Action: db.StepReject, PolicyId: p.ID, Officer: paOfficerB, Reason: "te breed"})
	if rej.State != policy.StateRejected || rej.Reason != "te breed" || rej.DecidedBy != paOfficerB {
		t.Fatalf("rejected = %+v", rej)
	}
	for _, action := range []string{db.StepApprove, db.StepReject} {
		if _, refusal := s.policy(&pb.PolicyStep{Action: action, PolicyId: p.ID, Officer: paOfficerC, Reason: "r"}); !errors.Is(refusal, policy.ErrNotProposed) {
			t.Errorf("%s of a rejected policy: %v", action, refusal)
		}
	}
	if _, refusal := s.policy(&pb.PolicyStep{Action: db.StepRevoke, PolicyId: p.ID, Officer: paOfficerC, Reason: "r"}); !errors.Is(refusal, policy.ErrNotActive) {
		t.Fatalf("revocation of a rejected policy: %v", refusal)
	}
	// An expired proposal cannot be approved.
	exp := s.ok(&pb.PolicyStep{Action: db.StepPropose, Officer: paOfficerA,
		Source: []byte("name: kort\npurpose: x\nrecipients: [ncc.crisis.test]\nkinds: [sitrep]\nmax_classification: public\nvalid_until: 2026-03-01T09:05:00Z\n")})
	if _, refusal := s.policy(&pb.PolicyStep{Action: db.StepApprove, PolicyId: exp.ID, Officer: paOfficerB}); !errors.Is(refusal, policy.ErrExpired) {
		t.Fatalf("approval after expiry: %v", refusal)
	}
	// An unknown action is an error, not a refusal: replicas must not diverge on it.
	s.index++
	if _, _, err := s.d.ApplyPolicyStep(s.index, &pb.PolicyStep{Action: "promote", PolicyId: p.ID, Officer: paOfficerB, At: timestamppb.Now()}); err == nil || !strings.Contains(err.Error(), `unknown policy step "promote"`) {
		t.Fatalf("unknown action: %v", err)
	}
	// Only the two proposals and the rejection are in the log; refusals are not.
	entries := s.audit()
	var actions []string
	for _, e := range entries {
		actions = append(actions, e.Action+" "+e.Subject)
	}
	if want := []string{"policy.propose lcvs-capacity@1", "policy.reject lcvs-capacity@1", "policy.propose kort@1"}; !slices.Equal(actions, want) {
		t.Fatalf("audit %v, want %v", actions, want)
	}
}

// TestApplyPolicyStepReplay checks that an entry applied before is skipped: a replayed proposal
// makes no second version.
func TestApplyPolicyStepReplay(t *testing.T) {
	s := newPASteps(t, filepath.Join(t.TempDir(), "knooppunt.db"))
	s.propose(paOfficerA, "x", 1)
	row, refusal, err := s.d.ApplyPolicyStep(s.index, &pb.PolicyStep{Action: db.StepPropose, Source: paSource("x"), Officer: paOfficerA, At: timestamppb.Now()})
	if row != nil || refusal != nil || err != nil {
		t.Fatalf("replay = %+v, %v, %v", row, refusal, err)
	}
	if list, _ := s.d.ListPolicies(context.Background(), "", ""); len(list) != 1 {
		t.Fatalf("%d policies after a replay, want 1", len(list))
	}
	if n := len(s.audit()); n != 1 {
		t.Fatalf("%d audit entries after a replay, want 1", n)
	}
}

func TestApplyPhaseStep(t *testing.T) {
	s := newPASteps(t, filepath.Join(t.TempDir(), "knooppunt.db"))
	ctx := context.Background()
	if prev := s.phase("oekraine", policy.PhaseLukewarm, paOfficerA, "instroom stijgt"); prev != "" {
		t.Fatalf("first phase: previous %q, want none", prev)
	}
	if prev := s.phase("hoogwater", policy.PhaseCold, paOfficerB, ""); prev != "" {
		t.Fatalf("other crisis: previous %q", prev)
	}
	if prev := s.phase("oekraine", policy.PhaseWarm, paOfficerB, "opschaling"); prev != policy.PhaseLukewarm {
		t.Fatalf("second phase: previous %q, want lukewarm", prev)
	}
	phases, err := s.d.Phases(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	want := []db.Phase{
		{Crisis: "hoogwater", Phase: policy.PhaseCold, SetBy: paOfficerB, SetAt: paStart.Add(time.Minute)},
		{Crisis: "oekraine", Phase: policy.PhaseWarm, SetBy: paOfficerB, Reason: "opschaling", SetAt: paStart.Add(2 * time.Minute)},
	}
	if !slices.Equal(phases, want) {
		t.Fatalf("Phases = %+v\nwant %+v", phases, want)
	}
	if one, err := s.d.Phases(ctx, "oekraine"); err != nil || len(one) != 1 || one[0] != want[1] {
		t.Fatalf("Phases(oekraine) = %+v, %v", one, err)
	}
	if none, err := s.d.Phases(ctx, "nope"); err != nil || len(none) != 0 {
		t.Fatalf("Phases(nope) = %+v, %v", none, err)
	}
	paCheckAudit(t, s.audit(), []paEntry{
		{paOfficerA, db.AuditPhaseSet, "oekraine", map[string]any{"from": "", "to": "lukewarm", "reason": "instroom stijgt"}},
		{paOfficerB, db.AuditPhaseSet, "hoogwater", map[string]any{"from": "", "to": "cold", "reason": ""}},
		{paOfficerB, db.AuditPhaseSet, "oekraine", map[string]any{"from": "lukewarm", "to": "warm", "reason": "opschaling"}},
	})
}

// TestApproveAPolicyThatNoLongerReads: a proposed policy whose stored source this release does
// not parse (a release that reads stricter than the one that took the proposal) is refused its
// approval, not a failed entry, which would stop every replica at it, and the next step applies.
func TestApproveAPolicyThatNoLongerReads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "knooppunt.db")
	s := newPASteps(t, path)
	p := s.propose(paOfficerA, "x", 1)
	h, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if _, err := h.Exec(`UPDATE policies SET source = 'name: [' WHERE id = ?`, p.ID); err != nil {
		t.Fatal(err)
	}
	row, refusal := s.policy(&pb.PolicyStep{Action: db.StepApprove, PolicyId: p.ID, Officer: paOfficerB})
	if !errors.Is(refusal, db.ErrPolicyUnreadable) || row != nil || !strings.Contains(refusal.Error(), "propose a new version") {
		t.Errorf("approve of a policy that no longer reads: %v, %v; want refused, saying what to do", row, refusal)
	}
	s.phase("oekraine", policy.PhaseWarm, paOfficerB, "")
}

// TestAuditDetailNotJSON: an audit entry whose detail is not JSON (a node of another release, or
// a bug in whatever built it) is kept, its text under not_json, and the chain verifies: refusing
// it would stop the entry on every replica, and the group with it.
func TestAuditDetailNotJSON(t *testing.T) {
	s := newPASteps(t, filepath.Join(t.TempDir(), "knooppunt.db"))
	ctx := context.Background()
	s.index++
	text := "{\"filter\":\"crisis:\\U000e0001\"}" // Go's %q of a tag character, which JSON has no escape for
	if err := s.d.ApplyAudit(s.index, []db.AuditEntry{{At: s.at, Actor: "spiffe://ncc.crisis.test/node/r1", Action: db.AuditFederationNothing, Detail: text}}); err != nil {
		t.Fatalf("ApplyAudit of a detail that is not JSON: %v", err)
	}
	es, err := s.d.AuditList(ctx, db.AuditFilter{Action: db.AuditFederationNothing})
	if err != nil || len(es) != 1 {
		t.Fatalf("AuditList: %v, %v", es, err)
	}
	var kept struct {
		NotJSON string `json:"not_json"`
	}
	if err := json.Unmarshal([]byte(es[0].Detail), &kept); err != nil || kept.NotJSON != text {
		t.Errorf("the detail is kept as %s (%v), want the text under not_json", es[0].Detail, err)
	}
	if rep, err := s.d.AuditVerify(ctx, db.AuditAnchor{}); err != nil || rep.FirstBroken != 0 {
		t.Errorf("AuditVerify: %+v, %v", rep, err)
	}
}

func TestAuditList(t *testing.T) {
	s := newPASteps(t, filepath.Join(t.TempDir(), "knooppunt.db"))
	p := s.propose(paOfficerA, "x", 1)
	s.phase("oekraine", policy.PhaseWarm, paOfficerB, "")
	s.ok(&pb.PolicyStep{Action: db.StepApprove, PolicyId: p.ID, Officer: paOfficerB})
	s.index++
	if err := s.d.ApplyAudit(s.index, []db.AuditEntry{{At: s.at, Actor: "spiffe://ncc.crisis.test/node/r1", Action: db.AuditFederationDenied, Subject: "/knooppunt.v1.FederationService/Query", Detail: `{"reason":"no"}`}}); err != nil {
		t.Fatal(err)
	}
	seqs := func(f db.AuditFilter) []int64 { t.Helper(); return auditSeqs(t, s.d, f) }
	for _, tc := range []struct {
		f    db.AuditFilter
		want []int64
	}{
		{db.AuditFilter{}, []int64{1, 2, 3, 4}},
		{db.AuditFilter{Action: "policy."}, []int64{1, 3}},
		{db.AuditFilter{Action: db.AuditPhaseSet}, []int64{2}},
		{db.AuditFilter{Action: "phase"}, nil},
		{db.AuditFilter{Actor: paOfficerB}, []int64{2, 3}},
		{db.AuditFilter{Subject: p.ID}, []int64{1, 3}},
		{db.AuditFilter{AfterSeq: 2}, []int64{3, 4}},
		{db.AuditFilter{Limit: 2}, []int64{1, 2}},
		{db.AuditFilter{Since: paStart.Add(time.Minute)}, []int64{2, 3, 4}},
	} {
		if got := seqs(tc.f); !slices.Equal(got, tc.want) {
			t.Errorf("AuditList(%+v) = %v, want %v", tc.f, got, tc.want)
		}
	}
}

// paChainHash is the audit hash as the audit log documents it, computed here on its own:
// SHA-256 over the previous entry's hash and the entry's canonical JSON.
func paChainHash(prev []byte, e db.AuditEntry) []byte {
	h := sha256.New()
	h.Write(prev)
	h.Write(db.MarshalCanonical(&e))
	return h.Sum(nil)
}

// paAuditFile writes a database with six audit entries (policy and phase steps) and closes it.
func paAuditFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "knooppunt.db")
	s := newPASteps(t, path)
	v1 := s.propose(paOfficerA, "v1", 1)
	s.ok(&pb.PolicyStep{Action: db.StepApprove, PolicyId: v1.ID, Officer: paOfficerB})
	s.phase("oekraine", policy.PhaseWarm, paOfficerB, "opschaling")
	v2 := s.propose(paOfficerB, "v2", 1)
	s.ok(&pb.PolicyStep{Action: db.StepApprove, PolicyId: v2.ID, Officer: paOfficerA}) // and v1's supersession
	entries := s.audit()
	if len(entries) != 6 {
		t.Fatalf("%d audit entries, want 6", len(entries))
	}
	prev := make([]byte, sha256.Size)
	for _, e := range entries {
		if !bytes.Equal(e.PrevHash, prev) || !bytes.Equal(e.Hash, paChainHash(prev, e)) {
			t.Fatalf("entry %d is not chained as documented", e.Seq)
		}
		prev = e.Hash
	}
	if err := s.d.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// verifyChain runs AuditVerify without an anchor and leaves the head out of the report, for the
// tests about where a chain breaks (TestAuditVerifyAnchor checks the head).
func verifyChain(ctx context.Context, d *db.DB) (db.AuditReport, error) {
	rep, err := d.AuditVerify(ctx, db.AuditAnchor{})
	rep.Head = db.AuditAnchor{}
	return rep, err
}

// TestAuditVerifyDetectsTampering edits, deletes and reorders rows of the audit table of a real
// database file through a handle of its own, and checks that AuditVerify names the first entry
// that no longer verifies and why.
func TestAuditVerifyDetectsTampering(t *testing.T) {
	const (
		changed  = "its hash does not match its contents: the entry was changed"
		prevHash = "its previous-hash does not match the entry before it: entries were deleted or reordered"
	)
	cases := []struct {
		name    string
		tamper  []string
		entries int64
		broken  int64
		problem string
	}{
		{name: "untouched", entries: 6},
		{name: "detail edited", entries: 6, broken: 3, problem: changed,
			tamper: []string{`UPDATE audit SET detail = '{"from":"","to":"cold","reason":"opschaling"}' WHERE seq = 3`}},
		{name: "actor of the first entry edited", entries: 6, broken: 1, problem: changed,
			tamper: []string{`UPDATE audit SET actor = 'spiffe://lcvs.crisis.test/user/mallory' WHERE seq = 1`}},
		{name: "time edited", entries: 6, broken: 5, problem: changed,
			tamper: []string{`UPDATE audit SET at = at - 3600000000000 WHERE seq = 5`}},
		{name: "last entry edited", entries: 6, broken: 6, problem: changed,
			tamper: []string{`UPDATE audit SET subject = 'lcvs-capacity@9' WHERE seq = 6`}},
		{name: "previous hash edited", entries: 6, broken: 4, problem: prevHash,
			tamper: []string{`UPDATE audit SET prev_hash = zeroblob(32) WHERE seq = 4`}},
		{name: "middle entry deleted", entries: 5, broken: 4, problem: "expected entry 3 here, found 4: entries were deleted or reordered",
			tamper: []string{`DELETE FROM audit WHERE seq = 3`}},
		{name: "first entry deleted", entries: 5, broken: 2, problem: "expected entry 1 here, found 2: entries were deleted or reordered",
			tamper: []string{`DELETE FROM audit WHERE seq = 1`}},
		{name: "deleted and renumbered", entries: 5, broken: 3, problem: prevHash,
			tamper: []string{`DELETE FROM audit WHERE seq = 3`, `UPDATE audit SET seq = seq - 1 WHERE seq > 3`}},
		// seq is the table's INTEGER PRIMARY KEY, so it is the row's place: moving an entry
		// means giving its contents another seq.
		{name: "two entries swapped, contents moved", entries: 6, broken: 2, problem: prevHash,
			tamper: []string{
				`CREATE TEMP TABLE x AS SELECT * FROM audit WHERE seq IN (2, 4)`,
				`UPDATE audit SET (at, actor, action, subject, detail, prev_hash, hash) = (SELECT at, actor, action, subject, detail, prev_hash, hash FROM x WHERE x.seq = 6 - audit.seq) WHERE seq IN (2, 4)`,
			}},
		{name: "two entries swapped, only seq values", entries: 6, broken: 2, problem: prevHash,
			tamper: []string{`UPDATE audit SET seq = -1 WHERE seq = 2`, `UPDATE audit SET seq = 2 WHERE seq = 4`, `UPDATE audit SET seq = 4 WHERE seq = -1`}},
		{name: "neighbours swapped", entries: 6, broken: 5, problem: prevHash,
			tamper: []string{`UPDATE audit SET seq = -1 WHERE seq = 5`, `UPDATE audit SET seq = 5 WHERE seq = 6`, `UPDATE audit SET seq = 6 WHERE seq = -1`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := paAuditFile(t)
			h, err := sql.Open("sqlite3", "file:"+path)
			if err != nil {
				t.Fatal(err)
			}
			h.SetMaxOpenConns(1) // the temp table lives on one connection
			for _, q := range tc.tamper {
				if res, err := h.Exec(q); err != nil {
					t.Fatalf("%s: %v", q, err)
				} else if n, _ := res.RowsAffected(); n == 0 && !strings.HasPrefix(q, "CREATE") {
					t.Fatalf("%s changed no row", q)
				}
			}
			h.Close()

			d, err := db.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			rep, err := verifyChain(context.Background(), d)
			if err != nil {
				t.Fatal(err)
			}
			if want := (db.AuditReport{Entries: tc.entries, FirstBroken: tc.broken, Problem: tc.problem}); rep != want {
				t.Fatalf("AuditVerify = %+v\nwant %+v", rep, want)
			}
		})
	}
}

// TestAuditVerifyRecomputedHash checks that rewriting an entry together with its own hash still
// breaks the chain at the next entry, whose previous-hash names the original.
func TestAuditVerifyRecomputedHash(t *testing.T) {
	path := paAuditFile(t)
	d, err := db.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := d.AuditList(context.Background(), db.AuditFilter{})
	d.Close()
	if err != nil {
		t.Fatal(err)
	}
	e := entries[2]
	e.Detail = `{"from":"","to":"cold","reason":"opschaling"}`
	hash := paChainHash(e.PrevHash, e)

	h, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Exec(`UPDATE audit SET detail = ?, hash = ? WHERE seq = 3`, e.Detail, hash); err != nil {
		t.Fatal(err)
	}
	h.Close()

	d, err = db.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	rep, err := verifyChain(context.Background(), d)
	want := db.AuditReport{Entries: 6, FirstBroken: 4, Problem: "its previous-hash does not match the entry before it: entries were deleted or reordered"}
	if err != nil || rep != want {
		t.Fatalf("AuditVerify = %+v, %v\nwant %+v", rep, err, want)
	}
}

// TestAuditVerifyWhileOpen tampers with the file while the node's database is open on it, as
// someone with access to the data directory could.
func TestAuditVerifyWhileOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "knooppunt.db")
	s := newPASteps(t, path)
	s.propose(paOfficerA, "x", 1)
	s.phase("oekraine", policy.PhaseWarm, paOfficerB, "")
	if rep, err := verifyChain(context.Background(), s.d); err != nil || rep != (db.AuditReport{Entries: 2}) {
		t.Fatalf("AuditVerify before = %+v, %v", rep, err)
	}
	h, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if _, err := h.Exec(`UPDATE audit SET action = 'phase.view' WHERE seq = 2`); err != nil {
		t.Fatal(err)
	}
	rep, err := verifyChain(context.Background(), s.d)
	want := db.AuditReport{Entries: 2, FirstBroken: 2, Problem: "its hash does not match its contents: the entry was changed"}
	if err != nil || rep != want {
		t.Fatalf("AuditVerify = %+v, %v\nwant %+v", rep, err, want)
	}
	// New entries are chained to the tampered one's stored hash; the break stays where it was.
	s.phase("oekraine", policy.PhaseCold, paOfficerA, "")
	if rep, err := verifyChain(context.Background(), s.d); err != nil || rep.FirstBroken != 2 || rep.Entries != 3 {
		t.Fatalf("AuditVerify after a new entry = %+v, %v", rep, err)
	}
}

// TestAuditVerifyAnchor checks the head that AuditVerify reports, and an anchor kept from it: a
// chain rewritten from its first entry with every hash recomputed verifies on its own, but not
// against the anchor; nor does a chain cut short before the anchor's entry.
func TestAuditVerifyAnchor(t *testing.T) {
	ctx := context.Background()
	path := paAuditFile(t)
	d, err := db.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := d.AuditVerify(ctx, db.AuditAnchor{})
	entries, lerr := d.AuditList(ctx, db.AuditFilter{})
	d.Close()
	if err != nil || lerr != nil {
		t.Fatal(err, lerr)
	}
	last := entries[len(entries)-1]
	head := db.AuditAnchor{Seq: last.Seq, Hash: hex.EncodeToString(last.Hash)}
	if rep != (db.AuditReport{Entries: 6, Head: head}) {
		t.Fatalf("AuditVerify = %+v, want 6 entries and head %+v", rep, head)
	}
	anchor := db.AuditAnchor{Seq: 4, Hash: hex.EncodeToString(entries[3].Hash)}
	verify := func(path string, anchor db.AuditAnchor) db.AuditReport {
		t.Helper()
		d, err := db.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		rep, err := d.AuditVerify(ctx, anchor)
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	if rep := verify(path, anchor); rep.FirstBroken != 0 || rep.Head != head {
		t.Fatalf("untouched chain against an anchor of its own = %+v", rep)
	}
	if rep := verify(path, head); rep.FirstBroken != 0 {
		t.Fatalf("untouched chain against its own head = %+v", rep)
	}

	// Rewrite: the first entry's actor changes and every hash after it is recomputed.
	rewritten := filepath.Join(t.TempDir(), "rewritten.db")
	copyFile(t, path, rewritten)
	h, err := sql.Open("sqlite3", "file:"+rewritten)
	if err != nil {
		t.Fatal(err)
	}
	prev := make([]byte, 32)
	for _, e := range entries {
		if e.Seq == 1 {
			e.Actor = "spiffe://lcvs.crisis.test/user/mallory"
		}
		e.Hash = paChainHash(prev, e)
		if _, err := h.Exec(`UPDATE audit SET actor = ?, prev_hash = ?, hash = ? WHERE seq = ?`, e.Actor, prev, e.Hash, e.Seq); err != nil {
			t.Fatal(err)
		}
		prev = e.Hash
	}
	h.Close()
	if rep := verify(rewritten, db.AuditAnchor{}); rep.FirstBroken != 0 {
		t.Fatalf("a chain rewritten whole verifies on its own; got %+v", rep)
	}
	rep = verify(rewritten, anchor)
	wantProblem := fmt.Sprintf("its hash is %x, not the anchor's %s: the chain was rewritten from this entry or before it", paChainHashAt(t, rewritten, 4), anchor.Hash)
	if rep.FirstBroken != 4 || rep.Problem != wantProblem || rep.Entries != 6 {
		t.Fatalf("rewritten chain against the anchor = %+v\nwant first broken 4, %q", rep, wantProblem)
	}

	// Cut short: the last three entries are gone, and the chain that is left verifies.
	cut := filepath.Join(t.TempDir(), "cut.db")
	copyFile(t, path, cut)
	h, err = sql.Open("sqlite3", "file:"+cut)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Exec(`DELETE FROM audit WHERE seq > 3`); err != nil {
		t.Fatal(err)
	}
	h.Close()
	want := db.AuditReport{Entries: 3, FirstBroken: 4, Problem: "the log ends at entry 3, before the anchor's entry 4: entries were removed from its end",
		Head: db.AuditAnchor{Seq: 3, Hash: hex.EncodeToString(entries[2].Hash)}}
	if rep := verify(cut, anchor); rep != want {
		t.Fatalf("cut chain against the anchor = %+v\nwant %+v", rep, want)
	}
}

// paChainHashAt reads the stored hash of entry seq.
func paChainHashAt(t *testing.T, path string, seq int64) []byte {
	t.Helper()
	h, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	var hash []byte
	if err := h.QueryRow(`SELECT hash FROM audit WHERE seq = ?`, seq).Scan(&hash); err != nil {
		t.Fatal(err)
	}
	return hash
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

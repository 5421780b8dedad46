package node_test

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/node/db"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestPolicyStepsCheckTheirInputFirst: a step's id is NAME@VERSION and an approval carries no
// reason (it would be kept nowhere); anything else is refused before the step goes into the Raft
// log, and the refusal quotes at most 80 bytes of what it was given.
func TestPolicyStepsCheckTheirInputFirst(t *testing.T) {
	p := startPolicyNode(t)
	a, b := pb.NewPolicyServiceClient(p.as(t, "officer-a")), pb.NewPolicyServiceClient(p.as(t, "officer-b"))
	info, err := a.Propose(rpcCtx(t), &pb.ProposeRequest{Source: []byte(capacityPolicy)})
	if err != nil {
		t.Fatal(err)
	}
	// What a step that went into the log would leave: an audit entry of a policy step, or a
	// change to the policy. (Not the applied index: the node's own background writes move it.)
	last, err := p.n.DB().AuditList(t.Context(), db.AuditFilter{Limit: 1, Newest: true})
	if err != nil || len(last) != 1 {
		t.Fatalf("the audit log after the proposal: %v, %v", last, err)
	}
	big := strings.Repeat("x", 2<<20) + "@1"
	_, err = b.Approve(rpcCtx(t), &pb.PolicyStepRequest{Id: big})
	wantStatus(t, "an approval of a 2 MiB id", err, codes.InvalidArgument,
		`id: "`+strings.Repeat("x", 80)+"…\" is not NAME@VERSION, such as lcvs-capacity-to-regions@2 (`policy list` shows them)")
	for _, id := range []string{"lcvs-capacity-to-ncc@0", "lcvs-capacity-to-ncc@01", "lcvs-capacity-to-ncc@1.5", "Lcvs@1", "@1"} {
		_, err = b.Revoke(rpcCtx(t), &pb.PolicyStepRequest{Id: id, Reason: "r"})
		wantStatus(t, "a revocation of "+id, err, codes.InvalidArgument, "id: \""+id+"\" is not NAME@VERSION, such as lcvs-capacity-to-regions@2 (`policy list` shows them)")
	}
	_, err = b.Approve(rpcCtx(t), &pb.PolicyStepRequest{Id: info.Id, Reason: strings.Repeat("r", 2<<20) + "\x1b[2J"})
	wantStatus(t, "an approval with a reason", err, codes.InvalidArgument, "reason: an approval takes no reason: it would not be kept; leave it out (reject and revoke take one)")
	after, err := p.n.DB().AuditList(t.Context(), db.AuditFilter{AfterSeq: last[0].Seq})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range after {
		if strings.HasPrefix(e.Action, "policy.") {
			t.Errorf("a refused step went into the Raft log: audit entry %d, %s %s by %s", e.Seq, e.Action, e.Subject, e.Actor)
		}
	}
	if row, err := p.n.DB().GetPolicy(t.Context(), info.Id); err != nil || row.State != "proposed" || len(row.Approvers) != 0 {
		t.Errorf("the policy after the refused steps: %+v, %v; want proposed with no approvals", row, err)
	}
	got, err := b.Approve(rpcCtx(t), &pb.PolicyStepRequest{Id: info.Id})
	if err != nil || got.State != "approved" {
		t.Fatalf("the approval without a reason: %v, %v", got, err)
	}
}

// TestPolicyPreviewCallsNoNestedRedactionVoided: a draft that withholds a field and a field
// inside it (body.contact, body.contact.phone) sends no phone; its preview, with no other policy
// in force, says that no redaction of it is voided and no policy overrides it.
func TestPolicyPreviewCallsNoNestedRedactionVoided(t *testing.T) {
	p := startPolicyNode(t)
	b := pb.NewPolicyServiceClient(p.as(t, "officer-b"))
	if _, err := pb.NewRecordServiceClient(p.as(t, "editor")).Put(rpcCtx(t), &pb.PutRequest{Record: &pb.Record{Id: "shelter-utrecht", Kind: "shelter.capacity",
		Crisis: "oekraine", Region: "VR09", Classification: pb.Classification_INTERNAL,
		Body: []byte(`{"municipality":"Utrecht","beds_total":100,"beds_free":14,"contact":{"phone":"+31 30 000 0000","name":"Jan"}}`)}}); err != nil {
		t.Fatal(err)
	}
	draft := "name: lcvs-capacity-to-ncc\npurpose: opvang\nrecipients: [group:rijk]\nkinds: [shelter.capacity]\nmax_classification: internal\nredact: [body.contact, body.contact.phone]\n"
	pv, err := b.Preview(rpcCtx(t), &pb.PreviewRequest{Source: []byte(draft), Recipient: nccNodeID})
	if err != nil || pv.Total != 1 {
		t.Fatalf("preview: %v, %v", pv, err)
	}
	if it := pv.Items[0]; strings.Contains(string(it.Record.Body), "contact") || strings.Join(it.Redacted, ",") != "body.contact" {
		t.Errorf("the item: %s, withheld %v; want no contact, body.contact withheld", it.Record.Body, it.Redacted)
	}
	if len(pv.VoidedRedactions) != 0 || len(pv.OverridingPolicies) != 0 || len(pv.UnmatchedRedactions) != 0 {
		t.Errorf("voided %v, overriding %v, unmatched %v; want none", pv.VoidedRedactions, pv.OverridingPolicies, pv.UnmatchedRedactions)
	}
}

// TestPolicyApproveRefusesAProposalThatNoLongerLints: a proposal stored under a release that read
// it more leniently (here a second YAML document, whose redact and phases nothing enforces) is
// not approved: the approving officer would approve what the node does not enforce. Propose and
// Lint refuse such a source now, at the line of its second document.
func TestPolicyApproveRefusesAProposalThatNoLongerLints(t *testing.T) {
	p := startPolicyNode(t)
	a, b := pb.NewPolicyServiceClient(p.as(t, "officer-a")), pb.NewPolicyServiceClient(p.as(t, "officer-b"))
	src := "name: lcvs-capacity-to-ncc\npurpose: opvang\nrecipients: [group:rijk]\nkinds: [shelter.capacity]\nmax_classification: internal\n---\n# beperkingen\nredact: [body.contact_phone]\nphases: [warm]\n"
	lint, err := a.Lint(rpcCtx(t), &pb.LintRequest{Source: []byte(src)})
	if err != nil || len(lint.Problems) != 1 || lint.Problems[0].Line != 6 || lint.Problems[0].Code != "documents" {
		t.Errorf("Lint: %v, %v; want the second document's problem at line 6", lint, err)
	}
	_, err = a.Propose(rpcCtx(t), &pb.ProposeRequest{Source: []byte(src)})
	wantStatus(t, "a proposal of two documents", err, codes.InvalidArgument,
		"source: the policy does not lint:\nline 6, column 1: a second YAML document: a policy is one document, and nothing would read this one; remove the --- and put its fields in the first")

	// As an earlier release stored it: the step alone, which reads the first document.
	step := &pb.PolicyStep{Action: "propose", Source: []byte(src), Officer: "spiffe://" + lcvsTD + "/user/officer-a", At: timestamppb.Now(), ApprovalsRequired: 1}
	if _, err := p.n.Store().Apply(rpcCtx(t), &pb.Command{Cmd: &pb.Command_PolicyStep{PolicyStep: step}}); err != nil {
		t.Fatal(err)
	}
	_, err = b.Approve(rpcCtx(t), &pb.PolicyStepRequest{Id: "lcvs-capacity-to-ncc@1"})
	wantStatus(t, "the approval of the stored proposal", err, codes.FailedPrecondition,
		"lcvs-capacity-to-ncc@1 does not lint with this release: propose a new version of it, and reject this one:\nline 6, column 1: a second YAML document: a policy is one document, and nothing would read this one; remove the --- and put its fields in the first")
	if got, err := b.Get(rpcCtx(t), &pb.GetPolicyRequest{Id: "lcvs-capacity-to-ncc@1"}); err != nil || got.State != "proposed" || len(got.Approvers) != 0 {
		t.Errorf("after the refusal: %v, %v; want it proposed, unapproved", got, err)
	}
}

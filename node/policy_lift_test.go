package node_test

import (
	"strings"
	"testing"

	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestPreviewSaysWhichRedactionsItLifts: a new policy for the same recipient and kind without a
// redact sends a field another approved policy withholds (a field is withheld only if every
// granting policy withholds it). Its preview, as a draft or once proposed, names the field and
// the policy that withholds it now; a draft that withholds it too lifts nothing.
func TestPreviewSaysWhichRedactionsItLifts(t *testing.T) {
	p := startPolicyNode(t)
	a, b := pb.NewPolicyServiceClient(p.as(t, "officer-a")), pb.NewPolicyServiceClient(p.as(t, "officer-b"))
	if _, err := pb.NewRecordServiceClient(p.as(t, "editor")).Put(rpcCtx(t), &pb.PutRequest{Record: &pb.Record{Id: "shelter-utrecht", Kind: "shelter.capacity",
		Crisis: "oekraine", Region: "VR09", Classification: pb.Classification_INTERNAL,
		Body: []byte(`{"municipality":"Utrecht","beds_total":100,"beds_free":14,"contact_phone":"+31 30 000 0000"}`)}}); err != nil {
		t.Fatal(err)
	}
	lifted := func(req *pb.PreviewRequest) string {
		t.Helper()
		req.Recipient, req.Phase = nccNodeID, "warm"
		resp, err := b.Preview(rpcCtx(t), req)
		if err != nil || resp.Total != 1 {
			t.Fatalf("preview: %v %v", resp, err)
		}
		var out []string
		for _, l := range resp.LiftedRedactions {
			out = append(out, l.Field+" by "+strings.Join(l.WithheldBy, ","))
		}
		return strings.Join(out, "; ")
	}
	info, err := a.Propose(rpcCtx(t), &pb.ProposeRequest{Source: []byte(capacityPolicy)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Approve(rpcCtx(t), &pb.PolicyStepRequest{Id: info.Id}); err != nil {
		t.Fatal(err)
	}
	if got := lifted(&pb.PreviewRequest{Id: info.Id}); got != "" {
		t.Errorf("the policy in force itself lifts %q, want nothing", got)
	}
	whole := strings.NewReplacer("name: lcvs-capacity-to-ncc", "name: lcvs-capacity-whole", "redact: [body.contact_phone]\n", "").Replace(capacityPolicy)
	want := "body.contact_phone by " + info.Id
	if got := lifted(&pb.PreviewRequest{Source: []byte(whole)}); got != want {
		t.Errorf("a draft without redact lifts %q, want %q", got, want)
	}
	proposed, err := a.Propose(rpcCtx(t), &pb.ProposeRequest{Source: []byte(whole)})
	if err != nil {
		t.Fatal(err)
	}
	if got := lifted(&pb.PreviewRequest{Id: proposed.Id}); got != want {
		t.Errorf("%s, proposed, lifts %q, want %q", proposed.Id, got, want)
	}
	kept := strings.Replace(capacityPolicy, "name: lcvs-capacity-to-ncc", "name: lcvs-capacity-kept", 1)
	if got := lifted(&pb.PreviewRequest{Source: []byte(kept)}); got != "" {
		t.Errorf("a draft that withholds the phone too lifts %q, want nothing", got)
	}
}

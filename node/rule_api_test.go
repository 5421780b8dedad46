package node_test

import (
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestRuleApplyListDelete checks the rule steps on a real node over mTLS: an editor and an
// officer apply rules in person, a new apply is a new version, every step is audited under its
// author, a rule that does not lint is refused with its position and stores nothing, the local
// socket cannot take a step, and a deleted rule is gone.
func TestRuleApplyListDelete(t *testing.T) {
	own := newMTLSOrg(t, mtlsOwnTD)
	n := startMTLSNode(t, own, own.filesIdentity()+fmt.Sprintf(`roles:
  - {id: spiffe://%[1]s/user/editor, role: editor}
  - {id: spiffe://%[1]s/user/officer, role: officer}
`, mtlsOwnTD))
	ctx := t.Context()
	editor := pb.NewRuleServiceClient(n.dial(t, own.svid(t, "/user/editor")))
	officer := pb.NewRuleServiceClient(n.dial(t, own.svid(t, "/user/officer")))
	local := pb.NewRuleServiceClient(n.local(t))
	src := func(threshold int) []byte {
		return fmt.Appendf(nil, "name: signals\nseverity: moderate\nwhen: count(\"signal\", duration(\"6h\")) >= %d\n", threshold)
	}

	r, err := editor.Apply(ctx, &pb.ApplyRuleRequest{Source: src(3), Reason: "three signals"})
	if err != nil || r.Name != "signals" || r.Version != 1 || r.Severity != "moderate" || r.AppliedBy != "spiffe://"+mtlsOwnTD+"/user/editor" {
		t.Fatalf("editor applies: %v %v", r, err)
	}
	if r, err = officer.Apply(ctx, &pb.ApplyRuleRequest{Source: src(2)}); err != nil || r.Version != 2 || !strings.Contains(string(r.Source), ">= 2") {
		t.Fatalf("officer applies a new version: %v %v", r, err)
	}
	_, err = editor.Apply(ctx, &pb.ApplyRuleRequest{Source: []byte("name: broken\nseverity: moderate\nwhen: count(\"signals\", duration(\"6h\")) >= 3\n")})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), `line 3, column 13: when: count: unknown kind "signals"`) {
		t.Errorf("a rule that does not lint: %v", err)
	}
	if _, err := local.Apply(ctx, &pb.ApplyRuleRequest{Source: src(1)}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("the local socket applies: %v, want PERMISSION_DENIED", err)
	}
	list, err := local.List(ctx, &pb.ListRulesRequest{})
	if err != nil || len(list.Rules) != 1 || list.Rules[0].Name != "signals" || list.Rules[0].Version != 2 {
		t.Fatalf("list after the steps: %v %v; want only signals at version 2", list, err)
	}

	if _, err := officer.Delete(ctx, &pb.DeleteRuleRequest{Name: "signals", Reason: "done"}); err != nil {
		t.Fatal(err)
	}
	if _, err := local.Get(ctx, &pb.GetRuleRequest{Name: "signals"}); status.Code(err) != codes.NotFound {
		t.Errorf("get after delete: %v, want NOT_FOUND", err)
	}
	if _, err := officer.Delete(ctx, &pb.DeleteRuleRequest{Name: "signals"}); status.Code(err) != codes.NotFound {
		t.Errorf("delete twice: %v, want NOT_FOUND", err)
	}

	audit, err := pb.NewAuditServiceClient(n.local(t)).List(ctx, &pb.ListAuditRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var steps []string
	for _, e := range audit.Entries {
		if strings.HasPrefix(e.Action, "rule.") {
			steps = append(steps, e.Action+" "+e.Subject+" "+strings.TrimPrefix(e.Actor, "spiffe://"+mtlsOwnTD))
		}
	}
	if got := strings.Join(steps, "; "); got != "rule.apply signals /user/editor; rule.apply signals /user/officer; rule.delete signals /user/officer" {
		t.Errorf("audited rule steps: %s", got)
	}
}

package db_test

import (
	"context"
	"errors"
	"testing"

	"github.com/knooppunt/knooppunt/node/db"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestApplyRuleStep checks that applying a rule twice makes version 2, that deleting a rule that
// is not there is a refusal (so the FSM does not stop) that changes nothing, and that an entry
// replayed at an applied index is skipped.
func TestApplyRuleStep(t *testing.T) {
	d := newDB(t)
	ctx := context.Background()
	step := func(index uint64, s *pb.RuleStep) (*db.RuleRow, error) {
		t.Helper()
		s.At = hour(int(index))
		row, refusal, err := d.ApplyRuleStep(index, s)
		if err != nil {
			t.Fatalf("entry %d: %v", index, err)
		}
		return row, refusal
	}
	if row, ref := step(1, &pb.RuleStep{Name: "r", Source: []byte("v1"), By: "spiffe://x/user/e", Severity: "minor"}); ref != nil || row.Version != 1 {
		t.Fatalf("first apply: %+v %v", row, ref)
	}
	if row, ref := step(2, &pb.RuleStep{Name: "r", Source: []byte("v2"), By: "spiffe://x/user/o", Severity: "severe"}); ref != nil || row.Version != 2 {
		t.Fatalf("second apply: %+v %v", row, ref)
	}
	// A replay of entry 2 changes nothing.
	step(2, &pb.RuleStep{Name: "r", Source: []byte("v3")})
	r, err := d.Rule(ctx, "r")
	if err != nil || r.Version != 2 || string(r.Source) != "v2" || r.Severity != "severe" || r.AppliedBy != "spiffe://x/user/o" {
		t.Fatalf("rule after a replay: %+v %v", r, err)
	}
	if _, ref := step(3, &pb.RuleStep{Name: "other", Delete: true}); !errors.Is(ref, db.ErrNotFound) {
		t.Errorf("delete of a rule that is not there: refusal %v", ref)
	}
	if _, ref := step(4, &pb.RuleStep{Name: "r", Delete: true}); ref != nil {
		t.Errorf("delete: %v", ref)
	}
	if rules, err := d.Rules(ctx); err != nil || len(rules) != 0 {
		t.Errorf("rules after the delete: %v %v", rules, err)
	}
}

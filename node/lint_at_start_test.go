package node

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/node/db"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestWarnPoliciesThatNoLongerLint: an approved policy that an earlier release stored and this
// release's linter refuses (here a second YAML document, whose redaction was never enforced) is
// named at start, and one that lints is not.
func TestWarnPoliciesThatNoLongerLint(t *testing.T) {
	d, err := db.Open(filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	const good = "name: goed\npurpose: beeld\nrecipients: [ncc.crisis.test]\nkinds: [sitrep]\nmax_classification: internal\n"
	const twoDocs = "name: twee\npurpose: beeld\nrecipients: [ncc.crisis.test]\nkinds: [shelter.capacity]\nmax_classification: internal\n---\nredact: [body.contact_phone]\n"
	index := uint64(0)
	step := func(s *pb.PolicyStep) {
		t.Helper()
		index++
		s.At = timestamppb.Now()
		if _, refusal, err := d.ApplyPolicyStep(index, s); err != nil || refusal != nil {
			t.Fatalf("%s %s: %v %v", s.Action, s.PolicyId, err, refusal)
		}
	}
	for _, src := range []string{good, twoDocs} {
		step(&pb.PolicyStep{Action: db.StepPropose, Source: []byte(src), Officer: "spiffe://a.crisis.test/user/anna", ApprovalsRequired: 1})
	}
	step(&pb.PolicyStep{Action: db.StepApprove, PolicyId: "goed@1", Officer: "spiffe://a.crisis.test/user/bob"})
	step(&pb.PolicyStep{Action: db.StepApprove, PolicyId: "twee@1", Officer: "spiffe://a.crisis.test/user/bob"})
	var logs bytes.Buffer
	warnPoliciesThatNoLongerLint(context.Background(), d, slog.New(slog.NewTextHandler(&logs, nil)))
	if !strings.Contains(logs.String(), "policy=twee@1") || !strings.Contains(logs.String(), "second YAML document") || strings.Contains(logs.String(), "goed@1") {
		t.Fatalf("the warnings at start name twee@1 alone, for its second document:\n%s", logs.String())
	}
}

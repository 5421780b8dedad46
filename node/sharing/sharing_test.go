package sharing_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/node/config"
	"github.com/knooppunt/knooppunt/node/db"
	"github.com/knooppunt/knooppunt/node/sharing"
	"github.com/knooppunt/knooppunt/policy"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

const (
	officerA = "spiffe://lcvs.crisis.test/user/officer-a"
	officerB = "spiffe://lcvs.crisis.test/user/officer-b"
	source   = "name: lcvs-capacity\npurpose: test\nrecipients: [group:veiligheidsregios]\nkinds: [shelter.capacity]\nmax_classification: internal\n"
)

// TestPolicySetFollowsGeneration checks that the cached policy set and phases are served until
// a policy step, a phase change or a restore moves the database's generation, and are read
// again after each.
func TestPolicySetFollowsGeneration(t *testing.T) {
	ctx := context.Background()
	d, err := db.Open(filepath.Join(t.TempDir(), "knooppunt.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	s := sharing.New(d, "lcvs.crisis.test", func() *config.Config { return &config.Config{} }, slog.New(slog.DiscardHandler))
	var index uint64
	at := func() *timestamppb.Timestamp { index++; return timestamppb.New(time.Unix(int64(index)*60, 0)) }

	state := func() (string, *policy.Set) {
		t.Helper()
		set, err := s.PolicySet(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(set.Policies) == 0 {
			return "", set
		}
		return set.Policies[0].ID + " " + set.Policies[0].State, set
	}
	phase := func() string {
		t.Helper()
		ph, err := s.Phases().Of(ctx, "", "oekraine")
		if err != nil {
			t.Fatal(err)
		}
		return ph
	}

	if got, _ := state(); got != "" {
		t.Fatalf("empty database: %q", got)
	}
	if got := phase(); got != policy.PhaseCold {
		t.Fatalf("phase never set: %q, want cold", got)
	}
	ts := at()
	if _, refusal, err := d.ApplyPolicyStep(index, &pb.PolicyStep{Action: db.StepPropose, Officer: officerA, Source: []byte(source), ApprovalsRequired: 1, At: ts}); err != nil || refusal != nil {
		t.Fatal(err, refusal)
	}
	got, first := state()
	if got != "lcvs-capacity@1 "+policy.StateProposed {
		t.Fatalf("after propose: %q", got)
	}
	if _, again := state(); again != first {
		t.Fatal("nothing changed, and the set was read again")
	}
	ts = at()
	if _, refusal, err := d.ApplyPolicyStep(index, &pb.PolicyStep{Action: db.StepApprove, Officer: officerB, PolicyId: "lcvs-capacity@1", At: ts}); err != nil || refusal != nil {
		t.Fatal(err, refusal)
	}
	if got, _ := state(); got != "lcvs-capacity@1 "+policy.StateApproved {
		t.Fatalf("after approve: %q", got)
	}
	ts = at()
	if _, err := d.ApplyPhaseStep(index, &pb.PhaseStep{Crisis: "oekraine", Phase: "warm", Officer: officerA, Reason: "test", At: ts}); err != nil {
		t.Fatal(err)
	}
	if got := phase(); got != "warm" {
		t.Fatalf("after the phase change: %q, want warm", got)
	}

	// A restore swaps in a database of another time: here, an empty one.
	empty, err := db.Open(filepath.Join(t.TempDir(), "empty.db"))
	if err != nil {
		t.Fatal(err)
	}
	snap := filepath.Join(t.TempDir(), "snap.db")
	if err := empty.Backup(snap); err != nil {
		t.Fatal(err)
	}
	empty.Close()
	b, err := os.ReadFile(snap)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Restore(bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	if got, _ := state(); got != "" {
		t.Fatalf("after restoring an empty database: %q", got)
	}
	if got := phase(); got != policy.PhaseCold {
		t.Fatalf("after restoring an empty database: phase %q, want cold", got)
	}
}

// TestAPolicyThatDoesNotCompileHoldsUpNoOther: a stored version this build cannot compile (here
// a condition on a field records do not have, which an earlier release, or a step from another
// path, stored) is left out of the set and named in the log, and every other policy stays in
// force; the whole set used to fail, and with it every Query and Subscribe (review21 H1).
func TestAPolicyThatDoesNotCompileHoldsUpNoOther(t *testing.T) {
	d, err := db.Open(filepath.Join(t.TempDir(), "knooppunt.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	var logs bytes.Buffer
	s := sharing.New(d, "lcvs.crisis.test", func() *config.Config { return &config.Config{} }, slog.New(slog.NewTextHandler(&logs, nil)))
	var index uint64
	step := func(st *pb.PolicyStep) {
		t.Helper()
		index++
		st.At = timestamppb.New(time.Unix(int64(index)*60, 0))
		if _, refusal, err := d.ApplyPolicyStep(index, st); err != nil || refusal != nil {
			t.Fatal(err, refusal)
		}
	}
	broken := "name: kapot\npurpose: test\nrecipients: [group:veiligheidsregios]\nkinds: [sitrep]\nmax_classification: internal\nwhen: record.nosuch == 1\n"
	for _, src := range []string{source, broken} {
		step(&pb.PolicyStep{Action: db.StepPropose, Officer: officerA, Source: []byte(src), ApprovalsRequired: 1})
	}
	step(&pb.PolicyStep{Action: db.StepApprove, Officer: officerB, PolicyId: "lcvs-capacity@1"})
	step(&pb.PolicyStep{Action: db.StepApprove, Officer: officerB, PolicyId: "kapot@1"})
	set, err := s.PolicySet(context.Background())
	if err != nil {
		t.Fatalf("one policy that does not compile failed the set: %v", err)
	}
	if len(set.Policies) != 1 || set.Policies[0].ID != "lcvs-capacity@1" || set.Policies[0].State != policy.StateApproved {
		t.Fatalf("the set holds %v, want lcvs-capacity@1 alone, approved", set.Policies)
	}
	if !strings.Contains(logs.String(), "policy=kapot@1") {
		t.Errorf("the log does not name kapot@1:\n%s", logs.String())
	}
}

// TestLeavingUntilTheRunningConfigFollows: a peer is granted nothing while it leaves, and also
// once the peers table lists it no more (removed) while the running config, which the node merges
// from the table a moment after each step, still has it from Raft: a record put in that moment
// reached a removed peer on its open subscription (CI). A peer of the config file is in effect
// whatever the table says.
func TestLeavingUntilTheRunningConfigFollows(t *testing.T) {
	ctx := context.Background()
	d, err := db.Open(filepath.Join(t.TempDir(), "knooppunt.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	const td = "ncc.crisis.test"
	source := config.PeerFromRaft
	s := sharing.New(d, "lcvs.crisis.test", func() *config.Config {
		return &config.Config{Peers: []config.Peer{{Name: "ncc", TrustDomain: td, Source: source}}}
	}, slog.New(slog.DiscardHandler))
	var index uint64
	step := func(action string) {
		t.Helper()
		index++
		out, err := d.ApplyPeerStep(index, &pb.PeerStep{Action: action, Actor: "local socket", At: timestamppb.New(time.Unix(int64(index)*60, 0)),
			Peer: &pb.PeerInfo{Name: "ncc", TrustDomain: td, Bundle: []byte("PEM"), Fingerprint: "11111", Invitation: "inv-1"}})
		if err != nil || out.Refusal != nil {
			t.Fatalf("%s: %v, %v", action, out.Refusal, err)
		}
	}
	leaving := func(want bool, when string) {
		t.Helper()
		if got, err := s.Leaving(ctx, td); err != nil || got != want {
			t.Errorf("Leaving %s = %v, %v; want %v", when, got, err, want)
		}
	}
	leaving(true, "while the running config has a Raft peer the table does not list")
	step("add")
	leaving(false, "once the table lists it")
	step("leave")
	leaving(true, "while it leaves")
	step("remove")
	leaving(true, "once removed, before the running config follows")
	source = config.PeerFromConfig
	leaving(false, "for a peer of the config file")
}

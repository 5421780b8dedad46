package db_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/node/db"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestApplyPeerStep walks a peer through every outcome, and checks that a refused or idle step
// changes no peer and no audit entry, but still advances the applied index.
func TestApplyPeerStep(t *testing.T) {
	ctx := context.Background()
	d := newDB(t)
	at := timestamppb.New(time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC))
	peer := func(name, td, fp, inv string) *pb.PeerInfo {
		return &pb.PeerInfo{Name: name, TrustDomain: td, OrgName: "NCC", Addresses: []string{"127.0.0.1:7443"}, Bundle: []byte("PEM"),
			BundleEndpoint: "https://127.0.0.1:8443", EndpointId: "spiffe://" + td + "/node/r1", Groups: []string{"rijk"},
			Fingerprint: fp, Invitation: inv}
	}
	var index uint64
	step := func(s *pb.PeerStep) db.PeerOutcome {
		t.Helper()
		index++
		s.At, s.Actor = at, "local socket"
		gen := d.PeersGeneration()
		out, err := d.ApplyPeerStep(index, s)
		if err != nil {
			t.Fatal(err)
		}
		if applied, _ := position(t, d); applied != index {
			t.Fatalf("applied index %d after step %d", applied, index)
		}
		if changed := d.PeersGeneration() != gen; changed != (out.Refusal == nil && out.Outcome != db.PeerUnchanged) {
			t.Fatalf("outcome %q refusal %v moved the peers generation: %v", out.Outcome, out.Refusal, changed)
		}
		return out
	}
	audits := func() int {
		es, err := d.AuditList(ctx, db.AuditFilter{Action: "peer."})
		if err != nil {
			t.Fatal(err)
		}
		return len(es)
	}
	list := func() []*pb.PeerInfo {
		ps, err := d.Peers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return ps
	}

	if out := step(&pb.PeerStep{Action: "add", Peer: peer("ncc", "ncc.crisis.test", "11111", "inv-1")}); out.Outcome != db.PeerAdded || out.Peer.Name != "ncc" {
		t.Fatalf("add: %+v", out)
	}
	if ps := list(); len(ps) != 1 || ps[0].Addresses[0] != "127.0.0.1:7443" || ps[0].Groups[0] != "rijk" || ps[0].AddedBy != "local socket" || string(ps[0].Bundle) != "PEM" {
		t.Fatalf("peers after add: %v", ps)
	}
	if out := step(&pb.PeerStep{Action: "add", Peer: peer("ncc", "ncc.crisis.test", "11111", "inv-1")}); out.Outcome != db.PeerUnchanged {
		t.Fatalf("the same invitation again: %+v", out)
	}
	if n := audits(); n != 1 {
		t.Fatalf("%d audit entries after an add and a repeat, want 1", n)
	}
	out := step(&pb.PeerStep{Action: "add", Peer: peer("ncc", "ncc.crisis.test", "22222", "inv-2")})
	if !errors.Is(out.Refusal, db.ErrPeerOtherBundle) {
		t.Fatalf("another bundle without replace: %+v", out)
	}
	if ps := list(); ps[0].Fingerprint != "11111" {
		t.Fatalf("a refused step changed the peer: %v", ps[0])
	}
	if out := step(&pb.PeerStep{Action: "add", Peer: peer("ncc", "ncc.crisis.test", "11111", "inv-3")}); out.Outcome != db.PeerUpdated {
		t.Fatalf("a new invitation with the same bundle: %+v", out)
	}
	if out := step(&pb.PeerStep{Action: "add", Replace: true, Peer: peer("ncc", "ncc.crisis.test", "22222", "inv-4")}); out.Outcome != db.PeerReplaced || out.Peer.Fingerprint != "22222" {
		t.Fatalf("replace: %+v", out)
	}
	if out := step(&pb.PeerStep{Action: "add", Peer: peer("ncc", "lcvs.crisis.test", "33333", "inv-5")}); !errors.Is(out.Refusal, db.ErrPeerNameTaken) {
		t.Fatalf("a second peer with the name ncc: %+v", out)
	}
	if out := step(&pb.PeerStep{Action: "remove", Peer: &pb.PeerInfo{TrustDomain: "lcvs.crisis.test"}}); !errors.Is(out.Refusal, db.ErrPeerNotFound) {
		t.Fatalf("remove an unknown peer: %+v", out)
	}
	if out := step(&pb.PeerStep{Action: "remove", Peer: &pb.PeerInfo{TrustDomain: "ncc.crisis.test"}, Reason: "test"}); out.Outcome != db.PeerRemoved || out.Peer.Name != "ncc" {
		t.Fatalf("remove: %+v", out)
	}
	if ps := list(); len(ps) != 0 {
		t.Fatalf("peers after remove: %v", ps)
	}
	if n := audits(); n != 4 {
		t.Fatalf("%d audit entries, want 4 (add, update, replace, remove)", n)
	}
	if res, err := d.AuditVerify(ctx, db.AuditAnchor{}); err != nil || res.FirstBroken != 0 {
		t.Fatalf("the audit chain after peer steps: %+v %v", res, err)
	}
}

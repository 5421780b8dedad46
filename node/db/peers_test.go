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

	// A step without a bundle is refused, and the replica goes on.
	nobundle := peer("x", "x.crisis.test", "00000", "inv-0")
	nobundle.Bundle = nil
	if out := step(&pb.PeerStep{Action: "add", Peer: nobundle}); !errors.Is(out.Refusal, db.ErrPeerNoBundle) || len(list()) != 0 {
		t.Fatalf("add without a bundle: %+v, %d peers", out, len(list()))
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
	if out := step(&pb.PeerStep{Action: "leave", Peer: &pb.PeerInfo{TrustDomain: "lcvs.crisis.test"}}); !errors.Is(out.Refusal, db.ErrPeerNotFound) {
		t.Fatalf("an unknown peer leaves: %+v", out)
	}
	// Leaving: the peer stays, marked, and every decision for it moves (Generation).
	gen := d.Generation()
	if out := step(&pb.PeerStep{Action: "leave", Peer: &pb.PeerInfo{TrustDomain: "ncc.crisis.test"}, Reason: "test"}); out.Outcome != db.PeerLeaving || out.Peer.LeavingSince == nil {
		t.Fatalf("leave: %+v", out)
	}
	if d.Generation() == gen {
		t.Fatal("a peer that leaves did not move the generation: its subscriptions would not decide again")
	}
	if leaving, err := d.LeavingPeers(ctx); err != nil || len(leaving) != 1 || leaving["ncc.crisis.test"] {
		t.Fatalf("LeavingPeers = %v, %v after the leave step, want ncc, not from the file", leaving, err)
	}
	if ps := list(); len(ps) != 1 || !ps[0].LeavingSince.AsTime().Equal(at.AsTime()) {
		t.Fatalf("peers while ncc leaves: %v", ps)
	}
	if out := step(&pb.PeerStep{Action: "leave", Peer: &pb.PeerInfo{TrustDomain: "ncc.crisis.test"}}); out.Outcome != db.PeerUnchanged {
		t.Fatalf("a second leave: %+v", out)
	}
	if out := step(&pb.PeerStep{Action: "remove", Peer: &pb.PeerInfo{TrustDomain: "ncc.crisis.test"}, Reason: "test"}); out.Outcome != db.PeerRemoved || out.Peer.Name != "ncc" {
		t.Fatalf("remove: %+v", out)
	}
	if ps := list(); len(ps) != 0 {
		t.Fatalf("peers after remove: %v", ps)
	}
	if leaving, err := d.LeavingPeers(ctx); err != nil || len(leaving) != 0 {
		t.Fatalf("LeavingPeers = %v, %v after the remove", leaving, err)
	}
	// A peer the config file dropped leaves from a step that carries it whole.
	file := peer("ncc", "ncc.crisis.test", "44444", db.LeftConfigFile)
	if out := step(&pb.PeerStep{Action: "leave", Peer: file, Reason: "removed from the config file"}); out.Outcome != db.PeerLeaving || out.Peer.Fingerprint != "44444" {
		t.Fatalf("a config-file peer leaves: %+v", out)
	}
	if leaving, err := d.LeavingPeers(ctx); err != nil || len(leaving) != 1 || !leaving["ncc.crisis.test"] {
		t.Fatalf("LeavingPeers = %v, %v for the config-file peer, want ncc, from the file", leaving, err)
	}
	if n := audits(); n != 6 {
		t.Fatalf("%d audit entries, want 6 (add, update, replace, leave, remove, leave)", n)
	}
	if res, err := d.AuditVerify(ctx, db.AuditAnchor{}); err != nil || res.FirstBroken != 0 {
		t.Fatalf("the audit chain after peer steps: %+v %v", res, err)
	}
}

// TestHoldersOf counts what every holder of one trust domain holds, and nothing of a domain whose
// name the first one's begins with.
func TestHoldersOf(t *testing.T) {
	d := newDB(t)
	apply := func(index uint64, holder, td string, ids ...string) {
		t.Helper()
		c := &pb.RecordDisclosures{Recipient: td, RecipientId: holder, Holder: holder, Via: "Query", At: hour(0), CountHeld: true}
		for _, id := range ids {
			c.Disclosed = append(c.Disclosed, &pb.Disclosure{RecordId: id, Version: 1})
		}
		if err := d.ApplyDisclosures(index, c); err != nil {
			t.Fatal(err)
		}
	}
	apply(1, "spiffe://ncc.crisis.test/node/*", "ncc.crisis.test", "a", "b")
	apply(2, "spiffe://ncc.crisis.test/user/editor", "ncc.crisis.test", "a")
	apply(3, "spiffe://ncc.crisis.test.example/node/*", "ncc.crisis.test.example", "c")
	if n, err := d.HoldersOf(context.Background(), "ncc.crisis.test"); err != nil || n != 3 {
		t.Fatalf("HoldersOf(ncc) = %d, %v; want 3", n, err)
	}
}

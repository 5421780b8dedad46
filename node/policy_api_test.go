package node_test

// The policy lifecycle through a real node over mTLS: officers act as themselves with their own
// SVIDs, the four-eyes rule holds, nobody else (not even the local socket) can take a step, every
// step and phase change is audited under the officer's SPIFFE ID, and explain and preview agree.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/knooppunt/knooppunt/federation/identity"
	"github.com/knooppunt/knooppunt/node"
	"github.com/knooppunt/knooppunt/node/api"
	"github.com/knooppunt/knooppunt/node/config"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

const (
	lcvsTD    = "lcvs.crisis.test"
	nccNodeID = "spiffe://ncc.crisis.test/node/r1"
)

// policyNode is a node of the org lcvs.crisis.test serving mTLS, with two officers, a reader,
// an editor and an admin, and the peer ncc.crisis.test in group rijk.
type policyNode struct {
	n     *node.Node
	td    spiffeid.TrustDomain
	ca    *identity.DevCA
	trust *x509bundle.Bundle
}

func startPolicyNode(t *testing.T) *policyNode {
	t.Helper()
	// The data directory is short: the local socket's path must fit in 108 bytes.
	dir, err := os.MkdirTemp("", "kp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	td := spiffeid.RequireTrustDomainFromString(lcvsTD)
	ca, err := identity.InitCA(td, filepath.Join(dir, "ca"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.IssueFiles(spiffeid.RequireFromPath(td, "/node/r1"), filepath.Join(dir, "certs", "r1"), identity.SVIDOptions{}); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Org, cfg.Name = lcvsTD, "policy-api-test" // a name of its own: metrics are registered by name
	cfg.MetricsAddr = ""
	cfg.Raft.ElectionTimeout = 50 * time.Millisecond
	cfg.Listen = "127.0.0.1:0"
	cfg.Identity = config.Identity{Source: config.SourceFiles,
		CertFile: filepath.Join(dir, "certs", "r1.crt"), KeyFile: filepath.Join(dir, "certs", "r1.key"),
		BundleFile: filepath.Join(dir, "ca", identity.BundleFile)}
	cfg.Roles = []config.RoleBinding{
		{ID: "spiffe://" + lcvsTD + "/user/officer-a", Role: config.RoleOfficer},
		{ID: "spiffe://" + lcvsTD + "/user/officer-b", Role: config.RoleOfficer},
		{ID: "spiffe://" + lcvsTD + "/user/reader", Role: config.RoleReader},
		{ID: "spiffe://" + lcvsTD + "/user/editor", Role: config.RoleEditor},
		{ID: "spiffe://" + lcvsTD + "/user/admin", Role: config.RoleAdmin},
	}
	cfg.Peers = []config.Peer{{Name: "ncc", TrustDomain: "ncc.crisis.test", Groups: []string{"rijk"}}}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	n, err := node.Start(ctx, node.Options{DataDir: filepath.Join(dir, "data"), Config: cfg, Version: "test", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("node.Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := n.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return &policyNode{n: n, td: td, ca: ca, trust: x509bundle.FromX509Authorities(td, []*x509.Certificate{ca.Cert})}
}

// as connects over mTLS with a fresh SVID for spiffe://lcvs.crisis.test/user/NAME.
func (p *policyNode) as(t *testing.T, name string) *grpc.ClientConn {
	t.Helper()
	id := spiffeid.RequireFromPath(p.td, "/user/"+name)
	chain, key, err := p.ca.Issue(id, identity.SVIDOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svid := &x509svid.SVID{ID: id, Certificates: chain, PrivateKey: key}
	conn, err := grpc.NewClient(p.n.Addr().String(), grpc.WithTransportCredentials(identity.ClientCredentials(svid, p.trust, identity.AuthorizeReplica(p.td))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// local connects to the node's local socket, which carries no identity.
func (p *policyNode) local(t *testing.T) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+p.n.SocketPath(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func rpcCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// wantStatus checks a call's gRPC code and message.
// localHint ends a refusal on the local socket of a step a person takes.
const localHint = ", which a person has: call the node over mutual TLS with their SVID (KNOOPPUNT_NODE=HOST:PORT, KNOOPPUNT_SVID_CERT, KNOOPPUNT_SVID_KEY, KNOOPPUNT_BUNDLE; `knooppunt init` printed them)"

func wantStatus(t *testing.T, what string, err error, code codes.Code, msg string) {
	t.Helper()
	if st := status.Convert(err); err == nil || st.Code() != code || st.Message() != msg {
		t.Fatalf("%s: %v\nwant %s: %s", what, err, code, msg)
	}
}

const capacityPolicy = `name: lcvs-capacity-to-ncc
purpose: spreiding en opvang vluchtelingen
recipients: [group:rijk]
kinds: [shelter.capacity]
max_classification: internal
when: record.crisis == "oekraine"
redact: [body.contact_phone]
phases: [lukewarm, warm]
`

func TestPolicyLifecycleOverMTLS(t *testing.T) {
	p := startPolicyNode(t)
	var (
		officerA = "spiffe://" + lcvsTD + "/user/officer-a"
		officerB = "spiffe://" + lcvsTD + "/user/officer-b"
		connA    = p.as(t, "officer-a")
		connB    = p.as(t, "officer-b")
		local    = p.local(t)
	)

	// The editor stores records over mTLS: two the policy covers (one of another crisis), one
	// above its ceiling and one of another kind.
	records := pb.NewRecordServiceClient(p.as(t, "editor"))
	for _, r := range []*pb.Record{
		{Id: "shelter-utrecht", Kind: "shelter.capacity", Crisis: "oekraine", Region: "VR09", Classification: pb.Classification_INTERNAL,
			Body: []byte(`{"municipality":"Utrecht","beds_total":100,"beds_free":14,"contact_phone":"+31 30 000 0000"}`)},
		{Id: "shelter-zeist", Kind: "shelter.capacity", Crisis: "oekraine", Region: "VR09", Classification: pb.Classification_PUBLIC,
			Body: []byte(`{"municipality":"Zeist","beds_total":40,"beds_free":2}`)},
		{Id: "shelter-secret", Kind: "shelter.capacity", Crisis: "oekraine", Region: "VR09", Classification: pb.Classification_CONFIDENTIAL,
			Body: []byte(`{"municipality":"Amersfoort","beds_total":10,"beds_free":1}`)},
		{Id: "shelter-flood", Kind: "shelter.capacity", Crisis: "hoogwater", Region: "VR23", Classification: pb.Classification_PUBLIC,
			Body: []byte(`{"municipality":"Venlo","beds_total":30,"beds_free":30}`)},
		{Id: "sitrep-1", Kind: "sitrep", Crisis: "oekraine", Region: "VR09", Classification: pb.Classification_PUBLIC,
			Body: []byte(`{"title":"Stand van zaken","summary":"rustig"}`)},
	} {
		if _, err := records.Put(rpcCtx(t), &pb.PutRequest{Record: r}); err != nil {
			t.Fatalf("Put %s: %v", r.Id, err)
		}
	}

	// Nobody but an officer proposes: not a reader, an editor or an admin, and not the local
	// socket, whose user has no identity to attribute the step to.
	for _, who := range []string{"reader", "editor", "admin"} {
		_, err := pb.NewPolicyServiceClient(p.as(t, who)).Propose(rpcCtx(t), &pb.ProposeRequest{Source: []byte(capacityPolicy)})
		wantStatus(t, who+" proposes", err, codes.PermissionDenied, "spiffe://"+lcvsTD+"/user/"+who+" may not call PolicyService/Propose: it needs the role officer")
	}
	_, err := pb.NewPolicyServiceClient(local).Propose(rpcCtx(t), &pb.ProposeRequest{Source: []byte(capacityPolicy)})
	wantStatus(t, "the local socket proposes", err, codes.PermissionDenied, "local socket may not call PolicyService/Propose: it needs the role officer"+localHint)

	// Officer A proposes.
	info, err := pb.NewPolicyServiceClient(connA).Propose(rpcCtx(t), &pb.ProposeRequest{Source: []byte(capacityPolicy)})
	if err != nil {
		t.Fatalf("A proposes: %v", err)
	}
	const id = "lcvs-capacity-to-ncc@1"
	if info.Id != id || info.State != "proposed" || info.Active || info.Author != officerA || info.Purpose != "spreiding en opvang vluchtelingen" || info.ApprovalsRequired != 1 {
		t.Fatalf("proposed: %v", info)
	}
	// The same document again is no new version: the officers would approve what waits already.
	_, err = pb.NewPolicyServiceClient(connB).Propose(rpcCtx(t), &pb.ProposeRequest{Source: []byte(capacityPolicy)})
	wantStatus(t, "B proposes the same document", err, codes.AlreadyExists,
		"source: the same document as "+id+", which waits for approval: change the document to propose a new version")
	// A document that does not lint against the node is refused with its problems.
	_, err = pb.NewPolicyServiceClient(connA).Propose(rpcCtx(t), &pb.ProposeRequest{Source: []byte("name: x\npurpose: x\nrecipients: [group:nobody]\nkinds: [sitrep]\nmax_classification: public\n")})
	wantStatus(t, "A proposes a policy for an unknown group", err, codes.InvalidArgument,
		"source: the policy does not lint:\nline 3, column 14: recipients[0]: unknown group \"group:nobody\": no peer of the node is in it (peer list shows each peer's groups)")

	// Four eyes: A cannot approve A's own policy.
	_, err = pb.NewPolicyServiceClient(connA).Approve(rpcCtx(t), &pb.PolicyStepRequest{Id: id})
	wantStatus(t, "A approves", err, codes.PermissionDenied, "the author cannot approve their own policy: another officer must (four eyes)")
	// Nor can anyone who is not an officer, or the local socket.
	for _, who := range []string{"reader", "editor", "admin"} {
		_, err := pb.NewPolicyServiceClient(p.as(t, who)).Approve(rpcCtx(t), &pb.PolicyStepRequest{Id: id})
		wantStatus(t, who+" approves", err, codes.PermissionDenied, "spiffe://"+lcvsTD+"/user/"+who+" may not call PolicyService/Approve: it needs the role officer")
	}
	_, err = pb.NewPolicyServiceClient(local).Approve(rpcCtx(t), &pb.PolicyStepRequest{Id: id})
	wantStatus(t, "the local socket approves", err, codes.PermissionDenied, "local socket may not call PolicyService/Approve: it needs the role officer"+localHint)
	_, err = pb.NewPolicyServiceClient(local).Reject(rpcCtx(t), &pb.PolicyStepRequest{Id: id, Reason: "r"})
	wantStatus(t, "the local socket rejects", err, codes.PermissionDenied, "local socket may not call PolicyService/Reject: it needs the role officer"+localHint)
	_, err = pb.NewPhaseServiceClient(local).Set(rpcCtx(t), &pb.SetPhaseRequest{Crisis: "oekraine", Phase: "warm"})
	wantStatus(t, "the local socket sets a phase", err, codes.PermissionDenied, "local socket may not call PhaseService/Set: it needs the role officer"+localHint)
	_, err = pb.NewPhaseServiceClient(p.as(t, "admin")).Set(rpcCtx(t), &pb.SetPhaseRequest{Crisis: "oekraine", Phase: "warm"})
	wantStatus(t, "the admin sets a phase", err, codes.PermissionDenied, "spiffe://"+lcvsTD+"/user/admin may not call PhaseService/Set: it needs the role officer")

	// None of the refusals changed the policy: it is still proposed, with no approvers.
	got, err := pb.NewPolicyServiceClient(local).Get(rpcCtx(t), &pb.GetPolicyRequest{Id: id})
	if err != nil || got.State != "proposed" || len(got.Approvers) != 0 {
		t.Fatalf("after the refusals: %v, %v", got, err)
	}
	_, err = pb.NewPolicyServiceClient(connB).Approve(rpcCtx(t), &pb.PolicyStepRequest{Id: "lcvs-capacity-to-ncc"})
	wantStatus(t, "B approves a name without a version", err, codes.NotFound,
		"id: \"lcvs-capacity-to-ncc\" names no policy version: give NAME@VERSION, such as "+id+", the one proposed now")
	_, err = pb.NewPolicyServiceClient(connB).Approve(rpcCtx(t), &pb.PolicyStepRequest{Id: "lcvs-capacity-to-ncc@9"})
	wantStatus(t, "B approves a version that is none", err, codes.NotFound, "id: there is no policy lcvs-capacity-to-ncc@9: `policy list` shows the policies and their versions")
	_, err = pb.NewPolicyServiceClient(local).List(rpcCtx(t), &pb.ListPoliciesRequest{State: "aproved"})
	wantStatus(t, "List of a misspelt state", err, codes.InvalidArgument, `state: "aproved" is not a state: use proposed, approved, rejected, revoked, superseded`)
	_, err = pb.NewPolicyServiceClient(connB).Revoke(rpcCtx(t), &pb.PolicyStepRequest{Id: id, Reason: "r"})
	wantStatus(t, "B revokes a proposed policy", err, codes.FailedPrecondition,
		"policy: only an approved policy can be revoked: "+id+" is proposed: reject it instead (policy reject "+id+" --reason …)")
	// A name alone is its newest version; a name or version that is none is refused, naming it.
	if byName, err := pb.NewPolicyServiceClient(local).Get(rpcCtx(t), &pb.GetPolicyRequest{Id: got.Name}); err != nil || byName.Id != id {
		t.Errorf("Get %s: %v, %v; want %s", got.Name, byName.GetId(), err, id)
	}
	_, err = pb.NewPolicyServiceClient(local).Get(rpcCtx(t), &pb.GetPolicyRequest{})
	wantStatus(t, "Get of no id", err, codes.InvalidArgument, "id: missing: give NAME, or NAME@VERSION")
	_, err = pb.NewPolicyServiceClient(local).Get(rpcCtx(t), &pb.GetPolicyRequest{Id: "geen-beleid"})
	wantStatus(t, "Get of a name that is none", err, codes.NotFound, "id: no policy is named \"geen-beleid\": `policy list` shows the policies")
	_, err = pb.NewPolicyServiceClient(local).Get(rpcCtx(t), &pb.GetPolicyRequest{Id: got.Name + "@9"})
	wantStatus(t, "Get of a version that is none", err, codes.NotFound, "id: there is no policy "+got.Name+"@9: `policy list` shows the policies and their versions")
	// Not active, so nothing is shared yet; the verdict says why.
	explain := func(recordID string) *pb.ExplainResponse {
		t.Helper()
		resp, err := pb.NewPolicyServiceClient(local).Explain(rpcCtx(t), &pb.ExplainRequest{RecordId: recordID, Recipient: nccNodeID})
		if err != nil {
			t.Fatalf("Explain %s: %v", recordID, err)
		}
		return resp
	}
	if e := explain("shelter-utrecht"); e.Allow || len(e.Verdicts) != 1 || e.Verdicts[0].Reason != "not active: proposed" {
		t.Fatalf("Explain before approval: %v", e)
	}

	// A preview shows what the proposal would share once approved, in the phase asked for.
	draft, err := pb.NewPolicyServiceClient(connB).Preview(rpcCtx(t), &pb.PreviewRequest{Id: id, Recipient: nccNodeID, Phase: "warm"})
	if err != nil {
		t.Fatalf("Preview of the proposal: %v", err)
	}
	var draftIDs []string
	for _, it := range draft.Items {
		draftIDs = append(draftIDs, it.Record.Id)
	}
	if !slices.Equal(draftIDs, []string{"shelter-utrecht", "shelter-zeist"}) || draft.Total != 2 {
		t.Fatalf("Preview of the proposal lists %v (total %d)", draftIDs, draft.Total)
	}
	// The peer's name or trust domain stands for its node; a group or an unknown name is refused,
	// saying what to give instead.
	for _, to := range []string{"ncc", "ncc.crisis.test"} {
		if pv, err := pb.NewPolicyServiceClient(connB).Preview(rpcCtx(t), &pb.PreviewRequest{Id: id, Recipient: to, Phase: "warm"}); err != nil || pv.Total != 2 {
			t.Errorf("Preview for %q: total %d, %v; want 2, as for %s", to, pv.GetTotal(), err, nccNodeID)
		}
	}
	for limit, want := range map[int32]string{-5: "limit: -5 is negative", 5000: "limit: 5000 is over the limit of 1000"} {
		_, err := pb.NewPolicyServiceClient(connB).Preview(rpcCtx(t), &pb.PreviewRequest{Id: id, Recipient: nccNodeID, Phase: "warm", Limit: limit})
		if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.HasPrefix(st.Message(), want) {
			t.Errorf("Preview of %d records: %v, want InvalidArgument %s…", limit, err, want)
		}
	}
	for to, want := range map[string]string{"group:rijk": `recipient: "group:rijk" is a group`, "nergens": `recipient: "nergens" is neither a peer's name nor a SPIFFE ID`} {
		_, err := pb.NewPolicyServiceClient(connB).Preview(rpcCtx(t), &pb.PreviewRequest{Id: id, Recipient: to, Phase: "warm"})
		if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.HasPrefix(st.Message(), want) {
			t.Errorf("Preview for %q: %v, want InvalidArgument %s…", to, err, want)
		}
	}
	// A draft that accepts one purpose previews the records for that purpose and none for
	// another, and explains why.
	for purpose, want := range map[string]int64{"opvang": 2, "anders": 0, "": 0} {
		pv, err := pb.NewPolicyServiceClient(connB).Preview(rpcCtx(t), &pb.PreviewRequest{
			Source: []byte(capacityPolicy + "accept_purposes: [opvang]\n"), Recipient: nccNodeID, Phase: "warm", Purpose: purpose})
		if err != nil || pv.Total != want {
			t.Fatalf("Preview of a draft accepting opvang, stating %q: total %d (%v), want %d", purpose, pv.GetTotal(), err, want)
		}
	}

	// Officer B approves: the policy is approved, but limited to phases the crisis is not in.
	info, err = pb.NewPolicyServiceClient(connB).Approve(rpcCtx(t), &pb.PolicyStepRequest{Id: id})
	if err != nil {
		t.Fatalf("B approves: %v", err)
	}
	if info.State != "approved" || info.Active || !slices.Equal(info.Approvers, []string{officerB}) || info.DecidedBy != officerB {
		t.Fatalf("approved: %v", info)
	}
	_, err = pb.NewPolicyServiceClient(connB).Approve(rpcCtx(t), &pb.PolicyStepRequest{Id: id})
	wantStatus(t, "B approves again", err, codes.FailedPrecondition, "policy: only a proposed policy can be approved or rejected: lcvs-capacity-to-ncc@1 is approved")
	_, err = pb.NewPolicyServiceClient(connA).Propose(rpcCtx(t), &pb.ProposeRequest{Source: []byte(capacityPolicy)})
	wantStatus(t, "A proposes the approved document again", err, codes.AlreadyExists,
		"source: the same document as "+id+", which is approved: change the document to propose a new version")
	// A name alone is refused with the version a revocation is for: the one in force (review L, L8).
	_, err = pb.NewPolicyServiceClient(connB).Revoke(rpcCtx(t), &pb.PolicyStepRequest{Id: "lcvs-capacity-to-ncc", Reason: "r"})
	wantStatus(t, "B revokes a name without a version", err, codes.NotFound,
		"id: \"lcvs-capacity-to-ncc\" names no policy version: give NAME@VERSION, such as "+id+", the one approved now")
	if e := explain("shelter-utrecht"); e.Allow || e.Phase != "cold" || e.Verdicts[0].Reason != "limited to phases lukewarm, warm; the crisis is cold" {
		t.Fatalf("Explain in the cold phase: %v", e)
	}

	// Officer B sets the crisis warm: the policy is active.
	// A phase change starts or stops every policy limited to phases: it needs a reason.
	_, err = pb.NewPhaseServiceClient(connB).Set(rpcCtx(t), &pb.SetPhaseRequest{Crisis: "oekraine", Phase: "warm", Reason: " "})
	wantStatus(t, "B sets a phase without a reason", err, codes.InvalidArgument, "reason: missing: say why the phase changes; the audit log keeps it with the step")
	// A reason of megabytes would make every list of phases, and the audit log, too large for a
	// client to take: refused, as for every step, and nothing is set.
	_, err = pb.NewPhaseServiceClient(connB).Set(rpcCtx(t), &pb.SetPhaseRequest{Crisis: "oekraine", Phase: "warm", Reason: strings.Repeat("x", 20<<20)})
	wantStatus(t, "B sets a phase with a reason of 20 MiB", err, codes.InvalidArgument, "reason: 20971520 bytes is over the limit of 2000: say it shorter")
	_, err = pb.NewPolicyServiceClient(connB).Revoke(rpcCtx(t), &pb.PolicyStepRequest{Id: id, Reason: "   "})
	wantStatus(t, "B revokes with a reason of spaces", err, codes.InvalidArgument, "reason: missing: say why the policy is revoked")
	// A reason the REST API could not marshal, or that rewrites a terminal, is refused (review
	// AF, AF2); line breaks are text.
	_, err = pb.NewPolicyServiceClient(connB).Revoke(rpcCtx(t), &pb.PolicyStepRequest{Id: id, Reason: "ab\xff\xfecd"})
	wantStatus(t, "B revokes with a reason of invalid UTF-8", err, codes.InvalidArgument, "reason: not valid UTF-8: write it as plain text")
	_, err = pb.NewPhaseServiceClient(connB).Set(rpcCtx(t), &pb.SetPhaseRequest{Crisis: "oekraine", Phase: "warm", Reason: "op\nschaling \x1b[31m"})
	wantStatus(t, "B sets a phase with an escape in the reason", err, codes.InvalidArgument, "reason: holds a control or invisible character (U+001B) at byte 12: write it as plain text")
	ph, err := pb.NewPhaseServiceClient(connB).Set(rpcCtx(t), &pb.SetPhaseRequest{Crisis: "oekraine", Phase: "warm", Reason: "opschaling"})
	if err != nil || ph.SetBy != officerB || ph.Phase != "warm" {
		t.Fatalf("B sets the phase: %v, %v", ph, err)
	}
	if got, err := pb.NewPolicyServiceClient(connA).Get(rpcCtx(t), &pb.GetPolicyRequest{Id: id}); err != nil || !got.Active {
		t.Fatalf("in the warm phase: %v, %v", got, err)
	}

	// Explain and preview agree on every record of the node: the records the preview lists
	// are exactly those explain allows, with the same redactions.
	prev, err := pb.NewPolicyServiceClient(connA).Preview(rpcCtx(t), &pb.PreviewRequest{Id: id, Recipient: nccNodeID})
	if err != nil {
		t.Fatalf("Preview: %v", err)
	}
	previewed := map[string]*pb.PreviewItem{}
	for _, it := range prev.Items {
		previewed[it.Record.Id] = it
	}
	allowed := map[string]bool{}
	for _, rid := range []string{"shelter-utrecht", "shelter-zeist", "shelter-secret", "shelter-flood", "sitrep-1"} {
		e := explain(rid)
		it, listed := previewed[rid]
		if e.Allow != listed {
			t.Errorf("%s: explain allows %v, preview lists it %v", rid, e.Allow, listed)
			continue
		}
		if e.Allow {
			allowed[rid] = true
			if !slices.Equal(e.Redacted, it.Redacted) || !slices.Equal(e.Policies, []string{id}) {
				t.Errorf("%s: explain redacts %v by %v, preview redacts %v", rid, e.Redacted, e.Policies, it.Redacted)
			}
		}
	}
	if len(allowed) != 2 || !allowed["shelter-utrecht"] || !allowed["shelter-zeist"] || prev.Total != 2 || prev.Considered != 4 {
		t.Fatalf("shared %v; preview total %d of %d considered", allowed, prev.Total, prev.Considered)
	}
	var body map[string]any
	if err := json.Unmarshal(previewed["shelter-utrecht"].Record.Body, &body); err != nil {
		t.Fatal(err)
	}
	if _, ok := body["contact_phone"]; ok || body["beds_free"] != 14.0 || !slices.Equal(previewed["shelter-utrecht"].Redacted, []string{"body.contact_phone"}) {
		t.Fatalf("previewed body %v, redacted %v", body, previewed["shelter-utrecht"].Redacted)
	}
	if e := explain("shelter-secret"); e.Verdicts[0].Reason != "record is confidential, above the ceiling internal" {
		t.Fatalf("Explain of a confidential record: %v", e)
	}
	// The other crisis is still cold; were it warm, the condition would keep its record home.
	if e := explain("shelter-flood"); e.Verdicts[0].Reason != "limited to phases lukewarm, warm; the crisis is cold" {
		t.Fatalf("Explain of another crisis's record: %v", e)
	}
	e, err := pb.NewPolicyServiceClient(local).Explain(rpcCtx(t), &pb.ExplainRequest{RecordId: "shelter-flood", Recipient: nccNodeID, Phase: "warm"})
	if err != nil || e.Allow || e.Phase != "warm" || e.Verdicts[0].Reason != "when is false" {
		t.Fatalf("Explain of another crisis's record as if warm: %v, %v", e, err)
	}

	// A record that is none is refused naming it, and saying what explain decides on.
	_, err = pb.NewPolicyServiceClient(local).Explain(rpcCtx(t), &pb.ExplainRequest{RecordId: "geen-record", Recipient: nccNodeID})
	wantStatus(t, "Explain of a record that is none", err, codes.NotFound,
		"record_id: this node has no record \"geen-record\" of its own: explain decides on the node's own records, as its policies share them (`record list` shows them)")

	// A reader may not explain or preview: those show what exists.
	_, err = pb.NewPolicyServiceClient(p.as(t, "reader")).Explain(rpcCtx(t), &pb.ExplainRequest{RecordId: "shelter-utrecht", Recipient: nccNodeID})
	wantStatus(t, "the reader explains", err, codes.PermissionDenied, "spiffe://"+lcvsTD+"/user/reader may not call PolicyService/Explain: it needs the role officer or admin")

	// The audit log holds each step under the officer who took it, and no refused step.
	audit := pb.NewAuditServiceClient(connA)
	list, err := audit.List(rpcCtx(t), &pb.ListAuditRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var trail []string
	for _, e := range list.Entries {
		trail = append(trail, e.Action+" "+e.Subject+" by "+e.Actor)
	}
	want := []string{
		"policy.propose " + id + " by " + officerA,
		"policy.approve " + id + " by " + officerB,
		"phase.set oekraine by " + officerB,
	}
	if !slices.Equal(trail, want) {
		t.Fatalf("audit trail\n %q\nwant\n %q", trail, want)
	}
	if d := list.Entries[2].Detail; d != `{"from":"","reason":"opschaling","to":"warm"}` {
		t.Fatalf("phase.set detail %s", d)
	}
	// Propose and approve say what the document grants, and tie it to its source by hash: what
	// one officer proposed is what the other approved.
	sum := sha256.Sum256([]byte(capacityPolicy))
	hash := hex.EncodeToString(sum[:])
	for i, want := range []string{
		`{"kinds":["shelter.capacity"],"max_classification":"internal","phases":["lukewarm","warm"],"purpose":"spreiding en opvang vluchtelingen",` +
			`"recipients":["group:rijk"],"redact":["body.contact_phone"],"sha256":"` + hash + `","when":"record.crisis == \"oekraine\""}`,
		`{"active":true,"approvals":1,"max_classification":"internal","phases":["lukewarm","warm"],"redact":["body.contact_phone"],"required":1,` +
			`"sha256":"` + hash + `","when":"record.crisis == \"oekraine\""}`,
	} {
		if d := list.Entries[i].Detail; d != want {
			t.Errorf("%s detail\n %s\nwant\n %s", list.Entries[i].Action, d, want)
		}
	}
	v, err := audit.Verify(rpcCtx(t), &pb.VerifyAuditRequest{})
	if err != nil || !v.Ok || v.Entries != 3 || v.FirstBroken != 0 || v.Problem != "" {
		t.Fatalf("audit verify = %v, %v", v, err)
	}
	if v.Head.GetSeq() != 3 || !bytes.Equal(v.Head.GetHash(), list.Entries[2].Hash) {
		t.Fatalf("audit verify head = %v, want entry 3 and its hash", v.Head)
	}
	// The head, kept elsewhere, is an anchor for a later verify.
	if v, err := audit.Verify(rpcCtx(t), &pb.VerifyAuditRequest{Anchor: v.Head}); err != nil || !v.Ok {
		t.Fatalf("audit verify against its own head = %v, %v", v, err)
	}
	other := &pb.AuditAnchor{Seq: 2, Hash: list.Entries[1].PrevHash} // a hash, but not entry 2's
	if v, err := audit.Verify(rpcCtx(t), &pb.VerifyAuditRequest{Anchor: other}); err != nil || v.Ok || v.FirstBroken != 2 ||
		!strings.Contains(v.Problem, "the chain was rewritten from this entry or before it") {
		t.Fatalf("audit verify against another hash = %v, %v", v, err)
	}
	for _, bad := range []struct {
		anchor *pb.AuditAnchor
		field  string
	}{
		{&pb.AuditAnchor{Seq: 0, Hash: v.Head.Hash}, "anchor.seq"},
		{&pb.AuditAnchor{Seq: 3, Hash: v.Head.Hash[:5]}, "anchor.hash"},
	} {
		_, err := audit.Verify(rpcCtx(t), &pb.VerifyAuditRequest{Anchor: bad.anchor})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), bad.field) {
			t.Fatalf("audit verify with anchor %v = %v, want InvalidArgument naming %s", bad.anchor, err, bad.field)
		}
	}

	// Any officer may revoke; then nothing is shared any more.
	if info, err := pb.NewPolicyServiceClient(connA).Revoke(rpcCtx(t), &pb.PolicyStepRequest{Id: id, Reason: "doel bereikt"}); err != nil || info.State != "revoked" || info.Active {
		t.Fatalf("A revokes: %v, %v", info, err)
	}
	if e := explain("shelter-utrecht"); e.Allow || e.Verdicts[0].Reason != "not active: revoked" {
		t.Fatalf("Explain after revocation: %v", e)
	}
}

// TestApprovingAnOlderVersionIsRefused: while a newer version of a policy waits for approval
// (one that mends a redaction, say), the older one cannot be approved: the refusal names the
// newer one and what to do. Once the newer one is rejected, the older one can be.
func TestApprovingAnOlderVersionIsRefused(t *testing.T) {
	p := startPolicyNode(t)
	a, b := pb.NewPolicyServiceClient(p.as(t, "officer-a")), pb.NewPolicyServiceClient(p.as(t, "officer-b"))
	mended := strings.Replace(capacityPolicy, "redact: [body.contact_phone]", "redact: [body.contact_phone, body.notes]", 1)
	for _, src := range []string{capacityPolicy, mended} {
		if _, err := a.Propose(rpcCtx(t), &pb.ProposeRequest{Source: []byte(src)}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := b.Approve(rpcCtx(t), &pb.PolicyStepRequest{Id: "lcvs-capacity-to-ncc@1"})
	if st := status.Convert(err); st.Code() != codes.FailedPrecondition || !strings.HasPrefix(st.Message(), "lcvs-capacity-to-ncc@2 is a newer proposal of lcvs-capacity-to-ncc (by spiffe://"+lcvsTD+"/user/officer-a, ") ||
		!strings.HasSuffix(st.Message(), "approve that one, or reject it first with `policy reject lcvs-capacity-to-ncc@2 --reason …`") {
		t.Fatalf("B approves @1 while @2 waits: %v", err)
	}
	if got, err := b.Get(rpcCtx(t), &pb.GetPolicyRequest{Id: "lcvs-capacity-to-ncc@1"}); err != nil || got.State != "proposed" || len(got.Approvers) != 0 {
		t.Fatalf("@1 after the refusal: %v %v", got, err)
	}
	if _, err := b.Reject(rpcCtx(t), &pb.PolicyStepRequest{Id: "lcvs-capacity-to-ncc@2", Reason: "te streng"}); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Approve(rpcCtx(t), &pb.PolicyStepRequest{Id: "lcvs-capacity-to-ncc@1"}); err != nil || got.State != "approved" {
		t.Fatalf("B approves @1 once @2 is rejected: %v %v", got, err)
	}
}

// TestPreviewSaysWhichRedactionsWithholdNothing: a preview names the redact paths that no record
// the policy grants has (a misspelt field goes out whole), and those that another approved
// policy voids by granting the same records without withholding them.
func TestPreviewSaysWhichRedactionsWithholdNothing(t *testing.T) {
	p := startPolicyNode(t)
	a, b := pb.NewPolicyServiceClient(p.as(t, "officer-a")), pb.NewPolicyServiceClient(p.as(t, "officer-b"))
	if _, err := pb.NewRecordServiceClient(p.as(t, "editor")).Put(rpcCtx(t), &pb.PutRequest{Record: &pb.Record{Id: "shelter-utrecht", Kind: "shelter.capacity",
		Crisis: "oekraine", Region: "VR09", Classification: pb.Classification_INTERNAL,
		Body: []byte(`{"municipality":"Utrecht","beds_total":100,"beds_free":14,"contact_phone":"+31 30 000 0000"}`)}}); err != nil {
		t.Fatal(err)
	}
	preview := func(req *pb.PreviewRequest) *pb.PreviewResponse {
		t.Helper()
		req.Recipient, req.Phase = nccNodeID, "warm"
		resp, err := b.Preview(rpcCtx(t), req)
		if err != nil || resp.Total != 1 {
			t.Fatalf("preview: %v %v", resp, err)
		}
		return resp
	}
	misspelt := strings.Replace(capacityPolicy, "redact: [body.contact_phone]", "redact: [body.contact_phon]", 1)
	if got := preview(&pb.PreviewRequest{Source: []byte(misspelt)}); !slices.Equal(got.UnmatchedRedactions, []string{"body.contact_phon"}) || len(got.VoidedRedactions) != 0 {
		t.Errorf("a misspelt redaction: unmatched %v, voided %v; want body.contact_phon unmatched", got.UnmatchedRedactions, got.VoidedRedactions)
	}
	approve := func(src string) string {
		t.Helper()
		info, err := a.Propose(rpcCtx(t), &pb.ProposeRequest{Source: []byte(src)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Approve(rpcCtx(t), &pb.PolicyStepRequest{Id: info.Id}); err != nil {
			t.Fatal(err)
		}
		return info.Id
	}
	narrow := approve(capacityPolicy)
	if got := preview(&pb.PreviewRequest{Id: narrow}); len(got.UnmatchedRedactions) != 0 || len(got.VoidedRedactions) != 0 {
		t.Errorf("the policy alone: unmatched %v, voided %v; want none", got.UnmatchedRedactions, got.VoidedRedactions)
	}
	broad := approve(strings.NewReplacer("name: lcvs-capacity-to-ncc", "name: lcvs-capacity-whole", "redact: [body.contact_phone]\n", "", "phases: [lukewarm, warm]\n", "").Replace(capacityPolicy))
	got := preview(&pb.PreviewRequest{Id: narrow})
	if !slices.Equal(got.VoidedRedactions, []string{"body.contact_phone"}) || !slices.Equal(got.OverridingPolicies, []string{broad}) {
		t.Errorf("with %s approved too: voided %v by %v, want body.contact_phone by %s", broad, got.VoidedRedactions, got.OverridingPolicies, broad)
	}
}

// TestRecordDeletesAndReclassificationsAreAudited: the two writes that change who may receive a
// record, a delete and a change of classification, are in the audit log with the person who
// made them; other writes are not.
func TestRecordDeletesAndReclassificationsAreAudited(t *testing.T) {
	p := startPolicyNode(t)
	records := pb.NewRecordServiceClient(p.as(t, "editor"))
	editor := "spiffe://" + lcvsTD + "/user/editor"
	put := func(class pb.Classification, body string) {
		t.Helper()
		if _, err := records.Put(rpcCtx(t), &pb.PutRequest{Record: &pb.Record{Id: "sitrep-geheim", Kind: "sitrep", Crisis: "oekraine", Region: "VR09",
			Classification: class, Body: []byte(`{"title":"Beeld","summary":"` + body + `"}`)}}); err != nil {
			t.Fatal(err)
		}
	}
	put(pb.Classification_CONFIDENTIAL, "eerste")
	put(pb.Classification_CONFIDENTIAL, "tweede") // the same classification: not audited
	put(pb.Classification_PUBLIC, "openbaar")     // declassified
	if _, err := records.Delete(rpcCtx(t), &pb.DeleteRequest{Id: "sitrep-geheim"}); err != nil {
		t.Fatal(err)
	}
	list, err := pb.NewAuditServiceClient(p.local(t)).List(rpcCtx(t), &pb.ListAuditRequest{Action: "record."})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range list.Entries {
		got = append(got, e.Action+" "+e.Subject+" by "+e.Actor+" "+e.Detail)
	}
	want := []string{
		"record.classify sitrep-geheim by " + editor + ` {"classification":"public","crisis":"oekraine","from":"confidential","kind":"sitrep","version":3}`,
		"record.delete sitrep-geheim by " + editor + ` {"classification":"public","crisis":"oekraine","kind":"sitrep","version":4}`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("the audit log's record entries:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if v, err := pb.NewAuditServiceClient(p.local(t)).Verify(rpcCtx(t), &pb.VerifyAuditRequest{}); err != nil || !v.Ok {
		t.Fatalf("Verify: %v %v", v, err)
	}
}

// TestActiveCountsOnlyCrisesThatRecordsName: a policy limited to phases is active when a crisis
// that records name is in one of them; a phase set for a crisis nothing names (a typo) does not
// make it read as active, and neither does an exercise's phase.
func TestActiveCountsOnlyCrisesThatRecordsName(t *testing.T) {
	p := startPolicyNode(t)
	a, b := pb.NewPolicyServiceClient(p.as(t, "officer-a")), pb.NewPolicyServiceClient(p.as(t, "officer-b"))
	if _, err := pb.NewRecordServiceClient(p.as(t, "editor")).Put(rpcCtx(t), &pb.PutRequest{Record: &pb.Record{Id: "shelter-utrecht", Kind: "shelter.capacity",
		Crisis: "oekraine", Region: "VR09", Classification: pb.Classification_INTERNAL, Body: []byte(`{"municipality":"Utrecht","beds_total":100,"beds_free":14}`)}}); err != nil {
		t.Fatal(err)
	}
	info, err := a.Propose(rpcCtx(t), &pb.ProposeRequest{Source: []byte(capacityPolicy)}) // phases: [lukewarm, warm]
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Approve(rpcCtx(t), &pb.PolicyStepRequest{Id: info.Id}); err != nil {
		t.Fatal(err)
	}
	active := func() bool {
		t.Helper()
		got, err := b.Get(rpcCtx(t), &pb.GetPolicyRequest{Id: info.Id})
		if err != nil {
			t.Fatal(err)
		}
		return got.Active
	}
	phases := pb.NewPhaseServiceClient(p.as(t, "officer-b"))
	// A phase for an exercise that was never started is refused at the exercise field.
	_, err = phases.Set(rpcCtx(t), &pb.SetPhaseRequest{Crisis: "oekraine", Exercise: "oef-1", Phase: "warm", Reason: "test"})
	if field, reason := api.Field(err); status.Code(err) != codes.FailedPrecondition || field != "exercise" || reason != "no such exercise: oef-1: start it first (knooppunt exercise list shows the open ones)" {
		t.Errorf("a phase in an exercise never started: %v (field %q)", err, field)
	}
	if _, err := pb.NewExerciseServiceClient(p.as(t, "officer-b")).Start(rpcCtx(t), &pb.ExerciseStepRequest{Name: "oef-1", Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		crisis, exercise string
		want             bool
	}{{"", "", false}, {"oekriane", "", false}, {"oekraine", "oef-1", false}, {"oekraine", "", true}} {
		if step.crisis != "" {
			if _, err := phases.Set(rpcCtx(t), &pb.SetPhaseRequest{Crisis: step.crisis, Exercise: step.exercise, Phase: "warm", Reason: "test"}); err != nil {
				t.Fatal(err)
			}
		}
		if got := active(); got != step.want {
			t.Errorf("after %q is warm (exercise %q): active %v, want %v", step.crisis, step.exercise, got, step.want)
		}
	}
	// Once closed, its phases stand: said of phases, not of records.
	if _, err := pb.NewExerciseServiceClient(p.as(t, "officer-b")).Close(rpcCtx(t), &pb.ExerciseStepRequest{Name: "oef-1", Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	_, err = phases.Set(rpcCtx(t), &pb.SetPhaseRequest{Crisis: "oekraine", Exercise: "oef-1", Phase: "cold", Reason: "test"})
	if field, reason := api.Field(err); status.Code(err) != codes.FailedPrecondition || field != "exercise" || reason != "the exercise is closed: oef-1: its phases stand as they were; set them in an open exercise" {
		t.Errorf("a phase in a closed exercise: %v (field %q)", err, field)
	}
}

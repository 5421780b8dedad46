package federation_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/knooppunt/knooppunt/federation/fedtest"
	"github.com/knooppunt/knooppunt/federation/identity"
	"github.com/knooppunt/knooppunt/federation/witness"
	"github.com/knooppunt/knooppunt/node/db"
	"github.com/knooppunt/knooppunt/node/proctest"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// verifyWitnessed runs `audit verify --witnesses` on the org's node.
func verifyWitnessed(t *testing.T, o *fedtest.Org) *pb.VerifyAuditResponse {
	t.Helper()
	resp, err := pb.NewAuditServiceClient(o.Local(t)).Verify(fedtest.Call(t), &pb.VerifyAuditRequest{Witnesses: true})
	if err != nil {
		t.Fatalf("%s: audit verify --witnesses: %v", o.Name, err)
	}
	return resp
}

// rewriteChain rewrites the whole audit chain in the database file at path, as someone with
// write access to it could with the node stopped: the first entry's detail changes, and every
// hash after it is recomputed, so that the chain verifies on its own.
func rewriteChain(t *testing.T, path string) {
	t.Helper()
	h, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	tx, err := h.Begin()
	if err != nil {
		t.Fatal(err)
	}
	rows, err := tx.Query(`SELECT seq, at, actor, action, subject, detail FROM audit ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	// The canonical encoding of an entry, which its hash covers (node/db/audit.go).
	type canonical struct {
		Seq     int64  `json:"seq"`
		At      int64  `json:"at"`
		Actor   string `json:"actor"`
		Action  string `json:"action"`
		Subject string `json:"subject"`
		Detail  string `json:"detail"`
	}
	var entries []canonical
	for rows.Next() {
		var e canonical
		if err := rows.Scan(&e.Seq, &e.At, &e.Actor, &e.Action, &e.Subject, &e.Detail); err != nil {
			t.Fatal(err)
		}
		entries = append(entries, e)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	entries[0].Detail = `{"rewritten":true}`
	prev := make([]byte, sha256.Size)
	for _, e := range entries {
		b, _ := json.Marshal(e)
		sum := sha256.Sum256(append(append([]byte{}, prev...), b...))
		if _, err := tx.Exec(`UPDATE audit SET detail = ?, prev_hash = ?, hash = ? WHERE seq = ?`, e.Detail, prev, sum[:], e.Seq); err != nil {
			t.Fatal(err)
		}
		prev = sum[:]
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// TestWitnessesCatchARewrittenChain: a node hands its signed audit head to its peers after a
// policy step; `audit verify --witnesses` then finds the chain in line with every witness. Its
// chain rewritten whole in the database file, with the node stopped, still verifies on its own,
// but verify --witnesses fails, naming each witness and the entry of the head it holds.
func TestWitnessesCatchARewrittenChain(t *testing.T) {
	f := fedtest.Start(t, fedtest.Options{Orgs: 3, WitnessInterval: time.Hour})
	a, b := f.Orgs[0], f.Orgs[1]
	a.Approve(t, policyDoc("sitreps-to-b", spiffeOf(b), "sitrep", "internal", ""))
	head, err := pb.NewAuditServiceClient(a.Local(t)).Verify(fedtest.Call(t), &pb.VerifyAuditRequest{})
	if err != nil {
		t.Fatal(err)
	}
	fedtest.Eventually(t, 10*time.Second, "b and c witness a's head after the policy step", func() (bool, string) {
		resp := verifyWitnessed(t, a)
		ok := resp.Ok && len(resp.Witnesses) == 2
		for _, w := range resp.Witnesses {
			ok = ok && w.State == witness.OK && w.Heads >= 1
		}
		return ok, fmt.Sprintf("verify: ok %v, witnesses %v (head %d)", resp.Ok, resp.Witnesses, head.Head.GetSeq())
	})

	a.Stop(t)
	rewriteChain(t, filepath.Join(a.DataDir(), "knooppunt.db"))
	a.Start(t)
	plain, err := pb.NewAuditServiceClient(a.Local(t)).Verify(fedtest.Call(t), &pb.VerifyAuditRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if !plain.Ok {
		t.Fatalf("the rewritten chain does not verify on its own (%s): the test must rewrite it consistently", plain.Problem)
	}
	resp := verifyWitnessed(t, a)
	if resp.Ok || resp.FirstBroken < 1 {
		t.Fatalf("verify --witnesses of the rewritten chain: ok %v, first broken %d; want a failure", resp.Ok, resp.FirstBroken)
	}
	for _, w := range resp.Witnesses {
		if w.State != witness.Rewritten || w.Seq < 1 || !strings.Contains(w.Problem, "witness "+w.Peer) || !strings.Contains(w.Problem, fmt.Sprintf("entry %d", w.Seq)) {
			t.Errorf("witness %s: %s at %d (%s); want rewritten, naming the witness and the entry", w.Peer, w.State, w.Seq, w.Problem)
		}
	}
	if !strings.Contains(resp.Problem, "witness ") || !strings.Contains(resp.Problem, fmt.Sprintf("entry %d", resp.FirstBroken)) {
		t.Errorf("verify's problem %q does not name the witness and entry %d", resp.Problem, resp.FirstBroken)
	}
}

// TestWitnessKeepsForksAsEvidence: a head signed by a peer's replica for an entry it signed
// another head for, or below a head it signed before, is kept as evidence of a fork: the signer
// is told, the witness audits audit.fork and counts it. A head whose signature does not verify,
// or that another org signed, is refused and not kept.
func TestWitnessKeepsForksAsEvidence(t *testing.T) {
	f := fedtest.Start(t, fedtest.Options{Orgs: 3, WitnessInterval: time.Hour})
	a, b, c := f.Orgs[0], f.Orgs[1], f.Orgs[2]
	forks := func() float64 {
		return b.Metric(t, "knooppunt_audit_forks_total", map[string]string{"peer": a.TD.Name()})
	}
	before := forks()
	fc := pb.NewFederationServiceClient(asPeer(t, a, b))
	const seq = 1 << 40 // above any head a's node hands out itself meanwhile
	sign := func(seq int64, fill byte) *pb.SignedHead {
		h, err := witness.Sign(a.Replica, seq, bytes.Repeat([]byte{fill}, sha256.Size), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	if _, err := fc.Witness(fedtest.Call(t), &pb.WitnessRequest{Head: sign(seq, 1)}); err != nil {
		t.Fatalf("the first head for entry %d: %v", seq, err)
	}
	if _, err := fc.Witness(fedtest.Call(t), &pb.WitnessRequest{Head: sign(seq, 1)}); err != nil {
		t.Fatalf("the same head again: %v", err)
	}
	for _, h := range []*pb.SignedHead{sign(seq, 2), sign(seq-1, 3)} {
		_, err := fc.Witness(fedtest.Call(t), &pb.WitnessRequest{Head: h})
		if status.Code(err) != codes.FailedPrecondition || !strings.Contains(status.Convert(err).Message(), "fork") {
			t.Fatalf("a forking head for entry %d: %v, want FAILED_PRECONDITION naming the fork", h.Seq, err)
		}
	}
	var got []string
	for _, e := range b.Audit(t, db.AuditFork) {
		if e.Subject == a.TD.Name() && e.Actor == a.Replica.ID.String() {
			got = append(got, e.Detail)
		}
	}
	if len(got) != 2 || !strings.Contains(got[0], "a second head for entry") || !strings.Contains(got[1], "below entry") {
		t.Fatalf("b audited the forks of a as %v, want a second head, then a lower one", got)
	}
	if n := forks() - before; n != 2 {
		t.Fatalf("knooppunt_audit_forks_total{peer=a} grew by %g, want 2", n)
	}
	heads, err := fc.Heads(fedtest.Call(t), &pb.HeadsRequest{AfterSeq: seq - 2})
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, h := range heads.Heads {
		kept = append(kept, fmt.Sprintf("%d:%x:%v", h.Head.Seq-seq, h.Head.Hash[0], h.Fork))
	}
	if strings.Join(kept, " ") != "-1:3:true 0:1:false 0:2:true" {
		t.Fatalf("b keeps a's heads %v, want the lower one and the second kept as forks beside the first", kept)
	}

	// Refused: a signature that does not verify, and a head signed by another org's replica.
	bad := sign(seq+1, 4)
	bad.Signature[len(bad.Signature)-1] ^= 1
	other, err := witness.Sign(c.Replica, seq+1, bytes.Repeat([]byte{5}, sha256.Size), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for what, h := range map[string]*pb.SignedHead{"a bad signature": bad, "c's head": other} {
		if _, err := fc.Witness(fedtest.Call(t), &pb.WitnessRequest{Head: h}); status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: %v, want INVALID_ARGUMENT", what, err)
		}
	}
	if heads, err := fc.Heads(fedtest.Call(t), &pb.HeadsRequest{AfterSeq: seq}); err != nil || len(heads.Heads) != 0 {
		t.Fatalf("b keeps %v (%v) after the refused heads, want none", heads.GetHeads(), err)
	}
}

// TestANodeIsToldItsChainIsDisputed: a witness that keeps a node's head as evidence of a fork
// says so with AUDIT_FORK, and the node itself audits the answer as audit.disputed (actor: the
// witness; subject: the entry) and counts it, so that its own officers learn it from their node
// (review O, O7: it logged a warning only). Here b holds a head of a far above a's chain, as
// after a restore of a's node from an old backup: a's next own head is below it.
func TestANodeIsToldItsChainIsDisputed(t *testing.T) {
	f := fedtest.Start(t, fedtest.Options{Orgs: 2, WitnessInterval: time.Hour})
	a, b := f.Orgs[0], f.Orgs[1]
	disputed := func() float64 {
		return a.Metric(t, "knooppunt_audit_disputed_total", map[string]string{"peer": b.TD.Name()})
	}
	before := disputed()
	high, err := witness.Sign(a.Replica, 1<<40, bytes.Repeat([]byte{7}, sha256.Size), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pb.NewFederationServiceClient(asPeer(t, a, b)).Witness(fedtest.Call(t), &pb.WitnessRequest{Head: high}); err != nil {
		t.Fatalf("a head of a far ahead: %v", err)
	}
	// A policy step hands a's head to b at once.
	a.Approve(t, policyDoc("na-herstel", spiffeOf(b), "sitrep", "internal", ""))
	var entry *pb.AuditEntry
	fedtest.Eventually(t, 10*time.Second, "a audits that b disputes its chain", func() (bool, string) {
		got := a.Audit(t, db.AuditDisputed)
		for _, e := range got {
			if e.Actor == b.TD.Name() {
				entry = e
			}
		}
		return entry != nil, fmt.Sprint(got)
	})
	var d struct {
		Seq      int64  `json:"seq"`
		Hash     string `json:"hash"`
		PeerSays string `json:"peer_says"`
	}
	if err := json.Unmarshal([]byte(entry.Detail), &d); err != nil {
		t.Fatal(err)
	}
	if d.Seq < 1 || d.Seq >= 1<<40 || entry.Subject != fmt.Sprintf("entry %d", d.Seq) || len(d.Hash) != 2*sha256.Size ||
		!strings.Contains(d.PeerSays, "kept as evidence of a fork in "+a.TD.Name()) {
		t.Errorf("a's audit.disputed entry: subject %q, detail %s; want the entry, its hash and b's answer", entry.Subject, entry.Detail)
	}
	if n := disputed() - before; n < 1 {
		t.Errorf("knooppunt_audit_disputed_total{peer=b} grew by %g, want at least 1", n)
	}
	// b's side, as before: the head is kept and audited as a fork of a's chain.
	if got := b.Audit(t, db.AuditFork); len(got) == 0 || got[len(got)-1].Subject != a.TD.Name() {
		t.Errorf("b's audit.fork entries: %v, want one of a", got)
	}
}

// TestHeadsVerifyAfterRotation: the heads a node signed before its SVID rotated, with the old
// key, still verify with the chain kept beside them, as do the heads signed after it.
func TestHeadsVerifyAfterRotation(t *testing.T) {
	f := fedtest.Start(t, fedtest.Options{Orgs: 2, WitnessInterval: time.Hour})
	a, b := f.Orgs[0], f.Orgs[1]
	fc := pb.NewFederationServiceClient(asPeer(t, a, b))
	leaves := func() map[string]int {
		heads, err := fc.Heads(fedtest.Call(t), &pb.HeadsRequest{})
		if status.Code(err) == codes.ResourceExhausted {
			// This test's polling is faster than a peer may call: ask again at the next poll.
			return nil
		}
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]int{}
		for _, h := range heads.Heads {
			out[fmt.Sprintf("%x", sha256.Sum256(h.Head.Chain[0]))[:12]]++
		}
		return out
	}
	a.Approve(t, policyDoc("step-0", spiffeOf(b), "sitrep", "internal", ""))
	fedtest.Eventually(t, 10*time.Second, "b keeps a head of a", func() (bool, string) {
		got := leaves()
		return len(got) == 1, fmt.Sprintf("heads by leaf certificate: %v", got)
	})

	// A new SVID, with a new key, for a's node, which reloads its files.
	if err := a.CA.IssueFiles(spiffeid.RequireFromPath(a.TD, "/node/r1"), filepath.Join(a.Dir, "certs", "r1"), identity.SVIDOptions{}); err != nil {
		t.Fatal(err)
	}
	step := 0
	fedtest.Eventually(t, 15*time.Second, "b keeps a head signed with a's new SVID", func() (bool, string) {
		step++
		time.Sleep(50 * time.Millisecond) // one policy step, and so one head, at a time
		a.Approve(t, policyDoc(fmt.Sprintf("step-%d", step), spiffeOf(b), "sitrep", "internal", ""))
		got := leaves()
		return len(got) == 2, fmt.Sprintf("heads by leaf certificate: %v", got)
	})
	fedtest.Eventually(t, 10*time.Second, "every head b keeps verifies", func() (bool, string) {
		resp := verifyWitnessed(t, a)
		w := resp.Witnesses[0]
		return resp.Ok && w.State == witness.OK && w.Heads >= 2, fmt.Sprintf("verify: ok %v, %s: %s, %d heads (%s)", resp.Ok, w.Peer, w.State, w.Heads, w.Problem)
	})
}

// TestProcessWitnessesCatchARewrittenChain is TestWitnessesCatchARewrittenChain with real
// processes and the CLI: two `knooppunt serve` processes, a's chain rewritten in its database
// file while a is stopped, and `knooppunt audit verify --witnesses` exits 1 naming the witness
// and the entry.
func TestProcessWitnessesCatchARewrittenChain(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two node processes")
	}
	f := fedtest.Prepare(t, fedtest.Options{Orgs: 2, Metrics: true, WitnessInterval: time.Hour})
	ps := startProcs(t, f)
	a, b := f.Orgs[0], f.Orgs[1]
	verify := func() (string, int) {
		t.Helper()
		cmd := exec.Command(ps.bin, "audit", "verify", "--witnesses", "--node", "unix://"+a.SocketPath())
		cmd.Env = proctest.Env()
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		switch {
		case err == nil:
			return string(out), 0
		case errors.As(err, &exit):
			return string(out), exit.ExitCode()
		}
		t.Fatalf("audit verify --witnesses: %v\n%s", err, out)
		return "", 0
	}
	a.Approve(t, policyDoc("sitreps-to-b", spiffeOf(b), "sitrep", "internal", ""))
	fedtest.Eventually(t, 15*time.Second, "b witnesses a's head", func() (bool, string) {
		out, code := verify()
		return code == 0 && regexp.MustCompile(`\n`+b.Name+`\s+`+b.TD.Name()+`\s+ok\s+[1-9]`).MatchString(out), out
	})
	// The output says up to which entry, and from when, the witnesses vouch for the chain.
	if out, _ := verify(); !regexp.MustCompile(`\nWitnessed up to entry [1-9]\d* \(of [1-9]\d*\), signed at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ; ` + b.Name + ` holds it\.\n`).MatchString(out) {
		t.Errorf("audit verify --witnesses does not say what the newest head covers:\n%s", out)
	}
	// With its only witness down, nobody vouches for the chain: not a pass, exit 2.
	ps.kill(t, b)
	if out, code := verify(); code != 2 || !strings.Contains(out, "no witness could vouch for the chain: 1 of 1 unreachable") {
		t.Errorf("audit verify --witnesses with the witness down exited %d, want 2 and a note:\n%s", code, out)
	}
	ps.restart(t, b)
	ps.kill(t, a)
	rewriteChain(t, filepath.Join(a.DataDir(), "knooppunt.db"))
	ps.restart(t, a)
	out, code := verify()
	t.Logf("audit verify --witnesses after the rewrite (exit %d):\n%s", code, out)
	if code != 1 || !strings.Contains(out, "BROKEN at entry") || !strings.Contains(out, "witness "+b.Name+" holds a head for entry") ||
		!regexp.MustCompile(`\n`+b.Name+`\s+`+b.TD.Name()+`\s+rewritten`).MatchString(out) {
		t.Fatalf("audit verify --witnesses of the rewritten chain exited %d:\n%s\nwant exit 1, BROKEN, naming witness %s and the entry", code, out, b.Name)
	}
}

// TestHeadsVerifyAfterCARotation: an org's CA rotates, as SPIRE's does: the new authority joins
// the bundle, the node's SVID comes from it, and the old authority leaves the bundle. The heads
// its peer kept from before, signed under the old authority, no longer verify with today's bundle,
// but they still verify against the bundle of their time, which the node recorded as it changed.
func TestHeadsVerifyAfterCARotation(t *testing.T) {
	f := fedtest.Start(t, fedtest.Options{Orgs: 2, WitnessInterval: time.Hour})
	a, b := f.Orgs[0], f.Orgs[1]
	authorities := func() []db.Authority {
		got, err := a.Node.DB().Authorities(context.Background(), a.TD.Name())
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	fedtest.Eventually(t, 10*time.Second, "a records its bundle", func() (bool, string) {
		got := authorities()
		return len(got) == 1 && bytes.Equal(got[0].DER, a.CA.Cert.Raw), fmt.Sprintf("authorities: %d", len(got))
	})
	a.Approve(t, policyDoc("before", spiffeOf(b), "sitrep", "internal", ""))
	var old *pb.SignedHead
	fedtest.Eventually(t, 10*time.Second, "b keeps a head of a", func() (bool, string) {
		heads, err := pb.NewFederationServiceClient(asPeer(t, a, b)).Heads(fedtest.Call(t), &pb.HeadsRequest{})
		if err != nil || len(heads.Heads) == 0 {
			return false, fmt.Sprintf("heads: %v", err)
		}
		old = heads.Heads[0].Head
		return true, ""
	})

	// The rotation. First the new authority joins a's bundle; b, restarted, reads it.
	next, err := identity.NewCA(a.TD, 0)
	if err != nil {
		t.Fatal(err)
	}
	writeBundle := func(cas ...*x509.Certificate) {
		var pemBytes []byte
		for _, c := range cas {
			pemBytes = append(pemBytes, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
		}
		if err := os.WriteFile(a.BundleFile(), pemBytes, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeBundle(a.CA.Cert, next.Cert)
	b.Stop(t)
	b.Start(t)
	fedtest.Eventually(t, 15*time.Second, "a records both authorities", func() (bool, string) {
		got := authorities()
		return len(got) == 2 && got[0].RemovedAt.IsZero() && got[1].RemovedAt.IsZero(), fmt.Sprintf("authorities: %+v", len(got))
	})
	// Then a's SVID comes from the new authority, and the old one leaves the bundle.
	if err := next.IssueFiles(spiffeid.RequireFromPath(a.TD, "/node/r1"), filepath.Join(a.Dir, "certs", "r1"), identity.SVIDOptions{}); err != nil {
		t.Fatal(err)
	}
	writeBundle(next.Cert)
	fedtest.Eventually(t, 15*time.Second, "a records the old authority as removed", func() (bool, string) {
		for _, au := range authorities() {
			if bytes.Equal(au.DER, a.CA.Cert.Raw) {
				return !au.RemovedAt.IsZero() && au.Held(old.At.AsTime()) && !au.Held(time.Now()), fmt.Sprintf("old authority held from %s, removed at %s", au.FirstSeen, au.RemovedAt)
			}
		}
		return false, "the old authority is not recorded"
	})

	// Today's bundle alone refuses the old head: what follows passes on the record alone.
	if _, err := witness.Verify(old, a.TD, x509bundle.FromX509Authorities(a.TD, []*x509.Certificate{next.Cert})); err == nil {
		t.Fatal("a head signed under the old authority verifies with today's bundle alone: the test proves nothing")
	}
	fedtest.Eventually(t, 15*time.Second, "every head b keeps verifies against the bundle of its time", func() (bool, string) {
		time.Sleep(200 * time.Millisecond) // within b's limit on a peer's calls
		resp := verifyWitnessed(t, a)
		w := resp.Witnesses[0]
		return resp.Ok && w.State == witness.OK && w.Heads >= 1, fmt.Sprintf("verify: ok %v, %s: %s, %d heads (%s)", resp.Ok, w.Peer, w.State, w.Heads, w.Problem)
	})
}

// TestAPeerStepIsWitnessedAtOnce: a peer accepted (a step that changes who gets what, as a policy
// step does) hands the audit head, with the step's entry, to the witnesses at once, not at the
// next interval (review O, O6: peer steps stayed unwitnessed for up to 5 minutes).
func TestAPeerStepIsWitnessedAtOnce(t *testing.T) {
	a0, b0, c0 := fedtest.OrgName(0), fedtest.OrgName(1), fedtest.OrgName(2)
	f := fedtest.Start(t, fedtest.Options{Orgs: 3, WitnessInterval: time.Hour, PeersOf: func(name string) []string {
		if name == a0 {
			return []string{b0} // c only once a accepts it
		}
		return []string{a0}
	}})
	a, b, c := f.Org(a0), f.Org(b0), f.Org(c0)
	a.Approve(t, policyDoc("sitreps-to-b", spiffeOf(b), "sitrep", "internal", ""))
	// Each verify asks every witness: asked a few times a second, as a person would, not as
	// fast as Eventually polls, which the witnesses' rate limit refuses.
	witnessed := func() (int64, string) {
		time.Sleep(200 * time.Millisecond)
		ws := verifyWitnessed(t, a).Witnesses
		for _, w := range ws {
			if w.Peer == b.Name && w.State == witness.OK {
				return w.NewestSeq, fmt.Sprint(ws)
			}
		}
		return 0, fmt.Sprint(ws)
	}
	fedtest.Eventually(t, 10*time.Second, "b witnesses a's head after the policy step", func() (bool, string) {
		n, ws := witnessed()
		return n > 0, ws
	})
	c.AcceptedBy(t, a)
	added := a.Audit(t, db.AuditPeerAdd)
	if len(added) == 0 {
		t.Fatal("no peer.add entry")
	}
	seq := added[len(added)-1].Seq
	fedtest.Eventually(t, 10*time.Second, "b witnesses the peer.add entry", func() (bool, string) {
		n, ws := witnessed()
		return n >= seq, fmt.Sprintf("witnessed up to %d, peer.add is %d: %s", n, seq, ws)
	})
}

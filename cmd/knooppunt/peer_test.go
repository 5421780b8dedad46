package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/federation/identity"
	"github.com/knooppunt/knooppunt/federation/invite"
	"github.com/knooppunt/knooppunt/node/record"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// signAs writes an invitation of the org whose dev CA is in caDir, signed with a node SVID of
// signer (a CA directory too: another CA signs for a forgery), into dir/name.
func signAs(t *testing.T, dir, name, caDir, signer string, edit func(*invite.Invitation)) string {
	t.Helper()
	ca, err := identity.LoadCA(caDir)
	if err != nil {
		t.Fatal(err)
	}
	sca, err := identity.LoadCA(signer)
	if err != nil {
		t.Fatal(err)
	}
	bundle, err := os.ReadFile(filepath.Join(caDir, identity.BundleFile))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	inv := invite.Invitation{Name: "NCC", TrustDomain: ca.TrustDomain.Name(), Addresses: []string{"127.0.0.1:1"},
		Bundle: string(bundle), IssuedAt: now, ExpiresAt: now.Add(time.Hour)}
	if edit != nil {
		edit(&inv)
	}
	id := spiffeid.RequireFromPath(sca.TrustDomain, "/node/r1")
	chain, key, err := sca.Issue(id, identity.SVIDOptions{NotBefore: inv.IssuedAt.Add(-time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	file, err := invite.Sign(inv, &x509svid.SVID{ID: id, Certificates: chain, PrivateKey: key})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, file, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// tamper rewrites the signed invitation in a file, keeping its signature, as someone who changed
// it on the way would.
func tamper(t *testing.T, path string, edit func(inv map[string]any)) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var env map[string]json.RawMessage
	if err := json.Unmarshal(data, &env); err != nil {
		t.Fatal(err)
	}
	var payload []byte
	if err := json.Unmarshal(env["invitation"], &payload); err != nil {
		t.Fatal(err)
	}
	var inv map[string]any
	if err := json.Unmarshal(payload, &inv); err != nil {
		t.Fatal(err)
	}
	edit(inv)
	payload, _ = json.Marshal(inv)
	env["invitation"], _ = json.Marshal(payload)
	out, _ := json.Marshal(env)
	tampered := strings.TrimSuffix(path, ".json") + "-tampered.json"
	if err := os.WriteFile(tampered, out, 0o600); err != nil {
		t.Fatal(err)
	}
	return tampered
}

// peerState is an org's peers and peer audit entries, to compare before and after a refusal.
func peerState(t *testing.T, o *org) string {
	t.Helper()
	peers := cli(t, nil, "", "peer", "list", "--node", o.sock(), "-o", "json").want(t, 0).stdout
	audit := cli(t, nil, "", "audit", "list", "--node", o.sock(), "--action", "peer.", "-o", "json").want(t, 0).stdout
	return peers + audit
}

// TestPeerAcceptRefuses: every invitation that must not be trusted is refused with an error that
// names what is wrong, and leaves the node's peers and audit log as they were.
func TestPeerAcceptRefuses(t *testing.T) {
	vrbn := newOrg(t, "vr-brabant-noord.crisis.test", "VR Brabant-Noord")
	vrbn.serve(t)
	// NCC's CA, and a second CA that claims NCC's trust domain.
	ncc := newOrg(t, "ncc.crisis.test", "NCC")
	impostor := newOrg(t, "ncc.crisis.test", "NCC")
	nccCA, impCA := filepath.Join(ncc.dataDir, "ca"), filepath.Join(impostor.dataDir, "ca")
	work := t.TempDir()
	// NCC proposes to be in the group rijk: a proposal the accepting side never applies by itself.
	genuine := signAs(t, work, "ncc.json", nccCA, nccCA, func(inv *invite.Invitation) { inv.Groups = []string{"rijk"} })

	state := func() string { return peerState(t, vrbn) }
	refused := func(name, stdin, want string, args ...string) {
		t.Helper()
		before := state()
		r := cli(t, nil, stdin, append(append([]string{"peer", "accept"}, args...), "--node", vrbn.sock(), "--answer", filepath.Join(work, "answer.json"))...).want(t, 1)
		if !strings.Contains(r.stderr, want) {
			t.Errorf("%s: stderr %q, want it to contain %q", name, r.stderr, want)
		}
		if after := state(); after != before {
			t.Errorf("%s: a refused accept changed the peers or the audit log:\nbefore %s\nafter %s", name, before, after)
		}
		if _, err := os.Stat(filepath.Join(work, "answer.json")); err == nil {
			t.Errorf("%s: a refused accept wrote an answer", name)
		}
	}

	refused("changed address", "", "the signature does not match the invitation's contents",
		tamper(t, genuine, func(inv map[string]any) { inv["addresses"] = []string{"evil.example:7443"} }), "--yes")
	refused("changed bundle", "", "does not verify against the invitation's own bundle",
		tamper(t, genuine, func(inv map[string]any) {
			b, _ := os.ReadFile(filepath.Join(impCA, identity.BundleFile))
			inv["bundle"] = string(b)
		}), "--yes")
	refused("changed trust domain", "", "spiffe_id",
		tamper(t, genuine, func(inv map[string]any) { inv["trust_domain"] = "lcvs.crisis.test" }), "--yes")
	refused("expired", "", "expired at",
		signAs(t, work, "expired.json", nccCA, nccCA, func(inv *invite.Invitation) {
			// Within the validity of the CA, which init made seconds ago.
			inv.IssuedAt, inv.ExpiresAt = inv.IssuedAt.Add(-40*time.Second), inv.IssuedAt.Add(-10*time.Second)
		}), "--yes")
	refused("signed outside its bundle", "", "signed by a key outside that bundle",
		signAs(t, work, "forged.json", nccCA, impCA, nil), "--yes")
	refused("fingerprint not confirmed", "n\n", "not confirmed: nothing was added", genuine)
	// No terminal to answer at (review25 F4): the refusal names --yes.
	refused("no answer", "", "standard input ended before one was given (a script or a pipe): nothing was added. Answer at a terminal, or give --yes", genuine)
	own := signAs(t, work, "own.json", filepath.Join(vrbn.dataDir, "ca"), filepath.Join(vrbn.dataDir, "ca"), nil)
	refused("own invitation", "", "it is this node's own", own, "--yes")
	// Without --yes it is refused before the invitation is shown and its fingerprint asked for.
	if r := cli(t, nil, "y\n", "peer", "accept", own, "--node", vrbn.sock(), "--answer", filepath.Join(work, "answer.json")).want(t, 1); !strings.Contains(r.stderr, "invitation: it is this node's own (vr-brabant-noord.crisis.test): accept the invitation your partner sent; nothing was added") ||
		strings.Contains(strings.ToLower(r.stdout), "fingerprint") {
		t.Errorf("accept of the node's own invitation, asked: stdout %q, stderr %q", r.stdout, r.stderr)
	}
	// Under -o json, as the node says it: INVALID_ARGUMENT at invitation (review AC, AC2).
	if r := cli(t, nil, "", "peer", "accept", own, "--yes", "-o", "json", "--node", vrbn.sock(), "--answer", filepath.Join(work, "answer.json")).want(t, 1); !strings.Contains(r.stdout+r.stderr, `"code":"INVALID_ARGUMENT"`) ||
		!strings.Contains(r.stdout+r.stderr, `"field":"invitation"`) {
		t.Errorf("accept of the node's own invitation -o json: stdout %q, stderr %q", r.stdout, r.stderr)
	}
	// An answer that cannot be written is refused before the node adds anything (review19 M10).
	before := state()
	if r := cli(t, nil, "", "peer", "accept", genuine, "--yes", "--node", vrbn.sock(), "--answer", filepath.Join(work, "nowhere", "a.json")).want(t, 1); !strings.Contains(r.stderr, "--answer: ") || !strings.Contains(r.stderr, "nothing was added") {
		t.Errorf("accept with an answer nowhere: %q", r.stderr)
	}
	if after := state(); after != before {
		t.Errorf("an accept whose answer could not be written changed the peers or the audit log:\nbefore %s\nafter %s", before, after)
	}

	// The genuine one is accepted; then an invitation of the same trust domain with another
	// bundle is refused, and replaces it only with --replace.
	r := cli(t, nil, "", "peer", "accept", genuine, "--yes", "--node", vrbn.sock(), "--answer", filepath.Join(work, "a1.json")).want(t, 0)
	if !strings.Contains(r.stdout, "Peer ncc (ncc.crisis.test) added, groups []") || !strings.Contains(r.stdout, "proposed groups  rijk (applied only if you give them with --groups)") {
		t.Fatalf("genuine accept: want the proposed group shown and not applied:\n%s", r.stdout)
	}
	other := signAs(t, work, "impostor.json", impCA, impCA, nil)
	refused("another bundle", "", "is a peer with the bundle of fingerprint", other, "--yes")
	r = cli(t, nil, "", "peer", "accept", other, "--yes", "--replace", "--node", vrbn.sock(), "--answer", filepath.Join(work, "a2.json"), "-o", "json").want(t, 0)
	var out acceptJSON
	r.oneJSON(t, &out)
	if out.Outcome != "replaced" || out.Peer.Name != "ncc" {
		t.Fatalf("accept --replace: %+v", out)
	}
	var shown peerJSON
	cli(t, nil, "", "peer", "show", "ncc.crisis.test", "--node", vrbn.sock(), "-o", "json").want(t, 0).oneJSON(t, &shown)
	if shown.Fingerprint != out.Peer.Fingerprint || shown.Source != "raft" {
		t.Fatalf("peer show after replace: %+v", shown)
	}
	// A removal needs a reason, as a revocation does.
	r = cli(t, nil, "", "peer", "remove", "ncc", "--node", vrbn.sock()).want(t, 1)
	if !strings.Contains(r.stderr, `--reason: missing: give it`) {
		t.Fatalf("remove without a reason: %q", r.stderr)
	}
	// Removing a peer nobody accepted names what to do.
	r = cli(t, nil, "", "peer", "remove", "lcvs", "--reason", "test", "--node", vrbn.sock()).want(t, 1)
	if !strings.Contains(r.stderr, `no peer "lcvs" was accepted`) || !strings.Contains(r.stderr, "(NotFound)") {
		t.Fatalf("remove of an unknown peer: %q", r.stderr)
	}
}

// TestSubscriptionTextSaysWhoRefuses: a subscription the partner's node refuses at the handshake
// says what that means, which the error alone does not: the partner has not accepted this node's
// answer, or removed this node. Another error is shown as it is.
func TestSubscriptionTextSaysWhoRefuses(t *testing.T) {
	refused := &pb.PeerInfo{Subscription: "down", SubscriptionError: "connection error: desc = \"transport: authentication handshake failed: remote error: tls: bad certificate\" (Unavailable)"}
	if got := subscriptionText(refused, true); !strings.Contains(got, "this node's own SVID may have expired (status shows its expiry), or the partner has not accepted your answer yet, or removed this node") {
		t.Errorf("a refused handshake: %q", got)
	}
	if got := subscriptionText(refused, false); strings.Contains(got, "removed") {
		t.Errorf("the short form carries the hint: %q", got)
	}
	// Past the handshake: the partner's node does not have this one as a peer.
	denied := &pb.PeerInfo{Subscription: "down", SubscriptionError: "trust domain vr-brabant-noord.crisis.test is not a configured peer of this node (PermissionDenied)"}
	if got := subscriptionText(denied, true); !strings.Contains(got, "(the partner's node refuses this node: this partner removed you, or has not accepted your answer yet; ask them to run `knooppunt peer list`)") {
		t.Errorf("a refused subscription: %q", got)
	}
	other := &pb.PeerInfo{Subscription: "down", SubscriptionError: "connection refused"}
	if got := subscriptionText(other, true); got != "down: connection refused" {
		t.Errorf("another error: %q", got)
	}
}

// TestVersionText: peer list and show say a partner's release; one whose node said none runs an
// earlier release, which is not the same as one not asked yet (review V, V4).
func TestVersionText(t *testing.T) {
	said := timestamppb.New(time.Now().Add(-90 * time.Second))
	for _, tc := range []struct {
		p           *pb.PeerInfo
		short, long string
	}{
		{&pb.PeerInfo{}, "-", "- (the leader asks the peer once its subscription to it has caught up)"},
		{&pb.PeerInfo{DescribedAt: said}, "unknown (earlier release)", "unknown (earlier release)"},
		{&pb.PeerInfo{DescribedAt: said, Version: "v1.4.0"}, "v1.4.0", "v1.4.0 (said 1m30s ago)"},
	} {
		if got := versionText(tc.p, false); got != tc.short {
			t.Errorf("peer list of %v: %q, want %q", tc.p, got, tc.short)
		}
		if got := versionText(tc.p, true); got != tc.long {
			t.Errorf("peer show of %v: %q, want %q", tc.p, got, tc.long)
		}
	}
}

// TestTerminalSafe: what a table or a policy's source prints cannot act on the terminal: an
// escape sequence, a bell, a carriage return and a right-to-left override are written out, tabs
// and newlines pass, and a record's value for one cell stays on one line.
func TestTerminalSafe(t *testing.T) {
	var b strings.Builder
	fmt.Fprint(terminalSafe{&b}, "max_classification: secret\n# \x1b[1F\x1b[2Kx\a\r\u202eevil\tok\n")
	if got, want := b.String(), "max_classification: secret\n# \\x1b[1F\\x1b[2Kx\\x07\\x0d\\u202eevil\tok\n"; got != want {
		t.Errorf("terminalSafe wrote %q, want %q", got, want)
	}
	b.Reset()
	tw := newTable(&b)
	fmt.Fprintf(tw, "%s\t%s\n", record.OneLine("Zeist\n\x1b[1Ashelter.capacity"), "VR09")
	tw.Flush()
	if got := b.String(); strings.Count(got, "\n") != 1 || strings.ContainsRune(got, 0x1b) {
		t.Errorf("a table row of a record with a newline and an escape: %q", got)
	}
}

// TestBundleText: peer show says when the peer's bundle was fetched, or since when its refresh
// fails, why, and what that means.
func TestBundleText(t *testing.T) {
	ago := func(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(time.Now().Add(-d)) }
	if got := bundleText(&pb.PeerInfo{}); got != "" {
		t.Errorf("no fetch: %q", got)
	}
	if got := bundleText(&pb.PeerInfo{BundleRefreshedAt: ago(2 * time.Minute)}); got != "fetched 2m0s ago" {
		t.Errorf("a fetch: %q", got)
	}
	// The last attempt and the next say whether the refresh is about to mend (review G2): one
	// failure at start read as minutes of failing.
	failing := &pb.PeerInfo{BundleRefreshedAt: ago(time.Hour), BundleError: `unexpected ID "spiffe://a/node/r1"`, BundleFailingSince: ago(5 * time.Minute),
		BundleLastAttempt: ago(4 * time.Second), BundleNextAttempt: ago(-8*time.Second - 400*time.Millisecond)}
	if got := bundleText(failing); !strings.HasPrefix(got, `refresh failing for 5m0s (last attempt 4s ago: unexpected ID "spiffe://a/node/r1"; next in 8s; last good fetch 1h0m0s ago; the last good bundle stays in use`) {
		t.Errorf("failing: %q", got)
	}
	// A fetch under way, or just due.
	failing.BundleNextAttempt = ago(time.Second)
	if got := bundleText(failing); !strings.Contains(got, `"spiffe://a/node/r1"; next now; last good fetch`) {
		t.Errorf("failing, next due: %q", got)
	}
	// A node from before the attempts were given.
	failing.BundleLastAttempt, failing.BundleNextAttempt = nil, nil
	if got := bundleText(failing); !strings.HasPrefix(got, `refresh failing for 5m0s (unexpected ID "spiffe://a/node/r1"; last good fetch 1h0m0s ago;`) {
		t.Errorf("failing, no attempts given: %q", got)
	}
}

// TestPeerAcceptWithoutAdvertise: a node whose config names no address for peers cannot write
// the answer, and finds that out before it adds the peer: the accept fails, and the peers, the
// audit log and the answer file are as they were (review onboard F1). An answer needs no answer,
// so it is accepted; its answer_to is shown as the file's claim, which nothing here can check
// (F4).
func TestPeerAcceptWithoutAdvertise(t *testing.T) {
	vrbn := newOrg(t, "vr-brabant-noord.crisis.test", "VR Brabant-Noord")
	conf := filepath.Join(vrbn.dataDir, "node.yaml")
	yaml, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	// Listening on every interface and advertising nothing leaves no address for peers.
	yaml = regexp.MustCompile(`(?m)^advertise: .*$`).ReplaceAll(yaml, []byte("advertise: []"))
	yaml = regexp.MustCompile(`(?m)^listen: "127\.0\.0\.1:`).ReplaceAll(yaml, []byte(`listen: "0.0.0.0:`))
	if err := os.WriteFile(conf, yaml, 0o600); err != nil {
		t.Fatal(err)
	}
	vrbn.serve(t)
	ncc := newOrg(t, "ncc.crisis.test", "NCC")
	nccCA := filepath.Join(ncc.dataDir, "ca")
	work := t.TempDir()
	inv := signAs(t, work, "ncc.json", nccCA, nccCA, nil)
	before := peerState(t, vrbn)
	answer := filepath.Join(work, "answer.json")
	r := cli(t, nil, "", "peer", "accept", inv, "--yes", "--node", vrbn.sock(), "--answer", answer).want(t, 1)
	if !strings.Contains(r.stderr, "advertise: the config names no address") || !strings.Contains(r.stderr, "nothing was added") {
		t.Errorf("accept without an address for peers: stderr %q, want the advertise refusal and nothing was added", r.stderr)
	}
	if after := peerState(t, vrbn); after != before {
		t.Errorf("a refused accept added the peer:\nbefore %s\nafter %s", before, after)
	}
	if _, err := os.Stat(answer); err == nil {
		t.Errorf("a refused accept wrote an answer")
	}

	claims := signAs(t, work, "ncc-answer.json", nccCA, nccCA, func(inv *invite.Invitation) { inv.AnswerTo = "deadbeef" })
	r = cli(t, nil, "", "peer", "accept", claims, "--yes", "--node", vrbn.sock()).want(t, 0)
	for _, want := range []string{"your invitation deadbeef, it says\n", "Peer ncc (ncc.crisis.test) added",
		"The file says it answers your invitation deadbeef, so no answer was written: if so, NCC has you as a peer already. `knooppunt peer show ncc` shows"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("accept of an answer: stdout lacks %q:\n%s", want, r.stdout)
		}
	}
}

// TestReachable: an address where a node listens answers; one where nothing does is named, with
// why, so that accept can warn of a typo before the subscription stays down.
func TestReachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	nowhere := closed.Addr().String()
	closed.Close()
	if err := reachable([]string{nowhere, l.Addr().String()}, time.Second); err != nil {
		t.Errorf("one address answers: %v", err)
	}
	if err := reachable([]string{nowhere}, time.Second); err == nil || !strings.Contains(err.Error(), "nothing answers at "+nowhere+" (") {
		t.Errorf("nothing answers: %v", err)
	}
}

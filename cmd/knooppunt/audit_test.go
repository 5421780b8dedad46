package main

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/federation/witness"
	"github.com/knooppunt/knooppunt/node/api"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestAuditDetailPutsWhoGotItFirst: the table gives a disclosure's recipient and a retraction's
// reason before the other keys, which sort before them and pushed them past the cut.
func TestAuditDetailPutsWhoGotItFirst(t *testing.T) {
	for _, tc := range []struct{ detail, want string }{
		{`{"classification":"INTERNAL","crisis":"oekraine","kind":"sitrep","policies":["a@1"],"recipient":"vr-zeeland.crisis.test","version":2}`,
			`recipient=vr-zeeland.crisis.test version=2 policies=["a@1"] classification=INTERNAL crisis=oekraine kind=sitrep`},
		{`{"reason":"no longer granted: held under a@1 (revoked)","recipient":"ncc.crisis.test"}`,
			`recipient=ncc.crisis.test reason=no longer granted: held under a@1 (revoked)`},
		{``, ``},
		{`not json`, `not json`},
	} {
		if got := auditDetail(tc.detail); got != tc.want {
			t.Errorf("auditDetail(%s)\n = %s\nwant %s", tc.detail, got, tc.want)
		}
	}
}

// TestCLIAuditVerifyWithoutWitnesses: --witnesses on a node with no peers verifies the chain on
// its own and says that nobody witnessed it, with exit 2: it read as a clean pass (review O, O2),
// so that a rewritten chain whose witnesses were removed passed.
func TestCLIAuditVerifyWithoutWitnesses(t *testing.T) {
	addr, _ := servedNode(t)
	r := cli(t, nil, "", "audit", "verify", "--witnesses", "--node", addr).want(t, 2)
	if !strings.HasPrefix(r.stdout, "ok: ") || !strings.Contains(r.stderr, "Note: this node has no peers: nobody witnessed the chain.") {
		t.Errorf("audit verify --witnesses without peers: stdout %q stderr %q, want the chain verified and a note that nobody witnessed it", r.stdout, r.stderr)
	}
	// A client of an earlier release, which does not say it takes no witness, is refused, as
	// earlier releases did: it would read no witness as vouched for (review Q, Q12).
	f := &clientFlags{node: addr}
	conn, err := f.dial()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = pb.NewAuditServiceClient(conn).Verify(t.Context(), &pb.VerifyAuditRequest{Witnesses: true})
	if field, _ := api.Field(err); status.Code(err) != codes.FailedPrecondition || field != "witnesses" {
		t.Errorf("Verify with witnesses, not accepting none, on a node without peers: %v, want FAILED_PRECONDITION naming witnesses", err)
	}
}

// TestAuditDetailQuotesControlCharacters: a detail value with a control character in it is given
// quoted, escaped, so that no stored entry can write a line of the audit list table: a partner's
// stated purpose with a newline wrote one that looked like a policy.revoke (review O, O3).
func TestAuditDetailQuotesControlCharacters(t *testing.T) {
	for _, tc := range []struct{ detail, want string }{
		{`{"recipient":"ncc.crisis.test","stated_purpose":"crisisbeheer\n53   2026-12-06T15:20:02Z  local socket  policy.revoke"}`,
			`recipient=ncc.crisis.test stated_purpose="crisisbeheer\n53   2026-12-06T15:20:02Z  local socket  policy.revoke"`},
		{`{"reason":"a\tb\rc"}`, `reason="a\tb\rc"`},
		{`{"stated_purpose":"crisisbeheer","policies":[` + "\n" + `"a@1"]}`, `policies=["a@1"] stated_purpose=crisisbeheer`},
		{`{"reason":"next` + "\u0085" + `line"}`, `reason="next\u0085line"`},
		{"not json\nSEQ 53", `"not json\nSEQ 53"`},
		// A bidi override, and a value that would read as another pair (review Q, Q8).
		{`{"stated_purpose":"opvang` + "\u202e" + `x"}`, `stated_purpose="opvang\u202ex"`},
		{`{"stated_purpose":"opvang recipient=evil.crisis.test"}`, `stated_purpose="opvang recipient=evil.crisis.test"`},
	} {
		got := auditDetail(tc.detail)
		if got != tc.want {
			t.Errorf("auditDetail(%q)\n = %s\nwant %s", tc.detail, got, tc.want)
		}
		if strings.ContainsAny(got, "\n\r\t") {
			t.Errorf("auditDetail(%q) = %q: holds a character that breaks a table line", tc.detail, got)
		}
	}
}

// TestCLISearchPurposeRefusesControlCharacters: search --purpose with a newline is refused naming
// --purpose, before any peer keeps it in its audit log (review O, O3).
func TestCLISearchPurposeRefusesControlCharacters(t *testing.T) {
	addr, _ := servedNode(t)
	r := cli(t, nil, "", "search", "--node", addr, "--crisis", "oekraine", "--purpose", "crisisbeheer\n53 policy.revoke").want(t, 1)
	if want := "knooppunt: --purpose: holds a control or invisible character (U+000A) at byte 12: state the purpose as plain text on one line (InvalidArgument)\n"; r.stderr != want {
		t.Errorf("search --purpose with a newline: stderr %q\nwant %q", r.stderr, want)
	}
}

// verifyAnswers is an AuditService whose Verify gives resp.
type verifyAnswers struct {
	pb.UnimplementedAuditServiceServer
	resp *pb.VerifyAuditResponse
}

func (v verifyAnswers) Verify(context.Context, *pb.VerifyAuditRequest) (*pb.VerifyAuditResponse, error) {
	return v.resp, nil
}

// auditNode serves an AuditService whose Verify gives resp on a unix socket, and returns the
// address to give --node.
func auditNode(t *testing.T, resp *pb.VerifyAuditResponse) string {
	t.Helper()
	lis, err := net.Listen("unix", filepath.Join(shortDir(t), "s.sock"))
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	pb.RegisterAuditServiceServer(srv, verifyAnswers{resp: resp})
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return "unix://" + lis.Addr().String()
}

// TestCLIAuditVerifySaysWhatTheWitnessesHold: a witness's head past the end of the log (a restore
// of an older backup) is said as such, where "BROKEN at entry 5 of 2" named an entry the log
// does not have; and "Witnessed up to" names every witness that holds that head, where it named
// one while five held it (review O, O11).
func TestCLIAuditVerifySaysWhatTheWitnessesHold(t *testing.T) {
	signed := timestamppb.New(time.Date(2026, 12, 6, 15, 20, 2, 0, time.UTC))
	problem := "witness ncc holds a head for entry 5, signed by spiffe://vrbn.crisis.test/node/r1 at 2026-12-06T15:20:02Z, and the chain has no entry 5: entries were removed from its end"
	r := cli(t, nil, "", "audit", "verify", "--witnesses", "--node", auditNode(t, &pb.VerifyAuditResponse{
		Entries: 2, FirstBroken: 5, Problem: problem,
		Witnesses: []*pb.WitnessReport{{Peer: "ncc", TrustDomain: "ncc.crisis.test", State: witness.Rewritten, Heads: 3, Seq: 5, Problem: problem}},
	})).want(t, 1)
	if want := "BROKEN: a witness holds a head for entry 5, and the log ends at entry 2: " + problem + "\n"; !strings.HasPrefix(r.stdout, want) {
		t.Errorf("a head past the log's end: stdout %q\nwant it to begin %q", r.stdout, want)
	}
	if r := cli(t, nil, "", "audit", "verify", "--node", auditNode(t, &pb.VerifyAuditResponse{Entries: 0, FirstBroken: 1, Problem: "p"})).want(t, 1); r.stdout != "BROKEN: a witness holds a head for entry 1, and the log holds no entry: p\n" {
		t.Errorf("a head of an empty log: stdout %q", r.stdout)
	}
	// With --anchor the head past the end is the anchor's, and the end is said once (review Z, Z12).
	anchored := &pb.VerifyAuditResponse{Entries: 2, FirstBroken: 5, Problem: "the log ends at entry 2, before the anchor's entry 5: entries were removed from its end"}
	if r := cli(t, nil, "", "audit", "verify", "--anchor", "5:"+strings.Repeat("ab", 32), "--node", auditNode(t, anchored)).want(t, 1); r.stdout != "BROKEN: the anchor names a head for entry 5: the log ends at entry 2, before the anchor's entry 5: entries were removed from its end\n" {
		t.Errorf("an anchor past the log's end: stdout %q", r.stdout)
	}
	if r := cli(t, nil, "", "audit", "verify", "--node", auditNode(t, &pb.VerifyAuditResponse{Entries: 9, FirstBroken: 4, Problem: "p"})).want(t, 1); r.stdout != "BROKEN at entry 4 of 9: p\n" {
		t.Errorf("a changed entry: stdout %q", r.stdout)
	}

	ok := func(peer string, seq int64) *pb.WitnessReport {
		return &pb.WitnessReport{Peer: peer, TrustDomain: peer + ".crisis.test", State: witness.OK, Heads: 7, NewestSeq: seq, NewestAt: signed}
	}
	for _, tc := range []struct {
		ws   []*pb.WitnessReport
		want string
	}{
		{[]*pb.WitnessReport{ok("ggdghor", 41), ok("lcvs", 41), ok("ncc", 40), ok("vr-utrecht", 41), {Peer: "wa", State: witness.Unreachable}},
			"; 3 witnesses hold it: ggdghor, lcvs, vr-utrecht.\n"},
		{[]*pb.WitnessReport{ok("ggdghor", 40), ok("ncc", 41)}, "; ncc holds it.\n"},
	} {
		r := cli(t, nil, "", "audit", "verify", "--witnesses", "--node", auditNode(t, &pb.VerifyAuditResponse{Ok: true, Entries: 44, Witnesses: tc.ws})).want(t, 0)
		line := lineWith(r.stdout, "Witnessed up to entry 41 (of 44), signed at ")
		if !strings.HasSuffix(line, tc.want) {
			t.Errorf("witnessed line %q, want it to end %q\n%s", line, tc.want, r.stdout)
		}
	}
}

package main

import (
	"strings"
	"testing"
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

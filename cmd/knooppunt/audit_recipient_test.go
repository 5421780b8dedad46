package main

import (
	"strings"
	"testing"
)

// TestCLIAuditRecipient checks audit list --recipient and --crisis against a node with no peers:
// a name that is no peer's is refused naming --recipient, and saying that a removed peer takes
// its trust domain, a trust domain that is no (longer a) peer is matched as given, a crisis name
// no record can have is refused naming --crisis, and the filters leave out the entries whose
// detail names no such recipient or crisis.
func TestCLIAuditRecipient(t *testing.T) {
	addr, _ := servedNode(t)
	cli(t, nil, "", "search", "--node", addr, "--crisis", "oekraine").want(t, 0) // one audited entry
	// A removed peer's name is not known any more: the refusal says to give its trust domain
	// (review O, O11).
	if r := cli(t, nil, "", "audit", "list", "--node", addr, "--recipient", "ggdghor").want(t, 1); !strings.Contains(r.stderr, "--recipient") || !strings.Contains(r.stderr, `"ggdghor" is no peer's name`) ||
		!strings.Contains(r.stderr, "for a peer that was removed, give its trust domain") {
		t.Errorf("audit list --recipient ggdghor: stderr %q, want a refusal naming --recipient that says to give a removed peer's trust domain", r.stderr)
	}
	if r := cli(t, nil, "", "audit", "list", "--node", addr, "--crisis", "Oekraïne!").want(t, 1); !strings.Contains(r.stderr, "--crisis") {
		t.Errorf("audit list --crisis Oekraïne!: stderr %q, want a refusal naming --crisis", r.stderr)
	}
	var all, none []map[string]any
	cli(t, nil, "", "audit", "list", "--node", addr, "-o", "json").want(t, 0).oneJSON(t, &all)
	if len(all) == 0 {
		t.Fatal("audit list shows no entry after a search")
	}
	for _, args := range [][]string{{"--recipient", "gone.crisis.test"}, {"--crisis", "oekraine"}} {
		none = nil
		cli(t, nil, "", append([]string{"audit", "list", "--node", addr, "-o", "json"}, args...)...).want(t, 0).oneJSON(t, &none)
		if len(none) != 0 {
			t.Errorf("audit list %v: %v, want no entry (nothing went to a partner)", args, none)
		}
	}
}

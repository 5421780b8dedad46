package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/knooppunt/knooppunt/federation/fedtest"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestPolicyPreviewNamesLiftedRedactions: a draft for the same recipient and kind without redact
// would send the summary another approved policy withholds; the preview says so in its table
// output and in -o json.
func TestPolicyPreviewNamesLiftedRedactions(t *testing.T) {
	f := fedtest.Start(t, fedtest.Options{Orgs: 2})
	a, b := f.Orgs[0], f.Orgs[1]
	base := "purpose: beeld\nrecipients: [spiffe://" + b.TD.Name() + "]\nkinds: [sitrep]\nmax_classification: internal\n"
	a.Approve(t, "name: sitrep-kort\n"+base+"redact: [body.summary]\n")
	a.Put(t, fedtest.Sitrep("s1", "oekraine", pb.Classification_INTERNAL, "Beeld"))
	draft := filepath.Join(t.TempDir(), "draft.yaml")
	if err := os.WriteFile(draft, []byte("name: sitrep-heel\n"+base), 0o600); err != nil {
		t.Fatal(err)
	}
	node := "unix://" + a.SocketPath()
	r := cli(t, nil, "", "policy", "preview", draft, "--recipient", b.Name, "--node", node).want(t, 0)
	if want := "WARNING: body.summary, now withheld from " + b.Name + " by sitrep-kort@1, would be sent: a record that several policies grant keeps back only what all of them withhold"; !strings.Contains(r.stdout, want) {
		t.Errorf("policy preview of a draft that lifts a redaction:\n%s\nwant %q", r.stdout, want)
	}
	// A new version of the policy lifts it because it replaces the one in force (review L, L7).
	next := filepath.Join(t.TempDir(), "next.yaml")
	if err := os.WriteFile(next, []byte("name: sitrep-kort\n"+base), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := cli(t, nil, "", "policy", "preview", next, "--recipient", b.Name, "--node", node).want(t, 0); !strings.Contains(r.stdout, "by sitrep-kort@1, would be sent: this version replaces the one in force once approved.") {
		t.Errorf("policy preview of a new version that lifts a redaction:\n%s", r.stdout)
	}
	r = cli(t, nil, "", "policy", "preview", draft, "--recipient", b.Name, "--node", node, "-o", "json").want(t, 0)
	var doc struct {
		Lifted []struct {
			Field      string   `json:"field"`
			WithheldBy []string `json:"withheld_by"`
		} `json:"lifted_redactions"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || len(doc.Lifted) != 1 || doc.Lifted[0].Field != "body.summary" ||
		len(doc.Lifted[0].WithheldBy) != 1 || doc.Lifted[0].WithheldBy[0] != "sitrep-kort@1" {
		t.Errorf("policy preview -o json: %v %+v\n%s", err, doc, r.stdout)
	}
}

// TestPolicyDiffNamesTheVersion: policy diff NAME FILE compares with the version in force, not a
// newer proposal, and its header names the version and its state; with none in force, the
// newest, named as revoked.
func TestPolicyDiffNamesTheVersion(t *testing.T) {
	f := fedtest.Start(t, fedtest.Options{Orgs: 2})
	a, b := f.Orgs[0], f.Orgs[1]
	base := "name: sitreps\npurpose: beeld\nrecipients: [spiffe://" + b.TD.Name() + "]\nkinds: [sitrep]\n"
	a.Approve(t, base+"max_classification: internal\n")
	file := filepath.Join(t.TempDir(), "sitreps.yaml")
	if err := os.WriteFile(file, []byte(base+"max_classification: internal\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	node := "unix://" + a.SocketPath()
	if _, err := pb.NewPolicyServiceClient(a.As(t, a.Officers[0])).Propose(fedtest.Call(t), &pb.ProposeRequest{Source: []byte(base + "max_classification: public\n")}); err != nil {
		t.Fatal(err)
	}
	if r := cli(t, nil, "", "policy", "diff", "sitreps", file, "--node", node).want(t, 0); r.stdout != "sitreps@1 (approved) and "+file+" are the same document.\n" {
		t.Errorf("policy diff NAME FILE with @2 proposed: %q, want @1, in force, the same", r.stdout)
	}
	if _, err := pb.NewPolicyServiceClient(a.As(t, a.Officers[1])).Approve(fedtest.Call(t), &pb.PolicyStepRequest{Id: "sitreps@2"}); err != nil {
		t.Fatal(err)
	}
	a.Revoke(t, "sitreps@2")
	if r := cli(t, nil, "", "policy", "diff", "sitreps", file, "--node", node).want(t, 1); !strings.HasPrefix(r.stdout, "--- sitreps@2 (revoked)\n+++ "+file+"\n") {
		t.Errorf("policy diff NAME FILE with none in force:\n%s%s", r.stdout, r.stderr)
	}
}

// TestPolicyLintWarnsInOrder: lint warns of a group granted secret records offline; with --node
// it refuses a peer's name with its trust domain to write and warns of a crisis no record names;
// problems and warnings come in the order of their lines.
func TestPolicyLintWarnsInOrder(t *testing.T) {
	f := fedtest.Start(t, fedtest.Options{Orgs: 2})
	a, b := f.Orgs[0], f.Orgs[1]
	a.Put(t, fedtest.Sitrep("s1", "oekraine", pb.Classification_INTERNAL, "Beeld"))
	dir := t.TempDir()
	write := func(name, src string) string {
		file := filepath.Join(dir, name)
		if err := os.WriteFile(file, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		return file
	}
	group := write("group.yaml", "name: p\npurpose: x\nrecipients: ['group:rijk']\nkinds: [sitrep]\nmax_classification: secret\n")
	// Offline, it says what it did not check (review AE, AE6: with KNOOPPUNT_NODE set, "ok"
	// read as checked against the node).
	if r := cli(t, []string{"KNOOPPUNT_NODE=unix:///srv/kp.sock"}, "", "policy", "lint", group).want(t, 0); r.stderr != group+`:3:14: warning: recipients[0]: "group:rijk" gets secret records: so does every peer that joins the group later, without a new approval; name the peers themselves if only they may`+"\n"+
		"Note: checked offline: the kinds, recipients and groups were not checked against a node; --node unix:///srv/kp.sock checks them.\n" ||
		r.stdout != group+": ok, with 1 warning(s) above\n" {
		t.Errorf("lint of a group granted secret records: %q, %q", r.stderr, r.stdout)
	}
	named := write("named.yaml", "name: p\npurpose: x\nrecipients: ["+b.Name+"]\nkinds: [sitrep]\nmax_classification: internal\nwhen: record.crisis == 'oekrain'\n")
	r := cli(t, nil, "", "policy", "lint", named, "--node", "unix://"+a.SocketPath()).want(t, 1)
	want := named + `:3:14: recipients[0]: "` + b.Name + `" is the name of a peer, not a recipient: name it by its trust domain, "` + b.TD.Name() + `"` + "\n" +
		named + `:6:7: warning: when: record.crisis "oekrain": no record here or from a partner names this crisis, so the condition holds for none of its records; check the spelling (phase show lists the crises)` + "\n"
	if r.stderr != want {
		t.Errorf("lint --node of a peer's name and a misspelt crisis:\n%s\nwant\n%s", r.stderr, want)
	}
}

// TestPrintPolicySaysWhatPartnersHold: show and revoke give, per holder, the copies held under
// the version and those under it alone, in the table and in -o json.
func TestPrintPolicySaysWhatPartnersHold(t *testing.T) {
	p := &pb.PolicyInfo{Id: "p@1", State: "approved", Held: []*pb.PolicyHeld{{Holder: "spiffe://ncc.crisis.test/node/*", Records: 12, Alone: 9}}}
	var table, js strings.Builder
	if err := printPolicy(&table, "table", p, false); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), "held by    spiffe://ncc.crisis.test/node/*: 12 records, 9 under this policy alone\n") {
		t.Errorf("table:\n%s", table.String())
	}
	if err := printPolicy(&js, "json", p, false); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Held []heldJSON `json:"held"`
	}
	if err := json.Unmarshal([]byte(js.String()), &got); err != nil || len(got.Held) != 1 || got.Held[0] != (heldJSON{"spiffe://ncc.crisis.test/node/*", 12, 9}) {
		t.Errorf("json %s: held %+v, %v", js.String(), got.Held, err)
	}
}

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/knooppunt/knooppunt/policy"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestCLIRule checks rule lint offline and against a node (exit 1 and FILE:LINE:COLUMN for a bad
// rule), and that rule test runs a rule over the node's history: the records put in this test
// fire it, with the values that fired it, in a table and as one JSON array.
func TestCLIRule(t *testing.T) {
	addr, dir := servedNode(t)
	good := filepath.Join(dir, "low.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	const goodSrc = `name: zeeland-beds-low
severity: severe
crisis: oekraine
when: ratio(sum("shelter.capacity", "beds_free"), sum("shelter.capacity", "beds_total")) < 0.05
clear: ratio(sum("shelter.capacity", "beds_free"), sum("shelter.capacity", "beds_total")) > 0.08
`
	os.WriteFile(good, []byte(goodSrc), 0o600)
	os.WriteFile(bad, []byte("name: bad\nseverity: severe\nwhen: count(\"signal\", duration(\"6h\")) >= 3 && sum(\"sitrep\", \"x\") > 1\n"), 0o600)

	if r := cli(t, nil, "", "rule", "lint", good).want(t, 0); !strings.Contains(r.stdout, "low.yaml: ok") {
		t.Errorf("lint of a good rule: %q", r.stdout)
	}
	for _, args := range [][]string{{"rule", "lint", bad}, {"rule", "lint", bad, "--node", addr}} {
		r := cli(t, nil, "", args...).want(t, 1)
		if want := bad + `:3:61: when: sum: kind "sitrep" has no aggregate fields`; !strings.HasPrefix(r.stderr, want) {
			t.Errorf("%v: stderr %q, want it to start %q", args, r.stderr, want)
		}
	}

	cli(t, nil, "", "record", "put", "--node", addr, "--kind", "shelter.capacity", "--crisis", "oekraine", "--region", "VR19",
		"--classification", "internal", "--body", `{"municipality":"Middelburg","beds_total":200,"beds_free":6}`).want(t, 0)
	r := cli(t, nil, "", "rule", "test", good, "--node", addr, "--since", "1h").want(t, 0)
	if !strings.Contains(r.stdout, "1 episode(s)") || !strings.Contains(r.stdout, `VR19`) || !strings.Contains(r.stdout, `sum("shelter.capacity", "beds_free")=6`) {
		t.Errorf("rule test:\n%s", r.stdout)
	}
	// --since in days, as the other --since flags take it (review G, G7).
	if r := cli(t, nil, "", "rule", "test", good, "--node", addr, "--since", "7d").want(t, 0); !strings.Contains(r.stdout, "1 episode(s)") {
		t.Errorf("rule test --since 7d:\n%s", r.stdout)
	}
	if r := cli(t, nil, "", "rule", "test", good, "--node", addr, "--since", "7x").want(t, 1); !strings.Contains(r.stderr, `--since "7x": use RFC 3339`) {
		t.Errorf("rule test --since 7x: %s", r.stderr)
	}
	// A crisis no record names (a typo) lints, and cannot fire: lint --node and test say so; one no
	// record can name is refused.
	typo := filepath.Join(dir, "typo.yaml")
	os.WriteFile(typo, []byte(strings.Replace(goodSrc, "crisis: oekraine", "crisis: oekriane", 1)), 0o600)
	const note = `Note: no record here or from a partner names crisis "oekriane": the rule cannot fire until one does`
	if r := cli(t, nil, "", "rule", "lint", good, "--node", addr).want(t, 0); strings.Contains(r.stderr, "Note:") {
		t.Errorf("lint --node of a rule of a known crisis: %q", r.stderr)
	}
	if r := cli(t, nil, "", "rule", "lint", typo, "--node", addr).want(t, 0); !strings.Contains(r.stderr, note) {
		t.Errorf("lint --node of a rule of a crisis no record names: %q", r.stderr)
	}
	if r := cli(t, nil, "", "rule", "test", typo, "--node", addr, "--since", "1h").want(t, 0); !strings.Contains(r.stdout, "0 episode(s)") || !strings.Contains(r.stderr, note) {
		t.Errorf("rule test of a rule of a crisis no record names:\n%s%s", r.stdout, r.stderr)
	}
	// -o json, for a pipeline that checks rules: the problems with their places, the note a
	// warning at crisis, and the exit code as in a table.
	type lintDoc struct {
		File     string           `json:"file"`
		OK       bool             `json:"ok"`
		Problems []policy.Problem `json:"problems"`
		Warnings []policy.Problem `json:"warnings"`
	}
	var doc lintDoc
	cli(t, nil, "", "rule", "lint", bad, "--node", addr, "-o", "json").want(t, 1).oneJSON(t, &doc)
	if doc.OK || len(doc.Problems) != 1 || doc.Problems[0].Line != 3 || doc.Problems[0].Column != 61 || doc.Problems[0].Field != "when" {
		t.Errorf("lint -o json of a bad rule: %+v", doc)
	}
	doc = lintDoc{}
	cli(t, nil, "", "rule", "lint", typo, "--node", addr, "-o", "json").want(t, 0).oneJSON(t, &doc)
	if !doc.OK || len(doc.Problems) != 0 || len(doc.Warnings) != 1 || doc.Warnings[0].Field != "crisis" || !strings.Contains(doc.Warnings[0].Message, `"oekriane"`) {
		t.Errorf("lint -o json of a rule of a crisis no record names: %+v", doc)
	}
	doc = lintDoc{}
	cli(t, nil, "", "rule", "lint", good, "-o", "json").want(t, 0).oneJSON(t, &doc)
	if !doc.OK || doc.File != good || doc.Problems == nil || len(doc.Problems)+len(doc.Warnings) != 0 {
		t.Errorf("lint -o json of a good rule: %+v", doc)
	}
	os.WriteFile(typo, []byte(strings.Replace(goodSrc, "crisis: oekraine", "crisis: Oekraïne", 1)), 0o600)
	if r := cli(t, nil, "", "rule", "lint", typo).want(t, 1); !strings.Contains(r.stderr, typo+`:3:9: crisis: "Oekraïne" is not a crisis name`) {
		t.Errorf("lint of a rule of a crisis no record can name: %q", r.stderr)
	}
	// In an exercise: its history, which here is none, and a misspelt one is said to be so.
	if r := cli(t, nil, "", "rule", "test", good, "--node", addr, "--since", "1h", "--exercise", "oefening-zeland").want(t, 0); !strings.Contains(r.stdout, "0 episode(s)") ||
		!strings.Contains(r.stderr, `Note: no exercise "oefening-zeland" on this node`) {
		t.Errorf("rule test --exercise of no exercise:\n%s%s", r.stdout, r.stderr)
	}
	var eps []episodeJSON
	cli(t, nil, "", "rule", "test", good, "--node", addr, "--since", "1h", "-o", "json").want(t, 0).oneJSON(t, &eps)
	if len(eps) != 1 || eps[0].Region != "VR19" || eps[0].End != nil || len(eps[0].Values) != 2 {
		t.Errorf("rule test -o json: %+v", eps)
	}
	if r := cli(t, nil, "", "rule", "test", bad, "--node", addr).want(t, 1); !strings.Contains(r.stderr, "line 3, column 61") {
		t.Errorf("rule test of a bad rule: %q", r.stderr)
	}

	// A rule step is taken in person: the local socket cannot, and nothing is stored.
	if r := cli(t, nil, "", "rule", "apply", good, "--node", addr).want(t, 1); !strings.Contains(r.stderr, "PermissionDenied") {
		t.Errorf("rule apply on the local socket: %q", r.stderr)
	}
	var rules []ruleJSON
	cli(t, nil, "", "rule", "list", "--node", addr, "-o", "json").want(t, 0).oneJSON(t, &rules)
	if len(rules) != 0 {
		t.Errorf("rule list after a refused apply: %+v", rules)
	}
	var alerts []alertJSON
	cli(t, nil, "", "alert", "list", "--firing", "--node", addr, "-o", "json").want(t, 0).oneJSON(t, &alerts)
	if len(alerts) != 0 {
		t.Errorf("alert list with no stored rule: %+v", alerts)
	}
}

// TestRuleJSONDescription: a stored rule's description is read from its document for rule list;
// a document that does not read gives none rather than an error.
func TestRuleJSONDescription(t *testing.T) {
	r := &pb.RuleInfo{Name: "zeeland-beds-low", Source: []byte("name: zeeland-beds-low\ndescription: Minder dan 5% vrije bedden in Zeeland\nseverity: severe\n")}
	if got := toRuleJSON(r, false).Description; got != "Minder dan 5% vrije bedden in Zeeland" {
		t.Errorf("description %q", got)
	}
	if got := toRuleJSON(&pb.RuleInfo{Source: []byte(": not yaml [")}, false).Description; got != "" {
		t.Errorf("description of a document that does not read: %q", got)
	}
}

// TestCLIRuleApplyUnchanged: applying the stored rule's file again says the version stands, and
// rule list still shows version 1.
func TestCLIRuleApplyUnchanged(t *testing.T) {
	o := newOrg(t, "vr-zeeland-test.crisis.test", "VR Zeeland", "--officer", "anna")
	o.serve(t)
	rule := filepath.Join(t.TempDir(), "beds.yaml")
	os.WriteFile(rule, []byte("name: walcheren-beds-low\nseverity: severe\nwhen: sum(\"shelter.capacity\", \"beds_free\") < 100\n"), 0o600)
	apply := append([]string{"rule", "apply", rule, "--reason", "drempel afgesproken"}, o.as("anna")...)
	if r := cli(t, nil, "", apply...).want(t, 0); !strings.HasPrefix(r.stdout, "walcheren-beds-low version 1 applied by ") {
		t.Errorf("rule apply: %q", r.stdout)
	}
	if r := cli(t, nil, "", apply...).want(t, 0); !strings.HasPrefix(r.stdout, "walcheren-beds-low unchanged: version 1 stands") {
		t.Errorf("rule apply of the stored file again: %q", r.stdout)
	}
	var rules []ruleJSON
	cli(t, nil, "", "rule", "list", "--node", o.sock(), "-o", "json").want(t, 0).oneJSON(t, &rules)
	if len(rules) != 1 || rules[0].Version != 1 {
		t.Errorf("rule list after applying the same file twice: %+v", rules)
	}
}

// TestCLIRuleDeleteResolvesItsAlert: on a served node that evaluates every second, an officer
// applies a rule that then fires; rule delete says what happens to its open alert, and the alert
// is resolved, with the note, while /metrics keeps no knooppunt_rule_firing series of the rule.
func TestCLIRuleDeleteResolvesItsAlert(t *testing.T) {
	o := newOrg(t, "vr-zeeland-test.crisis.test", "VR Zeeland", "--officer", "anna")
	cfg := filepath.Join(o.dataDir, configName)
	f, err := os.OpenFile(cfg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("rules:\n  every: 1s\n")
	f.Close()
	o.serve(t)
	rule := filepath.Join(t.TempDir(), "beds.yaml")
	os.WriteFile(rule, []byte(`name: walcheren-beds-low
severity: severe
crisis: hoogwater
regions: [VR19]
when: sum("shelter.capacity", "beds_free") < 100
`), 0o600)
	cli(t, nil, "", append([]string{"rule", "apply", rule, "--reason", "drempel afgesproken"}, o.as("anna")...)...).want(t, 0)
	cli(t, nil, "", "record", "put", "--node", o.sock(), "--kind", "shelter.capacity", "--crisis", "hoogwater", "--region", "VR19",
		"--classification", "internal", "--id", "hw-vlissingen", "--body", `{"municipality":"Vlissingen","beds_total":100,"beds_free":5}`).want(t, 0)
	alerts := func(args ...string) []alertJSON {
		var out []alertJSON
		cli(t, nil, "", append([]string{"alert", "list", "--node", o.sock(), "-o", "json"}, args...)...).want(t, 0).oneJSON(t, &out)
		return out
	}
	eventually(t, 20*time.Second, "the rule to fire", func() (bool, string) {
		a := alerts("--firing")
		return len(a) == 1, fmt.Sprint(a)
	})
	firing := `knooppunt_rule_firing`
	eventually(t, 10*time.Second, "the firing gauge", func() (bool, string) {
		v := o.metric(t, firing, `region="VR19",rule="walcheren-beds-low"`)
		return v == 1, fmt.Sprint(v)
	})

	r := cli(t, nil, "", append([]string{"rule", "delete", "walcheren-beds-low", "--reason", "weg"}, o.as("anna")...)...).want(t, 0)
	if !strings.Contains(r.stdout, "walcheren-beds-low deleted (was version 1): its open alerts are resolved at the next evaluation") {
		t.Errorf("rule delete: %q", r.stdout)
	}
	eventually(t, 20*time.Second, "the alert of the deleted rule resolved", func() (bool, string) {
		a := alerts()
		return len(a) == 1 && a[0].State == "resolved" && a[0].ResolvedAt != nil && len(alerts("--firing")) == 0, fmt.Sprint(a)
	})
	// Withdrawn, not cleared: the table says so, and -o json says who deleted the rule.
	if a := alerts(); !strings.HasPrefix(a[0].Withdrawn, "rule walcheren-beds-low was deleted by spiffe://vr-zeeland-test.crisis.test/user/anna") {
		t.Errorf("alert list -o json of a withdrawn alert: withdrawn %q", a[0].Withdrawn)
	}
	if r := cli(t, nil, "", "alert", "list", "--node", o.sock()).want(t, 0); !strings.Contains(r.stdout, "  withdrawn  ") || strings.Contains(r.stdout, "resolved") {
		t.Errorf("alert list of a withdrawn alert:\n%s", r.stdout)
	}
	if v := o.metric(t, firing, `region="VR19",rule="walcheren-beds-low"`); v != -1 {
		t.Errorf("/metrics still has knooppunt_rule_firing of the deleted rule: %g", v)
	}
}

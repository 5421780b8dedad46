package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/knooppunt/knooppunt/federation/fedtest"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestAlertListPartners: alert list lists the alerts of this node's own rules, and with
// --partners also those partners share with it, each with its source; without it, an empty list
// says where partners' alerts are.
func TestAlertListPartners(t *testing.T) {
	f := fedtest.Start(t, fedtest.Options{Orgs: 2})
	a, b := f.Org("a"), f.Org("b")
	a.Approve(t, "name: a-alerts\npurpose: vroege waarschuwing\nrecipients: [spiffe://"+b.TD.Name()+"]\nkinds: [alert]\nmax_classification: internal\n")
	// Put by hand, under an id the evaluator does not use: an alert of the evaluator's own whose
	// rule a does not hold would be resolved at its next tick (node/alerting), and the test
	// would race it.
	alert := &pb.Record{Id: "handmatig-bedden-VR19-1", Kind: "alert", Crisis: "oekraine", Region: "VR19", Classification: pb.Classification_INTERNAL,
		Labels: map[string]string{"rule": "bedden", "status": "firing"}, Body: []byte(`{"identifier":"alert-bedden-VR19-1","sender":"a","sent":"2026-12-04T08:00:00+00:00",
		"status":"Actual","msgType":"Alert","scope":"Restricted","info":[{"category":["Other"],"event":"bedden","urgency":"Expected","severity":"Severe","certainty":"Likely"}],
		"rule":"bedden","rule_version":1,"region":"VR19","state":"firing","fired_at":"2026-12-04T08:00:00Z"}`)}
	a.Put(t, alert)
	addr := "unix://" + b.SocketPath()

	r := cli(t, nil, "", "alert", "list", "--firing", "--node", addr).want(t, 0)
	if !strings.Contains(r.stderr, "--partners also asks the partners") {
		t.Errorf("alert list of a node without alerts of its own: stderr %q", r.stderr)
	}
	var got []alertJSON
	fedtest.Eventually(t, 10*time.Second, "b lists a's firing alert with --partners", func() (bool, string) {
		r := cli(t, nil, "", "alert", "list", "--firing", "--partners", "--node", addr, "-o", "json").want(t, 0)
		got = nil
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
			t.Fatalf("alert list -o json: %v\n%s", err, r.stdout)
		}
		return len(got) == 1, r.stdout
	})
	if a0 := got[0]; a0.Source != a.TD.Name() || a0.Rule != "bedden" || a0.Region != "VR19" || a0.State != "firing" || a0.Severity != "Severe" || a0.Cached {
		t.Errorf("b's list of a's alert: %+v, want it as a sent it just now", a0)
	}
	if r := cli(t, nil, "", "alert", "list", "--partners", "--rule", "andere-regel", "--node", addr, "-o", "json").want(t, 0); strings.TrimSpace(r.stdout) != "[]" {
		t.Errorf("alert list --partners --rule andere-regel: %s, want none", r.stdout)
	}
	// An empty list says so, naming what it asked for, rather than print a header alone.
	if r := cli(t, nil, "", "alert", "list", "--partners", "--rule", "andere-regel", "--node", addr).want(t, 0); !strings.Contains(r.stderr, `No alerts of rule "andere-regel", here or shared by a partner: it has not fired, or no rule has that name (knooppunt rule list names this node's rules).`) {
		t.Errorf("alert list --partners --rule andere-regel: stderr %q", r.stderr)
	}

	// An alert of every crisis (a rule without one, a CAP alert imported without --crisis) is in
	// the picture of each crisis, at a and at b; "all" is no crisis to choose.
	everywhere := proto.Clone(alert).(*pb.Record)
	everywhere.Id, everywhere.Crisis, everywhere.Version = "handmatig-overal-VR19-1", "all", 0
	a.Put(t, everywhere)
	for _, o := range []*fedtest.Org{a, b} {
		fedtest.Eventually(t, 10*time.Second, o.Name+"'s picture of oekraine shows the alert of every crisis", func() (bool, string) {
			var ids []string
			for _, e := range o.Picture(t, "oekraine").Entries {
				ids = append(ids, e.Record.Id)
			}
			return slices.Contains(ids, "handmatig-overal-VR19-1") && slices.Contains(ids, "handmatig-bedden-VR19-1"), fmt.Sprint(ids)
		})
	}
	if r := cli(t, nil, "", "phase", "show", "--node", addr, "-o", "json").want(t, 0); strings.Contains(r.stdout, `"all"`) {
		t.Errorf("phase show lists the alerts of every crisis as a crisis: %s", r.stdout)
	}
	// The alert of every crisis is in a misspelt crisis's picture too, which is named by nothing
	// all the same: no sources, a note, and --fail-on-partial fails (review J, F1).
	r = cli(t, nil, "", "picture", "--crisis", "oekrain", "--fail-on-partial", "--node", addr, "-o", "json").want(t, exitPartial)
	if !strings.Contains(r.stdout, "handmatig-overal-VR19-1") || !strings.Contains(r.stdout, `"sources": []`) || !strings.Contains(r.stderr, `no record here or from a partner names crisis "oekrain"`) {
		t.Errorf("picture of a misspelt crisis: stdout\n%s\nstderr %q; want the alert of every crisis, no sources, and the note", r.stdout, r.stderr)
	}

	// A partner that does not answer is named, with why and what stands in for it; its alerts
	// are its copy here. --fail-on-partial exits 3 after printing them.
	a.Stop(t)
	r = cli(t, nil, "", "alert", "list", "--firing", "--partners", "--node", addr).want(t, 0)
	if want := "Note: not every partner answered, so their alerts listed are what they sent before and may have cleared since: a ("; !strings.HasPrefix(r.stderr, want) ||
		!strings.Contains(r.stderr, "served from its copy, ") || !strings.Contains(lineWith(r.stdout, "handmatig-bedden-VR19-1"), "firing") ||
		!strings.HasPrefix(lineWith(r.stdout, "handmatig-bedden-VR19-1"), a.TD.Name()+" (cache) ") {
		t.Errorf("alert list --partners with a down: stdout\n%s\nstderr %q, want a's alert marked as from the cache, and a note that begins %q", r.stdout, r.stderr, want)
	}
	r = cli(t, nil, "", "alert", "list", "--firing", "--partners", "--fail-on-partial", "--node", addr, "-o", "json").want(t, exitPartial)
	if got = nil; json.Unmarshal([]byte(r.stdout), &got) != nil || len(got) != 2 || !got[0].Cached || !got[1].Cached {
		t.Errorf("alert list --fail-on-partial -o json with a down: stdout %q, want a's two alerts, cached, before the exit", r.stdout)
	}
	if r := cli(t, nil, "", "alert", "list", "--fail-on-partial", "--node", addr).want(t, 1); !strings.Contains(r.stderr, "--fail-on-partial: only --partners asks partners") {
		t.Errorf("alert list --fail-on-partial without --partners: stderr %q", r.stderr)
	}
}

// TestUnansweredPeers: the note of alert list --partners names each partner that did not answer,
// with its state and error, and what stands in for its answer; one that answered is not named.
func TestUnansweredPeers(t *testing.T) {
	got := unansweredPeers([]*pb.PeerStatus{
		{Peer: "lcvs", State: "answered", Count: 2},
		{Peer: "vr-zeeland", State: "unreachable", Error: "connection refused", Count: 1, CacheAgeMs: 240000},
		{Peer: "szw", State: "timed out", Error: "no answer within 2s", Count: 1, CacheAgeMs: 3000, FeedOpen: true},
		{Peer: "ggdghor", State: "denied", Error: "it refuses this node"},
	})
	want := "vr-zeeland (unreachable: connection refused; served from its copy, 4m0s old), " +
		"szw (timed out: no answer within 2s; served from its copy, 3s old (its feed is still open)), " +
		"ggdghor (denied: it refuses this node; no copy: it never sent this node anything)"
	if got != want {
		t.Errorf("unansweredPeers = %q,\nwant %q", got, want)
	}
}

// TestNoAlertsSaysWhatIsTrue: an empty alert list of a rule says that the rule did not fire, or
// that no rule has the name, and what to do; it no longer reads as if a stored rule's name were
// mistyped, nor says "of this node's own rules" twice (review M, M6).
func TestNoAlertsSaysWhatIsTrue(t *testing.T) {
	for _, tc := range []struct {
		partners, firing bool
		rule, want       string
	}{
		{false, false, "", "No alerts of this node's own rules; --partners also asks the partners for theirs."},
		{false, true, "", "No firing alerts of this node's own rules; --partners also asks the partners for theirs."},
		{true, false, "", "No alerts here or shared by a partner."},
		{false, false, "utrecht-for-test", `No alerts of rule "utrecht-for-test" on this node: it has not fired, or no rule has that name (knooppunt rule list names this node's rules); --partners also asks the partners for theirs.`},
		{false, true, "utrecht-for-test", `No firing alerts of rule "utrecht-for-test" on this node: it does not fire now, or no rule has that name (knooppunt rule list names this node's rules); --partners also asks the partners for theirs.`},
		{true, true, "utrecht-for-test", `No firing alerts of rule "utrecht-for-test", here or shared by a partner: it does not fire now, or no rule has that name (knooppunt rule list names this node's rules).`},
	} {
		if got := noAlerts(tc.partners, tc.firing, tc.rule); got != tc.want {
			t.Errorf("noAlerts(partners %v, firing %v, %q):\n got %s\nwant %s", tc.partners, tc.firing, tc.rule, got, tc.want)
		}
	}
}

// TestAlertStateSaysReopened: an alert opened again says so in alert list, beside FIRED AT, its
// first firing, and -o json gives reopened and reopened_at from its body; a withdrawn one reads
// withdrawn (review M, M6).
func TestAlertStateSaysReopened(t *testing.T) {
	var a alertJSON
	if err := json.Unmarshal([]byte(`{"rule":"r","region":"VR19","state":"firing","fired_at":"2026-12-06T12:42:36Z","reopened":2,"reopened_at":"2026-12-06T12:46:58Z"}`), &a); err != nil {
		t.Fatal(err)
	}
	again := time.Date(2026, 12, 6, 12, 46, 58, 0, time.UTC)
	if a.Reopened != 2 || a.ReopenedAt == nil || !a.ReopenedAt.Equal(again) {
		t.Fatalf("reopened %d at %v: want 2 at %v", a.Reopened, a.ReopenedAt, again)
	}
	if got, want := a.state(), "firing (again since "+stamp(again)+", 2×)"; got != want {
		t.Errorf("state %q, want %q", got, want)
	}
	out, _ := json.Marshal(a)
	if !strings.Contains(string(out), `"reopened":2,"reopened_at":"2026-12-06T12:46:58Z"`) {
		t.Errorf("-o json of a reopened alert: %s", out)
	}
	a.State, a.Withdrawn = "resolved", "rule r was deleted"
	if got := a.state(); got != "withdrawn" {
		t.Errorf("state of a withdrawn alert %q, want withdrawn", got)
	}
}

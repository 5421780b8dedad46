package federation_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/knooppunt/knooppunt/federation/fedtest"
	"github.com/knooppunt/knooppunt/node/db"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestAConfigReloadIsAudited: placing a peer in a group in the config file, and giving a role
// there, is in the audit log, with the approved policies the group change makes grant the peer
// records. It widened sharing with no trace but a log line (review L, L5).
func TestAConfigReloadIsAudited(t *testing.T) {
	var roles []string
	dropC := false
	f := fedtest.Start(t, fedtest.Options{Orgs: 3, PeersOf: func(name string) []string {
		if name == "a" && dropC {
			return []string{"b"}
		}
		return []string{"a", "b", "c"}
	}, Roles: func(name string) []string {
		if name == "a" {
			return roles
		}
		return nil
	}, Groups: func(name string) []string {
		if name == "c" {
			return []string{"all", "regios"}
		}
		return []string{"all"}
	}})
	a, b := f.Orgs[0], f.Orgs[1]
	id := a.Approve(t, policyDoc("sitreps-to-regios", "group:regios", "sitrep", "internal", ""))

	b.Groups = []string{"all", "regios"}
	roles = []string{"{id: spiffe://" + a.TD.Name() + "/user/derde, role: officer}"}
	f.WriteConfigs(t)
	f.Reload(t)

	var placed, given bool
	for _, e := range a.Audit(t, db.AuditConfigReload) {
		var d struct {
			Groups       []string `json:"groups"`
			GroupsBefore []string `json:"groups_before"`
			Granting     []string `json:"granting"`
			Given        []string `json:"given"`
		}
		if err := json.Unmarshal([]byte(e.Detail), &d); err != nil {
			t.Fatalf("detail of %s: %v", e.Detail, err)
		}
		if !strings.HasPrefix(e.Actor, "config file of replica ") {
			t.Errorf("config.reload entry by %q", e.Actor)
		}
		switch e.Subject {
		case b.TD.Name():
			placed = placed || slices.Contains(d.Groups, "regios") && !slices.Contains(d.GroupsBefore, "regios") && slices.Equal(d.Granting, []string{id})
		case "roles":
			given = given || slices.Equal(d.Given, []string{"spiffe://" + a.TD.Name() + "/user/derde officer"})
		}
	}
	if !placed || !given {
		t.Errorf("a's audit log: b placed in regios with %s granting: %v; the officer role given: %v\n%v", id, placed, given, a.Audit(t, db.AuditConfigReload))
	}
	if got := b.Audit(t, db.AuditConfigReload); slices.ContainsFunc(got, func(e *pb.AuditEntry) bool { return e.Subject == "roles" }) {
		t.Errorf("b's audit log has a roles change of a's file: %v", got)
	}

	// The same changes made while a is stopped are audited when it starts again: b taken out of
	// regios, c out of the file, the role taken.
	a.Stop(t)
	b.Groups, roles, dropC = []string{"all"}, nil, true
	f.WriteConfigs(t)
	a.Start(t)
	const stopped = ", edited while it was stopped"
	fedtest.Eventually(t, 20*time.Second, "a audits what was changed while it was stopped", func() (bool, string) {
		var moved, removed, taken bool
		got := a.Audit(t, db.AuditConfigReload)
		for _, e := range got {
			if !strings.HasSuffix(e.Actor, stopped) {
				continue
			}
			var d struct {
				Groups       []string `json:"groups"`
				GroupsBefore []string `json:"groups_before"`
				Removed      bool     `json:"removed"`
				Taken        []string `json:"taken"`
			}
			if err := json.Unmarshal([]byte(e.Detail), &d); err != nil {
				t.Fatalf("detail of %s: %v", e.Detail, err)
			}
			switch e.Subject {
			case b.TD.Name():
				moved = slices.Equal(d.Groups, []string{"all"}) && slices.Contains(d.GroupsBefore, "regios")
			case f.Orgs[2].TD.Name():
				removed = d.Removed
			case "roles":
				taken = slices.Equal(d.Taken, []string{"spiffe://" + a.TD.Name() + "/user/derde officer"})
			}
		}
		return moved && removed && taken, fmt.Sprintf("moved %v, removed %v, taken %v in %v", moved, removed, taken, got)
	})
	// Started again with the file as it is, nothing more is audited.
	n := len(a.Audit(t, db.AuditConfigReload))
	a.Stop(t)
	a.Start(t)
	// Once a write commits there is a leader to take entries; they would be in by a second on.
	a.Put(t, fedtest.Sitrep("after-restart", "oekraine", pb.Classification_INTERNAL, "na de herstart"))
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if got := a.Audit(t, db.AuditConfigReload); len(got) != n {
			t.Fatalf("a restart with an unchanged file audited %d more entries: %v", len(got)-n, got[n:])
		}
	}
}

// TestARefusedReloadChangesNothing: a config edit that drops a peer and adds one whose
// bundle_file holds another org's CA is refused whole: the dropped peer does not start to leave
// (review Q, Q4: it had left before the bad file was found).
func TestARefusedReloadChangesNothing(t *testing.T) {
	f := fedtest.Start(t, fedtest.Options{Orgs: 3})
	a, b, c := f.Orgs[0], f.Orgs[1], f.Orgs[2]
	data, err := os.ReadFile(a.ConfigFile())
	if err != nil {
		t.Fatal(err)
	}
	entry := regexp.MustCompile(`(?m)^  - name: ` + c.Name + `\n(    .*\n)+`)
	if !entry.Match(data) {
		t.Fatalf("no entry of peer %s in a's config:\n%s", c.Name, data)
	}
	bad := entry.ReplaceAll(data, []byte("  - name: x\n    trust_domain: x.crisis.test\n    addresses: [\"127.0.0.1:1\"]\n    bundle_file: "+b.BundleFile()+"\n"))
	if err := os.WriteFile(a.ConfigFile(), bad, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.Node.Reload(a.ConfigFile()); err == nil || !strings.Contains(err.Error(), "holds the CA of "+b.TD.Name()) {
		t.Fatalf("reload with x's bundle_file holding b's CA: %v, want it refused naming b's trust domain", err)
	}
	// Nothing went through Raft: no leave step for c.
	raft, err := a.Node.DB().Peers(context.Background())
	if err != nil || len(raft) != 0 {
		t.Fatalf("a's peers through Raft after the refused reload: %v (%v), want none: c must not be leaving", raft, err)
	}
}

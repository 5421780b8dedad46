package federation_test

import (
	"encoding/json"
	"fmt"
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

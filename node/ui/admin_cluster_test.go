package ui_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/knooppunt/knooppunt/node/clustertest"
	"github.com/knooppunt/knooppunt/node/config"
)

// TestAdminPageOfAReplicaWithoutLeader: on a node of three replicas and a fourth that waits to be
// joined, each with its web interface, the admin's page of the fourth says it is not a member
// of its group and where to look; that of a replica cut off from its group says it knows no
// leader, since when, and the two causes; the leader's page names itself and warns of nothing.
func TestAdminPageOfAReplicaWithoutLeader(t *testing.T) {
	c, p := startCluster(t, "{id: spiffe://"+clustertest.Org+"/user/ada, role: admin}", "r4")
	waiting := c.Replica("r4")
	leader := c.Leader(t, 15*time.Second, c.Replicas[:3]...)
	var follower *clustertest.Replica
	for _, r := range c.Replicas[:3] {
		if r != leader {
			follower = r
			break
		}
	}
	p.signInAs("ada")
	b := newBrowser(t)
	admin := func(r *clustertest.Replica) string {
		t.Helper()
		resp, page := b.get(t, "http://"+r.UI+"/beheer")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("the node's page on %s: %d\n%s", r.ID, resp.StatusCode, page)
		}
		return page
	}

	if page := admin(leader); strings.Contains(page, `id="raft-waarschuwing"`) || !strings.Contains(page, `<dd id="raft-leider">`+leader.ID+`</dd>`) {
		t.Errorf("the leader's page warns, or does not name it as leader:\n%s", page)
	}
	page := admin(waiting)
	for _, want := range []string{
		`id="raft-waarschuwing"><p class="utrecht-paragraph">Deze replica is geen lid van haar groep: zij is verwijderd, of wacht erop te worden toegevoegd (knooppunt cluster join op de leider).`,
		"cluster status op een lid toont de groep",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the page of a replica waiting to be joined lacks %q:\n%s", want, page)
		}
	}

	// A follower that never heard from its leader would rightly say it has known none.
	clustertest.Eventually(t, 10*time.Second, follower.ID+" knows its leader", func() (bool, string) {
		return follower.Node.Store().Leader() == leader.ID, follower.Node.Store().Leader()
	})
	follower.Node.Store().Isolate(true)
	t.Cleanup(func() { follower.Node.Store().Isolate(false) })
	clustertest.Eventually(t, 10*time.Second, follower.ID+"'s page to say it knows no leader", func() (bool, string) {
		page = admin(follower)
		return strings.Contains(page, `id="raft-waarschuwing"`), page
	})
	for _, want := range []string{
		`<dd id="raft-leider">geen; deze replica kende er zojuist nog een</dd>`,
		"Deze replica kent geen leider: zij bereikt geen meerderheid van haar groep, of zij is verwijderd terwijl zij uit stond of afgesneden was",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the page of a replica cut off from its group lacks %q:\n%s", want, page)
		}
	}
}

// startCluster starts a node of three replicas, each with its web interface, whose people sign
// in at the provider it returns, with one role (a YAML list item under roles:); and the replicas
// named in waiting, started and waiting to be joined.
func startCluster(t *testing.T, role string, waiting ...string) (*clustertest.Cluster, *provider) {
	t.Helper()
	p := newProvider(t)
	secret := secretFile(t, clustertest.ShortDir(t))
	c := clustertest.Start(t, clustertest.Options{
		Roles: []string{role},
		UI:    &config.OIDC{Issuer: p.issuer, ClientID: testClientID, ClientSecretFile: secret},
	})
	for _, id := range waiting {
		c.AddReplica(t, id).Start(t)
	}
	var uis []string
	for _, r := range c.Replicas {
		uis = append(uis, "http://"+r.UI)
	}
	p.serve(t, uis[0], uis[1:]...)
	return c, p
}

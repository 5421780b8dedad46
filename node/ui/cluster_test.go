package ui_test

import (
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/knooppunt/knooppunt/node/clustertest"
)

// TestFollowerSendsOfficersToTheLeader: on a node of three replicas, each with its web
// interface, an officer on a follower's interface is told that policy steps and phase changes
// are taken on the leader, with a link to the same page there, both before filling in a form and
// when a form reaches the follower anyway; on the leader, the step is taken.
func TestFollowerSendsOfficersToTheLeader(t *testing.T) {
	c, p := startCluster(t, "{id: spiffe://"+clustertest.Org+"/user/officer-a, role: officer}")
	leader := c.Leader(t, 15*time.Second, c.Replicas...)
	var follower *clustertest.Replica
	for _, r := range c.Replicas {
		if r != leader {
			follower = r
			break
		}
	}
	fURL, lURL := "http://"+follower.UI, "http://"+leader.UI

	b := newBrowser(t)
	p.signInAs("officer-a")
	resp, page := b.get(t, fURL+"/fase")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the phase page on the follower: %d\n%s", resp.StatusCode, page)
	}
	token := csrfOf(t, page)
	// A form that reaches the follower: nothing is set, and the officer is sent on.
	resp, page = b.post(t, fURL+"/fase/wijzigen", url.Values{"csrf": {token}, "crisis": {"oekraine"}, "phase": {"warm"}, "reden": {"test"}})
	link := regexp.MustCompile(`id="leider" href="([^"]*)"`).FindStringSubmatch(page)
	if resp.StatusCode != http.StatusConflict || link == nil || html.UnescapeString(link[1]) != lURL+"/fase?crisis=oekraine&phase=warm" {
		t.Fatalf("a phase change on the follower: %d, want 409 linking to the leader %s:\n%s", resp.StatusCode, lURL, page)
	}
	// Before any form: the propose page says so at once.
	resp, page = b.get(t, fURL+"/beleid/voorstel")
	if resp.StatusCode != http.StatusConflict || !strings.Contains(page, `href="`+lURL+`/beleid/voorstel"`) || strings.Contains(page, `id="bron"`) {
		t.Fatalf("the propose page on the follower: %d, want 409 linking to the leader:\n%s", resp.StatusCode, page)
	}
	// On the leader (its own sign-in: each replica keeps its own sessions) the step is taken.
	// The link leads to the form there, with the crisis and phase that were sent in it (the
	// reason is in no address).
	resp, page = b.get(t, html.UnescapeString(link[1]))
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, `<option value="warm" selected>`) {
		t.Fatalf("the phase form on the leader: %d\n%s", resp.StatusCode, page)
	}
	resp, page = b.post(t, lURL+"/fase/bevestigen", url.Values{"csrf": {csrfOf(t, page)}, "crisis": {"oekraine"}, "phase": {"warm"}, "reden": {"test"}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, `id="bevestigen"`) {
		t.Fatalf("the phase change on the leader: %d\n%s", resp.StatusCode, page)
	}
	resp, page = b.post(t, lURL+"/fase/wijzigen", url.Values{"csrf": {csrfOf(t, page)}, "crisis": {"oekraine"}, "phase": {"warm"}, "reden": {"test"}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, `id="gedaan"`) || !strings.Contains(page, `kp-phase--warm`) {
		t.Fatalf("set the phase on the leader: %d\n%s", resp.StatusCode, page)
	}
}

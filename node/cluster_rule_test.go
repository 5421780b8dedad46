package node_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/knooppunt/knooppunt/node/clustertest"
)

// TestClusterOneAlertPerEpisodeAcrossLeaderLoss runs a stored rule, applied through a follower, in
// a group of three replicas that evaluate every second. The rule fires; the leader that wrote the alert is killed; the new
// leader, which has evaluated the same episode for several seconds, has written no second alert;
// when the rule clears, the one alert is resolved, on both survivors.
func TestClusterOneAlertPerEpisodeAcrossLeaderLoss(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{RulesEvery: time.Second, Roles: []string{"{id: spiffe://" + clustertest.Org + "/user/editor, role: editor}"}})
	leader := c.Leader(t, 15*time.Second, c.Replicas...)
	// Through a follower: a rule step is taken in person on the leader, which the follower names
	// and the editor's client (api.FollowLeader) calls.
	c.ApplyRule(t, others(c, leader)[0], clustertest.ZeelandBedsLow)
	firingOnly := func(a []string) bool { return len(a) == 1 && strings.HasSuffix(a[0], "=firing") }

	leader.PutBeds(t, 5)
	fired := leader.WaitAlerts(t, "one firing alert", firingOnly)

	leader.Kill(t)
	survivors := others(c, leader)
	next := c.Leader(t, 15*time.Second, survivors...)
	// The new leader evaluates the episode for a few seconds: still the one alert.
	until := time.Now().Add(3 * time.Second)
	clustertest.Eventually(t, 10*time.Second, "three evaluations on the new leader", func() (bool, string) {
		return time.Now().After(until), ""
	})
	if got := next.Alerts(t); !slices.Equal(got, fired) {
		t.Fatalf("after the leader change %s holds alerts %v, want only %v", next.ID, got, fired)
	}

	next.PutBeds(t, 50)
	resolved := []string{strings.TrimSuffix(fired[0], "=firing") + "=resolved"}
	for _, r := range survivors {
		r.WaitAlerts(t, "the alert resolved", func(a []string) bool { return slices.Equal(a, resolved) })
	}
}

package clusterproc

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/knooppunt/knooppunt/node/clustertest"
)

// TestProcessOneAlertPerEpisodeAcrossLeaderKill runs a stored rule in a group of three
// `knooppunt serve` processes that evaluate every second. The rule fires, and the leader process
// that decided it is killed with SIGKILL while the rule fires. The new leader evaluates the same
// episode for several seconds and writes no second alert; the killed replica, restarted, holds
// the one alert too; when the rule clears, the one alert is resolved on all three, and the next
// episode opens it again.
func TestProcessOneAlertPerEpisodeAcrossLeaderKill(t *testing.T) {
	knooppunt(t)
	c := clustertest.New(t, clustertest.Options{RulesEvery: time.Second, Roles: []string{"{id: spiffe://" + clustertest.Org + "/user/editor, role: editor}"}})
	procs := startAll(t, c)
	leader := c.Leader(t, 20*time.Second, c.Replicas...)
	c.ApplyRule(t, leader, clustertest.ZeelandBedsLow)
	oneFiring := func(a []string) bool { return len(a) == 1 && strings.HasSuffix(a[0], "=firing") }

	leader.PutBeds(t, 5)
	fired := leader.WaitAlerts(t, "one firing alert", oneFiring)
	procs[leader.ID].Kill(t)
	survivors := except(c, leader)
	next := c.Leader(t, 20*time.Second, survivors...)
	t.Logf("%s (the leader) killed while %s fires; %s leads", leader.ID, fired[0], next.ID)
	// The new leader evaluates the episode for several seconds: still the one alert.
	until := time.Now().Add(4 * time.Second)
	clustertest.Eventually(t, 10*time.Second, "four evaluations on the new leader", func() (bool, string) { return time.Now().After(until), "" })
	for _, r := range survivors {
		if got := r.Alerts(t); !slices.Equal(got, fired) {
			t.Fatalf("after the leader was killed %s holds alerts %v, want only %v", r.ID, got, fired)
		}
	}

	procs[leader.ID] = start(t, leader)
	procs[leader.ID].ready(t, 60*time.Second)
	c.Converged(t, 30*time.Second, c.Replicas...)
	if got := leader.Alerts(t); !slices.Equal(got, fired) {
		t.Fatalf("the restarted %s holds alerts %v, want only %v", leader.ID, got, fired)
	}

	next.PutBeds(t, 50)
	resolved := []string{strings.TrimSuffix(fired[0], "=firing") + "=resolved"}
	for _, r := range c.Replicas {
		r.WaitAlerts(t, "the one alert resolved", func(a []string) bool { return slices.Equal(a, resolved) })
	}
	// The next episode, within the hour, opens the one alert again (alerting.Reopen); a leader
	// that did not resolve it itself (one elected meanwhile) writes an alert of its own.
	next.PutBeds(t, 1)
	for _, r := range c.Replicas {
		r.WaitAlerts(t, "the next episode's alert", func(a []string) bool {
			return slices.Equal(a, fired) || len(a) == 2 && slices.Contains(a, resolved[0]) && (strings.HasSuffix(a[0], "=firing") || strings.HasSuffix(a[1], "=firing"))
		})
	}
	checksums(t, c, procs)
}

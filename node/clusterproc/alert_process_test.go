package clusterproc

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/knooppunt/knooppunt/federation/identity"
	"github.com/knooppunt/knooppunt/federation/identity/identitytest"
	"github.com/knooppunt/knooppunt/node/api"
	"github.com/knooppunt/knooppunt/node/clustertest"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestProcessOneAlertPerEpisodeAcrossLeaderKill runs a stored rule in a group of three
// `knooppunt serve` processes that evaluate every second. The rule fires, and the leader process
// that decided it is killed with SIGKILL while the rule fires. The new leader evaluates the same
// episode for several seconds and writes no second alert; the killed replica, restarted, holds
// the one alert too; when the rule clears, the one alert is resolved on all three, and a new
// episode is a second alert.
func TestProcessOneAlertPerEpisodeAcrossLeaderKill(t *testing.T) {
	knooppunt(t)
	c := clustertest.New(t, clustertest.Options{RulesEvery: time.Second, Roles: []string{"{id: spiffe://" + clustertest.Org + "/user/editor, role: editor}"}})
	procs := startAll(t, c)
	leader := c.Leader(t, 20*time.Second, c.Replicas...)
	editor := identitytest.SVID(t, c.CA, "/user/editor", identity.SVIDOptions{})
	creds := identity.ClientCredentials(editor, identitytest.Bundle(c.CA), identity.AuthorizeReplica(c.TD))
	conn, err := grpc.NewClient(leader.API, grpc.WithTransportCredentials(creds), grpc.WithChainUnaryInterceptor(api.FollowLeader(creds)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if _, err := pb.NewRuleServiceClient(conn).Apply(ctx, &pb.ApplyRuleRequest{Source: []byte(`name: zeeland-beds-low
severity: severe
crisis: oekraine
regions: [VR19]
when: sum("shelter.capacity", "beds_free") < 10
clear: sum("shelter.capacity", "beds_free") > 20
`)}); err != nil {
		t.Fatal(err)
	}
	beds := func(r *clustertest.Replica, free int) {
		t.Helper()
		r.Put(t, &pb.Record{Id: "middelburg", Kind: "shelter.capacity", Crisis: "oekraine", Region: "VR19", Classification: pb.Classification_INTERNAL,
			Body: fmt.Appendf(nil, `{"municipality":"Middelburg","beds_total":100,"beds_free":%d}`, free)})
	}
	// alerts are a replica's alert records as id=status, sorted.
	alerts := func(r *clustertest.Replica) []string {
		t.Helper()
		resp, err := r.Records(t).List(ctx, &pb.ListRequest{Kind: "alert"})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, rec := range resp.Records {
			out = append(out, rec.Id+"="+rec.Labels["status"])
		}
		slices.Sort(out)
		return out
	}
	waitAlerts := func(r *clustertest.Replica, what string, ok func([]string) bool) []string {
		t.Helper()
		var got []string
		clustertest.Eventually(t, 30*time.Second, what+" on "+r.ID, func() (bool, string) {
			got = alerts(r)
			return ok(got), fmt.Sprint(got)
		})
		return got
	}
	oneFiring := func(a []string) bool { return len(a) == 1 && strings.HasSuffix(a[0], "=firing") }

	beds(leader, 5)
	fired := waitAlerts(leader, "one firing alert", oneFiring)
	procs[leader.ID].Kill(t)
	survivors := except(c, leader)
	next := c.Leader(t, 20*time.Second, survivors...)
	t.Logf("%s (the leader) killed while %s fires; %s leads", leader.ID, fired[0], next.ID)
	// The new leader evaluates the episode for several seconds: still the one alert.
	until := time.Now().Add(4 * time.Second)
	clustertest.Eventually(t, 10*time.Second, "four evaluations on the new leader", func() (bool, string) { return time.Now().After(until), "" })
	for _, r := range survivors {
		if got := alerts(r); !slices.Equal(got, fired) {
			t.Fatalf("after the leader was killed %s holds alerts %v, want only %v", r.ID, got, fired)
		}
	}

	procs[leader.ID] = start(t, leader)
	procs[leader.ID].ready(t, 60*time.Second)
	c.Converged(t, 30*time.Second, c.Replicas...)
	if got := alerts(leader); !slices.Equal(got, fired) {
		t.Fatalf("the restarted %s holds alerts %v, want only %v", leader.ID, got, fired)
	}

	beds(next, 50)
	resolved := []string{strings.TrimSuffix(fired[0], "=firing") + "=resolved"}
	for _, r := range c.Replicas {
		waitAlerts(r, "the one alert resolved", func(a []string) bool { return slices.Equal(a, resolved) })
	}
	// The next episode is an alert of its own; the first stays resolved.
	beds(next, 1)
	for _, r := range c.Replicas {
		waitAlerts(r, "a second episode's alert", func(a []string) bool {
			return len(a) == 2 && slices.Contains(a, resolved[0]) && (strings.HasSuffix(a[0], "=firing") || strings.HasSuffix(a[1], "=firing"))
		})
	}
	checksums(t, c, procs)
}

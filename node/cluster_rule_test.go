package node_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/knooppunt/knooppunt/federation/identity"
	"github.com/knooppunt/knooppunt/federation/identity/identitytest"
	"github.com/knooppunt/knooppunt/node/api"
	"github.com/knooppunt/knooppunt/node/clustertest"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestClusterOneAlertPerEpisodeAcrossLeaderLoss runs a stored rule in a group of three replicas
// that evaluate every second. The rule fires; the leader that wrote the alert is killed; the new
// leader, which has evaluated the same episode for several seconds, has written no second alert;
// when the rule clears, the one alert is resolved, on both survivors.
func TestClusterOneAlertPerEpisodeAcrossLeaderLoss(t *testing.T) {
	td := clustertest.Org
	c := clustertest.Start(t, clustertest.Options{RulesEvery: time.Second, Roles: []string{"{id: spiffe://" + td + "/user/editor, role: editor}"}})
	leader := c.Leader(t, 15*time.Second, c.Replicas...)
	editor := identitytest.SVID(t, c.CA, "/user/editor", identity.SVIDOptions{})
	creds := identity.ClientCredentials(editor, identitytest.Bundle(c.CA), identity.AuthorizeReplica(c.TD))
	conn, err := grpc.NewClient(leader.API, grpc.WithTransportCredentials(creds), grpc.WithChainUnaryInterceptor(api.FollowLeader(creds)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
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
	// alerts are a replica's alert records as id=status.
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
		return out
	}
	waitAlerts := func(r *clustertest.Replica, what string, ok func([]string) bool) []string {
		t.Helper()
		var got []string
		clustertest.Eventually(t, 20*time.Second, what+" on "+r.ID, func() (bool, string) {
			got = alerts(r)
			return ok(got), fmt.Sprint(got)
		})
		return got
	}
	firingOnly := func(a []string) bool { return len(a) == 1 && a[0][len(a[0])-len("=firing"):] == "=firing" }

	beds(leader, 5)
	fired := waitAlerts(leader, "one firing alert", firingOnly)

	leader.Kill(t)
	survivors := others(c, leader)
	next := c.Leader(t, 15*time.Second, survivors...)
	// The new leader evaluates the episode for a few seconds: still the one alert.
	until := time.Now().Add(3 * time.Second)
	clustertest.Eventually(t, 10*time.Second, "three evaluations on the new leader", func() (bool, string) {
		return time.Now().After(until), ""
	})
	if got := alerts(next); !slices.Equal(got, fired) {
		t.Fatalf("after the leader change %s holds alerts %v, want only %v", next.ID, got, fired)
	}

	beds(next, 50)
	resolved := []string{fired[0][:len(fired[0])-len("=firing")] + "=resolved"}
	for _, r := range survivors {
		waitAlerts(r, "the alert resolved", func(a []string) bool { return slices.Equal(a, resolved) })
	}
}

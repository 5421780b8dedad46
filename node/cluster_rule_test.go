package node_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/knooppunt/knooppunt/federation/identity"
	"github.com/knooppunt/knooppunt/federation/identity/identitytest"
	"github.com/knooppunt/knooppunt/node/api"
	"github.com/knooppunt/knooppunt/node/clustertest"
	"github.com/knooppunt/knooppunt/node/metrics"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
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

// TestClusterDeletedRuleResolvesItsAlert: in a group of three replicas that evaluate every
// second, a rule fires; an editor deletes it through a follower; the leader resolves the alert,
// saying who deleted the rule, on every replica, and knooppunt_rule_firing keeps no series of
// it.
func TestClusterDeletedRuleResolvesItsAlert(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{RulesEvery: time.Second, Roles: []string{"{id: spiffe://" + clustertest.Org + "/user/editor, role: editor}"}})
	leader := c.Leader(t, 15*time.Second, c.Replicas...)
	follower := others(c, leader)[0]
	c.ApplyRule(t, follower, clustertest.ZeelandBedsLow)
	leader.PutBeds(t, 5)
	fired := leader.WaitAlerts(t, "one firing alert", func(a []string) bool { return len(a) == 1 && strings.HasSuffix(a[0], "=firing") })
	clustertest.Eventually(t, 10*time.Second, "knooppunt_rule_firing of the firing rule", func() (bool, string) {
		v := mtlsMetric(t, "knooppunt_rule_firing", "rule", "zeeland-beds-low")
		return v == 1, fmt.Sprint(v)
	})

	editor := identitytest.SVID(t, c.CA, "/user/editor", identity.SVIDOptions{})
	creds := identity.ClientCredentials(editor, identitytest.Bundle(c.CA), identity.AuthorizeReplica(c.TD))
	conn, err := grpc.NewClient(follower.API, grpc.WithTransportCredentials(creds), grpc.WithChainUnaryInterceptor(api.FollowLeader(creds)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// A leader change while the delete commits may have stored it: delete again until it is gone.
	rules := pb.NewRuleServiceClient(conn)
	clustertest.Eventually(t, 15*time.Second, "the rule deleted", func() (bool, string) {
		_, err := rules.Delete(clustertest.Call(t), &pb.DeleteRuleRequest{Name: "zeeland-beds-low", Reason: "drempel vervalt"})
		switch status.Code(err) {
		case codes.OK, codes.NotFound: // NotFound: an attempt that answered Aborted was stored
			return true, ""
		case codes.Aborted, codes.Unavailable:
			return false, err.Error()
		}
		t.Fatalf("delete: %v", err)
		return false, ""
	})

	id := strings.TrimSuffix(fired[0], "=firing")
	for _, r := range c.Replicas {
		r.WaitAlerts(t, "the alert of the deleted rule resolved", func(a []string) bool { return slices.Equal(a, []string{id + "=resolved"}) })
		rec, err := r.Records(t).Get(clustertest.Call(t), &pb.GetRequest{Id: id})
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			State     string `json:"state"`
			Withdrawn string `json:"withdrawn"`
		}
		json.Unmarshal(rec.Body, &body)
		if want := "rule zeeland-beds-low was deleted by spiffe://" + clustertest.Org + "/user/editor at "; body.State != "resolved" || !strings.HasPrefix(body.Withdrawn, want) ||
			!strings.Contains(body.Withdrawn, `("drempel vervalt")`) {
			t.Errorf("on %s: state %q, withdrawn %q: want resolved, starting %q, with the reason", r.ID, body.State, body.Withdrawn, want)
		}
	}
	if n := ruleSeries(t, "zeeland-beds-low"); n != 0 {
		t.Errorf("knooppunt_rule_firing keeps %d series of the deleted rule", n)
	}
}

// ruleSeries counts the series of knooppunt_rule_firing of a rule.
func ruleSeries(t *testing.T, rule string) int {
	t.Helper()
	return metrics.Series("knooppunt_rule_firing", map[string]string{"rule": rule})
}

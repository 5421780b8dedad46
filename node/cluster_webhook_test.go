package node_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/knooppunt/knooppunt/node/clustertest"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestClusterWebhookLeaderKilledDuringDelivery kills the leader of a group of three while it
// delivers a webhook's queue. The new leader goes on from the committed acknowledgements: every
// acknowledged write arrives, in commit order; the only delivery that may arrive twice is the
// old leader's last one, whose acknowledgement had not committed, and it comes again with the
// same webhook-id; no delivery the old leader had acknowledged is sent again.
func TestClusterWebhookLeaderKilledDuringDelivery(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{})
	old := c.Leader(t, 10*time.Second, c.Replicas...)
	rc := newReceiver(t)
	// A receiver that takes a little time, so that the kill finds deliveries in flight.
	rc.answer = func(*http.Request) int { time.Sleep(3 * time.Millisecond); return 0 }
	resp, err := pb.NewWebhookServiceClient(old.Local(t)).Add(clustertest.Call(t), &pb.AddWebhookRequest{Url: rc.url("/hook")})
	if err != nil {
		t.Fatal(err)
	}
	rc.setSecret(resp.Secret)

	var want []string
	put := func(via *clustertest.Replica, i int) {
		id := fmt.Sprintf("s%02d", i%10)
		res := via.Put(t, shelter(id))
		want = append(want, fmt.Sprintf("%s/%s@%d", c.TD.Name(), id, res.Version))
	}
	for i := range 60 {
		put(old, i)
	}
	rc.waitFor(20*time.Second, "a third of the deliveries before the kill", func(a []arrival) bool { return len(a) >= 20 })
	old.Kill(t)
	survivors := others(c, old)
	for i := 60; i < 80; i++ {
		put(survivors[i%2], i)
	}
	got := rc.waitFor(30*time.Second, "every acknowledged write", func(a []arrival) bool { return len(distinct(a)) >= len(want) })

	if g := recordVersions(distinct(got)); !slices.Equal(g, want) {
		t.Fatalf("arrived, first arrivals only, %v\nwant %v", g, want)
	}
	oldAgent := "(" + old.ID + ")"
	lastOld := -1
	for i, a := range got {
		if strings.Contains(a.agent, oldAgent) {
			lastOld = i
		}
	}
	seen := map[string]int{}
	repeats := 0
	for i, a := range got {
		first, again := seen[a.message]
		if !again {
			seen[a.message] = i
			continue
		}
		repeats++
		if first != lastOld || strings.Contains(a.agent, oldAgent) {
			t.Errorf("%s arrived at %d from %s and again at %d from %s: only the old leader's last delivery (at %d) may come again, from the new leader",
				a.message, first, got[first].agent, i, a.agent, lastOld)
		}
	}
	t.Logf("%s killed after its delivery %d of %d; %d deliveries arrived again", old.ID, lastOld+1, len(want), repeats)
	if lastOld < 0 || lastOld == len(got)-1 {
		t.Fatalf("the old leader delivered at %d of %d: the kill did not happen during delivery", lastOld, len(got))
	}
	// Each delivery was acknowledged exactly once: the survivors count as many as arrived.
	for _, r := range survivors {
		clustertest.Eventually(t, 10*time.Second, "the acknowledgements on "+r.ID, func() (bool, string) {
			list, err := pb.NewWebhookServiceClient(r.Local(t)).List(clustertest.Call(t), &pb.ListWebhooksRequest{})
			if err != nil || len(list.Webhooks) != 1 {
				return false, fmt.Sprint(list, err)
			}
			w := list.Webhooks[0]
			return w.Delivered == int64(len(want)) && w.Queued == 0, fmt.Sprintf("delivered %d, queued %d", w.Delivered, w.Queued)
		})
	}
}

// distinct is the arrivals without repeats of a webhook-id, in order of first arrival.
func distinct(got []arrival) []arrival {
	seen := map[string]bool{}
	var out []arrival
	for _, a := range got {
		if !seen[a.message] {
			seen[a.message] = true
			out = append(out, a)
		}
	}
	return out
}

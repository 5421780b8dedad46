package ui_test

import (
	"context"
	"fmt"
	"html"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/knooppunt/knooppunt/federation/fedtest"
	"github.com/knooppunt/knooppunt/node/clustertest"
	"github.com/knooppunt/knooppunt/node/config"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestLivePictureOnAFollowerWhenAPartnerGoesAndComes: on a node of three replicas, only the
// leader subscribes to the partner lcvs. A picture open on a follower's web interface (most of
// a group's people, behind a load balancer) learns that lcvs stopped, and that it started
// again, within seconds, as one on the leader does, not at its next minute: the follower
// watches the leader's subscriptions (ReplicaService WatchPartners), and its stream tells the
// page, whose fetch then asks lcvs. Once the leader is cut off from its group, alive, a
// follower watches the new leader: lcvs's next stop is told there too.
func TestLivePictureOnAFollowerWhenAPartnerGoesAndComes(t *testing.T) {
	p := newProvider(t)
	secret := secretFile(t, clustertest.ShortDir(t))
	fed := fedtest.Start(t, fedtest.Options{Orgs: 1, Names: []string{"lcvs"}})
	lcvs := fed.Org("lcvs")
	c := clustertest.New(t, clustertest.Options{
		Roles: []string{"{id: spiffe://" + clustertest.Org + "/user/anna, role: reader}"},
		UI:    &config.OIDC{Issuer: p.issuer, ClientID: testClientID, ClientSecretFile: secret},
		Peers: []config.Peer{{Name: "lcvs", TrustDomain: lcvs.TD.Name(), Addresses: []string{lcvs.Addr}, BundleFile: lcvs.BundleFile()}},
	})
	// lcvs has the group as its partner before the group subscribes: a refusal would hold the
	// leader's subscription back for minutes.
	var apis, uis []string
	for _, r := range c.Replicas {
		apis, uis = append(apis, r.API), append(uis, "http://"+r.UI)
	}
	fed.AddPeers(t, config.Peer{Name: "kc", TrustDomain: clustertest.Org, Addresses: apis, BundleFile: c.BundleFile})
	c.StartAll(t)
	p.serve(t, uis[0], uis[1:]...)
	leader := c.Leader(t, 15*time.Second, c.Replicas...)
	leader.Put(t, clustertest.Shelter("utrecht", 14)) // a crisis to picture
	b := newBrowser(t)
	p.signInAs("anna")

	// open waits for leader's subscription to lcvs, and opens the picture on r once r has heard
	// the leader's subscriptions as they are now: r begins to watch a leader once it knows it,
	// and a change it heard after the page its stream tells at once (the page names what it
	// showed), which is not lcvs's stop. A stream that told one is closed, and the page fetched
	// again.
	open := func(r, leader *clustertest.Replica) (picture, digest string, events <-chan [2]string) {
		t.Helper()
		clustertest.Eventually(t, 20*time.Second, leader.ID+"'s subscription to lcvs open", func() (bool, string) {
			peer, err := pb.NewPeerServiceClient(leader.Local(t)).Get(clustertest.Call(t), &pb.GetPeerRequest{Name: "lcvs"})
			if err != nil {
				return false, err.Error()
			}
			return peer.Subscription == "open", peer.Subscription + " " + peer.SubscriptionError
		})
		picture = "http://" + r.UI + "/?crisis=oekraine"
		var closeStream context.CancelFunc
		clustertest.Eventually(t, 10*time.Second, "a picture on "+r.ID+" whose stream stays quiet", func() (bool, string) {
			_, page := b.get(t, picture)
			if row := partnerRow(page, "lcvs"); !strings.Contains(row, "geantwoord") {
				return false, "lcvs not answered: " + row
			}
			digest = attr(t, page, "data-digest")
			var ctx context.Context
			ctx, closeStream = context.WithCancel(t.Context())
			events = liveEventsUntil(ctx, t, b, "http://"+r.UI+html.UnescapeString(attr(t, page, "data-live"))+"&sinds="+digest)
			select {
			case ev := <-events:
				closeStream()
				return false, fmt.Sprintf("the stream told %q", ev)
			case <-time.After(time.Second):
				return true, ""
			}
		})
		return picture, digest, events
	}
	// stop stops lcvs, and wants the stream to tell within 10 s, and the page it fetches then
	// to say lcvs does not answer.
	stop := func(r *clustertest.Replica, picture, digest string, events <-chan [2]string) string {
		t.Helper()
		from := time.Now()
		lcvs.Stop(t)
		t.Logf("lcvs took %s to stop", time.Since(from).Round(time.Millisecond))
		nextEvent(t, events, digest, "lcvs stopped, on "+r.ID, time.Now(), 10*time.Second)
		page := liveRefetch(t, b, picture)
		if row := partnerRow(page, "lcvs"); !strings.Contains(row, "onbereikbaar") {
			t.Fatalf("the page on %s fetched after lcvs stopped: want lcvs unreachable:\n%s", r.ID, row)
		}
		return attr(t, page, "data-digest")
	}

	follower := others(c, leader)[0]
	picture, digest, events := open(follower, leader)
	digest = stop(follower, picture, digest, events)
	// The leader subscribes again as soon as lcvs calls it, or after its backoff, up to 10 s;
	// the stream tells at most once per 5 s.
	from := time.Now()
	lcvs.Start(t)
	nextEvent(t, events, digest, "lcvs started, on "+follower.ID, from, 15*time.Second)
	if row := partnerRow(liveRefetch(t, b, picture), "lcvs"); !strings.Contains(row, "geantwoord") {
		t.Fatalf("the page on %s fetched after lcvs started: want lcvs answered:\n%s", follower.ID, row)
	}

	// The leader, cut off, stays up: a follower that went on watching it would hear nothing more.
	leader.Node.Store().Isolate(true)
	t.Cleanup(func() { leader.Node.Store().Isolate(false) })
	next := c.Leader(t, 15*time.Second, others(c, leader)...)
	follower = others(c, leader, next)[0]
	t.Logf("%s cut off; %s leads, %s follows", leader.ID, next.ID, follower.ID)
	picture, digest, events = open(follower, next)
	stop(follower, picture, digest, events)
}

// others are the replicas of c but not.
func others(c *clustertest.Cluster, not ...*clustertest.Replica) []*clustertest.Replica {
	var out []*clustertest.Replica
	for _, r := range c.Replicas {
		if !slices.Contains(not, r) {
			out = append(out, r)
		}
	}
	return out
}

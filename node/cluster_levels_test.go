package node_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/knooppunt/knooppunt/node/api"
	"github.com/knooppunt/knooppunt/node/clustertest"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestClusterOlderReplicaStopsWrites: a leader whose release applies log entries at a higher
// level than another replica's takes no writes, neither its own nor forwarded, and says which
// replica to upgrade; `cluster status` marks that replica; once every replica runs its release,
// writes go in again and reach all three (review V, V2: a mixed group forked its audit chain
// without a word). Replicas at a higher level than the leader's take its writes.
func TestClusterOlderReplicaStopsWrites(t *testing.T) {
	c := clustertest.New(t, clustertest.Options{})
	for _, r := range c.Replicas {
		r.ApplyLevel = 2 // this release stands for an earlier one; 3 is the newer
	}
	c.StartAll(t)
	leader := c.Leader(t, 10*time.Second, c.Replicas...)
	leader.Put(t, clustertest.Shelter("before", 1))

	// r1 is upgraded first, and made the leader, as a rolling upgrade may: a replica of the
	// newer release leads the two of the earlier one.
	r1 := c.Replica("r1")
	r1.Stop(t)
	r1.ApplyLevel = 3
	r1.Start(t)
	for range 10 {
		if leader = c.Leader(t, 10*time.Second, c.Replicas...); leader == r1 {
			break
		}
		leader.Stop(t) // hands the lead over on its way out
		leader.Start(t)
	}
	if leader != r1 {
		t.Fatalf("r1 did not become the leader; %s leads", leader.ID)
	}

	refused := func(via *clustertest.Replica, id string) {
		t.Helper()
		_, err := via.Records(t).Put(clustertest.Call(t), &pb.PutRequest{Record: clustertest.Shelter(id, 2)})
		if status.Code(err) != codes.FailedPrecondition || api.Reason(err) != api.ReasonOlderReplica ||
			!strings.Contains(err.Error(), "runs an earlier knooppunt release") {
			t.Errorf("a write through %s while r2 and r3 run the earlier release: %v, want FAILED_PRECONDITION %s naming the replica", via.ID, err, api.ReasonOlderReplica)
		}
	}
	refused(r1, "mixed-leader")
	refused(c.Replica("r2"), "mixed-forwarded")
	// A replica that was down as r1 took the lead (restarted in the loop above) is asked again
	// within a tick of watchLevels.
	olderMarked(t, r1, 5*time.Second, "r2", "r3")

	// The rest of the group is upgraded, one at a time: r1 stays the leader.
	for _, id := range []string{"r2", "r3"} {
		r := c.Replica(id)
		r.Stop(t)
		r.ApplyLevel = 3
		r.Start(t)
	}
	clustertest.Eventually(t, 10*time.Second, "writes go in again once every replica runs r1's release", func() (bool, string) {
		_, err := r1.Records(t).Put(clustertest.Call(t), &pb.PutRequest{Record: clustertest.Shelter("after", 3)})
		return err == nil, fmt.Sprint(err)
	})
	c.Converged(t, 10*time.Second, c.Replicas...)
	for _, r := range c.Replicas {
		if _, err := r.Records(t).Get(clustertest.Call(t), &pb.GetRequest{Id: "after"}); err != nil {
			t.Errorf("%s: the write after the upgrade: %v", r.ID, err)
		}
		for _, id := range []string{"mixed-leader", "mixed-forwarded"} {
			if _, err := r.Records(t).Get(clustertest.Call(t), &pb.GetRequest{Id: id}); status.Code(err) != codes.NotFound {
				t.Errorf("%s holds %s, which was refused: %v", r.ID, id, err)
			}
		}
	}
	if st, err := r1.Status(clustertest.Call(t), t); err != nil || slices.ContainsFunc(st.Replicas, (*pb.Replica).GetOlderRelease) {
		t.Errorf("cluster status after the upgrade marks a replica as older: %v, %v", st, err)
	}
}

// olderMarked waits until cluster status at leader says its apply level is 3 and marks exactly
// the replicas older as running an earlier release.
func olderMarked(t *testing.T, leader *clustertest.Replica, within time.Duration, older ...string) {
	t.Helper()
	clustertest.Eventually(t, within, fmt.Sprintf("cluster status at %s marks %v as older", leader.ID, older), func() (bool, string) {
		st, err := leader.Status(clustertest.Call(t), t)
		if err != nil {
			return false, err.Error()
		}
		var marked []string
		for _, r := range st.Replicas {
			if r.OlderRelease {
				marked = append(marked, r.Id)
			}
		}
		return st.ApplyLevel == 3 && slices.Equal(marked, older), fmt.Sprintf("apply level %d, older releases %v", st.ApplyLevel, marked)
	})
}

// startAtLevel3 starts a group of three at apply level 3, and returns it with its leader once
// that took a write, for which each replica said its level.
func startAtLevel3(t *testing.T) (*clustertest.Cluster, *clustertest.Replica) {
	t.Helper()
	c := clustertest.New(t, clustertest.Options{})
	for _, r := range c.Replicas {
		r.ApplyLevel = 3
	}
	c.StartAll(t)
	leader := c.Leader(t, 10*time.Second, c.Replicas...)
	leader.Put(t, clustertest.Shelter("before", 1))
	return c, leader
}

// TestClusterOlderReplicaDownAtElectionKnownSoon: a replica that is down when a leader takes the
// lead, and comes back running an earlier release, is known to that leader within seconds, not
// at its next round of questions ten seconds on: until then the leader takes writes that the
// replica applies otherwise.
func TestClusterOlderReplicaDownAtElectionKnownSoon(t *testing.T) {
	c, leader := startAtLevel3(t)
	down := others(c, leader)[0]
	down.Stop(t)
	// A new leadership while down is away: its leader asks down, which does not answer.
	leader.Stop(t)
	leader.Start(t)
	next := c.Leader(t, 10*time.Second, others(c, down)...)
	next.Put(t, clustertest.Shelter("while-down", 2))
	// Longer than a tick of the leader's watchLevels (a second), whose round of the new term
	// asks down while it is away; the next round is ten seconds on.
	time.Sleep(2 * time.Second)
	down.ApplyLevel = 2
	down.Start(t)
	olderMarked(t, next, 4*time.Second, down.ID)
	if _, err := next.Records(t).Put(clustertest.Call(t), &pb.PutRequest{Record: clustertest.Shelter("refused", 3)}); api.Reason(err) != api.ReasonOlderReplica {
		t.Errorf("a write once %s came back on an earlier release: %v, want %s", down.ID, err, api.ReasonOlderReplica)
	}
}

// TestClusterOlderReplicaRestartedKnownSoon: a replica that said its level to the leader, and
// is then restarted on an earlier release, is known to that leader within seconds, not at its
// next round of questions ten seconds on: the leader asks again a replica that stopped answering
// Raft, and once more when it answers again.
func TestClusterOlderReplicaRestartedKnownSoon(t *testing.T) {
	c, leader := startAtLevel3(t)
	olderMarked(t, leader, time.Second)
	// Past the leader's first round of questions, a tick (a second) into its leadership; the
	// next is ten seconds on.
	time.Sleep(2 * time.Second)
	restarted := others(c, leader)[0]
	restarted.Stop(t)
	restarted.ApplyLevel = 2
	restarted.Start(t)
	olderMarked(t, leader, 4*time.Second, restarted.ID)
	if _, err := leader.Records(t).Put(clustertest.Call(t), &pb.PutRequest{Record: clustertest.Shelter("refused", 3)}); api.Reason(err) != api.ReasonOlderReplica {
		t.Errorf("a write once %s was restarted on an earlier release: %v, want %s", restarted.ID, err, api.ReasonOlderReplica)
	}
}

// TestOlderReplicaGivesPeersNothing: while a replica of the group runs an earlier release, no
// replica gives a peer anything, neither the leader nor a follower: what it sent could not be
// recorded, as the leader takes no writes, and a revoke would not retract it. Once the replica
// runs the group's release, the peer gets what it is granted again.
func TestOlderReplicaGivesPeersNothing(t *testing.T) {
	g := startPeerGroup(t)
	leader := g.c.Leader(t, 15*time.Second, g.c.Replicas...)
	leader.Put(t, guidance("g1"))
	g.share(t, "gids-naar-ncc")
	clustertest.Eventually(t, 10*time.Second, "the leader shares", func() (bool, string) {
		ids, err := g.query(t, leader.API)
		return len(ids) == 1 && err == nil, fmt.Sprint(ids, err)
	})
	// Two replicas are upgraded (level 3 stands for the newer release), one of them leads; the
	// third runs the earlier one.
	old := others(g.c, leader)[0]
	for _, r := range g.c.Replicas {
		if r != old {
			r.Stop(t)
			r.ApplyLevel = 3
			r.Start(t)
		}
	}
	for range 10 {
		if leader = g.c.Leader(t, 10*time.Second, g.c.Replicas...); leader != old {
			break
		}
		leader.Stop(t)
		leader.Start(t)
	}
	if leader == old {
		t.Fatal("the replica of the earlier release still leads")
	}
	follower := others(g.c, leader)[0]
	for _, via := range []*clustertest.Replica{leader, follower} {
		clustertest.Eventually(t, 10*time.Second, via.ID+" refuses the peer", func() (bool, string) {
			ids, err := g.query(t, via.API)
			return len(ids) == 0 && status.Code(err) == codes.Unavailable && api.Reason(err) == api.ReasonNotCurrent &&
				strings.Contains(err.Error(), "runs an earlier knooppunt release"), fmt.Sprint(ids, err)
		})
	}
	old.Stop(t)
	old.ApplyLevel = 3
	old.Start(t)
	clustertest.Eventually(t, 15*time.Second, "the peer is given its guidance again", func() (bool, string) {
		ids, err := g.query(t, follower.API)
		return len(ids) == 1 && err == nil, fmt.Sprint(ids, err)
	})
}

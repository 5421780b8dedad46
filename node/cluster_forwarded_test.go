package node_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/knooppunt/knooppunt/node/api"
	"github.com/knooppunt/knooppunt/node/clustertest"
	"github.com/knooppunt/knooppunt/node/store"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestClusterRemoveTheLeader removes the leader of a group of three through a follower, which
// forwards the call, and then the next leader on its own socket. Each removal answers with the
// group without it, and is audited on the replicas that stay. The leader hands the lead to
// another voter first, and the new leader removes it as it removes a follower: a leader that
// removed itself stepped down as the removal committed, so its forwarding follower ended the
// call ABORTED, and its audit entry found no leader.
func TestClusterRemoveTheLeader(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{})
	first := c.Leader(t, 15*time.Second, c.Replicas...)
	rest := others(c, first)

	// remove calls Remove on via until it answers. UNAVAILABLE is a refusal before anything was
	// proposed, sent again; any other error, ABORTED above all, fails the test.
	remove := func(via *clustertest.Replica, id string) *pb.ClusterStatusResponse {
		t.Helper()
		var st *pb.ClusterStatusResponse
		clustertest.Eventually(t, 20*time.Second, "remove "+id+" through "+via.ID, func() (bool, string) {
			var err error
			st, err = pb.NewClusterServiceClient(via.Local(t)).Remove(clustertest.Call(t), &pb.RemoveRequest{Id: id})
			if status.Code(err) == codes.Unavailable {
				return false, err.Error()
			}
			if err != nil {
				t.Fatalf("remove %s, the leader, through %s: %v; want it removed", id, via.ID, err)
			}
			return true, ""
		})
		return st
	}
	// audited waits until each of on has the removals of gone in its audit log, by the local
	// socket the calls came in on, and nothing else of the group.
	audited := func(on []*clustertest.Replica, gone ...*clustertest.Replica) {
		t.Helper()
		var want []string
		for _, r := range gone {
			want = append(want, fmt.Sprintf(`cluster.remove %s by local socket {"raft_address":%q}`, r.ID, r.Raft))
		}
		for _, r := range on {
			clustertest.Eventually(t, 10*time.Second, r.ID+"'s audit of the removals", func() (bool, string) {
				got, err := groupChanges(t, r)
				return err == nil && slices.Equal(got, want), fmt.Sprintf("%q (%v), want %q", got, err, want)
			})
		}
	}

	st := remove(rest[0], first.ID)
	if got, want := voters(st), rest[0].ID+","+rest[1].ID; got != want {
		t.Fatalf("after removing the leader %s the group is %s, want %s", first.ID, got, want)
	}
	audited(rest, first)

	second := c.Leader(t, 10*time.Second, rest...)
	last := others(&clustertest.Cluster{Replicas: rest}, second)[0]
	st = remove(second, second.ID)
	if got := voters(st); got != last.ID {
		t.Fatalf("after removing the leader %s on its own socket the group is %s, want %s", second.ID, got, last.ID)
	}
	audited([]*clustertest.Replica{last}, first, second)
	last.Put(t, clustertest.Shelter("after-both", 1))
}

// TestClusterLeaderMarksItsAnswers: a replica marks its answers to the calls a follower forwards
// with its id (api.AnsweredHeader), refusals too, so that a follower tells them from grpc's own
// failure of a call whose connection broke, which it answers ABORTED (see
// node/clusterproc TestProcessUnavailableMeansNotStored).
func TestClusterLeaderMarksItsAnswers(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{})
	leader := c.Leader(t, 15*time.Second, c.Replicas...)
	rc := leader.Records(t)
	for _, rec := range []*pb.Record{clustertest.Shelter("marked", 1), {Id: "marked"}} {
		var trailer metadata.MD
		_, err := rc.Put(clustertest.Call(t), &pb.PutRequest{Record: rec}, grpc.Trailer(&trailer))
		if got := trailer.Get(api.AnsweredHeader); !slices.Equal(got, []string{leader.ID}) {
			t.Errorf("put of %v on %s: %v, with %s %q, want %q", rec, leader.ID, err, api.AnsweredHeader, got, leader.ID)
		}
	}
}

// TestClusterRemoveCutOffIsAudited: a removal whose leader was deposed while it was being
// committed ends ABORTED, as it may have been made, and is audited all the same, its outcome
// unknown, once the group has a leader again: a remove sent again that finds the replica gone
// audits nothing, so the change would otherwise be missing from the audit log.
func TestClusterRemoveCutOffIsAudited(t *testing.T) {
	// A lease of half a second, so that the removal is proposed before the leader, cut off, steps
	// down, also on a loaded machine.
	c := clustertest.Start(t, clustertest.Options{ElectionTimeout: time.Second})
	old := c.Leader(t, 15*time.Second, c.Replicas...)
	victim := others(c, old)[0]
	cs := pb.NewClusterServiceClient(old.Local(t))
	// The leader is cut off before it proposes the removal, and steps down at its lease's end
	// with the removal pending. It is reconnected at once, before the others elect a leader: the
	// next leader, whichever it is, then reaches it at its first heartbeat and takes its audit
	// entry.
	old.Node.Store().Isolate(true)
	go func() {
		for deadline := time.Now().Add(15 * time.Second); old.Node.Store().IsLeader() && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
		}
		old.Node.Store().Isolate(false)
	}()
	_, err := cs.Remove(clustertest.Call(t), &pb.RemoveRequest{Id: victim.ID})
	if status.Code(err) != codes.Aborted || !strings.Contains(status.Convert(err).Message(), "may have been made") {
		t.Fatalf("remove of %s by a leader cut off from its group: %v, want ABORTED: may have been made", victim.ID, err)
	}
	want := fmt.Sprintf(`cluster.remove %s by local socket {"outcome":"unknown: the leader changed while it was being committed; cluster status tells whether it was made","raft_address":%q}`, victim.ID, victim.Raft)
	// On the replicas that stay: the next leader may have made the removal (the old one, with
	// the longer log, may lead again), and a removed replica takes in nothing after it.
	for _, r := range others(c, victim) {
		clustertest.Eventually(t, 15*time.Second, r.ID+"'s audit of the removal", func() (bool, string) {
			got, err := groupChanges(t, r)
			return err == nil && slices.Equal(got, []string{want}), fmt.Sprintf("%q (%v), want %q", got, err, want)
		})
	}
}

// TestDeposedLeaderFollowsTheReplicaItWasRemoving has a leader, cut off, propose the removal of
// a follower and step down with it pending, and makes that follower the next leader. The deposed
// leader's newest configuration no longer lists it; it must still take it in as its leader, which
// overwrites the removal, when it is reconnected, and when it is restarted instead. It refused it,
// as no replica of the group, and was cut off for good: one run in six of
// TestClusterRemoveCutOffIsAudited.
func TestDeposedLeaderFollowsTheReplicaItWasRemoving(t *testing.T) {
	for _, restart := range []bool{false, true} {
		t.Run(map[bool]string{false: "reconnected", true: "restarted"}[restart], func(t *testing.T) {
			c := clustertest.Start(t, clustertest.Options{ElectionTimeout: time.Second})
			old := c.Leader(t, 15*time.Second, c.Replicas...)
			victim, third := others(c, old)[0], others(c, old)[1]
			old.Node.Store().Isolate(true)
			removed := make(chan error, 1)
			go func() {
				_, err := pb.NewClusterServiceClient(old.Local(t)).Remove(clustertest.Call(t), &pb.RemoveRequest{Id: victim.ID})
				removed <- err
			}()
			clustertest.Eventually(t, 15*time.Second, old.ID+" stepping down with the removal pending", func() (bool, string) {
				servers, err := old.Node.Store().Servers()
				pending := err == nil && !slices.ContainsFunc(servers, func(s store.Server) bool { return s.ID == victim.ID })
				return pending && !old.Node.Store().IsLeader(), fmt.Sprintf("leads: %v, servers: %v (%v)", old.Node.Store().IsLeader(), servers, err)
			})
			if !old.Node.Store().InGroup(victim.ID) {
				t.Fatalf("%s: %s is not in the group while its removal is pending, not committed", old.ID, victim.ID)
			}
			// The lead goes to the victim: the third hands it on, and the only voter it reaches
			// is the victim.
			clustertest.Eventually(t, 30*time.Second, victim.ID+" leading", func() (bool, string) {
				if l := c.Leader(t, 15*time.Second, victim, third); l == third {
					return false, fmt.Sprintf("%s leads; hands the lead on: %v", third.ID, third.Node.Store().HandLead())
				}
				return true, ""
			})
			if err := <-removed; status.Code(err) != codes.Aborted {
				t.Fatalf("remove of %s by a leader cut off from its group: %v, want ABORTED", victim.ID, err)
			}
			if restart {
				old.Stop(t)
				old.Start(t)
			} else {
				old.Node.Store().Isolate(false)
			}
			if l := c.Leader(t, 15*time.Second, c.Replicas...); l != victim {
				t.Fatalf("%s leads, want %s", l.ID, victim.ID)
			}
			clustertest.Eventually(t, 15*time.Second, old.ID+"'s configuration with the removal overwritten", func() (bool, string) {
				servers, err := old.Node.Store().Servers()
				return err == nil && slices.ContainsFunc(servers, func(s store.Server) bool { return s.ID == victim.ID }), fmt.Sprintf("%v (%v)", servers, err)
			})
			c.Converged(t, 15*time.Second, c.Replicas...)
		})
	}
}

// groupChanges is r's audit log of the group's changes (cluster.join, cluster.remove), an entry
// a line: action, subject, "by" actor, and detail.
func groupChanges(t *testing.T, r *clustertest.Replica) ([]string, error) {
	list, err := pb.NewAuditServiceClient(r.Local(t)).List(clustertest.Call(t), &pb.ListAuditRequest{Action: "cluster."})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range list.Entries {
		out = append(out, e.Action+" "+e.Subject+" by "+e.Actor+" "+e.Detail)
	}
	return out, nil
}

package clusterproc

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/knooppunt/knooppunt/node/clustertest"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestProcessForwardedWriteToAFrozenLeader (review AJ, MEDIUM-3): a write sent to a follower while
// the leader's process is frozen (SIGSTOP: a stalled VM, disk or garbage collector) ends once the
// follower loses that leader, ABORTED if it was under way to it (it may have been stored), or goes
// to the new leader; it no longer waits for the frozen one until the caller's deadline. Writes on
// the follower then go on, and the old leader, thawed, rejoins.
func TestProcessForwardedWriteToAFrozenLeader(t *testing.T) {
	knooppunt(t)
	c := clustertest.New(t, clustertest.Options{})
	procs := startAll(t, c)
	leader := c.Leader(t, 20*time.Second, c.Replicas...)
	follower := except(c, leader)[0]
	rc := pb.NewRecordServiceClient(follower.Local(t))
	put := func(id string) (time.Duration, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		start := time.Now()
		_, err := rc.Put(ctx, &pb.PutRequest{Record: clustertest.Shelter(id, 1)})
		return time.Since(start), err
	}
	if _, err := put("voor"); err != nil {
		t.Fatalf("a write on %s before the freeze: %v", follower.ID, err)
	}

	frozen := procs[leader.ID].Cmd.Process
	if err := frozen.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer frozen.Signal(syscall.SIGCONT)
	took, err := put("bevroren")
	if err != nil && status.Code(err) != codes.Aborted {
		t.Errorf("a write on %s as %s froze: %v (after %s), want it stored, or ABORTED", follower.ID, leader.ID, err, took)
	}
	if took > 5*time.Second {
		t.Errorf("a write on %s as %s froze took %s (%v): it waited for the frozen leader", follower.ID, leader.ID, took, err)
	}
	clustertest.Eventually(t, 20*time.Second, "writes on "+follower.ID+" go on", func() (bool, string) {
		_, err := put("daarna")
		return err == nil, fmt.Sprint(err)
	})

	if err := frozen.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	c.Converged(t, 30*time.Second, c.Replicas...)
}

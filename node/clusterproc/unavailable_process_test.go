package clusterproc

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/knooppunt/knooppunt/node/clustertest"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestProcessUnavailableMeansNotStored holds the node to what docs/api.md promises of
// UNAVAILABLE: nothing was stored, and the call is safe to send again. Writers on the two
// followers forward each write, of a record of its own, to the leader; the leader is killed
// with SIGKILL among them. No write the followers answered UNAVAILABLE may be on the survivors
// once they agree. A follower whose connection to the leader broke during a forwarded write
// passed grpc's own UNAVAILABLE on ("error reading from server: EOF"), while the leader may have
// proposed the write and the next leader committed it: it answers ABORTED now.
func TestProcessUnavailableMeansNotStored(t *testing.T) {
	knooppunt(t)
	c := clustertest.New(t, clustertest.Options{})
	procs := startAll(t, c)
	old := c.Leader(t, 20*time.Second, c.Replicas...)
	followers := except(c, old)

	var (
		mu          sync.Mutex
		acked       []string
		unavailable = map[string]string{} // record id → the refusal
		aborted     int
		stop        = make(chan struct{})
		wg          sync.WaitGroup
	)
	for w := range 8 {
		rc := pb.NewRecordServiceClient(followers[w%2].NewLocal(t))
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("u%d-%d", w, i)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_, err := rc.Put(ctx, &pb.PutRequest{Record: clustertest.Shelter(id, int64(i))})
				cancel()
				mu.Lock()
				switch status.Code(err) {
				case codes.OK:
					acked = append(acked, id)
				case codes.Unavailable:
					unavailable[id] = status.Convert(err).Message()
				case codes.Aborted:
					aborted++
				}
				mu.Unlock()
				if err != nil {
					time.Sleep(5 * time.Millisecond)
				}
			}
		})
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)
	}
	clustertest.Eventually(t, 30*time.Second, "300 writes through the followers", func() (bool, string) {
		return count() >= 300, fmt.Sprint(count())
	})
	procs[old.ID].Kill(t)
	leader := c.Leader(t, 20*time.Second, followers...)
	before := count()
	clustertest.Eventually(t, 30*time.Second, "300 more writes after the kill", func() (bool, string) {
		return count() >= before+300, fmt.Sprint(count() - before)
	})
	close(stop)
	wg.Wait()
	c.Converged(t, 20*time.Second, followers...)

	mu.Lock()
	defer mu.Unlock()
	t.Logf("%s killed, %s leads: %d writes acknowledged, %d ABORTED, %d UNAVAILABLE", old.ID, leader.ID, len(acked), aborted, len(unavailable))
	for _, r := range followers {
		stored := clustertest.Stored(t, r.Local(t))
		for id, said := range unavailable {
			if _, ok := stored[id]; ok {
				t.Errorf("%s holds %s, whose write was answered UNAVAILABLE (%q): a client that sent it again would write twice", r.ID, id, said)
			}
		}
		for _, id := range acked {
			if _, ok := stored[id]; !ok {
				t.Errorf("%s lacks %s, whose write was acknowledged", r.ID, id)
			}
		}
	}
}

package node_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/knooppunt/knooppunt/node/clustertest"
)

// holding lists the files under dir whose raw bytes contain text.
func holding(t *testing.T, dir, text string) []string {
	t.Helper()
	var out []string
	clustertest.EachFile(t, dir, func(rel string, data []byte) {
		if bytes.Contains(data, []byte(text)) {
			out = append(out, rel)
		}
	})
	return out
}

// TestClusterErasesDeletedRecords: in a group of three, a deleted record's body leaves every file
// of every replica's data directory within erasure.within, each replica rewriting its own Raft log
// behind a fresh snapshot; the group goes on replicating after that, and a follower stopped
// across further writes catches up when it starts again.
func TestClusterErasesDeletedRecords(t *testing.T) {
	const within = 2 * time.Second
	c := clustertest.Start(t, clustertest.Options{EraseWithin: within})
	leader := c.Leader(t, 10*time.Second, c.Replicas...)
	text := fmt.Sprintf("te-wissen-%d", time.Now().UnixNano())
	rec := clustertest.Shelter("gone", 7)
	rec.Body = fmt.Appendf(nil, `{"municipality":%q,"beds_total":10,"beds_free":7}`, text)
	leader.Put(t, rec)
	for i := range 10 {
		leader.Put(t, clustertest.Shelter(fmt.Sprintf("stays-%d", i), int64(i)))
	}
	c.Converged(t, 10*time.Second, c.Replicas...)
	for _, r := range c.Replicas {
		if len(holding(t, r.DataDir(), text)) == 0 {
			t.Fatalf("%s holds the record but no file has its text: the scan is broken", r.ID)
		}
	}
	leader.Delete(t, "gone")
	for _, r := range c.Replicas {
		clustertest.Eventually(t, within+5*time.Second, r.ID+" erases the deleted record", func() (bool, string) {
			left := holding(t, r.DataDir(), text)
			return len(left) == 0, r.ID + " has the text in " + strings.Join(left, ", ")
		})
	}

	// Replication goes on over the rewritten logs, also to a follower that was away.
	var follower *clustertest.Replica
	for _, r := range c.Replicas {
		if r != leader {
			follower = r
			break
		}
	}
	follower.Stop(t)
	for i := range 10 {
		leader.Put(t, clustertest.Shelter(fmt.Sprintf("later-%d", i), int64(i)))
	}
	follower.Start(t)
	leader.Put(t, clustertest.Shelter("last", 1))
	c.Converged(t, 20*time.Second, c.Replicas...)
}

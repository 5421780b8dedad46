package store

import (
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// wedging is a real TCP transport whose pipelines, once wedged is set, block in AppendEntries
// until released, as hashicorp/raft's pipelined replication does when it wedges.
type wedging struct {
	*raft.NetworkTransport
	wedged  atomic.Pointer[raft.ServerID] // the replica whose pipeline wedges
	release chan struct{}
}

func (w *wedging) AppendEntriesPipeline(id raft.ServerID, target raft.ServerAddress) (raft.AppendPipeline, error) {
	p, err := w.NetworkTransport.AppendEntriesPipeline(id, target)
	if err != nil {
		return nil, err
	}
	return wedgingPipeline{AppendPipeline: p, w: w, to: id}, nil
}

type wedgingPipeline struct {
	raft.AppendPipeline
	w  *wedging
	to raft.ServerID
}

func (p wedgingPipeline) AppendEntries(args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) (raft.AppendFuture, error) {
	if id := p.w.wedged.Load(); id != nil && *id == p.to {
		<-p.w.release
		return nil, errors.New("released")
	}
	return p.AppendPipeline.AppendEntries(args, resp)
}

// TestCloseDoesNotWaitForAWedgedRaft (review AJ, MEDIUM-2): a leader whose replication has wedged
// stops within its bound, saying so, instead of waiting for Raft's shutdown for good (a SIGTERM
// hung for minutes, its process holding the Raft port and the lock of its log).
func TestCloseDoesNotWaitForAWedgedRaft(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	var trs []*wedging
	var servers []raft.Server
	for _, id := range []string{"replica-1", "replica-2", "replica-3"} {
		tr, err := raft.NewTCPTransport("127.0.0.1:0", nil, 3, time.Second, quietWriter{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tr.Close() })
		trs = append(trs, &wedging{NetworkTransport: tr, release: release})
		servers = append(servers, raft.Server{ID: raft.ServerID(id), Address: tr.LocalAddr(), Suffrage: raft.Voter})
	}
	stores := make([]*Store, 3)
	for i, tr := range trs {
		dir := t.TempDir()
		s, err := Open(Config{Dir: filepath.Join(dir, "raft"), DB: openDB(t, filepath.Join(dir, "knooppunt.db")), ReplicaID: string(servers[i].ID),
			Transport: tr, Bootstrap: true, Servers: servers, ElectionTimeout: 100 * time.Millisecond, Logger: quiet, shutdownWait: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		stores[i] = s
	}
	var leader *Store
	var wedge *wedging
	deadline := time.Now().Add(10 * time.Second)
	for leader == nil {
		for i, s := range stores {
			if s.IsLeader() {
				leader, wedge = s, trs[i]
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no leader within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	write(t, leader, rec("before", `{}`)) // replication runs, pipelined
	// The pipeline to one follower wedges; the other takes the writes, which commit.
	var stuck raft.ServerID
	for _, srv := range servers {
		if string(srv.ID) != leader.cfg.ReplicaID {
			stuck = srv.ID
			break
		}
	}
	wedge.wedged.Store(&stuck)
	write(t, leader, rec("wedged", `{}`))

	start := time.Now()
	err := leader.Close()
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("Close of a leader whose replication wedged took %s, want about its bound of 1s", took)
	}
	if !errors.Is(err, ErrShutdownTimeout) {
		t.Fatalf("Close of a leader whose replication wedged: %v, want ErrShutdownTimeout", err)
	}
}

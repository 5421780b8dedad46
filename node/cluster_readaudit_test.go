package node_test

import (
	"errors"
	"log/slog"
	"net"
	"os"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/knooppunt/knooppunt/federation/fedtest"
	"github.com/knooppunt/knooppunt/node/clustertest"
	"github.com/knooppunt/knooppunt/node/proctest"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestReadOnAFollowerDoesNotWaitForItsAudit: a follower hands the record.read entry of a read of
// a secret record to its leader, and the read does not wait for that: with a leader whose API
// takes connections and never answers (the follower's raft.servers points it at such a
// listener; Raft itself goes on), a Get answers at once, where it waited for the forward before
// (5 s of connecting, without end once connected). When the forward fails, the follower says so
// at WARN (review AG, AG4).
func TestReadOnAFollowerDoesNotWaitForItsAudit(t *testing.T) {
	logs := &proctest.Buffer{} // the replicas write to it at once
	// The follower must stay one: on a loaded machine a leader of the default 200 ms stepped down
	// a second after the start, and the follower the test took then led.
	c := clustertest.Start(t, clustertest.Options{ElectionTimeout: time.Second,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	leader := c.Leader(t, 10*time.Second, c.Replicas...)
	f := others(c, leader)[0]
	secret := clustertest.Shelter("geheim-f", 3)
	secret.Classification = pb.Classification_SECRET
	leader.Put(t, secret)
	c.Converged(t, 15*time.Second, c.Replicas...)

	silent := newSilentListener(t)
	api := leader.API
	leader.API = silent.addr()
	err := os.WriteFile(f.ConfigFile(), []byte(c.Config(f)), 0o600)
	leader.API = api
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Node.Reload(f.ConfigFile()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.WriteFile(f.ConfigFile(), []byte(c.Config(f)), 0o600) })

	start := time.Now()
	if _, err := f.Records(t).Get(clustertest.Call(t), &pb.GetRequest{Id: "geheim-f"}); err != nil {
		t.Fatalf("Get on %s: %v", f.ID, err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("Get of a secret record on %s took %s while its leader does not answer: the read waited for its audit", f.ID, took)
	}
	// The entry did go to the leader's API address the follower knows: the test cut what it meant to.
	fedtest.Eventually(t, 10*time.Second, f.ID+" forwards the entry", func() (bool, string) {
		return silent.accepted() > 0, "no connection"
	})
	silent.close()
	warned := regexp.MustCompile(`level=WARN msg="could not audit a read of confidential records" replica=` + f.ID + ` .*via=Get records=1 err=`)
	fedtest.Eventually(t, 15*time.Second, f.ID+" says it could not audit the read", func() (bool, string) {
		return warned.MatchString(logs.String()), logs.String()
	})
}

// silentListener takes TCP connections and never answers on them, as a host that hangs does.
type silentListener struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	done  bool
}

func newSilentListener(t *testing.T) *silentListener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &silentListener{ln: ln}
	go func() {
		for {
			conn, err := ln.Accept()
			if errors.Is(err, net.ErrClosed) {
				return
			} else if err != nil {
				continue
			}
			s.mu.Lock()
			if s.done {
				conn.Close()
			} else {
				s.conns = append(s.conns, conn)
			}
			s.mu.Unlock()
		}
	}()
	t.Cleanup(s.close)
	return s
}

func (s *silentListener) addr() string { return s.ln.Addr().String() }

func (s *silentListener) accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// close closes the listener and the connections it took: a dial there fails from then on.
func (s *silentListener) close() {
	s.ln.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.done = true
	for _, c := range s.conns {
		c.Close()
	}
}

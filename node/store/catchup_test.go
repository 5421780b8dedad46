package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/knooppunt/knooppunt/node/db"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// dropAppends is a real TCP transport whose replica, while drop is set, takes in no
// AppendEntries that carry entries, as behind a network that loses them: heartbeats and
// snapshots still come through. While slowTimeoutNow is set, it refuses a leader's TimeoutNow
// (the start of a hand-over) a moment after it came, so that the leader's hand-over lasts.
type dropAppends struct {
	*raft.NetworkTransport
	drop           atomic.Bool
	slowTimeoutNow atomic.Bool
	rpcs           chan raft.RPC
}

// slowTimeoutNow is how long dropAppends holds a TimeoutNow before it refuses it.
const slowTimeoutNow = 300 * time.Millisecond

func newDropAppends(t *testing.T, addr string) *dropAppends {
	t.Helper()
	var tr *raft.NetworkTransport
	var err error
	// The address of a replica stopped a moment ago: its port may take a moment to be free.
	for range 50 {
		if tr, err = raft.NewTCPTransport(addr, nil, 3, time.Second, quietWriter{}); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	d := &dropAppends{NetworkTransport: tr, rpcs: make(chan raft.RPC)}
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop); tr.Close() })
	go func() {
		for {
			select {
			case rpc := <-tr.Consumer():
				if a, ok := rpc.Command.(*raft.AppendEntriesRequest); ok && len(a.Entries) > 0 && d.drop.Load() {
					rpc.Respond(nil, errors.New("dropped"))
					continue
				}
				if _, ok := rpc.Command.(*raft.TimeoutNowRequest); ok && d.slowTimeoutNow.Load() {
					time.AfterFunc(slowTimeoutNow, func() { rpc.Respond(nil, errors.New("held, then refused")) })
					continue
				}
				select {
				case d.rpcs <- rpc:
				case <-stop:
					return
				}
			case <-stop:
				return
			}
		}
	}()
	return d
}

func (d *dropAppends) Consumer() <-chan raft.RPC { return d.rpcs }

type quietWriter struct{}

func (quietWriter) Write(p []byte) (int, error) { return len(p), nil }

// replica is one replica of a test group: its store, database and transport, in dir.
type replica struct {
	id, addr, dir string
	tr            *dropAppends
	db            *db.DB
	s             *Store
}

func (r *replica) open(t *testing.T, servers []raft.Server) {
	t.Helper()
	r.tr = newDropAppends(t, r.addr)
	r.addr = string(r.tr.LocalAddr())
	r.db = openDB(t, filepath.Join(r.dir, "knooppunt.db"))
	s, err := Open(Config{Dir: filepath.Join(r.dir, "raft"), DB: r.db, ReplicaID: r.id, Transport: r.tr, Bootstrap: true, Servers: servers,
		ElectionTimeout: 500 * time.Millisecond, CommitTimeout: 5 * time.Millisecond, TrailingLogs: 2, SnapshotThreshold: 1 << 20, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	r.s = s
	t.Cleanup(func() { s.Close() })
}

func (r *replica) close(t *testing.T) {
	t.Helper()
	if err := r.s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.db.Close(); err != nil {
		t.Fatal(err)
	}
}

// openGroup opens a new group of n replicas on loopback, and gives them with its configuration.
func openGroup(t *testing.T, n int) ([]*replica, []raft.Server) {
	t.Helper()
	reps := make([]*replica, n)
	var servers []raft.Server
	for i := range reps {
		reps[i] = &replica{id: fmt.Sprintf("replica-%d", i+1), addr: "127.0.0.1:0", dir: t.TempDir()}
		reps[i].tr = newDropAppends(t, reps[i].addr)
		reps[i].addr = string(reps[i].tr.LocalAddr())
		reps[i].tr.Close() // the address is kept for open
		servers = append(servers, raft.Server{ID: raft.ServerID(reps[i].id), Address: raft.ServerAddress(reps[i].addr), Suffrage: raft.Voter})
	}
	for _, r := range reps {
		r.open(t, servers)
	}
	return reps, servers
}

// TestAReplicaStandsForElectionOnlyOnceCaughtUp: two replicas of three lose their disks and
// rejoin the third, which has compacted its log into a snapshot. They take in the snapshot, and
// the network loses the entries after it; then the third stops. Raft alone lets the two elect one
// of themselves, and the group goes on without the entries after the snapshot, which were
// committed. Caught up only when they hold them, the two elect nobody (and know they have no
// leader), also once restarted; when the third comes back it leads, they catch up, and once they
// have, the two elect one of themselves when it stops.
func TestAReplicaStandsForElectionOnlyOnceCaughtUp(t *testing.T) {
	reps, servers := openGroup(t, 3)
	leaderOf := func(rs ...*replica) *replica {
		for _, r := range rs {
			if r.s.IsLeader() {
				return r
			}
		}
		return nil
	}
	waitFor := func(what string, within time.Duration, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(within)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("not within %s: %s", within, what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFor("a leader of the new group", 10*time.Second, func() bool { return leaderOf(reps...) != nil })
	// A new group: the replica that bootstrapped it stands at once, the others once they caught up.
	waitFor("every replica of the new group stands for election", 10*time.Second, func() bool {
		return !slices.ContainsFunc(reps, func(r *replica) bool { return r.s.CatchingUp() })
	})

	// The survivor: a leader that compacts its log into a snapshot and takes more writes after it.
	// Should the lead move meanwhile (a loaded machine), the new leader does it all again.
	var survivor *replica
	var snapshot uint64
	for try := 0; survivor == nil; try++ {
		if try == 5 {
			t.Fatal("the lead moved at each of five tries to write and snapshot")
		}
		var l *replica
		waitFor("a leader", 10*time.Second, func() bool { l = leaderOf(reps...); return l != nil })
		if err := leaderWrites(l.s, "before", 20); err != nil {
			continue
		}
		if err := l.s.Snapshot(); err != nil {
			continue
		}
		snapshot = l.s.AppliedIndex()
		if err := leaderWrites(l.s, "after", 10); err != nil {
			continue
		}
		survivor = l
	}
	want := feed(t, survivor.db, lastSeq(t, survivor.db))

	// The two others lose their disks, and come back to a network that loses entries.
	var wiped []*replica
	for _, r := range reps {
		if r != survivor {
			r.close(t)
			r.dir = t.TempDir()
			r.open(t, servers)
			r.tr.drop.Store(true)
			wiped = append(wiped, r)
		}
	}
	for _, r := range wiped {
		waitFor(r.id+" takes in the survivor's snapshot", 10*time.Second, func() bool { return r.s.AppliedIndex() >= snapshot })
		if !r.s.CatchingUp() {
			t.Fatalf("%s, reached on an empty Raft directory, holds up to %d of the survivor's %d, and stands for election", r.id, r.s.AppliedIndex(), survivor.s.AppliedIndex())
		}
	}
	survivor.close(t)
	time.Sleep(4 * time.Second) // 8 election timeouts; without catchUp they elect within 2
	if l := leaderOf(wiped...); l != nil {
		t.Fatalf("%s was elected while it held up to %d only: the entries after the survivor's snapshot at %d are lost", l.id, l.s.AppliedIndex(), snapshot)
	}
	for _, r := range wiped {
		if l := r.s.Leader(); l != "" {
			t.Errorf("%s still names %q its leader, 8 election timeouts after it stopped", r.id, l)
		}
	}
	// A restart does not end it: each holds the snapshot now, not what the survivor committed
	// after it.
	for _, r := range wiped {
		r.close(t)
		r.open(t, servers)
		r.tr.drop.Store(true)
	}
	time.Sleep(3 * time.Second)
	if l := leaderOf(wiped...); l != nil {
		t.Fatalf("%s was elected after a restart while it held up to %d only", l.id, l.s.AppliedIndex())
	}
	for _, r := range wiped {
		if !r.s.CatchingUp() {
			t.Errorf("%s restarted while catching up, and stands for election", r.id)
		}
	}

	// The survivor comes back, on its own disk, and the network carries entries again.
	for _, r := range wiped {
		r.tr.drop.Store(false)
	}
	survivor.open(t, servers)
	waitFor("the survivor leads again", 10*time.Second, func() bool { return leaderOf(reps...) == survivor })
	for _, r := range wiped {
		waitFor(r.id+" catches up and stands for election", 10*time.Second, func() bool { return !r.s.CatchingUp() })
		if got := feed(t, r.db, lastSeq(t, r.db)); !slices.Equal(got, want) {
			t.Fatalf("%s after catching up:\n%s\nwant:\n%s", r.id, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}

	// Caught up, the two elect one of themselves when the survivor stops.
	survivor.close(t)
	var err error
	for range 5 {
		var l *replica
		waitFor("one of the caught-up replicas leads", 10*time.Second, func() bool { l = leaderOf(wiped...); return l != nil })
		if err = leaderWrites(l.s, "after-the-survivor", 1); err == nil {
			return
		}
	}
	t.Fatalf("the caught-up replicas lead, and writes fail: %v", err)
}

// leaderWrites writes n records named prefix-NN through s, and fails at the first error (the
// lead moved).
func leaderWrites(s *Store, prefix string, n int) error {
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := s.Write(ctx, []*pb.Record{rec(fmt.Sprintf("%s-%02d", prefix, i), `{}`)})
		cancel()
		if err != nil {
			return err
		}
	}
	return nil
}

// TestAReplicaWhoseLogLostItsTailCatchesUp (review AJ, HIGH-2): a follower whose Raft log lost its
// last entries, which its database had applied (a Raft directory put back from an older copy), asks
// for no vote until its log holds them again and it has applied what its leader committed. Elected
// on the shorter log, it would write other entries at their indexes, which its database skips as
// applied.
func TestAReplicaWhoseLogLostItsTailCatchesUp(t *testing.T) {
	reps, servers := openGroup(t, 3)
	leader, followers := settledLeader(t, reps)
	for i := range 12 {
		write(t, leader.s, rec(fmt.Sprintf("tail-%d", i), `{"n":1}`))
	}
	f := followers[0]
	for deadline := time.Now().Add(10 * time.Second); !f.s.SettledThrough(leader.s.AppliedIndex()); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not apply the writes within 10s", f.id)
		}
	}
	f.close(t)
	d := openDB(t, filepath.Join(f.dir, "knooppunt.db"))
	applied := appliedIndex(t, d)
	d.Close()
	l, err := openLog(filepath.Join(f.dir, "raft"), hclog.NewNullLogger(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	last, err := l.LastIndex()
	if err != nil || last < applied || applied < 5 {
		t.Fatalf("log ends at %d (%v), database applied %d: want a log that holds the applied entries", last, err, applied)
	}
	if err := l.DeleteRange(applied-3, last); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	f.open(t, servers)
	if !f.s.CatchingUp() {
		t.Fatalf("%s, whose log ends at %d below its database's applied %d, stands for election at once", f.id, applied-4, applied)
	}
	write(t, leader.s, rec("after-the-cut", `{"n":2}`))
	for deadline := time.Now().Add(10 * time.Second); f.s.CatchingUp(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s is still catching up 10s after its leader sent it the entries it lost", f.id)
		}
	}
	if last, err := f.s.logs.LastIndex(); err != nil || last < applied {
		t.Errorf("%s caught up with a log that ends at %d (%v), below %d", f.id, last, err, applied)
	}
}

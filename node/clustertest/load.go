package clustertest

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"

	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// Ack is what the node acknowledged for one record: the version, and the beds_free of the write
// that got that version.
type Ack struct {
	Version int64
	Free    int64
}

// Load runs writers against the replicas of a node and records every write the node
// acknowledged. Each writer has records of its own and one write in flight at a time; it starts
// on one replica and moves to the next after a failed write, as a client of a replicated node
// would. Failures are expected while a leader is lost and are only counted.
type Load struct {
	acked  map[string]Ack
	mu     sync.Mutex
	total  atomic.Int64
	failed atomic.Int64
	stop   chan struct{}
	wg     sync.WaitGroup
}

// RecordsPerWriter is how many records each writer of a Load writes, round robin.
const RecordsPerWriter = 32

// StartLoad starts writers on targets; they stop when the test ends, or at Stop.
func StartLoad(tb testing.TB, writers int, targets []*Replica) *Load {
	tb.Helper()
	l := &Load{acked: map[string]Ack{}, stop: make(chan struct{})}
	for w := range writers {
		conns := make([]pb.RecordServiceClient, len(targets))
		for i, r := range targets {
			conns[i] = pb.NewRecordServiceClient(r.NewLocal(tb))
		}
		l.wg.Add(1)
		go l.write(w, conns)
	}
	tb.Cleanup(func() { l.halt() })
	return l
}

func (l *Load) write(w int, conns []pb.RecordServiceClient) {
	defer l.wg.Done()
	at := w % len(conns)
	for i := int64(1); ; i++ {
		select {
		case <-l.stop:
			return
		default:
		}
		id := fmt.Sprintf("w%02d-%02d", w, i%RecordsPerWriter)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		resp, err := conns[at].Put(ctx, &pb.PutRequest{Record: Shelter(id, i)})
		cancel()
		if err != nil {
			l.failed.Add(1)
			at = (at + 1) % len(conns)
			continue
		}
		l.mu.Lock()
		l.acked[id] = Ack{Version: resp.Version, Free: i}
		l.mu.Unlock()
		l.total.Add(1)
	}
}

// Total is the number of acknowledged writes so far.
func (l *Load) Total() int64 { return l.total.Load() }

// Failed is the number of failed writes so far.
func (l *Load) Failed() int64 { return l.failed.Load() }

// WaitTotal waits, up to within, until at least n writes are acknowledged.
func (l *Load) WaitTotal(tb testing.TB, n int64, within time.Duration) {
	tb.Helper()
	Eventually(tb, within, fmt.Sprintf("%d acknowledged writes", n), func() (bool, string) {
		return l.Total() >= n, fmt.Sprintf("%d acknowledged, %d failed", l.Total(), l.Failed())
	})
}

func (l *Load) halt() bool {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(10 * time.Second):
		return false
	}
}

// Stop stops the writers, waiting for the writes in flight (with a bound), and returns every
// acknowledged write: record id → its last acknowledgement.
func (l *Load) Stop(tb testing.TB) map[string]Ack {
	tb.Helper()
	if !l.halt() {
		tb.Fatal("writers still running 10s after they were told to stop")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]Ack, len(l.acked))
	for k, v := range l.acked {
		out[k] = v
	}
	return out
}

// Free is the beds_free of a shelter record's body.
func Free(r *pb.Record) (int64, error) {
	var b struct {
		Free int64 `json:"beds_free"`
	}
	if err := json.Unmarshal(r.Body, &b); err != nil {
		return 0, fmt.Errorf("record %s: body %q: %w", r.Id, r.Body, err)
	}
	return b.Free, nil
}

// Stored lists every live record of the replica's own database (local reads).
func Stored(tb testing.TB, conn *grpc.ClientConn) map[string]*pb.Record {
	tb.Helper()
	out := map[string]*pb.Record{}
	c := pb.NewRecordServiceClient(conn)
	token := ""
	for {
		resp, err := c.List(Call(tb), &pb.ListRequest{PageSize: 1000, PageToken: token})
		if err != nil {
			tb.Fatalf("list: %v", err)
		}
		for _, r := range resp.Records {
			out[r.Id] = r
		}
		if token = resp.NextPageToken; token == "" {
			return out
		}
	}
}

// VerifyAcked checks that every acknowledged write is in the replica's database: each record at
// least at its acknowledged version, and with the acknowledged body when at exactly that
// version. A writer has one write in flight at a time, and a failed write may still have
// committed, so a record can be ahead of its last acknowledgement.
func VerifyAcked(tb testing.TB, r *Replica, acked map[string]Ack) {
	tb.Helper()
	stored := Stored(tb, r.Local(tb))
	missing := 0
	for id, a := range acked {
		s, ok := stored[id]
		switch {
		case !ok:
			missing++
			if missing <= 5 {
				tb.Errorf("%s: acknowledged write of %s (version %d) is lost", r.ID, id, a.Version)
			}
		case s.Version < a.Version:
			tb.Errorf("%s: %s is at version %d, but version %d was acknowledged", r.ID, id, s.Version, a.Version)
		case s.Version == a.Version:
			free, err := Free(s)
			if err != nil {
				tb.Fatal(err)
			}
			if free != a.Free {
				tb.Errorf("%s: %s version %d holds beds_free %d, the acknowledged write had %d", r.ID, id, s.Version, free, a.Free)
			}
		}
	}
	if missing > 0 {
		tb.Errorf("%s: %d of %d acknowledged records lost", r.ID, missing, len(acked))
	}
}

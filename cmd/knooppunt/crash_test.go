package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/knooppunt/knooppunt/node"
	"github.com/knooppunt/knooppunt/node/db"
	"github.com/knooppunt/knooppunt/node/proctest"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// ack is what the node acknowledged for one record: the version, and the beds_free of the write
// that got that version.
type ack struct {
	version int64
	free    int
}

// load runs writers against a node, each on records of its own, and records every write the
// node acknowledged. Half the writers use PutBatch and half Put.
type load struct {
	t        *testing.T
	c        pb.RecordServiceClient
	mu       sync.Mutex
	acked    map[string]ack
	total    atomic.Int64
	stopping atomic.Bool // set before the node is stopped; errors after it are expected
	wg       sync.WaitGroup
	reached  chan struct{}
	target   int64
	once     sync.Once
}

const batchSize = 8

func loadRecord(writer, k, i int) *pb.Record {
	return &pb.Record{
		Id: fmt.Sprintf("w%02d-%d", writer, k), Kind: "shelter.capacity", Crisis: "oekraine", Region: "VR09",
		Classification: pb.Classification_INTERNAL,
		Body:           fmt.Appendf(nil, `{"municipality":"Utrecht","beds_total":100000,"beds_free":%d}`, i),
	}
}

// startLoad starts writers; reached is closed once target writes are acknowledged.
func startLoad(t *testing.T, c pb.RecordServiceClient, writers int, target int64) *load {
	l := &load{t: t, c: c, acked: map[string]ack{}, reached: make(chan struct{}), target: target}
	for w := range writers {
		l.wg.Add(1)
		go l.write(w)
	}
	return l
}

func (l *load) write(w int) {
	defer l.wg.Done()
	for i := 0; !l.stopping.Load(); i++ {
		var stored []*pb.PutResponse
		var err error
		if w%2 == 0 {
			req := &pb.PutBatchRequest{}
			for k := range batchSize {
				req.Records = append(req.Records, loadRecord(w, k, i))
			}
			var resp *pb.PutBatchResponse
			if resp, err = l.c.PutBatch(context.Background(), req); err == nil {
				for _, r := range resp.Results {
					if r.Code != 0 {
						l.t.Errorf("writer %d: record %d refused: %s", w, r.Index, r.Message)
						return
					}
					stored = append(stored, r.Stored)
				}
			}
		} else {
			var resp *pb.PutResponse
			if resp, err = l.c.Put(context.Background(), &pb.PutRequest{Record: loadRecord(w, i%batchSize, i)}); err == nil {
				stored = append(stored, resp)
			}
		}
		if err != nil {
			if !l.stopping.Load() {
				l.t.Errorf("writer %d: %v before the node was stopped", w, err)
			} else if c := status.Code(err); c != codes.Unavailable {
				l.t.Errorf("writer %d: %v, want UNAVAILABLE once the node stops", w, err)
			}
			return
		}
		l.mu.Lock()
		for _, r := range stored {
			l.acked[r.Id] = ack{version: r.Version, free: i}
		}
		l.mu.Unlock()
		if l.total.Add(int64(len(stored))) >= l.target {
			l.once.Do(func() { close(l.reached) })
		}
	}
}

// waitReached waits until the target is acknowledged, with a deadline.
func (l *load) waitReached(within time.Duration) {
	l.t.Helper()
	select {
	case <-l.reached:
	case <-time.After(within):
		l.t.Fatalf("only %d writes acknowledged within %s, want %d", l.total.Load(), within, l.target)
	}
}

// wait waits for every writer to end after the node stopped.
func (l *load) wait(within time.Duration) map[string]ack {
	l.t.Helper()
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(within):
		l.t.Fatalf("writers still running %s after the node stopped", within)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.acked
}

// verify checks that every acknowledged write is stored: at least at its version, and with its
// body when at exactly that version. A writer has one write in flight at a time, so a record is
// at most one version past its acknowledgement.
func verify(t *testing.T, c pb.RecordServiceClient, acked map[string]ack) map[string]*pb.Record {
	t.Helper()
	stored := map[string]*pb.Record{}
	req := &pb.ListRequest{PageSize: 1000}
	for {
		resp, err := c.List(callCtx(t), req)
		if err != nil {
			t.Fatalf("List after restart: %v", err)
		}
		for _, r := range resp.Records {
			stored[r.Id] = r
		}
		if resp.NextPageToken == "" {
			break
		}
		req.PageToken = resp.NextPageToken
	}
	lost := 0
	for id, a := range acked {
		r, ok := stored[id]
		switch {
		case !ok:
			lost++
			t.Errorf("%s: acknowledged at version %d, not stored after restart", id, a.version)
		case r.Version < a.version:
			lost++
			t.Errorf("%s: acknowledged at version %d, stored at version %d", id, a.version, r.Version)
		case r.Version > a.version+1:
			t.Errorf("%s: acknowledged at version %d, stored at version %d: more than the one write in flight", id, a.version, r.Version)
		case r.Version == a.version:
			var body struct {
				BedsFree int `json:"beds_free"`
			}
			if err := json.Unmarshal(r.Body, &body); err != nil || body.BedsFree != a.free {
				t.Errorf("%s: version %d has body %s, want beds_free %d", id, r.Version, r.Body, a.free)
			}
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d acknowledged records lost", lost, len(acked))
	}
	return stored
}

// TestCrashKeepsAcknowledgedWrites kills a node with SIGKILL while sixteen writers load it,
// restarts it on the same data directory, and checks that every write it acknowledged is there
// and that the database is intact.
func TestCrashKeepsAcknowledgedWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills node processes")
	}
	dir := shortDir(t)
	p, conn := serveNode(t, dir)
	l := startLoad(t, pb.NewRecordServiceClient(conn), 16, 1500)
	l.waitReached(30 * time.Second)

	l.stopping.Store(true)
	if err := p.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if code := p.ExitCode(t, 10*time.Second); code != -1 {
		t.Fatalf("exit code %d, want -1 (killed)", code)
	}
	acked := l.wait(10 * time.Second)
	t.Logf("%d writes acknowledged to %d records before SIGKILL", l.total.Load(), len(acked))
	// The killed node left its socket file behind; the restart must take it over.
	if _, err := os.Lstat(filepath.Join(dir, "data", node.SocketName)); err != nil {
		t.Fatalf("want the killed node's socket left behind: %v", err)
	}

	p2, conn2 := serveNode(t, dir)
	c2 := pb.NewRecordServiceClient(conn2)
	stored := verify(t, c2, acked)
	st, err := pb.NewStatusServiceClient(conn2).Status(callCtx(t), &pb.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Records != int64(len(stored)) {
		t.Fatalf("status counts %d records, List returned %d", st.Records, len(stored))
	}
	// Versions go on from the recovered state.
	for id, r := range stored {
		resp, err := c2.Put(callCtx(t), &pb.PutRequest{Record: &pb.Record{
			Id: id, Version: r.Version, Kind: r.Kind, Crisis: r.Crisis, Region: r.Region,
			Classification: r.Classification, Body: r.Body,
		}})
		if err != nil || resp.Version != r.Version+1 {
			t.Fatalf("Put %s at version %d after restart = %v, %v", id, r.Version, resp, err)
		}
		break
	}

	if err := p2.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p2.ExitCode(t, 30*time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0; output:\n%s", code, p2.Out.String())
	}
	if err := db.IntegrityCheck(filepath.Join(dir, "data", "knooppunt.db")); err != nil {
		t.Fatal(err)
	}
}

// TestSIGTERMStopsCleanly stops a node under load with SIGTERM: it exits 0 within a deadline,
// ends open Watch streams, removes its socket, leaves an intact database, and keeps every write it
// acknowledged.
func TestSIGTERMStopsCleanly(t *testing.T) {
	if testing.Short() {
		t.Skip("starts node processes")
	}
	dir := shortDir(t)
	p, conn := serveNode(t, dir)
	c := pb.NewRecordServiceClient(conn)

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	w, err := c.Watch(ctx, &pb.WatchRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(callCtx(t), &pb.PutRequest{Record: loadRecord(99, 0, 0)}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Recv(); err != nil { // the stream is open on the node
		t.Fatal(err)
	}
	// A watcher that keeps reading, as watchers do, until the node ends the stream.
	watchEnd := make(chan error, 1)
	go func() {
		for {
			if _, err := w.Recv(); err != nil {
				watchEnd <- err
				return
			}
		}
	}()
	l := startLoad(t, c, 4, 200)
	l.waitReached(30 * time.Second)

	l.stopping.Store(true)
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.ExitCode(t, 15*time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0; output:\n%s", code, p.Out.String())
	}
	acked := l.wait(10 * time.Second)
	sock := filepath.Join(dir, "data", node.SocketName)
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Fatalf("socket %s still there after SIGTERM: %v", sock, err)
	}
	select {
	case err := <-watchEnd:
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("watcher ended with %v, want UNAVAILABLE", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the watch stream did not end with the node")
	}
	if err := db.IntegrityCheck(filepath.Join(dir, "data", "knooppunt.db")); err != nil {
		t.Fatal(err)
	}

	_, conn2 := serveNode(t, dir)
	verify(t, pb.NewRecordServiceClient(conn2), acked)
}

// TestServeLogsTheSignal: the node's log says which signal stopped it, so that a supervisor's log
// tells a stop (SIGTERM) from a Ctrl-C (SIGINT) (review Z, Z19).
func TestServeLogsTheSignal(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node process")
	}
	for sig, want := range map[syscall.Signal]string{syscall.SIGTERM: "terminated signal received", syscall.SIGINT: "interrupt signal received"} {
		dir := shortDir(t)
		p := proctest.Start(t, nil, "serve", "--data-dir", filepath.Join(dir, "data"), "--log-level", "info")
		waitServing(t, p, filepath.Join(dir, "data", node.SocketName))
		if err := p.Cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		if code := p.ExitCode(t, 30*time.Second); code != 0 || !strings.Contains(p.Out.String(), `msg=stopping reason=signal signal="`+want+`"`) {
			t.Errorf("after %v: exit %d; the log does not say %q:\n%s", sig, code, want, p.Out.String())
		}
		// With no config it says it runs a demo node (a mistyped --data-dir) (review AA, AA11).
		if line := "level=WARN msg=\"no config: --config names none and the data directory holds no node.yaml: this is a demo node of local.crisis.test;"; !strings.Contains(p.Out.String(), line) {
			t.Errorf("the log does not say %q:\n%s", line, p.Out.String())
		}
	}
}

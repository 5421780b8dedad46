package node_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/knooppunt/knooppunt/node"
	"github.com/knooppunt/knooppunt/node/clustertest"
	"github.com/knooppunt/knooppunt/node/config"
	"github.com/knooppunt/knooppunt/node/db"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// dataDir is a fresh data directory whose socket path fits the 108-byte limit of unix sockets.
func dataDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if len(filepath.Join(dir, node.SocketName)) > 100 {
		d, err := os.MkdirTemp("", "kp")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(d) })
		dir = d
	}
	return dir
}

// start starts a node on dir. Unless the test stops it itself (and says so by calling the
// returned stop), it is stopped when the test ends.
func start(t *testing.T, dir string) (*node.Node, func() error) {
	t.Helper()
	cfg := config.Default()
	cfg.Raft.ElectionTimeout = 50 * time.Millisecond
	cfg.MetricsAddr = ""
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	n, err := node.Start(ctx, node.Options{DataDir: dir, Config: cfg, Version: "test", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatalf("node.Start: %v", err)
	}
	stopped := false
	stop := func() error {
		stopped = true
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return n.Stop(ctx)
	}
	t.Cleanup(func() {
		if !stopped {
			if err := stop(); err != nil {
				t.Errorf("Stop: %v", err)
			}
		}
	})
	return n, stop
}

func dial(t *testing.T, n *node.Node) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+n.SocketPath(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func callCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func shelter(id string) *pb.Record {
	return &pb.Record{
		Id: id, Kind: "shelter.capacity", Crisis: "oekraine", Region: "VR09",
		Classification: pb.Classification_INTERNAL,
		Body:           []byte(`{"municipality":"Utrecht","beds_total":100,"beds_free":14}`),
	}
}

func TestHealthServing(t *testing.T) {
	n, _ := start(t, dataDir(t))
	resp, err := healthpb.NewHealthClient(dial(t, n)).Check(callCtx(t), &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if resp.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health %s, want SERVING", resp.Status)
	}
}

func TestReflectionListsServices(t *testing.T) {
	n, _ := start(t, dataDir(t))
	stream, err := reflectionpb.NewServerReflectionClient(dial(t, n)).ServerReflectionInfo(callCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{
		MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{},
	}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.Name)
	}
	for _, want := range []string{"knooppunt.v1.RecordService", "knooppunt.v1.StatusService", "grpc.health.v1.Health"} {
		if !slices.Contains(names, want) {
			t.Errorf("reflection lists %v, missing %s", names, want)
		}
	}

	// The descriptors are there too, so grpcurl can build requests.
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{
		MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: "knooppunt.v1.RecordService"},
	}); err != nil {
		t.Fatal(err)
	}
	resp, err = stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetFileDescriptorResponse().GetFileDescriptorProto()) == 0 {
		t.Fatalf("no descriptor for knooppunt.v1.RecordService: %v", resp)
	}
}

func TestStatus(t *testing.T) {
	n, _ := start(t, dataDir(t))
	conn := dial(t, n)
	put, err := pb.NewRecordServiceClient(conn).Put(callCtx(t), &pb.PutRequest{Record: shelter("s-1")})
	if err != nil {
		t.Fatal(err)
	}
	st, err := pb.NewStatusServiceClient(conn).Status(callCtx(t), &pb.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if st.NodeName != "local" || st.Org != config.DefaultOrg || st.Version != "test" ||
		st.RaftState != "Leader" || st.Leader != "r1" || st.Records != 1 || st.LastSeq != put.Seq ||
		st.AppliedIndex == 0 || st.DbBytes == 0 || st.StartedAt == nil {
		t.Fatalf("Status = %v", st)
	}
	if want := []string{"alert", "assessment", "assessment.response", "guidance", "permit", "qa", "shelter.capacity", "signal", "sitrep"}; !slices.Equal(st.Kinds, want) {
		t.Fatalf("kinds %v, want %v", st.Kinds, want)
	}
	// The free disk is that of the data directory's file system, as statfs says it.
	var fs syscall.Statfs_t
	if err := syscall.Statfs(n.DB().Path(), &fs); err != nil {
		t.Fatal(err)
	}
	if free := int64(fs.Bavail * uint64(fs.Bsize)); st.DiskFreeBytes <= 0 || st.DiskFreeBytes < free/2 || st.DiskFreeBytes > free*2 {
		t.Errorf("disk_free_bytes %d, statfs says %d", st.DiskFreeBytes, free)
	}
}

// TestStopEndsWatchersAndKeepsData checks a clean stop: open Watch streams end with UNAVAILABLE
// instead of holding the stop up, the socket is removed, the database is intact, and a restart
// on the same directory serves what was written.
func TestStopEndsWatchersAndKeepsData(t *testing.T) {
	dir := dataDir(t)
	n, stop := start(t, dir)
	conn := dial(t, n)
	c := pb.NewRecordServiceClient(conn)
	put, err := c.Put(callCtx(t), &pb.PutRequest{Record: shelter("keep-1")})
	if err != nil {
		t.Fatal(err)
	}
	w, err := c.Watch(callCtx(t), &pb.WatchRequest{Cursor: put.Seq})
	if err != nil {
		t.Fatal(err)
	}
	// The stream is open on the node once this change arrives on it.
	if _, err := c.Put(callCtx(t), &pb.PutRequest{Record: shelter("keep-2")}); err != nil {
		t.Fatal(err)
	}
	if ch, err := w.Recv(); err != nil || ch.Record.Id != "keep-2" {
		t.Fatalf("Recv = %v, %v", ch, err)
	}

	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("Stop: %v", err)
		}
	case <-time.After(8 * time.Second):
		t.Fatal("Stop did not return within 8s with a watcher open")
	}
	_, err = w.Recv()
	if status.Code(err) != codes.Unavailable || status.Convert(err).Message() != "the node is shutting down: watch again from your last cursor" {
		t.Fatalf("watcher got %v, want UNAVAILABLE telling it to watch again", err)
	}
	if _, err := os.Lstat(n.SocketPath()); !os.IsNotExist(err) {
		t.Fatalf("socket still there after Stop: %v", err)
	}
	if err := db.IntegrityCheck(filepath.Join(dir, "knooppunt.db")); err != nil {
		t.Fatal(err)
	}

	n2, _ := start(t, dir)
	r, err := pb.NewRecordServiceClient(dial(t, n2)).Get(callCtx(t), &pb.GetRequest{Id: "keep-2"})
	if err != nil || r.Version != 1 {
		t.Fatalf("after restart Get = %v, %v", r, err)
	}
}

// TestFileAtTheSocketPathIsLeftAlone: a node that finds a file that is not a socket where its
// socket goes refuses to start, says to move the file, and leaves the file as it was.
func TestFileAtTheSocketPathIsLeftAlone(t *testing.T) {
	dir := dataDir(t)
	path := filepath.Join(dir, node.SocketName)
	if err := os.WriteFile(path, []byte("someone's file"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.MetricsAddr = ""
	n, err := node.Start(t.Context(), node.Options{DataDir: dir, Config: cfg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err == nil {
		n.Stop(t.Context())
		t.Fatal("a node started with a regular file at its socket's path")
	}
	if !strings.Contains(err.Error(), "is not a socket") {
		t.Fatalf("error %q does not say the path is not a socket", err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "someone's file" {
		t.Fatalf("the file at the socket's path after the refused start: %q, %v; want it untouched", b, err)
	}
}

// TestSecondNodeOnTheSameDirIsRefused checks that a second node on a data directory in use fails
// with a message that says so, instead of waiting forever for the first one's locks.
func TestSecondNodeOnTheSameDirIsRefused(t *testing.T) {
	dir := dataDir(t)
	start(t, dir)
	cfg := config.Default()
	cfg.Name = "second" // its metrics must not collide with the first node's
	cfg.MetricsAddr = ""
	type result struct {
		n   *node.Node
		err error
	}
	done := make(chan result, 1)
	go func() {
		n, err := node.Start(t.Context(), node.Options{DataDir: dir, Config: cfg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		done <- result{n, err}
	}()
	select {
	case r := <-done:
		if r.err == nil {
			r.n.Stop(t.Context())
			t.Fatal("a second node started on a data directory in use")
		}
		if !strings.Contains(r.err.Error(), "another node") {
			t.Fatalf("error %q does not say another node uses the directory", r.err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("a second node on the same data directory neither started nor failed within 15s")
	}
}

// TestStartAppliesTheLogBeforeServing: a node whose database is behind its Raft log (writes that
// were committed to the log and acknowledged, then the process died before, or while, the
// database applied them) serves its first read only after it has applied them. The database is
// put behind the log by restoring a copy taken after the first of three writes; the many writes
// after it keep the replay from finishing before Start could return without waiting for it.
func TestStartAppliesTheLogBeforeServing(t *testing.T) {
	dir := dataDir(t)
	dbPath := filepath.Join(dir, "knooppunt.db")
	n, stop := start(t, dir)
	c := pb.NewRecordServiceClient(dial(t, n))
	if _, err := c.Put(callCtx(t), &pb.PutRequest{Record: shelter("behind")}); err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	old, err := os.ReadFile(dbPath)
	if err != nil {
		t.Fatal(err)
	}

	n, stop = start(t, dir)
	c = pb.NewRecordServiceClient(dial(t, n))
	const writes = 300
	for i := range writes {
		r := shelter("behind")
		r.Version = int64(i + 1)
		if _, err := c.Put(callCtx(t), &pb.PutRequest{Record: r}); err != nil {
			t.Fatal(err)
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dbPath, old, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, suffix := range []string{"-wal", "-shm"} {
		os.Remove(dbPath + suffix)
	}

	n, _ = start(t, dir)
	r, err := pb.NewRecordServiceClient(dial(t, n)).Get(callCtx(t), &pb.GetRequest{Id: "behind"})
	if err != nil || r.Version != writes+1 {
		t.Fatalf("first read after the restart = version %d, %v; want version %d: the log was not applied before serving", r.GetVersion(), err, writes+1)
	}
}

// TestStartRefusesAnotherOrgsDatabase: a node whose config names another org than the one in
// its data directory (another organisation's directory or backup) does not start, says whose
// it is, and leaves it as it was for the node it belongs to. An org that only receives holds no
// records of its own, and its database passed for anyone's (review E, E2): the node notes its
// org in the database.
func TestStartRefusesAnotherOrgsDatabase(t *testing.T) {
	for _, ownRecords := range []bool{true, false} {
		t.Run(fmt.Sprintf("own records %v", ownRecords), func(t *testing.T) {
			dir := dataDir(t)
			n, stop := start(t, dir)
			if ownRecords {
				if _, err := pb.NewRecordServiceClient(dial(t, n)).Put(callCtx(t), &pb.PutRequest{Record: shelter("houten")}); err != nil {
					t.Fatalf("Put: %v", err)
				}
			}
			own := config.Default().Org
			if err := stop(); err != nil {
				t.Fatal(err)
			}

			cfg := config.Default()
			cfg.Org = "politie.crisis.test"
			cfg.MetricsAddr = ""
			other, err := node.Start(t.Context(), node.Options{DataDir: dir, Config: cfg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err == nil {
				other.Stop(t.Context())
				t.Fatalf("a node of %s started on the database of %s", cfg.Org, own)
			}
			for _, want := range []string{dir, "is that of " + own, "this node's org politie.crisis.test"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}

			n, _ = start(t, dir)
			if !ownRecords {
				return
			}
			got, err := pb.NewRecordServiceClient(dial(t, n)).Get(callCtx(t), &pb.GetRequest{Id: "houten"})
			if err != nil || got.GetOrigin() != own {
				t.Fatalf("the own node after the refusal: Get = %v, %v", got, err)
			}
		})
	}
}

// TestStartSaysTheDataDirIsNotWritable: a data directory the process may not write in is named
// as such, not as SQLite's "unable to open database file". /sys is one even for root.
func TestStartSaysTheDataDirIsNotWritable(t *testing.T) {
	cfg := config.Default()
	cfg.MetricsAddr = ""
	n, err := node.Start(t.Context(), node.Options{DataDir: "/sys", Config: cfg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err == nil {
		n.Stop(t.Context())
		t.Skip("this process may write in /sys")
	}
	if want := "node: data dir /sys is not writable by this process (uid "; !strings.HasPrefix(err.Error(), want) || !strings.HasSuffix(err.Error(), "choose another --data-dir") {
		t.Errorf("error %q, want it to start %q", err, want)
	}
}

// TestStatusAppliedIndexWithoutLeader: a replica of a group restarted alone, with no leader to
// tell it what is committed, says in status the applied index its database holds, as cluster
// status does, not 0.
func TestStatusAppliedIndexWithoutLeader(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{})
	c.Leader(t, 10*time.Second, c.Replicas...)
	r1 := c.Replicas[0]
	r1.Put(t, clustertest.Shelter("before", 3))
	c.Converged(t, 10*time.Second, c.Replicas...)
	for _, r := range c.Replicas {
		r.Stop(t)
	}
	r1.Start(t) // alone: it waits for a leader, finds none, and serves
	cst, err := r1.Status(clustertest.Call(t), t)
	if err != nil {
		t.Fatal(err)
	}
	st, err := pb.NewStatusServiceClient(r1.Local(t)).Status(clustertest.Call(t), &pb.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Leader != "" || cst.AppliedIndex == 0 || st.AppliedIndex != cst.AppliedIndex {
		t.Fatalf("status: leader %q, applied index %d; cluster status: %d; want the same, not 0", st.Leader, st.AppliedIndex, cst.AppliedIndex)
	}
}

// TestJoinedReplicaWaitsForItsLeaderAndRemovedIsNoMember: a replica that was joined with
// raft.bootstrap: false waits at a restart for its group's leader, as one that bootstrapped
// does, so that it serves knowing it. Once removed, its own configuration leaves it out, which
// is how status and cluster status tell that it is no member; so does one never joined.
func TestJoinedReplicaWaitsForItsLeaderAndRemovedIsNoMember(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{})
	leader := c.Leader(t, 10*time.Second, c.Replicas...)
	r4 := c.AddReplica(t, "r4")
	r4.Start(t)
	if st, err := r4.Status(clustertest.Call(t), t); err != nil || len(st.Replicas) != 0 {
		t.Fatalf("a replica waiting to be joined sees the group %v (%v), want none", st.GetReplicas(), err)
	}
	cs := pb.NewClusterServiceClient(leader.Local(t)) // any replica forwards to the leader
	retryUnavailable(t, "join r4", func() (*pb.ClusterStatusResponse, error) {
		return cs.Join(clustertest.Call(t), &pb.JoinRequest{Id: "r4", RaftAddress: r4.Raft})
	})
	c.Converged(t, 15*time.Second, c.Replicas...)
	r4.Stop(t)
	r4.Start(t)
	if l := r4.Node.Store().Leader(); l == "" {
		t.Fatal("r4, joined with raft.bootstrap: false, served after a restart without waiting for its leader")
	}
	// The removal reaches r4 only if the leader's last message to it does: one that did not
	// get it (down, cut off) cannot know. So r4 takes a write first, over a fresh connection.
	leader.Put(t, clustertest.Shelter("after-restart", 1))
	c.Converged(t, 15*time.Second, c.Replicas...)

	retryUnavailable(t, "remove r4", func() (*pb.ClusterStatusResponse, error) {
		return cs.Remove(clustertest.Call(t), &pb.RemoveRequest{Id: "r4"})
	})
	clustertest.Eventually(t, 10*time.Second, "r4 leaves itself out of its configuration", func() (bool, string) {
		st, err := r4.Status(clustertest.Call(t), t)
		if err != nil {
			return false, err.Error()
		}
		return !slices.ContainsFunc(st.Replicas, func(r *pb.Replica) bool { return r.Id == "r4" }), voters(st)
	})
	r4.Stop(t)
	r4.Start(t)
	st, err := r4.Status(clustertest.Call(t), t)
	if err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(st.Replicas, func(r *pb.Replica) bool { return r.Id == "r4" }) {
		t.Fatalf("r4, removed and restarted, sees itself in the group %s", voters(st))
	}
	// A write to it says it is no member, not that it cannot reach a majority (review AA, AA12).
	_, err = r4.Records(t).Put(clustertest.Call(t), &pb.PutRequest{Record: clustertest.Shelter("to-r4", 1)})
	if status.Code(err) != codes.Unavailable || !strings.Contains(status.Convert(err).Message(), "this replica is not a member of its group: removed, or waiting to be joined") {
		t.Errorf("a write to the removed r4: %v", err)
	}
}

// TestStartChecksTheDirectoryThenThePorts: a second node on a data directory in use is told
// that, not that a port is taken (its config is the first's, ports and all); and a node whose
// port another process holds fails before it makes a database or a Raft log.
func TestStartChecksTheDirectoryThenThePorts(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	cfg := config.Default()
	cfg.MetricsAddr = held.Addr().String()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir := dataDir(t)
	_, err = node.Start(t.Context(), node.Options{DataDir: dir, Config: cfg, Logger: quiet})
	if err == nil || !strings.Contains(err.Error(), "metrics_addr "+held.Addr().String()) {
		t.Fatalf("start with metrics_addr taken: %v, want it named", err)
	}
	for _, name := range []string{node.DatabaseName, "raft"} {
		if _, err := os.Stat(filepath.Join(dir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a start that failed on a taken port made %s (%v)", name, err)
		}
	}

	held.Close() // the first node takes it
	first, err := node.Start(t.Context(), node.Options{DataDir: dir, Config: cfg, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { first.Stop(context.Background()) })
	_, err = node.Start(t.Context(), node.Options{DataDir: dir, Config: cfg, Logger: quiet})
	if want := "another node runs on this data directory (" + dir + ")"; err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("a second node on the same directory: %v, want %q", err, want)
	}
}

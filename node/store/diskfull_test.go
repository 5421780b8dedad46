package store

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	walfs "github.com/hashicorp/raft-wal/fs"
	"github.com/hashicorp/raft-wal/types"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/federation/identity/identitytest"
	"github.com/knooppunt/knooppunt/node/db"
	"github.com/knooppunt/knooppunt/node/metrics"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// fullDisk stands for the disk of the Raft log as a full one is to raft-wal when full is set:
// creating a segment makes its file, empty, and preallocating the segment's size then fails with
// ENOSPC, which is what raft-wal's own file system (fs.FS.Create: an exclusive create, then
// fallocate) does, and leaves, on a disk with no room for the segment. Tests cannot mount a
// small tmpfs and fill it; appends to a segment already made still succeed, as on such a disk,
// since a segment is preallocated whole.
type fullDisk struct {
	types.VFS
	full atomic.Bool
	mu   sync.Mutex
	made []string // the segments it was asked to create while full
}

func newFullDisk() *fullDisk { return &fullDisk{VFS: walfs.New()} }

func (d *fullDisk) Create(dir, name string, size uint64) (types.WritableFile, error) {
	if !d.full.Load() {
		return d.VFS.Create(dir, name, size)
	}
	d.mu.Lock()
	d.made = append(d.made, name)
	d.mu.Unlock()
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	f.Close()
	return nil, syscall.ENOSPC // as fallocate(2) answers: fileutil.Preallocate returns the errno bare
}

func (d *fullDisk) lastMade() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.made) == 0 {
		return ""
	}
	return d.made[len(d.made)-1]
}

// emptySegments are the zero-length segment files in the log directory dir.
func emptySegments(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	for _, p := range db.Matching(filepath.Join(dir, walDir), "*.wal") {
		if fi, err := os.Stat(p); err == nil && fi.Size() == 0 {
			out = append(out, filepath.Base(p))
		}
	}
	return out
}

// TestASegmentTheFullDiskRefusedIsMadeOnceThereIsSpace: the disk fills as the log needs its next
// segment. Appends fail, saying the disk is full, and leave no empty segment file; once there is
// space the next append succeeds, with every entry before it still there. raft-wal (v0.4.1) left
// the empty file of the failed creation and took the same name at the next attempt: every append
// after it failed with "file exists", with space or without, until a restart (review H, F8).
// An empty segment file that a process left (killed before it removed one) is taken for one too.
func TestASegmentTheFullDiskRefusedIsMadeOnceThereIsSpace(t *testing.T) {
	dir := t.TempDir()
	disk := newFullDisk()
	l, err := openLogSized(dir, 64<<10, 0, disk, hclog.NewNullLogger(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	entry := func(i uint64) *raft.Log {
		return &raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: bytes.Repeat([]byte{byte(i)}, 20<<10)}
	}
	for i := uint64(1); i <= 3; i++ {
		if err := l.StoreLogs([]*raft.Log{entry(i)}); err != nil {
			t.Fatal(err)
		}
	}
	disk.full.Store(true)
	// Entry 4 fills the segment, which raft-wal seals; the next one it starts in the background
	// fails, and the append of entry 5 finds the sealed tail and fails to repair it.
	if err := l.StoreLogs([]*raft.Log{entry(4)}); err != nil {
		t.Fatalf("append of the entry that fills the segment: %v", err)
	}
	for attempt := range 3 {
		err := l.StoreLogs([]*raft.Log{entry(5)})
		if !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("append %d on the full disk: %v, want ENOSPC", attempt, err)
		}
		if at, ferr := l.failure(); ferr == nil || time.Since(at) > time.Minute {
			t.Fatalf("failure after append %d on the full disk = %v, %v; want its error, now", attempt, at, ferr)
		}
		if empty := emptySegments(t, dir); len(empty) != 0 {
			t.Fatalf("append %d on the full disk left empty segment files %v", attempt, empty)
		}
	}
	// A process killed between a failed creation and its removal leaves the empty file.
	left := disk.lastMade()
	if err := os.WriteFile(filepath.Join(dir, walDir, left), nil, 0o644); err != nil {
		t.Fatal(err)
	}

	disk.full.Store(false)
	if err := l.StoreLogs([]*raft.Log{entry(5)}); err != nil {
		t.Fatalf("append once there is space again: %v", err)
	}
	if at, err := l.failure(); err != nil {
		t.Fatalf("failure after an append succeeded = %v, %v; want none", at, err)
	}
	check := func(l *raftLog, last uint64) {
		t.Helper()
		for i := uint64(1); i <= last; i++ {
			var got raft.Log
			if err := l.GetLog(i, &got); err != nil || !bytes.Equal(got.Data, entry(i).Data) {
				t.Fatalf("entry %d: %d bytes, %v; want it as appended", i, len(got.Data), err)
			}
		}
	}
	check(l, 5)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := openLogSized(dir, 64<<10, 0, nil, hclog.NewNullLogger(), quiet)
	if err != nil {
		t.Fatalf("open after the full disk: %v", err)
	}
	defer again.Close()
	if err := again.StoreLogs([]*raft.Log{entry(6)}); err != nil {
		t.Fatal(err)
	}
	check(again, 6)
	if empty := emptySegments(t, dir); len(empty) != 0 {
		t.Fatalf("empty segment files %v after the disk had space again", empty)
	}
}

// TestAFullDiskIsNamedAndOvercome: a single replica whose Raft log cannot start its next segment
// (the disk is full) loses its leadership, as Raft steps down when its own log refuses an entry;
// its writers are told that the log cannot be written for want of space (ENOSPC, which the API
// answers RESOURCE_EXHAUSTED), not only that it is not the leader, and LogWriteFailure says so
// for status. Once there is space it leads again by itself and takes writes, with no restart.
func TestAFullDiskIsNamedAndOvercome(t *testing.T) {
	dir := t.TempDir()
	d := openDB(t, filepath.Join(dir, "knooppunt.db"))
	disk := newFullDisk()
	s := startStore(t, Config{Dir: filepath.Join(dir, "raft"), DB: d, Bootstrap: true,
		openLog: func(dir string, hl hclog.Logger, log *slog.Logger) (*raftLog, error) {
			return openLogSized(dir, 64<<10, 0, disk, hl, log)
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	body := `{"notes":"` + strings.Repeat("x", 20<<10) + `"}`
	write(t, s, rec("before", body))
	disk.full.Store(true)
	var failed error
	for i := 0; failed == nil && i < 10; i++ {
		_, failed = s.Write(ctx, []*pb.Record{rec("full", body)})
	}
	if !errors.Is(failed, syscall.ENOSPC) {
		t.Fatalf("writes on the full disk: %v, want one failing with ENOSPC", failed)
	}
	// Every election fails the same way: the replica has no leader, and says why.
	for {
		_, err := s.Write(ctx, []*pb.Record{rec("full", body)})
		if errors.Is(err, ErrNotLeader) && errors.Is(err, syscall.ENOSPC) && strings.Contains(err.Error(), "raft log cannot be written") {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("write while the disk is full: %v, want ErrNotLeader saying the raft log cannot be written (ENOSPC)", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if at, err := s.LogWriteFailure(); !errors.Is(err, syscall.ENOSPC) || at.IsZero() {
		t.Fatalf("LogWriteFailure = %v, %v; want ENOSPC and when", at, err)
	}

	disk.full.Store(false)
	if err := s.WaitLeader(ctx); err != nil {
		t.Fatalf("no leader once there is space again: %v", err)
	}
	for {
		_, err := s.Write(ctx, []*pb.Record{rec("after", body)})
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("write once there is space again: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if at, err := s.LogWriteFailure(); err != nil {
		t.Fatalf("LogWriteFailure after a write succeeded = %v, %v; want none", at, err)
	}
	if _, err := d.Get(ctx, "after"); err != nil {
		t.Fatalf("the write after the disk had space: %v", err)
	}
}

// tmpDirs are the snapshot directories under raftDir whose writing did not finish.
func tmpDirs(raftDir string) []string {
	return db.Matching(filepath.Join(raftDir, snapshotsDir), "*"+tmpSuffix)
}

// plantSnapshot leaves in raftDir an unfinished snapshot holding content, as a replica killed
// while it wrote the snapshot leaves it.
func plantSnapshot(t *testing.T, raftDir, id, content string) {
	t.Helper()
	p := filepath.Join(raftDir, snapshotsDir, id+tmpSuffix)
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p, "state.bin"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestStartRemovesWhatASnapshotLeft: a replica killed while it took a snapshot leaves the Raft
// snapshot unfinished (raft/snapshots/<id>.tmp, a partial copy of the database), and the copy of
// the database with SQLite's journal of it beside the database; a start removes them all, and
// keeps the snapshot that is whole (review H, F9 and F2).
func TestStartRemovesWhatASnapshotLeft(t *testing.T) {
	n := newNode(t)
	write(t, n.s, rec("kept", `{"n":1}`))
	if err := n.s.Snapshot(); err != nil {
		t.Fatal(err)
	}
	n.close(t)
	plantSnapshot(t, n.raftDir, "2-9-1796551382261", "a deleted record's body")
	left := []string{"snapshot-3116017688.db.tmp", "snapshot-3116017688.db.tmp-journal"}
	for _, name := range left {
		if err := os.WriteFile(filepath.Join(filepath.Dir(n.dbPath), name), []byte("a copy"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	n.db = openDB(t, n.dbPath)
	n.s = openStore(t, n.raftDir, n.db, true)
	if tmps := tmpDirs(n.raftDir); len(tmps) != 0 {
		t.Fatalf("unfinished snapshots after a start: %v", tmps)
	}
	for _, name := range left {
		if _, err := os.Stat(filepath.Join(filepath.Dir(n.dbPath), name)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s after a start: %v, want it gone", name, err)
		}
	}
	if list, err := n.s.snaps.List(); err != nil || len(list) != 1 {
		t.Fatalf("snapshots after a start: %v, %v; want the whole one", list, err)
	}
}

// TestErasureRemovesUnfinishedSnapshots: a snapshot cut short (by a kill, or a full disk, which
// hashicorp/raft's Cancel leaves behind) holds the records as they were; a delete's erasure run
// removes it, so the deleted body leaves the Raft directory within the bound (review H, F9).
func TestErasureRemovesUnfinishedSnapshots(t *testing.T) {
	dir := t.TempDir()
	d := openDB(t, filepath.Join(dir, "knooppunt.db"))
	raftDir := filepath.Join(dir, "raft")
	s := startStore(t, Config{Dir: raftDir, DB: d, Bootstrap: true, EraseWithin: 200 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	secret := "Locatie nummer 777 opvang"
	write(t, s, rec("gone", `{"notes":"`+secret+`"}`))
	// Left while this replica runs: a snapshot Raft wrote failed, and hashicorp/raft's own
	// Cancel returned before it removed its directory.
	plantSnapshot(t, raftDir, "1-5-1796551382261", secret)
	write(t, s, tomb("gone"))
	for {
		if pending, applied := s.erase.due(); pending.IsZero() && applied > 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("no erasure ran after the delete")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if tmps := tmpDirs(raftDir); len(tmps) != 0 {
		t.Fatalf("unfinished snapshots after an erasure: %v", tmps)
	}
	if dirHas(t, raftDir, []byte(secret)) {
		t.Fatal("the deleted record's body is still in the Raft directory after its erasure")
	}
}

// TestSweepLeavesASnapshotBeingWritten: the sweep at an erasure removes the unfinished snapshots
// that no sink writes, and leaves the one Raft is writing, which then finishes.
func TestSweepLeavesASnapshotBeingWritten(t *testing.T) {
	dir := t.TempDir()
	snaps, err := openSnapshots(dir, hclog.NewNullLogger(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	sink, err := snaps.Create(raft.SnapshotVersionMax, 10, 2, raft.Configuration{}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sink.Write([]byte("being written")); err != nil {
		t.Fatal(err)
	}
	plantSnapshot(t, dir, "1-5-1796551382261", "left")
	if err := snaps.sweep(); err != nil {
		t.Fatal(err)
	}
	if tmps := tmpDirs(dir); len(tmps) != 1 || filepath.Base(tmps[0]) != sink.ID()+tmpSuffix {
		t.Fatalf("unfinished snapshots after a sweep: %v, want only %s, being written", tmps, sink.ID())
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	if list, err := snaps.List(); err != nil || len(list) != 1 || list[0].ID != sink.ID() {
		t.Fatalf("snapshots: %v, %v; want %s", list, err, sink.ID())
	}
}

// TestAFailedSnapshotLeavesNothing: a snapshot whose writes the disk refuses is cancelled and
// leaves no directory. hashicorp/raft (v1.8.0) FileSnapshotSink.Cancel flushes first and, when
// that fails, returns before it removes its directory: a full disk left a partial copy of the
// database there for good (review H, F9). The test runs itself in a child process with a file
// size limit (RLIMIT_FSIZE), which the kernel enforces as a full disk would: writes past it fail
// (EFBIG, not ENOSPC, by the same path). The limit would hold for every test of the process.
func TestAFailedSnapshotLeavesNothing(t *testing.T) {
	if os.Getenv("STORE_TEST_FILE_LIMIT") == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestAFailedSnapshotLeavesNothing$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), "STORE_TEST_FILE_LIMIT=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !bytes.Contains(out, []byte("--- PASS: TestAFailedSnapshotLeavesNothing")) {
			t.Fatalf("the test under a file size limit: %v\n%s", err, out)
		}
		return
	}
	dir := t.TempDir()
	copyPath := filepath.Join(dir, "snapshot-1.db.tmp")
	if err := os.WriteFile(copyPath, bytes.Repeat([]byte("a record's body "), 1<<17), 0o600); err != nil { // 2 MiB
		t.Fatal(err)
	}
	snaps, err := openSnapshots(dir, hclog.NewNullLogger(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	var limit syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &limit); err != nil {
		t.Fatal(err)
	}
	limit.Cur = 256 << 10
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &limit); err != nil {
		t.Fatal(err)
	}
	sink, err := snaps.Create(raft.SnapshotVersionMax, 10, 2, raft.Configuration{}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := (&snapshot{path: copyPath}).Persist(sink); err == nil {
		t.Fatal("Persist of 2 MiB under a limit of 256 KiB succeeded")
	}
	if tmps := tmpDirs(dir); len(tmps) != 0 {
		t.Fatalf("a snapshot the disk refused left %v", tmps)
	}
}

// TestCheckRoomSaysACrossingWithoutWrites: the reserve's crossings are said by the reading every
// replica takes (WatchRoom), with no write to refuse: once under, once above again (review AC,
// AC7: only a leader's write said them).
func TestCheckRoomSaysACrossingWithoutWrites(t *testing.T) {
	dir := t.TempDir()
	var free atomic.Uint64
	free.Store(100 << 20)
	log := identitytest.NewLog()
	s := startStore(t, Config{Dir: filepath.Join(dir, "raft"), DB: openDB(t, filepath.Join(dir, "knooppunt.db")), Bootstrap: true, Reserve: 256 << 20,
		Free: func() (uint64, error) { return free.Load(), nil }, Logger: log.Logger})
	const under = "the disk of the data directory has less free than the reserve: this replica, while it leads, refuses writes that add data (DISK_LOW) until there is room; free space, or lower disk_reserve_mib"
	for range 3 {
		var low *LowDiskError
		if err := s.CheckRoom(); !errors.As(err, &low) {
			t.Fatalf("CheckRoom under the reserve: %v", err)
		}
	}
	if n := log.Count(under, nil); n != 1 {
		t.Errorf("under the reserve, three readings said it %d times, want once", n)
	}
	free.Store(300 << 20)
	if err := s.CheckRoom(); err != nil {
		t.Fatalf("CheckRoom with room: %v", err)
	}
	if n := log.Count("the disk of the data directory has room again: writes are taken", nil); n != 1 {
		t.Errorf("room again was said %d times, want once", n)
	}
}

// TestALowDiskRefusesWhatAddsData: with less free than the reserve, the leader refuses record
// writes and files' chunks with a *LowDiskError before they enter the log; deletes, partners'
// records and retractions (one batch holds both) and the other commands go in; and once there is
// room again, writes do.
// A full database disk stopped a single replica, reads and all, and the write that filled it
// was told UNAVAILABLE though stored (review H, F1).
func TestALowDiskRefusesWhatAddsData(t *testing.T) {
	dir := t.TempDir()
	d := openDB(t, filepath.Join(dir, "knooppunt.db"))
	var free atomic.Uint64
	free.Store(1 << 30)
	log := identitytest.NewLog()
	s := startStore(t, Config{Dir: filepath.Join(dir, "raft"), DB: d, Bootstrap: true, Reserve: 256 << 20,
		Free: func() (uint64, error) { return free.Load(), nil }, Logger: log.Logger})
	s.freeEvery = 0 // each write reads the free space the test sets
	ctx := context.Background()
	if _, err := s.Write(ctx, []*pb.Record{rec("r1", `{"beds_free":1}`), rec("r2", `{"beds_free":2}`)}); err != nil {
		t.Fatalf("a write with room: %v", err)
	}
	free.Store(100 << 20)
	refused, _ := metrics.Value("knooppunt_record_writes_total", map[string]string{"outcome": "disk_low"})
	var low *LowDiskError
	if _, err := s.Write(ctx, []*pb.Record{rec("r3", `{"beds_free":3}`)}); !errors.As(err, &low) || low.Free != 100<<20 || low.Reserve != 256<<20 {
		t.Fatalf("a write under the reserve: %v, want a LowDiskError of 100 of 256 MiB", err)
	}
	// The crossing is logged once, and each record refused counted (review AA, AA3).
	e := log.Wait(t, time.Second, "the disk of the data directory has less free than the reserve: this replica, while it leads, refuses writes that add data (DISK_LOW) until there is room; free space, or lower disk_reserve_mib", nil)
	if e.Str("level") != "WARN" || e.Str("free_mib") != "100" || e.Str("reserve_mib") != "256" {
		t.Errorf("logged %v", e)
	}
	if v, _ := metrics.Value("knooppunt_record_writes_total", map[string]string{"outcome": "disk_low"}); v != refused+1 {
		t.Errorf("record_writes_total{outcome=disk_low} %v after one refused, want %v", v, refused+1)
	}
	if _, err := s.Write(ctx, []*pb.Record{tomb("r1"), rec("r3", `{}`)}); !errors.As(err, &low) {
		t.Errorf("a delete with a write under the reserve: %v, want a LowDiskError", err)
	}
	if res, err := s.Write(ctx, []*pb.Record{tomb("r1")}); err != nil || res[0].Err != nil {
		t.Errorf("a delete under the reserve: %v %v, want it to go in", err, res)
	}
	foreign := func(upserts ...*pb.SharedRecord) *pb.Command {
		return &pb.Command{Cmd: &pb.Command_CacheForeign{CacheForeign: &pb.CacheForeign{Peer: "p", Origin: "p.crisis.test",
			Upserts: upserts, Retractions: []string{"gone"}, Cursor: 1, At: timestamppb.Now()}}}
	}
	if _, err := s.Apply(ctx, &pb.Command{Cmd: &pb.Command_FileChunk{FileChunk: &pb.FileChunk{UploadId: "u", Data: []byte("x"), At: timestamppb.Now()}}}); !errors.As(err, &low) {
		t.Errorf("a file's chunk under the reserve: %v, want a LowDiskError", err)
	}
	for name, c := range map[string]*pb.Command{
		"a partner's records and retractions": foreign(&pb.SharedRecord{Record: rec("p1", `{}`)}),
		"an audit entry":                      {Cmd: &pb.Command_AppendAudit{AppendAudit: &pb.AppendAudit{Entries: []*pb.AuditEntry{{Action: "test", Actor: "t", Subject: "s", At: timestamppb.Now()}}}}},
	} {
		if _, err := s.Apply(ctx, c); err != nil {
			t.Errorf("%s under the reserve: %v, want it to go in", name, err)
		}
	}
	free.Store(300 << 20)
	if _, err := s.Write(ctx, []*pb.Record{rec("r3", `{"beds_free":3}`)}); err != nil {
		t.Errorf("a write once there is room again: %v", err)
	}
	log.Wait(t, time.Second, "the disk of the data directory has room again: writes are taken", nil)
	if n := log.Count("the disk of the data directory has less free than the reserve: this replica, while it leads, refuses writes that add data (DISK_LOW) until there is room; free space, or lower disk_reserve_mib", nil); n != 1 {
		t.Errorf("the crossing was logged %d times, want once", n)
	}
}

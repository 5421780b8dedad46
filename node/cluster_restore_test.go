package node_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/knooppunt/knooppunt/node"
	"github.com/knooppunt/knooppunt/node/api/cluster"
	"github.com/knooppunt/knooppunt/node/clustertest"
	"github.com/knooppunt/knooppunt/node/db"
	"github.com/knooppunt/knooppunt/node/metrics"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestClusterRestoreFromBackup: a group of three loses every disk and comes back from a backup
// taken from a follower while the group served, in the two ways docs/operator.md gives: the
// backup in every replica's data directory, or in one, with the others empty and waiting to be
// joined. Either way the group holds what the backup held and not what came after, elects a
// leader, takes writes after the backup's last entry, and every replica converges.
func TestClusterRestoreFromBackup(t *testing.T) {
	for _, everywhere := range []bool{true, false} {
		t.Run(fmt.Sprintf("everywhere=%v", everywhere), func(t *testing.T) {
			c := clustertest.Start(t, clustertest.Options{})
			leader := c.Leader(t, 10*time.Second, c.Replicas...)
			for i := range 30 {
				leader.Put(t, clustertest.Shelter(fmt.Sprintf("before-%02d", i), int64(i)))
			}
			follower := c.Replicas[0]
			if follower == leader {
				follower = c.Replicas[1]
			}
			c.Converged(t, 20*time.Second, c.Replicas...)
			backup, applied, behind := takeBackup(t, follower)
			if applied == 0 || behind != "" {
				t.Fatalf("the backup of a current follower: up to entry %d, behind %q; want entries, and not behind", applied, behind)
			}
			leader.Put(t, clustertest.Shelter("after", 1))
			c.Converged(t, 20*time.Second, c.Replicas...)
			for _, r := range c.Replicas {
				r.Stop(t)
				r.Wipe(t)
			}
			for i, r := range c.Replicas {
				switch {
				case i == 0:
					restoreInto(t, backup, r.DataDir())
				case everywhere:
					// The first replica's restore, which no node has started on, into the others:
					// it keeps the numbers its feed goes on from, so that the replicas' are one.
					restoreInto(t, filepath.Join(c.Replicas[0].DataDir(), node.DatabaseName), r.DataDir())
				default:
					r.SetBootstrap(t, false)
				}
			}
			c.StartAll(t)
			c.Converged(t, 30*time.Second, c.Replicas...)
			leader = c.Leader(t, 10*time.Second, c.Replicas...)
			leader.Put(t, clustertest.Shelter("before-00", 100))
			leader.Put(t, clustertest.Shelter("new", 1))
			c.Converged(t, 20*time.Second, c.Replicas...)
			for _, r := range c.Replicas {
				get := func(id string) (*pb.Record, error) {
					return r.Records(t).Get(clustertest.Call(t), &pb.GetRequest{Id: id})
				}
				if rec, err := get("before-00"); err != nil || rec.Version != 2 {
					t.Errorf("%s: before-00 = %v, %v; want version 2 (1 from the backup, then a write)", r.ID, rec, err)
				}
				if _, err := get("before-29"); err != nil {
					t.Errorf("%s: before-29: %v", r.ID, err)
				}
				if _, err := get("new"); err != nil {
					t.Errorf("%s: new: %v", r.ID, err)
				}
				if _, err := get("after"); status.Code(err) != codes.NotFound {
					t.Errorf("%s: after, written after the backup: %v, want NotFound", r.ID, err)
				}
			}
		})
	}
}

// TestBackupTimeSurvivesRestart: a replica that took a backup and restarts reports that backup's
// time again, and not 0, so that the alert on a missed backup does not fire after every restart.
// The backup is in the audit log.
func TestBackupTimeSurvivesRestart(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Replicas: 1})
	r := c.Leader(t, 10*time.Second, c.Replicas...)
	r.Put(t, clustertest.Shelter("one", 1))
	path, applied, _ := takeBackup(t, r)
	// A copy of the whole database left the node: who took it, and which copy, is audited.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	list, err := pb.NewAuditServiceClient(r.Local(t)).List(clustertest.Call(t), &pb.ListAuditRequest{Action: db.AuditBackup})
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`backup %s by local socket {"applied_index":%d,"bytes":%d,"sha256":"%x"}`, r.ID, applied, len(data), sum)
	if len(list.Entries) != 1 || list.Entries[0].Action+" "+list.Entries[0].Subject+" by "+list.Entries[0].Actor+" "+list.Entries[0].Detail != want {
		t.Errorf("the audit log of the backup: %v, want one entry %s", list.Entries, want)
	}
	taken := testutil.ToFloat64(metrics.BackupLast)
	info, err := os.Stat(filepath.Join(r.DataDir(), cluster.LastBackupFile))
	if err != nil {
		t.Fatalf("a whole backup left no %s: %v", cluster.LastBackupFile, err)
	}
	if d := float64(info.ModTime().UnixMilli())/1e3 - taken; d < -1 || d > 1 {
		t.Errorf("%s is of %v, the metric says %v", cluster.LastBackupFile, info.ModTime(), taken)
	}

	r.Stop(t)
	metrics.BackupLast.Set(0) // as in a new process
	r.Start(t)
	if got := testutil.ToFloat64(metrics.BackupLast); got-taken < -1 || got-taken > 1 {
		t.Errorf("after a restart knooppunt_backup_last_success_timestamp_seconds = %v, want the backup's %v", got, taken)
	}
}

// takeBackup streams a backup from r's ClusterService into a file, checks it and says it kept
// it, as knooppunt backup does. behind is why r was not current with its group ("" if it was).
func takeBackup(t *testing.T, r *clustertest.Replica) (path string, applied uint64, behind string) {
	t.Helper()
	// Each backup kept counts, and sets the time monitoring watches.
	before, start := testutil.ToFloat64(metrics.Backups.WithLabelValues("ok")), time.Now()
	defer func() {
		if n := testutil.ToFloat64(metrics.Backups.WithLabelValues("ok")) - before; n != 1 {
			t.Errorf("knooppunt_backups_total{outcome=ok} grew by %v for one backup", n)
		}
		if last := testutil.ToFloat64(metrics.BackupLast); last < float64(start.Unix()) {
			t.Errorf("knooppunt_backup_last_success_timestamp_seconds is %v, before the backup began (%d)", last, start.Unix())
		}
	}()
	cc := pb.NewClusterServiceClient(r.Local(t))
	stream, err := cc.Backup(clustertest.Call(t), &pb.BackupRequest{})
	if err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(t.TempDir(), "backup.db")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var size, got int64
	h := sha256.New()
	for first := true; ; first = false {
		c, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if first {
			size, applied, behind = c.Size, c.AppliedIndex, c.Behind
		}
		n, err := f.Write(c.Data)
		if err != nil {
			t.Fatal(err)
		}
		h.Write(c.Data)
		got += int64(n)
	}
	if got != size {
		t.Fatalf("backup: %d bytes of %d", got, size)
	}
	if a, _, err := db.CheckBackup(t.Context(), path); err != nil || a != applied {
		t.Fatalf("backup: CheckBackup = %d, %v; want %d", a, err, applied)
	}
	// Sent is not taken: nothing counts until the client says it kept the file.
	if n := testutil.ToFloat64(metrics.Backups.WithLabelValues("ok")) - before; n != 0 {
		t.Errorf("knooppunt_backups_total{outcome=ok} grew by %v for a backup sent but not yet kept", n)
	}
	if _, err := cc.BackupKept(clustertest.Call(t), &pb.BackupKeptRequest{Sha256: hex.EncodeToString(h.Sum(nil)), AppliedIndex: applied}); err != nil {
		t.Fatalf("BackupKept: %v", err)
	}
	return path, applied, behind
}

// restoreInto puts the backup in a new data directory, as knooppunt restore does: its feed goes
// on past the backup's (db.MarkRestored).
func restoreInto(t *testing.T, backup, dir string) {
	t.Helper()
	data, err := os.ReadFile(backup)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, node.DatabaseName), data, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := db.MarkRestored(filepath.Join(dir, node.DatabaseName), time.Now()); err != nil {
		t.Fatal(err)
	}
}

// TestBackupOfACutOffReplicaSaysSo: a follower cut off from its group still gives its backup (a
// survivor's data is where recovery starts), but the backup says that the replica is behind,
// where it read as any other and its metric counted it as the latest: its copy lacks what the
// group committed since (review E).
func TestBackupOfACutOffReplicaSaysSo(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{})
	leader := c.Leader(t, 10*time.Second, c.Replicas...)
	leader.Put(t, clustertest.Shelter("before", 1))
	c.Converged(t, 20*time.Second, c.Replicas...)
	cut := others(c, leader)[0]
	cut.Node.Store().Isolate(true)
	defer cut.Node.Store().Isolate(false)
	leader.Put(t, clustertest.Shelter("after", 1))
	_, applied, behind := takeBackup(t, cut)
	if !strings.Contains(behind, "behind its group") {
		t.Fatalf("the backup of a cut-off follower, up to entry %d: behind %q; want it said to be behind its group", applied, behind)
	}
}

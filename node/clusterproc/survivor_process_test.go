package clusterproc

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/knooppunt/knooppunt/node/clustertest"
	"github.com/knooppunt/knooppunt/node/db"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestProcessSurvivorServesWithoutMajority: the last replica of a group whose majority is gone
// restarts (a reboot) and serves what it holds: knooppunt.live SERVING and the overall health
// NOT_SERVING, its local reads, writes refused with UNAVAILABLE, and `knooppunt backup`, where
// the recovery of docs/cluster.md starts. It used to wait 30 s for a majority and exit, over
// and over, with no socket to back up from.
func TestProcessSurvivorServesWithoutMajority(t *testing.T) {
	bin := knooppunt(t)
	c := clustertest.New(t, clustertest.Options{})
	procs := startAll(t, c)
	leader := c.Leader(t, 20*time.Second, c.Replicas...)
	leader.Put(t, clustertest.Shelter("before-the-loss", 7))
	c.Converged(t, 30*time.Second, c.Replicas...)
	for _, p := range procs {
		p.term(t)
	}

	survivor := c.Replicas[0]
	p := start(t, survivor)
	p.ready(t, 60*time.Second)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if resp, err := healthpb.NewHealthClient(survivor.Local(t)).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || resp.Status != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("the survivor's health: %v, %v; want NOT_SERVING", resp, err)
	}
	records := pb.NewRecordServiceClient(survivor.Local(t))
	if got, err := records.Get(clustertest.Call(t), &pb.GetRequest{Id: "before-the-loss"}); err != nil || got.Version != 1 {
		t.Errorf("a local read on the survivor: %v, %v; want version 1", got, err)
	}
	if _, err := records.Put(clustertest.Call(t), &pb.PutRequest{Record: clustertest.Shelter("after-the-loss", 1)}); status.Code(err) != codes.Unavailable {
		t.Errorf("a write on the survivor: %v, want UNAVAILABLE", err)
	}
	backup := filepath.Join(t.TempDir(), "survivor.db")
	cli(t, bin, "backup", backup, "--node", "unix://"+survivor.SocketPath())
	if _, err := os.Stat(backup); err != nil {
		t.Fatalf("knooppunt backup on the survivor: %v", err)
	}
	if _, _, err := db.CheckBackup(t.Context(), backup); err != nil {
		t.Errorf("the survivor's backup: %v", err)
	}
	if p.Exited() {
		t.Fatalf("the survivor exited: %v\n%s", p.Err(), p.Out.String())
	}
	p.term(t)
}

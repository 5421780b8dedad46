package node_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/knooppunt/knooppunt/federation/fedtest"
	"github.com/knooppunt/knooppunt/node"
	"github.com/knooppunt/knooppunt/node/clustertest"
	"github.com/knooppunt/knooppunt/node/db"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestClusterEditsWhileStoppedWaitForALeader: a role given in a replica's config file while the
// whole group was stopped is audited once the group has a leader again. Until then the replica
// keeps the record of the config it last ran with as it was, also through a reload that changes
// nothing to audit, and a stop before the entry is taken leaves it for the next start (review Q,
// Q5: such a reload wrote the new config there, and the role given went unaudited).
func TestClusterEditsWhileStoppedWaitForALeader(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{})
	c.Leader(t, 10*time.Second, c.Replicas...)
	r1 := c.Replicas[0]
	seenFile := filepath.Join(r1.DataDir(), node.ConfigSeenFile)
	fedtest.Eventually(t, 10*time.Second, "r1 keeps the config it runs with", func() (bool, string) {
		_, err := os.Stat(seenFile)
		return err == nil, fmt.Sprint(err)
	})
	stopAll(t, c)
	seen, err := os.ReadFile(seenFile)
	if err != nil {
		t.Fatal(err)
	}
	const derde = "spiffe://" + clustertest.Org + "/user/derde"
	cfg, err := os.ReadFile(r1.ConfigFile())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(cfg, []byte("\nroles:")) {
		t.Fatalf("r1's config has roles already:\n%s", cfg)
	}
	cfg = append(cfg, "roles:\n  - {id: "+derde+", role: officer}\n"...)
	if err := os.WriteFile(r1.ConfigFile(), cfg, 0o600); err != nil {
		t.Fatal(err)
	}

	// r1 alone has no leader: the role waits, through a reload of the same file and a stop.
	r1.Start(t)
	if err := r1.Node.Reload(r1.ConfigFile()); err != nil {
		t.Fatalf("reload of r1's unchanged file: %v", err)
	}
	r1.Stop(t)
	if now, err := os.ReadFile(seenFile); err != nil || !bytes.Equal(now, seen) {
		t.Fatalf("r1 stopped before its group took the audit entry, and %s changed (%v):\n%s\nwas\n%s", node.ConfigSeenFile, err, now, seen)
	}

	c.StartAll(t)
	c.Leader(t, 10*time.Second, c.Replicas...)
	fedtest.Eventually(t, 20*time.Second, "the role given while the group was stopped is audited", func() (bool, string) {
		list, err := pb.NewAuditServiceClient(r1.Local(t)).List(clustertest.Call(t), &pb.ListAuditRequest{Action: db.AuditConfigReload})
		if err != nil {
			return false, err.Error()
		}
		for _, e := range list.Entries {
			if e.Actor == "config file of replica r1, edited while it was stopped" && e.Subject == "roles" && strings.Contains(e.Detail, derde+" officer") {
				return true, ""
			}
		}
		return false, fmt.Sprint(list.Entries)
	})
	fedtest.Eventually(t, 10*time.Second, "r1 keeps the config with the role once audited", func() (bool, string) {
		now, err := os.ReadFile(seenFile)
		return err == nil && bytes.Contains(now, []byte(derde)), string(now)
	})
}

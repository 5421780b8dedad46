package cluster

import (
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/knooppunt/knooppunt/node/api"
	"github.com/knooppunt/knooppunt/node/db"
	"github.com/knooppunt/knooppunt/node/metrics"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestBackupKept: a backup the replica sent counts as its last backup only once the client says
// it kept it, by the SHA-256 and applied index of what the replica sent; a hash it did not send,
// or another index, changes nothing, and saying it twice counts once. An older backup kept after
// a newer one leaves the newer one the last.
func TestBackupKept(t *testing.T) {
	d, err := db.Open(filepath.Join(t.TempDir(), "knooppunt.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	s := &Service{db: d, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ok := func() float64 { return testutil.ToFloat64(metrics.Backups.WithLabelValues("ok")) }
	before := ok()

	older, newer := strings.Repeat("a", 64), strings.Repeat("b", 64)
	madeOlder := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	madeNewer := madeOlder.Add(30 * time.Minute)
	s.sent.add(older, sentBackup{applied: 7, madeAt: madeOlder}, time.Now())
	s.sent.add(newer, sentBackup{applied: 9, madeAt: madeNewer}, time.Now())
	if !LastBackup(d).IsZero() || ok() != before {
		t.Fatalf("backups only sent: LastBackup %v, ok +%v; want none", LastBackup(d), ok()-before)
	}

	for _, c := range []struct {
		req  *pb.BackupKeptRequest
		code codes.Code
	}{
		{&pb.BackupKeptRequest{Sha256: strings.Repeat("c", 64), AppliedIndex: 9}, codes.NotFound},
		{&pb.BackupKeptRequest{Sha256: newer, AppliedIndex: 8}, codes.InvalidArgument},
	} {
		if _, err := s.BackupKept(t.Context(), c.req); status.Code(err) != c.code {
			t.Errorf("BackupKept(%v) = %v, want %s", c.req, err, c.code)
		}
	}
	// A value that is no SHA-256 names no backup: INVALID_ARGUMENT naming sha256, as Download
	// says it, quoted cut (review AF, AF5).
	for _, sum := range []string{"", "zz", strings.ToUpper(newer), newer + "0", strings.Repeat("a", 1<<20), "ab\xff\xfecd"} {
		_, err := s.BackupKept(t.Context(), &pb.BackupKeptRequest{Sha256: sum, AppliedIndex: 9})
		if field, _ := api.Field(err); status.Code(err) != codes.InvalidArgument || field != "sha256" {
			t.Errorf("BackupKept of sha256 %.20q = %v, want INVALID_ARGUMENT naming sha256", sum, err)
		}
		if msg := status.Convert(err).Message(); len(msg) > 200 {
			t.Errorf("BackupKept of a %d-byte sha256: %d bytes of message, want it cut", len(sum), len(msg))
		}
	}
	if !LastBackup(d).IsZero() || ok() != before {
		t.Fatalf("after refused confirmations: LastBackup %v, ok +%v; want none", LastBackup(d), ok()-before)
	}

	for range 2 {
		resp, err := s.BackupKept(t.Context(), &pb.BackupKeptRequest{Sha256: newer, AppliedIndex: 9})
		if err != nil || !resp.TakenAt.AsTime().Equal(madeNewer) {
			t.Fatalf("BackupKept of the newer: %v, %v; want taken at %v", resp, err, madeNewer)
		}
	}
	if got := LastBackup(d); !got.Equal(madeNewer) {
		t.Errorf("LastBackup = %v, want when the kept copy was made, %v", got, madeNewer)
	}
	if got := testutil.ToFloat64(metrics.BackupLast); got != float64(madeNewer.UnixMilli())/1e3 {
		t.Errorf("knooppunt_backup_last_success_timestamp_seconds = %v, want %v", got, madeNewer.Unix())
	}
	if n := ok() - before; n != 1 {
		t.Errorf("knooppunt_backups_total{outcome=ok} grew by %v for one backup kept, said twice", n)
	}

	if _, err := s.BackupKept(t.Context(), &pb.BackupKeptRequest{Sha256: older, AppliedIndex: 7}); err != nil {
		t.Fatal(err)
	}
	if got := LastBackup(d); !got.Equal(madeNewer) {
		t.Errorf("an older backup kept later: LastBackup = %v, want the newer %v", got, madeNewer)
	}
}

// TestSentBackupsBounded: the replica remembers the backups sent in the last day, the latest
// sentBackupsMax of them.
func TestSentBackupsBounded(t *testing.T) {
	var b sentBackups
	now := time.Now()
	b.add("old", sentBackup{applied: 1}, now.Add(-sentBackupsKeep-time.Minute))
	if _, ok := b.get("old", now); ok {
		t.Error("a backup sent more than a day ago can still be confirmed")
	}
	for i := range sentBackupsMax + 4 {
		b.add(fmt.Sprint(i), sentBackup{applied: uint64(i)}, now.Add(time.Duration(i)*time.Second))
	}
	if len(b.byHash) != sentBackupsMax {
		t.Errorf("%d backups remembered, want %d", len(b.byHash), sentBackupsMax)
	}
	for i := range sentBackupsMax + 4 {
		_, ok := b.get(fmt.Sprint(i), now)
		if want := i >= 4; ok != want {
			t.Errorf("backup %d remembered: %v, want %v", i, ok, want)
		}
	}
}

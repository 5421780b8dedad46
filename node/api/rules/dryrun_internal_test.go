package rules

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/knooppunt/knooppunt/node/db"
	"github.com/knooppunt/knooppunt/node/record"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestDryRunsTakeTurns: with MaxDryRuns dry runs under way, another is refused with
// RESOURCE_EXHAUSTED, and runs once one has ended: several at once held the node's cores for
// minutes (review D, F7).
func TestDryRunsTakeTurns(t *testing.T) {
	d, err := db.Open(filepath.Join(t.TempDir(), "knooppunt.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	kinds, err := record.NewKinds(record.DemoKinds())
	if err != nil {
		t.Fatal(err)
	}
	svc := New(Config{DB: d, Kinds: kinds, Retention: func() time.Duration { return time.Hour }, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	req := &pb.RuleTestRequest{Source: []byte("name: beds-low\nseverity: severe\nwhen: sum(\"shelter.capacity\", \"beds_free\") < 10\n")}
	for range MaxDryRuns {
		svc.dryRuns <- struct{}{} // runs under way
	}
	if _, err := svc.Test(context.Background(), req); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("a dry run beside %d others: %v, want RESOURCE_EXHAUSTED", MaxDryRuns, err)
	}
	<-svc.dryRuns
	if _, err := svc.Test(context.Background(), req); err != nil {
		t.Fatalf("a dry run once one ended: %v", err)
	}
	if len(svc.dryRuns) != MaxDryRuns-1 {
		t.Fatalf("%d dry runs counted under way after it ended, want %d", len(svc.dryRuns), MaxDryRuns-1)
	}
}

package federation_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/federation/fedtest"
	"github.com/knooppunt/knooppunt/node/db"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// catchUp measures a recipient catching up with n records at once: a source holds n granted-to-be
// sitreps, a policy that grants them to the recipient is approved, and the recipient's
// subscription brings them all into its cache. It returns how long that took from the approval,
// and how long the baseline took: the same records read from the source's SQLite a page at a
// time and written to a fresh database's cache in batches of 256, as the recipient's
// subscription batches them, with no network, no policy and no Raft.
func catchUp(tb testing.TB, n int) (node, baseline time.Duration) {
	tb.Helper()
	opts := benchOpts
	opts.Orgs = 2
	opts.EventsPerSecond = 1e9 // the production limit (2000 a second per peer) would be the figure
	f := fedtest.Start(tb, opts)
	a, r := f.Orgs[0], f.Orgs[1]
	const crisis = "catch-up"
	rc := pb.NewRecordServiceClient(a.Local(tb))
	for i := 0; i < n; i += 1000 {
		var batch []*pb.Record
		for j := i; j < min(n, i+1000); j++ {
			batch = append(batch, fedtest.Sitrep(fmt.Sprintf("c%07d", j), crisis, pb.Classification_INTERNAL, "catch up "+strconv.Itoa(j)))
		}
		resp, err := rc.PutBatch(fedtest.Call(tb), &pb.PutBatchRequest{Records: batch})
		if err != nil {
			tb.Fatal(err)
		}
		for _, res := range resp.Results {
			if res.Code != 0 {
				tb.Fatalf("put %d: %s", res.Index, res.Message)
			}
		}
	}

	cache := r.Node.DB()
	held := func() int {
		got, err := cache.ForeignCount(context.Background(), db.ForeignFilter{Origin: a.TD.Name(), Crisis: crisis, Limit: n + 1})
		if err != nil {
			tb.Fatal(err)
		}
		return got
	}
	start := time.Now()
	a.Approve(tb, policyDoc("catch-up", spiffeOf(r), "sitrep", "internal", ""))
	within := 30*time.Second + time.Duration(n/1000)*time.Second
	deadline := time.Now().Add(within)
	// Counted every 20 ms rather than at every change: counting 100,000 records at each of
	// hundreds of batches would cost the recipient more than taking them in.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for held() != n {
		select {
		case <-tick.C:
		case <-time.After(time.Until(deadline)):
			tb.Fatalf("the recipient holds %d of %d records after %s", held(), n, within)
		}
	}
	node = time.Since(start)

	// The baseline, in the same process: read the source's store, write a fresh cache.
	d, err := db.Open(filepath.Join(tb.TempDir(), "baseline.db"))
	if err != nil {
		tb.Fatal(err)
	}
	defer d.Close()
	src := a.Node.DB()
	start = time.Now()
	f0 := db.Filter{Crisis: crisis, PageSize: 1000}
	index, total := uint64(0), 0
	for {
		recs, next, err := src.List(context.Background(), f0)
		if err != nil {
			tb.Fatal(err)
		}
		for i := 0; i < len(recs); i += 256 {
			c := &pb.CacheForeign{Peer: a.Name, Origin: a.TD.Name(), At: timestamppb.Now()}
			for _, rec := range recs[i:min(len(recs), i+256)] {
				c.Upserts = append(c.Upserts, &pb.SharedRecord{Record: rec, Policies: []string{"catch-up@1"}})
			}
			index++
			c.Cursor = int64(index)
			if err := d.ApplyCacheForeign(index, c); err != nil {
				tb.Fatal(err)
			}
			total += len(c.Upserts)
		}
		if next == "" {
			break
		}
		f0.PageToken = next
	}
	if total != n {
		tb.Fatalf("the baseline wrote %d of %d records", total, n)
	}
	return node, time.Since(start)
}

// TestCatchUp is BenchmarkCatchUp in short: every record reaches the recipient, and the baseline
// writes as many. It checks no time.
func TestCatchUp(t *testing.T) {
	catchUp(t, 300)
}

// BenchmarkCatchUp measures a new recipient catching up with KNOOPPUNT_BENCH_CATCHUP records
// (default 100,000) through its subscription, against the baseline of the same records read
// from SQLite and written to a cache with no network (see catchUp). Metrics: records/s of each,
// and x-baseline, the recipient's rate ÷ the baseline's (target ≥ 0.5).
func BenchmarkCatchUp(b *testing.B) {
	n := 100000
	if v := os.Getenv("KNOOPPUNT_BENCH_CATCHUP"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatalf("KNOOPPUNT_BENCH_CATCHUP: %v", err)
		}
	}
	var node, baseline time.Duration
	for b.Loop() {
		nd, bl := catchUp(b, n)
		node, baseline = node+nd, baseline+bl
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(n*b.N)/node.Seconds(), "records/s")
	b.ReportMetric(float64(n*b.N)/baseline.Seconds(), "baseline-records/s")
	b.ReportMetric(baseline.Seconds()/node.Seconds(), "x-baseline")
}

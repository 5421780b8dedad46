package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// listShape is one kind of List request. Values are drawn at random, so that each query reads
// different pages.
type listShape struct {
	name string
	req  func(r *rand.Rand, c cutoffs) *pb.ListRequest
}

// cutoffs are the moments at which part of the load was stored, for updated_since.
type cutoffs struct{ half, last1pct time.Time }

var listShapes = []listShape{
	{"none", func(*rand.Rand, cutoffs) *pb.ListRequest { return &pb.ListRequest{} }},
	{"kind", func(r *rand.Rand, _ cutoffs) *pb.ListRequest {
		return &pb.ListRequest{Kind: kindMix[r.IntN(len(kindMix))].kind}
	}},
	{"crisis", func(r *rand.Rand, _ cutoffs) *pb.ListRequest {
		return &pb.ListRequest{Crisis: crises[r.IntN(len(crises))]}
	}},
	{"region", func(r *rand.Rand, _ cutoffs) *pb.ListRequest {
		return &pb.ListRequest{Region: regions[r.IntN(len(regions))]}
	}},
	{"label", func(r *rand.Rand, _ cutoffs) *pb.ListRequest {
		return &pb.ListRequest{LabelSelector: "source=" + sources[r.IntN(len(sources))]}
	}},
	{"label2", func(r *rand.Rand, _ cutoffs) *pb.ListRequest {
		return &pb.ListRequest{LabelSelector: "source=" + sources[r.IntN(len(sources))] + ",municipality=" + label(municipalities[r.IntN(len(municipalities))])}
	}},
	{"maxclass", func(r *rand.Rand, _ cutoffs) *pb.ListRequest {
		return &pb.ListRequest{MaxClassification: pb.Classification(1 + r.IntN(4))}
	}},
	{"since1pct", func(_ *rand.Rand, c cutoffs) *pb.ListRequest {
		return &pb.ListRequest{UpdatedSince: timestamppb.New(c.last1pct)}
	}},
	{"since50pct", func(_ *rand.Rand, c cutoffs) *pb.ListRequest {
		return &pb.ListRequest{UpdatedSince: timestamppb.New(c.half)}
	}},
	{"picture", func(r *rand.Rand, _ cutoffs) *pb.ListRequest {
		return &pb.ListRequest{Kind: "shelter.capacity", Crisis: crises[r.IntN(len(crises))], Region: regions[r.IntN(len(regions))]}
	}},
	{"all", func(r *rand.Rand, c cutoffs) *pb.ListRequest {
		return &pb.ListRequest{
			Kind: "shelter.capacity", Crisis: crises[r.IntN(len(crises))], Region: regions[r.IntN(len(regions))],
			LabelSelector:     "source=" + sources[r.IntN(len(sources))],
			MaxClassification: pb.Classification(2 + r.IntN(3)), UpdatedSince: timestamppb.New(c.half),
		}
	}},
}

// BenchmarkScale1M loads a node with one million records through the write path (PutBatch of
// 1000, four writers, a mixed workload over five kinds, eight crises and 26 regions), then
// reports the node's memory and disk footprint and the latency of List, one query at a time,
// for each filter on its own and combined. It runs only with KNOOPPUNT_BENCH_1M=1 because the
// load takes minutes. KNOOPPUNT_BENCH_RECORDS changes the count and KNOOPPUNT_BENCH_QUERIES the
// queries per filter per iteration (default 200).
//
// The node runs in the benchmark's process, so rss-MB and hwm-MB (VmRSS and VmHWM from
// /proc/self/status) include the loading client and the Go heap it left behind; hwm-MB is the
// peak of the load, and rss-MB is read after a GC that returns freed memory to the OS, before the
// queries. rss-end-MB is VmRSS after
// the queries, which includes the pages of the database file that reads have mapped (page cache,
// which the kernel reclaims under pressure); anon-end-MB is RssAnon then, the memory that is the
// process's own.
func BenchmarkScale1M(b *testing.B) {
	if os.Getenv("KNOOPPUNT_BENCH_1M") != "1" {
		b.Skip("set KNOOPPUNT_BENCH_1M=1 to load a node with a million records (takes minutes)")
	}
	total := envInt(b, "KNOOPPUNT_BENCH_RECORDS", 1_000_000)
	perShape := envInt(b, "KNOOPPUNT_BENCH_QUERIES", 200)
	const size, writers = 1000, 4
	ctx := context.Background()
	n, client := startNode(b)

	// Load: writers take batches until total records are stored.
	var next, stored atomic.Int64
	var cut cutoffs
	var cutHalf, cutLast atomic.Bool
	gens := make([]*generator, writers)
	for i := range gens {
		gens[i] = newGenerator(fmt.Sprintf("r%d", i), uint64(100+i), true)
	}
	start := time.Now()
	errs := make(chan error, writers)
	for _, g := range gens {
		go func() {
			for {
				// A cutoff is taken before the first batch past it is sent, so that at least
				// that share of records was committed after it.
				claimed := next.Add(size)
				if claimed > int64(total) {
					break
				}
				if claimed > int64(total)/2 && cutHalf.CompareAndSwap(false, true) {
					cut.half = time.Now()
				}
				if claimed > int64(total)*99/100 && cutLast.CompareAndSwap(false, true) {
					cut.last1pct = time.Now()
				}
				if err := nodeWrite(ctx, client, g.batch(size)); err != nil {
					errs <- err
					return
				}
				stored.Add(size)
			}
			errs <- nil
		}()
	}
	for range writers {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
	loadTime := time.Since(start)
	// A snapshot (a backup of the whole database) taken by size during the queries would weigh
	// on their latency; take it now, as a node in steady state has it behind it.
	if err := n.Store().Snapshot(); err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
		b.Fatal(err)
	}
	memLoad, err := procStatus()
	if err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	debug.FreeOSMemory()
	memGC, err := procStatus()
	if err != nil {
		b.Fatal(err)
	}
	records, dbBytes, err := n.DB().Stats(ctx)
	if err != nil {
		b.Fatal(err)
	}
	raftBytes, err := dirSize(filepath.Join(filepath.Dir(n.DB().Path()), "raft"))
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("loaded %d records in %v (%.0f records/s); VmRSS %.0f MB after GC, VmHWM %.0f MB; database %.0f MB, raft dir %.0f MB",
		records, loadTime.Round(time.Second), float64(stored.Load())/loadTime.Seconds(), mb(memGC.rss), mb(memLoad.hwm), mb(dbBytes), mb(raftBytes))

	// The full-text index is kept beside the write path: wait until it has taken the load in,
	// so that the List figures are of a node at rest, as before the index existed, and the
	// text queries below search the whole load.
	t0 := time.Now()
	for {
		left, err := n.DB().TextPending(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if left == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	catchUp := time.Since(t0)
	b.Logf("the full-text index took the load in %v after it was stored (%.0f records/s)", catchUp.Round(time.Second), float64(records)/(loadTime+catchUp).Seconds())

	// Query: each shape perShape times per iteration, one query at a time.
	rng := rand.New(rand.NewPCG(1, 2))
	samples := make([][]time.Duration, len(listShapes))
	matched := make([]int, len(listShapes))
	for b.Loop() {
		for i, s := range listShapes {
			for range perShape {
				req := s.req(rng, cut)
				t0 := time.Now()
				resp, err := client.List(ctx, req)
				if err != nil {
					b.Fatalf("%s: %v", s.name, err)
				}
				samples[i] = append(samples[i], time.Since(t0))
				matched[i] += len(resp.Records)
			}
		}
	}

	// Full text: search, through SearchService as `search --text` does, one query at a time.
	search := searchClient(b, n)
	// A search answers before its audit entry commits (see search.Service.audit). Reading the
	// audit log waits for those entries, so each timed call below starts on a node that is not
	// still committing the previous search's entry: neither a search nor the List after it pays
	// for another's commit. settle is not timed.
	audit := pb.NewAuditServiceClient(localConn(b, n))
	settle := func() {
		if _, err := audit.List(ctx, &pb.ListAuditRequest{Limit: 1}); err != nil {
			b.Fatalf("audit: %v", err)
		}
	}
	textShapes := []struct {
		name   string
		filter func(r *rand.Rand) *pb.Filter
	}{
		{"search-kind", func(r *rand.Rand) *pb.Filter {
			return &pb.Filter{Kinds: []string{kindMix[r.IntN(len(kindMix))].kind}, Limit: 100}
		}},
		{"text-compound", func(*rand.Rand) *pb.Filter { return &pb.Filter{Text: "vergunning", Limit: 100} }},
		{"text-municipality", func(r *rand.Rand) *pb.Filter {
			return &pb.Filter{Text: `"` + municipalities[r.IntN(len(municipalities))] + `"`, Limit: 100}
		}},
		{"text-phrase", func(*rand.Rand) *pb.Filter { return &pb.Filter{Text: `"volle bezetting" coa`, Limit: 100} }},
	}
	// The shapes take turns with a List by kind, the baseline, so that the machine's moods fall
	// on both alike; each call starts once the audit entries before it are committed.
	textSamples := make([][]time.Duration, len(textShapes))
	textHits := make([]int, len(textShapes))
	var listTurns []time.Duration
	for range perShape {
		for i, s := range textShapes {
			settle()
			t0 := time.Now()
			resp, err := search.Search(ctx, &pb.SearchRequest{Filter: s.filter(rng)})
			if err != nil {
				b.Fatalf("%s: %v", s.name, err)
			}
			textSamples[i] = append(textSamples[i], time.Since(t0))
			textHits[i] += len(resp.Hits)
		}
		req := listShapes[1].req(rng, cut)
		settle()
		t0 := time.Now()
		if _, err := client.List(ctx, req); err != nil {
			b.Fatalf("kind: %v", err)
		}
		listTurns = append(listTurns, time.Since(t0))
	}
	memEnd, err := procStatus()
	if err != nil {
		b.Fatal(err)
	}

	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(records), "records")
	b.ReportMetric(float64(stored.Load())/loadTime.Seconds(), "load-records/s")
	b.ReportMetric(mb(memGC.rss), "rss-MB")
	b.ReportMetric(mb(memEnd.rss), "rss-end-MB")
	b.ReportMetric(mb(memEnd.anon), "anon-end-MB")
	b.ReportMetric(mb(memLoad.hwm), "hwm-MB") // after the queries it would count their mapped pages
	b.ReportMetric(mb(dbBytes), "db-MB")
	b.ReportMetric(mb(raftBytes), "raft-MB")
	var worst time.Duration
	for i, s := range listShapes {
		sorted := sortedCopy(samples[i])
		p99 := quantile(sorted, 0.99)
		worst = max(worst, p99)
		b.ReportMetric(ms(p99), "p99-ms/"+s.name)
		b.Logf("List %-10s p50 %7.2f ms  p99 %7.2f ms  max %7.2f ms  (%d queries, %.0f records per page)",
			s.name, ms(quantile(sorted, 0.5)), ms(p99), ms(sorted[len(sorted)-1]), len(sorted), float64(matched[i])/float64(len(sorted)))
	}
	b.ReportMetric(ms(worst), "p99-ms/worst")
	// "kind": a plain indexed List, taking turns with the searches.
	sortedTurns := sortedCopy(listTurns)
	listKind := quantile(sortedTurns, 0.99)
	b.ReportMetric(ms(listKind), "p99-ms/kind-turns")
	b.Logf("List kind, taking turns with the searches: p50 %7.2f ms  p99 %7.2f ms", ms(quantile(sortedTurns, 0.5)), ms(listKind))
	for i, s := range textShapes {
		sorted := sortedCopy(textSamples[i])
		p99 := quantile(sorted, 0.99)
		b.ReportMetric(ms(p99), "p99-ms/"+s.name)
		b.ReportMetric(float64(p99)/float64(listKind), "x-list/"+s.name)
		b.Logf("Search %-17s p50 %7.2f ms  p99 %7.2f ms  max %7.2f ms  (%d queries, %.0f hits each); p99 ÷ List kind p99 (turns) %.2f",
			s.name, ms(quantile(sorted, 0.5)), ms(p99), ms(sorted[len(sorted)-1]), len(sorted), float64(textHits[i])/float64(len(sorted)), float64(p99)/float64(listKind))
	}
	b.ReportMetric(catchUp.Seconds(), "index-catchup-s")
	b.Logf("at the end: VmRSS %.0f MB, of which RssAnon %.0f MB (the rest is mapped database pages, page cache the kernel can reclaim)", mb(memEnd.rss), mb(memEnd.anon))
}

func label(s string) string {
	out := []byte(s)
	for i, c := range out {
		switch {
		case c == ' ':
			out[i] = '-'
		case c >= 'A' && c <= 'Z':
			out[i] = c + 'a' - 'A'
		}
	}
	return string(out)
}

func mb(n int64) float64 { return float64(n) / (1 << 20) }

package federation_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/knooppunt/knooppunt/federation/fedtest"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// BenchmarkModeQueryStream is what modes cost a peer's Query of actual records. Two sources hold
// the same 2000 actual shelter records under the same policy: a, where they are every record, as
// before exercises existed, and c, where 2000 records of an exercise (granted too, under
// statuses: [actual, exercise]) sit between them, id by id. The recipient r queries both in the
// actual mode, each op four runs of four Queries, a c c a or c a a c in turn. x-all-actual is the
// median, over the ops, of c's CPU time (the process's: both ends of the stream) ÷ a's (target
// ≤ 1.05), and x-wall the same in wall time. Both answer with the records r holds at their
// versions, as a peer that searches again is answered.
func BenchmarkModeQueryStream(b *testing.B) {
	const records, queryRun = 2000, 4
	opts := benchOpts
	opts.Orgs = 3
	// r peers with both, as partners do: a source whose peer refused its subscriptions would try
	// again at every Query of that peer (a peer's call cuts the backoff short), and c, with an
	// exercise open, keeps a subscription for each mode.
	opts.PeersOf = func(name string) []string {
		if name == "b" {
			return []string{"a", "c"}
		}
		return []string{"b"}
	}
	f := fedtest.Start(b, opts)
	a, r, c := f.Orgs[0], f.Orgs[1], f.Orgs[2]
	c.Exercise(b, "oef", false)
	policy := policyDoc("to-r", spiffeOf(r), "shelter.capacity", "internal", "statuses: [actual, exercise]\nredact: [body.contact_phone]\n")
	for _, src := range []*fedtest.Org{a, c} {
		src.Approve(b, policy)
		rc := pb.NewRecordServiceClient(src.Local(b))
		for i := 0; i < records; i += 500 {
			var batch []*pb.Record
			for j := i; j < i+500; j++ {
				body := fmt.Appendf(nil, `{"municipality":"m%d","beds_total":100,"beds_free":%d,"contact_phone":"0301234567"}`, j, j%100)
				batch = append(batch, &pb.Record{Id: fmt.Sprintf("s%05d-a", j), Kind: "shelter.capacity", Crisis: "bench", Region: "VR09",
					Classification: pb.Classification_INTERNAL, Body: body})
				if src == c {
					batch = append(batch, &pb.Record{Id: fmt.Sprintf("s%05d-b", j), Kind: "shelter.capacity", Crisis: "bench", Region: "VR09",
						Classification: pb.Classification_INTERNAL, Body: body, Status: pb.Status_EXERCISE, Exercise: "oef"})
				}
			}
			resp, err := rc.PutBatch(fedtest.Call(b), &pb.PutBatchRequest{Records: batch})
			if err != nil {
				b.Fatal(err)
			}
			for _, res := range resp.Results {
				if res.Code != 0 {
					b.Fatalf("%s: %s", src.Name, res.Message)
				}
			}
		}
	}
	clients := map[*fedtest.Org]pb.FederationServiceClient{a: pb.NewFederationServiceClient(asPeer(b, r, a)), c: pb.NewFederationServiceClient(asPeer(b, r, c))}
	query := func(src *fedtest.Org) int {
		req := &pb.QueryRequest{Filter: &pb.Filter{Crisis: "bench", Limit: 10000}}
		return countQuery(b, clients[src], req, func(sr *pb.SharedRecord) {
			if sr.Record.Status != pb.Status_ACTUAL {
				b.Fatalf("%s sent %s of exercise %q in an actual Query", src.Name, sr.Record.Id, sr.Record.Exercise)
			}
		})
	}
	a.TextIndexed(b)
	c.TextIndexed(b)
	// Once each, untimed: the disclosures are recorded, and later Queries are answered with
	// records r holds.
	for _, src := range []*fedtest.Org{a, c} {
		if n := query(src); n != records {
			b.Fatalf("%s sent %d records, want %d", src.Name, n, records)
		}
	}
	var cpuRatios, wallRatios []float64
	var cpuSum [2]time.Duration
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		// Runs of queryRun Queries of one source, a c c a, then c a a c: each source takes each
		// place in turn, so that a noisy neighbour, the garbage collector or a warm cache that
		// favours a place favours neither. A run, not single Queries, because the two nodes
		// share this process's CPU caches, as two partners' nodes never do: a Query right after
		// the other node's starts cold, and c, with twice the data, is the colder.
		order := []*fedtest.Org{a, c, c, a}
		if i%2 == 1 {
			order = []*fedtest.Org{c, a, a, c}
		}
		var cpu, wall [2]time.Duration
		for _, src := range order {
			k := 0
			if src == c {
				k = 1
			}
			for range queryRun {
				start, cpu0 := time.Now(), cpuTime()
				if n := query(src); n != records {
					b.Fatalf("%s sent %d records, want %d", src.Name, n, records)
				}
				cpu[k] += cpuTime() - cpu0
				wall[k] += time.Since(start)
			}
		}
		cpuSum[0], cpuSum[1] = cpuSum[0]+cpu[0], cpuSum[1]+cpu[1]
		cpuRatios = append(cpuRatios, float64(cpu[1])/float64(cpu[0]))
		wallRatios = append(wallRatios, float64(wall[1])/float64(wall[0]))
	}
	b.ReportMetric(float64(cpuSum[0].Nanoseconds())/1000/float64(2*queryRun*b.N*records), "all-actual-cpu-µs/record")
	b.ReportMetric(float64(cpuSum[1].Nanoseconds())/1000/float64(2*queryRun*b.N*records), "mixed-cpu-µs/record")
	b.ReportMetric(median(cpuRatios), "x-all-actual")
	b.ReportMetric(median(wallRatios), "x-wall")
	b.ReportMetric(0, "ns/op")
}

// median is the median of xs, which it sorts.
func median(xs []float64) float64 {
	slices.Sort(xs)
	return xs[len(xs)/2]
}

package federation_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/knooppunt/knooppunt/federation/fedtest"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// BenchmarkTextQuery measures a peer's full-text Query at the source: 2,000 Q&As that all hold
// the word, their answers withheld from the peer, so that the source ranks each window of the
// index again on what the peer receives. limit=20 is a search box's first page, limit=2000 every
// match. It reports the time and the process's CPU a Query.
func BenchmarkTextQuery(b *testing.B) {
	const records = 2000
	opts := benchOpts
	opts.Orgs = 2
	f := fedtest.Start(b, opts)
	a, r := f.Orgs[0], f.Orgs[1]
	a.Approve(b, policyDoc("qa-to-r", spiffeOf(r), "qa", "public", "redact: [body.answer]\n"))
	rc := pb.NewRecordServiceClient(a.Local(b))
	for i := 0; i < records; i += 500 {
		var batch []*pb.Record
		for j := i; j < i+500; j++ {
			body := fmt.Appendf(nil, `{"question":"Vraag %d over de vergunning voor werk in gemeente %d","answer":"%s"}`, j, j%40, "Vergunning nodig? Zie de vergunning van het UWV."[:20+j%20])
			batch = append(batch, &pb.Record{Id: fmt.Sprintf("q%05d", j), Kind: "qa", Crisis: "bench", Region: "NL", Classification: pb.Classification_PUBLIC, Body: body})
		}
		if _, err := rc.PutBatch(fedtest.Call(b), &pb.PutBatchRequest{Records: batch}); err != nil {
			b.Fatal(err)
		}
	}
	a.TextIndexed(b)
	// r's subscription takes the records in first, so that its caching is not timed.
	fedtest.Eventually(b, time.Minute, "r holds a's records", func() (bool, string) {
		n := len(r.Held(b, "bench", a.TD.Name()))
		return n == records, fmt.Sprintf("%d of %d", n, records)
	})
	fc := dialPeer(b, r, a, a.Addr)
	for _, limit := range []int{20, records} {
		b.Run(fmt.Sprintf("limit=%d", limit), func(b *testing.B) {
			req := &pb.QueryRequest{Filter: &pb.Filter{Crisis: "bench", Text: "vergunning", Limit: int32(limit)}, Purpose: "bench"}
			var cpu time.Duration
			for range b.N {
				cpu0 := cpuTime()
				if got := countQuery(b, fc, req, func(*pb.SharedRecord) {}); got != limit {
					b.Fatalf("%d records, want %d", got, limit)
				}
				cpu += cpuTime() - cpu0
			}
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/query")
		})
	}
}

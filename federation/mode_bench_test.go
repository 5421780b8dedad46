package federation_test

import (
	"errors"
	"fmt"
	"io"
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
// actual mode, in alternating order, each op one Query of each; x-all-actual is the median, over
// the ops, of c's stream time ÷ a's (target ≤ 1.05). Both answer with the records r holds at their
// versions, as a peer that searches again is answered.
func BenchmarkModeQueryStream(b *testing.B) {
	const records = 2000
	opts := benchOpts
	opts.Orgs = 3
	opts.PeersOf = func(name string) []string {
		if name == "b" {
			return nil // r: it queries, it does not subscribe
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
		s, err := clients[src].Query(b.Context(), &pb.QueryRequest{Filter: &pb.Filter{Crisis: "bench", Limit: 10000}})
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for {
			sr, err := s.Recv()
			if errors.Is(err, io.EOF) {
				return n
			}
			if err != nil {
				b.Fatal(err)
			}
			if sr.Record.Status != pb.Status_ACTUAL {
				b.Fatalf("%s sent %s of exercise %q in an actual Query", src.Name, sr.Record.Id, sr.Record.Exercise)
			}
			n++
		}
	}
	// Once each, untimed: the disclosures are recorded, and later Queries are answered with
	// records r holds.
	for _, src := range []*fedtest.Org{a, c} {
		if n := query(src); n != records {
			b.Fatalf("%s sent %d records, want %d", src.Name, n, records)
		}
	}
	var ratios []float64
	var tA, tC time.Duration
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		order := []*fedtest.Org{a, c}
		if i%2 == 1 {
			order = []*fedtest.Org{c, a}
		}
		var pair [2]time.Duration
		for _, src := range order {
			start := time.Now()
			if n := query(src); n != records {
				b.Fatalf("%s sent %d records, want %d", src.Name, n, records)
			}
			if src == a {
				pair[0] = time.Since(start)
			} else {
				pair[1] = time.Since(start)
			}
		}
		tA, tC = tA+pair[0], tC+pair[1]
		ratios = append(ratios, float64(pair[1])/float64(pair[0]))
	}
	slices.Sort(ratios)
	b.ReportMetric(float64(tA.Nanoseconds())/1000/float64(b.N*records), "all-actual-µs/record")
	b.ReportMetric(float64(tC.Nanoseconds())/1000/float64(b.N*records), "mixed-µs/record")
	b.ReportMetric(ratios[len(ratios)/2], "x-all-actual")
	b.ReportMetric(0, "ns/op")
}

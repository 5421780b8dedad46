package federation_test

import (
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"

	"github.com/knooppunt/knooppunt/federation/fedtest"
	"github.com/knooppunt/knooppunt/federation/identity"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// BenchmarkPurposeQueryStream is what stating and checking a purpose costs a Query. The source a
// holds 5000 shelter records; two workloads of the recipient r Query them all: "stated" states
// the purpose "bench", which its policy lists in accept_purposes, and "none" states none, under a
// policy that is the same but for accept_purposes. Each op Queries with both, in turn first;
// x-none is the median, over the ops, of the stated Query's CPU time (the process's: both ends
// of the stream) ÷ the other's. Both audit each disclosure with its policy's purpose and the
// stated one ("" for none): BenchmarkApplyDisclosures/purposes in node/db has what those members
// of the audit entry cost. "held" Queries records each holds at their version; in "new" every
// record first gets a new version (untimed), so that each Query discloses 5000 versions: a row
// and an audit entry each.
func BenchmarkPurposeQueryStream(b *testing.B) {
	const records = 5000
	opts := benchOpts
	opts.Orgs = 2
	opts.PeersOf = func(name string) []string {
		if name == "a" {
			return []string{"b"}
		}
		return []string{"a"} // r peers a too, so that a's subscription to r is not refused
	}
	f := fedtest.Start(b, opts)
	a, r := f.Orgs[0], f.Orgs[1]
	stated, none := r.Issue(b, "/node/stated"), r.Issue(b, "/node/none")
	for _, p := range []struct{ name, id, extra string }{
		{"to-stated", stated.ID.String(), "accept_purposes: [bench]\n"},
		{"to-none", none.ID.String(), ""},
	} {
		a.Approve(b, `name: `+p.name+`
purpose: bench
recipients: [`+p.id+`]
kinds: [shelter.capacity]
max_classification: internal
when: record.body.beds_free >= 0
redact: [body.contact_phone]
`+p.extra)
	}
	load := func() { loadShelters(b, a, records) }
	load()
	bundles := x509bundle.NewSet(a.Bundle(), r.Bundle())
	type caller struct {
		fc      pb.FederationServiceClient
		purpose string
	}
	dial := func(as *x509svid.SVID, purpose string) caller {
		conn, err := grpc.NewClient(a.Addr,
			grpc.WithTransportCredentials(identity.ClientCredentials(as, bundles, identity.AuthorizeReplica(a.TD))),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(4<<20)))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { conn.Close() })
		return caller{pb.NewFederationServiceClient(conn), purpose}
	}
	callers := [2]caller{dial(stated, "bench"), dial(none, "")}
	query := func(c caller) int {
		req := &pb.QueryRequest{Filter: &pb.Filter{Crisis: "bench", Limit: records}, Purpose: c.purpose}
		return countQuery(b, c.fc, req, func(sr *pb.SharedRecord) {
			if len(sr.Redacted) != 1 {
				b.Fatalf("%s: redacted %v, want body.contact_phone", sr.Record.Id, sr.Redacted)
			}
		})
	}
	for _, c := range callers { // untimed: later Queries send records each holds
		if n := query(c); n != records {
			b.Fatalf("Query with purpose %q sent %d records, want %d", c.purpose, n, records)
		}
	}
	for _, newVersions := range []bool{false, true} {
		name := "held"
		if newVersions {
			name = "new"
		}
		b.Run(name, func(b *testing.B) {
			var ratios []float64
			var sum [2]time.Duration
			for i := 0; b.Loop(); i++ {
				var cpu [2]time.Duration
				run := func(order ...int) {
					for _, j := range order {
						cpu0 := cpuTime()
						if n := query(callers[j]); n != records {
							b.Fatalf("Query with purpose %q sent %d records, want %d", callers[j].purpose, n, records)
						}
						cpu[j] += cpuTime() - cpu0
					}
				}
				if !newVersions {
					run(0, 1, 1, 0) // out and back
				} else {
					for k := range 2 { // after each load both once, in turn first
						b.StopTimer()
						load()
						b.StartTimer()
						run(k, 1-k)
					}
				}
				sum[0], sum[1] = sum[0]+cpu[0], sum[1]+cpu[1]
				ratios = append(ratios, float64(cpu[0])/float64(cpu[1]))
			}
			b.ReportMetric(float64(sum[0].Nanoseconds())/1000/float64(2*b.N*records), "stated-cpu-µs/record")
			b.ReportMetric(float64(sum[1].Nanoseconds())/1000/float64(2*b.N*records), "none-cpu-µs/record")
			b.ReportMetric(median(ratios), "x-none")
			b.ReportMetric(0, "ns/op")
		})
	}
}

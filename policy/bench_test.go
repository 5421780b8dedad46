package policy_test

// Benchmarks of the decision engine. docs/performance.md gives the figures and the
// commands that reproduce them.
//
//   - BenchmarkDecide: one Set.Decide per op, for 1, 10 and 100 policies, in four mixes: allmatch,
//     the worst case, where every policy is active, names the recipient, covers the record, has
//     a condition that holds and a redaction, so every decision evaluates every condition and
//     redacts the body; and realistic, where policies cover different kinds and recipients, some
//     are superseded, revoked or limited to phases, a third have conditions and a fifth redact;
//     allmatch-nowhen and allmatch-noredact take the condition or the redaction out of allmatch,
//     to tell their costs apart.
//   - BenchmarkBodyUnmarshal: one json.Unmarshal of a record body, the machine's yardstick.
//   - BenchmarkStream10k: one op streams 10,000 records out of a real SQLite database, page by
//     page through db.List as the federation's Query does, and marshals each one as gRPC would
//     send it; unfiltered sends every record as it is, filtered asks Set.Decide (10 policies) for
//     each record first and sends what it returns; ratio runs both in turn within each op and
//     reports filtered time over unfiltered time.

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/node/db"
	"github.com/knooppunt/knooppunt/policy"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

var (
	benchKinds     = []string{"shelter.capacity", "sitrep", "qa", "guidance", "signal"}
	benchCrises    = []string{"oekraine", "hoogwater", "pandemie"}
	benchRecipient = policy.Recipient{ID: "spiffe://ncc.crisis.test/node/r1", TrustDomain: "ncc.crisis.test", Name: "ncc", Groups: []string{"rijk"}}
	benchNow       = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
)

// benchRecord is the i-th record of the benchmark stream: an own record of one of five kinds,
// mostly internal, with a body of about 200 bytes such as a shelter report has.
func benchRecord(i int) *pb.Record {
	class := pb.Classification_INTERNAL
	switch i % 10 {
	case 0:
		class = pb.Classification_PUBLIC
	case 9:
		class = pb.Classification_CONFIDENTIAL
	}
	body := fmt.Sprintf(`{"municipality":"Gemeente %d","beds_total":%d,"beds_free":%d,"contact_phone":"+31 30 %07d","location":{"lat":52.09,"lon":5.12},"notes":"opvanglocatie sporthal, toegang via zij-ingang"}`,
		i%342, 100+i%50, i%37, i)
	return &pb.Record{
		Id: fmt.Sprintf("rec-%06d", i), Origin: ownOrg, Kind: benchKinds[i%len(benchKinds)], Crisis: benchCrises[i%len(benchCrises)],
		Region: fmt.Sprintf("VR%02d", 1+i%25), Classification: class, Labels: map[string]string{"bron": "lcvs"},
		Body: []byte(body), Version: 1, UpdatedAt: timestamppb.New(benchNow.Add(-time.Duration(i) * time.Second)),
	}
}

func benchCompile(b *testing.B, i int, state, src string) *policy.Compiled {
	b.Helper()
	name := fmt.Sprintf("bench-%03d", i)
	c, err := policy.Compile(policy.Policy{ID: name + "@1", Name: name, Version: 1, Source: []byte("name: " + name + "\n" + src), State: state})
	if err != nil {
		b.Fatalf("policy %d: %v\n%s", i, err, src)
	}
	return c
}

const (
	allMatchHead   = "purpose: bench\nrecipients: [group:rijk]\nkinds: [shelter.capacity, sitrep, qa, guidance, signal]\nmax_classification: confidential\n"
	allMatchWhen   = "when: record.body.beds_free >= 0 && record.region != \"VR99\"\n"
	allMatchRedact = "redact: [body.contact_phone]\n"
)

// allMatchSet is n policies that all grant every record up to confidential, each with a
// condition that holds and a redaction: the worst case.
func allMatchSet(b *testing.B, n int) *policy.Set {
	return uniformSet(b, n, allMatchHead+allMatchWhen+allMatchRedact)
}

// allMatchNoWhen is allMatchSet without conditions, to tell the cost of redaction apart.
func allMatchNoWhen(b *testing.B, n int) *policy.Set {
	return uniformSet(b, n, allMatchHead+allMatchRedact)
}

// allMatchNoRedact is allMatchSet without redactions, to tell the cost of conditions apart.
func allMatchNoRedact(b *testing.B, n int) *policy.Set {
	return uniformSet(b, n, allMatchHead+allMatchWhen)
}

func uniformSet(b *testing.B, n int, src string) *policy.Set {
	s := &policy.Set{Org: ownOrg}
	for i := range n {
		s.Policies = append(s.Policies, benchCompile(b, i, policy.StateApproved, src))
	}
	return s
}

// realisticSet is n policies as an org with many partners has them: each covers one or two
// kinds for one of eight recipients (two of which name the benchmark's recipient), some are
// superseded, revoked, proposed or limited to phases, a third have a condition and a fifth
// redact.
func realisticSet(b *testing.B, n int) *policy.Set {
	rng := rand.New(rand.NewPCG(1, 2))
	recipients := []string{"group:rijk", "spiffe://ncc.crisis.test", "group:veiligheidsregios", "vr-utrecht.crisis.test",
		"spiffe://defensie.crisis.test/node/r1", "coa.crisis.test", "group:ggd", "politie.crisis.test"}
	states := []string{policy.StateApproved, policy.StateApproved, policy.StateApproved, policy.StateApproved,
		policy.StateApproved, policy.StateApproved, policy.StateSuperseded, policy.StateRevoked, policy.StateProposed, policy.StateApproved}
	s := &policy.Set{Org: ownOrg}
	for i := range n {
		var src strings.Builder
		fmt.Fprintf(&src, "purpose: bench\nrecipients: [%s]\n", recipients[i%len(recipients)])
		k := rng.IntN(len(benchKinds))
		kinds := []string{benchKinds[k]}
		if rng.IntN(2) == 0 {
			kinds = append(kinds, benchKinds[(k+1)%len(benchKinds)])
		}
		fmt.Fprintf(&src, "kinds: [%s]\nmax_classification: %s\n", strings.Join(kinds, ", "), []string{"public", "internal", "confidential"}[rng.IntN(3)])
		if rng.IntN(3) == 0 {
			fmt.Fprintf(&src, "when: record.crisis == %q && record.body.beds_free >= %d\n", benchCrises[rng.IntN(len(benchCrises))], rng.IntN(10))
		}
		if rng.IntN(5) == 0 {
			src.WriteString("redact: [body.contact_phone, body.location]\n")
		}
		if rng.IntN(4) == 0 {
			src.WriteString("phases: [warm]\n")
		}
		s.Policies = append(s.Policies, benchCompile(b, i, states[i%len(states)], src.String()))
	}
	return s
}

func BenchmarkDecide(b *testing.B) {
	recs := make([]*pb.Record, 1024)
	for i := range recs {
		recs[i] = benchRecord(i)
	}
	for _, mix := range []struct {
		name string
		set  func(*testing.B, int) *policy.Set
	}{{"allmatch", allMatchSet}, {"allmatch-nowhen", allMatchNoWhen}, {"allmatch-noredact", allMatchNoRedact}, {"realistic", realisticSet}} {
		for _, n := range []int{1, 10, 100} {
			b.Run(fmt.Sprintf("%s/policies=%d", mix.name, n), func(b *testing.B) {
				set := mix.set(b, n)
				allowed := 0
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					if set.Decide(recs[i&1023], benchRecipient, policy.PhaseLukewarm, benchNow).Allow {
						allowed++
					}
					i++
				}
				b.ReportMetric(float64(i)/b.Elapsed().Seconds(), "decisions/s")
				b.ReportMetric(float64(allowed)/float64(i), "allowed/op")
			})
		}
	}
}

// BenchmarkBodyUnmarshal is the machine's yardstick: one json.Unmarshal of a benchmark body
// into a map, which a decision with a condition does once per record.
func BenchmarkBodyUnmarshal(b *testing.B) {
	body := benchRecord(7).Body
	b.ReportAllocs()
	for b.Loop() {
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			b.Fatal(err)
		}
	}
}

// benchDB is a database of n records, built once per benchmark.
func benchDB(b *testing.B, n int) *db.DB {
	b.Helper()
	d, err := db.Open(filepath.Join(b.TempDir(), "knooppunt.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.Close() })
	const batch = 500
	for i := 0; i < n; i += batch {
		var writes []*db.Write
		for j := i; j < min(i+batch, n); j++ {
			w := benchRecord(j)
			w.Version = 0 // a create
			writes = append(writes, w)
		}
		res, err := d.Apply(uint64(1+i/batch), writes)
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range res {
			if r.Err != nil {
				b.Fatal(r.Err)
			}
		}
	}
	return d
}

// stream sends every own record the way the federation's Query does: a page of 1000 at a time
// from db.List, each through decide (nil: unfiltered), marshalled as a SharedRecord.
func stream(b *testing.B, d *db.DB, decide func(*pb.Record) policy.Decision) (sent, bytes int) {
	ctx := context.Background()
	f := db.Filter{PageSize: 1000}
	for {
		recs, next, err := d.List(ctx, f)
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range recs {
			out := &pb.SharedRecord{Record: r}
			if decide != nil {
				dec := decide(r)
				if !dec.Allow {
					continue
				}
				out = &pb.SharedRecord{Record: dec.Record, Policies: dec.Policies, Redacted: dec.Redacted}
			}
			m, err := proto.Marshal(out)
			if err != nil {
				b.Fatal(err)
			}
			sent++
			bytes += len(m)
		}
		if next == "" {
			return sent, bytes
		}
		f.PageToken = next
	}
}

func BenchmarkStream10k(b *testing.B) {
	const n = 10000
	d := benchDB(b, n)
	run := func(b *testing.B, decide func(*pb.Record) policy.Decision) {
		var sent int
		b.ReportAllocs()
		for b.Loop() {
			sent, _ = stream(b, d, decide)
		}
		if decide == nil && sent != n {
			b.Fatalf("streamed %d of %d records", sent, n)
		}
		b.ReportMetric(float64(sent), "sent/op")
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/record")
	}
	b.Run("unfiltered", func(b *testing.B) { run(b, nil) })
	for _, mix := range []struct {
		name string
		set  *policy.Set
	}{{"realistic", realisticSet(b, 10)}, {"allmatch", allMatchSet(b, 10)}} {
		// The phase of a record's crisis is looked up once per crisis per stream, as
		// sharing.Phases does; here every crisis is lukewarm.
		decide := func(r *pb.Record) policy.Decision {
			return mix.set.Decide(r, benchRecipient, policy.PhaseLukewarm, benchNow)
		}
		b.Run("filtered/"+mix.name+"/policies=10", func(b *testing.B) { run(b, decide) })
		// The ratio streams unfiltered and filtered in turn within each op, so that a
		// machine whose load changes during the run slows both alike.
		b.Run("ratio/"+mix.name+"/policies=10", func(b *testing.B) {
			var plain, filtered time.Duration
			for b.Loop() {
				t0 := time.Now()
				stream(b, d, nil)
				t1 := time.Now()
				stream(b, d, decide)
				plain, filtered = plain+t1.Sub(t0), filtered+time.Since(t1)
			}
			b.ReportMetric(float64(filtered)/float64(plain), "filtered/unfiltered")
		})
	}
}

package db_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/knooppunt/knooppunt/node/db"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// cpuTime is the CPU time, user and system, the process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the process's CPU time per unit since start: the FSM's cost, which the wall
// time (it includes waits for the disk) hides.
func reportCPU(b *testing.B, start time.Duration, units int, unit string) {
	b.ReportMetric(float64((cpuTime(b)-start).Nanoseconds())/float64(units), "cpu-ns/"+unit)
}

// disclosures is a Query's worth of disclosures of n records to one recipient, granted by one
// policy, as peerserver records them.
func disclosures(n int, prefix string) *pb.RecordDisclosures {
	c := &pb.RecordDisclosures{Recipient: "ncc.crisis.test", RecipientId: "spiffe://ncc.crisis.test/node/r1", Via: "Query", At: hour(0), CountHeld: true}
	for i := range n {
		c.Disclosed = append(c.Disclosed, &pb.Disclosure{RecordId: fmt.Sprintf("%s-%05d", prefix, i), Version: int64(i%7 + 1), Policies: []string{"bench-sitrep@1"}})
	}
	return c
}

// BenchmarkApplyDisclosures is the FSM's cost of recording one command of disclosures: 10 is a
// search's answer from one peer, 1000 a batch of a large Query. In "new" every record is sent at
// a version the recipient does not hold, so each is a disclosures row and an audit entry; in
// "again" the same command is applied again and again, as a peer that searches again is sent
// what it holds, which only counts them. The metric to read is ns/record.
func BenchmarkApplyDisclosures(b *testing.B) {
	for _, again := range []bool{false, true} {
		for _, n := range []int{1, 10, 1000} {
			name := fmt.Sprintf("new/records=%d", n)
			if again {
				name = fmt.Sprintf("again/records=%d", n)
			}
			b.Run(name, func(b *testing.B) {
				d, err := db.Open(filepath.Join(b.TempDir(), "knooppunt.db"))
				if err != nil {
					b.Fatal(err)
				}
				defer d.Close()
				c := disclosures(n, "r")
				b.ResetTimer()
				cpu := cpuTime(b)
				for i := range b.N {
					if !again {
						for _, x := range c.Disclosed {
							x.Version = int64(i + 1)
						}
					}
					if err := d.ApplyDisclosures(uint64(i+1), c); err != nil {
						b.Fatal(err)
					}
				}
				reportCPU(b, cpu, b.N*n, "record")
			})
		}
	}
}

// BenchmarkApplyDisclosuresPurposes is what the purposes in a disclosure's audit entry cost the
// FSM. Two databases take the same commands of 1000 new versions, in alternating order: one as
// peerserver writes them, with the stated purpose and each granting policy's purpose, and one
// without, as nodes wrote them before purposes existed. x-without is the median, over the ops,
// of the CPU time with them ÷ without; purposes-ns/record is the difference a record.
func BenchmarkApplyDisclosuresPurposes(b *testing.B) {
	const n = 1000
	var dbs [2]*db.DB
	for k := range dbs {
		d, err := db.Open(filepath.Join(b.TempDir(), "knooppunt.db"))
		if err != nil {
			b.Fatal(err)
		}
		defer d.Close()
		dbs[k] = d
	}
	with, without := disclosures(n, "r"), disclosures(n, "r")
	with.RecordsPurpose, with.StatedPurpose = true, "situational awareness, Ukraine shelters"
	with.PolicyPurposes = map[string]string{"bench-sitrep@1": "sharing shelter capacity for the crisis"}
	cmds := [2]*pb.RecordDisclosures{with, without}
	var ratios []float64
	var sum [2]time.Duration
	for i := 0; b.Loop(); i++ {
		var cpu [2]time.Duration
		for _, k := range []int{i % 2, 1 - i%2} {
			for _, x := range cmds[k].Disclosed {
				x.Version = int64(i + 1)
			}
			cpu0 := cpuTime(b)
			if err := dbs[k].ApplyDisclosures(uint64(i+1), cmds[k]); err != nil {
				b.Fatal(err)
			}
			cpu[k] = cpuTime(b) - cpu0
		}
		sum[0], sum[1] = sum[0]+cpu[0], sum[1]+cpu[1]
		ratios = append(ratios, float64(cpu[0])/float64(cpu[1]))
	}
	b.ReportMetric(float64(sum[0].Nanoseconds())/float64(b.N*n), "with-cpu-ns/record")
	b.ReportMetric(float64((sum[0]-sum[1]).Nanoseconds())/float64(b.N*n), "purposes-ns/record")
	b.ReportMetric(median(ratios), "x-without")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkApplyOne is the fixed cost of one Raft entry: a single record write.
func BenchmarkApplyOne(b *testing.B) {
	d, err := db.Open(filepath.Join(b.TempDir(), "knooppunt.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	w := put("a", `{"beds_free":1}`)
	b.ResetTimer()
	cpu := cpuTime(b)
	for i := range b.N {
		if _, err := d.Apply(uint64(i+1), []*db.Write{w}); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, cpu, b.N, "op")
}

// BenchmarkApplyBatch is one Raft entry of 1000 new records with three labels each, as a
// PutBatch of 1000 makes.
func BenchmarkApplyBatch(b *testing.B) {
	d, err := db.Open(filepath.Join(b.TempDir(), "knooppunt.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	batches := make([][]*db.Write, b.N)
	for i := range batches {
		batches[i] = make([]*db.Write, 1000)
		for j := range batches[i] {
			w := put(fmt.Sprintf("b%d-%04d", i, j), `{"beds_free":1}`)
			w.Labels = map[string]string{"municipality": "utrecht", "n": fmt.Sprint(j % 3), "zone": "a"}
			batches[i][j] = w
		}
	}
	b.ResetTimer()
	cpu := cpuTime(b)
	for i, writes := range batches {
		if _, err := d.Apply(uint64(i+1), writes); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, cpu, b.N*1000, "record")
}

// BenchmarkApplyEntrySize is the FSM's CPU a record by the size of its transactions: 32 new
// records a Raft entry (what 64 single-record writers give the leader, two entries in flight),
// 128 and 1000, each size in a database of its own, taking turns in rounds of 3,200 records so
// that all see the machine alike. In ids=writers the ids come from 64 writers, as in
// BenchmarkClusterWrite: a transaction's records fall on 64 leaf pages of each B-tree, the same
// ones again and again. In ids=seq each id comes after every id before it, so that each B-tree
// keyed by id grows at its end, one leaf a transaction: the floor of what ids can cost. In
// ids=random they are random, in tables that hold 50,000 records first,
// as a node's ids fall: nearly every record changes a leaf page of its own in every B-tree, and
// a larger transaction saves less. Metrics: cpu-ns/record at each size, and x32 (each size ÷ 32,
// the median of the rounds).
func BenchmarkApplyEntrySize(b *testing.B) {
	body := func(i int) string {
		return fmt.Sprintf(`{"municipality":"Utrecht","beds_total":1000000000,"beds_free":%d}`, i)
	}
	b.Run("ids=writers", func(b *testing.B) {
		applyEntrySizes(b, []int{32, 128, 1000}, 0, func(i int) *db.Write { return put(fmt.Sprintf("b%02d-%d", i%64, i), body(i)) })
	})
	b.Run("ids=seq", func(b *testing.B) {
		applyEntrySizes(b, []int{32, 1000}, 0, func(i int) *db.Write { return put(fmt.Sprintf("s%010d", i), body(i)) })
	})
	b.Run("ids=random", func(b *testing.B) {
		rnd := rand.New(rand.NewPCG(1, 2))
		applyEntrySizes(b, []int{32, 1000}, 50_000, func(i int) *db.Write { return put(fmt.Sprintf("%016x", rnd.Uint64()), body(i)) })
	})
}

// applyEntrySizes is BenchmarkApplyEntrySize for the given sizes, in databases that first hold
// the records fill, applied a thousand at a time, each write the next(i) write.
func applyEntrySizes(b *testing.B, sizes []int, fill int, next func(i int) *db.Write) {
	const round = 3200
	dbs := make([]*db.DB, len(sizes))
	index := make([]uint64, len(sizes))
	for i := range sizes {
		d, err := db.Open(filepath.Join(b.TempDir(), fmt.Sprintf("s%d.db", i)))
		if err != nil {
			b.Fatal(err)
		}
		defer d.Close()
		dbs[i] = d
		for k := 0; k < fill; k += 1000 {
			writes := make([]*db.Write, min(1000, fill-k))
			for j := range writes {
				writes[j] = next(k + j)
			}
			index[i]++
			if _, err := d.Apply(index[i], writes); err != nil {
				b.Fatal(err)
			}
		}
	}
	cpu := make([]time.Duration, len(sizes))
	ratios := make([][]float64, len(sizes))
	n := 0
	for b.Loop() {
		writes := make([]*db.Write, round)
		for k := range writes {
			writes[k] = next(n*round + k)
		}
		n++
		took := make([]time.Duration, len(sizes))
		for i, size := range sizes {
			start := cpuTime(b)
			for k := 0; k < round; k += size {
				index[i]++
				if _, err := dbs[i].Apply(index[i], writes[k:min(round, k+size)]); err != nil {
					b.Fatal(err)
				}
			}
			took[i] = cpuTime(b) - start
			cpu[i] += took[i]
		}
		for i := 1; i < len(sizes); i++ {
			ratios[i] = append(ratios[i], float64(took[i])/float64(took[0]))
		}
	}
	for i, size := range sizes {
		b.ReportMetric(float64(cpu[i].Nanoseconds())/float64(n*round), fmt.Sprintf("cpu-ns/record/%d", size))
		if i > 0 {
			b.ReportMetric(median(ratios[i]), fmt.Sprintf("x32/%d", size))
		}
	}
	b.ReportMetric(0, "ns/op")
}

// BenchmarkLastSeq is what every subscription reads at every commit.
func BenchmarkLastSeq(b *testing.B) {
	d, err := db.Open(filepath.Join(b.TempDir(), "knooppunt.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	if _, err := d.Apply(1, []*db.Write{put("a", `{}`)}); err != nil {
		b.Fatal(err)
	}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if seq, err := d.LastSeq(); err != nil || seq != 1 {
				b.Fatalf("LastSeq = %d, %v", seq, err)
			}
		}
	})
}

// BenchmarkListSmall is a search's read on a peer: the 10 records of one kind in one crisis,
// under a context that can be cancelled, as a gRPC stream's is.
func BenchmarkListSmall(b *testing.B) {
	d, err := db.Open(filepath.Join(b.TempDir(), "knooppunt.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	var writes []*db.Write
	for i := range 10 {
		w := put(fmt.Sprintf("s%02d", i), `{"beds_free":1}`)
		w.Kind, w.Crisis = "sitrep", "bench"
		writes = append(writes, w)
	}
	if _, err := d.Apply(1, writes); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b.ResetTimer()
	cpu := cpuTime(b)
	for range b.N {
		recs, _, err := d.List(ctx, db.Filter{Crisis: "bench", Kind: "sitrep", PageSize: 1000})
		if err != nil || len(recs) != 10 {
			b.Fatalf("List = %d records, %v", len(recs), err)
		}
	}
	reportCPU(b, cpu, b.N, "op")
}

// BenchmarkTextIndexWrite is the full-text index's cost on the write path. The FSM applies the
// same 1000-record batches to two databases, one that keeps the index and one that does not,
// interleaved and in alternating order so that a noisy neighbour hits both alike; the FSM only
// queues records for the index, so x-noindex (the time with the index ÷ the time without; target
// ≤ 1.3) is that queue's cost. The indexer's own work, taking each batch's queue into the index
// off the write path, is index-ns/record. Half the records are Q&As of about 200 bytes of Dutch
// text, half shelter figures; every fourth batch updates records written before.
func BenchmarkTextIndexWrite(b *testing.B) {
	open := func() *db.DB {
		d, err := db.Open(filepath.Join(b.TempDir(), "knooppunt.db"))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { d.Close() })
		return d
	}
	with, without := open(), open()
	const size = 1000
	answers := []string{
		"Ja, zonder tewerkstellingsvergunning; de werkgever meldt het werk vooraf bij het UWV.",
		"De gemeente regelt de opvang en de coördinatie met de veiligheidsregio.",
		"Inschrijving in de BRP geeft toegang tot zorg, onderwijs en leefgeld.",
	}
	batch := func(n int) []*db.Write {
		out := make([]*db.Write, size)
		for i := range out {
			id := fmt.Sprintf("r-%07d", n*size+i)
			if n%4 == 3 {
				id = fmt.Sprintf("r-%07d", (n-3)*size+i) // an update of an earlier batch
			}
			w := &pb.Record{Id: id, Origin: "vr-utrecht.crisis.test", Kind: "qa", Crisis: "oekraine", Region: "VR09",
				Classification: pb.Classification_INTERNAL, UpdatedAt: hour(0)}
			if i%2 == 0 {
				w.Body = fmt.Appendf(nil, `{"question":"Vraag %d: mogen ontheemden werken in gemeente %d?","answer":%q,"audience":"gemeenten"}`, i, n, answers[i%len(answers)])
			} else {
				w.Kind = "shelter.capacity"
				w.Body = fmt.Appendf(nil, `{"municipality":"Gemeente %d","location":"Opvanglocatie %d","beds_total":%d,"beds_free":%d,"contact_phone":"030-1234567"}`, i, n, 100+i, i%100)
			}
			out[i] = w
		}
		return out
	}
	var index uint64
	var withTime, withoutTime, indexTime time.Duration
	apply := func(d *db.DB, off bool, ws []*db.Write, idx uint64) time.Duration {
		db.SetTextIndexOff(off)
		defer db.SetTextIndexOff(false)
		start := time.Now()
		if _, err := d.Apply(idx, ws); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	n := 0
	for b.Loop() {
		ws := batch(n)
		index++
		if n%2 == 0 {
			withTime += apply(with, false, ws, index)
			withoutTime += apply(without, true, ws, index)
		} else {
			withoutTime += apply(without, true, ws, index)
			withTime += apply(with, false, ws, index)
		}
		start := time.Now()
		if left, err := with.CatchUpText(context.Background(), size); err != nil || left != 0 {
			b.Fatalf("CatchUpText: %d left, %v", left, err)
		}
		indexTime += time.Since(start)
		n++
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(withTime.Nanoseconds())/float64(n*size), "ns/record")
	b.ReportMetric(float64(withoutTime.Nanoseconds())/float64(n*size), "noindex-ns/record")
	b.ReportMetric(float64(withTime)/float64(withoutTime), "x-noindex")
	b.ReportMetric(float64(indexTime.Nanoseconds())/float64(n*size), "index-ns/record")
}

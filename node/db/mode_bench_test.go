package db_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/knooppunt/knooppunt/node/db"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// BenchmarkModeReads is what modes cost the reads of actual records. Three databases hold the
// same 5000 actual shelter records of one crisis: in "all-actual" they are every record, as before
// exercises existed; in "mixed" 5000 records of an exercise sit between them, id by id, written
// in turn with them; "same-size" is all-actual with 5000 more actual records of another kind and
// crisis in the same places, so that it is as large as mixed. Each op reads every actual record of
// the crisis from each database twice, in the actual mode, with the read named in the
// sub-benchmark: out and back from a first that rotates, so that every database takes every place
// in the round and a noisy neighbour, the garbage collector or a warm cache favours none.
// x-all-actual is the median, over the ops, of the mixed reads' CPU time ÷ the all-actual reads'
// (target ≤ 1.05), x-same-size the mixed reads' ÷ the same-size reads', which leaves out what
// twice the data costs, and x-wall x-all-actual in wall time: medians, since a neighbour on the
// shared machine moves single reads by more than the target. "list" pages through List by crisis,
// as a Query and a picture do; "list-kind" pages by kind; "get" reads each record by id, as the
// API's Get; "changes" walks the change feed, as Watch and a subscription do, which in "mixed"
// also holds the exercise's changes.
func BenchmarkModeReads(b *testing.B) {
	const n = 5000
	open := func(mixed, sameSize bool) *db.DB {
		d, err := db.Open(filepath.Join(b.TempDir(), "knooppunt.db"))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { d.Close() })
		if _, err := d.ApplyExerciseStep(1, &pb.ExerciseStep{Action: "start", Name: "oef", Actor: "bench", At: hour(0)}); err != nil {
			b.Fatal(err)
		}
		var writes []*db.Write
		for i := range n {
			w := put(fmt.Sprintf("s%05d-a", i), fmt.Sprintf(`{"municipality":"m%d","beds_total":100,"beds_free":%d}`, i, i%100))
			writes = append(writes, w)
			x := put(fmt.Sprintf("s%05d-b", i), fmt.Sprintf(`{"municipality":"m%d","beds_total":100,"beds_free":%d}`, i, i%100))
			switch {
			case mixed:
				x.Status, x.Exercise = pb.Status_EXERCISE, "oef"
				writes = append(writes, x)
			case sameSize:
				x.Kind, x.Crisis = "signal", "andere"
				writes = append(writes, x)
			}
		}
		for i := 0; i < len(writes); i += 1000 {
			res, err := d.Apply(uint64(2+i/1000), writes[i:min(i+1000, len(writes))])
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
	all, mixed, same := open(false, false), open(true, false), open(false, true)
	ctx := context.Background()
	list := func(d *db.DB, f db.Filter) int {
		got := 0
		f.PageSize = 1000
		for {
			recs, next, err := d.List(ctx, f)
			if err != nil {
				b.Fatal(err)
			}
			for _, r := range recs {
				if r.Status != pb.Status_ACTUAL {
					b.Fatalf("an actual read returned %s of %s", r.Id, r.Exercise)
				}
			}
			got += len(recs)
			if next == "" {
				return got
			}
			f.PageToken = next
		}
	}
	reads := []struct {
		name string
		read func(d *db.DB) int
	}{
		{"list", func(d *db.DB) int { return list(d, db.Filter{Crisis: "oekraine"}) }},
		{"list-kind", func(d *db.DB) int { return list(d, db.Filter{Kind: "shelter.capacity"}) }},
		{"get", func(d *db.DB) int {
			got := 0
			for i := range n {
				r, err := d.Get(ctx, fmt.Sprintf("s%05d-a", i))
				if err != nil || !db.Actual.Holds(r) {
					b.Fatalf("Get: %v %v", r, err)
				}
				got++
			}
			return got
		}},
		{"changes", func(d *db.DB) int {
			// By crisis, as a Watch of one crisis: same-size's other records are actual.
			last, err := d.LastSeq()
			if err != nil {
				b.Fatal(err)
			}
			got := 0
			for after := int64(0); after < last; {
				page, err := d.Changes(ctx, after, last, 1000, db.Actual, "", "oekraine")
				if err != nil {
					b.Fatal(err)
				}
				got += len(page)
				if len(page) < 1000 {
					break
				}
				after = page[len(page)-1].Seq
			}
			return got
		}},
	}
	for _, rd := range reads {
		b.Run(rd.name, func(b *testing.B) {
			dbs := []*db.DB{all, mixed, same}
			var total [3]time.Duration
			var xAll, xSame, xWall []float64
			for i := 0; b.Loop(); i++ {
				// Each database once on the way out and once on the way back, from a first
				// that rotates: every one takes every place in the round, so that a noisy
				// neighbour, the garbage collector or a warm cache favours none.
				var cpu, wall [3]time.Duration
				for _, k := range []int{0, 1, 2, 2, 1, 0} {
					j := (i + k) % len(dbs)
					start, cpu0 := time.Now(), cpuTime(b)
					if got := rd.read(dbs[j]); got != n {
						b.Fatalf("%s read %d actual records, want %d", rd.name, got, n)
					}
					cpu[j] += cpuTime(b) - cpu0
					wall[j] += time.Since(start)
				}
				for j := range total {
					total[j] += cpu[j]
				}
				xAll = append(xAll, float64(cpu[1])/float64(cpu[0]))
				xSame = append(xSame, float64(cpu[1])/float64(cpu[2]))
				xWall = append(xWall, float64(wall[1])/float64(wall[0]))
			}
			b.ReportMetric(float64(total[0].Nanoseconds())/float64(2*b.N*n), "all-actual-cpu-ns/record")
			b.ReportMetric(float64(total[1].Nanoseconds())/float64(2*b.N*n), "mixed-cpu-ns/record")
			b.ReportMetric(median(xAll), "x-all-actual")
			b.ReportMetric(median(xSame), "x-same-size")
			b.ReportMetric(median(xWall), "x-wall")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// median is the median of xs, which it sorts.
func median(xs []float64) float64 {
	slices.Sort(xs)
	return xs[len(xs)/2]
}

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
// the crisis from each, in rotating order, in the actual mode, with the read named in the
// sub-benchmark. x-all-actual is the median, over the ops, of the mixed read's time ÷ the
// all-actual read's (target ≤ 1.05), and x-same-size the mixed read's ÷ the same-size read's,
// which leaves out what twice the data costs: medians of reads taken side by side, since a
// neighbour on the shared machine moves single reads by more than the target. "list" pages through List by crisis, as a Query and a
// picture do; "list-kind" pages by kind; "get" reads each record by id, as the API's Get;
// "changes" walks the change feed, as Watch and a subscription do, which in "mixed" passes the
// exercise's changes by.
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
			var xAll, xSame []float64
			for i := 0; b.Loop(); i++ {
				// Rotate which goes first, so that a noisy neighbour or a warm cache favours
				// none.
				var took [3]time.Duration
				for k := range dbs {
					j := (i + k) % len(dbs)
					start := time.Now()
					if got := rd.read(dbs[j]); got != n {
						b.Fatalf("%s read %d actual records, want %d", rd.name, got, n)
					}
					took[j] = time.Since(start)
					total[j] += took[j]
				}
				xAll = append(xAll, float64(took[1])/float64(took[0]))
				xSame = append(xSame, float64(took[1])/float64(took[2]))
			}
			slices.Sort(xAll)
			slices.Sort(xSame)
			b.ReportMetric(float64(total[0].Nanoseconds())/float64(b.N*n), "all-actual-ns/record")
			b.ReportMetric(float64(total[1].Nanoseconds())/float64(b.N*n), "mixed-ns/record")
			b.ReportMetric(xAll[len(xAll)/2], "x-all-actual")
			b.ReportMetric(xSame[len(xSame)/2], "x-same-size")
			b.ReportMetric(0, "ns/op")
		})
	}
}

package db

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestDeparturesQueries: the statements that find records that left a filter bind their values
// as +? (see noReprepare); the filtered feed still reads one range of the feed's key, and a
// sync poll reads the history of a record by its primary key, never the whole history, and walks
// the records that left no further than its page.
func TestDeparturesQueries(t *testing.T) {
	d, err := Open(filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	// plan is the plan of a statement that binds no plain parameter.
	plan := func(what, q string, args []any) string {
		t.Helper()
		if m := plainParam.FindString(q); m != "" {
			t.Errorf("%s: a plain parameter %q in %s", what, m, q)
		}
		return queryPlan(t, d, q, args)
	}
	since := time.Unix(1, 0)
	for name, f := range map[string]Filter{
		"crisis":              {Crisis: "c", UpdatedSince: since, Deleted: true},
		"kind+crisis+region":  {Kind: "sitrep", Crisis: "c", Region: "NL", UpdatedSince: since, Deleted: true},
		"region, labels, ids": {Region: "NL", Labels: map[string]string{"a": "1"}, IDs: []string{"r1", "r2"}, UpdatedSince: since, Deleted: true},
		"paged": {Kind: "sitrep", UpdatedSince: since, Deleted: true,
			PageToken: pageToken(&pb.Record{Id: "r9"}, true, Filter{Kind: "sitrep", UpdatedSince: since, Deleted: true}.listing())},
	} {
		if !f.departures() {
			t.Fatalf("%s: no departures", name)
		}
		q, args, _, _, err := listQuery(f)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		plan := plan("List, "+name, q, args)
		if strings.Contains(plan, "SCAN h") || strings.Contains(plan, "SCAN d") || strings.Contains(plan, "SCAN b") || strings.Contains(plan, "SCAN records") {
			t.Errorf("List, %s: plan %q scans a table", name, plan)
		}
		// A record's versions since the cut, and the one before it, alone.
		if !strings.Contains(plan, "SEARCH h EXISTS USING PRIMARY KEY (origin=? AND id=? AND version>? AND version<?)") {
			t.Errorf("List, %s: plan %q does not read a range of a record's versions", name, plan)
		}
		// The walk of those that left ends at the page's last update time.
		if len(f.IDs) == 0 && (!strings.Contains(plan, "USING INDEX records_updated (") || !strings.Contains(plan, "updated_at<?)")) {
			t.Errorf("List, %s: plan %q does not bound the walk of records that left", name, plan)
		}
	}
	for _, f := range []Filter{{Crisis: "c", Deleted: true}, {Crisis: "c", UpdatedSince: since}, {UpdatedSince: since, Deleted: true}, {Crisis: "c", UpdatedSince: since, Deleted: true, Mode: Mode{Status: pb.Status_TEST}}} {
		if f.departures() {
			t.Errorf("%+v takes departures: only a sync poll by kind, crisis or region in a mode with a history does", f)
		}
	}
	for _, kc := range [][2]string{{"sitrep", ""}, {"", "c"}, {"sitrep", "c"}} {
		q, args := changesQuery(5, 10, 256, Actual, kc[0], kc[1])
		if plan := plan(fmt.Sprint("Changes ", kc), q, args); !strings.Contains(plan, "SEARCH c USING PRIMARY KEY (status=? AND exercise=? AND seq>? AND seq<?)") || strings.Contains(plan, "SCAN") {
			t.Errorf("Changes %v: plan %q does not search the feed by mode and seq, or scans", kc, plan)
		}
	}
}

// changesQueryBefore is changesQuery as it was before departures: the filter on the record's
// shape now alone. BenchmarkDepartures measures against it.
func changesQueryBefore(after, upTo int64, limit int, m Mode, kind, crisis string) (string, []any) {
	q := `SELECT r.id, r.origin, r.kind, r.crisis, r.region, r.classification, r.labels, r.body, r.version,
	             r.updated_at, r.valid_until, r.tombstone, r.status, r.exercise, c.seq
	      FROM changes c JOIN records r ON r.id = c.id AND r.version = c.version
	      WHERE c.seq > +? AND c.seq <= +? AND c.status = +? AND c.exercise = +?`
	args := []any{after, upTo, int32(m.Status), m.Exercise}
	if kind != "" {
		q, args = q+` AND r.kind = +?`, append(args, kind)
	}
	if crisis != "" {
		q, args = q+` AND r.crisis = +?`, append(args, crisis)
	}
	q += ` ORDER BY c.seq LIMIT ` + strconv.Itoa(limit)
	return q, args
}

// BenchmarkDepartures is what finding the records that left a filter costs a crisis's change feed
// and its sync poll, against the same reads without it, in one database: n records in crisis
// oekraine and n in another, each written v times, every 50th of oekraine's moving out at its
// last version. "watch" reads the whole feed of oekraine (Changes, pages of 256), "watch-tail" its
// last 256 changes, as a watcher that keeps up; "poll" a sync poll since the first write (pages of
// 100), "poll-recent" one since the last tenth of the records' versions now. Each op runs the read before (the
// statement without the history: changesQueryBefore, a listing's plain) and after, in turns that
// swap which goes first; x-before is the median of after's wall time ÷ before's.
func BenchmarkDepartures(b *testing.B) {
	for _, size := range []struct{ n, v int }{{1000, 10}, {100, 200}} {
		d, err := Open(filepath.Join(b.TempDir(), "k.db"))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { d.Close() })
		var (
			writes []*Write
			at     = time.Unix(1_800_000_000, 0)
			index  uint64
			cuts   []time.Time
		)
		for v := range size.v {
			for i := range size.n {
				for _, c := range []string{"oekraine", "andere"} {
					at = at.Add(time.Millisecond)
					crisis := c
					if c == "oekraine" && i%50 == 0 && v == size.v-1 {
						crisis = "andere"
					}
					writes = append(writes, &Write{Id: fmt.Sprintf("%s-%04d", c, i), Kind: "shelter.capacity", Crisis: crisis, Region: "VR01",
						Body: []byte(fmt.Sprintf(`{"beds_free":%d}`, v)), UpdatedAt: timestamppb.New(at)})
					cuts = append(cuts, at)
				}
			}
		}
		for i := 0; i < len(writes); i += 1000 {
			index++
			if _, err := d.Apply(index, writes[i:min(i+1000, len(writes))]); err != nil {
				b.Fatal(err)
			}
		}
		last, err := d.LastSeq()
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		recent := cuts[len(cuts)-len(cuts)/(10*size.v)] // the last tenth of the records' versions now
		feed := func(after int64, query func(after, upTo int64, limit int, m Mode, kind, crisis string) (string, []any)) int {
			got := 0
			for after < last {
				q, args := query(after, last, 256, Actual, "", "oekraine")
				n, cols := 0, 0
				err := d.eachRow(ctx, q, args, func(rows *sql.Rows) error {
					if cols == 0 {
						cols = len(must(rows.Columns()))
					}
					vals := make([]any, cols)
					for i := range vals {
						vals[i] = new(any)
					}
					n++
					if err := rows.Scan(vals...); err != nil {
						return err
					}
					after = (*vals[14].(*any)).(int64) // c.seq
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
				got += n
				if n < 256 {
					break
				}
			}
			return got
		}
		poll := func(since time.Time, departures bool) int {
			f := Filter{Crisis: "oekraine", UpdatedSince: since, Deleted: true, PageSize: 100}
			got := 0
			for {
				p, err := listParts(f)
				if err != nil {
					b.Fatal(err)
				}
				q, args := p.plain()
				if departures {
					q, args = p.withDepartures()
				}
				var page []*pb.Record
				err = d.eachRow(ctx, q, args, func(rows *sql.Rows) error {
					var was shape
					dest := []any{}
					if departures {
						dest = was.dest()
					}
					r, err := scanRecord(rows, dest...)
					page = append(page, r)
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
				got += min(len(page), 100)
				if len(page) <= 100 {
					return got
				}
				f.PageToken = pageToken(page[99], true, f.listing())
			}
		}
		reads := []struct {
			name          string
			before, after func() int
		}{
			{"watch", func() int { return feed(0, changesQueryBefore) }, func() int { return feed(0, changesQuery) }},
			{"watch-tail", func() int { return feed(last-256, changesQueryBefore) }, func() int { return feed(last-256, changesQuery) }},
			{"poll", func() int { return poll(cuts[0], false) }, func() int { return poll(cuts[0], true) }},
			{"poll-recent", func() int { return poll(recent, false) }, func() int { return poll(recent, true) }},
		}
		for _, rd := range reads {
			b.Run(fmt.Sprintf("n=%d,v=%d/%s", size.n, size.v, rd.name), func(b *testing.B) {
				var ratios []float64
				var before, after time.Duration
				var nb, na int
				for i := 0; b.Loop(); i++ {
					var tb, ta time.Duration
					for k := range 2 {
						if (i+k)%2 == 0 {
							start := time.Now()
							nb = rd.before()
							tb = time.Since(start)
						} else {
							start := time.Now()
							na = rd.after()
							ta = time.Since(start)
						}
					}
					before, after = before+tb, after+ta
					ratios = append(ratios, float64(ta)/float64(tb))
				}
				slices.Sort(ratios)
				b.ReportMetric(float64(before.Microseconds())/float64(b.N), "before-µs/op")
				b.ReportMetric(float64(after.Microseconds())/float64(b.N), "after-µs/op")
				b.ReportMetric(ratios[len(ratios)/2], "x-before")
				b.ReportMetric(float64(na-nb), "more-rows")
				b.ReportMetric(0, "ns/op")
			})
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

package cap_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/knooppunt/knooppunt/node/cap"
	"github.com/knooppunt/knooppunt/node/record"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// BenchmarkCAP measures what one alert costs to import (parse, check, map to a record) and to
// export (record to CAP, checked and written), each against the baseline of the same alert's
// record read and written as JSON Lines, the node's own import format, interleaved in one run.
// The ratios are the figures; see docs/performance.md.
func BenchmarkCAP(b *testing.B) {
	doc := readFile(b, "full.xml")
	a := parse(b, doc)
	rec, err := cap.ToRecord(a, cap.ImportOptions{Crisis: "hoogwater", Region: "VR19"})
	if err != nil {
		b.Fatal(err)
	}
	stored := store(b, checker(b, nil), rec)
	line, err := json.Marshal(record.ToJSON(stored))
	if err != nil {
		b.Fatal(err)
	}
	var capIn, jsonIn, capOut, jsonOut time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		var j record.JSON
		if err := json.NewDecoder(bytes.NewReader(line)).Decode(&j); err != nil {
			b.Fatal(err)
		}
		if _, err := record.FromJSON(j); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		a, err := cap.Parse(bytes.NewReader(doc), 0)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := cap.ToRecord(a, cap.ImportOptions{Crisis: "hoogwater", Region: "VR19"}); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		if _, err := json.Marshal(record.ToJSON(stored)); err != nil {
			b.Fatal(err)
		}
		t3 := time.Now()
		out, err := cap.FromRecord(stored, cap.ExportOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := out.Marshal(); err != nil {
			b.Fatal(err)
		}
		t4 := time.Now()
		jsonIn, capIn, jsonOut, capOut = jsonIn+t1.Sub(t0), capIn+t2.Sub(t1), jsonOut+t3.Sub(t2), capOut+t4.Sub(t3)
	}
	n := float64(b.N)
	b.ReportMetric(float64(capIn.Microseconds())/n, "import-µs/alert")
	b.ReportMetric(float64(capOut.Microseconds())/n, "export-µs/alert")
	b.ReportMetric(capIn.Seconds()/jsonIn.Seconds(), "import÷jsonl")
	b.ReportMetric(capOut.Seconds()/jsonOut.Seconds(), "export÷jsonl")
}

// BenchmarkFeedPoll measures one poll of the alert feed of a node that holds 2,000 public
// alerts, 200 of them in force, as a site polling it sees it: built again at every poll (no
// Version, as before the feed kept its document) against the kept document of an unchanged
// feed, in turns in one run. The ratio is the figure.
func BenchmarkFeedPoll(b *testing.B) {
	full := parse(b, readFile(b, "full.xml"))
	var recs []*pb.Record
	for i := range 2000 {
		a := *full
		a.Identifier = fmt.Sprintf("A-%d", i)
		a.Info = slices.Clone(full.Info)
		for j := range a.Info {
			a.Info[j].Expires = "2026-12-04T06:00:00+01:00" // expired
			if i < 200 {
				a.Info[j].Expires = "2036-12-04T06:00:00+01:00"
			}
		}
		rec, err := cap.ToRecord(&a, cap.ImportOptions{Classification: pb.Classification_PUBLIC})
		if err != nil {
			b.Fatal(err)
		}
		recs = append(recs, store(b, checker(b, nil), rec))
	}
	alerts := func(context.Context) ([]*pb.Record, error) { return recs, nil }
	rebuilt := cap.NewFeed(cap.FeedConfig{Org: org, Name: "vrzeeland", Alerts: alerts})
	kept := cap.NewFeed(cap.FeedConfig{Org: org, Name: "vrzeeland", Alerts: alerts,
		Version: func(context.Context) (time.Time, error) { return time.Unix(1, 0), nil }})
	poll := func(f *cap.Feed) time.Duration {
		t0 := time.Now()
		w := httptest.NewRecorder()
		f.ServeHTTP(w, httptest.NewRequest(http.MethodGet, cap.FeedPath, nil))
		if w.Code != http.StatusOK {
			b.Fatalf("feed: %d", w.Code)
		}
		return time.Since(t0)
	}
	var slow, fast time.Duration
	for b.Loop() {
		slow += poll(rebuilt)
		fast += poll(kept)
	}
	b.ReportMetric(float64(slow.Microseconds())/float64(b.N), "rebuilt-µs/poll")
	b.ReportMetric(float64(fast.Microseconds())/float64(b.N), "kept-µs/poll")
	b.ReportMetric(float64(slow)/float64(fast), "x-faster")
	b.ReportMetric(0, "ns/op")
}

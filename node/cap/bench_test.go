package cap_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/knooppunt/knooppunt/node/cap"
	"github.com/knooppunt/knooppunt/node/record"
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

package warn_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/knooppunt/knooppunt/node/warn"
)

// TestRecordsWalkIsBoundAtRunTime: a condition that walks far more records than lint assumed is
// stopped by the cost limit; the evaluation fails, so the rule does not fire, and the dry run says
// why. With as many records as lint assumes, it runs.
func TestRecordsWalkIsBoundAtRunTime(t *testing.T) {
	rule, err := warn.Lint([]byte("name: r\nseverity: minor\nwhen: 'records(\"sitrep\").filter(r, r.severity == \"high\").size() >= 1'\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	history := func(n int) *warn.History {
		var vs []warn.Version
		for i := range n {
			vs = append(vs, warn.Version{ID: fmt.Sprint(i), Version: 1, Kind: "sitrep", Crisis: "c", Region: "VR19", At: base,
				Values: map[string]any{"severity": "high", "title": "t"}})
		}
		return warn.NewHistory(vs, time.Time{})
	}
	eps, errs, err := rule.DryRun(context.Background(), history(warn.MaxRecordsEstimate), base, base.Add(time.Minute), time.Minute)
	if err != nil || len(errs) != 0 || len(eps) != 1 {
		t.Fatalf("%d records: episodes %v, errors %v, %v; want one episode", warn.MaxRecordsEstimate, eps, errs, err)
	}
	eps, errs, err = rule.DryRun(context.Background(), history(20*warn.MaxRecordsEstimate), base, base.Add(time.Minute), time.Minute)
	if err != nil || len(eps) != 0 || len(errs) != 1 || !strings.Contains(errs[0].Error(), "cost limit exceeded") {
		t.Fatalf("%d records: episodes %v, errors %v, %v; want no episode and the cost limit", 20*warn.MaxRecordsEstimate, eps, errs, err)
	}
}

// TestRecordsOfADottedKind: records of a kind whose name has a dot evaluate, with its integer and
// string fields typed as its schema says.
func TestRecordsOfADottedKind(t *testing.T) {
	rule, err := warn.Lint([]byte("name: r\nseverity: minor\nwhen: 'records(\"shelter.capacity\").exists(s, s.beds_free < 5 && s.municipality == \"Goes\")'\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	h := warn.NewHistory([]warn.Version{
		{ID: "goes", Version: 1, Kind: "shelter.capacity", Crisis: "c", Region: "VR19", At: base,
			Fields: map[string]float64{"beds_free": 9, "beds_total": 120}, Values: map[string]any{"municipality": "Goes"}},
		{ID: "goes", Version: 2, Kind: "shelter.capacity", Crisis: "c", Region: "VR19", At: minute(5),
			Fields: map[string]float64{"beds_free": 3, "beds_total": 120}, Values: map[string]any{"municipality": "Goes"}},
	}, time.Time{})
	eps, errs, err := rule.DryRun(context.Background(), h, base, minute(10), time.Minute)
	if err != nil || len(errs) != 0 || len(eps) != 1 || !eps[0].Start.Equal(minute(5)) {
		t.Fatalf("episodes %v, errors %v, %v; want one from minute 5", eps, errs, err)
	}
}

// TestDryRunEndsWithItsContext: a dry run stops when its context ends, as when its caller went
// away or its time was up, where one within MaxEvaluations took up to minutes of CPU to the end
// (review D, F7).
func TestDryRunEndsWithItsContext(t *testing.T) {
	rule, err := warn.Lint([]byte("name: r\nseverity: minor\nwhen: records(\"sitrep\").size() > 0\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	h := warn.NewHistory([]warn.Version{{ID: "s", Version: 1, Kind: "sitrep", Crisis: "c", Region: "VR19", At: base,
		Values: map[string]any{"severity": "high", "title": "t"}}}, time.Time{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := rule.DryRun(ctx, h, base, base.Add(24*time.Hour), time.Minute); !errors.Is(err, context.Canceled) {
		t.Fatalf("a dry run whose context ended: %v, want it stopped", err)
	}
	if eps, _, err := rule.DryRun(context.Background(), h, base, base.Add(24*time.Hour), time.Minute); err != nil || len(eps) != 1 {
		t.Fatalf("the same dry run: %v, %v; want one episode", eps, err)
	}
}

package warn

import (
	"fmt"
	"testing"
	"time"
)

// TestLastRunOfALongFor: a rule that has held for the whole of a 90-day `for:`, with a version in
// each region every hour, is taken up by a new leader after about one evaluation an hour in each
// region (2,160), not one a minute (129,600). Each evaluation reads records("sitrep") at its
// instant once, so the lists the history keeps count them.
func TestLastRunOfALongFor(t *testing.T) {
	rule, err := Lint([]byte("name: r\nseverity: minor\nwhen: 'records(\"sitrep\").filter(x, x.severity == \"low\").size() >= 1'\nfor: 2160h\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	from := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	to := from.Add(MaxFor)
	var vs []Version
	for at := from.Add(-time.Hour); at.Before(to); at = at.Add(time.Hour) {
		for r := range 25 {
			vs = append(vs, Version{ID: fmt.Sprintf("s%d", r), Version: int64(at.Sub(from) / time.Hour), Kind: "sitrep", Crisis: "c",
				Region: fmt.Sprintf("VR%02d", r+1), At: at.Add(time.Duration(r) * 2 * time.Minute), Values: map[string]any{"severity": "low"}})
		}
	}
	h := NewHistory(vs, time.Time{})
	for r := range 25 {
		region := fmt.Sprintf("VR%02d", r+1)
		s := rule.LastRun(h, region, from, to, time.Minute)
		if !s.Pending || !s.Since.Equal(from) {
			t.Fatalf("%s: %+v, want pending since %s", region, s, from)
		}
		n := 0
		for k := range h.lists {
			if k.region == region {
				n++
			}
		}
		if n > 2200 {
			t.Fatalf("%s: evaluated at %d instants, want one an hour", region, n)
		}
	}
}

// TestListsAreBounded: the lists records(kind) returned are kept for later evaluations up to
// maxListed records, not one for every instant of a long run.
func TestListsAreBounded(t *testing.T) {
	rule, err := Lint([]byte("name: r\nseverity: minor\nwhen: 'records(\"sitrep\").size() >= 1'\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	h := NewHistory([]Version{{ID: "s", Version: 1, Kind: "sitrep", Crisis: "c", Region: "VR01", At: at}}, time.Time{})
	for i := range maxListed + 1000 {
		if w, err := rule.when.eval(h, "", "VR01", at.Add(time.Duration(i)*time.Second)); err != nil || !w {
			t.Fatalf("evaluation %d: %v %v", i, w, err)
		}
	}
	if h.listed > maxListed || len(h.lists) > maxListed {
		t.Errorf("the lists hold %d records in %d lists, over the bound of %d", h.listed, len(h.lists), maxListed)
	}
}

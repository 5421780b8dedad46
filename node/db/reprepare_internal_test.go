package db

import (
	"database/sql"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// plainParam is a ? that is not written +?: SQLite prepares a statement again at every run when
// its planner looked at the value bound to such a parameter (see noReprepare).
var plainParam = regexp.MustCompile(`(^|[^+])\?`)

// TestHotQueriesBindNoPlainParameters checks that List, Changes and ForeignList, for every filter
// shape, bind their values as +? with the page size in the text, and that the plans of List and
// Changes still search an index: +? must not cost the planner its index.
func TestHotQueriesBindNoPlainParameters(t *testing.T) {
	d, err := Open(filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	last := &pb.Record{Id: "r9"}
	filters := map[string]Filter{
		"kind":         {Kind: "sitrep"},
		"crisis+kind":  {Crisis: "c", Kind: "sitrep"},
		"region":       {Region: "NL"},
		"labels":       {Labels: map[string]string{"a": "1", "b": "2"}},
		"all":          {Kind: "sitrep", Crisis: "c", Region: "NL", Labels: map[string]string{"a": "1"}, MaxClassification: pb.Classification_INTERNAL, UpdatedSince: time.Unix(1, 0)},
		"next page":    {Kind: "sitrep", PageToken: pageToken(last, false)},
		"since, paged": {UpdatedSince: time.Unix(1, 0), PageToken: pageToken(last, true)},
	}
	for name, f := range filters {
		q, args, _, _, err := listQuery(f)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if m := plainParam.FindString(q); m != "" {
			t.Errorf("List, %s: a plain parameter %q in %s", name, m, q)
		}
		if plan := queryPlan(t, d, q, args); !strings.Contains(plan, "USING") || strings.Contains(plan, "SCAN records") {
			t.Errorf("List, %s: plan %q does not search an index", name, plan)
		}
	}
	q, args := changesQuery(5, 10, 256, Actual, "sitrep", "c")
	if m := plainParam.FindString(q); m != "" {
		t.Errorf("Changes: a plain parameter %q in %s", m, q)
	}
	if plan := queryPlan(t, d, q, args); !strings.Contains(plan, "INTEGER PRIMARY KEY (rowid>? AND rowid<?)") {
		t.Errorf("Changes: plan %q does not search the feed by seq", plan)
	}
	q, args = foreignListQuery(ForeignFilter{Origin: "o", Crisis: "c", Region: "NL", Kinds: []string{"a", "b"},
		Labels: map[string]string{"x": "1"}, UpdatedSince: time.Unix(1, 0), AfterOrigin: "o", AfterID: "r1", Limit: 5})
	if m := plainParam.FindString(q); m != "" {
		t.Errorf("ForeignList: a plain parameter %q in %s", m, q)
	}
	queryPlan(t, d, q, args) // it must at least prepare
}

func queryPlan(t *testing.T, d *DB, q string, args []any) string {
	t.Helper()
	var plan []string
	err := d.read(func(ro *sql.DB) error {
		rows, err := ro.Query("EXPLAIN QUERY PLAN "+q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				return err
			}
			plan = append(plan, detail)
		}
		return rows.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(plan, "; ")
}

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
// shape, and the statements of a record write bind their values as +? with the page size in the
// text, and that their plans still search an index: +? must not cost the planner its index.
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
		"next page":    {Kind: "sitrep", PageToken: pageToken(last, false, Filter{Kind: "sitrep"}.listing())},
		"since":        {UpdatedSince: time.Unix(1, 0)},
		"since, paged": {UpdatedSince: time.Unix(1, 0), PageToken: pageToken(last, true, Filter{UpdatedSince: time.Unix(1, 0)}.listing())},
		"ids":          {IDs: []string{"r1", "r2"}},
		"ids+kind":     {Kind: "sitrep", Crisis: "c", IDs: []string{"r1", "r2"}, PageToken: pageToken(last, false, Filter{Kind: "sitrep", Crisis: "c", IDs: []string{"r1", "r2"}}.listing())},
	}
	drivenBy := map[string]string{
		"labels":       "SEARCH l0 USING PRIMARY KEY (key=? AND value=?)",
		"since":        "USING INDEX records_updated",
		"since, paged": "USING INDEX records_updated",
	}
	for name, f := range filters {
		q, args, _, _, err := listQuery(f)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if m := plainParam.FindString(q); m != "" {
			t.Errorf("List, %s: a plain parameter %q in %s", name, m, q)
		}
		plan := queryPlan(t, d, q, args)
		if !strings.Contains(plan, "USING") || strings.Contains(plan, "SCAN records") {
			t.Errorf("List, %s: plan %q does not search an index", name, plan)
		}
		// Nearly every record is of the actual mode: a listing that no kind, crisis or region
		// narrows must not be driven by the mode's index, which walks every record of the
		// mode (a label a thousand records have took 387 ms at 1M records that way).
		if want, ok := drivenBy[name]; ok && (!strings.Contains(plan, want) || strings.Contains(plan, "status=? AND exercise=?")) {
			t.Errorf("List, %s: plan %q, want it driven by %q and not by a mode's index", name, plan, want)
		}
		// Each id is one lookup, however many records the mode, kind or crisis holds.
		if len(f.IDs) > 0 && !lookupsByID(plan) {
			t.Errorf("List, %s: plan %q does not look up each id", name, plan)
		}
	}
	q, args := changesQuery(5, 10, 256, Actual, "sitrep", "c")
	if m := plainParam.FindString(q); m != "" {
		t.Errorf("Changes: a plain parameter %q in %s", m, q)
	}
	// One range of the feed's key, the mode and then seq: a feed never steps over another
	// mode's changes.
	if plan := queryPlan(t, d, q, args); !strings.Contains(plan, "SEARCH c USING PRIMARY KEY (status=? AND exercise=? AND seq>? AND seq<?)") {
		t.Errorf("Changes: plan %q does not search the feed by mode and seq", plan)
	}
	q, args = foreignListQuery(ForeignFilter{Origin: "o", Crisis: "c", Region: "NL", Kinds: []string{"a", "b"},
		Labels: map[string]string{"x": "1"}, UpdatedSince: time.Unix(1, 0), AfterOrigin: "o", AfterID: "r1", Limit: 5})
	if m := plainParam.FindString(q); m != "" {
		t.Errorf("ForeignList: a plain parameter %q in %s", m, q)
	}
	queryPlan(t, d, q, args) // it must at least prepare
	q, args = foreignListQuery(ForeignFilter{Origin: "o", Kinds: []string{"a"}, IDs: []string{"r1", "r2"}})
	if plan := queryPlan(t, d, q, args); !lookupsByID(plan) {
		t.Errorf("ForeignList by ids: plan %q does not look up each id", plan)
	}

	// The statements that every record write runs, on every replica, in the FSM and in the
	// text indexer: a plain ? there cost 1–18 µs a run, the join of sqlTextFiles the most.
	for name, q := range map[string]string{
		"sqlCurrent": sqlCurrent, "sqlWhole": sqlWhole, "sqlDelLabels": sqlDelLabels,
		"sqlHistoryNumbers": sqlHistoryNumbers, "sqlHistoryDrop": sqlHistoryDrop, "sqlRefsDrop": sqlRefsDrop,
		"sqlTextPending": sqlTextPending, "sqlTextDone": sqlTextDone, "sqlTextOwn": sqlTextOwn,
		"sqlTextForeign": sqlTextForeign, "sqlTextRow": sqlTextRow, "sqlTextUnkey": sqlTextUnkey,
		"sqlTextFiles": sqlTextFiles, "sqlTextVocabAdd": sqlTextVocabAdd,
	} {
		if m := plainParam.FindString(q); m != "" {
			t.Errorf("%s: a plain parameter %q in %s", name, m, q)
		}
		if name == "sqlTextPending" {
			continue // takes the first rows of the queue, whichever they are
		}
		plan := queryPlan(t, d, q, []any{"o", "r1"}[:strings.Count(q, "?")])
		for _, step := range strings.Split(plan, "; ") {
			// A virtual table (the full-text index, json_each) always shows as a scan.
			if strings.HasPrefix(step, "SCAN") && !strings.Contains(step, "VIRTUAL TABLE") {
				t.Errorf("%s: plan %q scans a table", name, plan)
			}
		}
	}
}

// lookupsByID says whether every step of plan that reads a table or index looks up an id.
func lookupsByID(plan string) bool {
	for _, step := range strings.Split(plan, "; ") {
		if (strings.HasPrefix(step, "SEARCH") || strings.HasPrefix(step, "SCAN")) && !strings.Contains(step, "id=?") {
			return false
		}
	}
	return true
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

// TestTextPagePlan: a full-text search reads a page of the index's rows by their keys, not the
// records of a mode or kind, nor every key of an origin (which took 20–35 ms a search at 200,000
// records).
func TestTextPagePlan(t *testing.T) {
	d, err := Open(filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	f := TextFilter{Kinds: []string{"qa", "guidance"}, Crisis: "c", Region: "NL", Labels: map[string]string{"a": "1"}, UpdatedSince: time.Unix(1, 0), IDs: []string{"r1"}}
	for _, tc := range []struct {
		name, from, table string
		pre               []any
	}{{"own", textOwnFrom, "records", nil}, {"cache", textForeignFrom, "foreign_records", []any{"o"}}} {
		filters, fargs := textWhere(tc.table, f)
		args := append(append(tc.pre, int64(1), int64(2), int64(3)), fargs...)
		plan := queryPlan(t, d, textPageQuery(tc.from, filters, 3), args)
		if !strings.HasPrefix(plan, "SEARCH text_keys USING INTEGER PRIMARY KEY (rowid=?)") {
			t.Errorf("%s: plan %q, want it driven by the keys' rows", tc.name, plan)
		}
	}
}

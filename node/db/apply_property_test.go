package db_test

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/knooppunt/knooppunt/node/db"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// modelRow is a records row as the reference model keeps it.
type modelRow struct {
	kind, labels, body  string
	version, seq        int64
	updatedAt, validTil int64
	tombstone           bool
}

// applyModel applies one write to the model and returns the result Apply must give.
func applyModel(rows map[string]*modelRow, labels map[string]map[string]string, changes *[]string, seq *int64, w *db.Write) db.Result {
	cur := rows[w.Id]
	var version int64
	if cur != nil {
		version = cur.version
	}
	// A delete of what is gone is not found before any version check.
	if w.Tombstone && (cur == nil || cur.tombstone) {
		return db.Result{Err: db.ErrNotFound}
	}
	if w.Version != 0 && w.Version != version {
		return db.Result{Err: &db.StaleVersionError{ID: w.Id, Expected: w.Version, Current: version}}
	}
	next := &modelRow{kind: w.Kind, body: string(w.Body), validTil: nanos(w.ValidUntil)}
	nextLabels := w.Labels
	if w.Tombstone {
		next = &modelRow{kind: cur.kind, body: "{}", validTil: cur.validTil, tombstone: true}
		nextLabels = labels[w.Id]
	}
	*seq++
	next.version, next.seq, next.updatedAt = version+1, *seq, nanos(w.UpdatedAt)
	if nextLabels == nil {
		nextLabels = map[string]string{}
	}
	b, _ := json.Marshal(nextLabels)
	next.labels = string(b)
	rows[w.Id], labels[w.Id] = next, nextLabels
	*changes = append(*changes, fmt.Sprintf("%d %s %d", *seq, w.Id, next.version))
	return db.Result{Version: next.version, Seq: *seq}
}

func nanos(ts interface{ AsTime() time.Time }) int64 {
	if ts == nil {
		return 0
	}
	return ts.AsTime().UnixNano()
}

// TestApplyMatchesModel checks Apply against a model of the three tables it writes (records,
// record_labels, changes) kept in maps: entries of random puts, deletes and expected versions over
// a few ids, so that one entry often writes a record twice, deletes what it just created, puts
// after its own delete or expects a version an earlier write of the entry made stale. After every
// entry the results and the tables must be what the model holds.
func TestApplyMatchesModel(t *testing.T) {
	ids := []string{"a", "b", "c", "d", "e", "f"}
	rapid.Check(t, func(rt *rapid.T) {
		path := filepath.Join(t.TempDir(), fmt.Sprintf("apply-%d.db", rapid.Int().Draw(rt, "file")))
		d, err := db.Open(path)
		if err != nil {
			rt.Fatal(err)
		}
		defer d.Close()
		ro, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
		if err != nil {
			rt.Fatal(err)
		}
		defer ro.Close()

		rows := map[string]*modelRow{}
		labels := map[string]map[string]string{}
		var changes []string
		var seq int64
		entries := rapid.IntRange(1, 6).Draw(rt, "entries")
		var pending []db.WriteEntry
		var wants [][]db.Result
		for index := 1; index <= entries; index++ {
			n := rapid.IntRange(1, 40).Draw(rt, "writes")
			writes := make([]*db.Write, n)
			for i := range writes {
				id := rapid.SampledFrom(ids).Draw(rt, "id")
				w := &pb.Record{Id: id, UpdatedAt: hour(index)}
				// Mostly any version; sometimes the right or a wrong one.
				switch rapid.IntRange(0, 3).Draw(rt, "version") {
				case 0:
					w.Version = rapid.Int64Range(1, 4).Draw(rt, "v")
				case 1:
					if r := rows[id]; r != nil {
						w.Version = r.version // right at the entry's start, maybe stale by now
					}
				}
				if rapid.IntRange(0, 4).Draw(rt, "delete") == 0 {
					w.Tombstone = true
				} else {
					w.Origin, w.Crisis, w.Region = "org.test", "c", "R1"
					w.Kind = rapid.SampledFrom([]string{"sitrep", "qa"}).Draw(rt, "kind")
					w.Classification = pb.Classification_INTERNAL
					w.Body = []byte(fmt.Sprintf(`{"n":%d}`, rapid.IntRange(0, 9).Draw(rt, "body")))
					w.Labels = rapid.MapOfN(rapid.SampledFrom([]string{"k1", "k2", "k3"}), rapid.SampledFrom([]string{"x", "y"}), 0, 3).Draw(rt, "labels")
					if rapid.Bool().Draw(rt, "valid_until") {
						w.ValidUntil = hour(100)
					}
				}
				writes[i] = w
			}
			want := make([]db.Result, n)
			for i, w := range writes {
				want[i] = applyModel(rows, labels, &changes, &seq, w)
			}
			pending = append(pending, db.WriteEntry{Index: uint64(index), Writes: writes})
			wants = append(wants, want)
			// Entries go to the database one at a time (Apply) or a few together (ApplyWrites,
			// as the FSM hands over what Raft committed at once); the outcome must not differ.
			if index < entries && rapid.Bool().Draw(rt, "batch with the next") {
				continue
			}
			var got [][]db.Result
			if len(pending) == 1 {
				res, err := d.Apply(pending[0].Index, pending[0].Writes)
				if err != nil {
					rt.Fatalf("Apply(%d): %v", index, err)
				}
				got = [][]db.Result{res}
			} else {
				var err error
				if got, err = d.ApplyWrites(pending); err != nil {
					rt.Fatalf("ApplyWrites(%d entries to %d): %v", len(pending), index, err)
				}
			}
			for k, e := range pending {
				for i := range wants[k] {
					if !sameResult(got[k][i], wants[k][i]) {
						w := e.Writes[i]
						rt.Fatalf("entry %d write %d (%s version %d tombstone %v): got %+v, want %+v",
							e.Index, i, w.Id, w.Version, w.Tombstone, got[k][i], wants[k][i])
					}
				}
			}
			// A replay of entries applied before changes nothing and answers nil.
			if rapid.Bool().Draw(rt, "replay") {
				again, err := d.ApplyWrites(pending)
				if err != nil {
					rt.Fatalf("replay: %v", err)
				}
				for k := range again {
					if again[k] != nil {
						rt.Fatalf("replayed entry %d answered %+v, want nothing", pending[k].Index, again[k])
					}
				}
			}
			pending, wants = nil, nil
			checkTables(rt, ro, rows, labels, changes)
		}
	})
}

func sameResult(a, b db.Result) bool {
	var sa, sb *db.StaleVersionError
	switch {
	case errors.As(a.Err, &sa) || errors.As(b.Err, &sb):
		return errors.As(a.Err, &sa) && errors.As(b.Err, &sb) && *sa == *sb
	case a.Err != nil || b.Err != nil:
		return errors.Is(a.Err, b.Err)
	}
	return a.Version == b.Version && a.Seq == b.Seq
}

func checkTables(rt *rapid.T, ro *sql.DB, rows map[string]*modelRow, labels map[string]map[string]string, changes []string) {
	var got, want []string
	q, err := ro.Query(`SELECT id, kind, labels, body, version, seq, updated_at, valid_until, tombstone FROM records ORDER BY id`)
	if err != nil {
		rt.Fatal(err)
	}
	for q.Next() {
		var id string
		var r modelRow
		if err := q.Scan(&id, &r.kind, &r.labels, &r.body, &r.version, &r.seq, &r.updatedAt, &r.validTil, &r.tombstone); err != nil {
			rt.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s %+v", id, r))
	}
	q.Close()
	for id, r := range rows {
		want = append(want, fmt.Sprintf("%s %+v", id, *r))
	}
	slices.Sort(want)
	compare(rt, "records", got, want)

	got, want = queryStrings(rt, ro, `SELECT id || ' ' || key || '=' || value FROM record_labels ORDER BY 1`), nil
	for id, m := range labels {
		for k, v := range m {
			want = append(want, id+" "+k+"="+v)
		}
	}
	slices.Sort(want)
	compare(rt, "record_labels", got, want)

	compare(rt, "changes", queryStrings(rt, ro, `SELECT seq || ' ' || id || ' ' || version FROM changes ORDER BY seq`), changes)
}

// queryStrings is the one text column of query's rows, in order.
func queryStrings(rt interface{ Fatal(...any) }, ro *sql.DB, query string) []string {
	q, err := ro.Query(query)
	if err != nil {
		rt.Fatal(err)
	}
	defer q.Close()
	var out []string
	for q.Next() {
		var s string
		if err := q.Scan(&s); err != nil {
			rt.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

func compare(rt *rapid.T, table string, got, want []string) {
	if !slices.Equal(got, want) {
		rt.Fatalf("%s:\ngot  %s\nwant %s", table, strings.Join(got, "\n     "), strings.Join(want, "\n     "))
	}
}

package db_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/node/db"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// t0 is the commit time of the first write in these tests; later writes are an hour apart, so
// that UpdatedSince can cut between them.
var t0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

func hour(n int) *timestamppb.Timestamp { return timestamppb.New(t0.Add(time.Duration(n) * time.Hour)) }

func openDB(t *testing.T, path string) *db.DB {
	t.Helper()
	d, err := db.Open(path)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func newDB(t *testing.T) *db.DB {
	t.Helper()
	return openDB(t, filepath.Join(t.TempDir(), "knooppunt.db"))
}

// put is a create-or-update of a shelter.capacity record in crisis oekraine, region VR01.
func put(id, body string) *db.Write {
	return &pb.Record{
		Id: id, Origin: "vr-utrecht.crisis.test", Kind: "shelter.capacity", Crisis: "oekraine",
		Region: "VR01", Classification: pb.Classification_INTERNAL, Body: []byte(body), UpdatedAt: hour(0),
	}
}

func del(id string, version int64) *db.Write {
	return &pb.Record{Id: id, Version: version, Tombstone: true, UpdatedAt: hour(1)}
}

func withVersion(w *db.Write, v int64) *db.Write { w.Version = v; return w }

// applier hands out increasing Raft indexes, as the FSM would see them.
type applier struct {
	t     *testing.T
	d     *db.DB
	index uint64
}

func (a *applier) apply(writes ...*db.Write) []db.Result {
	a.t.Helper()
	a.index++
	res, err := a.d.Apply(a.index, writes)
	if err != nil {
		a.t.Fatalf("Apply(%d): %v", a.index, err)
	}
	if len(res) != len(writes) {
		a.t.Fatalf("Apply(%d) gave %d results for %d writes", a.index, len(res), len(writes))
	}
	return res
}

// mustApply applies writes that must all succeed.
func (a *applier) mustApply(writes ...*db.Write) []db.Result {
	a.t.Helper()
	res := a.apply(writes...)
	for i, r := range res {
		if r.Err != nil {
			a.t.Fatalf("Apply(%d) write %d (%s): %v", a.index, i, writes[i].Id, r.Err)
		}
	}
	return res
}

func userVersion(t *testing.T, path string) int {
	t.Helper()
	h, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	var v int
	if err := h.QueryRow(`PRAGMA user_version`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// checksum hashes every stored row (records with tombstones, labels, the change feed and meta) of
// the database file at path, through a handle of its own.
func checksum(t *testing.T, path string) string {
	t.Helper()
	return queriesChecksum(t, path,
		`SELECT id, origin, kind, crisis, region, classification, labels, hex(body), version, updated_at, valid_until, tombstone, seq FROM records ORDER BY id`,
		`SELECT key, value, id FROM record_labels ORDER BY key, value, id`,
		`SELECT seq, id, version FROM changes ORDER BY seq`,
		`SELECT key, value FROM meta ORDER BY key`,
	)
}

// queriesChecksum is a SHA-256 over every row the queries return, read from the file at path.
func queriesChecksum(t *testing.T, path string, queries ...string) string {
	t.Helper()
	h, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	sum := sha256.New()
	for _, q := range queries {
		rows, err := h.Query(q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		cols, _ := rows.Columns()
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		n := 0
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(sum, "%q\n", vals)
			n++
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
		fmt.Fprintf(sum, "-- %d rows\n", n)
	}
	return hex.EncodeToString(sum.Sum(nil))
}

func TestOpenMigratesAndReopens(t *testing.T) {
	path := filepath.Join(t.TempDir(), "knooppunt.db")
	d, err := db.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := userVersion(t, path); got != db.SchemaVersion {
		t.Fatalf("user_version of a fresh database = %d, want SchemaVersion %d", got, db.SchemaVersion)
	}
	if db.SchemaVersion < 1 {
		t.Fatalf("SchemaVersion = %d, want at least 1", db.SchemaVersion)
	}
	if idx, err := d.AppliedIndex(); err != nil || idx != 0 {
		t.Fatalf("AppliedIndex of a fresh database = %d, %v; want 0, nil", idx, err)
	}
	if seq, err := d.LastSeq(); err != nil || seq != 0 {
		t.Fatalf("LastSeq of a fresh database = %d, %v; want 0, nil", seq, err)
	}
	if _, err := d.Apply(7, []*db.Write{put("shelter-1", `{"beds_free":3}`)}); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopening must not run a migration again (it would fail on the existing tables) and must
	// keep what was written.
	d = openDB(t, path)
	if got := userVersion(t, path); got != db.SchemaVersion {
		t.Fatalf("user_version after reopen = %d, want %d", got, db.SchemaVersion)
	}
	if idx, err := d.AppliedIndex(); err != nil || idx != 7 {
		t.Fatalf("AppliedIndex after reopen = %d, %v; want 7, nil", idx, err)
	}
	r, err := d.Get(context.Background(), "shelter-1")
	if err != nil {
		t.Fatalf("Get after reopen: %v", err)
	}
	if r.Version != 1 || string(r.Body) != `{"beds_free":3}` {
		t.Fatalf("after reopen: version %d body %s, want 1 {\"beds_free\":3}", r.Version, r.Body)
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "knooppunt.db")
	d, err := db.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	h, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Exec(fmt.Sprintf(`PRAGMA user_version = %d`, db.SchemaVersion+1)); err != nil {
		t.Fatal(err)
	}
	h.Close()

	d, err = db.Open(path)
	if err == nil {
		d.Close()
		t.Fatal("Open of a database from a newer release succeeded, want an error")
	}
	if !strings.Contains(err.Error(), "newer") {
		t.Fatalf("Open error = %q, want it to say the schema is newer", err)
	}
}

func TestApply(t *testing.T) {
	type want struct {
		version int64
		seq     int64
		err     error // ErrNotFound, or a *StaleVersionError to compare by value
	}
	tests := []struct {
		name  string
		setup []*db.Write // applied one per entry before write
		write *db.Write
		want  want
		// the live record afterwards: its version and body, or 0 when Get must say ErrNotFound
		getVersion int64
		getBody    string
		lastSeq    int64
	}{
		{
			name:  "create",
			write: put("a", `{"n":1}`),
			want:  want{version: 1, seq: 1}, getVersion: 1, getBody: `{"n":1}`, lastSeq: 1,
		},
		{
			name:  "update any version",
			setup: []*db.Write{put("a", `{"n":1}`)},
			write: put("a", `{"n":2}`),
			want:  want{version: 2, seq: 2}, getVersion: 2, getBody: `{"n":2}`, lastSeq: 2,
		},
		{
			name:  "update expected version",
			setup: []*db.Write{put("a", `{"n":1}`), put("a", `{"n":2}`)},
			write: withVersion(put("a", `{"n":3}`), 2),
			want:  want{version: 3, seq: 3}, getVersion: 3, getBody: `{"n":3}`, lastSeq: 3,
		},
		{
			name:  "stale version",
			setup: []*db.Write{put("a", `{"n":1}`), put("a", `{"n":2}`)},
			write: withVersion(put("a", `{"n":3}`), 1),
			want:  want{err: &db.StaleVersionError{ID: "a", Expected: 1, Current: 2}}, getVersion: 2, getBody: `{"n":2}`, lastSeq: 2,
		},
		{
			name:  "expected version of a missing record",
			write: withVersion(put("a", `{"n":1}`), 4),
			want:  want{err: &db.StaleVersionError{ID: "a", Expected: 4, Current: 0}}, lastSeq: 0,
		},
		{
			name:  "delete",
			setup: []*db.Write{put("a", `{"n":1}`)},
			write: del("a", 0),
			want:  want{version: 2, seq: 2}, lastSeq: 2,
		},
		{
			name:  "delete expected version",
			setup: []*db.Write{put("a", `{"n":1}`)},
			write: del("a", 1),
			want:  want{version: 2, seq: 2}, lastSeq: 2,
		},
		{
			name:  "delete stale version",
			setup: []*db.Write{put("a", `{"n":1}`), put("a", `{"n":2}`)},
			write: del("a", 1),
			want:  want{err: &db.StaleVersionError{ID: "a", Expected: 1, Current: 2}}, getVersion: 2, getBody: `{"n":2}`, lastSeq: 2,
		},
		{
			name:  "delete missing",
			setup: []*db.Write{put("b", `{}`)},
			write: del("a", 0),
			want:  want{err: db.ErrNotFound}, lastSeq: 1,
		},
		{
			name:  "delete deleted",
			setup: []*db.Write{put("a", `{"n":1}`), del("a", 0)},
			write: del("a", 0),
			want:  want{err: db.ErrNotFound}, lastSeq: 2,
		},
		{
			// A retried delete that went through names the version it was written against.
			name:  "delete deleted with its old version",
			setup: []*db.Write{put("a", `{"n":1}`), del("a", 1)},
			write: del("a", 1),
			want:  want{err: db.ErrNotFound}, lastSeq: 2,
		},
		{
			name:  "delete missing with a version",
			setup: []*db.Write{put("b", `{}`)},
			write: del("a", 1),
			want:  want{err: db.ErrNotFound}, lastSeq: 1,
		},
		{
			name:  "put after delete recreates",
			setup: []*db.Write{put("a", `{"n":1}`), del("a", 0)},
			write: put("a", `{"n":9}`),
			want:  want{version: 3, seq: 3}, getVersion: 3, getBody: `{"n":9}`, lastSeq: 3,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			a := &applier{t: t, d: newDB(t)}
			for _, w := range tt.setup {
				a.mustApply(w)
			}
			res := a.apply(tt.write)[0]
			switch wantErr := tt.want.err.(type) {
			case nil:
				if res.Err != nil || res.Version != tt.want.version || res.Seq != tt.want.seq {
					t.Fatalf("result = {Err: %v, Version: %d, Seq: %d}, want {nil, %d, %d}", res.Err, res.Version, res.Seq, tt.want.version, tt.want.seq)
				}
			case *db.StaleVersionError:
				var got *db.StaleVersionError
				if !errors.As(res.Err, &got) || *got != *wantErr {
					t.Fatalf("result error = %#v, want %#v", res.Err, wantErr)
				}
			default:
				if !errors.Is(res.Err, wantErr) {
					t.Fatalf("result error = %v, want %v", res.Err, wantErr)
				}
			}
			if tt.want.err != nil && (res.Version != 0 || res.Seq != 0) {
				t.Fatalf("refused write reports version %d seq %d, want 0 0", res.Version, res.Seq)
			}

			got, err := a.d.Get(ctx, "a")
			if tt.getVersion == 0 {
				if !errors.Is(err, db.ErrNotFound) {
					t.Fatalf("Get(a) = %v, %v; want ErrNotFound", got, err)
				}
			} else {
				if err != nil {
					t.Fatalf("Get(a): %v", err)
				}
				if got.Version != tt.getVersion || string(got.Body) != tt.getBody || got.Tombstone {
					t.Fatalf("Get(a) = version %d body %s tombstone %v, want version %d body %s", got.Version, got.Body, got.Tombstone, tt.getVersion, tt.getBody)
				}
			}
			if seq, err := a.d.LastSeq(); err != nil || seq != tt.lastSeq {
				t.Fatalf("LastSeq = %d, %v; want %d", seq, err, tt.lastSeq)
			}
		})
	}
}

// A write that is refused takes no seq, and does not stop the others in its entry.
func TestApplyEachWriteOnItsOwn(t *testing.T) {
	a := &applier{t: t, d: newDB(t)}
	res := a.apply(put("a", `{}`), withVersion(put("b", `{}`), 3), del("c", 0), put("d", `{}`), put("a", `{"n":2}`))
	want := []db.Result{
		{Version: 1, Seq: 1},
		{Err: &db.StaleVersionError{ID: "b", Expected: 3, Current: 0}},
		{Err: db.ErrNotFound},
		{Version: 1, Seq: 2},
		{Version: 2, Seq: 3},
	}
	for i := range want {
		g, w := res[i], want[i]
		if g.Version != w.Version || g.Seq != w.Seq || fmt.Sprint(g.Err) != fmt.Sprint(w.Err) {
			t.Errorf("result %d = %+v, want %+v", i, g, w)
		}
	}
	if seq, _ := a.d.LastSeq(); seq != 3 {
		t.Errorf("LastSeq = %d, want 3", seq)
	}
	if idx, _ := a.d.AppliedIndex(); idx != 1 {
		t.Errorf("AppliedIndex = %d, want 1", idx)
	}
}

func TestApplyTombstone(t *testing.T) {
	ctx := context.Background()
	a := &applier{t: t, d: newDB(t)}
	w := put("a", `{"beds_free":4}`)
	w.Labels = map[string]string{"municipality": "utrecht"}
	a.mustApply(w)
	res := a.mustApply(del("a", 1))[0]

	if _, err := a.d.Get(ctx, "a"); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("Get of a deleted record: %v, want ErrNotFound", err)
	}
	changes, err := a.d.Changes(ctx, 0, res.Seq, 10, db.Actual, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 1 {
		t.Fatalf("Changes = %d entries, want only the tombstone: %v", len(changes), changes)
	}
	c := changes[0]
	if c.Seq != res.Seq || c.Record.Id != "a" || !c.Record.Tombstone || c.Record.Version != 2 || string(c.Record.Body) != "{}" {
		t.Fatalf("tombstone change = seq %d %v, want seq %d id a version 2 tombstone with body {}", c.Seq, c.Record, res.Seq)
	}
	// The tombstone keeps what a subscriber needs to route the retraction.
	if c.Record.Kind != "shelter.capacity" || c.Record.Crisis != "oekraine" || c.Record.Origin != "vr-utrecht.crisis.test" {
		t.Fatalf("tombstone lost its kind, crisis or origin: %v", c.Record)
	}
	if !c.Record.UpdatedAt.AsTime().Equal(hour(1).AsTime()) {
		t.Fatalf("tombstone updated_at = %v, want the delete's time %v", c.Record.UpdatedAt.AsTime(), hour(1).AsTime())
	}
	recs, _, err := a.d.List(ctx, db.Filter{Labels: map[string]string{"municipality": "utrecht"}, PageSize: 10})
	if err != nil || len(recs) != 0 {
		t.Fatalf("List by the deleted record's label = %v, %v; want nothing", recs, err)
	}
	// Asked for, the tombstone is listed, with its labels and no body.
	for _, f := range []db.Filter{{Labels: map[string]string{"municipality": "utrecht"}, PageSize: 10, Deleted: true}, {Kind: "shelter.capacity", PageSize: 10, Deleted: true}} {
		recs, _, err = a.d.List(ctx, f)
		if err != nil || len(recs) != 1 || !recs[0].Tombstone || recs[0].Labels["municipality"] != "utrecht" || recs[0].Version != 2 || string(recs[0].Body) != "{}" {
			t.Fatalf("List %+v = %v, %v; want the tombstone of a, version 2, with its label", f, recs, err)
		}
	}
}

func TestApplyReplayGuard(t *testing.T) {
	ctx := context.Background()
	d := newDB(t)
	if _, err := d.Apply(5, []*db.Write{put("a", `{"n":1}`)}); err != nil {
		t.Fatal(err)
	}
	before := checksum(t, d.Path())
	changed := d.Changed()

	for _, idx := range []uint64{5, 4, 1} {
		res, err := d.Apply(idx, []*db.Write{put("a", `{"n":2}`), put("b", `{}`)})
		if err != nil || res != nil {
			t.Fatalf("Apply(%d) over applied index 5 = %v, %v; want nil, nil", idx, res, err)
		}
	}
	if after := checksum(t, d.Path()); after != before {
		t.Fatal("a replayed entry changed the database")
	}
	select {
	case <-changed:
		t.Fatal("a replayed entry closed the Changed channel")
	default:
	}
	if r, err := d.Get(ctx, "a"); err != nil || r.Version != 1 {
		t.Fatalf("Get(a) after replay = %v, %v; want version 1", r, err)
	}
	if idx, _ := d.AppliedIndex(); idx != 5 {
		t.Fatalf("AppliedIndex = %d, want 5", idx)
	}

	res, err := d.Apply(6, []*db.Write{put("a", `{"n":2}`)})
	if err != nil || len(res) != 1 || res[0].Version != 2 || res[0].Seq != 2 {
		t.Fatalf("Apply(6) = %+v, %v; want version 2 seq 2", res, err)
	}
	if idx, _ := d.AppliedIndex(); idx != 6 {
		t.Fatalf("AppliedIndex = %d, want 6", idx)
	}
}

// listFixture writes the records the List tests filter. r06 is deleted and matches every filter
// the others do, so that a tombstone leaking into List shows up everywhere.
func listFixture(t *testing.T) *db.DB {
	t.Helper()
	rec := func(id, kind, crisis, region string, cl pb.Classification, at int, labels map[string]string) *db.Write {
		return &pb.Record{Id: id, Origin: "vr-utrecht.crisis.test", Kind: kind, Crisis: crisis, Region: region,
			Classification: cl, Labels: labels, Body: []byte(`{}`), UpdatedAt: hour(at)}
	}
	utrechtLCVS := map[string]string{"municipality": "utrecht", "source": "lcvs"}
	a := &applier{t: t, d: newDB(t)}
	a.mustApply(
		rec("r01", "shelter.capacity", "oekraine", "VR01", pb.Classification_PUBLIC, 0, utrechtLCVS),
		rec("r02", "shelter.capacity", "oekraine", "VR02", pb.Classification_INTERNAL, 1, map[string]string{"municipality": "utrecht", "source": "coa"}),
		rec("r03", "sitrep", "oekraine", "VR01", pb.Classification_CONFIDENTIAL, 2, map[string]string{"source": "lcvs"}),
		rec("r04", "sitrep", "overstroming", "NL", pb.Classification_SECRET, 3, nil),
		rec("r05", "qa", "oekraine", "VR01", pb.Classification_PUBLIC, 4, utrechtLCVS),
		rec("r06", "shelter.capacity", "oekraine", "VR01", pb.Classification_PUBLIC, 5, utrechtLCVS),
	)
	a.mustApply(&pb.Record{Id: "r06", Tombstone: true, UpdatedAt: hour(6)})
	return a.d
}

func ids(recs []*pb.Record) []string {
	out := []string{}
	for _, r := range recs {
		out = append(out, r.Id)
	}
	return out
}

func TestListFilters(t *testing.T) {
	d := listFixture(t)
	tests := []struct {
		name   string
		filter db.Filter
		want   []string
	}{
		{"no filter", db.Filter{}, []string{"r01", "r02", "r03", "r04", "r05"}},
		{"kind", db.Filter{Kind: "shelter.capacity"}, []string{"r01", "r02"}},
		{"unknown kind", db.Filter{Kind: "guidance"}, []string{}},
		{"crisis", db.Filter{Crisis: "overstroming"}, []string{"r04"}},
		{"region", db.Filter{Region: "VR01"}, []string{"r01", "r03", "r05"}},
		{"one label", db.Filter{Labels: map[string]string{"source": "lcvs"}}, []string{"r01", "r03", "r05"}},
		{"two labels", db.Filter{Labels: map[string]string{"municipality": "utrecht", "source": "lcvs"}}, []string{"r01", "r05"}},
		{"two labels, one value differs", db.Filter{Labels: map[string]string{"municipality": "utrecht", "source": "ind"}}, []string{}},
		{"max classification public", db.Filter{MaxClassification: pb.Classification_PUBLIC}, []string{"r01", "r05"}},
		{"max classification internal", db.Filter{MaxClassification: pb.Classification_INTERNAL}, []string{"r01", "r02", "r05"}},
		{"max classification secret", db.Filter{MaxClassification: pb.Classification_SECRET}, []string{"r01", "r02", "r03", "r04", "r05"}},
		{"updated since is inclusive", db.Filter{UpdatedSince: hour(3).AsTime()}, []string{"r04", "r05"}},
		{"updated since after all", db.Filter{UpdatedSince: hour(4).AsTime().Add(time.Nanosecond)}, []string{}},
		{"all together", db.Filter{Kind: "shelter.capacity", Crisis: "oekraine", Region: "VR01",
			Labels: map[string]string{"source": "lcvs"}, MaxClassification: pb.Classification_PUBLIC, UpdatedSince: hour(0).AsTime()}, []string{"r01"}},
		{"ids", db.Filter{IDs: []string{"r04", "r02", "nope"}}, []string{"r02", "r04"}},
		{"ids and a region", db.Filter{IDs: []string{"r01", "r02"}, Region: "VR01"}, []string{"r01"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.filter
			f.PageSize = 100
			recs, next, err := d.List(context.Background(), f)
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(recs); !slices.Equal(got, tt.want) {
				t.Fatalf("List = %v, want %v", got, tt.want)
			}
			if next != "" {
				t.Fatalf("next page token = %q on the only page, want empty", next)
			}
		})
	}
}

func TestListPagination(t *testing.T) {
	ctx := context.Background()
	a := &applier{t: t, d: newDB(t)}
	var live, liveShelter []string
	for i := range 40 {
		id := fmt.Sprintf("rec-%03d", i)
		w := put(id, `{}`)
		if i%3 == 0 {
			w.Kind = "sitrep"
		}
		a.mustApply(w)
		if i%5 == 4 {
			a.mustApply(del(id, 0))
			continue
		}
		live = append(live, id)
		if i%3 != 0 {
			liveShelter = append(liveShelter, id)
		}
	}
	for _, tt := range []struct {
		kind string
		want []string
	}{{"", live}, {"shelter.capacity", liveShelter}} {
		for _, size := range []int{1, 2, 7, len(tt.want) - 1, len(tt.want), len(tt.want) + 1, 1000} {
			t.Run(fmt.Sprintf("kind=%q/size=%d", tt.kind, size), func(t *testing.T) {
				var got []string
				token, pages := "", 0
				for {
					recs, next, err := a.d.List(ctx, db.Filter{Kind: tt.kind, PageSize: size, PageToken: token})
					if err != nil {
						t.Fatalf("page %d: %v", pages, err)
					}
					pages++
					if len(recs) > size {
						t.Fatalf("page %d has %d records, over the page size %d", pages, len(recs), size)
					}
					if next != "" && len(recs) != size {
						t.Fatalf("page %d has %d records and a next token, want a full page of %d", pages, len(recs), size)
					}
					got = append(got, ids(recs)...)
					if next == "" {
						break
					}
					if pages > len(tt.want)+1 {
						t.Fatalf("pagination does not end: %d pages", pages)
					}
					token = next
				}
				if !slices.Equal(got, tt.want) {
					t.Fatalf("pages cover %v, want every live record once, in id order: %v", got, tt.want)
				}
				if wantPages := max(1, (len(tt.want)+size-1)/size); pages != wantPages {
					t.Fatalf("%d pages, want %d", pages, wantPages)
				}
			})
		}
	}
}

// TestListByUpdatePagination pages through a listing with UpdatedSince, which comes in order of
// update and then id, with records updated out of id order, several in one entry (the same
// updated_at) and some updated twice.
func TestListByUpdatePagination(t *testing.T) {
	ctx := context.Background()
	a := &applier{t: t, d: newDB(t)}
	type row struct {
		id string
		at int
	}
	var rows []row
	for i := range 30 {
		// ids in one entry share a time; later entries hold lower ids.
		id, at := fmt.Sprintf("rec-%03d", 29-i), i/4
		w := put(id, `{}`)
		w.UpdatedAt = hour(at)
		a.mustApply(w)
		rows = append(rows, row{id, at})
	}
	for i := range rows {
		if i%7 == 3 { // updated again, later than every other record
			w := put(rows[i].id, `{"again":true}`)
			w.UpdatedAt = hour(20)
			a.mustApply(w)
			rows[i].at = 20
		}
	}
	var want []string
	slices.SortFunc(rows, func(x, y row) int {
		if x.at != y.at {
			return x.at - y.at
		}
		return strings.Compare(x.id, y.id)
	})
	for _, r := range rows {
		if r.at >= 2 {
			want = append(want, r.id)
		}
	}
	for _, size := range []int{1, 3, 4, len(want), 100} {
		t.Run(fmt.Sprintf("size=%d", size), func(t *testing.T) {
			var got []string
			token := ""
			for pages := 0; ; pages++ {
				recs, next, err := a.d.List(ctx, db.Filter{UpdatedSince: hour(2).AsTime(), PageSize: size, PageToken: token})
				if err != nil {
					t.Fatalf("page %d: %v", pages, err)
				}
				got = append(got, ids(recs)...)
				if next == "" {
					break
				}
				if pages > len(want) {
					t.Fatal("pagination does not end")
				}
				if _, _, err := a.d.List(ctx, db.Filter{PageSize: size, PageToken: next}); !errors.Is(err, db.ErrOtherListing) {
					t.Fatalf("a token of a listing by update, used in a listing by id: %v, want ErrOtherListing", err)
				}
				token = next
			}
			if !slices.Equal(got, want) {
				t.Fatalf("pages cover %v, want every record updated since hour 2 once, by update then id: %v", got, want)
			}
		})
	}
	_, idToken, err := a.d.List(ctx, db.Filter{PageSize: 1})
	if err != nil || idToken == "" {
		t.Fatalf("List by id: token %q, %v", idToken, err)
	}
	if _, _, err := a.d.List(ctx, db.Filter{UpdatedSince: hour(2).AsTime(), PageToken: idToken}); !errors.Is(err, db.ErrOtherListing) {
		t.Fatalf("a token of a listing by id, used in a listing by update: %v, want ErrOtherListing", err)
	}
}

// A page token goes on only with the filters it came with: with others it would skip records
// or end a listing early, without a word. The page size may change.
func TestPageTokenBelongsToItsListing(t *testing.T) {
	d := listFixture(t)
	ctx := context.Background()
	f := db.Filter{PageSize: 1, Kind: "shelter.capacity"}
	_, next, err := d.List(ctx, f)
	if err != nil || next == "" {
		t.Fatalf("first page: token %q, %v", next, err)
	}
	for name, other := range map[string]db.Filter{
		"another kind":           {Kind: "sitrep"},
		"no kind":                {},
		"a region as well":       {Kind: "shelter.capacity", Region: "VR01"},
		"a label":                {Kind: "shelter.capacity", Labels: map[string]string{"a": "1"}},
		"a lower classification": {Kind: "shelter.capacity", MaxClassification: pb.Classification_PUBLIC},
		"deleted ones too":       {Kind: "shelter.capacity", Deleted: true},
		"an exercise":            {Kind: "shelter.capacity", Mode: db.Mode{Status: pb.Status_EXERCISE, Exercise: "x"}},
	} {
		other.PageToken = next
		if _, _, err := d.List(ctx, other); !errors.Is(err, db.ErrOtherListing) {
			t.Errorf("%s: %v, want ErrOtherListing", name, err)
		}
	}
	f.PageToken, f.PageSize = next, 50
	if _, _, err := d.List(ctx, f); err != nil {
		t.Fatalf("the same listing with another page size: %v", err)
	}
}

func TestListZeroPageSize(t *testing.T) {
	d := listFixture(t)
	recs, next, err := d.List(context.Background(), db.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(recs); !slices.Equal(got, []string{"r01", "r02", "r03", "r04", "r05"}) || next != "" {
		t.Fatalf("List with page size 0 = %v, %q; want every live record on one page", got, next)
	}
}

func TestListBadPageToken(t *testing.T) {
	d := listFixture(t)
	for _, token := range []string{"not a token!", "a", "%%%%", "cjAx="} {
		recs, next, err := d.List(context.Background(), db.Filter{PageSize: 10, PageToken: token})
		if !errors.Is(err, db.ErrBadPageToken) {
			t.Errorf("List with page token %q = %v, %q, %v; want ErrBadPageToken", token, ids(recs), next, err)
		}
	}
}

func TestChanges(t *testing.T) {
	ctx := context.Background()
	a := &applier{t: t, d: newDB(t)}
	c := put("c", `{}`)
	c.Kind = "sitrep"
	e := put("e", `{}`)
	e.Crisis = "overstroming"
	a.mustApply(put("a", `{"n":1}`)) // seq 1, superseded by 3
	a.mustApply(put("b", `{"n":1}`)) // seq 2, superseded by 5
	a.mustApply(put("a", `{"n":2}`)) // seq 3
	a.mustApply(c)                   // seq 4
	a.mustApply(del("b", 0))         // seq 5, tombstone
	a.mustApply(put("d", `{}`))      // seq 6
	a.mustApply(e)                   // seq 7

	type change struct {
		seq       int64
		id        string
		version   int64
		tombstone bool
	}
	all := []change{{3, "a", 2, false}, {4, "c", 1, false}, {5, "b", 2, true}, {6, "d", 1, false}, {7, "e", 1, false}}
	tests := []struct {
		name         string
		after, upTo  int64
		limit        int
		kind, crisis string
		want         []change
	}{
		{name: "all", upTo: 7, limit: 100, want: all},
		{name: "after", after: 3, upTo: 7, limit: 100, want: all[1:]},
		{name: "after the superseded change", after: 1, upTo: 7, limit: 100, want: all},
		{name: "up to", upTo: 4, limit: 100, want: all[:2]},
		{name: "up to skips superseded changes", upTo: 2, limit: 100, want: nil},
		{name: "after and up to", after: 4, upTo: 6, limit: 100, want: all[2:4]},
		{name: "limit", upTo: 7, limit: 2, want: all[:2]},
		{name: "kind", upTo: 7, limit: 100, kind: "sitrep", want: []change{all[1]}},
		{name: "crisis", upTo: 7, limit: 100, crisis: "oekraine", want: all[:4]},
		{name: "nothing after the end", after: 7, upTo: 7, limit: 100, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := a.d.Changes(ctx, tt.after, tt.upTo, tt.limit, db.Actual, tt.kind, tt.crisis)
			if err != nil {
				t.Fatal(err)
			}
			var g []change
			for _, c := range got {
				g = append(g, change{c.Seq, c.Record.Id, c.Record.Version, c.Record.Tombstone})
			}
			if !slices.Equal(g, tt.want) {
				t.Fatalf("Changes(%d, %d, %d, %q, %q) = %v, want %v", tt.after, tt.upTo, tt.limit, tt.kind, tt.crisis, g, tt.want)
			}
		})
	}
}

func TestChangedClosesOnCommit(t *testing.T) {
	d := newDB(t)
	ch := d.Changed()
	select {
	case <-ch:
		t.Fatal("Changed is closed before any commit")
	default:
	}
	if _, err := d.Apply(1, []*db.Write{put("a", `{}`)}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("Changed was not closed by a commit")
	}
	next := d.Changed()
	if next == ch {
		t.Fatal("Changed returns the closed channel after a commit, want a new one")
	}
	select {
	case <-next:
		t.Fatal("the channel after a commit is already closed")
	default:
	}
	if _, err := d.Apply(2, []*db.Write{put("b", `{}`)}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-next:
	case <-time.After(5 * time.Second):
		t.Fatal("Changed was not closed by the second commit")
	}
}

// fillForBackup writes records with labels, an update and a tombstone, so that every table has
// rows.
func fillForBackup(t *testing.T, d *db.DB, prefix string, n int) {
	t.Helper()
	a := &applier{t: t, d: d}
	if idx, err := d.AppliedIndex(); err == nil {
		a.index = idx
	}
	for i := range n {
		w := put(fmt.Sprintf("%s-%02d", prefix, i), fmt.Sprintf(`{"beds_free":%d}`, i))
		w.Labels = map[string]string{"municipality": "utrecht", "n": fmt.Sprint(i % 3)}
		w.ValidUntil = hour(48)
		a.mustApply(w)
	}
	a.mustApply(put(prefix+"-00", `{"beds_free":100}`))
	a.mustApply(del(prefix+"-01", 0))
}

func backup(t *testing.T, d *db.DB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "backup.db")
	if err := d.Backup(path); err != nil {
		t.Fatalf("Backup: %v", err)
	}
	return path
}

func TestBackupRestore(t *testing.T) {
	ctx := context.Background()
	src := newDB(t)
	fillForBackup(t, src, "src", 20)
	bk := backup(t, src)
	if err := db.IntegrityCheck(bk); err != nil {
		t.Fatalf("IntegrityCheck of the backup: %v", err)
	}
	want := checksum(t, src.Path())

	dst := newDB(t)
	fillForBackup(t, dst, "dst", 3)
	if checksum(t, dst.Path()) == want {
		t.Fatal("test setup: source and destination already hold the same rows")
	}
	changed := dst.Changed()
	f, err := os.Open(bk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := dst.Restore(f); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if got := checksum(t, dst.Path()); got != want {
		t.Fatal("the restored database differs from the source")
	}
	select {
	case <-changed:
	default:
		t.Fatal("Restore did not close the Changed channel")
	}

	// The restored database is the live one, through both handles.
	if _, err := dst.Get(ctx, "dst-00"); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("Get of a record only the replaced database had: %v, want ErrNotFound", err)
	}
	r, err := dst.Get(ctx, "src-00")
	if err != nil || r.Version != 2 || string(r.Body) != `{"beds_free":100}` {
		t.Fatalf("Get(src-00) after restore = %v, %v; want version 2", r, err)
	}
	srcIdx, _ := src.AppliedIndex()
	dstIdx, _ := dst.AppliedIndex()
	srcSeq, _ := src.LastSeq()
	dstSeq, _ := dst.LastSeq()
	if srcIdx != dstIdx || srcSeq != dstSeq {
		t.Fatalf("restored applied index %d and last seq %d, want %d and %d", dstIdx, dstSeq, srcIdx, srcSeq)
	}
	res, err := dst.Apply(srcIdx+1, []*db.Write{put("src-02", `{}`)})
	if err != nil || res[0].Version != 2 || res[0].Seq != srcSeq+1 {
		t.Fatalf("Apply after restore = %+v, %v; want version 2 seq %d", res, err, srcSeq+1)
	}
	if _, err := os.Stat(dst.Path() + ".restore"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the restore file is left behind: %v", err)
	}
}

func TestBackupRefusesExistingFile(t *testing.T) {
	d := newDB(t)
	fillForBackup(t, d, "a", 2)
	path := filepath.Join(t.TempDir(), "taken.db")
	if err := os.WriteFile(path, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := d.Backup(path); err == nil {
		t.Fatal("Backup over an existing file succeeded, want an error")
	}
	if b, _ := os.ReadFile(path); string(b) != "keep me" {
		t.Fatalf("Backup changed the existing file: %q", b)
	}
}

func TestRestoreRefusesDamagedSnapshot(t *testing.T) {
	ctx := context.Background()
	good := newDB(t)
	fillForBackup(t, good, "good", 200)
	goodBytes, err := os.ReadFile(backup(t, good))
	if err != nil {
		t.Fatal(err)
	}
	garbage := make([]byte, 64<<10)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range garbage {
		garbage[i] = byte(rng.Uint32())
	}
	// A database whose pages past the header are overwritten: integrity_check must catch it.
	corrupt := bytes.Clone(goodBytes)
	for i := 4096; i < len(corrupt); i++ {
		corrupt[i] = byte(rng.Uint32())
	}

	// sqliteFile makes a database file: from the bytes of another one when from is not nil, then
	// changed by the statements in exec.
	sqliteFile := func(from []byte, exec string) []byte {
		path := filepath.Join(t.TempDir(), "other.db")
		if from != nil {
			if err := os.WriteFile(path, from, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		h, err := sql.Open("sqlite3", "file:"+path+"?_journal_mode=DELETE")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.Exec(exec); err != nil {
			t.Fatal(err)
		}
		h.Close()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	newer := sqliteFile(goodBytes, fmt.Sprintf(`PRAGMA user_version = %d`, db.SchemaVersion+1))
	foreign := sqliteFile(nil, `CREATE TABLE x (y); PRAGMA user_version = 1`)
	// Of an older release by its version and with its meta table, but without the tables the
	// next migration changes: it passes the checks, and fails only when migrated.
	unmigratable := sqliteFile(nil, `CREATE TABLE meta (key TEXT PRIMARY KEY, value); INSERT INTO meta VALUES ('applied_index', 1); PRAGMA user_version = 5`)

	tests := []struct {
		name string
		data []byte
	}{
		{"random bytes", garbage},
		{"text", []byte("this is not a database\n")},
		{"corrupt pages", corrupt},
		{"truncated", goodBytes[:len(goodBytes)/2]},
		{"empty", nil},
		{"schema of a newer release", newer},
		{"another application's database", foreign},
		{"a snapshot that does not migrate", unmigratable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDB(t)
			fillForBackup(t, d, "live", 5)
			before := checksum(t, d.Path())
			if err := d.Restore(bytes.NewReader(tt.data)); err == nil {
				t.Fatal("Restore succeeded, want an error")
			}
			if after := checksum(t, d.Path()); after != before {
				t.Fatal("a failed Restore changed the live database")
			}
			if r, err := d.Get(ctx, "live-00"); err != nil || r.Version != 2 {
				t.Fatalf("Get after a failed Restore = %v, %v; want live-00 at version 2", r, err)
			}
			idx, _ := d.AppliedIndex()
			if _, err := d.Apply(idx+1, []*db.Write{put("live-02", `{}`)}); err != nil {
				t.Fatalf("Apply after a failed Restore: %v", err)
			}
			for _, suffix := range []string{"", "-wal", "-shm"} {
				if _, err := os.Stat(d.Path() + ".restore" + suffix); !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("the restore file%s is left behind: %v", suffix, err)
				}
			}
		})
	}
}

// TestRestoreIgnoresAStaleWAL: a restore that a crash cut short while it migrated its staged copy
// leaves that copy's WAL beside it. The next restore must not replay it onto the next snapshot,
// which would pass every check and hold what neither the snapshot nor the group holds.
func TestRestoreIgnoresAStaleWAL(t *testing.T) {
	ctx := context.Background()
	old := newDB(t)
	fillForBackup(t, old, "old", 5)
	dst := newDB(t)
	fillForBackup(t, dst, "dst", 3)
	staging := dst.Path() + ".restore"
	oldCopy, err := os.ReadFile(backup(t, old))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(staging, oldCopy, 0o600); err != nil {
		t.Fatal(err)
	}
	staged, err := db.Open(staging)
	if err != nil {
		t.Fatal(err)
	}
	a := &applier{t: t, d: staged}
	a.index, _ = staged.AppliedIndex()
	a.mustApply(put("stale-wal-only", `{"beds_free":7}`))
	wal, err := os.ReadFile(staging + "-wal") // as the crash left it, before any checkpoint
	if err != nil {
		t.Fatal(err)
	}
	staged.Close()
	os.Remove(staging)
	os.Remove(staging + "-shm")
	if err := os.WriteFile(staging+"-wal", wal, 0o600); err != nil {
		t.Fatal(err)
	}

	src := newDB(t)
	fillForBackup(t, src, "src", 20)
	f, err := os.Open(backup(t, src))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := dst.Restore(f); err != nil {
		t.Fatal(err)
	}
	if _, err := dst.Get(ctx, "stale-wal-only"); !errors.Is(err, db.ErrNotFound) {
		t.Errorf("the restored database holds the stale WAL's record: %v", err)
	}
	if _, err := dst.Get(ctx, "src-00"); err != nil {
		t.Errorf("the restored database lacks the snapshot's record: %v", err)
	}
}

func TestClosed(t *testing.T) {
	d := newDB(t)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := d.Get(context.Background(), "a"); !errors.Is(err, db.ErrClosed) {
		t.Errorf("Get after Close: %v, want ErrClosed", err)
	}
	if _, err := d.Apply(1, []*db.Write{put("a", `{}`)}); !errors.Is(err, db.ErrClosed) {
		t.Errorf("Apply after Close: %v, want ErrClosed", err)
	}
	if err := d.Restore(bytes.NewReader(nil)); err == nil {
		t.Errorf("Restore after Close succeeded")
	}
}

// Get returns what Apply stored, field for field.
func TestGetRoundTrip(t *testing.T) {
	a := &applier{t: t, d: newDB(t)}
	w := &pb.Record{
		Id: "rt-1", Origin: "coa.crisis.test", Kind: "shelter.capacity", Crisis: "oekraine", Region: "VR25",
		Classification: pb.Classification_CONFIDENTIAL, Labels: map[string]string{"a": "1", "b/c": "x y"},
		Body: []byte(`{"beds_free":0,"notes":"é"}`), UpdatedAt: hour(2), ValidUntil: hour(72),
	}
	a.mustApply(w)
	got, err := a.d.Get(context.Background(), "rt-1")
	if err != nil {
		t.Fatal(err)
	}
	want := proto.Clone(w).(*pb.Record)
	want.Version = 1
	if !proto.Equal(got, want) {
		t.Fatalf("Get = %v\nwant %v", got, want)
	}
}

// TestWritesWithActorsAudit: an entry with actors audits each delete and classification change
// under its own writer, also when one entry carries several writers' records (group commit) or
// one actor for all; an entry without actors, as written before them, audits nothing.
func TestWritesWithActorsAudit(t *testing.T) {
	d := newDB(t)
	index := uint64(0)
	apply := func(actors []string, writes ...*db.Write) {
		t.Helper()
		index++
		res, err := d.ApplyWrites([]db.WriteEntry{{Index: index, Writes: writes, Actors: actors}})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res[0] {
			if r.Err != nil {
				t.Fatal(r.Err)
			}
		}
	}
	public := func(w *db.Write) *db.Write { w.Classification = pb.Classification_PUBLIC; return w }
	apply(nil, put("a", `{}`), put("b", `{}`), put("c", `{}`), put("d", `{}`))
	apply(nil, public(put("a", `{}`)), del("b", 0))                      // before actors: nothing
	apply([]string{"anna", "bram"}, public(put("c", `{}`)), del("d", 0)) // two writers in one entry
	apply([]string{"local socket"}, put("c", `{}`), del("c", 0))         // one writer for all
	apply([]string{"anna"}, put("e", `{}`))                              // a new record: nothing
	entries, err := d.AuditList(context.Background(), db.AuditFilter{Action: "record.", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Action+" "+e.Subject+" by "+e.Actor)
	}
	want := []string{"record.classify c by anna", "record.delete d by bram", "record.classify c by local socket", "record.delete c by local socket"}
	if !slices.Equal(got, want) {
		t.Errorf("record entries %v, want %v", got, want)
	}
}

// TestListPageHoldsAtMostMaxBytes (review AJ, LOW-5): a page of large records ends before the
// record that would take it past MaxBytes, with a token for the rest, so that it fits in one
// message; a record larger than that comes alone. Every record is listed once.
func TestListPageHoldsAtMostMaxBytes(t *testing.T) {
	ctx := context.Background()
	a := &applier{t: t, d: newDB(t)}
	var want []string
	for i := range 20 {
		id := fmt.Sprintf("groot-%03d", i)
		body := fmt.Sprintf(`{"text":%q}`, strings.Repeat("x", 1000))
		if i == 7 {
			body = fmt.Sprintf(`{"text":%q}`, strings.Repeat("y", 10000))
		}
		a.mustApply(put(id, body))
		want = append(want, id)
	}
	var got []string
	token, pages, alone := "", 0, false
	for {
		recs, next, err := a.d.List(ctx, db.Filter{PageSize: 1000, PageToken: token, MaxBytes: 4000})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		bodies := 0
		for _, r := range recs {
			bodies += len(r.Body)
		}
		if len(recs) > 1 && bodies > 4000 {
			t.Fatalf("page %d holds %d records of %d bytes of bodies, over MaxBytes 4000", pages, len(recs), bodies)
		}
		alone = alone || len(recs) == 1 && recs[0].Id == "groot-007"
		got = append(got, ids(recs)...)
		if next == "" {
			break
		}
		if pages > len(want) {
			t.Fatalf("pagination does not end: %d pages", pages)
		}
		token = next
	}
	if !slices.Equal(got, want) {
		t.Fatalf("pages cover %v, want every record once: %v", got, want)
	}
	if !alone {
		t.Errorf("the record larger than MaxBytes did not come on a page of its own")
	}
	if pages < 8 {
		t.Errorf("%d pages of 20 records of 1 kB within 4000 bytes, want at least 8", pages)
	}
}

package db

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestMigrationKeepsEveryRecordActual: a database from before modes keeps every record, own and
// cached, as actual, its phases as the actual crisis's and its subscription cursors as the actual
// mode's; exercise reads find nothing.
func TestMigrationKeepsEveryRecordActual(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	h, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	// Every migration before the one of modes, whatever its number.
	before := slices.IndexFunc(migrations, func(m string) bool { return strings.Contains(m, "ALTER TABLE records ADD COLUMN status") })
	if before < 0 {
		t.Fatal("no migration adds the records' status")
	}
	for i, m := range migrations[:before] {
		if _, err := h.Exec(m); err != nil {
			t.Fatalf("migration %d: %v", i+1, err)
		}
	}
	for _, q := range []string{
		fmt.Sprintf(`PRAGMA user_version = %d`, before),
		`INSERT INTO records VALUES ('s1','vr.test','sitrep','c','VR19',1,'{}',CAST('{"title":"t"}' AS BLOB),2,1000,0,0,1)`,
		`INSERT INTO changes VALUES (1,'s1',2)`,
		`INSERT INTO foreign_records VALUES ('p.test','f1','p','sitrep','c','VR19',1,'{}',CAST('{"title":"f"}' AS BLOB),1,2000,0,0,'[]','[]',3000)`,
		`INSERT INTO phases VALUES ('c','warm','spiffe://vr.test/user/o',5,'r')`,
		`INSERT INTO peer_cursors VALUES ('p','p.test',42,7)`,
		`UPDATE meta SET value = 1 WHERE key = 'last_seq'`,
	} {
		if _, err := h.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	h.Close()
	d, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx := context.Background()
	own, _, err := d.List(ctx, Filter{Crisis: "c"})
	if err != nil || len(own) != 1 || !Actual.Holds(own[0]) {
		t.Fatalf("own records after the migration: %v, %v", own, err)
	}
	changes, err := d.Changes(ctx, 0, 1, 10, Actual, "", "")
	if err != nil || len(changes) != 1 {
		t.Fatalf("the actual feed after the migration: %v, %v", changes, err)
	}
	cached, err := d.ForeignList(ctx, ForeignFilter{})
	if err != nil || len(cached) != 1 || !Actual.Holds(cached[0].Record) {
		t.Fatalf("cached records after the migration: %v, %v", cached, err)
	}
	ex := Mode{Status: 1, Exercise: "oef"}
	if recs, _, _ := d.List(ctx, Filter{Mode: ex}); len(recs) != 0 {
		t.Fatalf("an exercise read after the migration found %v", recs)
	}
	if c, _, err := d.PeerCursor(ctx, "p"); err != nil || c != 42 {
		t.Fatalf("the cursor after the migration: %d, %v", c, err)
	}
	phases, err := d.Phases(ctx, "c")
	if err != nil || len(phases) != 1 || phases[0].Exercise != "" || phases[0].Phase != "warm" {
		t.Fatalf("phases after the migration: %+v, %v", phases, err)
	}
}

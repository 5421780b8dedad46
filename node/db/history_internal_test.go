package db

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
)

// TestMigrationStartsHistory checks that migration 10 fills the history from the records a
// database held before it, with their bodies' numbers, so that rules see the past of an
// upgraded node.
func TestMigrationStartsHistory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	h, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range migrations[:8] {
		if _, err := h.Exec(m); err != nil {
			t.Fatalf("migration %d: %v", i+1, err)
		}
	}
	if _, err := h.Exec(`PRAGMA user_version = 8`); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Exec(`INSERT INTO records VALUES ('s1','vr.test','shelter.capacity','c','VR19',1,'{}',CAST('{"beds_free":3,"note":"x"}' AS BLOB),2,1000,0,0,1)`); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Exec(`INSERT INTO foreign_records VALUES ('p.test','f1','p.test','shelter.capacity','c','VR19',1,'{}',CAST('{"beds_free":4.5}' AS BLOB),1,2000,0,0,'[]','[]',3000)`); err != nil {
		t.Fatal(err)
	}
	h.Close()
	d, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	rows, err := d.History(context.Background(), HistoryFilter{})
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(len(rows))
	for _, r := range rows {
		got += fmt.Sprintf(" %s/%s/v%d@%d:%v", r.Origin, r.ID, r.Version, r.At.UnixNano(), r.Fields)
	}
	if want := "2 /s1/v2@1000:map[beds_free:3] p.test/f1/v1@2000:map[beds_free:4.5]"; got != want {
		t.Errorf("history after migration:\n got %s\nwant %s", got, want)
	}
}

package db

import (
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// releasedMigrations pins the SHA-256 (first 16 hex digits) of every released migration. A
// released migration never changes: a database a release brought to its version never runs it
// again, so that an edit reaches only new databases (review V, V1: three ALTERs added to
// migration 20 after release, and upgraded nodes failed at their first write). A schema change
// is a new migration at the end, with its hash added here.
var releasedMigrations = []string{
	"de1b8f03e36b93b9", "53ad1f49279ab65b", "5ac83ac23d765ec9", "fd91814479a67e5c",
	"778d3a7de781bb33", "32d999af8f04c4c3", "25dd8d57b4b10efb", "6844acafc9505ad4",
	"7d04a3c6b9979cfc", "b6a9f8f275e7181d", "0fe5d88e83c831b3", "530185a22aad2b04",
	"ac592f39566802e6", "3c083ff6c7dcfbab", "a506f48436e3c4e1", "22c00b90c3aa1a44",
	"cceb75cfc2a42d7f", "cc8a77e3a86dbe31", "1ac888438713df17", "d018888ef9884fde",
	"d0ca5faab251bf2e", "f7182992c50e371b", "a94bbd584e7165ff", "7d0120dcb8d80802",
	"654666b749ca658d", "e3b0c44298fc1c14", "25ff51ea7fb3c4c7", "3fb032ca966a19e8",
}

func TestReleasedMigrationsNeverChange(t *testing.T) {
	if len(migrations) < len(releasedMigrations) {
		t.Fatalf("%d migrations, %d released: a released migration was removed", len(migrations), len(releasedMigrations))
	}
	for i, m := range migrations {
		sum := sha256.Sum256([]byte(m))
		got := hex.EncodeToString(sum[:8])
		switch {
		case i >= len(releasedMigrations):
			t.Errorf("migration %d is not pinned: add %q to releasedMigrations", i+1, got)
		case releasedMigrations[i] != got:
			t.Errorf("migration %d changed (hash %s, released %s): a released migration never changes; undo the edit, and make the change a new migration at the end", i+1, got, releasedMigrations[i])
		}
	}
}

// TestMigrationAddsColumnsReleasesLacked: a database that a release brought to schema 20 before
// migration 20 gained its last ALTERs (as cae06be did: no webhooks.withdraws) takes writes once
// migrated, its columns as a new database's, and keeps its records (review V, V1).
func TestMigrationAddsColumnsReleasesLacked(t *testing.T) {
	const lacked = "ALTER TABLE webhooks ADD COLUMN withdraws INTEGER NOT NULL DEFAULT 0;\n"
	if !strings.Contains(migrations[19], lacked) {
		t.Fatal("migration 20 does not add webhooks.withdraws: this test no longer reproduces cae06be")
	}
	columnsOf := func(path string) string {
		t.Helper()
		h, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		var all []string
		for _, table := range []string{"webhooks", "disclosures", "records", "history"} {
			rows, err := h.Query(`SELECT name, type, "notnull", ifnull(dflt_value, '-') FROM pragma_table_info(?) ORDER BY name`, table)
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var name, typ, dflt string
				var notNull bool
				if err := rows.Scan(&name, &typ, &notNull, &dflt); err != nil {
					t.Fatal(err)
				}
				all = append(all, fmt.Sprintf("%s.%s %s %t %s", table, name, typ, notNull, dflt))
			}
			rows.Close()
		}
		return strings.Join(all, "\n")
	}

	dir := t.TempDir()
	old := filepath.Join(dir, "old.db")
	h, err := sql.Open("sqlite3", "file:"+old)
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range migrations[:20] {
		if i == 19 {
			m = strings.Replace(m, lacked, "", 1)
		}
		if _, err := h.Exec(m); err != nil {
			t.Fatalf("migration %d: %v", i+1, err)
		}
	}
	if _, err := h.Exec(`INSERT INTO meta (key, value) VALUES ('applied_index', 1) ON CONFLICT (key) DO UPDATE SET value = 1; PRAGMA user_version = 20`); err != nil {
		t.Fatal(err)
	}
	h.Close()

	d, err := Open(old)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.MigratedFrom() != 20 {
		t.Errorf("MigratedFrom = %d, want 20: the node says it migrated", d.MigratedFrom())
	}
	if _, err := d.Apply(2, []*Write{{Id: "shelter-1", Kind: "shelter.capacity", Crisis: "oekraine", Region: "VR09", Body: []byte(`{"beds_free":3}`)}}); err != nil {
		t.Fatalf("the first write after the upgrade: %v", err)
	}
	fresh := filepath.Join(dir, "fresh.db")
	f, err := Open(fresh)
	if err != nil {
		t.Fatal(err)
	}
	if f.MigratedFrom() != 0 {
		t.Errorf("a new database's MigratedFrom = %d, want 0", f.MigratedFrom())
	}
	f.Close()
	if got, want := columnsOf(old), columnsOf(fresh); got != want {
		t.Errorf("the upgraded database's columns:\n%s\nwant a new database's:\n%s", got, want)
	}
}

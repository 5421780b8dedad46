package db_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/node/db"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestFileNamedUnderTheExactKey: a record names a file under the body key attachments exactly,
// once decoded, as the redactor reads keys (review 18 M1, review 20 L3). A file named under an
// escaped spelling of the key is named, and the sweep keeps it, even on a node where no record
// named a file before; one named under "Attachments" is not, and the sweep takes it.
func TestFileNamedUnderTheExactKey(t *testing.T) {
	d := newDB(t)
	f := &fileSteps{t: t, d: d, at: time.Unix(1_800_000_000, 0)}
	escaped, err := f.upload("u1", []byte("%PDF-1.7 named under an escaped key"), 8, "")
	if err != nil {
		t.Fatal(err)
	}
	cased, err := f.upload("u2", []byte("%PDF-1.7 named under Attachments"), 8, "")
	if err != nil {
		t.Fatal(err)
	}
	// note is there so that the plain key is somewhere in the body: a reader that only looked
	// for it and then matched keys in any case would take "Attachments" for the field.
	rec := func(id, key, note, hash string) *pb.Record {
		body := fmt.Sprintf(`{"title":"t",%s"%s":[{"sha256":%q,"size":10,"media_type":"application/pdf","filename":"f.pdf"}]}`, note, key, hash)
		return &pb.Record{Id: id, Kind: "guidance", Crisis: "c", Region: "NL", Classification: pb.Classification_PUBLIC, Body: []byte(body)}
	}
	if _, err := d.Apply(f.next(), []*pb.Record{rec("g1", `attachment\u0073`, "", escaped)}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Apply(f.next(), []*pb.Record{rec("g2", "Attachments", `"note":"attachments",`, cased)}); err != nil {
		t.Fatal(err)
	}
	f.at = f.at.Add(time.Hour)
	if refused := f.step(&pb.FileStep{Action: "sweep", StaleBefore: timestamppb.New(f.at.Add(-time.Minute))}); refused != nil {
		t.Fatalf("sweep refused: %v", refused)
	}
	if _, err := d.FileInfo(context.Background(), escaped); err != nil {
		t.Errorf("the file g1 names under \"attachment\\u0073\", after a sweep: %v", err)
	}
	if _, err := d.FileInfo(context.Background(), cased); !errors.Is(err, db.ErrFileNotFound) {
		t.Errorf("the file g2 names under \"Attachments\", which is no record's file, after a sweep: %v, want it gone", err)
	}
}

// TestMigrationKeepsOwnRecordsFiles: a partner's file that an own record names, as the release
// before migration 23 allowed, becomes this org's own too when the database migrates: its users
// keep reading it, and it stays when the partner retracts (review24 L1).
func TestMigrationKeepsOwnRecordsFiles(t *testing.T) {
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
	// Back to schema 22, holding a file fetched from a peer that an own record names.
	if _, err := h.Exec(undoMigration24 + `DROP TABLE file_sources; ALTER TABLE files ADD COLUMN origin TEXT NOT NULL DEFAULT '';
		INSERT INTO files (sha256, upload_id, size, media_type, origin, stored_at) VALUES ('aa', 'u1', 3, 'application/pdf', 'ncc.crisis.test', 1);
		INSERT INTO file_refs (origin, id, sha256, size, media_type) VALUES ('', 'own-1', 'aa', 3, 'application/pdf'), ('ncc.crisis.test', 'n-1', 'aa', 3, 'application/pdf');
		PRAGMA user_version = 22`); err != nil {
		t.Fatal(err)
	}
	h.Close()
	d, err = db.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	h, err = sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	sources := queryStrings(t, h, `SELECT origin FROM file_sources WHERE sha256 = 'aa' ORDER BY origin`)
	if strings.Join(sources, ",") != ",ncc.crisis.test" {
		t.Fatalf("sources of the file after the migration: %q, want this node's and the peer's", sources)
	}
}

package db_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/knooppunt/knooppunt/node/db"
	"github.com/knooppunt/knooppunt/node/record"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// textIDs runs a full-text query against own records and returns the ids found, best first.
func textIDs(t *testing.T, d *db.DB, query string, f db.TextFilter, limit int) []string {
	t.Helper()
	q, err := record.ParseText("text", query)
	if err != nil {
		t.Fatal(err)
	}
	f.Terms = q.Terms
	if left, err := d.CatchUpText(context.Background(), db.CatchUpBudget); err != nil || left != 0 {
		t.Fatalf("CatchUpText: %d left, %v", left, err)
	}
	var ids []string
	err = d.EachTextMatch(context.Background(), f, func(r *pb.Record) (bool, error) {
		ids = append(ids, r.Id)
		return len(ids) < limit, nil
	})
	if err != nil {
		t.Fatalf("EachTextMatch(%q): %v", query, err)
	}
	return ids
}

// TestTextIndex: the trigram index finds Dutch compounds by their parts and words without their
// diacritics, ranks with bm25, follows updates and deletes, filters like List, and indexes the
// records cached from peers apart from own ones.
func TestTextIndex(t *testing.T) {
	d := newDB(t)
	a := &applier{t: t, d: d}
	qa := func(id, question, answer string) *db.Write {
		w := put(id, `{"question":"`+question+`","answer":"`+answer+`"}`)
		w.Kind = "qa"
		return w
	}
	a.apply(
		qa("q1", "Mag ik werken?", "Ja, zonder tewerkstellingsvergunning."),
		qa("q2", "Wie doet de coördinatie?", "De veiligheidsregio."),
		qa("q3", "Vergunning nodig?", "Een vergunning, vergunning en nog eens vergunning."),
		put("s1", `{"municipality":"Utrecht","beds_total":10,"beds_free":3}`),
		put("s2", `{"place":{"lat":52.08,"street":"Croeselaan"},"name":"Jaarbeurs","tags":["hal",{"nr":"7"}],"note":"groot"}`),
	)
	for _, tc := range []struct {
		query string
		f     db.TextFilter
		want  string
	}{
		{"vergunning", db.TextFilter{}, "q3 q1"}, // q3 says it four times: first by bm25
		{"werkstelling", db.TextFilter{}, "q1"},
		{"coordinatie", db.TextFilter{}, "q2"},
		{"COÖRDINATIE", db.TextFilter{}, "q2"},
		{"utrecht", db.TextFilter{}, "s1"},
		{"utrecht", db.TextFilter{Kinds: []string{"qa"}}, ""},
		{"vergunning", db.TextFilter{Kinds: []string{"qa"}, Crisis: "oekraine", Region: "VR01"}, "q3 q1"},
		{"vergunning", db.TextFilter{Region: "VR02"}, ""},
		{"vergunning", db.TextFilter{}, "q3"}, // the first only
		{`"zonder tewerkstelling"`, db.TextFilter{}, "q1"},
		{"werken vergunning", db.TextFilter{}, "q1"},
		// Values after an object or an array inside the body, at any depth, and never its keys.
		{"croeselaan", db.TextFilter{}, "s2"},
		{"jaarbeurs", db.TextFilter{}, "s2"},
		{"groot", db.TextFilter{}, "s2"},
		{"hal", db.TextFilter{}, "s2"},
		{"name", db.TextFilter{}, ""},
		{"note", db.TextFilter{}, ""},
		{"street", db.TextFilter{}, ""},
	} {
		limit := 100
		if !strings.Contains(tc.want, " ") {
			limit = 1
		}
		if got := strings.Join(textIDs(t, d, tc.query, tc.f, limit), " "); got != tc.want {
			t.Errorf("%q %+v: found %q, want %q", tc.query, tc.f, got, tc.want)
		}
	}

	// An update replaces what the index holds of a record; a delete takes it out.
	a.apply(withVersion(qa("q1", "Mag ik werken?", "Ja, zonder papieren."), 1), del("q3", 1))
	if got := textIDs(t, d, "vergunning", db.TextFilter{}, 100); len(got) != 0 {
		t.Errorf("after the update and the delete, vergunning finds %q", got)
	}
	if got := textIDs(t, d, "papieren", db.TextFilter{}, 100); strings.Join(got, " ") != "q1" {
		t.Errorf("papieren finds %q, want q1 with its new answer", got)
	}

	// Records cached from a peer are found apart from own ones, and leave with their retraction.
	cache := func(index uint64, upserts []*pb.SharedRecord, retract ...string) {
		t.Helper()
		if err := d.ApplyCacheForeign(index, &pb.CacheForeign{Peer: "szw", Origin: "szw.crisis.test", Cursor: int64(index), At: hour(2), Upserts: upserts, Retractions: retract}); err != nil {
			t.Fatal(err)
		}
	}
	cache(a.index+1, []*pb.SharedRecord{{Record: &pb.Record{Id: "g1", Origin: "szw.crisis.test", Kind: "guidance", Crisis: "oekraine", Region: "NL",
		Classification: pb.Classification_PUBLIC, Body: []byte(`{"title":"Werkvergunning","text":"Regels voor werk."}`), Version: 1, UpdatedAt: hour(1)}}})
	if got := textIDs(t, d, "vergunning", db.TextFilter{}, 100); len(got) != 0 {
		t.Errorf("own search found cached records: %q", got)
	}
	q, _ := record.ParseText("text", "vergunning")
	found := func() []db.Foreign {
		t.Helper()
		if _, err := d.CatchUpText(context.Background(), db.CatchUpBudget); err != nil {
			t.Fatal(err)
		}
		var fs []db.Foreign
		err := d.EachForeignTextMatch(context.Background(), "szw.crisis.test", db.TextFilter{Terms: q.Terms}, func(f db.Foreign) (bool, error) {
			fs = append(fs, f)
			return true, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return fs
	}
	if fs := found(); len(fs) != 1 || fs[0].Record.Id != "g1" || fs[0].Peer != "szw" {
		t.Fatalf("cache search found %v, want g1 from szw", fs)
	}
	cache(a.index+2, nil, "g1")
	if fs := found(); len(fs) != 0 {
		t.Errorf("after the retraction the cache search found %v", fs)
	}
}

// TestTextIndexerRunsInTheBackground: the FSM only queues a written record; the indexer takes it
// into the index by itself once the store is quiet, with no search to ask for it, and stops when
// its context ends.
func TestTextIndexerRunsInTheBackground(t *testing.T) {
	d := newDB(t)
	a := &applier{t: t, d: d}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.RunTextIndexer(ctx, func(err error) { t.Errorf("indexer: %v", err) })
	}()
	a.apply(put("s1", `{"municipality":"Tewerkstellingsvergunningstad","beds_total":1,"beds_free":1}`))
	q, _ := record.ParseText("text", "vergunning")
	deadline := time.Now().Add(5 * time.Second)
	for {
		var ids []string
		err := d.EachTextMatch(context.Background(), db.TextFilter{Terms: q.Terms}, func(r *pb.Record) (bool, error) {
			ids = append(ids, r.Id)
			return true, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(ids, " ") == "s1" {
			break
		}
		if time.Now().After(deadline) {
			n, _ := d.TextPending(context.Background())
			t.Fatalf("the indexer did not take s1 in within 5s; %d queued", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n, err := d.TextPending(context.Background()); err != nil || n != 0 {
		t.Errorf("%d records queued after the indexer ran (%v)", n, err)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the indexer did not stop when its context ended")
	}
}

// cachedTextIDs runs a full-text query against the records cached from szw.crisis.test and
// returns the ids found, best first, space-separated.
func cachedTextIDs(t *testing.T, d *db.DB, query string) string {
	t.Helper()
	q, err := record.ParseText("text", query)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.CatchUpText(context.Background(), db.CatchUpBudget); err != nil {
		t.Fatal(err)
	}
	var ids []string
	if err := d.EachForeignTextMatch(context.Background(), "szw.crisis.test", db.TextFilter{Terms: q.Terms}, func(f db.Foreign) (bool, error) {
		ids = append(ids, f.Record.Id)
		return true, nil
	}); err != nil {
		t.Fatalf("EachForeignTextMatch(%q): %v", query, err)
	}
	return strings.Join(ids, " ")
}

// TestTextVocabulary: a part of a word is found through the vocabulary of indexed words: a
// compound by its part, a word by its form without diacritics, a phrase whose first word is
// short; a word cached from a peer is found in that peer's records only; a deleted record is
// found no more though its words stay in the vocabulary; and a part that stands for too many
// words is refused with an error that says what to do.
func TestTextVocabulary(t *testing.T) {
	d := newDB(t)
	a := &applier{t: t, d: d}
	a.apply(
		put("s1", `{"municipality":"De Bilt","location":"Sporthal, De Bilt","notes":"Arbeidsvoorwaarden volgen."}`),
		put("s2", `{"municipality":"Bilthoven","location":"Opvang De Biltse Rading","notes":"Coördinatieteam ter plaatse."}`),
		put("s3", `{"municipality":"Utrecht","location":"Jaarbeurs","notes":"Werkvergunningen worden nagestuurd."}`),
	)
	for _, tc := range []struct{ query, want string }{
		{"vergunning", "s3"},              // a part inside a word
		{"werkvergunningen", "s3"},        // the whole word
		{"werkvergunning", "s3"},          // its start
		{"coordinatie", "s2"},             // without the diacritic
		{"coördinatieteam", "s2"},         // with it
		{`"de bilt"`, "s1 s2"},            // a short first word: any word ending in "de", then "bilt…"
		{`"sporthal, de bilt"`, "s1"},     // a phrase of whole words
		{`"e bilt"`, "s1 s2"},             // the end of a word, then the start of one
		{`"de biltse rading"`, "s2"},      // a whole word in the middle
		{"arbeidsvoorwaarden bilt", "s1"}, // every term must occur
		{"jaarbeurs bilt", ""},
		{"zwembad", ""}, // in no word of the vocabulary
	} {
		got := textIDs(t, d, tc.query, db.TextFilter{}, 100)
		slices.Sort(got)
		if strings.Join(got, " ") != tc.want {
			t.Errorf("%q found %q, want %q", tc.query, got, tc.want)
		}
	}

	// A word only a peer's record holds is in the vocabulary, but finds no own record.
	if err := d.ApplyCacheForeign(a.index+1, &pb.CacheForeign{Peer: "szw", Origin: "szw.crisis.test", Cursor: 1, At: hour(2),
		Upserts: []*pb.SharedRecord{{Record: &pb.Record{Id: "g1", Origin: "szw.crisis.test", Kind: "guidance", Crisis: "oekraine", Region: "NL",
			Classification: pb.Classification_PUBLIC, Body: []byte(`{"title":"Tewerkstellingsvergunningsplicht","text":"Regels."}`), Version: 1, UpdatedAt: hour(1)}}}}); err != nil {
		t.Fatal(err)
	}
	a.index++
	if got := textIDs(t, d, "vergunningsplicht", db.TextFilter{}, 100); len(got) != 0 {
		t.Errorf("own search for a word only a cached record holds found %q", got)
	}
	if got := cachedTextIDs(t, d, "vergunningsplicht"); got != "g1" {
		t.Errorf("cache search for vergunningsplicht found %q, want g1", got)
	}

	// A deleted record is found no more, though the vocabulary keeps its words.
	a.apply(del("s3", 1))
	if got := textIDs(t, d, "vergunning", db.TextFilter{}, 100); len(got) != 0 {
		t.Errorf("after the delete, vergunning found %q", got)
	}

	// A part in more words than the vocabulary may stand for: refused unless another word decides.
	var many []string
	for i := range 4200 {
		many = append(many, fmt.Sprintf("xqz%04d", i))
	}
	a.apply(put("s4", `{"notes":"`+strings.Join(many, " ")+` Middelburg"}`))
	if got := textIDs(t, d, "xqz4100", db.TextFilter{}, 100); strings.Join(got, " ") != "s4" {
		t.Errorf("xqz4100 found %q, want s4", got)
	}
	if got := textIDs(t, d, "xqz middelburg", db.TextFilter{}, 100); strings.Join(got, " ") != "s4" {
		t.Errorf("xqz middelburg found %q, want s4: the other word decides", got)
	}
	q, _ := record.ParseText("text", "xqz")
	err := d.EachTextMatch(context.Background(), db.TextFilter{Terms: q.Terms}, func(*pb.Record) (bool, error) { return true, nil })
	var fe *record.FieldError
	if !errors.As(err, &fe) || fe.Field != "filter.text" || fe.Code != codes.InvalidArgument || !strings.Contains(fe.Reason, "search for a longer word") {
		t.Errorf("xqz, part of 4200 words: %v; want an InvalidArgument on filter.text that asks for a longer word", err)
	}
}

// TestTextShards: the index keeps its rows in shards and a search reads them newest first, each
// ranked on its own, across windows; an update keeps a record in its shard.
func TestTextShards(t *testing.T) {
	defer db.SetTextShardBits(db.SetTextShardBits(2)) // four rows a shard
	d := newDB(t)
	a := &applier{t: t, d: d}
	for i := range 11 {
		a.apply(put(fmt.Sprintf("s%02d", i), `{"notes":"Opvang in de sporthal."}`))
		// Take each in at once, so that rows follow the order of the writes.
		if _, err := d.CatchUpText(context.Background(), db.CatchUpBudget); err != nil {
			t.Fatal(err)
		}
	}
	a.apply(withVersion(put("s01", `{"notes":"Opvang, opvang en nog eens opvang in de sporthal."}`), 1))
	got := textIDs(t, d, "opvang", db.TextFilter{}, 100)
	// Shards of rows 8–11 (s07–s10), 4–7 (s03–s06), 1–3 (s00–s02), newest first; s01 says it
	// three times and leads its shard by bm25.
	set := func(ids []string) string { ids = slices.Clone(ids); slices.Sort(ids); return strings.Join(ids, " ") }
	if len(got) != 11 || set(got[:4]) != "s07 s08 s09 s10" || set(got[4:8]) != "s03 s04 s05 s06" || got[8] != "s01" || set(got[9:]) != "s00 s02" {
		t.Errorf("opvang over shards of four found %q; want s07–s10, s03–s06, then s01 before s00 and s02", got)
	}
	if len(got) == 0 {
		t.Errorf("opvang found %q: s01, saying it three times, should lead the oldest shard", got)
	}
}

// undoMigration20 takes a database back from schema 23 to 19.
const undoMigration20 = undoMigration24 + `DROP TABLE file_sources; ALTER TABLE files ADD COLUMN origin TEXT NOT NULL DEFAULT ''; ALTER TABLE history DROP COLUMN status; ALTER TABLE history DROP COLUMN exercise; DROP TABLE picture_removals; ALTER TABLE disclosures DROP COLUMN redaction; ALTER TABLE webhooks DROP COLUMN regions; ALTER TABLE webhooks DROP COLUMN max_classification; ALTER TABLE webhooks DROP COLUMN withdraws;`

// undoMigration24 takes a database back to schema 23: the stated purposes (migration 28), the history's classification and labels
// (migration 27), the words of own records' mark (migration 25) and the webhooks' old secrets go.
const undoMigration24 = `DROP TABLE stated_purposes; ALTER TABLE history DROP COLUMN classification; ALTER TABLE history DROP COLUMN labels; DROP TABLE text_own_words; ALTER TABLE webhooks DROP COLUMN old_secret; ALTER TABLE webhooks DROP COLUMN old_secret_until; `

// TestTextMigrationIndexesAgain: a database of the trigram index (schema 16), its queue empty,
// gets the word index on open, with every live record, own and cached, queued and found.
func TestTextMigrationIndexesAgain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "knooppunt.db")
	d := openDB(t, path)
	a := &applier{t: t, d: d}
	a.apply(put("s1", `{"notes":"Tewerkstellingsvergunning aangevraagd."}`), put("s2", `{"notes":"Weg."}`))
	a.apply(del("s2", 1))
	if err := d.ApplyCacheForeign(a.index+1, &pb.CacheForeign{Peer: "szw", Origin: "szw.crisis.test", Cursor: 1, At: hour(2),
		Upserts: []*pb.SharedRecord{{Record: &pb.Record{Id: "g1", Origin: "szw.crisis.test", Kind: "guidance", Crisis: "oekraine", Region: "NL",
			Classification: pb.Classification_PUBLIC, Body: []byte(`{"title":"Werkvergunning","text":"Regels."}`), Version: 1, UpdatedAt: hour(1)}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.CatchUpText(context.Background(), db.CatchUpBudget); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	// Back to schema 16: as before 20, the trigram index with its keys, no vocabulary, no shards, the queue keyed by
	// record and empty.
	h, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	shards := queryStrings(t, h, `SELECT name FROM sqlite_master WHERE type = 'table' AND name GLOB 'text_shard_[0-9]'`)
	if len(shards) == 0 {
		t.Fatal("no shard of the word index after indexing")
	}
	for _, n := range shards {
		if _, err := h.Exec(`DROP TABLE ` + n); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.Exec(`DROP TABLE text_vocab; DROP TABLE text_words; DROP TABLE text_sweep;
		CREATE VIRTUAL TABLE text_index USING fts5(text, tokenize = 'trigram remove_diacritics 1', content = '', contentless_delete = 1);
		DROP TABLE text_queue;
		CREATE TABLE text_pending (origin TEXT NOT NULL, id TEXT NOT NULL, PRIMARY KEY (origin, id)) WITHOUT ROWID;
		` + undoMigration20 + `
		PRAGMA user_version = 16`); err != nil {
		t.Fatal(err)
	}
	h.Close()

	d = openDB(t, path)
	if n, err := d.TextPending(context.Background()); err != nil || n != 2 {
		t.Fatalf("after the migration %d records are queued (%v), want 2: s1 and g1", n, err)
	}
	if got := textIDs(t, d, "vergunning", db.TextFilter{}, 100); strings.Join(got, " ") != "s1" {
		t.Errorf("after the migration vergunning finds %q, want s1", got)
	}
	if got := cachedTextIDs(t, d, "vergunning"); got != "g1" {
		t.Errorf("after the migration the cache search finds %q, want g1", got)
	}
}

// TestTextQueueAppends: every write of a record is queued, the indexer takes a record queued
// more than once in a batch once, as it is now, and leaves the writes after the batch queued.
func TestTextQueueAppends(t *testing.T) {
	d := newDB(t)
	a := &applier{t: t, d: d}
	a.mustApply(put("r1", `{"notes":"eerste"}`))
	a.mustApply(withVersion(put("r1", `{"notes":"tweede"}`), 1), put("r2", `{"notes":"ander"}`))
	a.mustApply(withVersion(put("r1", `{"notes":"derde"}`), 2))
	a.mustApply(put("r3", `{"notes":"later"}`))
	if n, err := d.TextPending(context.Background()); err != nil || n != 5 {
		t.Fatalf("TextPending = %d (%v), want 5: r1 three times, r2, r3", n, err)
	}
	if n, err := d.IndexText(4); err != nil || n != 4 {
		t.Fatalf("IndexText(4) = %d (%v), want 4 writes taken", n, err)
	}
	if n, err := d.TextPending(context.Background()); err != nil || n != 1 {
		t.Fatalf("after the batch TextPending = %d (%v), want 1: r3", n, err)
	}
	for _, tc := range []struct{ query, want string }{{"derde", "r1"}, {"tweede", ""}, {"eerste", ""}, {"ander", "r2"}, {"later", "r3"}} {
		if got := strings.Join(textIDs(t, d, tc.query, db.TextFilter{}, 100), " "); got != tc.want {
			t.Errorf("%q finds %q, want %q", tc.query, got, tc.want)
		}
	}
}

// TestTextMigrationNestedBodies: migration 19 moves what text_pending held into the
// append-only text_queue, first, and queues every other live own record and cached one to be
// indexed again; a body with an object inside is then found by the value after it.
func TestTextMigrationNestedBodies(t *testing.T) {
	path := filepath.Join(t.TempDir(), "knooppunt.db")
	d := openDB(t, path)
	a := &applier{t: t, d: d}
	a.apply(put("flat", `{"name":"Jaarbeurs","tags":["hal"]}`), put("nested", `{"place":{"lat":52},"name":"Jaarbeurs"}`), put("gone", `{"place":{"lat":52}}`))
	a.apply(del("gone", 1))
	if err := d.ApplyCacheForeign(a.index+1, &pb.CacheForeign{Peer: "szw", Origin: "szw.crisis.test", Cursor: 1, At: hour(2),
		Upserts: []*pb.SharedRecord{
			{Record: &pb.Record{Id: "g-flat", Origin: "szw.crisis.test", Kind: "guidance", Crisis: "oekraine", Region: "NL",
				Classification: pb.Classification_PUBLIC, Body: []byte(`{"title":"Werk"}`), Version: 1, UpdatedAt: hour(1)}},
			{Record: &pb.Record{Id: "g-nested", Origin: "szw.crisis.test", Kind: "guidance", Crisis: "oekraine", Region: "NL",
				Classification: pb.Classification_PUBLIC, Body: []byte(`{"links":[{"url":"x"}],"title":"Werk"}`), Version: 1, UpdatedAt: hour(1)}},
		}}); err != nil {
		t.Fatal(err)
	}
	if left, err := d.CatchUpText(context.Background(), db.CatchUpBudget); err != nil || left != 0 {
		t.Fatalf("CatchUpText: %d left, %v", left, err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	h, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	// Back to schema 18: as before 20, the queue keyed by record, holding the deleted record to take out.
	if _, err := h.Exec(`DROP TABLE text_queue;
		CREATE TABLE text_pending (origin TEXT NOT NULL, id TEXT NOT NULL, PRIMARY KEY (origin, id)) WITHOUT ROWID;
		INSERT INTO text_pending (origin, id) VALUES ('', 'gone'), ('', 'nested');
		` + undoMigration20 + `
		PRAGMA user_version = 18`); err != nil {
		t.Fatal(err)
	}
	h.Close()

	d = openDB(t, path)
	h, err = sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	queued := queryStrings(t, h, `SELECT origin || '/' || id FROM text_queue ORDER BY seq`)
	if got, want := strings.Join(queued, " "), "/gone /nested /flat szw.crisis.test/g-flat szw.crisis.test/g-nested"; got != want {
		t.Errorf("after migration 19 the queue holds %q, want %q", got, want)
	}
	if got := textIDs(t, d, "jaarbeurs", db.TextFilter{}, 100); strings.Join(got, " ") != "nested flat" && strings.Join(got, " ") != "flat nested" {
		t.Errorf("after the migration jaarbeurs finds %q, want flat and nested", got)
	}
}

// TestTextSweepForgetsWords: once a record is deleted or its text replaced, the sweep takes the
// words no record holds any more out of the vocabulary and its trigram index, and keeps the
// words that other records still hold.
func TestTextSweepForgetsWords(t *testing.T) {
	d := newDB(t)
	a := &applier{t: t, d: d}
	sweep := func() {
		t.Helper()
		for range 100 {
			if done, err := d.SweepText(context.Background()); err != nil {
				t.Fatal(err)
			} else if done {
				return
			}
		}
		t.Fatal("the sweep did not end within 100 steps")
	}
	has := func(word string) bool {
		t.Helper()
		inTable, inTrigrams, err := db.TextVocabularyHas(d, word)
		if err != nil {
			t.Fatal(err)
		}
		if inTable != inTrigrams {
			t.Fatalf("%q: in the vocabulary %v, in its trigram index %v", word, inTable, inTrigrams)
		}
		return inTable
	}
	a.apply(put("s1", `{"notes":"Jansenhof opvang"}`), put("s2", `{"notes":"Pietersplein opvang"}`), put("s3", `{"notes":"opvang"}`))
	textIDs(t, d, "opvang", db.TextFilter{}, 100)
	sweep()
	if !has("jansenhof") || !has("pietersplein") || !has("opvang") {
		t.Fatal("the vocabulary lacks an indexed word")
	}
	a.apply(del("s1", 1), withVersion(put("s2", `{"notes":"Gemeentehuis opvang"}`), 1))
	textIDs(t, d, "opvang", db.TextFilter{}, 100)
	if !has("jansenhof") {
		t.Fatal("the word left before the sweep: the test does not test the sweep")
	}
	sweep()
	for word, want := range map[string]bool{"jansenhof": false, "pietersplein": false, "opvang": true, "gemeentehuis": true} {
		if got := has(word); got != want {
			t.Errorf("after the sweep the vocabulary holds %q: %v, want %v", word, got, want)
		}
	}
	if got := textIDs(t, d, "jansen", db.TextFilter{}, 100); len(got) != 0 {
		t.Errorf("jansen finds %q after the delete", got)
	}
}

// TestTextOwnWords: the vocabulary marks the words own records hold, and a search of own
// records expands a part of a word to those alone: a peer's words, however many, neither widen
// it nor make it too broad (review fed-adversary 1). Once no own record holds a word that a
// peer's still does, the sweep takes its mark off and leaves the word.
func TestTextOwnWords(t *testing.T) {
	d := newDB(t)
	a := &applier{t: t, d: d}
	var many []string
	for i := range 4200 {
		many = append(many, fmt.Sprintf("jansenq%04d", i))
	}
	a.apply(put("s1", `{"notes":"Jansenhof opvang"}`))
	if err := d.ApplyCacheForeign(a.index+1, &pb.CacheForeign{Peer: "szw", Origin: "szw.crisis.test", Cursor: 1, At: hour(2),
		Upserts: []*pb.SharedRecord{{Record: &pb.Record{Id: "g1", Origin: "szw.crisis.test", Kind: "guidance", Crisis: "oekraine", Region: "NL",
			Classification: pb.Classification_PUBLIC, Body: []byte(`{"title":"Jansenhof","text":"` + strings.Join(many, " ") + `"}`), Version: 1, UpdatedAt: hour(1)}}}}); err != nil {
		t.Fatal(err)
	}
	a.index++
	if got := textIDs(t, d, "jansen", db.TextFilter{}, 100); strings.Join(got, " ") != "s1" {
		t.Errorf("own search for jansen, part of one own word and 4,201 of a peer's: %q, want s1", got)
	}
	own := func(word string) bool {
		t.Helper()
		ok, err := db.TextOwnWord(d, word)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if !own("jansenhof") || own("jansenq0001") {
		t.Fatalf("marks: jansenhof %v, want own; jansenq0001 %v, want not", own("jansenhof"), own("jansenq0001"))
	}
	a.apply(del("s1", 1))
	textIDs(t, d, "opvang", db.TextFilter{}, 100)
	for range 100 {
		if done, err := d.SweepText(context.Background()); err != nil {
			t.Fatal(err)
		} else if done {
			break
		}
	}
	if inTable, _, _ := db.TextVocabularyHas(d, "jansenhof"); !inTable || own("jansenhof") {
		t.Errorf("after the own record's delete and a sweep: jansenhof in the vocabulary %v (want true, the peer's record holds it), marked own %v (want false)", inTable, own("jansenhof"))
	}
	if own("opvang") {
		t.Error("opvang, which no record holds now, is still marked own")
	}
	if got := cachedTextIDs(t, d, "jansenhof"); got != "g1" {
		t.Errorf("cache search for jansenhof found %q, want g1", got)
	}
}

// TestTextQueryBounds: the parts of a query's words stand for at most 4,096 words of the
// vocabulary together, a part past that left to the query's other words; and a search whose
// statements on the index take more than the node's budget stops with ErrTextBudget after the
// first window's records (review S, S1: one query of 16 parts of 4,000 words each cost minutes
// of CPU and gigabytes).
func TestTextQueryBounds(t *testing.T) {
	d := newDB(t)
	a := &applier{t: t, d: d}
	words := func(prefix string, n int) string {
		var out []string
		for i := range n {
			out = append(out, fmt.Sprintf("%s%04d", prefix, i))
		}
		return strings.Join(out, " ")
	}
	a.apply(put("a", `{"notes":"`+words("qka", 3000)+`"}`), put("b", `{"notes":"`+words("qkb", 3000)+`"}`), put("c", `{"notes":"qka0001 alleen"}`))
	if got := textIDs(t, d, "qka alleen", db.TextFilter{}, 100); strings.Join(got, " ") != "c" {
		t.Errorf("qka alleen found %q, want c", got)
	}
	// qkb's 3,000 words do not fit beside qka's: the query asks for qka's alone, whose records
	// are the candidates (the caller's own check of the text decides).
	got := textIDs(t, d, "qka qkb", db.TextFilter{}, 100)
	slices.Sort(got)
	if strings.Join(got, " ") != "a c" {
		t.Errorf("qka qkb found %q, want the records of qka's words, a c: qkb's words past the query's 4,096", got)
	}
	// The narrowest parts first, whatever their order: qkc's 2,000 words go in before qka's
	// 3,000, which do not fit beside them (review U, U1).
	a.apply(put("e", `{"notes":"`+words("qkc", 2000)+`"}`), put("f", `{"notes":"qka0002 qkc0002"}`))
	got = textIDs(t, d, "qka qkc", db.TextFilter{}, 100)
	slices.Sort(got)
	if strings.Join(got, " ") != "e f" {
		t.Errorf("qka qkc found %q, want the records of qkc's words, e f: the narrower part first", got)
	}
	// With any of the words, a part left out leaves its records out: the search says so.
	var anyOf []string
	err := d.EachTextMatch(context.Background(), db.TextFilter{Terms: []string{"qka", "qkb"}, Any: true}, func(r *pb.Record) (bool, error) {
		anyOf = append(anyOf, r.Id)
		return true, nil
	})
	slices.Sort(anyOf)
	if !errors.Is(err, db.ErrTextWordsLeftOut) || !db.TextCut(err) || strings.Join(anyOf, " ") != "a c f" {
		t.Errorf("any of qka qkb: %q, %v; want a c f and ErrTextWordsLeftOut", anyOf, err)
	}

	var batch []*db.Write
	for i := range 600 {
		batch = append(batch, put(fmt.Sprintf("r%03d", i), `{"notes":"opvang in Zeist"}`))
	}
	a.apply(batch...)
	if got := textIDs(t, d, "zeist", db.TextFilter{}, 1000); len(got) != 600 {
		t.Fatalf("zeist found %d records, want 600", len(got))
	}
	d.SetTextBudget(time.Nanosecond)
	var seen int
	err = d.EachTextMatch(context.Background(), db.TextFilter{Terms: []string{"zeist"}}, func(*pb.Record) (bool, error) {
		seen++
		return true, nil
	})
	if !errors.Is(err, db.ErrTextBudget) || seen != 256 {
		t.Errorf("past its budget: %d records seen, %v; want the first window's 256, then ErrTextBudget", seen, err)
	}
}

// TestTextChunksSeeEveryMatchOnce: a search reads a shard's matches in chunks that grow from one
// window (256, 1,024, 4,096, …): across the chunks' and windows' edges every match comes once,
// ranked within its window, or newest first with Newest (review U, U12).
func TestTextChunksSeeEveryMatchOnce(t *testing.T) {
	d := newDB(t)
	a := &applier{t: t, d: d}
	const n = 1400 // past the first chunk (256) and the second (256 + 1,024)
	var batch []*db.Write
	for i := range n {
		batch = append(batch, put(fmt.Sprintf("r%04d", i), `{"notes":"opvang in Zeist"}`))
	}
	a.apply(batch...)
	if left, err := d.CatchUpText(context.Background(), db.CatchUpBudget); err != nil || left != 0 {
		t.Fatalf("CatchUpText: %d left, %v", left, err)
	}
	for _, newest := range []bool{false, true} {
		var ids []string
		err := d.EachTextMatch(context.Background(), db.TextFilter{Terms: []string{"zeist"}, Newest: newest}, func(r *pb.Record) (bool, error) {
			ids = append(ids, r.Id)
			return true, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, id := range ids {
			seen[id] = true
		}
		if len(ids) != n || len(seen) != n {
			t.Errorf("newest %v: %d matches, %d of them different; want each of %d once", newest, len(ids), len(seen), n)
		}
		if newest && !slices.IsSortedFunc(ids, func(a, b string) int { return strings.Compare(b, a) }) {
			t.Errorf("newest first: the matches are not in the order they were written, newest first: %v…", ids[:min(10, len(ids))])
		}
	}
}

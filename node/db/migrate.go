package db

import (
	"database/sql"
	"errors"
	"fmt"
)

// migrations are numbered by their position: migrations[0] brings user_version 0 to 1. A released
// migration never changes; a schema change is a new entry at the end.
var migrations = []string{
	// 1: records, labels, the change feed and the Raft applied index.
	`
CREATE TABLE records (
	id             TEXT    NOT NULL PRIMARY KEY,
	origin         TEXT    NOT NULL,
	kind           TEXT    NOT NULL,
	crisis         TEXT    NOT NULL,
	region         TEXT    NOT NULL,
	classification INTEGER NOT NULL,
	labels         TEXT    NOT NULL,  -- JSON object of strings
	body           BLOB    NOT NULL,  -- JSON object
	version        INTEGER NOT NULL,
	updated_at     INTEGER NOT NULL,  -- Unix nanoseconds
	valid_until    INTEGER NOT NULL,  -- Unix nanoseconds, 0 when unset
	tombstone      INTEGER NOT NULL,
	seq            INTEGER NOT NULL   -- change-feed seq of the latest change
) WITHOUT ROWID;
-- One index per List filter, each ending in id so that a page is a range scan in id order.
CREATE INDEX records_kind    ON records (kind, id);
CREATE INDEX records_crisis  ON records (crisis, kind, region, id);
CREATE INDEX records_region  ON records (region, id);
CREATE INDEX records_updated ON records (updated_at);

CREATE TABLE record_labels (
	key   TEXT NOT NULL,
	value TEXT NOT NULL,
	id    TEXT NOT NULL,
	PRIMARY KEY (key, value, id)
) WITHOUT ROWID;
CREATE INDEX record_labels_id ON record_labels (id);

-- The change feed. A row names the record version a change produced; a change that a later one
-- superseded is skipped when the feed is read, so a reader sees every record's latest state in
-- commit order.
CREATE TABLE changes (
	seq     INTEGER NOT NULL PRIMARY KEY,
	id      TEXT    NOT NULL,
	version INTEGER NOT NULL
);

CREATE TABLE meta (
	key   TEXT    NOT NULL PRIMARY KEY,
	value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO meta (key, value) VALUES ('applied_index', 0), ('last_seq', 0);
`,
	// 2: sharing policies, crisis phases and the hash-chained audit log.
	`
CREATE TABLE policies (
	id          TEXT    NOT NULL PRIMARY KEY,  -- NAME@VERSION
	name        TEXT    NOT NULL,
	version     INTEGER NOT NULL,
	source      BLOB    NOT NULL,              -- the YAML as proposed; never changes
	author      TEXT    NOT NULL,
	proposed_at INTEGER NOT NULL,
	state       TEXT    NOT NULL,
	approvers   TEXT    NOT NULL,              -- JSON array of SPIFFE IDs
	decided_at  INTEGER NOT NULL,
	decided_by  TEXT    NOT NULL,
	reason      TEXT    NOT NULL,
	required    INTEGER NOT NULL,
	UNIQUE (name, version)
);

CREATE TABLE phases (
	crisis TEXT    NOT NULL PRIMARY KEY,
	phase  TEXT    NOT NULL,
	set_by TEXT    NOT NULL,
	set_at INTEGER NOT NULL,
	reason TEXT    NOT NULL
) WITHOUT ROWID;

-- Append-only. Each entry's hash is SHA-256 over the previous entry's hash and the entry's
-- canonical encoding, so editing, deleting or reordering entries breaks the chain.
CREATE TABLE audit (
	seq       INTEGER NOT NULL PRIMARY KEY,
	at        INTEGER NOT NULL,
	actor     TEXT    NOT NULL,
	action    TEXT    NOT NULL,
	subject   TEXT    NOT NULL,
	detail    TEXT    NOT NULL,
	prev_hash BLOB    NOT NULL,
	hash      BLOB    NOT NULL
);
CREATE INDEX audit_action ON audit (action, seq);
`,
	// 3: federation: what was disclosed to whom, the cache of peers' records, and the cursor of
	// each subscription.
	`
CREATE TABLE disclosures (
	recipient TEXT    NOT NULL,  -- trust domain; a holder since migration 5
	record_id TEXT    NOT NULL,
	version   INTEGER NOT NULL,
	policies  TEXT    NOT NULL,  -- JSON array
	at        INTEGER NOT NULL,
	PRIMARY KEY (recipient, record_id)
) WITHOUT ROWID;
CREATE INDEX disclosures_record ON disclosures (record_id);

-- Read-only copies of records received from peers. Only a peer's subscription writes them.
CREATE TABLE foreign_records (
	origin         TEXT    NOT NULL,
	id             TEXT    NOT NULL,
	peer           TEXT    NOT NULL,
	kind           TEXT    NOT NULL,
	crisis         TEXT    NOT NULL,
	region         TEXT    NOT NULL,
	classification INTEGER NOT NULL,
	labels         TEXT    NOT NULL,
	body           BLOB    NOT NULL,
	version        INTEGER NOT NULL,
	updated_at     INTEGER NOT NULL,
	valid_until    INTEGER NOT NULL,
	tombstone      INTEGER NOT NULL,
	policies       TEXT    NOT NULL,
	redacted       TEXT    NOT NULL,
	received_at    INTEGER NOT NULL,
	PRIMARY KEY (origin, id)
) WITHOUT ROWID;
CREATE INDEX foreign_records_crisis ON foreign_records (crisis, kind, region);
CREATE INDEX foreign_records_kind ON foreign_records (kind);

CREATE TABLE peer_cursors (
	peer       TEXT    NOT NULL PRIMARY KEY,
	origin     TEXT    NOT NULL,
	cursor     INTEGER NOT NULL,
	updated_at INTEGER NOT NULL
) WITHOUT ROWID;
`,
	// 4: List indexes that serve a crisis alone, and that carry the columns of the other filters,
	// so that rows an index finds are filtered in the index and only a page's rows are read.
	`
DROP INDEX records_kind;
DROP INDEX records_crisis;
DROP INDEX records_region;
CREATE INDEX records_kind      ON records (kind, id, tombstone, classification, updated_at);
CREATE INDEX records_crisis    ON records (crisis, kind, region, id, tombstone, classification, updated_at);
CREATE INDEX records_crisis_id ON records (crisis, id, tombstone, classification, updated_at);
CREATE INDEX records_region    ON records (region, id, tombstone, classification, updated_at);
`,
	// 5: disclosures are kept per holder, not per trust domain (see policy.Recipient.Holder). A
	// row kept by trust domain was, in all but rare cases, sent to that org's node: it becomes the
	// node's, so that a retraction still reaches the cache that holds it.
	`
UPDATE disclosures SET recipient = 'spiffe://' || recipient || '/node/*' WHERE recipient NOT LIKE 'spiffe://%';
`,
	// 6: the full-text index of own and cached records (see text.go), and the queue of records
	// it has still to take in: every record stored so far.
	`
CREATE TABLE text_keys (
	rowid  INTEGER PRIMARY KEY,
	origin TEXT NOT NULL,  -- '' for own records, else the peer's trust domain
	id     TEXT NOT NULL,
	UNIQUE (origin, id)
);
CREATE VIRTUAL TABLE text_index USING fts5(text, tokenize = 'trigram remove_diacritics 1', content = '', contentless_delete = 1);
CREATE TABLE text_pending (
	origin TEXT NOT NULL,
	id     TEXT NOT NULL,
	PRIMARY KEY (origin, id)
) WITHOUT ROWID;
INSERT INTO text_pending (origin, id) SELECT '', id FROM records WHERE tombstone = 0;
INSERT INTO text_pending (origin, id) SELECT origin, id FROM foreign_records;
`,
	// 7: peers added with `knooppunt peer accept`, so that every replica has them without a
	// config file. Peers of the config file are not here.
	`
CREATE TABLE peers (
	trust_domain    TEXT    NOT NULL PRIMARY KEY,
	name            TEXT    NOT NULL UNIQUE,
	org_name        TEXT    NOT NULL,
	addresses       TEXT    NOT NULL,  -- JSON array of host:port
	bundle          BLOB    NOT NULL,  -- PEM, as the invitation brought it
	bundle_endpoint TEXT    NOT NULL,
	endpoint_id     TEXT    NOT NULL,
	groups          TEXT    NOT NULL,  -- JSON array
	fingerprint     TEXT    NOT NULL,
	invitation      TEXT    NOT NULL,  -- the id of the invitation it was added with
	added_by        TEXT    NOT NULL,
	added_at        INTEGER NOT NULL   -- Unix nanoseconds
) WITHOUT ROWID;
`,
	// 8: the signed audit heads peers handed this node to witness, append-only (see
	// ApplyKeepHead). fork marks a head kept as evidence of a fork.
	`
CREATE TABLE witnessed_heads (
	peer        TEXT    NOT NULL,  -- the signer's trust domain
	seq         INTEGER NOT NULL,
	hash        BLOB    NOT NULL,
	at          INTEGER NOT NULL,  -- the head's time, Unix nanoseconds
	signer      TEXT    NOT NULL,  -- the SPIFFE ID of the signing replica
	signature   BLOB    NOT NULL,
	chain       BLOB    NOT NULL,  -- the signer's certificate chain, a SignedHead with only the chain
	received_at INTEGER NOT NULL,
	fork        INTEGER NOT NULL
);
CREATE INDEX witnessed_heads_peer ON witnessed_heads (peer, seq);
`,
	// 9: a peer that leaves (peer remove): granted nothing from leaving_since on, removed once
	// it holds nothing.
	`
ALTER TABLE peers ADD COLUMN leaving_since INTEGER NOT NULL DEFAULT 0;  -- Unix nanoseconds; 0: not leaving
`,
	// 10: the history of own and cached records' numeric body fields, one row per applied version
	// (see history.go), from which the early-warning rules' sums, deltas and counts are derived.
	// A cached record's rows leave with its retraction. Records stored so far start it.
	`
CREATE TABLE history (
	origin    TEXT    NOT NULL,  -- '' for own records, else the peer's trust domain
	id        TEXT    NOT NULL,
	version   INTEGER NOT NULL,
	kind      TEXT    NOT NULL,
	crisis    TEXT    NOT NULL,
	region    TEXT    NOT NULL,
	at        INTEGER NOT NULL,  -- the version's updated_at, Unix nanoseconds
	tombstone INTEGER NOT NULL,  -- the record stopped counting at this version
	fields    TEXT    NOT NULL,  -- JSON object of the body's top-level numbers
	PRIMARY KEY (origin, id, version)
) WITHOUT ROWID;
CREATE INDEX history_kind ON history (kind, at);
INSERT INTO history (origin, id, version, kind, crisis, region, at, tombstone, fields)
	SELECT '', id, version, kind, crisis, region, updated_at, tombstone,
		(SELECT json_group_object(key, value) FROM json_each(CAST(body AS TEXT)) WHERE type IN ('integer', 'real'))
	FROM records WHERE json_valid(CAST(body AS TEXT));
INSERT INTO history (origin, id, version, kind, crisis, region, at, tombstone, fields)
	SELECT origin, id, version, kind, crisis, region, updated_at, 0,
		(SELECT json_group_object(key, value) FROM json_each(CAST(body AS TEXT)) WHERE type IN ('integer', 'real'))
	FROM foreign_records WHERE json_valid(CAST(body AS TEXT));
`,
	// 11: early-warning rules, as editors and officers applied them (see rules.go).
	`
CREATE TABLE rules (
	name       TEXT    NOT NULL PRIMARY KEY,
	version    INTEGER NOT NULL,  -- 1 for the first apply, one more for each after it
	source     BLOB    NOT NULL,  -- the YAML as applied
	severity   TEXT    NOT NULL,
	applied_by TEXT    NOT NULL,
	applied_at INTEGER NOT NULL   -- Unix nanoseconds
) WITHOUT ROWID;
`,
	// 12: the authorities of the org's trust bundle over time, to check witnessed heads against the
	// bundle of their time (see witness.go).
	`
CREATE TABLE authorities (
	trust_domain TEXT    NOT NULL,
	sha256       BLOB    NOT NULL,            -- of der
	der          BLOB    NOT NULL,
	first_seen   INTEGER NOT NULL,            -- Unix nanoseconds
	removed_at   INTEGER NOT NULL DEFAULT 0,  -- 0 while the bundle holds it
	PRIMARY KEY (trust_domain, sha256)
) WITHOUT ROWID;
`,
	// 13: outbound webhooks and their delivery queue (see webhooks.go). A row of webhook_queue
	// is one delivery, written in the transaction of the change it carries; it leaves the queue
	// when the leader commits the receiver's acknowledgement, or becomes a dead letter.
	`
CREATE TABLE webhooks (
	id                TEXT    NOT NULL PRIMARY KEY,
	url               TEXT    NOT NULL,
	kinds             TEXT    NOT NULL,  -- JSON array; empty: every kind
	crises            TEXT    NOT NULL,  -- JSON array; empty: every crisis
	exercise          TEXT    NOT NULL,  -- '': actual records only
	secret            TEXT    NOT NULL,  -- whsec_…
	created_by        TEXT    NOT NULL,
	created_at        INTEGER NOT NULL,  -- Unix nanoseconds
	delivered         INTEGER NOT NULL DEFAULT 0,
	last_delivered_at INTEGER NOT NULL DEFAULT 0,
	next_seq          INTEGER NOT NULL DEFAULT 0   -- the seq of the webhook's last queued delivery
) WITHOUT ROWID;
CREATE TABLE webhook_queue (
	webhook          TEXT    NOT NULL,
	seq              INTEGER NOT NULL,  -- delivery order; a retried dead letter takes a new one
	message          TEXT    NOT NULL,  -- the webhook-id header, the same on every attempt
	event            TEXT    NOT NULL,  -- record.changed, record.deleted or record.retracted
	origin           TEXT    NOT NULL,  -- '' for own records, else the peer's trust domain
	record_id        TEXT    NOT NULL,
	version          INTEGER NOT NULL,
	record           BLOB    NOT NULL,  -- the record as it was written or received, protobuf
	enqueued_at      INTEGER NOT NULL,
	dead             INTEGER NOT NULL DEFAULT 0,
	attempts         INTEGER NOT NULL DEFAULT 0,
	last_error       TEXT    NOT NULL DEFAULT '',
	first_attempt_at INTEGER NOT NULL DEFAULT 0,
	failed_at        INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (webhook, seq)
) WITHOUT ROWID;
CREATE INDEX webhook_queue_dead ON webhook_queue (webhook, dead, seq);
`,
	// 14: modes. Every own and cached record has a status (0 actual, 1 exercise, 2 test, 3
	// draft: pb.Status) and, for an exercise, its name; every read is in one mode. The List
	// indexes start with the mode's columns, so that a read in one mode is a range scan that
	// never visits a record of another. Exercises are started and closed through Raft; phases and
	// subscription cursors are kept per mode ('' the actual one, else the exercise's name).
	`
ALTER TABLE records ADD COLUMN status INTEGER NOT NULL DEFAULT 0;
ALTER TABLE records ADD COLUMN exercise TEXT NOT NULL DEFAULT '';
DROP INDEX records_kind;
DROP INDEX records_crisis;
DROP INDEX records_crisis_id;
DROP INDEX records_region;
CREATE INDEX records_kind      ON records (status, exercise, kind, id, tombstone, classification, updated_at);
CREATE INDEX records_crisis    ON records (status, exercise, crisis, kind, region, id, tombstone, classification, updated_at);
CREATE INDEX records_crisis_id ON records (status, exercise, crisis, id, tombstone, classification, updated_at);
CREATE INDEX records_region    ON records (status, exercise, region, id, tombstone, classification, updated_at);
CREATE INDEX records_mode      ON records (status, exercise, tombstone, id);

-- A change row carries its record's mode (a live record never changes mode), so that a feed in
-- one mode joins only its own changes to their records.
ALTER TABLE changes ADD COLUMN status INTEGER NOT NULL DEFAULT 0;
ALTER TABLE changes ADD COLUMN exercise TEXT NOT NULL DEFAULT '';

ALTER TABLE foreign_records ADD COLUMN status INTEGER NOT NULL DEFAULT 0;
ALTER TABLE foreign_records ADD COLUMN exercise TEXT NOT NULL DEFAULT '';
CREATE INDEX foreign_records_mode ON foreign_records (status, exercise);

CREATE TABLE exercises (
	name       TEXT    NOT NULL PRIMARY KEY,
	state      TEXT    NOT NULL,  -- open or closed
	started_by TEXT    NOT NULL,
	started_at INTEGER NOT NULL,  -- Unix nanoseconds
	closed_by  TEXT    NOT NULL,
	closed_at  INTEGER NOT NULL,  -- Unix nanoseconds; 0 while open
	deleted    INTEGER NOT NULL   -- the records its close deleted
) WITHOUT ROWID;

CREATE TABLE phases_by_mode (
	exercise TEXT    NOT NULL,  -- '' for the actual crisis
	crisis   TEXT    NOT NULL,
	phase    TEXT    NOT NULL,
	set_by   TEXT    NOT NULL,
	set_at   INTEGER NOT NULL,
	reason   TEXT    NOT NULL,
	PRIMARY KEY (exercise, crisis)
) WITHOUT ROWID;
INSERT INTO phases_by_mode SELECT '', crisis, phase, set_by, set_at, reason FROM phases;
DROP TABLE phases;
ALTER TABLE phases_by_mode RENAME TO phases;

CREATE TABLE cursors_by_mode (
	peer       TEXT    NOT NULL,
	exercise   TEXT    NOT NULL,  -- '' for the subscription to actual records
	origin     TEXT    NOT NULL,
	cursor     INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	PRIMARY KEY (peer, exercise)
) WITHOUT ROWID;
INSERT INTO cursors_by_mode SELECT peer, '', origin, cursor, updated_at FROM peer_cursors;
DROP TABLE peer_cursors;
ALTER TABLE cursors_by_mode RENAME TO peer_cursors;
`,
	// 15: attachments (see files.go): staged uploads and their chunks, the files that committed
	// uploads became, which records name which file, and the text extracted from each file for
	// the full-text index.
	`
CREATE TABLE file_uploads (
	upload_id  TEXT    NOT NULL PRIMARY KEY,
	chunks     INTEGER NOT NULL,  -- chunks staged so far; the next has this seq
	size       INTEGER NOT NULL,  -- bytes staged so far
	hash_state BLOB    NOT NULL,  -- the SHA-256 of the bytes staged so far, mid-way (encoding.BinaryMarshaler)
	touched_at INTEGER NOT NULL   -- the last chunk's time, Unix nanoseconds
) WITHOUT ROWID;
CREATE TABLE file_chunks (
	upload_id TEXT    NOT NULL,
	seq       INTEGER NOT NULL,
	data      BLOB    NOT NULL,
	PRIMARY KEY (upload_id, seq)
);
CREATE TABLE files (
	sha256     TEXT    NOT NULL PRIMARY KEY,  -- lowercase hex
	upload_id  TEXT    NOT NULL,  -- whose chunks hold the content
	size       INTEGER NOT NULL,
	media_type TEXT    NOT NULL,
	origin     TEXT    NOT NULL,  -- '' uploaded here, else the peer's trust domain it came from
	stored_at  INTEGER NOT NULL   -- Unix nanoseconds
) WITHOUT ROWID;
CREATE INDEX files_upload_id ON files (upload_id);
CREATE TABLE file_refs (
	origin     TEXT    NOT NULL,  -- '' for own records, else the peer's trust domain
	id         TEXT    NOT NULL,
	sha256     TEXT    NOT NULL,
	size       INTEGER NOT NULL,
	media_type TEXT    NOT NULL,
	PRIMARY KEY (origin, id, sha256)
) WITHOUT ROWID;
CREATE INDEX file_refs_sha256 ON file_refs (sha256);
CREATE TABLE file_text (
	sha256 TEXT NOT NULL PRIMARY KEY,
	state  TEXT NOT NULL,  -- indexed, broken or skipped
	text   TEXT NOT NULL
) WITHOUT ROWID;
`,
	// 16: retractions sent on a subscription and not yet confirmed by the holder's next cursor (see
	// ApplyDisclosures): a subscription that starts at or before one sends it again.
	`
CREATE TABLE retractions (
	recipient TEXT    NOT NULL,  -- the holder, as in disclosures
	record_id TEXT    NOT NULL,
	seq       INTEGER NOT NULL,  -- the feed position the retraction went out at
	PRIMARY KEY (recipient, record_id)
) WITHOUT ROWID;
`,
	// 17: the full-text index becomes a word index (see text.go): the trigram index goes, its
	// keys start again, the vocabulary of indexed words comes with a trigram index of its own and
	// the state of its sweep, and every record stored so far is queued to be indexed again. The shards of the word
	// index (text_shard_N) are made by the indexer as it needs them.
	`
DROP TABLE text_index;
DELETE FROM text_keys;
CREATE TABLE text_words (
	id   INTEGER PRIMARY KEY,
	word TEXT NOT NULL UNIQUE
);
CREATE VIRTUAL TABLE text_vocab USING fts5(word, content = 'text_words', content_rowid = 'id', tokenize = 'trigram');
CREATE TABLE text_sweep (
	id    INTEGER PRIMARY KEY CHECK (id = 1),
	dirty INTEGER NOT NULL,  -- records taken out or replaced since the last pass began
	next  INTEGER NOT NULL   -- the next word id the pass under way checks; 0: none under way
);
INSERT INTO text_sweep (id, dirty, next) VALUES (1, 0, 0);
INSERT OR IGNORE INTO text_pending (origin, id) SELECT '', id FROM records WHERE tombstone = 0;
INSERT OR IGNORE INTO text_pending (origin, id) SELECT origin, id FROM foreign_records;
`,
	// 18: the change feed keyed by mode, then seq: a feed in one mode is one range scan, which
	// never steps over another mode's changes (an actual feed passed over every exercise's), at
	// no cost to a write, which still adds one row to one tree.
	`
CREATE TABLE changes_by_mode (
	status   INTEGER NOT NULL,
	exercise TEXT    NOT NULL,
	seq      INTEGER NOT NULL,
	id       TEXT    NOT NULL,
	version  INTEGER NOT NULL,
	PRIMARY KEY (status, exercise, seq)
) WITHOUT ROWID;
INSERT INTO changes_by_mode (status, exercise, seq, id, version) SELECT status, exercise, seq, id, version FROM changes;
DROP TABLE changes;
ALTER TABLE changes_by_mode RENAME TO changes;
`,
	// 19: the text queue becomes append-only. text_pending was keyed by the record, so that
	// every write changed a page wherever its id fell, in the FSM and again in the indexer;
	// text_queue adds each write at its end, and the indexer takes from its start. A record
	// written twice before the indexer came is queued twice, and indexed once. And every record
	// is queued again: the indexer before took the key after an object nested in a body for a
	// value, and that value for a key, and read no further than a number beyond float64 (see
	// bodyText), so that {"place":{"lat":52},"name":"Jaarbeurs"} was found by "name" and not by
	// "Jaarbeurs".
	`
CREATE TABLE text_queue (
	seq    INTEGER PRIMARY KEY,  -- the order of queueing
	origin TEXT    NOT NULL,     -- '' for own records, else the peer's trust domain
	id     TEXT    NOT NULL
);
INSERT INTO text_queue (origin, id) SELECT origin, id FROM text_pending;
INSERT INTO text_queue (origin, id) SELECT '', id FROM records AS r
	WHERE tombstone = 0 AND NOT EXISTS (SELECT 1 FROM text_pending AS p WHERE p.origin = '' AND p.id = r.id);
INSERT INTO text_queue (origin, id) SELECT origin, id FROM foreign_records AS f
	WHERE NOT EXISTS (SELECT 1 FROM text_pending AS p WHERE p.origin = f.origin AND p.id = f.id);
DROP TABLE text_pending;
`,
	// 20: a disclosure says under which redaction the holder holds the record: every path the
	// granting policies remove from it, whether or not it has them (pb.Disclosure.redaction).
	// Rows of before have none, so that a record held under a redacting policy goes once again,
	// and its holder drops the history of its earlier versions: a copy sent before a redaction
	// reached into lists, or a field this version lacks, may have kept what is withheld now.
	// And a webhook may have regions and a classification ceiling (none, as every webhook of
	// before).
	`
ALTER TABLE disclosures ADD COLUMN redaction TEXT NOT NULL DEFAULT '';
ALTER TABLE webhooks ADD COLUMN regions TEXT NOT NULL DEFAULT '[]';
ALTER TABLE webhooks ADD COLUMN max_classification INTEGER NOT NULL DEFAULT 0;
ALTER TABLE webhooks ADD COLUMN withdraws INTEGER NOT NULL DEFAULT 0;
`,
	// 21: when a record of a source last left a crisis's picture here (see Removals): deleted
	// or withdrawn at its source, or moved to another crisis. Nothing is known of before.
	`
CREATE TABLE picture_removals (
	crisis   TEXT    NOT NULL,
	status   INTEGER NOT NULL,
	exercise TEXT    NOT NULL,
	origin   TEXT    NOT NULL,  -- '' for own records, else the peer's trust domain
	kind     TEXT    NOT NULL,
	at       INTEGER NOT NULL,  -- unix nanoseconds: the write's time, or the delivery's
	PRIMARY KEY (crisis, status, exercise, origin, kind)
) WITHOUT ROWID;
`,
	// 22: the history keeps exercises' records too, each in its mode, so that the early-warning
	// rules can run in an exercise (see addHistory). Every row of before is an actual record's.
	`
ALTER TABLE history ADD COLUMN status INTEGER NOT NULL DEFAULT 0;
ALTER TABLE history ADD COLUMN exercise TEXT NOT NULL DEFAULT '';
`,
	// 23: a file keeps every source it came from (see files.go), not the first alone: a file
	// is a peer's only while that peer's records name it, and another peer's record that names
	// the same hash neither keeps it nor makes it readable.
	`
CREATE TABLE file_sources (
	sha256 TEXT NOT NULL,
	origin TEXT NOT NULL,  -- '' uploaded here, else the trust domain of a peer it was fetched from
	PRIMARY KEY (sha256, origin)
) WITHOUT ROWID;
INSERT INTO file_sources (sha256, origin) SELECT sha256, origin FROM files;
-- A partner's file that an own record names (which the release before allowed) is this org's
-- own too: its users keep reading it, and it stays when the partner retracts.
INSERT OR IGNORE INTO file_sources (sha256, origin)
	SELECT DISTINCT r.sha256, '' FROM file_refs AS r JOIN files AS f ON f.sha256 = r.sha256 WHERE r.origin = '';
ALTER TABLE files DROP COLUMN origin;
`,
	// 24: a webhook's secret before its last rotation, with which deliveries are also signed
	// until old_secret_until (see ApplyWebhookStep).
	`
ALTER TABLE webhooks ADD COLUMN old_secret TEXT NOT NULL DEFAULT '';
ALTER TABLE webhooks ADD COLUMN old_secret_until INTEGER NOT NULL DEFAULT 0;  -- Unix nanoseconds; 0: none
`,
	// 25: the words of the vocabulary that own records hold (see text.go), to which a search of
	// own records expands a part of a word, so that the words of partners' records cannot widen
	// it or make it refused. Every word known now counts as own until the sweep, due at once, has
	// checked it.
	`
CREATE TABLE text_own_words (id INTEGER PRIMARY KEY);  -- a text_words id
INSERT INTO text_own_words (id) SELECT id FROM text_words;
UPDATE text_sweep SET dirty = dirty + 1;
`,
	// 26: the columns migrations 1 to 25 give a table and it lacks are added (addMissingColumns).
	// Migration 20 gained three of its ALTERs after releases had brought databases to 20, which
	// then failed at their first write with "no such column: withdraws" (review V, V1).
	``,
	// 27: the history keeps each version's classification and labels (a JSON object), so that
	// a sync poll by max_classification or labels lists a record that left them, as one by kind,
	// crisis or region does (see Filter.departures). A version of before has NULL: not known,
	// which a poll takes as having been of its filter.
	`
ALTER TABLE history ADD COLUMN classification INTEGER;
ALTER TABLE history ADD COLUMN labels TEXT;
`,
	// 28: the purpose each partner's node stated last in its subscription, by trust domain (see
	// ApplyDisclosures), with which an officer's preview and explain see what a policy with
	// accept_purposes grants that partner. Filled from the audit log's entries of before.
	`
CREATE TABLE stated_purposes (
	recipient TEXT    NOT NULL PRIMARY KEY,  -- a trust domain
	purpose   TEXT    NOT NULL,
	at        INTEGER NOT NULL               -- Unix nanoseconds, of the command that said it
) WITHOUT ROWID;
INSERT INTO stated_purposes (recipient, purpose, at)
	SELECT json_extract(detail, '$.recipient'), json_extract(detail, '$.stated_purpose'), MAX(at) FROM audit
	WHERE action IN ('federation.disclose', 'federation.resend', 'federation.refuse') AND json_valid(detail)
		AND json_type(detail, '$.stated_purpose') = 'text' AND json_type(detail, '$.recipient') = 'text'
		AND json_extract(detail, '$.via') = 'Subscribe'
	GROUP BY 1;
`,
}

// migrationSteps run in Go after the SQL of a migration, by its number, in its transaction.
var migrationSteps = map[int]func(*sql.Tx) error{
	26: func(tx *sql.Tx) error { return addMissingColumns(tx, 25) },
}

// SchemaVersion is the user_version a fully migrated database has.
var SchemaVersion = len(migrations)

// addMissingColumns adds to each table of tx the columns that migrations 1 to upTo give it, in a
// database of their own, and that it lacks, as those migrations declare them (type, NOT NULL,
// default). A column that cannot be added so (NOT NULL without a default) is an error naming it.
func addMissingColumns(tx *sql.Tx, upTo int) error {
	ref, err := sql.Open("sqlite3", ":memory:")
	if err != nil {
		return err
	}
	defer ref.Close()
	ref.SetMaxOpenConns(1) // one connection: each of ":memory:" is a database of its own
	for i := range upTo {
		if _, err := ref.Exec(migrations[i]); err != nil {
			return fmt.Errorf("the schema of migration %d: %w", i+1, err)
		}
	}
	tables, err := ref.Query(`SELECT name FROM sqlite_master WHERE type = 'table' AND sql NOT LIKE 'CREATE VIRTUAL%' ORDER BY name`)
	if err != nil {
		return err
	}
	var names []string
	for tables.Next() {
		var n string
		if err := tables.Scan(&n); err != nil {
			tables.Close()
			return err
		}
		names = append(names, n)
	}
	if err := errors.Join(tables.Err(), tables.Close()); err != nil {
		return err
	}
	type column struct {
		name, typ string
		notNull   bool
		dflt      sql.NullString
	}
	columns := func(q interface {
		Query(string, ...any) (*sql.Rows, error)
	}, table string) (map[string]column, []string, error) {
		rows, err := q.Query(`SELECT name, type, "notnull", dflt_value FROM pragma_table_info(?)`, table)
		if err != nil {
			return nil, nil, err
		}
		defer rows.Close()
		cols, order := map[string]column{}, []string(nil)
		for rows.Next() {
			var c column
			if err := rows.Scan(&c.name, &c.typ, &c.notNull, &c.dflt); err != nil {
				return nil, nil, err
			}
			cols[c.name], order = c, append(order, c.name)
		}
		return cols, order, rows.Err()
	}
	for _, table := range names {
		want, order, err := columns(ref, table)
		if err != nil {
			return err
		}
		have, _, err := columns(tx, table)
		if err != nil {
			return err
		}
		if len(have) == 0 {
			continue // not in this database: a later migration made or dropped it
		}
		for _, name := range order {
			if _, ok := have[name]; ok {
				continue
			}
			c := want[name]
			def := fmt.Sprintf("%q %s", c.name, c.typ)
			if c.notNull {
				if !c.dflt.Valid {
					return fmt.Errorf("table %s lacks column %s, NOT NULL without a default: restore a backup", table, c.name)
				}
				def += " NOT NULL"
			}
			if c.dflt.Valid {
				def += " DEFAULT " + c.dflt.String
			}
			if _, err := tx.Exec(fmt.Sprintf(`ALTER TABLE %q ADD COLUMN %s`, table, def)); err != nil {
				return fmt.Errorf("table %s: add column %s: %w", table, c.name, err)
			}
		}
	}
	return nil
}

// MigratedFrom is the schema version the database had when Open migrated it to SchemaVersion; 0
// when it needed no migration, or was new.
func (d *DB) MigratedFrom() int { return d.migratedFrom }

// migrate brings the database to SchemaVersion, and returns the version it had.
func migrate(h *sql.DB) (int, error) {
	var v int
	if err := h.QueryRow(`PRAGMA user_version`).Scan(&v); err != nil {
		return 0, err
	}
	if v > len(migrations) {
		return v, fmt.Errorf("database schema version %d is newer than this knooppunt (%d): run the newer release it comes from, or go back to what you had before the upgrade with this one: stop the node, and `knooppunt restore` the backup taken before it", v, len(migrations))
	}
	for i := v; i < len(migrations); i++ {
		tx, err := h.Begin()
		if err != nil {
			return v, err
		}
		if _, err := tx.Exec(migrations[i]); err != nil {
			tx.Rollback()
			return v, fmt.Errorf("migration %d: %w", i+1, err)
		}
		if step := migrationSteps[i+1]; step != nil {
			if err := step(tx); err != nil {
				tx.Rollback()
				return v, fmt.Errorf("migration %d: %w", i+1, err)
			}
		}
		if _, err := tx.Exec(fmt.Sprintf(`PRAGMA user_version = %d`, i+1)); err != nil {
			tx.Rollback()
			return v, fmt.Errorf("migration %d: %w", i+1, err)
		}
		if err := tx.Commit(); err != nil {
			return v, fmt.Errorf("migration %d: %w", i+1, err)
		}
	}
	return v, nil
}

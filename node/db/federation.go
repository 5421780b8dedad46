package db

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/knooppunt/knooppunt/node/internal/jsonstr"
	"github.com/knooppunt/knooppunt/node/record"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// Audit actions of federation.
const (
	AuditDisclosure       = "federation.disclose"
	AuditResend           = "federation.resend"
	AuditRetraction       = "federation.retract"
	AuditFederationDenied = "federation.denied"
	// AuditFederationNothing is a peer's query that matched no record at all: nothing was
	// withheld from it, so it is not a denial, but who asked for what is still kept.
	AuditFederationNothing = "federation.nothing"
	AuditPurposeRefused    = "federation.refuse"
	AuditSearch            = "search"
	// AuditFileDisclosure is a file sent to a peer (FetchFile); the subject is the record that
	// names it.
	AuditFileDisclosure = "federation.disclose.file"
)

// ApplyDisclosures records what was sent to, and retracted from, a recipient, and audits it.
//
// A record is disclosed when the recipient gets a version of it, under a set of policies, that
// the disclosures table does not already say it holds. Each such disclosure is one disclosures
// row and one audit entry, so that `audit list --subject ID` finds every version of a record that
// reached a recipient and when it first did. Records sent again at a version the recipient
// holds, under the same policies (a search asking again, a subscription's resync), tell it
// nothing new: they change no row, and one federation.resend entry per command counts them, so
// that every call still leaves its trace. A command without count_held, which nodes wrote
// before it existed, writes every record, as those nodes applied it: a replica that applies such
// an entry only after an upgrade applies it as its peers did. Rows go in by the chunk (see
// bulk), and the audit detail is built without reflection; its bytes are those json.Marshal
// gives the same map.
func (d *DB) ApplyDisclosures(index uint64, c *pb.RecordDisclosures) error {
	at := c.At.AsTime()
	return d.applyTx(index, func(tx *writeTx, _ *int64) error {
		a, err := newAuditor(tx)
		if err != nil {
			return err
		}
		recipient, _ := json.Marshal(c.Recipient)
		via, _ := json.Marshal(c.Via)
		stated, _ := json.Marshal(c.StatedPurpose)
		holder := Holder(c)
		if c.RecordsPurpose && c.Via == "Subscribe" && (len(c.Disclosed) > 0 || len(c.Refused) > 0) {
			// The purpose the partner's node states now, for the officers' previews (see
			// StatedPurpose): its subscription's, which what it holds follows; not a person's
			// search there, which may state another (review AG, AG2).
			if _, err := tx.Exec(`INSERT INTO stated_purposes (recipient, purpose, at) VALUES (?, ?, ?)
				ON CONFLICT (recipient) DO UPDATE SET purpose = excluded.purpose, at = excluded.at WHERE excluded.at >= at`,
				c.Recipient, c.StatedPurpose, at.UnixNano()); err != nil {
				return err
			}
		}
		if len(c.Disclosed) > 0 {
			fresh, pols, err := disclose(tx, c, holder, at)
			if err != nil {
				return err
			}
			// An entry's detail is {"classification":…,"crisis":…,"kind":…,"policies":…,
			// "purposes":…,"recipient":…,"redacted":…,"stated_purpose":…,"version":…,"via":…}:
			// the keys in the order json.Marshal sorts a map's keys, as earlier entries were
			// written; classification, crisis and kind only when the command names them (see
			// recordHead), purposes and stated_purpose only when the command
			// records purposes, and redacted only when the policies withheld a field, so that an
			// entry of an older command keeps its bytes. All but the
			// version is the same for the records of one set of policies: it is built, and quoted
			// for the chain's hash, once per set (quoting is per character, so the quoted detail
			// is the quoted parts around the version's digits).
			type parts struct{ head, quotedHead string }
			heads := map[string]parts{} // by the policies' JSON, "" for none (null)
			tail := `,"via":` + string(via) + `}`
			quotedTail := quoteInner(tail)
			var detail, quoted []byte
			err = a.addMany(at, c.RecipientId, AuditDisclosure, len(fresh), func(i int) (string, string, []byte) {
				x := c.Disclosed[fresh[i]]
				key := ""
				if x.Policies != nil {
					key = pols[fresh[i]]
				}
				if len(x.Redacted) > 0 {
					key += "\x00" + strings.Join(x.Redacted, "\x00")
				}
				if x.Crisis != "" || x.Kind != "" || x.Classification != 0 {
					key += "\x01" + x.Classification.String() + "\x00" + x.Crisis + "\x00" + x.Kind
				}
				h, ok := heads[key]
				if !ok {
					b := append(recordHead([]byte{'{'}, x), `"policies":`...)
					if x.Policies == nil {
						b = append(b, "null"...)
					} else {
						b = append(b, pols[fresh[i]]...)
					}
					if c.RecordsPurpose {
						m := make(map[string]string, len(x.Policies))
						for _, id := range x.Policies {
							m[id] = c.PolicyPurposes[id]
						}
						p, _ := json.Marshal(m)
						b = append(b, `,"purposes":`...)
						b = append(b, p...)
					}
					b = append(b, `,"recipient":`...)
					b = append(b, recipient...)
					if len(x.Redacted) > 0 {
						r, _ := json.Marshal(x.Redacted)
						b = append(b, `,"redacted":`...)
						b = append(b, r...)
					}
					if c.RecordsPurpose {
						b = append(b, `,"stated_purpose":`...)
						b = append(b, stated...)
					}
					b = append(b, `,"version":`...)
					h = parts{string(b), quoteInner(string(b))}
					heads[key] = h
				}
				detail = strconv.AppendInt(append(detail[:0], h.head...), x.Version, 10)
				detail = append(detail, tail...)
				quoted = append(append(quoted[:0], '"'), h.quotedHead...)
				quoted = strconv.AppendInt(quoted, x.Version, 10)
				quoted = append(append(quoted, quotedTail...), '"')
				return x.RecordId, string(detail), quoted
			})
			if err != nil {
				return err
			}
			if again := len(c.Disclosed) - len(fresh); again > 0 {
				// {"recipient":…,"records":…,"via":…}, as json.Marshal writes the map, with
				// "stated_purpose" before "via" when the command records purposes.
				detail := fmt.Sprintf(`{"recipient":%s,"records":%d,"via":%s}`, recipient, again, via)
				if c.RecordsPurpose {
					detail = fmt.Sprintf(`{"recipient":%s,"records":%d,"stated_purpose":%s,"via":%s}`, recipient, again, stated, via)
				}
				if err := a.addRaw(at, c.RecipientId, AuditResend, c.Recipient, detail); err != nil {
					return err
				}
			}
		}
		if len(c.Refused) > 0 {
			// One entry for the command: which policies refused the stated purpose, and how
			// many records each would have granted.
			policies := make(map[string]int64, len(c.Refused))
			otherwise := map[string]int64{}
			for _, r := range c.Refused {
				if r.Records > 0 || !r.Marked {
					policies[r.Policy] += r.Records
				}
				if r.GrantedOtherwise > 0 {
					otherwise[r.Policy] += r.GrantedOtherwise
				}
			}
			detail := map[string]any{"policies": policies, "recipient": c.Recipient, "stated_purpose": c.StatedPurpose, "via": c.Via}
			if len(otherwise) > 0 {
				// Records a purpose-bound policy refused but another policy granted: they went
				// out, under the policies their federation.disclose entries name.
				detail["granted_otherwise"] = otherwise
			}
			if err := a.add(at, c.RecipientId, AuditPurposeRefused, c.Recipient, detail); err != nil {
				return err
			}
		}
		// A retraction stays pending until the holder's next subscription starts past it; a
		// record disclosed again is simply held.
		for _, x := range c.Disclosed {
			if _, err := tx.Exec(`DELETE FROM retractions WHERE recipient = ? AND record_id = ?`, holder, x.RecordId); err != nil {
				return err
			}
		}
		if c.ConfirmedThrough > 0 {
			if _, err := tx.Exec(`DELETE FROM retractions WHERE recipient = ? AND seq < ?`, holder, c.ConfirmedThrough); err != nil {
				return err
			}
		}
		if len(c.Retracted) > 0 {
			err := retractionRows.exec(tx, []any{holder}, len(c.Retracted), func(i int, args []any) []any {
				return append(args, c.Retracted[i].RecordId)
			})
			if err != nil {
				return err
			}
			if c.Via == "Subscribe" {
				for _, x := range c.Retracted {
					if _, err := tx.Exec(`INSERT OR REPLACE INTO retractions (recipient, record_id, seq) VALUES (?,?,?)`, holder, x.RecordId, x.Seq); err != nil {
						return err
					}
				}
			}
			var detail []byte
			err = a.addMany(at, c.RecipientId, AuditRetraction, len(c.Retracted), func(i int) (string, string, []byte) {
				x := c.Retracted[i]
				// {"classification":…,"crisis":…,"kind":…,"reason":…,"recipient":…}, as
				// json.Marshal writes the map; the first three only when the command names them.
				reason, _ := json.Marshal(x.Reason)
				detail = append(recordHead(append(detail[:0], '{'), x), `"reason":`...)
				detail = append(detail, reason...)
				detail = append(detail, `,"recipient":`...)
				detail = append(detail, recipient...)
				detail = append(detail, '}')
				return x.RecordId, string(detail), nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// recordHead appends the record's classification (by its name), crisis and kind that x names,
// each that is not empty as "key":value followed by a comma, in the order json.Marshal sorts them: the first
// keys of a federation.disclose or federation.retract detail. A command of a leader before these
// fields names none, and its entries keep their bytes.
func recordHead(b []byte, x *pb.Disclosure) []byte {
	for _, f := range [...]struct{ key, value string }{{"classification", record.ClassificationName(x.Classification)}, {"crisis", x.Crisis}, {"kind", x.Kind}} {
		if f.value != "" {
			b = append(b, '"')
			b = append(b, f.key...)
			b = append(b, `":`...)
			b = jsonstr.AppendEncodingJSON(b, f.value)
			b = append(b, ',')
		}
	}
	return b
}

// Holder is the key under which c's records are tracked in the disclosures table: c.Holder, or
// for an entry of a node that kept the table by trust domain, that trust domain's node (see
// migration 5).
func Holder(c *pb.RecordDisclosures) string {
	if c.Holder != "" {
		return c.Holder
	}
	return "spiffe://" + c.Recipient + "/node/*"
}

// held is what the disclosures table says a holder holds of one record.
type held struct {
	version   int64
	policies  string // JSON array
	redaction string // see pb.Disclosure.redaction
}

// disclose writes the rows of c.Disclosed that disclose something: with c.CountHeld, a version,
// a set of policies or a redaction that the recipient does not hold, counting the rows before it in the same
// command; without it, every row. With c.AnswerNotKept it writes none, and returns the same. It returns their indexes, in order, and pols, where pols[i] is
// the policies of c.Disclosed[i] as the table stores them.
func disclose(tx *writeTx, c *pb.RecordDisclosures, holder string, at time.Time) (fresh []int, pols []string, err error) {
	// Most records of a command were granted by the same policies.
	polJSON := map[string]string{}
	pols = make([]string, len(c.Disclosed))
	for i, x := range c.Disclosed {
		key := strings.Join(x.Policies, "\x00")
		pol, ok := polJSON[key]
		if !ok {
			b, _ := json.Marshal(nonNilSlice(x.Policies))
			pol = string(b)
			polJSON[key] = pol
		}
		pols[i] = pol
	}
	fresh = make([]int, 0, len(c.Disclosed))
	if c.CountHeld {
		// What the recipient holds of these records.
		holds := make(map[string]held, len(c.Disclosed))
		err = heldRows.query(tx, []any{holder}, len(c.Disclosed), func(i int, args []any) []any {
			return append(args, c.Disclosed[i].RecordId)
		}, func(rows *sql.Rows) error {
			var id string
			var h held
			if err := rows.Scan(&id, &h.version, &h.policies, &h.redaction); err != nil {
				return err
			}
			holds[id] = h
			return nil
		})
		if err != nil {
			return nil, nil, err
		}
		for i, x := range c.Disclosed {
			h := held{x.Version, pols[i], x.Redaction}
			if old, ok := holds[x.RecordId]; ok && old == h {
				continue
			}
			holds[x.RecordId] = h
			fresh = append(fresh, i)
		}
	} else {
		for i := range c.Disclosed {
			fresh = append(fresh, i)
		}
	}
	if c.AnswerNotKept {
		return fresh, pols, nil
	}
	err = disclosureRows.exec(tx, []any{holder, at.UnixNano()}, len(fresh), func(i int, args []any) []any {
		x := c.Disclosed[fresh[i]]
		return append(args, x.RecordId, x.Version, pols[fresh[i]], x.Redaction)
	})
	return fresh, pols, err
}

var (
	// disclosureRows writes disclosures to one recipient (?1) at one time (?2).
	disclosureRows = newBulk(`INSERT INTO disclosures (recipient, record_id, version, policies, redaction, at) VALUES `, 2, 4,
		func(p []int) string {
			return "(?1, " + param(p[0]) + ", " + param(p[1]) + ", " + param(p[2]) + ", " + param(p[3]) + ", ?2)"
		}, ", ",
		` ON CONFLICT (recipient, record_id) DO UPDATE SET version = excluded.version, policies = excluded.policies, redaction = excluded.redaction, at = excluded.at`)
	// heldRows reads what one recipient (?1) holds of some records. The ids are bound as +?,
	// which SQLite's planner does not read, so the statement is not prepared again at every run.
	heldRows = newBulk(`SELECT record_id, version, policies, redaction FROM disclosures WHERE recipient = ?1 AND record_id IN (`, 1, 1,
		func(p []int) string { return "+" + param(p[0]) }, ", ", ")")
	retractionRows = newBulk(`DELETE FROM disclosures WHERE recipient = ?1 AND record_id IN (`, 1, 1,
		func(p []int) string { return param(p[0]) }, ", ", ")")
)

// Disclosed returns the records a holder holds, in every mode: id → version.
func (d *DB) Disclosed(ctx context.Context, holder string) (map[string]int64, error) {
	return d.disclosed(ctx, `SELECT record_id, version FROM disclosures WHERE recipient = ?`, holder)
}

// Held is what one holder holds of records sent under a policy version: how many, and how many
// under it alone.
type Held struct {
	Holder         string
	Records, Alone int64
}

// HeldUnder returns, by holder, the copies held now that were sent under the policy version id:
// what revoking it withdraws (Alone), or leaves to the other policies that granted them too.
func (d *DB) HeldUnder(ctx context.Context, id string) ([]Held, error) {
	var out []Held
	err := d.read(func(ro *sql.DB) error {
		// instr of the quoted id passes over the rows of other policies without parsing their
		// JSON (a@1 is not in "a@10"); json_each then checks the element exactly.
		quoted, _ := json.Marshal(id)
		rows, err := ro.QueryContext(ctx, `SELECT recipient, COUNT(*), SUM(json_array_length(policies) = 1) FROM disclosures
			WHERE instr(policies, ?) > 0 AND EXISTS (SELECT 1 FROM json_each(policies) WHERE value = ?) GROUP BY recipient ORDER BY recipient`, string(quoted), id)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var h Held
			if err := rows.Scan(&h.Holder, &h.Records, &h.Alone); err != nil {
				return err
			}
			out = append(out, h)
		}
		return rows.Err()
	})
	return out, err
}

// StatedPurpose is the purpose the node of the partner of trust domain td stated when its
// subscription last received or was refused records, and when; ok is false when it never has.
func (d *DB) StatedPurpose(ctx context.Context, td string) (purpose string, at time.Time, ok bool, err error) {
	err = d.read(func(ro *sql.DB) error {
		var nanos int64
		switch err := ro.QueryRowContext(ctx, `SELECT purpose, at FROM stated_purposes WHERE recipient = ?`, td).Scan(&purpose, &nanos); {
		case errors.Is(err, sql.ErrNoRows):
			return nil
		case err != nil:
			return err
		}
		at, ok = time.Unix(0, nanos), true
		return nil
	})
	return purpose, at, ok, err
}

// HeldUnderBy are the ids of the own records that holder holds now sent under the policy version
// id, alone or with others.
func (d *DB) HeldUnderBy(ctx context.Context, holder, id string) ([]string, error) {
	var out []string
	quoted, _ := json.Marshal(id)
	err := d.eachRow(ctx, `SELECT record_id FROM disclosures WHERE recipient = ? AND instr(policies, ?) > 0
		AND EXISTS (SELECT 1 FROM json_each(policies) WHERE value = ?) ORDER BY record_id`, []any{holder, string(quoted), id}, func(rows *sql.Rows) error {
		var rid string
		if err := rows.Scan(&rid); err != nil {
			return err
		}
		out = append(out, rid)
		return nil
	})
	return out, err
}

// Holding is what a holder holds of one record: the version, the policies it was sent under,
// and the redaction they made (see pb.Disclosure.redaction).
type Holding struct {
	Version   int64
	Policies  []string
	Redaction string
}

// HoldingOf returns what holder holds of one record, and when it was sent; ok is false when it
// holds no copy.
func (d *DB) HoldingOf(ctx context.Context, holder, recordID string) (h Holding, at time.Time, ok bool, err error) {
	err = d.read(func(ro *sql.DB) error {
		var pols string
		var nanos int64
		switch err := ro.QueryRowContext(ctx, `SELECT version, policies, redaction, at FROM disclosures WHERE recipient = ? AND record_id = ?`, holder, recordID).Scan(&h.Version, &pols, &h.Redaction, &nanos); {
		case errors.Is(err, sql.ErrNoRows):
			return nil
		case err != nil:
			return err
		}
		ok, at = true, time.Unix(0, nanos)
		return json.Unmarshal([]byte(pols), &h.Policies)
	})
	return h, at, ok, err
}

// DisclosedIn returns the records of mode m a holder holds, by id. Each mode is a feed of its
// own, and a subscription in one mode retracts only what it could have sent.
func (d *DB) DisclosedIn(ctx context.Context, holder string, m Mode) (map[string]Holding, error) {
	out := map[string]Holding{}
	err := d.read(func(ro *sql.DB) error {
		rows, err := ro.QueryContext(ctx, `SELECT d.record_id, d.version, d.policies, d.redaction FROM disclosures d LEFT JOIN records r ON r.id = d.record_id
			WHERE d.recipient = ? AND coalesce(r.status, 0) = ? AND coalesce(r.exercise, '') = ?`, holder, int32(m.Status), m.Exercise)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id, pols string
			var h Holding
			if err := rows.Scan(&id, &h.Version, &pols, &h.Redaction); err != nil {
				return err
			}
			if err := json.Unmarshal([]byte(pols), &h.Policies); err != nil {
				return fmt.Errorf("disclosure of %s to %s: policies: %w", id, holder, err)
			}
			out[id] = h
		}
		return rows.Err()
	})
	return out, err
}

// PendingRetractions returns the records of mode m whose retraction went out to a holder's
// subscription at or after cursor, and that the holder has not confirmed since: a subscription
// that starts from cursor counts them as possibly held, so that it retracts them again.
func (d *DB) PendingRetractions(ctx context.Context, holder string, m Mode, cursor int64) (map[string]int64, error) {
	return d.disclosed(ctx, `SELECT x.record_id, 0 FROM retractions x LEFT JOIN records r ON r.id = x.record_id
		WHERE x.recipient = ? AND x.seq >= ? AND coalesce(r.status, 0) = ? AND coalesce(r.exercise, '') = ?`, holder, cursor, int32(m.Status), m.Exercise)
}

func (d *DB) disclosed(ctx context.Context, q string, args ...any) (map[string]int64, error) {
	out := map[string]int64{}
	err := d.read(func(ro *sql.DB) error {
		rows, err := ro.QueryContext(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			var v int64
			if err := rows.Scan(&id, &v); err != nil {
				return err
			}
			out[id] = v
		}
		return rows.Err()
	})
	return out, err
}

// Recipients lists the holders of a copy of a record.
func (d *DB) Recipients(ctx context.Context, recordID string) ([]string, error) {
	var out []string
	err := d.read(func(ro *sql.DB) error {
		rows, err := ro.QueryContext(ctx, `SELECT recipient FROM disclosures WHERE record_id = ? ORDER BY recipient`, recordID)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var r string
			if err := rows.Scan(&r); err != nil {
				return err
			}
			out = append(out, r)
		}
		return rows.Err()
	})
	return out, err
}

// ApplyCacheForeign stores a subscription's delivery and its cursor in one transaction.
func (d *DB) ApplyCacheForeign(index uint64, c *pb.CacheForeign) error {
	_, err := d.ApplyCacheForeignRedacting(index, c)
	return err
}

// ApplyCacheForeignRedacting is ApplyCacheForeign, and reports whether a copy it replaced had
// been sent with another redaction than the new one: as after a retraction, what that copy
// held must then leave the data directory's files (see store's erasure).
func (d *DB) ApplyCacheForeignRedacting(index uint64, c *pb.CacheForeign) (redacting bool, err error) {
	at := c.At.AsTime().UnixNano()
	err = d.applyTx(index, func(tx *writeTx, _ *int64) error {
		hooks := hookQueue{tx: tx, purge: c.PurgesDeliveries}
		if c.Exercise != "" {
			// A delivery of an exercise that closed here meanwhile (its close dropped the
			// copies and the cursor) keeps only its retractions.
			state, err := exerciseState(tx, c.Exercise)
			if err != nil {
				return err
			}
			if state != ExerciseOpen {
				return retractForeign(tx, c, &hooks, at)
			}
		}
		for _, s := range c.Upserts {
			r := s.Record
			labels, _ := json.Marshal(nonNil(r.Labels))
			pol, _ := json.Marshal(nonNilSlice(s.Policies))
			red, _ := json.Marshal(nonNilSlice(s.Redacted))
			// A copy sent with another redaction than the one held (the source's policies
			// changed) withdraws what its earlier versions left in the history: they were
			// kept as redacted then, and may hold a field withheld now. The source says so
			// (redaction_changed) when the paths its policies remove changed, whether or not
			// this version has them: an earlier version may have had one.
			var was string
			held := &pb.Record{} // the copy a webhook may hold
			switch err := tx.QueryRow(`SELECT redacted, kind, crisis, region, classification, status, exercise FROM foreign_records WHERE origin = ? AND id = ?`, c.Origin, r.Id).
				Scan(&was, &held.Kind, &held.Crisis, &held.Region, &held.Classification, &held.Status, &held.Exercise); {
			case errors.Is(err, sql.ErrNoRows):
				held = nil
			case err != nil:
				return err
			case c.ByMode && ModeOf(held) != ModeOf(r):
				// The cache holds one copy of an id: a peer that reused an exercise's id for
				// another mode sends it on two subscriptions. The actual copy wins; an
				// exercise's copy never replaces another mode's (review D, F4).
				if ModeOf(r) != Actual {
					otherMode(c.Origin, r.Id, ModeOf(held), ModeOf(r))
					continue
				}
				heldIn := ModeOf(held)
				if err := retractOne(tx, c.Origin, r.Id, &heldIn, &hooks, at, c.PictureBookkeeping); err != nil {
					return err
				}
				held, redacting = nil, true
			case was != string(red) || s.RedactionChanged:
				if _, err := tx.Exec(sqlHistoryDrop, c.Origin, r.Id); err != nil {
					return err
				}
				if s.RedactionChanged {
					// Deliveries of the earlier versions not yet made (dead letters too) would
					// still carry a field withheld now: they go, and the copy below is queued
					// in their place. Only a source that says so (a field of this release) has
					// them dropped: a replica applying an older entry queues what its peers did.
					if _, err := tx.Exec(`DELETE FROM webhook_queue WHERE origin = ? AND record_id = ?`, c.Origin, r.Id); err != nil {
						return err
					}
				}
				redacting = true
			}
			if c.PictureBookkeeping && held != nil && held.Crisis != r.Crisis {
				if err := noteRemoval(tx, ModeOf(held), held.Crisis, c.Origin, held.Kind, at); err != nil {
					return err
				}
			}
			if _, err := tx.Exec(`INSERT OR REPLACE INTO foreign_records (origin, id, peer, kind, crisis, region, classification, labels, body, version, updated_at, valid_until, tombstone, policies, redacted, received_at, status, exercise)
				VALUES (?,?,?,?,?,?,?,?,?,?,?,?,0,?,?,?,?,?)`, c.Origin, r.Id, c.Peer, r.Kind, r.Crisis, r.Region, int32(r.Classification), string(labels), r.Body,
				r.Version, tsNanos(r.UpdatedAt), tsNanos(r.ValidUntil), string(pol), string(red), at, int32(r.Status), r.Exercise); err != nil {
				return err
			}
			if err := queueText(tx, c.Origin, r.Id); err != nil {
				return err
			}
			if _, err := setRefs(tx, c.Origin, r.Id, r.Body); err != nil {
				return err
			}
			if err := addHistory(tx, c.Origin, r, r.Version, false, c.PictureBookkeeping, labels); err != nil {
				return err
			}
			if err := hooks.add(EventChanged, c.Origin, r, r.Version, at, held); err != nil {
				return err
			}
		}
		if err := retractForeign(tx, c, &hooks, at); err != nil {
			return err
		}
		_, err := tx.Exec(`INSERT OR REPLACE INTO peer_cursors (peer, exercise, origin, cursor, updated_at) VALUES (?,?,?,?,?)`, c.Peer, c.Exercise, c.Origin, c.Cursor, at)
		return err
	})
	return redacting, err
}

// retractForeign purges the cached records a delivery retracts.
func retractForeign(tx *writeTx, c *pb.CacheForeign, hooks *hookQueue, at int64) error {
	for _, id := range c.Retractions {
		var m *Mode // an entry of a node before by_mode retracts the copy in whatever mode
		if c.ByMode {
			dm := deliveryMode(c)
			m = &dm
		}
		if err := retractOne(tx, c.Origin, id, m, hooks, at, c.PictureBookkeeping); err != nil {
			return err
		}
	}
	return nil
}

// deliveryMode is the mode of a subscription's delivery: its records' and its retractions'.
func deliveryMode(c *pb.CacheForeign) Mode {
	if c.Exercise == "" {
		return Actual
	}
	return Mode{Status: pb.Status_EXERCISE, Exercise: c.Exercise}
}

// otherMode logs a delivery of mode m left undone because the cache holds the record in mode
// held: every replica applies the entry alike, so each logs it.
func otherMode(origin, id string, held, m Mode) {
	slog.Warn("db: a partner's record is held in another mode; the delivery leaves it as it is",
		"origin", origin, "record", id, "held_mode", held.String(), "mode", m.String())
}

// retractOne purges one cached record of origin held in mode m (nil: in any mode, as an entry of
// a node before CacheForeign.by_mode has it): the webhooks that received it
// hear of its retraction, and its text, files and history go with it. bookkeeping (a marked
// entry, see pb.CacheForeign.picture_bookkeeping) notes that it left the picture. A copy held in
// another mode stays: a retraction on an exercise's subscription is not one of the actual copy
// of the same id, nor the other way round (review D, F4).
func retractOne(tx *writeTx, origin, id string, m *Mode, hooks *hookQueue, at int64, bookkeeping bool) error {
	gone := &pb.Record{Id: id, Origin: origin}
	var version int64
	switch err := tx.QueryRow(`SELECT kind, crisis, region, classification, version, status, exercise FROM foreign_records WHERE origin = +? AND id = +?`, origin, id).
		Scan(&gone.Kind, &gone.Crisis, &gone.Region, &gone.Classification, &version, &gone.Status, &gone.Exercise); {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return err
	case m != nil && ModeOf(gone) != *m:
		otherMode(origin, id, ModeOf(gone), *m)
		return nil
	default:
		gone.Tombstone = true
		if bookkeeping {
			if err := noteRemoval(tx, ModeOf(gone), gone.Crisis, origin, gone.Kind, at); err != nil {
				return err
			}
		}
		if err := hooks.load(); err != nil {
			return err
		}
		if len(hooks.hooks) > 0 {
			if err := hooks.add(EventRetracted, origin, gone, version, at, nil); err != nil {
				return err
			}
		}
	}
	if _, err := tx.Exec(`DELETE FROM foreign_records WHERE origin = +? AND id = +?`, origin, id); err != nil {
		return err
	}
	if err := queueText(tx, origin, id); err != nil {
		return err
	}
	if _, err := setRefs(tx, origin, id, nil); err != nil {
		return err
	}
	return dropHistory(tx, origin, id)
}

// noteRemoval keeps that a record of origin (empty for own records) and kind left the picture of
// crisis in mode m at at (unix nanoseconds), if that is later than what it kept: see Removals.
func noteRemoval(tx *writeTx, m Mode, crisis, origin, kind string, at int64) error {
	_, err := tx.Exec(`INSERT INTO picture_removals (crisis, status, exercise, origin, kind, at) VALUES (?,?,?,?,?,?)
		ON CONFLICT (crisis, status, exercise, origin, kind) DO UPDATE SET at = max(at, excluded.at)`,
		crisis, int32(m.Status), m.Exercise, origin, kind, at)
	return err
}

// Removal says when a record of a source and kind last left a crisis's picture at this node.
type Removal struct {
	// Origin is the peer's trust domain, or "" for the node's own records.
	Origin, Kind string
	At           time.Time
}

// Removals lists, for a crisis in mode m, when a record of each source and kind last left its
// picture here: an own record deleted or moved to another crisis; a cached one retracted (its
// source deleted it, or its policies no longer grant it) or moved. The time is the write's, or
// that of the delivery that brought the retraction. The alerts of crisis all (AllCrises)
// count in every crisis, as pictures show them. Entries of before this release (unmarked, see
// pb.WriteRecords.picture_bookkeeping) noted nothing.
func (d *DB) Removals(ctx context.Context, crisis string, m Mode) ([]Removal, error) {
	var out []Removal
	err := d.eachRow(ctx, `SELECT origin, kind, max(at) FROM picture_removals
		WHERE status = ? AND exercise = ? AND (crisis = ? OR (crisis = ? AND kind = ?)) GROUP BY origin, kind ORDER BY origin, kind`,
		[]any{int32(m.Status), m.Exercise, crisis, AllCrises, record.AlertKind}, func(rows *sql.Rows) error {
			var r Removal
			var at int64
			if err := rows.Scan(&r.Origin, &r.Kind, &at); err != nil {
				return err
			}
			r.At = time.Unix(0, at).UTC()
			out = append(out, r)
			return nil
		})
	return out, err
}

// ForeignIDs lists the ids of origin's records that this node holds in mode.
func (d *DB) ForeignIDs(ctx context.Context, origin string, mode Mode) ([]string, error) {
	var ids []string
	err := d.read(func(ro *sql.DB) error {
		rows, err := ro.QueryContext(ctx, `SELECT id FROM foreign_records WHERE origin = ? AND status = ? AND exercise = ?`, origin, int32(mode.Status), mode.Exercise)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return rows.Err()
	})
	return ids, err
}

// PeerCursor returns where a peer's subscription in the actual mode resumes, and when it last
// delivered.
func (d *DB) PeerCursor(ctx context.Context, peer string) (int64, time.Time, error) {
	return d.ModeCursor(ctx, peer, "")
}

// ModeCursor returns where a peer's subscription resumes in the mode of the exercise ("" the
// actual mode), and when it last delivered: each mode is a feed of its own, with its own cursor.
func (d *DB) ModeCursor(ctx context.Context, peer, exercise string) (int64, time.Time, error) {
	var cursor, at int64
	err := d.read(func(ro *sql.DB) error {
		err := ro.QueryRowContext(ctx, `SELECT cursor, updated_at FROM peer_cursors WHERE peer = ? AND exercise = ?`, peer, exercise).Scan(&cursor, &at)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		return err
	})
	if at == 0 {
		return cursor, time.Time{}, err
	}
	return cursor, time.Unix(0, at), err
}

// Foreign is a cached record received from a peer.
type Foreign struct {
	Record     *pb.Record
	Peer       string
	Policies   []string
	Redacted   []string
	ReceivedAt time.Time
}

// ForeignFilter selects cached records. Zero fields do not filter.
type ForeignFilter struct {
	Origin, Crisis, Region string
	Kinds                  []string
	Labels                 map[string]string
	UpdatedSince           time.Time
	// AfterOrigin and AfterID, when AfterOrigin is set, start the listing after that record, for
	// a caller that reads the cache a page at a time: pass the last record of the page before.
	AfterOrigin, AfterID string
	Limit                int
	// Mode is the mode of the read: the zero Mode reads actual records only.
	Mode Mode
	// IDs, when set, keeps only the records with these ids.
	IDs []string
}

// foreignListQuery is ForeignList's statement and its arguments: values bound as +?, the limit
// in the text (see noReprepare).
func foreignListQuery(f ForeignFilter) (string, []any) {
	where := []string{"status = +?", "exercise = +?"}
	args := []any{int32(f.Mode.Status), f.Mode.Exercise}
	add := func(cond string, v ...any) { where = append(where, cond); args = append(args, v...) }
	if f.Origin != "" {
		add("origin = +?", f.Origin)
	}
	if f.Crisis != "" {
		add("crisis = +?", f.Crisis)
	}
	if f.Region != "" {
		add("region = +?", f.Region)
	}
	if len(f.Kinds) > 0 {
		add("kind IN ("+marks("+?", len(f.Kinds))+")", anySlice(f.Kinds)...)
	}
	if len(f.IDs) > 0 {
		add("id IN ("+marks("+?", len(f.IDs))+")", anySlice(f.IDs)...)
	}
	for _, k := range sortedLabelKeys(f.Labels) {
		add("json_extract(labels, '$.' || json_quote(+?)) = +?", k, f.Labels[k])
	}
	if !f.UpdatedSince.IsZero() {
		add("updated_at >= +?", f.UpdatedSince.UnixNano())
	}
	if f.AfterOrigin != "" {
		add("(origin, id) > (+?, +?)", f.AfterOrigin, f.AfterID)
	}
	if f.Limit <= 0 {
		f.Limit = 10000
	}
	return `SELECT ` + foreignColumns + `
		FROM foreign_records WHERE ` + strings.Join(where, " AND ") + ` ORDER BY origin, id LIMIT ` + strconv.Itoa(f.Limit), args
}

// ForeignList returns cached records matching the filter, by origin and id.
func (d *DB) ForeignList(ctx context.Context, f ForeignFilter) ([]Foreign, error) {
	q, args := foreignListQuery(f)
	var out []Foreign
	err := d.eachRow(ctx, q, args, func(rows *sql.Rows) error {
		fr, err := scanForeign(rows)
		out = append(out, fr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("db: foreign list: %w", err)
	}
	return out, nil
}

// ForeignCount counts the cached records that ForeignList would return for the filter (at most
// its Limit), without reading them out.
func (d *DB) ForeignCount(ctx context.Context, f ForeignFilter) (int, error) {
	q, args := foreignListQuery(f)
	var n int
	err := d.read(func(ro *sql.DB) error {
		return ro.QueryRowContext(ctx, `SELECT count(*) FROM (`+q+`)`, args...).Scan(&n)
	})
	if err != nil {
		return 0, fmt.Errorf("db: foreign count: %w", err)
	}
	return n, nil
}

// foreignColumns are the columns scanForeign reads, in its order.
const foreignColumns = `origin, id, peer, kind, crisis, region, classification, labels, body, version, updated_at, valid_until, policies, redacted, received_at, status, exercise`

func scanForeign(rows *sql.Rows) (Foreign, error) { return scanForeignExtra(rows) }

// scanForeignExtra is scanForeign of a row with more columns after foreignColumns, read into
// extra.
func scanForeignExtra(rows scanner, extra ...any) (Foreign, error) {
	var (
		r                               pb.Record
		fr                              Foreign
		class, status                   int32
		labels, pol, red                string
		updated, validUntil, receivedAt int64
	)
	if err := rows.Scan(append([]any{&r.Origin, &r.Id, &fr.Peer, &r.Kind, &r.Crisis, &r.Region, &class, &labels, &r.Body, &r.Version, &updated, &validUntil, &pol, &red, &receivedAt, &status, &r.Exercise}, extra...)...); err != nil {
		return fr, err
	}
	r.Classification = pb.Classification(class)
	r.Status = pb.Status(status)
	if labels != "{}" {
		if err := json.Unmarshal([]byte(labels), &r.Labels); err != nil {
			return fr, fmt.Errorf("labels of %s/%s: %w", r.Origin, r.Id, err)
		}
	}
	r.UpdatedAt, r.ValidUntil = nanosTs(updated), nanosTs(validUntil)
	json.Unmarshal([]byte(pol), &fr.Policies)
	json.Unmarshal([]byte(red), &fr.Redacted)
	fr.Record, fr.ReceivedAt = &r, time.Unix(0, receivedAt)
	return fr, nil
}

// sortedLabelKeys are the keys of a label filter in order, so that a statement's text is the
// same for the same filter.
func sortedLabelKeys(labels map[string]string) []string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// marks is n parameter marks (? or +?), for a list such as IN (…).
func marks(mark string, n int) string {
	return strings.TrimSuffix(strings.Repeat(mark+",", n), ",")
}

func anySlice[T any](s []T) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

package db

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/knooppunt/knooppunt/node/record"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// Webhook events.
const (
	EventChanged   = "record.changed"
	EventDeleted   = "record.deleted"
	EventRetracted = "record.retracted"
)

// WebhookRow is a webhook's definition and its counters.
type WebhookRow struct {
	ID string
	// URL is the address as listings, logs and the audit log show it (see ShownURL); Target is
	// where deliveries go, the URL as added, which is never shown.
	URL, Target            string
	Kinds, Crises, Regions []string
	Exercise               string
	// MaxClassification is the highest classification delivered; unspecified is every one.
	MaxClassification pb.Classification
	Secret            string
	// OldSecret is the secret before the last rotation, with which deliveries are signed too
	// until OldSecretUntil; "" and zero when there is none.
	OldSecret       string
	OldSecretUntil  time.Time
	CreatedBy       string
	CreatedAt       time.Time
	Delivered       int64
	LastDeliveredAt time.Time
	Queued, Failed  int64
	// FailingSince is when the head of the queue first failed, LastError what it said; zero
	// and "" while the head has not failed (Webhooks fills them).
	FailingSince time.Time
	LastError    string
}

// OldSecretSigns is until when deliveries made at now are signed with the old secret too, or
// the zero time when they are not.
func (w *WebhookRow) OldSecretSigns(now time.Time) time.Time {
	if w.OldSecret == "" || !now.Before(w.OldSecretUntil) {
		return time.Time{}
	}
	return w.OldSecretUntil
}

// Delivery is one row of a webhook's queue.
type Delivery struct {
	Webhook        string
	Seq            int64
	Message        string
	Event          string
	Origin         string
	RecordID       string
	Version        int64
	Record         *pb.Record // nil from WebhookFailures
	EnqueuedAt     time.Time
	Attempts       int32
	LastError      string
	FirstAttemptAt time.Time
	FailedAt       time.Time
}

// hookFilter is what the FSM needs of a webhook to queue a change for it.
type hookFilter struct {
	id                     string
	kinds, crises, regions []string
	exercise               string
	ceiling                pb.Classification
	// withdraws: the webhook gets a record.retracted for a record that leaves what it delivers
	// (pb.WebhookStep.withdraws).
	withdraws bool
}

// match reports whether a record is for the webhook: of its kinds, crises and regions, not above
// its classification ceiling, and of its mode: an exercise's records go only to a webhook of that
// exercise, and every other status but actual to none.
func (h hookFilter) match(r *pb.Record) bool {
	if len(h.kinds) > 0 && !slices.Contains(h.kinds, r.Kind) {
		return false
	}
	if len(h.crises) > 0 && !slices.Contains(h.crises, r.Crisis) {
		return false
	}
	if len(h.regions) > 0 && !slices.Contains(h.regions, r.Region) {
		return false
	}
	// A record of no classification (a peer's that lacks one) is above every ceiling.
	if h.ceiling != pb.Classification_CLASSIFICATION_UNSPECIFIED && (r.Classification > h.ceiling || r.Classification == pb.Classification_CLASSIFICATION_UNSPECIFIED) {
		return false
	}
	if h.exercise == "" {
		return r.Status == pb.Status_ACTUAL
	}
	return r.Status == pb.Status_EXERCISE && r.Exercise == h.exercise
}

// sqlNextSeq takes the next seq of a webhook's queue: seqs only grow while the database lives (a
// restore from a backup winds them back, hence the hash in messageID).
const sqlNextSeq = `UPDATE webhooks SET next_seq = next_seq + 1 WHERE id = ? RETURNING next_seq`

// hookQueue queues, inside the transaction of a change, one delivery per webhook the change is
// for. It reads the webhooks once, at the first change of the transaction.
type hookQueue struct {
	tx     *writeTx
	loaded bool
	hooks  []hookFilter
	// purge: a record's deletion or retraction first takes its earlier deliveries
	// out of the webhook's queue, dead letters included (pb.WriteRecords.purges_deliveries).
	// They held its body after the delete, past the erasure bound, and a retry of a dead letter
	// sent an old version after the delete (review D, F5).
	purge bool
}

func (q *hookQueue) load() error {
	if q.loaded {
		return nil
	}
	q.loaded = true
	rows, err := q.tx.Query(`SELECT id, kinds, crises, regions, exercise, max_classification, withdraws FROM webhooks`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var h hookFilter
		var kinds, crises, regions string
		if err := rows.Scan(&h.id, &kinds, &crises, &regions, &h.exercise, &h.ceiling, &h.withdraws); err != nil {
			return err
		}
		json.Unmarshal([]byte(kinds), &h.kinds)
		json.Unmarshal([]byte(crises), &h.crises)
		json.Unmarshal([]byte(regions), &h.regions)
		q.hooks = append(q.hooks, h)
	}
	return rows.Err()
}

// add queues a change of a record (own when origin is "") at its version, made at time at, for
// every webhook it matches. was is the version before, which a webhook may hold (its kind,
// crisis, region, classification and mode; nil when there is none): a webhook that withdraws,
// that version matched and this one does not (a record that rose above its ceiling, or moved
// out of its region) gets a record.retracted instead, as the receiver knows the record: the
// version before's kind, crisis, region and classification, and no body.
func (q *hookQueue) add(event, origin string, r *pb.Record, version, at int64, was *pb.Record) error {
	if err := q.load(); err != nil {
		return err
	}
	var blob, withdrawn []byte
	for _, h := range q.hooks {
		switch {
		case h.match(r):
			if blob == nil {
				c := proto.Clone(r).(*pb.Record)
				c.Version = version
				if event == EventRetracted {
					// As a peer's retraction was always written, whatever it is filtered by.
					c.Classification = pb.Classification_CLASSIFICATION_UNSPECIFIED
				}
				var err error
				if blob, err = (proto.MarshalOptions{Deterministic: true}).Marshal(c); err != nil {
					return err
				}
			}
			if event != EventChanged {
				if err := q.purgeEarlier(h.id, origin, r.Id); err != nil {
					return err
				}
			}
			if err := q.queue(h.id, event, origin, r.Id, version, blob, at); err != nil {
				return err
			}
		case event == EventChanged && was != nil && h.withdraws && h.match(was):
			if withdrawn == nil {
				gone := &pb.Record{Id: r.Id, Origin: r.Origin, Kind: was.Kind, Crisis: was.Crisis, Region: was.Region, Classification: was.Classification,
					Version: version, Tombstone: true, Status: was.Status, Exercise: was.Exercise}
				var err error
				if withdrawn, err = (proto.MarshalOptions{Deterministic: true}).Marshal(gone); err != nil {
					return err
				}
			}
			if err := q.queue(h.id, EventRetracted, origin, r.Id, version, withdrawn, at); err != nil {
				return err
			}
		}
	}
	return nil
}

// purgeEarlier takes a record's deliveries out of a webhook's queue, dead letters included,
// when q purges.
func (q *hookQueue) purgeEarlier(hook, origin, id string) error {
	if !q.purge {
		return nil
	}
	_, err := q.tx.Exec(`DELETE FROM webhook_queue WHERE webhook = ? AND origin = ? AND record_id = ?`, hook, origin, id)
	return err
}

// queue adds one delivery to a webhook's queue.
func (q *hookQueue) queue(hook, event, origin, id string, version int64, blob []byte, at int64) error {
	var seq int64
	if err := q.tx.QueryRow(sqlNextSeq, hook).Scan(&seq); err != nil {
		return err
	}
	_, err := q.tx.Exec(`INSERT INTO webhook_queue (webhook, seq, message, event, origin, record_id, version, record, enqueued_at) VALUES (?,?,?,?,?,?,?,?,?)`,
		hook, seq, messageID(hook, seq, event, origin, blob), event, origin, id, version, blob, at)
	return err
}

// messageID is the id of the delivery of event of a record (blob, of origin) that a webhook
// queued as its seq-th: the webhook-id header, which a receiver acts on once. The seq alone
// came again after a restore from a backup, which winds the queue's counter back, for another
// change, which the receiver then dropped (review J, F9); the content's hash makes the id of
// another change another id, while every replica and every attempt give the same one.
func messageID(hook string, seq int64, event, origin string, blob []byte) string {
	h := sha256.New()
	for _, p := range [][]byte{[]byte(event), []byte(origin), blob} {
		h.Write(p)
		h.Write([]byte{0})
	}
	return fmt.Sprintf("msg_%s_%d_%x", hook, seq, h.Sum(nil)[:8])
}

// ApplyWebhookStep adds or removes a webhook, or queues its dead letters again, and audits the
// step. A step on a webhook that is not there (or an add of one that is) is a refusal every
// replica makes alike. It returns the webhook after the step and, for retry, how many dead
// letters were queued again.
func (d *DB) ApplyWebhookStep(index uint64, s *pb.WebhookStep) (row *WebhookRow, out RetryOutcome, refusal error, err error) {
	at := s.At.AsTime()
	w := s.Webhook
	err = d.applyTx(index, func(tx *writeTx, _ *int64) error {
		tx.hooks = true
		cur, err := scanWebhook(tx.QueryRow(`SELECT `+webhookColumns+` FROM webhooks WHERE id = ?`, w.GetId()))
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		a, err := newAuditor(tx)
		if err != nil {
			return err
		}
		switch s.Action {
		case "add":
			if cur != nil {
				refusal = fmt.Errorf("db: webhook %s exists", w.Id)
				return nil
			}
			kinds, _ := json.Marshal(nonNilSlice(w.Kinds))
			crises, _ := json.Marshal(nonNilSlice(w.Crises))
			regions, _ := json.Marshal(nonNilSlice(w.Regions))
			if _, err := tx.Exec(`INSERT INTO webhooks (id, url, kinds, crises, regions, exercise, max_classification, withdraws, secret, created_by, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)`,
				w.Id, w.Url, string(kinds), string(crises), string(regions), w.Exercise, int32(w.MaxClassification), s.Withdraws, w.Secret, s.By, at.UnixNano()); err != nil {
				return err
			}
			row = &WebhookRow{ID: w.Id, URL: ShownURL(w.Url), Target: w.Url, Kinds: w.Kinds, Crises: w.Crises, Regions: w.Regions, Exercise: w.Exercise, MaxClassification: w.MaxClassification,
				Secret: w.Secret, CreatedBy: s.By, CreatedAt: at.UTC()}
			detail := map[string]any{"url": auditURL(s, w.Url), "kinds": nonNilSlice(w.Kinds), "crises": nonNilSlice(w.Crises), "exercise": w.Exercise}
			// Only when set: the entries of webhooks added before these filters read as they did.
			if len(w.Regions) > 0 {
				detail["regions"] = w.Regions
			}
			if w.MaxClassification != pb.Classification_CLASSIFICATION_UNSPECIFIED {
				detail["max_classification"] = record.ClassificationName(w.MaxClassification)
			}
			return a.add(at, s.By, AuditWebhookAdd, w.Id, detail)
		case "remove":
			if cur == nil {
				refusal = ErrNotFound
				return nil
			}
			for _, q := range []string{`DELETE FROM webhooks WHERE id = ?`, `DELETE FROM webhook_queue WHERE webhook = ?`} {
				if _, err := tx.Exec(q, w.Id); err != nil {
					return err
				}
			}
			row = cur
			return a.add(at, s.By, AuditWebhookRemove, w.Id, map[string]any{"url": auditURL(s, cur.Target)})
		case "retry":
			if cur == nil {
				refusal = ErrNotFound
				return nil
			}
			dead, err := deadLetters(tx, w.Id)
			if err != nil {
				return err
			}
			// A set: a Retry may name many ids, and a webhook hold many failures.
			named := make(map[string]bool, len(s.MessageIds))
			for _, m := range s.MessageIds {
				named[m] = true
			}
			for _, x := range dead {
				m := x.message
				if len(named) > 0 && !named[m] {
					continue
				}
				if s.DropsSuperseded {
					var now int64
					if err := tx.QueryRow(sqlRecordVersion, x.origin, x.id).Scan(&now); err != nil {
						return err
					}
					if now > x.version {
						if _, err := tx.Exec(`DELETE FROM webhook_queue WHERE webhook = ? AND message = ?`, w.Id, m); err != nil {
							return err
						}
						out.Superseded++
						continue
					}
				}
				var seq int64
				if err := tx.QueryRow(sqlNextSeq, w.Id).Scan(&seq); err != nil {
					return err
				}
				if _, err := tx.Exec(`UPDATE webhook_queue SET seq = ?, dead = 0, attempts = 0, last_error = '', first_attempt_at = 0, failed_at = 0 WHERE webhook = ? AND message = ?`,
					seq, w.Id, m); err != nil {
					return err
				}
				out.Requeued++
			}
			row = cur
			detail := map[string]any{"queued": out.Requeued}
			if s.DropsSuperseded {
				detail["superseded"] = out.Superseded
			}
			return a.add(at, s.By, AuditWebhookRetry, w.Id, detail)
		case "rotate":
			if cur == nil {
				refusal = ErrNotFound
				return nil
			}
			// The secret before is kept only while deliveries are signed with it too.
			old, until := "", int64(0)
			if u := s.OldSecretUntil; u != nil && u.AsTime().After(at) {
				old, until = cur.Secret, u.AsTime().UnixNano()
			}
			if _, err := tx.Exec(`UPDATE webhooks SET secret = ?, old_secret = ?, old_secret_until = ? WHERE id = ?`, w.Secret, old, until, w.Id); err != nil {
				return err
			}
			row = cur
			row.Secret, row.OldSecret, row.OldSecretUntil = w.Secret, old, time.Time{}
			detail := map[string]any{}
			if until != 0 {
				row.OldSecretUntil = time.Unix(0, until).UTC()
				detail["old_secret_until"] = row.OldSecretUntil.Format(time.RFC3339)
			}
			return a.add(at, s.By, AuditWebhookRotate, w.Id, detail)
		}
		return fmt.Errorf("unknown webhook action %q", s.Action)
	})
	if err != nil {
		return nil, RetryOutcome{}, nil, err
	}
	return row, out, refusal, nil
}

// RetryOutcome is what a retry did with a webhook's dead letters: how many it queued again, and
// how many it dropped because their record has changed since (pb.WebhookStep.drops_superseded).
type RetryOutcome struct {
	Requeued, Superseded int64
}

// deadLetter is a dead letter's message id, and the record and version it delivers.
type deadLetter struct {
	message, origin, id string
	version             int64
}

// deadLetters are a webhook's dead letters, in queue order.
func deadLetters(tx *writeTx, webhook string) ([]deadLetter, error) {
	rows, err := tx.Query(`SELECT message, origin, record_id, version FROM webhook_queue WHERE webhook = ? AND dead = 1 ORDER BY seq`, webhook)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []deadLetter
	for rows.Next() {
		var x deadLetter
		if err := rows.Scan(&x.message, &x.origin, &x.id, &x.version); err != nil {
			return nil, err
		}
		out = append(out, x)
	}
	return out, rows.Err()
}

// sqlRecordVersion is the version a record has here now (0 when it is not here): an own record
// for an empty origin, else a partner's copy.
const sqlRecordVersion = `SELECT coalesce(CASE WHEN ?1 = '' THEN (SELECT version FROM records WHERE id = ?2)
	ELSE (SELECT version FROM foreign_records WHERE origin = ?1 AND id = ?2) END, 0)`

func queryStrings(tx *writeTx, q string, args ...any) ([]string, error) {
	rows, err := tx.Query(q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// ApplyWebhookAcks takes acknowledged deliveries out of a webhook's queue, notes when a failing
// one first failed (once), and turns those given up into dead letters. Seqs that are no longer queued (the webhook was removed) are skipped.
func (d *DB) ApplyWebhookAcks(index uint64, c *pb.WebhookAcks) error {
	at := c.At.AsTime().UnixNano()
	return d.applyTx(index, func(tx *writeTx, _ *int64) error {
		var n int64
		for _, seq := range c.Delivered {
			res, err := tx.Exec(`DELETE FROM webhook_queue WHERE webhook = ? AND seq = ? AND dead = 0`, c.Webhook, seq)
			if err != nil {
				return err
			}
			k, _ := res.RowsAffected()
			n += k
		}
		if n > 0 {
			if _, err := tx.Exec(`UPDATE webhooks SET delivered = delivered + ?, last_delivered_at = ? WHERE id = ?`, n, at, c.Webhook); err != nil {
				return err
			}
		}
		for _, f := range c.Failing {
			if _, err := tx.Exec(`UPDATE webhook_queue SET attempts = ?, last_error = ?, first_attempt_at = ? WHERE webhook = ? AND seq = ? AND dead = 0 AND first_attempt_at = 0`,
				f.Attempts, f.Error, tsNanos(f.FirstAttemptAt), c.Webhook, f.Seq); err != nil {
				return err
			}
		}
		for _, dl := range c.Dead {
			if _, err := tx.Exec(`UPDATE webhook_queue SET dead = 1, attempts = ?, last_error = ?, first_attempt_at = ?, failed_at = ? WHERE webhook = ? AND seq = ? AND dead = 0`,
				dl.Attempts, dl.Error, tsNanos(dl.FirstAttemptAt), at, c.Webhook, dl.Seq); err != nil {
				return err
			}
		}
		return nil
	})
}

// auditURL is the URL an audit entry of step s gives: as ShownURL shows it, or, for an entry of
// a node before shown_url, as it was, so that every replica writes the same entry.
func auditURL(s *pb.WebhookStep, raw string) string {
	if !s.ShownUrl {
		return raw
	}
	return ShownURL(raw)
}

// ShownURL is a webhook's URL as it may be shown: without its query, which may hold the
// receiver's token, and marked "?…" where it had one. The audit log keeps an entry for good,
// and logs, listings and stored failures are read by more people than the receiver's owner
// (review D, F9).
func ShownURL(raw string) string {
	if i := strings.IndexByte(raw, '?'); i >= 0 {
		return raw[:i] + "?…"
	}
	return raw
}

const webhookColumns = `id, url, kinds, crises, regions, exercise, max_classification, secret, old_secret, old_secret_until, created_by, created_at, delivered, last_delivered_at`

func scanWebhook(row scanner, extra ...any) (*WebhookRow, error) {
	var (
		w                      WebhookRow
		kinds, crises, regions string
		at, last, oldUntil     int64
	)
	if err := row.Scan(append([]any{&w.ID, &w.Target, &kinds, &crises, &regions, &w.Exercise, &w.MaxClassification, &w.Secret, &w.OldSecret, &oldUntil, &w.CreatedBy, &at, &w.Delivered, &last}, extra...)...); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, ErrNotFound
		}
		return nil, err
	}
	w.URL = ShownURL(w.Target)
	json.Unmarshal([]byte(kinds), &w.Kinds)
	json.Unmarshal([]byte(crises), &w.Crises)
	json.Unmarshal([]byte(regions), &w.Regions)
	w.CreatedAt = time.Unix(0, at).UTC()
	if last != 0 {
		w.LastDeliveredAt = time.Unix(0, last).UTC()
	}
	if oldUntil != 0 {
		w.OldSecretUntil = time.Unix(0, oldUntil).UTC()
	}
	return &w, nil
}

// Webhooks returns the webhooks by id, with their queue and dead-letter counts.
func (d *DB) Webhooks(ctx context.Context) ([]WebhookRow, error) {
	var out []WebhookRow
	err := d.read(func(ro *sql.DB) error {
		rows, err := ro.QueryContext(ctx, `SELECT `+webhookColumns+`,
			(SELECT count(*) FROM webhook_queue q WHERE q.webhook = w.id AND q.dead = 0),
			(SELECT count(*) FROM webhook_queue q WHERE q.webhook = w.id AND q.dead = 1),
			coalesce((SELECT first_attempt_at FROM webhook_queue q WHERE q.webhook = w.id AND q.dead = 0 ORDER BY seq LIMIT 1), 0),
			coalesce((SELECT last_error FROM webhook_queue q WHERE q.webhook = w.id AND q.dead = 0 ORDER BY seq LIMIT 1), '')
			FROM webhooks w ORDER BY id`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var queued, failed, since int64
			var lastErr string
			w, err := scanWebhook(rows, &queued, &failed, &since, &lastErr)
			if err != nil {
				return err
			}
			w.Queued, w.Failed, w.LastError = queued, failed, lastErr
			if since != 0 {
				w.FailingSince = time.Unix(0, since).UTC()
			}
			out = append(out, *w)
		}
		return rows.Err()
	})
	return out, err
}

// Webhook returns one webhook, with its secret, or ErrNotFound.
func (d *DB) Webhook(ctx context.Context, id string) (*WebhookRow, error) {
	var w *WebhookRow
	err := d.read(func(ro *sql.DB) error {
		var err error
		w, err = scanWebhook(ro.QueryRowContext(ctx, `SELECT `+webhookColumns+` FROM webhooks WHERE id = ?`, id))
		return err
	})
	return w, err
}

const deliveryColumns = `webhook, seq, message, event, origin, record_id, version, record, enqueued_at, attempts, last_error, first_attempt_at, failed_at`

// WebhookQueue returns up to limit queued deliveries of a webhook, in order.
func (d *DB) WebhookQueue(ctx context.Context, webhook string, limit int) ([]Delivery, error) {
	return d.deliveries(ctx, `SELECT `+deliveryColumns+` FROM webhook_queue WHERE webhook = ? AND dead = 0 ORDER BY seq LIMIT ?`, webhook, limit)
}

// failureColumns are deliveryColumns without the record, which a list of dead letters does not
// show: a receiver down for days leaves many, each up to limits.max_body_bytes.
const failureColumns = `webhook, seq, message, event, origin, record_id, version, NULL, enqueued_at, attempts, last_error, first_attempt_at, failed_at`

// WebhookFailures returns the dead letters of a webhook, or of every webhook when it is "",
// without their records (Record is nil).
func (d *DB) WebhookFailures(ctx context.Context, webhook string) ([]Delivery, error) {
	return d.deliveries(ctx, `SELECT `+failureColumns+` FROM webhook_queue WHERE dead = 1 AND (?1 = '' OR webhook = ?1) ORDER BY webhook, seq`, webhook)
}

func (d *DB) deliveries(ctx context.Context, q string, args ...any) ([]Delivery, error) {
	var out []Delivery
	err := d.read(func(ro *sql.DB) error {
		rows, err := ro.QueryContext(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				x                  Delivery
				blob               []byte
				enq, first, failed int64
			)
			if err := rows.Scan(&x.Webhook, &x.Seq, &x.Message, &x.Event, &x.Origin, &x.RecordID, &x.Version, &blob, &enq, &x.Attempts, &x.LastError, &first, &failed); err != nil {
				return err
			}
			if blob != nil { // else selected without it (failureColumns)
				x.Record = &pb.Record{}
				if err := proto.Unmarshal(blob, x.Record); err != nil {
					return fmt.Errorf("db: webhook %s delivery %d: %w", x.Webhook, x.Seq, err)
				}
			}
			x.EnqueuedAt = time.Unix(0, enq).UTC()
			if first != 0 {
				x.FirstAttemptAt = time.Unix(0, first).UTC()
			}
			if failed != 0 {
				x.FailedAt = time.Unix(0, failed).UTC()
			}
			out = append(out, x)
		}
		return rows.Err()
	})
	return out, err
}

package db

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/knooppunt/knooppunt/node/internal/jsonstr"
)

// AuditEntry is one entry of the audit log.
type AuditEntry struct {
	Seq      int64
	At       time.Time
	Actor    string
	Action   string
	Subject  string
	Detail   string // a JSON object
	PrevHash []byte
	Hash     []byte
}

// Audit actions.
const (
	AuditPolicyPropose   = "policy.propose"
	AuditPolicyApprove   = "policy.approve"
	AuditPolicyReject    = "policy.reject"
	AuditPolicyRevoke    = "policy.revoke"
	AuditPolicySupersede = "policy.supersede"
	AuditPhaseSet        = "phase.set"
	AuditRuleApply       = "rule.apply"
	AuditRuleDelete      = "rule.delete"
	AuditWebhookAdd      = "webhook.add"
	AuditWebhookRemove   = "webhook.remove"
	AuditWebhookRetry    = "webhook.retry"
	AuditWebhookRotate   = "webhook.rotate"
	AuditExerciseStart   = "exercise.start"
	AuditExerciseClose   = "exercise.close"
	// AuditRecordDelete and AuditRecordClassify are who deleted an own record, or changed its
	// classification, in entries written with actors (see WriteEntry.Actors).
	AuditRecordDelete   = "record.delete"
	AuditRecordClassify = "record.classify"
	// AuditRecordRead is a read of records classified confidential or higher through the
	// records' own calls (api.AuditRead): the actor read them, the detail says how and which.
	AuditRecordRead = "record.read"
	// AuditAccessDenied is a call that a person's role did not allow, refused on the web
	// interface's in-process channel; the subject is the method.
	AuditAccessDenied = "access.denied"
	// AuditHandshakeRefused is a handshake the node's listener refused: an untrusted CA, an
	// unknown trust domain, an expired SVID. The actor is the SPIFFE ID the client's
	// certificate claims, which did not verify.
	AuditHandshakeRefused = "tls.refused"
	// AuditClusterJoin and AuditClusterRemove are who added a replica to the node's Raft group,
	// or took one out; the subject is the replica's id. A replica holds every record.
	AuditClusterJoin   = "cluster.join"
	AuditClusterRemove = "cluster.remove"
	// AuditBackup is a copy of the whole database that a replica sent to the caller; the subject
	// is the replica's id, the detail the copy's SHA-256, size and applied index.
	AuditBackup = "backup"
	// AuditConfigReload is a change of the config file's peers or roles that a reload put in
	// force: subject the peer's trust domain, or "roles"; the actor names the replica whose
	// file it was.
	AuditConfigReload = "config.reload"
)

// AuditActions are every action the audit log holds, for filters to offer and check.
var AuditActions = []string{
	AuditPolicyPropose, AuditPolicyApprove, AuditPolicyReject, AuditPolicyRevoke, AuditPolicySupersede, AuditPhaseSet,
	AuditRecordDelete, AuditRecordClassify, AuditRecordRead,
	AuditRuleApply, AuditRuleDelete, AuditWebhookAdd, AuditWebhookRemove, AuditWebhookRetry, AuditWebhookRotate, AuditExerciseStart, AuditExerciseClose,
	AuditAccessDenied, AuditHandshakeRefused, AuditClusterJoin, AuditClusterRemove, AuditBackup,
	AuditDisclosure, AuditResend, AuditRetraction, AuditFederationDenied, AuditFederationNothing, AuditPurposeRefused, AuditSearch, AuditFileDisclosure,
	AuditPeerAdd, AuditPeerUpdate, AuditPeerReplace, AuditPeerRemove, AuditPeerLeave, AuditFork, AuditDisputed, AuditConfigReload,
}

// CheckAuditAction reports whether a filter's action names actions: one of AuditActions, or a
// prefix of some ending in a dot (policy.).
func CheckAuditAction(action string) bool {
	for _, a := range AuditActions {
		if a == action || (strings.HasSuffix(action, ".") && strings.HasPrefix(a, action)) {
			return true
		}
	}
	return false
}

// appendCanonical appends the encoding that is hashed: fixed field order, times in Unix
// nanoseconds. Its bytes are those json.Marshal gives
//
//	struct {
//		Seq     int64  `json:"seq"`
//		At      int64  `json:"at"` // UnixNano
//		Actor   string `json:"actor"`
//		Action  string `json:"action"`
//		Subject string `json:"subject"`
//		Detail  string `json:"detail"`
//	}
//
// as every entry so far was hashed. The strings are quoted as encoding/json quotes them
// (jsonstr) and the struct laid out by hand, without reflection, because it runs for every entry
// written and verified. TestCanonicalIsJSON and FuzzCanonical hold it to json.Marshal of the struct.
func (e *AuditEntry) appendCanonical(b []byte) []byte { return e.appendCanonicalQuoted(b, nil) }

// appendCanonicalQuoted is appendCanonical with the detail already quoted, as
// jsonstr.AppendEncodingJSON quotes it, when quotedDetail is not nil.
func (e *AuditEntry) appendCanonicalQuoted(b, quotedDetail []byte) []byte {
	b = append(b, `{"seq":`...)
	b = strconv.AppendInt(b, e.Seq, 10)
	b = append(b, `,"at":`...)
	b = strconv.AppendInt(b, e.At.UnixNano(), 10)
	b = append(b, `,"actor":`...)
	b = jsonstr.AppendEncodingJSON(b, e.Actor)
	b = append(b, `,"action":`...)
	b = jsonstr.AppendEncodingJSON(b, e.Action)
	b = append(b, `,"subject":`...)
	b = jsonstr.AppendEncodingJSON(b, e.Subject)
	b = append(b, `,"detail":`...)
	if quotedDetail != nil {
		b = append(b, quotedDetail...)
	} else {
		b = jsonstr.AppendEncodingJSON(b, e.Detail)
	}
	return append(b, '}')
}

// quoteInner is s quoted as jsonstr.AppendEncodingJSON quotes it, without the quotes around it.
func quoteInner(s string) string {
	q := jsonstr.AppendEncodingJSON(nil, s)
	return string(q[1 : len(q)-1])
}

// chainer hashes entries one after another, reusing its hash state and buffer.
type chainer struct {
	h   hash.Hash
	buf []byte
}

// hash is SHA-256 over prev and e's canonical encoding, with e's detail quoted as quotedDetail
// when that is not nil.
func (c *chainer) hash(prev []byte, e *AuditEntry, quotedDetail []byte) []byte {
	if c.h == nil {
		c.h = sha256.New()
	} else {
		c.h.Reset()
	}
	c.buf = e.appendCanonicalQuoted(c.buf[:0], quotedDetail)
	c.h.Write(prev)
	c.h.Write(c.buf)
	return c.h.Sum(make([]byte, 0, sha256.Size))
}

var genesis = make([]byte, sha256.Size)

// auditor appends to the audit log inside an Apply transaction.
type auditor struct {
	tx   *writeTx
	seq  int64
	prev []byte
}

// auditRows inserts audit entries of one time, actor and action (?1, ?2, ?3).
var auditRows = newBulk(`INSERT INTO audit (seq, at, actor, action, subject, detail, prev_hash, hash) VALUES `, 3, 5,
	func(p []int) string {
		return "(" + param(p[0]) + ", ?1, ?2, ?3, " + param(p[1]) + ", " + param(p[2]) + ", " + param(p[3]) + ", " + param(p[4]) + ")"
	}, ", ", "")

func newAuditor(tx *writeTx) (*auditor, error) {
	a := &auditor{tx: tx, prev: genesis}
	err := tx.QueryRow(`SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1`).Scan(&a.seq, &a.prev)
	if err != nil && err != sql.ErrNoRows {
		return nil, err
	}
	return a, nil
}

// add appends an entry; detail is marshalled to a JSON object.
func (a *auditor) add(at time.Time, actor, action, subject string, detail any) error {
	d := "{}"
	if detail != nil {
		b, err := json.Marshal(detail)
		if err != nil {
			return err
		}
		d = string(b)
	}
	return a.addRaw(at, actor, action, subject, d)
}

// addRaw appends an entry whose detail is already a JSON object.
func (a *auditor) addRaw(at time.Time, actor, action, subject, detail string) error {
	return a.addMany(at, actor, action, 1, func(int) (string, string, []byte) { return subject, detail, nil })
}

// addMany appends n entries of one time, actor and action; entry gives the subject and the
// detail (a JSON object) of the i-th, and the detail quoted as jsonstr.AppendEncodingJSON quotes it, or nil
// (the quoted bytes are read before entry is called again). The entries are chained in order, as
// n calls of addRaw would chain them, and inserted in bulk.
func (a *auditor) addMany(at time.Time, actor, action string, n int, entry func(i int) (subject, detail string, quotedDetail []byte)) error {
	e := AuditEntry{At: at, Actor: actor, Action: action}
	var c chainer
	err := auditRows.exec(a.tx, []any{at.UnixNano(), actor, action}, n, func(i int, args []any) []any {
		var quoted []byte
		e.Subject, e.Detail, quoted = entry(i)
		e.Seq, e.PrevHash = a.seq+1, a.prev
		e.Hash = c.hash(a.prev, &e, quoted)
		a.seq, a.prev = e.Seq, e.Hash
		return append(args, e.Seq, e.Subject, e.Detail, e.PrevHash, e.Hash)
	})
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return nil
}

// ApplyAudit appends entries that no other command implies, for the Raft entry at index.
func (d *DB) ApplyAudit(index uint64, entries []AuditEntry) error {
	return d.applyTx(index, func(tx *writeTx, _ *int64) error {
		a, err := newAuditor(tx)
		if err != nil {
			return err
		}
		for _, e := range entries {
			var detail any
			switch {
			case e.Detail == "":
			case json.Valid([]byte(e.Detail)):
				detail = json.RawMessage(e.Detail)
			default:
				// A detail that is not JSON is kept as the text it is, under not_json: refusing
				// it would stop this entry on every replica, and the group with it.
				detail = struct {
					NotJSON string `json:"not_json"`
				}{e.Detail}
			}
			if err := a.add(e.At, e.Actor, e.Action, e.Subject, detail); err != nil {
				return err
			}
		}
		return nil
	})
}

// AuditFilter selects audit entries. Zero fields do not filter.
type AuditFilter struct {
	Action, Actor, Subject string
	// Purpose selects entries whose detail states it (stated_purpose) or names it as the
	// purpose of a granting policy (purposes).
	Purpose string
	// Recipient selects entries whose detail names it, a trust domain, as recipient: what
	// went to every replica and user of a partner.
	Recipient string
	// Crisis selects entries whose detail names it as crisis: the disclosures and retractions
	// of its records.
	Crisis   string
	Since    time.Time
	AfterSeq int64
	// BeforeSeq, when not 0, takes the entries below it.
	BeforeSeq int64
	// SubjectPrefix matches Subject as the start of an entry's subject.
	SubjectPrefix bool
	Limit         int
	// Newest takes the last Limit entries that match rather than the first, in seq order.
	Newest bool
}

// AuditList returns entries in seq order.
func (d *DB) AuditList(ctx context.Context, f AuditFilter) ([]AuditEntry, error) {
	where := []string{"seq > ?"}
	args := []any{f.AfterSeq}
	if f.Action != "" {
		if strings.HasSuffix(f.Action, ".") {
			where, args = append(where, "action >= ? AND action < ?"), append(args, f.Action, f.Action+"\xff")
		} else {
			where, args = append(where, "action = ?"), append(args, f.Action)
		}
	}
	if f.Actor != "" {
		where, args = append(where, "actor = ?"), append(args, f.Actor)
	}
	switch {
	case f.Subject != "" && f.SubjectPrefix:
		where, args = append(where, "subject >= ? AND subject < ?"), append(args, f.Subject, f.Subject+"\U0010FFFF")
	case f.Subject != "":
		where, args = append(where, "subject = ?"), append(args, f.Subject)
	}
	if f.BeforeSeq > 0 {
		where, args = append(where, "seq < ?"), append(args, f.BeforeSeq)
	}
	if !f.Since.IsZero() {
		where, args = append(where, "at >= ?"), append(args, f.Since.UnixNano())
	}
	if f.Purpose != "" {
		// A detail that is not JSON is no error here, only no match: CASE evaluates its THEN
		// only when json_valid holds.
		where = append(where, `CASE WHEN json_valid(detail) THEN json_extract(detail, '$.stated_purpose') = ? OR
			EXISTS (SELECT 1 FROM json_each(detail, '$.purposes') WHERE json_each.value = ?) ELSE 0 END`)
		args = append(args, f.Purpose, f.Purpose)
	}
	for _, m := range [...]struct{ path, value string }{{"$.recipient", f.Recipient}, {"$.crisis", f.Crisis}} {
		if m.value != "" {
			// As for Purpose: a detail that is not JSON is no match.
			where, args = append(where, `CASE WHEN json_valid(detail) THEN json_extract(detail, '`+m.path+`') = ? ELSE 0 END`), append(args, m.value)
		}
	}
	if f.Limit <= 0 {
		f.Limit = 100
	}
	args = append(args, f.Limit)
	var out []AuditEntry
	err := d.read(func(ro *sql.DB) error {
		order := "seq"
		if f.Newest {
			order = "seq DESC"
		}
		rows, err := ro.QueryContext(ctx, `SELECT seq, at, actor, action, subject, detail, prev_hash, hash FROM audit WHERE `+strings.Join(where, " AND ")+` ORDER BY `+order+` LIMIT ?`, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			e, err := scanAudit(rows)
			if err != nil {
				return err
			}
			out = append(out, e)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("db: audit list: %w", err)
	}
	if f.Newest {
		slices.Reverse(out)
	}
	return out, nil
}

func scanAudit(row scanner) (AuditEntry, error) {
	var e AuditEntry
	var at int64
	err := row.Scan(&e.Seq, &at, &e.Actor, &e.Action, &e.Subject, &e.Detail, &e.PrevHash, &e.Hash)
	e.At = time.Unix(0, at).UTC()
	return e, err
}

// AuditReport is the outcome of AuditVerify.
type AuditReport struct {
	Entries     int64
	FirstBroken int64 // 0 when the chain verifies
	Problem     string
	Head        AuditAnchor // the last entry; zero when the log is empty
}

// AuditAnchor names one entry of the chain: its seq and its hash, hex-encoded.
type AuditAnchor struct {
	Seq  int64
	Hash string
}

// AuditVerify walks the whole chain and reports the first entry that does not verify: a changed
// entry (its hash is wrong), a deleted one (a gap in seq, or the next entry's previous hash does
// not match) or reordered ones. With an anchor (a head kept outside the node from an earlier
// verify; Seq 0 is none) the chain must also still hold that entry with that hash, which a chain
// rewritten from its start with every hash recomputed does not, and must not end before it.
func (d *DB) AuditVerify(ctx context.Context, anchor AuditAnchor) (AuditReport, error) {
	var rep AuditReport
	err := d.read(func(ro *sql.DB) error {
		rows, err := ro.QueryContext(ctx, `SELECT seq, at, actor, action, subject, detail, prev_hash, hash FROM audit ORDER BY rowid`)
		if err != nil {
			return err
		}
		defer rows.Close()
		prev := genesis
		var want int64 = 1
		var c chainer
		for rows.Next() {
			e, err := scanAudit(rows)
			if err != nil {
				return err
			}
			rep.Entries++
			if rep.FirstBroken != 0 {
				continue
			}
			switch {
			case e.Seq != want:
				rep.FirstBroken, rep.Problem = e.Seq, fmt.Sprintf("expected entry %d here, found %d: entries were deleted or reordered", want, e.Seq)
			case !bytes.Equal(e.PrevHash, prev):
				rep.FirstBroken, rep.Problem = e.Seq, "its previous-hash does not match the entry before it: entries were deleted or reordered"
			case !bytes.Equal(e.Hash, c.hash(prev, &e, nil)):
				rep.FirstBroken, rep.Problem = e.Seq, "its hash does not match its contents: the entry was changed"
			}
			if rep.FirstBroken == 0 && anchor.Seq != 0 && e.Seq == anchor.Seq && hex.EncodeToString(e.Hash) != anchor.Hash {
				rep.FirstBroken, rep.Problem = e.Seq, fmt.Sprintf("its hash is %x, not the anchor's %s: the chain was rewritten from this entry or before it", e.Hash, anchor.Hash)
			}
			prev = e.Hash
			want = e.Seq + 1
			rep.Head = AuditAnchor{Seq: e.Seq, Hash: hex.EncodeToString(e.Hash)}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if rep.FirstBroken == 0 && anchor.Seq >= want {
			rep.FirstBroken, rep.Problem = anchor.Seq, fmt.Sprintf("the log ends at entry %d, before the anchor's entry %d: entries were removed from its end", want-1, anchor.Seq)
		}
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("db: audit verify: %w", err)
	}
	return rep, nil
}

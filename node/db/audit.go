package db

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"
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
)

// canonical is the encoding that is hashed: fixed field order, times in Unix nanoseconds.
func (e *AuditEntry) canonical() []byte {
	b, _ := json.Marshal(struct {
		Seq     int64  `json:"seq"`
		At      int64  `json:"at"`
		Actor   string `json:"actor"`
		Action  string `json:"action"`
		Subject string `json:"subject"`
		Detail  string `json:"detail"`
	}{e.Seq, e.At.UnixNano(), e.Actor, e.Action, e.Subject, e.Detail})
	return b
}

func chainHash(prev []byte, e *AuditEntry) []byte {
	h := sha256.New()
	h.Write(prev)
	h.Write(e.canonical())
	return h.Sum(nil)
}

var genesis = make([]byte, sha256.Size)

// auditor appends to the audit log inside an Apply transaction.
type auditor struct {
	tx   *sql.Tx
	ins  *sql.Stmt // prepared at the first entry, once per transaction; the commit closes it
	seq  int64
	prev []byte
}

func newAuditor(tx *sql.Tx) (*auditor, error) {
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
	if a.ins == nil {
		ins, err := a.tx.Prepare(`INSERT INTO audit (seq, at, actor, action, subject, detail, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?)`)
		if err != nil {
			return fmt.Errorf("audit: %w", err)
		}
		a.ins = ins
	}
	e := &AuditEntry{Seq: a.seq + 1, At: at, Actor: actor, Action: action, Subject: subject, Detail: detail, PrevHash: a.prev}
	e.Hash = chainHash(a.prev, e)
	if _, err := a.ins.Exec(e.Seq, e.At.UnixNano(), e.Actor, e.Action, e.Subject, e.Detail, e.PrevHash, e.Hash); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	a.seq, a.prev = e.Seq, e.Hash
	return nil
}

// ApplyAudit appends entries that no other command implies, for the Raft entry at index.
func (d *DB) ApplyAudit(index uint64, entries []AuditEntry) error {
	return d.applyTx(index, func(tx *sql.Tx, _ *int64) error {
		a, err := newAuditor(tx)
		if err != nil {
			return err
		}
		for _, e := range entries {
			var detail any
			if e.Detail != "" {
				detail = json.RawMessage(e.Detail)
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
	Since                  time.Time
	AfterSeq               int64
	Limit                  int
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
	if f.Subject != "" {
		where, args = append(where, "subject = ?"), append(args, f.Subject)
	}
	if !f.Since.IsZero() {
		where, args = append(where, "at >= ?"), append(args, f.Since.UnixNano())
	}
	if f.Limit <= 0 {
		f.Limit = 100
	}
	args = append(args, f.Limit)
	var out []AuditEntry
	err := d.read(func(ro *sql.DB) error {
		rows, err := ro.QueryContext(ctx, `SELECT seq, at, actor, action, subject, detail, prev_hash, hash FROM audit WHERE `+strings.Join(where, " AND ")+` ORDER BY seq LIMIT ?`, args...)
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
}

// AuditVerify walks the whole chain and reports the first entry that does not verify: a changed
// entry (its hash is wrong), a deleted one (a gap in seq, or the next entry's previous hash does
// not match) or reordered ones.
func (d *DB) AuditVerify(ctx context.Context) (AuditReport, error) {
	var rep AuditReport
	err := d.read(func(ro *sql.DB) error {
		rows, err := ro.QueryContext(ctx, `SELECT seq, at, actor, action, subject, detail, prev_hash, hash FROM audit ORDER BY rowid`)
		if err != nil {
			return err
		}
		defer rows.Close()
		prev := genesis
		var want int64 = 1
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
			case !bytes.Equal(e.Hash, chainHash(prev, &e)):
				rep.FirstBroken, rep.Problem = e.Seq, "its hash does not match its contents: the entry was changed"
			}
			prev = e.Hash
			want = e.Seq + 1
		}
		return rows.Err()
	})
	if err != nil {
		return rep, fmt.Errorf("db: audit verify: %w", err)
	}
	return rep, nil
}

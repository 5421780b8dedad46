package db

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/knooppunt/knooppunt/policy"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// ErrPolicyNotFound means no policy has the id.
var ErrPolicyNotFound = errors.New("db: policy not found")

// ErrPolicyUnreadable refuses a step on a stored policy whose source this release no longer
// parses.
var ErrPolicyUnreadable = errors.New("db: policy unreadable")

// Policy step actions.
const (
	StepPropose = "propose"
	StepApprove = "approve"
	StepReject  = "reject"
	StepRevoke  = "revoke"
)

const policyColumns = `id, name, version, source, author, proposed_at, state, approvers, decided_at, decided_by, reason, required`

// PolicyRow is a stored policy version.
type PolicyRow struct {
	policy.Policy
	Required int
}

func scanPolicy(row scanner) (*PolicyRow, error) {
	var (
		p                 PolicyRow
		proposed, decided int64
		approvers         string
	)
	if err := row.Scan(&p.ID, &p.Name, &p.Version, &p.Source, &p.Author, &proposed, &p.State, &approvers, &decided, &p.DecidedBy, &p.Reason, &p.Required); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, ErrPolicyNotFound
		}
		return nil, err
	}
	p.ProposedAt = time.Unix(0, proposed).UTC()
	if decided != 0 {
		p.DecidedAt = time.Unix(0, decided).UTC()
	}
	if err := json.Unmarshal([]byte(approvers), &p.Approvers); err != nil {
		return nil, err
	}
	return &p, nil
}

func writePolicy(tx *writeTx, p *PolicyRow) error {
	approvers, _ := json.Marshal(nonNilSlice(p.Approvers))
	var decided int64
	if !p.DecidedAt.IsZero() {
		decided = p.DecidedAt.UnixNano()
	}
	_, err := tx.Exec(`INSERT OR REPLACE INTO policies (`+policyColumns+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)`,
		p.ID, p.Name, p.Version, p.Source, p.Author, p.ProposedAt.UnixNano(), p.State, string(approvers), decided, p.DecidedBy, p.Reason, p.Required)
	return err
}

func nonNilSlice(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// ApplyPolicyStep applies one lifecycle step for the Raft entry at index and audits it. A step
// the lifecycle rules refuse returns the refusal in the result and changes nothing but the
// applied index.
func (d *DB) ApplyPolicyStep(index uint64, s *pb.PolicyStep) (*PolicyRow, error, error) {
	var (
		out     *PolicyRow
		refusal error
	)
	at := s.At.AsTime()
	err := d.applyTx(index, func(tx *writeTx, _ *int64) error {
		a, err := newAuditor(tx)
		if err != nil {
			return err
		}
		if s.Action == StepPropose {
			parsed, err := policy.Parse(s.Source)
			if err != nil {
				refusal = err
				return nil
			}
			var version int
			if err := tx.QueryRow(`SELECT COALESCE(MAX(version), 0) FROM policies WHERE name = ?`, parsed.Doc.Name).Scan(&version); err != nil {
				return err
			}
			version++
			out = &PolicyRow{Policy: policy.Policy{
				ID: policy.PolicyID(parsed.Doc.Name, version), Name: parsed.Doc.Name, Version: version, Source: s.Source,
				Author: s.Officer, ProposedAt: at, State: policy.StateProposed,
			}, Required: int(s.ApprovalsRequired)}
			if err := writePolicy(tx, out); err != nil {
				return err
			}
			detail := map[string]any{"purpose": parsed.Doc.Purpose, "recipients": parsed.Doc.Recipients, "kinds": parsed.Doc.Kinds}
			if s.AuditDocument {
				documentDetail(detail, &parsed.Doc, s.Source)
			}
			return a.add(at, s.Officer, AuditPolicyPropose, out.ID, detail)
		}

		p, err := scanPolicy(tx.QueryRow(`SELECT `+policyColumns+` FROM policies WHERE id = ?`, s.PolicyId))
		if err != nil {
			if errors.Is(err, ErrPolicyNotFound) {
				refusal = err
				return nil
			}
			return err
		}
		switch s.Action {
		case StepApprove:
			parsed, err := policy.Parse(p.Source)
			if err != nil {
				// Proposed under a release that read it; one that reads stricter refuses the
				// approval, the same on every replica, rather than stop the group.
				refusal = fmt.Errorf("%w: %s no longer reads as a policy (%v): propose a new version", ErrPolicyUnreadable, p.ID, err)
				return nil
			}
			activated, err := policy.Approve(&p.Policy, &parsed.Doc, s.Officer, at, p.Required)
			if err != nil {
				refusal = err
				return nil
			}
			if err := writePolicy(tx, p); err != nil {
				return err
			}
			detail := map[string]any{"approvals": len(p.Approvers), "required": p.Required, "active": activated}
			if s.AuditDocument {
				documentDetail(detail, &parsed.Doc, p.Source)
			}
			if err := a.add(at, s.Officer, AuditPolicyApprove, p.ID, detail); err != nil {
				return err
			}
			if activated {
				if err := supersedeOlder(tx, a, p, at); err != nil {
					return err
				}
			}
		case StepReject:
			if refusal = policy.Reject(&p.Policy, s.Officer, s.Reason, at); refusal != nil {
				return nil
			}
			if err := writePolicy(tx, p); err != nil {
				return err
			}
			if err := a.add(at, s.Officer, AuditPolicyReject, p.ID, map[string]any{"reason": s.Reason}); err != nil {
				return err
			}
		case StepRevoke:
			if refusal = policy.Revoke(&p.Policy, s.Officer, s.Reason, at); refusal != nil {
				return nil
			}
			if err := writePolicy(tx, p); err != nil {
				return err
			}
			if err := a.add(at, s.Officer, AuditPolicyRevoke, p.ID, map[string]any{"reason": s.Reason}); err != nil {
				return err
			}
		default:
			return fmt.Errorf("unknown policy step %q", s.Action)
		}
		out = p
		return nil
	})
	d.generation.Add(1)
	return out, refusal, err
}

// supersedeOlder marks the older approved or proposed versions of p's name superseded.
func supersedeOlder(tx *writeTx, a *auditor, p *PolicyRow, at time.Time) error {
	rows, err := tx.Query(`SELECT `+policyColumns+` FROM policies WHERE name = ? AND version < ? AND state IN (?, ?)`, p.Name, p.Version, policy.StateApproved, policy.StateProposed)
	if err != nil {
		return err
	}
	var older []*PolicyRow
	for rows.Next() {
		o, err := scanPolicy(rows)
		if err != nil {
			rows.Close()
			return err
		}
		older = append(older, o)
	}
	rows.Close()
	for _, o := range older {
		if policy.Supersede(&o.Policy, p.ID, at) {
			if err := writePolicy(tx, o); err != nil {
				return err
			}
			if err := a.add(at, p.DecidedBy, AuditPolicySupersede, o.ID, map[string]any{"by": p.ID}); err != nil {
				return err
			}
		}
	}
	return nil
}

// GetPolicy returns one policy version.
func (d *DB) GetPolicy(ctx context.Context, id string) (*PolicyRow, error) {
	var p *PolicyRow
	err := d.read(func(ro *sql.DB) error {
		var err error
		p, err = scanPolicy(ro.QueryRowContext(ctx, `SELECT `+policyColumns+` FROM policies WHERE id = ?`, id))
		return err
	})
	return p, err
}

// ListPolicies returns policies, newest first within a name; state and name filter when set.
func (d *DB) ListPolicies(ctx context.Context, state, name string) ([]*PolicyRow, error) {
	q := `SELECT ` + policyColumns + ` FROM policies WHERE (? = '' OR state = ?) AND (? = '' OR name = ?) ORDER BY name, version DESC`
	var out []*PolicyRow
	err := d.read(func(ro *sql.DB) error {
		rows, err := ro.QueryContext(ctx, q, state, state, name, name)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			p, err := scanPolicy(rows)
			if err != nil {
				return err
			}
			out = append(out, p)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("db: list policies: %w", err)
	}
	return out, nil
}

// Phase is a crisis's phase.
type Phase struct {
	Crisis, Phase, SetBy, Reason string
	SetAt                        time.Time
	// Exercise is the exercise whose phase this is, "" for the actual crisis.
	Exercise string
}

// ApplyPhaseStep sets a crisis's phase for the Raft entry at index and audits it. It returns
// the previous phase ("" when none was set).
func (d *DB) ApplyPhaseStep(index uint64, s *pb.PhaseStep) (string, error) {
	var prev string
	at := s.At.AsTime()
	err := d.applyTx(index, func(tx *writeTx, _ *int64) error {
		if err := tx.QueryRow(`SELECT phase FROM phases WHERE exercise = ? AND crisis = ?`, s.Exercise, s.Crisis).Scan(&prev); err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if _, err := tx.Exec(`INSERT OR REPLACE INTO phases (exercise, crisis, phase, set_by, set_at, reason) VALUES (?,?,?,?,?,?)`, s.Exercise, s.Crisis, s.Phase, s.Officer, at.UnixNano(), s.Reason); err != nil {
			return err
		}
		a, err := newAuditor(tx)
		if err != nil {
			return err
		}
		detail := map[string]any{"from": prev, "to": s.Phase, "reason": s.Reason}
		if s.Exercise != "" {
			detail["exercise"] = s.Exercise
		}
		return a.add(at, s.Officer, AuditPhaseSet, s.Crisis, detail)
	})
	d.generation.Add(1)
	return prev, err
}

// Phases returns the phases set in every mode, or only crisis's when it is given, the actual
// ones first.
func (d *DB) Phases(ctx context.Context, crisis string) ([]Phase, error) {
	var out []Phase
	err := d.read(func(ro *sql.DB) error {
		rows, err := ro.QueryContext(ctx, `SELECT exercise, crisis, phase, set_by, set_at, reason FROM phases WHERE (? = '' OR crisis = ?) ORDER BY exercise, crisis`, crisis, crisis)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var p Phase
			var at int64
			if err := rows.Scan(&p.Exercise, &p.Crisis, &p.Phase, &p.SetBy, &at, &p.Reason); err != nil {
				return err
			}
			p.SetAt = time.Unix(0, at).UTC()
			out = append(out, p)
		}
		return rows.Err()
	})
	return out, err
}

// crisesQuery lists the crises, in order, that a table's live records of a mode name: a seek for
// the first crisis after the last one found, so that it costs a step per crisis, not per record.
// table is records (records_crisis_id starts with the mode, then the crisis) or foreign_records
// (foreign_records_crisis starts with the crisis; the planner would take foreign_records_mode and
// sort the mode's every record at each step).
func crisesQuery(table, index string) string {
	next := `SELECT crisis FROM ` + table + ` INDEXED BY ` + index + ` WHERE status = ?1 AND exercise = ?2 AND crisis > %s AND tombstone = 0 ORDER BY crisis LIMIT 1`
	return `WITH RECURSIVE c(crisis) AS (
		SELECT (` + fmt.Sprintf(next, "''") + `)
		UNION ALL
		SELECT (` + fmt.Sprintf(next, "c.crisis") + `) FROM c WHERE c.crisis IS NOT NULL)
	SELECT crisis FROM c WHERE crisis IS NOT NULL`
}

var (
	ownCrises     = crisesQuery("records", "records_crisis_id")
	foreignCrises = crisesQuery("foreign_records", "foreign_records_crisis")
)

// AllCrises is the crisis of a record that concerns every crisis: an early-warning rule's alert
// when the rule names no crisis, a CAP alert imported without --crisis. Such alerts are in the
// picture of every crisis.
const AllCrises = "all"

// Crises lists, in order, the crises that the node's own live records of the mode name and those
// of the peers' records it holds: the crises there is something to see of, phase set or not.
// AllCrises is left out: it is no crisis, but the alerts of every one.
func (d *DB) Crises(ctx context.Context, mode Mode) ([]string, error) {
	seen := map[string]bool{}
	err := d.read(func(ro *sql.DB) error {
		for _, q := range []string{ownCrises, foreignCrises} {
			rows, err := ro.QueryContext(ctx, q, int32(mode.Status), mode.Exercise)
			if err != nil {
				return err
			}
			for rows.Next() {
				var c string
				if err := rows.Scan(&c); err != nil {
					rows.Close()
					return err
				}
				if c != AllCrises {
					seen[c] = true
				}
			}
			if err := errors.Join(rows.Err(), rows.Close()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return slices.Sorted(maps.Keys(seen)), nil
}

// documentDetail adds to an audit detail what a policy document grants and the SHA-256 of its
// source: the ceiling, redactions, condition and phases (those set), so that the log says what an
// officer proposed or approved, and the hash ties it to the stored source byte for byte.
func documentDetail(detail map[string]any, doc *policy.Document, src []byte) {
	detail["max_classification"] = doc.MaxClassification
	if len(doc.Redact) > 0 {
		detail["redact"] = doc.Redact
	}
	if doc.When != "" {
		detail["when"] = doc.When
	}
	if len(doc.Phases) > 0 {
		detail["phases"] = doc.Phases
	}
	sum := sha256.Sum256(src)
	detail["sha256"] = hex.EncodeToString(sum[:])
}

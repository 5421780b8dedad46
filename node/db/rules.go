package db

import (
	"context"
	"database/sql"
	"errors"
	"time"

	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// RuleRow is an applied early-warning rule.
type RuleRow struct {
	Name      string
	Version   int64
	Source    []byte
	Severity  string
	AppliedBy string
	AppliedAt time.Time
}

// ApplyRuleStep applies or deletes a rule, and audits the step, in one transaction. Deleting a
// rule that is not there is a refusal, not an error: every replica refuses it alike, and the
// answer is (nil, ErrNotFound as refusal). It returns the rule after an apply, or the rule that
// was deleted.
func (d *DB) ApplyRuleStep(index uint64, s *pb.RuleStep) (row *RuleRow, refusal error, err error) {
	at := s.At.AsTime()
	err = d.applyTx(index, func(tx *writeTx, _ *int64) error {
		cur, err := scanRule(tx.QueryRow(`SELECT name, version, source, severity, applied_by, applied_at FROM rules WHERE name = ?`, s.Name))
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		a, aerr := newAuditor(tx)
		if aerr != nil {
			return aerr
		}
		if s.Delete {
			if cur == nil {
				refusal = ErrNotFound
				return nil
			}
			if _, err := tx.Exec(`DELETE FROM rules WHERE name = ?`, s.Name); err != nil {
				return err
			}
			row = cur
			return a.add(at, s.By, AuditRuleDelete, s.Name, map[string]any{"version": cur.Version, "reason": s.Reason})
		}
		row = &RuleRow{Name: s.Name, Version: 1, Source: s.Source, Severity: s.Severity, AppliedBy: s.By, AppliedAt: at.UTC()}
		if cur != nil {
			row.Version = cur.Version + 1
		}
		if _, err := tx.Exec(`INSERT OR REPLACE INTO rules (name, version, source, severity, applied_by, applied_at) VALUES (?,?,?,?,?,?)`,
			row.Name, row.Version, row.Source, row.Severity, row.AppliedBy, at.UnixNano()); err != nil {
			return err
		}
		return a.add(at, s.By, AuditRuleApply, s.Name, map[string]any{"version": row.Version, "severity": s.Severity, "reason": s.Reason})
	})
	if err != nil {
		return nil, nil, err
	}
	return row, refusal, nil
}

func scanRule(row scanner) (*RuleRow, error) {
	var (
		r  RuleRow
		at int64
	)
	if err := row.Scan(&r.Name, &r.Version, &r.Source, &r.Severity, &r.AppliedBy, &at); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, ErrNotFound
		}
		return nil, err
	}
	r.AppliedAt = time.Unix(0, at).UTC()
	return &r, nil
}

// Rules returns the applied rules by name.
func (d *DB) Rules(ctx context.Context) ([]RuleRow, error) {
	var out []RuleRow
	err := d.read(func(ro *sql.DB) error {
		rows, err := ro.QueryContext(ctx, `SELECT name, version, source, severity, applied_by, applied_at FROM rules ORDER BY name`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			r, err := scanRule(rows)
			if err != nil {
				return err
			}
			out = append(out, *r)
		}
		return rows.Err()
	})
	return out, err
}

// Rule returns the applied rule with the name, or ErrNotFound.
func (d *DB) Rule(ctx context.Context, name string) (*RuleRow, error) {
	var r *RuleRow
	err := d.read(func(ro *sql.DB) error {
		var err error
		r, err = scanRule(ro.QueryRowContext(ctx, `SELECT name, version, source, severity, applied_by, applied_at FROM rules WHERE name = ?`, name))
		return err
	})
	return r, err
}

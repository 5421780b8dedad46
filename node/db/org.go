package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// The org a database belongs to is kept in meta under 'org' (its trust domain, which SQLite
// keeps as text in that INTEGER column), written when a node first starts on the database. The
// origin of its records says it too, but an org that only receives holds none of its own, and
// its database (peers' copies, the peers it accepted) passed for any org's: restored under
// another org's config, that node served what partners shared with the first (review E, E2).
const sqlOrg = `SELECT coalesce((SELECT CAST(value AS TEXT) FROM meta WHERE key = 'org'), (SELECT origin FROM records LIMIT 1), '')`

// readOrigin is the org of the database h: the one noted in meta, or else the origin of its
// records ("" when it holds neither).
func readOrigin(ctx context.Context, h *sql.DB) (string, error) {
	var origin string
	err := h.QueryRowContext(ctx, sqlOrg).Scan(&origin)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("db: origin: %w", err)
	}
	return origin, nil
}

// KeepOrg notes org as the database's, when it notes none yet, beside the replicated state (as
// each replica does at its start; a snapshot or backup carries it). Call it once Origin has been
// checked against org.
func (d *DB) KeepOrg(org string) error {
	return d.localTx(func(tx *writeTx) (bool, error) {
		res, err := tx.Exec(`INSERT OR IGNORE INTO meta (key, value) VALUES ('org', ?)`, org)
		if err != nil {
			return false, fmt.Errorf("db: keep org: %w", err)
		}
		n, _ := res.RowsAffected()
		return n > 0, nil
	})
}

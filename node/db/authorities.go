package db

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"time"

	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// Authority is one X.509 authority of a trust domain's bundle, and when the bundle held it.
type Authority struct {
	DER       []byte
	FirstSeen time.Time
	// RemovedAt is when the bundle was first seen without it; zero while it holds it.
	RemovedAt time.Time
}

// Held reports whether the bundle held the authority at t: from when it was first seen until it
// was removed.
func (a Authority) Held(t time.Time) bool {
	return !t.Before(a.FirstSeen) && (a.RemovedAt.IsZero() || t.Before(a.RemovedAt))
}

// ApplyKeepAuthorities records a trust domain's bundle as the leader saw it, for the Raft entry
// at index: an authority new to it is held from c.At, and one it no longer has is removed at
// c.At. One that comes back counts as held from when it was first seen, the gap included.
func (d *DB) ApplyKeepAuthorities(index uint64, c *pb.KeepAuthorities) error {
	at := c.GetAt().AsTime().UnixNano()
	return d.applyTx(index, func(tx *writeTx, _ *int64) error {
		now := map[string]bool{}
		for _, der := range c.Authorities {
			sum := sha256.Sum256(der)
			now[string(sum[:])] = true
			if _, err := tx.Exec(`INSERT INTO authorities (trust_domain, sha256, der, first_seen) VALUES (?,?,?,?)
				ON CONFLICT (trust_domain, sha256) DO UPDATE SET removed_at = 0 WHERE removed_at != 0`,
				c.TrustDomain, sum[:], der, at); err != nil {
				return err
			}
		}
		rows, err := tx.Query(`SELECT sha256 FROM authorities WHERE trust_domain = ? AND removed_at = 0`, c.TrustDomain)
		if err != nil {
			return err
		}
		var gone [][]byte
		for rows.Next() {
			var sum []byte
			if err := rows.Scan(&sum); err != nil {
				rows.Close()
				return err
			}
			if !now[string(sum)] {
				gone = append(gone, sum)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, sum := range gone {
			if _, err := tx.Exec(`UPDATE authorities SET removed_at = ? WHERE trust_domain = ? AND sha256 = ?`, at, c.TrustDomain, sum); err != nil {
				return err
			}
		}
		return nil
	})
}

// Authorities returns every authority recorded for a trust domain, held now or removed, oldest
// first.
func (d *DB) Authorities(ctx context.Context, trustDomain string) ([]Authority, error) {
	var out []Authority
	err := d.eachRow(ctx, `SELECT der, first_seen, removed_at FROM authorities WHERE trust_domain = ? ORDER BY first_seen, sha256`,
		[]any{trustDomain}, func(rows *sql.Rows) error {
			var a Authority
			var first, removed int64
			if err := rows.Scan(&a.DER, &first, &removed); err != nil {
				return err
			}
			a.FirstSeen = time.Unix(0, first)
			if removed != 0 {
				a.RemovedAt = time.Unix(0, removed)
			}
			out = append(out, a)
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("db: authorities of %s: %w", trustDomain, err)
	}
	return out, nil
}

package db

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// AuditFork is the action of an entry that records evidence of a fork in a peer's audit chain.
const AuditFork = "audit.fork"

// AuditDisputed is the action of an entry that records a peer's answer that it kept a head of
// this node's own audit chain as evidence of a fork.
const AuditDisputed = "audit.disputed"

// KeptHeads and KeptForks bound what the node keeps of a peer's heads (KeepHead.bounded): its
// newest KeptHeads heads, and the first KeptForks pieces of evidence of a fork. A head of
// evidence beyond those is still answered as a fork, but neither kept nor audited again.
const (
	KeptHeads = 10000
	KeptForks = 100
)

// ApplyKeepHead keeps a peer's signed audit head for the Raft entry at index, within KeptHeads
// and KeptForks when the command is bounded. A head the table already holds (the same seq and hash) is not kept twice. A head for a seq the
// peer signed another hash for, or with a seq below the highest one held, is evidence that the
// peer's chain forked or was rewritten: it is kept with fork set, and audited as audit.fork. With
// by_time, a head below the highest is evidence only when the peer signed it after every held
// head of a higher seq: one signed before them came late (this node took the calls that waited
// while it paused in any order, and called the peer's chain forked; review H, F3). It returns
// that evidence, "" when there is none. The peer server verified the signature before; every
// replica decides alike from the table.
func (d *DB) ApplyKeepHead(index uint64, c *pb.KeepHead) (fork string, err error) {
	h := c.Head
	err = d.applyTx(index, func(tx *writeTx, _ *int64) error {
		fork = ""
		if h == nil {
			return nil // nothing to keep; the peer server never proposes this
		}
		var held []byte
		switch err := tx.QueryRow(`SELECT hash FROM witnessed_heads WHERE peer = ? AND seq = ? AND fork = 0 ORDER BY rowid LIMIT 1`, c.Peer, h.Seq).Scan(&held); {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return err
		case bytes.Equal(held, h.Hash):
			return nil // kept already
		default:
			fork = fmt.Sprintf("a second head for entry %d: hash %x, where %x was signed before", h.Seq, h.Hash, held)
		}
		if fork == "" {
			var top sql.NullInt64
			if err := tx.QueryRow(`SELECT max(seq) FROM witnessed_heads WHERE peer = ? AND fork = 0`, c.Peer).Scan(&top); err != nil {
				return err
			}
			if top.Valid && h.Seq < top.Int64 {
				fork = fmt.Sprintf("a head for entry %d, below entry %d signed before", h.Seq, top.Int64)
				if c.ByTime {
					var latest int64
					if err := tx.QueryRow(`SELECT max(at) FROM witnessed_heads WHERE peer = ? AND fork = 0 AND seq > ?`, c.Peer, h.Seq).Scan(&latest); err != nil {
						return err
					}
					if h.At.AsTime().UnixNano() <= latest {
						fork = "" // signed before a head it is below: it came late
					}
				}
			}
		}
		if fork != "" && c.Bounded {
			// The fork is proven: more evidence of it would only fill the disk.
			var forks int
			if err := tx.QueryRow(`SELECT count(*) FROM witnessed_heads WHERE peer = ? AND fork = 1`, c.Peer).Scan(&forks); err != nil {
				return err
			}
			if forks >= KeptForks {
				return nil
			}
		}
		chain, err := proto.Marshal(&pb.SignedHead{Chain: h.Chain})
		if err != nil {
			return err
		}
		if _, err := tx.Exec(`INSERT INTO witnessed_heads (peer, seq, hash, at, signer, signature, chain, received_at, fork) VALUES (?,?,?,?,?,?,?,?,?)`,
			// Bound as blobs, also when empty: a nil slice would be NULL, which the table refuses.
			c.Peer, h.Seq, nonNilBytes(h.Hash), h.At.AsTime().UnixNano(), c.Signer, nonNilBytes(h.Signature), nonNilBytes(chain),
			c.ReceivedAt.AsTime().UnixNano(), fork != ""); err != nil {
			return err
		}
		if fork == "" {
			if !c.Bounded {
				return nil
			}
			// The newest head of a chain vouches for every entry before it: older heads only
			// say when the peer signed what. Without a bound, a peer that raised its seq at
			// every call filled this table (review D, F1).
			_, err := tx.Exec(`DELETE FROM witnessed_heads WHERE rowid IN (SELECT rowid FROM witnessed_heads
				WHERE peer = ? AND fork = 0 ORDER BY seq DESC LIMIT -1 OFFSET ?)`, c.Peer, KeptHeads)
			return err
		}
		a, err := newAuditor(tx)
		if err != nil {
			return err
		}
		return a.add(c.ReceivedAt.AsTime(), c.Signer, AuditFork, c.Peer, map[string]any{"seq": h.Seq, "hash": fmt.Sprintf("%x", h.Hash), "evidence": fork})
	})
	if err != nil {
		return "", fmt.Errorf("db: keep head: %w", err)
	}
	return fork, nil
}

// HeadsOf returns the heads kept of a peer with seq above afterSeq, by seq and then as received:
// limit of them, and the rest of the last one's seq. Several heads share a seq when one is
// evidence of a fork, and a page that ended among them would hide the rest from a reader that
// goes on after that seq.
func (d *DB) HeadsOf(ctx context.Context, peer string, afterSeq int64, limit int) ([]*pb.HeldHead, error) {
	var out []*pb.HeldHead
	err := d.read(func(ro *sql.DB) error {
		rows, err := ro.QueryContext(ctx, `SELECT seq, hash, at, signature, chain, received_at, fork FROM witnessed_heads
			WHERE peer = ?1 AND seq > ?2 AND seq <= coalesce((SELECT seq FROM witnessed_heads WHERE peer = ?1 AND seq > ?2
				ORDER BY seq, rowid LIMIT 1 OFFSET ?3 - 1), 9223372036854775807)
			ORDER BY seq, rowid`, peer, afterSeq, limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			h := &pb.SignedHead{Org: peer}
			var at, received int64
			var chain []byte
			var fork bool
			if err := rows.Scan(&h.Seq, &h.Hash, &at, &h.Signature, &chain, &received, &fork); err != nil {
				return err
			}
			var c pb.SignedHead
			if err := proto.Unmarshal(chain, &c); err != nil {
				return fmt.Errorf("chain of head %d: %w", h.Seq, err)
			}
			h.Chain, h.At = c.Chain, timestamppb.New(time.Unix(0, at))
			out = append(out, &pb.HeldHead{Head: h, ReceivedAt: timestamppb.New(time.Unix(0, received)), Fork: fork})
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("db: heads of %s: %w", peer, err)
	}
	return out, nil
}

// AuditHead returns the last entry's seq and hash; 0 and nil when the log is empty.
func (d *DB) AuditHead(ctx context.Context) (int64, []byte, error) {
	var seq int64
	var hash []byte
	err := d.read(func(ro *sql.DB) error {
		err := ro.QueryRowContext(ctx, `SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1`).Scan(&seq, &hash)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		return err
	})
	if err != nil {
		return 0, nil, fmt.Errorf("db: audit head: %w", err)
	}
	return seq, hash, nil
}

// AuditHashAt returns the hash of the entry at seq, nil when the chain has no such entry.
func (d *DB) AuditHashAt(ctx context.Context, seq int64) ([]byte, error) {
	var hash []byte
	err := d.read(func(ro *sql.DB) error {
		err := ro.QueryRowContext(ctx, `SELECT hash FROM audit WHERE seq = ?`, seq).Scan(&hash)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("db: audit entry %d: %w", seq, err)
	}
	return hash, nil
}

// nonNilBytes is b, or an empty slice for nil.
func nonNilBytes(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

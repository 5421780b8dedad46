package db

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// Audit actions of peer steps.
const (
	AuditPeerAdd     = "peer.add"
	AuditPeerUpdate  = "peer.update"
	AuditPeerReplace = "peer.replace"
	AuditPeerRemove  = "peer.remove"
	AuditPeerLeave   = "peer.leave"
)

// Outcomes of a peer step that was applied.
const (
	PeerAdded     = "added"
	PeerUpdated   = "updated"
	PeerReplaced  = "replaced"
	PeerUnchanged = "unchanged"
	PeerRemoved   = "removed"
	PeerLeaving   = "leaving"
)

// Refusals of a peer step. The FSM decides them from the database alone, so every replica
// refuses the same steps; the step still advances the applied index.
var (
	// ErrPeerNotFound: no peer added through Raft has the trust domain.
	ErrPeerNotFound = errors.New("db: no such peer")
	// ErrPeerOtherBundle: the trust domain is a peer with another bundle, and the step did not
	// ask to replace it.
	ErrPeerOtherBundle = errors.New("db: peer has another bundle")
	// ErrPeerNameTaken: another peer has the name.
	ErrPeerNameTaken = errors.New("db: peer name taken")
	// ErrPeerNoBundle: the step would add a peer without a trust bundle to check it by.
	ErrPeerNoBundle = errors.New("db: peer step without a trust bundle")
)

// PeerOutcome is the answer to a peer step: what it did and the peer after it, or why it was
// refused.
type PeerOutcome struct {
	Outcome string
	Peer    *pb.PeerInfo
	Refusal error
}

// ApplyPeerStep applies one peer step at index. A step that is refused changes nothing but the
// applied index.
func (d *DB) ApplyPeerStep(index uint64, s *pb.PeerStep) (PeerOutcome, error) {
	var out PeerOutcome
	at := s.At.AsTime()
	err := d.applyTx(index, func(tx *writeTx, _ *int64) error {
		out = PeerOutcome{}
		if s.Peer == nil || s.Peer.TrustDomain == "" {
			out.Refusal = fmt.Errorf("%w: the step names no trust domain", ErrPeerNotFound)
			return nil
		}
		td := s.Peer.TrustDomain
		old, err := peerByTrustDomain(tx, td)
		if err != nil {
			return err
		}
		a, err := newAuditor(tx)
		if err != nil {
			return err
		}
		switch s.Action {
		case "leave":
			switch {
			case old == nil && len(s.Peer.Bundle) > 0:
				// A peer of the config file that the file no longer lists: kept here, leaving,
				// so that every replica trusts it until it holds nothing.
				var other string
				if err := tx.QueryRow(`SELECT trust_domain FROM peers WHERE name = ?`, s.Peer.Name).Scan(&other); err == nil {
					out.Refusal = fmt.Errorf("%w: %q is the name of peer %s", ErrPeerNameTaken, s.Peer.Name, other)
					return nil
				} else if !errors.Is(err, sql.ErrNoRows) {
					return err
				}
				p := s.Peer
				addrs, _ := json.Marshal(nonNilSlice(p.Addresses))
				groups, _ := json.Marshal(nonNilSlice(p.Groups))
				if _, err := tx.Exec(`INSERT INTO peers (trust_domain, name, org_name, addresses, bundle, bundle_endpoint,
					endpoint_id, groups, fingerprint, invitation, added_by, added_at, leaving_since) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)`,
					td, p.Name, p.OrgName, string(addrs), nonNilBytes(p.Bundle), p.BundleEndpoint, p.EndpointId, string(groups),
					p.Fingerprint, p.Invitation, s.Actor, at.UnixNano(), at.UnixNano()); err != nil {
					return err
				}
				if out.Peer, err = peerByTrustDomain(tx, td); err != nil {
					return err
				}
				out.Outcome = PeerLeaving
				return a.add(at, s.Actor, AuditPeerLeave, td, map[string]any{"name": p.Name, "fingerprint": p.Fingerprint, "reason": s.Reason})
			case old == nil:
				out.Refusal = fmt.Errorf("%w: %s", ErrPeerNotFound, td)
				return nil
			case old.LeavingSince != nil:
				out = PeerOutcome{Outcome: PeerUnchanged, Peer: old}
				return nil
			}
			if _, err := tx.Exec(`UPDATE peers SET leaving_since = ? WHERE trust_domain = ?`, at.UnixNano(), td); err != nil {
				return err
			}
			if out.Peer, err = peerByTrustDomain(tx, td); err != nil {
				return err
			}
			out.Outcome = PeerLeaving
			return a.add(at, s.Actor, AuditPeerLeave, td, map[string]any{"name": old.Name, "fingerprint": old.Fingerprint, "reason": s.Reason})
		case "remove":
			if old == nil {
				out.Refusal = fmt.Errorf("%w: %s", ErrPeerNotFound, td)
				return nil
			}
			if _, err := tx.Exec(`DELETE FROM peers WHERE trust_domain = ?`, td); err != nil {
				return err
			}
			out = PeerOutcome{Outcome: PeerRemoved, Peer: old}
			return a.add(at, s.Actor, AuditPeerRemove, td, map[string]any{"name": old.Name, "fingerprint": old.Fingerprint, "reason": s.Reason})
		case "add":
		default:
			// A replica of a newer release wrote an action this one does not know: stopping is
			// better than diverging.
			return fmt.Errorf("peer step: unknown action %q", s.Action)
		}
		p := s.Peer
		if p == nil || len(p.Bundle) == 0 {
			// The leader checks the invitation before it proposes the step; a step without a
			// bundle is refused here too rather than stop the replica on the table's NOT NULL.
			out.Refusal = fmt.Errorf("%w: %s", ErrPeerNoBundle, td)
			return nil
		}
		action := AuditPeerAdd
		switch {
		case old == nil:
			out.Outcome = PeerAdded
		case old.Invitation == p.Invitation && old.Fingerprint == p.Fingerprint && old.Name == p.Name && slices.Equal(old.Groups, nonNilSlice(p.Groups)):
			out = PeerOutcome{Outcome: PeerUnchanged, Peer: old}
			return nil
		case old.Fingerprint != p.Fingerprint && !s.Replace:
			out.Refusal = fmt.Errorf("%w: %s is a peer with the bundle of fingerprint %s, and this invitation has %s", ErrPeerOtherBundle, td, old.Fingerprint, p.Fingerprint)
			return nil
		case old.Fingerprint != p.Fingerprint:
			out.Outcome, action = PeerReplaced, AuditPeerReplace
		default:
			out.Outcome, action = PeerUpdated, AuditPeerUpdate
		}
		var other string
		if err := tx.QueryRow(`SELECT trust_domain FROM peers WHERE name = ? AND trust_domain != ?`, p.Name, td).Scan(&other); err == nil {
			out = PeerOutcome{Refusal: fmt.Errorf("%w: %q is the name of peer %s", ErrPeerNameTaken, p.Name, other)}
			return nil
		} else if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		addrs, _ := json.Marshal(nonNilSlice(p.Addresses))
		groups, _ := json.Marshal(nonNilSlice(p.Groups))
		if _, err := tx.Exec(`INSERT OR REPLACE INTO peers (trust_domain, name, org_name, addresses, bundle, bundle_endpoint,
			endpoint_id, groups, fingerprint, invitation, added_by, added_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)`,
			td, p.Name, p.OrgName, string(addrs), p.Bundle, p.BundleEndpoint, p.EndpointId, string(groups),
			p.Fingerprint, p.Invitation, s.Actor, at.UnixNano()); err != nil {
			return err
		}
		if out.Peer, err = peerByTrustDomain(tx, td); err != nil {
			return err
		}
		detail := map[string]any{"name": p.Name, "org_name": p.OrgName, "fingerprint": p.Fingerprint, "invitation": p.Invitation,
			"addresses": p.Addresses, "groups": p.Groups}
		if old != nil && old.Fingerprint != p.Fingerprint {
			detail["previous_fingerprint"] = old.Fingerprint
		}
		return a.add(at, s.Actor, action, td, detail)
	})
	if err == nil && out.Refusal == nil && out.Outcome != PeerUnchanged {
		d.peersGen.Add(1)
		if out.Outcome == PeerLeaving {
			// What the peer may have changed: its subscriptions decide again (Generation).
			d.generation.Add(1)
		}
	}
	return out, err
}

const peerColumns = `trust_domain, name, org_name, addresses, bundle, bundle_endpoint, endpoint_id, groups, fingerprint, invitation, added_by, added_at, leaving_since`

type rowScanner interface{ Scan(...any) error }

func scanPeer(r rowScanner) (*pb.PeerInfo, error) {
	var (
		p             pb.PeerInfo
		addrs, groups string
		addedAt       int64
		leavingSince  int64
	)
	if err := r.Scan(&p.TrustDomain, &p.Name, &p.OrgName, &addrs, &p.Bundle, &p.BundleEndpoint, &p.EndpointId, &groups,
		&p.Fingerprint, &p.Invitation, &p.AddedBy, &addedAt, &leavingSince); err != nil {
		return nil, err
	}
	if leavingSince != 0 {
		p.LeavingSince = timestamppb.New(time.Unix(0, leavingSince))
	}
	if err := json.Unmarshal([]byte(addrs), &p.Addresses); err != nil {
		return nil, fmt.Errorf("db: peer %s: addresses: %w", p.TrustDomain, err)
	}
	if err := json.Unmarshal([]byte(groups), &p.Groups); err != nil {
		return nil, fmt.Errorf("db: peer %s: groups: %w", p.TrustDomain, err)
	}
	p.AddedAt = timestamppb.New(time.Unix(0, addedAt))
	return &p, nil
}

func peerByTrustDomain(tx *writeTx, td string) (*pb.PeerInfo, error) {
	p, err := scanPeer(tx.QueryRow(`SELECT `+peerColumns+` FROM peers WHERE trust_domain = ?`, td))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return p, err
}

// Peers returns the peers added through Raft, by name.
func (d *DB) Peers(ctx context.Context) ([]*pb.PeerInfo, error) {
	var out []*pb.PeerInfo
	err := d.read(func(ro *sql.DB) error {
		rows, err := ro.QueryContext(ctx, `SELECT `+peerColumns+` FROM peers ORDER BY name`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			p, err := scanPeer(rows)
			if err != nil {
				return err
			}
			out = append(out, p)
		}
		return rows.Err()
	})
	slices.SortFunc(out, func(a, b *pb.PeerInfo) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return out, err
}

// PeersGeneration grows with every peer step that changed a peer, and at Restore: a node
// compares it to know when to merge its peers again.
func (d *DB) PeersGeneration() uint64 { return d.peersGen.Load() }

// HoldersOf counts the records the disclosures table says holders of a trust domain (its node,
// its people and apps) hold.
func (d *DB) HoldersOf(ctx context.Context, trustDomain string) (int64, error) {
	var n int64
	err := d.read(func(ro *sql.DB) error {
		prefix := "spiffe://" + trustDomain + "/"
		// A range on the primary key: recipient >= prefix and < prefix with its last byte raised.
		return ro.QueryRowContext(ctx, `SELECT count(*) FROM disclosures WHERE recipient >= ? AND recipient < ?`,
			prefix, prefix[:len(prefix)-1]+"0").Scan(&n)
	})
	return n, err
}

// LeftConfigFile is the invitation of a peer that leaves because the config file no longer
// lists it (see PeerStep leave).
const LeftConfigFile = "config file"

// PeerListing is how the peers table lists a peer: leaving or not, and whether it leaves because
// the config file dropped it.
type PeerListing struct {
	Leaving, LeftFile bool
}

// ListedPeers returns every peer of the peers table (accepted through Raft, or leaving) by trust
// domain, with whether it is leaving (see PeerStep leave).
func (d *DB) ListedPeers(ctx context.Context) (map[string]PeerListing, error) {
	out := map[string]PeerListing{}
	err := d.read(func(ro *sql.DB) error {
		rows, err := ro.QueryContext(ctx, `SELECT trust_domain, leaving_since != 0, invitation FROM peers`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var td, invitation string
			var leaving bool
			if err := rows.Scan(&td, &leaving, &invitation); err != nil {
				return err
			}
			out[td] = PeerListing{Leaving: leaving, LeftFile: leaving && invitation == LeftConfigFile}
		}
		return rows.Err()
	})
	return out, err
}

// LeavingPeers returns the peers of the peers table that are leaving (see PeerStep leave), by
// trust domain, each with whether it leaves because the config file dropped it.
func (d *DB) LeavingPeers(ctx context.Context) (map[string]bool, error) {
	listed, err := d.ListedPeers(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for td, l := range listed {
		if l.Leaving {
			out[td] = l.LeftFile
		}
	}
	return out, nil
}

package node

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/node/db"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

const (
	// refusalWindow is how often refusals of one key (a claimed ID; a caller and a method) are
	// audited at most: the first at once, the rest of the window as one entry with their count
	// when it ends.
	refusalWindow = time.Minute
	// maxRefusalKeys bounds the keys tracked in one window. Anyone can open a connection and
	// claim any ID, so beyond the bound they count under the other key (refusalOther).
	maxRefusalKeys = 64
	refusalOther   = "(other claimed IDs)"
	denialOther    = "(other callers)"
	maxClaimedLen  = 256
)

// refusals audits refused handshakes, or refused calls, without letting a flood of them flood
// the Raft log: per key at most one entry when the first refusal comes and one per window after.
// A removed peer that keeps retrying would otherwise write thousands of entries a day.
type refusals struct {
	window time.Duration
	append func(context.Context, []*pb.AuditEntry) error
	log    *slog.Logger
	// other is the key that counts the keys beyond maxRefusalKeys; entry makes a key's entry.
	other string
	entry func(key, reason string, count int, first, last time.Time) *pb.AuditEntry

	mu      sync.Mutex
	last    map[string]time.Time // claimed ID → when its last entry was written
	pending map[string]*pendingRefusal
	wake    chan struct{} // an entry to write at once
	now     []*pb.AuditEntry
}

type pendingRefusal struct {
	count       int
	first, last time.Time
	reason      string
}

// newRefusals audits refused handshakes (tls.refused), per claimed ID.
func newRefusals(window time.Duration, appendAudit func(context.Context, []*pb.AuditEntry) error, log *slog.Logger) *refusals {
	return &refusals{
		window: window, append: appendAudit, log: log, other: refusalOther, entry: refusalEntry,
		last: map[string]time.Time{}, pending: map[string]*pendingRefusal{}, wake: make(chan struct{}, 1),
	}
}

// newDenials audits refused federation calls (federation.denied), per caller and method.
func newDenials(window time.Duration, appendAudit func(context.Context, []*pb.AuditEntry) error, log *slog.Logger) *refusals {
	r := newRefusals(window, appendAudit, log)
	r.other, r.entry = denialOther, denialEntry
	return r
}

// refused is an identity.RefusalFunc: it never blocks the handshake.
func (r *refusals) refused(claimed, reason string) {
	if len(claimed) > maxClaimedLen {
		claimed = strings.ToValidUTF8(claimed[:maxClaimedLen], "") + "…"
	}
	r.add(claimed, reason)
}

// denied counts a refused call of a verified caller; it never blocks the refusal.
func (r *refusals) denied(caller, method, reason string) { r.add(caller+"\x00"+method, reason) }

func (r *refusals) add(key, reason string) {
	at := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, known := r.last[key]; !known && len(r.last) >= maxRefusalKeys {
		key = r.other
	}
	if t, ok := r.last[key]; !ok || at.Sub(t) >= r.window {
		r.last[key] = at
		r.now = append(r.now, r.entry(key, reason, 1, at, at))
		select {
		case r.wake <- struct{}{}:
		default:
		}
		return
	}
	p := r.pending[key]
	if p == nil {
		p = &pendingRefusal{first: at}
		r.pending[key] = p
	}
	p.count++
	p.last, p.reason = at, reason
}

// run writes entries until ctx ends, then writes what is pending.
func (r *refusals) run(ctx context.Context) {
	tick := time.NewTicker(r.window)
	defer tick.Stop()
	for {
		select {
		case <-r.wake:
			r.write(ctx, r.take(false))
		case <-tick.C:
			r.write(ctx, r.take(true))
		case <-ctx.Done():
			r.write(context.Background(), r.take(true))
			return
		}
	}
}

// take returns the entries to write: those due at once and, at the end of a window, the
// counts of the refusals it held back. It forgets claimed IDs whose window has passed.
func (r *refusals) take(window bool) []*pb.AuditEntry {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.now
	r.now = nil
	if !window {
		return out
	}
	at := time.Now()
	for key, p := range r.pending {
		e := r.entry(key, p.reason, p.count, p.first, p.last)
		// Dated when it is written, as the entries around it in the chain; the detail keeps when
		// the refusals it counts came (first, last).
		e.At = timestamppb.New(at)
		out = append(out, e)
		r.last[key] = at
	}
	clear(r.pending)
	for key, t := range r.last {
		if at.Sub(t) >= r.window {
			delete(r.last, key)
		}
	}
	return out
}

func (r *refusals) write(ctx context.Context, entries []*pb.AuditEntry) {
	if len(entries) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := r.append(ctx, entries); err != nil {
		r.log.Warn("could not audit refusals", "action", entries[0].Action, "entries", len(entries), "err", err)
	}
}

func refusalEntry(claimed, reason string, count int, first, last time.Time) *pb.AuditEntry {
	return countedEntry(db.AuditHandshakeRefused, claimed, "handshake", map[string]any{"claimed_id": claimed, "verified": false, "reason": reason}, count, first, last)
}

// denialEntry is the federation.denied entry of a caller and a method, as auditDenied wrote it
// before, with the count; the other key's names neither.
func denialEntry(key, reason string, count int, first, last time.Time) *pb.AuditEntry {
	caller, method, _ := strings.Cut(key, "\x00")
	return countedEntry(db.AuditFederationDenied, caller, method, map[string]any{"method": method, "reason": reason}, count, first, last)
}

func countedEntry(action, actor, subject string, d map[string]any, count int, first, last time.Time) *pb.AuditEntry {
	d["count"] = count
	if count > 1 {
		d["first"], d["last"] = first.UTC().Format(time.RFC3339Nano), last.UTC().Format(time.RFC3339Nano)
	}
	detail, _ := json.Marshal(d)
	return &pb.AuditEntry{At: timestamppb.New(last), Actor: actor, Action: action, Subject: subject, Detail: string(detail)}
}

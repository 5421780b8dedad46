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
	// refusalWindow is how often refusals from one claimed ID are audited at most: the first
	// at once, the rest of the window as one entry with their count when it ends.
	refusalWindow = time.Minute
	// maxRefusalKeys bounds the claimed IDs tracked in one window. Anyone can open a
	// connection and claim any ID, so beyond the bound they count under refusalOther.
	maxRefusalKeys = 64
	refusalOther   = "(other claimed IDs)"
	maxClaimedLen  = 256
)

// refusals audits refused handshakes without letting a flood of them flood the Raft log:
// per claimed ID at most one entry when the first refusal comes and one per window after.
type refusals struct {
	window time.Duration
	append func(context.Context, []*pb.AuditEntry) error
	log    *slog.Logger

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

func newRefusals(window time.Duration, appendAudit func(context.Context, []*pb.AuditEntry) error, log *slog.Logger) *refusals {
	return &refusals{
		window: window, append: appendAudit, log: log,
		last: map[string]time.Time{}, pending: map[string]*pendingRefusal{}, wake: make(chan struct{}, 1),
	}
}

// refused is an identity.RefusalFunc: it never blocks the handshake.
func (r *refusals) refused(claimed, reason string) {
	if len(claimed) > maxClaimedLen {
		claimed = strings.ToValidUTF8(claimed[:maxClaimedLen], "") + "…"
	}
	at := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, known := r.last[claimed]; !known && len(r.last) >= maxRefusalKeys {
		claimed = refusalOther
	}
	if t, ok := r.last[claimed]; !ok || at.Sub(t) >= r.window {
		r.last[claimed] = at
		r.now = append(r.now, refusalEntry(claimed, reason, 1, at, at))
		select {
		case r.wake <- struct{}{}:
		default:
		}
		return
	}
	p := r.pending[claimed]
	if p == nil {
		p = &pendingRefusal{first: at}
		r.pending[claimed] = p
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
	for claimed, p := range r.pending {
		out = append(out, refusalEntry(claimed, p.reason, p.count, p.first, p.last))
		r.last[claimed] = at
	}
	clear(r.pending)
	for claimed, t := range r.last {
		if at.Sub(t) >= r.window {
			delete(r.last, claimed)
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
		r.log.Warn("could not audit refused handshakes", "entries", len(entries), "err", err)
	}
}

func refusalEntry(claimed, reason string, count int, first, last time.Time) *pb.AuditEntry {
	d := map[string]any{"claimed_id": claimed, "verified": false, "reason": reason, "count": count}
	if count > 1 {
		d["first"], d["last"] = first.UTC().Format(time.RFC3339Nano), last.UTC().Format(time.RFC3339Nano)
	}
	detail, _ := json.Marshal(d)
	return &pb.AuditEntry{At: timestamppb.New(last), Actor: claimed, Action: db.AuditHandshakeRefused, Subject: "handshake", Detail: string(detail)}
}

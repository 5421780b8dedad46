package node

import (
	"context"
	"encoding/json"
	"log/slog"
	"strconv"
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
	// burst is how many entries of a key a window writes at once, each as it comes, before it
	// counts the rest.
	burst int

	mu      sync.Mutex
	last    map[string]*window // key → its window
	pending map[string]*pendingRefusal
	wake    chan struct{} // an entry to write at once
	now     []*pb.AuditEntry
}

// window is a key's window: when it began, and how many entries it wrote at once.
type window struct {
	start time.Time
	n     int
}

type pendingRefusal struct {
	count       int
	first, last time.Time
	reason      string
}

// newRefusals audits refused handshakes (tls.refused), per claimed ID.
func newRefusals(every time.Duration, appendAudit func(context.Context, []*pb.AuditEntry) error, log *slog.Logger) *refusals {
	return &refusals{
		window: every, append: appendAudit, log: log, other: refusalOther, entry: refusalEntry, burst: 1,
		last: map[string]*window{}, pending: map[string]*pendingRefusal{}, wake: make(chan struct{}, 1),
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
	w, ok := r.last[key]
	if !ok || at.Sub(w.start) >= r.window {
		w = &window{start: at}
		r.last[key] = w
	}
	if w.n < r.burst {
		w.n++
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
func (r *refusals) take(ended bool) []*pb.AuditEntry {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.now
	r.now = nil
	if !ended {
		return out
	}
	at := time.Now()
	for key, p := range r.pending {
		e := r.entry(key, p.reason, p.count, p.first, p.last)
		// Dated when it is written, as the entries around it in the chain; the detail keeps when
		// the refusals it counts came (first, last).
		e.At = timestamppb.New(at)
		out = append(out, e)
		// A new window, which writes nothing at once: its refusals are counted at its end.
		r.last[key] = &window{start: at, n: r.burst}
	}
	clear(r.pending)
	for key, w := range r.last {
		if at.Sub(w.start) >= r.window {
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

// unansweredBurst is how many federation.nothing and federation.denied entries of a caller's
// Query or FetchFile a window writes as they come, each with its filter, before it counts the
// rest: a person who searches a partner has each search written, a peer that searches without
// end one entry a minute after the first ten.
const unansweredBurst = 10

// newUnanswered audits a peer's calls that got nothing (federation.nothing, and federation.denied
// as the FederationService decides it), per caller, action and method: unansweredBurst a window
// as they come, then counted. Each was a Raft entry of up to some 2 KB, and a peer at its 50
// calls a second wrote gigabytes a day of them into the audit log, which cannot be pruned
// (review fed-adversary 3).
func newUnanswered(every time.Duration, appendAudit func(context.Context, []*pb.AuditEntry) error, log *slog.Logger) *refusals {
	r := newRefusals(every, appendAudit, log)
	r.other, r.entry, r.burst = denialOther, unansweredEntry, unansweredBurst
	return r
}

// unanswered counts a call that got nothing; it never blocks the call.
func (r *refusals) unanswered(action, caller, subject, method, reason, filter string) {
	r.add(strings.Join([]string{caller, action, method, subject}, "\x00"), reason+"\x00"+filter)
}

// unansweredEntry is the entry of a call that got nothing, as the FederationService wrote it
// before (method, reason, the caller's filter: the last one, when counted), with the count.
func unansweredEntry(key, reason string, count int, first, last time.Time) *pb.AuditEntry {
	parts := strings.SplitN(key, "\x00", 4)
	if len(parts) < 4 { // the other key
		return countedEntry(db.AuditFederationNothing, key, "", map[string]any{
			"reason": "calls of callers beyond the " + strconv.Itoa(maxRefusalKeys) + " counted apart that got nothing"}, count, first, last)
	}
	caller, action, method, subject := parts[0], parts[1], parts[2], parts[3]
	reason, filter, _ := strings.Cut(reason, "\x00")
	return countedEntry(action, caller, subject, map[string]any{"method": method, "reason": reason, "filter": filter}, count, first, last)
}

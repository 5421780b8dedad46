package node

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/knooppunt/knooppunt/node/db"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// auditSink collects what refusals writes, in order.
type auditSink struct {
	mu      sync.Mutex
	entries []*pb.AuditEntry
	writes  int
}

func (s *auditSink) append(_ context.Context, e []*pb.AuditEntry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.entries = append(s.entries, e...)
	s.writes++
	return nil
}

func (s *auditSink) snapshot() []*pb.AuditEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*pb.AuditEntry(nil), s.entries...)
}

func refusalCount(t *testing.T, e *pb.AuditEntry) int {
	t.Helper()
	var d struct {
		Claimed  string `json:"claimed_id"`
		Verified bool   `json:"verified"`
		Count    int    `json:"count"`
	}
	if err := json.Unmarshal([]byte(e.Detail), &d); err != nil {
		t.Fatalf("detail %q: %v", e.Detail, err)
	}
	if d.Claimed != e.Actor || d.Verified || e.Action != db.AuditHandshakeRefused {
		t.Fatalf("entry %+v: want action %s, claimed_id = actor, verified false", e, db.AuditHandshakeRefused)
	}
	return d.Count
}

// TestRefusalsBoundAFlood: the first refusal of a claimed ID is audited at once; the rest of
// its window become one entry with their count; claimed IDs beyond the bound count together;
// every refusal is in some count, and stopping writes what is held back.
func TestRefusalsBoundAFlood(t *testing.T) {
	sink := &auditSink{}
	r := newRefusals(time.Hour, sink.append, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.run(ctx); close(done) }()

	const ids, each = 100, 50
	for i := range ids {
		for range each {
			r.refused(fmt.Sprintf("spiffe://rogue.test/n%03d", i), "x509: certificate signed by unknown authority")
		}
	}

	// At once: one entry per tracked ID and one for the other IDs, not one per refusal.
	deadline := time.Now().Add(5 * time.Second)
	for len(sink.snapshot()) < maxRefusalKeys+1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := sink.snapshot(); len(got) != maxRefusalKeys+1 {
		t.Fatalf("%d entries written at once, want %d (one per tracked claimed ID, one for the others)", len(got), maxRefusalKeys+1)
	}

	cancel()
	<-done
	total, actors := 0, map[string]int{}
	for _, e := range sink.snapshot() {
		n := refusalCount(t, e)
		total += n
		actors[e.Actor] += n
	}
	if want := ids * each; total != want {
		t.Errorf("the entries count %d refusals, want %d", total, want)
	}
	if len(actors) != maxRefusalKeys+1 {
		t.Errorf("%d distinct actors, want %d", len(actors), maxRefusalKeys+1)
	}
	if got, want := actors[refusalOther], (ids-maxRefusalKeys)*each; got != want {
		t.Errorf("%s counts %d, want %d", refusalOther, got, want)
	}
	if got := actors["spiffe://rogue.test/n000"]; got != each {
		t.Errorf("the first claimed ID counts %d, want %d", got, each)
	}
}

// TestRefusalsWindow: after a window without refusals, the next is audited at once again; a
// claimed ID of any length is cut to a bound.
func TestRefusalsWindow(t *testing.T) {
	sink := &auditSink{}
	r := newRefusals(50*time.Millisecond, sink.append, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	wait := func(n int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for len(sink.snapshot()) < n {
			if time.Now().After(deadline) {
				t.Fatalf("%d entries, want %d", len(sink.snapshot()), n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	id := "spiffe://a.test/" + strings.Repeat("x", 1000)
	r.refused(id, "expired")
	r.refused(id, "expired")
	wait(2) // the first at once, the second at the end of its window
	if got := refusalCount(t, sink.snapshot()[1]); got != 1 {
		t.Fatalf("held-back entry counts %d, want 1", got)
	}
	time.Sleep(150 * time.Millisecond) // two quiet windows: the ID is forgotten
	r.refused(id, "expired")
	wait(3)
	if got := refusalCount(t, sink.snapshot()[2]); got != 1 {
		t.Fatalf("entry after a quiet window counts %d, want 1", got)
	}
	for _, e := range sink.snapshot() {
		if !strings.HasPrefix(id, strings.TrimSuffix(e.Actor, "…")) || len(e.Actor) != maxClaimedLen+len("…") {
			t.Errorf("actor %q is not the claimed ID cut to %d bytes", e.Actor, maxClaimedLen)
		}
	}
}

// TestRefusalsKeepTheChainInTimeOrder: a count written at the end of its window is dated then,
// not at its last refusal, so that an entry of another claimed ID written meanwhile is not later
// in time than the one after it in the audit chain.
func TestRefusalsKeepTheChainInTimeOrder(t *testing.T) {
	sink := &auditSink{}
	r := newRefusals(100*time.Millisecond, sink.append, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	r.refused("spiffe://a.test/n", "expired")
	r.refused("spiffe://a.test/n", "expired") // held back until the window ends
	time.Sleep(20 * time.Millisecond)
	r.refused("spiffe://b.test/n", "expired") // written at once, after the one held back came
	deadline := time.Now().Add(5 * time.Second)
	for len(sink.snapshot()) < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	got := sink.snapshot()
	if len(got) != 3 {
		t.Fatalf("%d entries, want 3", len(got))
	}
	for i := 1; i < len(got); i++ {
		if got[i].At.AsTime().Before(got[i-1].At.AsTime()) {
			t.Errorf("entry %d (%s, %s) is dated %v, before entry %d's %v", i, got[i].Actor, got[i].Detail, got[i].At.AsTime(), i-1, got[i-1].At.AsTime())
		}
	}
}

// TestDenialsGroupPerCallerAndMethod: a refused federation call is audited at once the first
// time a caller calls a method in a window; the rest become one entry with their count when the
// window ends, as refused handshakes do: a removed peer that retries every few seconds no longer
// writes an entry each time (review onboard F3).
func TestDenialsGroupPerCallerAndMethod(t *testing.T) {
	sink := &auditSink{}
	r := newDenials(100*time.Millisecond, sink.append, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	const caller, sub, query = "spiffe://removed.test/node/r1", "/knooppunt.v1.FederationService/Subscribe", "/knooppunt.v1.FederationService/Query"
	const why = "trust domain removed.test is not a configured peer of this node"
	for range 5 {
		r.denied(caller, sub, why)
	}
	r.denied(caller, query, why)
	deadline := time.Now().Add(5 * time.Second)
	for len(sink.snapshot()) < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	got := map[string]int{}
	for _, e := range sink.snapshot() {
		var d struct {
			Method, Reason string
			Count          int
		}
		if err := json.Unmarshal([]byte(e.Detail), &d); err != nil {
			t.Fatal(err)
		}
		if e.Action != db.AuditFederationDenied || e.Actor != caller || e.Subject != d.Method || d.Reason != why {
			t.Errorf("entry %+v: want federation.denied by %s, subject the method, and the reason", e, caller)
		}
		got[fmt.Sprintf("%s %d", d.Method, d.Count)]++
	}
	want := map[string]int{sub + " 1": 1, sub + " 4": 1, query + " 1": 1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("entries (method count: how many) %v, want %v", got, want)
	}
}

// TestUnansweredAreCountedAfterABurst: a peer's calls that got nothing are written as they come
// up to unansweredBurst in a window, each with its method, reason and filter, and the rest as one
// entry with their count and the last filter (review fed-adversary 3); another caller has a
// window of its own.
func TestUnansweredAreCountedAfterABurst(t *testing.T) {
	sink := &auditSink{}
	r := newUnanswered(time.Hour, sink.append, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.run(ctx); close(done) }()
	const peer, other = "spiffe://b.test/node/r1", "spiffe://b.test/user/eva"
	for i := range 50 {
		r.unanswered(db.AuditFederationNothing, peer, "b.test", "Query", "no record matches", fmt.Sprintf("text:\"woord%d\"", i))
	}
	r.unanswered(db.AuditFederationDenied, other, "b.test", "FetchFile", "no record granted to the caller names the file", "")
	deadline := time.Now().Add(5 * time.Second)
	for len(sink.snapshot()) < unansweredBurst+1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := sink.snapshot(); len(got) != unansweredBurst+1 {
		t.Fatalf("%d entries written at once, want %d (the peer's first %d, the other caller's one)", len(got), unansweredBurst+1, unansweredBurst)
	}
	cancel()
	<-done
	got := sink.snapshot()
	if len(got) != unansweredBurst+2 {
		t.Fatalf("%d entries in all, want %d", len(got), unansweredBurst+2)
	}
	var d struct {
		Method, Reason, Filter string
		Count                  int
	}
	if err := json.Unmarshal([]byte(got[0].Detail), &d); err != nil || got[0].Actor != peer || got[0].Action != db.AuditFederationNothing ||
		got[0].Subject != "b.test" || d.Method != "Query" || d.Reason != "no record matches" || d.Filter != `text:"woord0"` || d.Count != 1 {
		t.Errorf("the first entry: %v (%v)", got[0], err)
	}
	last := got[len(got)-1]
	if err := json.Unmarshal([]byte(last.Detail), &d); err != nil || last.Actor != peer || d.Count != 50-unansweredBurst || d.Filter != `text:"woord49"` {
		t.Errorf("the counted entry: %v, want the peer's other %d with the last filter", last, 50-unansweredBurst)
	}
}

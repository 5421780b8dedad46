package peerclient

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/knooppunt/knooppunt/node/config"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestOutageLogsLessAsItLasts: in an outage's first minute every failed attempt is a warning,
// then one in ten minutes, so that a peer down for a weekend is not thousands of lines; its end
// reports how long it lasted and how many attempts failed, and a new outage starts afresh.
func TestOutageLogsLessAsItLasts(t *testing.T) {
	var o outage
	t0 := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	if _, _, ok := o.up(t0); ok {
		t.Fatal("an open subscription reported the end of an outage")
	}
	warned := 0
	// One attempt every ten seconds for an hour.
	for s := 0; s < 3600; s += 10 {
		if o.failed(t0.Add(time.Duration(s) * time.Second)) {
			warned++
		}
	}
	// Six in the first minute, then at 10, 20, 30, 40 and 50 minutes.
	if warned != 11 {
		t.Errorf("%d warnings in an hour down, want 11", warned)
	}
	down, attempts, ok := o.up(t0.Add(time.Hour))
	if !ok || down != time.Hour || attempts != 360 {
		t.Errorf("the end of the outage: %v after %d attempts (%v), want 1h and 360", down, attempts, ok)
	}
	if !o.failed(t0.Add(2 * time.Hour)) {
		t.Error("the first failure of a new outage is not a warning")
	}
}

// TestCatchingUp: an open subscription is catching up from its opening until the partner's
// first heartbeat on it (a restart's backlog was hidden for the grace, review I, F20), and after
// that when the partner has said nothing of being caught up for longer than the grace, or than
// two of its own heartbeats when they come further apart; and while it is not open (the peer
// may answer a search the while: its copy takes in nothing).
func TestCatchingUp(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name string
		st   SubscriptionState
		now  time.Time
		want bool
	}{
		{"not open", SubscriptionState{Since: t0}, t0.Add(time.Millisecond), true},
		{"just opened", SubscriptionState{Open: true, Since: t0}, t0.Add(time.Millisecond), true},
		{"no heartbeat since it opened", SubscriptionState{Open: true, Since: t0}, t0.Add(11 * time.Second), true},
		{"a heartbeat before it opened", SubscriptionState{Open: true, Since: t0, CaughtUpAt: t0.Add(-time.Second)}, t0.Add(time.Millisecond), true},
		{"a heartbeat since it opened", SubscriptionState{Open: true, Since: t0, CaughtUpAt: t0.Add(time.Millisecond)}, t0.Add(5 * time.Second), false},
		{"a heartbeat lately", SubscriptionState{Open: true, Since: t0, CaughtUpAt: t0.Add(time.Minute)}, t0.Add(time.Minute + 9*time.Second), false},
		{"none for long", SubscriptionState{Open: true, Since: t0, CaughtUpAt: t0.Add(time.Minute)}, t0.Add(time.Minute + 11*time.Second), true},
		{"a partner of slow heartbeats", SubscriptionState{Open: true, Since: t0, CaughtUpAt: t0.Add(time.Minute), Every: 8 * time.Second}, t0.Add(time.Minute + 15*time.Second), false},
		{"spacing capped", SubscriptionState{Open: true, Since: t0, CaughtUpAt: t0.Add(time.Minute), Every: time.Hour}, t0.Add(time.Minute + 41*time.Second), true},
	} {
		if got := !c.st.CatchingUp(10*time.Second, c.now).IsZero(); got != c.want {
			t.Errorf("%s: catching up %v, want %v", c.name, got, c.want)
		}
	}
}

// TestABatchIsBoundedInBytes: a subscription stores a peer's large records a few at a time, not
// 256 to one Raft entry: eight records of a megabyte fill a batch, as 256 small changes do.
func TestABatchIsBoundedInBytes(t *testing.T) {
	m := New(Config{})
	b := m.newBatch(config.Peer{Name: "p", TrustDomain: "p.crisis.test"}, "", 0)
	body := []byte(`{"title":"t","notes":"` + strings.Repeat("x", 1<<20) + `"}`)
	for i := range 8 {
		if b.filled() {
			t.Fatalf("full after %d records of a megabyte", i)
		}
		b.add(&pb.FeedEvent{Seq: int64(i + 1), Event: &pb.FeedEvent_Upsert{Upsert: &pb.SharedRecord{Record: &pb.Record{
			Id: fmt.Sprint("groot-", i), Origin: "p.crisis.test", Kind: "sitrep", Crisis: "c", Region: "NL", Version: 1, Body: body}}}})
	}
	if b.size() != 8 || !b.filled() {
		t.Errorf("after eight records of a megabyte: %d in the batch, full %v; want 8, full", b.size(), b.filled())
	}
	b.reset()
	if b.filled() || b.bytes != 0 {
		t.Errorf("a batch stored is empty again: full %v, %d bytes", b.filled(), b.bytes)
	}
}

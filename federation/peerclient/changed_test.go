package peerclient

import (
	"testing"
	"time"
)

// TestChangedWhenASubscriptionOpensOrBreaks: Manager.Changed is closed when a subscription opens
// or breaks, or its first attempt fails, and not at each failed attempt to reconnect while it is
// down (review T, T3: the open pictures learn of it at once, also of a peer that stopped while the
// subscription was still connecting, and a peer that stays down does not wake them).
func TestChangedWhenASubscriptionOpensOrBreaks(t *testing.T) {
	m := New(Config{})
	s := &subscription{state: SubscriptionState{Since: time.Now()}, flipped: m.flip}
	closed := func(ch <-chan struct{}) bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
	for i, step := range []struct {
		st   SubscriptionState
		want bool
	}{
		{SubscriptionState{Err: "connection refused"}, true},  // the first attempt failed: a picture may have heard the peer meanwhile
		{SubscriptionState{Err: "connection refused"}, false}, // and the next
		{SubscriptionState{Open: true, Opened: true}, true},
		{SubscriptionState{Open: true, Opened: true}, false}, // opened again after a renewed SVID: no outage
		{SubscriptionState{Err: "EOF", Opened: true}, true},
		{SubscriptionState{Err: "connection refused", Opened: true}, false},
		{SubscriptionState{Open: true, Opened: true}, true},
	} {
		ch, gen := m.Changed()
		s.set(step.st)
		if got := closed(ch); got != step.want {
			t.Errorf("step %d (open %t, %q): Changed closed %t, want %t", i+1, step.st.Open, step.st.Err, got, step.want)
		}
		next, nextGen := m.Changed()
		if moved := nextGen != gen; moved != step.want {
			t.Errorf("step %d: the generation went from %d to %d; want it to move only when Changed is closed", i+1, gen, nextGen)
		}
		if closed(next) {
			t.Fatalf("step %d: the next Changed is closed already", i+1)
		}
	}
}

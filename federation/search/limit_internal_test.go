package search

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// refusal is the message of a RESOURCE_EXHAUSTED with the RetryInfo a client waits by, and that
// delay; the test fails on any other error.
func refusal(t *testing.T, err error) (string, time.Duration) {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != codes.ResourceExhausted {
		t.Fatalf("%v, want RESOURCE_EXHAUSTED", err)
	}
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			return st.Message(), ri.RetryDelay.AsDuration()
		}
	}
	t.Fatalf("%v carries no RetryInfo", err)
	return "", 0
}

// fakeLimits are the default limits on a clock that the test moves.
func fakeLimits() (*limits, *time.Time) {
	l := newLimits(0, 0, 0, 0, nil)
	now := time.Unix(1_800_000_000, 0)
	l.now = func() time.Time { return now }
	return l, &now
}

// TestLimitPerCaller: a caller's burst goes at once, the searches after it wait their turn up to
// MaxLimitWait, and the rest are refused, saying the limit and when to retry; another caller goes
// at once all the while, and the first is taken again once it waited as told.
func TestLimitPerCaller(t *testing.T) {
	l, now := fakeLimits()
	const loop = "spiffe://a.crisis.test/user/lus"
	for i := range DefaultCallerBurst {
		if wait, _, err := l.take(loop, ""); err != nil || wait != 0 {
			t.Fatalf("search %d of a burst of %d: wait %s, %v; want it at once", i+1, DefaultCallerBurst, wait, err)
		}
	}
	paced := int(float64(DefaultCallerRate) * MaxLimitWait.Seconds())
	for i := range paced {
		wait, _, err := l.take(loop, "")
		if want := time.Duration(i+1) * time.Second / time.Duration(DefaultCallerRate); err != nil || wait != want {
			t.Fatalf("search %d after the burst: wait %s, %v; want %s", i+1, wait, err, want)
		}
	}
	_, _, err := l.take(loop, "")
	msg, retry := refusal(t, err)
	if want := loop + " is over its limit of 10 searches a second that ask the partners (20 at once): slow down, and retry in 100ms"; msg != want {
		t.Errorf("refusal: %q, want %q", msg, want)
	}
	if retry != 100*time.Millisecond {
		t.Errorf("RetryInfo: %s, want 100ms", retry)
	}
	for _, other := range []string{"spiffe://a.crisis.test/user/anna", "local socket"} {
		if wait, _, err := l.take(other, ""); err != nil || wait != 0 {
			t.Errorf("%s while lus is over its limit: wait %s, %v; want it at once", other, wait, err)
		}
	}
	*now = now.Add(retry)
	if wait, _, err := l.take(loop, ""); err != nil || wait > MaxLimitWait {
		t.Errorf("lus after the wait it was told: wait %s, %v", wait, err)
	}
	// A search that gives up its turn (its caller went away) gives the turn back.
	l2, _ := fakeLimits()
	for range DefaultCallerBurst {
		l2.take(loop, "")
	}
	w1, cancel, _ := l2.take(loop, "")
	cancel()
	if w2, _, _ := l2.take(loop, ""); w2 != w1 {
		t.Errorf("after a turn given back: wait %s, want %s again", w2, w1)
	}
}

// TestLimitForTheNode: many callers at once are held, together, to the node's limit; and callers
// in loops, each within its own limit, leave room for a person who searches now and then, who
// never waits behind them.
func TestLimitForTheNode(t *testing.T) {
	l, now := fakeLimits()
	taken := 0
	var err error
	for i := 0; err == nil; i++ {
		_, _, err = l.take(fmt.Sprintf("spiffe://a.crisis.test/app/%d", i/DefaultCallerBurst), "")
		if err == nil {
			taken++
		}
	}
	msg, _ := refusal(t, err)
	if want := "this node is over its limit of 30 searches a second that ask the partners, for all its users together (60 at once)"; !strings.HasPrefix(msg, want) {
		t.Errorf("refusal: %q, want %q…", msg, want)
	}
	if want := DefaultNodeBurst + int(float64(DefaultNodeRate)*MaxLimitWait.Seconds()); taken != want {
		t.Errorf("callers of bursts at once: %d searches taken, want the node's burst and a second of its rate, %d", taken, want)
	}

	// Eight loops, each searching again as soon as its turn comes, for a minute; then a person
	// searches once a second beside them for another.
	l, now = fakeLimits()
	type loop struct {
		who    string
		next   time.Time
		served int
	}
	var loops []*loop
	for i := range 8 {
		loops = append(loops, &loop{who: fmt.Sprintf("spiffe://a.crisis.test/app/%d", i), next: *now})
	}
	start := *now
	anna := start.Add(time.Minute)
	var annaWaits []time.Duration
	for now.Before(start.Add(2 * time.Minute)) {
		first := loops[0]
		for _, lp := range loops {
			if lp.next.Before(first.next) {
				first = lp
			}
		}
		if anna.Before(first.next) {
			*now = anna
			wait, _, err := l.take("spiffe://a.crisis.test/user/anna", "")
			if err != nil {
				t.Fatalf("anna beside eight loops: %v", err)
			}
			annaWaits = append(annaWaits, wait)
			anna = anna.Add(time.Second)
			continue
		}
		*now = first.next
		wait, _, err := l.take(first.who, "")
		if err != nil {
			_, retry := refusal(t, err)
			first.next = now.Add(retry)
			continue
		}
		first.served++
		first.next = now.Add(max(wait, time.Millisecond))
	}
	served := 0
	for _, lp := range loops {
		served += lp.served
	}
	if most := 2*60*int(DefaultNodeRate) + DefaultNodeBurst; served > most {
		t.Errorf("eight loops were served %d searches in two minutes, over the node's limit (%d)", served, most)
	}
	for i, w := range annaWaits {
		if w > 50*time.Millisecond {
			t.Fatalf("anna's search %d of %d, once a second beside eight loops, waited %s for its turn; want none of them behind the loops", i+1, len(annaWaits), w)
		}
	}
}

// TestLimitForgetsIdleCallers: the buckets of many callers, once full again, are forgotten.
func TestLimitForgetsIdleCallers(t *testing.T) {
	l := newLimits(0, 0, rate.Inf, 0, nil)
	now := time.Unix(1_800_000_000, 0)
	l.now = func() time.Time { return now }
	for i := range 3 * maxCallers {
		now = now.Add(10 * time.Millisecond)
		if _, _, err := l.take(fmt.Sprintf("spiffe://a.crisis.test/app/%d", i), ""); err != nil {
			t.Fatal(err)
		}
	}
	if len(l.callers) > maxCallers {
		t.Errorf("%d callers kept, want at most %d", len(l.callers), maxCallers)
	}
}

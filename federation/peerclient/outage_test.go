package peerclient

import (
	"testing"
	"time"
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

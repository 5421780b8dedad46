package peerclient

import (
	"errors"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestRefusedSubscriptionBacksOffLonger: while a peer refuses this node (PermissionDenied: it
// removed this node, or has not accepted it yet) the wait before the next attempt grows to
// minutes, not the seconds of an outage, since each attempt is an entry in the peer's audit log
// (review onboard F3); any other failure keeps the short ceiling.
func TestRefusedSubscriptionBacksOffLonger(t *testing.T) {
	m := New(Config{})
	denied := status.Error(codes.PermissionDenied, "trust domain a.test is not a configured peer of this node")
	wrapped := errors.Join(errors.New("subscribe"), denied)
	down := status.Error(codes.Unavailable, "connection refused")
	walk := func(err error) time.Duration {
		d := m.c.Backoff
		for range 30 {
			d = m.next(d, err)
		}
		return d
	}
	if got := walk(down); got != 10*time.Second {
		t.Errorf("an unreachable peer: the delay grows to %s, want 10s", got)
	}
	for _, err := range []error{denied, wrapped} {
		if got := walk(err); got != 5*time.Minute {
			t.Errorf("a refusing peer (%v): the delay grows to %s, want 5m", err, got)
		}
	}
}

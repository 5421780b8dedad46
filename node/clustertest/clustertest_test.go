package clustertest

import (
	"net"
	"strconv"
	"testing"
)

// TestFreeAddrBelowEphemeralRange checks that FreeAddr's ports lie outside the range the kernel
// gives outgoing connections, and that they can be listened on.
func TestFreeAddrBelowEphemeralRange(t *testing.T) {
	low := ephemeralLow()
	seen := map[string]bool{}
	for range 50 {
		addr := FreeAddr(t)
		_, p, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatal(err)
		}
		port, _ := strconv.Atoi(p)
		if port < minTestPort || port >= low {
			t.Fatalf("FreeAddr gave %s, want a port in [%d, %d)", addr, minTestPort, low)
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("listen on %s: %v", addr, err)
		}
		l.Close()
		seen[addr] = true
	}
	if len(seen) < 40 {
		t.Errorf("50 draws gave only %d distinct addresses", len(seen))
	}
}

package clustertest

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
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

// TestReservedPortIsNotDrawnTwice reserves a port as another test process would, and checks that
// it is refused until it is released or its reservation is stale.
func TestReservedPortIsNotDrawnTwice(t *testing.T) {
	const port = minTestPort + 7
	release, ok := reservePort(port)
	if !ok {
		t.Skipf("port %d is reserved by a test running now", port)
	}
	if _, ok := reservePort(port); ok {
		t.Fatal("a reserved port was reserved again")
	}
	release()
	release, ok = reservePort(port)
	if !ok {
		t.Fatal("a released port could not be reserved")
	}
	defer release()
	old := time.Now().Add(-2 * reservationTTL)
	if err := os.Chtimes(filepath.Join(os.TempDir(), "knooppunt-test-ports", strconv.Itoa(port)), old, old); err != nil {
		t.Fatal(err)
	}
	if _, ok := reservePort(port); !ok {
		t.Fatal("a stale reservation was not taken over")
	}
}

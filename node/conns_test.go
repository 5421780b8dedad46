package node

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/knooppunt/knooppunt/federation/identity"
)

// handshakeListener is a byCaller on loopback with at most atOnce handshakes, perHost from one
// address, serving an SVID of a.test; clients need no certificate of their own.
func handshakeListener(t *testing.T, atOnce, perHost int) *byCaller {
	t.Helper()
	td := spiffeid.RequireTrustDomainFromString("a.test")
	ca, err := identity.NewCA(td, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	chain, key, err := ca.Issue(spiffeid.RequireFromPath(td, "/node/r1"), identity.SVIDOptions{})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{{Certificate: [][]byte{chain[0].Raw}, PrivateKey: key}}}
	b := splitByCallerLimited(l, cfg, td, atOnce, perHost)
	t.Cleanup(func() { b.Close() })
	return b
}

// idle opens a connection from the loopback address from that sends nothing.
func idle(t *testing.T, b *byCaller, from string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", b.l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// handshake makes a TLS handshake from the loopback address from within d.
func handshake(t *testing.T, b *byCaller, from string, d time.Duration) error {
	t.Helper()
	c := idle(t, b, from)
	defer c.Close()
	c.SetDeadline(time.Now().Add(d))
	return tls.Client(c, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}}).Handshake()
}

// closedAtOnce says whether the node closed c without a word: a read ends with EOF, not with
// its deadline.
func closedAtOnce(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	_, err := c.Read(make([]byte, 1))
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err)
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && !op.Timeout()
}

// TestHandshakesPerHostAreBounded: connections from one address that send nothing hold at most
// the per-host number of handshakes; the rest are closed at once, and another host still gets
// its handshake. Without the bound each held a goroutine for the handshake timeout, as many as
// a host cared to open.
func TestHandshakesPerHostAreBounded(t *testing.T) {
	b := handshakeListener(t, 64, 4)
	go func() { // what the gRPC servers would take
		for {
			c, err := b.peers.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	var conns []net.Conn
	for range 10 {
		conns = append(conns, idle(t, b, "127.0.0.1"))
	}
	// Those the listener accepted first hold the handshakes; the order it accepts in is theirs.
	time.Sleep(200 * time.Millisecond)
	closed := 0
	for _, c := range conns {
		if closedAtOnce(c) {
			closed++
		}
	}
	if closed != 6 {
		t.Errorf("of 10 silent connections from one host, %d were closed at once, want 6 (4 may wait for their handshake)", closed)
	}
	if err := handshake(t, b, "127.0.0.2", 5*time.Second); err != nil {
		t.Errorf("another host's handshake while one host holds its four: %v", err)
	}
}

// TestHandshakesAtOnceAreBounded: beyond the bound of handshakes at once, the listener takes no
// connection until one ends.
func TestHandshakesAtOnceAreBounded(t *testing.T) {
	b := handshakeListener(t, 2, 16)
	go func() {
		for {
			c, err := b.peers.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	first, _ := idle(t, b, "127.0.0.1"), idle(t, b, "127.0.0.1")
	time.Sleep(100 * time.Millisecond)
	if err := handshake(t, b, "127.0.0.2", 500*time.Millisecond); err == nil {
		t.Fatal("a third handshake while two silent connections hold both: made, want it to wait")
	}
	// The one that gave up, closed, takes the place that frees, and gives it up at once.
	first.Close()
	if err := handshake(t, b, "127.0.0.2", 5*time.Second); err != nil {
		t.Errorf("a handshake once a silent connection closed: %v", err)
	}
}

package node

import (
	"net"
	"sync"
)

// conns is a listener that knows its open connections by their remote address, so that the
// node can close one whose SVID no longer verifies (identity.Recheck): gRPC gives a call its
// peer's address, not a way to end its connection.
type conns struct {
	net.Listener
	mu   sync.Mutex
	open map[string]net.Conn
}

func trackConns(l net.Listener) *conns {
	return &conns{Listener: l, open: map[string]net.Conn{}}
}

// Accept implements net.Listener.
func (l *conns) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	t := &trackedConn{Conn: c, of: l}
	l.mu.Lock()
	l.open[c.RemoteAddr().String()] = t
	l.mu.Unlock()
	return t, nil
}

// drop closes the connection from addr, if it is open.
func (l *conns) drop(addr net.Addr) {
	if addr == nil {
		return
	}
	l.mu.Lock()
	c := l.open[addr.String()]
	l.mu.Unlock()
	if c != nil {
		c.Close()
	}
}

type trackedConn struct {
	net.Conn
	of   *conns
	once sync.Once
}

// Close implements net.Conn.
func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.of.mu.Lock()
		if c.of.open[c.RemoteAddr().String()] == c {
			delete(c.of.open, c.RemoteAddr().String())
		}
		c.of.mu.Unlock()
	})
	return c.Conn.Close()
}

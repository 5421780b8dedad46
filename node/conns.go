package node

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc/credentials"
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

// MaxPeerMessageBytes bounds one gRPC message from another trust domain: a peer's node calls
// only the FederationService, whose requests are small (a witnessed head's chain is at most 16
// KiB). The org's own callers keep MaxMessageBytes, for batches and files.
const MaxPeerMessageBytes = 1 << 20

// maxPeerStreams bounds the calls one peer connection has open at once; with
// MaxPeerMessageBytes it bounds what a peer's connection can make the node hold.
const maxPeerStreams = 32

// handshakeTimeout bounds a TLS handshake on the mTLS listener.
const handshakeTimeout = 10 * time.Second

// Until its handshake is done nothing is known of who connects, and a connection holds a
// goroutine and its buffers for up to handshakeTimeout. So the mTLS listener makes at most
// maxHandshakes at once: beyond, it accepts no more until one ends (the kernel's backlog holds
// the rest). And at most maxHandshakesPerHost from one remote address: beyond, a connection is
// closed at once, so that a host that opens connections and sends nothing keeps no other from
// its handshake.
const (
	maxHandshakes        = 256
	maxHandshakesPerHost = 16
)

// byCaller splits the mTLS listener by who connects: it makes each connection's TLS handshake
// itself, then hands the connection to the listener of the org's own callers (replicas, people,
// systems) or to that of other trust domains (peers). Each is served by a gRPC server of its
// own, the peers' with MaxPeerMessageBytes: gRPC bounds a message per server, not per method,
// and reads a request whole before anything can refuse it (review E, E1).
type byCaller struct {
	l          net.Listener
	tls        *tls.Config
	td         spiffeid.TrustDomain
	own, peers *connQueue

	slots   chan struct{} // a handshake in progress holds one
	perHost int
	mu      sync.Mutex
	hosts   map[string]int // handshakes in progress by remote address
}

// splitByCaller starts accepting on l; the handshakes use cfg (with h2 added for gRPC).
func splitByCaller(l net.Listener, cfg *tls.Config, td spiffeid.TrustDomain) *byCaller {
	return splitByCallerLimited(l, cfg, td, maxHandshakes, maxHandshakesPerHost)
}

// splitByCallerLimited is splitByCaller making at most atOnce handshakes, perHost from one
// remote address.
func splitByCallerLimited(l net.Listener, cfg *tls.Config, td spiffeid.TrustDomain, atOnce, perHost int) *byCaller {
	cfg = cfg.Clone()
	cfg.NextProtos = []string{"h2"}
	b := &byCaller{l: l, tls: cfg, td: td, own: newConnQueue(l.Addr()), peers: newConnQueue(l.Addr()),
		slots: make(chan struct{}, atOnce), perHost: perHost, hosts: map[string]int{}}
	go b.accept()
	return b
}

func (b *byCaller) accept() {
	for {
		c, err := b.l.Accept()
		if err != nil {
			b.own.shut()
			b.peers.shut()
			return
		}
		host := remoteHost(c)
		if !b.begin(host) {
			c.Close()
			continue
		}
		b.slots <- struct{}{}
		go b.route(c, host)
	}
}

// remoteHost is the address c comes from, without its port.
func remoteHost(c net.Conn) string {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	return c.RemoteAddr().String()
}

// begin counts a handshake from host; false when host has perHost in progress already.
func (b *byCaller) begin(host string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.hosts[host] >= b.perHost {
		return false
	}
	b.hosts[host]++
	return true
}

// end counts off a handshake from host, done or failed.
func (b *byCaller) end(host string) {
	<-b.slots
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.hosts[host]--; b.hosts[host] <= 0 {
		delete(b.hosts, host)
	}
}

// route makes c's handshake and queues it for its kind of caller. A handshake that fails was
// reported by the TLS config (identity.ServerTLSReporting).
func (b *byCaller) route(c net.Conn, host string) {
	tc := tls.Server(c, b.tls)
	ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	b.end(host)
	if err != nil {
		c.Close()
		return
	}
	q := b.peers
	if certs := tc.ConnectionState().PeerCertificates; len(certs) > 0 {
		if id, err := x509svid.IDFromCert(certs[0]); err == nil && id.TrustDomain() == b.td {
			q = b.own
		}
	}
	if !q.put(tc) {
		tc.Close()
	}
}

// Close stops accepting; the servers' own Close of their queues ends their Serve.
func (b *byCaller) Close() error { return b.l.Close() }

// connQueue is a net.Listener of connections whose handshake is done.
type connQueue struct {
	addr net.Addr
	ch   chan net.Conn
	done chan struct{}
	shut func() // closes done, once
}

func newConnQueue(addr net.Addr) *connQueue {
	done := make(chan struct{})
	return &connQueue{addr: addr, ch: make(chan net.Conn), done: done, shut: sync.OnceFunc(func() { close(done) })}
}

// put hands c to Accept; false when the queue is closed.
func (q *connQueue) put(c net.Conn) bool {
	select {
	case q.ch <- c:
		return true
	case <-q.done:
		return false
	}
}

// Accept implements net.Listener.
func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.ch:
		return c, nil
	case <-q.done:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener.
func (q *connQueue) Close() error { q.shut(); return nil }

// Addr implements net.Listener.
func (q *connQueue) Addr() net.Addr { return q.addr }

// handshaken are the transport credentials of a connection whose TLS handshake byCaller made:
// gRPC takes its TLS state as the call's peer, as credentials.NewTLS would give it.
type handshaken struct{}

func (handshaken) ServerHandshake(c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	tc, ok := c.(*tls.Conn)
	if !ok {
		return nil, nil, errors.New("node: a connection without its TLS handshake")
	}
	return c, credentials.TLSInfo{State: tc.ConnectionState(), CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity}}, nil
}

func (handshaken) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("node: handshaken credentials serve only")
}

func (handshaken) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "tls", SecurityVersion: "1.2"}
}

func (h handshaken) Clone() credentials.TransportCredentials { return h }

func (handshaken) OverrideServerName(string) error { return nil }

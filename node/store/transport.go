package store

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/knooppunt/knooppunt/node/netaddr"
)

// Transport is the Raft transport between the replicas of one node, over mutual TLS.
type Transport struct {
	*raft.NetworkTransport
	layer *tlsStreamLayer
}

// TLSTransport carries Raft between the replicas of one node over mutual TLS. serverTLS and
// clientTLS must both admit only the node's own replicas (spiffe://TD/node/*): Raft messages are
// trusted as they are, so the TLS configs are the only gate. Their VerifyPeerCertificate is run
// again on each open connection every recheckEvery and as the other side's certificate ends
// (recheck), and serverTLS's is expected to log the handshakes it refuses, as
// identity.ServerTLSFor does.
func TLSTransport(bind, advertise string, serverTLS, clientTLS *tls.Config, log *slog.Logger) (*Transport, error) {
	lis, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, fmt.Errorf("store: raft listen %s: %w", bind, err)
	}
	adv := lis.Addr()
	if advertise != "" {
		// Kept as written: a name is resolved at each dial, so that a replica whose name moves
		// to another address (a restarted pod) is found there. Resolved once, the group would
		// keep its old address.
		if _, _, err := netaddr.Dial(advertise); err != nil {
			lis.Close()
			return nil, fmt.Errorf("store: raft advertise %q: %v: use host:port, such as knooppunt-1.vr-utrecht.crisis.test:7444", advertise, err)
		}
		adv = advertised(advertise)
	} else if tcp, ok := adv.(*net.TCPAddr); ok && tcp.IP.IsUnspecified() {
		lis.Close()
		return nil, fmt.Errorf("store: raft listens on %s: set an advertise address that the other replicas can reach", bind)
	}
	refused := &handshakeRefusals{reasons: map[string]int{}}
	layer := &tlsStreamLayer{Listener: tls.NewListener(lis, refused.noting(serverTLS)), client: clientTLS, server: serverTLS,
		dialTLS: telling(clientTLS), advertise: adv, log: log, recheckEvery: recheckEvery, renewAhead: renewAhead,
		conns: map[*trackedConn]struct{}{}}
	w := newSlogWriter(log)
	w.handshakes = refused
	nt := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  layer,
		MaxPool: 3,
		Timeout: 10 * time.Second,
		Logger:  hclog.New(&hclog.LoggerOptions{Name: "raft-net", Level: hclog.Warn, DisableTime: true, Output: w}),
	})
	return &Transport{NetworkTransport: nt, layer: layer}, nil
}

// ListenAddr is where the transport listens, as bound: with a port of 0, the port the system gave.
func (t *Transport) ListenAddr() net.Addr { return t.layer.Listener.Addr() }

// advertised is an address as the config writes it, a host name or IP and a port.
type advertised string

func (a advertised) Network() string { return "tcp" }
func (a advertised) String() string  { return string(a) }

// Isolate cuts the replica off from the rest of its group (on) or reconnects it (off). While
// cut, its open Raft connections are closed and new ones in either direction are refused, as in
// a network partition; the API listener and the local socket stay up. It is for fault-injection
// tests and drills.
func (t *Transport) Isolate(on bool) { t.layer.isolate(on) }

// errIsolated is what a dial returns while the replica is cut off.
var errIsolated = errors.New("store: this replica is isolated from its group")

type tlsStreamLayer struct {
	net.Listener
	// client and server are the TLS configs the connections are made with, as given: the
	// server's verifier, not the one that notes refusals (handshakeRefusals.noting).
	client, server *tls.Config
	// dialTLS is client that tells Dial the end of the certificate it presented (ownCert).
	dialTLS   *tls.Config
	advertise net.Addr
	log       *slog.Logger
	// recheckEvery and renewAhead are those of when the transport was made.
	recheckEvery, renewAhead time.Duration

	cut   atomic.Bool
	mu    sync.Mutex
	conns map[*trackedConn]struct{}
}

func (l *tlsStreamLayer) Addr() net.Addr { return l.advertise }

func (l *tlsStreamLayer) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		// Drop the connection here rather than fail Accept: the transport backs off after a
		// failed Accept, which would slow reconnecting once the cut ends.
		if l.cut.Load() {
			c.Close()
			continue
		}
		tc := &trackedConn{layer: l}
		tc.conn.Store(c.(*tls.Conn))
		if !l.track(tc) {
			tc.Close()
		}
		return tc, nil
	}
}

func (l *tlsStreamLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	c, own, err := l.dial(addr, timeout)
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{layer: l, addr: addr}
	tc.conn.Store(c)
	tc.armed.Store(true)
	if !l.track(tc) {
		tc.Close()
	} else {
		tc.arm(c, own)
	}
	return tc, nil
}

// ownCert is, in the context of a dial's handshake, where dialTLS puts the end of the
// certificate it presented.
type ownCert struct{}

// dial connects to addr and completes the TLS handshake. own is when the certificate this replica
// presented in it ends, if dialTLS could tell.
func (l *tlsStreamLayer) dial(addr raft.ServerAddress, timeout time.Duration) (_ *tls.Conn, own time.Time, _ error) {
	if l.cut.Load() {
		return nil, time.Time{}, errIsolated
	}
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: timeout}, Config: l.dialTLS}
	c, err := d.DialContext(context.WithValue(context.Background(), ownCert{}, &own), "tcp", string(addr))
	if err != nil {
		return nil, time.Time{}, err
	}
	return c.(*tls.Conn), own, nil
}

// telling is cfg that tells a dial (ownCert) when the certificate it presents ends.
func telling(cfg *tls.Config) *tls.Config {
	if cfg == nil || cfg.GetClientCertificate == nil {
		return cfg
	}
	cfg = cfg.Clone()
	get := cfg.GetClientCertificate
	cfg.GetClientCertificate = func(info *tls.CertificateRequestInfo) (*tls.Certificate, error) {
		cert, err := get(info)
		if own, ok := info.Context().Value(ownCert{}).(*time.Time); ok && err == nil && cert != nil && len(cert.Certificate) > 0 {
			leaf := cert.Leaf
			if leaf == nil {
				leaf, _ = x509.ParseCertificate(cert.Certificate[0])
			}
			if leaf != nil {
				*own = leaf.NotAfter
			}
		}
		return cert, err
	}
	return cfg
}

// track makes c closable by Isolate, and reports whether it may stay open: while the replica is
// cut off, the caller closes it at once.
func (l *tlsStreamLayer) track(c *trackedConn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.conns[c] = struct{}{}
	return !l.cut.Load()
}

func (l *tlsStreamLayer) untrack(c *trackedConn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
}

func (l *tlsStreamLayer) isolate(on bool) {
	l.mu.Lock()
	l.cut.Store(on)
	var open []*trackedConn
	if on {
		for c := range l.conns {
			open = append(open, c)
		}
	}
	l.mu.Unlock()
	for _, c := range open {
		c.Close()
	}
}

// recheckEvery is how often the certificate of an open Raft connection is verified again, besides
// just after it ends. The handshake verified it once, against the bundle of that moment, and
// Raft keeps its connections for as long as both replicas run: without this, a replica whose CA
// was dropped from the bundle (its key stolen) or whose SVID expired went on being heard on them
// (review AK, AK6). It is a variable so that tests can shorten it; a transport keeps the value it
// was made with.
var recheckEvery = 30 * time.Second

// renewAhead is how long before the first of its two certificates ends that a dialled connection
// is replaced by a new one, at its next request; a variable so that tests can shorten it, as
// recheckEvery. Under SPIRE an SVID lives an hour and is renewed at half its life, while Raft
// keeps a connection for as long as both replicas run: closed only as a certificate ends, each
// connection would fail a heartbeat about once an hour, and the leader say that the replica does
// not answer.
var renewAhead = 30 * time.Second

// endedAfter is how long after a certificate's end its connection is verified again: x509 counts
// the last second as valid, and a timer may fire a little early by the wall clock.
const endedAfter = 100 * time.Millisecond

// trackedConn is a Raft connection that Isolate can close, and that is closed once the
// certificate the other replica made it with no longer verifies. A dialled one is made again at
// its next request after that, or shortly before either side's certificate ends (renewAhead).
type trackedConn struct {
	layer *tlsStreamLayer
	// addr is where a dialled connection was dialled, to dial it again; "" for an accepted one.
	addr raft.ServerAddress
	conn atomic.Pointer[tls.Conn]
	once sync.Once

	// armed is set once the checks of an accepted connection started, or were found not to
	// apply (a failed handshake).
	armed atomic.Bool
	// redial has a dialled connection dialled again at its next request (SetDeadline).
	redial atomic.Bool
	// refused is why dialling again failed: reads and writes return it.
	refused atomic.Pointer[error]

	mu     sync.Mutex
	closed bool
	// down is set when recheck closed conn, a dialled connection that Raft still holds.
	down  bool
	timer *time.Timer
	peer  peerCerts
}

// peerCerts is what the checks of a connection know of the certificates it was made with.
type peerCerts struct {
	// raw is the other side's chain as it presented it, leaf first; id its leaf's SPIFFE ID.
	raw [][]byte
	id  string
	// ends is when the first certificate of the chain ends.
	ends time.Time
	// renewAt is when a dialled connection is to be made again, ahead of the end of either
	// side's certificate; zero when there is too little time left for that.
	renewAt time.Time
}

// Read is the connection's Read; the first one, on an accepted connection, completes the TLS
// handshake, after which the checks of the other side's certificate start.
func (c *trackedConn) Read(p []byte) (int, error) {
	if err := c.refused.Load(); err != nil {
		return 0, *err
	}
	tc := c.conn.Load()
	n, err := tc.Read(p)
	if !c.armed.Load() && c.armed.CompareAndSwap(false, true) {
		c.arm(tc, time.Time{})
	}
	return n, err
}

func (c *trackedConn) Write(p []byte) (int, error) {
	if err := c.refused.Load(); err != nil {
		return 0, *err
	}
	return c.conn.Load().Write(p)
}

func (c *trackedConn) LocalAddr() net.Addr                { return c.conn.Load().LocalAddr() }
func (c *trackedConn) RemoteAddr() net.Addr               { return c.conn.Load().RemoteAddr() }
func (c *trackedConn) SetReadDeadline(t time.Time) error  { return c.conn.Load().SetReadDeadline(t) }
func (c *trackedConn) SetWriteDeadline(t time.Time) error { return c.conn.Load().SetWriteDeadline(t) }

// SetDeadline is where a dialled connection is made again, when due: hashicorp/raft (v1.8.0)
// sets a deadline at the start of each request that waits for its answer, on a connection from
// its pool, with nothing else under way on it. A pipelined connection is never made again: it
// is closed, and Raft makes a new one.
func (c *trackedConn) SetDeadline(t time.Time) error {
	if c.addr != "" && !t.IsZero() && c.redial.Load() {
		c.dialAgain(t)
	}
	return c.conn.Load().SetDeadline(t)
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.layer.untrack(c)
		c.mu.Lock()
		c.closed = true
		if c.timer != nil {
			c.timer.Stop()
		}
		c.mu.Unlock()
	})
	return c.conn.Load().Close()
}

// dialAgain replaces a dialled connection with a new one, made with the certificates both sides
// hold now, before deadline. When that fails, the old one is kept while it is open, and
// otherwise the connection fails with why.
func (c *trackedConn) dialAgain(deadline time.Time) {
	c.redial.Store(false)
	tc, own, err := c.layer.dial(c.addr, time.Until(deadline))
	c.mu.Lock()
	if err != nil || c.closed {
		down := c.down
		c.mu.Unlock()
		if err == nil {
			tc.Close()
		} else if down {
			c.refused.Store(&err)
			c.Close()
		}
		return
	}
	old := c.conn.Swap(tc)
	c.down = false
	// Tracked again under c.mu, so that a Close or recheck in between cannot leave it tracked
	// when closed, or untracked when open.
	open := c.layer.track(c)
	c.mu.Unlock()
	old.Close()
	if open {
		c.arm(tc, own)
	} else {
		c.Close()
	}
}

// arm starts the checks of tc, whose handshake has completed: one timer per connection, at the
// next recheckEvery, the end of the other side's chain or renewAt, whichever is first. own is
// when the certificate this side presented ends, if known.
func (c *trackedConn) arm(tc *tls.Conn, own time.Time) {
	st := tc.ConnectionState()
	if !st.HandshakeComplete || len(st.PeerCertificates) == 0 {
		return
	}
	p := peerCerts{raw: make([][]byte, len(st.PeerCertificates)), ends: st.PeerCertificates[0].NotAfter, id: svidOf(st.PeerCertificates[0])}
	for i, cert := range st.PeerCertificates {
		p.raw[i] = cert.Raw
		if cert.NotAfter.Before(p.ends) {
			p.ends = cert.NotAfter
		}
	}
	if c.addr != "" {
		first := p.ends
		if !own.IsZero() && own.Before(first) {
			first = own
		}
		// Too close to the end, it was made with certificates that were not renewed: it is
		// closed as they end, and made again then.
		if ahead := c.layer.renewAhead; time.Until(first) > 2*ahead {
			p.renewAt = first.Add(-ahead)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.conn.Load() != tc {
		return
	}
	c.peer = p
	if c.timer == nil {
		c.timer = time.AfterFunc(c.next(), c.recheck)
	} else {
		c.timer.Reset(c.next())
	}
}

// next is how long until the connection's next check.
func (c *trackedConn) next() time.Duration {
	d := c.layer.recheckEvery
	if left := time.Until(c.peer.ends); left >= 0 && left < d {
		d = left + endedAfter
	}
	if left := time.Until(c.peer.renewAt); !c.peer.renewAt.IsZero() && left >= 0 && left < d {
		d = left
	}
	return d
}

// recheck verifies the other side's certificate chain again, as the handshake did, and closes
// the connection if it no longer verifies. The replica dials again, and so goes on when it has a
// current SVID of a CA the bundle holds; when it has none, that handshake is refused and logged.
//
// A dialled connection is verified with the client's verifier. An accepted one is too, and then
// with the server's, which adds the server's own authorizer (authorizeRaft: a replica of the
// group now) but logs a refusal as a refused handshake: the client's first, so that the usual
// reasons, a CA no longer in the bundle or an SVID that ended, are logged once, here.
func (c *trackedConn) recheck() {
	c.mu.Lock()
	tc, p := c.conn.Load(), c.peer
	if c.closed || c.down {
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	if !p.renewAt.IsZero() && !time.Now().Before(p.renewAt) {
		c.redial.Store(true)
	}
	err := verifyWith(c.layer.client, p.raw)
	if err == nil && c.addr == "" {
		err = verifyWith(c.layer.server, p.raw)
	}
	c.mu.Lock()
	if c.closed || c.conn.Load() != tc {
		c.mu.Unlock()
		return
	}
	if err == nil {
		c.timer.Reset(c.next())
		c.mu.Unlock()
		return
	}
	if c.addr != "" {
		// Raft holds it in its pool: its next request dials again.
		c.down = true
		c.redial.Store(true)
		c.layer.untrack(c)
	}
	c.mu.Unlock()
	attrs := []any{"component", "raft", "peer", p.id, "addr", tc.RemoteAddr().String(), "reason", err.Error()}
	if time.Now().After(p.ends) {
		// An SVID that ended is renewed as a rule; the replica connects again with the new one.
		c.layer.log.Info("raft: closed a connection with another replica: the certificate it was made with has ended", attrs...)
	} else {
		c.layer.log.Warn("raft: closed a connection with another replica: its certificate no longer verifies", attrs...)
	}
	if c.addr != "" {
		tc.Close()
		return
	}
	c.Close()
}

// verifyWith runs cfg's VerifyPeerCertificate on raw, a chain as a peer presented it; nil when
// cfg has none.
func verifyWith(cfg *tls.Config, raw [][]byte) error {
	if cfg == nil || cfg.VerifyPeerCertificate == nil {
		return nil
	}
	return cfg.VerifyPeerCertificate(raw, nil)
}

// svidOf is the SPIFFE ID of cert, for the log.
func svidOf(cert *x509.Certificate) string {
	id, err := x509svid.IDFromCert(cert)
	if err != nil {
		return "(no SPIFFE ID)"
	}
	return id.String()
}

// handshakeRefusals are the reasons of the handshakes the Raft port refused lately, each
// already logged as "handshake refused" by the server's verifier. raft-net says the same again as
// it fails to read the connection's first command: slogWriter logs that line at debug level
// when its error is one of these (review AK, AK5).
type handshakeRefusals struct {
	mu      sync.Mutex
	reasons map[string]int
}

// maxRefusals bounds what handshakeRefusals holds, should raft-net not log some of them.
const maxRefusals = 64

// noting is cfg with its verifiers noting each refusal, a full handshake's or a resumed one's.
func (h *handshakeRefusals) noting(cfg *tls.Config) *tls.Config {
	if cfg == nil {
		return nil
	}
	cfg = cfg.Clone()
	if verify := cfg.VerifyPeerCertificate; verify != nil {
		cfg.VerifyPeerCertificate = func(raw [][]byte, chains [][]*x509.Certificate) error {
			return h.note(verify(raw, chains))
		}
	}
	if verify := cfg.VerifyConnection; verify != nil {
		cfg.VerifyConnection = func(cs tls.ConnectionState) error { return h.note(verify(cs)) }
	}
	return cfg
}

func (h *handshakeRefusals) note(err error) error {
	if err == nil {
		return nil
	}
	h.mu.Lock()
	if len(h.reasons) >= maxRefusals {
		clear(h.reasons)
	}
	h.reasons[err.Error()]++
	h.mu.Unlock()
	return err
}

// take reports whether reason is that of a refusal noted and not yet taken, and takes it.
func (h *handshakeRefusals) take(reason string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	n, ok := h.reasons[reason]
	if !ok {
		return false
	}
	if n <= 1 {
		delete(h.reasons, reason)
	} else {
		h.reasons[reason] = n - 1
	}
	return true
}

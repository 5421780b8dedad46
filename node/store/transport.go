package store

import (
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
// again on each open connection every recheckEvery (recheck), and serverTLS's is expected to log
// the handshakes it refuses, as identity.ServerTLSFor does.
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
		advertise: adv, log: log, recheckEvery: recheckEvery, conns: map[*trackedConn]struct{}{}}
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
	advertise      net.Addr
	log            *slog.Logger
	// recheckEvery is that of when the transport was made.
	recheckEvery time.Duration

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
		tc := &trackedConn{Conn: c.(*tls.Conn), layer: l}
		if !l.track(tc) {
			tc.Close()
		}
		return tc, nil
	}
}

func (l *tlsStreamLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	if l.cut.Load() {
		return nil, errIsolated
	}
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: timeout}, Config: l.client}
	c, err := d.Dial("tcp", string(addr))
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c.(*tls.Conn), layer: l, dialled: true}
	tc.armed.Store(true)
	if !l.track(tc) {
		tc.Close()
	} else {
		tc.arm()
	}
	return tc, nil
}

// track makes c closable by Isolate, and reports whether it may stay open: while the replica is
// cut off, the caller closes it at once.
func (l *tlsStreamLayer) track(c *trackedConn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.conns[c] = struct{}{}
	return !l.cut.Load()
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

// recheckEvery is how often the certificate chain of an open Raft connection is verified again.
// The handshake verified it once, against the bundle of that moment, and Raft keeps its
// connections for as long as both replicas run: without this, a replica whose CA was dropped
// from the bundle (its key stolen) went on being heard on them (review AK, AK6). It is a
// variable so that tests can shorten it; a transport keeps the value it was made with.
var recheckEvery = 30 * time.Second

// trackedConn is a Raft connection that Isolate can close, and that is closed once the chain the
// other replica made it with no longer verifies against the bundle, for any reason but its end
// in time.
//
// An SVID that ends on an open connection leaves it open: the replica behind it is the same, with
// the same key, and under SPIRE every SVID ends within the hour while Raft keeps its connections
// for good: closing them as they end would fail a heartbeat or a pipelined append each time. A
// replica whose SVID was not renewed is refused at its next handshake, and its status, log and
// metrics say so (knooppunt_svid_expiry_timestamp_seconds).
type trackedConn struct {
	*tls.Conn
	layer *tlsStreamLayer
	// dialled is set on a connection this replica made; an accepted one is checked with the
	// server's authorizer too.
	dialled bool
	once    sync.Once
	// armed is set once the checks started, or were found not to apply (a failed handshake).
	armed atomic.Bool

	mu     sync.Mutex
	closed bool
	timer  *time.Timer
	raw    [][]byte // the other side's chain as it presented it, leaf first
	id     string   // its leaf's SPIFFE ID, for the log
}

// Read is the connection's Read; the first one, on an accepted connection, completes the TLS
// handshake, after which the checks of the other side's chain start.
func (c *trackedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if !c.armed.Load() && c.armed.CompareAndSwap(false, true) {
		c.arm()
	}
	return n, err
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.layer.mu.Lock()
		delete(c.layer.conns, c)
		c.layer.mu.Unlock()
		c.mu.Lock()
		c.closed = true
		if c.timer != nil {
			c.timer.Stop()
		}
		c.mu.Unlock()
	})
	return c.Conn.Close()
}

// arm starts the checks of the connection, whose handshake has completed: one timer, every
// recheckEvery.
func (c *trackedConn) arm() {
	st := c.ConnectionState()
	if !st.HandshakeComplete || len(st.PeerCertificates) == 0 {
		return
	}
	raw := make([][]byte, len(st.PeerCertificates))
	for i, cert := range st.PeerCertificates {
		raw[i] = cert.Raw
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.raw, c.id = raw, svidOf(st.PeerCertificates[0])
	c.timer = time.AfterFunc(c.layer.recheckEvery, c.recheck)
}

// recheck verifies the other side's chain again, as the handshake did, and closes the connection
// when it no longer verifies for a reason other than its end in time (see trackedConn). Raft
// dials again, and that handshake is refused and logged as any other.
//
// A dialled connection is verified with the client's verifier. An accepted one is too, and then
// with the server's, which adds the server's own authorizer (a replica of the group now) but
// logs a refusal as a refused handshake: the client's first, so that the usual reason, a CA no
// longer in the bundle, is logged once, here.
func (c *trackedConn) recheck() {
	err := verifyWith(c.layer.client, c.raw)
	if err == nil && !c.dialled {
		err = verifyWith(c.layer.server, c.raw)
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	if err == nil || endedOnly(err) {
		c.timer.Reset(c.layer.recheckEvery)
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	c.layer.log.Warn("raft: closed a connection with another replica: its certificate no longer verifies", "component", "raft",
		"peer", c.id, "addr", c.RemoteAddr().String(), "reason", err.Error())
	c.Close()
}

// endedOnly reports whether err, a verifier's, is of a chain that has ended in time (or is not
// valid yet) and would verify otherwise: x509 says so first when a certificate's time is wrong,
// before it looks for the chain's CA.
func endedOnly(err error) bool {
	var inv x509.CertificateInvalidError
	return errors.As(err, &inv) && inv.Reason == x509.Expired
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

package store

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/knooppunt/knooppunt/node/netaddr"
)

// Transport is the Raft transport between the replicas of one node, over mutual TLS.
type Transport struct {
	*raft.NetworkTransport
	layer *tlsStreamLayer
}

// TLSTransport carries Raft between the replicas of one node over mutual TLS. serverTLS and
// clientTLS must both admit only the node's own replicas (spiffe://TD/node/*): Raft messages are
// trusted as they are, so the handshake is the only gate.
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
	layer := &tlsStreamLayer{Listener: tls.NewListener(lis, serverTLS), client: clientTLS, advertise: adv, conns: map[*trackedConn]struct{}{}}
	nt := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  layer,
		MaxPool: 3,
		Timeout: 10 * time.Second,
		Logger:  hclog.New(&hclog.LoggerOptions{Name: "raft-net", Level: hclog.Warn, DisableTime: true, Output: newSlogWriter(log)}),
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
	client    *tls.Config
	advertise net.Addr

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
		return l.track(c), nil
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
	return l.track(c), nil
}

func (l *tlsStreamLayer) track(c net.Conn) net.Conn {
	tc := &trackedConn{Conn: c, layer: l}
	l.mu.Lock()
	l.conns[tc] = struct{}{}
	cut := l.cut.Load()
	l.mu.Unlock()
	if cut {
		tc.Close()
	}
	return tc
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

// trackedConn is a Raft connection that Isolate can close.
type trackedConn struct {
	net.Conn
	layer *tlsStreamLayer
	once  sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.layer.mu.Lock()
		delete(c.layer.conns, c)
		c.layer.mu.Unlock()
	})
	return c.Conn.Close()
}

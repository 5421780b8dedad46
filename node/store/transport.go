package store

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// TLSTransport carries Raft between the replicas of one node over mutual TLS. serverTLS and
// clientTLS must both admit only the node's own replicas (spiffe://TD/node/*): Raft messages are
// trusted as they are, so the handshake is the only gate.
func TLSTransport(bind, advertise string, serverTLS, clientTLS *tls.Config, log *slog.Logger) (*raft.NetworkTransport, error) {
	lis, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, fmt.Errorf("store: raft listen %s: %w", bind, err)
	}
	adv := lis.Addr()
	if advertise != "" {
		if adv, err = net.ResolveTCPAddr("tcp", advertise); err != nil {
			lis.Close()
			return nil, fmt.Errorf("store: raft advertise %s: %w", advertise, err)
		}
	} else if tcp, ok := adv.(*net.TCPAddr); ok && tcp.IP.IsUnspecified() {
		lis.Close()
		return nil, fmt.Errorf("store: raft listens on %s: set an advertise address that the other replicas can reach", bind)
	}
	layer := &tlsStreamLayer{Listener: tls.NewListener(lis, serverTLS), client: clientTLS, advertise: adv}
	return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  layer,
		MaxPool: 3,
		Timeout: 10 * time.Second,
		Logger:  hclog.New(&hclog.LoggerOptions{Name: "raft-net", Level: hclog.Warn, DisableTime: true, Output: slogWriter{log}}),
	}), nil
}

type tlsStreamLayer struct {
	net.Listener
	client    *tls.Config
	advertise net.Addr
}

func (l *tlsStreamLayer) Addr() net.Addr { return l.advertise }

func (l *tlsStreamLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: timeout}, Config: l.client}
	return d.Dial("tcp", string(addr))
}

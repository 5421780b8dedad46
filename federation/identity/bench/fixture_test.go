package bench

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/knooppunt/knooppunt/federation/identity"
	"github.com/knooppunt/knooppunt/node"
	"github.com/knooppunt/knooppunt/node/config"
)

var discard = slog.New(slog.DiscardHandler)

// fixture is the PKI of one org, minted in-process by a DevCA: the node's SVID and the org's
// bundle as files (what `knooppunt ca init` and `ca issue` write, and what the node's files
// source reads), and a user's SVID, with the editor role on the node, in memory for the client.
type fixture struct {
	td                        spiffeid.TrustDomain
	ca                        *identity.DevCA
	dir                       string
	nodeCert, nodeKey, bundle string
	user                      *x509svid.SVID
	bundles                   *x509bundle.Bundle
}

func newFixture(tb testing.TB) *fixture {
	tb.Helper()
	td := spiffeid.RequireTrustDomainFromString(config.DefaultOrg)
	dir := tb.TempDir()
	ca, err := identity.InitCA(td, filepath.Join(dir, "ca"), 0)
	if err != nil {
		tb.Fatal(err)
	}
	f := &fixture{
		td:       td,
		ca:       ca,
		dir:      dir,
		nodeCert: filepath.Join(dir, "node.crt"),
		nodeKey:  filepath.Join(dir, "node.key"),
		bundle:   filepath.Join(dir, "ca", identity.BundleFile),
		bundles:  x509bundle.FromX509Authorities(td, []*x509.Certificate{ca.Cert}),
	}
	if err := ca.IssueFiles(spiffeid.RequireFromPath(td, "/node/r1"), filepath.Join(dir, "node"), identity.SVIDOptions{}); err != nil {
		tb.Fatal(err)
	}
	f.user = f.issue(tb, "/user/bench")
	return f
}

// issue mints an SVID for path in the fixture's trust domain.
func (f *fixture) issue(tb testing.TB, path string) *x509svid.SVID {
	tb.Helper()
	id := spiffeid.RequireFromPath(f.td, path)
	chain, key, err := f.ca.Issue(id, identity.SVIDOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	return &x509svid.SVID{ID: id, Certificates: chain, PrivateKey: key}
}

// startNode starts a single-replica node that serves mTLS, and its REST API, on free loopback
// ports with the fixture's node SVID, and gives the fixture's user the editor role.
func (f *fixture) startNode(tb testing.TB) *node.Node {
	tb.Helper()
	dataDir, err := os.MkdirTemp("", "knooppunt-mtlsbench-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dataDir) })
	cfg := config.Default()
	cfg.MetricsAddr = ""
	cfg.Listen = "127.0.0.1:0"
	cfg.HTTP.Listen = "127.0.0.1:0" // the REST API, mTLS only
	cfg.Identity = config.Identity{Source: config.SourceFiles, CertFile: f.nodeCert, KeyFile: f.nodeKey, BundleFile: f.bundle}
	cfg.Roles = []config.RoleBinding{{ID: f.user.ID.String(), Role: config.RoleEditor}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, err := node.Start(ctx, node.Options{DataDir: dataDir, Config: cfg, Logger: discard})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := n.Stop(ctx); err != nil {
			tb.Error(err)
		}
	})
	return n
}

// serverTLS is the node's listener configuration, built as the node builds it: a files source
// over the node's SVID and bundle, a trust store over that source, and identity.ServerTLS.
func (f *fixture) serverTLS(tb testing.TB) *tls.Config {
	tb.Helper()
	src, err := identity.NewFileSource(f.nodeCert, f.nodeKey, f.bundle, 0, discard)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { src.Close() })
	return identity.ServerTLS(src, identity.NewTrustStore(src), discard)
}

// clientTLS is the user's client configuration: its SVID, the org's bundle, and only replicas of
// the node accepted as the server.
func (f *fixture) clientTLS() *tls.Config {
	return identity.ClientTLS(f.user, f.bundles, identity.AuthorizeReplica(f.td))
}

// serveBare serves a plain grpc-go server, with the node's TLS configuration and message limit
// but none of the node's interceptors, on a free loopback port.
func (f *fixture) serveBare(tb testing.TB, register func(*grpc.Server)) net.Addr {
	tb.Helper()
	s := grpc.NewServer(grpc.Creds(credentials.NewTLS(f.serverTLS(tb))), grpc.MaxRecvMsgSize(node.MaxMessageBytes))
	register(s)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	go s.Serve(lis)
	tb.Cleanup(s.Stop)
	return lis.Addr()
}

// dial opens a client connection to addr as the user, with identity.ClientCredentials.
func (f *fixture) dial(tb testing.TB, addr net.Addr) *grpc.ClientConn {
	return f.dialAs(tb, addr, f.user)
}

// dialAs opens a client connection to addr as svid.
func (f *fixture) dialAs(tb testing.TB, addr net.Addr, svid *x509svid.SVID) *grpc.ClientConn {
	tb.Helper()
	conn, err := grpc.NewClient(addr.String(),
		grpc.WithTransportCredentials(identity.ClientCredentials(svid, f.bundles, identity.AuthorizeReplica(f.td))))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	return conn
}

package node

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"google.golang.org/grpc/reflection"

	"github.com/knooppunt/knooppunt/node/api"
	"github.com/knooppunt/knooppunt/node/api/rest"
	"github.com/knooppunt/knooppunt/node/config"
	"github.com/knooppunt/knooppunt/node/db"
)

// serveREST starts the REST/JSON API on cfg.HTTP.Listen. Like the web interface, it reaches the
// services on an in-process channel, registered with the same services and put through the same
// authorizer and interceptors as the gRPC servers, as the caller it authenticated.
func (n *Node) serveREST(ctx context.Context, cfg *config.Config, register func(reflection.GRPCServer)) error {
	var jwt jwtbundle.Source
	if f := cfg.HTTP.JWTBundleFile; f != "" {
		// A SPIFFE bundle may carry X.509 and JWT authorities; only the JWT ones are used here.
		b, err := spiffebundle.Load(n.ident.trustDomain, f)
		if err != nil {
			return fmt.Errorf("node: http.jwt_bundle_file: %w", err)
		}
		if len(b.JWTAuthorities()) == 0 {
			return fmt.Errorf("node: http.jwt_bundle_file: %s holds no jwt-svid key: export the org's JWT bundle, or leave the field out to accept mutual TLS only", f)
		}
		jb, _ := b.GetJWTBundleForTrustDomain(n.ident.trustDomain)
		jwt = jb
	}
	audience := cfg.HTTP.Audience
	if len(audience) == 0 {
		svid, err := n.ident.source.GetX509SVID()
		if err != nil {
			return fmt.Errorf("node: http: %w", err)
		}
		audience = []string{svid.ID.String()}
	}
	inproc := api.NewInProcess(n.authz, n.forwardUnary(), api.LogUnary(n.log))
	inproc.OnDenied(func(caller, method, reason string) { n.auditDenied(db.AuditAccessDenied, caller, method, reason) })
	// The gateway only encodes each reply to JSON: no copy of it is needed.
	inproc.ShareReplies()
	register(inproc)
	rc := rest.Config{
		Conn: inproc, SVID: n.ident.source, Bundles: n.ident.trust, JWTBundles: jwt, Audience: audience, MaxBodyBytes: MaxMessageBytes, Logger: n.log,
		Refused: n.refusals.refused,
	}
	if n.tracing.On() {
		rc.Tracer, rc.TraceFrom = n.tracing.Tracer(), n.tracing.TrustsCaller
	}
	srv, err := rest.New(ctx, rc)
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	lis, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		return fmt.Errorf("node: http.listen %s: %w", cfg.HTTP.Listen, err)
	}
	n.restAddr = lis.Addr()
	n.rest = n.serveHTTP(tls.NewListener(lis, srv.TLSConfig()), srv)
	n.log.Info("REST API serving", "listen", n.restAddr.String(), "audience", audience, "jwt_svid", jwt != nil)
	return nil
}

// RESTAddr is the REST API's address, or nil when http.listen is not set.
func (n *Node) RESTAddr() net.Addr { return n.restAddr }

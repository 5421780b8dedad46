package node

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc/reflection"

	"github.com/knooppunt/knooppunt/node/api"
	"github.com/knooppunt/knooppunt/node/api/rest"
	"github.com/knooppunt/knooppunt/node/config"
	"github.com/knooppunt/knooppunt/node/db"
)

// jwtFile is the org's JWT bundle from http.jwt_bundle_file, read again when the file changes
// (looked at once a second at most, when a token comes), so that a key taken out of it, rotated
// or compromised, is no longer trusted from then on, not only after a restart. A file that does
// not load keeps the last good bundle, and says so in the log.
type jwtFile struct {
	td   spiffeid.TrustDomain
	path string
	log  *slog.Logger

	mu      sync.Mutex
	bundle  *jwtbundle.Bundle
	stamp   string // the file's size and time of change when it was read
	checked time.Time
}

func (f *jwtFile) fileStamp() string {
	fi, err := os.Stat(f.path)
	if err != nil {
		return ""
	}
	return fmt.Sprint(fi.Size(), fi.ModTime().UnixNano())
}

// load reads the file; f.mu is held or f is not shared yet.
func (f *jwtFile) load() error {
	stamp := f.fileStamp()
	// A SPIFFE bundle may carry X.509 and JWT authorities; only the JWT ones are used here.
	b, err := spiffebundle.Load(f.td, f.path)
	if err != nil {
		return err
	}
	if len(b.JWTAuthorities()) == 0 {
		return fmt.Errorf("%s holds no jwt-svid key: export the org's JWT bundle, or leave the field out to accept mutual TLS only", f.path)
	}
	f.bundle, _ = b.GetJWTBundleForTrustDomain(f.td)
	f.stamp = stamp
	return nil
}

// GetJWTBundleForTrustDomain implements jwtbundle.Source.
func (f *jwtFile) GetJWTBundleForTrustDomain(td spiffeid.TrustDomain) (*jwtbundle.Bundle, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if now := time.Now(); now.Sub(f.checked) >= time.Second {
		f.checked = now
		if stamp := f.fileStamp(); stamp != f.stamp {
			if err := f.load(); err != nil {
				f.log.Warn("http.jwt_bundle_file changed but does not load: keeping the last good bundle", "file", f.path, "err", err)
				f.stamp = stamp // not again until it changes again
			} else {
				f.log.Info("http.jwt_bundle_file reloaded", "file", f.path, "keys", len(f.bundle.JWTAuthorities()))
			}
		}
	}
	return f.bundle.GetJWTBundleForTrustDomain(td)
}

// serveREST starts the REST/JSON API on cfg.HTTP.Listen. Like the web interface, it reaches the
// services on an in-process channel, registered with the same services and put through the same
// authorizer and interceptors as the gRPC servers, as the caller it authenticated.
func (n *Node) serveREST(ctx context.Context, cfg *config.Config, register func(reflection.GRPCServer)) error {
	var jwt jwtbundle.Source
	if f := cfg.HTTP.JWTBundleFile; f != "" {
		fb := &jwtFile{td: n.ident.trustDomain, path: f, log: n.log}
		if err := fb.load(); err != nil {
			return fmt.Errorf("node: http.jwt_bundle_file: %w", err)
		}
		jwt = fb
	}
	audience := cfg.HTTP.Audience
	if len(audience) == 0 {
		svid, err := n.ident.source.GetX509SVID()
		if err != nil {
			return fmt.Errorf("node: http: %w", err)
		}
		audience = []string{svid.ID.String()}
	}
	inproc := api.NewInProcess(n.authz, n.forwardUnary(), api.LogUnary(n.log), api.CutUnary())
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

// Package rest serves the node's REST/JSON API: the grpc-gateway routes generated from the
// google.api.http annotations in proto/knooppunt/v1, over HTTPS, for a partner's own systems.
//
// It owns authentication on HTTP and nothing else. A caller proves a SPIFFE ID in one of two
// ways: an X.509-SVID over mutual TLS, verified as on the gRPC listener, or a JWT-SVID as a
// bearer token, verified with go-spiffe's jwtsvid against the org's JWT bundle and an audience
// that names this node. Each call then goes through the node's in-process gRPC channel
// (api.InProcess) as that SPIFFE ID, so the one method→role table (api.MethodRoles) decides it,
// with the same refusals, logs and audit entries as over gRPC. The package never reads the
// store and never decides access itself; it never accepts the web interface's session cookie.
package rest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/knooppunt/knooppunt/federation/identity"
	"github.com/knooppunt/knooppunt/federation/search"
	"github.com/knooppunt/knooppunt/node/api"
	"github.com/knooppunt/knooppunt/policy"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// Errors of New.
var (
	ErrNoConn     = errors.New("rest: Config.Conn is required")
	ErrNoSVID     = errors.New("rest: Config.SVID and Config.Bundles are required: the API serves HTTPS with the node's X.509-SVID")
	ErrNoAudience = errors.New("rest: http.audience is empty: a JWT-SVID must name this node, so name at least one audience")
)

// Config configures the REST API.
type Config struct {
	// Conn reaches the node's services as the person in the context (api.AsPerson): the
	// node's api.InProcess channel.
	Conn grpc.ClientConnInterface
	// SVID is the node's X.509-SVID, which the API presents; Bundles verify client SVIDs.
	SVID    x509svid.Source
	Bundles x509bundle.Source
	// JWTBundles verify bearer JWT-SVIDs. Nil: bearer tokens are refused and only mTLS is
	// accepted.
	JWTBundles jwtbundle.Source
	// Audience lists the audiences of which a JWT-SVID must name at least one.
	Audience []string
	// Refused, when set, is told of every handshake refused for a client certificate that does
	// not verify, so that the node can audit it as it does on its gRPC listener.
	Refused identity.RefusalFunc
	// MaxBodyBytes bounds a request body; a larger one is refused with 413 before it is read
	// whole. Default 64 MiB, the bound of one gRPC message on the node's servers.
	MaxBodyBytes int64
	Logger       *slog.Logger
	// Tracer, when set, makes a span of every authenticated call ("knooppunt.rest"), the parent
	// of the spans the services make for it. Nil: none, at no cost.
	Tracer trace.Tracer
	// TraceFrom reports whether a caller may put its call into a trace of its own (a
	// traceparent header); else the header is ignored. Nil: no caller may.
	TraceFrom func(caller spiffeid.ID) bool
}

// Server is the REST API's HTTP handler and TLS configuration.
type Server struct {
	cfg Config
	mux *runtime.ServeMux
	log *slog.Logger
	// recheck verifies a client's X.509-SVID again on each request (identity.Recheck).
	recheck *identity.Recheck
}

// New returns the REST API over cfg.Conn.
func New(ctx context.Context, cfg Config) (*Server, error) {
	switch {
	case cfg.Conn == nil:
		return nil, ErrNoConn
	case cfg.SVID == nil || cfg.Bundles == nil:
		return nil, ErrNoSVID
	case cfg.JWTBundles != nil && len(cfg.Audience) == 0:
		return nil, ErrNoAudience
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 64 << 20
	}
	mux := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, newJSONMarshaler()),
		// No HTTP header becomes gRPC metadata: the services must see only the caller this
		// package authenticated, never a header the client chose (such as the replicas'
		// knooppunt-on-behalf-of), and a bearer token must not travel further.
		runtime.WithIncomingHeaderMatcher(func(string) (string, bool) { return "", false }),
		runtime.WithOutgoingHeaderMatcher(func(string) (string, bool) { return "", false }),
		runtime.SetQueryParameterParser(&strictQuery{}),
		runtime.WithErrorHandler(errorHandler(cfg.MaxBodyBytes)),
		runtime.WithForwardResponseOption(suggestHeader),
	)
	for _, register := range []func(context.Context, *runtime.ServeMux, grpc.ClientConnInterface) error{
		func(ctx context.Context, m *runtime.ServeMux, c grpc.ClientConnInterface) error {
			return pb.RegisterRecordServiceHandlerClient(ctx, m, pb.NewRecordServiceClient(c))
		},
		func(ctx context.Context, m *runtime.ServeMux, c grpc.ClientConnInterface) error {
			return pb.RegisterSearchServiceHandlerClient(ctx, m, pb.NewSearchServiceClient(c))
		},
		func(ctx context.Context, m *runtime.ServeMux, c grpc.ClientConnInterface) error {
			return pb.RegisterStatusServiceHandlerClient(ctx, m, pb.NewStatusServiceClient(c))
		},
		func(ctx context.Context, m *runtime.ServeMux, c grpc.ClientConnInterface) error {
			return pb.RegisterPolicyServiceHandlerClient(ctx, m, pb.NewPolicyServiceClient(c))
		},
		func(ctx context.Context, m *runtime.ServeMux, c grpc.ClientConnInterface) error {
			return pb.RegisterAuditServiceHandlerClient(ctx, m, pb.NewAuditServiceClient(c))
		},
		func(ctx context.Context, m *runtime.ServeMux, c grpc.ClientConnInterface) error {
			return pb.RegisterWebhookServiceHandlerClient(ctx, m, pb.NewWebhookServiceClient(c))
		},
	} {
		if err := register(ctx, mux, cfg.Conn); err != nil {
			return nil, fmt.Errorf("rest: %w", err)
		}
	}
	return &Server{cfg: cfg, mux: mux, log: cfg.Logger, recheck: identity.NewRecheck(cfg.Bundles)}, nil
}

// SuggestHeader is the header in which a REST search gets what gRPC callers get in the trailer
// search.SuggestTrailer: the words to search with instead ("Bedoelde u"), percent-encoded as
// UTF-8 (url.PathEscape), so that a word that is not ASCII is no problem for a header.
// HTTP trailers would reach few clients.
const SuggestHeader = "Knooppunt-Suggest"

// suggestHeader sets SuggestHeader from the call's trailer before the answer is written.
func suggestHeader(ctx context.Context, w http.ResponseWriter, _ proto.Message) error {
	md, ok := runtime.ServerMetadataFromContext(ctx)
	if !ok {
		return nil
	}
	if sug := md.TrailerMD.Get(search.SuggestTrailer); len(sug) > 0 && sug[0] != "" {
		w.Header().Set(SuggestHeader, url.PathEscape(sug[0]))
	}
	return nil
}

// TLSConfig is the API's HTTPS configuration: the node's X.509-SVID, and a client SVID that is
// verified against the trust bundles when the client presents one. A client without one must
// bring a bearer JWT-SVID instead, which ServeHTTP checks.
func (s *Server) TLSConfig() *tls.Config {
	cfg := identity.ServerTLSReporting(s.cfg.SVID, s.cfg.Bundles, s.log, s.cfg.Refused)
	verify := cfg.VerifyPeerCertificate
	cfg.VerifyPeerCertificate = func(raw [][]byte, chains [][]*x509.Certificate) error {
		if len(raw) == 0 {
			return nil // no client certificate: the request must carry a JWT-SVID
		}
		return verify(raw, chains)
	}
	// A resumed session is verified again, as on the gRPC listener, but one without a client
	// certificate is one whose request must carry a JWT-SVID, as on a full handshake.
	resumed := cfg.VerifyConnection
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return nil
		}
		return resumed(cs)
	}
	// Asked for, not required: go-spiffe's verification above runs whenever one is sent.
	cfg.ClientAuth = tls.RequestClientCert
	return cfg
}

// OpenAPIPath is where the API serves its OpenAPI description. It is open to anyone who
// reaches the listener: it describes the routes, as the published source does, and no data.
const OpenAPIPath = "/openapi.json"

// ServeHTTP authenticates the caller and hands the request to the gateway as that caller.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == OpenAPIPath && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(pb.OpenAPI)
		return
	}
	id, err := s.authenticate(w, r)
	if err != nil {
		s.log.Warn("REST call refused", "method", r.Method, "path", r.URL.Path, "reason", err.Error())
		if _, stale := err.(*staleSVID); stale {
			// The client connects again for its next request, with its SVID as it is now.
			w.Header().Set("Connection", "close")
		}
		_, m := runtime.MarshalerForRequest(s.mux, r)
		runtime.HTTPError(r.Context(), s.mux, m, w, r, status.Error(codes.Unauthenticated, err.Error()))
		return
	}
	// No id, name or crisis holds a slash: one escaped in the path (a%2Fb) is refused as such,
	// not answered as a route the node does not have (404 reads as "no such record"; review AF,
	// AF10).
	if strings.Contains(strings.ToUpper(r.URL.RawPath), "%2F") {
		_, m := runtime.MarshalerForRequest(s.mux, r)
		runtime.HTTPError(r.Context(), s.mux, m, w, r, api.Invalid("path", "%s holds an escaped slash (%%2F), which no id, name or crisis has", policy.Quote(r.URL.RawPath)))
		return
	}
	// The token has served: grpc-gateway would pass it on to the services as metadata, whatever
	// the header matcher says.
	r.Header.Del("Authorization")
	ctx := api.AsPerson(r.Context(), id)
	if r.Body != http.NoBody { // net/http's body of a request without one, such as most GETs
		over := new(bool)
		r.Body = limitedBody{http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes), over}
		ctx = context.WithValue(ctx, overKey{}, over)
	}
	if s.cfg.Tracer != nil {
		var end func()
		ctx, w, end = s.span(ctx, w, r, id)
		defer end()
	}
	s.mux.ServeHTTP(w, r.WithContext(ctx))
}

// span starts the span of an authenticated call, in the trace its traceparent names when
// Config.TraceFrom trusts the caller with it, else in a trace of its own. end records the
// answer's status code and ends it.
func (s *Server) span(ctx context.Context, w http.ResponseWriter, r *http.Request, caller spiffeid.ID) (context.Context, http.ResponseWriter, func()) {
	if s.cfg.TraceFrom != nil && s.cfg.TraceFrom(caller) {
		ctx = propagation.TraceContext{}.Extract(ctx, propagation.HeaderCarrier(r.Header))
	}
	ctx, span := s.cfg.Tracer.Start(ctx, "knooppunt.rest", trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(
		attribute.String("http.request.method", r.Method), attribute.String("url.path", r.URL.Path)))
	sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
	return ctx, sw, func() {
		span.SetAttributes(attribute.Int("http.response.status_code", sw.code))
		if sw.code >= 500 {
			span.SetStatus(otelcodes.Error, http.StatusText(sw.code))
		}
		span.End()
	}
}

// statusWriter notes the status code of an answer, for its span.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection's writer (to flush).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// MaxJWTLifetime is the longest a bearer JWT-SVID may still be valid when it comes: a token
// that leaks works until it ends, and a ten-year one was taken.
const MaxJWTLifetime = 24 * time.Hour

// staleSVID refuses a request whose connection was made with an SVID that no longer verifies.
type staleSVID struct{ msg string }

func (e *staleSVID) Error() string { return e.msg }

// authenticate returns the SPIFFE ID the request proves, by its client X.509-SVID or by its
// bearer JWT-SVID, never both, or says what to send.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (spiffeid.ID, error) {
	var certID spiffeid.ID
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		// Verified in the handshake by TLSConfig against the trust bundles.
		id, err := x509svid.IDFromCert(r.TLS.PeerCertificates[0])
		if err != nil {
			return spiffeid.ID{}, fmt.Errorf("the client certificate is not an X.509-SVID: %v", err)
		}
		// And again now: the connection may be older than a bundle that replaced the one it
		// was verified against, or than its certificate's end.
		ended, err := s.recheck.Certs(r.TLS.PeerCertificates)
		if err != nil {
			return spiffeid.ID{}, &staleSVID{status.Convert(err).Message()}
		}
		if ended {
			// Served, and the client connects again for its next request, with its SVID as it
			// is now (identity.Recheck.Check says why).
			w.Header().Set("Connection", "close")
		}
		certID = id
	}
	auth := r.Header.Get("Authorization")
	if auth == "" {
		if certID.IsZero() {
			return spiffeid.ID{}, errors.New("no SPIFFE ID: present an X.509-SVID over mutual TLS or send a JWT-SVID as Authorization: Bearer TOKEN (the web interface's session is not accepted on the API)")
		}
		return certID, nil
	}
	if !certID.IsZero() {
		// Two identities in one request would leave it open which one the call is made as.
		return spiffeid.ID{}, errors.New("both an X.509-SVID and an Authorization header: send one of them")
	}
	scheme, token, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return spiffeid.ID{}, errors.New("Authorization: use the Bearer scheme with a JWT-SVID")
	}
	if s.cfg.JWTBundles == nil {
		return spiffeid.ID{}, errors.New("this node accepts no JWT-SVIDs (http.jwt_bundle_file is not set): use mutual TLS with an X.509-SVID")
	}
	svid, err := jwtsvid.ParseAndValidate(strings.TrimSpace(token), s.cfg.JWTBundles, s.cfg.Audience)
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("the JWT-SVID is not valid here: %v", err)
	}
	if left := time.Until(svid.Expiry); left > MaxJWTLifetime {
		return spiffeid.ID{}, fmt.Errorf("the JWT-SVID is valid for %s more, over the %s this node takes: a bearer token that leaks works until it ends, so mint short-lived ones (SPIRE's are 5 minutes)", left.Round(time.Minute), MaxJWTLifetime)
	}
	return svid.ID, nil
}

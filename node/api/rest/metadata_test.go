package rest_test

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/knooppunt/knooppunt/federation/identity"
	"github.com/knooppunt/knooppunt/federation/identity/identitytest"
	"github.com/knooppunt/knooppunt/node/api"
	"github.com/knooppunt/knooppunt/node/api/rest"
	"github.com/knooppunt/knooppunt/node/config"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// seenMD keeps the metadata a call carried: what the gateway put on the channel, and what a
// handler would send on with its context to the leader or to peers.
type seenMD struct {
	mu               sync.Mutex
	channel, handler metadata.MD
	inner            *api.InProcess
	pb.UnimplementedRecordServiceServer
}

func (s *seenMD) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	md, _ := metadata.FromOutgoingContext(ctx)
	s.mu.Lock()
	s.channel = md
	s.mu.Unlock()
	return s.inner.Invoke(ctx, method, args, reply, opts...)
}

func (s *seenMD) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return s.inner.NewStream(ctx, desc, method, opts...)
}

func (s *seenMD) Get(ctx context.Context, _ *pb.GetRequest) (*pb.Record, error) {
	md, _ := metadata.FromOutgoingContext(ctx)
	s.mu.Lock()
	s.handler = md
	s.mu.Unlock()
	return rest.BenchRecord(), nil
}

// TestBearerTokenGoesNoFurther: a caller's JWT-SVID authenticates the REST call and ends there.
// It is not handed to the services as metadata, and a handler's context carries none of the
// caller's metadata, so that neither the forward to the leader nor a search's fan-out to
// partners' nodes sends the token on, where it could be replayed against this API.
func TestBearerTokenGoesNoFurther(t *testing.T) {
	ca := identitytest.NewCA(t, config.DefaultOrg)
	node := identitytest.SVID(t, ca, "/node/r1", identity.SVIDOptions{})
	user := identitytest.ID(ca, "/user/erik")
	// The JWT-SVID and its bundle as `knooppunt ca jwt` makes them.
	key, _, err := identity.LoadOrCreateJWTKey(t.TempDir(), user.TrustDomain())
	if err != nil {
		t.Fatal(err)
	}
	bundle := jwtbundle.New(user.TrustDomain())
	bundle.AddJWTAuthority(key.KeyID, key.Key.Public())
	cfg := config.Default()
	cfg.Roles = []config.RoleBinding{{ID: user.String(), Role: config.RoleReader}}
	access, err := api.NewAccess(cfg)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	seen := &seenMD{inner: api.NewInProcess(api.NewAuthorizer(access, log), api.LogUnary(log))}
	pb.RegisterRecordServiceServer(seen.inner, seen)
	srv, err := rest.New(context.Background(), rest.Config{
		Conn: seen, SVID: node, Bundles: identitytest.Bundle(ca), JWTBundles: bundle,
		Audience: []string{"https://api.test"}, Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	token, err := key.Mint(user, []string{"https://api.test"}, 0)
	if err != nil {
		t.Fatal(err)
	}

	get := httptest.NewRequest(http.MethodGet, "/v1/records/"+rest.BenchRecord().Id, nil)
	get.TLS = &tls.ConnectionState{HandshakeComplete: true}
	get.Header.Set("Authorization", "Bearer "+token)
	w := httptest.NewRecorder()
	srv.ServeHTTP(w, get)
	if w.Code != http.StatusOK {
		t.Fatalf("GET with a JWT-SVID: %d %s", w.Code, w.Body)
	}
	seen.mu.Lock()
	defer seen.mu.Unlock()
	if v := seen.channel.Get("authorization"); len(v) > 0 {
		t.Errorf("the gateway handed the services the caller's Authorization header as metadata: %q", v)
	}
	if len(seen.handler) > 0 {
		t.Errorf("the handler's context carries the caller's outgoing metadata %v: a call it makes with that context sends it on", seen.handler)
	}
}

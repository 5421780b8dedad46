package rest_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/protobuf/proto"

	"github.com/knooppunt/knooppunt/federation/identity"
	"github.com/knooppunt/knooppunt/federation/identity/identitytest"
	"github.com/knooppunt/knooppunt/node/api"
	"github.com/knooppunt/knooppunt/node/api/rest"
	"github.com/knooppunt/knooppunt/node/config"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// oneRecord answers every Get with its record.
type oneRecord struct {
	pb.UnimplementedRecordServiceServer
	r *pb.Record
}

func (o oneRecord) Get(context.Context, *pb.GetRequest) (*pb.Record, error) { return o.r, nil }

// newServer is the REST API over an in-process channel that serves rec, for user, an editor,
// with maxBody as Config.MaxBodyBytes.
func newServer(tb testing.TB, maxBody int64) (*rest.Server, *api.InProcess, *x509svid.SVID, *pb.Record) {
	tb.Helper()
	ca := identitytest.NewCA(tb, config.DefaultOrg)
	user := identitytest.SVID(tb, ca, "/user/bench", identity.SVIDOptions{})
	node := identitytest.SVID(tb, ca, "/node/r1", identity.SVIDOptions{})
	cfg := config.Default()
	cfg.Roles = []config.RoleBinding{{ID: user.ID.String(), Role: config.RoleEditor}}
	access, err := api.NewAccess(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	inproc := api.NewInProcess(api.NewAuthorizer(access, log), api.LogUnary(log))
	inproc.ShareReplies()
	rec := rest.BenchRecord()
	pb.RegisterRecordServiceServer(inproc, oneRecord{r: rec})
	srv, err := rest.New(context.Background(), rest.Config{
		Conn: inproc, SVID: node, Bundles: identitytest.Bundle(ca), Audience: []string{"x"}, Logger: log, MaxBodyBytes: maxBody,
	})
	if err != nil {
		tb.Fatal(err)
	}
	return srv, inproc, user, rec
}

// TestBodyLimit: a body over Config.MaxBodyBytes is refused with 413 and the limit, before any
// service sees it; a GET, which has no body, is served.
func TestBodyLimit(t *testing.T) {
	srv, _, user, rec := newServer(t, 1024)
	state := &tls.ConnectionState{HandshakeComplete: true, PeerCertificates: user.Certificates}
	body := `{"id":"s1","kind":"shelter.capacity","body":"` + strings.Repeat("A", 2048) + `"}`
	put := httptest.NewRequest(http.MethodPost, "/v1/records", strings.NewReader(body))
	put.TLS = state
	w := httptest.NewRecorder()
	srv.ServeHTTP(w, put)
	if w.Code != http.StatusRequestEntityTooLarge || !strings.Contains(w.Body.String(), "request body: over this API's limit of 1024 bytes") {
		t.Errorf("POST of %d bytes with a limit of 1024: %d %s", len(body), w.Code, w.Body)
	}
	get := httptest.NewRequest(http.MethodGet, "/v1/records/"+rec.Id, nil)
	get.TLS = state
	w = httptest.NewRecorder()
	srv.ServeHTTP(w, get)
	if w.Code != http.StatusOK {
		t.Errorf("GET: %d %s", w.Code, w.Body)
	}
	// Without a credential: 401 with a challenge in WWW-Authenticate, the reason in the body.
	anon := httptest.NewRequest(http.MethodGet, "/v1/records/"+rec.Id, nil)
	anon.TLS = &tls.ConnectionState{HandshakeComplete: true}
	w = httptest.NewRecorder()
	srv.ServeHTTP(w, anon)
	if w.Code != http.StatusUnauthorized || w.Header().Get("WWW-Authenticate") != `Bearer realm="knooppunt"` || !strings.Contains(w.Body.String(), "no SPIFFE ID") {
		t.Errorf("GET without a credential: %d, WWW-Authenticate %q, %s", w.Code, w.Header().Get("WWW-Authenticate"), w.Body)
	}
}

// BenchmarkServeGet measures what the REST API adds to a Get on the server, without sockets:
// one iteration is a GET /v1/records/{id} through Server.ServeHTTP, as a caller whose client
// X.509-SVID the handshake verified (authentication, grpc-gateway's routing, the in-process
// channel with the authorizer, the JSON answer), and the same Get on the in-process channel
// with the record marshalled as protobuf, as a gRPC server answers it. x-channel is the first ÷
// the second.
func BenchmarkServeGet(b *testing.B) {
	srv, inproc, user, rec := newServer(b, 0)
	state := &tls.ConnectionState{HandshakeComplete: true, PeerCertificates: user.Certificates}
	// One request, as net/http hands it over, and an answer kept in a reused buffer, so that
	// what is timed is the API and not the test's own plumbing.
	get := httptest.NewRequest(http.MethodGet, "/v1/records/"+rec.Id, nil)
	get.TLS = state
	out := &answer{header: http.Header{}}
	serve := func() {
		req := *get
		req.Body = http.NoBody
		out.reset()
		srv.ServeHTTP(out, &req)
		if out.code != http.StatusOK {
			b.Fatalf("GET: %d %s", out.code, out.body)
		}
	}
	client := pb.NewRecordServiceClient(inproc)
	ctx := api.AsPerson(context.Background(), user.ID)
	channel := func() {
		r, err := client.Get(ctx, &pb.GetRequest{Id: rec.Id})
		if err == nil {
			_, err = proto.Marshal(r)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	var got struct {
		ID string `json:"id"`
	}
	req := httptest.NewRequest(http.MethodGet, "/v1/records/"+rec.Id, nil)
	req.TLS = state
	w := httptest.NewRecorder()
	srv.ServeHTTP(w, req)
	if body, _ := io.ReadAll(w.Body); json.Unmarshal(body, &got) != nil || got.ID != rec.Id {
		b.Fatalf("GET: %d %s", w.Code, body)
	}
	var tServe, tChannel time.Duration
	for b.Loop() {
		start := time.Now()
		serve()
		mid := time.Now()
		channel()
		tServe, tChannel = tServe+mid.Sub(start), tChannel+time.Since(mid)
	}
	b.ReportMetric(float64(tServe)/float64(b.N), "serve-ns")
	b.ReportMetric(float64(tChannel)/float64(b.N), "channel-ns")
	b.ReportMetric(float64(tServe)/float64(tChannel), "x-channel")
}

// answer is an http.ResponseWriter that keeps the last answer in buffers it reuses.
type answer struct {
	header http.Header
	code   int
	body   []byte
}

func (a *answer) reset() {
	clear(a.header)
	a.code, a.body = 0, a.body[:0]
}

func (a *answer) Header() http.Header { return a.header }

func (a *answer) WriteHeader(code int) {
	if a.code == 0 {
		a.code = code
	}
}

func (a *answer) Write(p []byte) (int, error) {
	a.WriteHeader(http.StatusOK)
	a.body = append(a.body, p...)
	return len(p), nil
}

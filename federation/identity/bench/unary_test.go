package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/knooppunt/knooppunt/node/api/records"
	"github.com/knooppunt/knooppunt/node/config"
	"github.com/knooppunt/knooppunt/node/record"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

const recordID = "mtlsbench-shelter-utrecht"

// unaryCall is one of the calls BenchmarkUnaryGet compares.
type unaryCall struct {
	name string
	call func(context.Context) error
	took []time.Duration
}

// unaryCalls are, in order:
//
//	node-get    RecordService.Get on the node: mTLS, the authorisation interceptor, the forward
//	            and log interceptors, the id check and the SQLite read
//	node-check  Health.Check on the node: the same transport and interceptors, no SQLite
//	bare-get    the node's RecordService, on its database, registered on a bare grpc.Server
//	            with the same TLS configuration and no interceptors
//	grpc-check  Health.Check on that bare server: plain grpc-go over the same mTLS, the baseline
//	plain-get   a plain grpc-go RecordService.Get on that bare server that answers the same
//	            record from memory: the same messages as node-get, with no interceptors and no
//	            database, the second baseline
//	db-get      the node's db.Get in process, no gRPC: the SQLite read and the row's decoding
//	rest-get    GET /v1/records/{id} on the node's REST API over the same mTLS (HTTP/1.1 with
//	            keep-alive): the gateway, the in-process channel, the same interceptors and read
//
// Every gRPC call goes over an established connection made with identity.ClientCredentials; the
// returned addresses are the node's listener and the bare server's.
func unaryCalls(tb testing.TB) (f *fixture, nodeAddr, bareAddr net.Addr, calls []*unaryCall) {
	tb.Helper()
	f = newFixture(tb)
	n := f.startNode(tb)
	nodeAddr = n.Addr()
	nodeConn := f.dial(tb, nodeAddr)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := pb.NewRecordServiceClient(nodeConn).Put(ctx, &pb.PutRequest{Record: &pb.Record{
		Id: recordID, Kind: "shelter.capacity", Crisis: "oekraine", Region: "VR09",
		Classification: pb.Classification(1),
		Labels:         map[string]string{"source": "coa", "municipality": "utrecht"},
		Body:           []byte(`{"municipality":"Utrecht","location":"Sporthal Galgenwaard, Utrecht","beds_total":240,"beds_free":37,"contact_phone":"+31 30 286 0000","notes":"Opvang tot vrijdag; gezinnen met kinderen krijgen voorrang."}`),
	}}); err != nil {
		tb.Fatal(err)
	}

	kinds, err := config.Default().KindSet()
	if err != nil {
		tb.Fatal(err)
	}
	bareRecords := records.New(records.Config{
		Store: n.Store(), DB: n.DB(), Logger: discard,
		Checker: &record.Checker{Kinds: kinds, Origin: config.DefaultOrg, MaxBody: record.DefaultMaxBody},
	})
	stored, err := n.DB().Get(ctx, recordID)
	if err != nil {
		tb.Fatal(err)
	}
	bareAddr = f.serveBare(tb, func(s *grpc.Server) {
		records.RegisterService(s, bareRecords)
		healthpb.RegisterHealthServer(s, health.NewServer())
	})
	plainAddr := f.serveBare(tb, func(s *grpc.Server) {
		pb.RegisterRecordServiceServer(s, memoryRecords{r: stored})
	})
	bareConn, plainConn := f.dial(tb, bareAddr), f.dial(tb, plainAddr)

	get := func(c pb.RecordServiceClient) func(context.Context) error {
		return func(ctx context.Context) error {
			r, err := c.Get(ctx, &pb.GetRequest{Id: recordID})
			if err == nil && r.Id != recordID {
				tb.Fatalf("Get(%s) returned %s", recordID, r.Id)
			}
			return err
		}
	}
	check := func(c healthpb.HealthClient) func(context.Context) error {
		return func(ctx context.Context) error {
			_, err := c.Check(ctx, &healthpb.HealthCheckRequest{})
			return err
		}
	}
	tr := &http.Transport{TLSClientConfig: f.clientTLS()}
	tb.Cleanup(tr.CloseIdleConnections)
	restClient := &http.Client{Transport: tr}
	restURL := "https://" + n.RESTAddr().String() + "/v1/records/" + recordID
	restGet := func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, restURL, nil)
		if err != nil {
			return err
		}
		resp, err := restClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		// Read and decode the whole answer, as a client does, so that the connection is reused.
		var r struct {
			ID string `json:"id"`
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("HTTP %d: %s", resp.StatusCode, body)
		}
		if err := json.Unmarshal(body, &r); err != nil || r.ID != recordID {
			return fmt.Errorf("GET %s: id %q, %v", restURL, r.ID, err)
		}
		return nil
	}
	return f, nodeAddr, bareAddr, []*unaryCall{
		{name: "rest-get", call: restGet},
		{name: "node-get", call: get(pb.NewRecordServiceClient(nodeConn))},
		{name: "node-check", call: check(healthpb.NewHealthClient(nodeConn))},
		{name: "bare-get", call: get(pb.NewRecordServiceClient(bareConn))},
		{name: "grpc-check", call: check(healthpb.NewHealthClient(bareConn))},
		{name: "plain-get", call: get(pb.NewRecordServiceClient(plainConn))},
		{name: "db-get", call: func(ctx context.Context) error {
			// A context that can end, as a gRPC handler's can: go-sqlite3 then watches it.
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			_, err := n.DB().Get(ctx, recordID)
			return err
		}},
	}
}

// BenchmarkUnaryGet measures the latency of one unary RecordService.Get over the full mTLS stack
// of a running node against a plain grpc-go unary call over the same TLS configuration. One
// iteration makes each call of unaryCalls once, in an order that rotates, so that a noisy
// neighbour hits every call alike; each call is timed on its own. Metrics:
//
//	ns/op          node-get, mean
//	node-check-ns  node-check, mean
//	bare-get-ns    bare-get, mean
//	grpc-check-ns  grpc-check, mean
//	db-get-ns      db-get, mean
//	plain-get-ns   plain-get, mean
//	x-plain-get    node-get ÷ plain-get, means: the same call and reply, plain grpc-go against
//	               the node (target ≤ 1.5)
//	x-grpc         node-get ÷ grpc-check, means: against a call with an empty reply
//	x-grpc-p50     the same ratio of medians, which one descheduled call does not move
//	x-bare-get     node-get ÷ bare-get, means: what the node's interceptors add to a Get
//	rest-get-ns    rest-get, mean
//	x-rest-get     rest-get ÷ node-get, means: REST against gRPC over the same mTLS (target ≤ 1.5)
//	x-rest-get-p50 the same ratio of medians
func BenchmarkUnaryGet(b *testing.B) {
	_, _, _, calls := unaryCalls(b)
	ctx := context.Background()
	for range 200 { // connections, the HTTP/2 windows, SQLite's page cache
		for _, c := range calls {
			if err := c.call(ctx); err != nil {
				b.Fatalf("%s: %v", c.name, err)
			}
		}
	}
	i := 0
	for b.Loop() {
		for j := range calls {
			c := calls[(i+j)%len(calls)]
			start := time.Now()
			err := c.call(ctx)
			c.took = append(c.took, time.Since(start))
			if err != nil {
				b.Fatalf("%s: %v", c.name, err)
			}
		}
		i++
	}
	mean := map[string]float64{}
	p50 := map[string]float64{}
	for _, c := range calls {
		var sum time.Duration
		for _, d := range c.took {
			sum += d
		}
		mean[c.name] = float64(sum) / float64(len(c.took))
		slices.Sort(c.took)
		p50[c.name] = float64(c.took[len(c.took)/2])
	}
	b.ReportMetric(mean["node-get"], "ns/op")
	b.ReportMetric(mean["node-check"], "node-check-ns")
	b.ReportMetric(mean["bare-get"], "bare-get-ns")
	b.ReportMetric(mean["grpc-check"], "grpc-check-ns")
	b.ReportMetric(mean["db-get"], "db-get-ns")
	b.ReportMetric(mean["plain-get"], "plain-get-ns")
	b.ReportMetric(mean["node-get"]/mean["plain-get"], "x-plain-get")
	b.ReportMetric(mean["node-get"]/mean["grpc-check"], "x-grpc")
	b.ReportMetric(p50["node-get"]/p50["grpc-check"], "x-grpc-p50")
	b.ReportMetric(mean["node-get"]/mean["bare-get"], "x-bare-get")
	b.ReportMetric(mean["rest-get"], "rest-get-ns")
	b.ReportMetric(mean["rest-get"]/mean["node-get"], "x-rest-get")
	b.ReportMetric(p50["rest-get"]/p50["node-get"], "x-rest-get-p50")
}

// memoryRecords is a plain RecordService that answers Get with one record held in memory.
type memoryRecords struct {
	pb.UnimplementedRecordServiceServer
	r *pb.Record
}

func (m memoryRecords) Get(_ context.Context, req *pb.GetRequest) (*pb.Record, error) {
	if req.Id != m.r.Id {
		return nil, status.Errorf(codes.NotFound, "no record %q", req.Id)
	}
	return m.r, nil
}

// TestUnaryCalls checks what BenchmarkUnaryGet relies on: every call succeeds over mTLS, and a
// caller with no role is refused by the node but served by the bare server, so the two really
// differ by the node's authorisation.
func TestUnaryCalls(t *testing.T) {
	f, nodeAddr, bareAddr, calls := unaryCalls(t)
	ctx := context.Background()
	for _, c := range calls {
		if err := c.call(ctx); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	stranger := f.issue(t, "/user/stranger")
	get := &pb.GetRequest{Id: recordID}
	_, err := pb.NewRecordServiceClient(f.dialAs(t, nodeAddr, stranger)).Get(ctx, get)
	want := "spiffe://" + config.DefaultOrg + "/user/stranger has no role on this node: an admin can give it one under roles in the node config"
	if status.Code(err) != codes.PermissionDenied || status.Convert(err).Message() != want {
		t.Errorf("node Get as a caller with no role: %v, want PermissionDenied %q", err, want)
	}
	if _, err := pb.NewRecordServiceClient(f.dialAs(t, bareAddr, stranger)).Get(ctx, get); err != nil {
		t.Errorf("bare Get as a caller with no role: %v, want the record", err)
	}
}

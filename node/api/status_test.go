package api_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/knooppunt/knooppunt/node/api"
	"github.com/knooppunt/knooppunt/node/db"
	"github.com/knooppunt/knooppunt/node/record"
	"github.com/knooppunt/knooppunt/node/store"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// refuser refuses every Get with the error it holds.
type refuser struct {
	pb.UnimplementedRecordServiceServer
	err error
}

func (r *refuser) Get(context.Context, *pb.GetRequest) (*pb.Record, error) { return nil, r.err }

// TestRefusalsNameTheirFieldApart: a refusal that names a field carries it, and its reason, in a
// detail that crosses the wire, with its own code and its message unchanged, as does one that
// carries a reason (ReasonStatus); the other errors carry neither.
func TestRefusalsNameTheirFieldApart(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cases := []struct {
		name          string
		err           error
		code          codes.Code
		field, reason string
		why           string
	}{
		{"Invalid", api.Invalid("origins[2]", "%q is no peer", "x.example"), codes.InvalidArgument, "origins[2]", `"x.example" is no peer`, ""},
		{"a FieldError", api.Status(log, fmt.Errorf("put: %w", &record.FieldError{Field: "record.body.beds_free", Code: codes.InvalidArgument, Reason: "must be >= 0"})),
			codes.InvalidArgument, "record.body.beds_free", "must be >= 0", ""},
		{"a FieldError of another code", api.Status(log, &record.FieldError{Field: "record.body", Code: codes.ResourceExhausted, Reason: "too large"}),
			codes.ResourceExhausted, "record.body", "too large", ""},
		{"a bad page token", api.Status(log, db.ErrBadPageToken), codes.InvalidArgument, "page_token", "not a token from a previous List: start again without it", ""},
		{"not found", api.Status(log, db.ErrNotFound), codes.NotFound, "", "", ""},
		{"internal", api.Status(log, errors.New("disk on fire")), codes.Internal, "", "", ""},
		{"four eyes", api.ReasonStatus(codes.PermissionDenied, api.ReasonFourEyes, "the author cannot approve"), codes.PermissionDenied, "", "", api.ReasonFourEyes},
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &refuser{}
	srv := grpc.NewServer()
	pb.RegisterRecordServiceServer(srv, r)
	go srv.Serve(lis)
	defer srv.Stop()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r.err = c.err
			_, err := pb.NewRecordServiceClient(conn).Get(context.Background(), &pb.GetRequest{Id: "x"})
			st := status.Convert(err)
			if st.Code() != c.code || st.Message() != status.Convert(c.err).Message() {
				t.Fatalf("got %v %q, want %v %q", st.Code(), st.Message(), c.code, status.Convert(c.err).Message())
			}
			field, reason := api.Field(err)
			if field != c.field || reason != c.reason {
				t.Fatalf("Field = %q, %q; want %q, %q", field, reason, c.field, c.reason)
			}
			if c.field != "" && st.Message() != c.field+": "+c.reason {
				t.Fatalf("message %q does not say %q", st.Message(), c.field+": "+c.reason)
			}
			if why := api.Reason(err); why != c.why {
				t.Fatalf("Reason = %q, want %q", why, c.why)
			}
		})
	}
	if f, _ := api.Field(errors.New("plain")); f != "" {
		t.Fatalf("a plain error names field %q", f)
	}
	if f, _ := api.Field(nil); f != "" {
		t.Fatalf("nil names field %q", f)
	}
}

// TestStatusOfAWriteThatMayHaveCommitted: a write whose leader was deposed before it committed
// is ABORTED, telling the client to read before writing again, not UNAVAILABLE, which clients
// retry as never proposed; a write that never entered the log stays UNAVAILABLE.
func TestStatusOfAWriteThatMayHaveCommitted(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := api.Status(log, fmt.Errorf("store: commit: %w", store.ErrMaybeCommitted)); status.Code(err) != codes.Aborted ||
		!strings.Contains(status.Convert(err).Message(), "may have been stored") {
		t.Errorf("maybe committed: %v, want ABORTED saying it may have been stored", err)
	}
	if err := api.Status(log, store.ErrNotLeader); status.Code(err) != codes.Unavailable {
		t.Errorf("not the leader: %v, want UNAVAILABLE", err)
	}
}

// TestLogUnaryLevels: a refused call is logged at WARN with its code; one its caller cancelled (a
// follower that stopped waiting for a leader it lost, whose call a frozen leader answers when it
// thaws) only at DEBUG; NOT_FOUND not at all.
func TestLogUnaryLevels(t *testing.T) {
	var out strings.Builder
	log := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}))
	intercept := api.LogUnary(log)
	info := &grpc.UnaryServerInfo{FullMethod: "/knooppunt.v1.RecordService/Put"}
	for _, code := range []codes.Code{codes.Canceled, codes.NotFound, codes.Internal} {
		intercept(context.Background(), nil, info, func(context.Context, any) (any, error) {
			return nil, status.Error(code, "nee")
		})
	}
	got := out.String()
	for _, want := range []string{`level=DEBUG msg="call cancelled by its caller"`, `level=WARN msg="call refused" method=/knooppunt.v1.RecordService/Put code=Internal`} {
		if !strings.Contains(got, want) {
			t.Errorf("log %q, want it to hold %q", got, want)
		}
	}
	if strings.Contains(got, "code=Canceled") || strings.Contains(got, "NotFound") {
		t.Errorf("log %q: a cancelled call at WARN, or a NOT_FOUND logged", got)
	}
}

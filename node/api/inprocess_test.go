package api_test

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/knooppunt/knooppunt/node/api"
	"github.com/knooppunt/knooppunt/node/api/audit"
	"github.com/knooppunt/knooppunt/node/config"
	"github.com/knooppunt/knooppunt/node/db"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestInProcessAppliesTheRoleTable: a call on the in-process channel is decided by the same
// Access and MethodRoles as a call over mTLS, on the real AuditService over real SQLite.
func TestInProcessAppliesTheRoleTable(t *testing.T) {
	d, err := db.Open(filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	access := func(role string) *api.Access {
		c := config.Default()
		c.Org = "a.crisis.test"
		c.Roles = []config.RoleBinding{
			{ID: "spiffe://a.crisis.test/user/olga", Role: config.RoleOfficer},
			{ID: "spiffe://a.crisis.test/user/rik", Role: role},
			{Prefix: "spiffe://a.crisis.test/node/", Role: config.RoleAdmin},
		}
		a, err := api.NewAccess(c)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	z := api.NewAuthorizer(access(config.RoleReader), log)
	ch := api.NewInProcess(z, api.LogUnary(log))
	// Every refusal by the role table is reported, for the audit log.
	var denied []string
	ch.OnDenied(func(person, method, reason string) { denied = append(denied, person+" "+method) })
	audit.RegisterService(ch, audit.New(d, log))
	if _, ok := ch.GetServiceInfo()["knooppunt.v1.AuditService"]; !ok {
		t.Fatalf("services: %v", ch.GetServiceInfo())
	}
	client := pb.NewAuditServiceClient(ch)
	as := func(id string) context.Context {
		return api.AsPerson(context.Background(), spiffeid.RequireFromString(id))
	}
	for _, tc := range []struct {
		name string
		ctx  context.Context
		code codes.Code
		msg  string
	}{
		{"officer", as("spiffe://a.crisis.test/user/olga"), codes.OK, ""},
		{"reader", as("spiffe://a.crisis.test/user/rik"), codes.PermissionDenied,
			"spiffe://a.crisis.test/user/rik may not call AuditService/List: it needs the role officer or admin"},
		{"no role", as("spiffe://a.crisis.test/user/zoe"), codes.PermissionDenied,
			"spiffe://a.crisis.test/user/zoe has no role on this node: an admin can give it one under roles in the node config"},
		{"another org", as("spiffe://b.crisis.test/user/olga"), codes.PermissionDenied,
			"trust domain b.crisis.test is not a configured peer of this node"},
		{"a replica", as("spiffe://a.crisis.test/node/r1"), codes.PermissionDenied,
			"spiffe://a.crisis.test/node/r1 is a replica ID: the in-process channel serves people only"},
		{"nobody", context.Background(), codes.Unauthenticated, "no person: the web interface must sign the person in first"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := client.List(tc.ctx, &pb.ListAuditRequest{})
			if st := status.Convert(err); st.Code() != tc.code || st.Message() != tc.msg {
				t.Fatalf("List: %v %q, want %v %q", st.Code(), st.Message(), tc.code, tc.msg)
			}
			// Every refusal for who the caller is says ROLE_DENIED, for a program (review X, X7).
			if tc.code == codes.PermissionDenied && api.Reason(err) != api.ReasonRoleDenied {
				t.Errorf("List: reason %q, want %s", api.Reason(err), api.ReasonRoleDenied)
			}
		})
	}
	// A method the table does not list is refused like on the servers.
	err = ch.Invoke(as("spiffe://a.crisis.test/user/olga"), "/knooppunt.v1.AuditService/Erase", &pb.ListAuditRequest{}, &pb.ListAuditResponse{})
	if st := status.Convert(err); st.Code() != codes.PermissionDenied || st.Message() != "/knooppunt.v1.AuditService/Erase is not open to any caller" {
		t.Errorf("unlisted method: %v", err)
	}
	wantDenied := []string{
		"spiffe://a.crisis.test/user/rik /knooppunt.v1.AuditService/List",
		"spiffe://a.crisis.test/user/zoe /knooppunt.v1.AuditService/List",
		"spiffe://b.crisis.test/user/olga /knooppunt.v1.AuditService/List",
		"spiffe://a.crisis.test/user/olga /knooppunt.v1.AuditService/Erase",
	}
	if strings.Join(denied, "\n") != strings.Join(wantDenied, "\n") {
		t.Errorf("reported refusals:\n%s\nwant:\n%s", strings.Join(denied, "\n"), strings.Join(wantDenied, "\n"))
	}
	// A reload of the roles applies to the next call.
	z.SetAccess(access(config.RoleAdmin))
	if _, err := client.List(as("spiffe://a.crisis.test/user/rik"), &pb.ListAuditRequest{}); err != nil {
		t.Errorf("after the reload made rik an admin: %v", err)
	}
	c, err := z.Resolve(spiffeid.RequireFromString("spiffe://a.crisis.test/user/rik"))
	if err != nil || !c.Has(api.Admin) || len(c.Roles) != 1 {
		t.Errorf("Resolve: %v %v, want admin", c.Roles, err)
	}
}

// pieces is an AttachmentService whose Download sends the request's sha256 in three pieces
// from one buffer it reuses, then fails when the record id says so; it is there to test the
// channel's streams, not files.
type pieces struct {
	pb.UnimplementedAttachmentServiceServer
	ended chan error // each Download's end, when set
}

func (p *pieces) Download(req *pb.DownloadRequest, stream grpc.ServerStreamingServer[pb.FileData]) error {
	err := func() error {
		buf := make([]byte, 1)
		for i, c := range []byte(req.Sha256) {
			buf[0] = c
			msg := &pb.FileData{Data: buf}
			if i == 0 {
				msg.Attachment = &pb.Attachment{Sha256: req.Sha256, Size: int64(len(req.Sha256))}
			}
			if err := stream.Send(msg); err != nil {
				return err
			}
		}
		if req.RecordId == "fail" {
			return status.Error(codes.DataLoss, "the file broke")
		}
		return nil
	}()
	if p.ended != nil {
		p.ended <- err
	}
	return err
}

// Upload answers with the file's name and its pieces joined, in the order they came; a file
// named refuse is refused at its first piece, the rest unread.
func (p *pieces) Upload(stream grpc.ClientStreamingServer[pb.UploadRequest, pb.Attachment]) error {
	var name string
	var got []byte
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			return stream.SendAndClose(&pb.Attachment{Filename: name, Sha256: string(got)})
		}
		if err != nil {
			return err
		}
		if name == "" {
			name = msg.Filename
		}
		if name == "refuse" {
			return status.Error(codes.InvalidArgument, "refused")
		}
		got = append(got, msg.Data...)
	}
}

// TestInProcessStreams: a call of one request and a stream of replies goes through the role
// table as a unary call does; the caller gets copies of the replies in order, then the handler's
// end; a stream of requests reaches its handler in order, and a handler that refuses early ends
// it; a caller that gives up ends the handler.
func TestInProcessStreams(t *testing.T) {
	c := config.Default()
	c.Org = "a.crisis.test"
	c.Roles = []config.RoleBinding{{ID: "spiffe://a.crisis.test/user/olga", Role: config.RoleReader}}
	access, err := api.NewAccess(c)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ch := api.NewInProcess(api.NewAuthorizer(access, log))
	var denied []string
	ch.OnDenied(func(person, method, reason string) { denied = append(denied, person+" "+method) })
	svc := &pieces{}
	pb.RegisterAttachmentServiceServer(ch, svc)
	client := pb.NewAttachmentServiceClient(ch)
	olga := api.AsPerson(context.Background(), spiffeid.RequireFromString("spiffe://a.crisis.test/user/olga"))

	read := func(ctx context.Context, id string) (string, error) {
		stream, err := client.Download(ctx, &pb.DownloadRequest{RecordId: id, Sha256: "abc"})
		if err != nil {
			return "", err
		}
		var got []byte
		for {
			msg, err := stream.Recv()
			if err == io.EOF {
				return string(got), nil
			}
			if err != nil {
				return string(got), err
			}
			got = append(got, msg.Data...)
		}
	}
	if got, err := read(olga, "ok"); got != "abc" || err != nil {
		t.Errorf("Download: %q, %v; want abc in order, each piece its own copy", got, err)
	}
	if got, err := read(olga, "fail"); got != "abc" || status.Code(err) != codes.DataLoss {
		t.Errorf("Download that fails at the end: %q, %v; want abc, then DataLoss", got, err)
	}
	for i, tc := range []struct {
		ctx  context.Context
		code codes.Code
	}{
		{context.Background(), codes.Unauthenticated},
		{api.AsPerson(context.Background(), spiffeid.RequireFromString("spiffe://a.crisis.test/user/zoe")), codes.PermissionDenied},
		{api.AsPerson(context.Background(), spiffeid.RequireFromString("spiffe://a.crisis.test/node/r1")), codes.PermissionDenied},
	} {
		if _, err := read(tc.ctx, "ok"); status.Code(err) != tc.code {
			t.Errorf("Download, case %d: %v, want %v", i, err, tc.code)
		}
	}
	if len(denied) != 1 || denied[0] != "spiffe://a.crisis.test/user/zoe /knooppunt.v1.AttachmentService/Download" {
		t.Errorf("reported refusals: %q, want zoe's Download", denied)
	}
	// A reader may not upload; an editor may, through the channel as over a socket.
	if _, err := client.Upload(olga); status.Code(err) != codes.PermissionDenied {
		t.Errorf("Upload as a reader: %v, want PermissionDenied", err)
	}
	c.Roles[0].Role = config.RoleEditor
	if access, err = api.NewAccess(c); err != nil {
		t.Fatal(err)
	}
	ch2 := api.NewInProcess(api.NewAuthorizer(access, log))
	pb.RegisterAttachmentServiceServer(ch2, svc)
	upload := func(name string, data ...string) (*pb.Attachment, error) {
		stream, err := pb.NewAttachmentServiceClient(ch2).Upload(olga)
		if err != nil {
			return nil, err
		}
		for i, d := range data {
			msg := &pb.UploadRequest{Data: []byte(d)}
			if i == 0 {
				msg.Filename = name
			}
			if err := stream.Send(msg); err != nil {
				break // the handler ended: CloseAndRecv says how
			}
		}
		return stream.CloseAndRecv()
	}
	if a, err := upload("f.txt", "a", "b", "c"); err != nil || a.Filename != "f.txt" || a.Sha256 != "abc" {
		t.Errorf("Upload as an editor: %v, %v; want f.txt with abc", a, err)
	}
	if _, err := upload("refuse", "a", "b", "c"); status.Code(err) != codes.InvalidArgument {
		t.Errorf("Upload refused at its first piece: %v, want InvalidArgument", err)
	}

	// The caller reads one piece and gives up: the handler's next Send fails, and it ends.
	svc.ended = make(chan error, 1)
	ctx, cancel := context.WithCancel(olga)
	stream, err := client.Download(ctx, &pb.DownloadRequest{RecordId: "ok", Sha256: "abc"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case err := <-svc.ended:
		if status.Code(err) != codes.Canceled {
			t.Errorf("the handler of a call given up ended with %v, want Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the handler of a call given up did not end")
	}
	if _, err := stream.Recv(); status.Code(err) != codes.Canceled {
		t.Errorf("Recv after cancel: %v, want Canceled", err)
	}
}

// trailing is an AuditService whose List sets a header and, from two goroutines at once, a
// trailer each: what a handler sets must reach the caller as over a socket.
type trailing struct {
	pb.UnimplementedAuditServiceServer
}

func (trailing) List(ctx context.Context, _ *pb.ListAuditRequest) (*pb.ListAuditResponse, error) {
	if err := grpc.SetHeader(ctx, metadata.Pairs("h", "1")); err != nil {
		return nil, err
	}
	var wg sync.WaitGroup
	for _, v := range []string{"a", "b"} {
		wg.Go(func() { grpc.SetTrailer(ctx, metadata.Pairs("t", v)) })
	}
	wg.Wait()
	return &pb.ListAuditResponse{}, nil
}

// TestInProcessPassesHeadersAndTrailers: a unary handler's headers and trailers reach the
// caller's grpc.Header and grpc.Trailer, set from goroutines of the handler too (-race).
func TestInProcessPassesHeadersAndTrailers(t *testing.T) {
	c := config.Default()
	c.Org = "a.crisis.test"
	c.Roles = []config.RoleBinding{{ID: "spiffe://a.crisis.test/user/olga", Role: config.RoleOfficer}}
	a, err := api.NewAccess(c)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ch := api.NewInProcess(api.NewAuthorizer(a, log), api.LogUnary(log))
	pb.RegisterAuditServiceServer(ch, trailing{})
	var header, trailer metadata.MD
	ctx := api.AsPerson(context.Background(), spiffeid.RequireFromString("spiffe://a.crisis.test/user/olga"))
	if _, err := pb.NewAuditServiceClient(ch).List(ctx, &pb.ListAuditRequest{}, grpc.Header(&header), grpc.Trailer(&trailer)); err != nil {
		t.Fatal(err)
	}
	got := trailer.Get("t")
	slices.Sort(got)
	if !slices.Equal(header.Get("h"), []string{"1"}) || !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("header %v, trailer %v; want h=1 and t=a, t=b", header, trailer)
	}
}

package node_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/knooppunt/knooppunt/federation/identity"
	"github.com/knooppunt/knooppunt/federation/identity/identitytest"
	"github.com/knooppunt/knooppunt/node"
	"github.com/knooppunt/knooppunt/node/api"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// countingConn counts the bytes a client writes to its connection.
type countingConn struct {
	net.Conn
	sent *atomic.Int64
}

func (c countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.sent.Add(int64(n))
	return n, err
}

// TestRefusedCallsAreNotRead (review E, E1): a call the node refuses is refused before its
// request is read, and a peer's message is bounded at MaxPeerMessageBytes. grpc-go reads a
// unary request whole, up to the server's message limit (64 MiB), before any interceptor runs:
// a peer's 48 MiB Put, or a reader's, was read into memory before the refusal, and a few dozen at
// once took a node into gigabytes. Here the client counts what it could send: far less than
// the request.
func TestRefusedCallsAreNotRead(t *testing.T) {
	own := newMTLSOrg(t, mtlsOwnTD)
	ncc := newMTLSOrg(t, mtlsPeerTD)
	n := startMTLSNode(t, own, own.filesIdentity()+fmt.Sprintf(`roles:
  - {id: spiffe://%[1]s/user/reader, role: reader}
peers:
  - {name: ncc, trust_domain: %s, bundle_file: %s}
`, mtlsOwnTD, mtlsPeerTD, ncc.bundle))
	const size = 48 << 20
	big := mtlsRecord("groot")
	big.Body = []byte(`{"title":"` + strings.Repeat("x", size) + `"}`)
	dial := func(t *testing.T, o *mtlsOrg, path string) (*grpc.ClientConn, *atomic.Int64) {
		var sent atomic.Int64
		conn, err := grpc.NewClient(n.Addr().String(),
			grpc.WithTransportCredentials(identity.ClientCredentials(o.svid(t, path), identitytest.Bundle(own.ca), identity.AuthorizeReplica(own.td))),
			grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(node.MaxMessageBytes)),
			grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
				c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
				return countingConn{Conn: c, sent: &sent}, err
			}))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn, &sent
	}
	for _, tc := range []struct {
		name string
		org  *mtlsOrg
		path string
		code codes.Code
		says string
	}{
		{"a peer's Put", ncc, "/node/r1", codes.PermissionDenied, "peers may call only the FederationService"},
		{"a reader's Put", own, "/user/reader", codes.PermissionDenied, "may not call RecordService/Put"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, sent := dial(t, tc.org, tc.path)
			_, err := pb.NewRecordServiceClient(conn).Put(mtlsCtx(t), &pb.PutRequest{Record: big})
			if status.Code(err) != tc.code || !strings.Contains(status.Convert(err).Message(), tc.says) {
				t.Fatalf("Put of %d MiB: %v, want %s saying %q", size>>20, err, tc.code, tc.says)
			}
			// The handshake, the headers and what flow control let the client send before the
			// refusal reached it.
			if got := sent.Load(); got > size/4 {
				t.Errorf("the client sent %d MiB of its %d MiB request before the refusal: the node read it", got>>20, size>>20)
			}
		})
	}
	// A peer's call that the node does serve is bounded at MaxPeerMessageBytes, refused by the
	// transport before the node reads more.
	t.Run("a peer's oversized Query", func(t *testing.T) {
		conn, sent := dial(t, ncc, "/node/r1")
		stream, err := pb.NewFederationServiceClient(conn).Query(mtlsCtx(t), &pb.QueryRequest{Purpose: strings.Repeat("x", size)})
		if err == nil {
			_, err = stream.Recv()
		}
		if status.Code(err) != codes.ResourceExhausted {
			t.Fatalf("a peer's Query of %d MiB: %v, want RESOURCE_EXHAUSTED", size>>20, err)
		}
		if got := sent.Load(); got > size/4 {
			t.Errorf("the client sent %d MiB of its %d MiB request before the refusal", got>>20, size>>20)
		}
	})
}

// TestRefusalsCutWhatTheyQuote (review AF, AF4): a refusal quotes the value it refuses, and a
// value of a megabyte made a message, a field path and a log line of megabytes, which the
// trailers that carry them do not take. The message and the field are cut, on a call and on a
// stream; the refusal still names the field.
func TestRefusalsCutWhatTheyQuote(t *testing.T) {
	own := newMTLSOrg(t, mtlsOwnTD)
	n := startMTLSNode(t, own, own.filesIdentity())
	conn := n.local(t)
	huge := strings.Repeat("a", 1<<20)
	check := func(what string, err error) {
		t.Helper()
		st := status.Convert(err)
		field, _ := api.Field(err)
		if st.Code() != codes.InvalidArgument || field == "" || len(field) > api.MaxFieldBytes || len(st.Message()) > api.MaxMessageBytes+api.MaxFieldBytes+2 {
			t.Errorf("%s: %s, %d bytes, field of %d bytes; want INVALID_ARGUMENT, cut", what, st.Code(), len(st.Message()), len(field))
		}
	}
	_, err := pb.NewRecordServiceClient(conn).Get(mtlsCtx(t), &pb.GetRequest{Id: huge})
	check("Get of an id of 1 MiB", err)
	r := mtlsRecord("s1")
	r.Labels = map[string]string{huge: "v"}
	_, err = pb.NewRecordServiceClient(conn).Put(mtlsCtx(t), &pb.PutRequest{Record: r})
	check("Put with a label key of 1 MiB", err)
	w, err := pb.NewRecordServiceClient(conn).Watch(mtlsCtx(t), &pb.WatchRequest{Kind: huge})
	if err == nil {
		_, err = w.Recv()
	}
	check("Watch of a kind of 1 MiB", err)
	// Whichever way a refusal is made, its message is cut before it is sent.
	if _, err := pb.NewPeerServiceClient(conn).Get(mtlsCtx(t), &pb.GetPeerRequest{Name: huge}); err == nil || len(status.Convert(err).Message()) > api.MaxMessageBytes {
		t.Errorf("peer get of a name of 1 MiB: %d bytes", len(status.Convert(err).Message()))
	}
	if _, err := pb.NewRecordServiceClient(conn).Get(mtlsCtx(t), &pb.GetRequest{Id: "s1"}); status.Code(err) != codes.NotFound {
		t.Errorf("the node after the refusals: %v", err)
	}
}

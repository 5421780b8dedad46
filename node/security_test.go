package node_test

// The security regression table: for every method of the node's services and every kind of
// caller, whether the call gets past authorisation, over real mTLS handshakes. The expected
// outcomes come from the method-role table in docs/api.md, which is first checked against
// api.MethodRoles, so that the documentation, the code and this test cannot drift apart.

import (
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/knooppunt/knooppunt/federation/identity"
	"github.com/knooppunt/knooppunt/federation/identity/identitytest"
	"github.com/knooppunt/knooppunt/node/api"
	"github.com/knooppunt/knooppunt/node/api/doctable"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// docRoles reads the method-role table of docs/api.md: full method name → roles.
func docRoles(t *testing.T) map[string][]api.Role {
	t.Helper()
	rows, err := doctable.Rows("../docs/api.md", "| method | roles |")
	if err != nil {
		t.Fatal(err)
	}
	all := []api.Role{api.Reader, api.Editor, api.Officer, api.Admin, api.Replica, api.Peer, api.Local}
	row := regexp.MustCompile(`^\| (server reflection|[A-Za-z0-9.]+)(?: ([A-Za-z, ]+))? \| ([a-z, ()]+) \|$`)
	out := map[string][]api.Role{}
	for _, line := range rows {
		m := row.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("docs/api.md: role table row %q: want | Service Method, Method | role, role |", line)
		}
		var roles []api.Role
		if m[3] == "everyone authenticated" {
			roles = all
		} else {
			for r := range strings.SplitSeq(regexp.MustCompile(`\s*\(.*\)`).ReplaceAllString(m[3], ""), ",") {
				roles = append(roles, api.Role(strings.TrimSpace(r)))
			}
		}
		var methods []string
		switch svc, names := m[1], m[2]; {
		case svc == "server reflection":
			methods = []string{"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"}
		case names == "":
			// A whole service: every method its descriptor has.
			d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svc))
			if err != nil {
				t.Fatalf("docs/api.md names service %s: %v", svc, err)
			}
			ms := d.(protoreflect.ServiceDescriptor).Methods()
			for i := range ms.Len() {
				methods = append(methods, "/"+svc+"/"+string(ms.Get(i).Name()))
			}
		default:
			for n := range strings.SplitSeq(names, ",") {
				methods = append(methods, "/knooppunt.v1."+svc+"/"+strings.TrimSpace(n))
			}
		}
		for _, method := range methods {
			if _, dup := out[method]; dup {
				t.Fatalf("docs/api.md lists %s twice", method)
			}
			out[method] = roles
		}
	}
	if len(out) == 0 {
		t.Fatal("docs/api.md: no method-role table found")
	}
	return out
}

// TestRoleTableMatchesTheDocs: docs/api.md and api.MethodRoles give every method the same roles.
func TestRoleTableMatchesTheDocs(t *testing.T) {
	doc := docRoles(t)
	for _, m := range slices.Sorted(maps.Keys(api.MethodRoles)) {
		want := slices.Sorted(slices.Values(api.MethodRoles[m]))
		got, ok := doc[m]
		if !ok {
			t.Errorf("%s is in api.MethodRoles but not in docs/api.md", m)
			continue
		}
		if got = slices.Sorted(slices.Values(got)); !slices.Equal(got, want) {
			t.Errorf("%s: docs/api.md gives %v, api.MethodRoles %v", m, got, want)
		}
	}
	for m := range doc {
		if _, ok := api.MethodRoles[m]; !ok {
			t.Errorf("%s is in docs/api.md but not in api.MethodRoles", m)
		}
	}
}

// callAny calls method with an empty request and returns the call's error. A streaming call
// sends the request, closes its side, and waits for the first answer, up to a short deadline:
// an authorisation refusal comes at once, and a stream that was let through may wait for news.
func callAny(ctx context.Context, conn *grpc.ClientConn, method string) error {
	svc, name, _ := strings.Cut(strings.TrimPrefix(method, "/"), "/")
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svc))
	if err != nil {
		return err
	}
	md := d.(protoreflect.ServiceDescriptor).Methods().ByName(protoreflect.Name(name))
	if md == nil {
		return fmt.Errorf("no method %s", method)
	}
	newMsg := func(n protoreflect.FullName) proto.Message {
		mt, err := protoregistry.GlobalTypes.FindMessageByName(n)
		if err != nil {
			panic(err)
		}
		return mt.New().Interface()
	}
	in, out := newMsg(md.Input().FullName()), newMsg(md.Output().FullName())
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if !md.IsStreamingClient() && !md.IsStreamingServer() {
		return conn.Invoke(ctx, method, in, out)
	}
	s, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: md.IsStreamingServer(), ClientStreams: md.IsStreamingClient()}, method)
	if err != nil {
		return err
	}
	if err := s.SendMsg(in); err != nil {
		return s.RecvMsg(out)
	}
	s.CloseSend()
	return s.RecvMsg(out)
}

// refusedByAuthz reports whether err is authorisation's refusal: PERMISSION_DENIED, or
// UNAUTHENTICATED for a call with no identity.
func refusedByAuthz(err error) bool {
	c := status.Code(err)
	return c == codes.PermissionDenied || c == codes.Unauthenticated
}

// TestSecurityRegressionTable calls every method of the role table as every kind of caller and
// checks that exactly the callers whose roles the table names get past authorisation. The
// methods are called with empty requests: a call let through may then fail on its arguments,
// but never with PERMISSION_DENIED.
func TestSecurityRegressionTable(t *testing.T) {
	doc := docRoles(t)
	own := newMTLSOrg(t, mtlsOwnTD)
	ncc := newMTLSOrg(t, mtlsPeerTD)
	n := startMTLSNode(t, own, own.filesIdentity()+fmt.Sprintf(`roles:
  - {id: spiffe://%[1]s/user/reader, role: reader}
  - {id: spiffe://%[1]s/user/editor, role: editor}
  - {id: spiffe://%[1]s/user/officer, role: officer}
  - {id: spiffe://%[1]s/user/admin, role: admin}
peers:
  - {name: ncc, trust_domain: %s, bundle_file: %s}
`, mtlsOwnTD, mtlsPeerTD, ncc.bundle))
	rogue := identitytest.NewCA(t, mtlsOwnTD)

	type caller struct {
		name  string
		svid  *x509svid.SVID // nil: the local socket
		roles []api.Role     // what the caller holds; nil with handshake set
		// handshake: the node refuses the caller's certificate before any call.
		handshake bool
	}
	callers := []caller{
		{name: "local socket", roles: []api.Role{api.Local}},
		{name: "own reader", svid: own.svid(t, "/user/reader"), roles: []api.Role{api.Reader}},
		{name: "own editor", svid: own.svid(t, "/user/editor"), roles: []api.Role{api.Editor}},
		{name: "own officer", svid: own.svid(t, "/user/officer"), roles: []api.Role{api.Officer}},
		{name: "own admin", svid: own.svid(t, "/user/admin"), roles: []api.Role{api.Admin}},
		{name: "own replica", svid: own.svid(t, "/node/r1"), roles: []api.Role{api.Replica}},
		{name: "own node SVID of no replica", svid: own.svid(t, "/node/r9")},
		{name: "own user without a role", svid: own.svid(t, "/user/nobody")},
		{name: "peer node", svid: ncc.svid(t, "/node/r1"), roles: []api.Role{api.Peer}},
		{name: "peer user", svid: ncc.svid(t, "/user/editor"), roles: []api.Role{api.Peer}},
		{name: "forged CA", svid: identitytest.SVID(t, rogue, "/user/admin", identity.SVIDOptions{}), handshake: true},
		{name: "expired", svid: identitytest.SVID(t, own.ca, "/user/admin", identity.SVIDOptions{NotBefore: time.Now().Add(-48 * time.Hour), TTL: time.Hour}), handshake: true},
	}
	methods := slices.Sorted(maps.Keys(doc))
	for _, c := range callers {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			conn := n.local(t)
			if c.svid != nil {
				conn = n.dial(t, c.svid)
			}
			for _, m := range methods {
				err := callAny(t.Context(), conn, m)
				switch allowed := slices.ContainsFunc(c.roles, func(r api.Role) bool { return slices.Contains(doc[m], r) }); {
				case c.handshake:
					if status.Code(err) != codes.Unavailable {
						t.Errorf("%s: %v; want the handshake refused (UNAVAILABLE)", m, err)
					}
				case allowed && refusedByAuthz(err):
					t.Errorf("%s: refused: %v; docs/api.md gives it to %v", m, err, doc[m])
				case !allowed && !refusedByAuthz(err):
					t.Errorf("%s: got past authorisation (%v); docs/api.md gives it only to %v", m, err, doc[m])
				}
			}
		})
	}
}

// TestForwardingHeaderOnlyFromReplicas: the header with which a follower forwards a call for
// its caller is honoured only from a replica of the node's Raft group, and only on the calls a
// follower forwards. A node SVID of the org that is no replica is refused on every method, with
// or without the header; a replica cannot take a policy step or phase change "as" an officer,
// and its header is refused on reads such as the picture and the audit log.
func TestForwardingHeaderOnlyFromReplicas(t *testing.T) {
	own := newMTLSOrg(t, mtlsOwnTD)
	n := startMTLSNode(t, own, own.filesIdentity()+fmt.Sprintf(`roles:
  - {id: spiffe://%[1]s/user/editor, role: editor}
  - {id: spiffe://%[1]s/user/officer-a, role: officer}
  - {id: spiffe://%[1]s/user/officer-b, role: officer}
  - {id: spiffe://%[1]s/user/admin, role: admin}
`, mtlsOwnTD))
	officerA := "spiffe://" + mtlsOwnTD + "/user/officer-a"
	as := func(who string) context.Context {
		return metadata.AppendToOutgoingContext(mtlsCtx(t), api.OnBehalfOf, who)
	}

	// A node SVID that is no replica: refused on every method, whoever it names.
	r9 := n.dial(t, own.svid(t, "/node/r9"))
	for _, who := range []string{"local", officerA, "spiffe://" + mtlsOwnTD + "/user/admin"} {
		for _, m := range slices.Sorted(maps.Keys(api.MethodRoles)) {
			if err := callAny(as(who), r9, m); status.Code(err) != codes.PermissionDenied {
				t.Errorf("node/r9 on behalf of %s: %s: %v; want PERMISSION_DENIED", who, m, err)
			}
		}
	}

	// The replica itself: no policy step or phase change on an officer's behalf.
	r1 := n.dial(t, own.svid(t, "/node/r1"))
	doc := "name: r1-as-officer\npurpose: test\nrecipients: [spiffe://ncc.crisis.test]\nkinds: [sitrep]\nmax_classification: internal\n"
	_, err := pb.NewPolicyServiceClient(r1).Propose(as(officerA), &pb.ProposeRequest{Source: []byte(doc)})
	wantStatus(t, "a replica proposes as officer-a", err, codes.PermissionDenied, "PolicyService/Propose is taken by the officer in person, on the leader: a replica cannot forward it")
	_, err = pb.NewPhaseServiceClient(r1).Set(as(officerA), &pb.SetPhaseRequest{Crisis: "oekraine", Phase: "warm"})
	wantStatus(t, "a replica sets a phase as officer-a", err, codes.PermissionDenied, "PhaseService/Set is taken by the officer in person, on the leader: a replica cannot forward it")
	// Not as the local socket either, nor on reads that are never forwarded.
	_, err = pb.NewSearchServiceClient(r1).Picture(as("local"), &pb.PictureRequest{Crisis: "oekraine"})
	wantStatus(t, "a replica reads the picture as the local socket", err, codes.PermissionDenied, "SearchService/Picture is not forwarded between replicas")
	_, err = pb.NewAuditServiceClient(r1).List(as(officerA), &pb.ListAuditRequest{})
	wantStatus(t, "a replica reads the audit log as officer-a", err, codes.PermissionDenied, "AuditService/List is not forwarded between replicas")

	// No policy was proposed and no phase set by anyone.
	policies, err := pb.NewPolicyServiceClient(n.local(t)).List(mtlsCtx(t), &pb.ListPoliciesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(policies.Policies) != 0 {
		t.Errorf("policies after the refused steps: %v", policies.Policies)
	}

	// What a follower does forward still works: a write for an editor, attributed to the editor.
	resp, err := pb.NewRecordServiceClient(r1).Put(as("spiffe://"+mtlsOwnTD+"/user/editor"), &pb.PutRequest{Record: mtlsRecord("forwarded")})
	if err != nil {
		t.Fatalf("a replica forwards an editor's Put: %v", err)
	}
	if resp.Version != 1 {
		t.Errorf("forwarded Put stored version %d, want 1", resp.Version)
	}
}

package rest_test

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi2"
	"github.com/getkin/kin-openapi/openapi2conv"
	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/knooppunt/knooppunt/node/api"
	"github.com/knooppunt/knooppunt/node/api/doctable"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// route is one google.api.http binding of a proto method.
type route struct {
	method string // the gRPC full method, /knooppunt.v1.RecordService/Get
	verb   string // GET, POST, ...
	path   string
}

// annotatedRoutes lists every google.api.http binding in the .proto files.
func annotatedRoutes(t *testing.T) []route {
	t.Helper()
	var out []route
	for _, fd := range []protoreflect.FileDescriptor{
		pb.File_knooppunt_v1_record_proto, pb.File_knooppunt_v1_policy_proto, pb.File_knooppunt_v1_federation_proto,
		pb.File_knooppunt_v1_peer_proto, pb.File_knooppunt_v1_command_proto, pb.File_knooppunt_v1_rule_proto,
		pb.File_knooppunt_v1_webhook_proto, pb.File_knooppunt_v1_attachment_proto,
	} {
		for i := 0; i < fd.Services().Len(); i++ {
			sd := fd.Services().Get(i)
			for j := 0; j < sd.Methods().Len(); j++ {
				md := sd.Methods().Get(j)
				rule, _ := proto.GetExtension(md.Options(), annotations.E_Http).(*annotations.HttpRule)
				if rule == nil {
					continue
				}
				r := route{method: "/" + string(sd.FullName()) + "/" + string(md.Name())}
				switch p := rule.GetPattern().(type) {
				case *annotations.HttpRule_Get:
					r.verb, r.path = http.MethodGet, p.Get
				case *annotations.HttpRule_Post:
					r.verb, r.path = http.MethodPost, p.Post
				case *annotations.HttpRule_Delete:
					r.verb, r.path = http.MethodDelete, p.Delete
				case *annotations.HttpRule_Put:
					r.verb, r.path = http.MethodPut, p.Put
				case *annotations.HttpRule_Patch:
					r.verb, r.path = http.MethodPatch, p.Patch
				default:
					t.Fatalf("%s: an http rule of kind %T: add it to this test", r.method, p)
				}
				out = append(out, r)
			}
		}
	}
	return out
}

// TestOpenAPIDescribesEveryRoute loads the committed OpenAPI description with kin-openapi,
// converts it to OpenAPI 3 and validates it, and checks that it names every route of the .proto
// files and nothing else.
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	var doc2 openapi2.T
	if err := json.Unmarshal(pb.OpenAPI, &doc2); err != nil {
		t.Fatalf("the OpenAPI description does not parse: %v", err)
	}
	doc3, err := openapi2conv.ToV3(&doc2)
	if err != nil {
		t.Fatalf("the OpenAPI description does not convert to OpenAPI 3: %v", err)
	}
	if err := doc3.Validate(context.Background()); err != nil {
		t.Fatalf("the OpenAPI description is not valid: %v", err)
	}
	routes := annotatedRoutes(t)
	if len(routes) == 0 {
		t.Fatal("no google.api.http annotations found")
	}
	described := 0
	for _, item := range doc3.Paths.Map() {
		described += len(item.Operations())
	}
	if described != len(routes) {
		t.Errorf("the description has %d operations, the .proto files %d routes", described, len(routes))
	}
	for _, r := range routes {
		item := doc3.Paths.Find(r.path)
		if item == nil || item.Operations()[r.verb] == nil {
			t.Errorf("%s %s (%s) is not in the OpenAPI description", r.verb, r.path, r.method)
		}
	}
}

// TestRoutesUnderTheRoleTable: every REST route is a method of MethodRoles, and the policy and
// audit services are read-only over REST.
func TestRoutesUnderTheRoleTable(t *testing.T) {
	for _, r := range annotatedRoutes(t) {
		if _, ok := api.MethodRoles[r.method]; !ok {
			t.Errorf("%s %s: %s is not in api.MethodRoles", r.verb, r.path, r.method)
		}
		readOnly := strings.HasPrefix(r.method, "/knooppunt.v1.PolicyService/") || strings.HasPrefix(r.method, "/knooppunt.v1.AuditService/")
		if readOnly && r.verb != http.MethodGet {
			t.Errorf("%s %s: policies and audit are read-only over REST", r.verb, r.path)
		}
		if strings.HasPrefix(r.method, "/knooppunt.v1.FederationService/") || strings.HasPrefix(r.method, "/knooppunt.v1.ReplicaService/") {
			t.Errorf("%s %s: %s is for peers and replicas over gRPC, never REST", r.verb, r.path, r.method)
		}
	}
}

// TestDocsRESTTable: the REST table of docs/api.md names every route, with the method it calls
// and the roles MethodRoles gives that method (less local, replica and peer, which never call
// over REST), so that the documentation cannot drift from the code.
func TestDocsRESTTable(t *testing.T) {
	rows, err := doctable.Rows("../../../docs/api.md", "| route | method | roles |")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("^\\| `([A-Z]+) ([^ ?`]+)[^`]*`[^|]* \\| ([A-Za-z]+) ([A-Za-z]+) \\| ([a-z, ]+) \\|$")
	documented := map[route][]api.Role{}
	for _, line := range rows {
		m := row.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("docs/api.md: REST table row %q: want | `VERB /path` | Service Method | role, role |", line)
		}
		var roles []api.Role
		for r := range strings.SplitSeq(m[5], ",") {
			roles = append(roles, api.Role(strings.TrimSpace(r)))
		}
		documented[route{method: "/knooppunt.v1." + m[3] + "/" + m[4], verb: m[1], path: m[2]}] = roles
	}
	routes := annotatedRoutes(t)
	if len(documented) != len(routes) {
		t.Errorf("docs/api.md documents %d REST routes, the .proto files have %d", len(documented), len(routes))
	}
	for _, r := range routes {
		roles, ok := documented[r]
		if !ok {
			t.Errorf("docs/api.md: %s %s (%s) is not in the REST table", r.verb, r.path, r.method)
			continue
		}
		want := slices.DeleteFunc(slices.Clone(api.MethodRoles[r.method]), func(r api.Role) bool {
			return r == api.Local || r == api.Replica || r == api.Peer
		})
		if !slices.Equal(roles, want) {
			t.Errorf("docs/api.md: %s %s: roles %v, MethodRoles gives %v", r.verb, r.path, roles, want)
		}
	}
}

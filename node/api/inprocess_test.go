package api_test

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc/codes"
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

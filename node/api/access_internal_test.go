package api

import (
	"slices"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/knooppunt/knooppunt/node/config"
)

// TestRolesByPath: a prefix holds the IDs under its path, written with or without its slash, and
// not the IDs that merely begin with the same letters (review19 M1: .../user/apps made
// .../user/appsevil an editor); an ID listed twice holds both roles (review19 M2: the last one
// alone counted).
func TestRolesByPath(t *testing.T) {
	c := config.Default()
	td := "spiffe://" + c.Org
	c.Roles = []config.RoleBinding{
		{Prefix: td + "/user/apps", Role: config.RoleEditor},
		{Prefix: td + "/app/", Role: config.RoleReader},
		{ID: td + "/user/anna", Role: config.RoleOfficer},
		{ID: td + "/user/anna", Role: config.RoleAdmin},
	}
	a, err := NewAccess(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id   string
		want []Role
	}{
		{"/user/apps", []Role{Editor}},
		{"/user/apps/import", []Role{Editor}},
		{"/user/appsevil", nil},
		{"/user/apps-intern/x", nil},
		{"/app/feed", []Role{Reader}},
		{"/appx", nil},
		{"/user/anna", []Role{Officer, Admin}},
	} {
		c, err := a.resolve(spiffeid.RequireFromString(td + tc.id))
		if !slices.Equal(c.Roles, tc.want) || (err != nil) != (tc.want == nil) {
			t.Errorf("%s: roles %v, %v; want %v", tc.id, c.Roles, err, tc.want)
		}
	}
}

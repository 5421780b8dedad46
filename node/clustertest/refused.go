package clustertest

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/knooppunt/knooppunt/node/api"
)

// WantRefused fails t unless err refuses the request with code at field (its
// google.rpc.BadRequest detail, api.Field), with a message that starts with msg and is no longer
// than a refusal is cut to (api.MaxMessageBytes): the check of the services' bad-input tests.
func WantRefused(t testing.TB, err error, code codes.Code, field, msg string) {
	t.Helper()
	st := status.Convert(err)
	got, _ := api.Field(err)
	if st.Code() != code || got != field || !strings.HasPrefix(st.Message(), msg) || len(st.Message()) > api.MaxFieldBytes+len(": ")+api.MaxMessageBytes {
		t.Errorf("%v %.300q at %q, want %v %q at %s", st.Code(), st.Message(), got, code, msg, field)
	}
}

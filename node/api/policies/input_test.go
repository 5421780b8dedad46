package policies_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/knooppunt/knooppunt/federation/identity/identitytest"
	"github.com/knooppunt/knooppunt/node/clustertest"
	"github.com/knooppunt/knooppunt/node/config"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestPolicyInputRefused: Get refuses an id that cannot name a policy as INVALID_ARGUMENT, as
// the steps do, and answers NOT_FOUND only for a well-formed one (review AF, AF5); Preview and
// Explain check the purpose as a peer's stated one is checked (review AF, AF8).
func TestPolicyInputRefused(t *testing.T) {
	ncc := identitytest.NewCA(t, "ncc.crisis.test")
	bf := filepath.Join(t.TempDir(), "ncc.pem")
	identitytest.WriteBundle(t, bf, ncc)
	c := clustertest.Start(t, clustertest.Options{Replicas: 1,
		Peers: []config.Peer{{Name: "ncc", TrustDomain: "ncc.crisis.test", Addresses: []string{"127.0.0.1:1"}, BundleFile: bf}}})
	r := c.Leader(t, 10*time.Second, c.Replicas...)
	pol := pb.NewPolicyServiceClient(r.Local(t))
	huge := strings.Repeat("a", 1<<20)

	for _, tc := range []struct {
		name  string
		call  func() error
		code  codes.Code
		field string
		msg   string
	}{
		{"get, not NAME@VERSION", func() error { _, err := pol.Get(clustertest.Call(t), &pb.GetPolicyRequest{Id: "bogus@x"}); return err },
			codes.InvalidArgument, "id", `id: "bogus@x" is not NAME@VERSION, such as lcvs-capacity-to-regions@2`},
		{"get, not a name", func() error { _, err := pol.Get(clustertest.Call(t), &pb.GetPolicyRequest{Id: "ab\xffcd"}); return err },
			codes.InvalidArgument, "id", `id: "ab\xffcd" is not a policy's name: give NAME, or NAME@VERSION`},
		{"get, 1 MiB", func() error { _, err := pol.Get(clustertest.Call(t), &pb.GetPolicyRequest{Id: huge}); return err },
			codes.InvalidArgument, "id", `id: "` + strings.Repeat("a", 80) + `…" is not a policy's name`},
		{"get, a name that is none", func() error {
			_, err := pol.Get(clustertest.Call(t), &pb.GetPolicyRequest{Id: "geen-beleid"})
			return err
		},
			codes.NotFound, "id", `id: no policy is named "geen-beleid"`},
		{"get, a version that is none", func() error {
			_, err := pol.Get(clustertest.Call(t), &pb.GetPolicyRequest{Id: "geen-beleid@2"})
			return err
		},
			codes.NotFound, "id", `id: there is no policy geen-beleid@2`},
		{"preview, purpose with NUL", func() error {
			_, err := pol.Preview(clustertest.Call(t), &pb.PreviewRequest{Recipient: "ncc", Purpose: "opvang\x00"})
			return err
		}, codes.InvalidArgument, "purpose", "purpose: holds a control or invisible character (U+0000) at byte 6: state the purpose as plain text on one line"},
		{"preview, purpose of invalid UTF-8", func() error {
			_, err := pol.Preview(clustertest.Call(t), &pb.PreviewRequest{Recipient: "ncc", Purpose: "opvang\xff"})
			return err
		}, codes.InvalidArgument, "purpose", "purpose: not valid UTF-8"},
		{"explain, purpose with U+202E", func() error {
			_, err := pol.Explain(clustertest.Call(t), &pb.ExplainRequest{RecordId: "x", Recipient: "ncc", Purpose: "opvang\u202e"})
			return err
		}, codes.InvalidArgument, "purpose", "purpose: holds a control or invisible character (U+202E) at byte 6"},
		{"explain, purpose with ESC", func() error {
			_, err := pol.Explain(clustertest.Call(t), &pb.ExplainRequest{RecordId: "x", Recipient: "ncc", Purpose: "\x1b[31m"})
			return err
		}, codes.InvalidArgument, "purpose", "purpose: holds a control or invisible character (U+001B) at byte 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clustertest.WantRefused(t, tc.call(), tc.code, tc.field, tc.msg)
		})
	}
}

package policies

import (
	"cmp"
	"context"

	"google.golang.org/grpc"

	"github.com/knooppunt/knooppunt/policy"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// Lift is a field that a recipient would get once a policy is approved, and that policies in
// force withhold from it now.
type Lift struct {
	Recipient string
	*pb.LiftedRedaction
}

// Lifted asks the node over conn, as the CLI's approve and the web approve page do, what
// approving policy p would lift for each of recipients (peers' names or trust domains): a
// proposal is previewed for no one in particular, so it asks for every one, in each crisis's
// phase now and, for a policy limited to phases, in each of those (a break-glass lifts in warm).
// A recipient whose preview fails (one leaving, say) is left out, and the first such error is
// returned with what the others gave.
func Lifted(ctx context.Context, conn grpc.ClientConnInterface, p *pb.PolicyInfo, recipients []string) ([]Lift, error) {
	phases := []string{""}
	if parsed, err := policy.Parse(p.Source); err == nil {
		phases = append(phases, parsed.Doc.Phases...)
	}
	var out []Lift
	var first error
	seen := map[[2]string]bool{}
	for _, to := range recipients {
		for _, ph := range phases {
			resp, err := pb.NewPolicyServiceClient(conn).Preview(ctx, &pb.PreviewRequest{Id: p.Id, Recipient: to, Phase: ph, Limit: 1})
			if err != nil {
				first = cmp.Or(first, err)
				break
			}
			for _, f := range resp.LiftedRedactions {
				if k := [2]string{to, f.Field}; !seen[k] {
					seen[k] = true
					out = append(out, Lift{Recipient: to, LiftedRedaction: f})
				}
			}
		}
	}
	return out, first
}

package policies

import (
	"cmp"
	"context"
	"slices"

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

// Void is what a recipient gets all the same of the fields a policy withholds: other policies
// in force share the same records with it and withhold none of Fields.
type Void struct {
	Recipient  string
	Fields     []string
	Overriding []string
}

// Withdrawal is what a recipient receives now and would no longer once a policy is approved:
// the records the version it Supersedes grants and the others in force do not (review AE, AE1).
type Withdrawal struct {
	Recipient  string
	Supersedes string
	Records    int64
}

// Effect is what approving a policy would change for its recipients: the fields it lifts, the
// redactions others void, and what it withdraws. See Effects.
type Effect struct {
	Lifted    []Lift
	Voided    []Void
	Withdrawn []Withdrawal
}

// Lifted asks the node over conn, as the CLI's approve and the web approve page do, what
// approving policy p would lift for each of recipients (peers' names or trust domains): a
// proposal is previewed for no one in particular, so it asks for every one, in each crisis's
// phase now and, for a policy limited to phases, in each of those (a break-glass lifts in warm).
// A recipient whose preview fails (one leaving, say) is left out, and the first such error is
// returned with what the others gave.
func Lifted(ctx context.Context, conn grpc.ClientConnInterface, p *pb.PolicyInfo, recipients []string) ([]Lift, error) {
	e, err := Effects(ctx, conn, p, recipients)
	return e.Lifted, err
}

// Effects is Lifted; for each recipient the fields p withholds that it gets all the same
// through other policies (PreviewResponse.voided_redactions), in the phase now or any of p's:
// a policy page must not say a field is withheld that leaves (review W, M1); and what each
// would no longer receive now, from the version p supersedes.
func Effects(ctx context.Context, conn grpc.ClientConnInterface, p *pb.PolicyInfo, recipients []string) (Effect, error) {
	phases := []string{""}
	if parsed, err := policy.Parse(p.Source); err == nil {
		phases = append(phases, parsed.Doc.Phases...)
	}
	var e Effect
	var first error
	seen := map[[2]string]bool{}
	for _, to := range recipients {
		var v Void
		for _, ph := range phases {
			resp, err := pb.NewPolicyServiceClient(conn).Preview(ctx, &pb.PreviewRequest{Id: p.Id, Recipient: to, Phase: ph, Limit: 1})
			if err != nil {
				first = cmp.Or(first, err)
				break
			}
			if ph == "" && resp.Withdrawn > 0 {
				e.Withdrawn = append(e.Withdrawn, Withdrawal{Recipient: to, Supersedes: resp.Supersedes, Records: resp.Withdrawn})
			}
			for _, f := range resp.LiftedRedactions {
				if k := [2]string{to, f.Field}; !seen[k] {
					seen[k] = true
					e.Lifted = append(e.Lifted, Lift{Recipient: to, LiftedRedaction: f})
				}
			}
			for _, f := range resp.VoidedRedactions {
				if !slices.Contains(v.Fields, f) {
					v.Fields = append(v.Fields, f)
				}
			}
			for _, o := range resp.OverridingPolicies {
				if !slices.Contains(v.Overriding, o) {
					v.Overriding = append(v.Overriding, o)
				}
			}
		}
		if len(v.Fields) > 0 {
			v.Recipient = to
			e.Voided = append(e.Voided, v)
		}
	}
	return e, first
}

package ui

import (
	"cmp"
	"net/url"
	"slices"
	"strings"

	"google.golang.org/grpc/status"

	"github.com/knooppunt/knooppunt/node/api/policies"
	"github.com/knooppunt/knooppunt/policy"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// What an officer reads about a policy besides its own words (review W): what it would send that
// other policies withhold now (lifted), what it withholds that a partner gets all the same through
// other policies (voided, M1), and what a new version changes of the version in force (M3).

// policyEffects are the notes of policyNotes, and the previews of each partner.
type policyEffects struct {
	// Lifted name the fields other policies withhold now that approving p would send; Voided
	// the fields p withholds that a partner gets all the same.
	Lifted, Voided []string
	// Withdrawn says, for each partner, what it receives now and would no longer once p
	// replaces the version in force (review AE, AE1).
	Withdrawn []string
	// Previews link the preview of p for each partner.
	Previews []previewLink
}

type previewLink struct{ Label, Link string }

// policyNotes links p's preview for every partner the person may name. With preview it also
// previews p for each (policies.Effects), in the phase now and in each of p's, and says what the
// officer must know before approving or relying on it. Each preview reads every record of p's
// kinds: a page that shows no lifted field, and a policy that withholds none, need none.
func (s *Server) policyNotes(r *request, p *pb.PolicyInfo, choices []recipientChoice, preview bool) policyEffects {
	var out policyEffects
	for _, c := range choices {
		out.Previews = append(out.Previews, previewLink{c.Label, "/beleid/voorbeeld?" + url.Values{"id": {p.Id}, "recipient": {c.Value}}.Encode()})
		if !preview {
			continue
		}
		e, err := policies.Effects(r.ctx(), s.c.Conn, p, []string{c.Value})
		if err != nil {
			s.log.Warn("no preview for the policy's notes", "policy", p.Id, "recipient", c.Value, "code", status.Code(err).String(), "err", err)
		}
		for _, x := range e.Withdrawn {
			out.Withdrawn = append(out.Withdrawn, withdrawnText(r.L, c.Label, x.Records, x.Supersedes))
		}
		lifted, voided := e.Lifted, e.Voided
		for _, f := range lifted {
			if t := r.L.T("preview.lifted", f.Field, f.Recipient, strings.Join(f.WithheldBy, ", ")); !slices.Contains(out.Lifted, t) {
				out.Lifted = append(out.Lifted, t)
			}
		}
		for _, v := range voided {
			fields := make([]string, len(v.Fields))
			for i, f := range v.Fields {
				fields[i] = strings.TrimPrefix(f, "body.")
			}
			out.Voided = append(out.Voided, r.L.T("summary.voided", c.Label, strings.Join(fields, ", "), strings.Join(v.Overriding, ", ")))
		}
	}
	return out
}

// policyVersions fills v's Newer, Replaces and Changes from the other versions of proposal p's
// policy, which one listing gives: a newer proposal that waits (this one offers no approval: the
// node would refuse it), and the approved version that p would replace, with what p changes of
// it. peers name the recipients in the summaries.
func (s *Server) policyVersions(r *request, p *pb.PolicyInfo, peers []*pb.PeerInfo, v *policyView) {
	if p.State != policy.StateProposed {
		return
	}
	resp, err := pb.NewPolicyServiceClient(s.c.Conn).List(r.ctx(), &pb.ListPoliciesRequest{Name: p.Name})
	if err != nil {
		s.log.Warn("no other versions to compare the policy with", "policy", p.Id, "code", status.Code(err).String(), "err", err)
		return
	}
	for _, o := range resp.Policies {
		switch {
		case o.State == policy.StateProposed && o.Version > p.Version && v.Newer == "":
			v.Newer = o.Id
		case o.State == policy.StateApproved && o.Id != p.Id && v.Replaces == nil:
			row := s.policyRow(o)
			v.Replaces, v.Changes = &row, summaryChanges(r.L, summarizePolicy(r.L, o.Source, peers), v.Summary)
		}
	}
}

// summaryChanges says, line by line, what summary now changes of summary was, in the summary's
// own labels: "Tot en met rubricering: intern → departementaal vertrouwelijk". Nil when either
// cannot be read, or nothing the summary says differs (the YAML may still).
func summaryChanges(l *Lang, was, now *policySummary) []string {
	if was == nil || now == nil {
		return nil
	}
	list := func(s []string, none string) string {
		if len(s) == 0 {
			return none
		}
		return strings.Join(s, "; ")
	}
	none := l.T("summary.nothing")
	var out []string
	for _, c := range []struct{ label, was, now string }{
		{"summary.recipients", list(was.Recipients, none), list(now.Recipients, none)},
		{"summary.kinds", list(was.Kinds, none), list(now.Kinds, none)},
		{"summary.ceiling", was.Ceiling, now.Ceiling},
		{"summary.withheld", list(was.Withheld, l.T("summary.none_withheld")), list(now.Withheld, l.T("summary.none_withheld"))},
		{"summary.phases_label", was.Phases, now.Phases},
		{"summary.statuses", was.Statuses, now.Statuses},
		{"summary.when", cmp.Or(was.Condition, none), cmp.Or(now.Condition, none)},
		{"summary.purposes", list(was.Purposes, none), list(now.Purposes, none)},
		{"summary.validity", cmp.Or(was.Validity, none), cmp.Or(now.Validity, none)},
	} {
		if c.was != c.now {
			out = append(out, l.T("summary.changed", l.T(c.label), c.was, c.now))
		}
	}
	return out
}

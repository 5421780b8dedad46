package ui

import (
	"slices"
	"strings"

	"github.com/knooppunt/knooppunt/policy"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// policySummary is what a policy shares, to whom and when, in the person's words: what a security
// officer reads before approving, beside the YAML it comes from.
type policySummary struct {
	Recipients []string
	Kinds      []string
	Ceiling    string
	// Withheld are the body fields the recipients never receive.
	Withheld  []string
	Phases    string
	Condition string
	Purposes  []string
	Validity  string
	Statuses  string
}

// summarizePolicy reads a policy's document for the summary; nil when it cannot be read (the
// YAML below it shows what it holds). peers names the partners that recipients and groups stand
// for.
func summarizePolicy(l *Lang, src []byte, peers []*pb.PeerInfo) *policySummary {
	parsed, err := policy.Parse(src)
	if err != nil {
		return nil
	}
	d := parsed.Doc
	s := &policySummary{Ceiling: l.Class(d.Classification()), Condition: d.When, Purposes: d.AcceptPurposes}
	for _, r := range d.Recipients {
		s.Recipients = append(s.Recipients, recipientWords(l, r, peers))
	}
	for _, k := range d.Kinds {
		s.Kinds = append(s.Kinds, l.Kind(k))
	}
	for _, f := range d.Redact {
		s.Withheld = append(s.Withheld, strings.TrimPrefix(f, "body."))
	}
	if len(d.Phases) == 0 {
		s.Phases = l.T("summary.every_phase")
	} else {
		var names []string
		for _, p := range d.Phases {
			names = append(names, l.T("phase."+p))
		}
		s.Phases = l.T("summary.phases", strings.Join(names, ", "))
	}
	switch {
	case d.ValidFrom != nil && d.ValidUntil != nil:
		s.Validity = l.T("summary.valid_between", local(*d.ValidFrom).Format("2006-01-02 15:04"), local(*d.ValidUntil).Format("2006-01-02 15:04"))
	case d.ValidFrom != nil:
		s.Validity = l.T("summary.valid_from", local(*d.ValidFrom).Format("2006-01-02 15:04"))
	case d.ValidUntil != nil:
		s.Validity = l.T("summary.valid_until", local(*d.ValidUntil).Format("2006-01-02 15:04"))
	}
	switch {
	case !slices.Contains(d.Statuses, policy.StatusExercise):
		s.Statuses = l.T("summary.actual")
	case !slices.Contains(d.Statuses, policy.StatusActual) && len(d.Exercises) > 0:
		s.Statuses = l.T("summary.exercises_only", strings.Join(d.Exercises, ", "))
	case !slices.Contains(d.Statuses, policy.StatusActual):
		s.Statuses = l.T("summary.every_exercise_only")
	case len(d.Exercises) > 0:
		s.Statuses = l.T("summary.actual_and_exercises", strings.Join(d.Exercises, ", "))
	default:
		s.Statuses = l.T("summary.actual_and_every_exercise")
	}
	return s
}

// recipientWords names a policy's recipient as the partner it stands for: an org by its name, a
// workload of it, or a group with the partners in it.
func recipientWords(l *Lang, r string, peers []*pb.PeerInfo) string {
	ref, err := policy.ParseRecipient(r)
	if err != nil {
		return l.T("summary.unknown", r)
	}
	if ref.Kind == policy.RecipientGroup {
		var in []string
		for _, p := range peers {
			if slices.Contains(p.Groups, ref.Value) {
				in = append(in, peerName(p))
			}
		}
		if len(in) == 0 {
			return l.T("summary.group_empty", ref.Value)
		}
		return l.T("summary.group", ref.Value, strings.Join(in, ", "))
	}
	td, path := ref.Value, ""
	if ref.Kind == policy.RecipientID {
		td, path, _ = strings.Cut(strings.TrimPrefix(ref.Value, "spiffe://"), "/")
	}
	for _, p := range peers {
		if p.TrustDomain != td {
			continue
		}
		if path != "" {
			return l.T("summary.workload", "/"+path, peerName(p))
		}
		return l.T("summary.org", peerName(p))
	}
	return l.T("summary.unknown", r)
}

func peerName(p *pb.PeerInfo) string {
	if p.OrgName != "" && p.OrgName != p.Name {
		return p.OrgName + " (" + p.TrustDomain + ")"
	}
	return p.Name + " (" + p.TrustDomain + ")"
}

package policy

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"cel.dev/cel-go/cel"

	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// Lifecycle states of a policy.
const (
	StateProposed   = "proposed"
	StateApproved   = "approved"
	StateRejected   = "rejected"
	StateRevoked    = "revoked"
	StateSuperseded = "superseded"
)

// States are the lifecycle states, in the order of a policy's life.
var States = []string{StateProposed, StateApproved, StateRejected, StateRevoked, StateSuperseded}

// Policy is one version of a policy with its lifecycle state, as the store keeps it.
type Policy struct {
	// ID is NAME@VERSION, such as lcvs-capacity-to-regions@2.
	ID      string
	Name    string
	Version int
	// Source is the YAML the author proposed.
	Source     []byte
	Author     string
	ProposedAt time.Time
	State      string
	// Approvers are the officers who approved, in order.
	Approvers []string
	DecidedAt time.Time
	DecidedBy string
	Reason    string
}

// Compiled is a policy ready for decisions. It is immutable, so one compiled program serves
// every decision of that policy version.
type Compiled struct {
	Policy
	Doc        Document
	recipients []RecipientRef
	when       cel.Program
	// whenBody is how the condition can reach record.body, and so what deciding with it
	// reads of the body: nothing, keys from the raw bytes, or the decoded body.
	whenBody bodyUse
	// whenNow is true when the condition can read `now`, so that its outcome can change with
	// time alone.
	whenNow bool
	// whenKeys are the top-level body fields the condition names, for lint.
	whenKeys []string
	// whenCrises are the crisis names the condition compares record.crisis with, for lint.
	whenCrises []string
	// whenUnbounded is lint's refusal of a call whose cost the budget cannot bound, or nil.
	whenUnbounded error
}

// Compile parses and checks a policy's document. It never fails for a policy the store accepted
// unless this build reads the schema differently.
func Compile(p Policy) (*Compiled, error) {
	parsed, err := Parse(p.Source)
	if err != nil {
		return nil, err
	}
	c, probs := compileParsed(parsed)
	if len(probs) > 0 {
		return nil, probs
	}
	c.Policy = p
	return c, nil
}

func compileParsed(parsed *Parsed) (*Compiled, Problems) {
	c := &Compiled{Doc: parsed.Doc}
	var probs Problems
	for _, r := range parsed.Doc.Recipients {
		ref, _ := ParseRecipient(r) // checked by parse: an entry that is not one stays the zero ref
		c.recipients = append(c.recipients, ref)
	}
	if strings.TrimSpace(parsed.Doc.When) != "" {
		w, err := compileWhen(parsed.Doc.When)
		if err != nil {
			probs = append(probs, parsed.problem("when", "when", err.Error()))
		}
		c.when, c.whenBody, c.whenNow, c.whenKeys, c.whenUnbounded, c.whenCrises = w.prg, w.body, w.now, w.keys, w.unbounded, w.crises
	}
	return c, probs
}

// TimeDependent reports whether a decision for to at until can differ from one at from under
// the same set: the validity window of a policy that can grant to opens or closes in between,
// or such a policy's condition reads `now`. A subscription re-checks what it disclosed only
// then; everything else that changes a decision changes the set or a record.
func (s *Set) TimeDependent(to Recipient, from, until time.Time) bool {
	for _, c := range s.Policies {
		if c.State != StateApproved || !c.Names(to) {
			continue
		}
		if c.whenNow {
			return true
		}
		for _, t := range []*time.Time{c.Doc.ValidFrom, c.Doc.ValidUntil} {
			if t != nil && t.After(from) && !t.After(until) {
				return true
			}
		}
	}
	return false
}

// Context is what a lint with a node adds: the kinds, peers and groups the node knows.
type Context struct {
	Kinds  []string
	Peers  []Recipient
	Groups []string
	// Fields are the top-level body fields each kind's closed schema allows; a kind without an
	// entry may hold any field (its schema is open), and is not checked.
	Fields map[string][]string
	// Declared are the top-level body fields each kind's schema declares, closed or open: what
	// LintDoubts holds a redact path's field against.
	Declared map[string][]string
	// Crises are the crises that records here or from partners name, or that have a phase set;
	// nil when not known, so that LintDoubts does not hold a condition's crisis against them.
	Crises []string
}

// LintDoubts returns what a lint cannot call wrong but an officer should check, in the order of
// the document:
//   - a group granted confidential or secret records: every peer that joins it later gets them,
//     with no officer approving that peer;
//
// and, with a node's context:
//   - a body field, in the condition or in a redact path, that no kind of the policy declares,
//     while an open kind among them might carry it all the same (so that Lint does not refuse
//     it). A misspelt name in the condition makes it hold for no record, so that nothing is
//     shared; in a redact path it withholds nothing, and the field that was meant goes out;
//   - a crisis the condition compares record.crisis with that no record names (ctx.Crises).
//
// Nil for a document that does not parse.
func LintDoubts(src []byte, ctx *Context) []Problem {
	parsed, _, err := parse(src, true)
	if err != nil || parsed == nil {
		return nil
	}
	var out Problems
	if class, ok := classWords[parsed.Doc.MaxClassification]; ok && class >= pb.Classification_CONFIDENTIAL {
		for i, r := range parsed.Doc.Recipients {
			if ref, err := ParseRecipient(r); err == nil && ref.Kind == RecipientGroup {
				out = append(out, parsed.problem(fmt.Sprintf("recipients[%d]", i), "recipients.group_ceiling", Quote(r), parsed.Doc.MaxClassification))
			}
		}
	}
	// A window that has ended already: proposed, it could only be refused at approval (review L,
	// L9).
	if u := parsed.Doc.ValidUntil; u != nil && !u.IsZero() && !u.After(time.Now()) {
		out = append(out, parsed.problem("valid_until", "valid_until.past", u.Format(time.RFC3339)))
	}
	if ctx == nil {
		return out
	}
	// undeclared lists the open kinds of the policy that might carry key, when none declares it.
	undeclared := func(key string) []string {
		declared := false
		var open []string
		for _, k := range parsed.Doc.Kinds {
			declared = declared || slices.Contains(ctx.Declared[k], key)
			if len(ctx.Fields[k]) == 0 && slices.Contains(ctx.Kinds, k) {
				open = append(open, k)
			}
		}
		if declared {
			return nil
		}
		return open
	}
	if c, _ := compileParsed(parsed); c != nil {
		for _, key := range c.whenKeys {
			if open := undeclared(key); len(open) > 0 {
				out = append(out, parsed.problem("when", "when.undeclared", cut(key), Quote(key), cut(strings.Join(open, ", "))))
			}
		}
		for _, crisis := range c.whenCrises {
			if ctx.Crises != nil && !slices.Contains(ctx.Crises, crisis) {
				out = append(out, parsed.problem("when", "when.crisis", Quote(crisis)))
			}
		}
	}
	for i, path := range parsed.Doc.Redact {
		if !strings.HasPrefix(path, "body.") || !redactRe.MatchString(path) {
			continue
		}
		key, _, _ := strings.Cut(strings.TrimPrefix(path, "body."), ".")
		if open := undeclared(key); len(open) > 0 {
			out = append(out, parsed.problem(fmt.Sprintf("redact[%d]", i), "redact.undeclared", cut(path), Quote(key), cut(strings.Join(open, ", "))))
		}
	}
	out.sort()
	return out
}

// Lint checks a document fully: YAML, schema, CEL types and cost, and, when ctx is given, that
// its kinds, recipients and groups exist on the node.
func Lint(src []byte, ctx *Context) (*Compiled, error) {
	if r, off, ok := Unprintable(string(src)); ok {
		line, col := position(src, off)
		return nil, Problems{lintProblem(line, col, "", "control", fmt.Sprintf("U+%04X", r))}
	}
	parsed, probs, err := parse(src, true)
	if err != nil {
		return nil, err
	}
	// A YAML escape ("\e") puts a control character in a value that the source shows as text.
	for field, v := range parsed.stringValues() {
		if r, _, ok := Unprintable(v); ok {
			probs = append(probs, parsed.problem(field, "control", fmt.Sprintf("U+%04X", r)))
		}
	}
	// A document that breaks the schema is still checked further, so that one lint reports
	// every problem, not the schema's first and the condition's after they are mended.
	c, more := compileParsed(parsed)
	probs = append(probs, more...)
	if c.whenUnbounded != nil {
		probs = append(probs, parsed.problem("when", "when", c.whenUnbounded.Error()))
	}
	if ctx != nil {
		// A peer's name is no recipient; its trust domain is.
		for i, r := range parsed.Doc.Recipients {
			field := fmt.Sprintf("recipients[%d]", i)
			at := slices.IndexFunc(probs, func(p Problem) bool { return p.Field == field && p.Code == "recipient" })
			peer := slices.IndexFunc(ctx.Peers, func(p Recipient) bool { return p.Name == r })
			if at >= 0 && peer >= 0 {
				probs[at] = parsed.problem(field, "recipient.peer_name", Quote(r), Quote(ctx.Peers[peer].TrustDomain))
			}
		}
		for i, k := range parsed.Doc.Kinds {
			if !slices.Contains(ctx.Kinds, k) {
				probs = append(probs, parsed.problem(fmt.Sprintf("kinds[%d]", i), "kinds.unknown", Quote(k), strings.Join(ctx.Kinds, ", ")))
			}
		}
		// A condition that names a body field no kind of the policy has is false for every
		// record, so the policy would share nothing, without a word.
		for _, key := range c.whenKeys {
			if ctx.noKindHas(parsed.Doc.Kinds, key) {
				probs = append(probs, parsed.problem("when", "when.field", cut(key), cut(strings.Join(parsed.Doc.Kinds, ", ")), Quote(key)))
			}
		}
		// A field to withhold that no kind has withholds nothing: a misspelt name would let the
		// field that was meant go out.
		for i, path := range parsed.Doc.Redact {
			if !strings.HasPrefix(path, "body.") || !redactRe.MatchString(path) {
				continue
			}
			key, _, _ := strings.Cut(strings.TrimPrefix(path, "body."), ".")
			if ctx.noKindHas(parsed.Doc.Kinds, key) {
				probs = append(probs, parsed.problem(fmt.Sprintf("redact[%d]", i), "redact.field", cut(path), cut(strings.Join(parsed.Doc.Kinds, ", ")), Quote(key)))
			}
		}
		for i, ref := range c.recipients {
			if ref.Value != "" && !ctx.knows(ref) {
				code := "recipients.unknown_peer"
				if ref.Kind == RecipientGroup {
					code = "recipients.unknown_group"
				}
				probs = append(probs, parsed.problem(fmt.Sprintf("recipients[%d]", i), code, Quote(parsed.Doc.Recipients[i])))
			}
		}
	}
	if len(probs) > 0 {
		probs.sort()
		return nil, probs
	}
	c.Name = parsed.Doc.Name
	c.Source = src
	return c, nil
}

// noKindHas reports whether every one of kinds has a closed schema and none allows key.
func (ctx *Context) noKindHas(kinds []string, key string) bool {
	if len(kinds) == 0 {
		return false
	}
	for _, k := range kinds {
		fields := ctx.Fields[k]
		if len(fields) == 0 || slices.Contains(fields, key) {
			return false
		}
	}
	return true
}

func (ctx *Context) knows(ref RecipientRef) bool {
	switch ref.Kind {
	case RecipientGroup:
		return slices.Contains(ctx.Groups, ref.Value)
	case RecipientTrustDomain:
		return slices.ContainsFunc(ctx.Peers, func(p Recipient) bool { return p.TrustDomain == ref.Value })
	default:
		return slices.ContainsFunc(ctx.Peers, func(p Recipient) bool { return strings.HasPrefix(ref.Value, "spiffe://"+p.TrustDomain+"/") })
	}
}

// Active reports whether the policy grants anything at now in phase: approved, inside its
// validity window, and limited to no phases or to phase.
func (c *Compiled) Active(phase string, now time.Time) bool {
	return c.State == StateApproved && c.InWindow(now) && c.InPhase(phase)
}

// InWindow reports whether now is inside the validity window.
func (c *Compiled) InWindow(now time.Time) bool {
	if c.Doc.ValidFrom != nil && now.Before(*c.Doc.ValidFrom) {
		return false
	}
	return c.Doc.ValidUntil == nil || now.Before(*c.Doc.ValidUntil)
}

// InPhase reports whether the policy applies in phase.
func (c *Compiled) InPhase(phase string) bool {
	return len(c.Doc.Phases) == 0 || slices.Contains(c.Doc.Phases, phase)
}

// Names reports whether the policy names the recipient.
func (c *Compiled) Names(to Recipient) bool {
	for _, ref := range c.recipients {
		switch ref.Kind {
		case RecipientID:
			if ref.Value == to.ID {
				return true
			}
		case RecipientTrustDomain:
			if ref.Value == to.TrustDomain {
				return true
			}
		case RecipientGroup:
			if slices.Contains(to.Groups, ref.Value) {
				return true
			}
		}
	}
	return false
}

// Verdict is one policy's answer about one record for one recipient.
type Verdict struct {
	PolicyID string `json:"policy"`
	Grants   bool   `json:"grants"`
	// Refused is true when the policy would grant but for the request's stated purpose, which
	// is not among its accept_purposes.
	Refused bool     `json:"refused,omitempty"`
	Reason  string   `json:"reason"`
	Redact  []string `json:"redact,omitempty"`
	// Code names Reason's message (a key of VerdictMessages), and Args are its arguments, one
	// for each %s, so that an interface can say it in another language; empty for a reason
	// that carries another component's words (an error).
	Code string   `json:"code,omitempty"`
	Args []string `json:"args,omitempty"`
}

// VerdictMessages are explain's reasons in English, by code. Each %s takes one of a verdict's
// Args, in order.
var VerdictMessages = map[string]string{
	"grants":           "grants",
	"not_active":       "not active: %s",
	"outside_window":   "outside its validity window",
	"other_phase":      "limited to phases %s; the crisis is %s",
	"other_recipient":  "does not name the recipient",
	"status.actual":    "grants exercise records only; the record is actual",
	"status.exercises": "grants the records of exercises %s; the record is of exercise %s",
	"status.exercise":  "grants actual records only (no statuses: [exercise]); the record is of exercise %s",
	"status.never":     "the record is a %s record, which never leaves the node",
	"other_kind":       "does not cover kind %s",
	"above_ceiling":    "record is %s, above the ceiling %s",
	"when_fails":       "when: %s",
	"when_false":       "when is false",
	"other_purpose":    "accepts the purposes %s; the request states %s",
	"reshare":          "record of %s: a node never re-shares another org's records",
	"leaving":          "%s is leaving (peer remove): nothing is shared with it any more",
}

// LeavingVerdict is the verdict on every record for a peer that is being removed: a node shares
// nothing with a peer that is leaving, whatever its policies say.
func LeavingVerdict(trustDomain string) Verdict {
	var v Verdict
	v.because("leaving", trustDomain)
	return v
}

// because sets v's reason to the message of code with args.
func (v *Verdict) because(code string, args ...string) {
	v.Code, v.Args, v.Reason = code, args, formatCoded(VerdictMessages[code], args)
}

// verdict evaluates one policy. The checks go cheapest first; only a policy that passes all the
// others evaluates its condition, with the activation in, which reads the body on first need.
// The reason of a rejection is spelt out only when explain asks for it. An error means the
// record cannot be decided at all.
func (c *Compiled) verdict(r *pb.Record, to Recipient, phase string, now time.Time, in *input, explain bool) (Verdict, error) {
	why, whenErr, err := c.check(r, to, phase, now, in)
	if err != nil {
		return Verdict{PolicyID: c.ID, Reason: err.Error()}, err
	}
	if why == grants {
		v := Verdict{PolicyID: c.ID, Grants: true, Redact: c.Doc.Redact}
		v.because("grants")
		return v, nil
	}
	v := Verdict{PolicyID: c.ID, Refused: why == otherPurpose}
	if !explain {
		return v, nil
	}
	switch why {
	case notActive:
		v.because("not_active", c.State)
	case outsideWindow:
		v.because("outside_window")
	case otherPhase:
		v.because("other_phase", strings.Join(c.Doc.Phases, ", "), phase)
	case otherRecipient:
		v.because("other_recipient")
	case otherStatus:
		c.statusReason(&v, r)
	case otherKind:
		v.because("other_kind", r.Kind)
	case aboveCeiling:
		v.because("above_ceiling", classificationWord(r.Classification), c.Doc.MaxClassification)
	case whenFails:
		v.because("when_fails", fmt.Sprint(whenErr))
	case whenFalse:
		v.because("when_false")
	case otherPurpose:
		v.because("other_purpose", strings.Join(c.Doc.AcceptPurposes, ", "), strconv.Quote(to.Purpose))
	}
	return v, nil
}

// Covers reports whether the policy, approved and with the record's crisis in phase, would grant
// the record to a recipient it names: its validity window is open now, the record is of its
// kinds, status and ceiling, and its condition holds, read in phase. A condition that cannot be
// decided without a recipient or a stated purpose counts as holding; one whose body cannot be
// read does not.
func (c *Compiled) Covers(r *pb.Record, phase string, now time.Time) bool {
	if !c.InWindow(now) || !slices.Contains(c.Doc.Kinds, r.Kind) || !c.GrantsStatus(r) ||
		r.Classification > c.Doc.Classification() || r.Classification == pb.Classification_CLASSIFICATION_UNSPECIFIED {
		return false
	}
	if c.when == nil {
		return true
	}
	in := input{r: r, phase: phase, now: now}
	vars, err := in.activation(c.whenBody)
	if err != nil {
		return false
	}
	out, _, whenErr := c.when.Eval(vars)
	if in.failed() != nil {
		return false
	}
	if whenErr != nil {
		return true
	}
	ok, _ := out.Value().(bool)
	return ok
}

// GrantsStatus reports whether the policy covers the record's status: an actual record unless
// statuses leaves actual out, an exercise record only if statuses names exercise (and, when
// exercises is set, its exercise is listed). Test and draft records are never granted.
func (c *Compiled) GrantsStatus(r *pb.Record) bool {
	switch r.GetStatus() {
	case pb.Status_ACTUAL:
		return len(c.Doc.Statuses) == 0 || slices.Contains(c.Doc.Statuses, StatusActual)
	case pb.Status_EXERCISE:
		return slices.Contains(c.Doc.Statuses, StatusExercise) && (len(c.Doc.Exercises) == 0 || slices.Contains(c.Doc.Exercises, r.GetExercise()))
	}
	return false
}

func (c *Compiled) statusReason(v *Verdict, r *pb.Record) {
	switch r.GetStatus() {
	case pb.Status_ACTUAL:
		v.because("status.actual")
	case pb.Status_EXERCISE:
		if slices.Contains(c.Doc.Statuses, StatusExercise) {
			v.because("status.exercises", strings.Join(c.Doc.Exercises, ", "), r.GetExercise())
			return
		}
		v.because("status.exercise", r.GetExercise())
	default:
		v.because("status.never", strings.ToLower(r.GetStatus().String()))
	}
}

// rejection is why a policy does not grant a record, or grants.
type rejection int

const (
	grants rejection = iota
	notActive
	outsideWindow
	otherPhase
	otherRecipient
	otherKind
	// otherStatus: the record's status (or its exercise) is not one the policy grants.
	otherStatus
	aboveCeiling
	whenFails // the condition's error is returned with it
	whenFalse
	// otherPurpose: everything else grants, but the request's stated purpose is not among the
	// policy's accept_purposes. It is checked last, so that a refusal means the purpose alone
	// kept the record back, which is what the source audits.
	otherPurpose
)

// check runs verdict's checks without formatting anything, so that Decide, which gives no
// reasons, pays for none.
func (c *Compiled) check(r *pb.Record, to Recipient, phase string, now time.Time, in *input) (why rejection, whenErr, err error) {
	switch {
	case c.State != StateApproved:
		return notActive, nil, nil
	case !c.InWindow(now):
		return outsideWindow, nil, nil
	case !c.InPhase(phase):
		return otherPhase, nil, nil
	case !c.Names(to):
		return otherRecipient, nil, nil
	case !slices.Contains(c.Doc.Kinds, r.Kind):
		return otherKind, nil, nil
	case !c.GrantsStatus(r):
		return otherStatus, nil, nil
	case r.Classification > c.Doc.Classification() || r.Classification == pb.Classification_CLASSIFICATION_UNSPECIFIED:
		return aboveCeiling, nil, nil
	case c.when == nil:
		return c.accepts(to), nil, nil
	}
	vars, err := in.activation(c.whenBody)
	if err != nil {
		return 0, nil, err
	}
	out, _, whenErr := c.when.Eval(vars)
	if err = in.failed(); err != nil {
		return 0, nil, err
	}
	if whenErr != nil {
		return whenFails, whenErr, nil
	}
	if ok, _ := out.Value().(bool); !ok {
		return whenFalse, nil, nil
	}
	return c.accepts(to), nil, nil
}

// accepts is grants when the policy accepts the request's stated purpose: it lists no
// accept_purposes, or lists that one.
func (c *Compiled) accepts(to Recipient) rejection {
	if len(c.Doc.AcceptPurposes) == 0 || slices.Contains(c.Doc.AcceptPurposes, to.Purpose) {
		return grants
	}
	return otherPurpose
}

// PurposeOf returns the purpose of the policy with the given id in the set, "" when the set has
// no such policy. A policy version never changes, so any set that holds the id gives the same.
func (s *Set) PurposeOf(id string) string {
	for _, c := range s.Policies {
		if c.ID == id {
			return c.Doc.Purpose
		}
	}
	return ""
}

// Decision is the outcome for one record and one recipient.
type Decision struct {
	Allow bool
	// Record is the record as the recipient may see it: redacted, or nil on deny.
	Record *pb.Record
	// Policies are the ids of the granting policies.
	Policies []string
	// Redacted are the body paths the granting policies all withhold, whether this record has
	// them or not: what a recipient's copy is kept under (a change of it withdraws the history
	// of earlier copies, see Redaction).
	Redacted []string
	// Withheld are those of Redacted this record has, which its copy lacks: what the audit and
	// the preview name, so that neither says a field was withheld that never was there (a
	// misspelt path, or a field of another kind).
	Withheld []string
	// Refused are the ids of the policies that would have granted the record but for the
	// request's stated purpose (see Document.AcceptPurposes), whether or not another granted it.
	Refused []string
}

// Set is the policies an org has, compiled. A Set is immutable; a change makes a new one.
type Set struct {
	// Org is the trust domain of the node's own org: only its records are ever shared.
	Org      string
	Policies []*Compiled
}

// Grantors returns the ids of the approved policies that name to, sorted: the only policies that
// can grant it anything. Two sets with the same grantors for to decide alike for it, given the
// same record, phase and time, since a policy version's document never changes.
func (s *Set) Grantors(to Recipient) []string {
	var ids []string
	for _, c := range s.Policies {
		if c.State == StateApproved && c.Names(to) {
			ids = append(ids, c.ID)
		}
	}
	slices.Sort(ids)
	return ids
}

// CoversExercise reports whether an approved policy, inside its validity window at now, names to,
// accepts its stated purpose, and covers records of the exercise (statuses: [exercise], and
// exercises empty or naming it): the recipients that may learn whether the org takes part in
// that exercise. Anyone else learns nothing of its exercises. A policy limited to phases counts
// in any: an exercise's phase is its own.
func (s *Set) CoversExercise(to Recipient, exercise string, now time.Time) bool {
	probe := &pb.Record{Status: pb.Status_EXERCISE, Exercise: exercise}
	for _, c := range s.Policies {
		if c.State == StateApproved && c.InWindow(now) && c.Names(to) && c.accepts(to) == grants && c.GrantsStatus(probe) {
			return true
		}
	}
	return false
}

// Decide is the only path by which a record may leave the node. Deny by default; a record of
// another org is never re-shared; otherwise the record goes if some active policy grants it, and
// the recipient sees the union of what the granting policies reveal: a body field is removed
// only if every granting policy redacts it.
func (s *Set) Decide(r *pb.Record, to Recipient, phase string, now time.Time) Decision {
	d, _ := s.decide(r, to, phase, now, false)
	return d
}

// Explain gives each policy's verdict on the record for the recipient, and the decision.
func (s *Set) Explain(r *pb.Record, to Recipient, phase string, now time.Time) (Decision, []Verdict) {
	return s.decide(r, to, phase, now, true)
}

func (s *Set) decide(r *pb.Record, to Recipient, phase string, now time.Time, explain bool) (Decision, []Verdict) {
	var verdicts []Verdict
	if r.Origin != s.Org {
		if explain {
			var v Verdict
			v.because("reshare", r.Origin)
			verdicts = append(verdicts, v)
		}
		return Decision{}, verdicts
	}
	if r.Tombstone {
		return Decision{}, verdicts
	}
	in := input{r: r, to: to, phase: phase, now: now}
	var redactSets [][]string
	var granted, refused []string
	for _, c := range s.Policies {
		if !explain && (c.State != StateApproved || !c.Names(to) || !slices.Contains(c.Doc.Kinds, r.Kind)) {
			continue // the commonest rejections, without building a verdict
		}
		v, err := c.verdict(r, to, phase, now, &in, explain)
		if err != nil {
			// A body that cannot be read for a condition is not sent at all.
			return Decision{}, append(verdicts, v)
		}
		if explain {
			verdicts = append(verdicts, v)
		}
		if v.Grants {
			granted = append(granted, c.ID)
			redactSets = append(redactSets, v.Redact)
		} else if v.Refused {
			refused = append(refused, c.ID)
		}
	}
	if len(granted) == 0 {
		return Decision{Refused: refused}, verdicts
	}
	redact := intersect(redactSets)
	out, withheld, err := redactRecord(r, redact, in.valid)
	if err != nil {
		// A body that cannot be redacted is not sent at all.
		return Decision{}, append(verdicts, Verdict{Reason: err.Error()})
	}
	return Decision{Allow: true, Record: out, Policies: granted, Redacted: redact, Withheld: withheld, Refused: refused}, verdicts
}

// Redaction is Redacted as a holder holds a copy under it (pb.Disclosure.redaction): sorted and
// joined by newlines, "" when the policies remove nothing. When it changes, for a record the
// recipient holds, the source says so with the copy it sends, and the recipient drops the history
// of its earlier versions: they may hold a field withheld now, even one the current version
// lacks.
func (d Decision) Redaction() string {
	switch len(d.Redacted) {
	case 0:
		return ""
	case 1:
		return d.Redacted[0]
	}
	p := slices.Clone(d.Redacted)
	slices.Sort(p)
	return strings.Join(slices.Compact(p), "\n")
}

// intersect returns the body paths that every set removes, sorted, each once. A set removes a
// path when it names the path or a field the path sits in: {body.a} and {body.a.b} both remove
// body.a.b. Paths inside another path of the result are left out. One set comes back as it is,
// sorted and each path once. A long set is looked up, not scanned: no path is compared with
// every other.
func intersect(sets [][]string) []string {
	n := 0
	for _, s := range sets {
		if len(s) == 0 {
			return nil // a grant that redacts nothing reveals everything
		}
		n += len(s)
	}
	cand := make([]string, 0, n)
	for _, s := range sets {
		cand = append(cand, s...)
	}
	slices.Sort(cand)
	cand = slices.Compact(cand)
	var by []pathSet // each set removes its own paths: one needs no look-up
	if len(sets) > 1 {
		by = make([]pathSet, len(sets))
		for i, s := range sets {
			by[i] = newPathSet(s)
		}
	}
	all := cand[:0] // filtered in place: it never overtakes the candidate it reads
	for _, p := range cand {
		if !slices.ContainsFunc(by, func(s pathSet) bool { return !s.removes(p) }) {
			all = append(all, p)
		}
	}
	kept := newPathSet(all)
	var out []string
	for _, p := range all {
		if !kept.within(p) {
			out = append(out, p)
		}
	}
	return out
}

// pathSet is a set of body paths that says whether it removes a path: by a scan when it holds
// a few, by a look-up of each field the path sits in when it holds more.
type pathSet struct {
	list  []string
	index map[string]bool // nil for a few
}

func newPathSet(paths []string) pathSet {
	s := pathSet{list: paths}
	if len(paths) > 8 {
		s.index = make(map[string]bool, len(paths))
		for _, p := range paths {
			s.index[p] = true
		}
	}
	return s
}

// removes reports whether redacting the set removes the field at path: it is one of them, or
// inside one.
func (s pathSet) removes(path string) bool {
	if s.index != nil {
		return s.index[path] || s.within(path)
	}
	return slices.ContainsFunc(s.list, func(q string) bool { return q == path || inside(path, q) })
}

// within reports whether path is inside a field of the set: body.a.b inside body.a.
func (s pathSet) within(path string) bool {
	if s.index == nil {
		return slices.ContainsFunc(s.list, func(q string) bool { return inside(path, q) })
	}
	for i := len(path) - 1; i > 0; i-- {
		if path[i] == '.' && s.index[path[:i]] {
			return true
		}
	}
	return false
}

// inside reports whether path is a field inside the field at q, such as body.a.b in body.a.
func inside(path, q string) bool {
	return len(path) > len(q) && path[len(q)] == '.' && path[:len(q)] == q
}

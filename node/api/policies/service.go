// Package policies is the PolicyService: how security officers lint, propose, approve, reject,
// revoke, preview and explain sharing policies. Lifecycle steps go through Raft and are
// attributed to the calling officer's own SPIFFE ID.
package policies

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/federation/peerserver"
	"github.com/knooppunt/knooppunt/node/api"
	"github.com/knooppunt/knooppunt/node/db"
	"github.com/knooppunt/knooppunt/node/record"
	"github.com/knooppunt/knooppunt/node/sharing"
	"github.com/knooppunt/knooppunt/node/store"
	"github.com/knooppunt/knooppunt/policy"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// MaxSource bounds a policy document.
const MaxSource = 64 << 10

// Config wires the service.
type Config struct {
	Store   *store.Store
	DB      *db.DB
	Sharing *sharing.Sharing
	Kinds   *record.Kinds
	// Approvals returns how many officers besides the author must approve.
	Approvals func() int
	Logger    *slog.Logger
}

// Service implements knooppunt.v1.PolicyService.
type Service struct {
	pb.UnsafePolicyServiceServer
	c Config
}

var _ pb.PolicyServiceServer = (*Service)(nil)

// New returns the service.
func New(c Config) *Service { return &Service{c: c} }

// RegisterService registers the service on s.
func RegisterService(s grpc.ServiceRegistrar, svc *Service) { pb.RegisterPolicyServiceServer(s, svc) }

// Officer returns the SPIFFE ID of the calling officer, or refuses: a lifecycle step must be
// attributable to a person, so the local socket and non-officers cannot take one.
func Officer(ctx context.Context) (string, error) {
	c, ok := api.CallerFrom(ctx)
	if !ok || c.ID.IsZero() {
		return "", status.Error(codes.PermissionDenied, "this step must be taken by an officer with their own SVID, over mTLS; the local socket cannot take it")
	}
	if !c.Has(api.Officer) {
		return "", status.Errorf(codes.PermissionDenied, "%s is not an officer of this org", c.ID)
	}
	return c.ID.String(), nil
}

func problemsOf(err error) ([]*pb.LintProblem, bool) {
	var probs policy.Problems
	if !errors.As(err, &probs) {
		return nil, false
	}
	return lintProblems(probs), true
}

func lintProblems(probs []policy.Problem) []*pb.LintProblem {
	out := make([]*pb.LintProblem, len(probs))
	for i, p := range probs {
		out[i] = &pb.LintProblem{Line: int32(p.Line), Column: int32(p.Column), Field: p.Field, Message: p.Message, Code: p.Code, Args: p.Args}
	}
	return out
}

// lint lints src against this node, and returns the context it used, for LintDoubts.
func (s *Service) lint(src []byte) (*policy.Compiled, *policy.Context, error) {
	if len(src) > MaxSource {
		return nil, nil, api.FieldStatus(codes.ResourceExhausted, "source", fmt.Sprintf("%d bytes is over the limit of %d", len(src), MaxSource))
	}
	lctx := s.c.Sharing.LintContext(s.c.Kinds)
	c, err := policy.Lint(src, lctx)
	return c, lctx, err
}

// Lint checks a document against this node and stores nothing.
func (s *Service) Lint(ctx context.Context, req *pb.LintRequest) (*pb.LintResponse, error) {
	_, lctx, err := s.lint(req.Source)
	probs, ok := problemsOf(err)
	if err != nil && !ok {
		return nil, api.Status(s.c.Logger, err) // too large, say: nothing to doubt either
	}
	if lctx.Crises, err = s.knownCrises(ctx); err != nil {
		return nil, api.Status(s.c.Logger, err)
	}
	// Doubts come with problems too, so that one lint says all there is to check.
	return &pb.LintResponse{Problems: probs, Doubts: lintProblems(policy.LintDoubts(req.Source, lctx))}, nil
}

// knownCrises are the crises that records here or from partners name, actual or of an exercise
// open now, and those a phase was set for: `phase set` warns of another, and so does a lint.
func (s *Service) knownCrises(ctx context.Context) ([]string, error) {
	known := []string{}
	modes := []db.Mode{db.Actual}
	open, err := s.c.DB.Exercises(ctx, false)
	if err != nil {
		return nil, err
	}
	for _, e := range open {
		modes = append(modes, db.Mode{Status: pb.Status_EXERCISE, Exercise: e.Name})
	}
	for _, m := range modes {
		crises, err := s.c.DB.Crises(ctx, m)
		if err != nil {
			return nil, err
		}
		known = append(known, crises...)
	}
	phases, err := s.c.DB.Phases(ctx, "")
	if err != nil {
		return nil, err
	}
	for _, ph := range phases {
		known = append(known, ph.Crisis)
	}
	slices.Sort(known)
	return slices.Compact(known), nil
}

// Propose stores a new version of a policy after a full lint.
func (s *Service) Propose(ctx context.Context, req *pb.ProposeRequest) (*pb.PolicyInfo, error) {
	officer, err := Officer(ctx)
	if err != nil {
		return nil, err
	}
	c, _, err := s.lint(req.Source)
	if err != nil {
		if _, ok := problemsOf(err); ok {
			return nil, api.Invalid("source", "the policy does not lint:\n%v", err)
		}
		return nil, api.Status(s.c.Logger, err)
	}
	if err := s.unchanged(ctx, c.Doc.Name, req.Source); err != nil {
		return nil, err
	}
	return s.step(ctx, &pb.PolicyStep{Action: db.StepPropose, Source: req.Source, Officer: officer})
}

// unchanged refuses a proposal whose document is, byte for byte, a version of the policy that
// waits for approval or is in force: a second version of it would ask the officers to approve
// again what they approved or are about to. A version rejected or revoked may be proposed again.
func (s *Service) unchanged(ctx context.Context, name string, src []byte) error {
	rows, err := s.c.DB.ListPolicies(ctx, "", name)
	if err != nil {
		return api.Status(s.c.Logger, err)
	}
	for _, r := range rows {
		if (r.State != policy.StateProposed && r.State != policy.StateApproved) || !bytes.Equal(r.Source, src) {
			continue
		}
		what := "waits for approval"
		if r.State == policy.StateApproved {
			what = "is approved"
		}
		return api.SameDocument(r.ID, r.State, fmt.Sprintf("the same document as %s, which %s: change the document to propose a new version", r.ID, what))
	}
	return nil
}

// Approve adds the calling officer's approval.
func (s *Service) Approve(ctx context.Context, req *pb.PolicyStepRequest) (*pb.PolicyInfo, error) {
	return s.decide(ctx, db.StepApprove, req)
}

// Reject rejects a proposed policy, with a reason.
func (s *Service) Reject(ctx context.Context, req *pb.PolicyStepRequest) (*pb.PolicyInfo, error) {
	if err := api.CheckReason(req.Reason, "say why the policy is rejected"); err != nil {
		return nil, err
	}
	return s.decide(ctx, db.StepReject, req)
}

// Revoke ends an approved policy, with a reason.
func (s *Service) Revoke(ctx context.Context, req *pb.PolicyStepRequest) (*pb.PolicyInfo, error) {
	if err := api.CheckReason(req.Reason, "say why the policy is revoked"); err != nil {
		return nil, err
	}
	// What partners hold under it before, which is what the revocation withdraws.
	var held []*pb.PolicyHeld
	if checkID(req.Id) == nil {
		var err error
		if held, err = s.held(ctx, req.Id); err != nil {
			return nil, err
		}
	}
	info, err := s.decide(ctx, db.StepRevoke, req)
	if err != nil {
		return nil, err
	}
	info.Held = held
	return info, nil
}

// held is what partners hold now of the records sent under the policy version id.
func (s *Service) held(ctx context.Context, id string) ([]*pb.PolicyHeld, error) {
	hs, err := s.c.DB.HeldUnder(ctx, id)
	if err != nil {
		return nil, api.Status(s.c.Logger, err)
	}
	out := make([]*pb.PolicyHeld, len(hs))
	for i, h := range hs {
		out[i] = &pb.PolicyHeld{Holder: h.Holder, Records: h.Records, Alone: h.Alone}
	}
	return out, nil
}

func (s *Service) decide(ctx context.Context, action string, req *pb.PolicyStepRequest) (*pb.PolicyInfo, error) {
	officer, err := Officer(ctx)
	if err != nil {
		return nil, err
	}
	// The version a step of action is for: the one in force for a revocation, else the proposal.
	state := policy.StateProposed
	if action == db.StepRevoke {
		state = policy.StateApproved
	}
	if err := checkID(req.Id); err != nil {
		if v := s.latest(ctx, req.Id, state); v != "" && policy.IsName(req.Id) {
			return nil, api.FieldStatus(codes.NotFound, "id", fmt.Sprintf("%q names no policy version: give NAME@VERSION, such as %s, the one %s now", req.Id, v, state))
		}
		return nil, err
	}
	if action == db.StepApprove {
		// An approval is recorded without one: a reason would go through the Raft log to be
		// dropped, and the officer would think it kept.
		if req.Reason != "" {
			return nil, api.Invalid("reason", "an approval takes no reason: it would not be kept; leave it out (reject and revoke take one)")
		}
		if err := s.approvable(ctx, req.Id); err != nil {
			return nil, err
		}
	}
	info, err := s.step(ctx, &pb.PolicyStep{Action: action, PolicyId: req.Id, Officer: officer, Reason: req.Reason})
	if status.Code(err) == codes.NotFound {
		return nil, api.FieldStatus(codes.NotFound, "id", fmt.Sprintf("there is no policy %s: `policy list` shows the policies and their versions", req.Id))
	}
	if name, _, ok := policy.ParseID(req.Id); ok && api.Reason(err) == api.ReasonPolicyState {
		// A superseded or already revoked version: say which one the step is for (review L, L8).
		if v := s.latest(ctx, name, state); v != "" && v != req.Id {
			return nil, api.ReasonStatus(codes.FailedPrecondition, api.ReasonPolicyState, fmt.Sprintf("%s; %s is %s", status.Convert(err).Message(), v, state))
		}
	}
	return info, err
}

// latest is the id of the newest version of the policy named name in state, "" when there is
// none or it cannot be read.
func (s *Service) latest(ctx context.Context, name, state string) string {
	rows, err := s.c.DB.ListPolicies(ctx, state, name)
	if err != nil || len(rows) == 0 {
		return ""
	}
	newest := rows[0]
	for _, r := range rows {
		if r.Version > newest.Version {
			newest = r
		}
	}
	return newest.ID
}

// checkID refuses, before a step goes into the Raft log, an id that names no policy version.
func checkID(id string) error {
	if id == "" {
		return api.Invalid("id", "missing: name the policy as NAME@VERSION")
	}
	if _, _, ok := policy.ParseID(id); ok {
		return nil
	}
	// A step names one version: a name alone, as `policy show` takes it, names none.
	if policy.IsName(id) {
		return api.FieldStatus(codes.NotFound, "id", fmt.Sprintf("%q names no policy version: give NAME@VERSION, such as %s@1 (`policy list` shows them)", id, id))
	}
	return api.Invalid("id", "%s is not NAME@VERSION, such as lcvs-capacity-to-regions@2 (`policy list` shows them)", policy.Quote(id))
}

// approvable refuses the approval of a proposal
//   - while a newer version of the same policy waits for approval: that one is what its author
//     means now (a mended redaction, say), and approving the older one would put in force what
//     the newer one was written to correct;
//   - that this release's lint refuses, offline: one proposed under an earlier release, which
//     read it more leniently (a second YAML document, a comment that hides part of the
//     condition, an invisible character). What the approving officer reads must be what the
//     node enforces; its author can propose a new version.
//
// A version that is not proposed (or not there) it leaves to the step, which refuses it.
func (s *Service) approvable(ctx context.Context, id string) error {
	name, version, ok := policy.ParseID(id)
	if !ok {
		return nil // checkID refused it
	}
	rows, err := s.c.DB.ListPolicies(ctx, policy.StateProposed, name)
	if err != nil {
		return api.Status(s.c.Logger, err)
	}
	var this *db.PolicyRow
	for _, p := range rows {
		if p.Version > version {
			return api.ReasonStatus(codes.FailedPrecondition, api.ReasonNewerProposal, fmt.Sprintf("%s is a newer proposal of %s (by %s, %s): approve that one, or reject it first with `policy reject %s --reason …`",
				p.ID, name, p.Author, p.ProposedAt.Format(time.RFC3339), p.ID))
		}
		if p.Version == version {
			this = p
		}
	}
	if this != nil {
		if _, err := policy.Lint(this.Source, nil); err != nil {
			return api.ReasonStatus(codes.FailedPrecondition, api.ReasonPolicyLint, fmt.Sprintf("%s does not lint with this release: propose a new version of it, and reject this one:\n%v", id, err))
		}
	}
	return nil
}

func (s *Service) step(ctx context.Context, st *pb.PolicyStep) (*pb.PolicyInfo, error) {
	st.At = timestamppb.Now()
	st.ApprovalsRequired = int32(s.c.Approvals())
	st.AuditDocument = true
	v, err := s.c.Store.Apply(ctx, &pb.Command{Cmd: &pb.Command_PolicyStep{PolicyStep: st}})
	if err != nil {
		return nil, api.Status(s.c.Logger, err)
	}
	out, _ := v.(store.PolicyOutcome)
	if out.Refusal != nil {
		return nil, refusalStatus(out.Refusal)
	}
	if out.Policy == nil {
		return nil, api.Status(s.c.Logger, errors.New("policies: the step was not applied: the database is ahead of the Raft log"))
	}
	return s.info(ctx, out.Policy)
}

// maxPreview bounds the records a preview lists, as a List page is bounded: its counts cover
// them all.
const maxPreview = 1000

func refusalStatus(err error) error {
	switch {
	case errors.Is(err, db.ErrPolicyNotFound):
		return status.Error(codes.NotFound, "policy not found: list them with `policy list`")
	case errors.Is(err, policy.ErrSelfApproval):
		return api.ReasonStatus(codes.PermissionDenied, api.ReasonFourEyes, "the author cannot approve their own policy: another officer must (four eyes)")
	case errors.Is(err, policy.ErrAlreadyApproved):
		return status.Error(codes.AlreadyExists, "you have approved this policy already: another officer must approve it too")
	case errors.Is(err, db.ErrPolicyUnreadable):
		return status.Error(codes.FailedPrecondition, strings.TrimPrefix(err.Error(), db.ErrPolicyUnreadable.Error()+": "))
	case errors.Is(err, policy.ErrExpired):
		return api.ReasonStatus(codes.FailedPrecondition, api.ReasonPolicyExpired, err.Error())
	case errors.Is(err, policy.ErrNotProposed), errors.Is(err, policy.ErrNotActive):
		return api.ReasonStatus(codes.FailedPrecondition, api.ReasonPolicyState, err.Error())
	}
	return status.Error(codes.FailedPrecondition, err.Error())
}

func (s *Service) info(ctx context.Context, p *db.PolicyRow) (*pb.PolicyInfo, error) {
	return s.infoIn(ctx, p, s.newListing(ctx))
}

// phasesInForce returns, once however often it is called, the actual crises that records here
// name, by the phase each is in (cold for one never set): a phase set for a crisis nothing names
// (a typo) shares nothing, and neither does an exercise's. A listing of policies reads them once
// for all.
func (s *Service) phasesInForce(ctx context.Context) func() (map[string][]string, error) {
	return sync.OnceValues(func() (map[string][]string, error) {
		phases, err := s.c.DB.Phases(ctx, "")
		if err != nil {
			return nil, api.Status(s.c.Logger, err)
		}
		crises, err := s.c.DB.Crises(ctx, db.Actual)
		if err != nil {
			return nil, api.Status(s.c.Logger, err)
		}
		out := map[string][]string{}
		for _, c := range crises {
			phase := policy.PhaseCold
			for _, ph := range phases {
				// An exercise's phase governs its own records alone: a policy that only an
				// exercise's warm phase lets grant is not active for the actual crisis.
				if ph.Exercise == "" && ph.Crisis == c {
					phase = ph.Phase
				}
			}
			out[phase] = append(out[phase], c)
		}
		return out, nil
	})
}

// maxActiveRecords bounds the own records of a crisis and kind that say whether a policy limited
// to phases is active for it: one that covers none of the first so many of each of its kinds is
// taken as not active.
const maxActiveRecords = 2000

// listing is what a listing of policies reads once for all of them: the crises by phase, and
// the own records of each crisis and kind that a policy limited to phases is held against.
type listing struct {
	s       *Service
	phases  func() (map[string][]string, error)
	records map[[2]string][]*pb.Record // by crisis and kind
}

func (s *Service) newListing(ctx context.Context) *listing {
	return &listing{s: s, phases: s.phasesInForce(ctx), records: map[[2]string][]*pb.Record{}}
}

// covers reports whether c, in phase, covers one of the node's own live records of crisis (within
// maxActiveRecords of each of its kinds).
func (l *listing) covers(ctx context.Context, c *policy.Compiled, crisis, phase string, now time.Time) (bool, error) {
	for _, kind := range c.Doc.Kinds {
		k := [2]string{crisis, kind}
		recs, ok := l.records[k]
		if !ok {
			var err error
			if recs, _, err = l.s.c.DB.List(ctx, db.Filter{Crisis: crisis, Kind: kind, PageSize: maxActiveRecords}); err != nil {
				return false, api.Status(l.s.c.Logger, err)
			}
			l.records[k] = recs
		}
		if slices.ContainsFunc(recs, func(r *pb.Record) bool { return c.Covers(r, phase, now) }) {
			return true, nil
		}
	}
	return false, nil
}

// infoIn is a policy's info. A policy limited to phases is active when a crisis that records name
// is in one of its phases and it covers one of the node's own records of that crisis: one whose
// condition takes only a crisis in another phase grants nothing, and was listed as active
// (review L, L2).
func (s *Service) infoIn(ctx context.Context, p *db.PolicyRow, l *listing) (*pb.PolicyInfo, error) {
	parsed, err := policy.Parse(p.Source)
	purpose := ""
	active := false
	if err == nil {
		purpose = parsed.Doc.Purpose
		c := &policy.Compiled{Policy: p.Policy, Doc: parsed.Doc}
		now := time.Now()
		if len(parsed.Doc.Phases) == 0 {
			active = c.Active("", now)
		} else {
			live, err := l.phases()
			if err != nil {
				return nil, err
			}
			for _, ph := range parsed.Doc.Phases {
				if active || !c.Active(ph, now) {
					continue
				}
				compiled, err := policy.Compile(p.Policy)
				if err != nil {
					break
				}
				for _, crisis := range live[ph] {
					if active, err = l.covers(ctx, compiled, crisis, ph, now); err != nil {
						return nil, err
					} else if active {
						break
					}
				}
			}
		}
	}
	info := &pb.PolicyInfo{
		Id: p.ID, Name: p.Name, Version: int32(p.Version), State: p.State, Active: active,
		Author: p.Author, ProposedAt: timestamppb.New(p.ProposedAt), Approvers: p.Approvers,
		DecidedBy: p.DecidedBy, Reason: strings.ToValidUTF8(p.Reason, "\uFFFD"), Purpose: purpose, Source: p.Source, // as stored before CheckReason refused invalid UTF-8, which REST cannot marshal
		ApprovalsRequired: int32(p.Required),
	}
	if !p.DecidedAt.IsZero() {
		info.DecidedAt = timestamppb.New(p.DecidedAt)
	}
	return info, nil
}

// List returns the policies, filtered by state and name.
func (s *Service) List(ctx context.Context, req *pb.ListPoliciesRequest) (*pb.ListPoliciesResponse, error) {
	if req.State != "" && !slices.Contains(policy.States, req.State) {
		return nil, api.Invalid("state", "%s is not a state: use %s", policy.Quote(req.State), strings.Join(policy.States, ", "))
	}
	rows, err := s.c.DB.ListPolicies(ctx, req.State, req.Name)
	if err != nil {
		return nil, api.Status(s.c.Logger, err)
	}
	resp := &pb.ListPoliciesResponse{}
	l := s.newListing(ctx)
	for _, r := range rows {
		info, err := s.infoIn(ctx, r, l)
		if err != nil {
			return nil, err
		}
		resp.Policies = append(resp.Policies, info)
	}
	return resp, nil
}

// Get returns one policy version: NAME@VERSION, or NAME alone for its latest version.
func (s *Service) Get(ctx context.Context, req *pb.GetPolicyRequest) (*pb.PolicyInfo, error) {
	if req.Id == "" {
		return nil, api.Invalid("id", "missing: give NAME, or NAME@VERSION")
	}
	if !strings.Contains(req.Id, "@") {
		// A value no policy can be named is refused as such, not looked up (review AF, AF5).
		if !policy.IsName(req.Id) {
			return nil, api.Invalid("id", "%s is not a policy's name: give NAME, or NAME@VERSION, such as lcvs-capacity-to-regions@2 (`policy list` shows them)", policy.Quote(req.Id))
		}
		rows, err := s.c.DB.ListPolicies(ctx, "", req.Id) // the newest version first
		if err != nil {
			return nil, api.Status(s.c.Logger, err)
		}
		if len(rows) == 0 {
			return nil, api.FieldStatus(codes.NotFound, "id", fmt.Sprintf("no policy is named %q: `policy list` shows the policies", req.Id))
		}
		return s.withHeld(ctx, rows[0])
	}
	// As Approve, Reject and Revoke refuse one.
	if err := checkID(req.Id); err != nil {
		return nil, err
	}
	p, err := s.c.DB.GetPolicy(ctx, req.Id)
	if err != nil {
		if errors.Is(err, db.ErrPolicyNotFound) {
			return nil, api.FieldStatus(codes.NotFound, "id", fmt.Sprintf("there is no policy %s: `policy list` shows the policies and their versions", req.Id))
		}
		return nil, api.Status(s.c.Logger, err)
	}
	return s.withHeld(ctx, p)
}

// withHeld is info with what partners hold under the version now, as Get gives it.
func (s *Service) withHeld(ctx context.Context, p *db.PolicyRow) (*pb.PolicyInfo, error) {
	info, err := s.info(ctx, p)
	if err != nil {
		return nil, err
	}
	if info.Held, err = s.held(ctx, p.ID); err != nil {
		return nil, err
	}
	return info, nil
}

func (s *Service) recipient(id string) (policy.Recipient, error) {
	if id == "" {
		return policy.Recipient{}, api.Invalid("recipient", "missing: give a peer's SPIFFE ID, such as spiffe://ncc.crisis.test/node/r1")
	}
	r, err := s.c.Sharing.Recipient(id)
	if err != nil {
		return r, api.Invalid("recipient", "%v", err)
	}
	return r, nil
}

func checkPhase(p string) error {
	if p != "" && policy.PhaseRank(p) < 0 {
		return api.Invalid("phase", "%s is not a phase: use cold, lukewarm or warm", policy.Quote(p))
	}
	return nil
}

// Preview runs a draft or stored policy alone, as if it were approved, over the node's own
// records, and shows what the recipient would receive.
func (s *Service) Preview(ctx context.Context, req *pb.PreviewRequest) (*pb.PreviewResponse, error) {
	to, err := s.recipient(req.Recipient)
	if err != nil {
		return nil, err
	}
	stated, statedAt, err := s.statedPurpose(ctx, &to, req.Purpose)
	if err != nil {
		return nil, err
	}
	if err := checkPhase(req.Phase); err != nil {
		return nil, err
	}
	// A peer that is leaving gets nothing, whatever the policies say (see Explain): a list of
	// what it would receive would mislead.
	if leaving, err := s.c.Sharing.Leaving(ctx, to.TrustDomain); err != nil {
		return nil, api.Status(s.c.Logger, err)
	} else if leaving {
		return nil, api.Invalid("recipient", "%s is leaving (removed from this node's peers): it gets nothing, whatever the policies say, until it is a peer again; preview for a peer that stays", req.Recipient)
	}
	var c *policy.Compiled
	switch {
	case len(req.Source) > 0 && req.Id != "":
		return nil, api.Invalid("source", "give a source or an id, not both")
	case len(req.Source) > 0:
		if c, _, err = s.lint(req.Source); err != nil {
			if _, ok := problemsOf(err); ok {
				return nil, api.Invalid("source", "the policy does not lint:\n%v", err)
			}
			return nil, api.Status(s.c.Logger, err)
		}
		c.ID = policy.PolicyID(c.Doc.Name, 0) + " (draft)"
	case req.Id != "":
		p, err := s.c.DB.GetPolicy(ctx, req.Id)
		if err != nil {
			return nil, refusalStatus(err)
		}
		if c, err = policy.Compile(p.Policy); err != nil {
			return nil, api.Status(s.c.Logger, err)
		}
	default:
		return nil, api.Invalid("source", "missing: give a draft source or a stored policy id")
	}
	c.State = policy.StateApproved // preview shows what it would do once approved
	set := &policy.Set{Org: s.c.Sharing.Org(), Policies: []*policy.Compiled{c}}
	// With the approved policies of other names, as it would be in force: a record that
	// another policy grants too keeps only the fields that both withhold.
	active, err := s.c.Sharing.PolicySet(ctx)
	if err != nil {
		return nil, api.Status(s.c.Logger, err)
	}
	together := &policy.Set{Org: set.Org, Policies: []*policy.Compiled{c}}
	for _, p := range active.Policies {
		if p.State == policy.StateApproved && p.Doc.Name != c.Doc.Name {
			together.Policies = append(together.Policies, p)
		}
	}
	// In force now, this policy's name included: what its approval would lift, and withdraw.
	inForce := &policy.Set{Org: set.Org}
	var replaced *policy.Compiled
	for _, p := range active.Policies {
		if p.State == policy.StateApproved {
			inForce.Policies = append(inForce.Policies, p)
			if p.Doc.Name == c.Doc.Name && p.ID != c.ID {
				replaced = p
			}
		}
	}
	matched, voided, overriding := map[string]bool{}, map[string]bool{}, map[string]bool{}
	lifted := map[string]map[string]bool{}
	limit := int(req.Limit)
	switch {
	case limit < 0:
		return nil, api.Invalid("limit", "%d is negative: use 0 for 100, or up to %d", limit, maxPreview)
	case limit == 0:
		limit = 100
	case limit > maxPreview:
		return nil, api.Invalid("limit", "%d is over the limit of %d", limit, maxPreview)
	}
	resp := &pb.PreviewResponse{Purpose: to.Purpose, PurposeStated: stated, PurposeStatedAt: statedAt}
	counts := map[string]int64{}
	phases := s.c.Sharing.Phases()
	now := time.Now()
	phaseOf := func(r *pb.Record) (string, error) {
		if req.Phase != "" {
			return req.Phase, nil
		}
		return phases.Of(ctx, r.Exercise, r.Crisis)
	}
	modes, err := previewModes(ctx, s.c.DB, c)
	if err != nil {
		return nil, api.Status(s.c.Logger, err)
	}
	for _, kind := range c.Doc.Kinds {
		err := eachRecord(ctx, s.c.DB, kind, modes, func(r *pb.Record) error {
			resp.Considered++
			phase, err := phaseOf(r)
			if err != nil {
				return err
			}
			d := set.Decide(r, to, phase, now)
			if !d.Allow {
				return nil
			}
			present := policy.Present(r.Body, c.Doc.Redact)
			for _, p := range present {
				matched[p] = true
			}
			all := together.Decide(r, to, phase, now)
			liftedBy(lifted, inForce.Decide(r, to, phase, now), all, inForce)
			if all.Allow && len(present) > 0 {
				for _, p := range present {
					// Withheld all the same when a field it is in is: redact [body.contact,
					// body.contact.phone] sends no phone, though intersect keeps body.contact alone.
					if withholds(all.Redacted, p) {
						continue
					}
					voided[p] = true
					for _, o := range together.Policies[1:] {
						if slices.Contains(all.Policies, o.ID) && !withholds(o.Doc.Redact, p) {
							overriding[o.ID] = true
						}
					}
				}
			}
			counts[r.Kind]++
			resp.Total++
			if len(resp.Items) < limit {
				resp.Items = append(resp.Items, &pb.PreviewItem{Record: d.Record, Redacted: d.Withheld})
			}
			return nil
		})
		if err != nil {
			return nil, api.Status(s.c.Logger, err)
		}
	}
	if replaced != nil {
		// What approving takes back (review AE, AE1: an approval that superseded a version
		// retracted all it shared without a word): of what the recipient's node holds under the
		// version replaced, what this one and the others in force would not grant, each record in
		// its crisis's phase (or the phase asked), for the purpose its node states. From what it
		// holds, not from what the version in force would grant it now: a purpose it has not
		// stated to this node since would count none of it (review AG, AG2, AG13).
		resp.Supersedes = replaced.ID
		held, err := s.c.DB.HeldUnderBy(ctx, to.Holder(), replaced.ID)
		if err != nil {
			return nil, api.Status(s.c.Logger, err)
		}
		for _, id := range held {
			r, err := s.c.DB.Get(ctx, id)
			if errors.Is(err, db.ErrNotFound) {
				continue // deleted: retracted whatever is approved
			}
			if err != nil {
				return nil, api.Status(s.c.Logger, err)
			}
			phase, err := phaseOf(r)
			if err != nil {
				return nil, api.Status(s.c.Logger, err)
			}
			if !together.Decide(r, to, phase, now).Allow {
				resp.Withdrawn++
			}
		}
	}
	for k, n := range counts {
		resp.Counts = append(resp.Counts, &pb.KindCount{Kind: k, Count: n})
	}
	if resp.Total > 0 {
		for _, p := range c.Doc.Redact {
			if !matched[p] {
				resp.UnmatchedRedactions = append(resp.UnmatchedRedactions, p)
			}
		}
	}
	resp.VoidedRedactions, resp.OverridingPolicies = slices.Sorted(maps.Keys(voided)), slices.Sorted(maps.Keys(overriding))
	for _, f := range slices.Sorted(maps.Keys(lifted)) {
		resp.LiftedRedactions = append(resp.LiftedRedactions, &pb.LiftedRedaction{Field: f, WithheldBy: slices.Sorted(maps.Keys(lifted[f]))})
	}
	sort.Slice(resp.Counts, func(i, j int) bool { return resp.Counts[i].Kind < resp.Counts[j].Kind })
	return resp, nil
}

// liftedBy adds to lifted each field the policies in force withhold from a record now (was) that
// would be sent once the previewed policy is in force too (will), with the policies that withhold
// it now: a field is withheld only if every granting policy withholds it, so a new policy without
// a redact lifts another's.
func liftedBy(lifted map[string]map[string]bool, was, will policy.Decision, inForce *policy.Set) {
	if !was.Allow || !will.Allow {
		return
	}
	for _, f := range was.Withheld {
		if withholds(will.Redacted, f) {
			continue
		}
		if lifted[f] == nil {
			lifted[f] = map[string]bool{}
		}
		for _, p := range inForce.Policies {
			if slices.Contains(was.Policies, p.ID) && withholds(p.Doc.Redact, f) {
				lifted[f][p.ID] = true
			}
		}
	}
}

// withholds reports whether redact paths withhold path: it, or a field it is inside.
func withholds(redact []string, path string) bool {
	return slices.ContainsFunc(redact, func(r string) bool { return r == path || strings.HasPrefix(path, r+".") })
}

// previewModes are the modes whose records a policy can grant: actual, and, for a policy whose
// statuses name exercise, every exercise open now (those it lists, when it lists any).
func previewModes(ctx context.Context, d *db.DB, c *policy.Compiled) ([]db.Mode, error) {
	var modes []db.Mode
	if len(c.Doc.Statuses) == 0 || slices.Contains(c.Doc.Statuses, policy.StatusActual) {
		modes = append(modes, db.Actual)
	}
	if !slices.Contains(c.Doc.Statuses, policy.StatusExercise) {
		return modes, nil
	}
	open, err := d.Exercises(ctx, false)
	if err != nil {
		return nil, err
	}
	for _, e := range open {
		if len(c.Doc.Exercises) == 0 || slices.Contains(c.Doc.Exercises, e.Name) {
			modes = append(modes, db.Mode{Status: pb.Status_EXERCISE, Exercise: e.Name})
		}
	}
	return modes, nil
}

// eachRecord calls fn for every live record of a kind in each of the modes, a page at a time.
func eachRecord(ctx context.Context, d *db.DB, kind string, modes []db.Mode, fn func(*pb.Record) error) error {
	for _, m := range modes {
		f := db.Filter{Kind: kind, PageSize: 1000, Mode: m}
		for {
			recs, next, err := d.List(ctx, f)
			if err != nil {
				return err
			}
			for _, r := range recs {
				if err := fn(r); err != nil {
					return err
				}
			}
			if next == "" {
				break
			}
			f.PageToken = next
		}
	}
	return nil
}

// checkPurpose checks the purpose a preview or explain has the recipient state, as a peer's own
// is checked when it states one: invalid UTF-8 and control characters were taken here (review
// AF, AF8), and a preview then showed what no partner can be sent.
func checkPurpose(p string) (string, error) {
	if err := peerserver.CheckPurpose("purpose", p); err != nil {
		return "", err
	}
	return p, nil
}

// statedPurpose sets to.Purpose: asked, or, when asked is empty, the purpose the recipient
// stated last (review AE, AE2: a preview with none, or a guessed one, showed what no partner
// would receive). It returns what to put in a response's purpose fields.
func (s *Service) statedPurpose(ctx context.Context, to *policy.Recipient, asked string) (stated bool, at *timestamppb.Timestamp, err error) {
	if to.Purpose, err = checkPurpose(asked); err != nil || asked != "" {
		return false, nil, err
	}
	purpose, when, ok, err := s.c.DB.StatedPurpose(ctx, to.TrustDomain)
	if err != nil {
		return false, nil, api.Status(s.c.Logger, err)
	}
	if !ok {
		return false, nil, nil
	}
	to.Purpose = purpose
	return true, timestamppb.New(when), nil
}

// Explain shows each stored policy's verdict on one record for one recipient.
func (s *Service) Explain(ctx context.Context, req *pb.ExplainRequest) (*pb.ExplainResponse, error) {
	if err := record.CheckID("record_id", req.RecordId); err != nil {
		return nil, api.Status(s.c.Logger, err)
	}
	to, err := s.recipient(req.Recipient)
	if err != nil {
		return nil, err
	}
	stated, statedAt, err := s.statedPurpose(ctx, &to, req.Purpose)
	if err != nil {
		return nil, err
	}
	if err := checkPhase(req.Phase); err != nil {
		return nil, err
	}
	r, err := s.c.DB.Get(ctx, req.RecordId)
	if errors.Is(err, db.ErrNotFound) {
		return nil, api.FieldStatus(codes.NotFound, "record_id", fmt.Sprintf("this node has no record %q of its own: explain decides on the node's own records, as its policies share them (`record list` shows them)", req.RecordId))
	}
	if err != nil {
		return nil, api.Status(s.c.Logger, err)
	}
	phase := req.Phase
	if phase == "" {
		if phase, err = s.c.Sharing.Phases().Of(ctx, r.Exercise, r.Crisis); err != nil {
			return nil, api.Status(s.c.Logger, err)
		}
	}
	set, err := s.c.Sharing.PolicySet(ctx)
	if err != nil {
		return nil, api.Status(s.c.Logger, err)
	}
	d, verdicts := set.Explain(r, to, phase, time.Now())
	// A peer that is leaving gets nothing, whatever the policies say: Query and Subscribe refuse
	// it every record (peerserver's grants).
	leaving, err := s.c.Sharing.Leaving(ctx, to.TrustDomain)
	if err != nil {
		return nil, api.Status(s.c.Logger, err)
	}
	if leaving {
		d, verdicts = policy.Decision{}, []policy.Verdict{policy.LeavingVerdict(to.TrustDomain)}
	}
	resp := &pb.ExplainResponse{Allow: d.Allow, Policies: d.Policies, Redacted: d.Withheld, Phase: phase, Holder: to.Holder(),
		Purpose: to.Purpose, PurposeStated: stated, PurposeStatedAt: statedAt}
	held, at, ok, err := s.c.DB.HoldingOf(ctx, resp.Holder, r.Id)
	if err != nil {
		return nil, api.Status(s.c.Logger, err)
	}
	if ok {
		resp.Held = &pb.Holding{Version: held.Version, Policies: held.Policies, At: timestamppb.New(at)}
	}
	for _, v := range verdicts {
		resp.Verdicts = append(resp.Verdicts, &pb.Verdict{PolicyId: v.PolicyID, Grants: v.Grants, Reason: v.Reason, Redact: v.Redact, Code: v.Code, Args: v.Args})
	}
	return resp, nil
}

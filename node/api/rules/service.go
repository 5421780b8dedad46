// Package rules is the RuleService: editors and officers lint an early-warning rule against this
// node's kinds, run it over this node's history (a dry run), and apply or delete it through
// Raft, in person. Lint and Test store nothing; a rule that does not lint is never stored.
package rules

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/node/api"
	"github.com/knooppunt/knooppunt/node/db"
	"github.com/knooppunt/knooppunt/node/record"
	"github.com/knooppunt/knooppunt/node/store"
	"github.com/knooppunt/knooppunt/node/warn"
	"github.com/knooppunt/knooppunt/policy"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// MaxSource bounds a rule document.
const MaxSource = 64 << 10

// UnchangedTrailer is the trailer in which Apply names the stored version it answered because the
// source was that version's, byte for byte: no step was taken, and the CLI says so.
const UnchangedTrailer = "knooppunt-rule-unchanged"

// Config wires the service.
type Config struct {
	Store *store.Store
	DB    *db.DB
	Kinds *record.Kinds
	// Retention is how far back the history reaches (config history.retention).
	Retention func() time.Duration
	Logger    *slog.Logger
}

// Service implements knooppunt.v1.RuleService.
type Service struct {
	pb.UnsafeRuleServiceServer
	c Config
	// dryRuns holds a token for each dry run under way (Test): each may take a core for a
	// while, and several at once took the node's (review D, F7).
	dryRuns chan struct{}
}

var _ pb.RuleServiceServer = (*Service)(nil)

// MaxDryRuns is how many dry runs (Test) a node runs at once, and DryRunTime how long one
// may take.
const (
	MaxDryRuns = 2
	DryRunTime = time.Minute
)

var errDryRunTime = fmt.Errorf("it took over %s, the most a dry run may", DryRunTime)

// New returns the service.
func New(c Config) *Service { return &Service{c: c, dryRuns: make(chan struct{}, MaxDryRuns)} }

// RegisterService registers the service on s.
func RegisterService(s grpc.ServiceRegistrar, svc *Service) { pb.RegisterRuleServiceServer(s, svc) }

// Lint checks a rule document; its problems are the answer, not an error.
func (s *Service) Lint(ctx context.Context, req *pb.LintRequest) (*pb.LintResponse, error) {
	if len(req.Source) > MaxSource {
		return nil, api.Invalid("source", "the document is %d bytes, over the limit of %d", len(req.Source), MaxSource)
	}
	resp := &pb.LintResponse{}
	if _, err := warn.Lint(req.Source, s.c.Kinds); err != nil {
		var ps policy.Problems
		if !errors.As(err, &ps) {
			return nil, api.Status(s.c.Logger, err)
		}
		for _, p := range ps {
			resp.Problems = append(resp.Problems, &pb.LintProblem{Line: int32(p.Line), Column: int32(p.Column), Field: p.Field, Message: p.Message})
		}
	}
	return resp, nil
}

// lint checks a source for Test and Apply: a document that does not lint is refused with
// INVALID_ARGUMENT naming each problem's position.
func (s *Service) lint(src []byte) (*warn.Rule, error) {
	if len(src) > MaxSource {
		return nil, api.Invalid("source", "the document is %d bytes, over the limit of %d", len(src), MaxSource)
	}
	rule, err := warn.Lint(src, s.c.Kinds)
	if err != nil {
		var ps policy.Problems
		if !errors.As(err, &ps) {
			return nil, api.Status(s.c.Logger, err)
		}
		msgs := make([]string, len(ps))
		for i, p := range ps {
			msgs[i] = p.String()
		}
		return nil, api.Invalid("source", "the rule does not lint: %s", strings.Join(msgs, "; "))
	}
	return rule, nil
}

// author is the editor or officer taking a rule step, in person: a rule step is attributed to a
// SPIFFE ID, so the local socket cannot take it.
func author(ctx context.Context) (string, error) {
	c, ok := api.CallerFrom(ctx)
	if !ok || c.ID.IsZero() {
		return "", status.Error(codes.PermissionDenied, "a rule is applied or deleted by an editor or officer with their own SVID, over mTLS; the local socket cannot do it")
	}
	if !c.Has(api.Editor) && !c.Has(api.Officer) {
		return "", status.Errorf(codes.PermissionDenied, "%s is not an editor or officer of this org", c.ID)
	}
	return c.ID.String(), nil
}

// Apply lints and stores a rule through Raft.
func (s *Service) Apply(ctx context.Context, req *pb.ApplyRuleRequest) (*pb.RuleInfo, error) {
	by, err := author(ctx)
	if err != nil {
		return nil, err
	}
	if err := api.CheckReason(req.Reason, ""); err != nil {
		return nil, err
	}
	rule, err := s.lint(req.Source)
	if err != nil {
		return nil, err
	}
	if cur := s.stored(ctx, rule.Doc.Name, req.Source); cur != nil {
		grpc.SetTrailer(ctx, metadata.Pairs(UnchangedTrailer, strconv.FormatInt(cur.Version, 10)))
		return info(cur), nil
	}
	step := &pb.RuleStep{Name: rule.Doc.Name, Source: req.Source, By: by, At: timestamppb.Now(), Reason: req.Reason, Severity: rule.Doc.Severity}
	return s.step(ctx, step)
}

// stored returns the stored rule when its source is src byte for byte, else nil. Applying it
// again would only bump the version and audit a change that is none. A leader's database can
// lag what its predecessor committed, so an equal source is believed only once VerifyLeader has
// caught it up; when that fails, the caller takes the step, as it would have anyway.
func (s *Service) stored(ctx context.Context, name string, src []byte) *db.RuleRow {
	same := func() *db.RuleRow {
		cur, err := s.c.DB.Rule(ctx, name)
		if err != nil || !bytes.Equal(cur.Source, src) {
			return nil
		}
		return cur
	}
	if same() == nil || s.c.Store.VerifyLeader() != nil {
		return nil
	}
	return same()
}

// Delete removes a rule through Raft.
func (s *Service) Delete(ctx context.Context, req *pb.DeleteRuleRequest) (*pb.RuleInfo, error) {
	by, err := author(ctx)
	if err != nil {
		return nil, err
	}
	if req.Name == "" {
		return nil, api.Invalid("name", "give the name of the rule to delete: see knooppunt rule list")
	}
	if err := warn.CheckName(req.Name); err != nil {
		return nil, api.Invalid("name", "%v", err)
	}
	// Required: the resolution notes of its open alerts say why the rule went, for partners too
	// (review Z, Z7).
	if err := api.CheckReason(req.Reason, "say why the rule goes: its open alerts are resolved with a note that says it"); err != nil {
		return nil, err
	}
	return s.step(ctx, &pb.RuleStep{Name: req.Name, Delete: true, By: by, At: timestamppb.Now(), Reason: req.Reason})
}

func (s *Service) step(ctx context.Context, step *pb.RuleStep) (*pb.RuleInfo, error) {
	v, err := s.c.Store.Apply(ctx, &pb.Command{Cmd: &pb.Command_RuleStep{RuleStep: step}})
	if err != nil {
		return nil, api.Status(s.c.Logger, err)
	}
	out := v.(store.RuleOutcome)
	if out.Refusal != nil {
		return nil, api.FieldStatus(codes.NotFound, "name", fmt.Sprintf("no rule is called %q: see knooppunt rule list", step.Name))
	}
	return info(out.Rule), nil
}

// List returns the applied rules by name.
func (s *Service) List(ctx context.Context, _ *pb.ListRulesRequest) (*pb.ListRulesResponse, error) {
	rows, err := s.c.DB.Rules(ctx)
	if err != nil {
		return nil, api.Status(s.c.Logger, err)
	}
	resp := &pb.ListRulesResponse{}
	for i := range rows {
		resp.Rules = append(resp.Rules, info(&rows[i]))
	}
	return resp, nil
}

// Get returns one applied rule.
func (s *Service) Get(ctx context.Context, req *pb.GetRuleRequest) (*pb.RuleInfo, error) {
	if err := warn.CheckName(req.Name); err != nil {
		return nil, api.Invalid("name", "%v", err)
	}
	r, err := s.c.DB.Rule(ctx, req.Name)
	if errors.Is(err, db.ErrNotFound) {
		return nil, api.FieldStatus(codes.NotFound, "name", fmt.Sprintf("no rule is called %q: see knooppunt rule list", req.Name))
	}
	if err != nil {
		return nil, api.Status(s.c.Logger, err)
	}
	return info(r), nil
}

func info(r *db.RuleRow) *pb.RuleInfo {
	return &pb.RuleInfo{Name: r.Name, Version: r.Version, Severity: r.Severity, Source: r.Source, AppliedBy: r.AppliedBy, AppliedAt: timestamppb.New(r.AppliedAt)}
}

// Test runs a rule document over the history. A document that does not lint is refused with
// INVALID_ARGUMENT naming each problem's position.
func (s *Service) Test(ctx context.Context, req *pb.RuleTestRequest) (*pb.RuleTestResponse, error) {
	rule, err := s.lint(req.Source)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	since := now.Add(-s.c.Retention())
	from, to := since, now
	// Times and a step a node can hold, in its words (review AF, AF7 and AF8): the year 1 and
	// the year 9999 were taken, and cut to the retention without a word.
	for _, f := range []struct {
		field string
		ts    *timestamppb.Timestamp
		t     *time.Time
	}{{"from", req.From, &from}, {"to", req.To, &to}} {
		if err := record.CheckTime(f.field, f.ts); err != nil {
			return nil, api.Status(s.c.Logger, err)
		}
		if f.ts != nil {
			*f.t = f.ts.AsTime()
		}
	}
	if err := record.CheckDuration("step", req.Step); err != nil {
		return nil, api.Status(s.c.Logger, err)
	}
	if req.To != nil && !to.After(since) {
		// A from before the retention is taken from its start; a to before it leaves nothing.
		return nil, api.Invalid("to", "%s is before the start of the history's retention, %s (history.retention): the history holds nothing then; give a later to, or none for now", to.Format(time.RFC3339), since.Format(time.RFC3339))
	}
	if from.Before(since) {
		from = since
	}
	if to.After(now) {
		to = now // the history holds nothing later
	}
	if !to.After(from) {
		return nil, api.Invalid("to", "%s is not after from (%s): give a later to or an earlier from", to.Format(time.RFC3339), from.Format(time.RFC3339))
	}
	step := time.Minute
	if req.Step != nil {
		step = req.Step.AsDuration()
	}
	if step < time.Second {
		return nil, api.Invalid("step", "%s is too short: use 1s or more, such as 1m", step)
	}
	// A step longer than the run evaluates only its ends: the history's retention bounds both.
	if retention := s.c.Retention(); step > retention {
		return nil, api.Invalid("step", "%s is longer than the history's retention, %s (history.retention), which a run can span at most: use a shorter step, such as 1m", step, retention)
	}
	if err := record.CheckMode("mode", req.Mode); err != nil {
		return nil, api.Status(s.c.Logger, err)
	}
	if st := req.Mode.GetStatus(); st != pb.Status_ACTUAL && st != pb.Status_EXERCISE {
		return nil, api.Invalid("mode.status", "%s: rules run over the actual records and over an exercise's", st)
	}
	// Once the request is known good: a bad one is refused as such, even while runs are full.
	select {
	case s.dryRuns <- struct{}{}:
		defer func() { <-s.dryRuns }()
	default:
		return nil, status.Errorf(codes.ResourceExhausted, "%d dry runs are under way on this node: try again when one has ended", MaxDryRuns)
	}
	rows, err := s.c.DB.History(ctx, db.HistoryFilter{Kinds: rule.Kinds(), Crisis: rule.Doc.Crisis, Mode: db.ModeFrom(req.Mode)})
	if err != nil {
		return nil, api.Status(s.c.Logger, err)
	}
	h := warn.NewHistory(rows, since)
	rctx, cancel := context.WithTimeoutCause(ctx, DryRunTime, errDryRunTime)
	defer cancel()
	eps, errs, err := rule.DryRun(rctx, h, from, to, step)
	switch {
	case errors.Is(err, errDryRunTime):
		return nil, status.Errorf(codes.DeadlineExceeded, "%s: use a longer step or a shorter span", strings.TrimPrefix(err.Error(), "warn: "))
	case err != nil && ctx.Err() != nil:
		return nil, status.FromContextError(ctx.Err()).Err()
	case err != nil:
		// The package's prefix is no part of what the caller reads (review AF, AF7).
		return nil, api.Invalid("step", "%s", strings.TrimPrefix(err.Error(), "warn: "))
	}
	resp := &pb.RuleTestResponse{From: timestamppb.New(from), To: timestamppb.New(to), Regions: rule.Doc.Regions}
	if len(resp.Regions) == 0 {
		resp.Regions = h.Regions(rule.Kinds(), rule.Doc.Crisis)
	}
	for _, e := range eps {
		pe := &pb.RuleEpisode{Region: e.Region, Start: timestamppb.New(e.Start), Values: readings(e.Values), ClearValues: readings(e.ClearValues)}
		if !e.End.IsZero() {
			pe.End = timestamppb.New(e.End)
		}
		resp.Episodes = append(resp.Episodes, pe)
	}
	for _, e := range errs {
		resp.Errors = append(resp.Errors, fmt.Sprint(e))
	}
	return resp, nil
}

func readings(rs []warn.Reading) []*pb.RuleReading {
	var out []*pb.RuleReading
	for _, r := range rs {
		out = append(out, &pb.RuleReading{Expr: r.Expr, At: timestamppb.New(r.At), Value: r.Value})
	}
	return out
}

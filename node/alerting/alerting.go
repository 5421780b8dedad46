// Package alerting runs the stored early-warning rules on the Raft leader and writes what they
// decide as alert records, through Raft: one record per episode, created when the rule fires in a
// region and marked resolved when it clears. It never decides on a follower, and it never keeps
// anything that a new leader could not rebuild from the database: the open alerts say where a
// rule fires, and the history says how long a condition has held.
//
// The rules run on the actual crisis, and apart in each open exercise, on the exercise's records
// alone: an exercise's alerts are records of the exercise, which never reach the actual picture,
// its webhooks or the rule metrics, so that the warning chain can be practised.
package alerting

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/node/cap"
	"github.com/knooppunt/knooppunt/node/db"
	"github.com/knooppunt/knooppunt/node/metrics"
	"github.com/knooppunt/knooppunt/node/record"
	"github.com/knooppunt/knooppunt/node/store"
	"github.com/knooppunt/knooppunt/node/warn"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// Kind is the kind of alert records.
const Kind = record.AlertKind

// Config wires the evaluator.
type Config struct {
	Store *store.Store
	DB    *db.DB
	Kinds *record.Kinds
	// Org is the node's trust domain, the origin of its alerts.
	Org string
	// Retention is how far back the history reaches.
	Retention func() time.Duration
	// Every is the interval between evaluations, on its multiples since the Unix epoch, as the
	// dry run (knooppunt rule test) evaluates. Default one minute.
	Every  time.Duration
	Logger *slog.Logger
}

// Evaluator evaluates the stored rules on the leader.
type Evaluator struct {
	c       Config
	leading bool
	// states are the rules' states by modeKey(rule name@version, mode) and region, while this
	// replica leads.
	states map[string]map[string]warn.State
	// compiled are the stored rules, compiled, by name@version: a version never changes.
	compiled map[string]*warn.Rule
	// failing are the evaluations that fail, by modeKey(rule name, mode) and region ("" for a
	// rule that does not lint), while this replica leads: a failure is logged when it begins and
	// when it ends, not at every evaluation.
	failing map[string]map[string]failure
	// metered are the rules with series in the rule metrics, so that a rule that goes leaves
	// none behind.
	metered map[string]bool
}

// Reopen is how soon after its alert resolved a rule that fires again in a region opens that
// alert again, as a new version of it, rather than a new alert: a value that swings across a
// rule's thresholds made a new alert, shared with partners and sent to webhooks, every two
// evaluations, each kept for good (review D, F8).
const Reopen = time.Hour

// modeKey is the key of a rule's state or failures in mode m: the rule's own for the actual
// crisis, with the exercise's name after it for an exercise.
func modeKey(rule string, m db.Mode) string {
	if m.Exercise == "" {
		return rule
	}
	return rule + "\x00" + m.Exercise
}

// splitModeKey is the rule and the exercise ("" for the actual crisis) of a modeKey.
func splitModeKey(key string) (rule, exercise string) {
	rule, exercise, _ = strings.Cut(key, "\x00")
	return rule, exercise
}

// failure is an evaluation that fails: since when, and why.
type failure struct {
	since time.Time
	err   string
}

// New returns an evaluator; Run runs it.
func New(c Config) *Evaluator {
	if c.Every <= 0 {
		c.Every = time.Minute
	}
	return &Evaluator{c: c, states: map[string]map[string]warn.State{}, compiled: map[string]*warn.Rule{},
		failing: map[string]map[string]failure{}, metered: map[string]bool{}}
}

// Run evaluates at every multiple of Every until ctx ends.
func (e *Evaluator) Run(ctx context.Context) {
	for {
		now := time.Now()
		next := now.Truncate(e.c.Every).Add(e.c.Every)
		t := time.NewTimer(next.Sub(now))
		select {
		case <-ctx.Done():
			t.Stop()
			e.lose()
			return
		case <-t.C:
		}
		if err := e.Tick(ctx, next.UTC()); err != nil && ctx.Err() == nil {
			e.c.Logger.Warn("early-warning rules", "err", err)
		}
	}
}

// lose forgets what leading built: a later term rebuilds it from the database.
func (e *Evaluator) lose() {
	e.leading = false
	clear(e.states)
	clear(e.failing)
	clear(e.metered)
	metrics.RuleFiring.Reset()
	metrics.RuleEvaluationErrors.Reset()
}

// Tick evaluates every stored rule at the instant, if this replica leads.
func (e *Evaluator) Tick(ctx context.Context, at time.Time) error {
	if !e.c.Store.IsLeader() {
		if e.leading {
			e.lose()
		}
		return nil
	}
	if !e.leading {
		// What the previous leader committed (an alert it wrote as it lost the lead) must be in
		// the database before anything is decided from it.
		if err := e.c.Store.Barrier(10 * time.Second); err != nil {
			return fmt.Errorf("barrier: %w", err)
		}
		e.leading = true
	}
	stored, err := e.c.DB.Rules(ctx)
	if err != nil {
		return err
	}
	var evals []evaluation
	live := map[string]bool{}
	names := map[string]bool{}      // the stored rules' names
	unlinted := map[string]string{} // by name: why a stored rule does not lint
	kinds := map[string][]string{}  // by crisis: the kinds its rules read
	for _, row := range stored {
		key := fmt.Sprintf("%s@%d", row.Name, row.Version)
		live[key] = true
		names[row.Name] = true
		rule, ok := e.compiled[key]
		if !ok {
			var err error
			if rule, err = warn.Lint(row.Source, e.c.Kinds); err != nil {
				// A rule linted when it was applied; a config change that dropped a kind it
				// reads makes it fail now. It is skipped, loudly, not guessed at: its open
				// alerts are resolved below, since nothing evaluates them any more.
				e.failed(row.Name, db.Actual, "", at, err, "early-warning rule does not lint against this node's kinds: skipped until it does; its open alerts are resolved")
				unlinted[row.Name] = err.Error()
				continue
			}
			e.compiled[key] = rule
		}
		e.recovered(row.Name, db.Actual, "", at, "early-warning rule lints again: evaluated")
		evals = append(evals, evaluation{key, row, rule})
		kinds[rule.Doc.Crisis] = append(kinds[rule.Doc.Crisis], rule.Kinds()...)
	}
	for key := range e.compiled {
		if !live[key] {
			delete(e.compiled, key)
		}
	}
	// The actual crisis, and each open exercise apart.
	modes := []db.Mode{db.Actual}
	exercises, err := e.c.DB.Exercises(ctx, false)
	if err != nil {
		return err
	}
	open := map[string]bool{}
	for _, x := range exercises {
		modes = append(modes, db.Mode{Status: pb.Status_EXERCISE, Exercise: x.Name})
		open[x.Name] = true
	}
	for crisis, ks := range kinds {
		slices.Sort(ks)
		kinds[crisis] = slices.Compact(ks)
	}
	for key, states := range e.states {
		rule, exercise := splitModeKey(key)
		if !live[rule] || (exercise != "" && !open[exercise]) {
			// A rule applied again may evaluate other regions: its old regions' series go,
			// and those it still evaluates are set again below.
			if exercise == "" {
				name := rule[:strings.LastIndexByte(rule, '@')]
				for region := range states {
					metrics.RuleFiring.DeleteLabelValues(name, region)
				}
			}
			delete(e.states, key)
		}
	}
	for key := range e.failing {
		if name, exercise := splitModeKey(key); !names[name] || (exercise != "" && !open[exercise]) {
			delete(e.failing, key)
		}
	}
	for name := range e.metered {
		// A rule that is not evaluated fires nowhere; one that is not stored has no errors.
		if _, skipped := unlinted[name]; !names[name] || skipped {
			metrics.RuleFiring.DeletePartialMatch(prometheus.Labels{"rule": name})
		}
		if !names[name] {
			metrics.RuleEvaluationErrors.DeletePartialMatch(prometheus.Labels{"rule": name})
			delete(e.metered, name)
		}
	}
	// An exercise's evaluation that fails does not hold up the others'.
	var errs []error
	for _, m := range modes {
		if err := e.tickMode(ctx, at, m, evals, kinds, unlinted); err != nil {
			if m.Exercise != "" {
				err = fmt.Errorf("exercise %s: %w", m.Exercise, err)
			}
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// evaluation is a stored rule to evaluate: its key (name@version), row and compiled rule.
type evaluation struct {
	key  string
	row  db.RuleRow
	rule *warn.Rule
}

// tickMode evaluates the rules in mode m, on its records alone, and resolves its alerts of the
// rules that nothing evaluates. kinds are the kinds the rules read, by crisis, sorted and each
// once; unlinted says why a stored rule does not lint, by name.
func (e *Evaluator) tickMode(ctx context.Context, at time.Time, m db.Mode, evals []evaluation, kinds map[string][]string, unlinted map[string]string) error {
	// One history per crisis serves all its rules: it is read from the database once, and each
	// series is built once, however many rules read it.
	histories := map[string]*warn.History{}
	since := at.Add(-e.c.Retention())
	for crisis, ks := range kinds {
		rows, err := e.c.DB.History(ctx, db.HistoryFilter{Kinds: ks, Crisis: crisis, Mode: m})
		if err != nil {
			return err
		}
		histories[crisis] = warn.NewHistory(rows, since)
	}
	open, err := e.openAlerts(ctx, m)
	if err != nil {
		return err
	}
	// A rule that fails holds up no other: each is evaluated, and the failures are returned
	// together at the end.
	var failed []error
	for _, c := range evals {
		if err := e.evaluate(ctx, c.key, c.row, c.rule, at, histories[c.rule.Doc.Crisis], open[c.row.Name], m); err != nil {
			failed = append(failed, fmt.Errorf("rule %s: %w", c.row.Name, err))
		}
		delete(open, c.row.Name)
	}
	// What is left open is of a rule that nothing evaluates: deleted (also while no replica ran),
	// or no longer linting. Nothing would ever clear it, and partners would see it firing for
	// good; it is resolved, saying why. Last, so that it never holds up the rules that run.
	for _, name := range slices.Sorted(maps.Keys(open)) {
		why, skipped := unlinted[name]
		if skipped {
			why = fmt.Sprintf("rule %s no longer lints against this node's kinds (%s): it is not evaluated", name, why)
		}
		for _, region := range slices.Sorted(maps.Keys(open[name])) {
			a := open[name][region]
			if !skipped {
				why = e.deleted(ctx, name, a)
			}
			if err := e.resolve(ctx, a, at, nil, a.Classification, why); err != nil {
				failed = append(failed, fmt.Errorf("alert %s of rule %s, which is not evaluated: %w", a.Id, name, err))
			}
		}
	}
	return errors.Join(failed...)
}

// ours reports whether an open alert record is one the evaluator wrote for the rule.
func ours(a *pb.Record, rule string) bool {
	var b alertBody
	return rule != "" && strings.HasPrefix(a.Id, "alert-"+rule+"-") && json.Unmarshal(a.Body, &b) == nil && b.Rule == rule && b.State == "firing"
}

// episodeAlert reports whether a record is the evaluator's alert of the rule in the region, in
// mode m, firing or resolved since.
func episodeAlert(a *pb.Record, rule, region string, m db.Mode) bool {
	var b alertBody
	return a.Kind == Kind && m.Holds(a) && a.Region == region && a.Labels["rule"] == rule &&
		json.Unmarshal(a.Body, &b) == nil && b.Rule == rule && b.Region == region
}

// deleted says who deleted a rule, when and why, from the audit log, for the note of its
// alert that is resolved because of it.
func (e *Evaluator) deleted(ctx context.Context, name string, a *pb.Record) string {
	var b alertBody
	json.Unmarshal(a.Body, &b)
	entries, err := e.c.DB.AuditList(ctx, db.AuditFilter{Action: db.AuditRuleDelete, Subject: name, Since: b.FiredAt, Limit: 1000})
	if err != nil || len(entries) == 0 {
		// Not in the audit log since the alert fired (a restored copy, an older database).
		return fmt.Sprintf("rule %s is no longer stored on this node: it is not evaluated", name)
	}
	last := entries[len(entries)-1]
	var detail struct {
		Reason string `json:"reason"`
	}
	json.Unmarshal([]byte(last.Detail), &detail)
	why := fmt.Sprintf("rule %s was deleted by %s at %s", name, last.Actor, last.At.UTC().Format(time.RFC3339))
	if detail.Reason != "" {
		why += fmt.Sprintf(" (%q)", detail.Reason)
	}
	return why + ": it is not evaluated"
}

// failed notes that a rule (region "": as a whole) cannot be evaluated in mode m, counts it (in
// the actual crisis), and logs it at WARN when it begins to fail, not at every evaluation.
func (e *Evaluator) failed(rule string, m db.Mode, region string, at time.Time, err error, msg string) {
	if m == db.Actual {
		e.metered[rule] = true
		metrics.RuleEvaluationErrors.WithLabelValues(rule, region).Inc()
	}
	key := modeKey(rule, m)
	if e.failing[key] == nil {
		e.failing[key] = map[string]failure{}
	}
	if _, ok := e.failing[key][region]; ok {
		return
	}
	e.failing[key][region] = failure{since: at, err: err.Error()}
	e.c.Logger.Warn(msg, append(logArgs(rule, m, region), "err", err)...)
}

// recovered notes that a rule (region "": as a whole) that failed in mode m can be evaluated
// again, and logs it at INFO.
func (e *Evaluator) recovered(rule string, m db.Mode, region string, at time.Time, msg string) {
	key := modeKey(rule, m)
	f, ok := e.failing[key][region]
	if !ok {
		return
	}
	delete(e.failing[key], region)
	e.c.Logger.Info(msg, append(logArgs(rule, m, region), "failed_for", at.Sub(f.since), "last_err", f.err)...)
}

// logArgs name a rule's evaluation in a log line: the rule, the exercise, the region.
func logArgs(rule string, m db.Mode, region string) []any {
	args := []any{"rule", rule}
	if m.Exercise != "" {
		args = append(args, "exercise", m.Exercise)
	}
	if region != "" {
		args = append(args, "region", region)
	}
	return args
}

// evaluate steps a rule in each of its regions in mode m, and fires, resolves or marks its
// alerts of that mode as the step decides.
func (e *Evaluator) evaluate(ctx context.Context, key string, row db.RuleRow, rule *warn.Rule, at time.Time, h *warn.History, open map[string]*pb.Record, m db.Mode) error {
	regions := rule.Doc.Regions
	if len(regions) == 0 {
		regions = h.Regions(rule.Kinds(), rule.Doc.Crisis)
	}
	// A region where an alert is open is evaluated even if its records are gone, so that the
	// alert can resolve.
	regions = slices.Clone(regions)
	for r := range open {
		if !slices.Contains(regions, r) {
			regions = append(regions, r)
		}
	}
	slices.Sort(regions)
	key = modeKey(key, m)
	states, ok := e.states[key]
	if !ok {
		states = map[string]warn.State{}
		e.states[key] = states
	}
	// A region whose alert cannot be written or resolved holds up no other: the errors are
	// returned together at the end, and the region, its state unchanged, is decided again at the
	// next evaluation.
	var failed []error
	for _, region := range regions {
		s, ok := states[region]
		if !ok {
			s = e.rebuild(rule, h, region, open[region], at)
		}
		// A failure, to evaluate or to write, is counted once per evaluation, and logged when it
		// begins and ends: the gauge alone would read as healthy.
		next, evalErr, err := e.step(ctx, row, rule, h, region, at, s, open[region], m)
		switch {
		case err != nil:
			e.failed(row.Name, m, region, at, err, "early-warning rule cannot write what it decided: it is decided again at the next evaluation")
			failed = append(failed, fmt.Errorf("region %s: %w", region, err))
			next = s
		case evalErr != nil:
			e.failed(row.Name, m, region, at, evalErr, "early-warning rule cannot be evaluated: it neither fires nor resolves until it can")
		default:
			e.recovered(row.Name, m, region, at, "early-warning rule can be evaluated again")
		}
		states[region] = next
		if m != db.Actual {
			continue // an exercise never shows in the metrics that page the on-call staff
		}
		v := 0.0
		if next.Firing {
			v = 1
		}
		e.metered[row.Name] = true
		metrics.RuleFiring.WithLabelValues(row.Name, region).Set(v)
	}
	// A region no longer evaluated (its records fell out of the history, and no alert is open
	// there) has no series, and starts again from the history if it comes back.
	for region := range states {
		if !slices.Contains(regions, region) {
			delete(states, region)
			if m == db.Actual {
				metrics.RuleFiring.DeleteLabelValues(row.Name, region)
			}
		}
	}
	return errors.Join(failed...)
}

// step steps a rule in one region from state s, and fires, resolves or marks its alert of mode
// m there (a, if it is open) as the step decides. It returns the state after it, why the rule
// cannot be evaluated there (evalErr: it neither fires nor resolves), and what it could not write.
func (e *Evaluator) step(ctx context.Context, row db.RuleRow, rule *warn.Rule, h *warn.History, region string, at time.Time, s warn.State, a *pb.Record, m db.Mode) (next warn.State, evalErr, err error) {
	next, tr, read, evalErr := rule.Step(h, region, at, s)
	if a != nil && tr != warn.Resolved {
		why := ""
		if evalErr != nil {
			why = evalErr.Error()
		}
		if err := e.markEvaluable(ctx, a, at, why); err != nil {
			return s, evalErr, err
		}
	}
	switch {
	case tr == warn.Fired && a == nil:
		var last *pb.Record
		if last, err = e.lastResolved(ctx, row.Name, region, at, m); last != nil && err == nil {
			err = e.reopen(ctx, row, rule, last, at, read, m)
			break
		}
		if err == nil {
			err = e.fire(ctx, row, rule, region, at, read, m)
		}
	case tr == warn.Resolved && a != nil:
		var cls pb.Classification
		if cls, err = e.classification(ctx, rule, region, m, a.Classification); err == nil {
			err = e.resolve(ctx, a, at, read, cls, "")
		}
	}
	return next, evalErr, err
}

// lastResolved is the rule's alert in the region, in mode m, that its rule cleared within Reopen
// before at: the latest, if there are more. It is read from the database, not from what this
// replica did, so that an alert resolved under an earlier leader is opened again too. An alert
// resolved because nothing evaluates its rule any more (withdrawn) is not opened again.
func (e *Evaluator) lastResolved(ctx context.Context, rule, region string, at time.Time, m db.Mode) (*pb.Record, error) {
	var (
		last *pb.Record
		when time.Time
	)
	f := db.Filter{Kind: Kind, Region: region, Labels: map[string]string{"status": "resolved", "rule": rule}, PageSize: 1000, Mode: m}
	for {
		recs, next, err := e.c.DB.List(ctx, f)
		if err != nil {
			return nil, fmt.Errorf("resolved alerts: %w", err)
		}
		for _, r := range recs {
			var b alertBody
			if !strings.HasPrefix(r.Id, "alert-"+rule+"-") || !episodeAlert(r, rule, region, m) || json.Unmarshal(r.Body, &b) != nil ||
				b.State != "resolved" || b.ResolvedAt == nil || b.Withdrawn != "" {
				continue
			}
			if since := at.Sub(*b.ResolvedAt); since >= 0 && since < Reopen && b.ResolvedAt.After(when) {
				last, when = r, *b.ResolvedAt
			}
		}
		if next == "" {
			return last, nil
		}
		f.PageToken = next
	}
}

// reopen opens the alert a again, which the rule resolved in its region within Reopen, as firing
// from at on the values read: a new version of it, which says how often it was opened again.
func (e *Evaluator) reopen(ctx context.Context, row db.RuleRow, rule *warn.Rule, a *pb.Record, at time.Time, read []warn.Reading, m db.Mode) error {
	var b alertBody
	if err := json.Unmarshal(a.Body, &b); err != nil {
		return fmt.Errorf("alert %s: %w", a.Id, err)
	}
	b.ClearedAt = b.ResolvedAt
	b.State, b.ResolvedAt, b.ClearValues, b.Withdrawn = "firing", nil, nil, ""
	b.RuleVersion, b.Condition, b.Values = row.Version, rule.Doc.When, read
	if b.Values == nil {
		b.Values = []warn.Reading{}
	}
	b.Reopened++
	b.ReopenedAt = &at
	b.capFields(a.Origin, a.Id, rule.Doc.Severity, rule.Doc.Description, a.Exercise)
	body, err := json.Marshal(b)
	if err != nil {
		return err
	}
	cls, err := e.classification(ctx, rule, a.Region, m, a.Classification)
	if err != nil {
		return err
	}
	return e.put(ctx, nextVersion(a, row.Name, "firing", body, cls, at), "")
}

// rebuild is a region's state when this replica starts to lead: firing where an alert is open;
// else pending since the first of the evaluations of the last `for:` at which the condition held
// throughout, which the history alone decides.
func (e *Evaluator) rebuild(rule *warn.Rule, h *warn.History, region string, open *pb.Record, at time.Time) warn.State {
	if open != nil {
		var b alertBody
		json.Unmarshal(open.Body, &b)
		return warn.State{Firing: true, FiredAt: b.FiredAt}
	}
	if rule.For == 0 {
		return warn.State{}
	}
	// A run within [at-For, at-Every] is shorter than For: the evaluation at `at` decides whether
	// it fires.
	return rule.LastRun(h, region, at.Add(-rule.For), at.Add(-e.c.Every), e.c.Every)
}

// alertBody is an alert record's body: a CAP 1.2 alert (see node/cap), and beside it what fired,
// where, when, and on which values.
type alertBody struct {
	cap.Alert
	Rule        string     `json:"rule"`
	RuleVersion int64      `json:"rule_version"`
	Region      string     `json:"region"`
	State       string     `json:"state"` // firing or resolved
	FiredAt     time.Time  `json:"fired_at"`
	ResolvedAt  *time.Time `json:"resolved_at,omitempty"`
	// Reopened is how often the alert was opened again after it resolved (see Reopen), the
	// last time at ReopenedAt.
	Reopened   int        `json:"reopened,omitempty"`
	ReopenedAt *time.Time `json:"reopened_at,omitempty"`
	// ClearedAt, while an alert opened again fires, is when the AllClear it follows was sent,
	// for its CAP Update to reference that message too.
	ClearedAt   *time.Time     `json:"cleared_at,omitempty"`
	Condition   string         `json:"condition"`
	Values      []warn.Reading `json:"values"`
	ClearValues []warn.Reading `json:"clear_values,omitempty"`
	// History says how to see the values over time.
	History string `json:"history"`
	// Withdrawn says why an alert was resolved though its rule did not clear: nothing evaluates
	// the rule any more (it was deleted, or no longer lints).
	Withdrawn string `json:"withdrawn,omitempty"`
	// Unevaluable says, while the alert fires, why its rule cannot be evaluated in its region
	// any more (its records are gone: a ratio over nothing), and since when: the alert neither
	// resolves nor is confirmed until it can.
	Unevaluable      string     `json:"unevaluable,omitempty"`
	UnevaluableSince *time.Time `json:"unevaluable_since,omitempty"`
}

// restriction is the CAP restriction of the rules' alerts, which are internal records.
const restriction = "Knooppunt partners under the sharing policies the origin's security officers approved"

// capFields writes the CAP fields of an alert from what fired: an Alert when it fires, an Update
// that references it and gives the all-clear when it resolves, and a Cancel of it when it is
// withdrawn (see withdraw). The alert record's id is the CAP identifier of the firing alert. An
// exercise's alert has status Exercise, and its name in the note, as CAP exports write it, and
// OEFENING before its headline and description.
func (b *alertBody) capFields(org, id, severity, description, exercise string) {
	sev := strings.ToUpper(severity[:min(1, len(severity))]) + severity[min(1, len(severity)):]
	if !slices.Contains(cap.Severities, sev) {
		sev = "Unknown"
	}
	fired := cap.FormatTime(b.FiredAt)
	b.Alert = cap.Alert{Identifier: id, Sender: org, Sent: fired, Status: "Actual", MsgType: "Alert", Scope: "Restricted", Restriction: restriction,
		Info: []cap.Info{{
			Category: []string{"Other"}, Event: b.Rule, ResponseType: []string{"Monitor"}, Urgency: "Expected", Severity: sev, Certainty: "Likely",
			SenderName: org, Headline: fmt.Sprintf("Early-warning rule %s fires in %s", b.Rule, b.Region), Description: description,
			Effective: fired, Area: []cap.Area{cap.RegionArea(b.Region)},
		}}}
	if exercise != "" {
		b.Status, b.Note = "Exercise", exercise
	}
	// An alert opened again is an Update of the first, under an identifier of each opening, so
	// that every CAP message has its own. It references the first and the AllClear it follows,
	// and that opening's AllClear references the Update too, so that a receiver can order the
	// chain by its references.
	if b.State == "firing" && b.Reopened > 0 && b.ReopenedAt != nil {
		b.Identifier, b.Sent, b.MsgType = reopenedID(id, b.Reopened), cap.FormatTime(*b.ReopenedAt), "Update"
		b.References = org + "," + id + "," + fired
		if b.ClearedAt != nil {
			b.References += " " + org + "," + resolvedID(id, b.Reopened-1) + "," + cap.FormatTime(*b.ClearedAt)
		}
		b.Info[0].Effective = b.Sent
		b.Info[0].Headline = fmt.Sprintf("Early-warning rule %s fires again in %s", b.Rule, b.Region)
	}
	if b.State == "resolved" && b.ResolvedAt != nil {
		resolved := cap.FormatTime(*b.ResolvedAt)
		b.Identifier, b.Sent, b.MsgType = resolvedID(id, b.Reopened), resolved, "Update"
		b.References = org + "," + id + "," + fired
		if b.Reopened > 0 && b.ReopenedAt != nil {
			b.References += " " + org + "," + reopenedID(id, b.Reopened) + "," + cap.FormatTime(*b.ReopenedAt)
		}
		in := &b.Info[0]
		in.ResponseType, in.Urgency, in.Expires = []string{"AllClear"}, "Past", resolved
		in.Headline = fmt.Sprintf("Early-warning rule %s cleared in %s", b.Rule, b.Region)
		if b.Withdrawn != "" {
			b.withdraw(id, exercise)
		}
	}
	if exercise != "" {
		// A consumer that shows the headline or description alone, not the status, must not take
		// an exercise's alert for a real one. The description of a resolve is read back from the
		// firing alert, which has the mark already.
		in := &b.Info[0]
		in.Headline = exerciseMark + in.Headline
		if in.Description != "" && !strings.HasPrefix(in.Description, exerciseMark) {
			in.Description = exerciseMark + in.Description
		}
	}
}

// withdraw writes the CAP fields of an alert resolved because nothing evaluates its rule any
// more (b.Withdrawn says why), over those of a clear: nobody said that its condition passed, so
// it is no AllClear but a CAP Cancel of the messages of the alert in force, the firing alert and,
// if it was opened again, that opening's Update, as CAP 1.2 has it ("cancel the earlier
// message(s) identified in <references>"). Its note says that the alert was withdrawn, not
// cleared, and why; its info block keeps the rule's event, severity and area for a receiver that
// shows it, with no action to take (responseType None), urgency and certainty Unknown (the node
// no longer assesses them), and a headline that says it is no all-clear. A withdrawn alert is
// never opened again, so the Cancel is the last message of the alert and has an identifier of its
// own, ID.withdrawn.
func (b *alertBody) withdraw(id, exercise string) {
	b.Identifier, b.MsgType = id+".withdrawn", "Cancel"
	b.Note = "withdrawn, not cleared: " + b.Withdrawn
	if exercise != "" {
		b.Note = exercise + ": " + b.Note // the exercise first, as the importer reads it
	}
	in := &b.Info[0]
	in.ResponseType, in.Urgency, in.Certainty = []string{"None"}, "Unknown", "Unknown"
	in.Headline = fmt.Sprintf("Early-warning rule %s withdrawn in %s, not cleared: no longer evaluated", b.Rule, b.Region)
}

// resolvedID is the CAP identifier of the AllClear of the alert id after it was opened again n
// times.
func resolvedID(id string, n int) string {
	if n == 0 {
		return id + ".resolved"
	}
	return fmt.Sprintf("%s.resolved-%d", id, n)
}

// reopenedID is the CAP identifier of the Update that opened the alert id again the nth time.
func reopenedID(id string, n int) string {
	return fmt.Sprintf("%s.reopened-%d", id, n)
}

// exerciseMark starts the headline and the description of an exercise's alert, as Dutch
// exercise messages do.
const exerciseMark = "OEFENING "

// AlertID is the id of the alert of an episode: the rule, the region and the instant it fired,
// and an exercise's name after them, or, where that would make the id longer than a record id
// may be, x and a digest of the name. A leader that decides the same episode again writes the
// same record, never a second one.
func AlertID(rule, region string, firedAt time.Time, exercise string) string {
	id := fmt.Sprintf("alert-%s-%s-%d", rule, region, firedAt.Unix())
	if exercise == "" {
		return id
	}
	if len(id)+1+len(exercise) > record.MaxIDLength {
		sum := sha256.Sum256([]byte(exercise))
		return id + "-x" + hex.EncodeToString(sum[:8])
	}
	return id + "-" + exercise
}

// fire writes the alert of an episode that began at firedAt in mode m, unless it was written
// before.
func (e *Evaluator) fire(ctx context.Context, row db.RuleRow, rule *warn.Rule, region string, firedAt time.Time, read []warn.Reading, m db.Mode) error {
	b := alertBody{Rule: row.Name, RuleVersion: row.Version, Region: region,
		State: "firing", FiredAt: firedAt, Condition: rule.Doc.When, Values: read,
		History: fmt.Sprintf("knooppunt rule test %s.yaml --from %s", row.Name, firedAt.Add(-24*time.Hour).Format(time.RFC3339))}
	if m.Exercise != "" {
		b.History += " --exercise " + m.Exercise // the exercise's history, where it fired
	}
	if b.Values == nil {
		b.Values = []warn.Reading{}
	}
	id := AlertID(row.Name, region, firedAt, m.Exercise)
	b.capFields(e.c.Org, id, rule.Doc.Severity, rule.Doc.Description, m.Exercise)
	body, err := json.Marshal(b)
	if err != nil {
		return err
	}
	crisis := rule.Doc.Crisis
	if crisis == "" {
		crisis = db.AllCrises // in every crisis's picture
	}
	switch prev, err := e.c.DB.Get(ctx, id); {
	case err == nil && episodeAlert(prev, row.Name, region, m):
		return nil // written before: the same episode
	case err == nil:
		// Any own record, of any kind or mode (an exercise's), can hold the predictable id:
		// skipping the write would leave the rule firing with no alert anyone receives.
		return fmt.Errorf("the alert's id %s is taken by a record that is not this rule's alert (kind %s, %s): the alert is not written", id, prev.Kind, db.ModeOf(prev))
	case !errors.Is(err, db.ErrNotFound):
		return fmt.Errorf("alert %s: %w", id, err)
	}
	cls, err := e.classification(ctx, rule, region, m, pb.Classification_INTERNAL)
	if err != nil {
		return err
	}
	rec := &pb.Record{Id: id, Origin: e.c.Org, Kind: Kind, Crisis: crisis, Region: region, Classification: cls,
		Labels: map[string]string{"rule": row.Name, "status": "firing"}, Body: body, UpdatedAt: timestamppb.New(firedAt),
		Status: m.Status, Exercise: m.Exercise}
	return e.put(ctx, rec, "")
}

// classification is what an alert of rule in region may be shared as: internal at least, or the
// highest classification of the records the rule reads there, own or a partner's copy. Its values
// are figures of those records (a sum of one record is that record's figure), so a policy that
// shares alerts up to internal must not pass on a confidential record's figure through one. An
// alert that fired keeps what it had (at least).
func (e *Evaluator) classification(ctx context.Context, rule *warn.Rule, region string, m db.Mode, least pb.Classification) (pb.Classification, error) {
	c, err := e.c.DB.HighestClassification(ctx, db.HistoryFilter{Kinds: rule.Kinds(), Crisis: rule.Doc.Crisis, Region: region, Mode: m})
	if err != nil {
		return 0, fmt.Errorf("classification of the alert: %w", err)
	}
	return max(c, least), nil
}

func (e *Evaluator) put(ctx context.Context, rec *pb.Record, withdrawn string) error {
	res, err := e.c.Store.Write(ctx, []*pb.Record{rec})
	if err != nil {
		return err
	}
	if res[0].Err != nil {
		return res[0].Err
	}
	args := []any{"id", rec.Id, "rule", rec.Labels["rule"], "region", rec.Region, "status", rec.Labels["status"]}
	if rec.Exercise != "" {
		args = append(args, "exercise", rec.Exercise) // never one to page anyone for
	}
	if withdrawn != "" {
		args = append(args, "withdrawn", withdrawn)
	}
	e.c.Logger.Info("early-warning alert", args...)
	return nil
}

// resolve marks an open alert resolved at the instant, classified cls: its rule cleared, with the
// values it read, or, with withdrawn, nothing evaluates the rule any more, for that reason.
func (e *Evaluator) resolve(ctx context.Context, a *pb.Record, at time.Time, read []warn.Reading, cls pb.Classification, withdrawn string) error {
	var b alertBody
	if err := json.Unmarshal(a.Body, &b); err != nil {
		return fmt.Errorf("alert %s: %w", a.Id, err)
	}
	var sev, desc string
	if len(b.Info) > 0 {
		sev, desc = strings.ToLower(b.Info[0].Severity), b.Info[0].Description
	}
	b.State, b.ResolvedAt, b.ClearValues, b.Withdrawn, b.ClearedAt = "resolved", &at, read, withdrawn, nil
	b.Unevaluable, b.UnevaluableSince = "", nil
	b.capFields(a.Origin, a.Id, sev, desc, a.Exercise)
	body, err := json.Marshal(b)
	if err != nil {
		return err
	}
	return e.put(ctx, nextVersion(a, b.Rule, "resolved", body, cls, at), withdrawn)
}

// nextVersion is the version after a, the alert of rule, in status (firing or resolved), with
// body, classified cls, at the instant: written only over a as it is (its version).
func nextVersion(a *pb.Record, rule, status string, body []byte, cls pb.Classification, at time.Time) *pb.Record {
	return &pb.Record{Id: a.Id, Origin: a.Origin, Kind: a.Kind, Crisis: a.Crisis, Region: a.Region, Classification: cls,
		Labels: map[string]string{"rule": rule, "status": status}, Body: body, Version: a.Version, UpdatedAt: timestamppb.New(at),
		Status: a.Status, Exercise: a.Exercise}
}

// markEvaluable writes on an open alert that its rule cannot be evaluated (why), or that it can
// again (why ""), when that changed: the alert, which neither resolves nor is confirmed meanwhile,
// then says so wherever it is shown, not only in the log.
func (e *Evaluator) markEvaluable(ctx context.Context, a *pb.Record, at time.Time, why string) error {
	var b alertBody
	if err := json.Unmarshal(a.Body, &b); err != nil {
		return fmt.Errorf("alert %s: %w", a.Id, err)
	}
	if (why == "") == (b.Unevaluable == "") {
		return nil // as it says already
	}
	b.Unevaluable, b.UnevaluableSince = why, &at
	if why == "" {
		b.UnevaluableSince = nil
	}
	body, err := json.Marshal(b)
	if err != nil {
		return err
	}
	next := proto.Clone(a).(*pb.Record)
	next.Body = body
	// A new version, now: a client that syncs by updated_since sees it.
	next.UpdatedAt = timestamppb.New(at)
	if err := e.put(ctx, next, ""); err != nil {
		return err
	}
	a.Version++ // the record written, for a resolve in the same evaluation
	a.Body = body
	return nil
}

// openAlerts are the firing alerts of mode m that the evaluator wrote, by rule and region. An
// alert record someone put by hand with a rule's labels is not one: it neither stands for the
// rule's alert, which would keep the rule from firing there, nor is it the evaluator's to
// resolve or overwrite.
func (e *Evaluator) openAlerts(ctx context.Context, m db.Mode) (map[string]map[string]*pb.Record, error) {
	out := map[string]map[string]*pb.Record{}
	f := db.Filter{Kind: Kind, Labels: map[string]string{"status": "firing"}, PageSize: 1000, Mode: m}
	for {
		recs, next, err := e.c.DB.List(ctx, f)
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			rule := r.Labels["rule"]
			if !ours(r, rule) {
				continue
			}
			if out[rule] == nil {
				out[rule] = map[string]*pb.Record{}
			}
			out[rule][r.Region] = r
		}
		if next == "" {
			return out, nil
		}
		f.PageToken = next
	}
}

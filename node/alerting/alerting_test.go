package alerting_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/node"
	"github.com/knooppunt/knooppunt/node/alerting"
	"github.com/knooppunt/knooppunt/node/cap"
	"github.com/knooppunt/knooppunt/node/cap/captest"
	"github.com/knooppunt/knooppunt/node/db"
	"github.com/knooppunt/knooppunt/node/metrics"
	"github.com/knooppunt/knooppunt/node/proctest"
	"github.com/knooppunt/knooppunt/node/record"
	"github.com/knooppunt/knooppunt/node/webhook"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

const (
	org     = "local.crisis.test"
	officer = "spiffe://" + org + "/user/officer"
)

// bedsLow fires under 10 free beds in VR19 and clears above 20.
const bedsLow = `name: beds-low
severity: severe
crisis: oekraine
regions: [VR19]
when: sum("shelter.capacity", "beds_free") < 10
clear: sum("shelter.capacity", "beds_free") > 20
`

// logLines keeps an evaluator's log, as JSON lines.
type logLines struct{ proctest.Buffer }

// count counts the lines of the level whose message starts with msg.
func (l *logLines) count(level, msg string) int {
	n := 0
	for _, line := range strings.Split(l.String(), "\n") {
		var e struct{ Level, Msg string }
		if json.Unmarshal([]byte(line), &e) == nil && e.Level == level && strings.HasPrefix(e.Msg, msg) {
			n++
		}
	}
	return n
}

// rig is a real node whose own evaluator stays out of the way, and an evaluator of the test's
// on it, which the test ticks.
type rig struct {
	t    *testing.T
	n    *node.Node
	logs *logLines
}

func newRig(t *testing.T) *rig {
	metrics.RuleFiring.Reset()
	metrics.RuleEvaluationErrors.Reset()
	return &rig{t: t, n: startNode(t), logs: &logLines{}}
}

// evaluator is a new evaluator, as a new leader or a restarted node has: nothing in memory. With
// kinds it lints against those names of the demo kinds only.
func (r *rig) evaluator(kinds ...string) *alerting.Evaluator {
	all := record.DemoKinds()
	var ks []record.Kind
	for _, k := range all {
		if len(kinds) == 0 || slices.Contains(kinds, k.Name) {
			ks = append(ks, k)
		}
	}
	reg, err := record.NewKinds(ks)
	if err != nil {
		r.t.Fatal(err)
	}
	return alerting.New(alerting.Config{Store: r.n.Store(), DB: r.n.DB(), Kinds: reg, Org: org, Every: time.Second,
		Retention: func() time.Duration { return 24 * time.Hour },
		Logger:    slog.New(slog.NewJSONHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
}

func (r *rig) tick(e *alerting.Evaluator) {
	r.t.Helper()
	// After every write so far: the history counts what was written before the instant.
	time.Sleep(2 * time.Millisecond)
	if err := e.Tick(context.Background(), time.Now()); err != nil {
		r.t.Fatalf("Tick: %v", err)
	}
}

func (r *rig) apply(name, src string) {
	r.t.Helper()
	r.step(&pb.RuleStep{Name: name, Source: []byte(src), Severity: "severe", By: officer, At: timestamppb.Now(), Reason: "agreed"})
}

func (r *rig) step(s *pb.RuleStep) {
	r.t.Helper()
	if _, err := r.n.Store().Apply(context.Background(), &pb.Command{Cmd: &pb.Command_RuleStep{RuleStep: s}}); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) beds(free, total int) {
	r.t.Helper()
	if _, err := r.n.Store().Write(context.Background(), []*pb.Record{{Id: "middelburg", Kind: "shelter.capacity", Crisis: "oekraine", Region: "VR19",
		Classification: pb.Classification_INTERNAL, Body: fmt.Appendf(nil, `{"municipality":"Middelburg","beds_total":%d,"beds_free":%d}`, total, free)}}); err != nil {
		r.t.Fatal(err)
	}
}

// exerciseBeds writes the free beds of Middelburg in the exercise, of 100.
func (r *rig) exerciseBeds(exercise string, free int) {
	r.t.Helper()
	if _, err := r.n.Store().Write(context.Background(), []*pb.Record{{Id: "middelburg-oef", Kind: "shelter.capacity", Crisis: "oekraine", Region: "VR19",
		Classification: pb.Classification_INTERNAL, Status: pb.Status_EXERCISE, Exercise: exercise,
		Body: fmt.Appendf(nil, `{"municipality":"Middelburg","beds_total":100,"beds_free":%d}`, free)}}); err != nil {
		r.t.Fatal(err)
	}
}

// alerts are the node's alert records.
func (r *rig) alerts() []*pb.Record {
	r.t.Helper()
	recs, _, err := r.n.DB().List(context.Background(), db.Filter{Kind: alerting.Kind})
	if err != nil {
		r.t.Fatal(err)
	}
	return recs
}

// one is the only alert record, in the state.
func (r *rig) one(state string) (*pb.Record, map[string]any) {
	r.t.Helper()
	recs := r.alerts()
	if len(recs) != 1 || recs[0].Labels["status"] != state {
		var got []string
		for _, a := range recs {
			got = append(got, a.Id+"="+a.Labels["status"])
		}
		r.t.Fatalf("alerts %v: want one, %s", got, state)
	}
	var body map[string]any
	if err := json.Unmarshal(recs[0].Body, &body); err != nil {
		r.t.Fatal(err)
	}
	return recs[0], body
}

// series counts a rule's series in a metric vector.
func series(t *testing.T, name, rule string) int {
	t.Helper()
	return metrics.Series(name, map[string]string{"rule": rule})
}

// TestDroppedRegionLeavesNoSeries: knooppunt_rule_firing has a series for each region a rule
// evaluates now, and none for a region it stopped evaluating: one a new version of the rule no
// longer names, or one whose records were deleted and left the history it reads.
func TestDroppedRegionLeavesNoSeries(t *testing.T) {
	r := newRig(t)
	e := r.evaluator()
	regionSeries := func(region string) int {
		return metrics.Series("knooppunt_rule_firing", map[string]string{"rule": "beds-low", "region": region})
	}
	r.beds(50, 100)
	if _, err := r.n.Store().Write(context.Background(), []*pb.Record{{Id: "utrecht", Kind: "shelter.capacity", Crisis: "oekraine", Region: "VR09",
		Classification: pb.Classification_INTERNAL, Body: []byte(`{"municipality":"Utrecht","beds_total":100,"beds_free":50}`)}}); err != nil {
		t.Fatal(err)
	}
	r.apply("beds-low", bedsLow)
	r.tick(e)
	if regionSeries("VR19") != 1 || regionSeries("VR09") != 0 {
		t.Fatalf("a rule for VR19: series VR19 %d, VR09 %d, want 1 and 0", regionSeries("VR19"), regionSeries("VR09"))
	}
	r.apply("beds-low", strings.Replace(bedsLow, "regions: [VR19]", "regions: [VR09]", 1))
	r.tick(e)
	if regionSeries("VR19") != 0 || regionSeries("VR09") != 1 {
		t.Fatalf("after the rule named VR09 instead of VR19: series VR19 %d, VR09 %d, want 0 and 1", regionSeries("VR19"), regionSeries("VR09"))
	}
	r.apply("beds-low", strings.Replace(bedsLow, "regions: [VR19]\n", "", 1)) // every region with records
	r.tick(e)
	if regionSeries("VR09") != 1 || regionSeries("VR19") != 1 {
		t.Fatalf("a rule over every region with records: series VR09 %d, VR19 %d, want 1 and 1", regionSeries("VR09"), regionSeries("VR19"))
	}
	// The records are deleted and the history forgets them: no region has records any more.
	if _, err := r.n.Store().Write(context.Background(), []*pb.Record{{Id: "middelburg", Tombstone: true}, {Id: "utrecht", Tombstone: true}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Millisecond)
	if _, err := r.n.DB().PruneHistory(time.Now()); err != nil {
		t.Fatal(err)
	}
	r.tick(e)
	if n := series(t, "knooppunt_rule_firing", "beds-low"); n != 0 {
		t.Fatalf("%d series left after every region fell out of the history, want 0", n)
	}
	if len(r.alerts()) != 0 {
		t.Fatalf("alerts %v: the rule never fired", r.alerts())
	}
}

// TestDeletedRuleResolvesItsAlert: an alert that fires when its rule is deleted is resolved at
// the next evaluation, whether the evaluator that saw it fire runs on or a new one does (a new
// leader, or the node after a restart): state resolved, resolved_at, withdrawn naming who deleted
// the rule, when and why; and knooppunt_rule_firing has no series of the rule left. As CAP, in
// the record (what partners and webhooks get) and in the export, it is a Cancel of the firing
// alert, valid against the schema, whose note says it was withdrawn, not cleared, and why: never
// an AllClear, since the condition may still hold (review M, M2).
func TestDeletedRuleResolvesItsAlert(t *testing.T) {
	for _, restart := range []bool{false, true} {
		t.Run(fmt.Sprintf("restart=%v", restart), func(t *testing.T) {
			r := newRig(t)
			e := r.evaluator()
			r.apply("beds-low", bedsLow)
			r.beds(5, 100)
			r.tick(e)
			fired, _ := r.one("firing")
			firingCAP, _ := captest.Export(t, fired)
			if series(t, "knooppunt_rule_firing", "beds-low") != 1 {
				t.Fatalf("knooppunt_rule_firing has no series of the firing rule")
			}

			r.step(&pb.RuleStep{Name: "beds-low", Delete: true, By: officer, At: timestamppb.Now(), Reason: "replaced by beds-low-v2"})
			if restart {
				metrics.RuleFiring.Reset() // as a restarted process starts
				e = r.evaluator()
			}
			r.tick(e)
			a, body := r.one("resolved")
			if a.Id != fired.Id || body["state"] != "resolved" || body["resolved_at"] == nil {
				t.Fatalf("after the delete: %s state %v resolved_at %v; want %s resolved", a.Id, body["state"], body["resolved_at"], fired.Id)
			}
			note, _ := body["withdrawn"].(string)
			if !strings.HasPrefix(note, "rule beds-low was deleted by "+officer+" at ") || !strings.Contains(note, `("replaced by beds-low-v2"): it is not evaluated`) {
				t.Errorf("withdrawn %q: want who deleted the rule, when and why", note)
			}
			resolved, _ := captest.Export(t, a)
			withdrawnCAP(t, resolved, fired.Id, org+","+fired.Id+","+firingCAP.Sent, "withdrawn, not cleared: "+note)
			// A webhook is sent the record's body, which is the same Cancel.
			payload, err := webhook.Payload(org, db.Delivery{Webhook: "wh_alerts", Event: "record.upserted", RecordID: a.Id, Version: a.Version, Record: a})
			if err != nil {
				t.Fatal(err)
			}
			var ev struct{ Data struct{ Body cap.Alert } }
			if err := json.Unmarshal(payload, &ev); err != nil {
				t.Fatal(err)
			}
			withdrawnCAP(t, &ev.Data.Body, fired.Id, resolved.References, resolved.Note)
			if n := series(t, "knooppunt_rule_firing", "beds-low"); n != 0 {
				t.Errorf("knooppunt_rule_firing keeps %d series of the deleted rule", n)
			}
			// Nothing more happens: the alert stays resolved, with one version more.
			r.tick(e)
			if b, _ := r.one("resolved"); b.Version != a.Version {
				t.Errorf("the resolved alert was written again: version %d, then %d", a.Version, b.Version)
			}
		})
	}
}

// withdrawnCAP fails the test unless a is the CAP Cancel of the withdrawn alert id: referencing
// refs, with the note, no AllClear and no urgency Past, an expiry, and a headline that says it
// was withdrawn and not cleared.
func withdrawnCAP(t *testing.T, a *cap.Alert, id, refs, note string) {
	t.Helper()
	if a.MsgType != "Cancel" || a.Identifier != id+".withdrawn" || a.References != refs || a.Note != note || len(a.Info) != 1 {
		t.Fatalf("the withdrawn alert as CAP: %s %s references %q note %q: want Cancel %s.withdrawn, references %q, note %q",
			a.MsgType, a.Identifier, a.References, a.Note, id, refs, note)
	}
	in := a.Info[0]
	if slices.Contains(in.ResponseType, "AllClear") || in.Urgency == "Past" || in.Expires == "" ||
		!strings.Contains(in.Headline, " withdrawn in ") || !strings.Contains(in.Headline, "not cleared") {
		t.Errorf("the withdrawn alert's info reads as a clear, or does not say it was withdrawn: %+v", in)
	}
}

// TestWithdrawnAlertCancelsWhatIsInForce: an alert withdrawn after it was opened again is a
// Cancel of both messages in force, the firing alert and the Update that opened it again; one of
// an exercise is an Exercise Cancel whose note names the exercise first, as the importer reads it,
// and whose headline starts with OEFENING. Each is valid CAP 1.2.
func TestWithdrawnAlertCancelsWhatIsInForce(t *testing.T) {
	r := newRig(t)
	e := r.evaluator()
	const exercise = "oef-intrekken"
	r.startExercise(exercise)
	ex := db.Mode{Status: pb.Status_EXERCISE, Exercise: exercise}
	r.apply("beds-low", bedsLow)
	at := time.Now().Add(time.Minute).Truncate(time.Minute)
	tick := func(free int) {
		t.Helper()
		r.beds(free, 100)
		r.exerciseBeds(exercise, free)
		time.Sleep(2 * time.Millisecond)
		if err := e.Tick(context.Background(), at); err != nil {
			t.Fatal(err)
		}
		at = at.Add(time.Minute)
	}
	tick(5)  // fires
	tick(50) // clears
	tick(5)  // fires again: the same alert, reopened-1
	// What is in force of an alert opened again: the firing alert, and the Update that opened it
	// again, which references it and the AllClear it follows.
	inForce := func(a *pb.Record) string {
		t.Helper()
		var c cap.Alert
		err := json.Unmarshal(a.Body, &c)
		refs := strings.Fields(c.References)
		if err != nil || c.Identifier != a.Id+".reopened-1" || len(refs) != 2 || !strings.HasPrefix(refs[0], org+","+a.Id+",") || !strings.HasPrefix(refs[1], org+","+a.Id+".resolved,") {
			t.Fatalf("the alert opened again as CAP: %s references %q (%v), want %s.reopened-1 of the firing alert and its AllClear", c.Identifier, c.References, err, a.Id)
		}
		return refs[0] + " " + org + "," + c.Identifier + "," + c.Sent
	}
	exerciseAlert := func() *pb.Record {
		t.Helper()
		recs, _, err := r.n.DB().List(context.Background(), db.Filter{Kind: alerting.Kind, Mode: ex})
		if err != nil || len(recs) != 1 {
			t.Fatalf("the exercise's alerts: %v (%v), want one", recs, err)
		}
		return recs[0]
	}
	a, _ := r.one("firing")
	refs, exerciseRefs := inForce(a), inForce(exerciseAlert())

	r.step(&pb.RuleStep{Name: "beds-low", Delete: true, By: officer, At: timestamppb.Now(), Reason: "klaar"})
	tick(5) // the condition still holds
	a, body := r.one("resolved")
	withdrawn, _ := captest.Export(t, a)
	withdrawnCAP(t, withdrawn, a.Id, refs, "withdrawn, not cleared: "+body["withdrawn"].(string))

	x := exerciseAlert()
	var xb struct {
		State     string `json:"state"`
		Withdrawn string `json:"withdrawn"`
	}
	if err := json.Unmarshal(x.Body, &xb); err != nil || xb.State != "resolved" || xb.Withdrawn == "" {
		t.Fatalf("the exercise's alert after the delete: state %q withdrawn %q (%v), want resolved, withdrawn", xb.State, xb.Withdrawn, err)
	}
	xa, _ := captest.Export(t, x)
	if xa.Status != "Exercise" || !strings.HasPrefix(xa.Info[0].Headline, "OEFENING ") {
		t.Errorf("the exercise's withdrawn alert as CAP: status %s, headline %q: want Exercise, OEFENING first", xa.Status, xa.Info[0].Headline)
	}
	withdrawnCAP(t, xa, x.Id, exerciseRefs, exercise+": withdrawn, not cleared: "+xb.Withdrawn)
}

// TestAlertRecordPutByHandIsLeftAlone: an alert record that names no stored rule but was not
// written by the evaluator (put by hand, or imported) is not resolved by it.
func TestAlertRecordPutByHandIsLeftAlone(t *testing.T) {
	r := newRig(t)
	e := r.evaluator()
	body := `{"identifier":"hand-1","sender":"x","sent":"2026-03-07T14:00:00+01:00","status":"Actual","msgType":"Alert","scope":"Public"}`
	if _, err := r.n.Store().Write(context.Background(), []*pb.Record{{Id: "hand-1", Kind: alerting.Kind, Crisis: "oekraine", Region: "VR19",
		Classification: pb.Classification_INTERNAL, Labels: map[string]string{"rule": "gone", "status": "firing"}, Body: []byte(body)}}); err != nil {
		t.Fatal(err)
	}
	r.tick(e)
	if a, _ := r.one("firing"); a.Version != 1 {
		t.Errorf("the hand-put alert was written: version %d", a.Version)
	}
}

// TestUnlintedRuleResolvesItsAlertAndSaysSo: a stored rule that no longer lints against the
// node's kinds (a config change dropped a kind it reads) is not evaluated: its open alert is
// resolved with the reason, knooppunt_rule_firing has no series of it, each skipped evaluation
// counts in knooppunt_rule_evaluation_errors_total{region=""}, and the log says so at WARN once
// and at INFO once a new version lints.
func TestUnlintedRuleResolvesItsAlertAndSaysSo(t *testing.T) {
	r := newRig(t)
	r.apply("beds-low", bedsLow)
	r.beds(5, 100)
	r.tick(r.evaluator())
	r.one("firing")

	e := r.evaluator("sitrep", "signal") // shelter.capacity is gone from the config
	for range 3 {
		r.tick(e)
	}
	_, body := r.one("resolved")
	if note, _ := body["withdrawn"].(string); !strings.HasPrefix(note, "rule beds-low no longer lints against this node's kinds (") ||
		!strings.Contains(note, `shelter.capacity`) {
		t.Errorf("withdrawn %q: want that the rule no longer lints, and why", note)
	}
	if n := series(t, "knooppunt_rule_firing", "beds-low"); n != 0 {
		t.Errorf("knooppunt_rule_firing keeps %d series of a rule that is not evaluated", n)
	}
	if got := metricValue(t, "knooppunt_rule_evaluation_errors_total", "beds-low", ""); got != 3 {
		t.Errorf("knooppunt_rule_evaluation_errors_total{rule=beds-low,region=\"\"} = %g after three skipped evaluations, want 3", got)
	}
	if w := r.logs.count("WARN", "early-warning rule does not lint"); w != 1 {
		t.Errorf("%d WARN lines over three skipped evaluations, want 1", w)
	}
	r.apply("beds-low", "name: beds-low\nseverity: severe\nwhen: count(\"signal\", duration(\"6h\")) >= 3\n")
	r.tick(e)
	if i := r.logs.count("INFO", "early-warning rule lints again"); i != 1 {
		t.Errorf("%d INFO lines once a new version lints, want 1", i)
	}
}

// bedsRatio is a rule over a ratio, which cannot be evaluated once its region has no beds.
const bedsRatio = `name: beds-ratio
severity: severe
crisis: oekraine
regions: [VR19]
when: ratio(sum("shelter.capacity", "beds_free"), sum("shelter.capacity", "beds_total")) < 0.05
`

// TestFailingEvaluationIsVisible: a rule that cannot be evaluated (a ratio over 0) is counted
// in knooppunt_rule_evaluation_errors_total at each evaluation, logged at WARN when it begins to
// fail and at INFO when it can be evaluated again, not at each evaluation.
func TestFailingEvaluationIsVisible(t *testing.T) {
	r := newRig(t)
	e := r.evaluator()
	r.apply("beds-ratio", bedsRatio)
	r.beds(0, 0)
	for range 3 {
		r.tick(e)
	}
	if got := metricValue(t, "knooppunt_rule_evaluation_errors_total", "beds-ratio", "VR19"); got != 3 {
		t.Errorf("knooppunt_rule_evaluation_errors_total{rule=beds-ratio,region=VR19} = %g after three failed evaluations, want 3", got)
	}
	if w := r.logs.count("WARN", "early-warning rule cannot be evaluated"); w != 1 {
		t.Errorf("%d WARN lines over three failed evaluations, want 1", w)
	}
	r.beds(50, 100)
	r.tick(e)
	r.tick(e)
	if i := r.logs.count("INFO", "early-warning rule can be evaluated again"); i != 1 {
		t.Errorf("%d INFO lines after it recovered, want 1", i)
	}
	if got := metricValue(t, "knooppunt_rule_evaluation_errors_total", "beds-ratio", "VR19"); got != 3 {
		t.Errorf("knooppunt_rule_evaluation_errors_total = %g after it recovered, want still 3", got)
	}
	// A deleted rule leaves no series behind.
	r.step(&pb.RuleStep{Name: "beds-ratio", Delete: true, By: officer, At: timestamppb.Now()})
	r.tick(e)
	if n := series(t, "knooppunt_rule_evaluation_errors_total", "beds-ratio") + series(t, "knooppunt_rule_firing", "beds-ratio"); n != 0 {
		t.Errorf("%d series of the deleted rule are left", n)
	}
}

// metricValue reads a rule's counter or gauge for a region, -1 when it has none.
func metricValue(t *testing.T, name, rule, region string) float64 {
	t.Helper()
	if v, ok := metrics.Value(name, map[string]string{"rule": rule, "region": region}); ok {
		return v
	}
	return -1
}

// TestFiringAlertSaysItCannotBeEvaluated: an alert that fires when its rule can no longer be
// evaluated in its region (its data gone: a ratio over 0) says so on its record, once, with
// since when and why; once the rule can be evaluated again, the record no longer does.
func TestFiringAlertSaysItCannotBeEvaluated(t *testing.T) {
	r := newRig(t)
	e := r.evaluator()
	r.apply("beds-ratio", bedsRatio)
	r.beds(2, 100)
	r.tick(e)
	fired, body := r.one("firing")
	if _, ok := body["unevaluable"]; ok {
		t.Fatalf("a firing alert whose rule evaluates says it cannot be: %v", body)
	}
	r.beds(0, 0)
	r.tick(e)
	r.tick(e)
	a, body := r.one("firing")
	if why, _ := body["unevaluable"].(string); !strings.Contains(why, "denominator") || body["unevaluable_since"] == nil {
		t.Errorf("the alert whose rule cannot be evaluated: unevaluable %q since %v", body["unevaluable"], body["unevaluable_since"])
	}
	if a.Version != fired.Version+1 {
		t.Errorf("the alert went from version %d to %d over two failed evaluations, want one write", fired.Version, a.Version)
	}
	r.beds(1, 100)
	r.tick(e)
	if _, body := r.one("firing"); body["unevaluable"] != nil {
		t.Errorf("after the rule can be evaluated again the alert still says it cannot: %v", body["unevaluable"])
	}
}

// TestRulesRunInAnExercise: in an open exercise the rules run apart, on the exercise's records
// alone: an exercise's shortage fires an alert of the exercise (its status and name, CAP status
// Exercise), never an actual one and never the metrics, and an actual shortage fires no alert of
// the exercise. The exercise's alert resolves in it; closing the exercise ends its evaluation.
func TestRulesRunInAnExercise(t *testing.T) {
	r := newRig(t)
	e := r.evaluator()
	const name = "oef-waarschuwing"
	ex := db.Mode{Status: pb.Status_EXERCISE, Exercise: name}
	exercise := func(action string) {
		t.Helper()
		if _, err := r.n.Store().Apply(context.Background(), &pb.Command{Cmd: &pb.Command_ExerciseStep{ExerciseStep: &pb.ExerciseStep{
			Action: action, Name: name, Actor: officer, At: timestamppb.Now()}}}); err != nil {
			t.Fatal(err)
		}
	}
	exerciseAlerts := func() []*pb.Record {
		t.Helper()
		recs, _, err := r.n.DB().List(context.Background(), db.Filter{Kind: alerting.Kind, Mode: ex})
		if err != nil {
			t.Fatal(err)
		}
		return recs
	}
	exercise("start")
	// An actual webhook for alerts: what it is sent must never be an exercise's.
	hook := &pb.Webhook{Id: "wh_alerts", Url: "https://127.0.0.1:1/hook", Secret: "whsec_0123456789abcdef0123456789abcdef", Kinds: []string{alerting.Kind}}
	if _, err := r.n.Store().Apply(context.Background(), &pb.Command{Cmd: &pb.Command_WebhookStep{WebhookStep: &pb.WebhookStep{Action: "add", Webhook: hook, By: officer, At: timestamppb.Now()}}}); err != nil {
		t.Fatal(err)
	}
	sent := func() (actual, exercises int) {
		t.Helper()
		queued, err := r.n.DB().WebhookQueue(context.Background(), hook.Id, 100)
		if err != nil {
			t.Fatal(err)
		}
		failed, err := r.n.DB().WebhookFailures(context.Background(), hook.Id)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range queued {
			if d.Record.GetExercise() != "" {
				exercises++
			} else {
				actual++
			}
		}
		// A dead letter is listed without its record; an exercise's alert has the exercise's
		// name at the end of its id.
		for _, d := range failed {
			if strings.HasSuffix(d.RecordID, "-"+name) {
				exercises++
			} else {
				actual++
			}
		}
		return actual, exercises
	}
	r.beds(50, 100)
	r.exerciseBeds(name, 5)
	r.apply("beds-low", bedsLow+"description: Minder dan 10 vrije bedden\n")
	r.tick(e)
	if got := r.alerts(); len(got) != 0 {
		t.Fatalf("the exercise's shortage fired actual alerts: %v", got)
	}
	got := exerciseAlerts()
	if len(got) != 1 || got[0].Labels["status"] != "firing" || got[0].Status != pb.Status_EXERCISE || got[0].Exercise != name || !strings.HasSuffix(got[0].Id, "-"+name) {
		t.Fatalf("the exercise's alerts: %v, want one firing alert of the exercise", got)
	}
	var body struct {
		Status, Note, MsgType, History string
		Info                           []struct{ Headline, Description string }
	}
	// A consumer that shows the headline alone sees it is an exercise: OEFENING, once, in the
	// headline and the description, firing and resolved.
	marked := func(when string) {
		t.Helper()
		want := []struct{ Headline, Description string }{{"OEFENING Early-warning rule beds-low fires in VR19", "OEFENING Minder dan 10 vrije bedden"}}
		if when == "resolved" {
			want[0].Headline = "OEFENING Early-warning rule beds-low cleared in VR19"
		}
		if fmt.Sprint(body.Info) != fmt.Sprint(want) {
			t.Errorf("the exercise's %s alert says %+v, want %+v", when, body.Info, want)
		}
	}
	if err := json.Unmarshal(got[0].Body, &body); err != nil || body.Status != "Exercise" || body.Note != name {
		t.Errorf("the exercise's alert says CAP status %q, note %q (%v): want Exercise, %s", body.Status, body.Note, err, name)
	}
	marked("firing")
	// Its dry run is of the exercise's history, where it fired.
	if !strings.HasPrefix(body.History, "knooppunt rule test beds-low.yaml --from ") || !strings.HasSuffix(body.History, " --exercise "+name) {
		t.Errorf("the exercise's alert names the dry run %q: want it in the exercise", body.History)
	}
	if v := metricValue(t, "knooppunt_rule_firing", "beds-low", "VR19"); v != 0 {
		t.Errorf("knooppunt_rule_firing of VR19 is %g while only the exercise fires, want 0", v)
	}

	// An actual shortage fires an actual alert, and nothing in the exercise.
	r.beds(5, 100)
	r.exerciseBeds(name, 30)
	r.tick(e)
	r.one("firing")
	if metricValue(t, "knooppunt_rule_firing", "beds-low", "VR19") != 1 {
		t.Errorf("the actual shortage does not show in knooppunt_rule_firing")
	}
	if actual, exercises := sent(); actual != 1 || exercises != 0 {
		t.Errorf("the actual webhook holds %d actual and %d exercise alerts, want the actual one alone", actual, exercises)
	}
	got = exerciseAlerts()
	if len(got) != 1 || got[0].Labels["status"] != "resolved" {
		t.Fatalf("the exercise's alerts after its beds came back: %v, want its one alert resolved", got)
	}
	if err := json.Unmarshal(got[0].Body, &body); err != nil || body.Status != "Exercise" || body.MsgType != "Update" {
		t.Errorf("the exercise's resolved alert says CAP status %q, message %q: want an Exercise Update", body.Status, body.MsgType)
	}
	marked("resolved")

	exercise("close")
	r.tick(e)
	if got := exerciseAlerts(); len(got) != 0 {
		t.Fatalf("after the close the exercise still has alerts: %v", got)
	}
	if n := r.logs.count("WARN", "early-warning"); n != 0 {
		t.Errorf("%d warnings in the log:\n%s", n, r.logs.String())
	}
}

// TestAlertIDFitsARecordID: an exercise alert's id ends in the exercise's name while that fits
// in a record id, and in a digest of it when it would not: a longer id would be refused by every
// partner, and by the node's own record get.
func TestAlertIDFitsARecordID(t *testing.T) {
	at := time.Unix(1_800_000_000, 0)
	rule := strings.Repeat("r", 63)
	if id := alerting.AlertID("beds-low", "VR19", at, "oef-1"); id != "alert-beds-low-VR19-1800000000-oef-1" {
		t.Errorf("AlertID with a short exercise name = %q", id)
	}
	long := "oefening-" + strings.Repeat("x", 119)
	for _, r := range []string{"beds-low", rule} {
		id := alerting.AlertID(r, "VR19", at, long)
		if err := record.CheckID("id", id); err != nil {
			t.Errorf("AlertID(%s, exercise of %d characters): %v", r, len(long), err)
		}
		if other := alerting.AlertID(r, "VR19", at, long[:len(long)-1]+"z"); other == id {
			t.Errorf("two exercises share the alert id %q", id)
		}
	}
}

// TestHandPutAlertsAreNotTheRules: alert records an editor put by hand with a rule's labels are
// not that rule's alerts. One whose body the evaluator cannot read (fired_at "yesterday") holds
// up no rule, and one that reads well neither keeps its rule from firing in its region nor is
// resolved or overwritten when the rule clears.
func TestHandPutAlertsAreNotTheRules(t *testing.T) {
	r := newRig(t)
	e := r.evaluator()
	r.apply("aa-elke", "name: aa-elke\nseverity: minor\ncrisis: oekraine\nregions: [VR01]\nwhen: sum(\"shelter.capacity\", \"beds_free\") < 0\n")
	r.apply("beds-low", bedsLow)
	head := `"identifier":"hand-%d","sender":"x","sent":"2026-03-07T14:00:00+01:00","status":"Actual","msgType":"Alert","scope":"Public"`
	hand := []*pb.Record{
		{Id: "hand-1", Kind: alerting.Kind, Crisis: "oekraine", Region: "VR01", Classification: pb.Classification_INTERNAL,
			Labels: map[string]string{"rule": "aa-elke", "status": "firing"}, Body: fmt.Appendf(nil, `{`+head+`,"fired_at":"yesterday"}`, 1)},
		{Id: "hand-2", Kind: alerting.Kind, Crisis: "oekraine", Region: "VR19", Classification: pb.Classification_INTERNAL,
			Labels: map[string]string{"rule": "beds-low", "status": "firing"}, Body: fmt.Appendf(nil, `{`+head+`}`, 2)},
	}
	if _, err := r.n.Store().Write(context.Background(), hand); err != nil {
		t.Fatal(err)
	}
	r.beds(5, 100)
	r.tick(e)
	fired := false
	for _, a := range r.alerts() {
		fired = fired || a.Labels["rule"] == "beds-low" && a.Labels["status"] == "firing" && strings.HasPrefix(a.Id, "alert-beds-low-VR19-")
	}
	if !fired {
		t.Fatalf("beds-low (5 of 100 beds free in VR19) did not fire beside the hand-put records: %v", r.alerts())
	}
	r.beds(50, 100)
	r.tick(e)
	for _, id := range []string{"hand-1", "hand-2"} {
		got, err := r.n.DB().Get(context.Background(), id)
		if err != nil || got.Version != 1 || got.Labels["status"] != "firing" {
			t.Errorf("the hand-put %s after the rule cleared: %v (%v), want it as it was put", id, got, err)
		}
	}
}

// TestAlertTakesTheClassificationOfWhatItReads: an alert's values are figures of the records its
// rule reads (a sum over one record is that record's figure), so the alert is classified as the
// highest of those records in its region, its own or a partner's copy, and internal at least: a
// policy that shares alerts up to internal passes on no confidential figure through one.
func TestAlertTakesTheClassificationOfWhatItReads(t *testing.T) {
	r := newRig(t)
	e := r.evaluator()
	cache := func(id, region string, c pb.Classification, free int) {
		t.Helper()
		rec := &pb.Record{Id: id, Origin: "lcvs.crisis.test", Kind: "shelter.capacity", Crisis: "oekraine", Region: region, Classification: c,
			Body: fmt.Appendf(nil, `{"municipality":"%s","beds_total":100,"beds_free":%d}`, id, free), Version: 1, UpdatedAt: timestamppb.Now()}
		if _, err := r.n.Store().Apply(context.Background(), &pb.Command{Cmd: &pb.Command_CacheForeign{CacheForeign: &pb.CacheForeign{
			Peer: "lcvs", Origin: "lcvs.crisis.test", Upserts: []*pb.SharedRecord{{Record: rec}}, At: timestamppb.Now()}}}); err != nil {
			t.Fatal(err)
		}
	}
	// A secret record elsewhere is not read by the rule of VR19.
	cache("utrecht", "VR09", pb.Classification_SECRET, 1)
	r.apply("beds-low", bedsLow)
	r.beds(5, 100)
	r.tick(e)
	if a, _ := r.one("firing"); a.Classification != pb.Classification_INTERNAL {
		t.Fatalf("an alert over internal records is %s, want INTERNAL", a.Classification)
	}
	r.beds(30, 100)
	r.tick(e)
	r.one("resolved")

	// A partner's confidential copy in VR19 counts towards the sum: the next episode, which
	// opens the alert again (under a new leader too), is confidential.
	cache("vlissingen", "VR19", pb.Classification_CONFIDENTIAL, 2)
	r.beds(5, 100)
	r.tick(r.evaluator())
	var got []string
	for _, a := range r.alerts() {
		got = append(got, a.Labels["status"]+" "+a.Classification.String())
	}
	if want := []string{"firing CONFIDENTIAL"}; !slices.Equal(got, want) {
		t.Fatalf("alerts %v, want %v", got, want)
	}
}

// bedsLowAll fires under 10 free beds in every region with records.
const bedsLowAll = `name: beds-low-all
severity: severe
crisis: oekraine
when: sum("shelter.capacity", "beds_free") < 10
clear: sum("shelter.capacity", "beds_free") > 20
`

// cachePartner caches a partner's shelter.capacity copies in a region, with the body given and
// the fields its policy redacted.
func (r *rig) cachePartner(region, body string, redacted []string, ids ...string) {
	r.t.Helper()
	const peer = "b.crisis.test"
	var ups []*pb.SharedRecord
	for _, id := range ids {
		ups = append(ups, &pb.SharedRecord{Redacted: redacted, Record: &pb.Record{Id: id, Origin: peer, Kind: "shelter.capacity", Crisis: "oekraine",
			Region: region, Classification: pb.Classification_INTERNAL, Version: 1, UpdatedAt: timestamppb.Now(), Body: []byte(body)}})
	}
	if _, err := r.n.Store().Apply(context.Background(), &pb.Command{Cmd: &pb.Command_CacheForeign{CacheForeign: &pb.CacheForeign{
		Peer: "b", Origin: peer, Cursor: 1, Upserts: ups, At: timestamppb.Now(), PictureBookkeeping: true}}}); err != nil {
		r.t.Fatal(err)
	}
}

// TestHugePartnerValuesDoNotSilenceRules (review D, F2): a partner's copies in NL with beds_free
// -1.7e308, over record.MaxAggregate, are left out of the sum, as the picture leaves them out:
// NL's sum does not become infinite, which made the alert unwritable and ended the evaluation
// before VR19, whose own 5 free beds then fired nothing. NL, where no record carries a value
// that counts, fails to evaluate, counted.
func TestHugePartnerValuesDoNotSilenceRules(t *testing.T) {
	r := newRig(t)
	e := r.evaluator()
	r.apply("beds-low-all", bedsLowAll)
	r.beds(5, 100)
	r.cachePartner("NL", `{"municipality":"x","beds_total":0,"beds_free":-1.7e308}`, nil, "h0", "h1")
	r.tick(e)
	r.tick(e)
	r.firesOnly("beds-low-all", "VR19", "NL", 2)
}

// firesOnly checks that the rule's one alert fires in region, and that it failed to evaluate
// failures times in failing.
func (r *rig) firesOnly(rule, region, failing string, failures float64) {
	r.t.Helper()
	if a, _ := r.one("firing"); a.Region != region {
		r.t.Errorf("the alert is of %s, want %s alone", a.Region, region)
	}
	if got := metricValue(r.t, "knooppunt_rule_firing", rule, region); got != 1 {
		r.t.Errorf("knooppunt_rule_firing{%s} = %g, want 1", region, got)
	}
	if got := metricValue(r.t, "knooppunt_rule_evaluation_errors_total", rule, failing); got != failures {
		r.t.Errorf("knooppunt_rule_evaluation_errors_total{%s} = %g, want %g", failing, got, failures)
	}
}

// TestMissingFieldHasNoValue (review D, F6): a partner's copy whose policy redacts beds_free adds
// nothing to the sum, and a region where no record carries it has no value: the rule fails to
// evaluate there, counted and logged, where it read 0 and fired a severe alert. An open alert
// whose records lose the field says it cannot be evaluated, and stays firing.
func TestMissingFieldHasNoValue(t *testing.T) {
	r := newRig(t)
	e := r.evaluator()
	r.apply("beds-low-all", bedsLowAll)
	r.cachePartner("VR09", `{"municipality":"Utrecht","beds_total":500}`, []string{"body.beds_free"}, "b1")
	r.beds(5, 100)
	r.tick(e)
	r.firesOnly("beds-low-all", "VR19", "VR09", 1)
	if !strings.Contains(r.logs.String(), `has no value`) {
		t.Errorf("the log does not say the sum has no value:\n%s", r.logs.String())
	}
	// VR19's own record loses the field too: the alert neither resolves nor reads 0.
	r.cachePartner("VR19", `{"municipality":"Vlissingen","beds_total":50}`, []string{"body.beds_free"}, "b2")
	if _, err := r.n.Store().Write(context.Background(), []*pb.Record{{Id: "middelburg", Kind: "shelter.capacity", Crisis: "oekraine", Region: "VR09",
		Classification: pb.Classification_INTERNAL, Body: []byte(`{"municipality":"Middelburg","beds_total":100,"beds_free":5}`)}}); err != nil {
		t.Fatal(err)
	}
	r.tick(e)
	recs := r.alerts()
	var vr19 map[string]any
	for _, a := range recs {
		if a.Region == "VR19" {
			json.Unmarshal(a.Body, &vr19)
		}
	}
	if why, _ := vr19["unevaluable"].(string); vr19["state"] != "firing" || !strings.Contains(why, "has no value") {
		t.Errorf("VR19's alert after its records lost beds_free: state %v, unevaluable %q", vr19["state"], vr19["unevaluable"])
	}
}

// TestRecordWithTheAlertIDDoesNotStandForTheAlert (review D, F3): a record of an exercise, of
// another kind, that holds the id the actual alert will get (the rule, the region and the minute
// are predictable) does not stand for the alert: the evaluation in that region fails, counted,
// where the alert was silently not written while knooppunt_rule_firing said 1; the regions after
// it still fire.
func TestRecordWithTheAlertIDDoesNotStandForTheAlert(t *testing.T) {
	r := newRig(t)
	e := r.evaluator()
	r.apply("beds-low-all", bedsLowAll)
	r.beds(5, 100) // VR19
	if _, err := r.n.Store().Write(context.Background(), []*pb.Record{{Id: "goes", Kind: "shelter.capacity", Crisis: "oekraine", Region: "VR01",
		Classification: pb.Classification_INTERNAL, Body: []byte(`{"municipality":"Goes","beds_total":100,"beds_free":3}`)}}); err != nil {
		t.Fatal(err)
	}
	r.startExercise("oef-1")
	at := time.Now().Truncate(time.Second).Add(2 * time.Second)
	id := alerting.AlertID("beds-low-all", "VR01", at, "")
	res, err := r.n.Store().Write(context.Background(), []*pb.Record{{Id: id, Kind: "sitrep", Crisis: "oefencrisis", Region: "VR01",
		Classification: pb.Classification_INTERNAL, Status: pb.Status_EXERCISE, Exercise: "oef-1", Body: []byte(`{"title":"oefening","summary":"x"}`)}})
	if err != nil || res[0].Err != nil {
		t.Fatal(err, res[0].Err)
	}
	time.Sleep(time.Until(at) + 10*time.Millisecond)
	err = e.Tick(context.Background(), at)
	if err == nil || !strings.Contains(err.Error(), id+" is taken by a record that is not this rule's alert (kind sitrep, exercise oef-1)") {
		t.Errorf("Tick: %v; want it to say the alert's id is taken", err)
	}
	r.firesOnly("beds-low-all", "VR19", "VR01", 1)
	if got := metricValue(t, "knooppunt_rule_firing", "beds-low-all", "VR01"); got != 0 {
		t.Errorf("knooppunt_rule_firing{VR01} = %g with no alert written, want 0", got)
	}
	// The next evaluation, at another instant, writes it.
	if err := e.Tick(context.Background(), at.Add(time.Second)); err != nil {
		t.Fatalf("Tick: %v", err)
	}
	if n := len(r.alerts()); n != 2 {
		t.Errorf("%d alerts after the next evaluation, want VR01's and VR19's", n)
	}
}

// startExercise starts an exercise.
func (r *rig) startExercise(exercise string) {
	r.t.Helper()
	if _, err := r.n.Store().Apply(context.Background(), &pb.Command{Cmd: &pb.Command_ExerciseStep{ExerciseStep: &pb.ExerciseStep{
		Name: exercise, Action: "start", Actor: officer, At: timestamppb.Now(), Reason: "drill"}}}); err != nil {
		r.t.Fatal(err)
	}
}

// TestFlappingRuleReopensItsAlert: a rule that fires again in a region within alerting.Reopen
// after its alert resolved opens that alert again, as a new version that says how often, rather
// than writing a new alert: a value that swung across the thresholds made a new alert, shared and
// sent to webhooks and kept for good, every two evaluations (review D, F8).
func TestFlappingRuleReopensItsAlert(t *testing.T) {
	r := newRig(t)
	e := r.evaluator()
	r.apply("beds-low", bedsLow) // fires under 10, clears above 20
	// A minute apart, as the node evaluates: each fire has an alert id of its own.
	at := time.Now().Add(time.Minute).Truncate(time.Minute)
	tick := func(e *alerting.Evaluator, free int) {
		t.Helper()
		r.beds(free, 100)
		time.Sleep(2 * time.Millisecond)
		if err := e.Tick(context.Background(), at); err != nil {
			t.Fatal(err)
		}
		at = at.Add(time.Minute)
	}
	for i := range 20 {
		tick(e, map[bool]int{true: 5, false: 50}[i%2 == 0])
	}
	a, body := r.one("resolved")
	if body["reopened"] != float64(9) || body["reopened_at"] == nil {
		t.Fatalf("alert %s after ten episodes: reopened %v at %v; want opened again 9 times", a.Id, body["reopened"], body["reopened_at"])
	}
	// Its AllClear references the Update that opened it again the ninth time.
	var cleared cap.Alert
	if err := json.Unmarshal(a.Body, &cleared); err != nil || cleared.Identifier != a.Id+".resolved-9" || !strings.Contains(cleared.References, " "+org+","+a.Id+".reopened-9,") {
		t.Fatalf("the AllClear after ten episodes: %s refs %q (%v), want %s.resolved-9 referencing .reopened-9", cleared.Identifier, cleared.References, err, a.Id)
	}
	tick(e, 5)
	a2, body := r.one("firing")
	if a2.Id != a.Id || body["reopened"] != float64(10) || a2.Version <= a.Version {
		t.Fatalf("the next episode: alert %s v%d reopened %v; want %s opened again, a later version", a2.Id, a2.Version, body["reopened"], a.Id)
	}
	// Its CAP message is an Update of the first alert and of the AllClear it follows, with an
	// identifier of its own.
	var c cap.Alert
	if err := json.Unmarshal(a2.Body, &c); err != nil || c.Identifier != a.Id+".reopened-10" || c.MsgType != "Update" || !strings.Contains(c.References, ","+a.Id+",") ||
		!strings.Contains(c.References, " "+org+","+a.Id+".resolved-9,"+cleared.Sent) || c.Check() != nil {
		t.Fatalf("the reopened alert's CAP: %s %s refs %q (check %v, %v)", c.Identifier, c.MsgType, c.References, c.Check(), err)
	}
	// A new leader rebuilds the firing state from the open alert; one it resolved itself it
	// opens again too.
	e = r.evaluator()
	tick(e, 50)
	tick(e, 5)
	if n := len(r.alerts()); n != 1 {
		t.Fatalf("%d alerts after a new evaluator resolved the alert and the rule fired again: want the same one, opened again", n)
	}
	// One resolved under an earlier leader is opened again by the next: the database says what
	// was resolved, not the memory of the replica that resolved it.
	tick(e, 50)
	e = r.evaluator()
	tick(e, 5)
	if a3, body := r.one("firing"); a3.Id != a.Id || body["reopened"] != float64(12) {
		t.Fatalf("after a change of leader: alert %s reopened %v; want %s opened again, the 12th time", a3.Id, body["reopened"], a.Id)
	}
	// A rule that fires again more than Reopen after its alert cleared writes a new alert.
	tick(e, 50)
	at = at.Add(alerting.Reopen)
	tick(r.evaluator(), 5)
	if n := len(r.alerts()); n != 2 {
		t.Fatalf("%d alerts after the rule fired again %v after its alert cleared: want a new one beside it", n, alerting.Reopen)
	}
}

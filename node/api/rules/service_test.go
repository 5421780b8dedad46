package rules_test

import (
	"context"
	"io"
	"log/slog"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/node/api"
	"github.com/knooppunt/knooppunt/node/api/rules"
	"github.com/knooppunt/knooppunt/node/db"
	"github.com/knooppunt/knooppunt/node/record"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

func newService(t *testing.T) (*rules.Service, *db.DB) {
	t.Helper()
	d, err := db.Open(filepath.Join(t.TempDir(), "knooppunt.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	kinds, err := record.NewKinds(record.DemoKinds())
	if err != nil {
		t.Fatal(err)
	}
	return rules.New(rules.Config{DB: d, Kinds: kinds, Retention: func() time.Duration { return 24 * time.Hour },
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}), d
}

const lowBeds = `name: zeeland-beds-low
severity: severe
crisis: oekraine
when: sum("shelter.capacity", "beds_free") < 10
clear: sum("shelter.capacity", "beds_free") > 20
for: 30m
`

// TestRetractionLeavesRuleResults checks, on a real store, that a rule's dry run sees own and
// cached records' history, and that once a peer retracts its record the record's past
// contribution is gone from the rule's results too: the episode its values caused is no more.
func TestRetractionLeavesRuleResults(t *testing.T) {
	svc, d := newService(t)
	ctx := context.Background()
	now := time.Now().UTC()
	ago := func(h float64) *timestamppb.Timestamp {
		return timestamppb.New(now.Add(-time.Duration(h * float64(time.Hour))))
	}
	// Own beds: 5 for the last six hours. With the peer's 30, the sum is 35 until the peer's
	// record drops to 0 three hours ago: then 5 < 10, and the rule fires 30 minutes later.
	if res, err := d.Apply(1, []*pb.Record{{Id: "own", Origin: "vr-zeeland.crisis.test", Kind: "shelter.capacity", Crisis: "oekraine", Region: "VR19",
		Body: []byte(`{"beds_free": 5, "beds_total": 50}`), UpdatedAt: ago(6)}}); err != nil || res[0].Err != nil {
		t.Fatal(err, res)
	}
	cache := &pb.CacheForeign{Peer: "lcvs.crisis.test", Origin: "lcvs.crisis.test", Cursor: 1, At: timestamppb.New(now)}
	for i, b := range []string{`{"beds_free": 30}`, `{"beds_free": 0}`} {
		cache.Upserts = append(cache.Upserts, &pb.SharedRecord{Record: &pb.Record{Id: "lcvs-1", Origin: "lcvs.crisis.test", Kind: "shelter.capacity",
			Crisis: "oekraine", Region: "VR19", Body: []byte(b), Version: int64(i + 1), UpdatedAt: ago(float64(5 - 2*i))}})
	}
	if err := d.ApplyCacheForeign(2, cache); err != nil {
		t.Fatal(err)
	}
	req := &pb.RuleTestRequest{Source: []byte(lowBeds), From: ago(6), To: timestamppb.New(now)}
	resp, err := svc.Test(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	// Until the peer's record came, five hours ago, own beds alone (5) were low: one episode from
	// 30 minutes after the own record, ended when the peer's 30 came. The second starts 30
	// minutes after the peer's dropped to 0, and still fires.
	if len(resp.Episodes) != 2 || resp.Episodes[0].End == nil || resp.Episodes[1].End != nil {
		t.Fatalf("before the retraction: episodes %v, want one ended and one firing", resp.Episodes)
	}
	fired := resp.Episodes[1].Start.AsTime()
	if want := now.Add(-3*time.Hour + 30*time.Minute); fired.Before(want) || fired.After(want.Add(time.Minute)) {
		t.Errorf("the second episode starts at %s, want the first minute at or after %s", fired, want)
	}

	if err := d.ApplyCacheForeign(3, &pb.CacheForeign{Peer: "lcvs.crisis.test", Origin: "lcvs.crisis.test", Cursor: 2, At: timestamppb.New(now), Retractions: []string{"lcvs-1"}}); err != nil {
		t.Fatal(err)
	}
	resp, err = svc.Test(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	// Without the peer's record, own beds were low all along: one episode, never ended, whose
	// values hold nothing of the peer's.
	if len(resp.Episodes) != 1 || resp.Episodes[0].End != nil {
		t.Fatalf("after the retraction: episodes %v, want one that still fires", resp.Episodes)
	}
	for _, v := range resp.Episodes[0].Values {
		if v.Value != 5 {
			t.Errorf("after the retraction the rule read %s = %g, want own beds alone (5)", v.Expr, v.Value)
		}
	}
}

// TestRuleTestInAnExercise: a dry run in an exercise's mode reads that exercise's history alone,
// as the leader runs the rule there; the actual history does not fire in it, nor it in the
// actual run. A mode other than actual or an exercise is refused at the field.
func TestRuleTestInAnExercise(t *testing.T) {
	svc, d := newService(t)
	ctx := context.Background()
	now := time.Now().UTC()
	if _, err := d.ApplyExerciseStep(1, &pb.ExerciseStep{Action: "start", Name: "oef-1", Actor: "spiffe://vr-zeeland.crisis.test/user/eva", At: timestamppb.New(now.Add(-7 * time.Hour))}); err != nil {
		t.Fatal(err)
	}
	if res, err := d.Apply(2, []*pb.Record{
		{Id: "own", Origin: "vr-zeeland.crisis.test", Kind: "shelter.capacity", Crisis: "oekraine", Region: "VR19",
			Body: []byte(`{"beds_free": 50, "beds_total": 50}`), UpdatedAt: timestamppb.New(now.Add(-6 * time.Hour))},
		{Id: "oef", Origin: "vr-zeeland.crisis.test", Kind: "shelter.capacity", Crisis: "oekraine", Region: "VR19", Status: pb.Status_EXERCISE, Exercise: "oef-1",
			Body: []byte(`{"beds_free": 2, "beds_total": 50}`), UpdatedAt: timestamppb.New(now.Add(-6 * time.Hour))},
	}); err != nil || res[0].Err != nil || res[1].Err != nil {
		t.Fatal(err, res)
	}
	run := func(mode *pb.Mode) *pb.RuleTestResponse {
		t.Helper()
		resp, err := svc.Test(ctx, &pb.RuleTestRequest{Source: []byte(lowBeds), From: timestamppb.New(now.Add(-6 * time.Hour)), To: timestamppb.New(now), Mode: mode})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if resp := run(nil); len(resp.Episodes) != 0 {
		t.Errorf("the actual run fired on the exercise's beds: %v", resp.Episodes)
	}
	if resp := run(&pb.Mode{Status: pb.Status_EXERCISE, Exercise: "oef-1"}); len(resp.Episodes) != 1 || resp.Episodes[0].Region != "VR19" {
		t.Errorf("the exercise's run: %v, want one episode in VR19", resp.Episodes)
	}
	_, err := svc.Test(ctx, &pb.RuleTestRequest{Source: []byte(lowBeds), Mode: &pb.Mode{Status: pb.Status_TEST}})
	if status.Code(err) != codes.InvalidArgument || !strings.HasPrefix(status.Convert(err).Message(), "mode.status: TEST: rules run over the actual records and over an exercise's") {
		t.Errorf("a run in test mode: %v", err)
	}
}

// TestBadInputRefused checks that a rule that does not lint, or a run that is not one, is refused
// with INVALID_ARGUMENT naming the position or the field, and that Lint answers problems.
func TestBadInputRefused(t *testing.T) {
	svc, _ := newService(t)
	ctx := context.Background()
	bad := []byte("name: r\nseverity: severe\nwhen: count(\"signals\", duration(\"6h\")) > 1\n")
	_, err := svc.Test(ctx, &pb.RuleTestRequest{Source: bad})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), `line 3, column 13: when: count: unknown kind "signals"`) {
		t.Errorf("Test of a bad rule: %v", err)
	}
	now := time.Now()
	_, err = svc.Test(ctx, &pb.RuleTestRequest{Source: []byte(lowBeds), From: timestamppb.New(now), To: timestamppb.New(now.Add(-time.Hour))})
	if status.Code(err) != codes.InvalidArgument || !strings.HasPrefix(status.Convert(err).Message(), "to: ") {
		t.Errorf("Test with to before from: %v", err)
	}
	// A run that ends before the history's retention (24 h here) says so, not that from is
	// later than it was given (review Z, Z5).
	_, err = svc.Test(ctx, &pb.RuleTestRequest{Source: []byte(lowBeds), From: timestamppb.New(now.Add(-72 * time.Hour)), To: timestamppb.New(now.Add(-48 * time.Hour))})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "is before the start of the history's retention") {
		t.Errorf("Test of a run before the retention: %v", err)
	}
	lint, err := svc.Lint(ctx, &pb.LintRequest{Source: bad})
	if err != nil || len(lint.Problems) != 1 || lint.Problems[0].Line != 3 || lint.Problems[0].Column != 13 {
		t.Errorf("Lint of a bad rule: %v %v", lint, err)
	}
}

// TestRecordFieldConditionDryRun checks, on a real store, a condition on a record's fields: a dry
// run fires while a cached sitrep says severity high and clears when its next version says low; a
// string longer than the history keeps reads as absent; and once the peer retracts the sitrep,
// the episode it caused is gone.
func TestRecordFieldConditionDryRun(t *testing.T) {
	svc, d := newService(t)
	ctx := context.Background()
	now := time.Now().UTC()
	ago := func(h float64) *timestamppb.Timestamp {
		return timestamppb.New(now.Add(-time.Duration(h * float64(time.Hour))))
	}
	long := strings.Repeat("x", db.MaxHistoryString+1)
	if res, err := d.Apply(1, []*pb.Record{
		{Id: "own", Origin: "vr-zeeland.crisis.test", Kind: "sitrep", Crisis: "oekraine", Region: "VR19",
			Body: []byte(`{"title":"eigen","summary":"rustig","severity":"low"}`), UpdatedAt: ago(6)},
		{Id: "long", Origin: "vr-zeeland.crisis.test", Kind: "sitrep", Crisis: "oekraine", Region: "VR19",
			Body: []byte(`{"title":"` + long + `","summary":"s","severity":"medium"}`), UpdatedAt: ago(6)},
	}); err != nil || res[0].Err != nil || res[1].Err != nil {
		t.Fatal(err, res)
	}
	cache := &pb.CacheForeign{Peer: "ncc.crisis.test", Origin: "ncc.crisis.test", Cursor: 1, At: timestamppb.New(now)}
	for i, sev := range []string{"high", "low"} {
		cache.Upserts = append(cache.Upserts, &pb.SharedRecord{Record: &pb.Record{Id: "ncc-1", Origin: "ncc.crisis.test", Kind: "sitrep",
			Crisis: "oekraine", Region: "VR19", Body: []byte(`{"title":"landelijk","summary":"s","severity":"` + sev + `"}`), Version: int64(i + 1), UpdatedAt: ago(float64(5 - 2*i))}})
	}
	if err := d.ApplyCacheForeign(2, cache); err != nil {
		t.Fatal(err)
	}
	rule := []byte(`name: sitrep-high
severity: severe
crisis: oekraine
when: records("sitrep").exists(r, r.severity == "high")
`)
	req := &pb.RuleTestRequest{Source: rule, From: ago(6), To: timestamppb.New(now)}
	resp, err := svc.Test(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Episodes) != 1 || resp.Episodes[0].End == nil || len(resp.Errors) > 0 {
		t.Fatalf("episodes %v, errors %v; want one, ended", resp.Episodes, resp.Errors)
	}
	start, end := resp.Episodes[0].Start.AsTime(), resp.Episodes[0].End.AsTime()
	if start.Before(ago(5).AsTime()) || start.After(ago(5).AsTime().Add(time.Minute)) || end.Before(ago(3).AsTime()) || end.After(ago(3).AsTime().Add(time.Minute)) {
		t.Errorf("the episode runs %s to %s, want from 5h ago to 3h ago", start, end)
	}
	if v := resp.Episodes[0].Values; len(v) != 1 || v[0].Expr != `records("sitrep")` || v[0].Value != 3 {
		t.Errorf("the episode's values are %v, want records(\"sitrep\") = 3", v)
	}

	// A title over the bound is not kept: a condition on it finds the record without it.
	long1 := []byte("name: long-title\nseverity: minor\ncrisis: oekraine\nwhen: 'records(\"sitrep\").exists(r, r.severity == \"medium\" && (r.title == \"\" || has(r.title)))'\n")
	resp, err = svc.Test(ctx, &pb.RuleTestRequest{Source: long1, From: ago(1), To: timestamppb.New(now)})
	if err != nil || len(resp.Episodes) != 1 {
		t.Fatalf("a sitrep with a long title: %v %v", resp.GetEpisodes(), err)
	}
	long2 := []byte("name: long-title\nseverity: minor\ncrisis: oekraine\nwhen: 'records(\"sitrep\").exists(r, r.severity == \"medium\" && has(r.title))'\n")
	if resp, err = svc.Test(ctx, &pb.RuleTestRequest{Source: long2, From: ago(1), To: timestamppb.New(now)}); err != nil || len(resp.Episodes) != 0 {
		t.Fatalf("has() of a title over the bound: %v %v, want no episode", resp.GetEpisodes(), err)
	}

	if err := d.ApplyCacheForeign(3, &pb.CacheForeign{Peer: "ncc.crisis.test", Origin: "ncc.crisis.test", Cursor: 2, At: timestamppb.New(now), Retractions: []string{"ncc-1"}}); err != nil {
		t.Fatal(err)
	}
	if resp, err = svc.Test(ctx, req); err != nil || len(resp.Episodes) != 0 {
		t.Fatalf("after the retraction: episodes %v, %v; want none", resp.GetEpisodes(), err)
	}
}

// TestRuleTestBounds: a dry run's from, to and step are times and a duration a node can hold,
// and a step no longer than the history's retention; each is refused naming it, in the node's
// words (review AF, AF7 and AF8): the year 1, the year 9999 and a step of 100 years were taken.
func TestRuleTestBounds(t *testing.T) {
	svc, _ := newService(t)
	const times = "use a time between 1677-09-21T00:12:44Z and 2262-04-11T23:47:16Z"
	year := func(y int) *timestamppb.Timestamp { return timestamppb.New(time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC)) }
	for _, tc := range []struct {
		name  string
		req   *pb.RuleTestRequest
		field string
		msg   string
	}{
		{"from the year 1", &pb.RuleTestRequest{From: year(1)}, "from", "from: 0001-01-01T00:00:00Z is outside the times a node can hold: " + times},
		{"from the year 0", &pb.RuleTestRequest{From: &timestamppb.Timestamp{Seconds: -62167219200}}, "from", "from: -62167219200 seconds since 1970 is outside the times a node can hold: " + times},
		{"to the year 9999", &pb.RuleTestRequest{To: year(9999)}, "to", "to: 9999-01-01T00:00:00Z is outside the times a node can hold: " + times},
		{"to with nanos -1", &pb.RuleTestRequest{To: &timestamppb.Timestamp{Seconds: 1700000000, Nanos: -1}}, "to", "to: nanos -1 is not a fraction of a second: use 0 to 999999999"},
		{"a step of 100 years", &pb.RuleTestRequest{Step: durationpb.New(100 * 365 * 24 * time.Hour)}, "step", "step: 876000h0m0s is longer than the history's retention, 24h0m0s (history.retention), which a run can span at most: use a shorter step, such as 1m"},
		{"the longest step", &pb.RuleTestRequest{Step: &durationpb.Duration{Seconds: math.MaxInt64}}, "step", "step: 9223372036854775807 seconds is beyond what a node can hold"},
		{"a step of opposite signs", &pb.RuleTestRequest{Step: &durationpb.Duration{Seconds: 60, Nanos: -1}}, "step", "step: 60 seconds and -1 nanos have opposite signs"},
		{"a step too short", &pb.RuleTestRequest{Step: durationpb.New(time.Millisecond)}, "step", "step: 1ms is too short: use 1s or more, such as 1m"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.Source = []byte(lowBeds)
			_, err := svc.Test(context.Background(), tc.req)
			msg := status.Convert(err).Message()
			if field, _ := api.Field(err); status.Code(err) != codes.InvalidArgument || !strings.HasPrefix(msg, tc.msg) || field != tc.field || strings.Contains(msg, "proto") || strings.Contains(msg, "warn:") {
				t.Errorf("%v %q at %q, want INVALID_ARGUMENT %q at %s", status.Code(err), msg, field, tc.msg, tc.field)
			}
		})
	}
}

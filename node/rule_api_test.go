package node_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/knooppunt/knooppunt/node/api/rules"
	"github.com/knooppunt/knooppunt/node/cap"
	"github.com/knooppunt/knooppunt/node/cap/captest"
	"github.com/knooppunt/knooppunt/node/metrics"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestRuleApplyListDelete checks the rule steps on a real node over mTLS: an editor and an
// officer apply rules in person, a new apply is a new version, the stored source again is no new
// version and no step, every step is audited under its author, a rule that does not lint is
// refused with its position and stores nothing, the local socket cannot take a step, and a
// deleted rule is gone.
func TestRuleApplyListDelete(t *testing.T) {
	own := newMTLSOrg(t, mtlsOwnTD)
	n := startMTLSNode(t, own, own.filesIdentity()+fmt.Sprintf(`roles:
  - {id: spiffe://%[1]s/user/editor, role: editor}
  - {id: spiffe://%[1]s/user/officer, role: officer}
`, mtlsOwnTD))
	ctx := t.Context()
	editor := pb.NewRuleServiceClient(n.dial(t, own.svid(t, "/user/editor")))
	officer := pb.NewRuleServiceClient(n.dial(t, own.svid(t, "/user/officer")))
	local := pb.NewRuleServiceClient(n.local(t))
	src := func(threshold int) []byte {
		return fmt.Appendf(nil, "name: signals\nseverity: moderate\nwhen: count(\"signal\", duration(\"6h\")) >= %d\n", threshold)
	}

	r, err := editor.Apply(ctx, &pb.ApplyRuleRequest{Source: src(3), Reason: "three signals"})
	if err != nil || r.Name != "signals" || r.Version != 1 || r.Severity != "moderate" || r.AppliedBy != "spiffe://"+mtlsOwnTD+"/user/editor" {
		t.Fatalf("editor applies: %v %v", r, err)
	}
	if r, err = officer.Apply(ctx, &pb.ApplyRuleRequest{Source: src(2)}); err != nil || r.Version != 2 || !strings.Contains(string(r.Source), ">= 2") {
		t.Fatalf("officer applies a new version: %v %v", r, err)
	}
	// The stored source again, byte for byte, is no change: version 2 stands, still the officer's,
	// and the answer's trailer says so; no step is taken, so none is audited below.
	var trailer metadata.MD
	if r, err = editor.Apply(ctx, &pb.ApplyRuleRequest{Source: src(2), Reason: "again"}, grpc.Trailer(&trailer)); err != nil || r.Version != 2 ||
		r.AppliedBy != "spiffe://"+mtlsOwnTD+"/user/officer" || fmt.Sprint(trailer.Get(rules.UnchangedTrailer)) != "[2]" {
		t.Fatalf("editor applies the stored source again: %v %v, trailer %v; want version 2 unchanged", r, err, trailer)
	}
	_, err = editor.Apply(ctx, &pb.ApplyRuleRequest{Source: []byte("name: broken\nseverity: moderate\nwhen: count(\"signals\", duration(\"6h\")) >= 3\n")})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), `line 3, column 13: when: count: unknown kind "signals"`) {
		t.Errorf("a rule that does not lint: %v", err)
	}
	if _, err := local.Apply(ctx, &pb.ApplyRuleRequest{Source: src(1)}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("the local socket applies: %v, want PERMISSION_DENIED", err)
	}
	list, err := local.List(ctx, &pb.ListRulesRequest{})
	if err != nil || len(list.Rules) != 1 || list.Rules[0].Name != "signals" || list.Rules[0].Version != 2 {
		t.Fatalf("list after the steps: %v %v; want only signals at version 2", list, err)
	}

	// Without a reason it is refused, at reason, and the rule stays (review Z, Z7): its open
	// alerts' resolution notes say why it went.
	if _, err := officer.Delete(ctx, &pb.DeleteRuleRequest{Name: "signals", Reason: "  "}); status.Code(err) != codes.InvalidArgument || !strings.HasPrefix(status.Convert(err).Message(), "reason: missing: ") {
		t.Errorf("delete without a reason: %v, want INVALID_ARGUMENT at reason", err)
	}
	if _, err := local.Get(ctx, &pb.GetRuleRequest{Name: "signals"}); err != nil {
		t.Errorf("a refused delete took the rule away: %v", err)
	}
	if _, err := officer.Delete(ctx, &pb.DeleteRuleRequest{Name: "signals", Reason: "done"}); err != nil {
		t.Fatal(err)
	}
	if _, err := local.Get(ctx, &pb.GetRuleRequest{Name: "signals"}); status.Code(err) != codes.NotFound {
		t.Errorf("get after delete: %v, want NOT_FOUND", err)
	}
	if _, err := officer.Delete(ctx, &pb.DeleteRuleRequest{Name: "signals", Reason: "again"}); status.Code(err) != codes.NotFound {
		t.Errorf("delete twice: %v, want NOT_FOUND", err)
	}
	// A name that is none is refused before it reaches the Raft log, quoted short.
	long := strings.Repeat("x", 1<<20)
	for what, call := range map[string]func() error{
		"get": func() error { _, err := local.Get(ctx, &pb.GetRuleRequest{Name: long}); return err },
		"delete": func() error {
			_, err := officer.Delete(ctx, &pb.DeleteRuleRequest{Name: long, Reason: "x"})
			return err
		},
	} {
		err := call()
		if status.Code(err) != codes.InvalidArgument || len(status.Convert(err).Message()) > 300 {
			t.Errorf("%s of a name of a megabyte: %v (%d bytes), want INVALID_ARGUMENT, quoted short", what, status.Code(err), len(status.Convert(err).Message()))
		}
	}

	audit, err := pb.NewAuditServiceClient(n.local(t)).List(ctx, &pb.ListAuditRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var steps []string
	for _, e := range audit.Entries {
		if strings.HasPrefix(e.Action, "rule.") {
			steps = append(steps, e.Action+" "+e.Subject+" "+strings.TrimPrefix(e.Actor, "spiffe://"+mtlsOwnTD))
		}
	}
	if got := strings.Join(steps, "; "); got != "rule.apply signals /user/editor; rule.apply signals /user/officer; rule.delete signals /user/officer" {
		t.Errorf("audited rule steps: %s", got)
	}
}

// TestRuleFiresOneAlertPerEpisode checks, on a real node that evaluates every second, that a
// stored rule fires one alert record when its condition holds, keeps that one record while it
// still holds, marks it resolved once the clear condition holds, and opens that record again for
// a second episode within the hour; and that knooppunt_rule_firing follows.
// ruleNode starts a node that evaluates its rules every second, and returns a RuleService client
// of its editor and a RecordService client on its local socket.
func ruleNode(t *testing.T) (pb.RuleServiceClient, pb.RecordServiceClient) {
	own := newMTLSOrg(t, mtlsOwnTD)
	n := startMTLSNode(t, own, own.filesIdentity()+fmt.Sprintf(`roles:
  - {id: spiffe://%[1]s/user/editor, role: editor}
rules: {every: 1s}
`, mtlsOwnTD))
	return pb.NewRuleServiceClient(n.dial(t, own.svid(t, "/user/editor"))), pb.NewRecordServiceClient(n.local(t))
}

func TestRuleFiresOneAlertPerEpisode(t *testing.T) {
	editor, records := ruleNode(t)
	ctx := t.Context()
	if _, err := editor.Apply(ctx, &pb.ApplyRuleRequest{Source: []byte(`name: zeeland-beds-low
severity: severe
crisis: oekraine
regions: [VR19]
when: sum("shelter.capacity", "beds_free") < 10
clear: sum("shelter.capacity", "beds_free") > 20
`)}); err != nil {
		t.Fatal(err)
	}
	beds := func(free int) {
		t.Helper()
		_, err := records.Put(ctx, &pb.PutRequest{Record: &pb.Record{Id: "middelburg", Kind: "shelter.capacity", Crisis: "oekraine", Region: "VR19",
			Classification: pb.Classification_INTERNAL, Body: fmt.Appendf(nil, `{"municipality":"Middelburg","beds_total":100,"beds_free":%d}`, free)}})
		if err != nil {
			t.Fatal(err)
		}
	}
	alerts := func() (firing, resolved []string) {
		t.Helper()
		resp, err := records.List(ctx, &pb.ListRequest{Kind: "alert"})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range resp.Records {
			if r.Labels["status"] == "firing" {
				firing = append(firing, r.Id)
			} else {
				resolved = append(resolved, r.Id)
			}
		}
		return firing, resolved
	}
	waitFor := func(what string, ok func(firing, resolved []string) bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			f, r := alerts()
			if ok(f, r) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %s within 20s: firing %v, resolved %v", what, f, r)
			}
			select {
			case <-ctx.Done():
				t.Fatal(ctx.Err())
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	firingGauge := func() float64 {
		return testutil.ToFloat64(metrics.RuleFiring.WithLabelValues("zeeland-beds-low", "VR19"))
	}

	beds(30)
	beds(5)
	waitFor("firing alert", func(f, r []string) bool { return len(f) == 1 && len(r) == 0 })
	first, _ := alerts()
	firing := exportAlert(t, records, first[0])
	if firing.MsgType != "Alert" || firing.Identifier != first[0] || firing.Sender != mtlsOwnTD || firing.Scope != "Restricted" ||
		firing.Info[0].Severity != "Severe" || firing.Info[0].Event != "zeeland-beds-low" || firing.Info[0].Area[0].Geocode[0].Value != "VR19" {
		t.Fatalf("the firing alert as CAP: %+v", firing)
	}
	if firingGauge() != 1 {
		t.Errorf("knooppunt_rule_firing is %g while the rule fires, want 1", firingGauge())
	}
	// Still low, and between the thresholds: the same one alert, for several evaluations.
	beds(15)
	lastTick := time.Now().Truncate(time.Second)
	waitFor("three more evaluations", func([]string, []string) bool { return time.Since(lastTick) > 3*time.Second })
	if f, r := alerts(); len(f) != 1 || f[0] != first[0] || len(r) != 0 {
		t.Fatalf("while the value hovers between the thresholds: firing %v, resolved %v; want only %s", f, r, first[0])
	}
	beds(25)
	waitFor("resolved alert", func(f, r []string) bool { return len(f) == 0 && len(r) == 1 && r[0] == first[0] })
	if firingGauge() != 0 {
		t.Errorf("knooppunt_rule_firing is %g after the rule cleared, want 0", firingGauge())
	}
	resolved := exportAlert(t, records, first[0])
	if resolved.MsgType != "Update" || resolved.References != mtlsOwnTD+","+first[0]+","+firing.Sent || resolved.Info[0].Expires == "" ||
		resolved.Info[0].ResponseType[0] != "AllClear" {
		t.Fatalf("the resolved alert as CAP: %+v", resolved)
	}
	// Its body says when it resolved, under the name the picture's list of alerts that ended
	// reads (node/ui alertFields, review T, T1).
	rec, err := records.Get(ctx, &pb.GetRequest{Id: first[0]})
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		State      string     `json:"state"`
		ResolvedAt *time.Time `json:"resolved_at"`
	}
	if err := json.Unmarshal(rec.Body, &body); err != nil || body.State != "resolved" || body.ResolvedAt == nil || time.Since(*body.ResolvedAt) > time.Minute {
		t.Fatalf("the resolved alert's body: %s (%v); want state resolved and resolved_at just now", rec.Body, err)
	}
	// The next episode, within the hour, opens the alert again: an Update of the first and of
	// the AllClear it follows, under an identifier of its own.
	beds(1)
	waitFor("second episode", func(f, r []string) bool { return len(f) == 1 && len(r) == 0 && f[0] == first[0] })
	again := exportAlert(t, records, first[0])
	if again.MsgType != "Update" || again.Identifier != first[0]+".reopened-1" ||
		again.References != mtlsOwnTD+","+first[0]+","+firing.Sent+" "+mtlsOwnTD+","+resolved.Identifier+","+resolved.Sent {
		t.Fatalf("the alert opened again as CAP: %+v", again)
	}
}

// exportAlert reads an alert record and writes it as CAP 1.2, which must be valid against the
// OASIS schema.
func exportAlert(t *testing.T, records pb.RecordServiceClient, id string) *cap.Alert {
	t.Helper()
	r, err := records.Get(t.Context(), &pb.GetRequest{Id: id})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := captest.Export(t, r)
	return a
}

// TestRecordFieldRuleFiresOnTheLeader: a rule on a record's fields fires on the leader when a
// sitrep says severity high, writes one alert naming the values, and resolves when it no longer
// does.
func TestRecordFieldRuleFiresOnTheLeader(t *testing.T) {
	editor, records := ruleNode(t)
	ctx := t.Context()
	if _, err := editor.Apply(ctx, &pb.ApplyRuleRequest{Source: []byte(`name: sitrep-high
severity: severe
crisis: oekraine
when: records("sitrep").exists(r, r.severity == "high")
`)}); err != nil {
		t.Fatal(err)
	}
	sitrep := func(sev string) {
		t.Helper()
		if _, err := records.Put(ctx, &pb.PutRequest{Record: &pb.Record{Id: "sitrep-vr19", Kind: "sitrep", Crisis: "oekraine", Region: "VR19",
			Classification: pb.Classification_INTERNAL, Body: fmt.Appendf(nil, `{"title":"Zeeland","summary":"s","severity":%q}`, sev)}}); err != nil {
			t.Fatal(err)
		}
	}
	wait := func(status string) *pb.Record {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			resp, err := records.List(ctx, &pb.ListRequest{Kind: "alert"})
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.Records) > 1 {
				t.Fatalf("%d alerts, want one", len(resp.Records))
			}
			if len(resp.Records) == 1 && resp.Records[0].Labels["status"] == status {
				return resp.Records[0]
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %s alert within 20s: %v", status, resp.Records)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	sitrep("medium")
	sitrep("high")
	a := wait("firing")
	if a.Region != "VR19" || !strings.Contains(string(a.Body), `"expr":"records(\"sitrep\")"`) {
		t.Errorf("the alert %s in %s: %s", a.Id, a.Region, a.Body)
	}
	sitrep("low")
	if r := wait("resolved"); r.Id != a.Id {
		t.Errorf("resolved %s, want %s", r.Id, a.Id)
	}
}

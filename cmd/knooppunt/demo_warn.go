package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/knooppunt/knooppunt/node/assessment"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// demoRule is VR Zeeland's early-warning rule: free shelter beds in Zeeland under 5% of the total,
// clear again above 8%, so that a value hovering at 5% does not flap.
const demoRule = `name: zeeland-beds-low
description: Vrije opvangplekken in Zeeland onder 5%
severity: severe
crisis: oekraine
regions: [VR19]
when: ratio(sum("shelter.capacity", "beds_free"), sum("shelter.capacity", "beds_total")) < 0.05
clear: ratio(sum("shelter.capacity", "beds_free"), sum("shelter.capacity", "beds_total")) > 0.08
`

// demoBedSteps are LCVS's updates of free beds in Zeeland, one step at a time: from 77 of 640
// (12%) to 31 (4.8%), where VR Zeeland's rule fires.
var demoBedSteps = []struct {
	id, municipality string
	total, free      int
}{
	{"shelter-vlissingen", "Vlissingen", 130, 12},
	{"shelter-terneuzen", "Terneuzen", 110, 6},
	{"shelter-middelburg", "Middelburg", 150, 3},
	{"shelter-goes", "Goes", 120, 1},
}

// demoAssessment is NCC's assessment of the picture once it shows VR Zeeland's alert.
var demoAssessment = struct{ text, development, advice string }{
	"Opvang in Zeeland is bijna vol: minder dan 5% vrije plekken (alert VR Zeeland).",
	"Zonder spreiding zijn de plekken in VR19 binnen twee dagen op.",
	"Spreid nieuwe instroom naar VR09; LCVS opent extra plekken in Goes.",
}

// runEarlyWarning plays item 5 of the scenario: LCVS lowers free beds in Zeeland step by step,
// VR Zeeland's rule fires, NCC's picture shows the alert (under VR Zeeland's policy), NCC
// publishes an assessment, and VR Utrecht endorses it.
func runEarlyWarning(ctx context.Context, out io.Writer, orgs map[string]*demoOrg) error {
	zeeland, lcvs, ncc, utrecht := orgs["vr-zeeland"], orgs["lcvs"], orgs["ncc"], orgs["vr-utrecht"]
	fmt.Fprintf(out, "\n=== Early warning: VR Zeeland's rule, LCVS's beds, NCC's assessment ===\n")
	conn, err := zeeland.as("editor").dial()
	if err != nil {
		return err
	}
	_, err = pb.NewRuleServiceClient(conn).Apply(ctx, &pb.ApplyRuleRequest{Source: []byte(demoRule)})
	conn.Close()
	if err != nil {
		return fmt.Errorf("vr-zeeland: rule apply: %w", callError(zeeland.as("editor"), err))
	}
	fmt.Fprintf(out, "  VR Zeeland   rule zeeland-beds-low applied by its editor: free beds in VR19 under 5%%\n")

	// Each step must reach VR Zeeland before the next, so that its history holds every step.
	for _, s := range demoBedSteps {
		c, closeC, err := lcvs.local().records()
		if err != nil {
			return err
		}
		body := fmt.Sprintf(`{"municipality":%q,"location":"Opvanglocatie %s","beds_total":%d,"beds_free":%d,"notes":"demo figures, made up"}`, s.municipality, s.municipality, s.total, s.free)
		_, err = c.Put(ctx, &pb.PutRequest{Record: &pb.Record{Id: s.id, Kind: "shelter.capacity", Crisis: "oekraine", Region: "VR19",
			Classification: pb.Classification_INTERNAL, Labels: map[string]string{"source": "lcvs"}, Body: []byte(body)}})
		closeC()
		if err != nil {
			return fmt.Errorf("lcvs: %w", callError(lcvs.local(), err))
		}
		if err := waitPicture(ctx, zeeland, "LCVS's update of "+s.id, func(p *pb.PictureResponse) bool {
			for _, e := range p.Entries {
				if e.Record.Id == s.id && e.Source == lcvs.td && bedsFree(e.Record) == s.free {
					return true
				}
			}
			return false
		}); err != nil {
			return err
		}
		fmt.Fprintf(out, "  LCVS         %s: %d of %d beds free\n", s.municipality, s.free, s.total)
	}

	alert := func(p *pb.PictureResponse) *pb.Record {
		for _, e := range p.Entries {
			if e.Kind == "alert" && e.Record.Origin == zeeland.td && e.Record.Labels["status"] == "firing" {
				return e.Record
			}
		}
		return nil
	}
	var fired *pb.Record
	if err := waitPicture(ctx, ncc, "VR Zeeland's alert", func(p *pb.PictureResponse) bool { fired = alert(p); return fired != nil }); err != nil {
		return err
	}
	fmt.Fprintf(out, "  VR Zeeland   the rule fired: alert %s, shared under its policy vr19-alerts-to-ncc\n", fired.Id)
	var b struct {
		Rule, Region string
		Info         []struct{ Severity string }
	}
	if err := json.Unmarshal(fired.Body, &b); err != nil {
		return fmt.Errorf("VR Zeeland's alert %s: %w", fired.Id, err)
	}
	severity := ""
	if len(b.Info) > 0 {
		severity = ", " + b.Info[0].Severity
	}
	fmt.Fprintf(out, "  NCC          its picture shows the alert: rule %s fires in %s%s\n", b.Rule, b.Region, severity)

	c, closeC, err := ncc.local().records()
	if err != nil {
		return err
	}
	p, err := ncc.picture(ctx)
	if err != nil {
		closeC()
		return err
	}
	rec, err := assessment.New(p, demoAssessment.text, demoAssessment.development, demoAssessment.advice)
	if err != nil {
		closeC()
		return err
	}
	put, err := c.Put(ctx, &pb.PutRequest{Record: rec})
	closeC()
	if err != nil {
		return fmt.Errorf("ncc: %w", callError(ncc.local(), err))
	}
	fmt.Fprintf(out, "  NCC          published its assessment %s version %d on the picture %s\n", put.Id, put.Version, short(assessment.Fingerprint(p).Hash))

	var seen *assessment.View
	if err := waitPicture(ctx, utrecht, "NCC's assessment", func(p *pb.PictureResponse) bool {
		v, err := assessment.Current(p, utrecht.td, nil)
		seen = v
		return err == nil && v != nil && v.Origin == ncc.td && v.Version == put.Version
	}); err != nil {
		return err
	}
	resp, err := assessment.NewResponse(seen.Record, utrecht.td, assessment.Endorse, "")
	if err != nil {
		return err
	}
	c, closeC, err = utrecht.local().records()
	if err != nil {
		return err
	}
	_, err = c.Put(ctx, &pb.PutRequest{Record: resp})
	closeC()
	if err != nil {
		return fmt.Errorf("vr-utrecht: %w", callError(utrecht.local(), err))
	}
	fmt.Fprintf(out, "  VR Utrecht   endorsed it, shared back under its policy vr09-responses-to-ncc\n")

	var view *assessment.View
	if err := waitPicture(ctx, ncc, "VR Utrecht's endorsement", func(p *pb.PictureResponse) bool {
		v, err := assessment.Current(p, ncc.td, nil)
		view = v
		return err == nil && v != nil && len(v.Endorsed) > 0
	}); err != nil {
		return err
	}
	fmt.Fprintf(out, "\n=== knooppunt assessment show --crisis oekraine, at NCC ===\n")
	printAssessment(out, view)
	return nil
}

func bedsFree(r *pb.Record) int {
	var b struct {
		BedsFree int `json:"beds_free"`
	}
	json.Unmarshal(r.Body, &b)
	return b.BedsFree
}

// waitPicture waits, bounded, until the org's picture satisfies ok.
func waitPicture(ctx context.Context, o *demoOrg, what string, ok func(*pb.PictureResponse) bool) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		p, err := o.picture(ctx)
		if err == nil && ok(p) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %s did not arrive within 30s (last error: %v): see the node.log files", o.name, what, err)
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

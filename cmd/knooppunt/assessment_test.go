package main

import (
	"strings"
	"testing"

	"github.com/knooppunt/knooppunt/node/assessment"
)

// TestCLIAssessment: publish ties the assessment to the picture; show says the picture is the one
// it interprets until a record changes it, then flags it and names the source; endorse and remark
// are listed; bad input names the flag to fix.
func TestCLIAssessment(t *testing.T) {
	addr, _ := servedNode(t)
	put := func(free string) {
		cli(t, nil, "", "record", "put", "--node", addr, "--kind", "shelter.capacity", "--crisis", "oekraine", "--region", "VR19",
			"--classification", "internal", "--id", "shelter-goes", "--body", `{"municipality":"Goes","beds_total":120,"beds_free":`+free+`}`).want(t, 0)
	}
	put("7")
	if r := cli(t, nil, "", "assessment", "show", "--node", addr, "--crisis", "oekraine").want(t, 1); !strings.Contains(r.stderr, "no assessment of crisis oekraine") {
		t.Fatalf("show without an assessment: %q", r.stderr)
	}
	if r := cli(t, nil, "", "assessment", "publish", "--node", addr, "--crisis", "oekraine", "--text", "vol").want(t, 1); !strings.Contains(r.stderr, "--development: write") {
		t.Fatalf("publish without --development: %q", r.stderr)
	}
	r := cli(t, nil, "", "assessment", "publish", "--node", addr, "--crisis", "oekraine", "--text", "Zeeland raakt vol",
		"--development", "Binnen twee dagen vol", "--advice", "Spreid naar VR09").want(t, 0)
	if !strings.HasPrefix(r.stdout, "published assessment-oekraine version 1 on the picture ") {
		t.Fatalf("publish printed %q", r.stdout)
	}
	var v struct {
		Changed  bool     `json:"picture_changed"`
		Exact    bool     `json:"exact"`
		Sources  []string `json:"changed_sources"`
		Endorsed []struct {
			Org string `json:"org"`
		} `json:"endorsed"`
		Remarks []struct {
			Text string `json:"text"`
		} `json:"remarks"`
		Assessment struct {
			Advice string `json:"advice"`
		} `json:"assessment"`
	}
	cli(t, nil, "", "assessment", "show", "--node", addr, "--crisis", "oekraine", "-o", "json").want(t, 0).oneJSON(t, &v)
	if v.Changed || !v.Exact || v.Assessment.Advice != "Spreid naar VR09" {
		t.Fatalf("show right after publish: %+v", v)
	}
	if r := cli(t, nil, "", "assessment", "show", "--node", addr, "--crisis", "oekraine").want(t, 0); !strings.Contains(r.stdout, "The picture is the one it interprets") {
		t.Fatalf("show right after publish:\n%s", r.stdout)
	}

	put("2")
	cli(t, nil, "", "assessment", "show", "--node", addr, "--crisis", "oekraine", "-o", "json").want(t, 0).oneJSON(t, &v)
	if !v.Changed || len(v.Sources) != 1 || v.Sources[0] != "local.crisis.test" {
		t.Fatalf("show after a change: %+v", v)
	}
	if r := cli(t, nil, "", "assessment", "show", "--node", addr, "--crisis", "oekraine").want(t, 0); !strings.Contains(r.stdout, "THE PICTURE CHANGED since it was written") {
		t.Fatalf("show after a change:\n%s", r.stdout)
	}

	if r := cli(t, nil, "", "assessment", "remark", "--node", addr, "--crisis", "oekraine").want(t, 1); !strings.Contains(r.stderr, "--text: a remark needs its text") {
		t.Fatalf("remark without text: %q", r.stderr)
	}
	cli(t, nil, "", "assessment", "endorse", "--node", addr, "--crisis", "oekraine").want(t, 0)
	cli(t, nil, "", "assessment", "remark", "--node", addr, "--crisis", "oekraine", "--text", "Goes krijgt 20 extra").want(t, 0)
	cli(t, nil, "", "assessment", "show", "--node", addr, "--crisis", "oekraine", "-o", "json").want(t, 0).oneJSON(t, &v)
	if len(v.Endorsed) != 1 || v.Endorsed[0].Org != "local.crisis.test" || len(v.Remarks) != 1 || v.Remarks[0].Text != "Goes krijgt 20 extra" {
		t.Fatalf("show after endorse and remark: %+v", v)
	}
	// The responses are not part of the picture the assessment interprets.
	if len(v.Sources) != 1 {
		t.Fatalf("the responses changed the picture: %+v", v)
	}

	// Within an exercise: its own assessment, on its own picture, beside the actual one, as the
	// web interface publishes it (review AL, AL11).
	cli(t, nil, "", "exercise", "start", "oef-duiding", "--reason", "test", "--node", addr).want(t, 0)
	inExercise := func(args ...string) []string {
		return append(args, "--node", addr, "--crisis", "oekraine", "--exercise", "oef-duiding")
	}
	if r := cli(t, nil, "", inExercise("assessment", "show")...).want(t, 1); !strings.Contains(r.stderr, "no assessment of crisis oekraine in exercise oef-duiding") {
		t.Fatalf("show in an exercise without an assessment of its own: %q", r.stderr)
	}
	cli(t, nil, "", "record", "put", "--node", addr, "--kind", "shelter.capacity", "--crisis", "oekraine", "--region", "VR19", "--exercise", "oef-duiding",
		"--classification", "internal", "--id", "oef-goes", "--body", `{"municipality":"Goes","beds_total":50,"beds_free":0}`).want(t, 0)
	r = cli(t, nil, "", inExercise("assessment", "publish", "--text", "Oefening: Goes vol", "--development", "Blijft vol", "--advice", "Oefen de uitwijk")...).want(t, 0)
	if !strings.HasPrefix(r.stdout, "OEFENING oef-duiding") || !strings.Contains(r.stdout, "published assessment-oekraine:oef-duiding version 1 on the picture ") {
		t.Fatalf("publish in an exercise printed %q", r.stdout)
	}
	cli(t, nil, "", inExercise("assessment", "endorse")...).want(t, 0)
	cli(t, nil, "", inExercise("assessment", "show", "-o", "json")...).want(t, 0).oneJSON(t, &v)
	if v.Changed || !v.Exact || v.Assessment.Advice != "Oefen de uitwijk" || len(v.Endorsed) != 1 || len(v.Remarks) != 0 {
		t.Fatalf("show in the exercise: %+v", v)
	}
	cli(t, nil, "", "assessment", "show", "--node", addr, "--crisis", "oekraine", "-o", "json").want(t, 0).oneJSON(t, &v)
	if v.Assessment.Advice != "Spreid naar VR09" || len(v.Remarks) != 1 {
		t.Fatalf("the actual assessment after the exercise's: %+v", v)
	}
	if r := cli(t, nil, "", inExercise("assessment", "show")...).want(t, 0); !strings.HasPrefix(r.stdout, "OEFENING oef-duiding: exercise records only") {
		t.Fatalf("show in the exercise:\n%s", r.stdout)
	}
}

// TestPrintAssessmentCannotTell: a partner whose copy may be behind is named as one of which it
// cannot be told whether it changed, and "no source changed" is not said of it.
func TestPrintAssessmentCannotTell(t *testing.T) {
	v := &assessment.View{ID: "assessment-oekraine", Origin: "ncc.crisis.test", Version: 1, ChangedSources: []string{}, CannotTell: []string{"lcvs.crisis.test"}, SumsKept: true}
	var b strings.Builder
	printAssessment(&b, v)
	if out := b.String(); !strings.Contains(out, "No source that answers has changed since it was written.\nCANNOT TELL whether lcvs.crisis.test changed") || strings.Contains(out, "No source this node shows") {
		t.Errorf("lcvs does not answer:\n%s", out)
	}
	v.Changed, v.ChangedSources = true, []string{"vr-zeeland.crisis.test"}
	b.Reset()
	printAssessment(&b, v)
	if out := b.String(); !strings.Contains(out, "THE PICTURE CHANGED since it was written: records of vr-zeeland.crisis.test are newer, or left the picture\nCANNOT TELL whether lcvs.crisis.test changed") {
		t.Errorf("vr-zeeland changed and lcvs does not answer:\n%s", out)
	}
}

// TestPrintAssessmentTakenOver: a slot whose entry is now another source's newer record is named
// as now from that source, under the line that names the changed sources, which lack the source
// whose record it outranks.
func TestPrintAssessmentTakenOver(t *testing.T) {
	v := &assessment.View{ID: "assessment-oekraine", Origin: "ncc.crisis.test", Version: 1, Changed: true, Exact: true,
		ChangedSources: []string{"vr-zeeland.crisis.test"}, CannotTell: []string{},
		TakenOver: []assessment.Takeover{{Kind: "shelter.capacity", Region: "VR19", Key: "Goes", Source: "vr-zeeland.crisis.test", Over: []string{"lcvs.crisis.test"}}}}
	v.Body.Picture.Hash, v.Now.Hash = "sha256:aaaaaaaaaaaaaaaa", "sha256:bbbbbbbbbbbbbbbb"
	var b strings.Builder
	printAssessment(&b, v)
	want := "THE PICTURE CHANGED since it was written (aaaaaaaaaaaa, now bbbbbbbbbbbb); changed: vr-zeeland.crisis.test\n" +
		"  Goes (shelter.capacity, VR19): now from vr-zeeland.crisis.test, whose newer record takes the place of lcvs.crisis.test's\n"
	if out := b.String(); !strings.Contains(out, want) {
		t.Errorf("VR Zeeland's Goes outranks LCVS's:\n%s\nwant\n%s", out, want)
	}
	v.ChangedSources, v.TakenOver = []string{}, []assessment.Takeover{}
	b.Reset()
	printAssessment(&b, v)
	if out := b.String(); !strings.Contains(out, "THE PICTURE CHANGED since it was written (aaaaaaaaaaaa, now bbbbbbbbbbbb), though no source wrote, shared or withdrew a record since\n") {
		t.Errorf("no source changed:\n%s", out)
	}
}

package main

import (
	"strings"
	"testing"
	"time"

	"github.com/knooppunt/knooppunt/federation/fedtest"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// assessmentJSON is what assessment show -o json prints, in part.
type assessmentJSON struct {
	Origin   string `json:"origin"`
	Endorsed []struct {
		Org string `json:"org"`
	} `json:"endorsed"`
	Assessment struct {
		Text string `json:"text"`
	} `json:"assessment"`
	NotReceived []struct {
		Source  string `json:"source"`
		Entries int    `json:"entries"`
	} `json:"not_received"`
	Others []assessmentJSON `json:"others"`
}

// TestCLIAssessmentOfTwoOrgs: two organisations' assessments of one crisis are each their own.
// show gives the node's own first, then the other's, each with its own endorsements, and
// --origin one alone; endorse and remark refuse to choose between them without --origin, and
// an endorsement of one leaves that of the other. The partner's assessment, written on records of
// its own that this node does not receive, says so. publish --fail-on-partial publishes nothing
// while a partner does not answer; publish without it says PARTIAL.
func TestCLIAssessmentOfTwoOrgs(t *testing.T) {
	f := fedtest.Start(t, fedtest.Options{Orgs: 2})
	a, b := f.Org("a"), f.Org("b")
	a.Approve(t, "name: a-duiding\npurpose: gedeelde duiding\nrecipients: [spiffe://"+b.TD.Name()+"]\nkinds: [assessment]\nmax_classification: internal\n")
	b.Approve(t, "name: b-reacties\npurpose: gedeelde duiding\nrecipients: [spiffe://"+a.TD.Name()+"]\nkinds: [assessment.response]\nmax_classification: internal\n")
	// a's own figures, which it does not share with b.
	a.Put(t, &pb.Record{Id: "shelter-goes", Kind: "shelter.capacity", Crisis: "oekraine", Region: "VR19", Classification: pb.Classification_INTERNAL,
		Body: []byte(`{"municipality":"Goes","beds_total":120,"beds_free":7}`)})
	atA, atB := "unix://"+a.SocketPath(), "unix://"+b.SocketPath()
	publish := func(node, text string, extra ...string) result {
		return cli(t, nil, "", append([]string{"assessment", "publish", "--node", node, "--crisis", "oekraine", "--text", text,
			"--development", "d", "--advice", "c"}, extra...)...)
	}
	publish(atA, "Duiding van a").want(t, 0)
	publish(atB, "Duiding van b").want(t, 0)

	var v assessmentJSON
	fedtest.Eventually(t, 10*time.Second, "b shows a's assessment beside its own", func() (bool, string) {
		r := cli(t, nil, "", "assessment", "show", "--node", atB, "--crisis", "oekraine", "-o", "json").want(t, 0)
		v = assessmentJSON{}
		r.oneJSON(t, &v)
		return len(v.Others) == 1, r.stdout
	})
	if v.Origin != b.TD.Name() || v.Assessment.Text != "Duiding van b" || v.Others[0].Origin != a.TD.Name() || v.Others[0].Assessment.Text != "Duiding van a" {
		t.Fatalf("show at b: %+v, want b's first, then a's", v)
	}
	if nr := v.Others[0].NotReceived; len(nr) != 1 || nr[0].Source != a.TD.Name() || nr[0].Entries != 1 {
		t.Errorf("a's assessment at b, which receives none of a's figures: not received %+v", nr)
	}
	r := cli(t, nil, "", "assessment", "show", "--node", atB, "--crisis", "oekraine").want(t, 0)
	for _, want := range []string{
		"Assessment assessment-oekraine of " + b.TD.Name() + ", version 1",
		"Assessment assessment-oekraine of " + a.TD.Name() + ", version 1",
		"Written on a picture with sources this node does not receive: " + a.TD.Name() + " (1 entry); the figures here may differ.",
		"Endorsed by: none that reached this node (endorsements travel under each partner's own policy)",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("show at b lacks %q:\n%s", want, r.stdout)
		}
	}
	if i, j := strings.Index(r.stdout, "of "+b.TD.Name()), strings.Index(r.stdout, "of "+a.TD.Name()); i > j {
		t.Errorf("show at b gives a's before its own:\n%s", r.stdout)
	}
	// --origin by a peer's name.
	cli(t, nil, "", "assessment", "show", "--node", atB, "--crisis", "oekraine", "--origin", "a", "-o", "json").want(t, 0).oneJSON(t, &v)
	if v.Origin != a.TD.Name() || len(v.Others) != 0 {
		t.Errorf("show --origin a at b: %+v", v)
	}
	if r := cli(t, nil, "", "assessment", "show", "--node", atB, "--crisis", "oekraine", "--origin", "nope").want(t, 1); !strings.Contains(r.stderr, `--origin: "nope" is neither this node's org`) {
		t.Errorf("show --origin nope: %q", r.stderr)
	}

	if r := cli(t, nil, "", "assessment", "endorse", "--node", atB, "--crisis", "oekraine").want(t, 1); !strings.Contains(r.stderr,
		"--origin: 2 organisations' assessments of crisis oekraine have reached this node: "+b.TD.Name()+", "+a.TD.Name()+"; name whose you endorse, such as --origin "+b.TD.Name()) {
		t.Errorf("endorse without --origin at b: %q", r.stderr)
	}
	cli(t, nil, "", "assessment", "endorse", "--node", atB, "--crisis", "oekraine", "--origin", a.TD.Name()).want(t, 0)
	cli(t, nil, "", "assessment", "endorse", "--node", atB, "--crisis", "oekraine", "--origin", "b").want(t, 0)
	cli(t, nil, "", "assessment", "remark", "--node", atB, "--crisis", "oekraine", "--origin", "a", "--text", "Goes heeft er 1").want(t, 0)
	cli(t, nil, "", "assessment", "show", "--node", atB, "--crisis", "oekraine", "-o", "json").want(t, 0).oneJSON(t, &v)
	if len(v.Endorsed) != 1 || v.Endorsed[0].Org != b.TD.Name() || len(v.Others) != 1 || len(v.Others[0].Endorsed) != 1 || v.Others[0].Endorsed[0].Org != b.TD.Name() {
		t.Errorf("b endorsed both: %+v", v)
	}
	// At a, which holds its own assessment alone, endorse needs no --origin, and b's
	// endorsement of a's reached it.
	fedtest.Eventually(t, 10*time.Second, "a shows b's endorsement of its assessment", func() (bool, string) {
		r := cli(t, nil, "", "assessment", "show", "--node", atA, "--crisis", "oekraine", "-o", "json").want(t, 0)
		v = assessmentJSON{}
		r.oneJSON(t, &v)
		return len(v.Endorsed) == 1 && v.Endorsed[0].Org == b.TD.Name(), r.stdout
	})
	if v.Origin != a.TD.Name() || len(v.Others) != 0 {
		t.Errorf("show at a: %+v", v)
	}
	cli(t, nil, "", "assessment", "endorse", "--node", atA, "--crisis", "oekraine").want(t, 0)

	// With a down, b's picture holds a's old copy.
	a.Stop(t)
	r = publish(atB, "Duiding van b, tweede", "--fail-on-partial").want(t, exitPartial)
	if !strings.Contains(r.stdout, "PARTIAL: a did not answer") || !strings.Contains(r.stderr, "not published: the picture of oekraine is not complete now") {
		t.Errorf("publish --fail-on-partial with a down: stdout\n%s\nstderr %q", r.stdout, r.stderr)
	}
	cli(t, nil, "", "assessment", "show", "--node", atB, "--crisis", "oekraine", "--origin", "b", "-o", "json").want(t, 0).oneJSON(t, &v)
	if v.Assessment.Text != "Duiding van b" {
		t.Errorf("publish --fail-on-partial published: %+v", v)
	}
	r = publish(atB, "Duiding van b, tweede").want(t, 0)
	if !strings.HasPrefix(r.stdout, "published assessment-oekraine version 2 ") || !strings.Contains(r.stdout, "PARTIAL: a did not answer") {
		t.Errorf("publish with a down:\n%s", r.stdout)
	}
}

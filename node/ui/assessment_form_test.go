package ui_test

import (
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/knooppunt/knooppunt/federation/fedtest"
	"github.com/knooppunt/knooppunt/node/assessment"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// writers gives eva the editor's role at vr-utrecht and ncc, and bram the reader's at vr-utrecht.
func writers(o *fedtest.Options) {
	prev := o.Roles
	o.Roles = func(name string) []string {
		out := prev(name)
		switch name {
		case "vr-utrecht":
			out = append(out, "{id: spiffe://vr-utrecht.crisis.test/user/eva, role: editor}", "{id: spiffe://vr-utrecht.crisis.test/user/bram, role: reader}")
		case "ncc":
			out = append(out, "{id: spiffe://ncc.crisis.test/user/eva, role: editor}")
		}
		return out
	}
}

// section is the assessment section of the page labelled by the heading with id.
func section(page, id string) string {
	i := strings.Index(page, `aria-labelledby="`+id+`"`)
	if i < 0 {
		return "(no section labelled " + id + ")"
	}
	j := strings.Index(page[i:], "</section>")
	if j < 0 {
		return page[i:]
	}
	return page[i : i+j]
}

var endorsedBy = regexp.MustCompile(`(?s)id="duiding-onderschreven">(.*?)</dd>`)

// TestAssessmentInTheBrowser: a coordinator publishes its assessment on a form, a partner's duty
// officer endorses it and remarks on it from the picture, and the coordinator's picture shows both
// (review T, T8). Each section is labelled by its author; a reader is offered no form, and refused
// one sent all the same.
func TestAssessmentInTheBrowser(t *testing.T) {
	e := startFederation(t, writers)
	e.ncc.Approve(t, "name: ncc-duiding\npurpose: landelijke duiding\nrecipients: [spiffe://vr-utrecht.crisis.test]\nkinds: [assessment]\nmax_classification: internal\n")
	e.utrecht.Approve(t, "name: reactie-duiding\npurpose: reactie op de landelijke duiding\nrecipients: [spiffe://ncc.crisis.test]\nkinds: [assessment.response]\nmax_classification: internal\n")

	// NCC's editor finds the form on the picture, which has no assessment of NCC's yet: three
	// fields, and that the assessment is tied to the picture.
	ncc := newBrowser(t)
	e.op.signInAs("eva")
	if _, page := ncc.get(t, e.nccURL+"/?crisis=oekraine"); !strings.Contains(page, `id="duiding-publiceren"><a class="utrecht-link" href="/duiding?crisis=oekraine">Duiding van uw organisatie publiceren</a>`) {
		t.Errorf("NCC's picture without its assessment does not link the form to publish one:\n%s", page)
	}
	resp, form := ncc.get(t, e.nccURL+"/duiding?crisis=oekraine")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /duiding at ncc: %d\n%s", resp.StatusCode, form)
	}
	for _, want := range []string{`name="text"`, `name="development"`, `name="advice"`, `id="gekoppeld"`, `href="/?crisis=oekraine"`} {
		if !strings.Contains(form, want) {
			t.Errorf("the form lacks %s:\n%s", want, form)
		}
	}
	tok := csrfOf(t, form)
	fields := url.Values{"csrf": {tok}, "crisis": {"oekraine"}, "text": {"Opvang in Zeeland raakt vol"},
		"development": {"   "}, "advice": {"Spreid nieuwe instroom naar VR09"}}

	// An empty field is refused on the form, named, and what was typed stays.
	resp, page := ncc.post(t, e.nccURL+"/duiding", fields)
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("an empty development: %d, want 422\n%s", resp.StatusCode, page)
	}
	if !strings.Contains(page, `href="#duiding-development">Verwachte ontwikkeling</a>: Vul dit veld in.`) ||
		!strings.Contains(page, `id="duiding-development-fout"`) {
		t.Errorf("the refusal does not name the empty field:\n%s", page)
	}
	if !strings.Contains(page, ">Opvang in Zeeland raakt vol</textarea>") || !strings.Contains(page, ">Spreid nieuwe instroom naar VR09</textarea>") {
		t.Errorf("the refused form lost what was typed:\n%s", page)
	}
	if _, err := pb.NewRecordServiceClient(e.ncc.Local(t)).Get(fedtest.Call(t), &pb.GetRequest{Id: assessment.ID("oekraine")}); err == nil {
		t.Fatal("a refused form published an assessment")
	}

	// Filled in, it publishes, and goes to the picture, which shows it.
	fields.Set("development", "Binnen twee dagen geen vrije plekken in VR19")
	resp, page = ncc.post(t, e.nccURL+"/duiding", fields)
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/" || resp.Request.URL.Query().Get("crisis") != "oekraine" {
		t.Fatalf("publishing went to %s (%d), want the picture of oekraine\n%s", resp.Request.URL, resp.StatusCode, page)
	}
	own := section(page, "duiding-kop")
	if !strings.Contains(own, "Opvang in Zeeland raakt vol") || !strings.Contains(own, `href="/duiding?crisis=oekraine">Duiding bijwerken</a>`) {
		t.Errorf("NCC's picture does not show its assessment with the link to update it:\n%s", own)
	}
	if strings.Contains(page, `id="duiding-publiceren"`) {
		t.Error("NCC's picture with its assessment still offers to publish a first one")
	}
	if strings.Contains(own, `value="endorse"`) {
		t.Errorf("NCC is offered to endorse its own assessment:\n%s", own)
	}
	rec, err := pb.NewRecordServiceClient(e.ncc.Local(t)).Get(fedtest.Call(t), &pb.GetRequest{Id: assessment.ID("oekraine")})
	if err != nil {
		t.Fatalf("the assessment is not at ncc: %v", err)
	}
	var body assessment.Body
	if err := json.Unmarshal(rec.Body, &body); err != nil || body.Development != "Binnen twee dagen geen vrije plekken in VR19" || body.Picture.Hash == "" {
		t.Errorf("the assessment's body: %s (%v)", rec.Body, err)
	}
	// The form then shows the current assessment, to update.
	if _, form = ncc.get(t, e.nccURL+"/duiding?crisis=oekraine"); !strings.Contains(form, ">Binnen twee dagen geen vrije plekken in VR19</textarea>") {
		t.Errorf("the form is not filled with the current assessment:\n%s", form)
	}

	// Within an exercise of the same crisis NCC publishes an assessment of its own, beside the
	// actual one, which stays as it was (review AL, AL11: the exercise's took the actual one's id,
	// and was refused: a record keeps its mode).
	e.ncc.Exercise(t, "oef-duiding", false)
	inExercise := fedtest.ExerciseMode("oef-duiding")
	resp, form = ncc.get(t, e.nccURL+"/duiding?crisis=oekraine&exercise=oef-duiding")
	if resp.StatusCode != http.StatusOK || strings.Contains(form, "Binnen twee dagen geen vrije plekken in VR19") {
		t.Fatalf("GET /duiding in the exercise: %d, or it is filled with the actual assessment\n%s", resp.StatusCode, form)
	}
	resp, page = ncc.post(t, e.nccURL+"/duiding", url.Values{"csrf": {csrfOf(t, form)}, "crisis": {"oekraine"}, "exercise": {"oef-duiding"},
		"text": {"Oefening: Goes vol"}, "development": {"Blijft vol"}, "advice": {"Oefen de uitwijk"}})
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Query().Get("exercise") != "oef-duiding" {
		t.Fatalf("publishing in the exercise went to %s (%d)\n%s", resp.Request.URL, resp.StatusCode, page)
	}
	exRec, err := pb.NewRecordServiceClient(e.ncc.Local(t)).Get(fedtest.Call(t), &pb.GetRequest{Id: assessment.IDIn("oekraine", inExercise), Mode: inExercise})
	if err != nil || !strings.Contains(string(exRec.GetBody()), "Oefen de uitwijk") {
		t.Fatalf("the exercise's assessment at ncc: %v, %s", err, exRec.GetBody())
	}
	if _, form = ncc.get(t, e.nccURL+"/duiding?crisis=oekraine&exercise=oef-duiding"); !strings.Contains(form, ">Oefen de uitwijk</textarea>") {
		t.Errorf("the exercise's form is not filled with the exercise's assessment:\n%s", form)
	}
	if again, err := pb.NewRecordServiceClient(e.ncc.Local(t)).Get(fedtest.Call(t), &pb.GetRequest{Id: assessment.ID("oekraine")}); err != nil || again.Version != rec.Version {
		t.Errorf("the actual assessment after the exercise's: %v, version %d, want %d", err, again.GetVersion(), rec.GetVersion())
	}

	fedtest.Eventually(t, 15*time.Second, "vr-utrecht holds ncc's assessment", func() (bool, string) {
		held := e.utrecht.Held(t, "oekraine", e.ncc.TD.Name())
		_, ok := held[assessment.ID("oekraine")]
		return ok, fedtest.Describe(held)
	})

	// VR Utrecht's editor sees the section labelled by its author, and endorses and remarks.
	utrecht := newBrowser(t)
	_, pic := e.signIn(t, utrecht, "eva", "/?crisis=oekraine")
	if !strings.Contains(pic, `<h3 class="utrecht-heading-3" id="duiding-kop">Duiding van ncc</h3>`) || strings.Contains(pic, `aria-labelledby="duiding"`) {
		t.Errorf("the assessment's section is not labelled by its author:\n%s", section(pic, "duiding-kop"))
	}
	theirs := section(pic, "duiding-kop")
	for _, want := range []string{`value="endorse"`, `value="remark"`, ">Onderschrijven</button>", ">Opmerking plaatsen</button>", `name="origin" value="ncc.crisis.test"`} {
		if !strings.Contains(theirs, want) {
			t.Errorf("VR Utrecht's editor is not offered %s:\n%s", want, theirs)
		}
	}
	tok = csrfOf(t, pic)
	respond := func(response, text string) (*http.Response, string) {
		return utrecht.post(t, e.url+"/duiding/reactie", url.Values{"csrf": {tok}, "crisis": {"oekraine"}, "origin": {e.ncc.TD.Name()},
			"id": {assessment.ID("oekraine")}, "response": {response}, "text": {text}, "version": {"99"}})
	}
	// An empty remark is refused, named.
	if resp, page := respond(assessment.Remark, " "); resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, `id="opmerking-fout">Vul dit veld in.`) {
		t.Errorf("an empty remark: %d, want 422 naming the field\n%s", resp.StatusCode, page)
	}
	if resp, page := respond(assessment.Endorse, ""); resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/" {
		t.Fatalf("endorsing went to %s (%d)\n%s", resp.Request.URL, resp.StatusCode, page)
	} else if theirs := section(page, "duiding-kop"); !strings.Contains(theirs, "Uw organisatie onderschrijft deze versie van de duiding.") || strings.Contains(theirs, `value="endorse"`) {
		t.Errorf("after endorsing, the picture offers to endorse again, or does not say it was:\n%s", theirs)
	}
	if resp, page := respond(assessment.Remark, "Hulst heeft morgen 20 plekken extra"); resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/" {
		t.Fatalf("the remark went to %s (%d)\n%s", resp.Request.URL, resp.StatusCode, page)
	} else if theirs := section(page, "duiding-kop"); !strings.Contains(theirs, `aria-required="true">Hulst heeft morgen 20 plekken extra</textarea>`) {
		// The remark field starts with the organisation's remark, to amend rather than retype.
		t.Errorf("after remarking, the remark field does not hold the remark:\n%s", theirs)
	}
	// The response names the version the node holds, not the one the form sent.
	end, err := pb.NewRecordServiceClient(e.utrecht.Local(t)).Get(fedtest.Call(t), &pb.GetRequest{Id: assessment.ResponseID(assessment.Endorse, e.utrecht.TD.Name(), rec)})
	if err != nil {
		t.Fatalf("the endorsement is not at vr-utrecht: %v", err)
	}
	var rb assessment.ResponseBody
	if err := json.Unmarshal(end.Body, &rb); err != nil || rb.AssessmentVersion != rec.Version || rb.AssessmentOrigin != e.ncc.TD.Name() {
		t.Errorf("the endorsement's body: %s (%v), want version %d of ncc's", end.Body, err, rec.Version)
	}

	// NCC's picture shows who endorsed it, and the remark.
	fedtest.Eventually(t, 15*time.Second, "ncc's picture shows vr-utrecht's endorsement and remark", func() (bool, string) {
		_, page := ncc.get(t, e.nccURL+"/?crisis=oekraine")
		m := endorsedBy.FindStringSubmatch(page)
		if m == nil {
			return false, section(page, "duiding-kop")
		}
		return strings.Contains(m[1], "vr-utrecht") && strings.Contains(page, "<dd>Hulst heeft morgen 20 plekken extra</dd>"), html.UnescapeString(section(page, "duiding-kop"))
	})

	// A reader is offered no form, and is refused one sent all the same.
	reader := newBrowser(t)
	_, pic = e.signIn(t, reader, "bram", "/?crisis=oekraine")
	if !strings.Contains(pic, "Duiding van ncc") || strings.Contains(pic, "/duiding/reactie") || strings.Contains(pic, "Onderschrijven") || strings.Contains(pic, "duiding-publiceren") {
		t.Errorf("a reader is offered to respond:\n%s", section(pic, "duiding-kop"))
	}
	tok = csrfOf(t, pic)
	for path, form := range map[string]url.Values{
		"/duiding/reactie": {"csrf": {tok}, "crisis": {"oekraine"}, "origin": {e.ncc.TD.Name()}, "id": {assessment.ID("oekraine")}, "response": {"endorse"}},
		"/duiding":         {"csrf": {tok}, "crisis": {"oekraine"}, "text": {"a"}, "development": {"b"}, "advice": {"c"}},
	} {
		// Refused by the page, in its own words, before the service would refuse the write.
		if resp, page := reader.post(t, e.url+path, form); resp.StatusCode != http.StatusForbidden || !strings.Contains(page, "voor de redacteuren en beheerders") {
			t.Errorf("a reader's POST %s: %d, want 403, writers only\n%s", path, resp.StatusCode, page)
		}
	}
	if resp, _ := reader.get(t, e.url+"/duiding?crisis=oekraine"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a reader's form: %d, want 403", resp.StatusCode)
	}
	if _, err := pb.NewRecordServiceClient(e.utrecht.Local(t)).Get(fedtest.Call(t), &pb.GetRequest{Id: assessment.ID("oekraine")}); err == nil {
		t.Error("a reader's POST published an assessment")
	}
}

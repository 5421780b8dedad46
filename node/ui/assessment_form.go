package ui

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/knooppunt/knooppunt/federation/search"
	"github.com/knooppunt/knooppunt/node/assessment"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// The shared assessment in the browser (review T, T8): a writer publishes the organisation's
// assessment of a crisis on a form (/duiding), tied to the picture as it is now, as `knooppunt
// assessment publish` does; on the picture, a writer endorses a partner's assessment or adds a
// remark (/duiding/reactie), as `assessment endorse` and `remark` do. Each write is
// RecordService.Put as the person, in the page's mode.

func init() {
	pageNames = append(pageNames, "assessment-form")
}

// assessmentActions are what the picture's assessment section offers a writer: for a partner's
// assessment a button that endorses it and a form for a remark, for the own organisation's a
// link to update it. Writer false offers nothing.
type assessmentActions struct {
	Writer, Own bool
	// Endorsed says that this organisation endorsed the version shown: the button is not offered
	// again, and the page says so.
	Endorsed bool
	// Remark is this organisation's remark on the assessment, of any version: the remark field
	// starts with it, so that a writer amends it instead of typing it again.
	Remark string
	// Source and ID name the assessment record the forms respond to (its origin's trust domain);
	// the handler reads it again from the picture.
	Source, ID, Crisis string
	CSRF               string
	// Respond is where the forms go, Update the own assessment's form, both in the page's mode.
	Respond, Update string
}

// assessmentActionsOf are the actions the picture offers on assessment v of crisis.
func (s *Server) assessmentActionsOf(r *request, crisis string, v *assessment.View) assessmentActions {
	if !isWriter(r) {
		return assessmentActions{}
	}
	endorsed := slices.ContainsFunc(v.Endorsed, func(e assessment.Response) bool { return e.Org == s.c.Org && !e.Outdated })
	var remark string
	if i := slices.IndexFunc(v.Remarks, func(e assessment.Response) bool { return e.Org == s.c.Org }); i >= 0 {
		remark = v.Remarks[i].Text
	}
	return assessmentActions{Writer: true, Own: v.Origin == s.c.Org, Endorsed: endorsed, Remark: remark, Source: v.Origin, ID: v.ID, Crisis: crisis, CSRF: r.Session.CSRF,
		Respond: r.inMode("/duiding/reactie"), Update: r.inMode("/duiding?" + url.Values{"crisis": {crisis}}.Encode())}
}

// assessmentFormView is the form that publishes the organisation's assessment of a crisis, or,
// with Respond set, a remark the picture's form sent and that was refused, shown again.
type assessmentFormView struct {
	L      *Lang
	Crisis string
	// Text, Development and Advice are the fields' text; Errors says, by field name, what is
	// wrong with one.
	Text, Development, Advice string
	Errors                    map[string]string
	// Version is the version of the organisation's current assessment, 0 without one.
	Version int64
	// Picture leads back to the picture of the crisis; Action is where the form goes.
	Picture, Action string
	// Published is set after a publication on a picture that was not complete: Incomplete names
	// the partners that did not answer or that this node is still catching up with.
	Published  bool
	Incomplete []string
	NoLeader   bool
	// Respond, for a refused remark: the assessment it was about and whose it is (a name).
	Respond       bool
	Source, ID    string
	Whose, Remark string
}

// assessmentField is one of the form's text fields as the template shows it.
type assessmentField struct {
	Name, Label, Hint, Value, Error string
}

// Fields are the form's fields in order, named as the assessment package names them.
func (v *assessmentFormView) Fields() []assessmentField {
	l := v.L
	return []assessmentField{
		{Name: "text", Value: v.Text, Error: v.Errors["text"], Label: l.T("assessmentform.text"), Hint: l.T("assessmentform.text_hint")},
		{Name: "development", Value: v.Development, Error: v.Errors["development"],
			Label: l.T("assessmentform.development"), Hint: l.T("assessmentform.development_hint")},
		{Name: "advice", Value: v.Advice, Error: v.Errors["advice"], Label: l.T("assessmentform.advice"), Hint: l.T("assessmentform.advice_hint")},
	}
}

// assessmentForm shows the form, filled with the organisation's current assessment of the
// crisis when there is one.
func (s *Server) assessmentForm(w http.ResponseWriter, r *request) {
	if !s.writerPage(w, r) {
		return
	}
	v, ok := s.newAssessmentForm(w, r, r.URL.Query().Get("crisis"))
	if !ok {
		return
	}
	rec, err := pb.NewRecordServiceClient(s.c.Conn).Get(r.ctx(), &pb.GetRequest{Id: assessment.IDIn(v.Crisis, r.mode()), Mode: r.mode()})
	switch {
	case status.Code(err) == codes.NotFound:
	case err != nil:
		s.failCall(w, r, err)
		return
	case !rec.Tombstone:
		var b assessment.Body
		if json.Unmarshal(rec.Body, &b) == nil {
			v.Text, v.Development, v.Advice, v.Version = b.Text, b.Development, b.Advice, rec.Version
		}
	}
	s.renderAssessmentForm(w, r, http.StatusOK, v)
}

// newAssessmentForm is the form of crisis, which it refuses (400) when none is named.
func (s *Server) newAssessmentForm(w http.ResponseWriter, r *request, crisis string) (*assessmentFormView, bool) {
	crisis = strings.TrimSpace(crisis)
	if crisis == "" {
		s.failIn(w, r, http.StatusBadRequest, r.L.T("assessmentform.no_crisis"))
		return nil, false
	}
	return &assessmentFormView{L: r.L, Crisis: crisis, Errors: map[string]string{}, Action: r.inMode("/duiding"),
		Picture: r.inMode("/?" + url.Values{"crisis": {crisis}}.Encode())}, true
}

func (s *Server) renderAssessmentForm(w http.ResponseWriter, r *request, code int, v *assessmentFormView) {
	title := r.L.T("assessmentform.title", v.Crisis)
	if v.Respond {
		title = r.L.T("assessmentform.remark_title", v.Whose)
	}
	s.render(w, r.Request, code, "assessment-form", s.newPage(r, "picture", title, v))
}

// assessmentTextProblem says what is wrong with a field's text, "" when nothing is: the bounds
// assessment.New and NewResponse keep, in the person's words.
func assessmentTextProblem(l *Lang, text string) string {
	switch {
	case strings.TrimSpace(text) == "":
		return l.T("assessmentform.empty")
	case len(text) > assessment.MaxText:
		return l.T("assessmentform.too_long", len(text), assessment.MaxText)
	}
	return ""
}

// publishAssessment publishes the organisation's assessment of the crisis on the picture as the
// node shows it now, asking the partners whether they answer (as the CLI does), and goes to the
// picture. A picture that is not complete is published on all the same, and the form says so.
func (s *Server) publishAssessment(w http.ResponseWriter, r *request) {
	if !s.writerPage(w, r) {
		return
	}
	v, ok := s.newAssessmentForm(w, r, r.PostFormValue("crisis"))
	if !ok {
		return
	}
	v.Text, v.Development, v.Advice = r.PostFormValue("text"), r.PostFormValue("development"), r.PostFormValue("advice")
	for _, f := range v.Fields() {
		if p := assessmentTextProblem(r.L, f.Value); p != "" {
			v.Errors[f.Name] = p
		}
	}
	if len(v.Errors) > 0 {
		s.renderAssessmentForm(w, r, http.StatusUnprocessableEntity, v)
		return
	}
	if !s.askPartners(w, r) {
		return
	}
	p, err := pb.NewSearchServiceClient(s.c.Conn).Picture(r.ctx(), &pb.PictureRequest{Crisis: v.Crisis, Mode: r.mode()})
	if err != nil {
		s.failCall(w, r, err)
		return
	}
	rec, err := assessment.New(p, v.Text, v.Development, v.Advice)
	if err != nil {
		s.failIn(w, r, http.StatusUnprocessableEntity, err.Error())
		return
	}
	assessment.InMode(rec, r.mode())
	resp, err := pb.NewRecordServiceClient(s.c.Conn).Put(r.ctx(), &pb.PutRequest{Record: rec})
	if err != nil {
		s.failCall(w, r, err)
		return
	}
	s.log.Info("assessment published", "person", r.Session.Person.String(), "crisis", v.Crisis, "version", resp.Version, "partial", p.Partial)
	behind := search.Behind(p.Peers)
	if !p.Partial && !p.NoLeader && len(behind) == 0 {
		http.Redirect(w, r.Request, v.Picture+"#duiding", http.StatusSeeOther)
		return
	}
	names := s.partnerNames(r)
	for _, peer := range p.Peers {
		if search.Unanswered(peer) || peer.CatchingUpSince != nil {
			v.Incomplete = append(v.Incomplete, partnerName(names, peer.Peer, peer.TrustDomain))
		}
	}
	v.Published, v.NoLeader, v.Version = true, p.NoLeader, resp.Version
	s.renderAssessmentForm(w, r, http.StatusOK, v)
}

// respondToAssessment endorses an organisation's assessment, or adds a remark to it, as this
// node's organisation. The assessment is read again from the picture (not asking the partners):
// the response names the version the node holds now, never one the form says.
func (s *Server) respondToAssessment(w http.ResponseWriter, r *request) {
	if !s.writerPage(w, r) {
		return
	}
	crisis, origin, id, response := strings.TrimSpace(r.PostFormValue("crisis")), r.PostFormValue("origin"), r.PostFormValue("id"), r.PostFormValue("response")
	if crisis == "" || origin == "" || id == "" || (response != assessment.Endorse && response != assessment.Remark) {
		s.failIn(w, r, http.StatusBadRequest, r.L.T("assessmentform.respond_unclear"))
		return
	}
	p, err := pb.NewSearchServiceClient(s.c.Conn).Picture(r.ctx(), &pb.PictureRequest{Crisis: crisis, Mode: r.mode(), SkipPeerCheck: true})
	if err != nil {
		s.failCall(w, r, err)
		return
	}
	all, _ := assessment.All(p, s.c.Org, nil)
	var target *assessment.View
	for _, a := range all {
		if a.Origin == origin && a.ID == id {
			target = a
		}
	}
	name := s.orgNamer(r)
	if target == nil {
		s.failIn(w, r, http.StatusNotFound, r.L.T("assessmentform.respond_gone", name(origin), crisis))
		return
	}
	text := r.PostFormValue("text")
	if response == assessment.Remark {
		if problem := assessmentTextProblem(r.L, text); problem != "" {
			v, _ := s.newAssessmentForm(w, r, crisis)
			v.Respond, v.Source, v.ID, v.Whose, v.Remark = true, origin, id, name(origin), text
			v.Action, v.Errors["text"] = r.inMode("/duiding/reactie"), problem
			s.renderAssessmentForm(w, r, http.StatusUnprocessableEntity, v)
			return
		}
	}
	rec, err := assessment.NewResponse(target.Record, s.c.Org, response, text)
	if err != nil {
		s.failIn(w, r, http.StatusUnprocessableEntity, err.Error())
		return
	}
	assessment.InMode(rec, r.mode())
	if _, err := pb.NewRecordServiceClient(s.c.Conn).Put(r.ctx(), &pb.PutRequest{Record: rec}); err != nil {
		s.failCall(w, r, err)
		return
	}
	s.log.Info("assessment response written", "person", r.Session.Person.String(), "crisis", crisis, "response", response,
		"assessment_origin", origin, "assessment_version", target.Version)
	http.Redirect(w, r.Request, r.inMode("/?"+url.Values{"crisis": {crisis}}.Encode())+"#duiding", http.StatusSeeOther)
}

package ui

import (
	"cmp"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/knooppunt/knooppunt/node/api"
	"github.com/knooppunt/knooppunt/node/api/phases"
	"github.com/knooppunt/knooppunt/node/record"
	"github.com/knooppunt/knooppunt/policy"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// The officers' pages: policies and their lifecycle, preview and explain, the crisis phase and
// the audit log. Every step that changes something (propose, approve, reject, revoke, set a
// phase) is taken in two requests: a GET that needs a sign-in no older than MaxOfficerAge and
// shows what will happen, and a POST with the session's CSRF token that checks the sign-in's
// age again and calls the service as the person. The service decides, and refuses, by the role
// table and the four-eyes rule; the pages only hide what a person cannot do.

// The policy lifecycle steps, as the pages' addresses and forms name them (stap=...).
const (
	stepApprove = "goedkeuren"
	stepReject  = "afwijzen"
	stepRevoke  = "intrekken"
)

// stepKeys names each step in the catalogue, under step.<key>.
var stepKeys = map[string]string{stepApprove: "approve", stepReject: "reject", stepRevoke: "revoke"}

// stepStates is the state a policy must be in for each step.
var stepStates = map[string]string{stepApprove: "proposed", stepReject: "proposed", stepRevoke: "approved"}

// phases a crisis can be in, in order.
var phaseNames = []string{"cold", "lukewarm", "warm"}

// isOfficer reports whether the person may take policy steps and change phases; isOverseer
// whether they may read policies and the audit log (officers and admins). Both only decide
// what a page shows.
func isOfficer(r *request) bool  { return r.Caller.Has(api.Officer) }
func isOverseer(r *request) bool { return r.Caller.Has(api.Officer) || r.Caller.Has(api.Admin) }

// officerPage reports whether the person may take the step a GET page offers; if not, it says
// so instead of showing a form that the service would refuse. This only hides: every POST
// still goes to the service, which decides, and audits a refusal.
func (s *Server) officerPage(w http.ResponseWriter, r *request) bool {
	if isOfficer(r) {
		return true
	}
	s.failIn(w, r, http.StatusForbidden, r.L.T("error.officer_only", strings.Join(roleNames(r), ", ")))
	return false
}

// onLeader reports whether this replica leads its group. A follower never takes a policy step
// or phase change (api.PersonalMethods), so on a follower the page says so and links to the
// leader's web interface, rather than letting the officer fill in a form that cannot succeed. The
// link leads to the same page; for a form sent, to back, the page that form came from (as
// requireRecent takes it), or else the form's path.
func (s *Server) onLeader(w http.ResponseWriter, r *request, back string) bool {
	if s.c.Leader == nil {
		return true
	}
	leader, web := s.c.Leader()
	if leader {
		return true
	}
	s.showFollower(w, r, web, back)
	return false
}

type followerView struct {
	// Link is the leader's web interface at the same page, empty when it is not known.
	Link string
}

func (s *Server) showFollower(w http.ResponseWriter, r *request, web, back string) {
	v := followerView{}
	if web != "" {
		if u, err := url.Parse(strings.TrimSuffix(web, "/")); err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" {
			path := cmp.Or(back, r.URL.Path)
			if r.Method == http.MethodGet {
				path = r.URL.RequestURI()
			}
			v.Link = u.String() + path
		}
	}
	s.render(w, r.Request, http.StatusConflict, "follower", s.newPage(r, "policies", r.L.T("follower.title"), v))
}

// policyRow is a policy as the list and its page show it.
type policyRow struct {
	ID, Name, Purpose, State, Author, Proposed string
	Version                                    int32
	Active                                     bool
	Approvals, Required                        int
	Approvers                                  []string
	DecidedBy, Decided, Reason                 string
	Source                                     string
	Link                                       string
}

func (s *Server) policyRow(p *pb.PolicyInfo) policyRow {
	row := policyRow{ID: p.Id, Name: p.Name, Version: p.Version, Purpose: p.Purpose, State: p.State, Author: p.Author,
		Active: p.Active, Approvals: len(p.Approvers), Required: int(p.ApprovalsRequired), Approvers: p.Approvers,
		DecidedBy: p.DecidedBy, Reason: p.Reason, Source: string(p.Source), Link: "/beleid/toon?id=" + url.QueryEscape(p.Id)}
	if p.ProposedAt != nil {
		row.Proposed = local(p.ProposedAt.AsTime()).Format("2006-01-02 15:04")
	}
	if p.DecidedAt != nil {
		row.Decided = local(p.DecidedAt.AsTime()).Format("2006-01-02 15:04")
	}
	if row.Required < 1 {
		row.Required = 1
	}
	return row
}

type policiesView struct {
	State    string
	States   []string
	Policies []policyRow
	Officer  bool
	// Partners are the peers policies can name, with their groups: what recipients may be.
	Partners []partnerGroups
}

// partnerGroups is a peer as a policy names it: by name or trust domain, or by its groups.
type partnerGroups struct {
	Name, TrustDomain, OrgName string
	Groups                     []string
}

// policies lists the policies with their lifecycle state.
func (s *Server) policies(w http.ResponseWriter, r *request) {
	v := &policiesView{State: r.URL.Query().Get("state"), States: policy.States, Officer: isOfficer(r)}
	if v.State != "" && !slices.Contains(v.States, v.State) {
		v.State = ""
	}
	resp, err := pb.NewPolicyServiceClient(s.c.Conn).List(r.ctx(), &pb.ListPoliciesRequest{State: v.State})
	if err != nil {
		s.failCall(w, r, err)
		return
	}
	for _, p := range resp.Policies {
		v.Policies = append(v.Policies, s.policyRow(p))
	}
	for _, p := range s.partners(r) {
		if p.Active && p.LeavingSince == nil {
			v.Partners = append(v.Partners, partnerGroups{Name: p.Name, TrustDomain: p.TrustDomain, OrgName: p.OrgName, Groups: p.Groups})
		}
	}
	s.render(w, r.Request, http.StatusOK, "policies", s.newPage(r, "policies", r.L.T("policies.title"), v))
}

type policyView struct {
	P policyRow
	// Summary says what the policy shares, read from its document; nil if it cannot be read.
	Summary *policySummary
	// Partners are suggested in the preview's recipient field.
	Partners []recipientChoice
	// Done names the step just taken, for the notice at the top.
	Done    string
	Officer bool
	// Author is true when the signed-in person proposed this policy: they cannot approve it.
	Author bool
	// Approved is true when the person approved it already.
	Approved bool
	// Notes say what the policy lifts and what it withholds in vain, for an officer who may
	// preview it (policyNotes).
	Notes policyEffects
	// Replaces is the version in force that this one would replace, and Changes what it changes
	// of it (review W, M3).
	Replaces *policyRow
	Changes  []string
	// OnApprove says the summary is on the approve page, which shows no YAML below it.
	OnApprove bool
	// Newer is a newer proposed version, which must be approved or rejected first: this one is
	// offered no approval.
	Newer string
}

func (v *policyView) succeededTitle() string { return doneTitle(v.Done != "") }

// policy shows one policy version: its YAML, author, approvers and state, and the steps the
// person may take.
func (s *Server) policy(w http.ResponseWriter, r *request) {
	id := r.URL.Query().Get("id")
	if id == "" {
		s.failIn(w, r, http.StatusBadRequest, r.L.T("error.field", "id", r.L.T("policy.id_missing")))
		return
	}
	p, err := pb.NewPolicyServiceClient(s.c.Conn).Get(r.ctx(), &pb.GetPolicyRequest{Id: id})
	if err != nil {
		s.failCall(w, r, err)
		return
	}
	me := r.Session.Person.String()
	peers := s.partners(r)
	v := &policyView{P: s.policyRow(p), Officer: isOfficer(r), Author: p.Author == me, Approved: slices.Contains(p.Approvers, me),
		Partners: choicesOf(peers), Summary: summarizePolicy(r.L, p.Source, peers)}
	if d := r.URL.Query().Get("gedaan"); d == "voorgesteld" || stepKeys[d] != "" {
		v.Done = d
	}
	if by, ok := policy.SupersededBy(p.State, p.Reason); ok {
		v.P.Reason = r.L.T("policy.superseded_by", by) // the node's words, not an officer's
	}
	if (r.Caller.Has(api.Officer) || r.Caller.Has(api.Admin)) && (p.State == policy.StateProposed || p.State == policy.StateApproved) {
		// The page shows what the policy withholds in vain (Voided), not what it would lift.
		v.Notes = s.policyNotes(r, p, v.Partners, v.Summary != nil && len(v.Summary.Withheld) > 0)
	}
	s.policyVersions(r, p, peers, v)
	s.render(w, r.Request, http.StatusOK, "policy", s.newPage(r, "policies", r.L.T("policy.title", p.Id), v))
}

// sourceField is the propose form's field: the policy's YAML.
const sourceField = "bron"

type problemView struct {
	Where   string `json:"where"`
	Field   string `json:"field"`
	Message string `json:"message"`
	// English says that Message is the node's English (coded), which the page marks so.
	English bool `json:"english,omitempty"`
}

type proposeView struct {
	Source string
	// Error is the field's error; Problems are the linter's messages.
	Error    string
	Problems []problemView
	// Doubts are the linter's warnings, which do not stop a proposal.
	Doubts []problemView
	// Clean says that a check found no problems.
	Clean bool
	// Recipient is the partner to preview the draft for; RecipientError what is wrong with it;
	// Preview what the draft would send there.
	Recipient, RecipientError string
	Preview                   *previewView
	// Partners are suggested in the recipient field.
	Partners []recipientChoice
}

// Refused are the form's errors, as the summary above it links them to their fields (review
// AB, AB1).
func (v *proposeView) Refused() []formProblem {
	return fieldErrors(formProblem{ID: sourceField, Message: v.Error}, formProblem{ID: "recipient", Message: v.RecipientError})
}

// documentRequired and documentOptional are the fields the propose form's hint names: from the
// document's own definition, so that the hint names every field there is.
var documentRequired, documentOptional = policy.DocumentFields()

// Hint is the source field's hint: the fields a policy must have, and those it may.
func (v *proposeView) Hint(l *Lang) string {
	return l.T("propose.hint", strings.Join(documentRequired, ", "), strings.Join(documentOptional, ", "))
}

// proposeForm shows the form to propose a policy; with ?van=ID it starts from that version,
// for a new version of it.
func (s *Server) proposeForm(w http.ResponseWriter, r *request) {
	if !s.officerPage(w, r) || !s.requireRecent(w, r, MaxOfficerAge, "") || !s.onLeader(w, r, "") {
		return
	}
	v := &proposeView{Source: proposeTemplate, Partners: s.recipientChoices(r)}
	draft := s.takeDraft(r)
	switch from := r.URL.Query().Get("van"); {
	case draft != nil:
		// Sent after a new sign-in was due: what the officer wrote, as it was.
		v.Source = strings.ReplaceAll(draft.Get(sourceField), "\r\n", "\n")
		v.Recipient = strings.TrimSpace(draft.Get("recipient"))
	case from != "":
		p, err := pb.NewPolicyServiceClient(s.c.Conn).Get(r.ctx(), &pb.GetPolicyRequest{Id: from})
		if err != nil {
			s.failCall(w, r, err)
			return
		}
		v.Source = string(p.Source)
	}
	page := s.newPage(r, "policies", r.L.T("propose.title"), v)
	page.Restored = draft != nil
	s.render(w, r.Request, http.StatusOK, "propose", page)
}

// proposeTemplate is where a new policy starts: the required fields, to fill in. It is YAML,
// not text for people, so it is not in the catalogue.
const proposeTemplate = "name: \npurpose: \nrecipients: []\nkinds: []\nmax_classification: internal\n"

// propose lints the policy on the server and, when it is clean and the officer asked for it,
// proposes it. A policy that does not lint is shown again with the linter's messages, and
// nothing is stored.
func (s *Server) propose(w http.ResponseWriter, r *request) {
	if !s.requireRecent(w, r, MaxOfficerAge, "/beleid/voorstel", sourceField, "recipient") || !s.onLeader(w, r, "") {
		return
	}
	src := strings.ReplaceAll(r.PostFormValue(sourceField), "\r\n", "\n")
	v := &proposeView{Source: src, Recipient: strings.TrimSpace(r.PostFormValue("recipient"))}
	again := func(code int) {
		v.Partners = s.recipientChoices(r)
		s.render(w, r.Request, code, "propose", s.newPage(r, "policies", r.L.T("propose.title"), v))
	}
	if strings.TrimSpace(src) == "" {
		v.Error = r.L.T("propose.empty")
		again(http.StatusBadRequest)
		return
	}
	problems, doubts, bad, err := s.lint(r, src)
	if err != nil {
		s.failCall(w, r, err)
		return
	}
	v.Doubts = doubts
	if bad != "" {
		v.Error = bad
		again(http.StatusBadRequest)
		return
	}
	if len(problems) > 0 {
		v.Problems, v.Error = problems, problemsSummary(r.L, len(problems))
		again(http.StatusUnprocessableEntity)
		return
	}
	pc := pb.NewPolicyServiceClient(s.c.Conn)
	switch r.PostFormValue("stap") {
	case "voorstellen":
	case "voorbeeld":
		// What the draft would send, before anyone proposes it. It stores nothing.
		if v.Recipient == "" {
			v.RecipientError = r.L.T("propose.recipient_missing")
			again(http.StatusBadRequest)
			return
		}
		v.Preview = &previewView{}
		bad, err := s.runPreview(r, v.Preview, &pb.PreviewRequest{Source: []byte(src), Recipient: v.Recipient, Limit: 200})
		if err != nil {
			s.failCall(w, r, err)
			return
		}
		if bad != "" {
			v.Preview, v.RecipientError = nil, bad
			again(http.StatusBadRequest)
			return
		}
		v.Clean = true
		again(http.StatusOK)
		return
	default:
		v.Clean = true
		again(http.StatusOK)
		return
	}
	p, err := pc.Propose(r.ctx(), &pb.ProposeRequest{Source: []byte(src)})
	if err != nil {
		if st := status.Convert(err); st.Code() == codes.InvalidArgument {
			v.Error = st.Message()
			again(http.StatusBadRequest)
			return
		}
		// The same document as a version that waits or is approved: said at the form, naming
		// that version (review AC, AC1: it read as a second approval by the officer).
		if id, state, ok := api.SameDocumentOf(err); ok {
			key := "propose.same_proposed"
			if state == policy.StateApproved {
				key = "propose.same_approved"
			}
			v.Error = r.L.T(key, id)
			again(http.StatusConflict)
			return
		}
		s.failStep(w, r, err, "")
		return
	}
	http.Redirect(w, r.Request, "/beleid/toon?gedaan=voorgesteld&id="+url.QueryEscape(p.Id), http.StatusSeeOther)
}

// lint has the node lint src, as the person. It returns the linter's problems and doubts
// (what it cannot call wrong, but an officer should check), or bad when the source cannot be
// linted at all (too large, say), or the call's error.
func (s *Server) lint(r *request, src string) (problems, doubts []problemView, bad string, err error) {
	lint, err := pb.NewPolicyServiceClient(s.c.Conn).Lint(r.ctx(), &pb.LintRequest{Source: []byte(src)})
	if err != nil {
		if st := status.Convert(err); st.Code() == codes.InvalidArgument || st.Code() == codes.ResourceExhausted {
			return nil, nil, st.Message(), nil
		}
		return nil, nil, "", err
	}
	view := func(ps []*pb.LintProblem) []problemView {
		var out []problemView
		for _, p := range ps {
			pv := problemView{Field: p.Field}
			pv.Message, pv.English = lintMessage(r.L, p)
			if p.Line > 0 {
				pv.Where = r.L.T("propose.line", p.Line, p.Column)
			}
			out = append(out, pv)
		}
		return out
	}
	return view(lint.Problems), view(lint.Doubts), "", nil
}

// lintMessage is a lint problem in the page's language: its code's text with its arguments, or
// the node's English message when the catalogue has no text with as many arguments (a problem
// of a node of another version), which english says.
func lintMessage(l *Lang, p *pb.LintProblem) (message string, english bool) {
	args := p.Args
	if p.Code == "recipients.group_ceiling" && len(args) == 2 {
		args = slices.Clone(args)
		classWords(l, args[1:])
	}
	return coded(l, "lint.", p.Code, args, p.Message)
}

// classWords puts each classification of args, as a policy writes it (confidential), in the
// page's words (departementaal vertrouwelijk), as the other pages name it.
func classWords(l *Lang, args []string) {
	for i, a := range args {
		if l.Has("class." + a) {
			args[i] = l.T("class." + a)
		}
	}
}

// coded is a node's coded message in the page's language: the catalogue's text of prefix+code
// with args, or the node's English text when the catalogue has none with as many arguments,
// which isEnglish says: a page marks it lang="en", for a screen reader's voice (review AB, AB5).
func coded(l *Lang, prefix, code string, args []string, english string) (text string, isEnglish bool) {
	key := prefix + code
	if code == "" || !l.Has(key) || strings.Count(l.T(key), "%s") != len(args) {
		return english, l.Code != "en"
	}
	a := make([]any, len(args))
	for i, s := range args {
		a[i] = s
	}
	return l.T(key, a...), false
}

// problemsSummary says how many problems the linter found.
func problemsSummary(l *Lang, n int) string {
	if n == 1 {
		return l.T("propose.problems_one")
	}
	return l.T("propose.problems", n)
}

// lintResult is what lintLive answers the propose page's script.
type lintResult struct {
	// Clean is true when the linter found nothing; Summary says what it found, in the
	// person's language.
	Clean    bool          `json:"clean"`
	Summary  string        `json:"summary"`
	Problems []problemView `json:"problems"`
	// Doubts are warnings: what the linter cannot call wrong, but the officer should check.
	Doubts []problemView `json:"doubts"`
}

// lintLive lints a draft as the officer types (assets/lint-as-you-type.js). It stores nothing,
// so it needs no recent sign-in; it needs the CSRF token like every POST, and the role table
// decides as for any lint.
func (s *Server) lintLive(w http.ResponseWriter, r *request) {
	src := strings.ReplaceAll(r.PostFormValue(sourceField), "\r\n", "\n")
	res := lintResult{Problems: []problemView{}}
	code := http.StatusOK
	problems, doubts, bad, err := s.lint(r, src)
	res.Doubts = append([]problemView{}, doubts...)
	switch {
	case err != nil:
		st := status.Convert(err)
		code = http.StatusBadGateway
		if st.Code() == codes.PermissionDenied {
			code = http.StatusForbidden
		}
		res.Summary = r.L.T("error.service")
	case strings.TrimSpace(src) == "":
		res.Summary = r.L.T("propose.empty")
	case bad != "":
		res.Summary = bad
	case len(problems) > 0:
		res.Problems, res.Summary = problems, problemsSummary(r.L, len(problems))
	default:
		res.Clean, res.Summary = true, r.L.T("propose.clean")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(res)
}

// failStep shows the refusal of a step. A follower that refuses a step it must not forward
// gets the page that links to the leader; the service's own refusals (four eyes, a policy in
// the wrong state) are shown as the service said them.
//
// back is the page the form came from, for the link to the leader (onLeader).
func (s *Server) failStep(w http.ResponseWriter, r *request, err error, back string) {
	st := status.Convert(err)
	// A refusal of a step leads back to the policy, not to the picture (review W, L2).
	id := r.PostFormValue("id")
	failIn := func(w http.ResponseWriter, r *request, code int, message string) {
		s.render(w, r.Request, code, "error", s.newPage(r, "", errorTitle(r.L, code), errorView{Code: code, Message: message,
			Back: "/beleid/toon?" + url.Values{"id": {id}}.Encode(), BackLabel: r.L.T("policy.back_to", id)}))
	}
	switch st.Code() {
	case codes.FailedPrecondition:
		if s.c.Leader != nil {
			if leader, web := s.c.Leader(); !leader {
				s.showFollower(w, r, web, back)
				return
			}
		}
		// The refusals the node gives a reason for are said in the page's words alone.
		if key := stepRefusals[api.Reason(err)]; key != "" {
			failIn(w, r, http.StatusConflict, r.L.T(key))
			return
		}
		failIn(w, r, http.StatusConflict, r.L.T("error.step_refused", st.Message()))
	case codes.AlreadyExists:
		// The one AlreadyExists a step gives: a second approval by the same officer.
		failIn(w, r, http.StatusConflict, r.L.T("policy.approved_by_you"))
	case codes.PermissionDenied:
		if api.Reason(err) == api.ReasonFourEyes {
			failIn(w, r, http.StatusForbidden, r.L.T("error.four_eyes")) // the node's English adds nothing
			return
		}
		s.failCall(w, r, err)
	default:
		s.failCall(w, r, err)
	}
}

// stepRefusals are the messages of the step refusals the node gives a reason for (api.Reason).
var stepRefusals = map[string]string{
	api.ReasonNewerProposal: "error.newer_proposal",
	api.ReasonPolicyLint:    "error.policy_lint",
	api.ReasonPolicyExpired: "error.policy_expired",
	api.ReasonPolicyState:   "error.policy_state",
}

// confirmView is the confirmation page of a step: what will happen, and the form that does it.
type confirmView struct {
	Heading string
	// Effects say what will happen, one paragraph each.
	Effects []string
	Action  string
	Hidden  []hiddenField
	// Reason asks for a reason; ReasonError is what is wrong with the one given.
	Reason      bool
	ReasonValue string
	ReasonError string
	Submit      string
	// Danger marks a step to weigh before taking it: what will happen is a warning.
	Danger bool
	// Removes marks a step that takes something away (reject, revoke): its button is red, as
	// nothing else on the pages is (review W, L7).
	Removes bool
	Cancel  string
	// Warning, when set, is a doubt about the step to read before confirming it.
	Warning string
	// Lifted name the fields other policies withhold now that approving would send; Withdrawn
	// what partners receive now and would no longer.
	Lifted, Withdrawn []string
	// Cannot, when set, says why the person cannot take the step: the page has no button.
	Cannot string
	// Policy, on an approve page, is what is approved: its summary, what it withholds in vain,
	// the previews per partner, and what it changes of the version in force (review W, M2).
	Policy *policyView
}

type hiddenField struct{ Name, Value string }

// stepForm is the confirmation page of approve, reject or revoke.
func (s *Server) stepForm(w http.ResponseWriter, r *request) {
	if !s.officerPage(w, r) || !s.requireRecent(w, r, MaxOfficerAge, "") || !s.onLeader(w, r, "") {
		return
	}
	reason := ""
	if draft := s.takeDraft(r); draft != nil {
		reason = draft.Get("reden") // sent after a new sign-in was due
	}
	s.confirmStep(w, r, r.URL.Query().Get("id"), r.URL.Query().Get("stap"), reason, "", http.StatusOK)
}

func (s *Server) confirmStep(w http.ResponseWriter, r *request, id, step, reason, reasonErr string, code int) {
	key := stepKeys[step]
	if key == "" {
		s.failIn(w, r, http.StatusBadRequest, r.L.T("error.field", "stap", r.L.T("step.unknown")))
		return
	}
	p, err := pb.NewPolicyServiceClient(s.c.Conn).Get(r.ctx(), &pb.GetPolicyRequest{Id: id})
	if err != nil {
		s.failCall(w, r, err)
		return
	}
	// A step the policy's state does not allow is said at once, rather than after the
	// officer confirmed it; the service refuses it all the same.
	if want := stepStates[step]; p.State != want {
		s.failIn(w, r, http.StatusConflict, r.L.T("step.wrong_state", r.L.T("step."+key+".link"), r.L.T("policy.state."+p.State)))
		return
	}
	row := s.policyRow(p)
	v := &confirmView{
		Heading: r.L.T("step."+key+".heading", p.Id), Action: "/beleid/stap",
		Hidden: []hiddenField{{"id", p.Id}, {"stap", step}}, Submit: r.L.T("step." + key + ".submit"),
		Reason: step != stepApprove, ReasonValue: reason, ReasonError: reasonErr, Danger: step != stepApprove, Removes: step != stepApprove, Cancel: row.Link,
	}
	switch step {
	case stepApprove:
		// The node refuses these approvals; the page says so in its own words, without a button.
		me := r.Session.Person.String()
		switch {
		case p.Author == me:
			v.Cannot = r.L.T("policy.own")
		case slices.Contains(p.Approvers, me):
			v.Cannot = r.L.T("policy.approved_by_you")
		}
		// What is approved, in full, so that it need not be read from the YAML again, nor from
		// a page the officer may not have seen (a link the proposer sent).
		peers := s.partners(r)
		pv := &policyView{P: row, Summary: summarizePolicy(r.L, p.Source, peers), Partners: choicesOf(peers), OnApprove: true}
		pv.Notes = s.policyNotes(r, p, pv.Partners, true)
		s.policyVersions(r, p, peers, pv)
		if pv.Newer != "" && v.Cannot == "" {
			v.Cannot = r.L.T("policy.newer_waits", pv.Newer)
		}
		v.Policy, v.Lifted, v.Withdrawn = pv, pv.Notes.Lifted, pv.Notes.Withdrawn
		v.Effects = append(v.Effects, r.L.T("step.approve.effect", row.Approvals+1, row.Required))
		switch {
		case row.Approvals+1 < row.Required:
		case len(v.Withdrawn) > 0:
			// Not that partners receive what it covers, under the box that says what they lose
			// (review AG, AG6).
			v.Effects = append(v.Effects, r.L.T("step.approve.active_withdraws"))
		default:
			v.Effects = append(v.Effects, r.L.T("step.approve.active"))
		}
	default:
		v.Effects = append(v.Effects, r.L.T("step."+key+".effect"))
		if step == stepRevoke {
			v.Effects = append(v.Effects, heldEffect(r.L, p.Held, s.orgNamer(r)))
		}
	}
	v.Effects = append(v.Effects, r.L.T("step.purpose", row.Purpose), r.L.T("step.audit"))
	page := s.newPage(r, "policies", v.Heading, v)
	page.Restored = reason != "" && reasonErr == ""
	s.render(w, r.Request, code, "confirm", page)
}

// heldEffect says what partners hold now under a policy about to be revoked: per partner, its
// records and those under this policy alone, which the revocation retracts.
func heldEffect(l *Lang, held []*pb.PolicyHeld, name func(td string) string) string {
	if len(held) == 0 {
		return l.T("step.revoke.held_none")
	}
	parts := make([]string, len(held))
	for i, h := range held {
		// A partner's node (spiffe://TD/node/*, policy.Recipient.Holder) by its organisation's
		// name; another holder, a person's or an app's identity, as it is.
		who := h.Holder
		if td, ok := strings.CutSuffix(strings.TrimPrefix(h.Holder, "spiffe://"), "/node/*"); ok {
			who = name(td)
		}
		parts[i] = l.T("step.revoke.held_by", who, h.Records, h.Alone)
	}
	return l.T("step.revoke.held", strings.Join(parts, "; "))
}

// maxReason bounds a reason's length, as the audit log keeps it.
const maxReason = api.MaxReason

// step takes approve, reject or revoke, as the signed-in officer.
func (s *Server) step(w http.ResponseWriter, r *request) {
	back := "/beleid/stap?" + url.Values{"id": {r.PostFormValue("id")}, "stap": {r.PostFormValue("stap")}}.Encode()
	if !s.requireRecent(w, r, MaxOfficerAge, back, "reden") || !s.onLeader(w, r, back) {
		return
	}
	id, step, reason := r.PostFormValue("id"), r.PostFormValue("stap"), strings.TrimSpace(r.PostFormValue("reden"))
	if stepKeys[step] == "" {
		s.failIn(w, r, http.StatusBadRequest, r.L.T("error.field", "stap", r.L.T("step.unknown")))
		return
	}
	if step != stepApprove && reason == "" {
		s.confirmStep(w, r, id, step, reason, r.L.T("step.reason_missing"), http.StatusBadRequest)
		return
	}
	if len(reason) > maxReason {
		s.confirmStep(w, r, id, step, reason, r.L.T("step.reason_long", maxReason), http.StatusBadRequest)
		return
	}
	pc := pb.NewPolicyServiceClient(s.c.Conn)
	req := &pb.PolicyStepRequest{Id: id, Reason: reason}
	var err error
	switch step {
	case stepApprove:
		_, err = pc.Approve(r.ctx(), req)
	case stepReject:
		_, err = pc.Reject(r.ctx(), req)
	case stepRevoke:
		_, err = pc.Revoke(r.ctx(), req)
	}
	if err != nil {
		s.failStep(w, r, err, back)
		return
	}
	s.log.Info("policy step", "person", r.Session.Person.String(), "step", stepKeys[step], "policy", id)
	http.Redirect(w, r.Request, "/beleid/toon?gedaan="+step+"&id="+url.QueryEscape(id), http.StatusSeeOther)
}

type previewView struct {
	ID, Recipient, Phase string
	Phases               []string
	Error                string
	Done                 bool
	Total, Considered    int64
	Counts               []*pb.KindCount
	Items                []previewItem
	// Unmatched are redact paths no granted record has; Voided are those the recipient gets
	// all the same because the Overriding policies grant the records too.
	Unmatched, Voided, Overriding []string
	// Lifted name the fields other policies in force withhold now that the recipient would get.
	Lifted []string
	// Purpose says which purpose the preview took the recipient to state (review AE, AE2), and
	// Withdrawn what it receives now that approving would take back (AE1).
	Purpose, Withdrawn string
	// Partners are suggested in the recipient field.
	Partners []recipientChoice
}

// runPreview asks the node what req's policy would send, into v. bad is the service's message
// when the request is wrong (an unknown recipient, a draft that does not lint); err is any
// other failure.
func (s *Server) runPreview(r *request, v *previewView, req *pb.PreviewRequest) (bad string, err error) {
	resp, err := pb.NewPolicyServiceClient(s.c.Conn).Preview(r.ctx(), req)
	if err != nil {
		if st := status.Convert(err); st.Code() == codes.InvalidArgument {
			return st.Message(), nil
		}
		return "", err
	}
	v.Done, v.Total, v.Considered, v.Counts = true, resp.Total, resp.Considered, resp.Counts
	v.Unmatched, v.Voided, v.Overriding = resp.UnmatchedRedactions, resp.VoidedRedactions, resp.OverridingPolicies
	v.Lifted = liftedTexts(r.L, req.Recipient, resp.LiftedRedactions)
	v.Purpose = purposeText(r.L, resp.Purpose, resp.PurposeStated)
	if resp.Withdrawn > 0 {
		v.Withdrawn = withdrawnText(r.L, req.Recipient, resp.Withdrawn, resp.Supersedes)
	}
	for _, it := range resp.Items {
		rec := it.Record
		pi := previewItem{Title: titleOf(r.L, rec), Kind: rec.Kind, Crisis: rec.Crisis, Region: rec.Region,
			Classification: r.L.Class(rec.Classification), Link: recordLink(rec), Redacted: it.Redacted}
		if pi.Title == "" {
			pi.Title = rec.Id
		}
		v.Items = append(v.Items, pi)
	}
	return "", nil
}

// withdrawnText says that recipient holds n records under the version supersedes that approving
// would take back.
func withdrawnText(l *Lang, recipient string, n int64, supersedes string) string {
	key := "preview.withdrawn"
	if n == 1 {
		key += "_one"
	}
	return l.T(key, recipient, n, supersedes)
}

// purposeText says which purpose a preview or an explanation took the recipient to state: the
// one its node stated in its subscription, none, or none as it never did.
func purposeText(l *Lang, purpose string, stated bool) string {
	switch {
	case stated && purpose != "":
		return l.T("preview.purpose_stated", purpose)
	case stated:
		return l.T("preview.purpose_none")
	default:
		return l.T("preview.purpose_unknown")
	}
}

// liftedTexts says, for each lifted redaction, which field goes to recipient that is withheld now,
// and by which policies.
func liftedTexts(l *Lang, recipient string, lifted []*pb.LiftedRedaction) []string {
	var out []string
	for _, f := range lifted {
		out = append(out, l.T("preview.lifted", f.Field, recipient, strings.Join(f.WithheldBy, ", ")))
	}
	return out
}

type previewItem struct {
	Title, Kind, Crisis, Region, Classification, Link string
	Redacted                                          []string
}

// preview shows which records a stored policy would send to one recipient, and which fields it
// would withhold.
func (s *Server) preview(w http.ResponseWriter, r *request) {
	q := r.URL.Query()
	v := &previewView{ID: q.Get("id"), Recipient: strings.TrimSpace(q.Get("recipient")), Phase: q.Get("phase"), Phases: phaseNames,
		Partners: s.recipientChoices(r)}
	if v.Recipient != "" {
		bad, err := s.runPreview(r, v, &pb.PreviewRequest{Id: v.ID, Recipient: v.Recipient, Phase: v.Phase, Limit: 200})
		if err != nil {
			s.failCall(w, r, err)
			return
		}
		v.Error = bad
	}
	code := http.StatusOK
	if v.Error != "" {
		code = http.StatusBadRequest
	}
	s.render(w, r.Request, code, "preview", s.newPage(r, "policies", r.L.T("preview.title", v.ID), v))
}

type explainView struct {
	Record, Recipient, Phase string
	Phases                   []string
	Error                    string
	Done                     bool
	Allow                    bool
	Used                     string
	Policies, Redacted       []string
	Verdicts                 []verdictRow
	// Holding says what the recipient's holder holds of the record, against the decision;
	// Purpose which purpose it was decided for (review AG, AG7).
	Holding, Purpose string
	// Partners are suggested in the recipient field.
	Partners []recipientChoice
}

// verdictRow is a policy's verdict, its Reason in the page's language, or in the node's English
// when the catalogue has no text for it (English).
type verdictRow struct {
	*pb.Verdict
	English bool
}

// explain shows why one own record would or would not go to one recipient: each policy's
// verdict and the decision.
func (s *Server) explain(w http.ResponseWriter, r *request) {
	q := r.URL.Query()
	v := &explainView{Record: strings.TrimSpace(q.Get("record")), Recipient: strings.TrimSpace(q.Get("recipient")), Phase: q.Get("phase"), Phases: phaseNames,
		Partners: s.recipientChoices(r)}
	if v.Record != "" || v.Recipient != "" {
		resp, err := pb.NewPolicyServiceClient(s.c.Conn).Explain(r.ctx(), &pb.ExplainRequest{RecordId: v.Record, Recipient: v.Recipient, Phase: v.Phase})
		switch st := status.Convert(err); {
		case err == nil:
			v.Done, v.Allow, v.Used, v.Policies, v.Redacted = true, resp.Allow, resp.Phase, resp.Policies, resp.Redacted
			v.Purpose = purposeText(r.L, resp.Purpose, resp.PurposeStated)
			switch h := resp.Held; {
			case h == nil && resp.Allow:
				v.Holding = r.L.T("explain.not_held")
			case h == nil:
				v.Holding = r.L.T("explain.not_held_deny")
			case resp.Allow:
				v.Holding = r.L.T("explain.held", strconv.FormatInt(h.Version, 10), strings.Join(h.Policies, ", "), local(h.At.AsTime()).Format("2006-01-02 15:04"))
			default:
				v.Holding = r.L.T("explain.held_gone", strconv.FormatInt(h.Version, 10), strings.Join(h.Policies, ", "), local(h.At.AsTime()).Format("2006-01-02 15:04"))
			}
			for _, vd := range resp.Verdicts {
				args := slices.Clone(vd.Args)
				// The words a policy's state or a phase are, in the page's language too.
				switch {
				case vd.Code == "not_active" && len(args) == 1 && r.L.Has("policy.state."+args[0]):
					args[0] = r.L.T("policy.state." + args[0])
				case vd.Code == "other_phase" && len(args) == 2:
					var phases []string
					for _, ph := range strings.Split(args[0], ", ") {
						phases = append(phases, r.L.T("phase."+ph))
					}
					args[0], args[1] = strings.Join(phases, ", "), r.L.T("phase."+args[1])
				case vd.Code == "above_ceiling":
					classWords(r.L, args)
				}
				row := verdictRow{Verdict: vd}
				vd.Reason, row.English = coded(r.L, "verdict.", vd.Code, args, vd.Reason)
				v.Verdicts = append(v.Verdicts, row)
			}
		case st.Code() == codes.InvalidArgument:
			v.Error = st.Message()
		case st.Code() == codes.NotFound:
			v.Error = r.L.T("explain.no_record", v.Record)
		default:
			s.failCall(w, r, err)
			return
		}
	}
	code := http.StatusOK
	if v.Error != "" {
		code = http.StatusBadRequest
	}
	s.render(w, r.Request, code, "explain", s.newPage(r, "policies", r.L.T("explain.title"), v))
}

// recipientChoice is a partner the recipient field suggests: Value is what goes in the field,
// Label who it is.
type recipientChoice struct{ Value, Label string }

// recipientChoices are the node's active peers that are not leaving, which the recipient field
// suggests by name; the field still takes any name or ID. Preview and Explain take a peer's
// name for its node, spiffe://TD/node/r1 (sharing.Recipient), so a name gets the verdicts the
// node gives the peer, also for a policy that names that replica or tests recipient.id.
// Groups are not offered: Preview and Explain take an identity, not group:NAME. When
// PeerService fails, the field suggests nothing and the page works as before.
func (s *Server) recipientChoices(r *request) []recipientChoice {
	return choicesOf(s.partners(r))
}

// partners are the node's peers as the signed-in person may list them; none, with a warning in
// the log, when they cannot be listed: the page then works without them.
func (s *Server) partners(r *request) []*pb.PeerInfo {
	resp, err := pb.NewPeerServiceClient(s.c.Conn).List(r.ctx(), &pb.ListPeersRequest{})
	if err != nil {
		s.log.Warn("no partners to suggest as recipients", "person", r.Session.Person.String(), "path", r.URL.Path, "code", status.Code(err).String(), "err", err)
		return nil
	}
	return resp.Peers
}

// choicesOf are the recipients to suggest of the peers: each active one that is not leaving, by
// its name, or by its trust domain when it has none or shares it with another peer.
func choicesOf(peers []*pb.PeerInfo) []recipientChoice {
	var out []recipientChoice
	seen, names := map[string]bool{}, map[string]int{}
	for _, p := range peers {
		names[p.Name]++
	}
	for _, p := range peers {
		if !p.Active || p.LeavingSince != nil || p.TrustDomain == "" || seen[p.TrustDomain] {
			continue
		}
		seen[p.TrustDomain] = true
		value, label := p.Name, p.TrustDomain
		if p.Name == "" || names[p.Name] > 1 {
			value = p.TrustDomain
		}
		if p.OrgName != "" && p.OrgName != p.Name {
			label = p.OrgName + ", " + label
		}
		out = append(out, recipientChoice{Value: value, Label: label})
	}
	return out
}

type phaseRow struct {
	Crisis, Phase, SetBy, SetAt, Reason string
}

type phasesView struct {
	Crises  []phaseRow
	Phases  []string
	Officer bool
	// The form's values and the errors of its fields.
	Crisis, Phase, Reason                       string
	CrisisError, PhaseError, ReasonError, Error string
	Done                                        string
}

func (v *phasesView) succeededTitle() string { return doneTitle(v.Done != "") }

// Refused are the form's errors, as the summary above it links them to their fields.
func (v *phasesView) Refused() []formProblem {
	return fieldErrors(formProblem{ID: "crisis", Message: v.CrisisError}, formProblem{ID: "phase", Message: v.PhaseError}, formProblem{ID: "reden", Message: v.ReasonError})
}

// fieldErrors are the problems of ps that say something: the fields a form's summary links to.
func fieldErrors(ps ...formProblem) []formProblem {
	var out []formProblem
	for _, p := range ps {
		if p.Message != "" {
			out = append(out, p)
		}
	}
	return out
}

// doneTitle is the title's key for a page that says a step was taken.
func doneTitle(done bool) string {
	if done {
		return "form.done_title"
	}
	return ""
}

// phasesView lists the phases of the page's mode: the actual crises', or, with ?exercise=, the
// exercise's own.
func (s *Server) phasesView(r *request) (*phasesView, error) {
	resp, err := pb.NewPhaseServiceClient(s.c.Conn).List(r.ctx(), &pb.ListPhasesRequest{Exercise: r.exercise(), Known: true})
	if err != nil {
		return nil, err
	}
	v := &phasesView{Phases: phaseNames, Officer: isOfficer(r)}
	for _, p := range resp.Phases {
		row := phaseRow{Crisis: p.Crisis, Phase: p.Phase, SetBy: p.SetBy, Reason: p.Reason}
		if p.SetAt != nil {
			row.SetAt = local(p.SetAt.AsTime()).Format("2006-01-02 15:04")
		} else {
			row.Reason = r.L.T("phases.never_set") // a crisis that records name, its phase never set
		}
		v.Crises = append(v.Crises, row)
	}
	return v, nil
}

// phases lists the crises with their phase, and the form to change one.
func (s *Server) phases(w http.ResponseWriter, r *request) {
	v, err := s.phasesView(r)
	if err != nil {
		s.failCall(w, r, err)
		return
	}
	v.Crisis, v.Phase = r.URL.Query().Get("crisis"), r.URL.Query().Get("phase")
	draft := s.takeDraft(r)
	if draft != nil {
		// Sent after a new sign-in was due: the form as the officer filled it in.
		v.Crisis, v.Phase, v.Reason = draft.Get("crisis"), draft.Get("phase"), draft.Get("reden")
	}
	// The notice names a crisis whose phase is set: the address alone cannot make it say more.
	if d := r.URL.Query().Get("gedaan"); slices.ContainsFunc(v.Crises, func(c phaseRow) bool { return c.Crisis == d }) {
		v.Done = d
	}
	page := s.newPage(r, "phases", r.L.T("phases.title"), v)
	page.Restored = draft != nil
	s.render(w, r.Request, http.StatusOK, "phases", page)
}

// phaseFields are the phase form's fields: a form sent with an old sign-in keeps them for its
// page (requireRecent).
var phaseFields = []string{"crisis", "phase", "reden"}

// phaseFormPage is the phases page with its form filled in with crisis and phase, in the
// request's mode: where a phase step that cannot be taken here leads back to. The reason is
// never in it: it goes to the audit log, and is no text for an address, a browser's history or
// a proxy's log (review AB); after a new sign-in the session gives it back (takeDraft).
func phaseFormPage(r *request, crisis, phase string) string {
	return "/fase?" + r.modeValues(url.Values{"crisis": {crisis}, "phase": {phase}}).Encode()
}

// oldPhaseForm answers the address the phase form had when it was sent with GET
// (/fase/wijzigen?crisis=…&phase=…&reden=…), a bookmark or the browser's history: the form,
// filled in with its crisis and phase; the reason, if the address has one, is not taken from it.
func (s *Server) oldPhaseForm(w http.ResponseWriter, r *request) {
	q := r.URL.Query()
	http.Redirect(w, r.Request, phaseFormPage(r, q.Get("crisis"), q.Get("phase"))+"#wijzigen", http.StatusSeeOther)
}

// phaseInput reads and checks the phase form; on an error it shows the form again with the
// field's message and returns false.
func (s *Server) phaseInput(w http.ResponseWriter, r *request, crisis, phase, reason string) bool {
	v := &phasesView{Crisis: crisis, Phase: phase, Reason: reason}
	if crisis == "" {
		v.CrisisError = r.L.T("phases.crisis_missing")
	} else if record.CheckCrisis("crisis", crisis) != nil {
		// Checked here as the service does, so that the confirmation is never shown for a step
		// the service would refuse.
		v.CrisisError = r.L.T("phases.crisis_bad")
	}
	if !slices.Contains(phaseNames, phase) {
		v.PhaseError = r.L.T("phases.phase_missing")
	}
	if len(reason) > maxReason {
		v.ReasonError = r.L.T("step.reason_long", maxReason)
	} else if reason == "" {
		v.ReasonError = r.L.T("phases.reason_missing")
	}
	if v.CrisisError == "" && v.PhaseError == "" && v.ReasonError == "" && v.Error == "" {
		return true
	}
	full, err := s.phasesView(r)
	if err != nil {
		s.failCall(w, r, err)
		return false
	}
	full.Crisis, full.Phase, full.Reason, full.CrisisError, full.PhaseError, full.ReasonError, full.Error = v.Crisis, v.Phase, v.Reason, v.CrisisError, v.PhaseError, v.ReasonError, v.Error
	s.render(w, r.Request, http.StatusBadRequest, "phases", s.newPage(r, "phases", r.L.T("phases.title"), full))
	return false
}

// phasePolicies says which approved policies limited to phases start and stop sharing records of
// the crisis when it goes from one phase to another (phases.Switches): the break-glass an officer
// is about to open or close.
func (s *Server) phasePolicies(r *request, crisis, exercise, from, to string) []string {
	sw, err := phases.Switches(r.ctx(), s.c.Conn, crisis, exercise, from, to)
	if err != nil {
		s.log.Warn("no policies to name on the phase confirmation", "err", err)
		return nil
	}
	var out []string
	if len(sw.Start) > 0 {
		out = append(out, r.L.T("phase.confirm.start", crisis, strings.Join(sw.Start, ", ")))
	}
	if len(sw.Stop) > 0 {
		out = append(out, r.L.T("phase.confirm.stop", crisis, strings.Join(sw.Stop, ", ")))
		if len(sw.StillFor) > 0 {
			out = append(out, r.L.T("phase.confirm.still", r.L.T("phase."+from), strings.Join(sw.StillFor, ", ")))
		}
	}
	return out
}

// phaseForm confirms a phase change: from which phase to which, and what that does. The form
// comes as a POST, so that its reason is in no address (review AB).
func (s *Server) phaseForm(w http.ResponseWriter, r *request) {
	crisis, phase, reason := strings.TrimSpace(r.PostFormValue("crisis")), r.PostFormValue("phase"), strings.TrimSpace(r.PostFormValue("reden"))
	back := phaseFormPage(r, crisis, phase)
	if !s.officerPage(w, r) || !s.requireRecent(w, r, MaxOfficerAge, back, phaseFields...) || !s.onLeader(w, r, back) {
		return
	}
	if !s.phaseInput(w, r, crisis, phase, reason) {
		return
	}
	from, known := "cold", false
	exercise := r.exercise()
	if resp, err := pb.NewPhaseServiceClient(s.c.Conn).List(r.ctx(), &pb.ListPhasesRequest{Exercise: exercise, Known: true}); err != nil {
		s.failCall(w, r, err)
		return
	} else {
		for _, p := range resp.Phases {
			if p.Crisis == crisis {
				from, known = p.Phase, true
			}
		}
	}
	var switched []string
	if known {
		// A crisis no record names opens no policy: no record of it can go.
		switched = s.phasePolicies(r, crisis, exercise, from, phase)
	}
	v := &confirmView{
		Heading: r.L.T("phase.confirm.heading", crisis), Action: "/fase/wijzigen",
		Hidden: []hiddenField{{"crisis", crisis}, {"phase", phase}, {"reden", reason}, {"exercise", exercise}},
		Effects: append(append([]string{
			r.L.T("phase.confirm.effect", crisis, r.L.T("phase."+from), r.L.T("phase."+phase)),
			r.L.T("phase.confirm.reason", reason)},
			switched...),
			r.L.T("phase.confirm.policies"), r.L.T("step.audit")),
		Warning: func() string {
			if known {
				return ""
			}
			// A misspelt crisis gets a phase that no record and no policy of the crisis meant.
			return r.L.T("phase.confirm.unknown", crisis)
		}(),
		Submit: r.L.T("phase.confirm.submit"), Cancel: "/fase?" + url.Values{"crisis": {crisis}, "exercise": {exercise}}.Encode(), Danger: phase == "warm",
	}
	s.render(w, r.Request, http.StatusOK, "confirm", s.newPage(r, "phases", v.Heading, v))
}

// setPhase changes a crisis's phase, as the signed-in officer.
func (s *Server) setPhase(w http.ResponseWriter, r *request) {
	// After a new sign-in the form is shown again as it was filled in, to be confirmed again.
	back := phaseFormPage(r, r.PostFormValue("crisis"), r.PostFormValue("phase"))
	if !s.requireRecent(w, r, MaxOfficerAge, back, phaseFields...) || !s.onLeader(w, r, back) {
		return
	}
	crisis, phase, reason := strings.TrimSpace(r.PostFormValue("crisis")), r.PostFormValue("phase"), strings.TrimSpace(r.PostFormValue("reden"))
	exercise := strings.TrimSpace(r.PostFormValue("exercise"))
	if !s.phaseInput(w, r, crisis, phase, reason) {
		return
	}
	if _, err := pb.NewPhaseServiceClient(s.c.Conn).Set(r.ctx(), &pb.SetPhaseRequest{Crisis: crisis, Phase: phase, Reason: reason, Exercise: exercise}); err != nil {
		if st := status.Convert(err); st.Code() == codes.InvalidArgument {
			full, lerr := s.phasesView(r)
			if lerr != nil {
				s.failCall(w, r, lerr)
				return
			}
			full.Crisis, full.Phase, full.Reason, full.Error = crisis, phase, reason, st.Message()
			s.render(w, r.Request, http.StatusBadRequest, "phases", s.newPage(r, "phases", r.L.T("phases.title"), full))
			return
		}
		s.failStep(w, r, err, back)
		return
	}
	s.log.Info("phase set", "person", r.Session.Person.String(), "crisis", crisis, "phase", phase, "exercise", exercise)
	done := url.Values{"gedaan": {crisis}}
	if exercise != "" {
		done.Set("exercise", exercise)
	}
	http.Redirect(w, r.Request, "/fase?"+done.Encode(), http.StatusSeeOther)
}

type auditView struct {
	Action, Actor, Subject string
	// Since is the filter's start as typed (2026-12-06, or with a time); SinceError what is
	// wrong with it.
	Since, SinceError string
	Actions           []string
	// Entries are the page's entries, the newest first; First and Last their seqs.
	Entries     []auditRow
	First, Last int64
	// Older and Newer link the pages beside this one, when there may be entries there; Newest
	// the newest page, from a page that is not. CSV downloads the entries the filters select.
	Older, Newer, Newest, CSV string
	Error                     string
	Verify                    *verifyView
}

type auditRow struct {
	Seq                        int64
	At, Actor, Action, Subject string
	// Detail is the entry's detail as fields, in its order; Raw the detail as it is stored,
	// when it is no JSON object.
	Detail []auditField
	Raw    string
}

// auditField is one field of an audit entry's detail: a value, or the values of a list.
type auditField struct{ Key, Value string }

// auditDetail reads an audit entry's detail, a JSON object, as fields in its order: a list of
// texts as one comma-separated value, other objects and lists as compact JSON. ok is false for a
// detail that is no JSON object, which is then shown as it is.
func auditDetail(detail string) (fields []auditField, ok bool) {
	if !gjson.Valid(detail) || !gjson.Parse(detail).IsObject() {
		return nil, false
	}
	gjson.Parse(detail).ForEach(func(k, v gjson.Result) bool {
		val := v.String()
		switch {
		case v.IsArray():
			var items []string
			plain := true
			v.ForEach(func(_, item gjson.Result) bool {
				if item.IsObject() || item.IsArray() {
					plain = false
					return false
				}
				items = append(items, item.String())
				return true
			})
			if plain {
				val = strings.Join(items, ", ")
			} else {
				val = v.Raw
			}
		case v.IsObject():
			val = v.Raw
		}
		fields = append(fields, auditField{Key: k.String(), Value: val})
		return true
	})
	return fields, true
}

type verifyView struct {
	OK          bool
	Entries     int64
	FirstBroken int64
	Problem     string
	HeadSeq     int64
	HeadHash    string
	// Anchor is what the officer gave to check against; AnchorError what is wrong with it.
	AnchorSeq, AnchorHash, AnchorError string
}

// auditActions are the actions the filter offers; an action ending in a dot matches all under it.
var auditActions = []string{"policy.", "phase.set", "record.", "federation.", "peer.", "exercise.", "rule.", "webhook.", "audit.fork", "audit.disputed", "access.denied", "tls.refused", "cluster.", "backup", "search"}

// auditPageSize is how many entries one page of the audit log shows.
const auditPageSize = 100

// audit shows the audit log, filtered by action, actor and subject, a page at a time, and the
// result of verifying its hash chain.
func (s *Server) audit(w http.ResponseWriter, r *request) {
	q := r.URL.Query()
	v, req := s.auditRequest(r)
	v.Actions = auditActions
	seqParam := func(name string) (int64, bool) {
		a := q.Get(name)
		if a == "" {
			return 0, true
		}
		n, err := strconv.ParseInt(a, 10, 64)
		if err != nil || n < 0 {
			s.failIn(w, r, http.StatusBadRequest, r.L.T("error.field", name, r.L.T("audit.after_bad")))
			return 0, false
		}
		return n, true
	}
	after, ok1 := seqParam("na")
	before, ok2 := seqParam("voor")
	if !ok1 || !ok2 {
		return
	}
	// The newest first (review W, M4: the page began at the oldest and paged forward only): the
	// newest page, the one before an entry (voor), or the one after an entry (na).
	req.Limit, req.AfterSeq, req.BeforeSeq, req.Newest = auditPageSize, after, before, after == 0
	ac := pb.NewAuditServiceClient(s.c.Conn)
	var resp *pb.ListAuditResponse
	var err error
	if v.SinceError == "" {
		if resp, err = ac.List(r.ctx(), req); err != nil {
			s.failCall(w, r, err)
			return
		}
	} else {
		resp = &pb.ListAuditResponse{}
	}
	for _, e := range slices.Backward(resp.Entries) {
		row := auditRow{Seq: e.Seq, Actor: e.Actor, Action: e.Action, Subject: e.Subject}
		if fields, ok := auditDetail(e.Detail); ok {
			row.Detail = fields
		} else {
			row.Raw = e.Detail
		}
		if e.At != nil {
			row.At = local(e.At.AsTime()).Format("2006-01-02 15:04:05 MST")
		}
		v.Entries = append(v.Entries, row)
	}
	filters := url.Values{"action": {v.Action}, "actor": {v.Actor}, "subject": {v.Subject}, "sinds": {v.Since}}
	link := func(extra ...string) string {
		nq := url.Values{}
		for k, vs := range filters {
			if vs[0] != "" {
				nq[k] = vs
			}
		}
		for i := 0; i+1 < len(extra); i += 2 {
			nq.Set(extra[i], extra[i+1])
		}
		return "/audit?" + nq.Encode()
	}
	if n := len(v.Entries); n > 0 {
		v.First, v.Last = v.Entries[n-1].Seq, v.Entries[0].Seq
		if n == auditPageSize || after > 0 {
			v.Older = link("voor", strconv.FormatInt(v.First, 10))
		}
		if after > 0 && n == auditPageSize || before > 0 {
			v.Newer = link("na", strconv.FormatInt(v.Last, 10))
		}
	}
	if after > 0 || before > 0 {
		v.Newest = link()
	}
	v.CSV = strings.Replace(link(), "/audit?", "/audit.csv?", 1)
	if q.Has("controle") {
		vv := &verifyView{AnchorSeq: strings.TrimSpace(q.Get("anker_seq")), AnchorHash: strings.TrimSpace(q.Get("anker_hash"))}
		req := &pb.VerifyAuditRequest{}
		if vv.AnchorSeq != "" || vv.AnchorHash != "" {
			seq, err1 := strconv.ParseInt(vv.AnchorSeq, 10, 64)
			hash, err2 := hex.DecodeString(vv.AnchorHash)
			switch {
			case err1 != nil || seq < 1:
				vv.AnchorError = r.L.T("audit.anchor_seq_bad")
			case err2 != nil || len(hash) != 32:
				vv.AnchorError = r.L.T("audit.anchor_hash_bad")
			default:
				req.Anchor = &pb.AuditAnchor{Seq: seq, Hash: hash}
			}
		}
		if vv.AnchorError == "" {
			rep, err := ac.Verify(r.ctx(), req)
			if err != nil {
				s.failCall(w, r, err)
				return
			}
			vv.OK, vv.Entries, vv.FirstBroken, vv.Problem = rep.Ok, rep.Entries, rep.FirstBroken, rep.Problem
			if rep.Head != nil {
				vv.HeadSeq, vv.HeadHash = rep.Head.Seq, hex.EncodeToString(rep.Head.Hash)
			}
		}
		v.Verify = vv
	}
	s.render(w, r.Request, http.StatusOK, "audit", s.newPage(r, "audit", r.L.T("audit.title"), v))
}

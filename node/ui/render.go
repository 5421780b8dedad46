package ui

import (
	"bytes"
	"fmt"
	"html/template"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/knooppunt/knooppunt/federation/search"
	"github.com/knooppunt/knooppunt/node/api"
	"github.com/knooppunt/knooppunt/node/db"
	"github.com/knooppunt/knooppunt/node/record"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// pageNames are the templates under templates/, each rendered inside layout.html.
var pageNames = []string{"picture", "search", "record", "error", "signedout",
	"policies", "policy", "propose", "confirm", "preview", "explain", "phases", "audit", "follower"}

var funcs = template.FuncMap{
	"join":      strings.Join,
	"stateOf":   stateOf,
	"wbr":       wbr,
	"dict":      dict,
	"formLabel": formLabel,
	"inMode":    inMode,
	"zoneName":  zoneName,
	"person":    person,
}

// person says who took a step (proposed, approved, set a phase) by the user name in their SPIFFE
// ID, spiffe://ORG/user/NAME, with the whole ID shown on pointing: the node gives roles to its
// own organisation's people alone, so the name is enough among them. Another ID (an app, a
// node) is shown whole.
func person(id string) template.HTML {
	sid, err := spiffeid.FromString(id)
	name, ok := strings.CutPrefix(sid.Path(), "/user/")
	if err != nil || !ok || name == "" || strings.Contains(name, "/") {
		return wbr(id)
	}
	return template.HTML(`<span class="kp-person" title="` + template.HTMLEscapeString(id) + `">` + template.HTMLEscapeString(name) + `</span>`)
}

// inMode is the link u in the mode of a page's ModeQuery ("" or ?exercise=NAME): the own
// records' pages of an exercise link to its records, forms and uploads, not the actual ones.
func inMode(modeQuery, u string) string {
	if modeQuery == "" {
		return u
	}
	if strings.Contains(u, "?") {
		return u + "&" + modeQuery[1:]
	}
	return u + modeQuery
}

// wbr lets a long identifier (a SPIFFE ID, a record id) break after its slashes and dots, not in
// the middle of a word.
func wbr(s string) template.HTML {
	var b strings.Builder
	for _, part := range strings.SplitAfter(s, "/") {
		for i, p := range strings.Split(part, ".") {
			if i > 0 {
				b.WriteString(".<wbr>")
			}
			b.WriteString(template.HTMLEscapeString(p))
		}
		if strings.HasSuffix(part, "/") {
			b.WriteString("<wbr>")
		}
	}
	return template.HTML(b.String())
}

// dict makes a map of its key, value arguments, to hand more than one value to a template.
func dict(kv ...any) (map[string]any, error) {
	if len(kv)%2 != 0 {
		return nil, fmt.Errorf("dict: %d arguments: give keys and values", len(kv))
	}
	m := make(map[string]any, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		k, ok := kv[i].(string)
		if !ok {
			return nil, fmt.Errorf("dict: key %v is not a string", kv[i])
		}
		m[k] = kv[i+1]
	}
	return m, nil
}

// stateView is a partner's answer, as a tag.
type stateView struct{ Class, Text string }

// shownState is a partner's state in a search's answer, as the pages show it: a partner that
// refused the search as over its limits on this org's calls is busy, not unreachable, which
// would send staff to check a network that is fine (its cache is served as for unreachable).
func shownState(p *pb.PeerStatus) string {
	if p.GetState() == search.Unreachable && p.GetBusy() {
		return "busy"
	}
	return p.GetState()
}

// stateOf shows a search's per-partner state (shownState).
func stateOf(l *Lang, state string) stateView {
	class := "kp-tag--warn"
	switch state {
	case "answered":
		class = "kp-tag--ok"
	case "denied":
		class = "kp-tag--bad"
	}
	return stateView{Class: class, Text: l.T("state." + state)}
}

func parsePages() (map[string]*template.Template, error) {
	out := map[string]*template.Template{}
	for _, name := range pageNames {
		// Partials (part-*.html) define templates any page may include.
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFiles, "templates/layout.html", "templates/part-*.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("ui: template %s: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}

// page is what every template gets. Content is the page's own data.
type page struct {
	L     *Lang
	Title string
	// Org and OrgName are the node's org: its trust domain and its name.
	Org, OrgName string
	// Person is set on the pages of a signed-in person.
	Person *personView
	// CSRF is the session's token for forms that change something.
	CSRF string
	// Nav marks the current menu item.
	Nav string
	// SearchPage is set on the search page, which has its own form: the menu's search box is
	// left out there, and shown on every other page, a record's too.
	SearchPage bool
	// Path is the current request's path and query, to come back to after a language switch.
	Path    string
	Content any
	// Exercise is the exercise whose mode the page reads in ("" the actual records): every
	// page then carries the OEFENING banner and every table its mark. Exercises are the open
	// exercises, for the mode switch; ModeQuery keeps the mode on the menu's links.
	Exercise  string
	Exercises []string
	ModeQuery string
	// ExerciseNotOpen: the page's exercise is closed, or was never started here.
	ExerciseNotOpen bool
	// ExerciseAbsent names the partners that have not started the page's exercise, or closed it.
	ExerciseAbsent []string
	// ExerciseEarlier names the partners whose nodes answer but run a release that does not say
	// whether they take part (review V, V5).
	ExerciseEarlier []string
	// ModeAction is where the mode switch goes, and ModeKeep the page's other parameters it
	// keeps: the picture and the search stay what they show (the crisis, the words) in the other
	// mode; from any other page, whose record or form is of one mode, it goes to the picture.
	ModeAction string
	ModeKeep   []modeParam
	// Restored says that the page's form shows again what was typed in it before a new sign-in
	// (takeDraft).
	Restored bool
	// LeaveExercise is the page in the actual mode that the exercise banner leads back to: the
	// picture or the search with what they show, else the picture.
	LeaveExercise string
	// Marking, on a page that shows records, is their highest classification in capitals: the
	// html element's data-marking, which the print style puts in every printed page's margins.
	// render takes it from the content (printMarked).
	Marking string
}

// printMarked is a page's content that shows records: printMarking is their highest
// classification in the page's language, "" for none.
type printMarked interface{ printMarking() string }

// succeeded is a page that may open with what a step just did (a record saved, a policy or
// phase step taken): succeededTitle is the message key that says so first in the window's title,
// or "" when nothing was done.
type succeeded interface{ succeededTitle() string }

// personView is who is signed in, as every page shows it.
type personView struct {
	Name  string
	ID    string
	Roles []string
	// Officer and Overseer say which of the officers' pages the menu offers: officers take
	// steps; officers and admins read policies and the audit log.
	Officer, Overseer bool
	// Writer writes own records (editors and admins); Admin sees the node's own pages.
	Writer, Admin bool
}

// modeParam is a parameter of the page that the mode switch keeps.
type modeParam struct{ Name, Value string }

// newPage fills what every page of a signed-in person shows.
func (s *Server) newPage(r *request, nav, title string, content any) *page {
	p := &page{L: r.L, Title: title, Nav: nav, CSRF: r.Session.CSRF, Content: content, Path: r.URL.RequestURI()}
	p.Person = &personView{Name: r.Session.Name, ID: r.Session.Person.String(), Officer: isOfficer(r), Overseer: isOverseer(r),
		Writer: isWriter(r), Admin: r.Caller.Has(api.Admin)}
	if r.Session.DisplayName != "" {
		p.Person.Name = r.Session.DisplayName
	}
	p.Person.Roles = roleNames(r)
	p.Exercise, p.ModeQuery = r.exercise(), r.modeQuery()
	if p.Exercise != "" && record.CheckExerciseName("exercise", p.Exercise) != nil {
		// No name at all (a mangled link): the page, which says so, is not in an exercise's
		// mode, and its links lead out of it.
		p.Exercise, p.ModeQuery = "", ""
	}
	p.ModeAction, p.LeaveExercise = "/", "/"
	if path := r.URL.Path; path == "/" || path == "/zoeken" {
		p.ModeAction, p.LeaveExercise = path, path
		q := r.URL.Query()
		q.Del("exercise")
		for _, k := range slices.Sorted(maps.Keys(q)) {
			for _, v := range q[k] {
				p.ModeKeep = append(p.ModeKeep, modeParam{k, v})
			}
		}
		if len(q) > 0 {
			p.LeaveExercise += "?" + q.Encode()
		}
	}
	if s.c.Conn == nil {
		return p
	}
	if list, err := pb.NewExerciseServiceClient(s.c.Conn).List(r.ctx(), &pb.ListExercisesRequest{}); err != nil {
		// The page still serves; only the mode switch and the exercise's banner go without.
		s.log.Warn("the exercises could not be listed for the page", "err", err)
	} else {
		p.Exercises, p.ExerciseAbsent, p.ExerciseEarlier = exerciseParts(list, p.Exercise)
		// A closed exercise (or one never started) can still be asked for by its link: the
		// banner says that nothing of it is there to see or to write.
		p.ExerciseNotOpen = p.Exercise != "" && !slices.Contains(p.Exercises, p.Exercise)
	}
	return p
}

// exerciseParts are the names of the open exercises, and of exercise's partners those that take no
// part and those of an earlier release that do not say.
func exerciseParts(list *pb.ListExercisesResponse, exercise string) (names, absent, earlier []string) {
	for _, e := range list.Exercises {
		names = append(names, e.Name)
		for _, part := range e.Partners {
			switch {
			case e.Name != exercise:
			case db.TakesNoPart(part.State):
				absent = append(absent, part.Peer)
			case part.State == db.ExerciseUnknown && part.EarlierRelease:
				earlier = append(earlier, part.Peer)
			}
		}
	}
	return names, absent, earlier
}

// roleNames are the person's roles, in the person's language.
func roleNames(r *request) []string {
	var out []string
	for _, role := range r.Caller.Roles {
		out = append(out, r.L.T("role."+string(role)))
	}
	return out
}

// render writes a page; a template that fails leaves no half page behind.
func (s *Server) render(w http.ResponseWriter, r *http.Request, code int, name string, p *page) {
	p.Org, p.OrgName = s.c.Org, s.c.Name
	p.SearchPage = name == "search"
	if m, ok := p.Content.(printMarked); ok {
		p.Marking = strings.ToUpper(m.printMarking())
	}
	if p.Path == "" {
		p.Path = r.URL.RequestURI()
	}
	if name != "error" && (code == http.StatusBadRequest || code == http.StatusConflict || code == http.StatusUnprocessableEntity) && p.L != nil {
		// A page shown again with what to correct in it (a form, a search, a change someone
		// else's overtook) says so first in the window's title, which a screen reader reads
		// when the page opens.
		p.Title = p.L.T("form.error_title", p.Title)
	}
	if d, ok := p.Content.(succeeded); ok && code == http.StatusOK && p.L != nil {
		// As an error does: the role="status" notice is there when the page opens, so that a
		// screen reader would not announce it; the title is read.
		if key := d.succeededTitle(); key != "" {
			p.Title = p.L.T(key, p.Title)
		}
	}
	var buf bytes.Buffer
	if err := s.pages[name].Execute(&buf, p); err != nil {
		s.log.Error("page failed", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	buf.WriteTo(w)
}

type errorView struct {
	Code    int
	Message string
	// Detail is the node's own words, for whoever helps the person (in English).
	Detail string
	// Back, when set, is the page to go back to instead of the picture, named BackLabel.
	Back, BackLabel string
}

// fail shows an error page with the text message.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, l *Lang, code int, message string) {
	s.render(w, r, code, "error", &page{L: l, Title: errorTitle(l, code), Content: errorView{Code: code, Message: message}})
}

// errorTitle is an error page's title: what went wrong, where the code says it plainly.
func errorTitle(l *Lang, code int) string {
	switch code {
	case http.StatusNotFound:
		return l.T("error.title_not_found")
	case http.StatusForbidden:
		return l.T("error.title_forbidden")
	}
	return l.T("error.title")
}

// failCall shows the error of a service call, as the person may see it: the HTTP status follows
// the gRPC code, and a denial says only what the service said.
func (s *Server) failCall(w http.ResponseWriter, r *request, err error) {
	st := status.Convert(err)
	code, msg, detail := http.StatusBadGateway, r.L.T("error.service"), ""
	switch st.Code() {
	case codes.PermissionDenied, codes.Unauthenticated:
		code, msg = http.StatusForbidden, r.L.T("error.refused", st.Message())
		switch api.Reason(err) {
		case api.ReasonRoleDenied:
			// A role that does not reach the call: said in the page's words, the node's own
			// (the SPIFFE ID, the method, the role it needs) under it, for the administrator
			// the person asks. Other refusals say their reason as it is.
			msg, detail = r.L.T("error.denied"), st.Message()
			if needs := api.NeededRoles(err); needs != nil {
				// The role it needs in the page's words (review W, L5); the node's own words
				// stay under it, for the administrator.
				names := make([]string, len(needs))
				for i, n := range needs {
					names[i] = r.L.T("role." + n)
				}
				msg = r.L.T("error.denied_needs", strings.Join(names, r.L.T("word.or")))
			}
		case api.ReasonFourEyes:
			msg, detail = r.L.T("error.four_eyes"), st.Message()
		}
	case codes.NotFound:
		code, msg = http.StatusNotFound, r.L.T("error.not_found")
	case codes.ResourceExhausted:
		if wait, ok := api.RetryAfter(err); ok {
			// A limit of the node's on searches that ask the partners: as the pages' own.
			s.tooFast(w, r, wait)
			return
		}
	case codes.InvalidArgument:
		// Said in the page's words, the service's own (which names the field, in English)
		// under it: such a request comes from a link that was typed or mangled (in a mail, a
		// chat), and the person needs to know what to do, not the pattern of a name.
		code, msg, detail = http.StatusBadRequest, r.L.T("error.invalid_link"), st.Message()
	case codes.Unavailable, codes.DeadlineExceeded:
		code, msg = http.StatusServiceUnavailable, r.L.T("error.unavailable")
	}
	if code >= 500 {
		s.log.Error("service call failed", "person", r.Session.Person.String(), "path", r.URL.Path, "code", st.Code().String(), "msg", st.Message())
	}
	s.render(w, r.Request, code, "error", s.newPage(r, "", errorTitle(r.L, code), errorView{Code: code, Message: msg, Detail: detail}))
}

// failIn shows an error to a signed-in person: the page keeps the menu, the person and the way
// back, where fail's page, for a request without a session, offers only to sign in again.
func (s *Server) failIn(w http.ResponseWriter, r *request, code int, message string) {
	s.render(w, r.Request, code, "error", s.newPage(r, "", errorTitle(r.L, code), errorView{Code: code, Message: message}))
}

package ui

import (
	"cmp"
	"context"
	"crypto/subtle"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"golang.org/x/oauth2"
	"google.golang.org/grpc"

	"github.com/knooppunt/knooppunt/node/api"
	"github.com/knooppunt/knooppunt/node/attach"
	"github.com/knooppunt/knooppunt/node/config"
	"github.com/knooppunt/knooppunt/node/record"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed assets
var assetFiles embed.FS

// Config is what the web interface needs from the node.
type Config struct {
	// UI is the node config's ui section, checked.
	UI config.UI
	// Org is the org's trust domain; Name is the node's name, shown in the header band.
	Org  string
	Name string
	// Conn reaches the node's services as the signed-in person: an api.InProcess channel.
	Conn grpc.ClientConnInterface
	// Resolve gives a person's roles by the node's role table (api.Authorizer.Resolve).
	Resolve func(spiffeid.ID) (api.Caller, error)
	Logger  *slog.Logger
	// HTTPClient reaches the identity provider. Default http.DefaultClient.
	HTTPClient *http.Client
	// Leader reports whether this replica leads its Raft group, and if not, the public URL
	// of the leader's web interface ("" when unknown). Policy steps and phase changes are
	// taken on the leader only. Nil: a single replica, always the leader.
	Leader func() (leader bool, web string)
	// Kinds are the node's declared kinds: the own-record form is generated from their JSON
	// Schemas. Nil: only the kinds' names, from StatusService, and a JSON body field.
	Kinds *record.Kinds
	// MaxBodyBytes is the largest record body the node takes (limits.max_body_bytes), which
	// sizes the largest form. Zero: record.DefaultMaxBody.
	MaxBodyBytes int
	// FileLimits are the node's limits of files (attachments): the record form says them, and
	// sizes the files it takes at once by them. Nil: attach's defaults.
	FileLimits func() attach.Limits
	// Changed returns a channel that is closed at the node's next commit (db.DB.Changed): the
	// open picture pages then ask the services whether what they show changed. It carries no
	// data. Nil: the picture does not update by itself.
	Changed func() <-chan struct{}
	// PartnersChanged returns a channel that is closed when the node's subscription to a partner
	// next breaks or opens again (peerclient.Manager.Changed; on a follower, which subscribes to
	// none, the leader's, as it tells the follower): the open pictures are then fetched
	// again, and that fetch asks the partners whether they answer, so that a partner that went
	// away or came back shows so at once rather than at the next minute. gen counts the changes
	// before it: a page names the one it showed, and its stream tells at once of a change since
	// (one between the page and its stream would go untold). Nil: it shows at the next minute.
	PartnersChanged func() (changed <-chan struct{}, gen uint64)
}

// Server is the web interface: an http.Handler.
type Server struct {
	c        Config
	td       spiffeid.TrustDomain
	log      *slog.Logger
	pages    map[string]*template.Template
	cats     map[string]catalogue
	titles   map[string]string // the declared kinds' titles (kindTitles)
	sessions *sessions
	secure   bool // cookies are Secure: the public URL is https
	public   *url.URL
	// csp is every answer's Content-Security-Policy; issuerOrigin the provider's origin, to
	// which a sign-out goes on (empty when it does not: ui.oidc.sign_out: node).
	csp, issuerOrigin string
	secret            string
	mux               *http.ServeMux

	oidcMu   sync.Mutex
	provider *oidc.Provider // discovered at the first sign-in, so the node starts without it

	imports *importReports // the reports of uploaded files, for the page after the upload
	streams *liveStreams   // the open live pictures
	limits  *limits        // each person's limit of pages that ask the partners
	quit    chan struct{}  // closed by Stop: ends the live streams
	stop    sync.Once
}

// New builds the web interface. It reads the client secret file, but does not contact the
// identity provider: that happens at the first sign-in, so a provider that is down does not
// keep the node from starting.
func New(c Config) (*Server, error) {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.HTTPClient == nil {
		c.HTTPClient = http.DefaultClient
	}
	if err := c.UI.Check(); err != nil {
		return nil, fmt.Errorf("ui: %w", err)
	}
	if err := setZone(c.UI.TimeZone); err != nil {
		return nil, fmt.Errorf("ui: ui.time_zone: %w", err)
	}
	td, err := spiffeid.TrustDomainFromString(c.Org)
	if err != nil {
		return nil, fmt.Errorf("ui: org %q: %w", c.Org, err)
	}
	s := &Server{c: c, td: td, log: c.Logger.With("component", "ui"), sessions: newSessions(), imports: newImportReports(),
		streams: newLiveStreams(), limits: newLimits(), quit: make(chan struct{})}
	if s.public, err = url.Parse(strings.TrimSuffix(c.UI.PublicURL, "/")); err != nil {
		return nil, fmt.Errorf("ui: ui.public_url: %w", err)
	}
	s.secure = s.public.Scheme == "https"
	// Chromium holds a form's redirects to form-action: the sign-out form's answer goes on to
	// the provider's end_session_endpoint, on the issuer's origin (providerSignOut).
	formAction := "'self'"
	if c.UI.OIDC.SignOut != config.SignOutNode {
		iu, _ := url.Parse(c.UI.OIDC.Issuer) // checked by c.UI.Check
		s.issuerOrigin = iu.Scheme + "://" + iu.Host
		formAction += " " + s.issuerOrigin
	}
	s.csp = "default-src 'none'; style-src 'self'; img-src 'self'; font-src 'self'; script-src 'self'; connect-src 'self'; form-action " + formAction + "; frame-ancestors 'none'; base-uri 'none'"
	if f := c.UI.OIDC.ClientSecretFile; f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("ui: ui.oidc.client_secret_file: %w", err)
		}
		if s.secret = strings.TrimSpace(string(b)); s.secret == "" {
			return nil, fmt.Errorf("ui: ui.oidc.client_secret_file: %s is empty: put the client secret in it", f)
		}
	}
	if s.cats, err = loadCatalogues(); err != nil {
		return nil, err
	}
	if c.Kinds != nil {
		s.titles = kindTitles(c.Kinds)
	}
	if s.pages, err = parsePages(); err != nil {
		return nil, err
	}
	s.routes()
	return s, nil
}

func (s *Server) routes() {
	m := http.NewServeMux()
	assets, _ := fs.Sub(assetFiles, "assets")
	m.Handle("GET /assets/", http.StripPrefix("/assets/", assetHandler(http.FileServerFS(assets))))
	m.HandleFunc("GET /aanmelden", s.signIn)
	m.HandleFunc("GET /auth/callback", s.callback)
	m.HandleFunc("GET /afgemeld", s.signedOut)
	m.HandleFunc("GET /taal", s.setLang)
	m.HandleFunc("POST /afmelden", s.person(s.signOut))
	m.HandleFunc("GET /{$}", s.person(s.picture))
	m.HandleFunc("GET /zoeken", s.person(s.search))
	m.HandleFunc("GET /record", s.person(s.record))
	m.HandleFunc("GET /bijlage", s.person(s.file))
	m.HandleFunc("GET /beleid", s.person(s.policies))
	m.HandleFunc("GET /beleid/toon", s.person(s.policy))
	m.HandleFunc("GET /beleid/voorstel", s.person(s.proposeForm))
	m.HandleFunc("POST /beleid/voorstel", s.person(s.propose))
	m.HandleFunc("POST /beleid/controle", s.person(s.lintLive))
	m.HandleFunc("GET /beleid/stap", s.person(s.stepForm))
	m.HandleFunc("POST /beleid/stap", s.person(s.step))
	m.HandleFunc("GET /beleid/voorbeeld", s.person(s.preview))
	m.HandleFunc("GET /beleid/uitleg", s.person(s.explain))
	m.HandleFunc("GET /fase", s.person(s.phases))
	m.HandleFunc("GET /fase/wijzigen", s.person(s.oldPhaseForm))
	m.HandleFunc("POST /fase/bevestigen", s.person(s.phaseForm))
	m.HandleFunc("POST /fase/wijzigen", s.person(s.setPhase))
	m.HandleFunc("GET /audit", s.person(s.audit))
	m.HandleFunc("GET /audit.csv", s.person(s.auditCSV))
	m.HandleFunc("GET /beeld/live", s.person(s.live))
	m.HandleFunc("GET /beeld/csv", s.person(s.pictureCSV))
	m.HandleFunc("GET /records", s.person(s.ownRecords))
	m.HandleFunc("GET /records/nieuw", s.person(s.recordForm))
	m.HandleFunc("POST /records/nieuw", s.signedIn(s.saveRecord, false))
	m.HandleFunc("GET /records/wijzigen", s.person(s.recordForm))
	m.HandleFunc("POST /records/wijzigen", s.signedIn(s.saveRecord, false))
	m.HandleFunc("GET /records/importeren", s.person(s.importForm))
	m.HandleFunc("POST /records/importeren", s.signedIn(s.importFile, false))
	m.HandleFunc("GET /records/importeren/verslag", s.person(s.importReport))
	m.HandleFunc("GET /records/importeren/voorbeeld", s.person(s.importTemplate))
	m.HandleFunc("GET /beheer", s.person(s.admin))
	m.HandleFunc("GET /duiding", s.person(s.assessmentForm))
	m.HandleFunc("POST /duiding", s.person(s.publishAssessment))
	m.HandleFunc("POST /duiding/reactie", s.person(s.respondToAssessment))
	m.HandleFunc("/", s.notFound)
	s.mux = m
}

// ServeHTTP serves the interface, with the security headers on every response.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", s.csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
	if s.secure {
		h.Set("Strict-Transport-Security", "max-age=31536000")
	}
	s.mux.ServeHTTP(w, r)
}

// assetHandler lets browsers keep the embedded assets for a day; they change only with the
// binary.
func assetHandler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=86400")
		h.ServeHTTP(w, r)
	})
}

// sessionCookie is the session cookie's name. With Secure it takes the __Host- prefix, which
// browsers accept only from https, for path / and without a domain.
func (s *Server) sessionCookie() string { return s.cookieName("knooppunt_sessie") }

// loginCookie binds a pending sign-in to the browser that started it.
func (s *Server) loginCookie() string { return s.cookieName("knooppunt_aanmelding") }

// cookieName is the name of one of the interface's cookies. Over plain HTTP, which is served
// on loopback only, it carries the port: browsers keep cookies per host, not per port, and
// several nodes on one host (the demo's six, a replica group under test) would otherwise
// overwrite each other's sessions, signing a person out of one by signing in at another.
func (s *Server) cookieName(base string) string {
	if s.secure {
		return "__Host-" + base
	}
	if p := s.public.Port(); p != "" {
		return base + "_" + p
	}
	return base
}

func (s *Server) setCookie(w http.ResponseWriter, name, value string, maxAge time.Duration) {
	c := &http.Cookie{Name: name, Value: value, Path: "/", HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode}
	if maxAge < 0 {
		c.MaxAge = -1
	} else {
		c.MaxAge = int(maxAge / time.Second)
	}
	http.SetCookie(w, c)
}

// maxForm bounds a form's body, which is refused before it is read whole when it is larger: room
// for the largest record body the node takes, URL-encoded (up to three bytes a byte), and for the
// form's other fields.
func (c *Config) maxForm() int64 {
	return 3*int64(cmp.Or(c.MaxBodyBytes, record.DefaultMaxBody)) + 64<<10
}

// MaxOfficerAge is how old a sign-in may be for a policy step or a phase change: older, and the
// officer signs in again first (requireRecent).
const MaxOfficerAge = 10 * time.Minute

// requireRecent reports whether the person signed in at the provider within maxAge. If not, it
// sends the browser to sign in again, forcing the provider to authenticate anew (prompt=login,
// max_age=0), and back to the page afterwards. An officer's form sent (a POST, which cannot be
// replayed) returns to its page, form (a path and query), which shows again what was typed in
// its fields (takeDraft), when the same person signs in: an officer who wrote a policy for longer
// than maxAge loses nothing. The session keeps one such draft, of those fields alone. Anyone
// else's POST is refused, as the step would be.
func (s *Server) requireRecent(w http.ResponseWriter, r *request, maxAge time.Duration, form string, fields ...string) bool {
	if time.Since(r.Session.AuthTime) <= maxAge {
		return true
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		if form == "" || !isOfficer(r) {
			s.fail(w, r.Request, r.L, http.StatusForbidden, r.L.T("error.signin_stale"))
			return false
		}
		values := url.Values{}
		for _, f := range fields {
			if v := r.PostFormValue(f); v != "" {
				values.Set(f, v)
			}
		}
		if len(values) > 0 {
			s.sessions.park(r.sessionID, &draft{Page: localPath(form), Values: values})
		}
		s.startSignIn(w, r.Request, &pending{ReturnTo: localPath(form), Fresh: true, From: key(r.sessionID)})
		return false
	}
	http.Redirect(w, r.Request, "/aanmelden?opnieuw=1&terug="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
	return false
}

// takeDraft gives, once, what the session's interrupted form held, when this is its page: nil
// otherwise.
func (s *Server) takeDraft(r *request) url.Values {
	return s.sessions.takeDraft(r.sessionID, r.URL.RequestURI())
}

// csrfField is the form field that carries the session's CSRF token.
const csrfField = "csrf"

// request is what a page handler gets: the person, their roles and language.
type request struct {
	*http.Request
	Session *session
	Caller  api.Caller
	L       *Lang
	// sessionID is the cookie's value, to end the session.
	sessionID string
	// partnerNames is what partnerNames found, once a page asked.
	partnerNames map[string]string
}

// exercise is the exercise whose mode the person reads in (?exercise=NAME), or "" for the
// actual records.
//
// A form posted in an exercise (a phase change's confirmation) carries it as a field: a page shown
// again after a refusal stays in the exercise, instead of falling back to the actual mode, where
// the form sent again would change the actual crisis.
func (r *request) exercise() string {
	e := r.URL.Query().Get("exercise")
	if e == "" && r.PostForm != nil { // parsed by signedIn; an upload's body stays unread
		e = r.PostForm.Get("exercise")
	}
	return strings.TrimSpace(e)
}

// mode is the mode of every read the page makes: actual, or the exercise's.
func (r *request) mode() *pb.Mode {
	if e := r.exercise(); e != "" {
		return &pb.Mode{Status: pb.Status_EXERCISE, Exercise: e}
	}
	return nil
}

// modeQuery keeps the request's mode on a link: "?exercise=NAME", or "" for the actual records.
func (r *request) modeQuery() string {
	if q := r.modeValues(url.Values{}); len(q) > 0 {
		return "?" + q.Encode()
	}
	return ""
}

// inMode is the link u in the request's mode (see the template function inMode).
func (r *request) inMode(u string) string { return inMode(r.modeQuery(), u) }

// modeValues adds the request's mode to q, a link's query, and returns it.
func (r *request) modeValues(q url.Values) url.Values {
	if e := r.exercise(); e != "" {
		q.Set("exercise", e)
	}
	return q
}

// ctx is the request's context, with the person for calls on the in-process channel.
func (r *request) ctx() context.Context { return api.AsPerson(r.Context(), r.Session.Person) }

// person wraps a page that needs a signed-in person: an unknown or expired session is sent to
// sign in (a POST gets 403: it cannot be replayed after a sign-in), and every POST must carry
// the session's CSRF token.
func (s *Server) person(h func(http.ResponseWriter, *request)) http.HandlerFunc {
	return s.signedIn(h, true)
}

// signedIn is person; with form false a POST's body is left unread, for a handler that streams
// a large body (a file upload) and checks the CSRF token itself, first (checkCSRF).
func (s *Server) signedIn(h func(http.ResponseWriter, *request), form bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		l := s.pickLang(r)
		id, sess := s.sessionOf(r)
		if sess == nil {
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				s.fail(w, r, l, http.StatusForbidden, l.T("error.session_gone"))
				return
			}
			http.Redirect(w, r, "/aanmelden?terug="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		caller, err := s.c.Resolve(sess.Person)
		if err != nil {
			// The role was taken away since the sign-in.
			s.sessions.end(id)
			s.fail(w, r, l, http.StatusForbidden, l.T("error.no_role", sess.Person.String()))
			return
		}
		req := &request{Request: r, Session: sess, Caller: caller, L: l, sessionID: id}
		if r.Method == http.MethodPost && form && !s.readForm(w, req) {
			return
		}
		h(w, req)
	}
}

// readForm reads a POST's form, under maxForm, and checks its CSRF token; false when it refused
// the request.
func (s *Server) readForm(w http.ResponseWriter, r *request) bool {
	r.Body = http.MaxBytesReader(w, r.Body, s.c.maxForm())
	if err := r.ParseForm(); err != nil {
		// Else the form would read as empty, and be refused as if its token were wrong.
		if tooLarge := (*http.MaxBytesError)(nil); errors.As(err, &tooLarge) {
			s.failIn(w, r, http.StatusRequestEntityTooLarge, r.L.T("error.form_too_large", fileSize(r.L, tooLarge.Limit)))
			return false
		}
		s.failIn(w, r, http.StatusBadRequest, r.L.T("error.form_unreadable", err.Error()))
		return false
	}
	return s.checkCSRF(w, r.Request, r.L, r.Session, r.PostFormValue(csrfField))
}

// sessionOf is the session the request's cookie names, and its id; nil when there is none or it
// expired.
func (s *Server) sessionOf(r *http.Request) (string, *session) {
	var id string
	if c, err := r.Cookie(s.sessionCookie()); err == nil {
		id = c.Value
	}
	return id, s.sessions.get(id)
}

// checkCSRF reports whether tok is the session's CSRF token; if not, it refuses the request.
func (s *Server) checkCSRF(w http.ResponseWriter, r *http.Request, l *Lang, sess *session, tok string) bool {
	if subtle.ConstantTimeCompare([]byte(tok), []byte(sess.CSRF)) == 1 {
		return true
	}
	s.log.Warn("form refused", "reason", "missing or wrong CSRF token", "person", sess.Person.String(), "path", r.URL.Path)
	s.fail(w, r, l, http.StatusForbidden, l.T("error.csrf"))
	return false
}

// Stop ends the open live streams of the picture, so that the web server can shut down.
func (s *Server) Stop() { s.stop.Do(func() { close(s.quit) }) }

// signOut ends the session, and the person's session at the provider too (providerSignOut).
func (s *Server) signOut(w http.ResponseWriter, r *request) {
	s.sessions.end(r.sessionID)
	s.setCookie(w, s.sessionCookie(), "", -1)
	s.log.Info("signed out", "person", r.Session.Person.String())
	to := cmp.Or(s.providerSignOut(r.Context(), r.Session.IDToken), "/afgemeld")
	http.Redirect(w, r.Request, to, http.StatusSeeOther)
}

func (s *Server) signedOut(w http.ResponseWriter, r *http.Request) {
	l := s.pickLang(r)
	s.render(w, r, http.StatusOK, "signedout", &page{L: l, Title: l.T("signedout.title")})
}

// setLang keeps the person's choice of language in a cookie and goes back.
func (s *Server) setLang(w http.ResponseWriter, r *http.Request) {
	code := r.URL.Query().Get("lang")
	if _, ok := s.cats[code]; !ok {
		code = "nl"
	}
	http.SetCookie(w, &http.Cookie{Name: langCookie, Value: code, Path: "/", MaxAge: 365 * 24 * 3600, Secure: s.secure, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, localPath(r.URL.Query().Get("terug")), http.StatusSeeOther)
}

// localPath keeps a return address on this site: a path, never another host, given as it
// will be followed. A browser reads a backslash as a slash, and http.Redirect cleans a path, so
// that /./\\host would become /\\host, another host to a browser: a path is taken only cleaned,
// without backslashes or control characters, and escaped.
func localPath(p string) string {
	if !strings.HasPrefix(p, "/") || strings.ContainsRune(p, '\\') || strings.IndexFunc(p, unicode.IsControl) >= 0 {
		return "/"
	}
	u, err := url.Parse(p)
	if err != nil || u.Host != "" || u.Scheme != "" || u.Opaque != "" || u.User != nil || strings.ContainsRune(u.Path, '\\') || strings.IndexFunc(u.Path, unicode.IsControl) >= 0 {
		return "/"
	}
	clean := path.Clean(u.Path)
	if strings.HasSuffix(u.Path, "/") && clean != "/" {
		clean += "/"
	}
	if !strings.HasPrefix(clean, "/") || strings.HasPrefix(clean, "//") {
		return "/"
	}
	return (&url.URL{Path: clean, RawQuery: u.RawQuery}).String()
}

func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	l := s.pickLang(r)
	// A signed-in person keeps the menu, and is not told to sign in again.
	if id, sess := s.sessionOf(r); sess != nil {
		if caller, err := s.c.Resolve(sess.Person); err == nil {
			w.Header().Set("Cache-Control", "no-store")
			s.failIn(w, &request{Request: r, Session: sess, Caller: caller, L: l, sessionID: id}, http.StatusNotFound, l.T("error.not_found"))
			return
		}
	}
	s.fail(w, r, l, http.StatusNotFound, l.T("error.not_found"))
}

// oidcClient returns the provider and the OAuth2 config, discovering the provider the first
// time.
func (s *Server) oidcClient(ctx context.Context) (*oidc.Provider, *oauth2.Config, error) {
	s.oidcMu.Lock()
	defer s.oidcMu.Unlock()
	if s.provider == nil {
		dctx, cancel := context.WithTimeout(oidc.ClientContext(ctx, s.c.HTTPClient), 10*time.Second)
		defer cancel()
		p, err := oidc.NewProvider(dctx, s.c.UI.OIDC.Issuer)
		if err != nil {
			return nil, nil, fmt.Errorf("ui: identity provider %s: %w", s.c.UI.OIDC.Issuer, err)
		}
		s.provider = p
	}
	oc := &oauth2.Config{
		ClientID:     s.c.UI.OIDC.ClientID,
		ClientSecret: s.secret,
		Endpoint:     s.provider.Endpoint(),
		RedirectURL:  s.public.String() + "/auth/callback",
		Scopes:       append([]string{oidc.ScopeOpenID}, s.c.UI.OIDC.Scopes...),
	}
	return s.provider, oc, nil
}

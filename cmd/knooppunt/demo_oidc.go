package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"
)

// The demo's own OpenID provider: one per organisation, so that a newcomer can sign in to each
// organisation's web interface as its people. It runs inside the demo process only, on
// loopback, with made-up people and one shared password; `serve` never starts one: a real node
// trusts the organisation's own identity provider (ui.oidc in the node config).

// demoPeople are each organisation's people at its provider, as the node config's roles name
// them: two officers (for the four-eyes rule), an editor, a staff member who reads (medewerker):
// the web interface as most of an organisation's people see it, and an administrator, for the
// node's page.
var demoPeople = []struct{ user, first, last, role string }{
	{"officer-a", "Anne", "Jansen", "officer"},
	{"officer-b", "Bas", "de Vries", "officer"},
	{"editor", "Chris", "Bakker", "editor"},
	{"medewerker", "Dana", "de Wit", "reader"},
	{"beheerder", "Eva", "Smit", "admin"},
}

// demoPassword is every demo person's password. The provider listens on loopback only.
const demoPassword = "demo"

// demoUsers is the provider's user store: demoPeople.
type demoUsers struct{}

func (demoUsers) GetUserByID(id string) *storage.User { return demoUsers{}.GetUserByUsername(id) }

func (demoUsers) GetUserByUsername(name string) *storage.User {
	for _, p := range demoPeople {
		if p.user == name {
			return &storage.User{ID: p.user, Username: p.user, Password: demoPassword, FirstName: p.first, LastName: p.last,
				PreferredLanguage: language.Dutch, EmailVerified: true, Email: p.user + "@demo.invalid"}
		}
	}
	return nil
}

func (demoUsers) ExampleClientID() string { return "" }

// demoStorage is the provider's storage, whose client may come back to the web interface's
// signed-out page when the node ends a person's session at the provider too: the example
// storage's clients hold no such address.
type demoStorage struct {
	*storage.Storage
	afterSignOut string
}

func (s demoStorage) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, err := s.Storage.GetClientByClientID(ctx, id)
	if err != nil {
		return c, err
	}
	return signOutClient{Client: c, after: s.afterSignOut}, nil
}

// signOutClient is a client that may come back to after, once its person signed out.
type signOutClient struct {
	op.Client
	after string
}

func (c signOutClient) PostLogoutRedirectURIs() []string { return []string{c.after} }

// clientID is the org's web interface's client at its demo provider.
func (o *demoOrg) clientID() string { return "knooppunt-" + o.name }

// issuer is the URL of the org's demo provider.
func (o *demoOrg) issuer() string { return fmt.Sprintf("http://127.0.0.1:%d", o.opPort) }

// webURL is the org's web interface.
func (o *demoOrg) webURL() string { return fmt.Sprintf("http://127.0.0.1:%d", o.uiPort) }

// writeClientSecret makes the secret the org's web interface and its provider share.
func (o *demoOrg) writeClientSecret() error {
	b := make([]byte, 24)
	rand.Read(b)
	o.secret = hex.EncodeToString(b)
	return os.WriteFile(filepath.Join(o.dir, "oidc-client-secret"), []byte(o.secret+"\n"), 0o600)
}

// startProvider serves the org's demo provider on its loopback port. The returned server is
// closed when the demo ends.
func (o *demoOrg) startProvider() (*http.Server, error) {
	st := storage.NewStorageWithClients(demoUsers{}, map[string]*storage.Client{
		o.clientID(): storage.WebClient(o.clientID(), o.secret, o.webURL()+"/auth/callback"),
	})
	// The key only encrypts the provider's own tokens for this run.
	key := sha256.Sum256([]byte(o.secret))
	prov, err := op.NewProvider(&op.Config{CryptoKey: key, CodeMethodS256: true, SupportedUILocales: []language.Tag{language.Dutch, language.English}},
		demoStorage{Storage: st, afterSignOut: o.webURL() + "/afgemeld"}, op.StaticIssuer(o.issuer()), op.WithAllowInsecure())
	if err != nil {
		return nil, err
	}
	lis, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", o.opPort))
	if err != nil {
		return nil, fmt.Errorf("the demo's OpenID provider: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/login/username", op.NewIssuerInterceptor(prov.IssuerFromRequest).HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		demoLogin(w, r, o, st, prov)
	}))
	mux.Handle("/", prov)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(lis)
	return srv, nil
}

// demoLoginCSS is the sign-in form's style, allowed by its hash in the page's
// Content-Security-Policy (demoLoginStyleSrc).
const demoLoginCSS = `body{font-family:system-ui,sans-serif;max-width:32rem;margin:2rem auto;padding:0 1rem;line-height:1.5;color:#1a1a1a}` +
	`h1{font-size:1.5rem;color:#122b4d}label{font-weight:600}` +
	`input{font:inherit;padding:.5rem;width:100%;box-sizing:border-box;border:1px solid #5c6470}` +
	`input:focus-visible,button:focus-visible{outline:3px solid #122b4d;outline-offset:2px}` +
	`button{font:inherit;padding:.5rem 1.25rem;background:#1c3f6e;color:#fff;border:0;cursor:pointer}` +
	`.fout{border-left:4px solid #c00;padding-left:.75rem;color:#a00;font-weight:600}`

// demoLoginStyleSrc allows demoLoginCSS, and no other style.
var demoLoginStyleSrc = func() string {
	sum := sha256.Sum256([]byte(demoLoginCSS))
	return "style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}()

// demoLoginPage is the provider's sign-in form. It is the demo provider's page, not the node's.
var demoLoginPage = template.Must(template.New("login").Parse(`<!DOCTYPE html>
<html lang="nl"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Demo-aanmelding {{.Org}}</title><style>` + demoLoginCSS + `</style></head>
<body>
<h1>Demo-aanmelding · {{.Org}}</h1>
<p>Dit is de OpenID-provider van de demo, niet die van een echte organisatie.
Meld u aan als medewerker (lezen), editor (redacteur), officer-a of officer-b (security officers) of beheerder (het knooppunt), wachtwoord <code>demo</code>.</p>
{{if .Error}}<p class="fout" id="fout" role="alert">{{.Error}}</p>{{end}}
<form method="post" action="/login/username">
<input type="hidden" name="authRequestID" value="{{.ID}}">
<p><label for="username">Gebruikersnaam</label><br><input id="username" name="username" value="{{.User}}" autocomplete="username" autofocus required{{if .Error}} aria-invalid="true" aria-describedby="fout"{{end}}></p>
<p><label for="password">Wachtwoord</label><br><input id="password" name="password" type="password" autocomplete="current-password" required{{if .Error}} aria-invalid="true" aria-describedby="fout"{{end}}></p>
<p><button type="submit">Aanmelden</button></p>
</form>
</body></html>
`))

// demoLogin shows the sign-in form and checks what the person types.
func demoLogin(w http.ResponseWriter, r *http.Request, o *demoOrg, st *storage.Storage, prov op.OpenIDProvider) {
	// The form posts here, and the answer redirects through the provider to the web interface's
	// callback: Chromium holds form-action to every hop of that chain, so the web interface's
	// origin must be named, or the sign-in stops after the password.
	w.Header().Set("Content-Security-Policy", "default-src 'none'; "+demoLoginStyleSrc+"; form-action 'self' "+o.webURL()+"; frame-ancestors 'none'")
	w.Header().Set("Cache-Control", "no-store")
	// The user name starts empty: filled in, a person who types only the password would be
	// signed in as whoever it named, an officer.
	view := struct{ Org, ID, User, Error string }{Org: o.title, ID: r.URL.Query().Get("authRequestID")}
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
		view.ID = r.PostFormValue("authRequestID")
		user := strings.TrimSpace(r.PostFormValue("username"))
		view.User = user
		if err := st.CheckUsernamePassword(user, r.PostFormValue("password"), view.ID); err == nil {
			http.Redirect(w, r, op.AuthCallbackURL(prov)(r.Context(), view.ID), http.StatusFound)
			return
		}
		view.Error = "Onbekende gebruikersnaam of verkeerd wachtwoord."
		w.WriteHeader(http.StatusUnauthorized)
	}
	if view.ID == "" {
		http.Error(w, "no authRequestID: start at the web interface", http.StatusBadRequest)
		return
	}
	demoLoginPage.Execute(w, view)
}

package main

import (
	"context"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/knooppunt/knooppunt/node/proctest"
)

// TestDemoProviderSignsInTheDemoPeople: the demo's OpenID provider of an organisation signs in
// its people with the demo password and nobody else, and hands the web interface (here a
// stand-in that takes the code) an ID token that names the person as the node's role table
// does.
func TestDemoProviderSignsInTheDemoPeople(t *testing.T) {
	o, codes := startDemoProvider(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	prov, oc := demoClient(ctx, t, o)
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	var idToken string // the last sign-in's
	signIn := func(user, password string) (int, string) {
		verifier := oauth2.GenerateVerifier()
		resp, err := browser.Get(oc.AuthCodeURL("st", oidc.Nonce("n"), oauth2.S256ChallengeOption(verifier)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		login := resp.Request.URL
		if login.Path != "/login/username" {
			t.Fatalf("the provider did not show its sign-in form: at %s", login)
		}
		resp, err = browser.PostForm(o.issuer()+"/login/username", url.Values{
			"authRequestID": {login.Query().Get("authRequestID")}, "username": {user}, "password": {password}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return resp.StatusCode, ""
		}
		var code string
		select {
		case code = <-codes:
		case <-ctx.Done():
			t.Fatal("the provider did not send the browser back with a code")
		}
		tok, err := oc.Exchange(ctx, code, oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := tok.Extra("id_token").(string)
		idToken = raw
		idt, err := prov.Verifier(&oidc.Config{ClientID: o.clientID()}).Verify(ctx, raw)
		if err != nil {
			t.Fatal(err)
		}
		var claims struct {
			Name string `json:"preferred_username"`
		}
		if err := idt.Claims(&claims); err != nil {
			t.Fatal(err)
		}
		if claims.Name == "" {
			ui, err := prov.UserInfo(ctx, oauth2.StaticTokenSource(tok))
			if err != nil {
				t.Fatal(err)
			}
			ui.Claims(&claims)
		}
		return resp.StatusCode, claims.Name
	}
	for _, who := range []string{"officer-b", "medewerker", "beheerder"} {
		if code, name := signIn(who, demoPassword); code != http.StatusOK || name != who {
			t.Errorf("%s signs in: %d as %q", who, code, name)
		}
	}
	// Signing out at the provider too, as the web interface does, comes back to its signed-out
	// page: the provider knows that address as the client's.
	var meta struct {
		EndSession string `json:"end_session_endpoint"`
	}
	if err := prov.Claims(&meta); err != nil || meta.EndSession == "" {
		t.Fatalf("the demo provider offers no end_session_endpoint (%v)", err)
	}
	resp, err := browser.Get(meta.EndSession + "?" + url.Values{"id_token_hint": {idToken}, "client_id": {o.clientID()},
		"post_logout_redirect_uri": {o.webURL() + "/afgemeld"}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Request.URL.String() != o.webURL()+"/afgemeld" {
		t.Errorf("signed out at the provider: at %s (%d), want back at the web interface's signed-out page", resp.Request.URL, resp.StatusCode)
	}
	for _, bad := range [][2]string{{"officer-a", "wrong"}, {"mallory", demoPassword}} {
		if code, _ := signIn(bad[0], bad[1]); code != http.StatusUnauthorized {
			t.Errorf("%s with password %q: %d, want 401", bad[0], bad[1], code)
		}
	}
	if !strings.HasPrefix(o.issuer(), "http://127.0.0.1:") {
		t.Errorf("the demo provider is at %s, not on loopback", o.issuer())
	}
}

// startDemoProvider starts an organisation's demo provider, and a stand-in for its web
// interface's callback that hands each code it gets to the channel.
func startDemoProvider(t *testing.T) (*demoOrg, chan string) {
	t.Helper()
	ps := ports{}
	o := &demoOrg{name: "vr-utrecht", title: "VR Utrecht", dir: t.TempDir()}
	var err error
	if o.opPort, err = ps.free(); err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o.uiPort = lis.Addr().(*net.TCPAddr).Port
	codes := make(chan string, 1)
	web := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/auth/callback" {
			select {
			case codes <- r.URL.Query().Get("code"):
			default:
			}
		}
		w.Write([]byte("signed in"))
	}), ReadHeaderTimeout: 5 * time.Second}
	go web.Serve(lis)
	t.Cleanup(func() { web.Close() })
	if err := o.writeClientSecret(); err != nil {
		t.Fatal(err)
	}
	srv, err := o.startProvider()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return o, codes
}

// demoClient is the web interface's side of the organisation's provider: the provider as
// discovered, and the OAuth2 client the node's config names.
func demoClient(ctx context.Context, t *testing.T, o *demoOrg) (*oidc.Provider, *oauth2.Config) {
	t.Helper()
	prov, err := oidc.NewProvider(ctx, o.issuer())
	if err != nil {
		t.Fatal(err)
	}
	return prov, &oauth2.Config{ClientID: o.clientID(), ClientSecret: o.secret, Endpoint: prov.Endpoint(),
		RedirectURL: o.webURL() + "/auth/callback", Scopes: []string{oidc.ScopeOpenID, "profile"}}
}

// TestDemoSignInInChromium: a person signs in to the demo in Chromium, the usual browser on
// government workstations, by typing a name and the password in the provider's form, and the
// browser arrives at the web interface's callback with a code. The form's Content-Security-
// Policy must let the redirect chain go on to the web interface: with form-action 'self'
// alone, Chromium stopped after the password. The name starts empty.
func TestDemoSignInInChromium(t *testing.T) {
	o, codes := startDemoProvider(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, oc := demoClient(ctx, t, o)
	actx, cancelAlloc := chromedp.NewExecAllocator(t.Context(), proctest.ChromiumOptions(t)...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	bctx, cancelRun := context.WithTimeout(bctx, 20*time.Second)
	defer cancelRun()
	if err := chromedp.Do(bctx, chromedp.Navigate(oc.AuthCodeURL("st", oidc.Nonce("n"), oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(bctx, chromedp.WaitVisible(chromedp.CSS("#password"))); err != nil {
		t.Fatal(err)
	}
	if name, err := chromedp.Run(bctx, chromedp.Value(chromedp.CSS("#username"))); err != nil || name != "" {
		t.Errorf("the form's user name starts as %q (%v), want empty", name, err)
	}
	// Its style, allowed by its hash in the page's Content-Security-Policy, applies.
	if c, err := chromedp.Run(bctx, chromedp.Evaluate[string](`getComputedStyle(document.querySelector("h1")).color`)); err != nil || c != "rgb(18, 43, 77)" {
		t.Errorf("the sign-in page's heading is %q (%v): its style did not apply", c, err)
	}
	if err := chromedp.Do(bctx, chromedp.Steps(
		chromedp.SendKeys(chromedp.CSS("#username"), "editor"),
		chromedp.SendKeys(chromedp.CSS("#password"), demoPassword),
		chromedp.Submit(chromedp.CSS("#password")),
	)); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-codes:
		if code == "" {
			t.Fatal("the browser reached the callback without a code")
		}
	case <-time.After(10 * time.Second):
		u, _ := chromedp.Run(bctx, chromedp.Location())
		t.Fatalf("the browser did not reach the web interface after signing in; it is at %s", u)
	}
}

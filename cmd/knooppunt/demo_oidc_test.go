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

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// TestDemoProviderSignsInTheDemoPeople: the demo's OpenID provider of an organisation signs in
// its people with the demo password and nobody else, and hands the web interface (here a
// stand-in that takes the code) an ID token that names the person as the node's role table
// does.
func TestDemoProviderSignsInTheDemoPeople(t *testing.T) {
	ps := ports{}
	o := &demoOrg{name: "vr-utrecht", title: "VR Utrecht", dir: t.TempDir()}
	var err error
	if o.opPort, err = ps.free(); err != nil {
		t.Fatal(err)
	}
	// The web interface's callback: a listener that hands the code to the test.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o.uiPort = lis.Addr().(*net.TCPAddr).Port
	codes := make(chan string, 1)
	web := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		codes <- r.URL.Query().Get("code")
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

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	prov, err := oidc.NewProvider(ctx, o.issuer())
	if err != nil {
		t.Fatal(err)
	}
	oc := &oauth2.Config{ClientID: o.clientID(), ClientSecret: o.secret, Endpoint: prov.Endpoint(),
		RedirectURL: o.webURL() + "/auth/callback", Scopes: []string{oidc.ScopeOpenID, "profile"}}
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: 10 * time.Second}
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
	if code, name := signIn("officer-b", demoPassword); code != http.StatusOK || name != "officer-b" {
		t.Errorf("officer-b signs in: %d as %q", code, name)
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

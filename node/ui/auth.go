package ui

import (
	"context"
	"crypto/subtle"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"golang.org/x/oauth2"
)

// signIn sends the browser to the identity provider: authorization code flow with PKCE, a
// state bound to this browser by a cookie that holds the sign-in, sealed, and a nonce.
func (s *Server) signIn(w http.ResponseWriter, r *http.Request) {
	s.startSignIn(w, r, &pending{ReturnTo: localPath(r.URL.Query().Get("terug")), Fresh: r.URL.Query().Get("opnieuw") != ""})
}

// startSignIn sends the browser to the identity provider for the sign-in p: where to return,
// whether the provider must authenticate anew, and a form's draft to keep.
func (s *Server) startSignIn(w http.ResponseWriter, r *http.Request, p *pending) {
	w.Header().Set("Cache-Control", "no-store")
	l := s.pickLang(r)
	_, oc, err := s.oidcClient(r.Context())
	if err != nil {
		s.log.Error("sign-in: cannot reach the identity provider", "err", err)
		s.fail(w, r, l, http.StatusBadGateway, l.T("error.idp_down"))
		return
	}
	p.State, p.Nonce, p.Verifier = randomID(), randomID(), oauth2.GenerateVerifier()
	// One login cookie per browser: a sign-in started in another tab replaces it, and the
	// sign-in of this tab then comes back to "sign in again".
	s.setCookie(w, s.loginCookie(), s.sessions.begin(p), pendingTTL)
	opts := []oauth2.AuthCodeOption{oidc.Nonce(p.Nonce), oauth2.S256ChallengeOption(p.Verifier)}
	if l.Code != "" {
		opts = append(opts, oauth2.SetAuthURLParam("ui_locales", l.Code))
	}
	if p.Fresh {
		// A step that needs a recent sign-in: the provider must authenticate the person now,
		// not pass on an old single sign-on session.
		opts = append(opts, oauth2.SetAuthURLParam("prompt", "login"), oauth2.SetAuthURLParam("max_age", "0"))
	}
	http.Redirect(w, r, oc.AuthCodeURL(p.State, opts...), http.StatusFound)
}

// userName is what may stand in spiffe://ORG/user/NAME: one path segment of the characters
// SPIFFE allows.
var userName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)

// callback takes the provider's answer: it checks state, exchanges the code with the PKCE
// verifier, verifies the ID token and its nonce, maps the claim to a SPIFFE ID and starts a
// session for a person who holds a role on this node.
func (s *Server) callback(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	l := s.pickLang(r)
	q := r.URL.Query()
	var p *pending
	if c, err := r.Cookie(s.loginCookie()); err == nil {
		p = s.sessions.finish(c.Value, q.Get("state"))
	}
	// The sign-in is used once: its cookie goes whatever the answer.
	s.setCookie(w, s.loginCookie(), "", -1)
	if p == nil {
		s.log.Warn("sign-in refused", "reason", "no sign-in of this browser, or its time is up, or state does not match it")
		s.fail(w, r, l, http.StatusBadRequest, l.T("error.signin_again"))
		return
	}
	if e := q.Get("error"); e != "" {
		s.log.Warn("sign-in refused by the identity provider", "error", e, "description", q.Get("error_description"))
		s.fail(w, r, l, http.StatusForbidden, l.T("error.idp_refused", e))
		return
	}
	provider, oc, err := s.oidcClient(r.Context())
	if err != nil {
		s.log.Error("sign-in: cannot reach the identity provider", "err", err)
		s.fail(w, r, l, http.StatusBadGateway, l.T("error.idp_down"))
		return
	}
	ctx := oidc.ClientContext(r.Context(), s.c.HTTPClient)
	tok, err := oc.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(p.Verifier))
	if err != nil {
		s.log.Warn("sign-in refused", "reason", "code exchange failed", "err", err)
		s.fail(w, r, l, http.StatusBadGateway, l.T("error.signin_again"))
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		s.log.Warn("sign-in refused", "reason", "the provider sent no ID token")
		s.fail(w, r, l, http.StatusBadGateway, l.T("error.signin_again"))
		return
	}
	idt, err := provider.Verifier(&oidc.Config{ClientID: oc.ClientID}).Verify(ctx, raw)
	if err != nil {
		s.log.Warn("sign-in refused", "reason", "ID token did not verify", "err", err)
		s.fail(w, r, l, http.StatusForbidden, l.T("error.signin_again"))
		return
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(p.Nonce)) != 1 {
		s.log.Warn("sign-in refused", "reason", "ID token nonce does not match")
		s.fail(w, r, l, http.StatusForbidden, l.T("error.signin_again"))
		return
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		s.fail(w, r, l, http.StatusBadGateway, l.T("error.signin_again"))
		return
	}
	claim := s.c.UI.OIDC.Claim
	name, _ := claims[claim].(string)
	display, _ := claims["name"].(string)
	if name == "" {
		// Many providers put profile claims in the userinfo answer only.
		ui, err := provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
		if err == nil {
			var more map[string]any
			if ui.Claims(&more) == nil && more["sub"] == idt.Subject {
				name, _ = more[claim].(string)
				if display == "" {
					display, _ = more["name"].(string)
				}
			}
		}
	}
	if name == "" || !userName.MatchString(name) || name == "." || name == ".." {
		s.log.Warn("sign-in refused", "reason", fmt.Sprintf("claim %s is missing or not a user name", claim), "subject", idt.Subject)
		s.fail(w, r, l, http.StatusForbidden, l.T("error.bad_claim", claim))
		return
	}
	person, err := spiffeid.FromSegments(s.td, "user", name)
	if err != nil {
		s.fail(w, r, l, http.StatusForbidden, l.T("error.bad_claim", claim))
		return
	}
	if _, err := s.c.Resolve(person); err != nil {
		s.log.Warn("sign-in refused", "person", person.String(), "reason", "no role on this node")
		s.fail(w, r, l, http.StatusForbidden, l.T("error.no_role", person.String()))
		return
	}
	// auth_time is when the person authenticated at the provider, which may be long before this
	// sign-in (single sign-on). Without it, a fresh sign-in counts from now, an ordinary one as
	// not recent.
	var authTime time.Time
	if at, ok := claims["auth_time"].(float64); ok && at > 0 {
		authTime = time.Unix(int64(at), 0)
	} else if p.Fresh {
		authTime = time.Now()
	}
	if p.Fresh && time.Since(authTime) > MaxOfficerAge {
		s.log.Warn("sign-in refused", "person", person.String(), "reason", "the provider did not authenticate anew", "auth_time", authTime)
		s.fail(w, r, l, http.StatusForbidden, l.T("error.signin_stale"))
		return
	}
	now := time.Now()
	var d *draft
	if p.From != "" {
		d = s.sessions.handOver(p.From, person)
	}
	// The session this browser had ends: a copy of its cookie signs in no one any more.
	if old, sess := s.sessionOf(r); sess != nil {
		s.sessions.end(old)
	}
	id := s.sessions.create(&session{Person: person, Name: name, DisplayName: display, AuthTime: authTime, Expires: now.Add(s.c.UI.SessionTTL), Draft: d, IDToken: raw})
	s.setCookie(w, s.sessionCookie(), id, s.c.UI.SessionTTL)
	s.log.Info("signed in", "person", person.String(), "auth_time", authTime.UTC().Format(time.RFC3339))
	http.Redirect(w, r, p.ReturnTo, http.StatusSeeOther)
}

// providerSignOut is where the browser goes to end the person's session at the provider as well
// (RP-initiated logout), with the sign-in's ID token as the hint, coming back to the signed-out
// page; "" when the node ends its own session alone: configured so (ui.oidc.sign_out: node),
// the provider offers no end_session_endpoint, or it cannot be reached now.
func (s *Server) providerSignOut(ctx context.Context, idToken string) string {
	if s.issuerOrigin == "" || idToken == "" {
		return ""
	}
	provider, _, err := s.oidcClient(ctx)
	if err != nil {
		s.log.Warn("sign-out: the identity provider cannot be reached: the node's session ended, the provider's may not have", "err", err)
		return ""
	}
	var meta struct {
		EndSession string `json:"end_session_endpoint"`
	}
	if provider.Claims(&meta) != nil || meta.EndSession == "" {
		return ""
	}
	u, err := url.Parse(meta.EndSession)
	if err != nil || u.Scheme+"://"+u.Host != s.issuerOrigin {
		// The pages' form-action allows the issuer's origin alone, and the issuer's origin is
		// checked to be https (or loopback).
		s.log.Warn("sign-out: the provider's end_session_endpoint is not on the issuer's origin: the node's session ended alone; set ui.oidc.sign_out: node to say so", "end_session_endpoint", meta.EndSession, "issuer", s.c.UI.OIDC.Issuer)
		return ""
	}
	q := u.Query()
	q.Set("id_token_hint", idToken)
	q.Set("client_id", s.c.UI.OIDC.ClientID)
	q.Set("post_logout_redirect_uri", s.public.String()+"/afgemeld")
	u.RawQuery = q.Encode()
	return u.String()
}

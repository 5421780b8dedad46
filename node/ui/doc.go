// Package ui is the node's web interface for the organisation's own people: the picture of a
// crisis ("Het beeld"), which updates itself while open, search, single records, own records (a
// form generated from the kind's JSON Schema, and file uploads), the security officers' pages:
// policies and their lifecycle, preview and explain, the crisis phase, and the audit log; and the
// administrators' page: health, the Raft group and the peers. The node serves it itself (config section
// ui); pages, styles and images are embedded, so a node needs no other files and no internet.
//
// # One path to the data
//
// ui never reads the database, the store or the peers itself. Every page calls the node's own
// gRPC services through the generated clients, on an api.InProcess channel that the node wires
// to the very service implementations its gRPC servers serve. Each call carries the signed-in
// person's SPIFFE ID (spiffe://ORG/user/NAME) in its context, and the channel puts it through
// the same Authorizer, the same Access rules and the same method→role table (api.MethodRoles)
// as a call over mTLS, and then through the same interceptors (forwarding to the leader,
// logging). So the role table stays the single gate: what a person may see in the browser is
// exactly what the same person may fetch with an SVID, and a refusal is logged the same way.
//
// Two things come from the node besides the channel, neither of them data: the declared kinds
// (Config.Kinds), whose schemas shape the record form, and a signal that something committed
// (Config.Changed), on which an open picture asks the services again (see live.go).
//
// The other choice, calling over the node's local socket, was rejected: the socket carries no
// identity (its caller is the Local role, which may administer the node but not act as a
// person), so it would have needed an "on behalf of" header that anyone with access to the
// socket could set.
//
// # Sign-in
//
// People sign in with OpenID Connect at the org's own identity provider: the authorization
// code flow with PKCE (S256), state bound to the browser by a short-lived cookie, and a nonce
// checked in the ID token. The claim named in ui.oidc.claim (default preferred_username)
// becomes NAME in spiffe://ORG/user/NAME; the roles in the node config then apply. Roles are
// resolved again on every request, so a config reload takes effect at once.
//
// Sessions live in the server's memory with a fixed expiry (ui.session_ttl); the browser holds
// only a random id, in a cookie that is HttpOnly, SameSite=Lax and Secure (except over plain
// HTTP on loopback). The session keeps the time of sign-in (auth_time) for steps that need a
// recent one. Every POST needs the session's CSRF token. Every response carries a strict
// Content-Security-Policy (no inline script or style) and the usual security headers.
//
// # Officers' steps
//
// A policy step or phase change is a GET that shows what will happen and a POST that takes it,
// both with a sign-in no older than MaxOfficerAge (else the person signs in again, and the
// provider must authenticate anew). The POST calls the service as the person, so the role table
// and the four-eyes rule decide: two sessions of one person are one SPIFFE ID. A call the role
// table refuses is audited by the node (api.InProcess.OnDenied). On a follower replica, which
// never forwards these steps, the pages link to the leader's web interface instead.
//
// The pages work without script. The scripts are the interface's own, loaded from the embedded
// assets, and only add to a page that works without them: assets/lint-as-you-type.js shows the
// linter's messages while an officer types a policy, assets/live-picture.js keeps the picture up
// to date, assets/upload-progress.js shows an upload's progress, and assets/focus-message.js puts
// the keyboard's focus on the message a page comes back with after a step (a refused form's
// summary, a step's confirmation).
//
// # Text
//
// All text people read comes from the message catalogues in messages/ (Dutch, the default,
// and English), English only by the person's choice in a language cookie. Templates hold
// no text of their own.
//
// ui must never decide access itself, beyond hiding what a person cannot do: the services
// decide.
package ui

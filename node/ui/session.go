package ui

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// session is one signed-in browser. It lives in the server's memory only.
type session struct {
	// Person is the SPIFFE ID the sign-in mapped to.
	Person spiffeid.ID
	// Name is the claim's value, the last segment of Person.
	Name string
	// DisplayName is the provider's name claim, when it sent one.
	DisplayName string
	// CSRF is the token every POST of this session must carry.
	CSRF string
	// AuthTime is when the person last authenticated at the provider (auth_time), for steps
	// that need a recent sign-in.
	AuthTime time.Time
	Expires  time.Time
	// IDToken is the provider's ID token of the sign-in, which signing out hands the provider
	// (id_token_hint) to end the person's session there too.
	IDToken string
	// Draft is what a form held when its sending was stopped for a new sign-in: shown again in
	// the form, once (takeDraft). On the session that sent it, it waits for the new sign-in,
	// which takes it over when the same person signs in (handOver).
	Draft *draft
}

// draft is a form's values, kept across a sign-in: the page of the form (a path and query) and
// what was typed in it.
type draft struct {
	Page   string
	Values url.Values
}

// pending is a sign-in that went to the provider and has not come back yet. It is kept in the
// browser's own login cookie, sealed (sessions.begin), not in the server's memory: no other
// client's sign-ins can push it out, and a flood of /aanmelden costs the server nothing to keep.
type pending struct {
	// State is the state parameter sent to the provider; its answer must carry it.
	State    string
	Nonce    string
	Verifier string
	ReturnTo string
	// Fresh asks the provider to authenticate anew, for a step that needs a recent sign-in.
	Fresh bool
	// From is the key of the session whose form the sign-in interrupted: its draft goes to the
	// session this sign-in starts, if the same person signs in.
	From    string
	Expires time.Time
}

// pendingTTL bounds how long a person may take at the provider.
const pendingTTL = 10 * time.Minute

// loginPurpose is the additional data every login cookie is sealed with: a value sealed for
// another purpose under the same key does not open as a pending sign-in.
const loginPurpose = "knooppunt login cookie: pending sign-in v1"

// maxReturnTo bounds the return path a sealed sign-in carries, so that the login cookie stays
// well under the 4096 bytes browsers keep; a longer one returns to the start page.
const maxReturnTo = 2048

// sessions holds sessions, keyed by a hash of their random id so that the map never holds what
// the browser presents, and the key that seals pending sign-ins into login cookies.
type sessions struct {
	mu   sync.Mutex
	byID map[string]*session
	// seal is AES-256-GCM under a random key made when the server starts, and kept in memory
	// only: a restart breaks the sign-ins in progress (the person starts again), as it ends
	// every session.
	seal cipher.AEAD
	now  func() time.Time
}

func newSessions() *sessions {
	k := make([]byte, 32)
	rand.Read(k)
	b, err := aes.NewCipher(k)
	if err != nil {
		panic(err) // only for a key of the wrong length
	}
	seal, err := cipher.NewGCM(b)
	if err != nil {
		panic(err)
	}
	return &sessions{byID: map[string]*session{}, seal: seal, now: time.Now}
}

func key(id string) string {
	h := sha256.Sum256([]byte(id))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// randomID is 32 random bytes, URL-safe.
func randomID() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// create stores s and returns the id the browser keeps.
func (ss *sessions) create(s *session) string {
	id := randomID()
	s.CSRF = randomID()
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.gc()
	ss.byID[key(id)] = s
	return id
}

// get returns the session with id, or nil when there is none or it expired.
func (ss *sessions) get(id string) *session {
	if id == "" {
		return nil
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.byID[key(id)]
	if s == nil {
		return nil
	}
	if !ss.now().Before(s.Expires) {
		delete(ss.byID, key(id))
		return nil
	}
	return s
}

// end removes the session with id.
func (ss *sessions) end(id string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.byID, key(id))
}

// park keeps a form's draft on the session id, in place of one it kept before.
func (ss *sessions) park(id string, d *draft) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if s := ss.byID[key(id)]; s != nil {
		s.Draft = d
	}
}

// handOver takes the draft parked on the session of key from (pending.From), if its person is
// person: it goes to the session the new sign-in starts. Anyone else signing in in that browser
// gets nothing of it.
func (ss *sessions) handOver(from string, person spiffeid.ID) *draft {
	return ss.take(from, func(s *session) bool { return s.Person == person })
}

// takeDraft takes the draft of the session id when it is of page: it is given once.
func (ss *sessions) takeDraft(id, page string) url.Values {
	if d := ss.take(key(id), func(s *session) bool { return s.Draft.Page == page }); d != nil {
		return d.Values
	}
	return nil
}

// take takes the draft of the session of key k, if it has one and ok says so: it is given once.
func (ss *sessions) take(k string, ok func(*session) bool) *draft {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.byID[k]
	if s == nil || s.Draft == nil || !ok(s) {
		return nil
	}
	d := s.Draft
	s.Draft = nil
	return d
}

// begin seals the pending sign-in p, until pendingTTL from now, into the value of the browser's
// login cookie.
func (ss *sessions) begin(p *pending) string {
	if len(p.ReturnTo) > maxReturnTo {
		p.ReturnTo = "/"
	}
	p.Expires = ss.now().Add(pendingTTL)
	plain, err := json.Marshal(p)
	if err != nil {
		panic(err) // strings, a bool and a time always marshal
	}
	nonce := make([]byte, ss.seal.NonceSize())
	rand.Read(nonce)
	return base64.RawURLEncoding.EncodeToString(ss.seal.Seal(nonce, nonce, plain, []byte(loginPurpose)))
}

// finish opens the login cookie's value c for the provider's answer with state: nil when it was
// not sealed by this server for a sign-in (altered, made up, from before a restart), when its
// time is up, or when state is not its own.
//
// Nothing on the server makes a sealed sign-in single-use, as the table that held them did; the
// callback clears the cookie, and that suffices, because the cookie alone signs in no one. The
// callback needs a code from the provider too, which the provider gives once, and only to
// whoever authenticates there with this sign-in's request (its state and PKCE challenge): a copy
// of the cookie replayed with a code already used is refused at the exchange.
func (ss *sessions) finish(c, state string) *pending {
	b, err := base64.RawURLEncoding.DecodeString(c)
	n := ss.seal.NonceSize()
	if err != nil || len(b) < n || state == "" {
		return nil
	}
	plain, err := ss.seal.Open(nil, b[:n], b[n:], []byte(loginPurpose))
	if err != nil {
		return nil
	}
	var p pending
	if json.Unmarshal(plain, &p) != nil || !ss.now().Before(p.Expires) ||
		subtle.ConstantTimeCompare([]byte(p.State), []byte(state)) != 1 {
		return nil
	}
	return &p
}

// gc drops sessions that expired. The caller holds mu.
func (ss *sessions) gc() {
	now := ss.now()
	for k, s := range ss.byID {
		if !now.Before(s.Expires) {
			delete(ss.byID, k)
		}
	}
}

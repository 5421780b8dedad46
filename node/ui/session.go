package ui

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
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

// pending is a sign-in that went to the provider and has not come back yet.
type pending struct {
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

// maxPending bounds the sign-ins in flight, so that a flood of /aanmelden cannot fill memory.
// Past it the oldest goes: a flood displaces only sign-ins older than maxPending newer ones, and
// never refuses a person's.
const maxPending = 10000

// sessions holds sessions and pending sign-ins, keyed by a hash of their random id so that the
// map never holds what the browser presents.
type sessions struct {
	mu      sync.Mutex
	byID    map[string]*session
	pending map[string]*pending
	// began has the keys of the pending sign-ins in the order they began, which, with one TTL
	// for all, is the order they expire in; a key whose sign-in finished stays until it comes
	// to the front.
	began []string
	now   func() time.Time
}

func newSessions() *sessions {
	return &sessions{byID: map[string]*session{}, pending: map[string]*pending{}, now: time.Now}
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

// begin stores a pending sign-in under state, dropping the oldest when maxPending are in flight.
func (ss *sessions) begin(state string, p *pending) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.gc()
	for len(ss.pending) >= maxPending {
		delete(ss.pending, ss.began[0])
		ss.began = ss.began[1:]
	}
	p.Expires = ss.now().Add(pendingTTL)
	k := key(state)
	ss.pending[k] = p
	ss.began = append(ss.began, k)
}

// finish takes the pending sign-in of state; it can be taken once.
func (ss *sessions) finish(state string) *pending {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	p := ss.pending[key(state)]
	delete(ss.pending, key(state))
	if p == nil || !ss.now().Before(p.Expires) {
		return nil
	}
	return p
}

// gc drops what expired. The caller holds mu.
func (ss *sessions) gc() {
	now := ss.now()
	for k, s := range ss.byID {
		if !now.Before(s.Expires) {
			delete(ss.byID, k)
		}
	}
	for len(ss.began) > 0 {
		p, ok := ss.pending[ss.began[0]]
		if ok && now.Before(p.Expires) {
			break
		}
		delete(ss.pending, ss.began[0])
		ss.began = ss.began[1:]
	}
}

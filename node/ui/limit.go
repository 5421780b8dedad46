package ui

import (
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// The pages that ask every partner (a search, the picture of a crisis, a partner's record) are
// limited per person. Each such page makes every partner write an audit entry that is kept for
// good, with up to 512 characters of what the person typed: one person's script must not write
// thousands an hour into every partner's log, nor keep the partners busy answering it.

// askBurst is how many pages that ask the partners a person may open at once, and askRate how
// many a second after that: someone who clicks through twenty results, or opens a few tabs at
// once, never waits, and a script is held to one a second.
const (
	askBurst = 20
	askRate  = rate.Limit(1)
)

// pictureReserve: a picture asks the partners only while the person has more than this many
// pages of askBurst left. With fewer, a picture the person opened before shows what the partners
// answered the last time instead: reloading a picture (by hand, or on a wall screen) is never
// refused, and never takes the pages that searches and records need.
const pictureReserve = askBurst / 2

// liveAsk: the live picture's reload of its page for a change the stream announced
// (assets/live-picture.js) shows what the partners answered on that picture up to this long
// ago, without asking them again: the reloads of a burst of changes (an import) ask them once.
// Its reload by the clock, once a minute, asks them as any reload does.
const liveAsk = pictureRefresh / 2 * time.Second

// liveReloadHeader marks a reload by the live picture's script, with why: liveChange for a
// change, anything else for the clock. A client that sends it without being the script gains
// nothing: such a reload asks the partners less often, not more.
const (
	liveReloadHeader = "X-Knooppunt-Live"
	liveChange       = "wijziging"
)

// askLogEvery: a person's refusals are logged at most once in this time.
const askLogEvery = time.Minute

// answerKept is how old the partners' answer on a picture may be to be shown again, and
// maxAnswers how many pictures' answers are kept per person.
const (
	answerKept = 5 * time.Minute
	maxAnswers = 8
)

// limits holds each person's limit of pages that ask the partners. It lives in memory, as the
// sessions do.
type limits struct {
	mu     sync.Mutex
	people map[string]*personLimit
	now    func() time.Time
}

// personLimit is one person's token bucket, and the partners' last answers on their pictures.
type personLimit struct {
	bucket  *rate.Limiter
	logged  time.Time // the last refusal logged
	used    time.Time
	answers map[pictureKey]*peerAnswer
}

// pictureKey is what a picture's partners' answer depends on besides the person.
type pictureKey struct{ crisis, exercise string }

// peerAnswer is how the partners answered a picture's peer check, and when.
type peerAnswer struct {
	at      time.Time
	partial bool
	peers   []*pb.PeerStatus
	gen     uint64 // the generation of the node's subscriptions to the partners when they were asked (Config.PartnersChanged)
}

func newLimits() *limits {
	return &limits{people: map[string]*personLimit{}, now: time.Now}
}

// forgetIdle: once many people have a limit, those idle this long (their bucket full again, their
// partners' answers too old to show) are forgotten.
const forgetIdle = 10 * time.Minute

// of is the person's limit; l.mu is held.
func (l *limits) of(person string, now time.Time) *personLimit {
	if len(l.people) >= 1024 {
		for k, p := range l.people {
			if now.Sub(p.used) > forgetIdle {
				delete(l.people, k)
			}
		}
	}
	p := l.people[person]
	if p == nil {
		p = &personLimit{bucket: rate.NewLimiter(askRate, askBurst), answers: map[pictureKey]*peerAnswer{}}
		l.people[person] = p
	}
	p.used = now
	return p
}

// take takes one page from the person's limit, if that leaves at least reserve; refused, it is
// how long until the next one may go.
func (l *limits) take(person string, reserve int) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	p := l.of(person, now)
	short := float64(reserve+1) - p.bucket.TokensAt(now)
	if short <= 0 && p.bucket.AllowN(now, 1) {
		return 0
	}
	return max(time.Duration(short/float64(askRate)*float64(time.Second)), time.Second)
}

// logRefusal reports whether to log a refusal of the person's: once in askLogEvery.
func (l *limits) logRefusal(person string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	p := l.of(person, now)
	if now.Sub(p.logged) < askLogEvery {
		return false
	}
	p.logged = now
	return true
}

// answer is the partners' last answer on the person's picture k, and whether it is younger
// than liveAsk; nil when there is none younger than answerKept.
func (l *limits) answer(person string, k pictureKey) (*peerAnswer, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	a := l.of(person, now).answers[k]
	if a == nil || now.Sub(a.at) > answerKept {
		return nil, false
	}
	return a, now.Sub(a.at) < liveAsk
}

// remember keeps the partners' answer on the person's picture k.
func (l *limits) remember(person string, k pictureKey, pic *pb.PictureResponse, gen uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	p := l.of(person, now)
	if _, ok := p.answers[k]; !ok && len(p.answers) >= maxAnswers {
		var oldest *pictureKey
		for k, a := range p.answers {
			if oldest == nil || a.at.Before(p.answers[*oldest].at) {
				oldest = &k
			}
		}
		delete(p.answers, *oldest)
	}
	p.answers[k] = &peerAnswer{at: now, partial: pic.Partial, peers: pic.Peers, gen: gen}
}

// askPartners takes one page that asks the partners from the person's limit; over it, it
// answers 429 (tooFast) and returns false.
func (s *Server) askPartners(w http.ResponseWriter, r *request) bool {
	if wait := s.limits.take(r.Session.Person.String(), 0); wait > 0 {
		s.tooFast(w, r, wait)
		return false
	}
	return true
}

// tooFast answers a page over the person's limit: 429, Retry-After, and a page that says to
// wait a moment.
func (s *Server) tooFast(w http.ResponseWriter, r *request, wait time.Duration) {
	secs := int(math.Ceil(wait.Seconds()))
	if s.limits.logRefusal(r.Session.Person.String()) {
		s.log.Info("pages that ask the partners refused: too many too fast", "person", r.Session.Person.String(), "path", r.URL.Path,
			"burst", askBurst, "per_second", float64(askRate), "retry_after_s", secs)
	}
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	s.failIn(w, r, http.StatusTooManyRequests, r.L.T("error.too_fast"))
}

// pictureOf is the picture of crisis for the picture page, with whether each partner answers
// now, and partners, the generation of the node's subscriptions to them that answer stands for
// (see partnerWatch); false when it answered the request itself (a refusal, or a failed call). A
// picture the person opened before is never refused: it may show what the partners answered
// the last time (see pictureReserve and liveAsk).
func (s *Server) pictureOf(w http.ResponseWriter, r *request, crisis string) (pic *pb.PictureResponse, partners uint64, ok bool) {
	person, k := r.Session.Person.String(), pictureKey{crisis, r.exercise()}
	req := &pb.PictureRequest{Crisis: crisis, Mode: r.mode()}
	last, fresh := s.limits.answer(person, k)
	if r.Header.Get(liveReloadHeader) != liveChange || !fresh {
		reserve := 0
		if last != nil {
			reserve = pictureReserve
		}
		wait := s.limits.take(person, reserve)
		switch {
		case wait == 0:
			last = nil // the partners are asked
		case last == nil:
			s.tooFast(w, r, wait)
			return nil, 0, false
		}
	}
	req.SkipPeerCheck = last != nil
	// Taken before the partners are asked: a change while they are is told again, not lost.
	partners = s.partnersGen()
	pic, err := pb.NewSearchServiceClient(s.c.Conn).Picture(r.ctx(), req)
	if err != nil {
		s.failCall(w, r, err)
		return nil, 0, false
	}
	if last != nil {
		pic.Partial, pic.Peers, partners = last.partial, last.peers, last.gen
	} else {
		s.limits.remember(person, k, pic, partners)
	}
	return pic, partners, true
}

// partnersGen is the generation of the node's subscriptions to its partners
// (Config.PartnersChanged); 0 without it.
func (s *Server) partnersGen() uint64 {
	if s.c.PartnersChanged == nil {
		return 0
	}
	_, gen := s.c.PartnersChanged()
	return gen
}

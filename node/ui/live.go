package ui

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// The picture updates while it is open. The page opens a stream of server-sent events
// (/beeld/live, assets/live-picture.js) while it is visible: a browser keeps few connections
// to one site, and a picture in a tab in the background should not hold one. The stream waits for the node's next commit
// (Config.Changed: every record written, received from a peer, changed or retracted is one),
// then asks SearchService.Picture as the person, as the page does, and compares a digest of
// what the page shows with the last one: only a change the person can see becomes an event,
// and the script then fetches the page again and swaps its live part. The stream itself sends
// no record, so that what the person sees still comes through the one path, the services.
// It also tells the page when the node's subscription to a partner breaks or opens again
// (partnerWatch): whether the partners answer is asked of them, which a commit does not do.

// liveInterval is the least time between a look that found a change and the next look of one
// stream: a burst of changes (an import) costs one look per interval, not one per commit. A
// look that found nothing (a commit of something else: an audit entry, a peer's signed head)
// does not hold the next one back.
const liveInterval = 200 * time.Millisecond

// pictureRefresh is how often, in seconds, an open picture is fetched again, changed or not: its
// ages and which partners answer change by the clock. Each time, the partners are asked as for
// a reload (and each audits it): once a minute a screen.
const pictureRefresh = 60

// liveRecheck is the least time between two rechecks of the partners that one stream asks for
// (partnerWatch): a partner that comes and goes costs a page a recheck this often at most.
const liveRecheck = 5 * time.Second

// livePartners tells the page that which partners the node hears from changed: its data is no
// digest, so that the page fetches itself again (as for a change, assets/live-picture.js), and
// that fetch asks the partners whether they answer (see partnerWatch).
const livePartners = "event: beeld\ndata: partners\n\n"

// livePing keeps the stream open through proxies, and notices an ended session.
const livePing = 25 * time.Second

// liveCheck bounds one look at the picture.
const liveCheck = 10 * time.Second

// maxLiveStreams is how many live pictures one person may have open at once. Each open stream
// looks at the picture at every commit that could change it, so that a script holding hundreds
// costs the node a look per stream and commit; a browser keeps six connections to a site, and
// the page closes its stream while it is hidden, so that a wall screen and a laptop with a
// picture or two fit well within it. A stream beyond it is refused with 429, and the page then
// updates once a minute only (see assets/live-picture.js).
const maxLiveStreams = 4

// liveLifetime is how long one stream lasts: the node then ends it (event opnieuw), and the page
// opens a new one from what it shows, which reloads nothing. A stream that a client keeps open
// without reading it does not last for good.
const liveLifetime = 15 * time.Minute

// liveStreams counts the open streams per person, and shares one look at the picture among the
// streams of one person on one picture: a look asks SearchService.Picture as the person, so it
// is the same for them, and one look serves them all until the next commit.
type liveStreams struct {
	lifetime time.Duration // liveLifetime; shorter in a test
	recheck  time.Duration // liveRecheck; shorter in a test
	mu       sync.Mutex
	open     map[string]int // per person
	users    map[liveKey]int
	looks    map[liveKey]*liveLook // the last look at each picture
}

// liveKey is what a stream's picture depends on: the person, whose roles the services apply, the
// crisis and the mode.
type liveKey struct{ person, crisis, exercise string }

// liveLook is one look at a picture, made after the node's commit generation gen began: a stream
// that looks in the same generation takes its digest, and waits for it while it is made.
type liveLook struct {
	gen    <-chan struct{}
	done   chan struct{}
	digest string
	err    error
}

func newLiveStreams() *liveStreams {
	return &liveStreams{lifetime: liveLifetime, recheck: liveRecheck, open: map[string]int{}, users: map[liveKey]int{}, looks: map[liveKey]*liveLook{}}
}

// enter counts a stream of k's person; false when the person has maxLiveStreams open.
func (ls *liveStreams) enter(k liveKey) bool {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.open[k.person] >= maxLiveStreams {
		return false
	}
	ls.open[k.person]++
	ls.users[k]++
	return true
}

// leave ends a stream that entered; the last one on a picture takes its look along.
func (ls *liveStreams) leave(k liveKey) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.open[k.person]--; ls.open[k.person] <= 0 {
		delete(ls.open, k.person)
	}
	if ls.users[k]--; ls.users[k] <= 0 {
		delete(ls.users, k)
		delete(ls.looks, k)
	}
}

// look is the digest of picture k in commit generation gen (Config.Changed, taken just before):
// the one look of that generation, made by look, or the one another stream made or is making.
// A failed look is not kept: the next stream looks again.
func (ls *liveStreams) look(ctx context.Context, k liveKey, gen <-chan struct{}, look func() (string, error)) (string, error) {
	ls.mu.Lock()
	l := ls.looks[k]
	if l == nil || l.gen != gen {
		l = &liveLook{gen: gen, done: make(chan struct{})}
		ls.looks[k] = l
		ls.mu.Unlock()
		l.digest, l.err = look()
		close(l.done)
		if l.err != nil {
			ls.mu.Lock()
			if ls.looks[k] == l {
				delete(ls.looks, k)
			}
			ls.mu.Unlock()
		}
		return l.digest, l.err
	}
	ls.mu.Unlock()
	select {
	case <-l.done:
		return l.digest, l.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// pictureDigest sums up what the picture shows of its records: which records, at which
// version, stale or disputed (with the records of the sources that disagree), the sums and the phase. Ages are left out: they change by the
// clock, not by a commit.
func pictureDigest(p *pb.PictureResponse) string {
	h := sha256.New()
	fmt.Fprintf(h, "phase %s\n", p.Phase)
	lines := make([]string, 0, len(p.Entries)+len(p.Aggregates))
	for _, e := range p.Entries {
		rec := e.GetRecord()
		lines = append(lines, fmt.Sprintf("e %s %s %s %s %s/%s %d %t %t %s", e.Kind, e.Region, e.Key, e.Source,
			rec.GetOrigin(), rec.GetId(), rec.GetVersion(), rec.GetTombstone(), e.Stale, strings.Join(e.Conflict, ",")))
		// What the sources that disagree report is shown beside the entry, and can change on its own.
		for _, d := range e.Disagreeing {
			lines = append(lines, fmt.Sprintf("d %s %s %s %s/%s %d", e.Kind, e.Region, e.Key, d.GetOrigin(), d.GetId(), d.GetVersion()))
		}
	}
	for _, a := range p.Aggregates {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], uint64(a.Records))
		lines = append(lines, fmt.Sprintf("a %s %s %s %g %x", a.Kind, a.Field, a.Region, a.Sum, b))
	}
	sort.Strings(lines)
	for _, l := range lines {
		h.Write([]byte(l))
		h.Write([]byte{'\n'})
	}
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:18])
}

// liveStops tells the page that the node stops, or cannot make the picture now: it keeps what it
// shows, says that it could not be updated once a fetch fails, and picks up again when the node
// answers.
const liveStops = "event: fout\ndata: stopt\n\n"

// liveEnds tells the page that its stream's time is up (liveLifetime): it opens a new one at
// once, from the digest of what it shows, and reloads nothing.
const liveEnds = "event: opnieuw\ndata: tijd\n\n"

// live streams an event each time the picture of ?crisis changes for the person. ?sinds (or, on
// a reconnect, Last-Event-ID) is the digest of what the page shows; a change since then is
// sent at once.
func (s *Server) live(w http.ResponseWriter, r *request) {
	crisis := strings.TrimSpace(r.URL.Query().Get("crisis"))
	if crisis == "" || s.c.Changed == nil {
		http.Error(w, "no live picture: give ?crisis", http.StatusNotFound)
		return
	}
	k := liveKey{person: r.Session.Person.String(), crisis: crisis, exercise: r.exercise()}
	if !s.streams.enter(k) {
		// The page's script waits, and then stops trying: the page updates once a minute.
		w.Header().Set("Retry-After", strconv.Itoa(pictureRefresh))
		http.Error(w, r.L.T("picture.live_too_many", maxLiveStreams), http.StatusTooManyRequests)
		return
	}
	defer s.streams.leave(k)
	last := r.Header.Get("Last-Event-ID")
	if last == "" {
		last = r.URL.Query().Get("sinds")
	}
	// Before the stream answers: a partner that comes or goes once the page sees the stream open
	// is told, and one since the page was made, which it names (?partners), at once.
	partners := s.watchPartners(k, r.URL.Query().Get("partners"))
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	write := func(format string, args ...any) bool {
		// The server's write timeout is for pages; a stream sets its own for each write.
		_ = rc.SetWriteDeadline(time.Now().Add(30 * time.Second))
		if _, err := fmt.Fprintf(w, format, args...); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	// A retry hint, and an open stream the browser sees at once.
	if !write("retry: 3000\n\n") {
		return
	}
	ctx := r.Context()
	ping := time.NewTicker(livePing)
	defer ping.Stop()
	end := time.NewTimer(s.streams.lifetime)
	defer end.Stop()
	var sent time.Time
	for {
		changed := s.c.Changed()
		if wait := liveInterval - time.Since(sent); wait > 0 && !sent.IsZero() {
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return
			case <-end.C:
				write(liveEnds)
				return
			case <-s.quit:
				write(liveStops)
				return
			}
		}
		d, err := s.streams.look(ctx, k, s.c.Changed(), func() (string, error) {
			// Not the stream's own context: the look serves the person's other streams too,
			// and goes on when this one ends.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx()), liveCheck)
			defer cancel()
			// The peers are not asked again: the page did, and each search is an audited commit.
			pic, err := pb.NewSearchServiceClient(s.c.Conn).Picture(cctx, &pb.PictureRequest{Crisis: crisis, Mode: r.mode(), SkipPeerCheck: true})
			if err != nil {
				return "", err
			}
			return pictureDigest(pic), nil
		})
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			// The role was taken away: the page keeps what it shows, and says to reload. Any
			// other failure (the node hangs, stops, or is cut off) the page tries again after,
			// saying meanwhile that the picture could not be updated.
			if c := status.Code(err); c == codes.PermissionDenied || c == codes.Unauthenticated {
				write("event: fout\ndata: %s\n\n", "rol")
			} else {
				write(liveStops)
			}
			return
		}
		if d != last {
			if !write("id: %s\nevent: beeld\ndata: %s\n\n", d, d) {
				return
			}
			last, sent = d, time.Now()
		}
		if !s.awaitChange(r, changed, partners, ping.C, end.C, write) {
			return
		}
	}
}

// awaitChange waits for the channel of the next commit, pinging the browser meanwhile and
// telling it when which partners the node hears from changed (partners); false when the stream
// ends: the browser left, the session ended, the stream's time is up (end), or the server stops.
func (s *Server) awaitChange(r *request, changed <-chan struct{}, partners *partnerWatch, ping, end <-chan time.Time, write func(string, ...any) bool) bool {
	for {
		select {
		case <-changed:
			return true
		case <-partners.changed:
			partners.heard()
		case <-partners.due:
			if !partners.recheck(write) {
				return false
			}
		case <-end:
			write(liveEnds)
			return false
		case <-ping:
			if s.sessions.get(r.sessionID) == nil {
				write("event: afgemeld\ndata: sessie\n\n")
				return false
			}
			if !write(": ping\n\n") {
				return false
			}
		case <-r.Context().Done():
			return false
		case <-s.quit:
			write(liveStops)
			return false
		}
	}
}

// partnerWatch follows, for one stream, whether the node hears from its partners: when its
// subscription to one breaks or opens again (Config.PartnersChanged), the picture the page shows
// says so no longer. What the page shows of the partners comes from asking them (each audits
// it), which a look at a commit does not do, so no digest holds it: the stream then tells the page
// to fetch itself again (livePartners), and makes the partners' answer that the person's pictures
// share (limits.answer) no longer fresh, so that the fetch asks them, within the person's
// limit, as the minute's does (pictureOf). A partner that comes and goes is told once a
// liveRecheck, with the last change.
type partnerWatch struct {
	s       *Server
	k       liveKey
	changed <-chan struct{}  // the node's, until the next change; nil without partners
	due     <-chan time.Time // set while a recheck waits for liveRecheck to pass
	at      time.Time        // when the stream last learnt of a change, not yet told
	told    time.Time        // when the stream last told one
}

// watchPartners follows the partners for a stream whose page showed them as of generation shown
// (Config.PartnersChanged; "" when the page does not say): a change since is heard at once.
func (s *Server) watchPartners(k liveKey, shown string) *partnerWatch {
	w := &partnerWatch{s: s, k: k}
	if s.c.PartnersChanged == nil {
		return w
	}
	var gen uint64
	w.changed, gen = s.c.PartnersChanged()
	if g, err := strconv.ParseUint(shown, 10, 64); err == nil && g != gen {
		w.heard()
	}
	return w
}

// heard notes a change, and has the recheck come at once, or liveRecheck after the last.
func (w *partnerWatch) heard() {
	w.changed, _ = w.s.c.PartnersChanged()
	w.at = w.s.limits.now()
	if w.due == nil {
		w.due = time.After(max(0, w.s.streams.recheck-time.Since(w.told)))
	}
}

// recheck tells the page; false when the browser left.
func (w *partnerWatch) recheck(write func(string, ...any) bool) bool {
	w.due = nil
	w.s.limits.recheck(w.k.person, pictureKey{w.k.crisis, w.k.exercise}, w.at)
	w.told = time.Now()
	return write(livePartners)
}

// recheck makes the partners' answer on the person's picture k no longer fresh (answer) when it
// was given before at: a page's fetch for a change then asks the partners again, unless the
// person is short of pages (pictureReserve), and the answer is still shown as before.
func (l *limits) recheck(person string, k pictureKey, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.people[person]
	if p == nil {
		return
	}
	if a := p.answers[k]; a != nil && a.at.Before(at) {
		if stale := l.now().Add(-liveAsk); a.at.After(stale) {
			a.at = stale
		}
	}
}

package ui

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"net/http"
	"sort"
	"strings"
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

// liveInterval is the least time between a look that found a change and the next look of one
// stream: a burst of changes (an import) costs one look per interval, not one per commit. A
// look that found nothing (a commit of something else: an audit entry, a peer's signed head)
// does not hold the next one back.
const liveInterval = 200 * time.Millisecond

// pictureRefresh is how often, in seconds, an open picture is fetched again, changed or not: its
// ages and which partners answer change by the clock. Each time, the partners are asked as for
// a reload (and each audits it): once a minute a screen.
const pictureRefresh = 60

// livePing keeps the stream open through proxies, and notices an ended session.
const livePing = 25 * time.Second

// liveCheck bounds one look at the picture.
const liveCheck = 10 * time.Second

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

// live streams an event each time the picture of ?crisis changes for the person. ?sinds (or, on
// a reconnect, Last-Event-ID) is the digest of what the page shows; a change since then is
// sent at once.
func (s *Server) live(w http.ResponseWriter, r *request) {
	crisis := strings.TrimSpace(r.URL.Query().Get("crisis"))
	if crisis == "" || s.c.Changed == nil {
		http.Error(w, "no live picture: give ?crisis", http.StatusNotFound)
		return
	}
	last := r.Header.Get("Last-Event-ID")
	if last == "" {
		last = r.URL.Query().Get("sinds")
	}
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
	var sent time.Time
	for {
		changed := s.c.Changed()
		if wait := liveInterval - time.Since(sent); wait > 0 && !sent.IsZero() {
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return
			case <-s.quit:
				write(liveStops)
				return
			}
		}
		cctx, cancel := context.WithTimeout(r.ctx(), liveCheck)
		// The peers are not asked again: the page did, and each search is an audited commit.
		pic, err := pb.NewSearchServiceClient(s.c.Conn).Picture(cctx, &pb.PictureRequest{Crisis: crisis, Mode: r.mode(), SkipPeerCheck: true})
		cancel()
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
		if d := pictureDigest(pic); d != last {
			if !write("id: %s\nevent: beeld\ndata: %s\n\n", d, d) {
				return
			}
			last, sent = d, time.Now()
		}
		if !s.awaitChange(r, changed, ping.C, write) {
			return
		}
	}
}

// awaitChange waits for the channel of the next commit, pinging the browser meanwhile; false
// when the stream ends: the browser left, the session ended, or the server stops.
func (s *Server) awaitChange(r *request, changed <-chan struct{}, ping <-chan time.Time, write func(string, ...any) bool) bool {
	for {
		select {
		case <-changed:
			return true
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

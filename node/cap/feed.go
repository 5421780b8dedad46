package cap

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// FeedPath is where the web interface serves the Atom feed of public alerts.
const FeedPath = "/feeds/alerts.atom"

// MaxFeedEntries bounds the feed: the newest alerts come first.
const MaxFeedEntries = 200

// FeedConfig wires a feed.
type FeedConfig struct {
	// Org is the node's trust domain: only its own records are in the feed.
	Org string
	// Name is the node's name, in the feed's title.
	Name string
	// Alerts lists the candidate records: the node's own alert records that are public. The
	// feed checks each again and leaves out any other.
	Alerts func(ctx context.Context) ([]*pb.Record, error)
	// Changed, when set, gives the time of the newest change to any of the node's public,
	// actual alerts, a deleted one included: the feed's updated when it is empty, or when the
	// newest change took an entry away.
	Changed func(ctx context.Context) (time.Time, error)
	// Version, when set, gives the time of the newest change to any of the node's own actual
	// alerts, of any classification, a deleted one included: the feed is built again only when it
	// moves (a new, changed, deleted or reclassified alert) or when an alert in it expires, so
	// that a poller asking many times a second costs a query, not a build. Nil: built every time.
	Version func(ctx context.Context) (time.Time, error)
	Logger  *slog.Logger
	// Now is the clock that decides which alerts have expired. Default: time.Now.
	Now func() time.Time
}

// Feed serves an Atom feed (RFC 4287) of the node's public, actual alerts, each entry carrying
// the CAP 1.2 alert as its content, for alerting systems and websites that poll. It needs no
// sign-in: it holds only what the org published as public. It never holds a foreign record, an
// alert that is not public, one of an exercise, a test or a draft, or one that has expired: a
// website shows what the feed holds as current.
type Feed struct {
	c FeedConfig

	mu     sync.Mutex
	cached *builtFeed
}

// builtFeed is the feed's last document, for as long as it holds: while the alerts' version is
// the same and no alert in it has expired.
type builtFeed struct {
	version time.Time
	body    []byte
	// etag is an ETag, not a Last-Modified: a cancelled alert leaves the feed without making it
	// newer, and a poller must still see that it changed.
	etag  string
	until time.Time // the first expiry of an alert in it; zero: none expires
}

// NewFeed returns the feed's handler.
func NewFeed(c FeedConfig) *Feed {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return &Feed{c: c}
}

// Published reports whether a record belongs in the public feed of org.
func Published(r *pb.Record, org string) bool {
	return r.Kind == Kind && r.Origin == org && !r.Tombstone &&
		r.Classification == pb.Classification_PUBLIC && r.Status == pb.Status_ACTUAL
}

type atomFeed struct {
	XMLName  xml.Name    `xml:"http://www.w3.org/2005/Atom feed"`
	Lang     string      `xml:"xml:lang,attr"`
	ID       string      `xml:"id"`
	Title    string      `xml:"title"`
	Subtitle string      `xml:"subtitle"`
	Updated  string      `xml:"updated"`
	Author   atomPerson  `xml:"author"`
	Link     atomLink    `xml:"link"`
	Entries  []atomEntry `xml:"entry"`
}

type atomPerson struct {
	Name string `xml:"name"`
}

type atomLink struct {
	Rel  string `xml:"rel,attr"`
	Href string `xml:"href,attr"`
}

type atomCategory struct {
	Term string `xml:"term,attr"`
}

type atomEntry struct {
	ID         string         `xml:"id"`
	Title      string         `xml:"title"`
	Updated    string         `xml:"updated"`
	Published  string         `xml:"published,omitempty"`
	Summary    string         `xml:"summary,omitempty"`
	Categories []atomCategory `xml:"category"`
	Content    atomContent    `xml:"content"`
}

type atomContent struct {
	Type  string `xml:"type,attr"`
	Alert *Alert
}

// Build is the feed's document for the records: the published ones that have not expired,
// newest first. Its updated is the newest of changed, the entries' times and the expiry of an
// alert that left the feed when it expired; with none, the Unix epoch, which says that the node
// never published a public alert.
func (f *Feed) Build(recs []*pb.Record, changed time.Time) ([]byte, error) {
	body, _, err := f.build(recs, changed)
	return body, err
}

// build is Build, and the first time an alert in the document expires (zero: none does).
func (f *Feed) build(recs []*pb.Record, changed time.Time) (body []byte, next time.Time, err error) {
	now := f.c.Now()
	recs = slices.DeleteFunc(slices.Clone(recs), func(r *pb.Record) bool {
		if !Published(r, f.c.Org) {
			return true
		}
		at, ok := expiresAt(r.Body)
		if ok && !at.After(now) {
			// Leaving the feed is a change, at the time the alert expired.
			if at.After(changed) {
				changed = at
			}
			return true
		}
		if ok && (next.IsZero() || at.Before(next)) {
			next = at
		}
		return false
	})
	slices.SortFunc(recs, func(a, b *pb.Record) int {
		return cmp.Or(b.UpdatedAt.AsTime().Compare(a.UpdatedAt.AsTime()), cmp.Compare(a.Id, b.Id))
	})
	recs = recs[:min(len(recs), MaxFeedEntries)]
	updated := time.Unix(0, 0)
	if changed.After(updated) {
		updated = changed
	}
	if len(recs) > 0 && recs[0].UpdatedAt.AsTime().After(updated) {
		updated = recs[0].UpdatedAt.AsTime()
	}
	// Dutch first, as the node's web interface; the subtitle says it again in English for
	// systems abroad. Each alert's own language is in its CAP info blocks.
	doc := atomFeed{
		Lang: "nl", ID: "urn:knooppunt:" + f.c.Org + ":alerts", Title: "Openbare waarschuwingen van " + f.c.Name,
		Subtitle: "Public alerts of " + f.c.Name + ", each a CAP 1.2 alert",
		Updated:  updated.UTC().Format(time.RFC3339), Author: atomPerson{Name: f.c.Org},
		Link: atomLink{Rel: "self", Href: FeedPath}, Entries: []atomEntry{},
	}
	for _, r := range recs {
		a, err := FromRecord(r, ExportOptions{})
		if err != nil {
			f.c.Logger.Warn("alert feed: record left out", "id", r.Id, "err", err)
			continue
		}
		e := atomEntry{
			ID: "urn:knooppunt:" + f.c.Org + ":record:" + r.Id, Title: a.Identifier,
			Updated: r.UpdatedAt.AsTime().UTC().Format(time.RFC3339), Content: atomContent{Type: "application/cap+xml", Alert: a},
		}
		if t, err := time.Parse(TimeLayout, a.Sent); err == nil {
			e.Published = t.UTC().Format(time.RFC3339)
		}
		if len(a.Info) > 0 {
			in := a.Info[0]
			e.Title = cmp.Or(in.Headline, in.Event)
			e.Summary = in.Description
			for _, c := range in.Category {
				e.Categories = append(e.Categories, atomCategory{Term: c})
			}
		}
		doc.Entries = append(doc.Entries, e)
	}
	var b bytes.Buffer
	b.WriteString(xml.Header)
	enc := xml.NewEncoder(&b)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return nil, time.Time{}, err
	}
	b.WriteByte('\n')
	return b.Bytes(), next, nil
}

// expiresAt is when the alert a record's body holds expires: the latest expiry of its info
// blocks. ok is false when it never expires: it has no info block, or one without an expiry.
func expiresAt(body []byte) (at time.Time, ok bool) {
	var a struct {
		Info []struct{ Expires string }
	}
	if json.Unmarshal(body, &a) != nil || len(a.Info) == 0 {
		return time.Time{}, false
	}
	for _, in := range a.Info {
		t, err := time.Parse(TimeLayout, in.Expires)
		if err != nil {
			return time.Time{}, false
		}
		if t.After(at) {
			at = t
		}
	}
	return at, true
}

// ServeHTTP serves the feed to GET and HEAD, with an ETag, so that a poller whose copy is current
// gets 304 Not Modified.
func (f *Feed) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "the alert feed is read with GET", http.StatusMethodNotAllowed)
		return
	}
	doc, err := f.document(r.Context())
	if err != nil {
		f.c.Logger.Warn("alert feed", "err", err)
		http.Error(w, "the alert feed is not available now: try again later", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/atom+xml; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=60")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	// Opened in a browser, as the web interface's own pages are: no script runs, nothing loads,
	// no page frames it, and no address leaks on. Any origin may read it: it is public.
	w.Header().Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'; sandbox")
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("ETag", doc.etag)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(doc.body))
}

// document is the feed's document now: the last one built, while it holds (see Version), or a
// new one. A build holds the lock, so that many pollers at once wait for one build.
func (f *Feed) document(ctx context.Context) (*builtFeed, error) {
	var version time.Time
	if f.c.Version != nil {
		var err error
		if version, err = f.c.Version(ctx); err != nil {
			return nil, err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.cached; c != nil && f.c.Version != nil && c.version.Equal(version) && (c.until.IsZero() || f.c.Now().Before(c.until)) {
		return c, nil
	}
	recs, err := f.c.Alerts(ctx)
	if err != nil {
		return nil, err
	}
	var changed time.Time
	if f.c.Changed != nil {
		if changed, err = f.c.Changed(ctx); err != nil {
			return nil, err
		}
	}
	body, next, err := f.build(recs, changed)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(body)
	f.cached = &builtFeed{version: version, body: body, etag: `"` + hex.EncodeToString(sum[:12]) + `"`, until: next}
	return f.cached, nil
}

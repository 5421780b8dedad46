package ui

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/knooppunt/knooppunt/node/api"
	"github.com/knooppunt/knooppunt/node/config"
	"github.com/knooppunt/knooppunt/node/record"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// countingConn stands for the node's services: SearchService.Picture answers a picture whose
// sitrep is at version, and is counted (with and without the peer check), as is
// SearchService.Search; PhaseService.List knows the crisis oekraine; every other call answers
// empty.
type countingConn struct {
	version  atomic.Int64
	pictures atomic.Int64 // Picture calls
	checked  atomic.Int64 // of those, the ones that asked the partners
	searches atomic.Int64
}

func (c *countingConn) Invoke(_ context.Context, method string, req, reply any, _ ...grpc.CallOption) error {
	switch method {
	case "/knooppunt.v1.SearchService/Picture":
		c.pictures.Add(1)
		if !req.(*pb.PictureRequest).SkipPeerCheck {
			c.checked.Add(1)
		}
		proto.Merge(reply.(proto.Message), &pb.PictureResponse{Crisis: "oekraine", Phase: "warm", Entries: []*pb.PictureEntry{{
			Kind: "sitrep", Key: "s", Source: "a.crisis.test",
			Record: &pb.Record{Id: "s", Kind: "sitrep", Origin: "a.crisis.test", Version: c.version.Load()}}},
			Peers: []*pb.PeerStatus{{Peer: "b", TrustDomain: "b.crisis.test", State: "answered"}}})
	case "/knooppunt.v1.SearchService/Search":
		c.searches.Add(1)
	case "/knooppunt.v1.PhaseService/List":
		proto.Merge(reply.(proto.Message), &pb.ListPhasesResponse{Phases: []*pb.PhaseInfo{{Crisis: "oekraine", Phase: "warm"}}})
	}
	return nil
}

func (c *countingConn) NewStream(context.Context, *grpc.StreamDesc, string, ...grpc.CallOption) (grpc.ClientStream, error) {
	return nil, io.EOF
}

// commits stands for the node's commits (Config.Changed).
type commits struct {
	mu  sync.Mutex
	ch  chan struct{}
	gen uint64 // how many commits were made
}

func (c *commits) changed() <-chan struct{} {
	ch, _ := c.generation()
	return ch
}

// generation is the channel of the next commit and how many came before, as
// Config.PartnersChanged gives them.
func (c *commits) generation() (<-chan struct{}, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ch, c.gen
}

func (c *commits) commit() {
	c.mu.Lock()
	defer c.mu.Unlock()
	close(c.ch)
	c.ch = make(chan struct{})
	c.gen++
}

// limitServer is a web interface on conn whose people are readers, with its log in logs.
func limitServer(t *testing.T, conn *countingConn, logs io.Writer) (*Server, *commits) {
	t.Helper()
	kinds, err := record.NewKinds(record.DemoKinds())
	if err != nil {
		t.Fatal(err)
	}
	c := &commits{ch: make(chan struct{})}
	s, err := New(Config{UI: config.UI{Listen: "127.0.0.1:8080", SessionTTL: time.Hour,
		OIDC: config.OIDC{Issuer: "https://login.a.example", ClientID: "k", Claim: "preferred_username"}},
		Org: "a.crisis.test", Name: "a", Conn: conn, Kinds: kinds, Changed: c.changed, Logger: slog.New(slog.NewTextHandler(logs, nil)),
		Resolve: func(id spiffeid.ID) (api.Caller, error) {
			return api.Caller{ID: id, Roles: []api.Role{api.Reader}}, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s, c
}

// signIn makes a session of the person NAME and returns its cookie.
func signIn(s *Server, name string) *http.Cookie {
	id := s.sessions.create(&session{Person: spiffeid.RequireFromString("spiffe://a.crisis.test/user/" + name), Name: name,
		AuthTime: time.Now(), Expires: time.Now().Add(time.Hour)})
	return &http.Cookie{Name: s.sessionCookie(), Value: id}
}

// stream is an open /beeld/live, its events read as they come.
type stream struct {
	resp   *http.Response
	cancel context.CancelFunc
	events chan string // each event's name; closed at the stream's end
}

// openStream opens the picture's stream of oekraine as the session of cookie; a stream that is
// refused comes back with its response and no events.
func openStream(t *testing.T, base string, cookie *http.Cookie) *stream {
	t.Helper()
	return openStreamAt(t, base+"/beeld/live?crisis=oekraine", cookie)
}

// openStreamAt is openStream of the stream at u.
func openStreamAt(t *testing.T, u string, cookie *http.Cookie) *stream {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(ctx, "GET", u, nil)
	req.AddCookie(cookie)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	st := &stream{resp: resp, cancel: cancel, events: make(chan string, 64)}
	t.Cleanup(st.close)
	if resp.StatusCode != http.StatusOK {
		close(st.events)
		return st
	}
	go func() {
		defer close(st.events)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if name, ok := strings.CutPrefix(sc.Text(), "event: "); ok {
				st.events <- name
			}
		}
	}()
	return st
}

func (st *stream) close() {
	st.cancel()
	st.resp.Body.Close()
}

// next is the stream's next event, within a bounded wait; "" when the stream ended.
func (st *stream) next(t *testing.T) string {
	t.Helper()
	select {
	case e, ok := <-st.events:
		if !ok {
			return ""
		}
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10 s")
		return ""
	}
}

// openStreams opens n streams as the session of cookie, each with its first event.
func openStreams(t *testing.T, base string, cookie *http.Cookie, n int) []*stream {
	t.Helper()
	var open []*stream
	for range n {
		st := openStream(t, base, cookie)
		if st.resp.StatusCode != http.StatusOK || st.next(t) != "beeld" {
			t.Fatalf("stream %d: %d, want 200 and the picture's digest", len(open)+1, st.resp.StatusCode)
		}
		open = append(open, st)
	}
	return open
}

// TestLiveStreamsPerPerson: a person may have maxLiveStreams pictures streaming at once; one
// more is refused with 429, while another person's is not, and once one of the person's
// streams ends a new one opens again.
func TestLiveStreamsPerPerson(t *testing.T) {
	s, _ := limitServer(t, &countingConn{}, io.Discard)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	anna := signIn(s, "anna")
	open := openStreams(t, srv.URL, anna, maxLiveStreams)
	// A second session of the same person counts as the same person.
	extra := openStream(t, srv.URL, signIn(s, "anna"))
	if extra.resp.StatusCode != http.StatusTooManyRequests || extra.resp.Header.Get("Retry-After") == "" {
		t.Fatalf("stream %d of anna: %d, Retry-After %q; want 429 with Retry-After", maxLiveStreams+1, extra.resp.StatusCode, extra.resp.Header.Get("Retry-After"))
	}
	if b, _ := io.ReadAll(extra.resp.Body); !strings.Contains(string(b), "te veel live beelden") {
		t.Errorf("the refusal says %q", b)
	}
	if other := openStream(t, srv.URL, signIn(s, "bram")); other.resp.StatusCode != http.StatusOK {
		t.Errorf("bram's stream: %d, want 200", other.resp.StatusCode)
	}
	open[0].close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := openStream(t, srv.URL, anna)
		if st.resp.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after one of anna's streams ended, a new one: %d, want 200", st.resp.StatusCode)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestLiveStreamsShareALook: a person's streams of one picture look at it once a commit
// together, not once each.
func TestLiveStreamsShareALook(t *testing.T) {
	conn := &countingConn{}
	s, c := limitServer(t, conn, io.Discard)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	streams := openStreams(t, srv.URL, signIn(s, "anna"), maxLiveStreams)
	for i := range 3 {
		before := conn.pictures.Load()
		conn.version.Add(1)
		c.commit()
		for _, st := range streams {
			if e := st.next(t); e != "beeld" {
				t.Fatalf("commit %d: event %q, want beeld", i+1, e)
			}
		}
		if n := conn.pictures.Load() - before; n != 1 {
			t.Errorf("commit %d: %d looks at the picture for %d streams of one person, want 1", i+1, n, len(streams))
		}
	}
}

// TestLiveStreamEnds: a stream ends after its lifetime, telling the page to open a new one.
func TestLiveStreamEnds(t *testing.T) {
	s, _ := limitServer(t, &countingConn{}, io.Discard)
	s.streams.lifetime = 300 * time.Millisecond
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	st := openStream(t, srv.URL, signIn(s, "anna"))
	if e := st.next(t); e != "beeld" {
		t.Fatalf("first event %q, want beeld", e)
	}
	if e := st.next(t); e != "opnieuw" {
		t.Errorf("event %q, want opnieuw when the stream's time is up", e)
	}
	if e := st.next(t); e != "" {
		t.Errorf("event %q after opnieuw, want the stream's end", e)
	}
}

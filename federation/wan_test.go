package federation_test

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/knooppunt/knooppunt/federation/fedtest"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// wanHop is a TCP proxy on loopback that delays every byte by delay each way, give or take
// jitter, keeping their order: a WAN between two nodes on one machine. Frozen (freeze), it holds
// every byte each way and takes new connections without passing them on, as the kernel does for
// a process stopped with SIGSTOP: the connections stay open.
type wanHop struct {
	lis           net.Listener
	target        string
	delay, jitter time.Duration
	wg            sync.WaitGroup
	done          chan struct{}

	mu     sync.Mutex
	conns  []net.Conn
	thawed chan struct{} // closed while the hop is not frozen
}

// newWANHop starts a hop to target; it stops when the test ends.
func newWANHop(tb testing.TB, target string, delay, jitter time.Duration) *wanHop {
	tb.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	h := &wanHop{lis: lis, target: target, delay: delay, jitter: jitter, done: make(chan struct{}), thawed: make(chan struct{})}
	close(h.thawed)
	h.wg.Add(1)
	go h.serve()
	tb.Cleanup(func() {
		close(h.done)
		lis.Close()
		h.mu.Lock()
		for _, c := range h.conns {
			c.Close()
		}
		h.mu.Unlock()
		h.wg.Wait()
	})
	return h
}

// freeze holds everything from now on.
func (h *wanHop) freeze() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.thawed = make(chan struct{})
}

// pass waits while the hop is frozen; false when it stops.
func (h *wanHop) pass() bool {
	h.mu.Lock()
	thawed := h.thawed
	h.mu.Unlock()
	select {
	case <-thawed:
		return true
	case <-h.done:
		return false
	}
}

func (h *wanHop) serve() {
	defer h.wg.Done()
	for {
		c, err := h.lis.Accept()
		if err != nil {
			return
		}
		if !h.pass() {
			c.Close()
			return
		}
		t, err := net.Dial("tcp", h.target)
		if err != nil {
			c.Close()
			continue
		}
		h.mu.Lock()
		h.conns = append(h.conns, c, t)
		h.mu.Unlock()
		h.wg.Add(2)
		go func() { defer h.wg.Done(); h.copy(t, c) }()
		go func() { defer h.wg.Done(); h.copy(c, t) }()
	}
}

// copy sends what src reads to dst, each chunk delay ± jitter after it was read, in order; at
// the end of src it ends dst's writing half.
func (h *wanHop) copy(dst, src net.Conn) {
	type chunk struct {
		at   time.Time
		data []byte
	}
	q := make(chan chunk, 4096)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for c := range q {
			time.Sleep(time.Until(c.at))
			if !h.pass() {
				src.Close()
				for range q {
				}
				return
			}
			if _, err := dst.Write(c.data); err != nil {
				src.Close()
				for range q {
				}
				return
			}
		}
		if tc, ok := dst.(*net.TCPConn); ok {
			tc.CloseWrite()
		} else {
			dst.Close()
		}
	}()
	var last time.Time
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			at := time.Now().Add(h.delay + time.Duration((rand.Float64()*2-1)*float64(h.jitter)))
			if at.Before(last) {
				at = last // never reorder
			}
			last = at
			q <- chunk{at, append([]byte(nil), buf[:n]...)}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				dst.Close()
			}
			close(q)
			<-done
			return
		}
	}
}

// wanVia puts a hop in front of every peer the searcher, the org named searcher, reaches: the
// Via of fedtest.Options.
func wanVia(tb testing.TB, searcher string, delay, jitter time.Duration) func(from, to *fedtest.Org) string {
	var mu sync.Mutex
	hops := map[string]string{}
	return func(from, to *fedtest.Org) string {
		if from.Name != searcher {
			return ""
		}
		mu.Lock()
		defer mu.Unlock()
		if addr, ok := hops[to.Addr]; ok {
			return addr
		}
		addr := newWANHop(tb, to.Addr, delay, jitter).lis.Addr().String()
		hops[to.Addr] = addr
		return addr
	}
}

// TestSearchThroughAWANHop is BenchmarkSearchWAN in short: a search through hops that add 5 ms
// each way gets every peer's records, is not partial, and takes at least the hop's round trip,
// so the hop is in the path. It checks no upper bound.
func TestSearchThroughAWANHop(t *testing.T) {
	const delay = 5 * time.Millisecond
	opts := benchOpts
	opts.Orgs = 3
	opts.Via = wanVia(t, "a", delay, time.Millisecond)
	f := fedtest.Start(t, opts)
	a := f.Orgs[0]
	for _, p := range f.Orgs[1:] {
		p.Approve(t, policyDoc("to-searcher", spiffeOf(a), "sitrep", "internal", ""))
		p.Put(t, fedtest.Sitrep("w", "wan", pb.Classification_INTERNAL, "across the hop"))
	}
	req := &pb.SearchRequest{Filter: &pb.Filter{Crisis: "wan"}, TimeoutMs: 5000}
	fedtest.Eventually(t, 10*time.Second, "a search through the hops gets both peers' records", func() (bool, string) {
		resp, took := a.Search(t, req)
		hits := 0
		for _, h := range resp.Hits {
			if h.Source != "" {
				hits++
			}
		}
		return !resp.Partial && hits == 2 && took >= 2*delay, fmt.Sprintf("partial %v, %d hits from peers, took %s", resp.Partial, hits, took)
	})
}

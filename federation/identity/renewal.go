package identity

import (
	"bytes"
	"io"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// SVIDMark is the X.509-SVID a client's source gave when the client made a connection that it
// keeps. A node closes a connection whose SVID has ended after the next call on it (Recheck),
// and a call under way on it at that moment fails UNAVAILABLE ("error reading from server:
// EOF"): a search across the federation came back partial for it. A client that dials anew
// once its SVID is renewed, halfway through the SVID's life under SPIRE, never has such a
// connection: the one it leaves serves its calls under way and ends long before the old SVID.
type SVIDMark struct {
	src  x509svid.Source
	leaf []byte
	ends time.Time
}

// MarkSVID marks the SVID src gives now.
func MarkSVID(src x509svid.Source) SVIDMark {
	m := SVIDMark{src: src, leaf: leafOf(src)}
	if src != nil {
		if svid, err := src.GetX509SVID(); err == nil && svid != nil && len(svid.Certificates) > 0 {
			m.ends = svid.Certificates[0].NotAfter
		}
	}
	return m
}

// Grace is how long a connection made with the marked SVID may serve the calls under way on it
// once it is taken out of use: until the SVID ends, when the node it calls would close it, and for
// at least least; a file fetch of minutes is not cut at each renewal.
func (m SVIDMark) Grace(least time.Duration) time.Duration {
	return max(least, time.Until(m.ends))
}

// Renewed reports whether src gives another SVID than the one marked. The zero SVIDMark is
// never renewed; nor is one whose source gives no SVID now, which no new connection would have.
func (m SVIDMark) Renewed() bool {
	if m.src == nil {
		return false
	}
	leaf := leafOf(m.src)
	return leaf != nil && !bytes.Equal(leaf, m.leaf)
}

// leafOf is the DER of the leaf certificate src gives now; nil when it gives none.
func leafOf(src x509svid.Source) []byte {
	if src == nil {
		return nil
	}
	svid, err := src.GetX509SVID()
	if err != nil || svid == nil || len(svid.Certificates) == 0 {
		return nil
	}
	return svid.Certificates[0].Raw
}

// Retired are connections a client took out of use, those of a renewed SVID among them: each is
// closed a grace after, so that the calls under way on it end first.
type Retired struct {
	mu    sync.Mutex
	conns map[io.Closer]*time.Timer
}

// Add closes c after grace, unless CloseAll closes it first.
func (r *Retired) Add(c io.Closer, grace time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conns == nil {
		r.conns = map[io.Closer]*time.Timer{}
	}
	r.conns[c] = time.AfterFunc(grace, func() {
		r.mu.Lock()
		_, ok := r.conns[c]
		delete(r.conns, c)
		r.mu.Unlock()
		if ok {
			c.Close()
		}
	})
}

// Holds reports whether c is retired and not closed yet.
func (r *Retired) Holds(c io.Closer) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.conns[c]
	return ok
}

// CloseAll closes every retired connection now.
func (r *Retired) CloseAll() {
	r.mu.Lock()
	conns := r.conns
	r.conns = nil
	r.mu.Unlock()
	for c, t := range conns {
		t.Stop()
		c.Close()
	}
}

package store

// The certificates of open Raft connections, verified again after the handshake (review AK,
// AK6), and raft-net's lines of refused handshakes (AK5).

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/knooppunt/knooppunt/federation/identity"
	"github.com/knooppunt/knooppunt/federation/identity/identitytest"
)

const recheckTD = "vr-utrecht.crisis.test"

// recheckReplica is a Raft transport over mutual TLS that answers every AppendEntries, without a
// store: what its connections do is all these tests look at.
type recheckReplica struct {
	svid  *x509svid.SVID
	trans *Transport
	log   *identitytest.Log
}

// newRecheckReplica starts a replica with the SVID of source, which is svid or gives it.
func newRecheckReplica(t *testing.T, svid *x509svid.SVID, bundles x509bundle.Source, source ...x509svid.Source) *recheckReplica {
	t.Helper()
	td := svid.ID.TrustDomain()
	log := identitytest.NewLog()
	var src x509svid.Source = svid
	if len(source) > 0 {
		src = source[0]
	}
	tr, err := TLSTransport("127.0.0.1:0", "", identity.ServerTLSFor(src, bundles, identity.AuthorizeReplica(td), log.Logger),
		identity.ClientTLS(src, bundles, identity.AuthorizeReplica(td)), log.Logger)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case rpc := <-tr.Consumer():
				rpc.Respond(&raft.AppendEntriesResponse{Success: true}, nil)
			case <-done:
				return
			}
		}
	}()
	t.Cleanup(func() {
		close(done)
		tr.Close()
		tr.layer.isolate(true)
	})
	return &recheckReplica{svid: svid, trans: tr, log: log}
}

// send makes one AppendEntries call to to.
func (r *recheckReplica) send(to *recheckReplica) error {
	var resp raft.AppendEntriesResponse
	return r.trans.AppendEntries("r", to.trans.LocalAddr(), &raft.AppendEntriesRequest{}, &resp)
}

// open is how many connections r has open.
func (r *recheckReplica) open() int {
	r.trans.layer.mu.Lock()
	defer r.trans.layer.mu.Unlock()
	return len(r.trans.layer.conns)
}

// connect gives a and b a connection each way, and so two each: the one it dialled (kept in
// Raft's pool) and the one it accepted.
func connect(t *testing.T, a, b *recheckReplica) {
	t.Helper()
	for _, c := range [][2]*recheckReplica{{a, b}, {b, a}} {
		if err := c[0].send(c[1]); err != nil {
			t.Fatalf("%s to %s: %v", c[0].svid.ID, c[1].svid.ID, err)
		}
	}
	identitytest.Eventually(t, 5*time.Second, "two connections on each side", func() bool { return a.open() == 2 && b.open() == 2 })
}

func setRecheckEvery(t *testing.T, d time.Duration) {
	was := recheckEvery
	recheckEvery = d
	t.Cleanup(func() { recheckEvery = was })
}

// above is the log's records at level or above it.
func above(l *identitytest.Log, level slog.Level) []identitytest.Entry {
	var out []identitytest.Entry
	for _, e := range l.Entries() {
		var lv slog.Level
		if lv.UnmarshalText([]byte(e.Str("level"))) == nil && lv >= level {
			out = append(out, e)
		}
	}
	return out
}

// waitLine waits until l has a record at level whose message starts with msg.
func waitLine(t *testing.T, l *identitytest.Log, msg, level string) {
	t.Helper()
	identitytest.Eventually(t, 5*time.Second, level+" "+msg, func() bool {
		for _, e := range l.Entries() {
			if strings.HasPrefix(e.Str("msg"), msg) && e.Str("level") == level {
				return true
			}
		}
		return false
	})
}

const closedUnverified = "raft: closed a connection with another replica: its certificate no longer verifies"

// TestRaftConnectionsClosedWhenTheirCAIsDropped: a replica whose bundle no longer holds the CA
// that issued another replica's SVID (its key was stolen, and the org moved to a new CA) closes
// the connections that replica made and accepted with it within recheckEvery, each with one
// warning that names the replica and why, and refuses its new ones. The handshake verified it
// once, and the connections stayed in use (review AK, AK6). The refused handshake is logged
// once, as "handshake refused", not again as an ERROR of raft-net's (AK5); on the other side, the
// refusal of its certificate is said to be one, once a minute.
func TestRaftConnectionsClosedWhenTheirCAIsDropped(t *testing.T) {
	setRecheckEvery(t, 100*time.Millisecond)
	ca := identitytest.NewCA(t, recheckTD)
	bundles := x509bundle.NewSet(identitytest.Bundle(ca))
	r1 := newRecheckReplica(t, identitytest.SVID(t, ca, "/node/r1", identity.SVIDOptions{}), bundles)
	r2 := newRecheckReplica(t, identitytest.SVID(t, ca, "/node/r2", identity.SVIDOptions{}), identitytest.Bundle(ca))
	connect(t, r1, r2)
	time.Sleep(3 * recheckEvery)
	if n := r1.open(); n != 2 {
		t.Fatalf("r1 has %d connections open while r2's SVID verifies, want 2", n)
	}

	bundles.Add(identitytest.Bundle(identitytest.NewCA(t, recheckTD)))
	identitytest.Eventually(t, 10*recheckEvery, "r1 closes both connections with r2", func() bool { return r1.open() == 0 })
	r2ID := r2.svid.ID.String()
	identitytest.Eventually(t, 5*time.Second, "two warnings", func() bool { return r1.log.Count(closedUnverified, nil) == 2 })
	for _, e := range r1.log.Entries() {
		if e.Str("msg") == closedUnverified && (e.Str("level") != "WARN" || e.Str("peer") != r2ID || !strings.Contains(e.Str("reason"), "certificate signed by unknown authority")) {
			t.Errorf("logged %v, want a warning naming %s and the unknown authority", e, r2ID)
		}
	}

	// r2 dials again, and its handshake is refused. Its first call may go on the connection it
	// pooled, which r1 closed.
	for i := 0; r1.log.Count("handshake refused", nil) == 0; i++ {
		if err := r2.send(r1); err == nil || i == 3 {
			t.Fatalf("r2 is heard again with an SVID of the dropped CA (%v), or refused other than at the handshake", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	r1.log.Wait(t, time.Second, "handshake refused", identitytest.Refusal(r2ID, "certificate signed by unknown authority"))
	waitLine(t, r1.log, "raft-net: failed to decode incoming command: ", "DEBUG")
	// r1 dials r2, and refuses r2's certificate: r2 is told so, once a minute.
	const refusedHere = "raft-net: a replica that connected refused this replica's certificate in the TLS handshake: it has ended, or " +
		`that replica's bundle no longer holds its CA: error="remote error: tls: bad certificate"`
	for range 3 {
		if err := r1.send(r2); err == nil {
			t.Fatal("r1 sends to r2, whose SVID is of the dropped CA")
		}
	}
	waitLine(t, r2.log, refusedHere, "WARN")
	waitLine(t, r2.log, refusedHere, "DEBUG")

	time.Sleep(3 * recheckEvery)
	var loud []string
	for _, e := range above(r1.log, slog.LevelWarn) {
		if m := e.Str("msg"); m != closedUnverified && m != "handshake refused" {
			loud = append(loud, fmt.Sprint(e))
		}
	}
	for _, e := range above(r2.log, slog.LevelWarn) {
		if e.Str("msg") != refusedHere {
			loud = append(loud, fmt.Sprint(e))
		}
	}
	if len(loud) > 0 || r1.log.Count(closedUnverified, nil) != 2 {
		t.Errorf("logged at WARN and above, besides the closes and refusals:\n%s\nr1's log:\n%s", strings.Join(loud, "\n"), r1.log)
	}
}

// TestRaftConnectionsStayOpenAsTheirSVIDEnds: a connection made with an SVID that has since
// ended is left open, and serves on: the replica behind it is the same, and under SPIRE every
// SVID ends within the hour while Raft keeps its connections, so closing them as they end would
// fail a heartbeat or a pipelined append each time. Only a chain that no longer verifies for
// another reason closes it (TestRaftConnectionsClosedWhenTheirCAIsDropped).
func TestRaftConnectionsStayOpenAsTheirSVIDEnds(t *testing.T) {
	setRecheckEvery(t, 100*time.Millisecond)
	ca := identitytest.NewCA(t, recheckTD)
	bundle := identitytest.Bundle(ca)
	// The second in which it is made counts in full, so it lives for 2 to 3 s.
	short := identitytest.SVID(t, ca, "/node/r2", identity.SVIDOptions{NotBefore: time.Now(), TTL: 2 * time.Second})
	r1 := newRecheckReplica(t, identitytest.SVID(t, ca, "/node/r1", identity.SVIDOptions{}), bundle)
	r2 := newRecheckReplica(t, short, bundle)
	connect(t, r1, r2)

	time.Sleep(time.Until(short.Certificates[0].NotAfter) + 5*recheckEvery)
	if n := r1.open(); n != 2 {
		t.Fatalf("r1 has %d connections open after r2's SVID ended, want the 2 it had", n)
	}
	for _, c := range [][2]*recheckReplica{{r1, r2}, {r2, r1}} {
		if err := c[0].send(c[1]); err != nil {
			t.Errorf("%s to %s on the connection made before r2's SVID ended: %v", c[0].svid.ID, c[1].svid.ID, err)
		}
	}
	if loud := above(r1.log, slog.LevelInfo); len(loud) > 0 {
		t.Errorf("logged at INFO and above: %v", loud)
	}
}

// TestSlogWriterRefusedHandshakes: raft-net says again that it could not read a connection whose
// handshake was refused, at every attempt and as an ERROR, 17 times in 12 s on a replica whose
// SVID had expired (review AK, AK5). A refusal the transport's TLS config logged itself is at
// debug level; any other failed handshake is said to be one, once a minute for each side that
// refused; a connection this replica closed is no error.
func TestSlogWriterRefusedHandshakes(t *testing.T) {
	var buf bytes.Buffer
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	w := clockedWriter(&buf, &now)
	w.handshakes = &handshakeRefusals{reasons: map[string]int{}}
	expired := `x509svid: could not verify leaf certificate: x509: certificate has expired or is not yet valid: current time 2026-12-05T12:00:00Z is after 2026-12-05T11:59:59Z`
	w.handshakes.note(errors.New(expired))
	for _, line := range []string{
		// Logged as "handshake refused" by the TLS config.
		`[ERROR] raft-net: failed to decode incoming command: error="` + expired + `"`,
		// Not, or no longer.
		`[ERROR] raft-net: failed to decode incoming command: error="` + expired + `"`,
		`[ERROR] raft-net: failed to decode incoming command: error="tls: client didn't provide a certificate"`,
		// The other side refused this replica's certificate.
		`[ERROR] raft-net: failed to decode incoming command: error="remote error: tls: bad certificate"`,
		`[ERROR] raft-net: failed to decode incoming command: error="remote error: tls: bad certificate"`,
		// This replica closed them.
		`[ERROR] raft-net: failed to decode incoming command: error="read tcp 127.0.0.1:7444->127.0.0.1:50312: use of closed network connection"`,
		`[ERROR] raft: failed to heartbeat to: peer=r2 backoff time=10ms error="use of closed network connection"`,
		`[ERROR] raft: failed to pipeline appendEntries: peer="{Voter r2 127.0.0.1:7444}" error="use of closed network connection"`,
		`[ERROR] raft-net: failed to flush response: error="use of closed network connection"`,
		// Anything else is as it was.
		`[ERROR] raft-net: failed to decode incoming command: error="unknown rpc type 9"`,
		`[ERROR] raft-net: failed to decode incoming command: error=EOF2`,
	} {
		w.Write([]byte(line + "\n"))
	}
	now = now.Add(repeatEvery)
	w.Write([]byte(`[ERROR] raft-net: failed to decode incoming command: error="remote error: tls: bad certificate"` + "\n"))
	want := `level=DEBUG msg="raft-net: failed to decode incoming command: error=\"` + expired + `\"" component=raft
level=WARN msg="raft-net: refused an incoming connection in the TLS handshake: error=\"` + expired + `\"" component=raft next_in=1m0s
level=DEBUG msg="raft-net: refused an incoming connection in the TLS handshake: error=\"tls: client didn't provide a certificate\"" component=raft
level=WARN msg="raft-net: a replica that connected refused this replica's certificate in the TLS handshake: it has ended, or that replica's bundle no longer holds its CA: error=\"remote error: tls: bad certificate\"" component=raft next_in=1m0s
level=DEBUG msg="raft-net: a replica that connected refused this replica's certificate in the TLS handshake: it has ended, or that replica's bundle no longer holds its CA: error=\"remote error: tls: bad certificate\"" component=raft
level=DEBUG msg="raft-net: failed to decode incoming command: error=\"read tcp 127.0.0.1:7444->127.0.0.1:50312: use of closed network connection\"" component=raft
level=DEBUG msg="failed to heartbeat to: peer=r2 backoff time=10ms error=\"use of closed network connection\"" component=raft
level=DEBUG msg="failed to pipeline appendEntries: peer=\"{Voter r2 127.0.0.1:7444}\" error=\"use of closed network connection\"" component=raft
level=DEBUG msg="raft-net: failed to flush response: error=\"use of closed network connection\"" component=raft
level=ERROR msg="raft-net: failed to decode incoming command: error=\"unknown rpc type 9\"" component=raft
level=ERROR msg="raft-net: failed to decode incoming command: error=EOF2" component=raft
level=WARN msg="raft-net: a replica that connected refused this replica's certificate in the TLS handshake: it has ended, or that replica's bundle no longer holds its CA: error=\"remote error: tls: bad certificate\"" component=raft repeated=1 next_in=1m0s
`
	if buf.String() != want {
		t.Errorf("logged:\n%s\nwant:\n%s", buf.String(), want)
	}
}

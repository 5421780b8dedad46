package federation_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/knooppunt/knooppunt/federation/fedtest"
	"github.com/knooppunt/knooppunt/federation/identity"
	"github.com/knooppunt/knooppunt/federation/identity/identitytest"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestARenewedSVIDMovesToANewConnection: once a node's SVID is renewed, its subscription to a
// peer (once caught up) and its searches go on a new connection. The peer closes a connection
// after the SVID it was made with ends, after the next call on it; a search under way on it at
// that moment came back partial ("error reading from server: EOF", in TestSPIRE), and the
// subscription ended with a warning, as an outage. The move is neither.
func TestARenewedSVIDMovesToANewConnection(t *testing.T) {
	log := identitytest.NewLog()
	f := fedtest.Start(t, fedtest.Options{Orgs: 2, Logger: log.Logger, Heartbeat: 200 * time.Millisecond})
	a, b := f.Orgs[0], f.Orgs[1]
	const crisis = "vernieuwd"
	want := map[string]int64{}
	held := func(id string) {
		t.Helper()
		want[id] = 1
		waitHeld(t, b, crisis, a.TD.Name(), want, "b holds "+id)
	}
	issue := func(opts identity.SVIDOptions) {
		t.Helper()
		if err := b.CA.IssueFiles(spiffeid.RequireFromPath(b.TD, "/node/r1"), filepath.Join(b.Dir, "certs", "r1"), opts); err != nil {
			t.Fatal(err)
		}
	}
	a.Approve(t, policyDoc("sitreps-to-b", spiffeOf(b), "sitrep", "internal", ""))
	a.Put(t, fedtest.Sitrep("r1", crisis, pb.Classification_INTERNAL, "voor"))
	held("r1")

	// b starts again with an SVID that ends in a few seconds: every connection it makes is of it.
	b.Stop(t)
	ends := time.Now().Add(6 * time.Second)
	issue(identity.SVIDOptions{NotBefore: time.Now().Add(-time.Second), TTL: time.Until(ends) + time.Second})
	b.Start(t)
	a.Put(t, fedtest.Sitrep("r2", crisis, pb.Classification_INTERNAL, "tijdens"))
	held("r2")

	// Renewed, as the SPIRE agent does halfway through an SVID's life; the files are read within
	// a second.
	from := len(log.Entries())
	issue(identity.SVIDOptions{})
	searches := 0
	for time.Now().Before(ends.Add(1500 * time.Millisecond)) {
		st := b.PeerState(t, &pb.SearchRequest{Filter: &pb.Filter{Crisis: crisis}, TimeoutMs: 3000}, a.Name)
		if st.State != "answered" {
			t.Fatalf("search %d, %s after the renewal: a is %s (%s), want answered", searches+1, time.Since(ends.Add(-6*time.Second)).Round(time.Millisecond), st.State, st.Error)
		}
		searches++
		time.Sleep(50 * time.Millisecond)
	}
	a.Put(t, fedtest.Sitrep("r3", crisis, pb.Classification_INTERNAL, "na"))
	held("r3")

	since := log.Entries()[from:]
	count := func(msg string) int {
		n := 0
		for _, e := range since {
			if e.Str("org") == b.Name && e.Str("peer") == a.Name && e.Str("msg") == msg {
				n++
			}
		}
		return n
	}
	if n := count("subscription ended: reconnecting"); n != 0 {
		t.Errorf("b's subscription to a ended %d times as an outage after b's SVID was renewed, want none", n)
	}
	if n := count("this node's SVID was renewed: subscribing again on a new connection"); n != 1 {
		t.Errorf("b's subscription to a moved %d times, want once", n)
	}
	t.Logf("%d searches from b across the end of its old SVID, all answered", searches)
}

package federation_test

import (
	"testing"
	"time"

	"github.com/knooppunt/knooppunt/federation/fedtest"
	"github.com/knooppunt/knooppunt/federation/search"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestAHungPeerIsNotCurrent: a peer that hangs (behind a frozen hop, which holds every byte)
// does not answer the picture's check in time, while this node's subscription to it is still
// open (until the idle timeout). The picture is partial, serves the peer's copy, and says of it
// that its feed is open and how long since it last heard from the peer: not current, as it said
// before with an age of 0.
func TestAHungPeerIsNotCurrent(t *testing.T) {
	var hop *wanHop
	opts := fedtest.Options{Orgs: 2, IdleTimeout: 5 * time.Second}
	opts.Via = func(from, to *fedtest.Org) string {
		if from.Name != "b" || to.Name != "a" {
			return ""
		}
		if hop == nil {
			hop = newWANHop(t, to.Addr, 0, 0)
		}
		return hop.lis.Addr().String()
	}
	f := fedtest.Start(t, opts)
	a, b := f.Org("a"), f.Org("b")
	const crisis = "vastgelopen"
	// The picture as a client gets it: the node asks its peers whether they answer now.
	picture := func() *pb.PictureResponse {
		t.Helper()
		p, err := pb.NewSearchServiceClient(b.Local(t)).Picture(fedtest.Call(t), &pb.PictureRequest{Crisis: crisis})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	a.Approve(t, policyDoc("sitreps-to-b", spiffeOf(b), "sitrep", "internal", ""))
	a.Put(t, fedtest.Sitrep("s1", crisis, pb.Classification_INTERNAL, "v1"))
	waitHeld(t, b, crisis, a.TD.Name(), map[string]int64{"s1": 1}, "b holds s1")
	// While a answers, the picture is complete and says so of a.
	pic := picture()
	if len(pic.Peers) != 1 || pic.Partial || !pic.PeersAsked || pic.Peers[0].State != search.Answered || pic.Peers[0].Count != 1 || pic.Peers[0].TrustDomain != a.TD.Name() {
		t.Fatalf("the picture with a up: partial %v, peers %v; want a answered, with its 1 entry", pic.Partial, pic.Peers)
	}

	hop.freeze()
	frozen := time.Now()
	pic = picture()
	asked := time.Since(frozen)
	if len(pic.Peers) != 1 {
		t.Fatalf("the picture with a frozen names peers %v, want a", pic.Peers)
	}
	p := pic.Peers[0]
	age := time.Duration(p.CacheAgeMs) * time.Millisecond
	// b last heard from a before the freeze (a heartbeat every 250 ms), and the check waited its
	// whole 2 s for a.
	if !pic.Partial || p.State != search.TimedOut || !p.FeedOpen || p.Count != 1 || age < search.ProbeTimeoutMs*time.Millisecond || age > asked+750*time.Millisecond {
		t.Errorf("the picture with a frozen for %s: partial %v, a %v; want partial, a timed out with its feed open, its 1 entry, last heard %s to %s ago",
			asked, pic.Partial, p, time.Duration(search.ProbeTimeoutMs)*time.Millisecond, asked+750*time.Millisecond)
	}
	if len(pic.Entries) != 1 || pic.Entries[0].Source != a.TD.Name() {
		t.Errorf("the picture with a frozen: %v, want a's copy of s1", pic.Entries)
	}
	// Asked to leave the peers alone, it says nothing of them, and waits for none.
	start := time.Now()
	if p := b.Picture(t, crisis); p.Partial || p.PeersAsked || len(p.Peers) != 0 || len(p.Entries) != 1 || time.Since(start) > time.Second {
		t.Errorf("skip_peer_check: partial %v, peers asked %v, peers %v, %d entries, took %s; want a's copy, no peers asked, at once", p.Partial, p.PeersAsked, p.Peers, len(p.Entries), time.Since(start))
	}
	// Once the idle timeout ends the feed, the copy is as old as what b last heard from a,
	// before the freeze: it was said to be as old as the feed's end, seconds younger (review I, F9).
	fedtest.Eventually(t, 15*time.Second, "the idle timeout ends b's feed from a", func() (bool, string) {
		p := picture().Peers[0]
		return !p.FeedOpen, p.String()
	})
	p = picture().Peers[0]
	if age := time.Duration(p.CacheAgeMs) * time.Millisecond; age < time.Since(frozen)-750*time.Millisecond {
		t.Errorf("a's copy after its feed ended, %s after the freeze: %s old, want at least %s", time.Since(frozen), age, time.Since(frozen)-750*time.Millisecond)
	}
}

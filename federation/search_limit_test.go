package federation_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/knooppunt/knooppunt/federation/fedtest"
	"github.com/knooppunt/knooppunt/federation/search"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestSearchLimitPerCaller: one caller's burst of searches that ask the partners, over its
// limit (and over the second its searches may wait for their turn), is refused with
// RESOURCE_EXHAUSTED naming the limit, and so are its pictures' peer checks, while another person
// of the org and the local socket are still answered by the partner: one reader's loop no longer
// spends the org's allowance at every partner (review E, E4).
func TestSearchLimitPerCaller(t *testing.T) {
	users := []string{"lus", "anna", "ops"}
	f := fedtest.Start(t, fedtest.Options{Orgs: 2, Roles: func(name string) []string {
		var out []string
		for _, u := range users {
			out = append(out, fmt.Sprintf("{id: spiffe://%s/user/%s, role: reader}", fedtest.TrustDomainOf(name), u))
		}
		return out
	}})
	a, b := f.Orgs[0], f.Orgs[1]
	b.Approve(t, policyDoc("sitreps-to-a", spiffeOf(a), "sitrep", "internal", ""))
	b.Put(t, fedtest.Sitrep("s1", "limiet", pb.Classification_INTERNAL, "Situatie"))
	req := &pb.SearchRequest{Filter: &pb.Filter{Crisis: "limiet"}, TimeoutMs: 5000}
	// a's connection to b is made: what follows is the limit, not a peer on its way up.
	fedtest.Eventually(t, 10*time.Second, "a's search answered by b", func() (bool, string) {
		resp, _ := a.Search(t, req)
		return !resp.Partial && len(resp.Hits) == 1, fmt.Sprint(resp.Peers)
	})
	as := func(user string) pb.SearchServiceClient {
		return pb.NewSearchServiceClient(a.As(t, a.Issue(t, "/user/"+user)))
	}

	// Three times the burst at once: the burst is answered, and a second's worth after it; the
	// rest are refused, each saying why.
	lus := as("lus")
	n := 3 * search.DefaultCallerBurst
	var mu sync.Mutex
	var answered int
	var refused []string
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := lus.Search(fedtest.Call(t), req)
			mu.Lock()
			defer mu.Unlock()
			switch st := status.Convert(err); st.Code() {
			case codes.OK:
				answered++
			case codes.ResourceExhausted:
				refused = append(refused, st.Message())
			default:
				t.Errorf("lus's search: %v", err)
			}
		}()
	}
	wg.Wait()
	if len(refused) == 0 || answered < search.DefaultCallerBurst {
		t.Fatalf("%d searches at once by one caller: %d answered, %d refused; want the burst of %d answered and the rest refused",
			n, answered, len(refused), search.DefaultCallerBurst)
	}
	want := fmt.Sprintf("spiffe://%s/user/lus is over its limit of %g searches a second that ask the partners (%d at once): slow down, and retry in ",
		a.TD.Name(), float64(search.DefaultCallerRate), search.DefaultCallerBurst)
	for _, msg := range refused {
		if !strings.HasPrefix(msg, want) {
			t.Errorf("lus refused: %q, want %q…", msg, want)
		}
	}

	// Others of the org, right after: answered by b, not partial.
	for who, c := range map[string]pb.SearchServiceClient{"anna": as("anna"), "the local socket": pb.NewSearchServiceClient(a.Local(t))} {
		resp, err := c.Search(fedtest.Call(t), req)
		if err != nil || resp.Partial || len(resp.Hits) != 1 {
			t.Errorf("%s while lus is over its limit: %v, %v, want b's record and no partial answer", who, resp.GetPeers(), err)
		}
	}

	// A picture asks the partners unless skip_peer_check: limited as a search, and the refusal
	// says how to read it without asking them.
	ops := as("ops")
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := ops.Picture(fedtest.Call(t), &pb.PictureRequest{Crisis: "limiet"})
			errs <- err
		}()
	}
	var err error
	for range n {
		if e := <-errs; e != nil {
			err = e
		}
	}
	if st := status.Convert(err); st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), "searches a second that ask the partners") ||
		!strings.Contains(st.Message(), "skip_peer_check") {
		t.Fatalf("%d pictures at once by one caller: last error %v, want RESOURCE_EXHAUSTED naming the limit and skip_peer_check", n, err)
	}
	if p, err := ops.Picture(fedtest.Call(t), &pb.PictureRequest{Crisis: "limiet", SkipPeerCheck: true}); err != nil || len(p.Entries) != 1 {
		t.Errorf("ops's picture with skip_peer_check, over its limit: %v, want it, since it asks no partner", err)
	}
}

// TestSearchNamesAThrottlingPeerBusy: a peer that refuses this org's calls as over its limits is
// said to be busy, with its own words, rather than left to read as a network fault.
func TestSearchNamesAThrottlingPeerBusy(t *testing.T) {
	// A call in a thousand seconds: the subscriptions and the first search take what there is.
	f := fedtest.Start(t, fedtest.Options{Orgs: 2, PeerRequestsPerSecond: 0.001})
	a, b := f.Orgs[0], f.Orgs[1]
	req := &pb.SearchRequest{Filter: &pb.Filter{Crisis: "druk"}, TimeoutMs: 5000}
	var st *pb.PeerStatus
	fedtest.Eventually(t, 10*time.Second, "a refuses b's search over its limit", func() (bool, string) {
		st = b.PeerState(t, req, a.Name)
		return strings.Contains(st.Error, "calls per second"), st.State + ": " + st.Error
	})
	if !search.Unanswered(st) || !st.Busy || !strings.HasPrefix(st.Error, search.Busy+" (its node says: peer "+b.TD.Name()+" is over 0.001 calls per second") {
		t.Errorf("a, over its limit for b: %s (busy %v), %q; want unanswered, busy, said to be busy with a's words", st.State, st.Busy, st.Error)
	}
}

package federation_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/knooppunt/knooppunt/federation/fedtest"
	"github.com/knooppunt/knooppunt/federation/search"
	"github.com/knooppunt/knooppunt/node/db"
	"github.com/knooppunt/knooppunt/node/metrics"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestRemovedByPartner: a accepted b through Raft, shared a record with it, and removed it at
// once (peer remove --now), so that no retraction reached b's copy. b's searches are refused
// now: they serve a's last copy, marked as not answered, with the likely cause; the picture's
// PARTIAL names a (review onboard F2). a audits b's refused calls once per method at first, not
// once per retry (F3).
func TestRemovedByPartner(t *testing.T) {
	a0, b0 := fedtest.OrgName(0), fedtest.OrgName(1)
	f := fedtest.Start(t, fedtest.Options{Orgs: 2, PeersOf: func(name string) []string {
		if name == b0 {
			return []string{a0}
		}
		return nil // a has b only as an accepted peer, which it can remove at once
	}})
	a, b := f.Org(a0), f.Org(b0)
	b.AcceptedBy(t, a)
	peers := pb.NewPeerServiceClient(a.Local(t))
	a.Approve(t, policyDoc("sitreps-to-b", spiffeOf(b), "sitrep", "internal", ""))
	a.Put(t, fedtest.Sitrep("landelijk", "removed", pb.Classification_PUBLIC, "Landelijk beeld"))
	waitHeld(t, b, "removed", a.TD.Name(), map[string]int64{"landelijk": 1}, "b receives a's sitrep")

	// a's series of b, in this process's registry: b names a otherwise, and labels its own by a.
	series := func() []string {
		t.Helper()
		fams, err := metrics.Registry.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, f := range fams {
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					if v := l.GetValue(); (l.GetName() == "peer" || l.GetName() == "trust_domain") && (v == b.Name || v == b.TD.Name()) {
						out = append(out, f.GetName()+"{"+l.GetName()+"="+v+"}")
					}
				}
			}
		}
		return out
	}
	fedtest.Eventually(t, 10*time.Second, "a's subscription to b counts", func() (bool, string) {
		have := series()
		return slices.Contains(have, "knooppunt_federation_subscription_up{peer="+b.Name+"}"), fmt.Sprint(have)
	})
	if _, err := peers.Remove(fedtest.Call(t), &pb.RemovePeerRequest{Name: b.Name, Reason: "test", Now: true}); err != nil {
		t.Fatalf("a removes b at once: %v", err)
	}
	// Its series go with it (review AI, AI1): a removed partner's frozen gauges fired alerts
	// until the next restart.
	fedtest.Eventually(t, 10*time.Second, "a's series of b gone", func() (bool, string) {
		have := series()
		return len(have) == 0, fmt.Sprint(have)
	})
	req := &pb.SearchRequest{Filter: &pb.Filter{Crisis: "removed", Ids: []string{"landelijk"}}}
	var resp *pb.SearchResponse
	fedtest.Eventually(t, 10*time.Second, "a refuses b's search", func() (bool, string) {
		resp, _ = b.Search(t, req)
		return len(resp.Peers) == 1 && resp.Peers[0].State == search.Denied, fmt.Sprint(resp.Peers)
	})
	st := resp.Peers[0]
	if !search.Unanswered(st) || !resp.Partial || !strings.Contains(st.Error, "this partner removed you, or has not accepted your answer yet") ||
		!strings.Contains(st.Error, "not a configured peer of this node") {
		t.Errorf("b's search of a after the removal: partial %v, %+v; want a unanswered, partial, and the likely cause beside a's words", resp.Partial, st)
	}
	if len(resp.Hits) != 1 || resp.Hits[0].Record.Id != "landelijk" || resp.Hits[0].Source != a.Name || st.Count != 1 {
		t.Errorf("b's search of a after the removal found %v (count %d), want a's last copy of landelijk", resp.Hits, st.Count)
	}
	if got := b.Held(t, "removed", a.TD.Name()); got["landelijk"] != 1 {
		t.Errorf("b's picture holds %s of a, want its last copy", fedtest.Describe(got))
	}
	if search.Behind(resp.Peers) == nil {
		t.Errorf("Behind(%v) is empty: a's copy is not current", resp.Peers)
	}

	// More searches, and b's subscription retrying: a audits each caller and method once now,
	// the rest when the minute ends, with their count.
	for range 4 {
		b.Search(t, req)
	}
	count := func() map[string]int {
		n := map[string]int{}
		for _, e := range a.Audit(t, db.AuditFederationDenied) {
			var d struct{ Count int }
			if err := json.Unmarshal([]byte(e.Detail), &d); err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(e.Actor, spiffeOf(b)+"/") {
				n[e.Subject]++
				if d.Count != 1 {
					t.Errorf("an entry audited at once counts %d refusals, want 1: %v", d.Count, e)
				}
			}
		}
		return n
	}
	const query = "/knooppunt.v1.FederationService/Query"
	fedtest.Eventually(t, 5*time.Second, "a audits b's refused query", func() (bool, string) {
		n := count()
		return n[query] >= 1, fmt.Sprint(n)
	})
	for subject, n := range count() {
		if n != 1 {
			t.Errorf("a audited %d refused calls of b to %s within a minute, want 1", n, subject)
		}
	}
}

package federation_test

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/knooppunt/knooppunt/federation/fedtest"
	"github.com/knooppunt/knooppunt/federation/identity"
	"github.com/knooppunt/knooppunt/node/db"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestPurposeOnEveryDisclosure checks purpose binding across a federation of three: every
// disclosure the source audits, whether a subscription, a peer's Query or a search sent it,
// names the purpose the requester stated and the purpose of each policy that granted it; a
// policy with accept_purposes gives nothing to a request that states another purpose, and the
// source audits that refusal; and `audit list --purpose` finds the entries of a purpose.
func TestPurposeOnEveryDisclosure(t *testing.T) {
	const (
		crisis    = "doelbinding"
		opvang    = "opvang"    // what every node states on its subscriptions
		onderzoek = "onderzoek" // what c states on one search
		evaluatie = "evaluatie" // the purpose of a's policy for c
	)
	f := fedtest.Start(t, fedtest.Options{Orgs: 3, Purpose: func(string) string { return opvang }})
	a, b, c := f.Orgs[0], f.Orgs[1], f.Orgs[2]
	toB := a.Approve(t, policyDoc("sitreps-to-b", spiffeOf(b), "sitrep", "internal", "accept_purposes: [opvang]\n"))
	toC := a.Approve(t, fmt.Sprintf("name: sitreps-to-c\npurpose: %s\nrecipients: [%s]\nkinds: [sitrep]\nmax_classification: internal\naccept_purposes: [%s]\n",
		evaluatie, spiffeOf(c), onderzoek))
	a.Put(t, fedtest.Sitrep("p1", crisis, pb.Classification_INTERNAL, "purpose"))

	// Subscribe: b states opvang, which sitreps-to-b accepts.
	waitHeld(t, b, crisis, a.TD.Name(), map[string]int64{"p1": 1}, "b's subscription brings p1")
	// c's subscription states opvang too, which sitreps-to-c refuses: c gets nothing, and a
	// audits the refusal.
	refusal := func(actor, stated, via, pol string) {
		t.Helper()
		fedtest.Eventually(t, 10*time.Second, "a audits the refusal of "+stated+" via "+via, func() (bool, string) {
			entries := a.Audit(t, db.AuditPurposeRefused)
			for _, e := range entries {
				d := auditDetail(t, e)
				pols, _ := d["policies"].(map[string]any)
				if e.Actor == actor && d["stated_purpose"] == stated && d["via"] == via && pols[pol] != nil && pols[pol].(float64) >= 1 {
					return true, ""
				}
			}
			return false, fmt.Sprintf("%d federation.refuse entries: %v", len(entries), entries)
		})
	}
	refusal(c.Replica.ID.String(), opvang, "Subscribe", toC)
	if got := c.Held(t, crisis, a.TD.Name()); len(got) != 0 {
		t.Fatalf("c holds %s of a: sitreps-to-c accepts only %s", fedtest.Describe(got), onderzoek)
	}

	// Search: c states onderzoek, which sitreps-to-c accepts.
	resp, _ := c.Search(t, &pb.SearchRequest{Filter: &pb.Filter{Crisis: crisis}, Purpose: onderzoek})
	hits := 0
	for _, h := range resp.Hits {
		if h.Record.Origin == a.TD.Name() && h.Record.Id == "p1" && !h.FromCache {
			hits++
		}
	}
	if hits != 1 {
		t.Fatalf("c's search for %s found p1 of a %d times, want once: %v", onderzoek, hits, resp)
	}
	// c's node showed the answer and kept nothing of it: a's table of what c's cache holds must
	// not count p1, or c's subscription, once a policy grants it p1 for opvang, would pass over
	// a record c never got.
	if held, err := a.Node.DB().Disclosed(fedtest.Call(t), "spiffe://"+c.TD.Name()+"/node/*"); err != nil || len(held) != 0 {
		t.Fatalf("a counts %v (%v) as held by c's node after c's search; want nothing: only a subscription fills a cache", held, err)
	}

	// Query: a person of b, a holder of its own, states opvang.
	analyst := b.Issue(t, "/user/analyst")
	records := func(conn *grpc.ClientConn, purpose string) int {
		t.Helper()
		q, err := pb.NewFederationServiceClient(conn).Query(fedtest.Call(t), &pb.QueryRequest{Filter: &pb.Filter{Crisis: crisis}, Purpose: purpose})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for {
			_, err := q.Recv()
			if errors.Is(err, io.EOF) {
				return n
			}
			if err != nil {
				t.Fatalf("query stating %q: %v", purpose, err)
			}
			n++
		}
	}
	conn, err := grpc.NewClient(a.Addr, grpc.WithTransportCredentials(identity.ClientCredentials(analyst, a.Bundle(), identity.AuthorizeReplica(a.TD))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if n := records(conn, opvang); n != 1 {
		t.Fatalf("b's analyst received %d records stating %s, want p1", n, opvang)
	}
	// A Query that states another purpose gets nothing under sitreps-to-b, and is audited.
	if n := records(asPeer(t, b, a), "anders"); n != 0 {
		t.Fatalf("b received %d records stating another purpose, want none: sitreps-to-b accepts only %s", n, opvang)
	}
	refusal(b.Replica.ID.String(), "anders", "Query", toB)
	// A purpose over the limit is refused, naming the field.
	q, err := pb.NewFederationServiceClient(asPeer(t, b, a)).Query(fedtest.Call(t), &pb.QueryRequest{Purpose: string(make([]byte, 300))})
	if err == nil {
		_, err = q.Recv()
	}
	if status.Code(err) != codes.InvalidArgument || !containsAll(status.Convert(err).Message(), "purpose", "256") {
		t.Fatalf("a query with a purpose of 300 bytes: %v, want INVALID_ARGUMENT naming purpose and the limit", err)
	}

	// Every disclosure entry names both purposes: the one stated, and each granting policy's.
	type want struct {
		stated   string
		purposes map[string]any
	}
	wants := map[string]want{ // by actor and via
		b.Replica.ID.String() + " Subscribe": {opvang, map[string]any{toB: "fedtest"}},
		analyst.ID.String() + " Query":       {opvang, map[string]any{toB: "fedtest"}},
		c.Replica.ID.String() + " Query":     {onderzoek, map[string]any{toC: evaluatie}},
	}
	seen := map[string]int{}
	fedtest.Eventually(t, 10*time.Second, "a audits a disclosure to each requester", func() (bool, string) {
		clear(seen)
		for _, e := range a.Audit(t, db.AuditDisclosure) {
			d := auditDetail(t, e)
			key := fmt.Sprintf("%s %v", e.Actor, d["via"])
			w, ok := wants[key]
			if !ok {
				t.Fatalf("a audited a disclosure of %s to %s: no such request was granted", e.Subject, key)
			}
			got, _ := d["purposes"].(map[string]any)
			if d["stated_purpose"] != w.stated || !maps.Equal(got, w.purposes) {
				t.Fatalf("disclosure of %s to %s: stated_purpose %v, purposes %v; want %q and %v (detail %s)",
					e.Subject, key, d["stated_purpose"], d["purposes"], w.stated, w.purposes, e.Detail)
			}
			seen[key]++
		}
		return len(seen) == len(wants), fmt.Sprintf("disclosures to %v, want one to each of %d requesters", seen, len(wants))
	})

	// audit list --purpose: the stated purpose and a granting policy's purpose both select.
	for _, p := range []string{onderzoek, evaluatie} {
		resp, err := pb.NewAuditServiceClient(a.Local(t)).List(fedtest.Call(t), &pb.ListAuditRequest{Action: db.AuditDisclosure, Purpose: p})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Entries) != 1 || resp.Entries[0].Actor != c.Replica.ID.String() {
			t.Fatalf("audit list --purpose %s: %v, want the one disclosure to c", p, resp.Entries)
		}
	}
	resp2, err := pb.NewAuditServiceClient(a.Local(t)).List(fedtest.Call(t), &pb.ListAuditRequest{Purpose: "anders"})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp2.Entries) == 0 {
		t.Fatal("audit list --purpose anders found nothing, want the refusal of b's query")
	}
	for _, e := range resp2.Entries {
		if e.Action != db.AuditPurposeRefused {
			t.Fatalf("audit list --purpose anders found %s %s: only the refusal states it", e.Action, e.Subject)
		}
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// TestPurposeRefusalGrantedOtherwise: a purpose-bound policy that refuses the stated purpose
// keeps nothing back when another policy grants the record all the same. The source's
// federation.refuse entry then counts the record under granted_otherwise, not as refused, so
// that an officer does not read a refusal where the record went out.
func TestPurposeRefusalGrantedOtherwise(t *testing.T) {
	const crisis = "doelbinding-elders"
	f := fedtest.Start(t, fedtest.Options{Orgs: 2, Purpose: func(string) string { return "opvang" }})
	a, b := f.Orgs[0], f.Orgs[1]
	bound := a.Approve(t, policyDoc("sitreps-onderzoek", spiffeOf(b), "sitrep", "internal", "accept_purposes: [onderzoek]\n"))
	a.Approve(t, policyDoc("sitreps-alles", spiffeOf(b), "sitrep", "internal", ""))
	a.Put(t, fedtest.Sitrep("p1", crisis, pb.Classification_INTERNAL, "elders"))
	waitHeld(t, b, crisis, a.TD.Name(), map[string]int64{"p1": 1}, "b receives p1 under sitreps-alles")
	fedtest.Eventually(t, 10*time.Second, "a audits p1 as granted otherwise, not refused", func() (bool, string) {
		entries := a.Audit(t, db.AuditPurposeRefused)
		for _, e := range entries {
			d := auditDetail(t, e)
			pols, _ := d["policies"].(map[string]any)
			other, _ := d["granted_otherwise"].(map[string]any)
			if pols[bound] != nil {
				t.Fatalf("a audits %s as refusing p1, which went out under another policy: %s", bound, e.Detail)
			}
			if other[bound] != nil && other[bound].(float64) >= 1 {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d federation.refuse entries: %v", len(entries), entries)
	})
}

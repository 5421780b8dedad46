package federation_test

import (
	"fmt"
	"io"
	"slices"
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

// TestAuditByRecipientAndCrisis checks review L, L4 across three nodes: a shares records of two
// crises with b and c, and `audit list --recipient --crisis` on a gives exactly what went to b
// (its replica's subscription and a person of b's query together, by b's name or trust domain)
// about one crisis, each entry naming the record's crisis, kind and classification as it went
// out; a retraction names the record as it is now; an unknown name is refused naming recipient,
// and a trust domain that is no peer is matched as given.
func TestAuditByRecipientAndCrisis(t *testing.T) {
	f := fedtest.Start(t, fedtest.Options{Orgs: 3})
	a, b, c := f.Orgs[0], f.Orgs[1], f.Orgs[2]
	a.Approve(t, policyDoc("sitreps-to-b", spiffeOf(b), "sitrep", "internal", ""))
	a.Approve(t, policyDoc("sitreps-to-c", spiffeOf(c), "sitrep", "internal", ""))
	a.Put(t, fedtest.Sitrep("h1", "hoogwater", pb.Classification_INTERNAL, "dijk"))
	a.Put(t, fedtest.Sitrep("h2", "hoogwater", pb.Classification_PUBLIC, "peil"))
	a.Put(t, fedtest.Sitrep("o1", "oekraine", pb.Classification_INTERNAL, "opvang"))
	for _, o := range []*fedtest.Org{b, c} {
		waitHeld(t, o, "hoogwater", a.TD.Name(), map[string]int64{"h1": 1, "h2": 1}, o.Name+" holds hoogwater of a")
		waitHeld(t, o, "oekraine", a.TD.Name(), map[string]int64{"o1": 1}, o.Name+" holds oekraine of a")
	}
	// A person of b queries a: another actor, the same recipient.
	analyst := b.Issue(t, "/user/analyst")
	conn, err := grpc.NewClient(a.Addr, grpc.WithTransportCredentials(identity.ClientCredentials(analyst, a.Bundle(), identity.AuthorizeReplica(a.TD))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	q, err := pb.NewFederationServiceClient(conn).Query(fedtest.Call(t), &pb.QueryRequest{Filter: &pb.Filter{Crisis: "hoogwater"}, Purpose: "opvang"})
	if err != nil {
		t.Fatal(err)
	}
	for n := 0; ; n++ {
		if _, err := q.Recv(); err == io.EOF {
			if n != 2 {
				t.Fatalf("b's analyst got %d records of hoogwater, want h1 and h2", n)
			}
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}

	list := func(req *pb.ListAuditRequest) ([]*pb.AuditEntry, error) {
		var out []*pb.AuditEntry
		for {
			req.Limit = 2 // pages over the matching entries only
			resp, err := pb.NewAuditServiceClient(a.Local(t)).List(fedtest.Call(t), req)
			if err != nil || len(resp.Entries) == 0 {
				return out, err
			}
			out = append(out, resp.Entries...)
			req.AfterSeq = resp.Entries[len(resp.Entries)-1].Seq
		}
	}
	describe := func(es []*pb.AuditEntry) string {
		var s []string
		for _, e := range es {
			d := auditDetail(t, e)
			s = append(s, fmt.Sprintf("%s %s by %s to %v: %v %v %v", e.Action, e.Subject, e.Actor, d["recipient"], d["crisis"], d["kind"], d["classification"]))
		}
		slices.Sort(s)
		return strings.Join(s, "\n")
	}
	class := map[string]string{"h1": "internal", "h2": "public", "o1": "internal"}
	want := func(action, to string, actors []string, crisis string, ids ...string) []*pb.AuditEntry {
		var es []*pb.AuditEntry
		for _, actor := range actors {
			for _, id := range ids {
				d := fmt.Sprintf(`{"recipient":%q,"crisis":%q,"kind":"sitrep","classification":%q}`, to, crisis, class[id])
				es = append(es, &pb.AuditEntry{Action: action, Subject: id, Actor: actor, Detail: d})
			}
		}
		return es
	}
	bReplica, cReplica := b.Replica.ID.String(), c.Replica.ID.String()
	check := func(what string, req *pb.ListAuditRequest, wantEntries []*pb.AuditEntry) {
		t.Helper()
		wantText := describe(wantEntries)
		fedtest.Eventually(t, 10*time.Second, what, func() (bool, string) {
			es, err := list(req)
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			got := describe(es)
			req.AfterSeq = 0
			return got == wantText, "got\n" + got + "\nwant\n" + wantText
		})
	}
	hoogwaterToB := want(db.AuditDisclosure, b.TD.Name(), []string{bReplica, analyst.ID.String()}, "hoogwater", "h1", "h2")
	check("b's name and hoogwater", &pb.ListAuditRequest{Action: db.AuditDisclosure, Recipient: b.Name, Crisis: "hoogwater"}, hoogwaterToB)
	check("b's trust domain and hoogwater", &pb.ListAuditRequest{Action: db.AuditDisclosure, Recipient: b.TD.Name(), Crisis: "hoogwater"}, hoogwaterToB)
	check("c's name and oekraine", &pb.ListAuditRequest{Recipient: c.Name, Crisis: "oekraine"}, want(db.AuditDisclosure, c.TD.Name(), []string{cReplica}, "oekraine", "o1"))
	check("oekraine", &pb.ListAuditRequest{Action: db.AuditDisclosure, Crisis: "oekraine"},
		append(want(db.AuditDisclosure, b.TD.Name(), []string{bReplica}, "oekraine", "o1"), want(db.AuditDisclosure, c.TD.Name(), []string{cReplica}, "oekraine", "o1")...))

	// h1 raised above the policies' ceiling: retracted from b and c, named as it is now.
	a.Put(t, fedtest.Sitrep("h1", "hoogwater", pb.Classification_CONFIDENTIAL, "dijk"))
	class["h1"] = "confidential"
	check("the retraction of h1 from b", &pb.ListAuditRequest{Action: db.AuditRetraction, Recipient: b.Name, Crisis: "hoogwater"},
		want(db.AuditRetraction, b.TD.Name(), []string{bReplica}, "hoogwater", "h1"))

	if _, err := list(&pb.ListAuditRequest{Recipient: "nope"}); status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "recipient") {
		t.Fatalf("audit list of recipient nope: %v, want INVALID_ARGUMENT naming recipient", err)
	}
	if es, err := list(&pb.ListAuditRequest{Recipient: "gone.crisis.test"}); err != nil || len(es) != 0 {
		t.Fatalf("audit list of a trust domain that is no peer: %v, %v; want no entry and no error", es, err)
	}
}

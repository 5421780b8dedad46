package node_test

import (
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/knooppunt/knooppunt/node/db"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestSearchAuditSeenAtOnce: a search answers before its audit entry is committed, yet a read of
// the audit log right after it shows the entry, every time.
func TestSearchAuditSeenAtOnce(t *testing.T) {
	n, _ := start(t, dataDir(t))
	conn := dial(t, n)
	search, audit := pb.NewSearchServiceClient(conn), pb.NewAuditServiceClient(conn)
	for i := range 20 {
		if _, err := search.Search(callCtx(t), &pb.SearchRequest{Filter: &pb.Filter{Crisis: "oekraine"}}); err != nil {
			t.Fatal(err)
		}
		list, err := audit.List(callCtx(t), &pb.ListAuditRequest{Action: db.AuditSearch, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		if len(list.Entries) != i+1 {
			t.Fatalf("after search %d the audit log shows %d searches", i+1, len(list.Entries))
		}
	}
	v, err := audit.Verify(callCtx(t), &pb.VerifyAuditRequest{})
	if err != nil || !v.Ok {
		t.Fatalf("Verify: %v %v", v, err)
	}
}

// TestAuditListChecksTheAction: a misspelt action is refused, naming the actions there are,
// instead of an empty list that reads as "nothing happened"; a whole action and a prefix that
// ends in a dot are taken.
func TestAuditListChecksTheAction(t *testing.T) {
	n, _ := start(t, dataDir(t))
	audit := pb.NewAuditServiceClient(dial(t, n))
	if _, err := pb.NewSearchServiceClient(dial(t, n)).Search(callCtx(t), &pb.SearchRequest{Filter: &pb.Filter{Crisis: "oekraine"}}); err != nil {
		t.Fatal(err)
	}
	for _, action := range []string{"searh", "polic", "policy.aprove", "policy"} {
		_, err := audit.List(callCtx(t), &pb.ListAuditRequest{Action: action})
		if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.HasPrefix(st.Message(), fmt.Sprintf("action: %q is no audit action: use one of policy.propose,", action)) {
			t.Errorf("action %q: %v, want INVALID_ARGUMENT naming the actions", action, err)
		}
	}
	// The last entries that match, in order: what happened lately.
	for range 2 {
		if _, err := pb.NewSearchServiceClient(dial(t, n)).Search(callCtx(t), &pb.SearchRequest{Filter: &pb.Filter{Crisis: "oekraine"}}); err != nil {
			t.Fatal(err)
		}
	}
	all, err := audit.List(callCtx(t), &pb.ListAuditRequest{Action: db.AuditSearch})
	if err != nil || len(all.Entries) != 3 {
		t.Fatalf("searches: %v %v", all, err)
	}
	last, err := audit.List(callCtx(t), &pb.ListAuditRequest{Action: db.AuditSearch, Newest: true, Limit: 2})
	if err != nil || len(last.Entries) != 2 || last.Entries[0].Seq != all.Entries[1].Seq || last.Entries[1].Seq != all.Entries[2].Seq {
		t.Errorf("the last two searches: %v %v, want seq %d and %d", last, err, all.Entries[1].Seq, all.Entries[2].Seq)
	}
	for action, want := range map[string]int{db.AuditSearch: 3, "federation.": 0, "peer.": 0, db.AuditFork: 0} {
		if list, err := audit.List(callCtx(t), &pb.ListAuditRequest{Action: action}); err != nil || len(list.Entries) != want {
			t.Errorf("action %q: %d entries, %v; want %d", action, len(list.GetEntries()), err, want)
		}
	}
}

package node_test

import (
	"testing"

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

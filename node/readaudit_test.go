package node_test

import (
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/knooppunt/knooppunt/node/db"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestReadsOfConfidentialRecordsAreAudited (review AD, AD2): reading an own record classified
// confidential or higher through the records' own calls (Get, List, Versions, Watch) is kept in
// the audit log, with who read it and how, as a search of it is; a read of internal records is
// not. Reads of such records left no trace while searches did.
func TestReadsOfConfidentialRecordsAreAudited(t *testing.T) {
	own := newMTLSOrg(t, mtlsOwnTD)
	n := startMTLSNode(t, own, own.filesIdentity())
	rc := pb.NewRecordServiceClient(n.local(t))
	secret, plain := mtlsRecord("geheim-1"), mtlsRecord("gewoon-1")
	secret.Classification = pb.Classification_SECRET
	for _, r := range []*pb.Record{secret, plain} {
		if _, err := rc.Put(mtlsCtx(t), &pb.PutRequest{Record: r}); err != nil {
			t.Fatal(err)
		}
	}
	reads := func() []*pb.AuditEntry {
		t.Helper()
		resp, err := pb.NewAuditServiceClient(n.local(t)).List(mtlsCtx(t), &pb.ListAuditRequest{Action: db.AuditRecordRead})
		if err != nil {
			t.Fatal(err)
		}
		return resp.Entries
	}
	// The audit log's reads wait for the entries of the reads answered before them (as for
	// searches): the entry is there at once, with no waiting here.
	want := func(via string, want int) {
		t.Helper()
		got := 0
		for _, e := range reads() {
			var d struct {
				Via            string
				Records        int
				Classification string
				IDs            []string
			}
			if json.Unmarshal([]byte(e.Detail), &d) == nil && d.Via == via && d.Records == 1 && d.Classification == "secret" &&
				len(d.IDs) == 1 && d.IDs[0] == "geheim-1" && e.Actor == "local socket" {
				got++
			}
		}
		if got != want {
			t.Fatalf("%d record.read entries of %s, want %d: %v", got, via, want, reads())
		}
	}
	if _, err := rc.Get(mtlsCtx(t), &pb.GetRequest{Id: "gewoon-1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := rc.Get(mtlsCtx(t), &pb.GetRequest{Id: "geheim-1"}); err != nil {
		t.Fatal(err)
	}
	want("Get", 1)
	if _, err := rc.List(mtlsCtx(t), &pb.ListRequest{}); err != nil {
		t.Fatal(err)
	}
	want("List", 1)
	w, err := rc.Watch(mtlsCtx(t), &pb.WatchRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for seen := 0; seen < 2; seen++ {
		if _, err := w.Recv(); err == io.EOF || err != nil {
			t.Fatalf("watch: %v", err)
		}
	}
	want("Watch", 1)
	// Declassified since, its versions are read as the most confidential of them (review AG,
	// AG5).
	lowered := mtlsRecord("geheim-1")
	lowered.Version = 1
	if _, err := rc.Put(mtlsCtx(t), &pb.PutRequest{Record: lowered}); err != nil {
		t.Fatal(err)
	}
	if _, err := rc.Versions(mtlsCtx(t), &pb.VersionsRequest{Id: "geheim-1"}); err != nil {
		t.Fatal(err)
	}
	want("Versions", 1)
	for _, e := range reads() {
		if strings.Contains(e.Detail, "gewoon-1") {
			t.Errorf("a read of an internal record is audited: %v", e)
		}
	}
}

package db_test

import (
	"context"
	"encoding/json"
	"maps"
	"testing"

	"github.com/knooppunt/knooppunt/node/db"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestApplyDisclosures checks what a disclosure command leaves behind: the disclosures table
// says who holds which version, each record sent and each retraction has its own audit entry
// with the record as subject, the detail is byte for byte what json.Marshal makes of the same
// map (entries written before and after the detail was built by hand read alike), the chain
// verifies, and a replayed entry changes nothing.
func TestApplyDisclosures(t *testing.T) {
	d := newDB(t)
	ctx := context.Background()
	const to, toID = "ncc.crisis.test", "spiffe://ncc.crisis.test/node/r1"
	send := &pb.RecordDisclosures{Recipient: to, RecipientId: toID, Via: "Query", At: hour(0), Disclosed: []*pb.Disclosure{
		{RecordId: "a", Version: 3, Policies: []string{"p@1", "q@2"}},
		{RecordId: "b", Version: 1, Policies: []string{"p@1"}},
		{RecordId: `c"<&>`, Version: 12, Policies: []string{"p@1", "q@2"}},
		{RecordId: "d", Version: 2}, // no policy ids: audited as null, stored as []
	}}
	if err := d.ApplyDisclosures(1, send); err != nil {
		t.Fatal(err)
	}
	back := &pb.RecordDisclosures{Recipient: to, RecipientId: toID, Via: "Subscribe", At: hour(1),
		Retracted: []*pb.Disclosure{{RecordId: "b", Reason: "no longer granted"}}}
	if err := d.ApplyDisclosures(2, back); err != nil {
		t.Fatal(err)
	}
	if err := d.ApplyDisclosures(2, back); err != nil { // replay: skipped
		t.Fatal(err)
	}

	held, err := d.Disclosed(ctx, to)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]int64{"a": 3, `c"<&>`: 12, "d": 2}; !maps.Equal(held, want) {
		t.Fatalf("Disclosed = %v, want %v", held, want)
	}

	entries, err := d.AuditList(ctx, db.AuditFilter{Action: "federation."})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		action, subject string
		detail          map[string]any
	}{
		{db.AuditDisclosure, "a", map[string]any{"recipient": to, "version": int64(3), "policies": []string{"p@1", "q@2"}, "via": "Query"}},
		{db.AuditDisclosure, "b", map[string]any{"recipient": to, "version": int64(1), "policies": []string{"p@1"}, "via": "Query"}},
		{db.AuditDisclosure, `c"<&>`, map[string]any{"recipient": to, "version": int64(12), "policies": []string{"p@1", "q@2"}, "via": "Query"}},
		{db.AuditDisclosure, "d", map[string]any{"recipient": to, "version": int64(2), "policies": []string(nil), "via": "Query"}},
		{db.AuditRetraction, "b", map[string]any{"recipient": to, "reason": "no longer granted"}},
	}
	if len(entries) != len(want) {
		t.Fatalf("%d audit entries, want %d: %v", len(entries), len(want), entries)
	}
	for i, w := range want {
		e := entries[i]
		wantDetail, _ := json.Marshal(w.detail)
		if e.Action != w.action || e.Subject != w.subject || e.Actor != toID || e.Detail != string(wantDetail) {
			t.Errorf("entry %d = %s %s by %s %s, want %s %s by %s %s", i, e.Action, e.Subject, e.Actor, e.Detail, w.action, w.subject, toID, wantDetail)
		}
	}
	// One record's disclosures are found by subject, as `audit list --subject` does.
	bs, err := d.AuditList(ctx, db.AuditFilter{Action: db.AuditDisclosure, Subject: "b"})
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 1 {
		t.Fatalf("disclosures of b: %v, want one", bs)
	}
	rep, err := d.AuditVerify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.FirstBroken != 0 || rep.Entries != 5 {
		t.Fatalf("AuditVerify = %+v, want 5 entries, none broken", rep)
	}
}

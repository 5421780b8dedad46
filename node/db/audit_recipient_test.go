package db_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"

	"github.com/knooppunt/knooppunt/node/db"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestAuditRecipientCrisis checks review L, L4: a federation.disclose (and federation.retract)
// entry names the record's crisis, kind and classification as the command gives them, byte for
// byte as json.Marshal writes the map, and one of a command without them (an older leader's)
// keeps its bytes; AuditFilter.Recipient finds what went to every replica of a partner and
// nothing of another, Crisis what went out of one crisis, and both page by AfterSeq and Limit
// over the matching entries only.
func TestAuditRecipientCrisis(t *testing.T) {
	d := newDB(t)
	ctx := context.Background()
	const ncc, ggd = "ncc.crisis.test", "ggdghor.crisis.test"
	rec := func(id, crisis, kind string, class pb.Classification) *pb.Disclosure {
		return &pb.Disclosure{RecordId: id, Version: 1, Policies: []string{"p@1"}, Crisis: crisis, Kind: kind, Classification: class}
	}
	cmds := []*pb.RecordDisclosures{
		{Recipient: ncc, RecipientId: "spiffe://" + ncc + "/node/r1", Via: "Query", At: hour(0), Disclosed: []*pb.Disclosure{
			rec("h1", "hoogwater", "signal", pb.Classification_INTERNAL), rec("o1", "oekraine", `shelter"<&`, pb.Classification_INTERNAL),
			{RecordId: "old", Version: 4, Policies: []string{"p@1"}}, // an older leader's: no crisis
		}},
		{Recipient: ncc, RecipientId: "spiffe://" + ncc + "/node/r2", Via: "Subscribe", At: hour(1), Disclosed: []*pb.Disclosure{
			rec("h2", "hoogwater", "signal", pb.Classification_PUBLIC),
		}, Retracted: []*pb.Disclosure{
			{RecordId: "h1", Reason: "no longer granted", Crisis: "hoogwater", Kind: "signal", Classification: pb.Classification_INTERNAL},
			{RecordId: "gone", Reason: "deleted"},
		}},
		{Recipient: ggd, RecipientId: "spiffe://" + ggd + "/node/r1", Via: "Subscribe", At: hour(2), Disclosed: []*pb.Disclosure{
			rec("h1", "hoogwater", "signal", pb.Classification_INTERNAL), rec("o2", "oekraine", "sitrep", pb.Classification_CONFIDENTIAL),
		}},
	}
	for i, c := range cmds {
		if err := d.ApplyDisclosures(uint64(i+1), c); err != nil {
			t.Fatal(err)
		}
	}
	all, err := d.AuditList(ctx, db.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		action, subject string
		detail          map[string]any
	}
	disclosed := func(subject, to, via, crisis, kind, class string) want {
		m := map[string]any{"recipient": to, "version": int64(1), "policies": []string{"p@1"}, "via": via, "crisis": crisis, "kind": kind, "classification": class}
		return want{db.AuditDisclosure, subject, m}
	}
	wants := []want{
		disclosed("h1", ncc, "Query", "hoogwater", "signal", "internal"),
		disclosed("o1", ncc, "Query", "oekraine", `shelter"<&`, "internal"),
		{db.AuditDisclosure, "old", map[string]any{"recipient": ncc, "version": int64(4), "policies": []string{"p@1"}, "via": "Query"}},
		disclosed("h2", ncc, "Subscribe", "hoogwater", "signal", "public"),
		{db.AuditRetraction, "h1", map[string]any{"recipient": ncc, "reason": "no longer granted", "crisis": "hoogwater", "kind": "signal", "classification": "internal"}},
		{db.AuditRetraction, "gone", map[string]any{"recipient": ncc, "reason": "deleted"}},
		disclosed("h1", ggd, "Subscribe", "hoogwater", "signal", "internal"),
		disclosed("o2", ggd, "Subscribe", "oekraine", "sitrep", "confidential"),
	}
	if len(all) != len(wants) {
		t.Fatalf("%d entries, want %d: %v", len(all), len(wants), all)
	}
	for i, w := range wants {
		b, _ := json.Marshal(w.detail)
		if e := all[i]; e.Action != w.action || e.Subject != w.subject || e.Detail != string(b) {
			t.Errorf("entry %d: %s %s %s, want %s %s %s", i+1, e.Action, e.Subject, e.Detail, w.action, w.subject, b)
		}
	}
	if rep, err := verifyChain(ctx, d); err != nil || rep.FirstBroken != 0 {
		t.Fatalf("AuditVerify = %+v, %v", rep, err)
	}

	for _, c := range []struct {
		name string
		f    db.AuditFilter
		want []int64
	}{
		{"both replicas of ncc", db.AuditFilter{Recipient: ncc}, []int64{1, 2, 3, 4, 5, 6}},
		{"ggd", db.AuditFilter{Recipient: ggd}, []int64{7, 8}},
		{"hoogwater", db.AuditFilter{Crisis: "hoogwater"}, []int64{1, 4, 5, 7}},
		{"oekraine to ncc", db.AuditFilter{Recipient: ncc, Crisis: "oekraine"}, []int64{2}},
		{"disclosures of hoogwater to ncc", db.AuditFilter{Action: db.AuditDisclosure, Recipient: ncc, Crisis: "hoogwater"}, []int64{1, 4}},
		{"page 1", db.AuditFilter{Crisis: "hoogwater", Limit: 2}, []int64{1, 4}},
		{"page 2", db.AuditFilter{Crisis: "hoogwater", Limit: 2, AfterSeq: 4}, []int64{5, 7}},
		{"last", db.AuditFilter{Recipient: ncc, Crisis: "hoogwater", Limit: 2, Newest: true}, []int64{4, 5}},
		{"a trust domain that got nothing", db.AuditFilter{Recipient: "lcvs.crisis.test"}, nil},
		{"a crisis nothing went out of", db.AuditFilter{Crisis: "storm"}, nil},
	} {
		if got := auditSeqs(t, d, c.f); !slices.Equal(got, c.want) {
			t.Errorf("%s: seqs %v, want %v", c.name, got, c.want)
		}
	}
}

// auditSeqs are the seqs of the entries that f lists.
func auditSeqs(t *testing.T, d *db.DB, f db.AuditFilter) []int64 {
	t.Helper()
	es, err := d.AuditList(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	var out []int64
	for _, e := range es {
		out = append(out, e.Seq)
	}
	return out
}

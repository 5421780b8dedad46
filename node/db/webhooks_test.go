package db_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/knooppunt/knooppunt/node/db"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestWebhookQueue: each change is queued, in the transaction that commits it, for the webhooks
// it matches (kind, crisis, actual or one exercise, own or a peer's); an acknowledgement takes a
// delivery out once however often it is applied; a dead letter leaves the queue for the
// failures and retry puts it back behind the rest with its message id; remove empties it all.
func TestWebhookQueue(t *testing.T) {
	d := newDB(t)
	ctx := context.Background()
	index := uint64(0)
	next := func() uint64 { index++; return index }
	add := func(id, exercise string, kinds ...string) {
		t.Helper()
		_, _, refusal, err := d.ApplyWebhookStep(next(), &pb.WebhookStep{Action: "add", By: "test", At: hour(0),
			Webhook: &pb.Webhook{Id: id, Url: "https://hooks.example.nl/" + id, Kinds: kinds, Exercise: exercise, Secret: "whsec_x"}})
		if err != nil || refusal != nil {
			t.Fatalf("add %s: %v %v", id, refusal, err)
		}
	}
	add("all", "")
	add("sitreps", "", "sitrep")
	add("drill", "oefening-1")
	for _, ex := range []string{"oefening-1", "oefening-2"} {
		if _, err := d.ApplyExerciseStep(next(), &pb.ExerciseStep{Action: "start", Name: ex, Actor: "test", At: hour(0)}); err != nil {
			t.Fatal(err)
		}
	}
	rec := func(id, kind string, status pb.Status, exercise string) *pb.Record {
		return &pb.Record{Id: id, Origin: "a.crisis.test", Kind: kind, Crisis: "c", Region: "VR09", Body: []byte(`{}`), UpdatedAt: hour(1), Status: status, Exercise: exercise}
	}
	if _, err := d.Apply(next(), []*pb.Record{
		rec("s1", "shelter.capacity", pb.Status_ACTUAL, ""),
		rec("r1", "sitrep", pb.Status_ACTUAL, ""),
		rec("x1", "sitrep", pb.Status_EXERCISE, "oefening-1"),
		rec("x2", "sitrep", pb.Status_EXERCISE, "oefening-2"),
		rec("t1", "sitrep", pb.Status_TEST, ""),
	}); err != nil {
		t.Fatal(err)
	}
	if err := d.ApplyCacheForeign(next(), &pb.CacheForeign{Peer: "b", Origin: "b.crisis.test", Cursor: 1, At: hour(2),
		Upserts: []*pb.SharedRecord{{Record: &pb.Record{Id: "f1", Origin: "b.crisis.test", Kind: "sitrep", Crisis: "c", Region: "VR09", Body: []byte(`{}`), Version: 4}}}}); err != nil {
		t.Fatal(err)
	}
	queue := func(id string) []string {
		t.Helper()
		q, err := d.WebhookQueue(ctx, id, 100)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, x := range q {
			out = append(out, fmt.Sprintf("%s%s@%d", x.Origin, x.RecordID, x.Version))
		}
		return out
	}
	for id, want := range map[string]string{
		"all":     "[s1@1 r1@1 b.crisis.testf1@4]",
		"sitreps": "[r1@1 b.crisis.testf1@4]",
		"drill":   "[x1@1]",
	} {
		if got := fmt.Sprint(queue(id)); got != want {
			t.Errorf("%s queue %s, want %s", id, got, want)
		}
	}
	q, _ := d.WebhookQueue(ctx, "all", 100)
	// When a delivery began to fail is kept once, for the next leader's retry time.
	for i, at := range []int{2, 3} {
		if err := d.ApplyWebhookAcks(next(), &pb.WebhookAcks{Webhook: "all", At: hour(at),
			Failing: []*pb.WebhookDead{{Seq: q[2].Seq, Attempts: int32(i + 1), Error: "timeout", FirstAttemptAt: hour(at)}}}); err != nil {
			t.Fatal(err)
		}
	}
	if q3, _ := d.WebhookQueue(ctx, "all", 100); !q3[2].FirstAttemptAt.Equal(hour(2).AsTime()) || q3[2].Attempts != 1 || q3[2].LastError != "timeout" {
		t.Fatalf("failing: first attempt %s, attempts %d, error %q: want the first word kept", q3[2].FirstAttemptAt, q3[2].Attempts, q3[2].LastError)
	}
	acks := &pb.WebhookAcks{Webhook: "all", Delivered: []int64{q[0].Seq}, At: hour(3),
		Dead: []*pb.WebhookDead{{Seq: q[1].Seq, Attempts: 7, Error: "503", FirstAttemptAt: hour(2)}}}
	if err := d.ApplyWebhookAcks(next(), acks); err != nil {
		t.Fatal(err)
	}
	if err := d.ApplyWebhookAcks(next(), acks); err != nil { // the same word twice: no change
		t.Fatal(err)
	}
	if got := fmt.Sprint(queue("all")); got != "[b.crisis.testf1@4]" {
		t.Fatalf("after the acknowledgement and the dead letter: %s", got)
	}
	hooks, _ := d.Webhooks(ctx)
	if hooks[0].ID != "all" || hooks[0].Delivered != 1 || hooks[0].Failed != 1 || hooks[0].Queued != 1 {
		t.Fatalf("counts %+v: want delivered 1, failed 1, queued 1", hooks[0])
	}
	fails, _ := d.WebhookFailures(ctx, "all")
	if len(fails) != 1 || fails[0].RecordID != "r1" || fails[0].Attempts != 7 || fails[0].Message != q[1].Message {
		t.Fatalf("failures %+v", fails)
	}
	if fails[0].Record != nil {
		t.Error("a dead letter is listed with its record, which its list never shows")
	}
	_, n, _, err := d.ApplyWebhookStep(next(), &pb.WebhookStep{Action: "retry", Webhook: &pb.Webhook{Id: "all"}, At: hour(4)})
	if err != nil || n.Requeued != 1 {
		t.Fatalf("retry: %+v, %v", n, err)
	}
	q2, _ := d.WebhookQueue(ctx, "all", 100)
	if len(q2) != 2 || q2[1].Message != q[1].Message || q2[1].Seq <= q2[0].Seq {
		t.Fatalf("after retry %v: want r1 behind f1 with its message id %s", q2, q[1].Message)
	}
	_, _, refusal, err := d.ApplyWebhookStep(next(), &pb.WebhookStep{Action: "remove", Webhook: &pb.Webhook{Id: "all"}, At: hour(5)})
	if err != nil || refusal != nil || len(queue("all")) != 0 {
		t.Fatalf("remove: %v %v, queue %v", refusal, err, queue("all"))
	}
	if _, _, refusal, _ := d.ApplyWebhookStep(next(), &pb.WebhookStep{Action: "remove", Webhook: &pb.Webhook{Id: "all"}, At: hour(5)}); refusal != db.ErrNotFound {
		t.Fatalf("remove twice: %v, want ErrNotFound as refusal", refusal)
	}
}

// TestWebhookCeiling: a webhook with a classification ceiling gets no record above it, own or a
// peer's; a record that rises above it goes as record.retracted without its body (its fields but
// the id and where it belongs never leave), one that comes down to it goes as a change; and a
// record it never got is neither deleted nor retracted at it. A webhook of a region gets a
// record that leaves it, own or a peer's, as record.retracted too.
func TestWebhookCeiling(t *testing.T) {
	d := newDB(t)
	ctx := context.Background()
	index := uint64(0)
	next := func() uint64 { index++; return index }
	for _, w := range []*pb.Webhook{{Id: "all"}, {Id: "internal", MaxClassification: pb.Classification_INTERNAL}, {Id: "vr09", Regions: []string{"VR09"}}} {
		w.Url, w.Secret = "https://hooks.example.nl/"+w.Id, "whsec_x"
		if _, _, refusal, err := d.ApplyWebhookStep(next(), &pb.WebhookStep{Action: "add", By: "test", At: hour(0), Webhook: w, Withdraws: true}); err != nil || refusal != nil {
			t.Fatalf("add %s: %v %v", w.Id, refusal, err)
		}
	}
	// A webhook added before withdrawals existed (its add step unmarked) gets none: a replica
	// that applies an older write queues what its peers did.
	if _, _, refusal, err := d.ApplyWebhookStep(next(), &pb.WebhookStep{Action: "add", By: "test", At: hour(0),
		Webhook: &pb.Webhook{Id: "zz-old", Url: "https://hooks.example.nl/old", Crises: []string{"c"}, Secret: "whsec_x"}}); err != nil || refusal != nil {
		t.Fatalf("add zz-old: %v %v", refusal, err)
	}
	rows, err := d.Webhooks(ctx)
	if err != nil || len(rows) != 4 || rows[1].ID != "internal" || rows[1].MaxClassification != pb.Classification_INTERNAL || rows[0].MaxClassification != 0 ||
		fmt.Sprint(rows[2].Regions) != "[VR09]" || len(rows[0].Regions) != 0 {
		t.Fatalf("Webhooks = %+v, %v: want internal's ceiling and vr09's region kept, and neither for all", rows, err)
	}
	region := "VR09"
	put := func(id string, cl pb.Classification, tombstone bool) {
		t.Helper()
		if _, err := d.Apply(next(), []*pb.Record{{Id: id, Kind: "sitrep", Crisis: "c", Region: region, Classification: cl, Tombstone: tombstone,
			Body: []byte(`{"text":"secret plan ` + id + `"}`), UpdatedAt: hour(1)}}); err != nil {
			t.Fatal(err)
		}
	}
	put("up", pb.Classification_INTERNAL, false)
	put("up", pb.Classification_SECRET, false)         // rises above: retracted at internal
	put("up", pb.Classification_SECRET, false)         // still above: nothing
	put("up", 0, true)                                 // deleted while above: nothing
	put("down", pb.Classification_CONFIDENTIAL, false) // never under: nothing
	put("down", pb.Classification_PUBLIC, false)       // comes down: a change
	put("hidden", pb.Classification_SECRET, false)
	put("hidden", 0, true) // deleted, never delivered: nothing
	region = "VR10"
	put("moves", pb.Classification_PUBLIC, false) // outside vr09: nothing there
	region = "VR09"
	put("moves", pb.Classification_PUBLIC, false) // comes in: a change at vr09
	region = "VR10"
	put("moves", pb.Classification_PUBLIC, false) // leaves: retracted at vr09
	foreign := func(id, region string, cl pb.Classification, retract bool) {
		t.Helper()
		c := &pb.CacheForeign{Peer: "b", Origin: "b.crisis.test", Cursor: int64(index), At: hour(2)}
		if retract {
			c.Retractions = []string{id}
		} else {
			c.Upserts = []*pb.SharedRecord{{Record: &pb.Record{Id: id, Origin: "b.crisis.test", Kind: "sitrep", Crisis: "c", Region: region,
				Classification: cl, Body: []byte(`{"text":"their plan"}`), Version: int64(index)}}}
		}
		if err := d.ApplyCacheForeign(next(), c); err != nil {
			t.Fatal(err)
		}
	}
	foreign("f1", "VR09", pb.Classification_CONFIDENTIAL, false) // above: nothing at internal
	foreign("f1", "", 0, true)                                   // retracted, never delivered: nothing at internal
	foreign("f2", "VR09", pb.Classification_PUBLIC, false)       // a change at every webhook
	foreign("f2", "VR10", pb.Classification_PUBLIC, false)       // leaves VR09: retracted at vr09

	queue := func(id string) (out []string, bodies []string) {
		t.Helper()
		q, err := d.WebhookQueue(ctx, id, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range q {
			out = append(out, fmt.Sprintf("%s %s%s@%d", x.Event, x.Origin, x.RecordID, x.Version))
			bodies = append(bodies, string(x.Record.Body))
		}
		return out, bodies
	}
	got, bodies := queue("internal")
	want := []string{"record.changed up@1", "record.retracted up@2", "record.changed down@2",
		"record.changed moves@1", "record.changed moves@2", "record.changed moves@3", "record.changed b.crisis.testf2@17", "record.changed b.crisis.testf2@18"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("internal's queue %q, want %q", got, want)
	}
	if len(bodies[1]) != 0 {
		t.Errorf("the retraction of up carries the body %s, want none: it is secret now", bodies[1])
	}
	got, bodies = queue("vr09")
	// A delete took the record's earlier deliveries out (purges_deliveries).
	if want := "[record.deleted up@4 record.changed down@1 record.changed down@2 " +
		"record.deleted hidden@2 record.changed moves@2 record.retracted moves@3 " +
		"record.changed b.crisis.testf1@15 record.retracted b.crisis.testf1@15 record.changed b.crisis.testf2@17 record.retracted b.crisis.testf2@18]"; fmt.Sprint(got) != want {
		t.Errorf("vr09's queue %q, want %s", got, want)
	} else if n := len(bodies); len(bodies[n-1]) != 0 || len(bodies[n-5]) != 0 {
		t.Errorf("the retractions at vr09 carry bodies %q and %q, want none", bodies[n-5], bodies[n-1])
	}
	if got, _ := queue("all"); len(got) != 11 {
		t.Errorf("all's queue %q: want the 15 changes but the 4 that the deletes of up and hidden took out", got)
	}
	// A retraction says what the receiver knows of the record, never what it became.
	for hook, want := range map[string]string{"internal": "up INTERNAL VR09 c", "vr09": "moves PUBLIC VR09 c"} {
		q, err := d.WebhookQueue(ctx, hook, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range q {
			if x.Event == db.EventRetracted && x.Origin == "" {
				if got := fmt.Sprintf("%s %s %s %s", x.Record.Id, x.Record.Classification, x.Record.Region, x.Record.Crisis); got != want || !x.Record.Tombstone {
					t.Errorf("%s's retraction is of %s (tombstone %v), want %s: the version it held", hook, got, x.Record.Tombstone, want)
				}
			}
		}
	}
	// The old webhook: a record that leaves its crisis brings it nothing.
	for _, crisis := range []string{"c", "d"} {
		if _, err := d.Apply(next(), []*pb.Record{{Id: "wandert", Kind: "sitrep", Crisis: crisis, Region: "VR09", Classification: pb.Classification_PUBLIC,
			Body: []byte(`{"text":"x"}`), UpdatedAt: hour(3)}}); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := queue("zz-old"); !slices.Contains(got, "record.changed wandert@1") || slices.Contains(got, "record.retracted wandert@2") {
		t.Errorf("the webhook of before withdrawals: %q, want wandert@1 and no retraction", got)
	}
}

// TestRedactionDropsQueuedDeliveries: when a peer says its redaction of a record changed, the
// deliveries of the record's earlier copies not yet made (they may hold a field withheld now)
// leave the queue, and the new copy takes their place; a change without it keeps them.
func TestRedactionDropsQueuedDeliveries(t *testing.T) {
	d := newDB(t)
	ctx := context.Background()
	index := uint64(0)
	next := func() uint64 { index++; return index }
	if _, _, refusal, err := d.ApplyWebhookStep(next(), &pb.WebhookStep{Action: "add", By: "test", At: hour(0), Withdraws: true,
		Webhook: &pb.Webhook{Id: "lcms", Url: "https://hooks.example.nl/lcms", Secret: "whsec_x"}}); err != nil || refusal != nil {
		t.Fatalf("add: %v %v", refusal, err)
	}
	deliver := func(version int64, body string, changed bool) {
		t.Helper()
		if err := d.ApplyCacheForeign(next(), &pb.CacheForeign{Peer: "b", Origin: "b.crisis.test", Cursor: int64(index), At: hour(1),
			Upserts: []*pb.SharedRecord{{Record: &pb.Record{Id: "s1", Origin: "b.crisis.test", Kind: "sitrep", Crisis: "c", Region: "VR09",
				Classification: pb.Classification_INTERNAL, Body: []byte(body), Version: version}, RedactionChanged: changed}}}); err != nil {
			t.Fatal(err)
		}
	}
	bodies := func() []string {
		t.Helper()
		q, err := d.WebhookQueue(ctx, "lcms", 100)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, x := range q {
			out = append(out, fmt.Sprintf("v%d %s", x.Version, x.Record.Body))
		}
		return out
	}
	deliver(1, `{"phone":"+31-30-555-0905"}`, false)
	deliver(2, `{"phone":"+31-30-555-0905","x":1}`, false)
	if got := bodies(); len(got) != 2 {
		t.Fatalf("queue %q, want both versions", got)
	}
	deliver(2, `{"x":1}`, true)
	if got := bodies(); len(got) != 1 || strings.Contains(got[0], "555") {
		t.Errorf("after the redaction changed the queue is %q, want only the copy without the phone number", got)
	}
}

// TestWebhookURLQueryNeverShown: a webhook URL's query may hold the receiver's token. The
// webhook's listing, the answer to its add and its audit entries (kept for good) show the URL
// without it; deliveries go to the URL as added (review D, F9). Steps of a node before
// shown_url write their audit entries as they did, so that every replica writes the same.
func TestWebhookURLQueryNeverShown(t *testing.T) {
	ctx := context.Background()
	const target = "https://hooks.example.nl/knooppunt?token=S3CRET"
	const shown = "https://hooks.example.nl/knooppunt?…"
	old := newDB(t)
	for i, action := range []string{"add", "remove"} {
		if _, _, refusal, err := old.ApplyWebhookStep(uint64(i+1), &pb.WebhookStep{Action: action, By: "t", At: hour(i),
			Webhook: &pb.Webhook{Id: "wh_1", Url: target, Secret: "whsec_x"}}); err != nil || refusal != nil {
			t.Fatalf("%s without shown_url: %v %v", action, refusal, err)
		}
	}
	for _, action := range []string{db.AuditWebhookAdd, db.AuditWebhookRemove} {
		if entries, err := old.AuditList(ctx, db.AuditFilter{Action: action}); err != nil || len(entries) != 1 || !strings.Contains(entries[0].Detail, target) {
			t.Fatalf("audit %s of a step without shown_url: %v, %v; want the URL as it was", action, entries, err)
		}
	}

	d := newDB(t)
	row, _, refusal, err := d.ApplyWebhookStep(1, &pb.WebhookStep{Action: "add", By: "t", At: hour(0), ShownUrl: true,
		Webhook: &pb.Webhook{Id: "wh_1", Url: target, Secret: "whsec_x"}})
	if err != nil || refusal != nil {
		t.Fatalf("add: %v %v", refusal, err)
	}
	if row.URL != shown || row.Target != target {
		t.Errorf("add answers URL %q, Target %q; want %q, %q", row.URL, row.Target, shown, target)
	}
	hooks, err := d.Webhooks(ctx)
	if err != nil || len(hooks) != 1 || hooks[0].URL != shown || hooks[0].Target != target {
		t.Fatalf("Webhooks = %+v, %v; want URL %q, Target %q", hooks, err, shown, target)
	}
	if _, _, refusal, err := d.ApplyWebhookStep(2, &pb.WebhookStep{Action: "remove", By: "t", At: hour(1), ShownUrl: true, Webhook: &pb.Webhook{Id: "wh_1"}}); err != nil || refusal != nil {
		t.Fatalf("remove: %v %v", refusal, err)
	}
	for _, action := range []string{db.AuditWebhookAdd, db.AuditWebhookRemove} {
		entries, err := d.AuditList(ctx, db.AuditFilter{Action: action})
		if err != nil || len(entries) != 1 {
			t.Fatalf("audit %s: %v, %v", action, entries, err)
		}
		if detail := entries[0].Detail; strings.Contains(detail, "S3CRET") || !strings.Contains(detail, `"url":"https://hooks.example.nl/knooppunt?…"`) {
			t.Errorf("audit %s detail %s: want the URL without its query", action, detail)
		}
	}
}

func TestShownURL(t *testing.T) {
	for raw, want := range map[string]string{
		"https://hooks.example.nl/knooppunt":             "https://hooks.example.nl/knooppunt",
		"https://hooks.example.nl/k?token=S3CRET&a=b":    "https://hooks.example.nl/k?…",
		"http://127.0.0.1:8080/?":                        "http://127.0.0.1:8080/?…",
		"https://hooks.example.nl:8443/a/b?x=1?y=S3CRET": "https://hooks.example.nl:8443/a/b?…",
	} {
		if got := db.ShownURL(raw); got != want {
			t.Errorf("ShownURL(%q) = %q, want %q", raw, got, want)
		}
	}
}

// TestDeleteTakesEarlierDeliveriesOut: a record's delete, and a partner's retraction, take the
// record's earlier deliveries out of the webhook's queue, dead letters included: they held the
// body past the erasure bound, and a retry of a dead letter sent the old version after the
// delete (review D, F5). An entry of a node before purges_deliveries is applied as it was.
func TestDeleteTakesEarlierDeliveriesOut(t *testing.T) {
	ctx := context.Background()
	for _, purges := range []bool{true, false} {
		d, next := withHookAll(t)
		write := func(r *pb.Record) {
			t.Helper()
			res, err := d.ApplyWrites([]db.WriteEntry{{Index: next(), Writes: []*pb.Record{r}, Bookkeeping: true, Purges: purges}})
			if err != nil || res[0][0].Err != nil {
				t.Fatal(err, res)
			}
		}
		own := func(body string, version int64, tombstone bool) *pb.Record {
			return &pb.Record{Id: "s1", Origin: "a.crisis.test", Kind: "sitrep", Crisis: "c", Region: "VR09", Body: []byte(body), UpdatedAt: hour(1), Version: version, Tombstone: tombstone}
		}
		write(own(`{"title":"geheim adres"}`, 0, false))
		q, err := d.WebhookQueue(ctx, "all", 10)
		if err != nil || len(q) != 1 {
			t.Fatal(q, err)
		}
		if err := d.ApplyWebhookAcks(next(), &pb.WebhookAcks{Webhook: "all", At: hour(2),
			Dead: []*pb.WebhookDead{{Seq: q[0].Seq, Attempts: 7, Error: "401", FirstAttemptAt: hour(1)}}}); err != nil {
			t.Fatal(err)
		}
		write(own(`{"title":"nog steeds geheim"}`, 1, false))
		write(own(`{}`, 2, true))
		f := &pb.CacheForeign{Peer: "b", Origin: "b.crisis.test", Cursor: 1, At: hour(2), PurgesDeliveries: purges,
			Upserts: []*pb.SharedRecord{{Record: &pb.Record{Id: "f1", Origin: "b.crisis.test", Kind: "sitrep", Crisis: "c", Region: "VR09", Body: []byte(`{"title":"van b"}`), Version: 4}}}}
		if err := d.ApplyCacheForeign(next(), f); err != nil {
			t.Fatal(err)
		}
		f.Upserts, f.Retractions, f.Cursor = nil, []string{"f1"}, 2
		if err := d.ApplyCacheForeign(next(), f); err != nil {
			t.Fatal(err)
		}
		q, err = d.WebhookQueue(ctx, "all", 10)
		if err != nil {
			t.Fatal(err)
		}
		dead, err := d.WebhookFailures(ctx, "all")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, x := range q {
			got = append(got, x.Event+" "+x.RecordID)
		}
		want := "[record.deleted s1 record.retracted f1]"
		if !purges {
			want = "[record.changed s1 record.deleted s1 record.changed f1 record.retracted f1]"
		}
		if fmt.Sprint(got) != want || len(dead) != map[bool]int{true: 0, false: 1}[purges] {
			t.Errorf("purges %v: the queue holds %v and %d dead letters, want %s and %d", purges, got, len(dead), want, map[bool]int{true: 0, false: 1}[purges])
		}
	}
}

// TestRetryDropsSupersededFailures: a retry drops the dead letters of records that have changed
// since, own and a partner's, rather than send the receiver an older version after the newer
// one it got; the failures of records unchanged go again, behind the queue. An entry of a node
// before drops_superseded is applied as it was: every failure goes again.
func TestRetryDropsSupersededFailures(t *testing.T) {
	ctx := context.Background()
	for _, drops := range []bool{true, false} {
		d, next := withHookAll(t)
		write := func(id string, version int64) {
			t.Helper()
			r := &pb.Record{Id: id, Origin: "a.crisis.test", Kind: "sitrep", Crisis: "c", Region: "VR09", Body: []byte(`{}`), UpdatedAt: hour(1), Version: version}
			res, err := d.ApplyWrites([]db.WriteEntry{{Index: next(), Writes: []*pb.Record{r}, Bookkeeping: true, Purges: true}})
			if err != nil || res[0][0].Err != nil {
				t.Fatal(err, res)
			}
		}
		cache := func(version int64) {
			t.Helper()
			if err := d.ApplyCacheForeign(next(), &pb.CacheForeign{Peer: "b", Origin: "b.crisis.test", Cursor: version, At: hour(2), PurgesDeliveries: true,
				Upserts: []*pb.SharedRecord{{Record: &pb.Record{Id: "f1", Origin: "b.crisis.test", Kind: "sitrep", Crisis: "c", Region: "VR09", Body: []byte(`{}`), Version: version}}}}); err != nil {
				t.Fatal(err)
			}
		}
		// s1, s2 and f1 fail for good; then s1 and f1 change, and the receiver takes the changes.
		write("s1", 0)
		write("s2", 0)
		cache(4)
		q, err := d.WebhookQueue(ctx, "all", 10)
		if err != nil || len(q) != 3 {
			t.Fatal(q, err)
		}
		var dead []*pb.WebhookDead
		for _, x := range q {
			dead = append(dead, &pb.WebhookDead{Seq: x.Seq, Attempts: 1, Error: "422", FirstAttemptAt: hour(1)})
		}
		if err := d.ApplyWebhookAcks(next(), &pb.WebhookAcks{Webhook: "all", At: hour(2), Dead: dead}); err != nil {
			t.Fatal(err)
		}
		write("s1", 1)
		cache(5)
		q, _ = d.WebhookQueue(ctx, "all", 10)
		if err := d.ApplyWebhookAcks(next(), &pb.WebhookAcks{Webhook: "all", At: hour(3), Delivered: []int64{q[0].Seq, q[1].Seq}}); err != nil {
			t.Fatal(err)
		}
		_, out, _, err := d.ApplyWebhookStep(next(), &pb.WebhookStep{Action: "retry", Webhook: &pb.Webhook{Id: "all"}, At: hour(4), By: "test", DropsSuperseded: drops})
		if err != nil {
			t.Fatal(err)
		}
		q, _ = d.WebhookQueue(ctx, "all", 10)
		var got []string
		for _, x := range q {
			got = append(got, fmt.Sprintf("%s%s@%d", x.Origin, x.RecordID, x.Version))
		}
		want, wantOut := "[s2@1]", db.RetryOutcome{Requeued: 1, Superseded: 2}
		if !drops {
			want, wantOut = "[s1@1 s2@1 b.crisis.testf1@4]", db.RetryOutcome{Requeued: 3}
		}
		if fmt.Sprint(got) != want || out != wantOut {
			t.Errorf("drops %v: the retry queued %v (%+v), want %s (%+v)", drops, got, out, want, wantOut)
		}
		if fails, _ := d.WebhookFailures(ctx, "all"); len(fails) != 0 {
			t.Errorf("drops %v: %d failures left after the retry, want none", drops, len(fails))
		}
		entries, err := d.AuditList(ctx, db.AuditFilter{Action: db.AuditWebhookRetry})
		if err != nil || len(entries) != 1 {
			t.Fatal(entries, err)
		}
		if has := strings.Contains(entries[0].Detail, `"superseded":2`); has != drops {
			t.Errorf("drops %v: the audit entry says %s", drops, entries[0].Detail)
		}
	}
}

// withHookAll is a new database with the webhook "all", of every record, and the function
// that gives the next Raft index.
func withHookAll(t *testing.T) (*db.DB, func() uint64) {
	t.Helper()
	d := newDB(t)
	index := uint64(0)
	next := func() uint64 { index++; return index }
	if _, _, refusal, err := d.ApplyWebhookStep(next(), &pb.WebhookStep{Action: "add", By: "test", At: hour(0),
		Webhook: &pb.Webhook{Id: "all", Url: "https://hooks.example.nl/all", Secret: "whsec_x"}}); err != nil || refusal != nil {
		t.Fatal(refusal, err)
	}
	return d, next
}

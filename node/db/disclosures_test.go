package db_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/knooppunt/knooppunt/node/db"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
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
	// The commands name no holder, as a node of an earlier release wrote them: their records are
	// held by the trust domain's node.
	const holder = "spiffe://ncc.crisis.test/node/*"
	send := &pb.RecordDisclosures{Recipient: to, RecipientId: toID, Via: "Query", At: hour(0), Disclosed: []*pb.Disclosure{
		{RecordId: "a", Version: 3, Policies: []string{"p@1", "q@2"}},
		{RecordId: "b", Version: 1, Policies: []string{"p@1"}},
		{RecordId: `c"<&>`, Version: 12, Policies: []string{"p@1", "q@2"}},
		{RecordId: "d", Version: 2}, // no policy ids: audited as null, stored as []
		{RecordId: "e", Version: 1, Policies: []string{"p@1"}, Redacted: []string{"body.contact.phone", `body.x"y`}},
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

	held, err := d.Disclosed(ctx, holder)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]int64{"a": 3, `c"<&>`: 12, "d": 2, "e": 1}; !maps.Equal(held, want) {
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
		{db.AuditDisclosure, "e", map[string]any{"recipient": to, "version": int64(1), "policies": []string{"p@1"}, "redacted": []string{"body.contact.phone", `body.x"y`}, "via": "Query"}},
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
	rep, err := verifyChain(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	if rep.FirstBroken != 0 || rep.Entries != 6 {
		t.Fatalf("AuditVerify = %+v, want 6 entries, none broken", rep)
	}
}

// TestRepeatedDisclosures checks that a record sent again at a version its recipient holds, under
// the same policies, is not disclosed again: no disclosures row changes (its time stays that of
// the first disclosure) and no per-record audit entry is written, but one federation.resend entry
// counts such records per command. A new version, other policies, two versions of a record in one
// command, and a record sent again after its retraction are each disclosed; the same version
// twice in one command is disclosed once.
func TestRepeatedDisclosures(t *testing.T) {
	d := newDB(t)
	ctx := context.Background()
	const to, toID, holder = "ncc.crisis.test", "spiffe://ncc.crisis.test/node/r1", "spiffe://ncc.crisis.test/node/*"
	idx := uint64(0)
	apply := func(at int, via string, disclosed []*pb.Disclosure, retracted ...string) {
		t.Helper()
		c := &pb.RecordDisclosures{Recipient: to, RecipientId: toID, Holder: holder, Via: via, At: hour(at), Disclosed: disclosed, CountHeld: true}
		for _, id := range retracted {
			c.Retracted = append(c.Retracted, &pb.Disclosure{RecordId: id, Reason: "revoked"})
		}
		idx++
		if err := d.ApplyDisclosures(idx, c); err != nil {
			t.Fatal(err)
		}
	}
	x := func(id string, version int64, policies ...string) *pb.Disclosure {
		return &pb.Disclosure{RecordId: id, Version: version, Policies: policies}
	}
	apply(0, "Query", []*pb.Disclosure{x("a", 1, "p@1"), x("b", 1, "p@1")})
	apply(1, "Query", []*pb.Disclosure{x("a", 1, "p@1"), x("b", 1, "p@1")})                                                        // both held
	apply(2, "Subscribe", []*pb.Disclosure{x("a", 2, "p@1"), x("b", 1, "q@2"), x("c", 1), x("a", 2, "p@1"), x("d", 1), x("d", 2)}) // new version, other policies, new record, a again, d twice
	apply(3, "Subscribe", nil, "b")
	apply(4, "Query", []*pb.Disclosure{x("b", 1, "q@2"), x("c", 1)}) // b again after its retraction; c held
	redacted := x("e", 1, "p@1")
	redacted.Redaction = "body.phone"
	apply(5, "Subscribe", []*pb.Disclosure{x("e", 1, "p@1")})
	apply(6, "Subscribe", []*pb.Disclosure{redacted}) // the same policies remove a field now
	apply(7, "Subscribe", []*pb.Disclosure{redacted}) // held

	entries, err := d.AuditList(ctx, db.AuditFilter{Action: "federation."})
	if err != nil {
		t.Fatal(err)
	}
	type entry struct{ action, subject, detail string }
	disclose := func(id string, version int64, policies, via string) entry {
		return entry{db.AuditDisclosure, id, fmt.Sprintf(`{"policies":%s,"recipient":%q,"version":%d,"via":%q}`, policies, to, version, via)}
	}
	resend := func(n int, via string) entry {
		return entry{db.AuditResend, to, fmt.Sprintf(`{"recipient":%q,"records":%d,"via":%q}`, to, n, via)}
	}
	want := []entry{
		disclose("a", 1, `["p@1"]`, "Query"), disclose("b", 1, `["p@1"]`, "Query"),
		resend(2, "Query"),
		disclose("a", 2, `["p@1"]`, "Subscribe"), disclose("b", 1, `["q@2"]`, "Subscribe"), disclose("c", 1, "null", "Subscribe"),
		disclose("d", 1, "null", "Subscribe"), disclose("d", 2, "null", "Subscribe"),
		resend(1, "Subscribe"),
		{db.AuditRetraction, "b", fmt.Sprintf(`{"reason":"revoked","recipient":%q}`, to)},
		disclose("b", 1, `["q@2"]`, "Query"),
		resend(1, "Query"),
		disclose("e", 1, `["p@1"]`, "Subscribe"), disclose("e", 1, `["p@1"]`, "Subscribe"),
		resend(1, "Subscribe"),
	}
	var got []entry
	for _, e := range entries {
		if e.Actor != toID {
			t.Errorf("entry %d: actor %s, want %s", e.Seq, e.Actor, toID)
		}
		got = append(got, entry{e.Action, e.Subject, e.Detail})
	}
	if !slices.Equal(got, want) {
		t.Fatalf("audit entries:\n%v\nwant\n%v", got, want)
	}
	// The resend detail reads as json.Marshal writes the map.
	m, _ := json.Marshal(map[string]any{"recipient": to, "records": 2, "via": "Query"})
	if got[2].detail != string(m) {
		t.Errorf("resend detail %s, want %s", got[2].detail, m)
	}

	heldAt := func(id string) int64 {
		t.Helper()
		h, err := sql.Open("sqlite3", "file:"+d.Path()+"?mode=ro")
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		var at int64
		if err := h.QueryRow(`SELECT at FROM disclosures WHERE recipient = ? AND record_id = ?`, holder, id).Scan(&at); err != nil {
			t.Fatal(err)
		}
		return at
	}
	if got, want := heldAt("c"), hour(2).AsTime().UnixNano(); got != want {
		t.Errorf("c held since %d, want %d: its first disclosure", got, want)
	}
	if got, want := heldAt("b"), hour(4).AsTime().UnixNano(); got != want {
		t.Errorf("b held since %d, want %d: its disclosure after the retraction", got, want)
	}
	heldNow, err := d.Disclosed(ctx, holder)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]int64{"a": 2, "b": 1, "c": 1, "d": 2, "e": 1}; !maps.Equal(heldNow, want) {
		t.Fatalf("Disclosed = %v, want %v", heldNow, want)
	}
	for id, want := range map[string]string{"a": "", "e": "body.phone"} {
		if h, _, ok, err := d.HoldingOf(ctx, holder, id); err != nil || !ok || h.Redaction != want {
			t.Errorf("HoldingOf(%s) = %+v, %v, %v: want held under the redaction %q", id, h, ok, err, want)
		}
	}
	if rep, err := verifyChain(ctx, d); err != nil || rep.FirstBroken != 0 || rep.Entries != int64(len(want)) {
		t.Fatalf("AuditVerify = %+v, %v: want %d entries, none broken", rep, err, len(want))
	}
}

// TestHeldRecordsAcrossChunksAndOlderEntries: the records held are found across the chunks of a
// long command; an entry without count_held, as nodes wrote before it existed, writes every
// record as they did, so that a replica applying it after an upgrade agrees with one that applied
// it before; and a replayed entry writes nothing.
func TestHeldRecordsAcrossChunksAndOlderEntries(t *testing.T) {
	d := newDB(t)
	ctx := context.Background()
	const to, toID = "ncc.crisis.test", "spiffe://ncc.crisis.test/node/r1"
	count := func(action string) int {
		t.Helper()
		entries, err := d.AuditList(ctx, db.AuditFilter{Action: action, Limit: 10000})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range entries {
			if action == db.AuditResend {
				var m struct{ Records int }
				if err := json.Unmarshal([]byte(e.Detail), &m); err != nil {
					t.Fatal(err)
				}
				n += m.Records
			} else {
				n++
			}
		}
		return n
	}
	cmd := func(ids []int, countHeld bool) *pb.RecordDisclosures {
		c := &pb.RecordDisclosures{Recipient: to, RecipientId: toID, Via: "Query", At: hour(0), CountHeld: countHeld}
		for _, i := range ids {
			c.Disclosed = append(c.Disclosed, &pb.Disclosure{RecordId: fmt.Sprintf("r%03d", i), Version: 1, Policies: []string{"p@1"}})
		}
		return c
	}
	var every3rd, all []int
	for i := range 150 {
		all = append(all, i)
		if i%3 == 0 {
			every3rd = append(every3rd, i)
		}
	}
	if err := d.ApplyDisclosures(1, cmd(every3rd, true)); err != nil {
		t.Fatal(err)
	}
	if err := d.ApplyDisclosures(2, cmd(all, true)); err != nil { // 64 + 64 + 16 + 4 + 2 ids a statement
		t.Fatal(err)
	}
	if got, want := count(db.AuditDisclosure), 150; got != want {
		t.Fatalf("%d disclosures after 50 then 150 records, 50 of them held; want %d", got, want)
	}
	if got := count(db.AuditResend); got != 50 {
		t.Fatalf("%d records counted as sent again, want the 50 held", got)
	}
	if err := d.ApplyDisclosures(2, cmd(all, true)); err != nil { // replayed: skipped
		t.Fatal(err)
	}
	if err := d.ApplyDisclosures(3, cmd(all[:10], false)); err != nil { // an older node's entry
		t.Fatal(err)
	}
	if got, want := count(db.AuditDisclosure), 160; got != want {
		t.Fatalf("%d disclosures after an entry without count_held of 10 held records, want %d: each written as before", got, want)
	}
	if got := count(db.AuditResend); got != 50 {
		t.Fatalf("%d records counted as sent again after the replay and the older entry, want 50", got)
	}
}

// disclosureScript applies, to a fresh database, commands of every kind that write audit entries,
// with disclosures of more records than one statement takes (and a tail), mixed policies, ids
// that JSON escapes, a record disclosed twice in one command, retractions in the same command as
// disclosures, a replayed index, and long retractions.
func disclosureScript(t *testing.T, d *db.DB) {
	t.Helper()
	const to, toID = "ncc.crisis.test", "spiffe://ncc.crisis.test/node/r1"
	idx := uint64(0)
	next := func() uint64 { idx++; return idx }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.ApplyPhaseStep(next(), &pb.PhaseStep{Crisis: "oekraine", Phase: "warm", Officer: "spiffe://lcvs.crisis.test/user/o", Reason: "start", At: hour(0)}); err != nil {
		t.Fatal(err)
	}
	must(d.ApplyDisclosures(next(), &pb.RecordDisclosures{Recipient: to, RecipientId: toID, Via: "Subscribe", At: hour(1),
		Disclosed: []*pb.Disclosure{{RecordId: "one", Version: 1, Policies: []string{"p@1"}}}}))

	policies := [][]string{nil, {}, {"p@1"}, {"p@1", "q@2"}, {`r"\<&>@3`}}
	odd := []string{`c"<&>`, "é\u2028\u2029", "tab\there", `back\slash`, "\x01ctl", "ok"}
	big := &pb.RecordDisclosures{Recipient: to, RecipientId: toID, Via: "Query", At: hour(2)}
	for i := range 1037 {
		id := fmt.Sprintf("rec-%05d", i)
		if i%97 == 0 {
			id += odd[(i/97)%len(odd)]
		}
		big.Disclosed = append(big.Disclosed, &pb.Disclosure{RecordId: id, Version: int64(i%5 + 1), Policies: policies[i%len(policies)]})
	}
	big.Disclosed = append(big.Disclosed, &pb.Disclosure{RecordId: "rec-00003", Version: 9, Policies: []string{"q@2"}}) // twice: the later wins
	i3 := next()
	must(d.ApplyDisclosures(i3, big))
	must(d.ApplyDisclosures(i3, big)) // replayed: skipped

	must(d.ApplyAudit(next(), []db.AuditEntry{{At: hour(3).AsTime(), Actor: "spiffe://lcvs.crisis.test/user/u", Action: db.AuditSearch, Subject: "bench", Detail: `{"peers":25}`}}))

	mixed := &pb.RecordDisclosures{Recipient: to, RecipientId: toID, Via: "Subscribe", At: hour(4),
		Disclosed: []*pb.Disclosure{
			{RecordId: "new-1", Version: 1, Policies: []string{"p@1"}},
			{RecordId: "rec-00010", Version: 6, Policies: []string{"p@1"}},
			{RecordId: "gone-same-command", Version: 1, Policies: []string{"p@1"}},
		},
		Retracted: []*pb.Disclosure{
			{RecordId: "gone-same-command", Reason: "no longer granted"},
			{RecordId: "rec-00011", Reason: `expired "valid_until" <now>`},
			{RecordId: "never-disclosed", Reason: ""},
		}}
	must(d.ApplyDisclosures(next(), mixed))

	must(d.ApplyDisclosures(next(), &pb.RecordDisclosures{Recipient: "vr-utrecht.crisis.test", RecipientId: "spiffe://vr-utrecht.crisis.test/node/a", Via: "Query", At: hour(5),
		Disclosed: big.Disclosed[:300]}))

	long := &pb.RecordDisclosures{Recipient: to, RecipientId: toID, Via: "Subscribe", At: hour(6)}
	for _, x := range big.Disclosed[100:700] {
		long.Retracted = append(long.Retracted, &pb.Disclosure{RecordId: x.RecordId, Reason: "policy revoked"})
	}
	must(d.ApplyDisclosures(next(), long))
	must(d.ApplyDisclosures(next(), &pb.RecordDisclosures{Recipient: to, RecipientId: toID, Via: "Query", At: hour(7)})) // nothing: only the index moves
}

// auditChecksum hashes every audit and disclosures row and meta, through a handle of its own.
func auditChecksum(t *testing.T, path string) string {
	t.Helper()
	return queriesChecksum(t, path,
		`SELECT seq, at, actor, action, subject, hex(detail), hex(prev_hash), hex(hash) FROM audit ORDER BY seq`,
		`SELECT recipient, hex(record_id), version, policies, at FROM disclosures ORDER BY recipient, record_id`,
		`SELECT key, value FROM meta ORDER BY key`,
	)
}

// TestApplyDisclosuresUnchanged pins every byte the disclosure commands leave in the audit log
// and the disclosures table: seq, time, actor, action, subject, detail, both hashes. The
// checksum was taken with the code that wrote one row per statement, so entries written before
// and after bulk inserts are the same, and `audit verify` accepts a chain that mixes them. It
// changed once since, with disclosures kept per holder: the script's commands name no holder, so
// their rows are keyed by the recipient's node (spiffe://TD/node/*) instead of its trust domain;
// the audit entries stayed byte for byte the same.
func TestApplyDisclosuresUnchanged(t *testing.T) {
	d := newDB(t)
	disclosureScript(t, d)
	const want = "e1b3f99139433ef5e01efa8be1d88cabe2419782b6152780a8972aa3d1a00ba6"
	if got := auditChecksum(t, d.Path()); got != want {
		t.Errorf("audit and disclosures checksum = %s, want %s", got, want)
	}
	rep, err := verifyChain(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	if rep.FirstBroken != 0 || rep.Entries != 1+1+1038+1+6+300+600 {
		t.Fatalf("AuditVerify = %+v, want %d entries, none broken", rep, 1+1+1038+1+6+300+600)
	}
}

// TestDisclosuresPerHolder: two holders of one trust domain, its node and a person, hold and lose
// their copies apart: a retraction to one leaves the other's. A command without a holder, as an
// older node wrote it, counts for the domain's node.
func TestDisclosuresPerHolder(t *testing.T) {
	d := newDB(t)
	ctx := context.Background()
	const to = "ncc.crisis.test"
	node, editor := "spiffe://"+to+"/node/*", "spiffe://"+to+"/user/editor"
	x := []*pb.Disclosure{{RecordId: "x", Version: 1, Policies: []string{"p@1"}}}
	cmds := []*pb.RecordDisclosures{
		{Recipient: to, RecipientId: "spiffe://" + to + "/node/r1", Via: "Subscribe", At: hour(0), Disclosed: x, CountHeld: true}, // no holder: the node
		{Recipient: to, RecipientId: editor, Holder: editor, Via: "Query", At: hour(1), Disclosed: x, CountHeld: true},
		{Recipient: to, RecipientId: editor, Holder: editor, Via: "Subscribe", At: hour(2), Retracted: []*pb.Disclosure{{RecordId: "x", Reason: "no longer granted"}}},
	}
	for i, c := range cmds {
		if err := d.ApplyDisclosures(uint64(i+1), c); err != nil {
			t.Fatal(err)
		}
	}
	for holder, want := range map[string]int{node: 1, editor: 0} {
		held, err := d.Disclosed(ctx, holder)
		if err != nil {
			t.Fatal(err)
		}
		if len(held) != want || want == 1 && held["x"] != 1 {
			t.Errorf("%s holds %v, want %d record", holder, held, want)
		}
	}
	if got, err := d.Recipients(ctx, "x"); err != nil || len(got) != 1 || got[0] != node {
		t.Errorf("x is held by %v (%v), want [%s]", got, err, node)
	}
}

// TestApplyDisclosuresPurposes: a command that records purposes writes, in each disclosure's
// entry, the stated purpose and the purpose of each granting policy, in the key order
// json.Marshal gives; a resend states the purpose too; the policies that refused the stated
// purpose are one federation.refuse entry. AuditList's Purpose selects on either purpose.
func TestApplyDisclosuresPurposes(t *testing.T) {
	d := newDB(t)
	ctx := context.Background()
	const to = "ncc.crisis.test"
	c := &pb.RecordDisclosures{
		Recipient: to, RecipientId: "spiffe://" + to + "/node/r1", Holder: "spiffe://" + to + "/node/*", Via: "Query", At: hour(0),
		CountHeld: true, RecordsPurpose: true, StatedPurpose: "opvang",
		PolicyPurposes: map[string]string{"p@1": "spreiding", "q@2": "opvang \"nood\""},
		Disclosed: []*pb.Disclosure{
			{RecordId: "x", Version: 1, Policies: []string{"q@2", "p@1"}},
			{RecordId: "y", Version: 3, Policies: []string{"p@1"}},
		},
		Refused: []*pb.PurposeRefusal{{Policy: "r@1", Records: 2}},
	}
	if err := d.ApplyDisclosures(1, c); err != nil {
		t.Fatal(err)
	}
	c.At, c.Disclosed, c.Refused = hour(1), c.Disclosed[1:], nil
	if err := d.ApplyDisclosures(2, c); err != nil {
		t.Fatal(err)
	}
	if err := d.ApplyAudit(3, []db.AuditEntry{{At: hour(2).AsTime(), Actor: "x", Action: "other", Detail: `{"stated_purpose":"opvang"}`}}); err != nil {
		t.Fatal(err)
	}
	all, err := d.AuditList(ctx, db.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range all {
		got = append(got, e.Action+" "+e.Subject+" "+e.Detail)
	}
	want := []string{
		`federation.disclose x {"policies":["q@2","p@1"],"purposes":{"p@1":"spreiding","q@2":"opvang \"nood\""},"recipient":"ncc.crisis.test","stated_purpose":"opvang","version":1,"via":"Query"}`,
		`federation.disclose y {"policies":["p@1"],"purposes":{"p@1":"spreiding"},"recipient":"ncc.crisis.test","stated_purpose":"opvang","version":3,"via":"Query"}`,
		`federation.refuse ncc.crisis.test {"policies":{"r@1":2},"recipient":"ncc.crisis.test","stated_purpose":"opvang","via":"Query"}`,
		`federation.resend ncc.crisis.test {"recipient":"ncc.crisis.test","records":1,"stated_purpose":"opvang","via":"Query"}`,
		`other  {"stated_purpose":"opvang"}`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("audit entries\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for purpose, want := range map[string]int{"opvang": 5, "spreiding": 2, `opvang "nood"`: 1, "none": 0} {
		got, err := d.AuditList(ctx, db.AuditFilter{Purpose: purpose})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != want {
			t.Errorf("AuditList(purpose %q) = %d entries, want %d", purpose, len(got), want)
		}
	}
	rep, err := verifyChain(ctx, d)
	if err != nil || rep.FirstBroken != 0 {
		t.Fatalf("AuditVerify = %+v, %v", rep, err)
	}
}

// TestStatedPurpose: the purpose a partner stated last, by trust domain, is kept from the
// commands that record purposes, and a command of an earlier time does not take it back; a
// database of before (schema 27) gets it from its audit log when it is migrated.
func TestStatedPurpose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "knooppunt.db")
	d := openDB(t, path)
	ctx := context.Background()
	const to = "ncc.crisis.test"
	say := func(index uint64, at *timestamppb.Timestamp, purpose string, refused bool) {
		t.Helper()
		c := &pb.RecordDisclosures{Recipient: to, RecipientId: "spiffe://" + to + "/node/r1", Holder: "spiffe://" + to + "/node/*", Via: "Subscribe", At: at,
			CountHeld: true, RecordsPurpose: true, StatedPurpose: purpose}
		if refused {
			c.Refused = []*pb.PurposeRefusal{{Policy: "r@1", Records: 2}}
		} else {
			c.Disclosed = []*pb.Disclosure{{RecordId: fmt.Sprintf("x%d", index), Version: 1, Policies: []string{"p@1"}}}
		}
		if err := d.ApplyDisclosures(index, c); err != nil {
			t.Fatal(err)
		}
	}
	stated := func(td string) string {
		t.Helper()
		p, _, ok, err := d.StatedPurpose(ctx, td)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return "(none)"
		}
		return p
	}
	if got := stated(to); got != "(none)" {
		t.Fatalf("before any command: %q", got)
	}
	say(1, hour(1), "opvang", false)
	say(2, hour(3), "spreiding", true) // a refusal states it too
	say(3, hour(2), "oud", false)      // a command of an earlier time
	if got := stated(to); got != "spreiding" {
		t.Fatalf("StatedPurpose = %q, want the latest, spreiding", got)
	}
	// A person's search at the partner states a purpose of its own: the node's stays (review AG,
	// AG2).
	if err := d.ApplyDisclosures(4, &pb.RecordDisclosures{Recipient: to, RecipientId: "spiffe://" + to + "/user/x", Holder: "spiffe://" + to + "/user/x", Via: "Query", At: hour(4),
		CountHeld: true, RecordsPurpose: true, StatedPurpose: "iets anders", Disclosed: []*pb.Disclosure{{RecordId: "q1", Version: 1, Policies: []string{"p@1"}}}}); err != nil {
		t.Fatal(err)
	}
	if got := stated(to); got != "spreiding" {
		t.Fatalf("after a search: StatedPurpose = %q, want the subscription's, spreiding", got)
	}
	if got := stated("szw.crisis.test"); got != "(none)" {
		t.Fatalf("another partner: %q", got)
	}

	// Schema 27 with the same audit log: the migration reads it from there.
	d.Close()
	h, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Exec(`DROP TABLE stated_purposes; PRAGMA user_version = 27`); err != nil {
		t.Fatal(err)
	}
	h.Close()
	d = openDB(t, path)
	if got := stated(to); got != "spreiding" {
		t.Fatalf("after migration 28: StatedPurpose = %q, want spreiding, from the audit log", got)
	}
}

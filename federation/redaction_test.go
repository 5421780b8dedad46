package federation_test

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/knooppunt/knooppunt/federation/fedtest"
	"github.com/knooppunt/knooppunt/federation/search"
	"github.com/knooppunt/knooppunt/node"
	"github.com/knooppunt/knooppunt/node/clustertest"
	"github.com/knooppunt/knooppunt/node/db"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// redactPaths are what the policy to b redacts: a nested field and a top-level one, sorted, as a
// decision lists them.
var redactPaths = []string{"body.contact.phone", "body.contact_phone"}

// arrived is a record as a recipient holds it, or as the source's preview says it would.
type arrived struct {
	version  int64
	body     string // the body as one JSON value, members sorted
	redacted string // the redacted paths, joined by commas
}

// canonicalBody writes a body as encoding/json does, so that equal JSON values compare equal.
func canonicalBody(t *testing.T, b []byte) string {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("body %s: %v", b, err)
	}
	out, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// redactedFields lists the redacted fields that a body still has, by their path; decoding first
// also finds a key that the source spelt with an escape.
func redactedFields(t *testing.T, b []byte) []string {
	t.Helper()
	var body map[string]any
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatalf("body %s: %v", b, err)
	}
	var found []string
	if _, ok := body["contact_phone"]; ok {
		found = append(found, "body.contact_phone")
	}
	if c, ok := body["contact"].(map[string]any); ok {
		if _, ok := c["phone"]; ok {
			found = append(found, "body.contact.phone")
		}
	}
	return found
}

// leaks lists the secrets that data holds.
func leaks(data []byte, secrets []string) []string {
	var out []string
	for _, s := range secrets {
		if bytes.Contains(data, []byte(s)) {
			out = append(out, s)
		}
	}
	return out
}

// filesHolding lists the files under dir that hold any of the secrets: the SQLite database and
// its write-ahead log, the Raft log and snapshots, whatever the node wrote.
func filesHolding(t *testing.T, dir string, secrets []string) []string {
	t.Helper()
	var out []string
	clustertest.EachFile(t, dir, func(rel string, data []byte) {
		if found := leaks(data, secrets); len(found) > 0 {
			out = append(out, filepath.Base(rel)+": "+strings.Join(found, ", "))
		}
	})
	return out
}

// TestRedactionAcrossTheWire has a source share shelter records with two peers: with b under a
// policy that redacts a top-level and a nested body field, with c under one that redacts
// nothing. The records include one whose redacted key the writer spelt with a JSON escape and
// one without the field, and one is updated after it arrived. It checks that b's cache, b's
// search results (answered by a, and from the cache once a is down), b's picture and every file
// b's node wrote never hold a redacted field, neither its key nor its value; that the source's
// Preview of each policy for its recipient lists exactly the records that arrived, at their
// versions, with the same bodies and the same redacted paths; and, as the control that makes the
// rest mean something, that c received the very values b never saw.
func TestRedactionAcrossTheWire(t *testing.T) {
	f := fedtest.Start(t, fedtest.Options{Orgs: 3, Reevaluate: 10 * time.Minute})
	a, b, c := f.Orgs[0], f.Orgs[1], f.Orgs[2]
	const crisis = "redaction"
	origin := a.TD.Name()

	policies := map[*fedtest.Org]string{
		b: a.Approve(t, policyDoc("shelters-to-b", spiffeOf(b), "shelter.capacity", "internal",
			"redact: ["+strings.Join(redactPaths, ", ")+"]\n")),
		c: a.Approve(t, policyDoc("shelters-to-c", spiffeOf(c), "shelter.capacity", "internal", "")),
	}
	shelter := func(id string, class pb.Classification, body string) *pb.Record {
		return &pb.Record{Id: id, Kind: "shelter.capacity", Crisis: crisis, Region: "VR09", Classification: class, Body: []byte(body)}
	}
	a.Put(t, shelter("s1", pb.Classification_INTERNAL,
		`{"municipality":"Utrecht","beds_total":100,"beds_free":12,"contact_phone":"+31-30-555-0101","contact":{"name":"desk","phone":"+31-30-555-0111"}}`))
	a.Put(t, shelter("s2", pb.Classification_INTERNAL,
		`{"municipality":"Zeist","beds_total":40,"beds_free":3,"contact_phone":"+31-30-555-0201","notes":"call ahead"}`))
	a.Put(t, shelter("s3", pb.Classification_INTERNAL, `{"municipality":"Houten","beds_total":20,"beds_free":20}`))
	a.Put(t, shelter("s4", pb.Classification_INTERNAL,
		`{"municipality":"Nieuwegein","beds_total":5,"beds_free":1,"contact\u005fphone":"+31-30-555-0401"}`))
	a.Put(t, shelter("s5", pb.Classification_CONFIDENTIAL,
		`{"municipality":"IJsselstein","beds_total":9,"beds_free":9,"contact_phone":"+31-30-555-0501"}`))
	want := map[string]int64{"s1": 1, "s2": 1, "s3": 1, "s4": 1}
	waitHeld(t, b, crisis, origin, want, "b receives the four internal shelters")
	// An update travels on the subscription rather than in its first walk; it is redacted too.
	a.Put(t, shelter("s1", pb.Classification_INTERNAL,
		`{"municipality":"Utrecht","beds_total":100,"beds_free":11,"contact_phone":"+31-30-555-0102","contact":{"name":"desk","phone":"+31-30-555-0112"}}`))
	want["s1"] = 2
	waitHeld(t, b, crisis, origin, want, "b receives the update of s1")
	waitHeld(t, c, crisis, origin, want, "c receives the four internal shelters")
	// What each copy says was withheld: the redacted paths its record has, and no other.
	withheldFrom := map[string][]string{"s1": redactPaths, "s2": {"body.contact_phone"}, "s3": nil, "s4": {"body.contact_phone"}}
	// Every value of a redacted field that a granted record ever had; s5 is above the ceiling
	// and goes to nobody.
	secrets := []string{"+31-30-555-0101", "+31-30-555-0111", "+31-30-555-0201", "+31-30-555-0401", "+31-30-555-0102", "+31-30-555-0112"}

	cached := func(o *fedtest.Org) map[string]arrived {
		t.Helper()
		recs, err := o.Node.DB().ForeignList(fedtest.Call(t), db.ForeignFilter{Origin: origin, Crisis: crisis})
		if err != nil {
			t.Fatalf("%s: cache: %v", o.Name, err)
		}
		out := map[string]arrived{}
		for _, fr := range recs {
			out[fr.Record.Id] = arrived{fr.Record.Version, canonicalBody(t, fr.Record.Body), strings.Join(fr.Redacted, ",")}
			if o == b {
				if got := redactedFields(t, fr.Record.Body); len(got) > 0 {
					t.Errorf("b's cache holds %s with %v: %s", fr.Record.Id, got, fr.Record.Body)
				}
				if got := leaks(fr.Record.Body, secrets); len(got) > 0 {
					t.Errorf("b's cache holds %s with %v", fr.Record.Id, got)
				}
				if !slices.Equal(fr.Redacted, withheldFrom[fr.Record.Id]) {
					t.Errorf("b's cache says %v were redacted from %s, want %v", fr.Redacted, fr.Record.Id, withheldFrom[fr.Record.Id])
				}
			}
		}
		return out
	}

	// The preview of each policy agrees with what its recipient holds: the same records at the
	// same versions, the same bodies, the same redacted paths.
	for _, o := range []*fedtest.Org{b, c} {
		prev, err := pb.NewPolicyServiceClient(a.As(t, a.Officers[0])).Preview(fedtest.Call(t),
			&pb.PreviewRequest{Id: policies[o], Recipient: spiffeOf(o) + "/node/r1"})
		if err != nil {
			t.Fatalf("preview of %s for %s: %v", policies[o], o.Name, err)
		}
		previewed := map[string]arrived{}
		for _, it := range prev.Items {
			previewed[it.Record.Id] = arrived{it.Record.Version, canonicalBody(t, it.Record.Body), strings.Join(it.Redacted, ",")}
		}
		if got := cached(o); !reflect.DeepEqual(got, previewed) {
			t.Errorf("%s holds\n\t%+v\nthe source's preview of %s says\n\t%+v", o.Name, got, policies[o], previewed)
		}
		if prev.Total != int64(len(want)) {
			t.Errorf("the preview for %s counts %d records, want %d", o.Name, prev.Total, len(want))
		}
	}

	// The control: c, under a policy that redacts nothing, received the values b never saw, and
	// reading the node's files finds them, so that finding none in b's means something.
	for _, e := range c.Picture(t, crisis).Entries {
		if e.Record.Id == "s1" && len(redactedFields(t, e.Record.Body)) != 2 {
			t.Fatalf("c holds s1 as %s: the control needs it whole", e.Record.Body)
		}
	}
	fedtest.Eventually(t, 10*time.Second, "c's node files hold the values it received", func() (bool, string) {
		held := filesHolding(t, c.DataDir(), secrets)
		return len(held) > 0, "no file of c holds any of " + strings.Join(secrets, ", ")
	})

	checkHits := func(what string, resp *pb.SearchResponse, fromCache bool) {
		t.Helper()
		var ids []string
		for _, h := range resp.Hits {
			if h.Source != a.Name {
				continue
			}
			ids = append(ids, h.Record.Id)
			if h.FromCache != fromCache {
				t.Errorf("%s: hit %s from cache %v, want %v", what, h.Record.Id, h.FromCache, fromCache)
			}
			if got := redactedFields(t, h.Record.Body); len(got) > 0 {
				t.Errorf("%s: hit %s has %v: %s", what, h.Record.Id, got, h.Record.Body)
			}
			if !slices.Equal(h.Redacted, withheldFrom[h.Record.Id]) {
				t.Errorf("%s: hit %s says %v were redacted, want %v", what, h.Record.Id, h.Redacted, withheldFrom[h.Record.Id])
			}
		}
		sort.Strings(ids)
		if !slices.Equal(ids, []string{"s1", "s2", "s3", "s4"}) {
			t.Errorf("%s: hits of a %v, want s1 to s4", what, ids)
		}
		raw, err := proto.Marshal(resp)
		if err != nil {
			t.Fatal(err)
		}
		if got := leaks(raw, secrets); len(got) > 0 {
			t.Errorf("%s: the answer holds %v", what, got)
		}
	}
	resp, _ := b.Search(t, &pb.SearchRequest{Filter: &pb.Filter{Crisis: crisis}})
	checkHits("b's search, answered by a", resp, false)

	pic := b.Picture(t, crisis)
	raw, err := proto.Marshal(pic)
	if err != nil {
		t.Fatal(err)
	}
	if got := leaks(raw, secrets); len(got) > 0 {
		t.Errorf("b's picture holds %v", got)
	}
	for _, e := range pic.Entries {
		if got := redactedFields(t, e.Record.Body); len(got) > 0 {
			t.Errorf("b's picture shows %s with %v: %s", e.Record.Id, got, e.Record.Body)
		}
	}
	if len(pic.Entries) != len(want) {
		t.Errorf("b's picture has %d entries, want %d", len(pic.Entries), len(want))
	}

	// With a down, b answers from its cache.
	a.Stop(t)
	resp, _ = b.Search(t, &pb.SearchRequest{Filter: &pb.Filter{Crisis: crisis}, TimeoutMs: 500})
	if i := slices.IndexFunc(resp.Peers, func(p *pb.PeerStatus) bool { return p.Peer == a.Name }); i < 0 || resp.Peers[i].State == search.Answered {
		t.Fatalf("b's search with a down: peers %v, want a not answering", resp.Peers)
	}
	checkHits("b's search from its cache", resp, true)

	if held := filesHolding(t, b.DataDir(), secrets); len(held) > 0 {
		t.Errorf("b's node wrote redacted values to disk: %v", held)
	}
}

// TestMendedRedactionReachesHolders: a policy whose redaction missed a field (a misspelt path)
// is mended by a new version. The recipient already holds the record at its current version,
// whole; the mended policy must still reach it: the source sends the record again under the new
// policy (and audits that disclosure), and the recipient's copy, the history of its earlier
// versions and, within erasure.within, every file of its data directory lose the field.
func TestMendedRedactionReachesHolders(t *testing.T) {
	f := fedtest.Start(t, fedtest.Options{Orgs: 2, Reevaluate: 10 * time.Minute, EraseWithin: 2 * time.Second})
	a, b := f.Orgs[0], f.Orgs[1]
	const crisis = "mended"
	origin := a.TD.Name()
	shelter := func(free int, phone string) *pb.Record {
		return &pb.Record{Id: "s1", Kind: "shelter.capacity", Crisis: crisis, Region: "VR09", Classification: pb.Classification_INTERNAL,
			Body: []byte(`{"municipality":"Utrecht","beds_total":100,"beds_free":` + strconv.Itoa(free) + `,"contact_phone":"` + phone + `"}`)}
	}
	secrets := []string{"+31-30-555-0901", "+31-30-555-0902"}
	first := a.Approve(t, policyDoc("shelters-to-b", spiffeOf(b), "shelter.capacity", "internal", "redact: [body.contact_phon]\n"))
	a.Put(t, shelter(12, secrets[0]))
	a.Put(t, shelter(11, secrets[1]))
	waitHeld(t, b, crisis, origin, map[string]int64{"s1": 2}, "b receives s1@2")
	copyOf := func() db.Foreign {
		t.Helper()
		recs, err := b.Node.DB().ForeignList(fedtest.Call(t), db.ForeignFilter{Origin: origin, Crisis: crisis})
		if err != nil || len(recs) != 1 {
			t.Fatalf("b's cache of %s: %v %v", crisis, recs, err)
		}
		return recs[0]
	}
	if got := leaks(copyOf().Record.Body, secrets[1:]); len(got) != 1 {
		t.Fatalf("the control: under the misspelt redaction b holds s1 as %s, want the phone number in it", copyOf().Record.Body)
	}

	mended := a.Approve(t, policyDoc("shelters-to-b", spiffeOf(b), "shelter.capacity", "internal", "redact: [body.contact_phone]\n"))
	fedtest.Eventually(t, 10*time.Second, "b's copy of s1 loses the field the mended policy withholds", func() (bool, string) {
		c := copyOf()
		return c.Record.Version == 2 && len(leaks(c.Record.Body, secrets)) == 0 && slices.Equal(c.Redacted, []string{"body.contact_phone"}),
			fmt.Sprintf("s1@%d %s, redacted %v", c.Record.Version, c.Record.Body, c.Redacted)
	})
	hist, err := b.Node.DB().History(fedtest.Call(t), db.HistoryFilter{Kinds: []string{"shelter.capacity"}, Crisis: crisis})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range hist {
		if s := fmt.Sprint(v); len(leaks([]byte(s), secrets)) > 0 {
			t.Errorf("b's history of s1 still holds a withheld value: %s", s)
		}
	}
	if len(hist) != 1 || hist[0].Version != 2 {
		t.Errorf("b's history of s1 after the mend: %v, want only version 2 as redacted now", hist)
	}
	// The source says under which policy b holds s1 now.
	fedtest.Eventually(t, 10*time.Second, "a audits that b holds s1 under the mended policy", func() (bool, string) {
		var under []string
		for _, e := range a.Audit(t, db.AuditDisclosure) {
			if e.Subject == "s1" {
				under = append(under, fmt.Sprint(auditDetail(t, e)["policies"]))
			}
		}
		return slices.Contains(under, "["+mended+"]") && slices.Contains(under, "["+first+"]"),
			fmt.Sprintf("a's disclosures of s1 name the policies %v, want %s and then %s", under, first, mended)
	})
	// Each disclosure says what was withheld from s1: nothing under the misspelt path, which s1
	// does not have, and then the mended one.
	var withheld []string
	for _, e := range a.Audit(t, db.AuditDisclosure) {
		if e.Subject == "s1" {
			withheld = append(withheld, fmt.Sprint(auditDetail(t, e)["redacted"]))
		}
	}
	if slices.Contains(withheld, "[body.contact_phon]") || !slices.Contains(withheld, "<nil>") || !slices.Contains(withheld, "[body.contact_phone]") {
		t.Errorf("a's disclosures of s1 say %v were withheld, want none and then [body.contact_phone]: s1 never had body.contact_phon", withheld)
	}
	fedtest.Eventually(t, 10*time.Second, "no file of b holds the withheld values", func() (bool, string) {
		held := filesHolding(t, b.DataDir(), secrets)
		return len(held) == 0, fmt.Sprint(held)
	})
}

// TestRedactionOfAFieldTheCopyLacks: a policy that starts to withhold a field the current
// version lacks, but an earlier version had, withdraws that version from the recipient's history.
// The copy itself does not change (nothing of it is withheld), so the source says that its
// redaction did.
func TestRedactionOfAFieldTheCopyLacks(t *testing.T) {
	f := fedtest.Start(t, fedtest.Options{Orgs: 2, Reevaluate: 10 * time.Minute, EraseWithin: 2 * time.Second})
	a, b := f.Orgs[0], f.Orgs[1]
	const crisis = "lacks"
	origin := a.TD.Name()
	const secret = "+31-30-555-0903"
	body := `{"municipality":"Utrecht","beds_total":100,"beds_free":12`
	first := a.Approve(t, policyDoc("shelters-to-b", spiffeOf(b), "shelter.capacity", "internal", ""))
	a.Put(t, &pb.Record{Id: "s1", Kind: "shelter.capacity", Crisis: crisis, Region: "VR09", Classification: pb.Classification_INTERNAL,
		Body: []byte(body + `,"contact_phone":"` + secret + `"}`)})
	// Each version reaches b before the next is written: a subscription sends the latest.
	waitHeld(t, b, crisis, origin, map[string]int64{"s1": 1}, "b receives s1@1")
	a.Put(t, &pb.Record{Id: "s1", Kind: "shelter.capacity", Crisis: crisis, Region: "VR09", Classification: pb.Classification_INTERNAL,
		Body: []byte(body + `}`)})
	waitHeld(t, b, crisis, origin, map[string]int64{"s1": 2}, "b receives s1@2")
	history := func() []string {
		t.Helper()
		hist, err := b.Node.DB().History(fedtest.Call(t), db.HistoryFilter{Kinds: []string{"shelter.capacity"}, Crisis: crisis})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, v := range hist {
			out = append(out, fmt.Sprintf("v%d %v", v.Version, v))
		}
		return out
	}
	if h := history(); len(h) != 2 || len(leaks([]byte(strings.Join(h, "\n")), []string{secret})) != 1 {
		t.Fatalf("the control: b's history of s1 under a policy that withholds nothing is %q, want both versions, the first with the phone number", h)
	}

	second := a.Approve(t, policyDoc("shelters-to-b", spiffeOf(b), "shelter.capacity", "internal", "redact: [body.contact_phone]\n"))
	fedtest.Eventually(t, 10*time.Second, "a records that b holds s1 under the policy that withholds the phone number", func() (bool, string) {
		h, _, ok, err := a.Node.DB().HoldingOf(fedtest.Call(t), "spiffe://"+b.TD.Name()+"/node/*", "s1")
		if err != nil {
			t.Fatal(err)
		}
		return ok && slices.Equal(h.Policies, []string{second}) && h.Redaction == "body.contact_phone",
			fmt.Sprintf("b holds %+v (ok %v), want under %s (before: %s) and body.contact_phone", h, ok, second, first)
	})
	fedtest.Eventually(t, 10*time.Second, "b's history of s1 loses the version with the phone number", func() (bool, string) {
		h := history()
		return len(h) == 1 && len(leaks([]byte(h[0]), []string{secret})) == 0 && strings.HasPrefix(h[0], "v2 "), fmt.Sprintf("%q", h)
	})
	fedtest.Eventually(t, 10*time.Second, "no file of b holds the phone number", func() (bool, string) {
		held := filesHolding(t, b.DataDir(), []string{secret})
		return len(held) == 0, fmt.Sprint(held)
	})
}

// TestRedactionHeldBeforeItWasKept: a node upgraded to schema 20 holds its disclosures under no
// redaction, as the migration leaves them. The first subscription after the start sends every
// record held under a redacting policy again, saying that its redaction changed, and the holder
// drops the history of its earlier versions: a copy sent before redactions reached into lists
// may have kept a field withheld now.
func TestRedactionHeldBeforeItWasKept(t *testing.T) {
	f := fedtest.Start(t, fedtest.Options{Orgs: 2, Reevaluate: 10 * time.Minute})
	a, b := f.Orgs[0], f.Orgs[1]
	const crisis = "upgraded"
	origin := a.TD.Name()
	a.Approve(t, policyDoc("shelters-to-b", spiffeOf(b), "shelter.capacity", "internal", "redact: [body.contact_phone]\n"))
	for free := range 2 {
		a.Put(t, &pb.Record{Id: "s1", Kind: "shelter.capacity", Crisis: crisis, Region: "VR09", Classification: pb.Classification_INTERNAL,
			Body: []byte(`{"municipality":"Utrecht","beds_total":100,"beds_free":` + strconv.Itoa(10+free) + `,"contact_phone":"+31-30-555-0904"}`)})
		// Each version reaches b before the next is written: a subscription sends the latest.
		waitHeld(t, b, crisis, origin, map[string]int64{"s1": int64(free + 1)}, "b receives s1")
	}
	versions := func() int {
		t.Helper()
		hist, err := b.Node.DB().History(fedtest.Call(t), db.HistoryFilter{Kinds: []string{"shelter.capacity"}, Crisis: crisis})
		if err != nil {
			t.Fatal(err)
		}
		return len(hist)
	}
	if n := versions(); n != 2 {
		t.Fatalf("the control: b's history of s1 has %d versions, want 2", n)
	}
	holder := "spiffe://" + b.TD.Name() + "/node/*"
	fedtest.Eventually(t, 10*time.Second, "a records b's copy of s1 under its redaction", func() (bool, string) {
		h, _, _, err := a.Node.DB().HoldingOf(fedtest.Call(t), holder, "s1")
		return err == nil && h.Version == 2 && h.Redaction == "body.contact_phone", fmt.Sprintf("%+v %v", h, err)
	})

	// The upgrade: a's disclosures as migration 20 leaves them.
	a.Stop(t)
	h, err := sql.Open("sqlite3", "file:"+filepath.Join(a.DataDir(), node.DatabaseName))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Exec(`UPDATE disclosures SET redaction = ''`); err != nil {
		t.Fatal(err)
	}
	h.Close()
	a.Start(t)

	fedtest.Eventually(t, 20*time.Second, "b's history of s1 keeps only the copy sent again", func() (bool, string) {
		n := versions()
		return n == 1, fmt.Sprintf("%d versions", n)
	})
	// The source records the resend in its own time: the copy may reach b before that commits.
	fedtest.Eventually(t, 10*time.Second, "a records the resend under the redaction", func() (bool, string) {
		hd, _, _, err := a.Node.DB().HoldingOf(fedtest.Call(t), holder, "s1")
		return err == nil && hd.Redaction == "body.contact_phone", fmt.Sprintf("%+v, %v", hd, err)
	})
}

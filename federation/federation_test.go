package federation_test

// The tests of this file run federations of four organisations in one process: real nodes
// (node.Start) on loopback, each with its own trust domain and development CA, talking mTLS
// gRPC to each other. process_test.go runs the same scenarios with every node in its own
// process.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/federation/fedtest"
	"github.com/knooppunt/knooppunt/federation/identity"
	"github.com/knooppunt/knooppunt/federation/identity/identitytest"
	"github.com/knooppunt/knooppunt/federation/peerclient"
	"github.com/knooppunt/knooppunt/federation/search"
	"github.com/knooppunt/knooppunt/node"
	"github.com/knooppunt/knooppunt/node/config"
	"github.com/knooppunt/knooppunt/node/db"
	"github.com/knooppunt/knooppunt/node/metrics"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// nodes stops and starts the nodes of a federation: in-process or as processes.
type nodes interface {
	// kill stops the org's node: in-process with node.Stop, a process with SIGKILL.
	kill(t *testing.T, o *fedtest.Org)
	// restart starts the org's node again on its data directory and waits until it serves.
	restart(t *testing.T, o *fedtest.Org)
	// freshMetrics says whether a restarted node's counters start at zero (its own process).
	freshMetrics() bool
}

type inProcess struct{}

func (inProcess) kill(t *testing.T, o *fedtest.Org)    { o.Stop(t) }
func (inProcess) restart(t *testing.T, o *fedtest.Org) { o.Start(t) }
func (inProcess) freshMetrics() bool                   { return false }

// policyDoc is a sharing policy of kinds to one recipient, up to a classification, with extra
// YAML lines (such as phases).
func policyDoc(name, recipient, kind, ceiling, extra string) string {
	return fmt.Sprintf("name: %s\npurpose: fedtest\nrecipients: [%s]\nkinds: [%s]\nmax_classification: %s\n%s",
		name, recipient, kind, ceiling, extra)
}

func spiffeOf(o *fedtest.Org) string { return "spiffe://" + o.TD.Name() }

// waitHeld waits until o's picture of crisis holds exactly want of origin's records.
func waitHeld(t *testing.T, o *fedtest.Org, crisis, origin string, want map[string]int64, what string) {
	t.Helper()
	fedtest.Eventually(t, 10*time.Second, what, func() (bool, string) {
		got := o.Held(t, crisis, origin)
		return maps.Equal(got, want), o.Name + " holds " + fedtest.Describe(got) + ", want " + fedtest.Describe(want)
	})
}

// auditDetail decodes an audit entry's JSON detail.
func auditDetail(t *testing.T, e *pb.AuditEntry) map[string]any {
	t.Helper()
	var d map[string]any
	if err := json.Unmarshal([]byte(e.Detail), &d); err != nil {
		t.Fatalf("audit entry %d: detail %q: %v", e.Seq, e.Detail, err)
	}
	return d
}

// TestSubscribeUpdateRetract checks the life of a shared record in a federation of four: a
// record granted by an approved policy reaches the recipient's cache, and only its cache; an
// update arrives with the new version; revoking the policy, deleting the record, reclassifying
// it above the policy's ceiling and cooling the crisis below a phase-limited policy each
// retract it. Re-checks run on policy and phase changes at once, not on the periodic
// re-evaluation, which is set out of reach here.
func TestSubscribeUpdateRetract(t *testing.T) {
	log := identitytest.NewLog()
	f := fedtest.Start(t, fedtest.Options{Reevaluate: 10 * time.Minute, Logger: log.Logger})
	lifecycle(t, f)
	// b's operator learns why records left its cache: a line a retraction, with the reason.
	b := f.Orgs[1]
	for _, reason := range []string{"no longer granted", "deleted"} {
		log.Wait(t, 5*time.Second, "a peer withdrew records it had shared", func(e identitytest.Entry) bool {
			reasons, _ := e["reasons"].(map[string]any)
			return e.Str("org") == b.Name && e.Str("peer") == f.Orgs[0].Name && reasons[reason] != nil
		})
	}
}

func lifecycle(t *testing.T, f *fedtest.Federation) {
	a, b := f.Orgs[0], f.Orgs[1]
	const crisis = "lifecycle"
	origin := a.TD.Name()
	wait := func(want map[string]int64, what string) { t.Helper(); waitHeld(t, b, crisis, origin, want, what) }

	pol := a.Approve(t, policyDoc("sitreps-to-b", spiffeOf(b), "sitrep", "internal", ""))
	a.Put(t, fedtest.Sitrep("r1", crisis, pb.Classification_INTERNAL, "first"))
	wait(map[string]int64{"r1": 1}, "the granted record reaches b")

	a.Put(t, fedtest.Sitrep("r1", crisis, pb.Classification_INTERNAL, "second"))
	wait(map[string]int64{"r1": 2}, "the update reaches b with the new version")
	for _, e := range b.Picture(t, crisis).Entries {
		if e.Record.Id == "r1" && !strings.Contains(string(e.Record.Body), `"second"`) {
			t.Fatalf("b holds r1@2 with body %s, want the updated body", e.Record.Body)
		}
	}

	// The officer sees what b holds under the policy, and what its revocation withdraws.
	held := func(p *pb.PolicyInfo) string {
		var s []string
		for _, h := range p.Held {
			s = append(s, fmt.Sprintf("%s %d/%d", h.Holder, h.Alone, h.Records))
		}
		return strings.Join(s, ", ")
	}
	heldByB := "spiffe://" + b.TD.Name() + "/node/* 1/1"
	if p, err := pb.NewPolicyServiceClient(a.As(t, a.Officers[0])).Get(fedtest.Call(t), &pb.GetPolicyRequest{Id: pol}); err != nil || held(p) != heldByB {
		t.Errorf("Get %s: held %q, %v; want %q", pol, held(p), err, heldByB)
	}
	if p := a.Revoke(t, pol); held(p) != heldByB {
		t.Errorf("Revoke %s: held %q, want %q (what it withdraws)", pol, held(p), heldByB)
	}
	wait(map[string]int64{}, "revoking the policy retracts r1 from b")

	a.Approve(t, policyDoc("sitreps-to-b-again", spiffeOf(b), "sitrep", "internal", ""))
	wait(map[string]int64{"r1": 2}, "a new approved policy shares r1 again")
	a.Delete(t, "r1")
	wait(map[string]int64{}, "deleting r1 retracts it")

	a.Put(t, fedtest.Sitrep("r2", crisis, pb.Classification_INTERNAL, "ceiling"))
	wait(map[string]int64{"r2": 1}, "r2 reaches b")
	a.Put(t, fedtest.Sitrep("r2", crisis, pb.Classification_CONFIDENTIAL, "ceiling"))
	wait(map[string]int64{}, "reclassifying r2 above the ceiling retracts it")

	a.Approve(t, policyDoc("signals-when-warm", spiffeOf(b), "signal", "internal", "phases: [warm]\n"))
	a.Put(t, &pb.Record{Id: "s1", Kind: "signal", Crisis: crisis, Region: "VR09", Classification: pb.Classification_INTERNAL,
		Body: []byte(`{"summary":"more arrivals expected"}`)})
	a.SetPhase(t, crisis, "warm")
	wait(map[string]int64{"s1": 1}, "warming the crisis shares the phase-limited signal")
	a.SetPhase(t, crisis, "cold")
	wait(map[string]int64{}, "cooling the crisis retracts the phase-limited signal")

	// The source's audit says what went where and why it came back: every disclosure was to b,
	// and each retraction has the reason of its step.
	for _, e := range a.Audit(t, db.AuditDisclosure) {
		if d := auditDetail(t, e); d["recipient"] != b.TD.Name() {
			t.Errorf("a disclosed %s to %v: no policy grants it anything but b", e.Subject, d["recipient"])
		}
	}
	// A retraction names the policies the record was held under, and what became of them.
	want := []string{
		"r1 " + b.TD.Name() + ": no longer granted: held under sitreps-to-b@1 (revoked)",
		"r1 " + b.TD.Name() + ": deleted",
		"r2 " + b.TD.Name() + ": no longer granted: held under sitreps-to-b-again@1 (in force, no longer granting it)",
		"s1 " + b.TD.Name() + ": no longer granted: held under signals-when-warm@1 (in force, no longer granting it)",
	}
	// The source commits a retraction's audit entry together with the others of its batch,
	// which may be just after b has dropped the record: wait a moment for the last one.
	var got []string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		got = got[:0]
		for _, e := range a.Audit(t, db.AuditRetraction) {
			d := auditDetail(t, e)
			got = append(got, fmt.Sprintf("%s %v: %v", e.Subject, d["recipient"], d["reason"]))
		}
		if len(got) >= len(want) || time.Now().After(deadline) {
			break
		}
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("a's audit has the retractions\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Nobody else ever held a record of a.
	for _, o := range f.Orgs[2:] {
		if got := o.Held(t, crisis, origin); len(got) != 0 {
			t.Errorf("%s holds %s of a: no policy granted it anything", o.Name, fedtest.Describe(got))
		}
	}
}

// TestKillAndRestartPeer checks a federation when a peer goes away and comes back: a search
// returns within its deadline with the dead peer marked unreachable and answered from the cache,
// with the cache's age, and says it is partial; the subscription resumes when the peer returns,
// with no gap and no duplicate; and a subscriber that was down gets every change made meanwhile
// exactly once, its cursor only moving forward.
func TestKillAndRestartPeer(t *testing.T) {
	f := fedtest.Start(t, fedtest.Options{})
	killAndRestart(t, f, inProcess{})
}

func killAndRestart(t *testing.T, f *fedtest.Federation, ns nodes) {
	a, b := f.Orgs[0], f.Orgs[1]
	const crisis = "outage"
	origin := a.TD.Name()
	received := func(event string) float64 {
		return b.Metric(t, "knooppunt_federation_received_total", map[string]string{"peer": a.Name, "event": event})
	}
	// caughtUp waits until b has stored all a sent: its cursor of a is a's last change.
	caughtUp := func(what string) {
		t.Helper()
		last := a.LastSeq(t)
		fedtest.Eventually(t, 10*time.Second, what, func() (bool, string) {
			c := b.Cursor(t, a.Name)
			return c == last, fmt.Sprintf("b's cursor of a is %d, a's last change is %d", c, last)
		})
	}

	a.Approve(t, policyDoc("outage-to-b", spiffeOf(b), "sitrep", "internal", ""))
	written := time.Now()
	for _, id := range []string{"x", "w"} {
		a.Put(t, fedtest.Sitrep(id, crisis, pb.Classification_INTERNAL, "v1"))
	}
	waitHeld(t, b, crisis, origin, map[string]int64{"x": 1, "w": 1}, "b receives x and w")
	caughtUp("b stores its cursor with x and w")
	seen := time.Now() // b stored the last of what a sent before this

	if p := b.Peer(t, a.Name); p.Subscription != "open" || p.SubscriptionSince == nil || p.ReceivedAt == nil {
		t.Fatalf("b's peer a: subscription %q since %v, last delivery %v, want open, and both times", p.Subscription, p.SubscriptionSince, p.ReceivedAt)
	}

	// a goes away. b's search still answers, within the deadline, from what b holds.
	ns.kill(t, a)
	down := time.Now()
	var downSince time.Time
	fedtest.Eventually(t, 10*time.Second, "b's peer a says the subscription is down, with why", func() (bool, string) {
		p := b.Peer(t, a.Name)
		downSince = p.SubscriptionSince.AsTime()
		return p.Subscription == "down" && p.SubscriptionError != "" && !downSince.Before(down.Add(-time.Second)),
			fmt.Sprintf("subscription %q since %v: %q", p.Subscription, downSince, p.SubscriptionError)
	})
	const deadline = 1500 * time.Millisecond
	before := time.Now()
	resp, took := b.Search(t, &pb.SearchRequest{Filter: &pb.Filter{Crisis: crisis}, TimeoutMs: int32(deadline / time.Millisecond)})
	if took > deadline+500*time.Millisecond {
		t.Errorf("search took %s with a down, deadline %s", took, deadline)
	}
	if !resp.Partial {
		t.Errorf("search with a down is not marked partial: %v", resp.Peers)
	}
	var st *pb.PeerStatus
	for _, p := range resp.Peers {
		if p.Peer == a.Name {
			st = p
		} else if p.State != search.Answered {
			t.Errorf("peer %s is %s (%s), want answered", p.Peer, p.State, p.Error)
		}
	}
	if st == nil || (st.State != search.Unreachable && st.State != search.TimedOut) || st.Count != 2 {
		t.Fatalf("a's status in the search is %v, want unreachable or timed_out with 2 cached records", st)
	}
	// The cache was complete while the subscription was open: it is as old as what b last
	// heard from a, at least the subscription's outage; and b, seen caught up with the feed
	// open, heard from a at least once a heartbeat (250 ms) from then on until the kill.
	if lo, hi := before.Sub(downSince), time.Since(seen)+250*time.Millisecond+100*time.Millisecond; st.CacheAgeMs < lo.Milliseconds() || st.CacheAgeMs > hi.Milliseconds() {
		t.Errorf("cache age %dms, want between %s (the subscription's outage) and %s (a heartbeat before b was seen caught up; written %s ago)", st.CacheAgeMs, lo, hi, time.Since(written))
	}
	fromCache := map[string]int64{}
	for _, h := range resp.Hits {
		if h.Source == a.Name {
			if !h.FromCache || h.Record.Origin != origin {
				t.Errorf("hit %s of a: from_cache %v, origin %s", h.Record.Id, h.FromCache, h.Record.Origin)
			}
			fromCache[h.Record.Id] = h.Record.Version
		}
	}
	if want := map[string]int64{"x": 1, "w": 1}; !maps.Equal(fromCache, want) {
		t.Errorf("search served %s of a from the cache, want %s", fedtest.Describe(fromCache), fedtest.Describe(want))
	}

	// a comes back; the subscription resumes where it was: one new version, received once.
	ns.restart(t, a)
	fedtest.Eventually(t, 15*time.Second, "b's peer a says the subscription is open again", func() (bool, string) {
		p := b.Peer(t, a.Name)
		return p.Subscription == "open" && p.SubscriptionError == "", fmt.Sprintf("subscription %q: %q", p.Subscription, p.SubscriptionError)
	})
	cursor := b.Cursor(t, a.Name)
	ups := received("upsert")
	if ns.freshMetrics() {
		ups = received("upsert") // b's process did not restart: its counter goes on
	}
	a.Put(t, fedtest.Sitrep("x", crisis, pb.Classification_INTERNAL, "v2"))
	waitHeld(t, b, crisis, origin, map[string]int64{"x": 2, "w": 1}, "after a restarts, b receives x@2")
	caughtUp("b's cursor reaches a's last change after a restarts")
	if c := b.Cursor(t, a.Name); c <= cursor {
		t.Errorf("b's cursor of a went from %d to %d", cursor, c)
	}
	if n := received("upsert") - ups; n != 1 {
		t.Errorf("b received %v upserts from a after a restarted, want exactly 1 (x@2)", n)
	}

	// b goes away; a changes things meanwhile: x twice, a new record y, z created and deleted,
	// and w deleted. When b is back it gets x@4, y@1 and w's retraction, each exactly once.
	cursor = b.Cursor(t, a.Name)
	ups, rets := received("upsert"), received("retraction")
	ns.kill(t, b)
	a.Put(t, fedtest.Sitrep("x", crisis, pb.Classification_INTERNAL, "v3"))
	a.Put(t, fedtest.Sitrep("x", crisis, pb.Classification_INTERNAL, "v4"))
	a.Put(t, fedtest.Sitrep("y", crisis, pb.Classification_INTERNAL, "v1"))
	a.Put(t, fedtest.Sitrep("z", crisis, pb.Classification_INTERNAL, "v1"))
	a.Delete(t, "z")
	a.Delete(t, "w")
	ns.restart(t, b)
	if ns.freshMetrics() {
		ups, rets = 0, 0
	}
	last := a.LastSeq(t)
	prev := int64(-1)
	fedtest.Eventually(t, 15*time.Second, "b catches up with what a changed while b was down", func() (bool, string) {
		c := b.Cursor(t, a.Name)
		if c < prev || c < cursor || c > last {
			t.Fatalf("b's cursor of a moved to %d after %d (stored before the restart: %d, a's last change %d)", c, prev, cursor, last)
		}
		prev = c
		got := b.Held(t, crisis, origin)
		return c == last && maps.Equal(got, map[string]int64{"x": 4, "y": 1}), fmt.Sprintf("cursor %d of %d, holds %s", c, last, fedtest.Describe(got))
	})
	if n := received("upsert") - ups; n != 2 {
		t.Errorf("b received %v upserts from a while catching up, want exactly 2 (x@4, y@1)", n)
	}
	if n := received("retraction") - rets; n != 1 {
		t.Errorf("b received %v retractions from a while catching up, want exactly 1 (w)", n)
	}
	// The source's disclosures agree: every version it sent b, it sent once.
	sent := map[string]int{}
	for _, e := range a.Audit(t, db.AuditDisclosure) {
		d := auditDetail(t, e)
		sent[fmt.Sprintf("%s@%v", e.Subject, d["version"])]++
	}
	for _, want := range []string{"x@1", "w@1", "x@2", "x@4", "y@1"} {
		if sent[want] != 1 {
			t.Errorf("a disclosed %s to b %d times, want once (all: %v)", want, sent[want], sent)
		}
	}
	for _, never := range []string{"x@3", "z@1"} {
		if sent[never] != 0 {
			t.Errorf("a disclosed %s, which was superseded before b could see it, %d times", never, sent[never])
		}
	}
}

// TestDeniedRequestGetsNothingAndIsAudited checks that a peer that asks for what no policy
// grants it gets nothing, not even a hint of what exists, and that the request is audited.
func TestDeniedRequestGetsNothingAndIsAudited(t *testing.T) {
	f := fedtest.Start(t, fedtest.Options{})
	a, b, c := f.Orgs[0], f.Orgs[1], f.Orgs[2]
	a.Approve(t, policyDoc("sitreps-to-b", spiffeOf(b), "sitrep", "internal", ""))
	a.Put(t, fedtest.Sitrep("secret-plan", "denied", pb.Classification_INTERNAL, "for b only"))
	waitHeld(t, b, "denied", a.TD.Name(), map[string]int64{"secret-plan": 1}, "b receives the record")

	// c asks a, as c's node, over mTLS.
	fc := pb.NewFederationServiceClient(asPeer(t, c, a))
	stream, err := fc.Query(fedtest.Call(t), &pb.QueryRequest{Filter: &pb.Filter{Kinds: []string{"sitrep"}, Crisis: "denied"}})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := stream.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("c's query of a got %v, %v; want nothing (EOF)", r, err)
	}
	desc, err := fc.Describe(fedtest.Call(t), &pb.DescribeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if desc.Org != a.TD.Name() || len(desc.Kinds) != 0 {
		t.Fatalf("Describe for c = %v, want a's org and no kinds", desc)
	}
	fedtest.Eventually(t, 5*time.Second, "a audits c's denied query", func() (bool, string) {
		entries := a.Audit(t, db.AuditFederationDenied)
		for _, e := range entries {
			if e.Actor == c.Replica.ID.String() && e.Subject == c.TD.Name() && strings.Contains(e.Detail, `"method":"Query"`) &&
				strings.Contains(e.Detail, "no policy grants") {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d federation.denied entries: %v", len(entries), entries)
	})
	if got := c.Held(t, "denied", a.TD.Name()); len(got) != 0 {
		t.Fatalf("c holds %s of a", fedtest.Describe(got))
	}
	// A query that matches no record withholds nothing: it is kept as federation.nothing, so
	// that federation.denied lists real refusals only.
	stream, err = fc.Query(fedtest.Call(t), &pb.QueryRequest{Filter: &pb.Filter{Crisis: "geen-crisis"}})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := stream.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("c's query of a crisis without records got %v, %v; want nothing", r, err)
	}
	fedtest.Eventually(t, 5*time.Second, "a keeps c's empty query as federation.nothing", func() (bool, string) {
		entries := a.Audit(t, db.AuditFederationNothing)
		for _, e := range entries {
			if e.Actor == c.Replica.ID.String() && strings.Contains(e.Detail, "geen-crisis") && strings.Contains(e.Detail, "no record matches") {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d federation.nothing entries: %v", len(entries), entries)
	})
	for _, e := range a.Audit(t, db.AuditFederationDenied) {
		if strings.Contains(e.Detail, "geen-crisis") {
			t.Errorf("a query that matched nothing is audited as denied: %v", e)
		}
	}
	// A filter of any text is audited as JSON: a rune that Go's %q writes as \U, which JSON has
	// not (a tag character then, refused as invisible since), stopped a's group (its FSM refused
	// the entry on every replica). A noncharacter is text a label may hold that %q escapes so.
	odd := "geen-crisis-\U0001fffe"
	if stream, err = fc.Query(fedtest.Call(t), &pb.QueryRequest{Filter: &pb.Filter{Labels: map[string]string{"bron": odd}}}); err == nil {
		_, err = stream.Recv()
	}
	if !errors.Is(err, io.EOF) {
		t.Fatalf("c's query with an odd label: %v, want nothing", err)
	}
	fedtest.Eventually(t, 5*time.Second, "a keeps c's odd query as federation.nothing, in JSON", func() (bool, string) {
		for _, e := range a.Audit(t, db.AuditFederationNothing) {
			var d struct{ Filter string }
			if json.Unmarshal([]byte(e.Detail), &d) == nil && strings.Contains(d.Filter, "bron") {
				return true, ""
			}
		}
		return false, "not audited"
	})
	a.Put(t, fedtest.Sitrep("na-vreemd", "oekraine", pb.Classification_INTERNAL, "a serves on"))
}

// TestQueryRecordsEveryDisclosure checks that a Query larger than one Raft batch of disclosures
// has recorded and audited every record it sent by the time the stream ends OK, each version
// disclosed once and every record sent again counted; that a peer that walks away in the middle
// of a Query leaves every record it was sent recorded; and that the audit chain still verifies.
func TestQueryRecordsEveryDisclosure(t *testing.T) {
	f := fedtest.Start(t, fedtest.Options{Orgs: 2})
	a, b := f.Orgs[0], f.Orgs[1]
	const crisis, n = "bulk", 2500 // more than two batches of disclosures
	a.Approve(t, policyDoc("sitreps-to-b", spiffeOf(b), "sitrep", "internal", ""))
	rc := pb.NewRecordServiceClient(a.Local(t))
	for i := 0; i < n; i += 500 {
		var batch []*pb.Record
		for j := i; j < i+500; j++ {
			batch = append(batch, fedtest.Sitrep(fmt.Sprintf("q%05d", j), crisis, pb.Classification_INTERNAL, "bulk"))
		}
		if _, err := rc.PutBatch(fedtest.Call(t), &pb.PutBatchRequest{Records: batch}); err != nil {
			t.Fatal(err)
		}
	}
	// Every record a Query sends is audited: as a disclosure when b did not hold that version
	// yet, or counted in a federation.resend entry when b did (b's subscription disclosed it
	// first, "via":"Subscribe"). Each version reaches b as a disclosure once.
	audited := func() (disclosed map[string]int, viaQuery, resent int) {
		disclosed = map[string]int{}
		for _, e := range a.Audit(t, db.AuditDisclosure) {
			d := auditDetail(t, e)
			if d["recipient"] != b.TD.Name() || e.Actor != b.Replica.ID.String() {
				t.Fatalf("disclosure of %s to %v by %s: want to %s as %s", e.Subject, d["recipient"], e.Actor, b.TD.Name(), b.Replica.ID)
			}
			disclosed[fmt.Sprintf("%s@%v", e.Subject, d["version"])]++
			if d["via"] == "Query" {
				viaQuery++
			}
		}
		for _, e := range a.Audit(t, db.AuditResend) {
			if d := auditDetail(t, e); d["via"] == "Query" {
				if e.Subject != b.TD.Name() || e.Actor != b.Replica.ID.String() {
					t.Fatalf("resend to %s by %s: want to %s as %s", e.Subject, e.Actor, b.TD.Name(), b.Replica.ID)
				}
				resent += int(d["records"].(float64))
			}
		}
		return disclosed, viaQuery, resent
	}
	onceEach := func(disclosed map[string]int) {
		t.Helper()
		if len(disclosed) != n {
			t.Fatalf("a audited disclosures of %d records to b, want %d", len(disclosed), n)
		}
		for k, c := range disclosed {
			if c != 1 || !strings.HasSuffix(k, "@1") {
				t.Fatalf("a audited %s %d times; want every record once, at version 1", k, c)
			}
		}
	}

	// b's subscription discloses every record first, so that the Query sends only records b
	// holds.
	fedtest.Eventually(t, 20*time.Second, "b's subscription brings every record", func() (bool, string) {
		got := len(b.Held(t, crisis, a.TD.Name()))
		return got == n, fmt.Sprintf("b holds %d of %d", got, n)
	})
	fc := pb.NewFederationServiceClient(asPeer(t, b, a))
	q, err := fc.Query(fedtest.Call(t), &pb.QueryRequest{Filter: &pb.Filter{Crisis: crisis, Limit: n}})
	if err != nil {
		t.Fatal(err)
	}
	received := 0
	for {
		_, err := q.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		received++
	}
	if received != n {
		t.Fatalf("b received %d records, want %d", received, n)
	}
	// The stream ended OK, so every disclosure is committed: no waiting.
	disclosed, viaQuery, resent := audited()
	onceEach(disclosed)
	if viaQuery != 0 || resent != n {
		t.Fatalf("a audited %d disclosures and %d records sent again via Query after the stream ended, want none and %d", viaQuery, resent, n)
	}

	// A peer that stops reading after a while: what it was sent is recorded all the same, as
	// records sent again.
	ctx, cancel := context.WithCancel(fedtest.Call(t))
	q, err = fc.Query(ctx, &pb.QueryRequest{Filter: &pb.Filter{Crisis: crisis, Limit: n}})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 1500; i++ {
		if _, err := q.Recv(); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	fedtest.Eventually(t, 10*time.Second, "a records what the abandoned query sent", func() (bool, string) {
		_, _, again := audited()
		return again-resent >= 1500, fmt.Sprintf("%d records counted as sent again, want at least the 1500 b read", again-resent)
	})
	disclosed, _, _ = audited()
	onceEach(disclosed)
	rep, err := pb.NewAuditServiceClient(a.Local(t)).Verify(fedtest.Call(t), &pb.VerifyAuditRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Ok || rep.Entries < n {
		t.Fatalf("audit verify: %v, want ok with at least %d entries", rep, n)
	}
}

// TestNoReshare checks originator control: b caches a's record, b has a policy that grants
// that kind to c, and still c never receives a's record from b, while it does receive b's own.
func TestNoReshare(t *testing.T) {
	f := fedtest.Start(t, fedtest.Options{})
	a, b, c := f.Orgs[0], f.Orgs[1], f.Orgs[2]
	const crisis = "reshare"
	a.Approve(t, policyDoc("a-to-b", spiffeOf(b), "sitrep", "internal", ""))
	b.Approve(t, policyDoc("b-to-c", spiffeOf(c), "sitrep", "internal", ""))
	a.Put(t, fedtest.Sitrep("from-a", crisis, pb.Classification_INTERNAL, "a's own"))
	waitHeld(t, b, crisis, a.TD.Name(), map[string]int64{"from-a": 1}, "b caches a's record")
	// b's own record is written after b cached a's: once c has it, b's feed to c is past both.
	b.Put(t, fedtest.Sitrep("from-b", crisis, pb.Classification_INTERNAL, "b's own"))
	waitHeld(t, c, crisis, b.TD.Name(), map[string]int64{"from-b": 1}, "c receives b's own record")
	if got := c.Held(t, crisis, a.TD.Name()); len(got) != 0 {
		t.Fatalf("c holds %s of a", fedtest.Describe(got))
	}

	// What b sends c, before c's own checks: a query and a subscription as c's node.
	fc := pb.NewFederationServiceClient(asPeer(t, c, b))
	q, err := fc.Query(fedtest.Call(t), &pb.QueryRequest{Filter: &pb.Filter{Crisis: crisis}})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for {
		sr, err := q.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, sr.Record.Origin+"/"+sr.Record.Id)
	}
	if want := b.TD.Name() + "/from-b"; len(ids) != 1 || ids[0] != want {
		t.Fatalf("b's answer to c's query: %v, want only %s", ids, want)
	}
	sub, err := fc.Subscribe(fedtest.Call(t), &pb.SubscribeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for {
		ev, err := sub.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if u := ev.GetUpsert(); u != nil && u.Record.Origin != b.TD.Name() {
			t.Fatalf("b's feed to c carries %s/%s", u.Record.Origin, u.Record.Id)
		}
		if ev.GetHeartbeat() != nil {
			break // the feed is idle: everything before it was sent
		}
	}
	for _, e := range b.Audit(t, db.AuditDisclosure) {
		if e.Subject == "from-a" {
			t.Fatalf("b disclosed a's record: %v", e)
		}
	}
}

// asPeer is a connection to to's node as from's node, over mTLS.
func asPeer(t testing.TB, from, to *fedtest.Org) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(to.Addr, grpc.WithTransportCredentials(identity.ClientCredentials(
		from.Replica, to.Bundle(), identity.AuthorizeReplica(to.TD))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// fakePeer is a misbehaving peer: a real gRPC server, with real mTLS and a real SVID of a trust
// domain the orgs have configured as a peer, whose FederationService does what the test says.
type fakePeer struct {
	pb.UnimplementedFederationServiceServer
	id        *fedtest.PeerIdentity
	addr      string
	query     func(*pb.QueryRequest, grpc.ServerStreamingServer[pb.SharedRecord]) error
	subscribe func(*pb.SubscribeRequest, grpc.ServerStreamingServer[pb.FeedEvent]) error
	fetchFile func(*pb.FetchFileRequest, grpc.ServerStreamingServer[pb.FileData]) error
	describe  func(*pb.DescribeRequest) (*pb.DescribeResponse, error)

	mu    sync.Mutex
	calls map[string]int // Subscribe calls by the caller's trust domain
}

func (p *fakePeer) Query(req *pb.QueryRequest, s grpc.ServerStreamingServer[pb.SharedRecord]) error {
	return p.query(req, s)
}

func (p *fakePeer) Subscribe(req *pb.SubscribeRequest, s grpc.ServerStreamingServer[pb.FeedEvent]) error {
	if id, ok := identity.PeerID(s.Context()); ok {
		p.mu.Lock()
		p.calls[id.TrustDomain().Name()]++
		p.mu.Unlock()
	}
	return p.subscribe(req, s)
}

func (p *fakePeer) FetchFile(req *pb.FetchFileRequest, s grpc.ServerStreamingServer[pb.FileData]) error {
	if p.fetchFile == nil {
		return status.Error(codes.Unimplemented, "the fake serves no files")
	}
	return p.fetchFile(req, s)
}

func (p *fakePeer) Describe(_ context.Context, req *pb.DescribeRequest) (*pb.DescribeResponse, error) {
	if p.describe == nil {
		return nil, status.Error(codes.Unimplemented, "the fake says nothing of itself")
	}
	return p.describe(req)
}

// subscribes is how often org o subscribed to the fake.
func (p *fakePeer) subscribes(o *fedtest.Org) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[o.TD.Name()]
}

// garbageSeq marks a FeedEvent or SharedRecord that the fake's codec sends as bytes that are no
// protobuf message at all.
const garbageSeq = -4242

// garbleCodec is the proto codec, except that it turns marked messages into garbage.
type garbleCodec struct{}

func (garbleCodec) Marshal(v any) ([]byte, error) {
	if ev, ok := v.(*pb.FeedEvent); ok && ev.Seq == garbageSeq {
		return []byte{0xff, 0xff, 0xff, 0xff, 0x0f, 0x01}, nil
	}
	if sr, ok := v.(*pb.SharedRecord); ok && sr.GetRecord().GetVersion() == garbageSeq {
		return []byte{0xff, 0xff, 0xff, 0xff, 0x0f, 0x01}, nil
	}
	return proto.Marshal(v.(proto.Message))
}
func (garbleCodec) Unmarshal(b []byte, v any) error { return proto.Unmarshal(b, v.(proto.Message)) }
func (garbleCodec) Name() string                    { return "proto" }

func startFake(t *testing.T, f *fedtest.Federation, name string, p *fakePeer, opts ...grpc.ServerOption) *fakePeer {
	t.Helper()
	p.id = fedtest.NewPeerIdentity(t, name)
	p.calls = map[string]int{}
	var bundles []*x509bundle.Bundle
	for _, o := range f.Orgs {
		bundles = append(bundles, o.Bundle())
	}
	cfg := tlsconfig.MTLSServerConfig(p.id.SVID, x509bundle.NewSet(bundles...), tlsconfig.AuthorizeAny())
	s := grpc.NewServer(append(opts, grpc.Creds(credentials.NewTLS(cfg)))...)
	pb.RegisterFederationServiceServer(s, p)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(lis)
	t.Cleanup(s.Stop)
	p.addr = lis.Addr().String()
	return p
}

// fakeHeartbeats sends a heartbeat at seq every 100ms until the caller goes, or until end is
// closed, when the stream ends UNAVAILABLE.
func fakeHeartbeats(s grpc.ServerStreamingServer[pb.FeedEvent], seq int64, end <-chan struct{}) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-s.Context().Done():
			return nil
		case <-end:
			return status.Error(codes.Unavailable, "the fake ends the stream")
		case <-tick.C:
			if err := s.Send(&pb.FeedEvent{Seq: seq, Event: &pb.FeedEvent_Heartbeat{Heartbeat: &pb.Heartbeat{At: timestamppb.Now()}}}); err != nil {
				return err
			}
		}
	}
}

// TestMisbehavingPeersDoNotBlockOthers runs a federation of four with four fake peers that every
// org has configured: one sends records naming another origin and malformed records, one sends a
// message over the 4 MiB limit, one sends bytes that are no protobuf, and one accepts Subscribe
// and Query and never sends anything. The orgs' subscriptions to each other keep flowing, a
// search returns within its deadline with the silent peer timed out, and nothing a fake forged
// reaches a cache.
func TestMisbehavingPeersDoNotBlockOthers(t *testing.T) {
	f := fedtest.Start(t, fedtest.Options{})
	a, b := f.Orgs[0], f.Orgs[1]
	const crisis = "misbehave"
	heartbeats := func(s grpc.ServerStreamingServer[pb.FeedEvent]) error { return fakeHeartbeats(s, 10, nil) }
	record := func(origin, id, body string) *pb.Record {
		return &pb.Record{Id: id, Origin: origin, Kind: "sitrep", Crisis: crisis, Region: "NL",
			Classification: pb.Classification_PUBLIC, Version: 1, UpdatedAt: timestamppb.Now(), Body: []byte(body)}
	}
	valid := `{"title":"t","summary":"s"}`

	forger := &fakePeer{}
	forged := func() []*pb.SharedRecord {
		own := forger.id.TD.Name()
		return []*pb.SharedRecord{
			{Record: record(b.TD.Name(), "forged-b", valid)},    // another org's record
			{Record: record(own, "garbage-body", "not json")},   // malformed body
			{Record: record(own, "../not-an-id", valid)},        // malformed id
			{Record: record(own, "tomb", valid), Policies: nil}, // tombstone, below
			{Record: record(own, "forger-ok", valid)},           // the one good record
		}
	}
	forger.query = func(_ *pb.QueryRequest, s grpc.ServerStreamingServer[pb.SharedRecord]) error {
		for _, sr := range forged() {
			if sr.Record.Id == "tomb" {
				sr.Record.Tombstone = true
			}
			if err := s.Send(sr); err != nil {
				return err
			}
		}
		return nil
	}
	forger.subscribe = func(_ *pb.SubscribeRequest, s grpc.ServerStreamingServer[pb.FeedEvent]) error {
		for i, sr := range forged() {
			if sr.Record.Id == "tomb" {
				sr.Record.Tombstone = true
			}
			if err := s.Send(&pb.FeedEvent{Seq: int64(i + 1), Event: &pb.FeedEvent_Upsert{Upsert: sr}}); err != nil {
				return err
			}
		}
		return heartbeats(s)
	}
	startFake(t, f, "forger", forger)

	huge := record("", "huge", fmt.Sprintf(`{"title":"t","summary":"%s"}`, strings.Repeat("a", 5<<20)))
	oversize := &fakePeer{}
	oversize.query = func(_ *pb.QueryRequest, s grpc.ServerStreamingServer[pb.SharedRecord]) error {
		return s.Send(&pb.SharedRecord{Record: huge})
	}
	oversize.subscribe = func(_ *pb.SubscribeRequest, s grpc.ServerStreamingServer[pb.FeedEvent]) error {
		if err := s.Send(&pb.FeedEvent{Seq: 1, Event: &pb.FeedEvent_Upsert{Upsert: &pb.SharedRecord{Record: huge}}}); err != nil {
			return err
		}
		return heartbeats(s)
	}
	startFake(t, f, "oversize", oversize)
	huge.Origin = oversize.id.TD.Name() // before any org calls it

	garbler := &fakePeer{}
	garbler.query = func(_ *pb.QueryRequest, s grpc.ServerStreamingServer[pb.SharedRecord]) error {
		return s.Send(&pb.SharedRecord{Record: &pb.Record{Version: garbageSeq}})
	}
	garbler.subscribe = func(_ *pb.SubscribeRequest, s grpc.ServerStreamingServer[pb.FeedEvent]) error {
		if err := s.Send(&pb.FeedEvent{Seq: garbageSeq}); err != nil {
			return err
		}
		return heartbeats(s)
	}
	startFake(t, f, "garbler", garbler, grpc.ForceServerCodec(garbleCodec{}))

	// The silent peer ignores even the end of the call: it must not answer at the deadline
	// that grpc passes on to it. It lets go when the test ends.
	hang, release := &fakePeer{}, make(chan struct{})
	hang.query = func(*pb.QueryRequest, grpc.ServerStreamingServer[pb.SharedRecord]) error {
		<-release
		return nil
	}
	hang.subscribe = func(*pb.SubscribeRequest, grpc.ServerStreamingServer[pb.FeedEvent]) error {
		<-release
		return nil
	}
	startFake(t, f, "hang", hang)
	t.Cleanup(func() { close(release) }) // before the fake's server stops

	dropped := a.Metric(t, "knooppunt_federation_dropped_total", map[string]string{"peer": "forger"})
	fakes := []*fakePeer{forger, oversize, garbler, hang}
	var peers []config.Peer
	for _, p := range fakes {
		peers = append(peers, p.id.Peer(p.addr, "all"))
	}
	f.AddPeers(t, peers...)

	// Every fake is at its worst: the broken streams have failed and been retried, the silent
	// one has been given up on for idleness at least once.
	fedtest.Eventually(t, 15*time.Second, "every org subscribes to every fake, and to the broken ones again", func() (bool, string) {
		var state []string
		ok := true
		for _, p := range fakes {
			for _, o := range f.Orgs {
				n, want := p.subscribes(o), 2
				if p == forger {
					want = 1 // its stream stays up, on heartbeats
				}
				state = append(state, fmt.Sprintf("%s→%s:%d", o.Name, p.id.Name, n))
				ok = ok && n >= want
			}
		}
		return ok, strings.Join(state, " ")
	})
	waitHeld(t, a, crisis, forger.id.TD.Name(), map[string]int64{"forger-ok": 1}, "a caches the forger's one good record")
	// Four orgs, four bad records each time the forger is subscribed to.
	if n := a.Metric(t, "knooppunt_federation_dropped_total", map[string]string{"peer": "forger"}) - dropped; n < 16 {
		t.Errorf("%v records from the forger dropped, want at least 16", n)
	}

	// Meanwhile the orgs' own subscriptions flow.
	b.Approve(t, policyDoc("b-to-a", spiffeOf(a), "sitrep", "public", ""))
	start := time.Now()
	b.Put(t, fedtest.Sitrep("good-1", crisis, pb.Classification_PUBLIC, "still flowing"))
	waitHeld(t, a, crisis, b.TD.Name(), map[string]int64{"good-1": 1}, "b's record reaches a while the fakes misbehave")
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("b's record took %s to reach a", took)
	}
	for _, origin := range []string{oversize.id.TD.Name(), garbler.id.TD.Name(), hang.id.TD.Name()} {
		if got := a.Held(t, crisis, origin); len(got) != 0 {
			t.Errorf("a caches %s of %s", fedtest.Describe(got), origin)
		}
	}

	const deadline = 800 * time.Millisecond
	resp, took := a.Search(t, &pb.SearchRequest{Filter: &pb.Filter{Crisis: crisis}, TimeoutMs: int32(deadline / time.Millisecond)})
	if took > deadline+500*time.Millisecond {
		t.Errorf("search took %s, deadline %s", took, deadline)
	}
	if !resp.Partial {
		t.Error("search is not marked partial")
	}
	want := map[string]string{"b": search.Answered, "c": search.Answered, "d": search.Answered,
		"forger": search.Answered, "oversize": search.Unreachable, "garbler": search.Unreachable, "hang": search.TimedOut}
	got := map[string]string{}
	for _, p := range resp.Peers {
		got[p.Peer] = p.State
	}
	if !maps.Equal(got, want) {
		t.Errorf("peer states %v, want %v", got, want)
	}
	for _, h := range resp.Hits {
		if h.Source == "forger" && (h.Record.Origin != forger.id.TD.Name() || h.Record.Id != "forger-ok") {
			t.Errorf("search passed on %s/%s from the forger", h.Record.Origin, h.Record.Id)
		}
		if h.Source != "" && h.Source != "forger" && h.Source != "b" {
			t.Errorf("search hit %s/%s from %s", h.Record.Origin, h.Record.Id, h.Source)
		}
	}
}

// TestPeerManagerStopsWhileSubscriptionsRetry checks that the peer manager stops, and so lets
// the node stop, while its subscriptions to unreachable peers keep retrying: it used to hold its
// lock while waiting for each subscription to end, and a subscription that was starting waited
// for that lock. The manager runs on a real node's store, with a backoff of a millisecond, so
// that every stop meets subscriptions in the middle of a retry.
func TestPeerManagerStopsWhileSubscriptionsRetry(t *testing.T) {
	f := fedtest.Start(t, fedtest.Options{Orgs: 1})
	a := f.Orgs[0]
	var peers []config.Peer
	for i := range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		peers = append(peers, config.Peer{Name: fmt.Sprintf("gone%d", i), TrustDomain: fedtest.TrustDomainOf(fmt.Sprintf("gone%d", i)),
			Addresses: []string{l.Addr().String()}})
		l.Close() // nobody listens there any more: every dial is refused
	}
	src, err := identity.NewFileSource(filepath.Join(a.Dir, "certs", "r1.crt"), filepath.Join(a.Dir, "certs", "r1.key"), a.BundleFile(), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	for i := range 20 {
		m := peerclient.New(peerclient.Config{Store: a.Node.Store(), DB: a.Node.DB(), SVID: src, Bundles: identity.NewTrustStore(src),
			Peers: func() []config.Peer { return peers }, Backoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond,
			Logger: slog.New(slog.DiscardHandler)})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { m.Run(ctx); close(done) }()
		<-time.After(50 * time.Millisecond) // let the subscriptions fail and retry a while
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("stop %d: the peer manager did not stop within 5s", i)
		}
	}
}

// resyncs is how many times subscriptions in this process re-decided everything for reason.
func resyncs(reason string) float64 {
	return testutil.ToFloat64(metrics.Resyncs.WithLabelValues(reason))
}

// TestSubscribeExpiryRetracts: when a policy's validity window closes, the records it granted
// are retracted from the peer that holds them, with no other change at the source. While no
// window can open or close and no condition reads now, the periodic check re-decides nothing.
func TestSubscribeExpiryRetracts(t *testing.T) {
	f := fedtest.Start(t, fedtest.Options{Orgs: 2, Reevaluate: 100 * time.Millisecond})
	a, b := f.Orgs[0], f.Orgs[1]
	const crisis = "expiry"
	origin := a.TD.Name()
	wait := func(want map[string]int64, what string) { t.Helper(); waitHeld(t, b, crisis, origin, want, what) }

	a.Approve(t, policyDoc("sitreps-to-b", spiffeOf(b), "sitrep", "internal", ""))
	a.Put(t, fedtest.Sitrep("r1", crisis, pb.Classification_INTERNAL, "lasting"))
	wait(map[string]int64{"r1": 1}, "the record under a policy without a window reaches b")
	before := resyncs("time")
	time.Sleep(time.Second) // ten periodic checks
	if got := resyncs("time") - before; got != 0 {
		t.Fatalf("%v periodic resyncs with no window to open or close, want none", got)
	}

	until := time.Now().Add(3 * time.Second).UTC().Format(time.RFC3339Nano)
	a.Approve(t, policyDoc("signals-for-now", spiffeOf(b), "signal", "internal", "valid_until: "+until+"\n"))
	a.Put(t, &pb.Record{Id: "s1", Kind: "signal", Crisis: crisis, Region: "VR09", Classification: pb.Classification_INTERNAL,
		Body: []byte(`{"summary":"until the window closes"}`)})
	wait(map[string]int64{"r1": 1, "s1": 1}, "the record under a closing window reaches b")
	before = resyncs("time")
	wait(map[string]int64{"r1": 1}, "the window's close retracts s1, and only s1")
	if resyncs("time") <= before {
		t.Error("the retraction came without a periodic resync for time")
	}
	// The source commits the retraction's audit entry with its batch, which may be just after b
	// has dropped the record.
	fedtest.Eventually(t, 5*time.Second, "the source's audit has the retraction of s1", func() (bool, string) {
		for _, e := range a.Audit(t, db.AuditRetraction) {
			if e.Subject == "s1" && auditDetail(t, e)["reason"] == "no longer granted: held under signals-for-now@1 (expired)" {
				return true, ""
			}
		}
		return false, "no retraction of s1"
	})
}

// TestPeerOverLimitsIsRefused: a peer that starts calls faster than its rate, or holds more calls
// open than it may, gets RESOURCE_EXHAUSTED saying which limit, and another peer is served all the
// while; once the peer slows down, it is served again.
func TestPeerOverLimitsIsRefused(t *testing.T) {
	f := fedtest.Start(t, fedtest.Options{Orgs: 3, PeerRequestsPerSecond: 5, PeerCalls: 2})
	a, b, c := f.Orgs[0], f.Orgs[1], f.Orgs[2]
	fromB := pb.NewFederationServiceClient(asPeer(t, b, a))
	fromC := pb.NewFederationServiceClient(asPeer(t, c, a))
	describe := func(fc pb.FederationServiceClient) error {
		_, err := fc.Describe(fedtest.Call(t), &pb.DescribeRequest{})
		return err
	}

	// The rate: a burst of 10 is allowed, so 20 calls at once must meet a refusal.
	var refused error
	for range 20 {
		if err := describe(fromB); err != nil {
			refused = err
			break
		}
	}
	if st := status.Convert(refused); st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), "calls per second") {
		t.Fatalf("20 Describes at once from b: last error %v, want RESOURCE_EXHAUSTED over the rate", refused)
	}
	if err := describe(fromC); err != nil {
		t.Fatalf("c, within its limits, while b is over them: %v", err)
	}
	time.Sleep(500 * time.Millisecond) // a few tokens back
	if err := describe(fromB); err != nil {
		t.Fatalf("b after slowing down: %v", err)
	}

	// Open calls: b's own node holds one subscription to a; two more raw ones make three.
	time.Sleep(time.Second)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var open []grpc.ServerStreamingClient[pb.FeedEvent]
	var err error
	for range 3 {
		var s grpc.ServerStreamingClient[pb.FeedEvent]
		if s, err = fromB.Subscribe(ctx, &pb.SubscribeRequest{}); err == nil {
			_, err = s.Recv() // the call is admitted, or refused, before the first event
		}
		if err != nil {
			break
		}
		open = append(open, s)
	}
	if st := status.Convert(err); st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), "calls open") {
		t.Fatalf("b with %d subscriptions open: %v, want RESOURCE_EXHAUSTED over the open calls", len(open), err)
	}
	if err := describe(fromC); err != nil {
		t.Fatalf("c while b holds its limit of open calls: %v", err)
	}
}

// TestDescribeIsKeptUntilPoliciesChange: a peer that asks Describe again gets the answer already
// walked, even after new records land (the counts are at most DescribeTTL old), and a new answer
// as soon as a policy step changes what it may receive.
func TestDescribeIsKeptUntilPoliciesChange(t *testing.T) {
	f := fedtest.Start(t, fedtest.Options{Orgs: 2})
	a, b := f.Orgs[0], f.Orgs[1]
	a.Approve(t, policyDoc("sitreps-to-b", spiffeOf(b), "sitrep", "internal", ""))
	for i := range 3 {
		a.Put(t, fedtest.Sitrep(fmt.Sprintf("d%d", i), "describe", pb.Classification_INTERNAL, "x"))
	}
	fc := pb.NewFederationServiceClient(asPeer(t, b, a))
	count := func() string {
		t.Helper()
		desc, err := fc.Describe(fedtest.Call(t), &pb.DescribeRequest{})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, k := range desc.Kinds {
			out = append(out, fmt.Sprintf("%s=%d", k.Kind, k.Count))
		}
		return strings.Join(out, ",")
	}
	if got := count(); got != "sitrep=3" {
		t.Fatalf("Describe = %s, want sitrep=3", got)
	}
	a.Put(t, fedtest.Sitrep("d3", "describe", pb.Classification_INTERNAL, "x"))
	if got := count(); got != "sitrep=3" {
		t.Fatalf("Describe right after a new record = %s, want the kept answer sitrep=3", got)
	}
	// A policy step moves the generation: the next Describe walks again.
	a.Approve(t, policyDoc("qa-to-b", spiffeOf(b), "qa", "internal", ""))
	if got := count(); got != "sitrep=4" {
		t.Fatalf("Describe after a policy step = %s, want a new walk: sitrep=4", got)
	}
}

// skippedResyncs is how many times subscriptions in this process kept their decisions after a
// policy step or phase change that did not concern their peer.
func skippedResyncs() float64 { return testutil.ToFloat64(metrics.ResyncsSkipped) }

// TestPolicyStepForOnePeerResyncsOnlyIt: a policy that names b makes b's subscription re-decide
// every record (and b receives the record the policy grants, which existed before it), while c's
// subscription, which no changed policy concerns, keeps its decisions without a walk.
func TestPolicyStepForOnePeerResyncsOnlyIt(t *testing.T) {
	f := fedtest.Start(t, fedtest.Options{Orgs: 3})
	a, b, c := f.Orgs[0], f.Orgs[1], f.Orgs[2]
	const crisis = "one-peer"
	a.Approve(t, policyDoc("sitreps-to-b", spiffeOf(b), "sitrep", "internal", ""))
	a.Approve(t, policyDoc("sitreps-to-c", spiffeOf(c), "sitrep", "internal", ""))
	a.Put(t, fedtest.Sitrep("s1", crisis, pb.Classification_INTERNAL, "one"))
	a.Put(t, &pb.Record{Id: "q1", Kind: "qa", Crisis: crisis, Region: "NL", Classification: pb.Classification_INTERNAL,
		Body: []byte(`{"question":"waar?","answer":"hier"}`)})
	waitHeld(t, b, crisis, a.TD.Name(), map[string]int64{"s1": 1}, "b holds the sitrep")
	waitHeld(t, c, crisis, a.TD.Name(), map[string]int64{"s1": 1}, "c holds the sitrep")

	changes, skipped := resyncs("change"), skippedResyncs()
	a.Approve(t, policyDoc("qa-to-b", spiffeOf(b), "qa", "internal", ""))
	waitHeld(t, b, crisis, a.TD.Name(), map[string]int64{"s1": 1, "q1": 1}, "b receives the qa record the new policy grants")
	// A new record after the step: once both peers hold it, both subscriptions have seen the step.
	a.Put(t, fedtest.Sitrep("s2", crisis, pb.Classification_INTERNAL, "two"))
	waitHeld(t, b, crisis, a.TD.Name(), map[string]int64{"s1": 1, "q1": 1, "s2": 1}, "b holds the new sitrep")
	waitHeld(t, c, crisis, a.TD.Name(), map[string]int64{"s1": 1, "s2": 1}, "c holds the new sitrep, and not the qa record")
	if got := resyncs("change") - changes; got != 1 {
		t.Errorf("%v resyncs for a policy step, want 1: b's, not c's", got)
	}
	if got := skippedResyncs() - skipped; got < 1 {
		t.Errorf("%v skipped resyncs, want c's subscription to have kept its decisions", got)
	}
}

// sourceAndSilentPeer starts two orgs, a and b, in which a knows b as a peer but b's node
// subscribes to nobody: the test's own streams, as b, are then a's only subscriptions.
func sourceAndSilentPeer(t *testing.T) (a, b *fedtest.Org) {
	t.Helper()
	f := fedtest.Start(t, fedtest.Options{Orgs: 2, PeersOf: func(name string) []string {
		if name == fedtest.OrgName(0) {
			return []string{fedtest.OrgName(1)}
		}
		return nil
	}})
	return f.Orgs[0], f.Orgs[1]
}

// TestSubscribeRecordsWhatWentOutWhenTheStreamBreaks: a peer that reads one event of a resync and
// goes away may hold every record the source sent before it noticed; the source must have
// recorded each of them, or a later revocation would not retract them. The records are large, so
// that the stream's flow-control window holds only a few and the source is stopped in the middle
// of its first batch of disclosures.
func TestSubscribeRecordsWhatWentOutWhenTheStreamBreaks(t *testing.T) {
	a, b := sourceAndSilentPeer(t)
	const crisis = "broken-stream"
	a.Approve(t, policyDoc("sitreps-to-b", spiffeOf(b), "sitrep", "internal", ""))
	big := strings.Repeat("x", 8000)
	for i := range 60 {
		a.Put(t, fedtest.Sitrep(fmt.Sprintf("big%02d", i), crisis, pb.Classification_INTERNAL, big))
	}
	ctx, cancel := context.WithCancel(fedtest.Call(t))
	stream, err := pb.NewFederationServiceClient(asPeer(t, b, a)).Subscribe(ctx, &pb.SubscribeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	first := ev.GetUpsert().GetRecord().GetId()
	cancel()
	fedtest.Eventually(t, 5*time.Second, "a records the disclosure of what b received", func() (bool, string) {
		held, err := a.Node.DB().Disclosed(context.Background(), "spiffe://"+b.TD.Name()+"/node/*")
		if err != nil {
			t.Fatal(err)
		}
		return held[first] == 1, fmt.Sprintf("a's disclosures to b: %d records, %s among them: %v", len(held), first, held[first] == 1)
	})
}

// TestResubscribeWithoutChangesSkipsTheWalk: a subscription that starts again (a reconnect) while
// nothing that decides for its peer changed gets the feed from its cursor without a walk of the
// store; after a policy step that names the peer, the next start walks again.
func TestResubscribeWithoutChangesSkipsTheWalk(t *testing.T) {
	a, b := sourceAndSilentPeer(t)
	const crisis = "resubscribe"
	a.Approve(t, policyDoc("sitreps-to-b", spiffeOf(b), "sitrep", "internal", ""))
	for i := range 3 {
		a.Put(t, fedtest.Sitrep(fmt.Sprintf("r%d", i), crisis, pb.Classification_INTERNAL, "x"))
	}
	fc := pb.NewFederationServiceClient(asPeer(t, b, a))
	// subscribe reads until it has the records in want, and ends the stream.
	subscribe := func(cursor int64, want ...string) {
		t.Helper()
		upserts := map[string]string{}
		for _, id := range want {
			upserts[id] = "upsert"
		}
		streamUntil(t, fc, cursor, upserts)
	}
	starts, skipped := resyncs("start"), skippedResyncs()
	subscribe(0, "r0", "r1", "r2")
	if got := resyncs("start") - starts; got != 1 {
		t.Fatalf("%v start resyncs for the first subscription, want 1", got)
	}
	cursor, err := a.Node.DB().LastSeq()
	if err != nil {
		t.Fatal(err)
	}
	a.Put(t, fedtest.Sitrep("r3", crisis, pb.Classification_INTERNAL, "x"))
	subscribe(cursor, "r3")
	if got := resyncs("start") - starts; got != 1 {
		t.Errorf("%v start resyncs after a reconnect with nothing changed, want still 1", got)
	}
	if got := skippedResyncs() - skipped; got != 1 {
		t.Errorf("%v skipped resyncs, want the reconnect's", got)
	}

	// A qa record, then a policy that grants it: the next start must walk, and send it.
	a.Put(t, &pb.Record{Id: "q1", Kind: "qa", Crisis: crisis, Region: "NL", Classification: pb.Classification_INTERNAL,
		Body: []byte(`{"question":"waar?","answer":"hier"}`)})
	if cursor, err = a.Node.DB().LastSeq(); err != nil {
		t.Fatal(err)
	}
	a.Approve(t, policyDoc("qa-to-b", spiffeOf(b), "qa", "internal", ""))
	subscribe(cursor, "q1")
	if got := resyncs("start") - starts; got != 2 {
		t.Errorf("%v start resyncs after a policy step that names b, want 2", got)
	}
}

// TestResubscribeAfterAWindowClosedRetracts: a subscription that starts again after a policy's
// window closed while it was away walks the store, and retracts what the window granted, though
// no policy step or phase change landed in between.
func TestResubscribeAfterAWindowClosedRetracts(t *testing.T) {
	a, b := sourceAndSilentPeer(t)
	until := time.Now().Add(2 * time.Second)
	a.Approve(t, policyDoc("signals-for-now", spiffeOf(b), "signal", "internal", "valid_until: "+until.UTC().Format(time.RFC3339Nano)+"\n"))
	a.Put(t, &pb.Record{Id: "s1", Kind: "signal", Crisis: "window", Region: "VR09", Classification: pb.Classification_INTERNAL,
		Body: []byte(`{"summary":"until the window closes"}`)})
	fc := pb.NewFederationServiceClient(asPeer(t, b, a))
	// next opens a stream from cursor and returns its first upsert or retraction.
	next := func(cursor int64) *pb.FeedEvent {
		t.Helper()
		ctx, cancel := context.WithCancel(fedtest.Call(t))
		defer cancel()
		stream, err := fc.Subscribe(ctx, &pb.SubscribeRequest{Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for {
			ev, err := stream.Recv()
			if err != nil {
				t.Fatal(err)
			}
			if ev.GetHeartbeat() == nil {
				return ev
			}
		}
	}
	if ev := next(0); ev.GetUpsert().GetRecord().GetId() != "s1" {
		t.Fatalf("first subscription: %v, want s1", ev)
	}
	cursor, err := a.Node.DB().LastSeq()
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(until) + 100*time.Millisecond)
	starts := resyncs("start")
	if ev := next(cursor); ev.GetRetraction().GetRecordId() != "s1" {
		t.Fatalf("subscription after the window closed: %v, want the retraction of s1", ev)
	}
	if got := resyncs("start") - starts; got != 1 {
		t.Errorf("%v start resyncs after the window closed, want 1", got)
	}
}

// TestRetractionReachesTheHolderWhateverItsDomainDoes: what a source disclosed is tracked per
// holder, so another identity of the recipient's trust domain cannot take a retraction meant for
// the node that holds the record. A policy grants a record to b's replica r1 alone; while b's
// node is down, an editor of b subscribes to a and stays subscribed while the policy is revoked;
// when b's node comes back, its subscription still gets the retraction and drops the record.
func TestRetractionReachesTheHolderWhateverItsDomainDoes(t *testing.T) {
	f := fedtest.Start(t, fedtest.Options{Orgs: 2, Reevaluate: 10 * time.Minute})
	a, b := f.Orgs[0], f.Orgs[1]
	const crisis = "holder"
	origin := a.TD.Name()
	pol := a.Approve(t, policyDoc("sitreps-to-b-r1", b.Replica.ID.String(), "sitrep", "internal", ""))
	a.Put(t, fedtest.Sitrep("x", crisis, pb.Classification_INTERNAL, "for b's node"))
	waitHeld(t, b, crisis, origin, map[string]int64{"x": 1}, "b's node receives x")
	node := "spiffe://" + b.TD.Name() + "/node/*"
	// The source records a disclosure just after it sent the record.
	fedtest.Eventually(t, 5*time.Second, "a records that b's node holds x", func() (bool, string) {
		got, err := a.Node.DB().Recipients(context.Background(), "x")
		return err == nil && slices.Equal(got, []string{node}), fmt.Sprintf("x is held by %v (%v), want %s", got, err, node)
	})
	b.Stop(t)

	editor := b.Issue(t, "/user/editor")
	conn, err := grpc.NewClient(a.Addr, grpc.WithTransportCredentials(identity.ClientCredentials(editor, a.Bundle(), identity.AuthorizeReplica(a.TD))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithCancel(fedtest.Call(t))
	defer cancel()
	stream, err := pb.NewFederationServiceClient(conn).Subscribe(ctx, &pb.SubscribeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	// heartbeats waits for n heartbeats sent after since, failing on anything but a heartbeat
	// or a retraction of x (which the editor does not hold and must not be sent).
	heartbeats := func(n int, since time.Time) {
		t.Helper()
		for n > 0 {
			ev, err := stream.Recv()
			if err != nil {
				t.Fatalf("the editor's subscription: %v", err)
			}
			switch e := ev.Event.(type) {
			case *pb.FeedEvent_Heartbeat:
				if e.Heartbeat.At.AsTime().After(since) {
					n--
				}
			case *pb.FeedEvent_Retraction:
				t.Logf("the editor's subscription got a retraction of %s", e.Retraction.RecordId)
			default:
				t.Fatalf("the editor's subscription got %v: no policy grants the editor anything", ev)
			}
		}
	}
	heartbeats(1, time.Time{})
	a.Revoke(t, pol)
	// The second heartbeat after the revocation comes from a pass of the stream's loop that
	// began after it, and so re-decided every record for the editor.
	heartbeats(2, time.Now())
	cancel()

	b.Start(t)
	waitHeld(t, b, crisis, origin, map[string]int64{}, "b's node drops x once the policy is revoked")
	fedtest.Eventually(t, 5*time.Second, "a audits the retraction to b's node", func() (bool, string) {
		var got []string
		for _, e := range a.Audit(t, db.AuditRetraction) {
			got = append(got, e.Subject+" to "+e.Actor)
			if e.Subject == "x" && e.Actor == b.Replica.ID.String() {
				return true, ""
			}
		}
		return false, fmt.Sprintf("retractions: %v", got)
	})
	fedtest.Eventually(t, 5*time.Second, "a records that nobody holds x", func() (bool, string) {
		got, err := a.Node.DB().Recipients(context.Background(), "x")
		return err == nil && len(got) == 0, fmt.Sprintf("x is held by %v (%v)", got, err)
	})
}

// TestFilterOutOfRangeIsRefused: a time past what the store can hold, a kind or id named twice,
// or too many ids, is refused with INVALID_ARGUMENT naming the field, on a peer's Query, a search and a List; it
// neither wraps around into "everything" nor sends a record twice.
func TestFilterOutOfRangeIsRefused(t *testing.T) {
	a, b := sourceAndSilentPeer(t)
	a.Approve(t, policyDoc("sitreps-to-b", spiffeOf(b), "sitrep", "internal", ""))
	a.Put(t, fedtest.Sitrep("s1", "filters", pb.Classification_INTERNAL, "one"))
	far := timestamppb.New(time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC))
	sitreps := make([]string, 64)
	for i := range sitreps {
		sitreps[i] = "sitrep"
	}
	fc := pb.NewFederationServiceClient(asPeer(t, b, a))
	for _, tc := range []struct {
		name   string
		filter *pb.Filter
		want   string
	}{
		{"updated_since after 2262", &pb.Filter{UpdatedSince: far}, "filter.updated_since: 2300-01-01T00:00:00Z is outside the times a node can hold"},
		{"a kind named twice", &pb.Filter{Kinds: []string{"sitrep", "qa", "sitrep"}}, `filter.kinds[2]: "sitrep" is named already, at filter.kinds[0]`},
		{"64 times one kind", &pb.Filter{Kinds: sitreps}, `filter.kinds[1]: "sitrep" is named already, at filter.kinds[0]`},
		{"an id named twice", &pb.Filter{Ids: []string{"s1", "s2", "s1"}}, `filter.ids[2]: "s1" is named already, at filter.ids[0]`},
		{"not an id", &pb.Filter{Ids: []string{"s1", "../s1"}}, `filter.ids[1]: "../s1" is not a record id`},
		{"101 ids", &pb.Filter{Ids: manyIDs(101)}, "filter.ids: 101 ids is over the limit of 100"},
		{"65 kinds", &pb.Filter{Kinds: manyIDs(65)}, "filter.kinds: 65 kinds is over the limit of 64"},
		{"not a region", &pb.Filter{Region: "VR99"}, `filter.region: "VR99" is not a region: use a safety-region code VR01 to VR25, or NL for the records about the country as a whole; leave it out for every region`},
		{"not a crisis name", &pb.Filter{Crisis: "Oekraïne"}, `filter.crisis: "Oekraïne" is not a crisis name: use 1 to 64 of a-z 0-9 . _ -`},
		// What is wrong, and what to give (review AF, AF9: "not a valid value").
		{"a crisis of invalid UTF-8", &pb.Filter{Crisis: "oek\xffraine"}, `filter.crisis: "oek\xffraine" is not a crisis name: use 1 to 64 of a-z 0-9 . _ -`},
		{"a region of 200 bytes", &pb.Filter{Region: strings.Repeat("V", 200)}, `filter.region: "VVVV`},
		{"a kind of invalid UTF-8", &pb.Filter{Kinds: []string{"sitrep", "\xff"}}, `filter.kinds[1]: not valid UTF-8: give a kind's name, such as shelter.capacity`},
		{"a kind of 200 bytes", &pb.Filter{Kinds: []string{strings.Repeat("k", 200)}}, `filter.kinds[0]: 200 bytes is over a kind name's limit of 128`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			check := func(what string, err error) {
				t.Helper()
				if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.HasPrefix(st.Message(), tc.want) {
					t.Errorf("%s: %v; want InvalidArgument: %s…", what, err, tc.want)
				}
			}
			stream, err := fc.Query(fedtest.Call(t), &pb.QueryRequest{Filter: tc.filter})
			if err == nil {
				var r *pb.SharedRecord
				for r, err = stream.Recv(); err == nil; r, err = stream.Recv() {
					t.Logf("query sent %s", r.Record.Id)
				}
			}
			check("query", err)
			_, err = pb.NewSearchServiceClient(a.Local(t)).Search(fedtest.Call(t), &pb.SearchRequest{Filter: tc.filter})
			check("search", err)
		})
	}
	_, err := pb.NewRecordServiceClient(a.Local(t)).List(fedtest.Call(t), &pb.ListRequest{UpdatedSince: far})
	if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.HasPrefix(st.Message(), "updated_since: 2300-01-01T00:00:00Z is outside") {
		t.Errorf("list: %v; want InvalidArgument naming updated_since", err)
	}
	_, err = pb.NewRecordServiceClient(a.Local(t)).List(fedtest.Call(t), &pb.ListRequest{Region: "VR99"})
	if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.HasPrefix(st.Message(), `region: "VR99" is not a region`) {
		t.Errorf("list in region VR99: %v; want InvalidArgument naming region", err)
	}
}

func manyIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("r%03d", i)
	}
	return ids
}

// TestPeerDroppedFromConfigLeavesFirst: a peer taken out of the config file is not refused at
// once. It leaves first: the source grants it nothing, so its subscription retracts every record
// it holds; once it holds nothing the source refuses it. Both steps are audited.
func TestPeerDroppedFromConfigLeavesFirst(t *testing.T) {
	f := fedtest.Start(t, fedtest.Options{Orgs: 2, Reevaluate: 10 * time.Minute})
	a, b := f.Orgs[0], f.Orgs[1]
	const crisis = "leaving"
	a.Approve(t, policyDoc("sitreps-to-b", spiffeOf(b), "sitrep", "internal", ""))
	a.Put(t, fedtest.Sitrep("x", crisis, pb.Classification_INTERNAL, "before b leaves"))
	waitHeld(t, b, crisis, a.TD.Name(), map[string]int64{"x": 1}, "b receives x")

	f.DropPeer(t, a, b.Name)
	waitHeld(t, b, crisis, a.TD.Name(), map[string]int64{}, "b drops what it holds of a before a refuses it")
	fedtest.Eventually(t, 10*time.Second, "a audits b leaving and then refuses it", func() (bool, string) {
		var steps []string
		for _, action := range []string{db.AuditPeerLeave, db.AuditPeerRemove} {
			for _, e := range a.Audit(t, action) {
				if e.Subject == b.TD.Name() {
					steps = append(steps, e.Action+" by "+e.Actor)
				}
			}
		}
		got := strings.Join(steps, ", ")
		return got == "peer.leave by config file, peer.remove by node", got
	})
	fedtest.Eventually(t, 10*time.Second, "a refuses b", func() (bool, string) {
		_, err := pb.NewFederationServiceClient(asPeer(t, b, a)).Describe(fedtest.Call(t), &pb.DescribeRequest{})
		return err != nil, fmt.Sprint(err)
	})
	// A record a puts now does not reach b.
	a.Put(t, fedtest.Sitrep("y", crisis, pb.Classification_INTERNAL, "after b left"))
	if got := b.Held(t, crisis, a.TD.Name()); len(got) != 0 {
		t.Fatalf("b holds %s of a after it left", fedtest.Describe(got))
	}
}

// TestPreviewRefusesALeavingPeer: while a peer that left a's config file still holds records
// of a's (it is down and cannot retract them), it gets nothing whatever the policies say; a's
// Preview for it says so, naming the recipient, instead of listing what it would receive, and
// Explain says it is leaving.
func TestPreviewRefusesALeavingPeer(t *testing.T) {
	f := fedtest.Start(t, fedtest.Options{Orgs: 2, Reevaluate: 10 * time.Minute})
	a, b := f.Orgs[0], f.Orgs[1]
	const crisis = "leaving"
	id := a.Approve(t, policyDoc("sitreps-to-b", spiffeOf(b), "sitrep", "internal", ""))
	a.Put(t, fedtest.Sitrep("x", crisis, pb.Classification_INTERNAL, "before b leaves"))
	waitHeld(t, b, crisis, a.TD.Name(), map[string]int64{"x": 1}, "b receives x")
	pc := pb.NewPolicyServiceClient(a.As(t, a.Officers[0]))
	to := spiffeOf(b) + "/node/r1"
	if prev, err := pc.Preview(fedtest.Call(t), &pb.PreviewRequest{Id: id, Recipient: to}); err != nil || prev.Total != 1 {
		t.Fatalf("preview for b while it is a peer: %v, %v; want x", prev, err)
	}

	b.Stop(t)
	f.DropPeer(t, a, b.Name)
	_, err := pc.Preview(fedtest.Call(t), &pb.PreviewRequest{Id: id, Recipient: to})
	if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.HasPrefix(st.Message(), "recipient: "+to+" is leaving") {
		t.Errorf("preview for b while it leaves: %v; want InvalidArgument: recipient: %s is leaving", err, to)
	}
	ex, err := pc.Explain(fedtest.Call(t), &pb.ExplainRequest{RecordId: "x", Recipient: to})
	if err != nil || ex.Allow || len(ex.Verdicts) != 1 || ex.Verdicts[0].Code != "leaving" {
		t.Errorf("explain x for b while it leaves: %v, %v; want denied: leaving", ex, err)
	}
}

// TestPictureLeavesOutWhoIsNoPeer: when b drops a, the copies a sent stay in b's cache, where no
// retraction of a's can reach them any more; b's picture, as its search, no longer shows them as
// a live source.
func TestPictureLeavesOutWhoIsNoPeer(t *testing.T) {
	f := fedtest.Start(t, fedtest.Options{Orgs: 2, Reevaluate: 10 * time.Minute})
	a, b := f.Orgs[0], f.Orgs[1]
	const crisis = "removed"
	a.Approve(t, policyDoc("sitreps-to-b", spiffeOf(b), "sitrep", "internal", ""))
	a.Put(t, fedtest.Sitrep("x", crisis, pb.Classification_INTERNAL, "before b drops a"))
	waitHeld(t, b, crisis, a.TD.Name(), map[string]int64{"x": 1}, "b receives x")

	f.DropPeer(t, b, a.Name)
	waitHeld(t, b, crisis, a.TD.Name(), map[string]int64{}, "b's picture leaves out a, no peer of b's")
	cached, err := b.Node.DB().ForeignList(fedtest.Call(t), db.ForeignFilter{Origin: a.TD.Name(), Crisis: crisis})
	if err != nil || len(cached) != 1 {
		t.Fatalf("b's cache of a: %d records (%v), want x kept", len(cached), err)
	}
}

// TestLostRetractionIsSentAgain: a retraction the stream took but the peer never applied (the
// stream broke first) is sent again when the peer subscribes again from the cursor it had, for a
// deleted record (the feed) and for a revoked policy (the resync); once the peer subscribes from
// past it, it is no longer pending.
func TestLostRetractionIsSentAgain(t *testing.T) {
	a, b := sourceAndSilentPeer(t)
	const crisis = "lost"
	a.Approve(t, policyDoc("sitreps-to-b", spiffeOf(b), "sitrep", "internal", ""))
	pol := a.Approve(t, policyDoc("qa-to-b", spiffeOf(b), "qa", "internal", ""))
	a.Put(t, fedtest.Sitrep("gone", crisis, pb.Classification_INTERNAL, "x"))
	a.Put(t, &pb.Record{Id: "q1", Kind: "qa", Crisis: crisis, Region: "NL", Classification: pb.Classification_INTERNAL,
		Body: []byte(`{"question":"waar?","answer":"hier"}`)})
	fc := pb.NewFederationServiceClient(asPeer(t, b, a))
	until := func(cursor int64, want map[string]string) {
		t.Helper()
		streamUntil(t, fc, cursor, want)
	}
	until(0, map[string]string{"gone": "upsert", "q1": "upsert"})
	cursor, err := a.Node.DB().LastSeq()
	if err != nil {
		t.Fatal(err)
	}
	// The peer holds both at cursor. The sitrep is deleted and the qa policy revoked; the
	// retractions go out on a stream the peer then loses.
	a.Delete(t, "gone")
	a.Revoke(t, pol)
	until(cursor, map[string]string{"gone": "retraction", "q1": "retraction"})
	holder := "spiffe://" + b.TD.Name() + "/node/*"
	fedtest.Eventually(t, 10*time.Second, "a recorded both retractions", func() (bool, string) {
		held, err := a.Node.DB().Disclosed(context.Background(), holder)
		return err == nil && held["gone"] == 0 && held["q1"] == 0, fmt.Sprintf("%v %v", held, err)
	})
	// From the same cursor: both come again, from the feed and from the resync.
	until(cursor, map[string]string{"gone": "retraction", "q1": "retraction"})

	// From a cursor past both, after a change that moves the feed: nothing is pending, and
	// the stream brings only the new record.
	a.Put(t, fedtest.Sitrep("new", crisis, pb.Classification_INTERNAL, "x"))
	past, err := a.Node.DB().LastSeq()
	if err != nil {
		t.Fatal(err)
	}
	until(past-1, map[string]string{"new": "upsert"})
	fedtest.Eventually(t, 10*time.Second, "no retraction pending for b once it resumed past them", func() (bool, string) {
		pending, err := a.Node.DB().PendingRetractions(context.Background(), holder, db.Mode{}, past-1)
		return err == nil && len(pending) == 0, fmt.Sprintf("%v %v", pending, err)
	})
}

// streamUntil opens a Subscribe stream from cursor and reads until it has seen each id in want as
// an upsert or a retraction (as want says), then ends the stream without applying anything: what
// it read is lost, as when a stream breaks before the peer's commit.
func streamUntil(t *testing.T, fc pb.FederationServiceClient, cursor int64, want map[string]string) {
	t.Helper()
	ctx, cancel := context.WithCancel(fedtest.Call(t))
	defer cancel()
	stream, err := fc.Subscribe(ctx, &pb.SubscribeRequest{Cursor: cursor})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for len(seen) < len(want) {
		ev, err := stream.Recv()
		if err != nil {
			t.Fatalf("from cursor %d: %v, after %v, want %v", cursor, err, seen, want)
		}
		if id := ev.GetUpsert().GetRecord().GetId(); want[id] == "upsert" {
			seen[id] = "upsert"
		}
		if id := ev.GetRetraction().GetRecordId(); want[id] == "retraction" {
			seen[id] = "retraction"
		}
	}
}

// TestSubscribePastTheEndOfTheFeed: a peer resumes from a cursor this node gave before it was
// restored from a backup, past the end of its feed now. The stream is full: a heartbeat that
// says so, every record granted (whatever the disclosures say the peer holds), a heartbeat with
// full_end at the feed's end; then the feed goes on from there: a change made after the stream
// began reaches the peer, numbered below the peer's old cursor as it is.
func TestSubscribePastTheEndOfTheFeed(t *testing.T) {
	a, b := sourceAndSilentPeer(t)
	const crisis = "restored"
	a.Approve(t, policyDoc("sitreps-to-b", spiffeOf(b), "sitrep", "internal", ""))
	a.Put(t, fedtest.Sitrep("before", crisis, pb.Classification_INTERNAL, "x"))
	last := a.LastSeq(t)
	ctx, cancel := context.WithCancel(fedtest.Call(t))
	defer cancel()
	stream, err := pb.NewFederationServiceClient(asPeer(t, b, a)).Subscribe(ctx, &pb.SubscribeRequest{Cursor: 1 << 40})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if !ev.GetHeartbeat().GetFull() || ev.Seq != last {
		t.Fatalf("first event %v, want a full heartbeat at the feed's end, %d", ev, last)
	}
	seen := map[string]bool{}
	for {
		ev, err := stream.Recv()
		if err != nil {
			t.Fatalf("the start's resync: %v", err)
		}
		if ev.GetHeartbeat().GetFullEnd() {
			if ev.Seq != last || !seen["before"] {
				t.Fatalf("full_end at %d after %v, want at %d after before", ev.Seq, seen, last)
			}
			break
		}
		seen[ev.GetUpsert().GetRecord().GetId()] = true
	}
	a.Put(t, fedtest.Sitrep("after", crisis, pb.Classification_INTERNAL, "y"))
	for !seen["after"] {
		ev, err := stream.Recv()
		if err != nil {
			t.Fatalf("waiting for the change made after the stream began: %v (seen %v)", err, seen)
		}
		if ev.Seq >= 1<<40 {
			t.Fatalf("event at seq %d: the feed kept the peer's cursor from before", ev.Seq)
		}
		seen[ev.GetUpsert().GetRecord().GetId()] = true
	}
}

// TestPeerOfARestoredNode: a node is restored from a backup (knooppunt restore) while its peer's
// subscription cursor is past the restored feed's end. The peer takes all the node grants again:
// a record changed after the backup goes back to the backup's version, one created after it is
// dropped; the peer's stored cursor follows the feed back, and what the node writes after the
// restore reaches it, across a reconnect too. Marked: the restore moved the feed past every seq
// the lost database gave (db.MarkRestored, as knooppunt restore does), so that the peer's cursor
// lies in the gap, not past the end, and is refused all the same.
func TestPeerOfARestoredNode(t *testing.T) {
	for _, marked := range []bool{false, true} {
		t.Run(fmt.Sprintf("marked=%v", marked), func(t *testing.T) { testPeerOfARestoredNode(t, marked) })
	}
}

func testPeerOfARestoredNode(t *testing.T, marked bool) {
	f := fedtest.Start(t, fedtest.Options{Orgs: 2})
	a, b := f.Orgs[0], f.Orgs[1]
	const crisis = "restore"
	a.Approve(t, policyDoc("sitreps-to-b", spiffeOf(b), "sitrep", "internal", ""))
	a.Put(t, fedtest.Sitrep("s1", crisis, pb.Classification_INTERNAL, "x"))
	a.Put(t, fedtest.Sitrep("changed", crisis, pb.Classification_INTERNAL, "v1"))
	backup := filepath.Join(t.TempDir(), "backup.db")
	if _, err := a.Node.DB().Copy(context.Background(), backup); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		a.Put(t, fedtest.Sitrep(fmt.Sprintf("later-%d", i), crisis, pb.Classification_INTERNAL, "y"))
	}
	a.Put(t, fedtest.Sitrep("changed", crisis, pb.Classification_INTERNAL, "v2"))
	seq := a.LastSeq(t)
	fedtest.Eventually(t, 10*time.Second, "b holds what a wrote after the backup", func() (bool, string) {
		held := b.Held(t, crisis, a.TD.Name())
		return held["later-9"] == 1 && held["changed"] == 2, fmt.Sprintf("b holds %v", held)
	})
	fedtest.Eventually(t, 10*time.Second, "b's cursor reaches a's feed", func() (bool, string) {
		c := b.Cursor(t, a.Name)
		return c >= seq, fmt.Sprintf("cursor %d, a's feed %d", c, seq)
	})

	a.Stop(t)
	if err := os.RemoveAll(a.DataDir()); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(a.DataDir(), 0o700); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(backup)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(a.DataDir(), node.DatabaseName), data, 0o600); err != nil {
		t.Fatal(err)
	}
	if marked {
		if _, err := db.MarkRestored(filepath.Join(a.DataDir(), node.DatabaseName), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	a.Start(t)
	restored := a.LastSeq(t)
	if !marked && restored >= seq {
		t.Fatalf("a's feed after the restore ends at %d, want before %d", restored, seq)
	}
	if marked && (restored <= seq || !a.Node.DB().BeforeRestore(seq)) {
		t.Fatalf("a's feed after the restore ends at %d, want past %d, which lies before the restore", restored, seq)
	}
	fedtest.Eventually(t, 10*time.Second, "b's cursor follows a's feed back", func() (bool, string) {
		c := b.Cursor(t, a.Name)
		return c <= a.LastSeq(t), fmt.Sprintf("cursor %d, a's feed %d", c, a.LastSeq(t))
	})
	fedtest.Eventually(t, 10*time.Second, "b holds what a holds again", func() (bool, string) {
		held := b.Held(t, crisis, a.TD.Name())
		return maps.Equal(held, map[string]int64{"s1": 1, "changed": 1}), fmt.Sprintf("b holds %v, want s1 and changed at version 1", held)
	})
	a.Put(t, fedtest.Sitrep("after-restore", crisis, pb.Classification_INTERNAL, "z"))
	fedtest.Eventually(t, 10*time.Second, "b holds what a wrote after the restore", func() (bool, string) {
		held := b.Held(t, crisis, a.TD.Name())
		return held["after-restore"] == 1, fmt.Sprintf("b holds %v", held)
	})
	// A reconnect: b asks from its stored cursor, which is a's again.
	b.Stop(t)
	a.Put(t, fedtest.Sitrep("while-b-was-away", crisis, pb.Classification_INTERNAL, "w"))
	b.Start(t)
	fedtest.Eventually(t, 10*time.Second, "b holds what a wrote while it was away", func() (bool, string) {
		held := b.Held(t, crisis, a.TD.Name())
		return held["while-b-was-away"] == 1, fmt.Sprintf("b holds %v", held)
	})
}

// TestCacheAgeAfterARestart: a node that starts while a peer is down does not know when the peer
// went down; the copy of the peer's records it serves is as old as the peer's last delivery, not
// as young as the node's start.
func TestCacheAgeAfterARestart(t *testing.T) {
	f := fedtest.Start(t, fedtest.Options{Orgs: 2})
	a, b := f.Orgs[0], f.Orgs[1]
	const crisis = "restart"
	a.Approve(t, policyDoc("restart-to-b", spiffeOf(b), "sitrep", "internal", ""))
	a.Put(t, fedtest.Sitrep("x", crisis, pb.Classification_INTERNAL, "v1"))
	waitHeld(t, b, crisis, a.TD.Name(), map[string]int64{"x": 1}, "b receives x")
	var delivered time.Time
	fedtest.Eventually(t, 10*time.Second, "b stores its cursor of a", func() (bool, string) {
		p := b.Peer(t, a.Name)
		if p.ReceivedAt != nil {
			delivered = p.ReceivedAt.AsTime()
		}
		return b.Cursor(t, a.Name) == a.LastSeq(t) && p.ReceivedAt != nil, "not yet"
	})
	time.Sleep(time.Second)
	a.Stop(t)
	b.Stop(t)
	b.Start(t)
	fedtest.Eventually(t, 10*time.Second, "b's subscription to a is down", func() (bool, string) {
		p := b.Peer(t, a.Name)
		return p.Subscription == "down", p.Subscription
	})
	st := b.PeerState(t, &pb.SearchRequest{Filter: &pb.Filter{Crisis: crisis}, TimeoutMs: 1000}, a.Name)
	if floor := time.Since(delivered) - 200*time.Millisecond; time.Duration(st.CacheAgeMs)*time.Millisecond < floor {
		t.Errorf("after b's restart a's copy is %dms old, want at least %s: a last delivered %s ago", st.CacheAgeMs, floor, time.Since(delivered))
	}
}

// TestPictureSaysItIsCatchingUp: while a node takes in a backlog of a peer's records (here 60 at
// 10 events a second), a search says of that peer that the copy the picture is made of is catching
// up; once it has taken in all, it no longer does.
func TestPictureSaysItIsCatchingUp(t *testing.T) {
	// An idle timeout of 4s gives 2s of grace: well over the 250ms heartbeats, under load too.
	f := fedtest.Start(t, fedtest.Options{Orgs: 2, EventsPerSecond: 10, IdleTimeout: 4 * time.Second})
	a, b := f.Orgs[0], f.Orgs[1]
	const crisis = "achterstand"
	a.Approve(t, policyDoc("backlog-to-b", spiffeOf(b), "sitrep", "internal", ""))
	// In one batch, so that the whole backlog is there at once: 60 Puts one by one take seconds
	// under the race detector, much of the time b has to say it is catching up.
	want := map[string]int64{}
	var backlog []*pb.Record
	for i := range 60 {
		id := fmt.Sprintf("s%02d", i)
		backlog = append(backlog, fedtest.Sitrep(id, crisis, pb.Classification_INTERNAL, "v1"))
		want[id] = 1
	}
	if _, err := pb.NewRecordServiceClient(a.Local(t)).PutBatch(fedtest.Call(t), &pb.PutBatchRequest{Records: backlog}); err != nil {
		t.Fatal(err)
	}
	// Each look is a search of a: ten a second, well within a's 50 calls a second of b's, which a
	// look every 10 ms went over (RESOURCE_EXHAUSTED, and the peer unreachable for that search).
	catchingUp := func() *pb.PeerStatus {
		t.Helper()
		time.Sleep(100 * time.Millisecond)
		return b.PeerState(t, &pb.SearchRequest{Filter: &pb.Filter{Crisis: crisis, Limit: 1}}, a.Name)
	}
	fedtest.Eventually(t, 10*time.Second, "b says its copy of a is catching up", func() (bool, string) {
		st := catchingUp()
		return st.State == search.Answered && st.CatchingUpSince != nil, fmt.Sprint(st)
	})
	waitHeld(t, b, crisis, a.TD.Name(), want, "b takes in all 60")
	fedtest.Eventually(t, 10*time.Second, "b no longer says it is catching up", func() (bool, string) {
		st := catchingUp()
		return st.CatchingUpSince == nil, fmt.Sprint(st)
	})
	// And it stays so, the peer's heartbeats saying there is nothing more, past the grace
	// (half the idle timeout of 4s) that a subscription without them gets.
	for range 6 {
		time.Sleep(500 * time.Millisecond)
		if st := catchingUp(); st.CatchingUpSince != nil {
			t.Fatalf("after b took in all, it says again that it is catching up: %v", st)
		}
	}
}

// TestARestartedNodeSaysItIsCatchingUp: a node that starts again while a peer changed what it
// shares takes in that backlog, and until it has, its picture says the peer's copy is catching
// up: no picture calls the copy whole while it lacks a change. The grace that a feed gets
// between heartbeats hid a restart's backlog (half the idle timeout, 10 s by default), and the
// picture was a mix of old and new figures that said it was complete (review I, F20).
func TestARestartedNodeSaysItIsCatchingUp(t *testing.T) {
	// The default idle timeout (a grace of 10 s), and a backlog that takes b about 2 s.
	f := fedtest.Start(t, fedtest.Options{Orgs: 2, EventsPerSecond: 50, IdleTimeout: 20 * time.Second})
	a, b := f.Orgs[0], f.Orgs[1]
	const crisis = "herstart"
	a.Approve(t, policyDoc("restart-to-b", spiffeOf(b), "sitrep", "internal", ""))
	write := func(body string) map[string]int64 {
		var recs []*pb.Record
		want := map[string]int64{}
		for i := range 100 {
			id := fmt.Sprintf("s%03d", i)
			recs = append(recs, fedtest.Sitrep(id, crisis, pb.Classification_INTERNAL, body))
		}
		resp, err := pb.NewRecordServiceClient(a.Local(t)).PutBatch(fedtest.Call(t), &pb.PutBatchRequest{Records: recs})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range resp.Results {
			want[r.Stored.Id] = r.Stored.Version
		}
		return want
	}
	waitHeld(t, b, crisis, a.TD.Name(), write("v1"), "b holds the first versions")
	b.Stop(t)
	want := write("v2")
	b.Start(t)
	sawBehind := false
	fedtest.Eventually(t, 20*time.Second, "b takes in a's backlog and says it has", func() (bool, string) {
		time.Sleep(150 * time.Millisecond) // within b's limit on a caller's peer checks
		p, err := pb.NewSearchServiceClient(b.Local(t)).Picture(fedtest.Call(t), &pb.PictureRequest{Crisis: crisis})
		if err != nil {
			return false, err.Error()
		}
		held := map[string]int64{}
		for _, e := range p.Entries {
			held[e.Record.Id] = e.Record.Version
		}
		for _, st := range p.Peers {
			if st.TrustDomain != a.TD.Name() || st.State != search.Answered {
				continue
			}
			if st.CatchingUpSince != nil {
				sawBehind = true
				return false, "catching up: " + fedtest.Describe(held)
			}
			if !maps.Equal(held, want) {
				t.Fatalf("b's picture says its copy of a is whole, and holds %s; want %s", fedtest.Describe(held), fedtest.Describe(want))
			}
			return true, ""
		}
		return false, fmt.Sprint(p.Peers)
	})
	if !sawBehind {
		t.Error("b's picture never said its copy of a was catching up while it took in 100 changes at 50 a second")
	}
}

// TestSearchSaysTheCopyIsCurrent: a peer that does not answer a search in time while this node's
// subscription to it is open is served from a copy that was current when the feed last spoke, and
// the search says so (feed_open, the age since then: under a heartbeat or two); once the peer is
// gone, the copy has an age and the feed is not open. TestAHungPeerIsNotCurrent: one that hangs.
func TestSearchSaysTheCopyIsCurrent(t *testing.T) {
	f := fedtest.Start(t, fedtest.Options{Orgs: 2})
	a, b := f.Orgs[0], f.Orgs[1]
	const crisis = "actueel"
	a.Approve(t, policyDoc("sitreps-to-b", spiffeOf(b), "sitrep", "internal", ""))
	a.Put(t, fedtest.Sitrep("s1", crisis, pb.Classification_INTERNAL, "v1"))
	waitHeld(t, b, crisis, a.TD.Name(), map[string]int64{"s1": 1}, "b holds s1")
	stateOf := func(timeoutMs int32) *pb.PeerStatus {
		t.Helper()
		return b.PeerState(t, &pb.SearchRequest{Filter: &pb.Filter{Crisis: crisis}, TimeoutMs: timeoutMs}, a.Name)
	}
	fedtest.Eventually(t, 10*time.Second, "a times out on a search of 1 ms, its feed open", func() (bool, string) {
		p := stateOf(1)
		return p.State == "timed_out" && p.FeedOpen && p.CacheAgeMs < 1000 && p.Count == 1, p.String()
	})
	a.Stop(t)
	fedtest.Eventually(t, 10*time.Second, "a is gone: its copy has an age and its feed is not open", func() (bool, string) {
		p := stateOf(1000)
		return p.State == "unreachable" && !p.FeedOpen && p.CacheAgeMs > 0 && p.Count == 1, p.String()
	})
}

// svidSource serves one SVID, as a fake peer's client presents it.
type svidSource struct{ svid *x509svid.SVID }

func (s svidSource) GetX509SVID() (*x509svid.SVID, error) { return s.svid, nil }

// TestAPeersCallsDoNotCutSearches: a peer calls this node (as partners do all the time) while
// this node's subscription to it is open; when the subscription ends later, the search under
// way to that peer on the same connection still gets its answer. A call used to leave a token
// that made the ended subscription close the connection at once, and the search reported a peer
// that was up as unreachable.
func TestAPeersCallsDoNotCutSearches(t *testing.T) {
	f := fedtest.Start(t, fedtest.Options{Orgs: 1})
	a := f.Orgs[0]
	endFirst := make(chan struct{})
	queried := make(chan struct{}, 1)
	var streams atomic.Int32
	p := &fakePeer{}
	p.subscribe = func(_ *pb.SubscribeRequest, s grpc.ServerStreamingServer[pb.FeedEvent]) error {
		if streams.Add(1) == 1 {
			return fakeHeartbeats(s, 1, endFirst)
		}
		return fakeHeartbeats(s, 1, nil)
	}
	p.query = func(_ *pb.QueryRequest, s grpc.ServerStreamingServer[pb.SharedRecord]) error {
		queried <- struct{}{}
		time.Sleep(time.Second) // the subscription ends meanwhile
		return s.Send(&pb.SharedRecord{Record: &pb.Record{Id: "antwoord", Origin: p.id.TD.Name(), Kind: "sitrep", Crisis: "gesprek", Region: "NL",
			Classification: pb.Classification_PUBLIC, Version: 1, UpdatedAt: timestamppb.Now(), Body: []byte(`{"title":"t","summary":"s"}`)}})
	}
	startFake(t, f, "beller", p)
	f.AddPeers(t, p.id.Peer(p.addr, "all"))
	fedtest.Eventually(t, 10*time.Second, "a's subscription to the fake is open", func() (bool, string) {
		info, err := pb.NewPeerServiceClient(a.Local(t)).Get(fedtest.Call(t), &pb.GetPeerRequest{Name: "beller"})
		return err == nil && info.Subscription == "open", fmt.Sprint(info, err)
	})
	conn, err := grpc.NewClient(a.Addr, grpc.WithTransportCredentials(identity.ClientCredentials(svidSource{p.id.SVID}, a.Bundle(), identity.AuthorizeReplica(a.TD))))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := pb.NewFederationServiceClient(conn).Describe(fedtest.Call(t), &pb.DescribeRequest{}); err != nil {
		t.Fatalf("the fake's call: %v", err)
	}
	answered := make(chan *pb.SearchResponse, 1)
	go func() {
		resp, _ := a.Search(t, &pb.SearchRequest{Filter: &pb.Filter{Crisis: "gesprek"}, Origins: []string{"beller"}, TimeoutMs: 5000})
		answered <- resp
	}()
	<-queried
	close(endFirst)
	resp := <-answered
	if len(resp.GetPeers()) != 1 || resp.Peers[0].State != "answered" || len(resp.Hits) != 1 {
		t.Errorf("the search of a peer that is up: %v, want its answer", resp)
	}
}

// TestARefusedSubscriptionIsNotOpen: a peer that refuses every Subscribe (it no longer counts
// this node a peer) keeps the subscription down: it is never said open, the outage is one, and
// its age grows. Each refused attempt used to count as opened, resetting the outage and its
// log throttle, and telling a search that the cache of that peer was seconds old.
func TestARefusedSubscriptionIsNotOpen(t *testing.T) {
	log := identitytest.NewLog()
	f := fedtest.Start(t, fedtest.Options{Orgs: 1, Logger: log.Logger})
	a := f.Orgs[0]
	p := &fakePeer{}
	p.subscribe = func(*pb.SubscribeRequest, grpc.ServerStreamingServer[pb.FeedEvent]) error {
		return status.Error(codes.PermissionDenied, "you are no peer of mine")
	}
	startFake(t, f, "weigeraar", p)
	f.AddPeers(t, p.id.Peer(p.addr, "all"))
	attempts := func(n int) {
		fedtest.Eventually(t, 15*time.Second, fmt.Sprint("a tries ", n, " times"), func() (bool, string) {
			return p.subscribes(a) >= n, fmt.Sprint(p.subscribes(a), " attempts")
		})
	}
	attempts(2)
	second := time.Now()
	attempts(4)
	info, err := pb.NewPeerServiceClient(a.Local(t)).Get(fedtest.Call(t), &pb.GetPeerRequest{Name: "weigeraar"})
	if err != nil || info.Subscription != "down" || !strings.Contains(info.SubscriptionError, "you are no peer of mine") ||
		!info.SubscriptionSince.AsTime().Before(second) {
		t.Errorf("a peer that refuses every attempt: %s since %v (%v; second attempt by %v), want down since the first attempt",
			info.GetSubscription(), info.GetSubscriptionSince().AsTime(), err, second)
	}
	fromPeer := func(e identitytest.Entry) bool { return e.Str("peer") == "weigeraar" }
	if n := log.Count("subscription open again", fromPeer); n != 0 {
		t.Errorf("a subscription refused each time was said open again %d times", n)
	}
	if n := log.Count("subscription ended: reconnecting", func(e identitytest.Entry) bool { return fromPeer(e) && e.Str("attempts") == "1" }); n != 1 {
		t.Errorf("%d outages of one attempt, want one outage counting its attempts", n)
	}
}

// TestSearchAnswerIsBoundedInBytes: a peer whose hits are large gives an answer at most its share
// of search.MaxAnswerBytes, and the answer names it as cut, both when it answers and when this
// node's copy of its records stands in. A peer's hits of up to 10,000 records of 4 MiB each used
// to be held, and sent on, whole.
func TestSearchAnswerIsBoundedInBytes(t *testing.T) {
	f := fedtest.Start(t, fedtest.Options{Orgs: 2})
	a, b := f.Orgs[0], f.Orgs[1]
	const crisis, n = "groot", 30
	a.Approve(t, policyDoc("sitreps-to-b", spiffeOf(b), "sitrep", "internal", ""))
	summary := strings.Repeat("x", 900<<10)
	for i := range n {
		r := fedtest.Sitrep(fmt.Sprintf("s%02d", i), crisis, pb.Classification_INTERNAL, "groot")
		r.Body = []byte(fmt.Sprintf(`{"title":"groot","summary":%q}`, summary))
		a.Put(t, r)
	}
	last := a.LastSeq(t)
	fedtest.Eventually(t, 20*time.Second, "b's copy of a's records is up to date", func() (bool, string) {
		c := b.Cursor(t, a.Name)
		return c >= last, fmt.Sprintf("cursor %d, a's last %d", c, last)
	})
	check := func(state string) {
		t.Helper()
		// 27 MB of bodies to read, decide on and cut under the race detector: on a loaded machine
		// that takes longer than fedtest.Call's 10 s, and this test is about bytes, not time.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		resp, err := pb.NewSearchServiceClient(b.Local(t)).Search(ctx, &pb.SearchRequest{Filter: &pb.Filter{Crisis: crisis}, TimeoutMs: 30000},
			grpc.MaxCallRecvMsgSize(node.MaxMessageBytes))
		if err != nil {
			t.Fatalf("%s: %v", state, err)
		}
		size := proto.Size(&pb.SearchResponse{Hits: resp.Hits})
		if len(resp.Hits) == 0 || len(resp.Hits) >= n || size > search.MaxAnswerBytes/2 {
			t.Fatalf("%s: %d hits of %d bytes, want fewer than %d within a share of %d", state, len(resp.Hits), size, n, search.MaxAnswerBytes/2)
		}
		if !slices.Equal(resp.Cut, []string{a.Name}) || !slices.Equal(search.Cut(resp, 1000), []string{a.Name}) {
			t.Fatalf("%s: cut %q, search.Cut %q: want %s", state, resp.Cut, search.Cut(resp, 1000), a.Name)
		}
		if len(resp.Peers) != 1 || resp.Peers[0].State != state || resp.Peers[0].Count != int64(len(resp.Hits)) {
			t.Fatalf("%s: peers %v", state, resp.Peers)
		}
	}
	check("answered")
	a.Stop(t)
	check("unreachable")
}

// TestPictureIsBoundedInBytes: a partner's many long situation reports, over what a picture's
// answer carries, leave the recipient's picture within its bound, where it used to grow past
// what a client takes in (60 reports of 900 KiB made 55 MB; past 64 MiB no client takes it). The
// bound is 48 MiB on a node; here 1 MiB, with 12 reports of 200 KiB, so that the test stays
// light under the race detector. The largest bodies lose their long summary, each entry says so,
// keeps its title and gives its whole body's hash, and every entry and every sum is still there.
func TestPictureIsBoundedInBytes(t *testing.T) {
	const bound = 1 << 20
	f := fedtest.Start(t, fedtest.Options{Orgs: 2, PictureBytes: bound})
	a, b := f.Orgs[0], f.Orgs[1]
	const crisis, n = "groot", 12
	a.Approve(t, policyDoc("to-b", spiffeOf(b), "sitrep, shelter.capacity", "internal", ""))
	summary := strings.Repeat("x", 200<<10)
	for i := range n {
		r := fedtest.Sitrep(fmt.Sprintf("s%02d", i), crisis, pb.Classification_INTERNAL, "groot")
		r.Body = fmt.Appendf(nil, `{"title":"verslag %02d","summary":%q}`, i, summary)
		a.Put(t, r)
	}
	a.Put(t, &pb.Record{Id: "opvang", Kind: "shelter.capacity", Crisis: crisis, Region: "VR09", Classification: pb.Classification_INTERNAL,
		Body: []byte(`{"municipality":"Utrecht","beds_total":100,"beds_free":37}`)})
	last := a.LastSeq(t)
	fedtest.Eventually(t, 30*time.Second, "b's copy of a's records is up to date", func() (bool, string) {
		c := b.Cursor(t, a.Name)
		return c >= last, fmt.Sprintf("cursor %d, a's last %d", c, last)
	})
	pic, err := pb.NewSearchServiceClient(b.Local(t)).Picture(fedtest.Call(t), &pb.PictureRequest{Crisis: crisis}, grpc.MaxCallRecvMsgSize(node.MaxMessageBytes))
	if err != nil {
		t.Fatal(err)
	}
	if size := proto.Size(pic); size > bound {
		t.Errorf("the picture is %d bytes, over %d", size, bound)
	}
	cut := 0
	for _, e := range pic.Entries {
		if e.Kind != "sitrep" {
			if len(e.FieldsLeftOut) > 0 {
				t.Errorf("%s: the small shelter record lost %q", e.Record.GetId(), e.FieldsLeftOut)
			}
			continue
		}
		var body struct{ Title, Summary string }
		if err := json.Unmarshal(e.Record.GetBody(), &body); err != nil || body.Title != "verslag "+strings.TrimPrefix(e.Record.GetId(), "s") {
			t.Errorf("%s: body %.60s (%v): the title must stay", e.Record.GetId(), e.Record.GetBody(), err)
		}
		whole := sha256.Sum256(fmt.Appendf(nil, `{"title":%q,"summary":%q}`, body.Title, summary))
		switch {
		case slices.Equal(e.FieldsLeftOut, []string{"summary"}) && body.Summary == "" && bytes.Equal(e.WholeBodySha256, whole[:]):
			cut++
		case len(e.FieldsLeftOut) != 0 || body.Summary != summary || e.WholeBodySha256 != nil:
			t.Errorf("%s: left out %q, a summary of %d bytes, whole body %x", e.Record.GetId(), e.FieldsLeftOut, len(body.Summary), e.WholeBodySha256)
		}
	}
	if len(pic.Entries) != n+1 || cut == 0 || cut == n {
		t.Errorf("%d entries, %d of them cut: want %d, some cut and some whole", len(pic.Entries), cut, n+1)
	}
	sums := map[string]float64{}
	for _, ag := range pic.Aggregates {
		if ag.Field == "beds_free" {
			sums[ag.Region] = ag.Sum
		}
	}
	if sums["VR09"] != 37 || sums["NL"] != 37 {
		t.Errorf("beds_free sums %v, want 37 in VR09 and NL", sums)
	}
}

// TestPictureCarriesWhatDisagreeingSourcesReport: when two orgs report one municipality
// otherwise, the recipient's picture shows the latest record and carries, beside it, the other
// source's record with its figures, as the recipient holds it (the field the policy redacts is
// absent), so that a coordinator sees both figures without a second search.
func TestPictureCarriesWhatDisagreeingSourcesReport(t *testing.T) {
	f := fedtest.Start(t, fedtest.Options{Orgs: 2})
	a, b := f.Orgs[0], f.Orgs[1]
	const crisis = "tegenstrijdig"
	a.Approve(t, policyDoc("capacity-to-b", spiffeOf(b), "shelter.capacity", "internal", "redact: [body.contact_phone]\n"))
	a.Put(t, &pb.Record{Id: "shelter-goes", Kind: "shelter.capacity", Crisis: crisis, Region: "VR19", Classification: pb.Classification_INTERNAL,
		Body: []byte(`{"municipality":"Goes","beds_total":40,"beds_free":1,"contact_phone":"0113 000000"}`)})
	waitHeld(t, b, crisis, a.TD.Name(), map[string]int64{"shelter-goes": 1}, "b receives a's shelter in Goes")
	b.Put(t, &pb.Record{Id: "opvang-goes", Kind: "shelter.capacity", Crisis: crisis, Region: "VR19", Classification: pb.Classification_INTERNAL,
		Body: []byte(`{"municipality":"Goes","beds_total":40,"beds_free":15}`)})

	pic := b.Picture(t, crisis)
	if len(pic.Entries) != 1 {
		t.Fatalf("b's picture has %d entries, want Goes alone: %v", len(pic.Entries), pic.Entries)
	}
	e := pic.Entries[0]
	if e.Source != b.TD.Name() || !slices.Equal(e.Conflict, []string{a.TD.Name()}) || len(e.Disagreeing) != 1 {
		t.Fatalf("Goes: source %s, conflict %q, %d records of the sources that disagree; want b's, a's, one", e.Source, e.Conflict, len(e.Disagreeing))
	}
	other := e.Disagreeing[0]
	var body map[string]any
	if err := json.Unmarshal(other.GetBody(), &body); err != nil || other.GetOrigin() != a.TD.Name() || other.GetId() != "shelter-goes" || body["beds_free"] != 1.0 || body["beds_total"] != 40.0 {
		t.Errorf("a's record beside b's: %s/%s %s (%v); want a's shelter-goes with beds_free 1", other.GetOrigin(), other.GetId(), other.GetBody(), err)
	}
	if _, ok := body["contact_phone"]; ok {
		t.Errorf("a's record beside b's holds the field a's policy redacts: %s", other.GetBody())
	}
}

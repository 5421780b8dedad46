package cap_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/knooppunt/knooppunt/node/cap"
	"github.com/knooppunt/knooppunt/node/cap/captest"
	"github.com/knooppunt/knooppunt/node/clustertest"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// capNode is a served node that CAP alerts are applied to through its RecordService, as
// `knooppunt import --format cap` does, with its public alert feed.
type capNode struct {
	t       *testing.T
	r       *clustertest.Replica
	records *putSpy
}

// putSpy is a RecordService client that remembers every Put it passes on.
type putSpy struct {
	pb.RecordServiceClient
	puts []*pb.PutRequest
}

func (s *putSpy) Put(ctx context.Context, in *pb.PutRequest, opts ...grpc.CallOption) (*pb.PutResponse, error) {
	s.puts = append(s.puts, proto.Clone(in).(*pb.PutRequest))
	return s.RecordServiceClient.Put(ctx, in, opts...)
}

func startCAPNode(t *testing.T) *capNode {
	t.Helper()
	r := clustertest.Start(t, clustertest.Options{Replicas: 1, Feed: true}).Replicas[0]
	return &capNode{t: t, r: r, records: &putSpy{RecordServiceClient: r.Records(t)}}
}

func (n *capNode) startExercise(name string) {
	n.t.Helper()
	if _, err := pb.NewExerciseServiceClient(n.r.Local(n.t)).Start(clustertest.Call(n.t), &pb.ExerciseStepRequest{Name: name, Reason: "test"}); err != nil {
		n.t.Fatal(err)
	}
}

func (n *capNode) apply(doc string, opts cap.ImportOptions) (cap.Result, error) {
	n.t.Helper()
	a, err := cap.Parse(strings.NewReader(doc), 0)
	if err != nil {
		n.t.Fatalf("%v\n%s", err, doc)
	}
	return cap.Apply(clustertest.Call(n.t), n.records, a, opts)
}

func (n *capNode) must(doc string, opts cap.ImportOptions, action string) cap.Result {
	n.t.Helper()
	res, err := n.apply(doc, opts)
	if err != nil {
		n.t.Fatalf("%v\n%s", err, doc)
	}
	if res.Action != action {
		n.t.Fatalf("%+v, want %s", res, action)
	}
	return res
}

// refused fails unless applying doc is refused with code and a message that says each of want.
func (n *capNode) refused(doc string, opts cap.ImportOptions, code codes.Code, want ...string) string {
	n.t.Helper()
	res, err := n.apply(doc, opts)
	if status.Code(err) != code {
		n.t.Fatalf("%+v, %v: want %s\n%s", res, err, code, doc)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			n.t.Fatalf("%v: does not say %q", err, w)
		}
	}
	return err.Error()
}

func (n *capNode) get(id string, mode *pb.Mode) *pb.Record {
	n.t.Helper()
	rec, err := n.records.Get(clustertest.Call(n.t), &pb.GetRequest{Id: id, Mode: mode})
	if err != nil {
		n.t.Fatalf("get %s: %v", id, err)
	}
	return rec
}

// live is the identifiers of the live alert records in mode, sorted.
func (n *capNode) live(mode *pb.Mode) []string {
	n.t.Helper()
	resp, err := n.records.List(clustertest.Call(n.t), &pb.ListRequest{Kind: cap.Kind, Mode: mode})
	if err != nil {
		n.t.Fatal(err)
	}
	var out []string
	for _, r := range resp.Records {
		var a cap.Alert
		if err := json.Unmarshal(r.Body, &a); err != nil {
			n.t.Fatal(err)
		}
		out = append(out, a.Identifier)
	}
	slices.Sort(out)
	return out
}

// feed is the CAP identifiers of the public feed's entries, each checked against the schema.
func (n *capNode) feed() []string {
	n.t.Helper()
	resp, err := http.Get("http://" + n.r.Feed + cap.FeedPath)
	if err != nil {
		n.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	out := []string{}
	for _, e := range feedEntries(n.t, body) {
		captest.Validate(n.t, "a feed entry", e.Content.Alert)
		out = append(out, parse(n.t, e.Content.Alert).Identifier)
	}
	return out
}

// withStatus is doc with another status, and the note (an exercise's name) unless it is empty.
func withStatus(doc, st, note string) string {
	doc = strings.Replace(doc, "<status>Actual</status>", "<status>"+st+"</status>", 1)
	if note != "" {
		doc = strings.Replace(doc, "</scope>", "</scope><note>"+note+"</note>", 1)
	}
	return doc
}

// sentAt is doc sent at another time.
func sentAt(doc, sent string) string {
	return strings.Replace(doc, "<sent>2026-12-03T09:15:00+01:00</sent>", "<sent>"+sent+"</sent>", 1)
}

// TestTestAndExerciseMessagesNeverTouchActualAlerts: a Test or Exercise message acts only on
// alerts of its own mode. A Test or Exercise Cancel of an actual alert finds nothing and says
// why; an Exercise Update of it becomes the exercise's own alert; a Test or Exercise alert under
// the actual alert's identifier is refused, saying to give it an identifier of its own. The
// actual alert stays as it was, and in the public feed.
func TestTestAndExerciseMessagesNeverTouchActualAlerts(t *testing.T) {
	n := startCAPNode(t)
	n.startExercise("oef-x")
	real := n.must(alertDoc("Alert", "REAL-300", "", "Public", "Dijkdoorbraak Walcheren"), cap.ImportOptions{Crisis: "kruis", Region: "VR19"}, cap.Created)
	before := n.get(real.ID, nil)
	exercise := &pb.Mode{Status: pb.Status_EXERCISE, Exercise: "oef-x"}

	never := "an actual alert is never changed by a Test or Exercise message"
	n.refused(withStatus(alertDoc("Cancel", "TEST-301", ref("REAL-300"), "Public", "Test"), "Test", ""), cap.ImportOptions{},
		codes.NotFound, "alert.references: no stored test alert matches "+ref("REAL-300"), never)
	n.refused(withStatus(alertDoc("Cancel", "OEF-201", ref("REAL-300"), "Public", "Oefening"), "Exercise", "oef-x"), cap.ImportOptions{},
		codes.NotFound, `alert.references: no stored exercise "oef-x" alert matches`, never)
	n.refused(withStatus(alertDoc("Cancel", "OEF-202", ref("REAL-300"), "Public", "Oefening"), "Exercise", ""), cap.ImportOptions{Exercise: "oef-x"},
		codes.NotFound, `no stored exercise "oef-x" alert`)

	// A Test or Exercise alert under the actual alert's own identifier is refused, and the
	// message says what to do: never to delete the actual alert.
	sameID := func() {
		t.Helper()
		for _, st := range []struct{ status, note, word string }{{"Exercise", "oef-x", "an Exercise alert never changes it"}, {"Test", "", "a Test alert never changes it"}} {
			msg := n.refused(withStatus(alertDoc("Alert", "REAL-300", "", "Public", "Oefening"), st.status, st.note), cap.ImportOptions{},
				codes.FailedPrecondition, "alert.identifier: REAL-300 of "+sender+" is the identifier of a stored alert that is actual", st.word,
				"give the "+strings.ToLower(st.status)+" alert an identifier of its own")
			if strings.Contains(msg, "delete") {
				t.Fatalf("the refusal tells the importer to delete the actual alert: %s", msg)
			}
		}
	}
	sameID()
	// An Exercise Update of the actual alert is an alert of the exercise, next to it.
	up := n.must(withStatus(alertDoc("Update", "OEF-203", ref("REAL-300"), "Public", "Oefening: evacuatie"), "Exercise", "oef-x"), cap.ImportOptions{}, cap.Created)
	if up.ID == real.ID || !strings.Contains(up.Note, `references no stored exercise "oef-x" alert`) {
		t.Fatalf("an Exercise Update of an actual alert: %+v", up)
	}
	if got := n.get(up.ID, exercise); got.Status != pb.Status_EXERCISE || got.Exercise != "oef-x" {
		t.Fatalf("the Exercise Update is stored as %s %q", got.Status, got.Exercise)
	}
	// A Test Update too, in the test mode.
	testUp := n.must(withStatus(alertDoc("Update", "TEST-302", ref("REAL-300"), "Public", "Test"), "Test", ""), cap.ImportOptions{}, cap.Created)
	if testUp.ID == real.ID {
		t.Fatalf("a Test Update rewrote the actual alert: %+v", testUp)
	}
	// Once an Update of its mode references the actual alert, the alert under the actual one's
	// identifier is refused still, not answered as superseded by that Update (review M, M3).
	sameID()
	// The exercise's own alerts are cancelled in the exercise: the Cancel names the actual
	// alert and the exercise's Update of it, and finds the exercise's.
	cancelled := n.must(withStatus(alertDoc("Cancel", "OEF-204", ref("REAL-300")+" "+ref("OEF-203"), "Public", "Oefening voorbij"), "Exercise", "oef-x"), cap.ImportOptions{}, cap.Cancelled)
	if cancelled.ID != up.ID {
		t.Fatalf("the Exercise Cancel hit %s, want the exercise's %s", cancelled.ID, up.ID)
	}

	if after := n.get(real.ID, nil); !proto.Equal(before, after) {
		t.Fatalf("the actual alert changed:\nbefore %v\nafter  %v", before, after)
	}
	if got := n.live(nil); !slices.Equal(got, []string{"REAL-300"}) {
		t.Fatalf("actual alerts %v, want REAL-300 alone", got)
	}
	if got := n.live(exercise); len(got) != 0 {
		t.Fatalf("exercise alerts %v after the exercise's Cancel", got)
	}
	if got := n.feed(); !slices.Equal(got, []string{"REAL-300"}) {
		t.Fatalf("the public feed holds %v, want REAL-300", got)
	}
}

// TestRepeatedAlerts: alerting systems send an alert many times and out of order. An alert the
// node holds already, or one that a later Update superseded, is answered unchanged and nothing
// is written; a cancelled alert is not stored again; an alert stays in its crisis and region;
// an Update that came before its original supersedes the original when it comes; and every
// rewrite names the version it read.
func TestRepeatedAlerts(t *testing.T) {
	n := startCAPNode(t)
	opts := cap.ImportOptions{Crisis: "hoogwater", Region: "VR19"}
	a1 := alertDoc("Alert", "hw-1", "", "Public", "Hoogwater verwacht")
	first := n.must(a1, opts, cap.Created)

	// Polled again, with or without the flags: nothing written.
	for _, o := range []cap.ImportOptions{opts, {}} {
		again := n.must(a1, o, cap.Unchanged)
		if again.ID != first.ID || again.Version != 1 || again.Describe() != "unchanged "+first.ID+" (version 1): the node holds this alert already: nothing written" {
			t.Fatalf("the same alert again: %+v %q", again, again.Describe())
		}
	}
	// Polled into another crisis or region: refused, naming both; nothing moves.
	n.refused(a1, cap.ImportOptions{Crisis: "capfout", Region: "VR19"}, codes.FailedPrecondition, `crisis: alert hw-1 of `+sender, `in crisis "hoogwater", not "capfout"`, "--crisis hoogwater")
	n.refused(a1, cap.ImportOptions{Crisis: "hoogwater", Region: "VR20"}, codes.FailedPrecondition, `region: alert hw-1`, `in region "VR19", not "VR20"`)
	if rec := n.get(first.ID, nil); rec.Version != 1 || rec.Crisis != "hoogwater" || rec.Region != "VR19" {
		t.Fatalf("after the refused moves: v%d %s %s", rec.Version, rec.Crisis, rec.Region)
	}

	// An Update; then the original, the Update itself and an older Update come again: the
	// Update stays, and nothing is written.
	up := n.must(sentAt(alertDoc("Update", "hw-2", ref("hw-1"), "Public", "Hoogwater: evacuatie"), "2026-12-03T09:45:00+01:00"), cap.ImportOptions{}, cap.Updated)
	if up.ID != first.ID || up.Version != 2 {
		t.Fatalf("the Update: %+v", up)
	}
	if res := n.must(a1, opts, cap.Unchanged); res.Version != 2 || !strings.Contains(res.Note, "superseded by hw-2 (sent 2026-12-03T09:45:00+01:00)") {
		t.Fatalf("the original after its Update: %+v", res)
	}
	if res := n.must(sentAt(alertDoc("Update", "hw-2", ref("hw-1"), "Public", "Hoogwater: evacuatie"), "2026-12-03T09:45:00+01:00"), cap.ImportOptions{}, cap.Unchanged); res.Version != 2 {
		t.Fatalf("the Update again: %+v", res)
	}
	if res := n.must(sentAt(alertDoc("Update", "hw-1b", ref("hw-1"), "Public", "Hoogwater: oud"), "2026-12-03T09:30:00+01:00"), cap.ImportOptions{}, cap.Unchanged); !strings.Contains(res.Note, "superseded by hw-2") {
		t.Fatalf("an older Update after a newer one: %+v", res)
	}
	rec := n.get(first.ID, nil)
	if exported, _ := captest.Export(t, rec); rec.Version != 2 || exported.Identifier != "hw-2" || exported.Info[0].Headline != "Hoogwater: evacuatie" {
		t.Fatalf("after the repeats: v%d %s %q", rec.Version, exported.Identifier, exported.Info[0].Headline)
	}
	// Every rewrite named the version it had read: another importer's write in between would
	// have been refused, not overwritten.
	if last := n.records.puts[len(n.records.puts)-1]; last.Record.Version != 1 {
		t.Fatalf("the Update was put at version %d, want 1, the version read", last.Record.Version)
	}
	// A sender's correction under the same identifier replaces it, at the version read.
	fixed := n.must(sentAt(alertDoc("Update", "hw-2", ref("hw-1"), "Public", "Hoogwater: evacuatie Veere"), "2026-12-03T09:45:00+01:00"), cap.ImportOptions{}, cap.Updated)
	if fixed.Version != 3 || !strings.Contains(fixed.Note, "replaced") || n.records.puts[len(n.records.puts)-1].Record.Version != 2 {
		t.Fatalf("a corrected alert: %+v", fixed)
	}

	// A cancelled alert is not stored again, and stays out of the feed.
	gone := n.must(alertDoc("Alert", "hw-9", "", "Public", "Dijk Veere"), opts, cap.Created)
	n.must(alertDoc("Cancel", "hw-10", ref("hw-9"), "Public", "Dijk Veere veilig"), cap.ImportOptions{}, cap.Cancelled)
	puts := len(n.records.puts)
	n.refused(alertDoc("Alert", "hw-9", "", "Public", "Dijk Veere"), opts, codes.FailedPrecondition,
		"alert.identifier: hw-9 of "+sender+" was cancelled (record "+gone.ID+", deleted at version 2)", "not stored again")
	if _, err := n.records.Get(clustertest.Call(t), &pb.GetRequest{Id: gone.ID}); status.Code(err) != codes.NotFound || len(n.records.puts) != puts {
		t.Fatalf("the cancelled alert after it came again: %v, %d puts", err, len(n.records.puts)-puts)
	}

	// Out of order: an Update before its original. The original, when it comes, is superseded,
	// and a Cancel that names only the original cancels the Update's record.
	early := n.must(alertDoc("Update", "zz-2", ref("zz-1"), "Public", "Nieuw"), cap.ImportOptions{}, cap.Created)
	if res := n.must(alertDoc("Alert", "zz-1", "", "Public", "Oud"), cap.ImportOptions{}, cap.Unchanged); res.ID != early.ID || !strings.Contains(res.Note, "superseded by zz-2") {
		t.Fatalf("the original after its Update: %+v", res)
	}
	if res := n.must(alertDoc("Cancel", "zz-3", ref("zz-1"), "Public", "x"), cap.ImportOptions{}, cap.Cancelled); res.ID != early.ID {
		t.Fatalf("the Cancel of the original hit %s, want the Update's %s", res.ID, early.ID)
	}

	if got := n.live(nil); !slices.Equal(got, []string{"hw-2"}) {
		t.Fatalf("live alerts %v, want hw-2 alone", got)
	}
	if got := n.feed(); !slices.Equal(got, []string{"hw-2"}) {
		t.Fatalf("the public feed holds %v, want hw-2", got)
	}
}

// TestSitrepUpdateRoundTrip: a node's export of a sitrep's later version is an Update that
// references the version before, so another node that imported version 1 applies versions 2
// and 3 to the same alert record. A sitrep whose earlier version's time the node does not keep
// (an exercise's) is exported as an Alert that says so. Every document is valid CAP 1.2.
func TestSitrepUpdateRoundTrip(t *testing.T) {
	source := startCAPNode(t)
	export := func(id string, mode *pb.Mode) (*cap.Alert, string) {
		t.Helper()
		a, err := cap.Export(clustertest.Call(t), source.records, source.get(id, mode), cap.ExportOptions{})
		if err != nil {
			t.Fatal(err)
		}
		doc, err := a.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		captest.Validate(t, "the export of "+a.Identifier, doc)
		return a, string(doc)
	}
	put := func(id, title string, st pb.Status, exercise string) {
		t.Helper()
		source.r.Put(t, &pb.Record{Id: id, Kind: "sitrep", Crisis: "hoogwater", Region: "VR19", Classification: pb.Classification_PUBLIC,
			Status: st, Exercise: exercise, Body: []byte(`{"title":"` + title + `","summary":"Dijk houdt","severity":"medium"}`)})
	}
	titles := []string{"Situatie Walcheren", "Situatie Walcheren v2 & co", "Situatie Walcheren v3"}
	var alerts []*cap.Alert
	var docs []string
	for _, title := range titles {
		put("sitrep-hw-1", title, pb.Status_ACTUAL, "")
		a, doc := export("sitrep-hw-1", nil)
		alerts, docs = append(alerts, a), append(docs, doc)
	}
	for i, a := range alerts {
		want := ""
		if i > 0 {
			prev := alerts[i-1]
			want = prev.Sender + "," + prev.Identifier + "," + prev.Sent
		}
		if wantType := map[bool]string{true: "Alert", false: "Update"}[i == 0]; a.MsgType != wantType || a.References != want {
			t.Fatalf("version %d: msgType %s references %q, want %s referencing %q", i+1, a.MsgType, a.References, wantType, want)
		}
	}
	// An exercise's sitrep has no history: its second version is an Alert, and says why.
	source.startExercise("oef-s")
	put("sitrep-oef-1", "Oefening", pb.Status_EXERCISE, "oef-s")
	put("sitrep-oef-1", "Oefening v2", pb.Status_EXERCISE, "oef-s")
	// Its note names the exercise first, for the importer, which CAP has no field for.
	oef, oefDoc := export("sitrep-oef-1", &pb.Mode{Status: pb.Status_EXERCISE, Exercise: "oef-s"})
	if oef.MsgType != "Alert" || oef.Status != "Exercise" || !strings.HasPrefix(oef.Note, "oef-s: Situation report") ||
		!strings.Contains(oef.Note, "Not written as an Update of version 1") {
		t.Fatalf("the exercise sitrep's version 2: %s %s %q", oef.MsgType, oef.Status, oef.Note)
	}
	source.r.Stop(t) // one node per process at a time

	dest := startCAPNode(t)
	first := dest.must(docs[0], cap.ImportOptions{Crisis: "hoogwater"}, cap.Created)
	for i, doc := range docs[1:] {
		res := dest.must(doc, cap.ImportOptions{}, cap.Updated)
		if res.ID != first.ID {
			t.Fatalf("version %d updated %s, want the record of version 1, %s", i+2, res.ID, first.ID)
		}
		got := dest.get(first.ID, nil)
		if a, _ := captest.Export(t, got); a.Info[0].Headline != titles[i+1] || got.Crisis != "hoogwater" {
			t.Fatalf("after version %d: %s %q", i+2, got.Crisis, a.Info[0].Headline)
		}
	}
	if got := dest.live(nil); len(got) != 1 {
		t.Fatalf("the receiving node holds %v, want one alert", got)
	}
	// The exercise's sitrep goes into the same exercise at the receiving node, by its note.
	dest.startExercise("oef-s")
	oefMode := &pb.Mode{Status: pb.Status_EXERCISE, Exercise: "oef-s"}
	res := dest.must(oefDoc, cap.ImportOptions{Crisis: "hoogwater"}, cap.Created)
	if got := dest.get(res.ID, oefMode); got.Exercise != "oef-s" {
		t.Fatalf("the exercise sitrep imported into %q, want oef-s", got.Exercise)
	}
}

// TestSignedAlertSaysTheSignatureIsNotKept: an alert with an XML signature is stored with CAP's
// own elements, and the importer is told that the signature is not kept.
func TestSignedAlertSaysTheSignatureIsNotKept(t *testing.T) {
	n := startCAPNode(t)
	signed := strings.Replace(alertDoc("Alert", "hw-s", "", "Public", "Getekend"), "</alert>",
		`<Signature xmlns="http://www.w3.org/2000/09/xmldsig#"><SignedInfo/></Signature></alert>`, 1)
	if res := n.must(signed, cap.ImportOptions{Crisis: "hoogwater", Region: "VR19"}, cap.Created); res.Note != "not kept: <Signature>, which is not of CAP's own elements" {
		t.Errorf("a signed alert: note %q, want that the signature is not kept", res.Note)
	}
}

// TestOnlyItsSenderChangesAnAlert: an Update or Cancel from another sender than the alert's is
// refused, naming the reference, and leaves the alert as it was, in the feed too; a Cancel that
// references several alerts of its sender cancels each of them.
func TestOnlyItsSenderChangesAnAlert(t *testing.T) {
	n := startCAPNode(t)
	n.must(alertDoc("Alert", "OWN-1", "", "Public", "Hoogwater Walcheren"), cap.ImportOptions{Crisis: "hoogwater", Region: "VR19"}, cap.Created)
	n.must(alertDoc("Alert", "OWN-2", "", "Public", "Dijkbewaking Veere"), cap.ImportOptions{Crisis: "hoogwater", Region: "VR19"}, cap.Created)
	other := func(doc string) string {
		return strings.Replace(doc, "<sender>"+sender+"</sender>", "<sender>evil@example.org</sender>", 1)
	}
	for _, msgType := range []string{"Update", "Cancel"} {
		n.refused(other(alertDoc(msgType, "EVIL-"+msgType, ref("OWN-1"), "Public", "Alles veilig")), cap.ImportOptions{}, codes.FailedPrecondition,
			"alert.references[0]: refers to an alert of "+sender, "evil@example.org", "by its own sender only")
	}
	if got := n.live(nil); !slices.Equal(got, []string{"OWN-1", "OWN-2"}) {
		t.Fatalf("after another sender's Update and Cancel the live alerts are %v, want OWN-1 and OWN-2", got)
	}
	if got := n.feed(); !slices.Contains(got, "OWN-1") {
		t.Errorf("the feed after another sender's Cancel: %v, want OWN-1 in it", got)
	}
	res := n.must(alertDoc("Cancel", "OWN-3", ref("OWN-1")+" "+ref("OWN-2"), "Public", "Opgeheven"), cap.ImportOptions{}, cap.Cancelled)
	if !strings.HasPrefix(res.Note, "also cancelled cap-OWN-1") {
		t.Errorf("a Cancel of two alerts: %+v, want a note that it cancelled the first too", res)
	}
	if got := n.live(nil); len(got) != 0 {
		t.Errorf("after a Cancel of both the live alerts are %v, want none", got)
	}
}

// TestReferenceNamesTheSentTime: a reference is sender,identifier,sent. One whose sender and
// identifier name a stored alert but whose sent time is another names no alert the node holds:
// an Update or Cancel with it is refused with FAILED_PRECONDITION, saying both times, and
// nothing is written. The same moment at another offset is the same time.
func TestReferenceNamesTheSentTime(t *testing.T) {
	n := startCAPNode(t)
	opts := cap.ImportOptions{Crisis: "hoogwater", Region: "VR19"}
	first := n.must(alertDoc("Alert", "hw-1", "", "Public", "Hoogwater verwacht"), opts, cap.Created)
	wrong := sender + ",hw-1,2020-01-01T00:00:00+01:00"
	puts := len(n.records.puts)
	for _, msgType := range []string{"Update", "Cancel"} {
		n.refused(sentAt(alertDoc(msgType, "hw-x", wrong, "Public", "Fout"), "2026-12-03T10:00:00+01:00"), cap.ImportOptions{}, codes.FailedPrecondition,
			"alert.references[0]: names hw-1 of "+sender+" as sent 2020-01-01T00:00:00+01:00, but the node holds it as sent 2026-12-03T09:15:00+01:00", "correct the sent time")
	}
	if len(n.records.puts) != puts {
		t.Fatalf("the refused Update wrote %d times", len(n.records.puts)-puts)
	}
	// A Cancel of two alerts, one named with the wrong time, cancels neither.
	n.must(alertDoc("Alert", "hw-5", "", "Public", "Dijk Veere"), opts, cap.Created)
	puts = len(n.records.puts)
	n.refused(sentAt(alertDoc("Cancel", "hw-6", ref("hw-5")+" "+wrong, "Public", "x"), "2026-12-03T10:00:00+01:00"), cap.ImportOptions{}, codes.FailedPrecondition, "alert.references[1]: names hw-1")
	if got := n.live(nil); !slices.Equal(got, []string{"hw-1", "hw-5"}) || len(n.records.puts) != puts {
		t.Fatalf("after the refused Update and Cancels: live %v, %d puts", got, len(n.records.puts)-puts)
	}
	// The same moment in UTC names it.
	up := n.must(sentAt(alertDoc("Update", "hw-2", sender+",hw-1,2026-12-03T08:15:00-00:00", "Public", "Hoogwater: evacuatie"), "2026-12-03T09:45:00+01:00"), cap.ImportOptions{}, cap.Updated)
	if up.ID != first.ID {
		t.Fatalf("the Update: %+v", up)
	}
	// The record now holds hw-2, whose reference gives hw-1's time: a later Update is checked
	// against it.
	n.refused(sentAt(alertDoc("Update", "hw-3", wrong, "Public", "Fout"), "2026-12-03T10:00:00+01:00"), cap.ImportOptions{}, codes.FailedPrecondition,
		"alert.references[0]: names hw-1 of "+sender+" as sent 2020-01-01T00:00:00+01:00, but the node holds it as sent 2026-12-03T08:15:00-00:00")
	n.refused(sentAt(alertDoc("Update", "hw-3", sender+",hw-2,2026-12-03T09:15:00+01:00", "Public", "Fout"), "2026-12-03T10:00:00+01:00"), cap.ImportOptions{}, codes.FailedPrecondition,
		"alert.references[0]: names hw-2 of "+sender+" as sent 2026-12-03T09:15:00+01:00, but the node holds it as sent 2026-12-03T09:45:00+01:00")
	if rec := n.get(first.ID, nil); rec.Version != 2 {
		t.Fatalf("after the refused Updates the alert is at version %d, want 2", rec.Version)
	}
	n.must(sentAt(alertDoc("Update", "hw-3", sender+",hw-2,2026-12-03T09:45:00+01:00", "Public", "Goed"), "2026-12-03T10:00:00+01:00"), cap.ImportOptions{}, cap.Updated)
}

// TestUpdateOfCancelledAlertIsRefused: the node never stores a cancelled alert again, and an
// Update of one would bring it back as a new alert; it is refused with FAILED_PRECONDITION at
// the reference, saying it was cancelled, and nothing is written. So is one that names a
// cancelled chain's first alert among its references, and one of a cancelled exercise alert.
func TestUpdateOfCancelledAlertIsRefused(t *testing.T) {
	n := startCAPNode(t)
	opts := cap.ImportOptions{Crisis: "hoogwater", Region: "VR19"}
	gone := n.must(alertDoc("Alert", "hw-1", "", "Public", "Dijk Veere"), opts, cap.Created)
	n.must(alertDoc("Cancel", "hw-2", ref("hw-1"), "Public", "Dijk Veere veilig"), cap.ImportOptions{}, cap.Cancelled)
	puts := len(n.records.puts)
	n.refused(alertDoc("Update", "hw-3", ref("hw-1"), "Public", "Dijk Veere toch niet veilig"), cap.ImportOptions{}, codes.FailedPrecondition,
		"alert.references[0]: hw-1 of "+sender+" was cancelled (record "+gone.ID+", deleted at version 2)", "an Update of a cancelled alert is not stored", "send an Alert with an identifier of its own")

	// A chain: the Cancel named the Update, whose alert has no record of its own; a later
	// Update that names the chain's first alert too is refused there.
	n.must(alertDoc("Alert", "c-1", "", "Public", "Wateroverlast"), opts, cap.Created)
	n.must(alertDoc("Update", "c-2", ref("c-1"), "Public", "Wateroverlast: zandzakken"), cap.ImportOptions{}, cap.Updated)
	n.must(alertDoc("Cancel", "c-3", ref("c-2"), "Public", "Voorbij"), cap.ImportOptions{}, cap.Cancelled)
	n.refused(alertDoc("Update", "c-4", ref("c-1")+" "+ref("c-2"), "Public", "Weer"), cap.ImportOptions{}, codes.FailedPrecondition,
		"alert.references[0]: c-1 of "+sender+" was cancelled")
	// An Update that names only the cancelled Update, which had no record of its own, and the
	// chain's Update sent again: each is known by the chain the deleted record kept.
	n.refused(alertDoc("Update", "c-5", ref("c-2"), "Public", "Weer"), cap.ImportOptions{}, codes.FailedPrecondition,
		"alert.references[0]: c-2 of "+sender+" was cancelled (record "+cap.RecordID(sender, "c-1")+", deleted at version 3)")
	n.refused(alertDoc("Update", "c-2", ref("c-1"), "Public", "Wateroverlast: zandzakken"), cap.ImportOptions{}, codes.FailedPrecondition,
		"alert.references[0]: c-1 of "+sender+" was cancelled")
	// A longer chain, whose Cancel named its last Update: its middle Update sent again names
	// an Update, and is itself one the record took in.
	n.must(alertDoc("Alert", "d-1", "", "Public", "Storm"), opts, cap.Created)
	n.must(alertDoc("Update", "d-2", ref("d-1"), "Public", "Storm: bomen"), cap.ImportOptions{}, cap.Updated)
	n.must(alertDoc("Update", "d-3", ref("d-2"), "Public", "Storm: wegen dicht"), cap.ImportOptions{}, cap.Updated)
	n.must(alertDoc("Cancel", "d-4", ref("d-3"), "Public", "Storm voorbij"), cap.ImportOptions{}, cap.Cancelled)
	n.refused(alertDoc("Update", "d-3", ref("d-2"), "Public", "Storm: wegen dicht"), cap.ImportOptions{}, codes.FailedPrecondition,
		"alert.identifier: d-3 of "+sender+" was applied to an alert that was cancelled (record "+cap.RecordID(sender, "d-1")+", deleted at version 4)")
	if got := n.live(nil); len(got) != 0 || len(n.records.puts) != puts+5 {
		t.Fatalf("after the refused Updates: live %v, %d puts, want none but the chains' 5", got, len(n.records.puts)-puts)
	}

	n.startExercise("oef-x")
	exercise := func(doc string) string { return withStatus(doc, "Exercise", "oef-x") }
	n.must(exercise(alertDoc("Alert", "oef-1", "", "Public", "Oefening")), cap.ImportOptions{}, cap.Created)
	n.must(exercise(alertDoc("Cancel", "oef-2", ref("oef-1"), "Public", "Oefening voorbij")), cap.ImportOptions{}, cap.Cancelled)
	n.refused(exercise(alertDoc("Update", "oef-3", ref("oef-1"), "Public", "Oefening weer")), cap.ImportOptions{}, codes.FailedPrecondition,
		`alert.references[0]: oef-1 of `+sender+` was cancelled, or exercise "oef-x" closed, and an Update of a cancelled alert is not stored`)
	if got := n.live(&pb.Mode{Status: pb.Status_EXERCISE, Exercise: "oef-x"}); len(got) != 0 {
		t.Fatalf("exercise alerts %v after the refused Update", got)
	}
}

// TestALongChainKeepsItsLatest: a chain longer than cap.MaxChain keeps the marks of its latest
// alerts, which a sender is likeliest to send again: after its Cancel, each of the latest
// MaxChain-1 Updates sent again is refused, not stored as a new live alert.
func TestALongChainKeepsItsLatest(t *testing.T) {
	n := startCAPNode(t)
	const length = cap.MaxChain + 12
	id := func(i int) string { return fmt.Sprintf("L-%d", i) }
	first := n.must(alertDoc("Alert", id(1), "", "Public", "Storm"), cap.ImportOptions{Crisis: "storm", Region: "VR19"}, cap.Created)
	for i := 2; i <= length; i++ {
		n.must(alertDoc("Update", id(i), ref(id(i-1)), "Public", fmt.Sprintf("Storm %d", i)), cap.ImportOptions{}, cap.Updated)
	}
	rec, err := n.records.Get(clustertest.Call(t), &pb.GetRequest{Id: first.ID})
	if err != nil {
		t.Fatal(err)
	}
	if chain := len(slices.DeleteFunc(slices.Collect(maps.Keys(rec.Labels)), func(k string) bool { return !strings.HasPrefix(k, cap.LabelChain) })); chain != cap.MaxChain || len(rec.Labels) > 64 {
		t.Fatalf("after %d alerts the record has %d chain labels and %d in all, want %d", length, chain, len(rec.Labels), cap.MaxChain)
	}
	n.must(alertDoc("Cancel", id(length+1), ref(id(length)), "Public", "Voorbij"), cap.ImportOptions{}, cap.Cancelled)
	for i := length - cap.MaxChain + 2; i <= length; i++ {
		n.refused(alertDoc("Update", id(i), ref(id(i-1)), "Public", fmt.Sprintf("Storm %d", i)), cap.ImportOptions{}, codes.FailedPrecondition, "was cancelled")
	}
	if got := n.live(nil); len(got) != 0 {
		t.Fatalf("after the latest Updates were sent again: live %v, want none", got)
	}
}

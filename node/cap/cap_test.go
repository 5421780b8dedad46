package cap_test

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/node/cap"
	"github.com/knooppunt/knooppunt/node/cap/captest"
	"github.com/knooppunt/knooppunt/node/record"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

const org = "vrzeeland.crisis.test"

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func parse(t testing.TB, doc []byte) *cap.Alert {
	t.Helper()
	a, err := cap.Parse(bytes.NewReader(doc), 0)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return a
}

func checker(t testing.TB, scopes map[string]pb.Classification) *record.Checker {
	t.Helper()
	kinds, err := record.NewKinds(record.DemoKinds())
	if err != nil {
		t.Fatal(err)
	}
	return &record.Checker{Kinds: kinds, Origin: org, MaxBody: record.DefaultMaxBody, Scopes: scopes}
}

// store is what a node does to a record it is given: the checks and normalisation of a Put
// (the CAP scope becomes the classification), and a version and a time.
func store(t testing.TB, c *record.Checker, rec *pb.Record) *pb.Record {
	t.Helper()
	rec = proto.Clone(rec).(*pb.Record)
	if err := c.CheckPut(rec); err != nil {
		t.Fatalf("the node would refuse record %s: %v", rec.Id, err)
	}
	rec.Version = 1
	rec.UpdatedAt = timestamppb.New(time.Date(2026, 12, 3, 9, 16, 0, 0, time.UTC))
	return rec
}

// same fails unless two alerts hold the same fields.
func same(t testing.TB, what string, got, want *cap.Alert) {
	t.Helper()
	g, w := *got, *want
	g.XMLName, w.XMLName = xml.Name{}, xml.Name{}
	if !reflect.DeepEqual(g, w) {
		gj, _ := json.MarshalIndent(g, "", " ")
		wj, _ := json.MarshalIndent(w, "", " ")
		t.Fatalf("%s: the alert changed\ngot:\n%s\nwant:\n%s", what, gj, wj)
	}
}

// TestOASISExamplesImport: the four example alerts of the CAP 1.2 specification (Appendix A),
// rewritten by hand, parse, become alert records that a node accepts (the body passes the alert
// kind's schema) with the classification of their scope, and export again, valid against the
// OASIS schema and with every field kept.
func TestOASISExamplesImport(t *testing.T) {
	files, err := filepath.Glob("testdata/oasis/*.xml")
	if err != nil || len(files) != 4 {
		t.Fatalf("want the 4 OASIS examples, found %v (%v)", files, err)
	}
	c := checker(t, nil)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			doc, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			a := parse(t, doc)
			rec, err := cap.ToRecord(a, cap.ImportOptions{})
			if err != nil {
				t.Fatal(err)
			}
			stored := store(t, c, rec)
			if stored.Classification != pb.Classification_PUBLIC || stored.Status != pb.Status_ACTUAL {
				t.Fatalf("a Public Actual alert became %s %s", stored.Classification, stored.Status)
			}
			_, xmlOut := captest.Export(t, stored)
			same(t, f, parse(t, xmlOut), a)
		})
	}
}

// TestRoundTrip: an alert with every CAP element, in every status and scope, survives import
// and export: each field comes back, the status and scope decide the record's status and
// classification, and the document is valid CAP 1.2.
func TestRoundTrip(t *testing.T) {
	full := parse(t, readFile(t, "full.xml"))
	if len(full.Info) != 2 || len(full.Info[0].Area[0].Polygon) != 2 || full.Info[0].Resource[0].Digest == "" || len(full.Code) != 2 {
		t.Fatalf("full.xml did not parse whole: %+v", full)
	}
	custom := map[string]pb.Classification{"Public": pb.Classification_PUBLIC, "Restricted": pb.Classification_CONFIDENTIAL, "Private": pb.Classification_SECRET}
	for _, tc := range []struct {
		status, scope, exercise string
		scopes                  map[string]pb.Classification
		wantStatus              pb.Status
		wantClass               pb.Classification
	}{
		{"Actual", "Public", "", nil, pb.Status_ACTUAL, pb.Classification_PUBLIC},
		{"Actual", "Restricted", "", nil, pb.Status_ACTUAL, pb.Classification_INTERNAL},
		{"Actual", "Private", "", nil, pb.Status_ACTUAL, pb.Classification_CONFIDENTIAL},
		{"Actual", "Restricted", "", custom, pb.Status_ACTUAL, pb.Classification_CONFIDENTIAL},
		{"Actual", "Private", "", custom, pb.Status_ACTUAL, pb.Classification_SECRET},
		{"Exercise", "Restricted", "oefening-zeeland", nil, pb.Status_EXERCISE, pb.Classification_INTERNAL},
		{"Test", "Public", "", nil, pb.Status_TEST, pb.Classification_PUBLIC},
		{"Draft", "Private", "", nil, pb.Status_DRAFT, pb.Classification_CONFIDENTIAL},
	} {
		t.Run(tc.status+"-"+tc.scope, func(t *testing.T) {
			in := *full
			in.Status, in.Scope = tc.status, tc.scope
			rec, err := cap.ToRecord(&in, cap.ImportOptions{Crisis: "hoogwater", Region: "VR19", Exercise: tc.exercise})
			if err != nil {
				t.Fatal(err)
			}
			if rec.Status != tc.wantStatus || rec.Exercise != tc.exercise || rec.Kind != "alert" || rec.Crisis != "hoogwater" || rec.Region != "VR19" {
				t.Fatalf("record: status %s exercise %q kind %s crisis %s region %s", rec.Status, rec.Exercise, rec.Kind, rec.Crisis, rec.Region)
			}
			stored := store(t, checker(t, tc.scopes), rec)
			if stored.Classification != tc.wantClass {
				t.Fatalf("scope %s became %s, want %s", tc.scope, stored.Classification, tc.wantClass)
			}
			_, doc := captest.Export(t, stored)
			same(t, "import then export", parse(t, doc), &in)
		})
	}
}

// TestExerciseName: CAP has no field for an exercise's name. It comes from --exercise or from
// the note, and export writes it into the note, so that it survives a round trip; an Exercise
// alert without a name, a note that is no name, or a name on an alert that is no exercise is
// refused, naming what to do.
func TestExerciseName(t *testing.T) {
	a := parse(t, readFile(t, "oasis/a1-homeland-security.xml"))
	a.Status = "Exercise"
	if _, err := cap.ToRecord(a, cap.ImportOptions{}); err == nil || !strings.Contains(err.Error(), "--exercise NAME") {
		t.Fatalf("an Exercise alert without a name: %v, want an error naming --exercise", err)
	}
	rec, err := cap.ToRecord(a, cap.ImportOptions{Exercise: "oefening-vr19"})
	if err != nil || rec.Exercise != "oefening-vr19" || rec.Status != pb.Status_EXERCISE {
		t.Fatalf("with --exercise: %v %v", rec, err)
	}
	out, err := cap.FromRecord(store(t, checker(t, nil), rec), cap.ExportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if out.Status != "Exercise" || out.Note != "oefening-vr19" {
		t.Fatalf("exported status %q note %q, want Exercise and the exercise's name", out.Status, out.Note)
	}
	again, err := cap.ToRecord(out, cap.ImportOptions{})
	if err != nil || again.Exercise != "oefening-vr19" {
		t.Fatalf("re-import from the note: %v %v", again, err)
	}
	a.Note = "Dit is een oefening."
	if _, err := cap.ToRecord(a, cap.ImportOptions{}); err == nil || !strings.Contains(err.Error(), "alert.note") || !strings.Contains(err.Error(), "--exercise NAME") {
		t.Fatalf("a note that is no exercise name: %v", err)
	}
	// Every name `exercise start` takes is taken here too (record.CheckExerciseName).
	for _, name := range []string{"Oefening-VR19", "oef:2026:" + strings.Repeat("x", 100)} {
		if rec, err := cap.ToRecord(a, cap.ImportOptions{Exercise: name}); err != nil || rec.Exercise != name {
			t.Errorf("--exercise %q, a name the node takes: %v %v", name, rec, err)
		}
	}
	if _, err := cap.ToRecord(a, cap.ImportOptions{Exercise: "-x"}); err == nil || !strings.Contains(err.Error(), `exercise: "-x" is not an exercise name`) {
		t.Errorf("--exercise -x: %v", err)
	}
	a.Status = "Actual"
	if _, err := cap.ToRecord(a, cap.ImportOptions{Exercise: "oefening-vr19"}); err == nil || !strings.Contains(err.Error(), "not Exercise") {
		t.Fatalf("--exercise on an Actual alert: %v", err)
	}
	a.Status = "System"
	if _, err := cap.ToRecord(a, cap.ImportOptions{}); err == nil || !strings.Contains(err.Error(), "System") {
		t.Fatalf("a System alert: %v", err)
	}
}

// TestRecordID: one sender's alert always gets the same id, another sender's alert with the same
// identifier another, and any identifier gives a valid record id.
func TestRecordID(t *testing.T) {
	a, b := cap.RecordID("a@x", "id-1"), cap.RecordID("a@x", "id-1")
	if a != b || a == cap.RecordID("b@x", "id-1") || a == cap.RecordID("a@x", "id-2") {
		t.Fatalf("ids: %s %s %s", a, cap.RecordID("b@x", "id-1"), cap.RecordID("a@x", "id-2"))
	}
	for _, id := range []string{"id-1", "ü/é#%?" + strings.Repeat("x", 300), "...", "43b080713727"} {
		if err := record.CheckID("id", cap.RecordID("s", id)); err != nil {
			t.Errorf("identifier %q: %v", id, err)
		}
	}
}

// TestBadXML: what is not a valid CAP 1.2 alert is refused with an error that says what is wrong
// and where; a DTD is refused before any entity could be expanded or fetched.
func TestBadXML(t *testing.T) {
	valid := string(readFile(t, "oasis/a1-homeland-security.xml"))
	big := strings.Replace(valid, "<description>", "<description>"+strings.Repeat("x", cap.DefaultMaxBytes), 1)
	for _, tc := range []struct {
		name, doc string
		is        error
		want      string
	}{
		{"malformed", string(readFile(t, "bad/malformed.xml")), cap.ErrMalformed, "not well-formed"},
		{"wrong namespace", string(readFile(t, "bad/wrong-namespace.xml")), cap.ErrNamespace, "urn:oasis:names:tc:emergency:cap:1.1"},
		{"missing required element", string(readFile(t, "bad/missing-sender.xml")), nil, "alert.sender: missing"},
		{"bad enumeration", string(readFile(t, "bad/bad-urgency.xml")), nil, `alert.info[0].urgency: "Soon" is not one of Immediate`},
		{"billion laughs", string(readFile(t, "bad/billion-laughs.xml")), cap.ErrDTD, "DOCTYPE"},
		{"external entity", string(readFile(t, "bad/external-entity.xml")), cap.ErrDTD, "DOCTYPE"},
		{"undeclared entity", strings.Replace(valid, "ORANGE</value>", "&lol;</value>", 1), cap.ErrMalformed, "entity"},
		{"oversized", big, cap.ErrTooLarge, "over the limit of 1048576 bytes"},
		{"no root", "<?xml version=\"1.0\"?>\n", cap.ErrMalformed, "empty"},
		{"two roots", valid + "<alert/>", cap.ErrMalformed, "second root"},
		{"wrong root", `<feed xmlns="http://www.w3.org/2005/Atom"/>`, cap.ErrNamespace, "<feed>"},
		{"bad sent", strings.Replace(valid, "2003-04-02T14:39:01-05:00", "2003-04-02T19:39:01Z", 1), nil, "alert.sent"},
		{"bad polygon", strings.Replace(valid, "<areaDesc>", "<polygon>1,1 2,2 3,3 4,4</polygon><areaDesc>", 1), nil, ""},
		{"missing category", strings.Replace(valid, "<category>Security</category>", "", 1), nil, "alert.info[0].category: missing"},
		{"bad reference", strings.Replace(valid, "<scope>Public</scope>", "<scope>Public</scope><references>just-one</references>", 1), nil, "alert.references"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := cap.Parse(strings.NewReader(tc.doc), 0)
			if err == nil {
				t.Fatalf("accepted: %+v", a)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("error %q is not %q", err, tc.is)
			}
			var fe *cap.Error
			if tc.is == nil && !errors.As(err, &fe) {
				t.Fatalf("error %q does not name a field", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

// TestSitrepExport: a sitrep exports as an informational alert, valid CAP 1.2: version 1 an
// Alert, later versions Updates that reference the version before, by identifier and time; a
// record that is not public is never Public. A later version whose predecessor's time the node
// no longer knows is an Alert that says why, and one written after a delete is a new Alert.
func TestSitrepExport(t *testing.T) {
	rec := &pb.Record{Id: "sitrep-vr19-1", Origin: org, Kind: "sitrep", Crisis: "hoogwater", Region: "VR19",
		Classification: pb.Classification_INTERNAL, Version: 1, UpdatedAt: timestamppb.New(time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)),
		Body: []byte(`{"title":"Dijken houden stand","summary":"Geen doorbraken; het water zakt.","severity":"high"}`)}
	v1At := time.Date(2026, 12, 3, 9, 30, 0, 400e6, time.UTC)
	for _, v := range []int64{1, 2} {
		rec.Version = v
		a, _ := captest.ExportWith(t, rec, cap.ExportOptions{Previous: &pb.RecordVersion{Version: 1, UpdatedAt: timestamppb.New(v1At)}})
		want := map[int64]string{1: "Alert", 2: "Update"}[v]
		in := a.Info[0]
		if a.MsgType != want || a.Scope != "Restricted" || a.Status != "Actual" || in.Headline != "Dijken houden stand" ||
			in.Severity != "Severe" || in.Area[0].Geocode[0].Value != "VR19" || !strings.HasSuffix(a.Identifier, ".v"+string(rune('0'+v))) {
			t.Fatalf("version %d: %+v", v, a)
		}
		wantRefs := map[int64]string{1: "", 2: org + "," + org + ".sitrep-vr19-1.v1,2026-12-03T09:30:00+00:00"}[v]
		if a.References != wantRefs {
			t.Fatalf("version %d references %q, want %q", v, a.References, wantRefs)
		}
	}
	for _, tc := range []struct {
		name string
		prev *pb.RecordVersion
		note string
	}{
		{"no history", nil, "Not written as an Update of version 1: the node no longer knows when that was sent."},
		{"another version", &pb.RecordVersion{Version: 7, UpdatedAt: timestamppb.New(v1At)}, "Not written as an Update"},
		{"after a delete", &pb.RecordVersion{Version: 1, UpdatedAt: timestamppb.New(v1At), Deleted: true}, ""},
	} {
		a, _ := captest.ExportWith(t, rec, cap.ExportOptions{Previous: tc.prev})
		if a.MsgType != "Alert" || a.References != "" || tc.note != "" && !strings.Contains(a.Note, tc.note) || tc.note == "" && strings.Contains(a.Note, "Not written") {
			t.Fatalf("%s: msgType %s references %q note %q", tc.name, a.MsgType, a.References, a.Note)
		}
	}
	rec.Kind = "shelter.capacity"
	if _, err := cap.FromRecord(rec, cap.ExportOptions{}); err == nil || !strings.Contains(err.Error(), "only alert and sitrep") {
		t.Fatalf("a shelter record: %v", err)
	}
}

// TestExportScopeFollowsClassification: the record's classification, not the body, decides
// whether an alert is Public: an alert imported as Public and later classified internal is
// never written as Public, and an internal one made public is.
func TestExportScopeFollowsClassification(t *testing.T) {
	a := parse(t, readFile(t, "oasis/a1-homeland-security.xml"))
	rec, err := cap.ToRecord(a, cap.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	stored := store(t, checker(t, nil), rec)
	for cl, want := range map[pb.Classification]string{pb.Classification_INTERNAL: "Restricted", pb.Classification_CONFIDENTIAL: "Private", pb.Classification_SECRET: "Private", pb.Classification_PUBLIC: "Public"} {
		stored.Classification = cl
		out, err := cap.FromRecord(stored, cap.ExportOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if out.Scope != want {
			t.Errorf("classification %s exports scope %s, want %s", cl, out.Scope, want)
		}
		// Another node imports it again: a Private alert of an export names no addresses.
		data, err := out.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if again, err := cap.Parse(bytes.NewReader(data), 0); err != nil || again.Scope != want {
			t.Errorf("the export of classification %s does not import again: %v", cl, err)
		}
	}
}

// TestFeedHoldsOnlyOwnPublicActualAlerts: the Atom feed lists the node's own public alerts of
// status actual, newest first, each with its CAP alert as content, and nothing else: no
// internal alert, no foreign one, no exercise, test or draft, no deleted one, no other kind.
func TestFeedHoldsOnlyOwnPublicActualAlerts(t *testing.T) {
	a := parse(t, readFile(t, "oasis/a2-severe-thunderstorm.xml"))
	mk := func(id string, at int, change func(r *pb.Record)) *pb.Record {
		rec, err := cap.ToRecord(a, cap.ImportOptions{})
		if err != nil {
			t.Fatal(err)
		}
		rec = store(t, checker(t, nil), rec)
		rec.Id, rec.UpdatedAt = id, timestamppb.New(time.Date(2026, 12, 3, at, 0, 0, 0, time.UTC))
		if change != nil {
			change(rec)
		}
		return rec
	}
	recs := []*pb.Record{
		mk("older", 8, nil),
		mk("newer", 9, nil),
		mk("internal", 10, func(r *pb.Record) { r.Classification = pb.Classification_INTERNAL }),
		mk("foreign", 10, func(r *pb.Record) { r.Origin = "ncc.crisis.test" }),
		mk("exercise", 10, func(r *pb.Record) { r.Status, r.Exercise = pb.Status_EXERCISE, "oefening-x" }),
		mk("test", 10, func(r *pb.Record) { r.Status = pb.Status_TEST }),
		mk("draft", 10, func(r *pb.Record) { r.Status = pb.Status_DRAFT }),
		mk("deleted", 10, func(r *pb.Record) { r.Tombstone = true }),
		mk("sitrep", 10, func(r *pb.Record) { r.Kind = "sitrep" }),
	}
	// The OASIS example expires on 2003-06-17 at 16:00 -07:00: read the feed before then.
	feed := cap.NewFeed(cap.FeedConfig{Org: org, Name: "vrzeeland", Now: func() time.Time { return time.Date(2003, 6, 17, 22, 0, 0, 0, time.UTC) }})
	doc, err := feed.Build(recs, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if want := "<updated>2026-12-03T09:00:00Z</updated>"; !strings.Contains(string(doc), want) {
		t.Fatalf("the feed's updated is not its newest entry's, want %s:\n%s", want, doc)
	}
	if !strings.Contains(string(doc), `xml:lang="nl"`) || !strings.Contains(string(doc), "<title>Openbare waarschuwingen van vrzeeland</title>") {
		t.Fatalf("the feed's title is not Dutch:\n%s", doc)
	}
	// A later change that took the last entries away still makes the feed newer, and a feed
	// without entries has a time, not the epoch, once the node published an alert.
	empty, err := feed.Build(recs[2:], time.Date(2026, 12, 3, 11, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(feedEntries(t, empty)); n != 0 || !strings.Contains(string(empty), "<updated>2026-12-03T11:00:00Z</updated>") {
		t.Fatalf("%d entries; an emptied feed's updated is not its last change:\n%s", n, empty)
	}
	entries := feedEntries(t, doc)
	if len(entries) != 2 || !strings.HasSuffix(entries[0].ID, ":record:newer") || !strings.HasSuffix(entries[1].ID, ":record:older") {
		t.Fatalf("entries %+v, want newer and older only\n%s", entries, doc)
	}
	if entries[0].Title != "SEVERE THUNDERSTORM WARNING" || entries[0].Content.Type != "application/cap+xml" {
		t.Fatalf("entry %+v", entries[0])
	}
	captest.Validate(t, "the feed's first alert", entries[0].Content.Alert)
	same(t, "the feed's alert", parse(t, entries[0].Content.Alert), a)
}

type feedEntry struct {
	ID      string `xml:"id"`
	Title   string `xml:"title"`
	Content struct {
		Type  string `xml:"type,attr"`
		Alert []byte `xml:",innerxml"`
	} `xml:"content"`
}

// feedEntries reads an Atom feed's entries, each content as a CAP document of its own.
func feedEntries(t testing.TB, doc []byte) []feedEntry {
	t.Helper()
	var f struct {
		XMLName xml.Name    `xml:"http://www.w3.org/2005/Atom feed"`
		ID      string      `xml:"id"`
		Updated string      `xml:"updated"`
		Entries []feedEntry `xml:"entry"`
	}
	if err := xml.Unmarshal(doc, &f); err != nil {
		t.Fatalf("not an Atom feed: %v\n%s", err, doc)
	}
	if f.ID == "" || f.Updated == "" {
		t.Fatalf("the feed has no id or updated:\n%s", doc)
	}
	for i := range f.Entries {
		f.Entries[i].Content.Alert = append([]byte(xml.Header), bytes.TrimSpace(f.Entries[i].Content.Alert)...)
	}
	return f.Entries
}

// TestFeedLeavesOutExpiredAlerts: an alert whose every info block has expired leaves the feed,
// which websites show as current; one with an info block still valid, or one without an expiry,
// stays. The feed's updated moves to the time the alert expired, so that a poller sees it left.
func TestFeedLeavesOutExpiredAlerts(t *testing.T) {
	full := parse(t, readFile(t, "full.xml")) // two info blocks, the first expiring 2026-12-04T06:00:00+01:00
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	mk := func(identifier string, expires ...string) *pb.Record {
		a := *full
		a.Identifier, a.Info = identifier, slices.Clone(full.Info)
		for i := range a.Info {
			a.Info[i].Expires = expires[i]
		}
		rec, err := cap.ToRecord(&a, cap.ImportOptions{Classification: pb.Classification_PUBLIC})
		if err != nil {
			t.Fatal(err)
		}
		rec = store(t, checker(t, nil), rec)
		rec.UpdatedAt = timestamppb.New(time.Date(2026, 12, 3, 9, 16, 0, 0, time.UTC))
		return rec
	}
	recs := []*pb.Record{
		mk("expired", "2026-12-04T06:00:00+01:00", "2026-12-04T10:30:00+01:00"),
		mk("one-valid", "2026-12-04T06:00:00+01:00", "2026-12-05T06:00:00+01:00"),
		mk("no-expiry", "", ""),
		mk("one-without", "2026-12-04T06:00:00+01:00", ""),
	}
	feed := cap.NewFeed(cap.FeedConfig{Org: org, Name: "vrzeeland", Now: func() time.Time { return now }})
	doc, err := feed.Build(recs, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range feedEntries(t, doc) {
		captest.Validate(t, "a feed entry", e.Content.Alert)
		got = append(got, parse(t, e.Content.Alert).Identifier)
	}
	slices.Sort(got)
	if want := []string{"no-expiry", "one-valid", "one-without"}; !slices.Equal(got, want) {
		t.Fatalf("the feed holds %v, want %v", got, want)
	}
	if want := "<updated>2026-12-04T09:30:00Z</updated>"; !strings.Contains(string(doc), want) {
		t.Fatalf("the feed's updated is not when the expired alert left it, want %s:\n%s", want, doc)
	}
	// Before it expired, it was in the feed.
	early := cap.NewFeed(cap.FeedConfig{Org: org, Name: "vrzeeland", Now: func() time.Time { return time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC) }})
	if doc, err := early.Build(recs, time.Time{}); err != nil || len(feedEntries(t, doc)) != 4 {
		t.Fatalf("before the expiry: %v\n%s", err, doc)
	}
}

// TestFeedIsBuiltOnlyWhenItChanges: many polls of an unchanged feed cost one build; a new
// version of the alerts (a write, a delete, a change of classification) builds it again, and so
// does the expiry of an alert in it, which leaves it.
func TestFeedIsBuiltOnlyWhenItChanges(t *testing.T) {
	full := parse(t, readFile(t, "full.xml"))
	a := *full
	a.Info = slices.Clone(full.Info)
	for i := range a.Info {
		a.Info[i].Expires = "2026-12-04T13:00:00+01:00"
	}
	rec, err := cap.ToRecord(&a, cap.ImportOptions{Classification: pb.Classification_PUBLIC})
	if err != nil {
		t.Fatal(err)
	}
	rec = store(t, checker(t, nil), rec)
	now := time.Date(2026, 12, 4, 11, 0, 0, 0, time.UTC)
	version := time.Unix(1, 0)
	builds := 0
	feed := cap.NewFeed(cap.FeedConfig{Org: org, Name: "vrzeeland", Now: func() time.Time { return now },
		Alerts:  func(context.Context) ([]*pb.Record, error) { builds++; return []*pb.Record{rec}, nil },
		Version: func(context.Context) (time.Time, error) { return version, nil }})
	get := func() int {
		w := httptest.NewRecorder()
		feed.ServeHTTP(w, httptest.NewRequest(http.MethodGet, cap.FeedPath, nil))
		if w.Code != http.StatusOK {
			t.Fatalf("feed: %d %s", w.Code, w.Body)
		}
		return len(feedEntries(t, w.Body.Bytes()))
	}
	for range 5 {
		if n := get(); n != 1 {
			t.Fatalf("the feed holds %d entries, want the alert", n)
		}
	}
	if builds != 1 {
		t.Errorf("five polls of an unchanged feed built it %d times, want once", builds)
	}
	version = time.Unix(2, 0)
	get()
	if builds != 2 {
		t.Errorf("after a change of the alerts: %d builds, want 2", builds)
	}
	now = time.Date(2026, 12, 4, 12, 30, 0, 0, time.UTC) // past 13:00+01:00
	if n := get(); n != 0 || builds != 3 {
		t.Errorf("after the alert expired: %d entries, %d builds; want none, and a third build", n, builds)
	}
}

// TestParseEncodings: a UTF-8 document with a byte order mark, as Windows tools write it, and
// one in a declared single-byte encoding are read, their text in UTF-8; an encoding the node
// does not know, or a UTF-16 declaration on a document that is not, is refused with what to do.
func TestParseEncodings(t *testing.T) {
	valid := string(readFile(t, "oasis/a1-homeland-security.xml"))
	_, body, ok := strings.Cut(valid, "?>")
	if !ok {
		t.Fatalf("a1 has no XML declaration: %.40q", valid)
	}
	withText := func(decl, text string) string {
		return decl + strings.Replace(body, "<headline>", "<headline>"+text+" ", 1)
	}
	for _, tc := range []struct{ name, doc, headline string }{
		{"BOM", "\uFEFF" + valid, ""},
		{"ISO-8859-1", withText(`<?xml version="1.0" encoding="ISO-8859-1"?>`, "Ge\xefnformeerd caf\xe9"), "Geïnformeerd café"},
		{"windows-1252", withText(`<?xml version="1.0" encoding="windows-1252"?>`, "\x80 5 \x96 boete"), "€ 5 – boete"},
		{"US-ASCII", withText(`<?xml version="1.0" encoding="US-ASCII"?>`, "ascii"), "ascii"},
		{"csUTF8", withText(`<?xml version="1.0" encoding="csUTF8"?>`, "Geïnformeerd"), "Geïnformeerd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := cap.Parse(strings.NewReader(tc.doc), 0)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(a.Info[0].Headline, tc.headline) {
				t.Fatalf("headline %q, want it to start with %q", a.Info[0].Headline, tc.headline)
			}
			doc, err := a.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			captest.Validate(t, tc.name+" written again", doc)
		})
	}
	for _, tc := range []struct{ name, doc, want string }{
		{"unknown", `<?xml version="1.0" encoding="x-klingon"?>` + body, "cap: encoding x-klingon: this node does not read it: send the alert as UTF-8"},
		{"UTF-16 declared", `<?xml version="1.0" encoding="UTF-16"?>` + body, "cap: encoding UTF-16: the document is not written in it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := cap.Parse(strings.NewReader(tc.doc), 0)
			if !errors.Is(err, cap.ErrEncoding) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%v, want %q", err, tc.want)
			}
		})
	}
}

// TestPointsOnEarth: a polygon's point or a circle's centre off the earth (a swapped or
// projected coordinate) is refused, naming the area and the point.
func TestPointsOnEarth(t *testing.T) {
	valid := string(readFile(t, "oasis/a1-homeland-security.xml"))
	area := func(shape string) string {
		return strings.Replace(valid, "<areaDesc>U.S. nationwide and interests worldwide</areaDesc>", "<areaDesc>Walcheren</areaDesc>"+shape, 1)
	}
	for _, tc := range []struct{ name, doc, want string }{
		{"polygon latitude", area("<polygon>51.6,3.4 251.6,3.75 51.45,3.75 51.45,3.4 51.6,3.4</polygon>"),
			`alert.info[0].area[0].polygon[0]: the point 251.6,3.75 of area "Walcheren" is not on the earth`},
		{"polygon longitude", area("<polygon>51.6,3.4 51.6,383.75 51.45,3.75 51.45,3.4 51.6,3.4</polygon>"), "the point 51.6,383.75"},
		{"circle", area("<circle>151.53,3.44 5.0</circle>"), `alert.info[0].area[0].circle[0]: the centre 151.53,3.44 of area "Walcheren" is not on the earth: give latitude,longitude in WGS 84`},
		{"circle longitude", area("<circle>51.53,-180.5 5.0</circle>"), "the centre 51.53,-180.5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(tc.doc, "Walcheren") {
				t.Fatal("the area was not replaced")
			}
			_, err := cap.Parse(strings.NewReader(tc.doc), 0)
			var fe *cap.Error
			if !errors.As(err, &fe) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%v, want %q", err, tc.want)
			}
		})
	}
	// The edges are on the earth.
	if _, err := cap.Parse(strings.NewReader(area("<polygon>90,180 -90,180 -90,-180 90,-180 90,180</polygon><circle>-90,-180 1</circle>")), 0); err != nil {
		t.Fatal(err)
	}
}

// TestParseChecksElements: an element CAP 1.2 does not allow where it stands (a misspelt
// <headlin>, an element the schema has elsewhere) is refused with its path, instead of vanishing
// from the record; an element of another namespace at the alert's end, such as an XML
// signature, which the schema allows, is read and named in Foreign, since the record does not
// keep it.
func TestParseChecksElements(t *testing.T) {
	doc := string(readFile(t, "oasis/a2-severe-thunderstorm.xml"))
	for _, c := range []struct{ from, to, field string }{
		{"<headline>", "<headlin>x</headlin><headline>", "alert.info[0].headlin[0]"},
		{"<areaDesc>", "<polygonn>1,1 2,2 3,3 1,1</polygonn><areaDesc>", "alert.info[0].area[0].polygonn[0]"},
		{"</alert>", "<areaDesc>misplaced</areaDesc></alert>", "alert.areaDesc[0]"},
	} {
		_, err := cap.Parse(strings.NewReader(strings.Replace(doc, c.from, c.to, 1)), 0)
		var ce *cap.Error
		if !errors.As(err, &ce) || ce.Field != c.field || !strings.Contains(err.Error(), "is no element of CAP 1.2") {
			t.Errorf("%s: %v, want a refusal at %s", c.to, err, c.field)
		}
	}
	// An element CAP allows once, given twice, is refused at the second: encoding/xml would keep
	// the last, and an exercise would become an actual alert.
	for _, c := range []struct{ from, to, field string }{
		{"<status>Actual</status>", "<status>Exercise</status><status>Actual</status>", "alert.status[1]"},
		{"<identifier>", "<identifier>TWICE</identifier><identifier>", "alert.identifier[1]"},
		{"<headline>", "<headline>first</headline><headline>", "alert.info[0].headline[1]"},
	} {
		_, err := cap.Parse(strings.NewReader(strings.Replace(doc, c.from, c.to, 1)), 0)
		var ce *cap.Error
		if !errors.As(err, &ce) || ce.Field != c.field || !strings.Contains(err.Error(), "CAP 1.2 allows one") {
			t.Errorf("%s: %v, want a refusal at %s", c.to, err, c.field)
		}
	}
	// An element of another namespace with a CAP element's name would be read as it: refused.
	disguised := strings.Replace(doc, "</alert>", `<ds:status xmlns:ds="http://www.w3.org/2000/09/xmldsig#">Exercise</ds:status></alert>`, 1)
	if _, err := cap.Parse(strings.NewReader(disguised), 0); err == nil || !strings.Contains(err.Error(), "has the name of a CAP element") {
		t.Errorf("a status in the xmldsig namespace: %v, want it refused", err)
	}
	// A prefixed root whose children are in no namespace: refused at the first, not read as CAP.
	prefixed := `<?xml version="1.0"?><cap:alert xmlns:cap="urn:oasis:names:tc:emergency:cap:1.2"><identifier>X</identifier><sender>s</sender></cap:alert>`
	if _, err := cap.Parse(strings.NewReader(prefixed), 0); err == nil || !strings.Contains(err.Error(), "alert.identifier[0]: <identifier> is in no namespace") {
		t.Errorf("a prefixed root with children in no namespace: %v", err)
	}
	signed := strings.Replace(doc, "</alert>", `<Signature xmlns="http://www.w3.org/2000/09/xmldsig#"><SignedInfo/></Signature></alert>`, 1)
	a := parse(t, []byte(signed))
	if !slices.Equal(a.Foreign, []string{"Signature"}) || a.Identifier == "" {
		t.Errorf("a signed alert: Foreign %v, want [Signature]", a.Foreign)
	}
	if a := parse(t, []byte(doc)); a.Foreign != nil {
		t.Errorf("an alert of CAP's own elements: Foreign %v", a.Foreign)
	}
}

// TestParseChecksElementOrder: CAP 1.2's elements are sequences, and encoding/xml reads them in
// any order; an element out of the schema's order is refused at its path, saying what it must
// come before. An element of another namespace is refused anywhere but where the schema's
// xs:any stands: an XML signature at the alert's end.
func TestParseChecksElementOrder(t *testing.T) {
	doc := string(readFile(t, "full.xml"))
	// Each case moves elements by replacing old with new, pair by pair.
	for _, c := range []struct {
		edits         []string
		field, reason string
	}{
		{[]string{"<identifier>vrz-2026-0042</identifier>\n  <sender>meldkamer@vrzeeland.nl</sender>", "<sender>meldkamer@vrzeeland.nl</sender><identifier>vrz-2026-0042</identifier>"},
			"alert.identifier[0]", "<identifier> must come before <sender>: CAP 1.2 fixes the order of the elements of <alert>"},
		{[]string{"<note>Hoogwater; zie ook de situatierapporten</note>", "", "<scope>", "<note>x</note><scope>"}, "alert.scope[0]", "<scope> must come before <note>"},
		{[]string{"<incidents>hoogwater-2026 dijkbewaking</incidents>", "", "</info>\n  <info>", "</info><incidents>laat</incidents><info>"}, "alert.incidents[0]", "<incidents> must come before <info>"},
		{[]string{"<headline>Hoogwater verwacht op Walcheren</headline>", "", "<urgency>", "<headline>vooraan</headline><urgency>"}, "alert.info[0].urgency[0]", "<urgency> must come before <headline>"},
		{[]string{"<category>Safety</category>", "<category>Safety</category><responseType>Monitor</responseType><category>Fire</category>"}, "alert.info[0].category[2]", "<category> must come before <responseType>"},
		{[]string{"<mimeType>image/png</mimeType>\n      <size>12345</size>", "<size>12345</size><mimeType>image/png</mimeType>"}, "alert.info[0].resource[0].mimeType[0]", "<mimeType> must come before <size>"},
		{[]string{"<circle>51.50,3.61 5</circle>\n      <geocode>", "<geocode>", "<altitude>0</altitude>", "<circle>51.50,3.61 5</circle><altitude>0</altitude>"}, "alert.info[0].area[0].circle[0]", "<circle> must come before <geocode>"},
		{[]string{"<valueName>gemeente</valueName>\n        <value>Middelburg</value>", "<value>Middelburg</value><valueName>gemeente</valueName>"}, "alert.info[0].area[0].geocode[1].valueName[0]", "<valueName> must come before <value>"},
	} {
		in := doc
		for i := 0; i < len(c.edits); i += 2 {
			if !strings.Contains(in, c.edits[i]) {
				t.Fatalf("%q is not in full.xml", c.edits[i])
			}
			in = strings.Replace(in, c.edits[i], c.edits[i+1], 1)
		}
		_, err := cap.Parse(strings.NewReader(in), 0)
		var ce *cap.Error
		if !errors.As(err, &ce) || ce.Field != c.field || !strings.Contains(ce.Reason, c.reason) {
			t.Errorf("%s: %v, want a refusal at %s saying %q", c.field, err, c.field, c.reason)
		}
	}
	sig := `<Signature xmlns="http://www.w3.org/2000/09/xmldsig#"><SignedInfo/></Signature>`
	for _, c := range []struct{ name, from, to, field, reason string }{
		{"a signature before the info", "<info>", sig + "<info>", "alert.info[0]", "<info> must come before <Signature>"},
		{"an element of another namespace in info", "<headline>", `<x:foo xmlns:x="urn:x">1</x:foo><headline>`, "alert.info[0].foo[0]",
			"<foo> of namespace urn:x is not allowed here: CAP 1.2 allows no element of another namespace but an XML signature"},
		{"an XInclude in a description", "<description>", `<description><xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="/etc/passwd" parse="text"/>`,
			"alert.info[0].description[0].include[0]", "is not allowed here"},
		{"a signature in info", "<headline>", sig + "<headline>", "alert.info[0].Signature[0]", "at the end of <alert>"},
		{"another namespace at the alert's end", "</alert>", `<x:foo xmlns:x="urn:x"/></alert>`, "alert.foo[0]", "is not allowed here"},
	} {
		_, err := cap.Parse(strings.NewReader(strings.Replace(doc, c.from, c.to, 1)), 0)
		var ce *cap.Error
		if !errors.As(err, &ce) || ce.Field != c.field || !strings.Contains(ce.Reason, c.reason) {
			t.Errorf("%s: %v, want a refusal at %s saying %q", c.name, err, c.field, c.reason)
		}
	}
	// Two signatures at the end are in order.
	if a := parse(t, []byte(strings.Replace(doc, "</alert>", sig+sig+"</alert>", 1))); len(a.Foreign) != 2 {
		t.Errorf("two signatures at the end: Foreign %v", a.Foreign)
	}
}

// TestParseRefusesTextBetweenElements: <alert>, <info>, <resource>, <area> and the value pairs
// hold elements only, and encoding/xml drops text between them without a word; such text is
// refused, naming the element it stands in. White space, and text in an element of text, are
// read as before.
func TestParseRefusesTextBetweenElements(t *testing.T) {
	doc := string(readFile(t, "full.xml"))
	for _, c := range []struct{ from, to, field string }{
		{"<status>Actual</status>", "<status>Actual</status>stray text", "alert"},
		{"<event>High water</event>", "<event>High water</event>Hoogwater", "alert.info[1]"},
		{"<size>12345</size>", "<size>12345</size> 12345 ", "alert.info[0].resource[0]"},
		{"<altitude>0</altitude>", "meters<altitude>0</altitude>", "alert.info[0].area[0]"},
		{"<value>VR19</value>", "<value>VR19</value>VR20", "alert.info[0].area[0].geocode[0]"},
	} {
		_, err := cap.Parse(strings.NewReader(strings.Replace(doc, c.from, c.to, 1)), 0)
		var ce *cap.Error
		if !errors.As(err, &ce) || ce.Field != c.field || !strings.Contains(ce.Reason, "which holds elements only") {
			t.Errorf("%s: %v, want a refusal at %s", c.to, err, c.field)
		}
	}
	// XML's white space is no text; a tab and CRLF line ends neither.
	ws := strings.ReplaceAll(strings.ReplaceAll(doc, "\n", "\r\n"), "  <", "\t<")
	if a := parse(t, []byte(ws)); a.Info[0].Area[0].Geocode[1].Value != "Middelburg" {
		t.Errorf("white space between elements: %+v", a.Info[0].Area[0])
	}
	// A no-break space is no XML white space.
	if _, err := cap.Parse(strings.NewReader(strings.Replace(doc, "<sent>", "\u00a0<sent>", 1)), 0); err == nil || !strings.Contains(err.Error(), "cap: alert: text") {
		t.Errorf("a no-break space between elements: %v, want it refused", err)
	}
}

// TestParseChecksTimesAndHiddenCharacters: a date-time that only has CAP's form (month 13, 30
// February, year 0000, an offset beyond ±14:00) is refused at its field, as XML Schema refuses
// it: stored, it made exports and the public feed fail the CAP schema, and an expires time that
// could not be read never passed. An identifier, sender or reference with an invisible character
// or a space other than ASCII's is refused: it would read as another's (review C, F1 and F3).
func TestParseChecksTimesAndHiddenCharacters(t *testing.T) {
	doc := string(readFile(t, "oasis/a2-severe-thunderstorm.xml"))
	for _, c := range []struct{ from, to, field, says string }{
		{"2003-06-17T14:57:00-07:00</sent>", "2003-13-17T14:57:00-07:00</sent>", "alert.sent", "month out of range"},
		{"2003-06-17T14:57:00-07:00</sent>", "2003-06-17T25:57:00-07:00</sent>", "alert.sent", "hour out of range"},
		{"2003-06-17T14:57:00-07:00</sent>", "0000-06-17T14:57:00-07:00</sent>", "alert.sent", "year 0000"},
		{"2003-06-17T14:57:00-07:00</sent>", "2003-06-17T14:57:00+14:30</sent>", "alert.sent", "beyond the ±14:00"},
		{"2003-06-17T14:57:00-07:00</sent>", "2003-06-17T14:57:00+99:99</sent>", "alert.sent", "not a date and time that exists"},
		{"2003-06-17T16:00:00-07:00</expires>", "2003-02-30T16:00:00-07:00</expires>", "alert.info[0].expires", "day out of range"},
		{"KSTO@NWS.NOAA.GOV</sender>", "KSTO@NWS.NOAA.GOV\u200b</sender>", "alert.sender", "U+200B"},
		{"<sender>KSTO", "<sender>\u202dKSTO", "alert.sender", "U+202D"},
		{"KSTO1055887203</identifier>", "KSTO1055887203\u00a0</identifier>", "alert.identifier", "U+00A0"},
		{"<scope>Public</scope>", "<scope>Public</scope><references>KSTO@NWS.NOAA.GOV,KSTO1\u2060,2003-06-17T14:00:00-07:00</references>", "alert.references", "U+2060"},
	} {
		_, err := cap.Parse(strings.NewReader(strings.Replace(doc, c.from, c.to, 1)), 0)
		var ce *cap.Error
		if !errors.As(err, &ce) || ce.Field != c.field || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%q: %v, want a refusal at %s saying %q", c.to, err, c.field, c.says)
		}
	}
	for _, ok := range []string{"2003-06-17T14:57:00-00:00", "2003-06-17T14:57:00+14:00", "2024-02-29T00:00:00+01:00"} {
		if _, err := cap.Parse(strings.NewReader(strings.Replace(doc, "2003-06-17T14:57:00-07:00</sent>", ok+"</sent>", 1)), 0); err != nil {
			t.Errorf("sent %s: %v, want it taken", ok, err)
		}
	}
}

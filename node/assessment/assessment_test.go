package assessment

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/node/record"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

var t0 = time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)

func entry(source, kind, id string, version int64, at time.Time, body string) *pb.PictureEntry {
	return &pb.PictureEntry{Kind: kind, Region: "VR19", Key: id, Source: source,
		Record: &pb.Record{Id: id, Origin: source, Kind: kind, Crisis: "oekraine", Region: "VR19", Version: version,
			UpdatedAt: timestamppb.New(at), Body: []byte(body)}}
}

func picture(entries ...*pb.PictureEntry) *pb.PictureResponse {
	return &pb.PictureResponse{Crisis: "oekraine", Entries: entries}
}

const (
	ncc  = "ncc.crisis.test"
	lcvs = "lcvs.crisis.test"
	vr19 = "vr-zeeland.crisis.test"
)

func base() []*pb.PictureEntry {
	return []*pb.PictureEntry{
		entry(lcvs, "shelter.capacity", "shelter-goes", 3, t0, `{"municipality":"Goes","beds_free":7}`),
		entry(lcvs, "shelter.capacity", "shelter-hulst", 1, t0.Add(-time.Hour), `{"municipality":"Hulst","beds_free":4}`),
		entry(vr19, "alert", "alert-low", 1, t0.Add(time.Minute), `{"rule":"low"}`),
		entry(ncc, "sitrep", "sitrep-ncc-1", 1, t0.Add(-2*time.Hour), `{"title":"t","summary":"s"}`),
	}
}

// TestFingerprintIsTheContent: the hash does not depend on the order of the entries, leaves out
// assessments and responses, and changes with a version, a body or a source.
func TestFingerprintIsTheContent(t *testing.T) {
	fp := Fingerprint(picture(base()...))
	shuffled := base()
	rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	if got := Fingerprint(picture(shuffled...)); got.Hash != fp.Hash {
		t.Fatalf("the hash depends on the order of the entries: %s != %s", got.Hash, fp.Hash)
	}
	withOwn := append(base(), entry(ncc, Kind, ID("oekraine"), 2, t0, `{}`), entry(vr19, ResponseKind, "endorse:x", 1, t0, `{}`))
	if got := Fingerprint(picture(withOwn...)); got.Hash != fp.Hash {
		t.Fatal("an assessment or a response changes the hash of the picture it interprets")
	}
	if len(fp.Sources) != 3 || fp.Sources[0].Source != lcvs || fp.Sources[0].Entries != 2 || !fp.Sources[0].Newest.Equal(t0) {
		t.Fatalf("cursors = %+v", fp.Sources)
	}
	for name, change := range map[string]func(e []*pb.PictureEntry){
		"version": func(e []*pb.PictureEntry) { e[0].Record.Version = 4 },
		"body":    func(e []*pb.PictureEntry) { e[1].Record.Body = []byte(`{"municipality":"Hulst","beds_free":3}`) },
		"source":  func(e []*pb.PictureEntry) { e[2].Source = ncc },
		"gone":    func(e []*pb.PictureEntry) { e[3].Kind = Kind },
	} {
		e := base()
		change(e)
		if got := Fingerprint(picture(e...)); got.Hash == fp.Hash {
			t.Errorf("a changed %s leaves the hash as it was", name)
		}
	}
}

// TestAssessmentWhosePictureChangedIsFlagged: on the author's node the hash decides, and names the
// source that changed; on a partner's node a source with an update newer than the assessment's
// cursor does. An unchanged picture is not flagged.
func TestAssessmentWhosePictureChangedIsFlagged(t *testing.T) {
	rec, err := New(picture(base()...), "Opvang Zeeland bijna vol", "Tekort binnen twee dagen", "Spreid naar VR09")
	if err != nil {
		t.Fatal(err)
	}
	rec.Origin, rec.Version, rec.UpdatedAt = ncc, 1, timestamppb.New(t0.Add(2*time.Minute))
	published := &pb.PictureEntry{Kind: Kind, Region: "NL", Key: rec.Id, Source: ncc, Record: rec}

	v, err := Current(picture(append(base(), published)...), ncc, nil)
	if err != nil || v == nil {
		t.Fatalf("Current = %v, %v", v, err)
	}
	if v.Changed || !v.Exact || len(v.ChangedSources) != 0 || v.Body.Advice != "Spreid naar VR09" {
		t.Fatalf("unchanged picture: %+v", v)
	}

	later := base()
	later[0].Record.Version, later[0].Record.UpdatedAt = 4, timestamppb.New(t0.Add(time.Hour))
	later[0].Record.Body = []byte(`{"municipality":"Goes","beds_free":2}`)
	v, _ = Current(picture(append(later, published)...), ncc, nil)
	if !v.Changed || !slices.Equal(v.ChangedSources, []string{lcvs}) {
		t.Fatalf("author's node, LCVS changed: changed=%v sources=%v", v.Changed, v.ChangedSources)
	}

	// A partner sees less of NCC's own records (its policies), which is no change; a newer LCVS
	// record is.
	partner := base()[:3]
	v, _ = Current(picture(append(partner, published)...), "vr-utrecht.crisis.test", nil)
	if v.Changed || v.Exact {
		t.Fatalf("partner's node, nothing newer: %+v", v)
	}
	partner[0].Record.UpdatedAt = timestamppb.New(t0.Add(time.Hour))
	v, _ = Current(picture(append(partner, published)...), "vr-utrecht.crisis.test", nil)
	if !v.Changed || !slices.Equal(v.ChangedSources, []string{lcvs}) {
		t.Fatalf("partner's node, LCVS newer: changed=%v sources=%v", v.Changed, v.ChangedSources)
	}
}

// TestAssessmentAfterARecordLeft: on a partner's node, a source one of whose records left the
// picture after the assessment was written (deleted or withdrawn there: no newer update is left
// behind) counts as changed; a removal before it, or of an assessment's own kinds, does not. A
// source whose copy may be behind is named as one of which it cannot be told.
func TestAssessmentAfterARecordLeft(t *testing.T) {
	rec, err := New(picture(base()...), "Opvang Zeeland bijna vol", "Tekort binnen twee dagen", "Spreid naar VR09")
	if err != nil {
		t.Fatal(err)
	}
	written := t0.Add(2 * time.Minute)
	rec.Origin, rec.Version, rec.UpdatedAt = ncc, 1, timestamppb.New(written)
	published := &pb.PictureEntry{Kind: Kind, Region: "NL", Key: rec.Id, Source: ncc, Record: rec}
	const self = "vr-utrecht.crisis.test"
	at := func(source, kind string, d time.Duration) *pb.PictureRemoval {
		return &pb.PictureRemoval{Source: source, Kind: kind, At: timestamppb.New(written.Add(d))}
	}
	for _, c := range []struct {
		name       string
		removals   []*pb.PictureRemoval
		behind     []string
		changed    []string
		cannotTell []string
		// received, when set, is when this node took in the assessment, from its writing: a
		// clock behind the author's.
		received time.Duration
	}{
		{name: "nothing left", changed: []string{}, cannotTell: []string{}},
		{name: "left before it was written", removals: []*pb.PictureRemoval{at(lcvs, "shelter.capacity", -time.Minute)}, changed: []string{}, cannotTell: []string{}},
		{name: "a record left since", removals: []*pb.PictureRemoval{at(lcvs, "shelter.capacity", time.Minute)}, changed: []string{lcvs}, cannotTell: []string{}},
		{name: "a source with no entry left", removals: []*pb.PictureRemoval{at("szw.crisis.test", "sitrep", time.Minute)}, changed: []string{"szw.crisis.test"}, cannotTell: []string{}},
		{name: "a response withdrawn", removals: []*pb.PictureRemoval{at(lcvs, ResponseKind, time.Minute)}, changed: []string{}, cannotTell: []string{}},
		{name: "a source behind", behind: []string{vr19}, changed: []string{}, cannotTell: []string{vr19}},
		{name: "left before it was written, after this node's clock said it came", removals: []*pb.PictureRemoval{at(lcvs, "shelter.capacity", -time.Minute)}, received: -2 * time.Minute, changed: []string{lcvs}, cannotTell: []string{}},
		{name: "behind and changed", removals: []*pb.PictureRemoval{at(lcvs, "shelter.capacity", time.Minute)}, behind: []string{lcvs, vr19}, changed: []string{lcvs}, cannotTell: []string{vr19}},
	} {
		entry := proto.Clone(published).(*pb.PictureEntry)
		if c.received != 0 {
			entry.ReceivedAt = timestamppb.New(written.Add(c.received))
		}
		p := picture(append(base()[:3], entry)...)
		p.Removals = c.removals
		v, err := Current(p, self, c.behind)
		if err != nil {
			t.Fatal(err)
		}
		if v.Changed != (len(c.changed) > 0) || !slices.Equal(v.ChangedSources, c.changed) || !slices.Equal(v.CannotTell, c.cannotTell) {
			t.Errorf("%s: changed=%v sources=%v cannot tell=%v; want sources %v, cannot tell %v", c.name, v.Changed, v.ChangedSources, v.CannotTell, c.changed, c.cannotTell)
		}
	}
}

// TestResponsesNameTheirOrgs: endorsements and remarks of the current assessment are listed by
// org; one to an earlier version is marked outdated; one to another assessment is left out.
func TestResponsesNameTheirOrgs(t *testing.T) {
	rec, _ := New(picture(base()...), "a", "b", "c")
	rec.Origin, rec.Version, rec.UpdatedAt = ncc, 2, timestamppb.New(t0)
	entries := append(base(), &pb.PictureEntry{Kind: Kind, Region: "NL", Key: rec.Id, Source: ncc, Record: rec})
	add := func(org, response, text string, version int64, of *pb.Record) {
		seen := &pb.Record{Id: of.Id, Origin: of.Origin, Version: version, Crisis: of.Crisis, Region: of.Region}
		r, err := NewResponse(seen, org, response, text)
		if err != nil {
			t.Fatal(err)
		}
		r.Origin, r.Version, r.UpdatedAt = org, 1, timestamppb.New(t0.Add(time.Minute))
		entries = append(entries, &pb.PictureEntry{Kind: ResponseKind, Region: r.Region, Key: r.Id, Source: org, Record: r})
	}
	add("vr-utrecht.crisis.test", Endorse, "", 2, rec)
	add(vr19, Endorse, "", 1, rec)
	add(lcvs, Remark, "Hulst heeft morgen 20 extra", 2, rec)
	add("szw.crisis.test", Endorse, "", 2, &pb.Record{Id: "assessment-other", Origin: ncc})
	v, err := Current(picture(entries...), ncc, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Endorsed) != 2 || v.Endorsed[0].Org != "vr-utrecht.crisis.test" || v.Endorsed[0].Outdated ||
		v.Endorsed[1].Org != vr19 || !v.Endorsed[1].Outdated {
		t.Fatalf("endorsed = %+v", v.Endorsed)
	}
	if len(v.Remarks) != 1 || v.Remarks[0].Org != lcvs || v.Remarks[0].Text != "Hulst heeft morgen 20 extra" {
		t.Fatalf("remarks = %+v", v.Remarks)
	}
	if _, err := NewResponse(rec, lcvs, Remark, " "); !errors.Is(err, ErrEmpty) {
		t.Fatalf("an empty remark: %v", err)
	}
	if _, err := New(picture(), "a", "", "c"); !errors.Is(err, ErrEmpty) {
		t.Fatalf("an assessment without development: %v", err)
	}
}

// slotEntry is a partner's record in the slot of a municipality, taken in at received.
func slotEntry(source, id, municipality string, version int64, at, received time.Time, beds int) *pb.PictureEntry {
	e := entry(source, "shelter.capacity", id, version, at, fmt.Sprintf(`{"municipality":%q,"beds_free":%d}`, municipality, beds))
	e.Key, e.ReceivedAt = municipality, timestamppb.New(received)
	return e
}

// TestAssessmentOutrankedSourceDidNotChange: after the assessment, a newer record of VR Zeeland
// takes the slot of Goes from LCVS's, which the picture then no longer shows. LCVS wrote
// nothing: only VR Zeeland is changed, and the slot is named as taken over from LCVS, on the
// author's node and on a partner's. When LCVS writes after it, LCVS is changed; when VR Zeeland
// withdraws its record and LCVS's shows again, only VR Zeeland is.
func TestAssessmentOutrankedSourceDidNotChange(t *testing.T) {
	written := t0.Add(2 * time.Minute)
	before := func() []*pb.PictureEntry {
		return []*pb.PictureEntry{
			slotEntry(lcvs, "shelter-goes", "Goes", 3, t0, t0, 7),
			slotEntry(lcvs, "shelter-hulst", "Hulst", 1, t0.Add(-time.Hour), t0.Add(-time.Hour), 4),
			slotEntry(vr19, "vrz-middelburg", "Middelburg", 1, t0, t0, 9),
		}
	}
	rec, err := New(picture(before()...), "Opvang Zeeland bijna vol", "Tekort binnen twee dagen", "Spreid naar VR09")
	if err != nil {
		t.Fatal(err)
	}
	rec.Origin, rec.Version, rec.UpdatedAt = ncc, 1, timestamppb.New(written)
	published := func(received bool) *pb.PictureEntry {
		e := &pb.PictureEntry{Kind: Kind, Region: "NL", Key: rec.Id, Source: ncc, Record: rec}
		if received {
			e.ReceivedAt = timestamppb.New(written.Add(time.Second))
		}
		return e
	}
	// VR Zeeland's record of Goes, newer than LCVS's, outranks it in the slot.
	vrzGoes := slotEntry(vr19, "vrz-goes", "Goes", 1, t0.Add(10*time.Minute), t0.Add(10*time.Minute), 2)
	vrzGoes.Conflict = []string{lcvs}
	outranked := func() []*pb.PictureEntry { e := before(); e[0] = proto.Clone(vrzGoes).(*pb.PictureEntry); return e }
	lcvsWrote := func(e []*pb.PictureEntry) []*pb.PictureEntry {
		e[1] = slotEntry(lcvs, "shelter-hulst", "Hulst", 2, t0.Add(20*time.Minute), t0.Add(20*time.Minute), 3)
		return e
	}
	goesOverLCVS := []Takeover{{Kind: "shelter.capacity", Region: "VR19", Key: "Goes", Source: vr19, Over: []string{lcvs}}}
	for _, c := range []struct {
		name     string
		entries  []*pb.PictureEntry
		removals []*pb.PictureRemoval
		changed  []string
		taken    []Takeover
	}{
		{name: "nothing since", entries: before(), changed: []string{}, taken: []Takeover{}},
		{name: "VR Zeeland outranks LCVS in Goes", entries: outranked(), changed: []string{vr19}, taken: goesOverLCVS},
		// Written before the assessment, but taken in after it: new to the picture.
		{name: "VR Zeeland's record came late", entries: func() []*pb.PictureEntry {
			e := outranked()
			e[0].Record.UpdatedAt = timestamppb.New(t0.Add(time.Minute))
			return e
		}(), changed: []string{vr19}, taken: goesOverLCVS},
		{name: "LCVS writes after", entries: lcvsWrote(before()), changed: []string{lcvs}, taken: []Takeover{}},
		{name: "both", entries: lcvsWrote(outranked()), changed: []string{lcvs, vr19}, taken: goesOverLCVS},
		// VR Zeeland's Goes was there when it was written, outranking LCVS's; it is withdrawn
		// since, and LCVS's record of before shows again.
		{name: "LCVS's record shows again", entries: before(),
			removals: []*pb.PictureRemoval{{Source: vr19, Kind: "shelter.capacity", At: timestamppb.New(written.Add(time.Hour))}},
			changed:  []string{vr19}, taken: []Takeover{}},
	} {
		for _, self := range []string{ncc, "vr-utrecht.crisis.test"} {
			p := picture(append(c.entries, published(self != ncc))...)
			p.Removals = c.removals
			if c.name == "LCVS's record shows again" {
				// The assessment's picture had VR Zeeland's Goes in LCVS's place.
				then := outranked()
				then[0].Record.UpdatedAt, then[0].ReceivedAt = timestamppb.New(t0.Add(time.Minute)), timestamppb.New(t0.Add(time.Minute))
				var b Body
				if err := json.Unmarshal(rec.Body, &b); err != nil {
					t.Fatal(err)
				}
				b.Picture = Fingerprint(picture(then...))
				old := proto.Clone(rec).(*pb.Record)
				old.Body, _ = json.Marshal(b)
				e := published(self != ncc)
				e.Record = old
				p = picture(append(c.entries, e)...)
				p.Removals = c.removals
			}
			v, err := Current(p, self, nil)
			if err != nil {
				t.Fatal(err)
			}
			if v.Changed != (len(c.changed) > 0) || !slices.Equal(v.ChangedSources, c.changed) || !reflect.DeepEqual(v.TakenOver, c.taken) {
				t.Errorf("%s, at %s: changed=%v sources=%v taken over=%+v; want sources %v, taken over %+v", c.name, self, v.Changed, v.ChangedSources, v.TakenOver, c.changed, c.taken)
			}
		}
	}
}

// published is org's assessment of the picture of entries, version version, written at.
func published(t *testing.T, org string, version int64, at time.Time, text string, entries ...*pb.PictureEntry) *pb.PictureEntry {
	t.Helper()
	rec, err := New(picture(entries...), text, "b", "c")
	if err != nil {
		t.Fatal(err)
	}
	rec.Origin, rec.Version, rec.UpdatedAt = org, version, timestamppb.New(at)
	return &pb.PictureEntry{Kind: Kind, Region: "NL", Key: rec.Id, Source: org, Record: rec}
}

// respond is org's response to the assessment of, as a picture entry; id, when set, is the
// response's record id (an older form).
func respond(t *testing.T, org, response, text, id string, of *pb.Record, at time.Time) *pb.PictureEntry {
	t.Helper()
	r, err := NewResponse(of, org, response, text)
	if err != nil {
		t.Fatal(err)
	}
	if id != "" {
		r.Id = id
	}
	r.Origin, r.Version, r.UpdatedAt = org, 1, timestamppb.New(at)
	return &pb.PictureEntry{Kind: ResponseKind, Region: r.Region, Key: r.Id, Source: org, Record: r}
}

// TestEveryOrgsAssessment: two organisations' assessments of one crisis are each their own, with
// their own endorsements and remarks, whether the picture gives them as two entries or as one
// entry with the other's beside it (disagreeing). The node's own comes first, then the latest
// written. A responder's endorsement of one leaves its endorsement of the other; an endorsement of
// the older id form counts, and once beside one of the newer form.
func TestEveryOrgsAssessment(t *testing.T) {
	const utrecht = "vr-utrecht.crisis.test"
	nccA := published(t, ncc, 2, t0.Add(time.Minute), "NCC", base()...)
	lcvsA := published(t, lcvs, 1, t0.Add(2*time.Minute), "LCVS", base()...)
	if nccA.Record.Id != lcvsA.Record.Id {
		t.Fatalf("the assessments' ids differ: %s, %s", nccA.Record.Id, lcvsA.Record.Id)
	}
	older := "endorse:" + utrecht + ":" + ID("oekraine")
	responses := []*pb.PictureEntry{
		// VR Utrecht endorsed NCC's under the older id form, then again under the newer.
		respond(t, utrecht, Endorse, "", older, nccA.Record, t0.Add(3*time.Minute)),
		respond(t, utrecht, Endorse, "", "", nccA.Record, t0.Add(4*time.Minute)),
		respond(t, utrecht, Endorse, "", "", lcvsA.Record, t0.Add(5*time.Minute)),
		respond(t, vr19, Remark, "Goes heeft er 1", "", lcvsA.Record, t0.Add(5*time.Minute)),
	}
	if responses[1].Key == responses[2].Key {
		t.Fatalf("VR Utrecht's endorsements of NCC's and LCVS's assessments share the id %s", responses[1].Key)
	}
	oneEntry := proto.Clone(lcvsA).(*pb.PictureEntry)
	oneEntry.Conflict, oneEntry.Disagreeing = []string{ncc}, []*pb.Record{nccA.Record}
	for _, c := range []struct {
		name    string
		entries []*pb.PictureEntry
	}{
		{"an entry each", append(base(), append([]*pb.PictureEntry{nccA, lcvsA}, responses...)...)},
		{"one entry, NCC's beside LCVS's", append(base(), append([]*pb.PictureEntry{oneEntry}, responses...)...)},
	} {
		for _, at := range []struct {
			self  string
			order []string
		}{{ncc, []string{ncc, lcvs}}, {lcvs, []string{lcvs, ncc}}, {utrecht, []string{lcvs, ncc}}} {
			all, err := All(picture(c.entries...), at.self, nil)
			if err != nil {
				t.Fatal(err)
			}
			var order []string
			for _, v := range all {
				order = append(order, v.Origin)
			}
			if !slices.Equal(order, at.order) {
				t.Errorf("%s, at %s: assessments of %v, want %v", c.name, at.self, order, at.order)
				continue
			}
			by := map[string]*View{}
			for _, v := range all {
				by[v.Origin] = v
			}
			if n := by[ncc]; n.Body.Text != "NCC" || n.Version != 2 || len(n.Endorsed) != 1 || n.Endorsed[0].Org != utrecht ||
				!n.Endorsed[0].At.Equal(t0.Add(4*time.Minute)) || len(n.Remarks) != 0 {
				t.Errorf("%s, at %s: NCC's = %q v%d, endorsed %+v, remarks %+v", c.name, at.self, n.Body.Text, n.Version, n.Endorsed, n.Remarks)
			}
			if l := by[lcvs]; l.Body.Text != "LCVS" || len(l.Endorsed) != 1 || l.Endorsed[0].Org != utrecht ||
				len(l.Remarks) != 1 || l.Remarks[0].Org != vr19 {
				t.Errorf("%s, at %s: LCVS's = %q, endorsed %+v, remarks %+v", c.name, at.self, l.Body.Text, l.Endorsed, l.Remarks)
			}
			if cur, _ := Current(picture(c.entries...), at.self, nil); cur.Origin != at.order[0] {
				t.Errorf("%s, at %s: Current is %s's", c.name, at.self, cur.Origin)
			}
		}
	}
	// The older form's record, updated to endorse LCVS's (as it was before ids named the
	// author), counts for LCVS's, not NCC's.
	moved := respond(t, utrecht, Endorse, "", older, lcvsA.Record, t0.Add(6*time.Minute))
	all, err := All(picture(append(base(), nccA, lcvsA, moved)...), ncc, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || len(all[0].Endorsed) != 0 || len(all[1].Endorsed) != 1 {
		t.Fatalf("an older endorsement of LCVS's: %+v", all)
	}
}

// TestResponseIDNamesTheAuthor: a response's id names the responder, the assessment's author and
// its id; one over 128 characters is a hash of them, which differs by author.
func TestResponseIDNamesTheAuthor(t *testing.T) {
	a := &pb.Record{Id: ID("oekraine"), Origin: ncc}
	if got := ResponseID(Endorse, lcvs, a); got != "endorse:lcvs.crisis.test:ncc.crisis.test:assessment-oekraine" {
		t.Fatalf("ResponseID = %s", got)
	}
	long := &pb.Record{Id: ID(strings.Repeat("x", 100)), Origin: ncc}
	other := &pb.Record{Id: long.Id, Origin: lcvs}
	if got := ResponseID(Endorse, vr19, long); len(got) > 128 || got == ResponseID(Endorse, vr19, other) {
		t.Fatalf("long ids: %s, %s", got, ResponseID(Endorse, vr19, other))
	}
}

// TestAssessmentOnSourcesNotReceived: on a partner's node that receives nothing of a source the
// assessment's picture had, that source is named with its entries then; not one that withdrew
// its records since, which changed.
func TestAssessmentOnSourcesNotReceived(t *testing.T) {
	a := published(t, ncc, 1, t0.Add(2*time.Minute), "a", base()...)
	here := base()[:2] // LCVS's alone
	v, err := Current(picture(append(here, a)...), "vr-utrecht.crisis.test", nil)
	if err != nil {
		t.Fatal(err)
	}
	if v.Changed || len(v.NotReceived) != 2 || v.NotReceived[0].Source != ncc || v.NotReceived[0].Entries != 1 ||
		v.NotReceived[1].Source != vr19 || v.NotReceived[1].Entries != 1 {
		t.Fatalf("not received = %+v, changed %v", v.NotReceived, v.Changed)
	}
	p := picture(append(here, a)...)
	p.Removals = []*pb.PictureRemoval{{Source: vr19, Kind: "alert", At: timestamppb.New(t0.Add(time.Hour))}}
	if v, _ = Current(p, "vr-utrecht.crisis.test", nil); len(v.NotReceived) != 1 || v.NotReceived[0].Source != ncc {
		t.Fatalf("VR Zeeland withdrew its record: not received = %+v", v.NotReceived)
	}
	if v, _ = Current(picture(append(base(), a)...), ncc, nil); len(v.NotReceived) != 0 {
		t.Fatalf("on the author's node: not received = %+v", v.NotReceived)
	}
}

// TestAssessmentLeavesOutWhatItsClassificationDoesNot: a record classified above the
// assessment's own classification (internal) is neither in its fingerprint nor in its sums: the
// assessment goes to partners that no policy grants that record to (review AD, AD1: a secret
// record's 3333 free beds reached four partners in the sums). Both sides leave it out alike, so
// that it does not count as a change either.
func TestAssessmentLeavesOutWhatItsClassificationDoesNot(t *testing.T) {
	secret := entry(ncc, "shelter.capacity", "ncc-geheim", 1, t0, `{"municipality":"Amersfoort","beds_free":3333}`)
	secret.Record.Classification = pb.Classification_SECRET
	confidential := entry(ncc, "sitrep", "sitrep-vertrouwelijk", 1, t0, `{"title":"t","summary":"s"}`)
	confidential.Record.Classification = pb.Classification_CONFIDENTIAL
	p := picture(append(base(), secret, confidential)...)
	p.Aggregates = []*pb.Aggregate{agg("shelter.capacity", "VR19", 3344, 3), agg("shelter.capacity", "NL", 3344, 3)}
	rec, b := bodyOf(t, p)
	want := []Sum{{Kind: "shelter.capacity", Field: "beds_free", Region: "VR19", Sum: 11, Records: 2},
		{Kind: "shelter.capacity", Field: "beds_free", Region: "NL", Sum: 11, Records: 2}}
	if !reflect.DeepEqual(b.Sums, want) {
		t.Errorf("sums = %+v; want %+v, without the secret record", b.Sums, want)
	}
	if fp := Fingerprint(picture(base()...)); b.Picture.Hash != fp.Hash || !reflect.DeepEqual(jsonOf(t, b.Picture.Sources), jsonOf(t, fp.Sources)) {
		t.Errorf("fingerprint %+v; want the picture's without its secret and confidential records", b.Picture)
	}
	if strings.Contains(string(rec.Body), "3333") || rec.Classification != pb.Classification_INTERNAL {
		t.Errorf("assessment %s: %s", rec.Classification, rec.Body)
	}
	// A secret record that changes changes nothing the assessment shows.
	secret.Record.Version, secret.Record.Body = 2, []byte(`{"municipality":"Amersfoort","beds_free":3000}`)
	p.Aggregates = []*pb.Aggregate{agg("shelter.capacity", "VR19", 3011, 3), agg("shelter.capacity", "NL", 3011, 3)}
	rec.Origin, rec.Version, rec.UpdatedAt = ncc, 1, timestamppb.New(t0.Add(time.Minute))
	p.Entries = append(p.Entries, &pb.PictureEntry{Kind: Kind, Region: "NL", Key: rec.Id, Source: ncc, Record: rec})
	v, err := Current(p, ncc, nil)
	if err != nil {
		t.Fatal(err)
	}
	if v.Changed || len(v.SumsMoved) != 0 {
		t.Errorf("after the secret record changed: changed %v, sums moved %+v", v.Changed, v.SumsMoved)
	}
}

// bodyOf is the assessment New makes of p, and its body.
func bodyOf(t *testing.T, p *pb.PictureResponse) (*pb.Record, Body) {
	t.Helper()
	rec, err := New(p, "a", "b", "c")
	if err != nil {
		t.Fatal(err)
	}
	var b Body
	if err := json.Unmarshal(rec.Body, &b); err != nil {
		t.Fatal(err)
	}
	return rec, b
}

// jsonOf is v as JSON, which compares times as the assessment's body keeps them.
func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// agg is a picture's sum of beds_free in region: total over records entries.
func agg(kind, region string, total float64, records int64) *pb.Aggregate {
	return &pb.Aggregate{Kind: kind, Field: "beds_free", Region: region, Sum: total, Records: records, Entries: records}
}

// TestAssessmentKeepsItsSums: an assessment keeps its picture's sums, but not of its own kinds;
// a picture without sums keeps an empty list, which tells it from an assessment that kept none.
// Of more than MaxSums it keeps the national totals first and counts those it left out.
func TestAssessmentKeepsItsSums(t *testing.T) {
	p := picture(base()...)
	p.Aggregates = []*pb.Aggregate{agg("shelter.capacity", "VR19", 11, 2), agg("shelter.capacity", "NL", 11, 2), agg(Kind, "NL", 1, 1)}
	rec, b := bodyOf(t, p)
	want := []Sum{{Kind: "shelter.capacity", Field: "beds_free", Region: "VR19", Sum: 11, Records: 2},
		{Kind: "shelter.capacity", Field: "beds_free", Region: "NL", Sum: 11, Records: 2}}
	if !reflect.DeepEqual(b.Sums, want) || b.SumsLeftOut != 0 {
		t.Fatalf("sums = %+v, %d left out; want %+v", b.Sums, b.SumsLeftOut, want)
	}
	rec, _ = New(picture(base()...), "a", "b", "c")
	if !strings.Contains(string(rec.Body), `"sums":[]`) {
		t.Fatalf("a picture without sums: %s", rec.Body)
	}

	p.Aggregates = nil
	for i := range MaxSums + 10 {
		p.Aggregates = append(p.Aggregates, agg(fmt.Sprintf("k%03d", i), "VR19", 1, 1))
	}
	p.Aggregates = append(p.Aggregates, agg("zz", "NL", 5, 1))
	_, b = bodyOf(t, p)
	if len(b.Sums) != MaxSums || b.SumsLeftOut != 11 || b.Sums[MaxSums-1].Kind != "zz" || b.Sums[MaxSums-2].Kind != "k254" {
		t.Fatalf("%d sums kept, %d left out, the last %+v, %+v", len(b.Sums), b.SumsLeftOut, b.Sums[MaxSums-2], b.Sums[MaxSums-1])
	}
}

// TestAssessmentSaysWhichSumsMoved: free beds in Zeeland fell from 54 to 15 over 7 then 5
// records; the view names that sum and the national total, regions first, with a sum that came
// (from 0) and one that went (to 0), on the author's node and on a partner's. A change that
// moves no sum (a note) is minor. An assessment that kept no sums (an earlier release's) says
// nothing of them, and is not minor.
func TestAssessmentSaysWhichSumsMoved(t *testing.T) {
	written := t0.Add(2 * time.Minute)
	then := picture(base()...)
	then.Aggregates = []*pb.Aggregate{agg("shelter.capacity", "VR09", 3, 1), agg("shelter.capacity", "VR19", 54, 7), agg("shelter.capacity", "NL", 57, 8),
		agg("transport", "NL", 2, 2)}
	rec, err := New(then, "Opvang Zeeland bijna vol", "Tekort binnen twee dagen", "Spreid naar VR09")
	if err != nil {
		t.Fatal(err)
	}
	rec.Origin, rec.Version, rec.UpdatedAt = ncc, 1, timestamppb.New(written)
	// An earlier release's body: the same, without sums.
	var old map[string]any
	if err := json.Unmarshal(rec.Body, &old); err != nil {
		t.Fatal(err)
	}
	delete(old, "sums")
	oldRec := proto.Clone(rec).(*pb.Record)
	oldRec.Body, _ = json.Marshal(old)

	// LCVS's Goes, updated after the assessment.
	changed := func(body string) *pb.PictureResponse {
		e := base()
		e[0].Record.Version, e[0].Record.UpdatedAt, e[0].Record.Body = 4, timestamppb.New(t0.Add(time.Hour)), []byte(body)
		return picture(e...)
	}
	fell := changed(`{"municipality":"Goes","beds_free":2}`)
	fell.Aggregates = []*pb.Aggregate{agg("shelter.capacity", "VR09", 3, 1), agg("shelter.capacity", "VR19", 15, 5), agg("shelter.capacity", "NL", 18, 6),
		agg("shelter.capacity", "VR17", 0.5, 1)}
	note := changed(`{"municipality":"Goes","beds_free":7,"notes":"typfout hersteld"}`)
	note.Aggregates = then.Aggregates
	wantFell := []Moved{
		{Kind: "shelter.capacity", Field: "beds_free", Region: "VR17", Before: 0, After: 0.5, RecordsBefore: 0, RecordsAfter: 1},
		{Kind: "shelter.capacity", Field: "beds_free", Region: "VR19", Before: 54, After: 15, RecordsBefore: 7, RecordsAfter: 5},
		{Kind: "shelter.capacity", Field: "beds_free", Region: "NL", Before: 57, After: 18, RecordsBefore: 8, RecordsAfter: 6},
		{Kind: "transport", Field: "beds_free", Region: "NL", Before: 2, After: 0, RecordsBefore: 2, RecordsAfter: 0},
	}
	for _, self := range []string{ncc, "vr-utrecht.crisis.test"} {
		for _, c := range []struct {
			name         string
			p            *pb.PictureResponse
			rec          *pb.Record
			kept, minor  bool
			moved        []Moved
			pictureMoved bool
		}{
			{name: "nothing since", p: then, rec: rec, kept: true, moved: []Moved{}},
			{name: "beds fell", p: fell, rec: rec, kept: true, moved: wantFell, pictureMoved: true},
			{name: "a note", p: note, rec: rec, kept: true, minor: true, moved: []Moved{}, pictureMoved: true},
			{name: "beds fell, an earlier release's", p: fell, rec: oldRec, moved: []Moved{}, pictureMoved: true},
		} {
			p := proto.Clone(c.p).(*pb.PictureResponse)
			p.Entries = append(p.Entries, &pb.PictureEntry{Kind: Kind, Region: "NL", Key: c.rec.Id, Source: ncc, Record: c.rec})
			v, err := Current(p, self, nil)
			if err != nil {
				t.Fatal(err)
			}
			if v.Changed != c.pictureMoved || v.SumsKept != c.kept || v.Minor != c.minor || !reflect.DeepEqual(v.SumsMoved, c.moved) {
				t.Errorf("%s, at %s: changed=%v kept=%v minor=%v moved=%+v; want changed=%v kept=%v minor=%v moved=%+v",
					c.name, self, v.Changed, v.SumsKept, v.Minor, v.SumsMoved, c.pictureMoved, c.kept, c.minor, c.moved)
			}
		}
	}
}

// TestMovedSumsOfACutList: of an assessment that left sums out (over MaxSums), a sum now that it
// did not keep is not called moved (it may be one of those), one it kept is compared; and of a
// partner's assessment that holds more than MaxSums, only MaxSums count.
func TestMovedSumsOfACutList(t *testing.T) {
	was := []Sum{{Kind: "k", Field: "f", Region: "VR19", Sum: 4, Records: 1}}
	now := []Sum{{Kind: "k", Field: "f", Region: "VR19", Sum: 5, Records: 1}, {Kind: "x", Field: "f", Region: "VR19", Sum: 1, Records: 1}}
	if got := moved(was, 1, now); len(got) != 1 || got[0].Kind != "k" || got[0].Before != 4 || got[0].After != 5 {
		t.Fatalf("cut: %+v", got)
	}
	if got := moved(was, 0, now); len(got) != 2 {
		t.Fatalf("whole: %+v", got)
	}
	var many []Sum
	for i := range MaxSums + 5 {
		many = append(many, Sum{Kind: fmt.Sprintf("k%03d", i), Field: "f", Region: "VR19", Sum: 1, Records: 1})
	}
	if got := moved(many, 0, nil); len(got) != MaxSums {
		t.Fatalf("%d of a list of %d counted, want %d", len(got), len(many), MaxSums)
	}
	// The same figures added in another order (on another node) are the same sum, though the
	// last bits differ.
	a, b, c := 0.1, 0.2, 0.3
	if a+b+c == c+b+a {
		t.Fatal("the sums in two orders are equal: the case tests nothing")
	}
	if got := moved([]Sum{{Kind: "k", Field: "f", Region: "NL", Sum: a + b + c, Records: 3}},
		0, []Sum{{Kind: "k", Field: "f", Region: "NL", Sum: c + b + a, Records: 3}}); len(got) != 0 {
		t.Fatalf("another order: %+v", got)
	}
}

// TestIDIn: an assessment in an exercise has an id of its own, beside the actual one's, within
// the bound of a record id however long the names; a response to it names it.
func TestIDIn(t *testing.T) {
	if got := IDIn("oekraine", nil); got != ID("oekraine") {
		t.Errorf("actual: %q, want %q", got, ID("oekraine"))
	}
	ex := &pb.Mode{Status: pb.Status_EXERCISE, Exercise: "oef-1"}
	if got := IDIn("oekraine", ex); got != "assessment-oekraine:oef-1" {
		t.Errorf("exercise: %q", got)
	}
	long := &pb.Mode{Status: pb.Status_EXERCISE, Exercise: strings.Repeat("o", record.MaxIDLength)}
	crisis := strings.Repeat("c", 64)
	a, b := IDIn(crisis, long), IDIn(crisis, &pb.Mode{Status: pb.Status_EXERCISE, Exercise: strings.Repeat("o", record.MaxIDLength-1)})
	if a == b || record.CheckID("id", a) != nil || record.CheckID("id", b) != nil {
		t.Errorf("long names: %q and %q, want two valid ids", a, b)
	}
	rec, err := New(&pb.PictureResponse{Crisis: "oekraine"}, "t", "d", "a")
	if err != nil {
		t.Fatal(err)
	}
	InMode(rec, ex)
	if rec.Id != "assessment-oekraine:oef-1" || rec.Status != pb.Status_EXERCISE || rec.Exercise != "oef-1" {
		t.Errorf("InMode: %q %v %q", rec.Id, rec.Status, rec.Exercise)
	}
	resp, err := NewResponse(rec, "vr-utrecht.crisis.test", Endorse, "")
	if err != nil {
		t.Fatal(err)
	}
	InMode(resp, ex)
	if resp.Id != ResponseID(Endorse, "vr-utrecht.crisis.test", rec) || resp.Exercise != "oef-1" {
		t.Errorf("a response in the exercise: %q %q", resp.Id, resp.Exercise)
	}
}

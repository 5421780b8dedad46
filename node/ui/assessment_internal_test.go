package ui

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/node/assessment"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestAssessmentNamesASlotTakenOver: after the assessment, VR Zeeland's newer record of Goes
// outranks LCVS's. The page names VR Zeeland alone as changed, and says of Goes that it is now
// VR Zeeland's, over LCVS's record, by the names this node knows them by.
func TestAssessmentNamesASlotTakenOver(t *testing.T) {
	const ncc, lcvs, vrz = "ncc.crisis.test", "lcvs.crisis.test", "vr-zeeland.crisis.test"
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	slot := func(source, id string, at time.Time, beds string) *pb.PictureEntry {
		return &pb.PictureEntry{Kind: "shelter.capacity", Region: "VR19", Key: "Goes", Source: source, ReceivedAt: timestamppb.New(at),
			Record: &pb.Record{Id: id, Origin: source, Kind: "shelter.capacity", Crisis: "oekraine", Region: "VR19", Version: 1,
				UpdatedAt: timestamppb.New(at), Body: []byte(`{"municipality":"Goes","beds_free":` + beds + `}`)}}
	}
	rec, err := assessment.New(&pb.PictureResponse{Crisis: "oekraine", Entries: []*pb.PictureEntry{slot(lcvs, "goes", t0, "7")}}, "t", "d", "a")
	if err != nil {
		t.Fatal(err)
	}
	rec.Origin, rec.Version, rec.UpdatedAt = ncc, 1, timestamppb.New(t0.Add(time.Minute))
	now := slot(vrz, "vrz-goes", t0.Add(10*time.Minute), "2")
	now.Conflict = []string{lcvs}
	pic := &pb.PictureResponse{Crisis: "oekraine", Entries: []*pb.PictureEntry{now, {Kind: assessment.Kind, Region: "NL", Key: rec.Id, Source: ncc, Record: rec}}}

	s := &Server{c: Config{Org: ncc}}
	render, l := assessmentRenderer(t)
	names := map[string]string{lcvs: "LCVS", vrz: "VR Zeeland", ncc: "NCC"}
	page := render(s.assessmentOf(&request{L: l}, pic, nil, func(td string) string { return names[td] }).A)
	for _, want := range []string{
		`Veranderd: VR Zeeland.</p>`,
		`<li class="utrecht-unordered-list__item">Goes (Opvangcapaciteit, VR19): nu van VR Zeeland, met een nieuwer gegeven dan dat van LCVS.</li>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the assessment lacks %q:\n%s", want, page)
		}
	}
	if strings.Contains(page, "Veranderd: LCVS") || strings.Contains(page, "LCVS, VR Zeeland") {
		t.Errorf("LCVS, whose record was outranked, is named changed:\n%s", page)
	}
}

// TestAssessmentSaysWhatCannotBeTold: an assessment whose picture did not change among the
// partners that answer, but with a partner that does not, says so and names that partner,
// instead of saying no source changed.
func TestAssessmentSaysWhatCannotBeTold(t *testing.T) {
	render, _ := assessmentRenderer(t)
	a := &assessmentView{Origin: "NCC", Version: 1, Text: "t", Development: "d", Advice: "a"}
	if page := render(a); !strings.Contains(page, "Geen bron op dit beeld is veranderd") || strings.Contains(page, "duiding-onbekend") {
		t.Errorf("every partner answers:\n%s", page)
	}
	a.CannotTell = []string{"LCVS"}
	page := render(a)
	for _, want := range []string{`id="duiding-actueel">Geen partner die nu antwoordt`, `id="duiding-onbekend"><p class="utrecht-paragraph">Of LCVS iets veranderde, is niet te zeggen`} {
		if !strings.Contains(page, want) {
			t.Errorf("LCVS does not answer, and the assessment lacks %q:\n%s", want, page)
		}
	}
}

// TestAssessmentSaysWhatThisNodeDoesNotReceive: an assessment written on a picture with a source
// this node receives nothing of says so, with how many entries it had there: the figures here may
// differ (review I, F7).
func TestAssessmentSaysWhatThisNodeDoesNotReceive(t *testing.T) {
	const ncc, vrz = "ncc.crisis.test", "vr-zeeland.crisis.test"
	pic := &pb.PictureResponse{Crisis: "oekraine", Entries: []*pb.PictureEntry{{Kind: "shelter.capacity", Region: "VR19", Key: "Goes", Source: vrz,
		Record: &pb.Record{Id: "vrz-goes", Origin: vrz, Kind: "shelter.capacity", Crisis: "oekraine", Region: "VR19", Version: 1, UpdatedAt: timestamppb.Now(), Body: []byte(`{"municipality":"Goes","beds_free":2}`)}}}}
	rec, err := assessment.New(pic, "t", "d", "a")
	if err != nil {
		t.Fatal(err)
	}
	rec.Origin, rec.Version, rec.UpdatedAt = ncc, 1, timestamppb.New(time.Now().Add(time.Minute))
	here := &pb.PictureResponse{Crisis: "oekraine", Entries: []*pb.PictureEntry{{Kind: assessment.Kind, Region: "NL", Key: rec.Id, Source: ncc, Record: rec}}}
	s := &Server{c: Config{Org: "vr-utrecht.crisis.test"}}
	render, l := assessmentRenderer(t)
	names := map[string]string{vrz: "VR Zeeland", ncc: "NCC"}
	page := render(s.assessmentOf(&request{L: l}, here, nil, func(td string) string { return names[td] }).A)
	if want := `id="duiding-niet-ontvangen"><p class="utrecht-paragraph">Deze duiding is geschreven op een beeld met bronnen die dit knooppunt niet ontvangt: VR Zeeland (meldingen: 1).`; !strings.Contains(page, want) {
		t.Errorf("the assessment lacks %q:\n%s", want, page)
	}
}

// assessmentRenderer renders the assessment part of the picture page in Dutch.
func assessmentRenderer(t *testing.T) (func(a *assessmentView) string, *Lang) {
	t.Helper()
	pages, cats := pagesAndCatalogues(t)
	l := &Lang{Code: "nl", cat: cats["nl"]}
	return func(a *assessmentView) string {
		var b strings.Builder
		if err := pages["picture"].ExecuteTemplate(&b, "assessment", &assessmentPart{L: l, A: a}); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}, l
}

// TestAssessmentOfEveryOrg: a partner's assessment of the crisis is shown beside this node's own,
// which comes first, each with its own endorsements, and no element id is used twice; whether the
// picture gives them as two entries or as one with the other's beside it.
func TestAssessmentOfEveryOrg(t *testing.T) {
	const ncc, lcvs, utrecht = "ncc.crisis.test", "lcvs.crisis.test", "vr-utrecht.crisis.test"
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	pic := &pb.PictureResponse{Crisis: "oekraine"}
	var recs []*pb.Record
	for i, org := range []string{ncc, lcvs} {
		rec, err := assessment.New(pic, "Duiding van "+org, "d", "a")
		if err != nil {
			t.Fatal(err)
		}
		rec.Origin, rec.Version, rec.UpdatedAt = org, 1, timestamppb.New(t0.Add(time.Duration(i)*time.Minute))
		recs = append(recs, rec)
	}
	endorse, err := assessment.NewResponse(recs[1], utrecht, assessment.Endorse, "")
	if err != nil {
		t.Fatal(err)
	}
	endorse.Origin, endorse.UpdatedAt = utrecht, timestamppb.New(t0.Add(2*time.Minute))
	endorsement := &pb.PictureEntry{Kind: assessment.ResponseKind, Region: "NL", Key: endorse.Id, Source: utrecht, Record: endorse}
	entry := func(r *pb.Record) *pb.PictureEntry {
		return &pb.PictureEntry{Kind: assessment.Kind, Region: "NL", Key: r.Id, Source: r.Origin, Record: r}
	}
	one := entry(recs[1])
	one.Conflict, one.Disagreeing = []string{ncc}, []*pb.Record{recs[0]}
	s := &Server{c: Config{Org: ncc}}
	names := map[string]string{lcvs: "LCVS", utrecht: "VR Utrecht", ncc: "NCC"}
	pages, cats := pagesAndCatalogues(t)
	l := &Lang{Code: "nl", cat: cats["nl"]}
	for name, entries := range map[string][]*pb.PictureEntry{
		"two entries": {entry(recs[0]), entry(recs[1]), endorsement},
		"one entry":   {one, endorsement},
	} {
		pic.Entries = entries
		part := s.assessmentOf(&request{L: l}, pic, nil, func(td string) string { return names[td] })
		var b strings.Builder
		if err := pages["picture"].ExecuteTemplate(&b, "assessment", part); err != nil {
			t.Fatal(err)
		}
		page := b.String()
		i, j := strings.Index(page, "Duiding van "+ncc), strings.Index(page, "Duiding van "+lcvs)
		if i < 0 || j < i {
			t.Errorf("%s: NCC's own assessment is not shown first, then LCVS's:\n%s", name, page)
		}
		if !strings.Contains(page, `id="duiding-onderschreven">geen partner`) || !strings.Contains(page, `id="duiding-2-onderschreven">VR Utrecht</dd>`) {
			t.Errorf("%s: VR Utrecht's endorsement is not LCVS's alone:\n%s", name, page)
		}
	}
}

// TestAssessmentSaysWhichSumsMoved: the page says how much the picture changed since the
// assessment was written (review I, F21): each sum that moved, in Dutch figures, the region's
// before the national total; that none did when a note changed; that an assessment of an earlier
// release kept none; and, on a partner's node shown less than the author, that its sums differ
// though no source changed.
func TestAssessmentSaysWhichSumsMoved(t *testing.T) {
	const ncc, lcvs = "ncc.crisis.test", "lcvs.crisis.test"
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	goes := func(at time.Time, body string) *pb.PictureEntry {
		return &pb.PictureEntry{Kind: "shelter.capacity", Region: "VR19", Key: "Goes", Source: lcvs, ReceivedAt: timestamppb.New(at),
			Record: &pb.Record{Id: "goes", Origin: lcvs, Kind: "shelter.capacity", Crisis: "oekraine", Region: "VR19", Version: 1,
				UpdatedAt: timestamppb.New(at), Body: []byte(body)}}
	}
	sums := func(vr19, nl float64, records int64) []*pb.Aggregate {
		return []*pb.Aggregate{{Kind: "shelter.capacity", Field: "beds_free", Region: "VR19", Sum: vr19, Records: records, Entries: records},
			{Kind: "shelter.capacity", Field: "beds_free", Region: "NL", Sum: nl, Records: records, Entries: records}}
	}
	then := &pb.PictureResponse{Crisis: "oekraine", Entries: []*pb.PictureEntry{goes(t0, `{"municipality":"Goes","beds_free":54}`)}, Aggregates: sums(54, 1254.5, 7)}
	rec, err := assessment.New(then, "t", "d", "a")
	if err != nil {
		t.Fatal(err)
	}
	rec.Origin, rec.Version, rec.UpdatedAt = ncc, 1, timestamppb.New(t0.Add(time.Minute))
	// An earlier release's: the same assessment, its sums not kept ("sums": null reads as none).
	var body assessment.Body
	if err := json.Unmarshal(rec.Body, &body); err != nil {
		t.Fatal(err)
	}
	body.Sums = nil
	old := proto.Clone(rec).(*pb.Record)
	old.Body, _ = json.Marshal(body)

	s := &Server{c: Config{Org: ncc}}
	render, l := assessmentRenderer(t)
	names := map[string]string{lcvs: "LCVS", ncc: "NCC"}
	page := func(self string, rec *pb.Record, now *pb.PictureResponse) string {
		now = proto.Clone(now).(*pb.PictureResponse)
		now.Entries = append(now.Entries, &pb.PictureEntry{Kind: assessment.Kind, Region: "NL", Key: rec.Id, Source: ncc, Record: rec})
		s.c.Org = self
		return render(s.assessmentOf(&request{L: l}, now, nil, func(td string) string { return names[td] }).A)
	}
	fell := &pb.PictureResponse{Crisis: "oekraine", Entries: []*pb.PictureEntry{goes(t0.Add(10*time.Minute), `{"municipality":"Goes","beds_free":15}`)}, Aggregates: sums(15, 1215.5, 5)}
	want := `<p class="utrecht-paragraph">Sommen die sindsdien veranderden:</p>` + "\n  " + `<ul class="utrecht-unordered-list" id="duiding-sommen">` +
		"\n  " + `<li class="utrecht-unordered-list__item">Vrije opvangplaatsen, VR19 Zeeland: 54 → 15 (meldingen: 7 → 5)</li>` +
		"\n  " + `<li class="utrecht-unordered-list__item">Vrije opvangplaatsen, Nederland (totaal): 1.254,5 → 1.215,5 (meldingen: 7 → 5)</li>` + "\n</ul></div>"
	if got := page(ncc, rec, fell); !strings.Contains(got, want) || strings.Contains(got, "geen van zijn sommen") {
		t.Errorf("free beds fell:\n%s\nwant\n%s", got, want)
	}

	note := &pb.PictureResponse{Crisis: "oekraine", Entries: []*pb.PictureEntry{goes(t0.Add(10*time.Minute), `{"municipality":"Goes","beds_free":54,"notes":"typfout"}`)}, Aggregates: sums(54, 1254.5, 7)}
	if got := page(ncc, rec, note); !strings.Contains(got, `<p class="utrecht-paragraph" id="duiding-sommen">Het beeld is veranderd, maar geen van zijn sommen.</p></div>`) {
		t.Errorf("a note changed:\n%s", got)
	}
	if got := page(ncc, old, fell); !strings.Contains(got, `id="duiding-sommen">De sommen die deze duiding zag, zijn niet bewaard`) || strings.Contains(got, "→") {
		t.Errorf("an earlier release's assessment:\n%s", got)
	}
	if got := page(ncc, old, then); strings.Contains(got, "duiding-sommen") {
		t.Errorf("an earlier release's assessment of a picture that did not change speaks of sums:\n%s", got)
	}
	// A partner shown fewer of LCVS's records than NCC's picture held: nothing changed, the sums differ.
	fewer := &pb.PictureResponse{Crisis: "oekraine", Entries: then.Entries, Aggregates: sums(40, 1240.5, 5)}
	if got := page("vr-utrecht.crisis.test", rec, fewer); !strings.Contains(got, `Geen bron op dit beeld is veranderd`) ||
		!strings.Contains(got, `<p class="utrecht-paragraph">De sommen hier wijken af van die de duiding zag, al veranderde geen bron`) ||
		!strings.Contains(got, `VR19 Zeeland: 54 → 40 (meldingen: 7 → 5)`) {
		t.Errorf("a partner shown fewer records:\n%s", got)
	}
}

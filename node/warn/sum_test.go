package warn_test

import (
	"cmp"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/knooppunt/knooppunt/node/warn"
)

// TestSumLeavesOutWhatItCannotAdd: a sum adds the records that carry the field within
// record.MaxAggregate. A partner's -1.7e308 (or a NaN, an infinity) is left out, as the picture
// leaves it out, so that no sum becomes infinite; a region where no record carries the field has
// no value, and a rule there fails to evaluate, where it read 0 and fired.
func TestSumLeavesOutWhatItCannotAdd(t *testing.T) {
	v := func(id, region string, fields map[string]float64) warn.Version {
		return warn.Version{Origin: "p.test", ID: id, Version: 1, Kind: "shelter.capacity", Crisis: "c", Region: region, At: minute(0), Fields: fields}
	}
	h := warn.NewHistory([]warn.Version{
		v("a", "VR01", map[string]float64{"beds_free": -1.7e308}),
		v("b", "VR01", map[string]float64{"beds_free": 5}),
		v("c", "VR01", map[string]float64{"beds_total": 10}),
		v("d", "VR02", map[string]float64{"beds_free": -1.7e308}),
		v("e", "VR02", map[string]float64{"beds_free": math.Inf(1)}),
		v("f", "VR02", map[string]float64{"beds_free": math.NaN()}),
		v("g", "VR03", map[string]float64{"beds_total": 10}), // redacted by the partner's policy
	}, minute(0))
	for _, c := range []struct {
		region string
		sum    float64
		ok     bool
	}{{"VR01", 5, true}, {"VR02", 0, false}, {"VR03", 0, false}, {"VR04", 0, false}} {
		if sum, ok := h.Sum("shelter.capacity", "c", c.region, "beds_free", minute(1)); sum != c.sum || ok != c.ok {
			t.Errorf("Sum in %s = %g, %v; want %g, %v", c.region, sum, ok, c.sum, c.ok)
		}
	}
	rule, err := warn.Lint([]byte("name: r\nseverity: severe\ncrisis: c\nwhen: sum(\"shelter.capacity\", \"beds_free\") < 10\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, tr, read, err := rule.Step(h, "VR01", minute(1), warn.State{}); err != nil || tr != warn.Fired || len(read) != 1 || read[0].Value != 5 {
		t.Errorf("VR01, 5 free beds: %v %v %v, want it to fire on 5", tr, read, err)
	}
	for _, region := range []string{"VR02", "VR03"} {
		_, tr, _, err := rule.Step(h, region, minute(1), warn.State{})
		if err == nil || !strings.Contains(err.Error(), `sum("shelter.capacity", "beds_free") has no value`) || !strings.Contains(err.Error(), "beds_free") {
			t.Errorf("%s, where no record carries beds_free: %v, error %v; want an error saying the sum has no value", region, tr, err)
		}
	}
}

// shelter is a version of a shelter.capacity record of origin in crisis c, at minute at, with
// beds_free free and beds_total total, reporting municipality ("" for none).
func shelter(origin, id string, version int64, region, municipality string, at int, free, total float64) warn.Version {
	v := warn.Version{Origin: origin, ID: id, Version: version, Kind: "shelter.capacity", Crisis: "c", Region: region, At: minute(at),
		Fields: map[string]float64{"beds_free": free, "beds_total": total}, Values: map[string]any{"location": "Opvang " + id}}
	if municipality != "" {
		v.Values["municipality"] = municipality
	}
	return v
}

// deleted is the delete of a record at minute at, as the history keeps it: no values.
func deleted(origin, id string, version int64, region string, at int) warn.Version {
	return warn.Version{Origin: origin, ID: id, Version: version, Kind: "shelter.capacity", Crisis: "c", Region: region, At: minute(at), Tombstone: true}
}

// sumAt is a sum the test expects: of field in region at minute at, by a rule of crisis.
type sumAt struct {
	crisis, region, field string
	at                    int
	want                  float64
	ok                    bool
}

// checkSums checks the sums of a history of the versions.
func checkSums(t *testing.T, vs []warn.Version, cases []sumAt) {
	t.Helper()
	h := warn.NewHistory(vs, time.Time{})
	for _, c := range cases {
		field := cmp.Or(c.field, "beds_free")
		if got, ok := h.Sum("shelter.capacity", c.crisis, c.region, field, minute(c.at)); got != c.want || ok != c.ok {
			t.Errorf("sum of %s in %s, crisis %q, at minute %d = %g, %v; want %g, %v", field, c.region, c.crisis, c.at, got, ok, c.want, c.ok)
		}
	}
}

// TestSumTakesThePicturesSlots (review M, M1): a sum adds what the picture shows, one record a
// slot: a municipality reported by two organisations, however each writes it, counts the newer
// report once, where it counted both (an alert resolved on 10 + 12 free beds in Bunnik while the
// picture showed 12). When that report is deleted, the older one counts again.
func TestSumTakesThePicturesSlots(t *testing.T) {
	vs := []warn.Version{
		shelter("vru.test", "opvang-utrecht", 1, "VR09", "Utrecht", 0, 175, 500),
		shelter("lcvs.test", "shelter-bunnik", 1, "VR09", "Bunnik", 1, 10, 40),
		shelter("vrz.test", "opvang-bunnik", 1, "VR09", " bunnik", 2, 12, 40),
		shelter("lcvs.test", "shelter-bunnik", 2, "VR09", "Bunnik", 3, 11, 40),
		shelter("vrz.test", "opvang-bunnik", 2, "VR09", "BUNNIK", 4, 12, 40),
		deleted("vrz.test", "opvang-bunnik", 3, "VR09", 5),
	}
	// Each instant as an evaluation at that instant reads it: before the delete, the history
	// still holds VR Zeeland's strings.
	checkSums(t, vs, []sumAt{
		{region: "VR09", at: 0, want: 175, ok: true},
		{region: "VR09", at: 1, want: 185, ok: true},
		{region: "VR09", at: 2, want: 187, ok: true}, // VR Zeeland's 12 is newer than LCVS's 10: 175 + 12, not 197
		{region: "VR09", field: "beds_total", at: 2, want: 540, ok: true},
		{region: "VR09", at: 3, want: 186, ok: true}, // LCVS's 11 is newer again
		{region: "VR09", at: 4, want: 187, ok: true},
		{crisis: "c", region: "VR09", at: 4, want: 187, ok: true},
		{region: "VR09", at: 5, want: 186, ok: true}, // VR Zeeland's is deleted: LCVS's counts again
		{region: "VR09", field: "beds_total", at: 5, want: 540, ok: true},
	})

	// A ratio rule reads the picture's sums, and its alert says them.
	rule, err := warn.Lint([]byte("name: r\nseverity: severe\ncrisis: c\nwhen: ratio(sum(\"shelter.capacity\", \"beds_free\"), sum(\"shelter.capacity\", \"beds_total\")) < 0.4\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, tr, read, err := rule.Step(warn.NewHistory(vs, time.Time{}), "VR09", minute(2), warn.State{})
	if err != nil || tr != warn.Fired || len(read) != 2 || read[0].Value != 187 || read[1].Value != 540 {
		t.Errorf("the ratio rule at minute 2: %v %v %v; want it to fire on 187 and 540", tr, read, err)
	}

	// After the delete, the history holds the deleted record's versions without their strings
	// (a delete erases its text), its municipality too: from the delete on, the sum is the same.
	for i := range vs {
		if vs[i].Origin == "vrz.test" {
			vs[i].Values = nil
		}
	}
	checkSums(t, vs, []sumAt{
		{region: "VR09", at: 5, want: 186, ok: true},
		{region: "VR09", field: "beds_total", at: 5, want: 540, ok: true},
		{region: "VR09", at: 6, want: 186, ok: true},
	})
}

// TestSumFallsBackInTheSlot: the slot's newest record stops counting there when it moves to
// another region, names another municipality, lacks the field, or leaves the crisis; the next
// latest record of the slot counts then, as the picture shows it.
func TestSumFallsBackInTheSlot(t *testing.T) {
	lcvs := shelter("lcvs.test", "shelter-bunnik", 1, "VR09", "Bunnik", 1, 10, 40)
	vrz := func(version int64, region, municipality string, at int) warn.Version {
		return shelter("vrz.test", "opvang-bunnik", version, region, municipality, at, 12, 40)
	}
	t.Run("moves", func(t *testing.T) {
		checkSums(t, []warn.Version{lcvs, vrz(1, "VR09", "Bunnik", 2), vrz(2, "VR19", "Bunnik", 3)}, []sumAt{
			{region: "VR09", at: 2, want: 12, ok: true}, {region: "VR09", at: 3, want: 10, ok: true},
			{region: "VR19", at: 2}, {region: "VR19", at: 3, want: 12, ok: true}})
	})
	t.Run("another municipality", func(t *testing.T) {
		checkSums(t, []warn.Version{lcvs, vrz(1, "VR09", "bunnik", 2), vrz(2, "VR09", "Houten", 3)}, []sumAt{
			{region: "VR09", at: 2, want: 12, ok: true}, {region: "VR09", at: 3, want: 22, ok: true}})
	})
	t.Run("lacks the field", func(t *testing.T) {
		// The newest report in the slot is the one shown, and it has no beds_free (a policy
		// redacted it): the slot adds nothing, as in the picture, where only entries count.
		redacted := vrz(2, "VR09", "Bunnik", 3)
		delete(redacted.Fields, "beds_free")
		checkSums(t, []warn.Version{lcvs, vrz(1, "VR09", "Bunnik", 2), redacted}, []sumAt{
			{region: "VR09", at: 2, want: 12, ok: true}, {region: "VR09", at: 3},
			{region: "VR09", field: "beds_total", at: 3, want: 40, ok: true}})
	})
	t.Run("leaves the crisis", func(t *testing.T) {
		other := vrz(2, "VR09", "Bunnik", 3)
		other.Crisis = "d"
		// A rule of crisis c sees LCVS's again; one of every crisis adds each crisis's picture.
		checkSums(t, []warn.Version{lcvs, vrz(1, "VR09", "Bunnik", 2), other}, []sumAt{
			{crisis: "c", region: "VR09", at: 2, want: 12, ok: true}, {crisis: "c", region: "VR09", at: 3, want: 10, ok: true},
			{crisis: "d", region: "VR09", at: 3, want: 12, ok: true}, {region: "VR09", at: 2, want: 12, ok: true},
			{region: "VR09", at: 3, want: 22, ok: true}})
	})
	t.Run("ties", func(t *testing.T) {
		// At one updated_at, the higher version; then the origin, then the id, that sorts first.
		at1 := []sumAt{{region: "VR09", at: 1, want: 12, ok: true}}
		checkSums(t, []warn.Version{lcvs, vrz(2, "VR09", "Bunnik", 1)}, at1)
		at1[0].want = 10
		checkSums(t, []warn.Version{lcvs, vrz(1, "VR09", "Bunnik", 1)}, at1)
		checkSums(t, []warn.Version{lcvs, shelter("lcvs.test", "shelter-bunnik-2", 1, "VR09", "Bunnik", 1, 7, 40)}, at1)
	})
}

// TestSumOfRecordsByIDAndOfNL: a record without a municipality (none, or white space
// alone) is a slot of its own, within its source: two organisations' records of one id both
// count, and an id never shares a slot with a municipality of its name. A rule's region NL reads
// the records of region NL, in slots as the picture's entries of NL: two organisations' reports
// of one municipality count once, records without one each, and no record of another region
// counts there.
func TestSumOfRecordsByIDAndOfNL(t *testing.T) {
	checkSums(t, []warn.Version{
		shelter("lcvs.test", "s1", 1, "VR09", "", 1, 10, 40),
		shelter("vrz.test", "s1", 1, "VR09", "", 2, 12, 40),
		shelter("vrz.test", "s2", 1, "VR09", " \t", 3, 5, 40),
		shelter("", "bunnik", 1, "VR09", "", 4, 1, 40),
		shelter("vrz.test", "s3", 1, "VR09", "Bunnik", 5, 2, 40),
		shelter("ncc.test", "landelijk", 1, "NL", "", 1, 100, 1000),
		shelter("lcvs.test", "landelijk", 1, "NL", "", 1, 50, 500),
		shelter("ncc.test", "reserve-den-haag", 1, "NL", "Den Haag", 2, 20, 200),
		shelter("lcvs.test", "reserve", 1, "NL", "den-haag", 3, 30, 200),
	}, []sumAt{
		{region: "VR09", at: 2, want: 22, ok: true}, {region: "VR09", at: 3, want: 27, ok: true},
		{region: "VR09", at: 5, want: 30, ok: true},
		{region: "NL", at: 1, want: 150, ok: true}, {region: "NL", at: 2, want: 170, ok: true},
		{region: "NL", at: 3, want: 180, ok: true}, {region: "NL", field: "beds_total", at: 3, want: 1700, ok: true},
	})
}

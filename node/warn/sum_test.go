package warn_test

import (
	"math"
	"strings"
	"testing"

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

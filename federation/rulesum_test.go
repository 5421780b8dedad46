package federation_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/knooppunt/knooppunt/federation/fedtest"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestRuleSumsAreThePictures (review M, M1): two organisations report one municipality, each
// writing it its own way (a's Bunnik, b's bunnik). b's picture counts the newer report once, and
// so does b's rule: the alert it fires says the picture's sums, where it said 10 + 12 free beds
// for Bunnik and resolved an alert on a sum the picture did not show. Once b deletes its report,
// a's counts again, in the picture and in a rule alike.
func TestRuleSumsAreThePictures(t *testing.T) {
	f := fedtest.Start(t, fedtest.Options{Orgs: 2, Extra: func(string) string { return "rules:\n  every: 1s\n" }})
	a, b := f.Orgs[0], f.Orgs[1]
	const crisis = "dubbel"
	shelter := func(id, municipality string, free, total int) *pb.Record {
		return &pb.Record{Id: id, Kind: "shelter.capacity", Crisis: crisis, Region: "VR09", Classification: pb.Classification_INTERNAL,
			Body: fmt.Appendf(nil, `{"municipality":%q,"beds_total":%d,"beds_free":%d}`, municipality, total, free)}
	}
	a.Approve(t, policyDoc("capacity-to-b", spiffeOf(b), "shelter.capacity", "internal", ""))
	a.Put(t, shelter("shelter-bunnik", "Bunnik", 10, 40))
	waitHeld(t, b, crisis, a.TD.Name(), map[string]int64{"shelter-bunnik": 1}, "b receives a's shelter in Bunnik")
	b.Put(t, shelter("opvang-bunnik", "bunnik", 12, 40))
	b.Put(t, shelter("opvang-utrecht", "Utrecht", 175, 500))

	// Each rule fires at once (ratio under 0.9), and its alert says the sums it read.
	fires := func(name string) map[string]float64 {
		t.Helper()
		src := fmt.Sprintf("name: %s\nseverity: severe\ncrisis: %s\nregions: [VR09]\n"+
			"when: ratio(sum(\"shelter.capacity\", \"beds_free\"), sum(\"shelter.capacity\", \"beds_total\")) < 0.9\n", name, crisis)
		if _, err := pb.NewRuleServiceClient(b.As(t, b.Officers[0])).Apply(fedtest.Call(t), &pb.ApplyRuleRequest{Source: []byte(src), Reason: "test"}); err != nil {
			t.Fatalf("rule apply %s: %v", name, err)
		}
		var values map[string]float64
		fedtest.Eventually(t, 20*time.Second, "rule "+name+" fires", func() (bool, string) {
			for _, e := range b.Picture(t, crisis).Entries {
				if e.Kind == "alert" && e.Record.Labels["rule"] == name && e.Record.Labels["status"] == "firing" {
					var body struct {
						Values []struct {
							Expr  string
							Value float64
						}
					}
					if err := json.Unmarshal(e.Record.Body, &body); err != nil {
						t.Fatalf("alert %s: %v", e.Record.Id, err)
					}
					values = map[string]float64{}
					for _, v := range body.Values {
						values[v.Expr] = v.Value
					}
					return true, ""
				}
			}
			return false, "no alert of " + name + " in b's picture"
		})
		return values
	}
	// pictureSums are b's picture's sums in VR09, by the expression a rule reads them with.
	pictureSums := func() map[string]float64 {
		t.Helper()
		out := map[string]float64{}
		for _, ag := range b.Picture(t, crisis).Aggregates {
			if ag.Kind == "shelter.capacity" && ag.Region == "VR09" {
				out[fmt.Sprintf("sum(%q, %q)", ag.Kind, ag.Field)] = ag.Sum
			}
		}
		return out
	}
	check := func(name string, want map[string]float64) {
		t.Helper()
		pic := pictureSums()
		got := fires(name)
		for expr, v := range want {
			if pic[expr] != v {
				t.Errorf("b's picture: %s = %g, want %g", expr, pic[expr], v)
			}
			if got[expr] != pic[expr] {
				t.Errorf("rule %s's alert: %s = %g; b's picture shows %g", name, expr, got[expr], pic[expr])
			}
		}
	}
	// b's bunnik is newer than a's Bunnik: 175 + 12 free beds of 500 + 40, not 197 of 580.
	check("beds-overlap", map[string]float64{`sum("shelter.capacity", "beds_free")`: 187, `sum("shelter.capacity", "beds_total")`: 540})

	b.Delete(t, "opvang-bunnik")
	fedtest.Eventually(t, 10*time.Second, "b's picture shows a's Bunnik again", func() (bool, string) {
		s := pictureSums()[`sum("shelter.capacity", "beds_free")`]
		return s == 185, fmt.Sprintf("free beds %g", s)
	})
	check("beds-after-delete", map[string]float64{`sum("shelter.capacity", "beds_free")`: 185, `sum("shelter.capacity", "beds_total")`: 540})
}

package search_test

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/federation/search"
	"github.com/knooppunt/knooppunt/node/record"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestMergeSumsStayFinite: a peer's records are not checked against their kind, so a sum sees
// any number (review 20 M3). A value above record.MaxAggregate in magnitude, which a node refuses
// to write, is left out of the sums, as one beyond float64 is: two of 1e308 summed to +Inf, which
// `picture -o json` could not print. A number beyond float64 elsewhere in a body no longer hides
// the body's validity.
func TestMergeSumsStayFinite(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var items []search.Item
	for i, beds := range []string{"10", "1e308", "1e308", "-1e308", "1e400", "18014398509481984", fmt.Sprint(int64(record.MaxAggregate))} {
		items = append(items, search.Item{Source: "b.crisis.test", ReceivedAt: now, Record: &pb.Record{
			Id: fmt.Sprintf("r%d", i), Origin: "b.crisis.test", Kind: "shelter.capacity", Crisis: "c", Region: "VR09",
			Body: []byte(fmt.Sprintf(`{"municipality":"m%d","beds_free":%s}`, i, beds)), Version: 1, UpdatedAt: timestamppb.New(now),
		}})
	}
	items = append(items, search.Item{Source: "b.crisis.test", ReceivedAt: now, Record: &pb.Record{
		Id: "qa1", Origin: "b.crisis.test", Kind: "qa", Crisis: "c", Region: "VR09",
		Body: []byte(`{"question":"q","answer":"a","valid_until":"2026-01-01","weight":1e400}`), Version: 1, UpdatedAt: timestamppb.New(now),
	}})
	resp := search.Merge(items, map[string][]string{"shelter.capacity": {"beds_free"}}, now, search.StaleAfter(time.Hour))
	var sums []string
	for _, a := range resp.Aggregates {
		if math.IsInf(a.Sum, 0) || math.IsNaN(a.Sum) {
			t.Errorf("sum %s %s is %g", a.Field, a.Region, a.Sum)
		}
		sums = append(sums, fmt.Sprintf("%s %s %.0f/%d", a.Field, a.Region, a.Sum, a.Records))
	}
	if got, want := strings.Join(sums, ", "), "beds_free VR09 9007199254741002/2, beds_free NL 9007199254741002/2"; got != want {
		t.Errorf("sums %s, want %s", got, want)
	}
	if _, err := json.Marshal(resp.Aggregates); err != nil {
		t.Errorf("the sums as JSON: %v", err)
	}
	for _, e := range resp.Entries {
		if e.Kind == "qa" && e.Validity != record.Expired {
			t.Errorf("the qa whose body holds 1e400 has validity %q, want %q", e.Validity, record.Expired)
		}
	}
}

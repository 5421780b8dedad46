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
	"github.com/knooppunt/knooppunt/node/assessment"
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

// TestAssessmentOfAPictureWithASecretRecord (review AD, AD1; review AG, AG1): a secret record
// that is the latest for a municipality takes the slot from a partner's record; the assessment
// of that picture stands for the picture without the secret record: its sums and its
// fingerprint are that picture's, not the picture's less the secret figure (which lost the
// partner's figure for the slot too).
func TestAssessmentOfAPictureWithASecretRecord(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	shelter := func(source, id, municipality string, beds int, class pb.Classification, at time.Time) search.Item {
		return search.Item{Source: source, Record: &pb.Record{Id: id, Origin: source, Kind: "shelter.capacity", Crisis: "c", Region: "VR09", Classification: class,
			Body: []byte(fmt.Sprintf(`{"municipality":%q,"beds_free":%d}`, municipality, beds)), Version: 1, UpdatedAt: timestamppb.New(at)}}
	}
	shared := []search.Item{
		shelter("lcvs.crisis.test", "l-amersfoort", "Amersfoort", 26, pb.Classification_INTERNAL, now.Add(-time.Hour)),
		shelter("lcvs.crisis.test", "l-utrecht", "Utrecht", 100, pb.Classification_PUBLIC, now.Add(-time.Hour)),
	}
	secret := shelter("ncc.crisis.test", "n-geheim", "Amersfoort", 3333, pb.Classification_SECRET, now.Add(-time.Minute))
	merge := func(items []search.Item) *pb.PictureResponse {
		return search.Merge(items, map[string][]string{"shelter.capacity": {"beds_free"}}, now, search.StaleAfter(24*time.Hour))
	}
	with, without := merge(append(shared[:2:2], secret)), merge(shared)
	rec, err := assessment.New(with, "t", "d", "a")
	if err != nil {
		t.Fatal(err)
	}
	var body assessment.Body
	if err := json.Unmarshal(rec.Body, &body); err != nil {
		t.Fatal(err)
	}
	want, err := assessment.New(without, "t", "d", "a")
	if err != nil {
		t.Fatal(err)
	}
	var wantBody assessment.Body
	if err := json.Unmarshal(want.Body, &wantBody); err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(body.Sums)
	exp, _ := json.Marshal(wantBody.Sums)
	if string(got) != string(exp) || !strings.Contains(string(exp), `"sum":126`) {
		t.Errorf("sums %s, want the picture's without the secret record, %s", got, exp)
	}
	if body.Picture.Hash != wantBody.Picture.Hash {
		t.Errorf("fingerprint %s, want the picture's without the secret record, %s", body.Picture.Hash, wantBody.Picture.Hash)
	}
	if strings.Contains(string(rec.Body), "3333") || strings.Contains(string(rec.Body), "n-geheim") {
		t.Errorf("the assessment carries the secret record: %s", rec.Body)
	}
}

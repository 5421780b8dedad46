package record

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestValidityOfAPlainDateIsDutch: a plain date is a day in the Netherlands: a document valid
// until 31 December has expired at half past midnight on 1 January there (23:30 UTC), and one
// valid from 1 January is in force then.
func TestValidityOfAPlainDateIsDutch(t *testing.T) {
	now := time.Date(2026, 12, 31, 23, 30, 0, 0, time.UTC)
	for body, want := range map[string]string{
		`{"valid_until":"2026-12-31"}`: Expired,
		`{"valid_from":"2027-01-01"}`:  "",
		`{"valid_from":"2027-01-02"}`:  NotYetValid,
	} {
		if got := Validity(&pb.Record{Body: []byte(body)}, now); got != want {
			t.Errorf("Validity(%s) at %s = %q, want %q", body, now, got, want)
		}
	}
}

func TestValidity(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name       string
		body       string
		validUntil *time.Time
		want       string
	}{
		{"in force, no dates", `{"question":"q","answer":"a"}`, nil, ""},
		{"superseded", `{"superseded_by":"qa-2"}`, nil, Superseded},
		{"superseded wins over expired", `{"superseded_by":"qa-2","valid_until":"2020-01-01"}`, nil, Superseded},
		{"empty superseded_by is in force", `{"superseded_by":""}`, nil, ""},
		{"expired by body date", `{"valid_until":"2026-12-02"}`, nil, Expired},
		{"a plain date runs to the end of its day", `{"valid_until":"2026-12-03"}`, nil, ""},
		{"expired by body time", `{"valid_until":"2026-12-03T11:59:59Z"}`, nil, Expired},
		{"body time with offset still ahead", `{"valid_until":"2026-12-03T13:30:00+01:00"}`, nil, ""},
		{"exactly at valid_until is expired", `{"valid_until":"2026-12-03T12:00:00Z"}`, nil, Expired},
		{"expired by record valid_until", `{}`, ptr(now.Add(-time.Minute)), Expired},
		{"record valid_until ahead", `{}`, ptr(now.Add(time.Minute)), ""},
		{"not yet valid", `{"valid_from":"2026-12-04"}`, nil, NotYetValid},
		{"valid from today", `{"valid_from":"2026-12-03"}`, nil, ""},
		{"expired wins over not yet valid", `{"valid_from":"2027-01-01","valid_until":"2026-01-01"}`, nil, Expired},
		{"a date that does not parse is ignored", `{"valid_until":"gisteren"}`, nil, ""},
		{"a body that is not an object", `[1,2]`, nil, ""},
		{"wrong type is ignored", `{"superseded_by":7}`, nil, ""},
		// The exact keys, as the write check and ValidityOfBody read them.
		{"a key in another case is another field", `{"Valid_Until":"2020-01-01","SUPERSEDED_BY":"qa-2"}`, nil, ""},
		{"an escaped key is the key", `{"valid_unti\u006c":"2020-01-01"}`, nil, Expired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &pb.Record{Body: []byte(tc.body)}
			if tc.validUntil != nil {
				r.ValidUntil = timestamppb.New(*tc.validUntil)
			}
			if got := Validity(r, now); got != tc.want {
				t.Fatalf("Validity(%s) = %q, want %q", tc.body, got, tc.want)
			}
			var body map[string]any
			_ = json.Unmarshal([]byte(tc.body), &body)
			if got := ValidityOfBody(body, r, now); got != tc.want {
				t.Fatalf("ValidityOfBody(%s) = %q, want %q", tc.body, got, tc.want)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// TestDocumentKinds checks the document kinds' shared fields: a valid document passes, a bad date,
// language or successor id is refused with the field's path.
func TestDocumentKinds(t *testing.T) {
	ks, err := NewKinds(DemoKinds())
	if err != nil {
		t.Fatal(err)
	}
	ok := map[string]string{
		"qa":       `{"question":"Mag ik werken?","answer":"Ja.","language":"nl","valid_from":"2026-03-01","valid_until":"2027-03-04T00:00:00+01:00","superseded_by":"qa-werk-2"}`,
		"guidance": `{"title":"Handreiking opvang","text":"…","version":"2.1","valid_until":"2027-01-01"}`,
		"permit":   `{"title":"Werken zonder TWV","authority":"SZW","conditions":"Melding bij UWV","permit_needed":false,"applies_to":"ontheemden uit Oekraïne"}`,
	}
	for kind, body := range ok {
		if fe := ks.Get(kind).checkBody(decode(t, body)); fe != nil {
			t.Errorf("%s %s: %v", kind, body, fe)
		}
	}
	bad := []struct{ kind, body, field string }{
		{"qa", `{"question":"q","answer":"a","valid_until":"3 maart"}`, "record.body.valid_until"},
		{"qa", `{"question":"q","answer":"a","language":"Nederlands"}`, "record.body.language"},
		{"guidance", `{"title":"t","text":"x","superseded_by":"-bad"}`, "record.body.superseded_by"},
		{"guidance", `{"title":"t","text":"x","valid_from":"2026-13-01T25:00"}`, "record.body.valid_from"},
		{"permit", `{"title":"t","conditions":"c"}`, "record.body"},
		{"permit", `{"title":"t","authority":"SZW","conditions":"c","permit_needed":"nee"}`, "record.body.permit_needed"},
	}
	for _, tc := range bad {
		fe := ks.Get(tc.kind).checkBody(decode(t, tc.body))
		if fe == nil || fe.Field != tc.field {
			t.Errorf("%s %s: got %v, want an error on %s", tc.kind, tc.body, fe, tc.field)
		}
	}
}

func decode(t *testing.T, body string) any {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

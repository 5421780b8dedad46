package rest

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestRecordJSON holds the API's direct encoder of records to protojson: on random records and
// lists, including strings with escapes and invalid UTF-8, unknown enum numbers and timestamps
// at and past the ends of their range, the API answers the very bytes protojson writes with the
// same options, or protojson's own error.
func TestRecordJSON(t *testing.T) {
	j := newJSONMarshaler()
	if !j.direct {
		t.Fatalf("the encoder does not know every field: Record has %v, the encoder writes %v; ListResponse has %v, the encoder writes %v: teach appendRecord the new fields",
			fieldNames((&pb.Record{}).ProtoReflect().Descriptor()), recordFields, fieldNames((&pb.ListResponse{}).ProtoReflect().Descriptor()), listFields)
	}
	// The other separator, that protojson uses in other builds: the same JSON but for the space.
	other := *j
	other.sep = map[string]string{",": ", ", ", ": ","}[j.sep]
	rng := rand.New(rand.NewPCG(20, 1))
	direct := 0
	check := func(name string, m any, appended []byte, ok bool) {
		t.Helper()
		if ok {
			o, _ := other.Marshal(m)
			var a, b bytes.Buffer
			if err := errors.Join(json.Compact(&a, o), json.Compact(&b, appended)); err != nil || !bytes.Equal(a.Bytes(), b.Bytes()) {
				t.Fatalf("%s with separator %q: %s (%v), want %s", name, other.sep, o, err, appended)
			}
		}
		got, gotErr := j.Marshal(m)
		want, wantErr := j.JSONPb.Marshal(m)
		if !bytes.Equal(got, want) || (gotErr == nil) != (wantErr == nil) || (gotErr != nil && gotErr.Error() != wantErr.Error()) {
			t.Fatalf("%s %v:\n got  %s (%v)\n want %s (%v)", name, m, got, gotErr, want, wantErr)
		}
		if ok {
			direct++
			if !bytes.Equal(appended, want) {
				t.Fatalf("%s %v: encoder wrote\n %s\nprotojson\n %s", name, m, appended, want)
			}
		} else if wantErr == nil {
			t.Fatalf("%s %v: the encoder gave up on what protojson writes: %s", name, m, want)
		}
	}
	for range 3000 {
		r := randomRecord(rng)
		b, ok := j.appendRecord(nil, r)
		check("record", r, b, ok)
	}
	for range 300 {
		l := &pb.ListResponse{NextPageToken: randomString(rng)}
		for range rng.IntN(4) {
			l.Records = append(l.Records, randomRecord(rng))
		}
		b, ok := j.appendList(nil, l)
		check("list", l, b, ok)
	}
	// A nil list and an empty record: fields unset, as a client may still read them.
	b, ok := j.appendRecord(nil, &pb.Record{})
	check("empty record", &pb.Record{}, b, ok)
	if _, err := j.Marshal((*pb.ListResponse)(nil)); err != nil {
		t.Errorf("nil ListResponse: %v", err)
	}
	if direct < 2000 {
		t.Errorf("only %d of the random values went through the direct encoder", direct)
	}
}

func randomRecord(rng *rand.Rand) *pb.Record {
	r := &pb.Record{
		Id: randomString(rng), Origin: randomString(rng), Kind: randomString(rng),
		Crisis: randomString(rng), Region: randomString(rng), Exercise: randomString(rng),
		Classification: pb.Classification(rng.IntN(6) - 1),
		Status:         pb.Status(rng.IntN(5) - 1),
		Tombstone:      rng.IntN(2) == 0,
		UpdatedAt:      randomTimestamp(rng),
		ValidUntil:     randomTimestamp(rng),
	}
	switch rng.IntN(4) {
	case 0:
		r.Version = int64(rng.Uint64())
	case 1:
		r.Version = int64(rng.IntN(1000))
	case 2:
		r.Version = []int64{math.MinInt64, math.MaxInt64, -1}[rng.IntN(3)]
	}
	if n := rng.IntN(5); n > 0 {
		r.Labels = map[string]string{}
		for range n {
			r.Labels[randomString(rng)] = randomString(rng)
		}
	} else if rng.IntN(2) == 0 {
		r.Labels = map[string]string{}
	}
	switch rng.IntN(3) {
	case 0:
		r.Body = []byte(`{"municipality":"Utrecht","beds_free":` + strings.Repeat("7", rng.IntN(40)) + `}`)
	case 1:
		r.Body = make([]byte, rng.IntN(300))
		for i := range r.Body {
			r.Body[i] = byte(rng.Uint32())
		}
	}
	return r
}

// randomString is mostly plain text, and otherwise holds what JSON escapes, multi-byte and
// invalid UTF-8.
func randomString(rng *rand.Rand) string {
	if rng.IntN(3) == 0 {
		return "shelter.capacity-VR09"[:rng.IntN(22)]
	}
	parts := []string{"a", "Z", "9", " ", `"`, `\`, "/", "<", ">", "&", "\x00", "\x01", "\x08",
		"\t", "\n", "\f", "\r", "\x1f", "\x7f", "é", "€", "\u2028", "\u2029", "\ufffd", "🚒",
		"\xff", "\xc3", "\xed\xa0\x80"}
	var b strings.Builder
	for range rng.IntN(12) {
		p := parts[rng.IntN(len(parts))]
		// Invalid UTF-8 in one string of 40, so that most records are whole.
		if !strings.ContainsAny(p, "\xff\xc3\xed") || rng.IntN(40) == 0 {
			b.WriteString(p)
		}
	}
	return b.String()
}

func randomTimestamp(rng *rand.Rand) *timestamppb.Timestamp {
	nanos := []int32{0, 1, 999_999_999, 1_000_000, 120_000_000, 123_456_000, 7, -1, 1_000_000_000}
	secs := []int64{0, 1, -1, minTimestampSeconds, maxTimestampSeconds, minTimestampSeconds - 1,
		maxTimestampSeconds + 1, 1_796_000_000}
	switch rng.IntN(6) {
	case 0:
		return nil
	case 1:
		return &timestamppb.Timestamp{Seconds: secs[rng.IntN(len(secs))], Nanos: nanos[rng.IntN(len(nanos))]}
	default:
		n := nanos[rng.IntN(3)]
		if rng.IntN(2) == 0 {
			n = rng.Int32N(1_000_000_000)
		}
		return &timestamppb.Timestamp{Seconds: rng.Int64N(maxTimestampSeconds-minTimestampSeconds) + minTimestampSeconds, Nanos: n}
	}
}

// TestRecordJSONFields fails when Record or ListResponse gains a field the encoder does not
// write: the API would then answer through protojson, correctly but more slowly.
func TestRecordJSONFields(t *testing.T) {
	if got := fieldNames((&pb.Record{}).ProtoReflect().Descriptor()); !slices.Equal(got, recordFields) {
		t.Errorf("Record has fields %v, the encoder writes %v", got, recordFields)
	}
	if got := fieldNames((&pb.ListResponse{}).ProtoReflect().Descriptor()); !slices.Equal(got, listFields) {
		t.Errorf("ListResponse has fields %v, the encoder writes %v", got, listFields)
	}
}

// benchRecord is the record of BenchmarkUnaryGet (federation/identity/bench), as Get answers it.
func benchRecord() *pb.Record {
	return &pb.Record{
		Id: "mtlsbench-shelter-utrecht", Origin: "vr-utrecht.crisis.test", Kind: "shelter.capacity",
		Crisis: "oekraine", Region: "VR09", Classification: pb.Classification_INTERNAL,
		Labels:    map[string]string{"source": "coa", "municipality": "utrecht"},
		Body:      []byte(`{"municipality":"Utrecht","location":"Sporthal Galgenwaard, Utrecht","beds_total":240,"beds_free":37,"contact_phone":"+31 30 286 0000","notes":"Opvang tot vrijdag; gezinnen met kinderen krijgen voorrang."}`),
		Version:   3,
		UpdatedAt: timestamppb.New(time.Date(2026, 12, 3, 11, 30, 0, 120_000_000, time.UTC)),
	}
}

// BenchmarkRecordJSON compares the direct encoder with protojson on the record of
// BenchmarkUnaryGet; x-protojson is protojson's time ÷ the encoder's.
func BenchmarkRecordJSON(b *testing.B) {
	j := newJSONMarshaler()
	r := benchRecord()
	var direct, proto time.Duration
	for b.Loop() {
		start := time.Now()
		if _, err := j.Marshal(r); err != nil {
			b.Fatal(err)
		}
		mid := time.Now()
		if _, err := j.JSONPb.Marshal(r); err != nil {
			b.Fatal(err)
		}
		direct, proto = direct+mid.Sub(start), proto+time.Since(mid)
	}
	b.ReportMetric(float64(direct)/float64(b.N), "direct-ns")
	b.ReportMetric(float64(proto)/float64(b.N), "protojson-ns")
	b.ReportMetric(float64(proto)/float64(direct), "x-protojson")
}

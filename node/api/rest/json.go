package rest

import (
	"bytes"
	"encoding/base64"
	"slices"
	"strconv"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/node/internal/jsonstr"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// jsonMarshaler is the gateway's JSON: runtime.JSONPb with the options of the API, and a direct
// encoder for the answers that carry records (a Record from Get, a ListResponse from List). Those
// are the API's most frequent and largest answers, and protojson walks them by reflection: the
// encoder writes the same bytes without it. Any value it does not fully know (a string that is
// not valid UTF-8, a timestamp out of range, a nil record in a list) goes to protojson, so that
// the answer and the error are protojson's own. TestRecordJSON holds the two equal.
type jsonMarshaler struct {
	*runtime.JSONPb
	// sep is what protojson puts between two members. It writes ", " instead of "," in some
	// builds, to keep clients from relying on its exact bytes; the encoder follows the build.
	sep string
	// direct is whether the encoder knows every field of Record and ListResponse: a field
	// added to record.proto and not yet to the encoder sends both to protojson.
	direct bool
}

// The fields the encoder writes, in the order of the .proto files.
var (
	recordFields = []string{"id", "origin", "kind", "crisis", "region", "classification", "labels",
		"body", "version", "updated_at", "valid_until", "tombstone", "status", "exercise"}
	listFields = []string{"records", "next_page_token"}
)

// fieldNames lists the fields of md in the order of its .proto file.
func fieldNames(md protoreflect.MessageDescriptor) []string {
	fds := md.Fields()
	names := make([]string, fds.Len())
	for i := range names {
		names[i] = fds.Get(i).TextName()
	}
	return names
}

// newJSONMarshaler returns the API's marshaler: proto field names and every field, populated
// or not (opts), and no unknown field accepted on input.
func newJSONMarshaler() *jsonMarshaler {
	j := &runtime.JSONPb{
		// The proto names (snake_case), as in the OpenAPI description, so that the field an
		// error names ("record.kind") is the field the client sends.
		MarshalOptions: protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true},
		// A misspelt field is refused (400, naming it) rather than silently dropped.
		UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
	}
	sep := ","
	if b, _ := j.MarshalOptions.Marshal(&pb.ListResponse{}); bytes.Contains(b, []byte(", ")) {
		sep = ", "
	}
	direct := slices.Equal(fieldNames((&pb.Record{}).ProtoReflect().Descriptor()), recordFields) &&
		slices.Equal(fieldNames((&pb.ListResponse{}).ProtoReflect().Descriptor()), listFields)
	return &jsonMarshaler{JSONPb: j, sep: sep, direct: direct}
}

// Marshal encodes v as protojson does with the API's options.
func (j *jsonMarshaler) Marshal(v any) ([]byte, error) {
	switch m := v.(type) {
	case *pb.Record:
		if !j.direct {
			break
		}
		if b, ok := j.appendRecord(make([]byte, 0, recordSize(m)), m); ok {
			return b, nil
		}
	case *pb.ListResponse:
		if !j.direct || m == nil {
			break
		}
		size := 64 + len(m.NextPageToken)
		for _, r := range m.Records {
			size += recordSize(r)
		}
		if b, ok := j.appendList(make([]byte, 0, size), m); ok {
			return b, nil
		}
	}
	return j.JSONPb.Marshal(v)
}

// recordSize is about the length of r in JSON, so that one allocation holds it.
func recordSize(r *pb.Record) int {
	if r == nil {
		return 0
	}
	return 320 + len(r.Id) + len(r.Origin) + len(r.Kind) + len(r.Crisis) + len(r.Region) +
		len(r.Exercise) + base64.StdEncoding.EncodedLen(len(r.Body)) + 40*len(r.Labels)
}

func (j *jsonMarshaler) appendList(b []byte, m *pb.ListResponse) ([]byte, bool) {
	b = append(b, `{"records":[`...)
	for i, r := range m.Records {
		if i > 0 {
			b = append(b, j.sep...)
		}
		var ok bool
		if b, ok = j.appendRecord(b, r); !ok {
			return nil, false
		}
	}
	b = append(b, ']')
	b = append(b, j.sep...)
	b = append(b, `"next_page_token":`...)
	b, ok := jsonstr.AppendProtoJSON(b, m.NextPageToken)
	if !ok {
		return nil, false
	}
	return append(b, '}'), true
}

// appendRecord writes r's fields in their order in record.proto, under their proto names, each
// as protojson writes it: 64-bit integers as strings, bytes in standard base64, enums by name
// (by number when unknown), timestamps in RFC 3339 with 0, 3, 6 or 9 fractional digits, an
// unset timestamp as null and map keys sorted.
func (j *jsonMarshaler) appendRecord(b []byte, r *pb.Record) ([]byte, bool) {
	if r == nil {
		return nil, false
	}
	ok := true
	str := func(sep, name, s string) {
		if ok {
			b = append(b, sep...)
			b = append(b, name...)
			b, ok = jsonstr.AppendProtoJSON(b, s)
		}
	}
	b = append(b, '{')
	str("", `"id":`, r.Id)
	str(j.sep, `"origin":`, r.Origin)
	str(j.sep, `"kind":`, r.Kind)
	str(j.sep, `"crisis":`, r.Crisis)
	str(j.sep, `"region":`, r.Region)
	if !ok {
		return nil, false
	}
	b = append(b, j.sep...)
	b = append(b, `"classification":`...)
	b = appendEnum(b, r.Classification)
	b = append(b, j.sep...)
	b = append(b, `"labels":{`...)
	switch len(r.Labels) {
	case 0:
	case 1:
		for k, v := range r.Labels {
			str("", "", k)
			str(":", "", v)
		}
	default:
		var small [8]string
		keys := small[:0]
		for k := range r.Labels {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			if i > 0 {
				b = append(b, j.sep...)
			}
			str("", "", k)
			str(":", "", r.Labels[k])
		}
	}
	if !ok {
		return nil, false
	}
	b = append(b, '}')
	b = append(b, j.sep...)
	b = append(b, `"body":"`...)
	b = base64.StdEncoding.AppendEncode(b, r.Body)
	b = append(b, '"')
	b = append(b, j.sep...)
	b = append(b, `"version":"`...)
	b = strconv.AppendInt(b, r.Version, 10)
	b = append(b, '"')
	b = append(b, j.sep...)
	b = append(b, `"updated_at":`...)
	if b, ok = appendTimestamp(b, r.UpdatedAt); !ok {
		return nil, false
	}
	b = append(b, j.sep...)
	b = append(b, `"valid_until":`...)
	if b, ok = appendTimestamp(b, r.ValidUntil); !ok {
		return nil, false
	}
	b = append(b, j.sep...)
	b = append(b, `"tombstone":`...)
	b = strconv.AppendBool(b, r.Tombstone)
	b = append(b, j.sep...)
	b = append(b, `"status":`...)
	b = appendEnum(b, r.Status)
	str(j.sep, `"exercise":`, r.Exercise)
	if !ok {
		return nil, false
	}
	return append(b, '}'), true
}

// appendEnum writes an enum value by its name, or by its number when it has none, as protojson.
func appendEnum[E interface {
	~int32
	protoreflect.Enum
}](b []byte, e E) []byte {
	if v := e.Descriptor().Values().ByNumber(protoreflect.EnumNumber(e)); v != nil {
		b = append(b, '"')
		b = append(b, v.Name()...)
		return append(b, '"')
	}
	return strconv.AppendInt(b, int64(e), 10)
}

// The range of a google.protobuf.Timestamp that protojson writes: years 1 to 9999.
const (
	minTimestampSeconds = -62135596800
	maxTimestampSeconds = 253402300799
)

// appendTimestamp writes t as protojson does, or null when it is unset; false when t is out of
// the range protojson writes.
func appendTimestamp(b []byte, t *timestamppb.Timestamp) ([]byte, bool) {
	if t == nil {
		return append(b, "null"...), true
	}
	secs, nanos := t.GetSeconds(), t.GetNanos()
	if secs < minTimestampSeconds || secs > maxTimestampSeconds || nanos < 0 || nanos > 999_999_999 {
		return nil, false
	}
	utc := time.Unix(secs, int64(nanos)).UTC()
	year, month, day := utc.Date()
	hour, minute, second := utc.Clock()
	b = append(b, '"')
	b = appendDigits(b, year, 4)
	b = append(b, '-')
	b = appendDigits(b, int(month), 2)
	b = append(b, '-')
	b = appendDigits(b, day, 2)
	b = append(b, 'T')
	b = appendDigits(b, hour, 2)
	b = append(b, ':')
	b = appendDigits(b, minute, 2)
	b = append(b, ':')
	b = appendDigits(b, second, 2)
	if nanos != 0 {
		// 3, 6 or 9 digits: the fewest that hold the nanoseconds.
		digits, frac := 9, nanos
		for range 2 {
			if frac%1000 != 0 {
				break
			}
			digits, frac = digits-3, frac/1000
		}
		b = append(b, '.')
		b = appendDigits(b, int(frac), digits)
	}
	return append(b, `Z"`...), true
}

// appendDigits writes the n last decimal digits of v ≥ 0, with leading zeros.
func appendDigits(b []byte, v, n int) []byte {
	for range n {
		b = append(b, '0')
	}
	for i := len(b) - 1; n > 0; i, n = i-1, n-1 {
		b[i] = byte('0' + v%10)
		v /= 10
	}
	return b
}

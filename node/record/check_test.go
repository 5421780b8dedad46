package record_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/node/record"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

const (
	testOrigin  = "vr-utrecht.crisis.test"
	testMaxBody = 1024
)

// newChecker accepts the demo kinds plus note, a kind without a schema, with bodies up to
// testMaxBody bytes.
func newChecker(t testing.TB) *record.Checker {
	t.Helper()
	kinds, err := record.NewKinds(append(record.DemoKinds(), record.Kind{Name: "note"}))
	if err != nil {
		t.Fatal(err)
	}
	return &record.Checker{Kinds: kinds, Origin: testOrigin, MaxBody: testMaxBody}
}

// valid is a record CheckPut accepts. Each case below changes one thing about it.
func valid() *pb.Record {
	return &pb.Record{
		Id: "shelter-utrecht-1", Kind: "shelter.capacity", Crisis: "oekraine", Region: "VR09",
		Classification: pb.Classification_INTERNAL, Labels: map[string]string{"municipality": "utrecht"},
		Body: []byte(`{"municipality":"Utrecht","beds_total":10,"beds_free":4}`),
	}
}

func with(change func(r *pb.Record)) *pb.Record {
	r := valid()
	change(r)
	return r
}

func body(s string) *pb.Record { return with(func(r *pb.Record) { r.Body = []byte(s) }) }

// overLimit is a JSON object one byte over testMaxBody.
var overLimit = func() string {
	head := `{"municipality":"Utrecht","beds_total":10,"beds_free":4,"notes":"`
	return head + strings.Repeat("x", testMaxBody+1-len(head)-len(`"}`)) + `"}`
}()

type refusal struct {
	name   string
	rec    *pb.Record
	field  string
	code   codes.Code
	reason string // a part of the reason the user reads
}

var refusals = []refusal{
	{"body over the limit", body(overLimit), "record.body", codes.ResourceExhausted, "1025 bytes is over the limit of 1024"},
	{"body over the limit and not JSON", body(strings.Repeat("[", testMaxBody+1)), "record.body", codes.ResourceExhausted, "over the limit"},
	{"unknown kind", with(func(r *pb.Record) { r.Kind = "weather" }), "record.kind", codes.InvalidArgument, `unknown kind "weather"`},
	{"missing kind", with(func(r *pb.Record) { r.Kind = "" }), "record.kind", codes.InvalidArgument, "missing"},
	{"classification out of range", with(func(r *pb.Record) { r.Classification = pb.Classification(9) }), "record.classification", codes.InvalidArgument, "9 is not a classification"},
	{"negative classification", with(func(r *pb.Record) { r.Classification = pb.Classification(-1) }), "record.classification", codes.InvalidArgument, "-1 is not"},
	{"unspecified classification", with(func(r *pb.Record) { r.Classification = pb.Classification_CLASSIFICATION_UNSPECIFIED }), "record.classification", codes.InvalidArgument, "missing: set it to public"},
	{"id starts with a dash", with(func(r *pb.Record) { r.Id = "-shelter" }), "record.id", codes.InvalidArgument, "is not a record id"},
	{"id with a space", with(func(r *pb.Record) { r.Id = "shelter 1" }), "record.id", codes.InvalidArgument, "is not a record id"},
	{"id with a slash", with(func(r *pb.Record) { r.Id = "shelter/1" }), "record.id", codes.InvalidArgument, "is not a record id"},
	{"id of 129 characters", with(func(r *pb.Record) { r.Id = strings.Repeat("a", 129) }), "record.id", codes.InvalidArgument, "is not a record id"},
	{"id not ASCII", with(func(r *pb.Record) { r.Id = "opvang-é" }), "record.id", codes.InvalidArgument, "is not a record id"},
	{"id with a newline", with(func(r *pb.Record) { r.Id = "shelter-1\n" }), "record.id", codes.InvalidArgument, "is not a record id"},
	{"id invalid UTF-8", with(func(r *pb.Record) { r.Id = "shelter-\xff" }), "record.id", codes.InvalidArgument, "invalid UTF-8"},
	{"origin invalid UTF-8", with(func(r *pb.Record) { r.Origin = "\xc3" }), "record.origin", codes.InvalidArgument, "invalid UTF-8"},
	{"kind invalid UTF-8", with(func(r *pb.Record) { r.Kind = "shelter.\xfe" }), "record.kind", codes.InvalidArgument, "invalid UTF-8"},
	{"crisis invalid UTF-8", with(func(r *pb.Record) { r.Crisis = "oekra\xefne" }), "record.crisis", codes.InvalidArgument, "invalid UTF-8"},
	{"region invalid UTF-8", with(func(r *pb.Record) { r.Region = "VR\x80" }), "record.region", codes.InvalidArgument, "invalid UTF-8"},
	{"body invalid UTF-8", body("{\"notes\":\"\xff\"}"), "record.body", codes.InvalidArgument, "invalid UTF-8"},
	{"body of one invalid byte", body("\xff"), "record.body", codes.InvalidArgument, "invalid UTF-8"},
	{"label key invalid UTF-8", with(func(r *pb.Record) { r.Labels = map[string]string{"\xff": "x"} }), "record.labels", codes.InvalidArgument, "invalid UTF-8"},
	// The refusal names the label whose value it is (review 20 L5).
	{"label value invalid UTF-8", with(func(r *pb.Record) { r.Labels = map[string]string{"municipality": "utr\xe9cht"} }), "record.labels.municipality", codes.InvalidArgument, "invalid UTF-8"},
	{"label key with capitals", with(func(r *pb.Record) { r.Labels = map[string]string{"Municipality": "utrecht"} }), "record.labels.Municipality", codes.InvalidArgument, "is not a label key"},
	{"empty label key", with(func(r *pb.Record) { r.Labels = map[string]string{"": "utrecht"} }), "record.labels.", codes.InvalidArgument, "is not a label key"},
	{"label value over the limit", with(func(r *pb.Record) {
		r.Labels = map[string]string{"municipality": strings.Repeat("u", record.MaxLabelValue+1)}
	}), "record.labels.municipality", codes.InvalidArgument, "257 bytes"},
	{"too many labels", with(func(r *pb.Record) {
		r.Labels = map[string]string{}
		for i := range record.MaxLabels + 1 {
			r.Labels[fmt.Sprintf("l%d", i)] = "x"
		}
	}), "record.labels", codes.InvalidArgument, "65 labels"},
	{"body is a JSON array", body(`[{"municipality":"Utrecht"}]`), "record.body", codes.InvalidArgument, "must be a JSON object"},
	{"body is a JSON string", body(`"Utrecht"`), "record.body", codes.InvalidArgument, "must be a JSON object"},
	{"body is a JSON number", body(`12`), "record.body", codes.InvalidArgument, "must be a JSON object"},
	{"body is null", body(`null`), "record.body", codes.InvalidArgument, "must be a JSON object"},
	{"body is true", body(` true `), "record.body", codes.InvalidArgument, "must be a JSON object"},
	{"body is not JSON", body(`{"beds_free":`), "record.body", codes.InvalidArgument, "not JSON"},
	// A syntax error says where it is (review 20 L5): the second comma is the 30th byte, on line 2.
	{"syntax error at its byte", body("{\"municipality\":\"Utrecht\",\n\"beds_total\":1,,\"beds_free\":2}"), "record.body", codes.InvalidArgument,
		"invalid character ',' looking for beginning of object key string, at byte 43 (line 2, column 16)"},
	{"body is two objects", body(`{} {}`), "record.body", codes.InvalidArgument, "not JSON"},
	// The schema would see the last beds_free, a reader may take the first (-5).
	{"a key twice", body(`{"municipality":"Utrecht","beds_total":10,"beds_free":-5,"beds_free":3}`), "record.body", codes.InvalidArgument, `duplicate key "beds_free"`},
	{"a key twice deep inside", with(func(r *pb.Record) { r.Kind, r.Body = "note", []byte(`{"a":[{"b":1},{"c":{"d":1,"d":2}}]}`) }), "record.body.a.1.c", codes.InvalidArgument, `duplicate key "d"`},
	{"a key twice after many", with(func(r *pb.Record) {
		r.Kind, r.Body = "note", []byte(`{"a":{"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"k10":10,"k11":11,"k12":12,"k13":13,"k14":14,"k15":15,"k16":16,"k17":17,"k18":18,"k2":0}}`)
	}),
		"record.body.a", codes.InvalidArgument, `duplicate key "k2"`},
	{"a key twice escaped", with(func(r *pb.Record) { r.Kind, r.Body = "note", []byte(`{"x":[[{"d":1,"\u0064":2}]]}`) }), "record.body.x.0.0", codes.InvalidArgument, `duplicate key "d"`},
	// Nesting is bounded, before the schema (review 20 M2).
	{"nested deeper than MaxDepth", with(func(r *pb.Record) {
		r.Kind, r.Body = "note", []byte(`{"a":`+strings.Repeat(`[`, record.MaxDepth)+strings.Repeat(`]`, record.MaxDepth)+`}`)
	}), "record.body.a" + strings.Repeat(".0", record.MaxDepth-1), codes.InvalidArgument, "nested deeper than 64 objects and arrays"},
	// Numbers the schema library would turn into a power of ten in full, and those a float64
	// cannot hold, are refused before the schema (review 20 H2, M3).
	{"number with a huge exponent", body(`{"municipality":"Utrecht","beds_total":1e999999,"beds_free":1}`), "record.body.beds_total", codes.InvalidArgument, "1e999999 is out of range"},
	{"number beyond float64", body(`{"municipality":"Utrecht","beds_total":1e400,"beds_free":1}`), "record.body.beds_total", codes.InvalidArgument, "1e400 is out of range"},
	{"negative number beyond float64", body(`{"municipality":"Utrecht","beds_total":1,"beds_free":-1e99999}`), "record.body.beds_free", codes.InvalidArgument, "-1e99999 is out of range"},
	{"number too close to 0", with(func(r *pb.Record) { r.Kind, r.Body = "note", []byte(`{"a":{"b":[1,1e-999999]}}`) }), "record.body.a.b.1", codes.InvalidArgument, "1e-999999 is out of range"},
	{"zero with a huge exponent", with(func(r *pb.Record) { r.Kind, r.Body = "note", []byte(`{"z":0E+000000000000000000000000999999}`) }), "record.body.z", codes.InvalidArgument, "is out of range"},
	{"number of too many digits", with(func(r *pb.Record) { r.Kind, r.Body = "note", []byte(`{"n":0.`+strings.Repeat("1", 40)+`}`) }), "record.body.n", codes.InvalidArgument, "a number of 41 digits is over the limit of 40"},
	{"number deep in an assessment", with(func(r *pb.Record) {
		r.Kind, r.Body = "assessment", []byte(`{"text":"t","development":"d","advice":"a","picture":{"hash":"sha256:`+strings.Repeat("0", 64)+
			`","sources":[{"source":"","newest":"","entries":1,"hash":""},{"source":"","newest":"","entries":1e999999,"hash":""}]}}`)
	}), "record.body.picture.sources.1.entries", codes.InvalidArgument, "out of range"},
	// A field the picture sums holds at most 2^53 in magnitude (review 20 M3).
	{"aggregate over 2^53", body(`{"municipality":"Utrecht","beds_total":10,"beds_free":9007199254740993}`), "record.body.beds_free", codes.InvalidArgument,
		"9007199254740993 is over the limit of 9007199254740992 (2^53) in magnitude of a field the picture sums (kind shelter.capacity)"},
	{"aggregate of 1e308", body(`{"municipality":"Utrecht","beds_total":1e308,"beds_free":1}`), "record.body.beds_total", codes.InvalidArgument, "over the limit of 9007199254740992"},
	// More free places than places: a typing error that would replace a partner's figure in
	// the sums.
	{"more free than in total", body(`{"municipality":"Zeist","beds_total":10,"beds_free":300}`), "record.body.beds_free", codes.InvalidArgument,
		"300 is more than beds_total, 10, which it can never be (kind shelter.capacity): check both figures"},
	// A document replaced by itself would send its reader round in a circle.
	{"superseded by itself", with(func(r *pb.Record) {
		r.Id, r.Kind, r.Body = "qa-1", "qa", []byte(`{"question":"q","answer":"a","superseded_by":"qa-1"}`)
	}),
		"record.body.superseded_by", codes.InvalidArgument, `"qa-1" is this record itself: name the record that replaces it`},
	// Dates Validity reads are dates (review 20 L1), in a document and in any body.
	{"valid_until that does not exist", with(func(r *pb.Record) {
		r.Kind, r.Body = "qa", []byte(`{"question":"q","answer":"a","valid_until":"2026-02-30"}`)
	}),
		"record.body.valid_until", codes.InvalidArgument, `"2026-02-30" is not a date`},
	{"valid_until at hour 24", with(func(r *pb.Record) {
		r.Kind, r.Body = "guidance", []byte(`{"title":"t","text":"x","valid_until":"2026-12-31T24:00:00Z"}`)
	}),
		"record.body.valid_until", codes.InvalidArgument, "is not a date"},
	{"valid_from with an offset of 99 hours", with(func(r *pb.Record) {
		r.Kind, r.Body = "permit", []byte(`{"title":"t","authority":"a","conditions":"c","valid_from":"2026-06-01T12:00:00+99:00"}`)
	}),
		"record.body.valid_from", codes.InvalidArgument, "is not a date"},
	{"valid_from of month 13 without a schema", with(func(r *pb.Record) { r.Kind, r.Body = "note", []byte(`{"valid_from":"2026-13-01"}`) }),
		"record.body.valid_from", codes.InvalidArgument, "is not a date"},
	{"body has a byte order mark", body("\ufeff{}"), "record.body", codes.InvalidArgument, "not JSON"},
	{"body is a non-breaking space", with(func(r *pb.Record) { r.Kind, r.Body = "note", []byte("\u00a0") }), "record.body", codes.InvalidArgument, "not JSON"},
	{"body is a next-line character", with(func(r *pb.Record) { r.Kind, r.Body = "note", []byte("\u0085") }), "record.body", codes.InvalidArgument, "not JSON"},
	{"schema: negative beds_free", body(`{"municipality":"Utrecht","beds_total":10,"beds_free":-1}`), "record.body.beds_free", codes.InvalidArgument, "minimum: got -1, want 0 (kind shelter.capacity)"},
	{"schema: beds_total not an integer", body(`{"municipality":"Utrecht","beds_total":"ten","beds_free":4}`), "record.body.beds_total", codes.InvalidArgument, "got string, want integer"},
	{"schema: beds_free a fraction", body(`{"municipality":"Utrecht","beds_total":10,"beds_free":4.5}`), "record.body.beds_free", codes.InvalidArgument, "got number, want integer"},
	{"schema: required field missing", body(`{"beds_total":10,"beds_free":4}`), "record.body", codes.InvalidArgument, "missing property 'municipality'"},
	{"schema: empty body misses required fields", body(``), "record.body", codes.InvalidArgument, "municipality"},
	{"schema: enum", with(func(r *pb.Record) {
		r.Kind, r.Body = "sitrep", []byte(`{"title":"Opvang","summary":"vol","severity":"extreme"}`)
	}), "record.body.severity", codes.InvalidArgument, "sitrep"},
	{"schema: number over maximum", with(func(r *pb.Record) {
		r.Kind, r.Body = "signal", []byte(`{"summary":"drukte bij Ter Apel","confidence":1.5}`)
	}), "record.body.confidence", codes.InvalidArgument, "signal"},
	{"crisis with capitals", with(func(r *pb.Record) { r.Crisis = "Oekraine" }), "record.crisis", codes.InvalidArgument, "is not a crisis name"},
	{"missing crisis", with(func(r *pb.Record) { r.Crisis = "" }), "record.crisis", codes.InvalidArgument, "is not a crisis name"},
	{"region VR26", with(func(r *pb.Record) { r.Region = "VR26" }), "record.region", codes.InvalidArgument, "is not a region"},
	{"region VR00", with(func(r *pb.Record) { r.Region = "VR00" }), "record.region", codes.InvalidArgument, "is not a region"},
	{"region lower case", with(func(r *pb.Record) { r.Region = "vr09" }), "record.region", codes.InvalidArgument, "is not a region"},
	{"missing region", with(func(r *pb.Record) { r.Region = "" }), "record.region", codes.InvalidArgument, "is not a region"},
	{"negative version", with(func(r *pb.Record) { r.Version = -1 }), "record.version", codes.InvalidArgument, "-1 is negative"},
	{"tombstone", with(func(r *pb.Record) { r.Tombstone = true }), "record.tombstone", codes.InvalidArgument, "call Delete"},
	{"origin of another org", with(func(r *pb.Record) { r.Origin = "politie.crisis.test" }), "record.origin", codes.InvalidArgument, `"politie.crisis.test" is not this node's org`},
	// Out of protobuf's range too, in the node's words, with the range to use (review AF, AF7).
	{"valid_until out of range", with(func(r *pb.Record) { r.ValidUntil = &timestamppb.Timestamp{Seconds: 1 << 62} }), "record.valid_until", codes.InvalidArgument,
		"4611686018427387904 seconds since 1970 is outside the times a node can hold: use a time between 1677-09-21T00:12:44Z and 2262-04-11T23:47:16Z"},
	{"valid_until in the year 0", with(func(r *pb.Record) { r.ValidUntil = &timestamppb.Timestamp{Seconds: -62167219200} }), "record.valid_until", codes.InvalidArgument,
		"-62167219200 seconds since 1970 is outside the times a node can hold: use a time between 1677-09-21T00:12:44Z and 2262-04-11T23:47:16Z"},
	{"valid_until in the year 1", with(func(r *pb.Record) { r.ValidUntil = timestamppb.New(time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)) }), "record.valid_until", codes.InvalidArgument,
		"0001-01-01T00:00:00Z is outside the times a node can hold: use a time between 1677-09-21T00:12:44Z and 2262-04-11T23:47:16Z"},
	{"valid_until nanos out of range", with(func(r *pb.Record) { r.ValidUntil = &timestamppb.Timestamp{Seconds: 1, Nanos: -1} }), "record.valid_until", codes.InvalidArgument,
		"nanos -1 is not a fraction of a second: use 0 to 999999999"},
	// As a key with them is (review AF, AF8).
	{"label value with a line break", with(func(r *pb.Record) { r.Labels = map[string]string{"source": "a\nb"} }), "record.labels.source", codes.InvalidArgument,
		"the value holds a control or invisible character (U+000A) at byte 1: write it as plain text on one line"},
	{"label value with NUL", with(func(r *pb.Record) { r.Labels = map[string]string{"source": "Z\x00"} }), "record.labels.source", codes.InvalidArgument, "(U+0000) at byte 1"},
	{"label value with ESC", with(func(r *pb.Record) { r.Labels = map[string]string{"source": "\x1b[31m"} }), "record.labels.source", codes.InvalidArgument, "(U+001B) at byte 0"},
	{"label value with U+202E", with(func(r *pb.Record) { r.Labels = map[string]string{"source": "a\u202eb"} }), "record.labels.source", codes.InvalidArgument, "(U+202E) at byte 1"},
	// The bidi controls, the line and paragraph separators, the tag characters and C1 controls
	// too; not what emoji are made of (TestLabelValues, review AG, AG3).
	{"label value with U+200F", with(func(r *pb.Record) { r.Labels = map[string]string{"source": "a\u200fb"} }), "record.labels.source", codes.InvalidArgument, "(U+200F) at byte 1"},
	{"label value with U+2066", with(func(r *pb.Record) { r.Labels = map[string]string{"source": "\u2066b"} }), "record.labels.source", codes.InvalidArgument, "(U+2066) at byte 0"},
	{"label value with U+2029", with(func(r *pb.Record) { r.Labels = map[string]string{"source": "a\u2029b"} }), "record.labels.source", codes.InvalidArgument, "(U+2029) at byte 1"},
	{"label value with a tag character", with(func(r *pb.Record) { r.Labels = map[string]string{"source": "🏴\U000E0067"} }), "record.labels.source", codes.InvalidArgument, "(U+E0067) at byte 4"},
	{"label value with a C1 control", with(func(r *pb.Record) { r.Labels = map[string]string{"source": "a\u009bb"} }), "record.labels.source", codes.InvalidArgument, "(U+009B) at byte 1"},
	{"missing record", nil, "record", codes.InvalidArgument, "missing"},
}

type acceptance struct {
	name string
	rec  *pb.Record
	want *pb.Record // the record after CheckPut
}

var acceptances = []acceptance{
	{
		name: "body compacted, origin set, updated_at cleared",
		rec: with(func(r *pb.Record) {
			r.Body = []byte("\n {\n  \"municipality\" : \"Utrecht\",\t\"beds_total\": 10,\r\n  \"beds_free\": 0 } \n")
			r.UpdatedAt = timestamppb.New(timestamppb.Now().AsTime())
		}),
		want: with(func(r *pb.Record) {
			r.Origin = testOrigin
			r.Body = []byte(`{"municipality":"Utrecht","beds_total":10,"beds_free":0}`)
		}),
	},
	{
		name: "own origin",
		rec:  with(func(r *pb.Record) { r.Origin = testOrigin }),
		want: with(func(r *pb.Record) { r.Origin = testOrigin }),
	},
	{
		name: "no id: the service makes one",
		rec:  with(func(r *pb.Record) { r.Id = "" }),
		want: with(func(r *pb.Record) { r.Id = ""; r.Origin = testOrigin }),
	},
	{
		name: "id of 128 characters with every allowed sign",
		rec:  with(func(r *pb.Record) { r.Id = "0aZ._:-" + strings.Repeat("x", 121) }),
		want: with(func(r *pb.Record) { r.Id = "0aZ._:-" + strings.Repeat("x", 121); r.Origin = testOrigin }),
	},
	{
		name: "empty body of a kind without schema",
		rec:  with(func(r *pb.Record) { r.Kind, r.Body = "note", nil }),
		want: with(func(r *pb.Record) { r.Kind, r.Body, r.Origin = "note", []byte("{}"), testOrigin }),
	},
	{
		name: "blank body of a kind without schema",
		rec:  with(func(r *pb.Record) { r.Kind, r.Body = "note", []byte(" \t\r\n") }),
		want: with(func(r *pb.Record) { r.Kind, r.Body, r.Origin = "note", []byte("{}"), testOrigin }),
	},
	{
		name: "any object for a kind without schema, unicode kept",
		rec:  with(func(r *pb.Record) { r.Kind, r.Body = "note", []byte(`{ "tekst": "één beeld", "n": [1, 2] }`) }),
		want: with(func(r *pb.Record) {
			r.Kind, r.Body, r.Origin = "note", []byte(`{"tekst":"één beeld","n":[1,2]}`), testOrigin
		}),
	},
	{
		name: "whole country, secret, expected version, valid_until, no labels",
		rec: with(func(r *pb.Record) {
			r.Region, r.Classification, r.Version, r.Labels = "NL", pb.Classification_SECRET, 7, nil
			r.ValidUntil = &timestamppb.Timestamp{Seconds: 1798675200}
		}),
		want: with(func(r *pb.Record) {
			r.Region, r.Classification, r.Version, r.Labels, r.Origin = "NL", pb.Classification_SECRET, 7, nil, testOrigin
			r.ValidUntil = &timestamppb.Timestamp{Seconds: 1798675200}
		}),
	},
	{
		name: "body exactly at the limit",
		rec:  body(overLimit[:len(overLimit)-3] + `"}`),
		want: with(func(r *pb.Record) { r.Body, r.Origin = []byte(overLimit[:len(overLimit)-3]+`"}`), testOrigin }),
	},
	{
		name: "numbers at the bounds",
		rec: with(func(r *pb.Record) {
			r.Kind, r.Body = "note", []byte(`{"big":-1.7976931348623157e308,"small":5e-324,"zero":0e400,"digits":0.`+strings.Repeat("1", 39)+`,"deep":`+
				strings.Repeat(`[`, record.MaxDepth-1)+strings.Repeat(`]`, record.MaxDepth-1)+`}`)
		}),
		want: with(func(r *pb.Record) {
			r.Kind, r.Origin = "note", testOrigin
			r.Body = []byte(`{"big":-1.7976931348623157e308,"small":5e-324,"zero":0e400,"digits":0.` + strings.Repeat("1", 39) + `,"deep":` +
				strings.Repeat(`[`, record.MaxDepth-1) + strings.Repeat(`]`, record.MaxDepth-1) + `}`)
		}),
	},
	{
		name: "aggregate at 2^53, dates that exist",
		rec: with(func(r *pb.Record) {
			r.Body = []byte(`{"municipality":"Utrecht","beds_total":9007199254740992,"beds_free":9.007199254740992e15,"valid_until":"2028-02-29","valid_from":""}`)
		}),
		want: with(func(r *pb.Record) {
			r.Origin = testOrigin
			r.Body = []byte(`{"municipality":"Utrecht","beds_total":9007199254740992,"beds_free":9.007199254740992e15,"valid_until":"2028-02-29","valid_from":""}`)
		}),
	},
	{
		name: "64 labels, value at the limit",
		rec: with(func(r *pb.Record) {
			r.Labels = map[string]string{}
			for i := range record.MaxLabels {
				r.Labels[fmt.Sprintf("l%d", i)] = strings.Repeat("v", record.MaxLabelValue)
			}
		}),
		want: with(func(r *pb.Record) {
			r.Labels = map[string]string{}
			for i := range record.MaxLabels {
				r.Labels[fmt.Sprintf("l%d", i)] = strings.Repeat("v", record.MaxLabelValue)
			}
			r.Origin = testOrigin
		}),
	},
}

func TestCheckPutRefuses(t *testing.T) {
	c := newChecker(t)
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			var before *pb.Record
			if tt.rec != nil {
				before = proto.Clone(tt.rec).(*pb.Record)
			}
			err := c.CheckPut(tt.rec)
			var fe *record.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("CheckPut = %v, want a *FieldError", err)
			}
			if fe.Field != tt.field || fe.Code != tt.code {
				t.Fatalf("CheckPut refused %s with %v (%s), want %s with %v", fe.Field, fe.Code, fe.Reason, tt.field, tt.code)
			}
			if !strings.Contains(fe.Reason, tt.reason) || fe.Reason == "" {
				t.Fatalf("reason %q, want it to say %q", fe.Reason, tt.reason)
			}
			if fe.Error() != tt.field+": "+fe.Reason {
				t.Fatalf("Error() = %q, want field: reason", fe.Error())
			}
			if tt.rec != nil && !proto.Equal(tt.rec, before) {
				t.Fatalf("CheckPut changed a record it refused:\n got %v\nwant %v", tt.rec, before)
			}
		})
	}
}

func TestCheckPutAccepts(t *testing.T) {
	c := newChecker(t)
	for _, tt := range acceptances {
		t.Run(tt.name, func(t *testing.T) {
			r := proto.Clone(tt.rec).(*pb.Record)
			if err := c.CheckPut(r); err != nil {
				t.Fatalf("CheckPut: %v", err)
			}
			if !proto.Equal(r, tt.want) {
				t.Fatalf("after CheckPut:\n got %v\nwant %v", r, tt.want)
			}
			// A checked record passes again unchanged.
			again := proto.Clone(r).(*pb.Record)
			if err := c.CheckPut(again); err != nil || !proto.Equal(again, r) {
				t.Fatalf("second CheckPut = %v, record %v; want nil and unchanged", err, again)
			}
		})
	}
}

// A zero MaxBody means DefaultMaxBody.
func TestCheckPutDefaultMaxBody(t *testing.T) {
	c := newChecker(t)
	c.MaxBody = 0
	notes := func(n int) *pb.Record {
		b, _ := json.Marshal(map[string]any{"municipality": "Utrecht", "beds_total": 1, "beds_free": 1, "notes": strings.Repeat("n", n)})
		return body(string(b))
	}
	if err := c.CheckPut(notes(4 * testMaxBody)); err != nil {
		t.Fatalf("a body of 4 KiB with MaxBody 0: %v, want it accepted", err)
	}
	err := c.CheckPut(notes(record.DefaultMaxBody))
	var fe *record.FieldError
	if !errors.As(err, &fe) || fe.Field != "record.body" || fe.Code != codes.ResourceExhausted {
		t.Fatalf("a body over DefaultMaxBody: %v, want ResourceExhausted on record.body", err)
	}
}

func TestCheckClassification(t *testing.T) {
	for _, tt := range []struct {
		cl       pb.Classification
		optional bool
		ok       bool
	}{
		{pb.Classification_CLASSIFICATION_UNSPECIFIED, true, true},
		{pb.Classification_CLASSIFICATION_UNSPECIFIED, false, false},
		{pb.Classification_PUBLIC, false, true},
		{pb.Classification_SECRET, true, true},
		{pb.Classification(5), true, false},
		{pb.Classification(-3), true, false},
	} {
		err := record.CheckClassification("max_classification", tt.cl, tt.optional)
		var fe *record.FieldError
		switch {
		case tt.ok && err != nil:
			t.Errorf("CheckClassification(%d, optional %v) = %v, want nil", tt.cl, tt.optional, err)
		case !tt.ok && (!errors.As(err, &fe) || fe.Field != "max_classification"):
			t.Errorf("CheckClassification(%d, optional %v) = %v, want a FieldError on max_classification", tt.cl, tt.optional, err)
		}
	}
}

func TestNewKindsRefuses(t *testing.T) {
	for _, tt := range []struct {
		name  string
		kinds []record.Kind
		want  string
	}{
		{"bad name", []record.Kind{{Name: "Shelter"}}, `kinds[0].name: "Shelter" is not a kind's name`},
		// The limits of CheckKindName, which a partner's record is held to (review 20 L4).
		{"name over 128 bytes", []record.Kind{{Name: "x"}, {Name: strings.Repeat("a", 129)}}, `kinds[1].name: "aaaa`},
		{"aggregate listed twice", []record.Kind{{Name: "beds", Aggregate: []string{"free", "free"}}}, `kinds[0].aggregate[1] (beds): "free" is listed twice`},
		{"aggregate not top-level", []record.Kind{{Name: "beds", Aggregate: []string{"free", "place.free"}}}, `kinds[0].aggregate[1] (beds): "place.free" is not a top-level body field name`},
		{"aggregate empty", []record.Kind{{Name: "beds", Aggregate: []string{""}}}, `kinds[0].aggregate[0] (beds): "" is not a top-level body field name`},
		{"aggregate not in the schema", []record.Kind{{Name: "beds", Aggregate: []string{"free"},
			Schema: json.RawMessage(`{"type":"object","properties":{"total":{"type":"integer"}}}`)}}, `kinds[0].aggregate[0] (beds): the schema does not declare "free" a number`},
		{"aggregate a string in the schema", []record.Kind{{Name: "beds", Aggregate: []string{"free"},
			Schema: json.RawMessage(`{"type":"object","properties":{"free":{"type":"string"}}}`)}}, `kinds[0].aggregate[0] (beds): the schema does not declare "free" a number`},
		{"aggregate number or string", []record.Kind{{Name: "beds", Aggregate: []string{"free"},
			Schema: json.RawMessage(`{"type":"object","properties":{"free":{"type":["number","string"]}}}`)}}, `kinds[0].aggregate[0] (beds)`},
		{"duplicate", []record.Kind{{Name: "qa"}, {Name: "qa"}}, `kinds[1].name: kind "qa" is declared twice`},
		{"at_most of a field not summed", []record.Kind{{Name: "beds", Aggregate: []string{"free", "total"}, AtMost: [][2]string{{"free", "totaal"}}}}, `kinds[0].at_most[0] (beds): "totaal" is not one of the kind's aggregate fields (free, total)`},
		{"at_most of a field with itself", []record.Kind{{Name: "beds", Aggregate: []string{"free", "total"}, AtMost: [][2]string{{"free", "free"}}}}, `kinds[0].at_most[0] (beds): "free" is compared with itself`},
		{"schema not JSON", []record.Kind{{Name: "x", Schema: json.RawMessage(`{`)}}, "kinds[0].schema (x): not JSON"},
		{"schema does not compile", []record.Kind{{Name: "x", Schema: json.RawMessage(`{"type": 12}`)}}, "kinds[0].schema (x)"},
		{"stale_after no duration", []record.Kind{{Name: "x"}, {Name: "y", StaleAfter: "daily"}}, `kinds[1].stale_after (y): "daily" is not a duration of a minute or more`},
		{"stale_after under a minute", []record.Kind{{Name: "x", StaleAfter: "30s"}}, `kinds[0].stale_after (x): "30s"`},
		{"stale_after negative", []record.Kind{{Name: "x", StaleAfter: "-1h"}}, `kinds[0].stale_after (x): "-1h"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := record.NewKinds(tt.kinds)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("NewKinds = %v, want an error starting %q", err, tt.want)
			}
		})
	}
}

// TestStaleLimit: a kind's stale_after is how long its records count as current on the picture;
// never is never stale; none, or a kind the node does not know, is a day.
func TestStaleLimit(t *testing.T) {
	ks, err := record.NewKinds([]record.Kind{{Name: "beds", StaleAfter: "12h"}, {Name: "doc", StaleAfter: "never"}, {Name: "plain"}})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]time.Duration{"beds": 12 * time.Hour, "doc": record.NeverStale, "plain": 24 * time.Hour, "unknown": 24 * time.Hour} {
		if got := ks.Get(name).StaleLimit(); got != want {
			t.Errorf("%s: StaleLimit() = %s, want %s", name, got, want)
		}
	}
	demo, err := record.NewKinds(record.DemoKinds())
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"qa", "guidance", "permit"} {
		if got := demo.Get(name).StaleLimit(); got != record.NeverStale {
			t.Errorf("demo kind %s: StaleLimit() = %s: a document is current until superseded or expired", name, got)
		}
	}
	// An alert is current while its rule fires, however long ago it was written (review I, F16).
	builtin, err := record.NewKinds(record.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	if got := builtin.Get(record.AlertKind).StaleLimit(); got != record.NeverStale {
		t.Errorf("the alert kind: StaleLimit() = %s: a rule that keeps firing would show its alert STALE", got)
	}
}

func TestRegionName(t *testing.T) {
	for code, want := range map[string]string{"VR01": "Groningen", "VR09": "Utrecht", "VR17": "Rotterdam-Rijnmond", "VR19": "Zeeland", "VR25": "Flevoland",
		"NL": "", "VR00": "", "VR26": "", "VR9": "", "vr09": "", "": ""} {
		if got := record.RegionName(code); got != want {
			t.Errorf("RegionName(%q) = %q, want %q", code, got, want)
		}
	}
}

// TestCheckDuration: a duration out of protobuf's range, or of a Go duration's, is refused in the
// node's words, never the library's (review AF, AF7).
func TestCheckDuration(t *testing.T) {
	for _, tc := range []struct {
		d    *durationpb.Duration
		want string
	}{
		{nil, ""},
		{durationpb.New(time.Hour), ""},
		{durationpb.New(-90 * time.Minute), ""},
		{&durationpb.Duration{Seconds: 1, Nanos: -5}, `overlap: 1 seconds and -5 nanos have opposite signs: give both the sign of the duration, such as "-1.5s" for seconds -1, nanos -500000000`},
		{&durationpb.Duration{Nanos: 2e9}, "overlap: nanos 2000000000 is not a fraction of a second: use -999999999 to 999999999"},
		{&durationpb.Duration{Seconds: 100 * 366 * 86400 * 3}, `overlap: 9486720000 seconds is beyond what a node can hold, some 292 years either way: give a duration in seconds, such as "3600s"`},
		{&durationpb.Duration{Seconds: math.MinInt64}, `overlap: -9223372036854775808 seconds is beyond what a node can hold`},
	} {
		err := record.CheckDuration("overlap", tc.d)
		if got := fmt.Sprint(err); (tc.want == "" && err != nil) || (tc.want != "" && !strings.HasPrefix(got, tc.want)) || strings.Contains(got, "proto") {
			t.Errorf("CheckDuration(%v) = %v, want %q", tc.d, err, tc.want)
		}
	}
}

// TestLabelValues: a label's value may hold tabs and the invisible parts of emoji, as earlier
// releases took (an emoji's presentation selector U+FE0F, a family's joiner U+200D, a skin
// tone), and other invisible characters that change no reading (a zero width space); not what
// makes it read otherwise than it is: a control but tab, a bidi control, a line or paragraph
// separator, a tag character (review AG, AG3). A selector holds values to the same rule.
func TestLabelValues(t *testing.T) {
	c := newChecker(t)
	for _, tc := range []struct{ value, want string }{
		{"⚠️ hoog", ""},
		{"a\tb", ""},
		{"gezin 👨\u200d👩\u200d👧", ""},
		{"👍🏽 ok", ""},
		{"e\u0301 zacht", ""},
		{"a\u00a0b", ""},
		{"a\u200bb", ""},
		{"a\rb", "bron: the value holds a control or invisible character (U+000D) at byte 1: write it as plain text on one line"},
		{"a\x7fb", "bron: the value holds a control or invisible character (U+007F) at byte 1: write it as plain text on one line"},
		{"a\u0085b", "bron: the value holds a control or invisible character (U+0085) at byte 1: write it as plain text on one line"},
		{"a\u061cb", "bron: the value holds a control or invisible character (U+061C) at byte 1: write it as plain text on one line"},
		{"a\u200eb", "bron: the value holds a control or invisible character (U+200E) at byte 1: write it as plain text on one line"},
		{"a\u202ab", "bron: the value holds a control or invisible character (U+202A) at byte 1: write it as plain text on one line"},
		{"a\u2069b", "bron: the value holds a control or invisible character (U+2069) at byte 1: write it as plain text on one line"},
		{"a\u2028b", "bron: the value holds a control or invisible character (U+2028) at byte 1: write it as plain text on one line"},
		{"a\U000E0001b", "bron: the value holds a control or invisible character (U+E0001) at byte 1: write it as plain text on one line"},
		{"a\U000E007Fb", "bron: the value holds a control or invisible character (U+E007F) at byte 1: write it as plain text on one line"},
	} {
		if got := fmt.Sprint(record.CheckLabelSelector("label_selector", map[string]string{"bron": tc.value})); (tc.want == "") != (got == "<nil>") || (tc.want != "" && got != "label_selector."+tc.want) {
			t.Errorf("label value %q: %s, want %q", tc.value, got, tc.want)
		}
		rec := with(func(r *pb.Record) { r.Labels = map[string]string{"bron": tc.value} })
		if got := fmt.Sprint(c.CheckPut(rec)); (tc.want == "") != (got == "<nil>") || (tc.want != "" && got != "record.labels."+tc.want) {
			t.Errorf("Put with label value %q: %s, want %q", tc.value, got, tc.want)
		}
	}
}

// TestCheckText: what a person typed is UTF-8, within its bound, without control or invisible
// characters; the refusal says what to give.
func TestCheckText(t *testing.T) {
	for _, tc := range []struct {
		s, want string
	}{
		{"spiffe://a.test/user/x", ""},
		{"ab\xffcd", "actor: not valid UTF-8: give a SPIFFE ID"},
		{"ab\x00cd", "actor: holds a control or invisible character (U+0000) at byte 2: give a SPIFFE ID"},
		{strings.Repeat("a", 31), "actor: 31 bytes is over the limit of 30: give a SPIFFE ID"},
	} {
		if got := fmt.Sprint(record.CheckText("actor", tc.s, 30, "give a SPIFFE ID")); (tc.want == "") != (got == "<nil>") || (tc.want != "" && got != tc.want) {
			t.Errorf("CheckText(%q) = %s, want %q", tc.s, got, tc.want)
		}
	}
}

package record_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"regexp"
	"testing"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/knooppunt/knooppunt/node/record"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// The documented id shape, written out again so that a change to the package's pattern shows.
var documentedID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)

// fuzzRecord builds the record a fuzz input describes. An empty label key and value mean no
// labels.
func fuzzRecord(id, kind, crisis, region string, class int32, body []byte, labelKey, labelValue string) *pb.Record {
	r := &pb.Record{Id: id, Kind: kind, Crisis: crisis, Region: region, Classification: pb.Classification(class), Body: body}
	if labelKey != "" || labelValue != "" {
		r.Labels = map[string]string{labelKey: labelValue}
	}
	return r
}

func FuzzCheckPut(f *testing.F) {
	for _, list := range [][]*pb.Record{recordsOf(refusals), recordsOfAcceptances()} {
		for _, r := range list {
			if r == nil || len(r.Labels) > 1 || r.Origin != "" || r.Version != 0 || r.Tombstone || r.ValidUntil != nil {
				continue // not expressible in the fuzz inputs
			}
			var k, v string
			for k, v = range r.Labels {
			}
			f.Add(r.Id, r.Kind, r.Crisis, r.Region, int32(r.Classification), r.Body, k, v)
		}
	}
	c := newChecker(f)

	f.Fuzz(func(t *testing.T, id, kind, crisis, region string, class int32, body []byte, labelKey, labelValue string) {
		r := fuzzRecord(id, kind, crisis, region, class, body, labelKey, labelValue)
		before := proto.Clone(r).(*pb.Record)
		err := c.CheckPut(r)
		if err != nil {
			var fe *record.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("CheckPut returned %T %v, want a *FieldError", err, err)
			}
			if fe.Field == "" || fe.Reason == "" {
				t.Fatalf("FieldError without a field or reason: %#v", fe)
			}
			switch fe.Code {
			case codes.InvalidArgument:
			case codes.ResourceExhausted:
				if len(body) <= testMaxBody || fe.Field != "record.body" {
					t.Fatalf("ResourceExhausted on %s for a body of %d bytes", fe.Field, len(body))
				}
			default:
				t.Fatalf("FieldError code %v, want InvalidArgument or ResourceExhausted", fe.Code)
			}
			if !proto.Equal(r, before) {
				t.Fatalf("CheckPut changed a record it refused:\n got %v\nwant %v", r, before)
			}
			return
		}

		if !json.Valid(r.Body) || !utf8.Valid(r.Body) || len(r.Body) == 0 || r.Body[0] != '{' {
			t.Fatalf("accepted body %q is not a UTF-8 JSON object", r.Body)
		}
		var obj map[string]any
		if err := json.Unmarshal(r.Body, &obj); err != nil {
			t.Fatalf("accepted body %q does not decode as an object: %v", r.Body, err)
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, r.Body); err != nil || !bytes.Equal(compact.Bytes(), r.Body) {
			t.Fatalf("accepted body %q is not compacted", r.Body)
		}
		if len(r.Body) > testMaxBody {
			t.Fatalf("accepted body of %d bytes, over the limit", len(r.Body))
		}
		if r.Id != "" && !documentedID.MatchString(r.Id) {
			t.Fatalf("accepted id %q", r.Id)
		}
		for _, s := range []string{r.Id, r.Kind, r.Crisis, r.Region, labelKey, labelValue} {
			if !utf8.ValidString(s) {
				t.Fatalf("accepted invalid UTF-8 %q", s)
			}
		}
		if c.Kinds.Get(r.Kind) == nil {
			t.Fatalf("accepted unknown kind %q", r.Kind)
		}
		if r.Classification < pb.Classification_PUBLIC || r.Classification > pb.Classification_SECRET {
			t.Fatalf("accepted classification %d", r.Classification)
		}
		if r.Origin != testOrigin || r.UpdatedAt != nil {
			t.Fatalf("accepted record has origin %q and updated_at %v, want %q and none", r.Origin, r.UpdatedAt, testOrigin)
		}
		if r.Id != before.Id || r.Kind != before.Kind || r.Crisis != before.Crisis || r.Region != before.Region ||
			r.Classification != before.Classification || len(r.Labels) != len(before.Labels) || r.Labels[labelKey] != before.Labels[labelKey] {
			t.Fatalf("CheckPut changed fields it does not own:\n got %v\nwant %v", r, before)
		}

		again := proto.Clone(r).(*pb.Record)
		if err := c.CheckPut(again); err != nil {
			t.Fatalf("CheckPut of a checked record: %v", err)
		}
		if !proto.Equal(again, r) {
			t.Fatalf("CheckPut is not idempotent:\n got %v\nwant %v", again, r)
		}
	})
}

func recordsOf(cases []refusal) []*pb.Record {
	var out []*pb.Record
	for _, c := range cases {
		out = append(out, c.rec)
	}
	return out
}

func recordsOfAcceptances() []*pb.Record {
	var out []*pb.Record
	for _, c := range acceptances {
		out = append(out, c.rec)
	}
	return out
}

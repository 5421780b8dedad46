package rest

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestNameField: a value of the wrong JSON type is named by its path in the body, however deep,
// after characters of more than one byte and on a later line, with what its field takes.
func TestNameField(t *testing.T) {
	for _, tc := range []struct {
		name string
		msg  proto.Message
		body string
		want string // "" when protojson's own message stands
	}{
		{"a string for a list", &pb.Webhook{}, `{"url":"https://ü.example.org","kinds":"sitrep"}`,
			`kinds: proto: syntax error (line 1:40): unexpected token "sitrep": kinds is a list: send a JSON array, such as ["…"]`},
		{"an object for a list", &pb.Webhook{}, "{\n  \"kinds\": {\"a\": 1}}",
			`kinds: proto: syntax error (line 2:12): unexpected token {: kinds is a list`},
		{"a string for a nested record", &pb.PutBatchRequest{}, `{"records":[{"id":"é1","labels":{"a":"b"}}, "x"]}`,
			`records[1]: proto: syntax error (line 1:45): unexpected token "x": each element of records is an object: send a JSON object, {…}`},
		{"a list for a map, nested", &pb.PutBatchRequest{}, `{"records":[{"id":"r1"},{"id":"r2","labels":["a"]}]}`,
			`records[1].labels: proto: syntax error (line 1:45): unexpected token [: labels is a map: send a JSON object, such as {"key": "…"}`},
		{"after a map's empty key", &pb.Record{}, `{"labels":{"":"v","k":["x"]}}`,
			`labels.k: proto: (line 1:23): invalid value for string field value: [`},
		{"a string for an object", &pb.SearchRequest{}, `{"filter":"oekraine"}`,
			`filter: proto: syntax error (line 1:11): unexpected token "oekraine": filter is an object`},
		{"named by protojson already", &pb.Webhook{}, `{"url":5}`, ""},
		// A key of the request: named with the fields it has (review AF, AF7); one inside an
		// object of it is as protojson says it.
		{"an unknown field", &pb.Webhook{}, `{"kindz":"sitrep"}`, `kindz: Webhook has no field "kindz": use one of id, url, kinds,`},
		{"an unknown field inside", &pb.SearchRequest{}, `{"filter":{"kindz":"sitrep"}}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := protojson.Unmarshal([]byte(tc.body), tc.msg)
			if err == nil {
				t.Fatal("protojson took the body")
			}
			got := nameField([]byte(tc.body), tc.msg.ProtoReflect().Descriptor(), err).Error()
			// protojson puts a non-breaking space after "proto:" in some builds.
			got = strings.ReplaceAll(got, "proto:\u00a0", "proto: ")
			want := tc.want
			if want == "" {
				want = strings.ReplaceAll(err.Error(), "proto:\u00a0", "proto: ")
			}
			if !strings.HasPrefix(got, want) {
				t.Fatalf("got  %s\nwant %s", got, want)
			}
		})
	}
}

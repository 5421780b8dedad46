package record_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/knooppunt/knooppunt/node/record"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestBodyCheckIsLinear: the checks before the schema read a body once (review 20 M2). A body of
// 80,000 keys, near the default limit, took 11 s when each key was compared with every earlier
// one. Sixteen times the keys must cost about sixteen times as long, not 256: the test compares
// the two sizes in one run, the fastest of three each in turns, so that a slow or shared machine
// slows both alike.
func TestBodyCheckIsLinear(t *testing.T) {
	kinds, err := record.NewKinds([]record.Kind{{Name: "note"}})
	if err != nil {
		t.Fatal(err)
	}
	c := &record.Checker{Kinds: kinds, Origin: testOrigin}
	body := func(keys int) *pb.Record {
		var b strings.Builder
		b.WriteString(`{"nested":{`)
		for i := range keys {
			fmt.Fprintf(&b, `"k%06d":0,`, i)
		}
		b.WriteString(`"last":{"k000001":1}},"k000001":[]}`)
		return &pb.Record{Kind: "note", Crisis: "oekraine", Region: "VR09", Classification: pb.Classification_INTERNAL, Body: []byte(b.String())}
	}
	small, large := body(5000), body(80000)
	fastest := [2]time.Duration{time.Hour, time.Hour}
	for range 3 {
		for i, r := range []*pb.Record{small, large} {
			start := time.Now()
			if err := c.CheckPut(r); err != nil {
				t.Fatalf("CheckPut of %d bytes of distinct keys: %v", len(r.Body), err)
			}
			fastest[i] = min(fastest[i], time.Since(start))
		}
	}
	if ratio := float64(fastest[1]) / float64(fastest[0]); ratio > 64 {
		t.Fatalf("16 times the keys took %.0f times as long (%s against %s): the check is not linear", ratio, fastest[1], fastest[0])
	}
}

// TestKindSchemaStaysInConfig: a kind's schema is its declaration alone: one that refers to a
// file (or a URL) is refused at start rather than read from the disk of each replica (review 20
// L2). The drafts' own metaschemas still resolve.
func TestKindSchemaStaysInConfig(t *testing.T) {
	ext := filepath.Join(t.TempDir(), "ext.json")
	if err := os.WriteFile(ext, []byte(`{"type":"object","required":["from_disk"]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, schema := range []string{
		`{"$ref":"file://` + ext + `"}`,
		`{"$schema":"file://` + ext + `"}`,
		`{"type":"object","properties":{"a":{"$ref":"file://` + ext + `"}}}`,
		`{"$ref":"https://example.com/kind.json"}`,
	} {
		_, err := record.NewKinds([]record.Kind{{Name: "x", Schema: []byte(schema)}})
		if err == nil || !strings.HasPrefix(err.Error(), "kinds[0].schema (x): ") || !strings.Contains(err.Error(), "may refer only to its own parts") {
			t.Errorf("NewKinds with schema %s: %v, want it refused", schema, err)
		}
	}
	for _, schema := range []string{
		`{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object"}`,
		`{"$schema":"http://json-schema.org/draft-07/schema#","type":"object"}`,
		`{"$defs":{"n":{"type":"integer"}},"properties":{"n":{"$ref":"#/$defs/n"}}}`,
	} {
		if _, err := record.NewKinds([]record.Kind{{Name: "x", Schema: []byte(schema)}}); err != nil {
			t.Errorf("NewKinds with schema %s: %v", schema, err)
		}
	}
}

// TestKindSchemaFormat: a kind's "format" is asserted (review 20 L6); one the library does not
// know is not checked.
func TestKindSchemaFormat(t *testing.T) {
	kinds, err := record.NewKinds([]record.Kind{{Name: "dated", Schema: []byte(`{"type":"object","properties":{
		"at":{"type":"string","format":"date-time"},"mail":{"type":"string","format":"email"},"code":{"type":"string","format":"x-unknown"}}}`)}})
	if err != nil {
		t.Fatal(err)
	}
	c := &record.Checker{Kinds: kinds, Origin: testOrigin}
	put := func(body string) error {
		return c.CheckPut(&pb.Record{Kind: "dated", Crisis: "oekraine", Region: "VR09", Classification: pb.Classification_INTERNAL, Body: []byte(body)})
	}
	if err := put(`{"at":"2026-12-31T18:00:00+01:00","mail":"lcms@vr-utrecht.nl","code":"anything"}`); err != nil {
		t.Fatalf("a body that keeps its formats: %v", err)
	}
	for body, field := range map[string]string{
		`{"at":"tomorrow-ish"}`:     "record.body.at",
		`{"mail":"not an address"}`: "record.body.mail",
	} {
		if err := put(body); err == nil || !strings.HasPrefix(err.Error(), field+": ") {
			t.Errorf("%s: %v, want a refusal at %s", body, err, field)
		}
	}
}

// TestAggregateThroughARef: an aggregate field may be declared through the kind's own $defs, as
// a schema may refer to its own parts (review21 L3: such a kind stopped the node at start); one
// whose part is not a number is still refused.
func TestAggregateThroughARef(t *testing.T) {
	schema := func(count string) []byte {
		return []byte(`{"type":"object","$defs":{"count":` + count + `},"properties":{"beds_free":{"$ref":"#/$defs/count"}}}`)
	}
	if _, err := record.NewKinds([]record.Kind{{Name: "x", Schema: schema(`{"type":"integer","minimum":0}`), Aggregate: []string{"beds_free"}}}); err != nil {
		t.Errorf("an aggregate declared through $defs: %v", err)
	}
	if _, err := record.NewKinds([]record.Kind{{Name: "x", Schema: schema(`{"type":"string"}`), Aggregate: []string{"beds_free"}}}); err == nil {
		t.Error("an aggregate whose $defs part is a string was taken")
	}
}

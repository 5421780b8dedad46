package federation_test

// Exercises in a federation: records of one mode (actual, or one named exercise) are never read
// in another, at the source or at a recipient, whatever the policies grant; closing an exercise
// retracts its records at every peer and leaves the actual records alone.

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/knooppunt/knooppunt/federation/fedtest"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// modeName is a mode as the model keeps it: "" for actual, else the exercise's name.
type modeName = string

func modeOf(m modeName) *pb.Mode {
	if m == "" {
		return nil
	}
	return fedtest.ExerciseMode(m)
}

// modelPolicy is a policy of the model: which statuses it grants (nil: the document leaves
// statuses out) and which exercises (nil: every exercise's).
type modelPolicy struct {
	statuses  []string
	exercises []string
}

// grants is the reference model's decision, written from the issue, not from the engine: a
// policy grants actual records unless its statuses leave actual out, exercise records only if its
// statuses name exercise and its exercises (when listed) name the record's.
func (p modelPolicy) grants(m modeName) bool {
	if m == "" {
		return p.statuses == nil || slices.Contains(p.statuses, "actual")
	}
	return slices.Contains(p.statuses, "exercise") && (p.exercises == nil || slices.Contains(p.exercises, m))
}

func (p modelPolicy) doc(name, recipient, crisis string) string {
	extra := fmt.Sprintf("when: record.crisis == %q\n", crisis)
	if p.statuses != nil {
		extra += "statuses: [" + strings.Join(p.statuses, ", ") + "]\n"
	}
	if p.exercises != nil {
		extra += "exercises: [" + strings.Join(p.exercises, ", ") + "]\n"
	}
	return policyDoc(name, recipient, "sitrep", "internal", extra)
}

// TestExerciseIsolationProperty draws random mixes of actual and exercise records at a source,
// random policies to a recipient with and without statuses, and reads in every mode at the
// source (List, Picture) and at the recipient (Picture over its cache, Search through a live
// Query), and checks each read against a reference model: a read returns exactly the records of
// its mode that the model says it holds, and never a record of another mode. The recipient has
// ex-1 and ex-2 open, not ex-3: it holds no ex-3 record even where a policy grants one, but a
// live search in ex-3's mode still reaches the source.
func TestExerciseIsolationProperty(t *testing.T) {
	var opts fedtest.Options
	opts.Orgs = 2
	f := fedtest.Start(t, opts)
	a, b := f.Orgs[0], f.Orgs[1]
	exercises := []modeName{"ex-1", "ex-2", "ex-3"}
	for _, e := range exercises {
		a.Exercise(t, e, false)
	}
	openAtB := []modeName{"ex-1", "ex-2"}
	for _, e := range openAtB {
		b.Exercise(t, e, false)
	}
	modes := append([]modeName{""}, exercises...)

	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed>>1))
	statusChoices := [][]string{nil, {"actual"}, {"exercise"}, {"actual", "exercise"}}
	exerciseChoices := [][]string{nil, {"ex-1"}, {"ex-2"}, {"ex-1", "ex-3"}}
	for round := range 20 {
		crisis := fmt.Sprintf("prop%d", round)
		// The records: id → mode.
		recs := map[string]modeName{}
		for i := range 1 + rng.IntN(8) {
			recs[fmt.Sprintf("%s-r%d", crisis, i)] = modes[rng.IntN(len(modes))]
		}
		var pols []modelPolicy
		for range 1 + rng.IntN(3) {
			p := modelPolicy{statuses: statusChoices[rng.IntN(len(statusChoices))]}
			if slices.Contains(p.statuses, "exercise") {
				p.exercises = exerciseChoices[rng.IntN(len(exerciseChoices))]
			}
			pols = append(pols, p)
		}
		for i, p := range pols {
			a.Approve(t, p.doc(fmt.Sprintf("%s-p%d", crisis, i), spiffeOf(b), crisis))
		}
		for id, m := range recs {
			r := fedtest.Sitrep(id, crisis, pb.Classification_INTERNAL, "round "+crisis)
			if m != "" {
				r.Status, r.Exercise = pb.Status_EXERCISE, m
			}
			a.Put(t, r)
		}
		t.Logf("round %d: records %v, policies %+v", round, recs, pols)

		// The model: what each mode holds at the source, what the recipient may have, and what
		// its cache holds.
		own, granted, cached := map[modeName][]string{}, map[modeName][]string{}, map[modeName][]string{}
		for id, m := range recs {
			own[m] = append(own[m], id)
			if slices.ContainsFunc(pols, func(p modelPolicy) bool { return p.grants(m) }) {
				granted[m] = append(granted[m], id)
				if m == "" || slices.Contains(openAtB, m) {
					cached[m] = append(cached[m], id)
				}
			}
		}
		// Reads in every mode, in a random order.
		order := slices.Clone(modes)
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for _, m := range order {
			sorted := func(ids []string) []string { slices.Sort(ids); return ids }
			want := sorted(slices.Clone(own[m]))
			// At the source: List and Picture in the mode.
			resp, err := pb.NewRecordServiceClient(a.Local(t)).List(fedtest.Call(t), &pb.ListRequest{Crisis: crisis, Mode: modeOf(m), PageSize: 1000})
			if err != nil {
				t.Fatal(err)
			}
			if got := idsOfMode(t, "a: List in "+m, resp.Records, m); !slices.Equal(got, want) {
				t.Fatalf("round %d: a lists %v in mode %q, want %v", round, got, m, want)
			}
			if got := pictureIDs(t, a, crisis, m, a.TD.Name()); !slices.Equal(got, want) {
				t.Fatalf("round %d: a's picture in mode %q holds %v, want %v", round, m, got, want)
			}
			// At the recipient: a live search reaches the source in the mode.
			wantGranted := sorted(slices.Clone(granted[m]))
			sr, _ := b.Search(t, &pb.SearchRequest{Filter: &pb.Filter{Crisis: crisis, Mode: modeOf(m)}, TimeoutMs: 5000})
			var hits []*pb.Record
			for _, h := range sr.Hits {
				if h.Record.Origin == a.TD.Name() {
					hits = append(hits, h.Record)
				}
			}
			if got := idsOfMode(t, "b: Search in "+m, hits, m); !slices.Equal(got, wantGranted) {
				t.Fatalf("round %d: b's search in mode %q found %v of a's, want %v", round, m, got, wantGranted)
			}
			// At the recipient: its cache, read through the picture, once the subscriptions
			// have delivered; every read on the way must hold only the mode's records.
			wantCached := sorted(slices.Clone(cached[m]))
			fedtest.Eventually(t, 10*time.Second, fmt.Sprintf("b's picture in mode %q", m), func() (bool, string) {
				got := pictureIDs(t, b, crisis, m, a.TD.Name())
				return slices.Equal(got, wantCached), fmt.Sprintf("b holds %v of a's in mode %q, want %v", got, m, wantCached)
			})
		}
	}
}

// idsOfMode returns the records' ids, sorted, and fails the test if one is of another mode.
func idsOfMode(t *testing.T, what string, recs []*pb.Record, m modeName) []string {
	t.Helper()
	var ids []string
	for _, r := range recs {
		if r.Exercise != m || (m == "") != (r.Status == pb.Status_ACTUAL) {
			t.Fatalf("%s returned %s, a record of status %s, exercise %q", what, r.Id, r.Status, r.Exercise)
		}
		ids = append(ids, r.Id)
	}
	slices.Sort(ids)
	return ids
}

// pictureIDs is what o's picture of crisis in mode m holds of origin's records.
func pictureIDs(t *testing.T, o *fedtest.Org, crisis string, m modeName, origin string) []string {
	t.Helper()
	var recs []*pb.Record
	for _, e := range o.PictureIn(t, crisis, modeOf(m)).Entries {
		if e.Record.Origin == origin {
			recs = append(recs, e.Record)
		}
	}
	return idsOfMode(t, o.Name+": Picture in "+m, recs, m)
}

// TestClosingAnExerciseRetractsAtEveryPeer: a shares actual and exercise records with b and c
// under one policy; closing the exercise at a deletes its records there, and b and c drop their
// copies, while the actual records stay everywhere at their versions. The audit keeps the
// exercise's start, close and disclosures.
func TestClosingAnExerciseRetractsAtEveryPeer(t *testing.T) {
	var opts fedtest.Options
	opts.Orgs = 3
	f := fedtest.Start(t, opts)
	a, b, c := f.Orgs[0], f.Orgs[1], f.Orgs[2]
	for _, o := range f.Orgs {
		o.Exercise(t, "oefening-zeeland", false)
	}
	a.Approve(t, policyDoc("all-modes", "group:all", "sitrep", "internal", "statuses: [actual, exercise]\n"))
	actual := map[string]int64{}
	exercise := map[string]int64{}
	for i := range 3 {
		id := fmt.Sprintf("real-%d", i)
		actual[id] = a.Put(t, fedtest.Sitrep(id, "zee", pb.Classification_INTERNAL, "werkelijk")).Version
		r := fedtest.Sitrep(fmt.Sprintf("oef-%d", i), "zee", pb.Classification_INTERNAL, "oefening")
		r.Status, r.Exercise = pb.Status_EXERCISE, "oefening-zeeland"
		exercise[r.Id] = a.Put(t, r).Version
	}
	mode := fedtest.ExerciseMode("oefening-zeeland")
	heldIn := func(o *fedtest.Org, m *pb.Mode) map[string]int64 {
		out := map[string]int64{}
		for _, e := range o.PictureIn(t, "zee", m).Entries {
			if e.Record.Origin == a.TD.Name() {
				out[e.Record.Id] = e.Record.Version
			}
		}
		return out
	}
	for _, o := range []*fedtest.Org{b, c} {
		fedtest.Eventually(t, 10*time.Second, o.Name+" holds both modes", func() (bool, string) {
			gotA, gotE := heldIn(o, nil), heldIn(o, mode)
			return maps.Equal(gotA, actual) && maps.Equal(gotE, exercise),
				fmt.Sprintf("%s holds actual %s exercise %s", o.Name, fedtest.Describe(gotA), fedtest.Describe(gotE))
		})
	}
	closed := a.Exercise(t, "oefening-zeeland", true)
	if closed.Deleted != 3 {
		t.Fatalf("closing deleted %d records, want 3", closed.Deleted)
	}
	for _, o := range []*fedtest.Org{b, c} {
		fedtest.Eventually(t, 10*time.Second, o.Name+" drops the exercise's records", func() (bool, string) {
			got := heldIn(o, mode)
			return len(got) == 0, fmt.Sprintf("%s still holds %s", o.Name, fedtest.Describe(got))
		})
		if got := heldIn(o, nil); !maps.Equal(got, actual) {
			t.Fatalf("%s's actual records changed with the close: %s, want %s", o.Name, fedtest.Describe(got), fedtest.Describe(actual))
		}
	}
	if got := heldIn(a, mode); len(got) != 0 {
		t.Fatalf("a still holds %s of the closed exercise", fedtest.Describe(got))
	}
	if got := heldIn(a, nil); !maps.Equal(got, actual) {
		t.Fatalf("a's actual records changed with the close: %s", fedtest.Describe(got))
	}
	for _, action := range []string{"exercise.start", "exercise.close"} {
		if n := len(a.Audit(t, action)); n != 1 {
			t.Errorf("a's audit has %d %s entries, want 1", n, action)
		}
	}
	// The disclosures of the exercise's records stay in the audit, and so do their retractions.
	disclosed := map[string]bool{}
	for _, e := range a.Audit(t, "federation.disclose") {
		disclosed[e.Subject] = true
	}
	for id := range exercise {
		if !slices.ContainsFunc(slices.Collect(maps.Keys(disclosed)), func(s string) bool { return strings.Contains(s, id) }) {
			t.Errorf("the disclosure of %s left the audit: %v", id, disclosed)
		}
	}
}

// TestExercisePhaseIsItsOwn: an exercise's phase is kept apart from the actual crisis's, so a
// warm-only policy shares the exercise's records once the exercise is warm, while the actual
// crisis stays cold and its records stay home.
func TestExercisePhaseIsItsOwn(t *testing.T) {
	var opts fedtest.Options
	opts.Orgs = 2
	f := fedtest.Start(t, opts)
	a, b := f.Orgs[0], f.Orgs[1]
	for _, o := range f.Orgs {
		o.Exercise(t, "oef-warm", false)
	}
	a.Approve(t, policyDoc("warm-only", spiffeOf(b), "sitrep", "internal", "statuses: [actual, exercise]\nphases: [warm]\n"))
	a.Put(t, fedtest.Sitrep("real", "warmte", pb.Classification_INTERNAL, "werkelijk"))
	r := fedtest.Sitrep("oef", "warmte", pb.Classification_INTERNAL, "oefening")
	r.Status, r.Exercise = pb.Status_EXERCISE, "oef-warm"
	a.Put(t, r)
	if _, err := pb.NewPhaseServiceClient(a.As(t, a.Officers[0])).Set(fedtest.Call(t), &pb.SetPhaseRequest{Crisis: "warmte", Phase: "warm", Exercise: "oef-warm", Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	fedtest.Eventually(t, 10*time.Second, "b holds the warm exercise's record", func() (bool, string) {
		got := pictureIDs(t, b, "warmte", "oef-warm", a.TD.Name())
		return slices.Equal(got, []string{"oef"}), fmt.Sprintf("b holds %v", got)
	})
	if p := a.PictureIn(t, "warmte", fedtest.ExerciseMode("oef-warm")); p.Phase != "warm" {
		t.Errorf("the exercise's picture is %s, want warm", p.Phase)
	}
	if p := a.Picture(t, "warmte"); p.Phase != "cold" {
		t.Errorf("the actual crisis is %s, want cold: the exercise's phase leaked", p.Phase)
	}
	if got := pictureIDs(t, b, "warmte", "", a.TD.Name()); len(got) != 0 {
		t.Fatalf("b holds actual records %v of a crisis that is cold", got)
	}
}

// TestFederatedModeBadInput: a peer's Query or Subscribe in a mode that is not well formed, or
// in the test or draft mode (whose records never leave a node), is refused naming the field.
func TestFederatedModeBadInput(t *testing.T) {
	var opts fedtest.Options
	opts.Orgs = 2
	f := fedtest.Start(t, opts)
	a, b := f.Orgs[0], f.Orgs[1]
	fc := pb.NewFederationServiceClient(asPeer(t, b, a))
	for _, tc := range []struct {
		mode *pb.Mode
		msg  string
	}{
		{&pb.Mode{Status: pb.Status_TEST}, "filter.mode.status: test records never leave a node: read actual records or an exercise's"},
		{&pb.Mode{Status: pb.Status_DRAFT}, "filter.mode.status: draft records never leave a node: read actual records or an exercise's"},
		{&pb.Mode{Status: pb.Status_EXERCISE}, "filter.mode.exercise: missing: an exercise record names its exercise, such as oefening-2026-12-vr09"},
		{&pb.Mode{Exercise: "x"}, `filter.mode.exercise: "x" is named, but the status is ACTUAL: only an EXERCISE record or read names an exercise`},
	} {
		q, err := fc.Query(fedtest.Call(t), &pb.QueryRequest{Filter: &pb.Filter{Mode: tc.mode}})
		if err == nil {
			_, err = q.Recv()
		}
		if st := status.Convert(err); st.Code() != codes.InvalidArgument || st.Message() != tc.msg {
			t.Errorf("Query in %v: %v, want InvalidArgument %q", tc.mode, err, tc.msg)
		}
		s, err := fc.Subscribe(fedtest.Call(t), &pb.SubscribeRequest{Mode: tc.mode})
		if err == nil {
			_, err = s.Recv()
		}
		want := strings.TrimPrefix(tc.msg, "filter.")
		if st := status.Convert(err); errors.Is(err, io.EOF) || st.Code() != codes.InvalidArgument || st.Message() != want {
			t.Errorf("Subscribe in %v: %v, want InvalidArgument %q", tc.mode, err, want)
		}
	}
}

// TestExercisePartners: a node that started an exercise learns, from the heartbeats on its
// subscription of the exercise, which partners take part: one whose policies may grant it the
// exercise's records and that has not started it says none, then open once it starts it, then
// closed once it closes it. A partner whose policies grant it none says nothing of its exercises.
// A partner of an earlier release, which says neither its part nor its release, is unknown
// (earlier release), and plain unknown again once it is down (review V, V5).
func TestExercisePartners(t *testing.T) {
	f := fedtest.Start(t, fedtest.Options{Orgs: 3})
	a, b, c := f.Orgs[0], f.Orgs[1], f.Orgs[2]
	const name = "oefening-deelname"
	b.Approve(t, "name: b-oefening\npurpose: oefening\nrecipients: ["+spiffeOf(a)+"]\nkinds: [sitrep]\nmax_classification: internal\nstatuses: [exercise]\n")
	a.Exercise(t, name, false)
	part := func(peer string) *pb.ExercisePartner {
		t.Helper()
		resp, err := pb.NewExerciseServiceClient(a.Local(t)).List(fedtest.Call(t), &pb.ListExercisesRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range resp.Exercises {
			if e.Name != name {
				continue
			}
			for _, p := range e.Partners {
				if p.Peer == peer {
					return p
				}
			}
		}
		return &pb.ExercisePartner{State: "not listed"}
	}
	partner := func(o *fedtest.Org) string { return part(o.Name).State }
	for _, want := range []string{"none", "open", "closed"} {
		switch want {
		case "open":
			b.Exercise(t, name, false)
			c.Exercise(t, name, false)
		case "closed":
			b.Exercise(t, name, true)
		}
		fedtest.Eventually(t, 10*time.Second, "a's exercise list says b's state is "+want, func() (bool, string) {
			got := partner(b)
			return got == want, "b is " + got
		})
		if got := part(c.Name); got.State != "unknown" || got.EarlierRelease {
			t.Errorf("c, whose policies grant a nothing, says %v of its part in the exercise, want nothing (unknown), and not of an earlier release", got)
		}
	}

	down := make(chan struct{})
	old := &fakePeer{}
	old.subscribe = func(_ *pb.SubscribeRequest, s grpc.ServerStreamingServer[pb.FeedEvent]) error {
		return fakeHeartbeats(s, 1, down) // no exercise_state
	}
	old.describe = func(*pb.DescribeRequest) (*pb.DescribeResponse, error) {
		return &pb.DescribeResponse{NodeName: "vorige"}, nil // no version
	}
	startFake(t, f, "vorige", old)
	f.AddPeers(t, old.id.Peer(old.addr, "all"))
	fedtest.Eventually(t, 10*time.Second, "a's exercise list says vorige runs an earlier release", func() (bool, string) {
		got := part(old.id.Name)
		return got.State == "unknown" && got.EarlierRelease, fmt.Sprint(got)
	})
	close(down)
	fedtest.Eventually(t, 10*time.Second, "a's exercise list says vorige is unknown, down, not of an earlier release", func() (bool, string) {
		got := part(old.id.Name)
		return got.State == "unknown" && !got.EarlierRelease && got.Error != "", fmt.Sprint(got)
	})
	if got := part(c.Name); got.State != "unknown" || got.EarlierRelease {
		t.Errorf("c says %v, want unknown, not of an earlier release", got)
	}
}

package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"google.golang.org/grpc"

	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// demoExercise is the exercise the demo runs beside the real crisis.
const demoExercise = "oefening-zeeland"

// demoExercisePolicy shares VR Zeeland's exercise sitreps with NCC, and nothing actual.
const demoExercisePolicy = `name: vr19-oefening-to-ncc
purpose: oefening regionaal beeld voor landelijke coördinatie
recipients: [spiffe://ncc.crisis.test]
kinds: [sitrep]
max_classification: internal
statuses: [exercise]
exercises: [` + demoExercise + `]
`

// demoExerciseRecords are VR Zeeland's exercise sitreps.
func demoExerciseRecords() []*pb.Record {
	mk := func(id, title, summary string) *pb.Record {
		return &pb.Record{Id: id, Kind: "sitrep", Crisis: "oekraine", Region: "VR19", Classification: pb.Classification_INTERNAL,
			Status: pb.Status_EXERCISE, Exercise: demoExercise,
			Body: fmt.Appendf(nil, `{"title":%q,"summary":%q,"severity":"high"}`, title, summary)}
	}
	return []*pb.Record{
		mk("oefening-vr19-1", "OEFENING: opvang Goes vol", "Oefenscenario: opvanglocatie Goes vol, 200 ontheemden onderweg. Demo data."),
		mk("oefening-vr19-2", "OEFENING: uitwijk naar Terneuzen", "Oefenscenario: busvervoer naar Terneuzen geregeld. Demo data."),
	}
}

// runExercise runs the demo's exercise: VR Zeeland and NCC start it, VR Zeeland shares exercise
// sitreps with NCC under a policy for exercise records only, the real picture stays untouched,
// and closing the exercise at VR Zeeland removes its records at NCC.
func runExercise(ctx context.Context, out io.Writer, orgs map[string]*demoOrg) error {
	zeeland, ncc := orgs["vr-zeeland"], orgs["ncc"]
	mode := &pb.Mode{Status: pb.Status_EXERCISE, Exercise: demoExercise}
	fmt.Fprintf(out, "\n=== OEFENING %s beside the real crisis ===\n", demoExercise)
	// The real picture at NCC before the exercise, once VR Zeeland's real sitrep is in it.
	var before []string
	if err := waitFor(ctx, "NCC's real picture to hold VR Zeeland's sitrep", func() (bool, error) {
		p, err := ncc.picture(ctx)
		if err != nil {
			return false, err
		}
		before = pictureKeys(p)
		return slices.Contains(before, "vr-zeeland.crisis.test/sitrep-vr19-1@1"), nil
	}); err != nil {
		return err
	}
	for _, o := range []*demoOrg{zeeland, ncc} {
		if _, err := o.exerciseStep(ctx, "start"); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "  VR Zeeland and NCC start %s (knooppunt exercise start %s)\n", demoExercise, demoExercise)
	if err := zeeland.approve(ctx, out, demoExercisePolicy); err != nil {
		return err
	}
	recs := demoExerciseRecords()
	err := zeeland.withConn(func(conn *grpc.ClientConn) error {
		for _, r := range recs {
			if _, err := pb.NewRecordServiceClient(conn).Put(ctx, &pb.PutRequest{Record: r}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "  VR Zeeland writes %d exercise sitreps (record put --exercise %s)\n", len(recs), demoExercise)
	var exercisePicture *pb.PictureResponse
	if err := waitFor(ctx, "NCC to receive the exercise sitreps", func() (bool, error) {
		p, err := ncc.pictureIn(ctx, mode)
		exercisePicture = p
		return err == nil && len(fromOrigin(p, zeeland.td)) == len(recs), err
	}); err != nil {
		return err
	}
	fmt.Fprintf(out, "\n--- The exercise's picture as seen from NCC (knooppunt picture --exercise %s) ---\n", demoExercise)
	if err := printPicture(out, "table", exercisePicture, mode); err != nil {
		return err
	}
	real, err := ncc.picture(ctx)
	if err != nil {
		return err
	}
	if leaked := exerciseIn(real); len(leaked) > 0 {
		return fmt.Errorf("NCC's real picture shows exercise records %v", leaked)
	}
	fmt.Fprintf(out, "\n  NCC's real picture: %d entries, none of the exercise\n", len(real.Entries))

	closed, err := zeeland.exerciseStep(ctx, "close")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "  VR Zeeland closes %s: %s deleted, retracted at every peer\n", demoExercise, nRecords(closed.Deleted))
	if err := waitFor(ctx, "NCC to drop the exercise's records", func() (bool, error) {
		p, err := ncc.pictureIn(ctx, mode)
		return err == nil && len(fromOrigin(p, zeeland.td)) == 0, err
	}); err != nil {
		return err
	}
	after, err := ncc.picture(ctx)
	if err != nil {
		return err
	}
	unchanged := "unchanged"
	if !slices.Equal(pictureKeys(after), before) {
		unchanged = "changed by other sources meanwhile, and still without exercise records"
	}
	if leaked := exerciseIn(after); len(leaked) > 0 {
		return fmt.Errorf("NCC's real picture shows exercise records %v", leaked)
	}
	fmt.Fprintf(out, "  NCC now holds 0 records of %s; its real picture is %s\n", demoExercise, unchanged)
	// Each organisation that took part closes the exercise itself: NCC's stayed open, and its
	// exercise list said to close it there too.
	if _, err := ncc.exerciseStep(ctx, "close"); err != nil {
		return err
	}
	fmt.Fprintf(out, "  NCC closes %s too: every organisation that took part has closed it\n", demoExercise)
	return nil
}

// exerciseStep starts or closes the demo's exercise on the org's node, over its local socket.
func (o *demoOrg) exerciseStep(ctx context.Context, action string) (*pb.ExerciseInfo, error) {
	var info *pb.ExerciseInfo
	err := o.withConn(func(conn *grpc.ClientConn) error {
		c := pb.NewExerciseServiceClient(conn)
		step := c.Start
		if action == "close" {
			step = c.Close
		}
		var err error
		info, err = step(ctx, &pb.ExerciseStepRequest{Name: demoExercise, Reason: "demo"})
		return err
	})
	return info, err
}

// withConn calls fn with a connection to the org's local socket.
func (o *demoOrg) withConn(fn func(*grpc.ClientConn) error) error {
	f := o.local()
	conn, err := f.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := fn(conn); err != nil {
		return fmt.Errorf("%s: %w", o.name, callError(f, err))
	}
	return nil
}

// waitFor polls cond, bounded, until it holds.
func waitFor(ctx context.Context, what string, cond func() (bool, error)) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("waited 30s for %s (last error: %v)", what, err)
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

// pictureKeys are a picture's entries as origin/id@version, sorted.
func pictureKeys(p *pb.PictureResponse) []string {
	var keys []string
	for _, e := range p.Entries {
		keys = append(keys, fmt.Sprintf("%s/%s@%d", e.Record.Origin, e.Record.Id, e.Record.Version))
	}
	slices.Sort(keys)
	return keys
}

func fromOrigin(p *pb.PictureResponse, origin string) []string {
	var ids []string
	for _, e := range p.GetEntries() {
		if e.Record.Origin == origin {
			ids = append(ids, e.Record.Id)
		}
	}
	return ids
}

// exerciseIn lists the entries of a picture that are not actual records.
func exerciseIn(p *pb.PictureResponse) []string {
	var ids []string
	for _, e := range p.Entries {
		if e.Record.Status != pb.Status_ACTUAL {
			ids = append(ids, e.Record.Id)
		}
	}
	return ids
}

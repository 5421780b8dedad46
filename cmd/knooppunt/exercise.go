package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	"github.com/knooppunt/knooppunt/node/api"
	"github.com/knooppunt/knooppunt/node/db"
	"github.com/knooppunt/knooppunt/node/record"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

func newExerciseCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "exercise",
		Short: "Start, list and close exercises (oefeningen)",
		Long: `An exercise keeps its records apart from the actual crisis. Records written with
--exercise NAME belong to that exercise; every read shows them only with --exercise NAME, and a
read without it never shows them. Policies share exercise records only when they say
statuses: [exercise]. Closing an exercise deletes every one of its records on this node; every
peer holding a copy gets a retraction and drops it. The audit entries stay.

Each node that takes part starts the exercise: a node receives a peer's exercise records only
while the exercise is open on it.`,
		Example: `  knooppunt exercise start oefening-zeeland --reason "jaarlijkse oefening"
  knooppunt record put --exercise oefening-zeeland --kind sitrep --crisis oekraine --region VR19 \
      --classification internal --body '{"title":"Oefening: dijkdoorbraak","summary":"Dijk bij Kruiningen doorgebroken."}'
  knooppunt picture --crisis oekraine --exercise oefening-zeeland
  knooppunt exercise list -o json
  knooppunt exercise close oefening-zeeland --reason "oefening afgerond"`,
	}
	cmd.AddCommand(newExerciseListCmd(), newExerciseStepCmd("start"), newExerciseStepCmd("close"))
	return cmd
}

// findExercise is the exercise of that name on this node, open or closed; nil when there is none.
func findExercise(ctx context.Context, conn *grpc.ClientConn, name string) (*pb.ExerciseInfo, error) {
	resp, err := pb.NewExerciseServiceClient(conn).List(ctx, &pb.ListExercisesRequest{Closed: true})
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(resp.Exercises, func(e *pb.ExerciseInfo) bool { return e.Name == name })
	if i < 0 {
		return nil, nil
	}
	return resp.Exercises[i], nil
}

// checkOpenExercise refuses, before anything is written, an --exercise that names no open
// exercise here: otherwise the node refuses each write on its own, in words that do not name the
// flag. A node that cannot list its exercises is left to refuse the writes itself.
func checkOpenExercise(ctx context.Context, conn *grpc.ClientConn, exercise string) error {
	if exercise == "" {
		return nil
	}
	e, err := findExercise(ctx, conn, exercise)
	switch {
	case err != nil:
		return nil
	case e == nil:
		return fmt.Errorf("--exercise: no exercise %q on this node: start it first (knooppunt exercise list shows the open ones)", exercise)
	case e.State != db.ExerciseOpen:
		return fmt.Errorf("--exercise: exercise %q was closed%s: nothing can be written in it any more (knooppunt exercise list shows the open ones)", exercise, closedAt(e))
	}
	return nil
}

// closedAt is " at TIME" for an exercise that says when it was closed.
func closedAt(e *pb.ExerciseInfo) string {
	if e.ClosedAt == nil {
		return ""
	}
	return " at " + stamp(e.ClosedAt.AsTime())
}

// noteUnknownExercise says, for an empty read in the mode of an exercise that this node never
// started (a misspelt --exercise) or that was closed, that there is no such exercise here or when
// it was closed, where the empty answer would read as an exercise in which nobody wrote anything.
// It reports whether it said so.
func noteUnknownExercise(ctx context.Context, w io.Writer, conn *grpc.ClientConn, exercise string) bool {
	if exercise == "" {
		return false
	}
	e, err := findExercise(ctx, conn, exercise)
	switch {
	case err != nil:
		return false
	case e == nil:
		fmt.Fprintf(w, "Note: no exercise %q on this node: check its name (`knooppunt exercise list --all` lists them).\n", exercise)
	case e.State != db.ExerciseOpen:
		fmt.Fprintf(w, "Note: exercise %q was closed%s: its records, and the copies of partners' records of it, were deleted here.\n", exercise, closedAt(e))
	default:
		return false
	}
	return true
}

type exerciseJSON struct {
	Name      string     `json:"name"`
	State     string     `json:"state"`
	StartedBy string     `json:"started_by"`
	StartedAt *time.Time `json:"started_at,omitempty"`
	ClosedBy  string     `json:"closed_by,omitempty"`
	ClosedAt  *time.Time `json:"closed_at,omitempty"`
	Records   int64      `json:"records"`
	Deleted   int64      `json:"deleted,omitempty"`
	// Partners, of an open exercise, says of each peer whether it takes part.
	Partners []exercisePartnerJSON `json:"partners,omitempty"`
}

type exercisePartnerJSON struct {
	Peer  string `json:"peer"`
	State string `json:"state"`
	Error string `json:"error,omitempty"`
	// EarlierRelease, with state unknown, says that the peer answers and runs a release that
	// does not say whether it takes part.
	EarlierRelease bool `json:"earlier_release,omitempty"`
}

// taking is the peer's part as TAKING PART says it: an earlier release's unknown is not that of
// a peer not heard from (review V, V5).
func (p exercisePartnerJSON) taking() string {
	if p.State == db.ExerciseUnknown && p.EarlierRelease {
		return p.Peer + " unknown (earlier release)"
	}
	return p.Peer + " " + p.State
}

func toExerciseJSON(e *pb.ExerciseInfo) exerciseJSON {
	j := exerciseJSON{Name: e.Name, State: e.State, StartedBy: e.StartedBy, ClosedBy: e.ClosedBy, Records: e.Records, Deleted: e.Deleted}
	for _, p := range e.Partners {
		j.Partners = append(j.Partners, exercisePartnerJSON{Peer: p.Peer, State: p.State, Error: p.Error, EarlierRelease: p.EarlierRelease})
	}
	if e.StartedAt != nil {
		t := e.StartedAt.AsTime()
		j.StartedAt = &t
	}
	if e.ClosedAt != nil {
		t := e.ClosedAt.AsTime()
		j.ClosedAt = &t
	}
	return j
}

func newExerciseListCmd() *cobra.Command {
	var (
		f   clientFlags
		all bool
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the open exercises, or all with --all",
		Long: `List the open exercises, or all with --all. For an open exercise, TAKING PART says of each peer
whether it has started the exercise too, as its node tells this one: open (it takes part), none
(it has not started it: it shares nothing of the exercise and receives nothing of it), closed
(it closed it: close it here too), unknown (no answer yet, or its node is down, or its policies
grant you nothing of this exercise), or unknown (earlier release: its node answers, and runs a
release that does not say; ask them whether they take part). Only the replica that leads knows
it: a follower asks the leader, and leaves TAKING PART empty when it cannot reach one.`,
		Example: `  knooppunt exercise list
  knooppunt exercise list --all -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.call(func(conn *grpc.ClientConn) error {
				resp, err := pb.NewExerciseServiceClient(conn).List(cmd.Context(), &pb.ListExercisesRequest{Closed: all})
				if err != nil {
					return err
				}
				if f.output == "json" {
					out := make([]exerciseJSON, len(resp.Exercises))
					for i, e := range resp.Exercises {
						out[i] = toExerciseJSON(e)
					}
					return printJSON(cmd.OutOrStdout(), out)
				}
				w := cmd.OutOrStdout()
				fmt.Fprintln(w, "OEFENING: exercises, apart from the actual crisis")
				tw := newTable(w)
				fmt.Fprintln(tw, "NAME\tSTATE\tRECORDS\tSTARTED BY\tSTARTED AT\tCLOSED AT\tDELETED\tTAKING PART")
				var notes []string
				for _, e := range resp.Exercises {
					j := toExerciseJSON(e)
					closed := ""
					if j.ClosedAt != nil {
						closed = stamp(*j.ClosedAt)
					}
					started := ""
					if j.StartedAt != nil {
						started = stamp(*j.StartedAt)
					}
					var parts, absent, closedBy []string
					for _, p := range j.Partners {
						parts = append(parts, p.taking())
						switch {
						case p.State == db.ExerciseClosed:
							closedBy = append(closedBy, p.Peer)
						case db.TakesNoPart(p.State):
							absent = append(absent, p.Peer)
						}
					}
					fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%d\t%s\n", j.Name, j.State, j.Records, j.StartedBy, started, closed, j.Deleted, strings.Join(parts, ", "))
					if len(absent) > 0 {
						notes = append(notes, fmt.Sprintf("Note: %s does not take part in %s: it shares nothing of it and receives nothing of it; ask them to run knooppunt exercise start %s.", strings.Join(absent, ", "), j.Name, j.Name))
					}
					// A closed exercise cannot be started again under its name: the partner is done
					// with it, not yet to begin.
					if len(closedBy) > 0 {
						notes = append(notes, fmt.Sprintf("Note: %s closed %s: it shares nothing of it and receives nothing of it any more; close it here too (knooppunt exercise close %s).", strings.Join(closedBy, ", "), j.Name, j.Name))
					}
				}
				if err := tw.Flush(); err != nil {
					return err
				}
				if len(resp.Exercises) == 0 {
					// A header alone reads as a listing that broke off.
					none := "No open exercises here (--all lists closed ones too)"
					if all {
						none = "No exercises here"
					}
					fmt.Fprintln(cmd.ErrOrStderr(), none+": knooppunt exercise start NAME starts one, on each node that takes part.")
				}
				for _, n := range notes {
					fmt.Fprintln(w, n)
				}
				// Only the replica that leads subscribes to the peers, and so knows who takes part: a
				// follower asks it, and answers without partners when it cannot reach it.
				unknown := slices.ContainsFunc(resp.Exercises, func(e *pb.ExerciseInfo) bool { return e.State == db.ExerciseOpen && len(e.Partners) == 0 })
				if !unknown {
					return nil
				}
				if st, err := pb.NewStatusServiceClient(conn).Status(cmd.Context(), &pb.StatusRequest{}); err == nil && st.RaftState != "Leader" {
					fmt.Fprintf(w, "Note: TAKING PART is known on the replica that leads, which subscribes to the peers: this one is %s and could not reach it; ask %s.\n", strings.ToLower(st.RaftState), cmp.Or(st.Leader, "the leader (cluster status names it)"))
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "include closed exercises")
	f.register(cmd, true)
	return cmd
}

func newExerciseStepCmd(action string) *cobra.Command {
	var (
		f      clientFlags
		reason string
		yes    bool
	)
	short, example := "Start an exercise: records may then be written in it", `  knooppunt exercise start oefening-2026-12-vr09 --reason "regionale oefening"`
	long := `Start an exercise on this node. From then on records may be written in it with --exercise NAME,
and partners' records of it reach this node while it is open here (from partners that started
it too, under policies that say statuses: [exercise]); exercise list shows which peers take
part. Each node that takes part starts it itself. NAME is 1 to 128 of A-Z a-z 0-9 . _ : -,
starting with a letter or digit; a name used before, open or closed, is refused (ALREADY_EXISTS).
--reason is kept in the audit log (exercise.start). For editors, officers, admins and the local
socket. It prints the exercise started; -o json gives it as exercise list -o json does.`
	if action == "close" {
		short = "Close an exercise: delete every one of its records here and at every peer"
		long = `Close an exercise: every one of its records on this node is deleted, and every partner that
holds a copy gets a retraction and drops it; the copies of partners' records of it go too.
Nothing of the exercise can be read afterwards, and its name cannot be started again: export
what the debriefing needs first. The audit log keeps every step.

It says how many records go and asks before it closes; --yes does not ask (scripts).`
		example = `  knooppunt record list --exercise oefening-2026-12-vr09 --all -o json > oefening.json   # for the debriefing
  knooppunt exercise close oefening-2026-12-vr09 --reason "oefening afgerond"
  knooppunt exercise close oefening-2026-12-vr09 --reason "oefening afgerond" --yes -o json`
	}
	cmd := &cobra.Command{
		Use:     action + " NAME",
		Short:   short,
		Long:    long,
		Example: example,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// Checked here, before a node is asked (close asks first what goes), and refused
			// as the node refuses the request's name: INVALID_ARGUMENT, of field name, said of
			// NAME (review M, M4).
			var bad *record.FieldError
			if err := record.CheckExerciseName("name", args[0]); errors.As(err, &bad) {
				return callError(&f, api.FieldStatus(bad.Code, bad.Field, bad.Reason))
			} else if err != nil {
				return err
			}
			return f.call(func(conn *grpc.ClientConn) error {
				c := pb.NewExerciseServiceClient(conn)
				req := &pb.ExerciseStepRequest{Name: args[0], Reason: reason}
				step := c.Start
				if action == "close" {
					step = c.Close
					if !yes {
						if err := confirmClose(cmd, conn, args[0]); err != nil {
							return err
						}
					}
				}
				e, err := step(cmd.Context(), req)
				if err != nil {
					return err
				}
				if f.output == "json" {
					return printJSON(cmd.OutOrStdout(), toExerciseJSON(e))
				}
				if action == "close" {
					_, err = fmt.Fprintf(cmd.OutOrStdout(), "OEFENING %s closed: %s deleted; peers holding copies get retractions\n", e.Name, nRecords(e.Deleted))
					return err
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "OEFENING %s started: write its records with --exercise %s\n", e.Name, e.Name)
				return err
			})
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the audit log")
	if action == "close" {
		cmd.Flags().BoolVar(&yes, "yes", false, "do not ask before deleting the exercise's records (scripts)")
		cmd.MarkFlagRequired("reason")
	}
	f.register(cmd, true)
	f.fill(map[string]string{"reason": "reason"})
	f.fillArg("NAME", "name")
	return cmd
}

// errCloseNoAnswer is the end of standard input before the question of exercise close.
var errCloseNoAnswer = errors.New("no answer: standard input ended before one was given (a script or a pipe): nothing was closed. Answer at a terminal, or give --yes")

// confirmClose says what closing the exercise deletes, and asks. An exercise that is unknown or
// closed already is left to the close itself to refuse, in its words.
func confirmClose(cmd *cobra.Command, conn *grpc.ClientConn, name string) error {
	e, err := findExercise(cmd.Context(), conn, name)
	if err != nil {
		return err
	}
	if e == nil || e.State != db.ExerciseOpen {
		return nil
	}
	var holders []string
	for _, p := range e.Partners {
		if p.State == "open" {
			holders = append(holders, p.Peer)
		}
	}
	copies := "partners that hold copies drop them"
	if len(holders) > 0 {
		copies = "partners that hold copies drop them (" + strings.Join(holders, ", ") + " take part)"
	}
	question := fmt.Sprintf("Close OEFENING %s: delete its %s on this node, and %s? It cannot be undone. [y/N] ", name, nRecords(e.Records), copies)
	ok, err := confirm(cmd.InOrStdin(), cmd.ErrOrStderr(), question, errCloseNoAnswer)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("not confirmed: %s is still open, and nothing was deleted", name)
	}
	return nil
}

// nRecords is "1 record" or "N records".
func nRecords(n int64) string {
	if n == 1 {
		return "1 record"
	}
	return fmt.Sprintf("%d records", n)
}

// modeFlags select the mode of a read: actual records, unless --exercise names an exercise or
// --status asks for the node's test or draft records.
type modeFlags struct {
	exercise, status string
}

func (m *modeFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&m.exercise, "exercise", "", "read in the mode of this exercise: only its records (default: actual records only)")
	cmd.Flags().StringVar(&m.status, "status", "", "test or draft: read the node's own test or draft records instead")
}

// registerWrite adds the flags for a write: the mode of the record written.
func (m *modeFlags) registerWrite(cmd *cobra.Command) {
	cmd.Flags().StringVar(&m.exercise, "exercise", "", "write a record of this open exercise (default: an actual record)")
	cmd.Flags().StringVar(&m.status, "status", "", "test or draft: write a test or draft record, which never leaves the node")
}

// mode is the mode the flags select: nil for actual.
func (m *modeFlags) mode() (*pb.Mode, error) {
	st, err := record.ParseStatus(m.status)
	if err != nil {
		return nil, fmt.Errorf("--%v", err)
	}
	switch {
	case m.exercise != "" && st != pb.Status_ACTUAL && st != pb.Status_EXERCISE:
		return nil, fmt.Errorf("--exercise and --status %s: choose one mode", m.status)
	case m.exercise != "":
		if err := record.CheckExerciseName("--exercise", m.exercise); err != nil {
			return nil, err
		}
		return &pb.Mode{Status: pb.Status_EXERCISE, Exercise: m.exercise}, nil
	case st == pb.Status_EXERCISE:
		return nil, fmt.Errorf("--status exercise: name the exercise with --exercise NAME instead")
	case st == pb.Status_ACTUAL:
		return nil, nil
	}
	return &pb.Mode{Status: st}, nil
}

// modeBanner is the line above every table of a read that is not of the actual records, so that
// an exercise is never taken for the real crisis: OEFENING for an exercise.
func modeBanner(m *pb.Mode) string {
	switch m.GetStatus() {
	case pb.Status_EXERCISE:
		return "OEFENING " + m.GetExercise() + ": exercise records only, not the actual crisis"
	case pb.Status_TEST:
		return "TEST: test records of this node only, not the actual crisis"
	case pb.Status_DRAFT:
		return "CONCEPT: draft records of this node only, not the actual crisis"
	}
	return ""
}

// newModeTable starts a table of a read in mode m under its banner.
func newModeTable(w io.Writer, m *pb.Mode) *tabwriter.Writer {
	if b := modeBanner(m); b != "" {
		fmt.Fprintln(w, b)
	}
	return newTable(w)
}

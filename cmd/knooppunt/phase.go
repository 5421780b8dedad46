package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	"github.com/knooppunt/knooppunt/node/api/phases"
	"github.com/knooppunt/knooppunt/policy"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

func newPhaseCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "phase",
		Short: "A crisis's phase: cold, lukewarm or warm",
		Long: `Officers set a crisis's phase. Policies limited to phases switch on and off with it, so a
warm-phase policy approved in advance is a prepared break-glass. Every change is audited.`,
	}
	cmd.AddCommand(newPhaseSetCmd(), newPhaseShowCmd())
	return cmd
}

type phaseJSON struct {
	Crisis string     `json:"crisis"`
	Phase  string     `json:"phase"`
	SetBy  string     `json:"set_by,omitempty"`
	SetAt  *time.Time `json:"set_at,omitempty"`
	Reason string     `json:"reason,omitempty"`
	// Exercise is the exercise whose phase this is, empty for the actual crisis.
	Exercise string `json:"exercise,omitempty"`
}

func toPhaseJSON(p *pb.PhaseInfo) phaseJSON {
	j := phaseJSON{Crisis: p.Crisis, Phase: p.Phase, SetBy: p.SetBy, Reason: p.Reason, Exercise: p.Exercise}
	if p.SetAt != nil {
		t := p.SetAt.AsTime()
		j.SetAt = &t
	}
	return j
}

func newPhaseSetCmd() *cobra.Command {
	var (
		f                        clientFlags
		crisis, reason, exercise string
	)
	cmd := &cobra.Command{
		Use:   "set cold|lukewarm|warm",
		Short: "Set a crisis's phase (officers, in person)",
		Long: `Set a crisis's phase. With --exercise the phase is the exercise's own: the exercise can be
warm while the actual crisis stays cold.`,
		Example: `  knooppunt phase set --crisis oekraine warm --reason "instroom verdubbeld"
  knooppunt phase set --crisis oekraine --exercise oefening-zeeland warm --reason "oefening fase 2"`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.call(func(conn *grpc.ClientConn) error {
				crises, err := knownCrises(cmd.Context(), conn, exercise)
				if err != nil {
					return err
				}
				known, from := false, policy.PhaseCold
				for _, c := range crises {
					if c.Crisis == crisis {
						known, from = true, c.Phase
					}
				}
				p, err := pb.NewPhaseServiceClient(conn).Set(cmd.Context(), &pb.SetPhaseRequest{Crisis: crisis, Phase: args[0], Reason: reason, Exercise: exercise})
				if err != nil {
					return err
				}
				// The break-glass this opened or closed: policies limited to phases that cover a
				// record of this crisis. A crisis no record names opens none.
				var switched []string
				if sw, err := phases.Switches(cmd.Context(), conn, crisis, exercise, from, p.Phase); err == nil && known && f.output != "json" {
					if len(sw.Start) > 0 {
						switched = append(switched, fmt.Sprintf("Starts sharing records of %s (policies for %s): %s", crisis, p.Phase, strings.Join(sw.Start, ", ")))
					}
					if len(sw.Stop) > 0 {
						line := fmt.Sprintf("Stops sharing records of %s (policies for %s): %s", crisis, from, strings.Join(sw.Stop, ", "))
						if len(sw.StillFor) > 0 {
							line += fmt.Sprintf("; they still share records of the crises that are %s: %s", from, strings.Join(sw.StillFor, ", "))
						}
						switched = append(switched, line)
					}
				}
				if !known && exercise != "" {
					// An exercise sets its phases before its records are written: a crisis the
					// actual records name is spelt right (review AE, AE5).
					if known, err = knownCrisis(cmd.Context(), conn, crisis, ""); err != nil {
						return err
					}
				}
				if !known {
					// A misspelt crisis gets a phase that no policy of the real one sees.
					fmt.Fprintf(cmd.ErrOrStderr(), "Note: no record here or from a partner names crisis %q, and its phase was never set before: check the spelling (`knooppunt phase show` lists the crises there are records of).\n", crisis)
				}
				if f.output == "json" {
					return printJSON(cmd.OutOrStdout(), toPhaseJSON(p))
				}
				if p.Exercise != "" {
					fmt.Fprintf(cmd.OutOrStdout(), "OEFENING %s: ", p.Exercise)
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s is %s (set by %s)\n", p.Crisis, p.Phase, p.SetBy)
				for _, line := range switched {
					fmt.Fprintln(cmd.OutOrStdout(), line)
				}
				return err
			})
		},
	}
	cmd.Flags().StringVar(&crisis, "crisis", "", "the crisis (required)")
	cmd.Flags().StringVar(&reason, "reason", "", "why the phase changes, for the audit log (required)")
	cmd.Flags().StringVar(&exercise, "exercise", "", "set the phase within this open exercise only")
	cmd.MarkFlagRequired("crisis")
	cmd.MarkFlagRequired("reason")
	f.register(cmd, true)
	f.fill(map[string]string{"crisis": "crisis", "reason": "reason", "exercise": "exercise"})
	return cmd
}

// knownCrises are the crises of the mode that had their phase set or that records name, each
// with its phase.
func knownCrises(ctx context.Context, conn *grpc.ClientConn, exercise string) ([]*pb.PhaseInfo, error) {
	resp, err := pb.NewPhaseServiceClient(conn).List(ctx, &pb.ListPhasesRequest{Exercise: exercise, Known: true})
	if err != nil {
		return nil, err
	}
	return resp.Phases, nil
}

// knownCrisis reports whether the crisis is one of knownCrises.
func knownCrisis(ctx context.Context, conn *grpc.ClientConn, crisis, exercise string) (bool, error) {
	known, err := knownCrises(ctx, conn, exercise)
	return slices.ContainsFunc(known, func(p *pb.PhaseInfo) bool { return p.Crisis == crisis }), err
}

func newPhaseShowCmd() *cobra.Command {
	var (
		f                clientFlags
		crisis, exercise string
	)
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Show the phase of one crisis, or of every crisis known here",
		Long: `Show the phase of one crisis, or of every crisis that has a phase set or that the node's own
records or its partners' records name (cold, with no SET BY, when never set).`,
		Example: `  knooppunt phase show --crisis oekraine
  knooppunt phase show --exercise oefening-zeeland`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.call(func(conn *grpc.ClientConn) error {
				resp, err := pb.NewPhaseServiceClient(conn).List(cmd.Context(), &pb.ListPhasesRequest{Crisis: crisis, Exercise: exercise, Known: true})
				if err != nil {
					return err
				}
				if f.output == "json" {
					out := make([]phaseJSON, len(resp.Phases))
					for i, p := range resp.Phases {
						out[i] = toPhaseJSON(p)
					}
					return printJSON(cmd.OutOrStdout(), out)
				}
				var mode *pb.Mode
				if exercise != "" {
					mode = &pb.Mode{Status: pb.Status_EXERCISE, Exercise: exercise}
				}
				tw := newModeTable(cmd.OutOrStdout(), mode)
				fmt.Fprintln(tw, "CRISIS\tPHASE\tSET BY\tSET AT\tREASON")
				for _, p := range resp.Phases {
					at := ""
					if p.SetAt != nil {
						at = stamp(p.SetAt.AsTime())
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.Crisis, p.Phase, p.SetBy, at, p.Reason)
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().StringVar(&crisis, "crisis", "", "only this crisis")
	cmd.Flags().StringVar(&exercise, "exercise", "", "the phases of this exercise (default: the actual crisis)")
	f.register(cmd, true)
	return cmd
}

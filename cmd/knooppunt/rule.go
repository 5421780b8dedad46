package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/node/api/rules"
	"github.com/knooppunt/knooppunt/node/config"
	"github.com/knooppunt/knooppunt/node/record"
	"github.com/knooppunt/knooppunt/node/warn"
	"github.com/knooppunt/knooppunt/policy"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

func newRuleCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rule",
		Short: "Early-warning rules: lint, dry run against the history, apply, list, show, delete",
		Long: `An early-warning rule is a YAML document with a CEL condition over the history of the
picture, per region:

  name: zeeland-beds-low
  description: Free shelter beds below 5% of the total
  severity: severe                # minor, moderate, severe or extreme
  crisis: oekraine                # omitted: every crisis
  regions: [VR19]                 # omitted: every region with records of the kinds it reads
  when: ratio(sum("shelter.capacity", "beds_free"), sum("shelter.capacity", "beds_total")) < 0.05
  clear: ratio(sum("shelter.capacity", "beds_free"), sum("shelter.capacity", "beds_total")) > 0.08
  for: 1h                         # when must hold this long before the rule fires

A condition sees sum(kind, field) (an aggregate field summed over the kind's records in the
region), count(kind, duration("6h")) (records that appeared in the region within the window),
delta(x, duration("24h")) (x now minus x at the start of the window), ratio(a, b), now and
region. See "Early warning" in docs/operator.md.`,
	}
	cmd.AddCommand(newRuleLintCmd(), newRuleTestCmd(), newRuleApplyCmd(), newRuleListCmd(), newRuleShowCmd(), newRuleDeleteCmd())
	return cmd
}

type ruleJSON struct {
	Name        string    `json:"name"`
	Version     int64     `json:"version"`
	Description string    `json:"description,omitempty"`
	Severity    string    `json:"severity"`
	AppliedBy   string    `json:"applied_by"`
	AppliedAt   time.Time `json:"applied_at"`
	Source      string    `json:"source,omitempty"`
}

func toRuleJSON(r *pb.RuleInfo, withSource bool) ruleJSON {
	j := ruleJSON{Name: r.Name, Version: r.Version, Severity: r.Severity, AppliedBy: r.AppliedBy, AppliedAt: r.AppliedAt.AsTime()}
	// The description as the rule's document gives it; a rule that does not read gets none.
	var doc struct {
		Description string `yaml:"description"`
	}
	if yaml.Unmarshal(r.Source, &doc) == nil {
		j.Description = doc.Description
	}
	if withSource {
		j.Source = string(r.Source)
	}
	return j
}

// noteRuleCrisis says of a rule whose crisis no record here or from a partner names (a typo, such
// as oekriane) that it cannot fire, where "ok" or 0 episodes would read as a rule that merely has
// not fired yet.
func noteRuleCrisis(cmd *cobra.Command, conn *grpc.ClientConn, src []byte) {
	if note := ruleCrisisNote(cmd.Context(), conn, src); note != "" {
		fmt.Fprintf(cmd.ErrOrStderr(), "Note: %s.\n", note)
	}
}

// ruleCrisisNote says, when the rule's crisis is one that no record here or from a partner
// names, that it cannot fire yet; "" otherwise, or when the node cannot tell.
func ruleCrisisNote(ctx context.Context, conn *grpc.ClientConn, src []byte) string {
	var doc struct {
		Crisis string `yaml:"crisis"`
	}
	if yaml.Unmarshal(src, &doc) != nil || doc.Crisis == "" {
		return ""
	}
	if known, err := knownCrisis(ctx, conn, doc.Crisis, ""); err == nil && !known {
		return fmt.Sprintf("no record here or from a partner names crisis %q: the rule cannot fire until one does; check the spelling (`knooppunt phase show` lists the crises there are records of)", doc.Crisis)
	}
	return ""
}

func newRuleApplyCmd() *cobra.Command {
	var (
		f      clientFlags
		reason string
	)
	cmd := &cobra.Command{
		Use:   "apply FILE",
		Short: "Store a rule, or a new version of it (editors and officers, in person)",
		Long: `Store a rule on every replica, through Raft, attributed to your SPIFFE ID. A rule with the
name of a stored one replaces it as its next version; a file that is the stored version byte for
byte changes nothing, and the version stands. A rule that does not lint is refused and nothing is
stored. The step is audited (rule.apply).`,
		Example: `  knooppunt rule apply zeeland-beds-low.yaml --reason "5% threshold agreed with LCVS" \
      --node node.example:7443 --svid-cert me.crt --svid-key me.key --bundle bundle.pem`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			src, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			return f.call(func(conn *grpc.ClientConn) error {
				var trailer metadata.MD
				r, err := pb.NewRuleServiceClient(conn).Apply(cmd.Context(), &pb.ApplyRuleRequest{Source: src, Reason: reason}, grpc.Trailer(&trailer))
				if err != nil {
					return err
				}
				if f.output == "json" {
					return printJSON(cmd.OutOrStdout(), toRuleJSON(r, false))
				}
				if len(trailer.Get(rules.UnchangedTrailer)) > 0 {
					_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s unchanged: version %d stands (applied by %s); the file is that version byte for byte, so nothing was stored or audited\n", r.Name, r.Version, r.AppliedBy)
					return err
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s version %d applied by %s\n", r.Name, r.Version, r.AppliedBy)
				return err
			})
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the audit log")
	f.register(cmd, true)
	return cmd
}

func newRuleListCmd() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the stored rules",
		Long: `List the stored early-warning rules by name, each at its current version: NAME, VERSION,
SEVERITY, APPLIED BY (who applied that version), APPLIED AT and DESCRIPTION, from the rule's
document, cut at 60 characters. The leader evaluates every stored rule (rules.every), over the
actual records and in every open exercise. For readers, editors, officers, admins and the local
socket. -o json gives name, version, description, severity, applied_by and applied_at; rule show
gives one rule's document.`,
		Example: `  knooppunt rule list -o json`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.call(func(conn *grpc.ClientConn) error {
				resp, err := pb.NewRuleServiceClient(conn).List(cmd.Context(), &pb.ListRulesRequest{})
				if err != nil {
					return err
				}
				if f.output == "json" {
					out := []ruleJSON{}
					for _, r := range resp.Rules {
						out = append(out, toRuleJSON(r, false))
					}
					return printJSON(cmd.OutOrStdout(), out)
				}
				tw := newTable(cmd.OutOrStdout())
				fmt.Fprintln(tw, "NAME\tVERSION\tSEVERITY\tAPPLIED BY\tAPPLIED AT\tDESCRIPTION")
				for _, r := range resp.Rules {
					fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", r.Name, r.Version, r.Severity, r.AppliedBy, stamp(r.AppliedAt.AsTime()),
						truncate(toRuleJSON(r, false).Description, 60))
				}
				return tw.Flush()
			})
		},
	}
	f.register(cmd, true)
	return cmd
}

func newRuleShowCmd() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "show NAME",
		Short: "Show a stored rule and its document",
		Long: `Show a stored rule at its current version: a first line "# NAME version N, SEVERITY, applied by
ID at TIME", then its document as it was applied. To change the rule, edit the document and
apply it again (rule apply): it becomes the next version. For readers, editors, officers, admins
and the local socket. -o json gives name, version, description, severity, applied_by and
applied_at, and the document in source.`,
		Example: `  knooppunt rule show zeeland-beds-low`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.call(func(conn *grpc.ClientConn) error {
				r, err := pb.NewRuleServiceClient(conn).Get(cmd.Context(), &pb.GetRuleRequest{Name: args[0]})
				if err != nil {
					return err
				}
				if f.output == "json" {
					return printJSON(cmd.OutOrStdout(), toRuleJSON(r, true))
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "# %s version %d, %s, applied by %s at %s\n%s", r.Name, r.Version, r.Severity,
					r.AppliedBy, stamp(r.AppliedAt.AsTime()), r.Source)
				return err
			})
		},
	}
	f.register(cmd, true)
	f.fillArg("NAME", "name")
	return cmd
}

func newRuleDeleteCmd() *cobra.Command {
	var (
		f      clientFlags
		reason string
	)
	cmd := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a stored rule (editors and officers, in person)",
		Long: `Delete a stored rule. It is no longer evaluated, and at the next evaluation (rules.every) the
leader resolves its alerts that are open, for partners too, with a note that says who deleted the
rule, when and why (withdrawn, and the CAP note). To keep its alerts firing, apply a new version
of the rule instead: a new version takes over the open alerts.`,
		Example: `  knooppunt rule delete zeeland-beds-low --reason "replaced by zeeland-beds-low-v2"`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.call(func(conn *grpc.ClientConn) error {
				r, err := pb.NewRuleServiceClient(conn).Delete(cmd.Context(), &pb.DeleteRuleRequest{Name: args[0], Reason: reason})
				if err != nil {
					return err
				}
				if f.output == "json" {
					return printJSON(cmd.OutOrStdout(), toRuleJSON(r, false))
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s deleted (was version %d): its open alerts are resolved at the next evaluation\n", r.Name, r.Version)
				return err
			})
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the audit log")
	cmd.MarkFlagRequired("reason")
	f.register(cmd, true)
	f.fillArg("NAME", "name")
	return cmd
}

func newRuleLintCmd() *cobra.Command {
	var (
		f          clientFlags
		configFile string
	)
	cmd := &cobra.Command{
		Use:   "lint FILE",
		Short: "Check a rule document",
		Long: `Check a rule document: YAML, schema, and the CEL of its conditions (syntax, kinds and aggregate
fields, types, cost). Offline it checks kinds against the config file's (--config), or the demo
kinds; with --node (on the command line: KNOOPPUNT_NODE alone keeps it offline) against that
node's, and it notes a crisis: that no record there or from a
partner names (a typo: the rule could never fire). Every problem is printed as FILE:LINE:COLUMN:
field: message, the position inside the condition for a CEL problem; the exit code is 1 if there
is any, and 2 when it could not check (a file it cannot read, a node it cannot reach, a wrong
flag). -o json prints {"file", "ok", "problems", "warnings"} on standard output, each problem with
line, column, field and message (the note of a crisis no record names is a warning at field
crisis), for a pipeline that checks rules.`,
		Example: `  knooppunt rule lint zeeland-beds-low.yaml
  knooppunt rule lint zeeland-beds-low.yaml --config /etc/knooppunt/node.yaml
  knooppunt rule lint zeeland-beds-low.yaml --node unix:///var/lib/knooppunt/knooppunt.sock
  knooppunt rule lint zeeland-beds-low.yaml -o json | jq -e .ok`,
		Annotations: map[string]string{errorExitAnnotation: "2"},
		Args:        cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.checkOutput(); err != nil {
				return err
			}
			src, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			var probs, notes []policy.Problem
			if cmd.Flags().Changed("node") {
				err := f.call(func(conn *grpc.ClientConn) error {
					resp, err := pb.NewRuleServiceClient(conn).Lint(cmd.Context(), &pb.LintRequest{Source: src})
					if err != nil {
						return err
					}
					probs = fromLintProblems(resp.Problems)
					if len(probs) > 0 {
						return nil
					}
					if note := ruleCrisisNote(cmd.Context(), conn, src); note != "" {
						notes = append(notes, policy.Problem{Field: "crisis", Message: note})
					}
					return nil
				})
				if err != nil {
					return err
				}
			} else {
				var kinds *record.Kinds
				if configFile != "" {
					cfg, err := config.Load(configFile)
					if err != nil {
						return err
					}
					if kinds, err = cfg.KindSet(); err != nil {
						return err
					}
				}
				if _, err := warn.Lint(src, kinds); err != nil {
					var ps policy.Problems
					if !errors.As(err, &ps) {
						return err
					}
					probs = ps
				}
			}
			if f.output == "json" {
				return printLintJSON(cmd.OutOrStdout(), args[0], probs, notes)
			}
			for _, n := range notes {
				fmt.Fprintf(cmd.ErrOrStderr(), "Note: %s.\n", n.Message)
			}
			if len(probs) > 0 {
				printProblems(cmd.ErrOrStderr(), args[0], probs)
				return exitError(1)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok\n", args[0])
			return nil
		},
	}
	cmd.Flags().StringVar(&configFile, "config", "", "check kinds against this node config file (offline)")
	f.register(cmd, true)
	return cmd
}

type readingJSON struct {
	Expr  string    `json:"expr"`
	At    time.Time `json:"at"`
	Value float64   `json:"value"`
}

type episodeJSON struct {
	Region      string        `json:"region"`
	Start       time.Time     `json:"start"`
	End         *time.Time    `json:"end,omitempty"`
	Values      []readingJSON `json:"values"`
	ClearValues []readingJSON `json:"clear_values,omitempty"`
}

func toReadings(rs []*pb.RuleReading) []readingJSON {
	out := []readingJSON{}
	for _, r := range rs {
		out = append(out, readingJSON{Expr: r.Expr, At: r.At.AsTime(), Value: r.Value})
	}
	return out
}

func newRuleTestCmd() *cobra.Command {
	var (
		f        clientFlags
		from, to string
		since    string
		step     time.Duration
		exercise string
	)
	cmd := &cobra.Command{
		Use:   "test FILE",
		Short: "Dry-run a rule over the node's history: when would it have fired",
		Long: `Evaluate a rule document over the node's history, at every step (on the minute by default,
as the node evaluates), and list the episodes it would have fired: region, start, end ("firing"
while it still fires at the end of the run; absent in -o json) and the values that fired it. Nothing is stored.
The run covers --since back from now, or --from to --to (RFC 3339), within the history's
retention. No episode of a rule whose crisis: no record names comes with a note that says so.
With --exercise it runs over that exercise's records instead, as the node runs each rule in every
open exercise: an exercise's alert names this command with its --exercise.`,
		Example: `  knooppunt rule test zeeland-beds-low.yaml --since 168h
  knooppunt rule test signals.yaml --since 7d --step 5m -o json
  knooppunt rule test zeeland-beds-low.yaml --since 24h --exercise oefening-zeeland`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			src, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			req := &pb.RuleTestRequest{Source: src, Step: durationpb.New(step)}
			if exercise != "" {
				req.Mode = &pb.Mode{Status: pb.Status_EXERCISE, Exercise: exercise}
			}
			for _, t := range []struct {
				flag, v string
				dst     **timestamppb.Timestamp
			}{{"from", from, &req.From}, {"to", to, &req.To}} {
				if t.v == "" {
					continue
				}
				ts, err := time.Parse(time.RFC3339, t.v)
				if err != nil {
					return fmt.Errorf("--%s %q: use RFC 3339, such as 2026-03-01T00:00:00Z", t.flag, t.v)
				}
				*t.dst = timestamppb.New(ts)
			}
			if since != "" {
				if from != "" {
					return fmt.Errorf("--since and --from: give one of them")
				}
				// As the other --since flags take it: 168h, 7d, or a time.
				at, err := parseSince(since)
				if err != nil {
					return fmt.Errorf("--since %w", err)
				}
				req.From = timestamppb.New(at)
			}
			return f.call(func(conn *grpc.ClientConn) error {
				resp, err := pb.NewRuleServiceClient(conn).Test(cmd.Context(), req)
				if err != nil {
					return err
				}
				if f.output == "json" {
					out := []episodeJSON{}
					for _, e := range resp.Episodes {
						j := episodeJSON{Region: e.Region, Start: e.Start.AsTime(), Values: toReadings(e.Values), ClearValues: toReadings(e.ClearValues)}
						if e.End != nil {
							end := e.End.AsTime()
							j.End = &end
						}
						out = append(out, j)
					}
					return printJSON(cmd.OutOrStdout(), out)
				}
				w := cmd.OutOrStdout()
				fmt.Fprintf(w, "%s to %s, %d region(s): %d episode(s)\n", stamp(resp.From.AsTime()),
					stamp(resp.To.AsTime()), len(resp.Regions), len(resp.Episodes))
				tw := newTable(w)
				fmt.Fprintln(tw, "REGION\tSTART\tEND\tVALUES")
				for _, e := range resp.Episodes {
					end := "firing"
					if e.End != nil {
						end = stamp(e.End.AsTime())
					}
					var vals []string
					for _, r := range e.Values {
						if r.At.AsTime().Equal(e.Start.AsTime()) {
							vals = append(vals, fmt.Sprintf("%s=%g", r.Expr, r.Value))
						} else {
							vals = append(vals, fmt.Sprintf("%s@-%s=%g", r.Expr, e.Start.AsTime().Sub(r.At.AsTime()), r.Value))
						}
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.Region, stamp(e.Start.AsTime()), end, strings.Join(vals, " "))
				}
				if err := tw.Flush(); err != nil {
					return err
				}
				for _, e := range resp.Errors {
					fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s\n", e)
				}
				if len(resp.Episodes) == 0 && !noteUnknownExercise(cmd.Context(), cmd.ErrOrStderr(), conn, exercise) {
					noteRuleCrisis(cmd, conn, src)
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "start of the run (RFC 3339); default the start of the history's retention")
	cmd.Flags().StringVar(&to, "to", "", "end of the run (RFC 3339); default now")
	cmd.Flags().StringVar(&since, "since", "", "run over this long back from now, such as 168h or 7d (or from a time, RFC 3339)")
	durationFlag(cmd.Flags(), &step, "step", time.Minute, "interval between evaluations")
	cmd.Flags().StringVar(&exercise, "exercise", "", "run over this exercise's records (default: the actual records)")
	f.register(cmd, true)
	f.fill(map[string]string{"from": "from", "to": "to", "step": "step", "exercise": "mode.exercise"})
	return cmd
}

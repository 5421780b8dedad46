package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/node/config"
	"github.com/knooppunt/knooppunt/node/record"
	"github.com/knooppunt/knooppunt/node/warn"
	"github.com/knooppunt/knooppunt/policy"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

func newRuleCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rule",
		Short: "Early-warning rules: lint, and a dry run against the history",
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
	cmd.AddCommand(newRuleLintCmd(), newRuleTestCmd())
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
kinds; with --node against that node's. Every problem is printed as FILE:LINE:COLUMN: field:
message, the position inside the condition for a CEL problem; the exit code is 1 if there is any.`,
		Example: `  knooppunt rule lint zeeland-beds-low.yaml
  knooppunt rule lint zeeland-beds-low.yaml --config /etc/knooppunt/node.yaml
  knooppunt rule lint zeeland-beds-low.yaml --node unix:///var/lib/knooppunt/knooppunt.sock`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			src, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			var probs []policy.Problem
			if cmd.Flags().Changed("node") {
				err := f.call(func(conn *grpc.ClientConn) error {
					resp, err := pb.NewRuleServiceClient(conn).Lint(cmd.Context(), &pb.LintRequest{Source: src})
					if err != nil {
						return err
					}
					for _, p := range resp.Problems {
						probs = append(probs, policy.Problem{Line: int(p.Line), Column: int(p.Column), Field: p.Field, Message: p.Message})
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
			if len(probs) > 0 {
				printProblems(cmd.ErrOrStderr(), args[0], probs)
				return exitError(1)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok\n", args[0])
			return nil
		},
	}
	cmd.Flags().StringVar(&configFile, "config", "", "check kinds against this node config file (offline)")
	f.register(cmd, false)
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
		since    time.Duration
		step     time.Duration
	)
	cmd := &cobra.Command{
		Use:   "test FILE",
		Short: "Dry-run a rule over the node's history: when would it have fired",
		Long: `Evaluate a rule document over the node's history, at every step (on the minute by default,
as the node evaluates), and list the episodes it would have fired: region, start, end (empty
while it still fires at the end of the run) and the values that fired it. Nothing is stored.
The run covers --since back from now, or --from to --to (RFC 3339), within the history's
retention.`,
		Example: `  knooppunt rule test zeeland-beds-low.yaml --since 168h
  knooppunt rule test signals.yaml --from 2026-03-01T00:00:00Z --to 2026-03-08T00:00:00Z --step 5m -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			src, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			req := &pb.RuleTestRequest{Source: src, Step: durationpb.New(step)}
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
			if since > 0 {
				if from != "" {
					return fmt.Errorf("--since and --from: give one of them")
				}
				req.From = timestamppb.New(time.Now().Add(-since))
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
				fmt.Fprintf(w, "%s to %s, %d region(s): %d episode(s)\n", resp.From.AsTime().Local().Format(time.RFC3339),
					resp.To.AsTime().Local().Format(time.RFC3339), len(resp.Regions), len(resp.Episodes))
				tw := newTable(w)
				fmt.Fprintln(tw, "REGION\tSTART\tEND\tVALUES")
				for _, e := range resp.Episodes {
					end := "firing"
					if e.End != nil {
						end = e.End.AsTime().Local().Format(time.RFC3339)
					}
					var vals []string
					for _, r := range e.Values {
						if r.At.AsTime().Equal(e.Start.AsTime()) {
							vals = append(vals, fmt.Sprintf("%s=%g", r.Expr, r.Value))
						} else {
							vals = append(vals, fmt.Sprintf("%s@-%s=%g", r.Expr, e.Start.AsTime().Sub(r.At.AsTime()), r.Value))
						}
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.Region, e.Start.AsTime().Local().Format(time.RFC3339), end, strings.Join(vals, " "))
				}
				if err := tw.Flush(); err != nil {
					return err
				}
				for _, e := range resp.Errors {
					fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s\n", e)
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "start of the run (RFC 3339); default the start of the history's retention")
	cmd.Flags().StringVar(&to, "to", "", "end of the run (RFC 3339); default now")
	cmd.Flags().DurationVar(&since, "since", 0, "run over this long back from now, such as 168h")
	cmd.Flags().DurationVar(&step, "step", time.Minute, "interval between evaluations")
	f.register(cmd, true)
	return cmd
}

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	"github.com/knooppunt/knooppunt/federation/search"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

func newAlertCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "alert",
		Short: "Alerts the node's early-warning rules wrote",
		Long: `When a stored rule fires in a region, the leader writes one alert record (kind alert) through
Raft, and marks it resolved when the rule clears. Alerts are records: they travel to partners
under approved policies like any other. Alerts imported from CAP 1.2 (import --format cap) are
records of the same kind: record list --kind alert lists them too.`,
	}
	cmd.AddCommand(newAlertListCmd())
	return cmd
}

type alertJSON struct {
	ID string `json:"id"`
	// Source is the org whose rule fired: this node's, or with --partners a partner's.
	Source      string     `json:"source"`
	Rule        string     `json:"rule"`
	RuleVersion int64      `json:"rule_version"`
	Severity    string     `json:"severity"`
	Region      string     `json:"region"`
	State       string     `json:"state"`
	FiredAt     time.Time  `json:"fired_at"`
	ResolvedAt  *time.Time `json:"resolved_at,omitempty"`
	// Withdrawn says why a resolved alert's rule did not clear: it was deleted, or no longer
	// lints. The table shows its state as withdrawn, so that it does not read as all clear.
	Withdrawn string `json:"withdrawn,omitempty"`
	// Unevaluable is why a firing alert's rule cannot be evaluated any more, since when: the
	// alert is not confirmed meanwhile.
	Unevaluable      string     `json:"unevaluable,omitempty"`
	UnevaluableSince *time.Time `json:"unevaluable_since,omitempty"`
	// Reopened is how often the alert was opened again after it resolved, the last time at
	// ReopenedAt: fired_at stays the first firing.
	Reopened   int               `json:"reopened,omitempty"`
	ReopenedAt *time.Time        `json:"reopened_at,omitempty"`
	Values     []json.RawMessage `json:"values"`
	// Cached: a partner's alert that it did not send just now (it did not answer): its copy
	// here, which may have cleared since.
	Cached bool `json:"cached,omitempty"`
	// Info are the CAP info blocks; the first one's severity is shown.
	Info []struct {
		Severity string `json:"severity"`
	} `json:"info,omitempty"`
}

func newAlertListCmd() *cobra.Command {
	var (
		f        clientFlags
		mf       modeFlags
		firing   bool
		partners bool
		rule     string
		// failOnPartial: exit 3 when a partner did not answer --partners.
		failOnPartial bool
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List alerts, newest first",
		Long: `List the alerts this node's rules wrote, newest first. --partners also asks every partner for
the alerts of their rules that they share with this node (a search: each partner audits it).
--status test|draft lists the node's own test or draft alerts. --exercise NAME lists what the
rules fired in an open exercise, on its records alone (an empty list notes an exercise that is
not here, or was closed); the CAP alerts imported into an exercise are records: record list
--kind alert --exercise NAME lists them.

STATE is firing, resolved (the rule cleared), or withdrawn: resolved because nothing evaluates
the rule any more (it was deleted, or no longer lints); -o json keeps state resolved and says who
and why in withdrawn. An alert that fired again within the hour after it resolved is opened
again: FIRED AT stays its first firing, and STATE says "firing (again since TIME, N×)"; -o json
gives reopened (N) and reopened_at.

With --partners, a partner that does not answer is named on stderr, with why; its alerts listed
are those it sent before, which may have cleared since. --fail-on-partial exits 3, after
printing, when one did not answer: a script can tell a list that may miss alerts.`,
		Example: `  knooppunt alert list --firing
  knooppunt alert list --firing --partners
  knooppunt alert list --firing --partners --fail-on-partial -o json
  knooppunt alert list --rule zeeland-beds-low -o json
  knooppunt alert list --exercise oefening-zeeland
  knooppunt record list --kind alert --exercise oefening-zeeland   # an exercise's CAP alerts`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			mode, err := mf.mode()
			if err != nil {
				return err
			}
			if failOnPartial && !partners {
				return errors.New("--fail-on-partial: only --partners asks partners, so only it can be partial: add --partners, or leave out --fail-on-partial")
			}
			if partners && mode != nil && mode.Status != pb.Status_EXERCISE {
				return fmt.Errorf("--partners with --status %s: test and draft records never leave a node, so no partner has any: leave out --partners", mf.status)
			}
			sel := []string{}
			if firing {
				sel = append(sel, "status=firing")
			}
			if rule != "" {
				sel = append(sel, "rule="+rule)
			}
			partial := false
			err = f.call(func(conn *grpc.ClientConn) error {
				c := pb.NewRecordServiceClient(conn)
				out := []alertJSON{}
				add := func(r *pb.Record, cached bool) error {
					if r.Labels["rule"] == "" || rule != "" && r.Labels["rule"] != rule || firing && r.Labels["status"] != "firing" {
						return nil // an imported CAP alert (record list --kind alert shows it), or not asked for
					}
					var a alertJSON
					if err := json.Unmarshal(r.Body, &a); err != nil {
						return fmt.Errorf("alert %s of %s: %w", r.Id, r.Origin, err)
					}
					a.ID, a.Source, a.Cached = r.Id, r.Origin, cached // the record's, whatever the body holds
					if len(a.Info) > 0 {
						a.Severity = a.Info[0].Severity
					}
					a.Info = nil
					out = append(out, a)
					return nil
				}
				req := &pb.ListRequest{Kind: "alert", LabelSelector: strings.Join(sel, ","), PageSize: 1000, Mode: mode}
				for {
					resp, err := c.List(cmd.Context(), req)
					if err != nil {
						return err
					}
					for _, r := range resp.Records {
						if err := add(r, false); err != nil {
							return err
						}
					}
					if resp.NextPageToken == "" {
						break
					}
					req.PageToken = resp.NextPageToken
				}
				if partners {
					labels := map[string]string{}
					if firing {
						labels["status"] = "firing"
					}
					if rule != "" {
						labels["rule"] = rule
					}
					resp, err := pb.NewSearchServiceClient(conn).Search(cmd.Context(), &pb.SearchRequest{Filter: &pb.Filter{Kinds: []string{"alert"}, Labels: labels, Mode: mode}})
					if err != nil {
						return err
					}
					for _, h := range resp.Hits {
						if h.Source == "" {
							continue // this node's own, listed above
						}
						if err := add(h.Record, h.FromCache); err != nil {
							return err
						}
					}
					if resp.Partial {
						partial = true
						fmt.Fprintf(cmd.ErrOrStderr(), "Note: not every partner answered, so their alerts listed are what they sent before and may have cleared since: %s.\n", unansweredPeers(resp.Peers))
					}
				}
				// Newest first: the alerts that matter now come at the top.
				slices.SortStableFunc(out, func(a, b alertJSON) int { return b.FiredAt.Compare(a.FiredAt) })
				if f.output == "json" {
					return printJSON(cmd.OutOrStdout(), out)
				}
				tw := newModeTable(cmd.OutOrStdout(), mode)
				fmt.Fprintln(tw, "SOURCE\tRULE\tREGION\tSEVERITY\tSTATE\tFIRED AT\tRESOLVED AT\tID")
				for _, a := range out {
					res := ""
					if a.ResolvedAt != nil {
						res = stamp(*a.ResolvedAt)
					}
					source := a.Source
					if a.Cached {
						source += " (cache)" // as search marks it: its state may have changed since
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", source, a.Rule, a.Region, a.Severity, a.state(), stamp(a.FiredAt), res, a.ID)
				}
				if err := tw.Flush(); err != nil {
					return err
				}
				if len(out) == 0 && !noteUnknownExercise(cmd.Context(), cmd.ErrOrStderr(), conn, mode.GetExercise()) {
					fmt.Fprintln(cmd.ErrOrStderr(), noAlerts(partners, firing, rule))
				}
				return nil
			})
			if err == nil && failOnPartial && partial {
				return exitError(exitPartial)
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&firing, "firing", false, "only the alerts that still fire")
	cmd.Flags().BoolVar(&partners, "partners", false, "also the alerts partners share with this node (a search, audited at each)")
	cmd.Flags().StringVar(&rule, "rule", "", "only this rule's alerts")
	cmd.Flags().BoolVar(&failOnPartial, "fail-on-partial", false, "with --partners, exit 3 when a partner did not answer")
	mf.register(cmd)
	f.register(cmd, true)
	f.fill(map[string]string{"exercise": "mode.exercise", "status": "mode.status"})
	f.fill(map[string]string{"exercise": "filter.mode"})
	return cmd
}

// state is the alert's STATE in the table: withdrawn for an alert resolved because nothing
// evaluates its rule, so that it does not read as all clear; a firing alert that was opened
// again says since when and how often, beside FIRED AT, its first firing (review M, M6); and one
// whose rule cannot be evaluated says since when.
func (a alertJSON) state() string {
	state := a.State
	if a.Withdrawn != "" {
		state = "withdrawn"
	}
	if a.State == "firing" && a.Reopened > 0 && a.ReopenedAt != nil {
		state += fmt.Sprintf(" (again since %s, %d×)", stamp(*a.ReopenedAt), a.Reopened)
	}
	if a.Unevaluable != "" && a.UnevaluableSince != nil {
		state += " (NOT EVALUABLE since " + stamp(*a.UnevaluableSince) + ")"
	}
	return state
}

// noAlerts says that an alert list found none, of what it asked for. Of a rule, it says both
// things that may be true: the rule did not fire (now, with --firing), or no rule has the name;
// a rule that is stored and has not fired yet read as a name mistyped (review M, M6).
func noAlerts(partners, firing bool, rule string) string {
	what, why := "alerts", "it has not fired"
	if firing {
		what, why = "firing alerts", "it does not fire now"
	}
	if rule == "" {
		if partners {
			return "No " + what + " here or shared by a partner."
		}
		return "No " + what + " of this node's own rules; --partners also asks the partners for theirs."
	}
	where, ask := " on this node", "; --partners also asks the partners for theirs"
	if partners {
		where, ask = ", here or shared by a partner", ""
	}
	return fmt.Sprintf("No %s of rule %q%s: %s, or no rule has that name (knooppunt rule list names this node's rules)%s.", what, rule, where, why, ask)
}

// unansweredPeers names the peers that did not answer a search, each with why and what stands in
// for its answer: "vr-zeeland (unreachable: …: connection refused; served from its copy, 4m0s old)".
func unansweredPeers(peers []*pb.PeerStatus) string {
	var named []string
	for _, p := range peers {
		if !search.Unanswered(p) {
			continue
		}
		why := p.State
		if p.Error != "" {
			why += ": " + p.Error
		}
		if age, copied := standIn(p); !copied {
			why += "; no copy: it never sent this node anything"
		} else {
			why += fmt.Sprintf("; served from its copy, %s old", age)
			if p.FeedOpen {
				why += " (its feed is still open)"
			}
		}
		named = append(named, p.Peer+" ("+why+")")
	}
	return strings.Join(named, ", ")
}

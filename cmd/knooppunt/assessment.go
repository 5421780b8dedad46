package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/knooppunt/knooppunt/federation/search"
	"github.com/knooppunt/knooppunt/node/assessment"
	"github.com/knooppunt/knooppunt/node/record"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

func newAssessmentCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "assessment",
		Short: "The shared assessment (duiding) of a crisis, and partners' responses to it",
		Long: `A coordinating organisation publishes its assessment of a crisis: what the picture means, how it is
expected to develop, and its advice. The assessment is a record (kind assessment) tied to the exact
picture it interprets: the picture's content hash and, per source, how far it reached. Partners who
receive it endorse it or add a remark (kind assessment.response), records of their own that travel
back under their own policies. Both go to partners like any record, under approved policies.
Each organisation that publishes one has its own: show lists them, this node's own first, and
endorse and remark take --origin to say whose.`,
	}
	cmd.AddCommand(newAssessmentPublishCmd(), newAssessmentShowCmd(),
		newAssessmentRespondCmd(assessment.Endorse), newAssessmentRespondCmd(assessment.Remark))
	return cmd
}

func newAssessmentPublishCmd() *cobra.Command {
	var (
		f                         clientFlags
		crisis, exercise          string
		text, development, advice string
		failOnPartial             bool
	)
	cmd := &cobra.Command{
		Use:   "publish",
		Short: "Publish your organisation's assessment of the picture of a crisis, as the node shows it now",
		Long: `Publish an assessment of the picture of a crisis as this node shows it now. Publishing again writes
a new version of the same record; partners' endorsements of an earlier version are then shown as
such. Another organisation's assessment of the crisis is its own record, and stays beside yours.

As picture does, the node asks the peers whether they answer now: when one does not (PARTIAL),
or this node is still taking in what one shares (BEHIND), the assessment is tied to a picture
that holds an old copy of theirs, and the peer table after the published line says so (-o json:
partial, peers). --fail-on-partial then publishes nothing, and exits 3.`,
		Example: `  knooppunt assessment publish --crisis oekraine \
    --text "Opvang in Zeeland raakt vol" \
    --development "Binnen twee dagen geen vrije plekken in VR19" \
    --advice "Spreid nieuwe instroom naar VR09 en VR17"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if crisis == "" {
				return errors.New("--crisis: name the crisis, such as oekraine")
			}
			mode, err := (&modeFlags{exercise: exercise}).mode()
			if err != nil {
				return err
			}
			return f.call(func(conn *grpc.ClientConn) error {
				// The picture asks the peers whether they answer now, as picture does: one that
				// does not, or one this node is catching up with, is in it with an old copy.
				p, err := pb.NewSearchServiceClient(conn).Picture(cmd.Context(), &pb.PictureRequest{Crisis: crisis, Mode: mode})
				if err != nil {
					return err
				}
				incomplete := p.Partial || len(search.Behind(p.Peers)) > 0
				rec, err := assessment.New(p, text, development, advice)
				if err != nil {
					return flagError(err)
				}
				assessment.InMode(rec, mode)
				if (incomplete || p.NoLeader) && failOnPartial {
					if f.output != "json" {
						printIncomplete(cmd.OutOrStdout(), nil, p)
					}
					fmt.Fprintf(cmd.ErrOrStderr(), "not published: the picture of %s is not complete now (--fail-on-partial); publish when it is, or without --fail-on-partial on the picture as it is\n", crisis)
					if f.output == "json" {
						if err := printJSON(cmd.OutOrStdout(), map[string]any{"published": false, "partial": p.Partial, "no_leader": p.NoLeader,
							"peers": peersJSON(p.Peers)}); err != nil {
							return err
						}
					}
					return exitError(exitPartial)
				}
				resp, err := pb.NewRecordServiceClient(conn).Put(cmd.Context(), &pb.PutRequest{Record: rec})
				if err != nil {
					return err
				}
				fp := assessment.Fingerprint(p)
				if f.output == "json" {
					return printJSON(cmd.OutOrStdout(), map[string]any{"published": true, "id": resp.Id, "version": resp.Version, "picture": fp,
						"partial": p.Partial, "no_leader": p.NoLeader, "peers": peersJSON(p.Peers)})
				}
				if b := modeBanner(mode); b != "" {
					fmt.Fprintln(cmd.OutOrStdout(), b)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "published %s version %d on the picture %s (%d sources)\n", resp.Id, resp.Version, short(fp.Hash), len(fp.Sources))
				if incomplete {
					printIncomplete(cmd.OutOrStdout(), nil, p)
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&crisis, "crisis", "", "the crisis, such as oekraine")
	cmd.Flags().StringVar(&text, "text", "", "the assessment: what the picture means")
	cmd.Flags().StringVar(&development, "development", "", "how the crisis is expected to develop")
	cmd.Flags().StringVar(&advice, "advice", "", "what you advise partners to do")
	cmd.Flags().BoolVar(&failOnPartial, "fail-on-partial", false, "publish nothing, and exit 3, when the picture is not complete now (PARTIAL, BEHIND, NO LEADER)")
	cmd.Flags().StringVar(&exercise, "exercise", "", "publish within this open exercise, on its picture (default: the actual crisis)")
	f.register(cmd, true)
	return cmd
}

// flagError names the flag an assessment package error is about.
func flagError(err error) error {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "assessment: ")
	for _, p := range []string{"empty: ", "too long: "} {
		if rest, ok := strings.CutPrefix(msg, p); ok {
			return fmt.Errorf("--%s", rest)
		}
	}
	return errors.New(msg)
}

func short(hash string) string {
	if h, ok := strings.CutPrefix(hash, "sha256:"); ok && len(h) >= 12 {
		return h[:12]
	}
	return hash
}

// assessments reads the picture and the node's org, and finds each org's current assessment,
// the node's own first, then the latest written. With probe, the picture asks the peers whether
// they answer now: a source that does not, or one this node is still catching up with, may have
// changed unseen (CannotTell). A node that could not ask them is said on stderr.
func assessments(ctx context.Context, conn *grpc.ClientConn, crisis string, mode *pb.Mode, probe io.Writer) ([]*assessment.View, *pb.StatusResponse, error) {
	st, err := pb.NewStatusServiceClient(conn).Status(ctx, &pb.StatusRequest{})
	if err != nil {
		return nil, nil, err
	}
	p, err := pb.NewSearchServiceClient(conn).Picture(ctx, &pb.PictureRequest{Crisis: crisis, Mode: mode, SkipPeerCheck: probe == nil})
	if err != nil {
		return nil, nil, err
	}
	var behind []string
	if probe != nil {
		if p.Partial && len(p.Peers) == 0 {
			fmt.Fprintln(probe, "Note: the node could not ask the peers whether they answer now (its log says why), so whether one changed unseen is not said")
		}
		behind = search.Behind(p.Peers)
	}
	all, err := assessment.All(p, st.Org, behind)
	if err != nil {
		return nil, nil, err
	}
	if len(all) == 0 {
		of := "crisis " + crisis
		if mode != nil {
			of += " in exercise " + mode.GetExercise()
		}
		return nil, nil, &codedError{codes.NotFound, fmt.Errorf("no assessment of %s has reached this node: publish one with knooppunt assessment publish, or ask the coordinating organisation's officers for a policy that shares it", of)}
	}
	return all, st, nil
}

// origins are the organisations whose assessments all are.
func origins(all []*assessment.View) []string {
	var out []string
	for _, v := range all {
		out = append(out, v.Origin)
	}
	return out
}

// whose is the assessment of origin among all: a trust domain, or this node's or a peer's name
// (this node's short name too, the first label of its trust domain), as search --origin takes
// them.
func whose(ctx context.Context, conn *grpc.ClientConn, st *pb.StatusResponse, all []*assessment.View, crisis, origin string) (*assessment.View, error) {
	td := origin
	switch {
	case slices.ContainsFunc(all, func(v *assessment.View) bool { return v.Origin == origin }):
	case origin == st.Org || origin == st.NodeName && st.NodeName != "":
		td = st.Org
	default:
		peers, err := pb.NewPeerServiceClient(conn).List(ctx, &pb.ListPeersRequest{})
		if err != nil {
			return nil, err
		}
		k := slices.IndexFunc(peers.Peers, func(p *pb.PeerInfo) bool { return p.TrustDomain == origin || p.Name == origin })
		switch {
		case k >= 0:
			td = peers.Peers[k].TrustDomain
		case origin == strings.Split(st.Org, ".")[0]:
			td = st.Org
		default:
			return nil, fmt.Errorf("--origin: %q is neither this node's org (%s) nor a peer's trust domain or name: knooppunt peer list shows the peers", origin, st.Org)
		}
	}
	k := slices.IndexFunc(all, func(v *assessment.View) bool { return v.Origin == td })
	if k < 0 {
		return nil, fmt.Errorf("--origin: no assessment of crisis %s by %s has reached this node; of %s, it holds the assessments of %s", crisis, td, crisis, strings.Join(origins(all), ", "))
	}
	return all[k], nil
}

func newAssessmentShowCmd() *cobra.Command {
	var (
		f                        clientFlags
		crisis, origin, exercise string
	)
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Show each organisation's current assessment of a crisis next to the picture: whether the picture changed since, who endorsed it",
		Long: `Show the current assessment of a crisis of each organisation whose assessment this node holds (its
own first, then the others, the latest written first; --origin ORG shows that organisation's
alone, by trust domain or name as search --origin takes it) next to the picture as this node
shows it now. It says whether the picture changed since the assessment was written, and which
sources changed it: those that wrote or shared a record the picture shows since, or whose record
left the picture since (deleted or withdrawn at their source). A source whose record a newer
record of another source now outranks in its slot (one municipality of one kind, as the picture
shows its latest record only) did not change: the slot is named as now from the other source. On
the author's node the picture's content hash says whether it changed at all. A partner that does
not answer now, or that this node is still catching up with, may have changed unseen: it is named
as one of which it cannot be told. It says how much the picture changed: each of the picture's
sums (as picture prints them, by kind, field and region, the national total NL last) that moved
since, old → new with the records it adds, or that none did (a change in what the picture does
not add up, such as a note); an assessment of a release that kept no sums says so. A source the
assessment's picture had and of which this node receives nothing is named with its entries then:
the figures here may differ from the assessment's. It lists the partners that endorsed each
assessment, and their remarks, as far as their responses reached this node (they travel under
each partner's own policies).

-o json prints the first assessment as one document (the node's own when it has one), and the
others in its field others. sums_moved lists the sums that moved (kind, field, region, before,
after, records_before, records_after); minor_change says the picture changed and none did;
sums_kept false says the assessment kept no sums.`,
		Example: `  knooppunt assessment show --crisis oekraine
  knooppunt assessment show --crisis oekraine --origin lcvs
  knooppunt assessment show --crisis oekraine -o json
  knooppunt assessment show --crisis oekraine --exercise oefening-zeeland`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if crisis == "" {
				return errors.New("--crisis: name the crisis, such as oekraine")
			}
			mode, err := (&modeFlags{exercise: exercise}).mode()
			if err != nil {
				return err
			}
			return f.call(func(conn *grpc.ClientConn) error {
				all, st, err := assessments(cmd.Context(), conn, crisis, mode, cmd.ErrOrStderr())
				if err != nil {
					return err
				}
				if origin != "" {
					v, err := whose(cmd.Context(), conn, st, all, crisis, origin)
					if err != nil {
						return err
					}
					all = []*assessment.View{v}
				}
				if f.output == "json" {
					return printJSON(cmd.OutOrStdout(), struct {
						*assessment.View
						// Others are the other organisations' assessments.
						Others []*assessment.View `json:"others"`
					}{all[0], append([]*assessment.View{}, all[1:]...)})
				}
				if b := modeBanner(mode); b != "" {
					fmt.Fprintln(cmd.OutOrStdout(), b)
				}
				for i, v := range all {
					if i > 0 {
						fmt.Fprintln(cmd.OutOrStdout())
					}
					printAssessment(cmd.OutOrStdout(), v)
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&crisis, "crisis", "", "the crisis, such as oekraine")
	cmd.Flags().StringVar(&origin, "origin", "", "show only this organisation's assessment: a trust domain, or a peer's or this node's name")
	cmd.Flags().StringVar(&exercise, "exercise", "", "the assessments of this exercise, next to its picture (default: the actual crisis)")
	f.register(cmd, true)
	return cmd
}

func printAssessment(w io.Writer, v *assessment.View) {
	fmt.Fprintf(w, "Assessment %s of %s, version %d, written %s\n\n", v.ID, v.Origin, v.Version, stamp(v.WrittenAt))
	fmt.Fprintf(w, "  Assessment:   %s\n  Development:  %s\n  Advice:       %s\n\n", v.Body.Text, v.Body.Development, v.Body.Advice)
	switch {
	case !v.Changed && v.Exact:
		fmt.Fprintf(w, "The picture is the one it interprets (%s).\n", short(v.Body.Picture.Hash))
	case !v.Changed && len(v.CannotTell) > 0:
		fmt.Fprintf(w, "No source that answers has changed since it was written.\n")
	case !v.Changed:
		fmt.Fprintf(w, "No source this node shows has changed since it was written.\n")
	case v.Exact && len(v.ChangedSources) == 0:
		fmt.Fprintf(w, "THE PICTURE CHANGED since it was written (%s, now %s), though no source wrote, shared or withdrew a record since\n", short(v.Body.Picture.Hash), short(v.Now.Hash))
	case v.Exact:
		fmt.Fprintf(w, "THE PICTURE CHANGED since it was written (%s, now %s); changed: %s\n", short(v.Body.Picture.Hash), short(v.Now.Hash), strings.Join(v.ChangedSources, ", "))
	default:
		fmt.Fprintf(w, "THE PICTURE CHANGED since it was written: records of %s are newer, or left the picture\n", strings.Join(v.ChangedSources, ", "))
	}
	// A source whose record a newer one of another source outranks wrote nothing: the slot is
	// named, so that its record's absence is not read as its change.
	for _, t := range v.TakenOver {
		fmt.Fprintf(w, "  %s (%s, %s): now from %s, whose newer record takes the place of %s's\n", t.Key, t.Kind, t.Region, t.Source, strings.Join(t.Over, "'s and "))
	}
	printSumsMoved(w, v)
	if len(v.CannotTell) > 0 {
		fmt.Fprintf(w, "CANNOT TELL whether %s changed: not answering now, or this node is still catching up with it\n", strings.Join(v.CannotTell, ", "))
	}
	if len(v.NotReceived) > 0 {
		var srcs []string
		for _, c := range v.NotReceived {
			n := fmt.Sprintf("%d entries", c.Entries)
			if c.Entries == 1 {
				n = "1 entry"
			}
			srcs = append(srcs, fmt.Sprintf("%s (%s)", c.Source, n))
		}
		fmt.Fprintf(w, "Written on a picture with sources this node does not receive: %s; the figures here may differ.\n", strings.Join(srcs, ", "))
	}
	if len(v.Endorsed) == 0 {
		fmt.Fprintln(w, "Endorsed by: none that reached this node (endorsements travel under each partner's own policy)")
	} else {
		var names []string
		for _, e := range v.Endorsed {
			n := e.Org
			if e.Outdated {
				n += fmt.Sprintf(" (version %d)", e.Version)
			}
			names = append(names, n)
		}
		fmt.Fprintf(w, "Endorsed by: %s\n", strings.Join(names, ", "))
	}
	for _, r := range v.Remarks {
		fmt.Fprintf(w, "Remark of %s (version %d): %s\n", r.Org, r.Version, r.Text)
	}
}

// printSumsMoved says how much the picture changed: each sum that moved since the assessment was
// written, one a line, or that none did (a change in what the picture does not add up), so that
// a reader tells a change the advice rests on from a typo fixed in a note.
func printSumsMoved(w io.Writer, v *assessment.View) {
	switch {
	case v.Changed && !v.SumsKept:
		fmt.Fprintln(w, "The sums it saw were not kept by the release that wrote it: how much they moved is not said.")
		return
	case v.Minor:
		fmt.Fprintln(w, "The picture changed, but none of its sums moved.")
		return
	case len(v.SumsMoved) == 0:
		return
	case v.Changed:
		fmt.Fprintln(w, "Sums that moved:")
	default:
		// A partner's node, shown less of some sources than the author (its policies).
		fmt.Fprintln(w, "Sums here that differ from the ones it saw, though no source changed (this node is shown less of some sources than its author):")
	}
	for _, m := range v.SumsMoved {
		n := fmt.Sprintf("%d → %d records", m.RecordsBefore, m.RecordsAfter)
		switch {
		case m.RecordsBefore == m.RecordsAfter && m.RecordsAfter == 1:
			n = "1 record"
		case m.RecordsBefore == m.RecordsAfter:
			n = fmt.Sprintf("%d records", m.RecordsAfter)
		}
		fmt.Fprintf(w, "  %s %s %s  %s → %s (%s)\n", record.OneLine(m.Kind), record.OneLine(m.Field), record.OneLine(m.Region),
			sumCell(&pb.Aggregate{Sum: m.Before}), sumCell(&pb.Aggregate{Sum: m.After}), n)
	}
}

func newAssessmentRespondCmd(response string) *cobra.Command {
	var (
		f                              clientFlags
		crisis, text, origin, exercise string
	)
	cmd := &cobra.Command{Args: cobra.NoArgs}
	verb := response
	switch response {
	case assessment.Endorse:
		cmd.Use = "endorse"
		cmd.Short = "Endorse an organisation's current assessment of a crisis, as your organisation"
		cmd.Example = `  knooppunt assessment endorse --crisis oekraine
  knooppunt assessment endorse --crisis oekraine --origin ncc`
	default:
		verb = "remark on"
		cmd.Use = "remark"
		cmd.Short = "Add your organisation's remark to an organisation's current assessment of a crisis"
		cmd.Example = `  knooppunt assessment remark --crisis oekraine --text "Hulst heeft morgen 20 plekken extra"
  knooppunt assessment remark --crisis oekraine --origin ncc.crisis.test --text "Hulst heeft morgen 20 plekken extra"`
	}
	cmd.Long = cmd.Short + `. The response is a record of your own (kind
assessment.response) naming the assessment's origin, id and version; it reaches the author and
other partners under your organisation's approved policies for that kind. Your organisation has
one of each sort per assessment, updated in place: a response to one organisation's assessment
leaves the one to another's as it is.

--origin names whose assessment: a trust domain, or a peer's or this node's name, as search
--origin takes it. Without it the command takes the one assessment of the crisis that reached this
node, and refuses when there are more, naming their organisations.`
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if crisis == "" {
			return errors.New("--crisis: name the crisis, such as oekraine")
		}
		mode, err := (&modeFlags{exercise: exercise}).mode()
		if err != nil {
			return err
		}
		return f.call(func(conn *grpc.ClientConn) error {
			all, st, err := assessments(cmd.Context(), conn, crisis, mode, nil)
			if err != nil {
				return err
			}
			v := all[0]
			switch {
			case origin != "":
				if v, err = whose(cmd.Context(), conn, st, all, crisis, origin); err != nil {
					return err
				}
			case len(all) > 1:
				return fmt.Errorf("--origin: %d organisations' assessments of crisis %s have reached this node: %s; name whose you %s, such as --origin %s",
					len(all), crisis, strings.Join(origins(all), ", "), verb, all[0].Origin)
			}
			rec, err := assessment.NewResponse(v.Record, st.Org, response, text)
			if err != nil {
				return flagError(err)
			}
			assessment.InMode(rec, mode)
			resp, err := pb.NewRecordServiceClient(conn).Put(cmd.Context(), &pb.PutRequest{Record: rec})
			if err != nil {
				return err
			}
			if f.output == "json" {
				return printJSON(cmd.OutOrStdout(), map[string]any{"id": resp.Id, "version": resp.Version,
					"assessment_origin": v.Origin, "assessment_id": v.ID, "assessment_version": v.Version})
			}
			if b := modeBanner(mode); b != "" {
				fmt.Fprintln(cmd.OutOrStdout(), b)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %s version %d of %s's %s version %d\n", response, resp.Id, resp.Version, v.Origin, v.ID, v.Version)
			return nil
		})
	}
	cmd.Flags().StringVar(&crisis, "crisis", "", "the crisis, such as oekraine")
	cmd.Flags().StringVar(&origin, "origin", "", "whose assessment: a trust domain, or a peer's or this node's name (needed when more than one organisation's reached this node)")
	cmd.Flags().StringVar(&exercise, "exercise", "", "respond to an assessment of this open exercise (default: the actual crisis)")
	if response == assessment.Remark {
		cmd.Flags().StringVar(&text, "text", "", "your remark")
	}
	f.register(cmd, true)
	return cmd
}

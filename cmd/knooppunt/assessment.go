package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	"github.com/knooppunt/knooppunt/federation/search"
	"github.com/knooppunt/knooppunt/node/assessment"
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
back under their own policies. Both go to partners like any record, under approved policies.`,
	}
	cmd.AddCommand(newAssessmentPublishCmd(), newAssessmentShowCmd(),
		newAssessmentRespondCmd(assessment.Endorse), newAssessmentRespondCmd(assessment.Remark))
	return cmd
}

func newAssessmentPublishCmd() *cobra.Command {
	var (
		f                         clientFlags
		crisis                    string
		text, development, advice string
	)
	cmd := &cobra.Command{
		Use:   "publish",
		Short: "Publish your organisation's assessment of the picture of a crisis, as the node shows it now",
		Long: `Publish an assessment of the picture of a crisis as this node shows it now. Publishing again writes
a new version of the same record; partners' endorsements of an earlier version are then shown as
such.`,
		Example: `  knooppunt assessment publish --crisis oekraine \
    --text "Opvang in Zeeland raakt vol" \
    --development "Binnen twee dagen geen vrije plekken in VR19" \
    --advice "Spreid nieuwe instroom naar VR09 en VR17"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if crisis == "" {
				return errors.New("--crisis: name the crisis, such as oekraine")
			}
			return f.call(func(conn *grpc.ClientConn) error {
				p, err := pb.NewSearchServiceClient(conn).Picture(cmd.Context(), &pb.PictureRequest{Crisis: crisis, SkipPeerCheck: true})
				if err != nil {
					return err
				}
				rec, err := assessment.New(p, text, development, advice)
				if err != nil {
					return flagError(err)
				}
				resp, err := pb.NewRecordServiceClient(conn).Put(cmd.Context(), &pb.PutRequest{Record: rec})
				if err != nil {
					return err
				}
				fp := assessment.Fingerprint(p)
				out := map[string]any{"id": resp.Id, "version": resp.Version, "picture": fp}
				if f.output == "json" {
					return printJSON(cmd.OutOrStdout(), out)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "published %s version %d on the picture %s (%d sources)\n", resp.Id, resp.Version, short(fp.Hash), len(fp.Sources))
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&crisis, "crisis", "", "the crisis, such as oekraine")
	cmd.Flags().StringVar(&text, "text", "", "the assessment: what the picture means")
	cmd.Flags().StringVar(&development, "development", "", "how the crisis is expected to develop")
	cmd.Flags().StringVar(&advice, "advice", "", "what you advise partners to do")
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

// currentAssessment reads the picture and the node's org, and finds the current assessment.
// With probe, the picture asks the peers whether they answer now: a source that does not, or one
// this node is still catching up with, may have changed unseen (CannotTell). A node that could
// not ask them is said on stderr.
func currentAssessment(ctx context.Context, conn *grpc.ClientConn, crisis string, probe io.Writer) (*assessment.View, string, error) {
	st, err := pb.NewStatusServiceClient(conn).Status(ctx, &pb.StatusRequest{})
	if err != nil {
		return nil, "", err
	}
	p, err := pb.NewSearchServiceClient(conn).Picture(ctx, &pb.PictureRequest{Crisis: crisis, SkipPeerCheck: probe == nil})
	if err != nil {
		return nil, "", err
	}
	var behind []string
	if probe != nil {
		if p.Partial && len(p.Peers) == 0 {
			fmt.Fprintln(probe, "Note: the node could not ask the peers whether they answer now (its log says why), so whether one changed unseen is not said")
		}
		behind = search.Behind(p.Peers)
	}
	v, err := assessment.Current(p, st.Org, behind)
	if err != nil {
		return nil, "", err
	}
	if v == nil {
		return nil, "", fmt.Errorf("no assessment of crisis %s has reached this node: publish one with knooppunt assessment publish, or ask the coordinating organisation's officers for a policy that shares it", crisis)
	}
	return v, st.Org, nil
}

func newAssessmentShowCmd() *cobra.Command {
	var (
		f      clientFlags
		crisis string
	)
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Show the current assessment of a crisis next to the picture: whether the picture changed since, who endorsed it",
		Long: `Show the current assessment of a crisis (the latest this node holds, its own or a partner's) next
to the picture as this node shows it now. It says whether the picture changed since the assessment
was written, and which sources changed it: those that wrote or shared a record the picture shows
since, or whose record left the picture since (deleted or withdrawn at their source). A source
whose record a newer record of another source now outranks in its slot (one municipality of one
kind, as the picture shows its latest record only) did not change: the slot is named as now from
the other source. On the author's node the picture's content hash says whether it changed at
all. A partner that does not answer now, or that this node is still catching up with, may have
changed unseen: it is named as one of which it cannot be told. It lists the partners that endorsed it, and their remarks.`,
		Example: `  knooppunt assessment show --crisis oekraine
  knooppunt assessment show --crisis oekraine -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if crisis == "" {
				return errors.New("--crisis: name the crisis, such as oekraine")
			}
			return f.call(func(conn *grpc.ClientConn) error {
				v, _, err := currentAssessment(cmd.Context(), conn, crisis, cmd.ErrOrStderr())
				if err != nil {
					return err
				}
				if f.output == "json" {
					return printJSON(cmd.OutOrStdout(), v)
				}
				printAssessment(cmd.OutOrStdout(), v)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&crisis, "crisis", "", "the crisis, such as oekraine")
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
	if len(v.CannotTell) > 0 {
		fmt.Fprintf(w, "CANNOT TELL whether %s changed: not answering now, or this node is still catching up with it\n", strings.Join(v.CannotTell, ", "))
	}
	if len(v.Endorsed) == 0 {
		fmt.Fprintln(w, "Endorsed by: no partner yet")
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

func newAssessmentRespondCmd(response string) *cobra.Command {
	var (
		f            clientFlags
		crisis, text string
	)
	cmd := &cobra.Command{Args: cobra.NoArgs}
	switch response {
	case assessment.Endorse:
		cmd.Use = "endorse"
		cmd.Short = "Endorse the current assessment of a crisis, as your organisation"
		cmd.Example = `  knooppunt assessment endorse --crisis oekraine`
	default:
		cmd.Use = "remark"
		cmd.Short = "Add your organisation's remark to the current assessment of a crisis"
		cmd.Example = `  knooppunt assessment remark --crisis oekraine --text "Hulst heeft morgen 20 plekken extra"`
	}
	cmd.Long = cmd.Short + `. The response is a record of your own (kind
assessment.response) naming the assessment's origin, id and version; it reaches the author and
other partners under your organisation's approved policies for that kind.`
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if crisis == "" {
			return errors.New("--crisis: name the crisis, such as oekraine")
		}
		return f.call(func(conn *grpc.ClientConn) error {
			v, org, err := currentAssessment(cmd.Context(), conn, crisis, nil)
			if err != nil {
				return err
			}
			rec, err := assessment.NewResponse(v.Record, org, response, text)
			if err != nil {
				return flagError(err)
			}
			resp, err := pb.NewRecordServiceClient(conn).Put(cmd.Context(), &pb.PutRequest{Record: rec})
			if err != nil {
				return err
			}
			if f.output == "json" {
				return printJSON(cmd.OutOrStdout(), map[string]any{"id": resp.Id, "version": resp.Version,
					"assessment_origin": v.Origin, "assessment_id": v.ID, "assessment_version": v.Version})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %s version %d of %s's %s version %d\n", response, resp.Id, resp.Version, v.Origin, v.ID, v.Version)
			return nil
		})
	}
	cmd.Flags().StringVar(&crisis, "crisis", "", "the crisis, such as oekraine")
	if response == assessment.Remark {
		cmd.Flags().StringVar(&text, "text", "", "your remark")
	}
	f.register(cmd, true)
	return cmd
}

package main

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/node/api/policies"
	"github.com/knooppunt/knooppunt/node/record"
	"github.com/knooppunt/knooppunt/policy"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

func newPolicyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Sharing policies: lint, propose, approve, preview, explain",
		Long: `Sharing policies say which records go to which peers, with which fields redacted, for
which purpose. A policy is active only once another officer than its author approved it (four
eyes). Lifecycle steps (propose, approve, reject, revoke) are taken in person, with your own
officer SVID over mTLS; the local socket cannot take them.`,
	}
	cmd.AddCommand(newPolicyLintCmd(), newPolicyProposeCmd(), newPolicyListCmd(), newPolicyShowCmd(),
		newPolicyDiffCmd(), newPolicyPreviewCmd(), newPolicyExplainCmd(),
		newPolicyStepCmd("approve", "Approve a proposed policy (you may not be its author)", false),
		newPolicyStepCmd("reject", "Reject a proposed policy, with a reason", true),
		newPolicyStepCmd("revoke", "Revoke an approved policy, with a reason", true))
	return cmd
}

func (f *clientFlags) policies() (pb.PolicyServiceClient, func(), error) {
	conn, err := f.dial()
	if err != nil {
		return nil, nil, err
	}
	return pb.NewPolicyServiceClient(conn), func() { conn.Close() }, nil
}

// fromLintProblems are a node's lint answer as the linter's own problems.
func fromLintProblems(ps []*pb.LintProblem) []policy.Problem {
	var out []policy.Problem
	for _, p := range ps {
		out = append(out, policy.Problem{Line: int(p.Line), Column: int(p.Column), Field: p.Field, Message: p.Message})
	}
	return out
}

func printProblems(w io.Writer, file string, probs []policy.Problem) {
	printLint(w, file, probs, nil)
}

// printLint prints problems and warnings together in the order of the document, so that a
// warning at line 7 does not come before an error at line 3; a warning says so.
func printLint(w io.Writer, file string, probs, warnings []policy.Problem) {
	type said struct {
		policy.Problem
		warning bool
	}
	var all []said
	for _, p := range probs {
		all = append(all, said{p, false})
	}
	for _, p := range warnings {
		all = append(all, said{p, true})
	}
	slices.SortStableFunc(all, func(a, b said) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
	for _, p := range all {
		loc := file
		if p.Line > 0 {
			loc = fmt.Sprintf("%s:%d:%d", file, p.Line, p.Column)
		}
		if p.warning {
			loc += ": warning"
		}
		if p.Field != "" {
			fmt.Fprintf(w, "%s: %s: %s\n", loc, p.Field, p.Message)
		} else {
			fmt.Fprintf(w, "%s: %s\n", loc, p.Message)
		}
	}
}

// printLintJSON prints a lint's answer for -o json: {"file", "ok", "problems", "warnings"}, each
// problem with line, column, field and message. Problems make the exit code 1; warnings do not.
func printLintJSON(w io.Writer, file string, probs, warnings []policy.Problem) error {
	doc := struct {
		File     string           `json:"file"`
		OK       bool             `json:"ok"`
		Problems []policy.Problem `json:"problems"`
		Warnings []policy.Problem `json:"warnings"`
	}{file, len(probs) == 0, append([]policy.Problem{}, probs...), append([]policy.Problem{}, warnings...)}
	if err := printJSON(w, doc); err != nil {
		return err
	}
	if len(probs) > 0 {
		return exitError(1)
	}
	return nil
}

func newPolicyLintCmd() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "lint FILE",
		Short: "Check a policy document",
		Long: `Check a policy document: YAML syntax, schema, and the CEL type and cost of its condition.
This works offline, and warns of a group granted confidential or secret records (every peer that
joins it later gets them). With --node (on the command line: KNOOPPUNT_NODE alone keeps it
offline) it also checks the kinds, recipients and groups against that node (a peer's name is refused with its trust domain to write), and warns of a body field, in
a redact path or in when, that no kind declares while an open kind might carry it (a misspelt name
withholds nothing, or shares nothing), and of a crisis in when that no record names. Every problem
is printed as FILE:LINE:COLUMN: field: message, warnings among them in the document's order; the
exit code is 1 if there is any problem, and 2 when it could not check (a file it cannot read, a
node it cannot reach, a wrong flag). A warning does not change the exit code. -o json prints {"file", "ok", "problems", "warnings"} on standard output, each
problem with line, column, field and message, for a pipeline that checks policies.`,
		Example: `  knooppunt policy lint lcvs-capacity.yaml
  knooppunt policy lint lcvs-capacity.yaml --node unix:///var/lib/knooppunt/knooppunt.sock
  knooppunt policy lint lcvs-capacity.yaml -o json | jq -e .ok`,
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
			var probs, doubts []policy.Problem
			if cmd.Flags().Changed("node") {
				c, closeConn, err := f.policies()
				if err != nil {
					return err
				}
				defer closeConn()
				resp, err := c.Lint(cmd.Context(), &pb.LintRequest{Source: src})
				if err != nil {
					return callError(&f, err)
				}
				probs, doubts = fromLintProblems(resp.Problems), fromLintProblems(resp.Doubts)
			} else {
				if _, err := policy.Lint(src, nil); err != nil {
					var ps policy.Problems
					if !errors.As(err, &ps) {
						return err
					}
					probs = ps
				}
				doubts = policy.LintDoubts(src, nil) // what a document alone can show
			}
			if f.output == "json" {
				return printLintJSON(cmd.OutOrStdout(), args[0], probs, doubts)
			}
			// Doubts do not fail the lint, but are said with the problems, in the document's order.
			printLint(cmd.ErrOrStderr(), args[0], probs, doubts)
			if len(probs) > 0 {
				return exitError(1)
			}
			// The warnings went to stderr: "ok" alone read as clean when that was out of sight.
			ok := "ok"
			if n := len(doubts); n > 0 {
				ok = fmt.Sprintf("ok, with %d warning(s) above", n)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %s\n", args[0], ok)
			if !cmd.Flags().Changed("node") {
				// An officer with KNOOPPUNT_NODE set took "ok" for a check against the node
				// (review AE, AE6).
				fmt.Fprintf(cmd.ErrOrStderr(), "Note: checked offline: the kinds, recipients and groups were not checked against a node; --node %s checks them.\n", cmp.Or(os.Getenv("KNOOPPUNT_NODE"), "ADDR"))
			}
			return nil
		},
	}
	f.register(cmd, true)
	return cmd
}

func newPolicyProposeCmd() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "propose FILE",
		Short: "Propose a policy, or a new version of one",
		Long: `Propose a policy document. The node stores it as NAME@VERSION: the name its document gives,
and the next version of that name (1 for a new policy). It lints the file first, as policy lint
--node does, and refuses one with any problem (warnings do not refuse): then nothing is stored.
A proposal grants nothing until officers other than its author approve it (four eyes;
policy.approvals in the node config says how many, default 1); a version in force stays in force
until then, and is superseded once the new one is approved. Taken in person by an officer, with
their own SVID over mTLS; the local socket cannot propose. It prints the version as stored (state
proposed, approvals 0 of N), -o json the same as an object; the step is audited (policy.propose).`,
		Example: `  knooppunt policy propose lcvs-capacity.yaml --node node.example:7443 --svid-cert me.crt --svid-key me.key --bundle bundle.pem`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			src, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			return f.call(func(conn *grpc.ClientConn) error {
				c := pb.NewPolicyServiceClient(conn)
				p, err := c.Propose(cmd.Context(), &pb.ProposeRequest{Source: src})
				if err != nil {
					return err
				}
				return printPolicy(cmd.OutOrStdout(), f.output, p, false)
			})
		},
	}
	f.register(cmd, true)
	f.fillArg("FILE", "source")
	return cmd
}

func newPolicyStepCmd(action, short string, needReason bool) *cobra.Command {
	var (
		f      clientFlags
		reason string
		yes    bool
	)
	cmd := &cobra.Command{
		Use:     action + " ID",
		Short:   short,
		Example: fmt.Sprintf("  knooppunt policy %s lcvs-capacity-to-regions@2%s", action, map[bool]string{true: ` --reason "purpose ended"`, false: ""}[needReason]),
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if needReason && reason == "" {
				// As the node says it (review AE, AE9).
				return fmt.Errorf("--reason is required: say why you %s it; the audit log keeps it", action)
			}
			return f.call(func(conn *grpc.ClientConn) error {
				c := pb.NewPolicyServiceClient(conn)
				req := &pb.PolicyStepRequest{Id: args[0], Reason: reason}
				var (
					p   *pb.PolicyInfo
					err error
				)
				switch action {
				case "approve":
					if !yes {
						if err := confirmApprove(cmd, conn, args[0]); err != nil {
							return err
						}
					}
					p, err = c.Approve(cmd.Context(), req)
				case "reject":
					p, err = c.Reject(cmd.Context(), req)
				default:
					p, err = c.Revoke(cmd.Context(), req)
				}
				if err != nil {
					return err
				}
				if err := printPolicy(cmd.OutOrStdout(), f.output, p, false); err != nil {
					return err
				}
				if action == "revoke" {
					var alone, rest int64
					for _, h := range p.Held {
						alone, rest = alone+h.Alone, rest+h.Records-h.Alone
					}
					if alone+rest == 0 {
						fmt.Fprintln(cmd.ErrOrStderr(), "Note: no partner held a record sent under it.")
					} else {
						fmt.Fprintf(cmd.ErrOrStderr(), "Note: partners held %d records under it alone, which are being retracted, and %d that other policies grant too, which stay (knooppunt audit list --action federation.retract shows each).\n", alone, rest)
					}
				}
				return nil
			})
		},
	}
	if needReason {
		cmd.Flags().StringVar(&reason, "reason", "", "why (required)")
	}
	switch action {
	case "reject":
		cmd.Long = `Reject a proposed policy version, NAME@VERSION, with --reason: the audit log keeps it
(policy.reject), and policy show gives it. A rejected version never comes into force and cannot
be approved afterwards: to change it, propose a new version. Only a proposal can be rejected; an
approved version is revoked instead. Any officer may reject, its author too, in person with their
own SVID over mTLS; the local socket cannot. It prints the version, rejected, with who decided
and why; -o json the same as an object.`
	case "revoke":
		cmd.Long = `Revoke an approved policy version, NAME@VERSION, with --reason: the audit log keeps it
(policy.revoke), and policy show gives it. From then on the version grants nothing: partners'
copies of records that it alone granted are retracted, and copies that other policies grant too
stay, as those policies grant them. A proposal is rejected instead. Taken in person by an
officer, with their own SVID over mTLS; the local socket cannot revoke. It prints the version,
revoked, with what each holder held under it before (held by), and says on standard error how
many records are being retracted and how many stay (knooppunt audit list --action
federation.retract shows each); -o json gives the version with held.`
	}
	if action == "approve" {
		cmd.Long = `Approve a proposed policy. When it would send a partner fields that policies in force withhold
from it now (a record it grants too, without that redaction), approve says which, to whom and
under which policies, and asks before it approves. So it does when, replacing the version in
force, it would take back records partners receive now (the new version grants them less, in
the crisis's phase now, or not to the purpose they state): it names each partner and how many
records would be retracted. --yes does not ask (scripts that previewed).`
		cmd.Example += "\n  knooppunt policy approve vr09-signalen-regios@1 --yes"
		cmd.Flags().BoolVar(&yes, "yes", false, "do not ask before approving a policy that lifts redactions or takes back records (scripts)")
	}
	f.register(cmd, true)
	f.fillArg("ID", "id")
	return cmd
}

// errApproveNoAnswer is the end of standard input before the question of policy approve.
var errApproveNoAnswer = errors.New("no answer: standard input ended before one was given (a script or a pipe): nothing was approved. Answer at a terminal, or give --yes after `knooppunt policy preview`")

// confirmApprove says what approving the proposal id would send that policies in force withhold
// now, and what it would take back, for each partner, and asks; it asks nothing of a policy
// that does neither. The web approve page says the same (review L, L3: the CLI approved such a
// policy without a word). A proposal it cannot read is left to the approval to refuse, in its
// words.
func confirmApprove(cmd *cobra.Command, conn *grpc.ClientConn, id string) error {
	p, err := pb.NewPolicyServiceClient(conn).Get(cmd.Context(), &pb.GetPolicyRequest{Id: id})
	if err != nil {
		return nil
	}
	peers, err := pb.NewPeerServiceClient(conn).List(cmd.Context(), &pb.ListPeersRequest{})
	if err != nil {
		return err
	}
	var to []string
	for _, peer := range peers.Peers {
		if peer.Active && peer.LeavingSince == nil {
			to = append(to, cmp.Or(peer.Name, peer.TrustDomain))
		}
	}
	e, err := policies.Effects(cmd.Context(), conn, p, to)
	w := cmd.ErrOrStderr()
	if err != nil {
		// A partner that cannot be previewed (one leaving, say) is no reason to refuse.
		fmt.Fprintf(w, "Note: not every partner could be previewed (%s): `knooppunt policy preview %s --recipient PEER` shows one.\n", status.Convert(err).Message(), id)
	}
	if len(e.Lifted) == 0 && len(e.Withdrawn) == 0 {
		return nil
	}
	if len(e.Lifted) > 0 {
		fmt.Fprintf(w, "Warning: %s sends fields that policies in force withhold now:\n", id)
		for _, f := range e.Lifted {
			fmt.Fprintf(w, "  %s to %s (withheld by %s)\n", f.Field, f.Recipient, strings.Join(f.WithheldBy, ", "))
		}
	}
	if len(e.Withdrawn) > 0 {
		// A new version replaces the one in force: what only that one shares now is retracted
		// (review AE, AE1: the approval took back every record without a word).
		fmt.Fprintf(w, "Warning: %s replaces %s, and partners' nodes hold records under it that this version would not grant; those are retracted from their copies:\n", id, e.Withdrawn[0].Supersedes)
		for _, x := range e.Withdrawn {
			fmt.Fprintf(w, "  %s: %s\n", x.Recipient, nRecords(x.Records))
		}
		fmt.Fprintf(w, "(`knooppunt policy preview %s --recipient PEER` shows what each would still receive.)\n", id)
	}
	ok, err := confirm(cmd.InOrStdin(), w, "Approve it all the same? [y/N] ", errApproveNoAnswer)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("not confirmed: %s was not approved", id)
	}
	return nil
}

type policyJSON struct {
	ID                string     `json:"id"`
	Name              string     `json:"name"`
	Version           int32      `json:"version"`
	State             string     `json:"state"`
	Active            bool       `json:"active"`
	Purpose           string     `json:"purpose"`
	Author            string     `json:"author"`
	ProposedAt        time.Time  `json:"proposed_at"`
	Approvers         []string   `json:"approvers"`
	ApprovalsRequired int32      `json:"approvals_required"`
	DecidedBy         string     `json:"decided_by,omitempty"`
	DecidedAt         *time.Time `json:"decided_at,omitempty"`
	Reason            string     `json:"reason,omitempty"`
	Source            string     `json:"source,omitempty"`
	// Held is filled by show and revoke: what partners hold under the version.
	Held []heldJSON `json:"held,omitempty"`
}

type heldJSON struct {
	Holder  string `json:"holder"`
	Records int64  `json:"records"`
	Alone   int64  `json:"alone"`
}

func toPolicyJSON(p *pb.PolicyInfo, withSource bool) policyJSON {
	j := policyJSON{ID: p.Id, Name: p.Name, Version: p.Version, State: p.State, Active: p.Active, Purpose: p.Purpose,
		Author: p.Author, ProposedAt: p.ProposedAt.AsTime(), Approvers: p.Approvers, ApprovalsRequired: p.ApprovalsRequired,
		DecidedBy: p.DecidedBy, Reason: p.Reason}
	if j.Approvers == nil {
		j.Approvers = []string{}
	}
	if p.DecidedAt != nil {
		t := p.DecidedAt.AsTime()
		j.DecidedAt = &t
	}
	if withSource {
		j.Source = string(p.Source)
	}
	for _, h := range p.Held {
		j.Held = append(j.Held, heldJSON{h.Holder, h.Records, h.Alone})
	}
	return j
}

func printPolicy(w io.Writer, format string, p *pb.PolicyInfo, withSource bool) error {
	if format == "json" {
		return printJSON(w, toPolicyJSON(p, withSource))
	}
	tw := newTable(w)
	fmt.Fprintf(tw, "id\t%s\n", p.Id)
	state := fmt.Sprintf("%s (active: %v)", p.State, p.Active)
	if p.State == "approved" && !p.Active {
		// Approved and sharing nothing now reads as an approval that did not take (review Z,
		// Z17): say what it waits for.
		state += ": it shares nothing now: it is outside its window, or, limited to phases, no crisis in one of them has records it covers (docs/officer.md, The lifecycle)"
	}
	fmt.Fprintf(tw, "state\t%s\n", state)
	fmt.Fprintf(tw, "purpose\t%s\n", p.Purpose)
	fmt.Fprintf(tw, "author\t%s, %s\n", p.Author, stamp(p.ProposedAt.AsTime()))
	if len(p.Approvers) > 0 {
		fmt.Fprintf(tw, "approvals\t%d of %d: %s\n", len(p.Approvers), p.ApprovalsRequired, strings.Join(p.Approvers, ", "))
	} else {
		fmt.Fprintf(tw, "approvals\t0 of %d\n", p.ApprovalsRequired)
	}
	if p.DecidedBy != "" {
		fmt.Fprintf(tw, "decided\t%s by %s\n", stamp(p.DecidedAt.AsTime()), p.DecidedBy)
	}
	if p.Reason != "" {
		fmt.Fprintf(tw, "reason\t%s\n", p.Reason)
	}
	for _, h := range p.Held {
		fmt.Fprintf(tw, "held by\t%s: %s, %d under this policy alone\n", h.Holder, nRecords(h.Records), h.Alone)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if withSource {
		// Through terminalSafe: a stored source with an escape sequence (lint refuses them now)
		// must not print another line over the one the node enforces.
		fmt.Fprintf(terminalSafe{w}, "\n%s", p.Source)
	}
	return nil
}

func newPolicyListCmd() *cobra.Command {
	var (
		f   clientFlags
		req pb.ListPoliciesRequest
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List policies",
		Long: `List the stored policy versions, of every state, by name and newest version first; --state and
--name narrow it. The table gives ID (NAME@VERSION), STATE (proposed, approved, rejected, revoked
or superseded), ACTIVE, APPROVALS (given/required), AUTHOR and PURPOSE, cut at 40 characters.
ACTIVE is true for an approved version inside its validity window; for one limited to phases,
only while a crisis is in one of them and it covers one of this node's own records of it. For
officers, admins and the local socket. -o json gives each version's fields whole, with
approvers, decided_by, decided_at and reason; policy show gives one with its document.`,
		Example: `  knooppunt policy list --state proposed -o json`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.call(func(conn *grpc.ClientConn) error {
				c := pb.NewPolicyServiceClient(conn)
				resp, err := c.List(cmd.Context(), &req)
				if err != nil {
					return err
				}
				if f.output == "json" {
					out := make([]policyJSON, len(resp.Policies))
					for i, p := range resp.Policies {
						out[i] = toPolicyJSON(p, false)
					}
					return printJSON(cmd.OutOrStdout(), out)
				}
				tw := newTable(cmd.OutOrStdout())
				fmt.Fprintln(tw, "ID\tSTATE\tACTIVE\tAPPROVALS\tAUTHOR\tPURPOSE")
				for _, p := range resp.Policies {
					fmt.Fprintf(tw, "%s\t%s\t%v\t%d/%d\t%s\t%s\n", p.Id, p.State, p.Active, len(p.Approvers), p.ApprovalsRequired, p.Author, truncate(p.Purpose, 40))
				}
				if err := tw.Flush(); err != nil {
					return err
				}
				if len(resp.Policies) == 0 {
					// A header alone reads as a listing that broke off.
					what := "No policies"
					if req.State != "" {
						what += " in state " + req.State
					}
					fmt.Fprintln(cmd.ErrOrStderr(), what+": knooppunt policy propose FILE proposes one.")
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&req.State, "state", "", "only this state: proposed, approved, rejected, revoked, superseded")
	cmd.Flags().StringVar(&req.Name, "name", "", "only versions of this policy")
	f.register(cmd, true)
	f.fill(map[string]string{"state": "state", "name": "name"})
	return cmd
}

func newPolicyShowCmd() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "Show a policy and its document",
		Long: `Show one policy version and its document: NAME@VERSION, or NAME for its newest version,
whatever its state (policy diff takes NAME for the version in force). It prints the id, the state
and whether it is active (as policy list says it), the purpose, the author, the approvals, who
decided and why, and per holder (spiffe://TD/node/* for a partner's node) the copies it holds
that were sent under this version, and how many under it alone, which revoking it would retract;
then the document as stored. For officers, admins and the local socket. -o json gives the same
fields, with held, and the document in source.`,
		Example: `  knooppunt policy show lcvs-capacity-to-regions@1
  knooppunt policy show lcvs-capacity-to-regions`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.call(func(conn *grpc.ClientConn) error {
				c := pb.NewPolicyServiceClient(conn)
				p, err := c.Get(cmd.Context(), &pb.GetPolicyRequest{Id: args[0]})
				if err != nil {
					return err
				}
				return printPolicy(cmd.OutOrStdout(), f.output, p, true)
			})
		},
	}
	f.register(cmd, true)
	f.fillArg("ID", "id")
	return cmd
}

func newPolicyDiffCmd() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "diff ID1 ID2",
		Short: "Show how two policy versions differ",
		Long: `Show how two policy documents differ, line by line: "-" the first's lines, "+" the second's, a
changed line old first. Each argument is a file or a stored policy: NAME@VERSION, or NAME for the
version in force (approved), or the newest version when none is; the header names the version and
its state (--- lcvs-capacity-to-regions@2 (approved)). As diff(1), it exits 0 when they are the same document, 1 when they differ, and
2 on an error: a pipeline can check that what is stored is what is in its repository.`,
		Example: `  knooppunt policy diff lcvs-capacity-to-regions@1 lcvs-capacity-to-regions@2
  knooppunt policy diff lcvs-capacity-to-regions@2 ./draft.yaml
  knooppunt policy diff lcvs-capacity-to-regions policies/lcvs-capacity-to-regions.yaml || echo "stored policy differs"`,
		Annotations: map[string]string{errorExitAnnotation: "2"}, // a wrong argument or flag too
		Args:        cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			// 1 says the documents differ: an error that stops the comparison ends with 2 (the
			// command's errorExitAnnotation).
			srcs, labels, err := policyDiffSources(cmd, &f, args)
			if err != nil {
				return err
			}
			lines := diffLines(strings.Split(string(srcs[0]), "\n"), strings.Split(string(srcs[1]), "\n"))
			if !slices.ContainsFunc(lines, func(l string) bool { return !strings.HasPrefix(l, " ") }) {
				_, err := fmt.Fprintf(cmd.OutOrStdout(), "%s and %s are the same document.\n", labels[0], labels[1])
				return err
			}
			out := terminalSafe{cmd.OutOrStdout()}
			fmt.Fprintf(out, "--- %s\n+++ %s\n", labels[0], labels[1])
			for _, l := range lines {
				fmt.Fprintln(out, l)
			}
			return exitError(1)
		},
	}
	f.register(cmd, false)
	return cmd
}

// diffLines is a longest-common-subsequence line diff: " " kept, "-" only in a, "+" only in b.
func diffLines(a, b []string) []string {
	n, m := len(a), len(b)
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out []string
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && a[i] == b[j]:
			out = append(out, " "+a[i])
			i, j = i+1, j+1
		case i < n && (j == m || lcs[i+1][j] >= lcs[i][j+1]):
			// A changed line reads old, then new: "-" before "+".
			out = append(out, "-"+a[i])
			i++
		default:
			out = append(out, "+"+b[j])
			j++
		}
	}
	return out
}

func newPolicyPreviewCmd() *cobra.Command {
	var (
		f                clientFlags
		recipient, phase string
		purpose          string
		limit            int32
	)
	cmd := &cobra.Command{
		Use:   "preview FILE|ID",
		Short: "Show what a peer would receive under a draft or stored policy",
		Long: `Run one policy, draft or stored, as if it were approved, over the node's own records, and
show what the recipient would receive: the records, the body fields redacted, and counts per kind.`,
		Example: `  knooppunt policy preview lcvs-capacity.yaml --recipient spiffe://ncc.crisis.test/node/r1
  knooppunt policy preview lcvs-capacity-to-regions@2 --recipient spiffe://vr-utrecht.crisis.test/node/r1 --phase warm -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := &pb.PreviewRequest{Recipient: recipient, Phase: phase, Limit: limit, Purpose: purpose}
			if src, err := os.ReadFile(args[0]); err == nil {
				req.Source = src
			} else {
				req.Id = args[0]
			}
			return f.call(func(conn *grpc.ClientConn) error {
				c := pb.NewPolicyServiceClient(conn)
				resp, err := c.Preview(cmd.Context(), req)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				var why []string
				if resp.Total == 0 && resp.Considered > 0 {
					src := req.Source
					if src == nil {
						if info, err := c.Get(cmd.Context(), &pb.GetPolicyRequest{Id: req.Id}); err == nil {
							src = info.Source
						}
					}
					why = whyNothing(src, resp, recipient, phase)
				}
				if f.output == "json" {
					type item struct {
						Record   record.JSON `json:"record"`
						Redacted []string    `json:"redacted"`
					}
					doc := struct {
						Total               int64            `json:"total"`
						Considered          int64            `json:"considered"`
						Counts              map[string]int64 `json:"counts"`
						Items               []item           `json:"items"`
						UnmatchedRedactions []string         `json:"unmatched_redactions"`
						VoidedRedactions    []string         `json:"voided_redactions"`
						OverridingPolicies  []string         `json:"overriding_policies"`
						LiftedRedactions    []liftedJSON     `json:"lifted_redactions"`
						Purpose             string           `json:"purpose"`
						PurposeStated       bool             `json:"purpose_stated"`
						Supersedes          string           `json:"supersedes,omitempty"`
						Withdrawn           int64            `json:"withdrawn"`
						WhyNothing          []string         `json:"why_nothing,omitempty"`
					}{Total: resp.Total, Considered: resp.Considered, Counts: map[string]int64{}, Items: []item{},
						UnmatchedRedactions: nonNilStrings(resp.UnmatchedRedactions), VoidedRedactions: nonNilStrings(resp.VoidedRedactions),
						OverridingPolicies: nonNilStrings(resp.OverridingPolicies), LiftedRedactions: []liftedJSON{},
						Purpose: resp.Purpose, PurposeStated: resp.PurposeStated, Supersedes: resp.Supersedes, Withdrawn: resp.Withdrawn, WhyNothing: why}
					for _, l := range resp.LiftedRedactions {
						doc.LiftedRedactions = append(doc.LiftedRedactions, liftedJSON{Field: l.Field, WithheldBy: nonNilStrings(l.WithheldBy)})
					}
					for _, c := range resp.Counts {
						doc.Counts[c.Kind] = c.Count
					}
					for _, it := range resp.Items {
						doc.Items = append(doc.Items, item{Record: record.ToJSON(it.Record), Redacted: nonNilStrings(it.Redacted)})
					}
					return printJSON(out, doc)
				}
				fmt.Fprintf(out, "%s would receive %d of %d records considered\n", recipient, resp.Total, resp.Considered)
				fmt.Fprintf(out, "  stating %s\n", statedPurposeText(resp.Purpose, resp.PurposeStated, resp.PurposeStatedAt))
				for _, w := range why {
					fmt.Fprintf(cmd.ErrOrStderr(), "Note: %s\n", w)
				}
				if resp.Withdrawn > 0 {
					// In the output itself: it is what approving would take back.
					fmt.Fprintf(out, "  approving it replaces %s, under which %s receives %s it would no longer: they are retracted from its copies\n",
						resp.Supersedes, recipient, nRecords(resp.Withdrawn))
				}
				for _, c := range resp.Counts {
					fmt.Fprintf(out, "  %s: %d\n", c.Kind, c.Count)
				}
				// In the output itself, not with the notes: it is what approving would change.
				printLifted(out, recipient, previewedName(req), resp.LiftedRedactions)
				tw := newTable(out)
				fmt.Fprintln(tw, "\nID\tKIND\tREGION\tCLASSIFICATION\tREDACTED\tBODY AS SENT")
				for _, it := range resp.Items {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", it.Record.Id, it.Record.Kind, it.Record.Region, record.ClassificationName(it.Record.Classification),
						strings.Join(it.Redacted, ","), truncate(string(it.Record.Body), 60))
				}
				if err := tw.Flush(); err != nil {
					return err
				}
				printPreviewWarnings(cmd.ErrOrStderr(), resp)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&recipient, "recipient", "", "the peer: its SPIFFE ID, or its name or trust domain for its node (required)")
	cmd.Flags().StringVar(&purpose, "purpose", "", "the purpose the peer would state, for policies with accept_purposes (default: the one its node stated last)")
	cmd.Flags().StringVar(&phase, "phase", "", "preview in this phase (default: each crisis's current phase)")
	cmd.Flags().Int32Var(&limit, "limit", 100, "records to show")
	cmd.MarkFlagRequired("recipient")
	f.register(cmd, true)
	f.fill(map[string]string{"recipient": "recipient", "purpose": "purpose", "phase": "phase", "limit": "limit"})
	f.fillArg("FILE|ID", "source")
	f.fillArg("FILE|ID", "id")
	return cmd
}

// whyNothing says each reason the policy of source may grant the recipient nothing, as far as
// the document tells: its window, its accept_purposes against the purpose previewed, its phases;
// else where to look (review AE, AE4: one reason a run, and none under -o json).
func whyNothing(source []byte, resp *pb.PreviewResponse, recipient, phase string) []string {
	parsed, err := policy.Parse(source)
	if err != nil {
		return nil
	}
	d, now := parsed.Doc, time.Now()
	var why []string
	if d.ValidFrom != nil && now.Before(*d.ValidFrom) {
		why = append(why, fmt.Sprintf("this policy grants nothing before its valid_from, %s.", stamp(*d.ValidFrom)))
	}
	if d.ValidUntil != nil && !now.Before(*d.ValidUntil) {
		why = append(why, fmt.Sprintf("this policy's validity window ended at its valid_until, %s: it grants nothing.", stamp(*d.ValidUntil)))
	}
	if len(d.AcceptPurposes) > 0 && !slices.Contains(d.AcceptPurposes, resp.Purpose) {
		why = append(why, fmt.Sprintf("this policy grants only to a recipient that states one of its accept_purposes (%s), and %s states %s: agree the purpose with the partner, or --purpose previews another.",
			strings.Join(d.AcceptPurposes, ", "), recipient, statedPurposeText(resp.Purpose, resp.PurposeStated, resp.PurposeStatedAt)))
	}
	if len(d.Phases) > 0 && phase == "" {
		why = append(why, fmt.Sprintf("this is in each crisis's phase now. This policy grants only in phases %s: --phase %s shows what it would send then.", strings.Join(d.Phases, ", "), d.Phases[len(d.Phases)-1]))
	}
	if len(why) == 0 {
		why = append(why, fmt.Sprintf("none of the %d records considered passes this policy for %s: check its recipients, kinds, max_classification and when (`knooppunt policy lint FILE --node` warns of a field in when that no kind declares).", resp.Considered, recipient))
	}
	return why
}

// statedPurposeText names the purpose a preview or explain took the recipient to state.
func statedPurposeText(purpose string, stated bool, at *timestamppb.Timestamp) string {
	switch {
	case stated && purpose == "":
		return fmt.Sprintf("no purpose, as its node did last in its subscription (%s)", stamp(at.AsTime()))
	case stated:
		return fmt.Sprintf("the purpose %q, as its node did last in its subscription (%s)", purpose, stamp(at.AsTime()))
	case purpose == "":
		return "no purpose (its node has stated none to this node yet: --purpose previews one)"
	default:
		return fmt.Sprintf("the purpose %q (--purpose)", purpose)
	}
}

// printPreviewWarnings says which of the policy's redactions withhold nothing: no record has the
// field (a typo?), or another approved policy sends it all the same.
func printPreviewWarnings(w io.Writer, resp *pb.PreviewResponse) {
	if len(resp.UnmatchedRedactions) > 0 {
		fmt.Fprintf(w, "Warning: no record this policy grants has %s: nothing is withheld under it. Check the spelling against the records' fields.\n",
			strings.Join(resp.UnmatchedRedactions, ", "))
	}
	if len(resp.VoidedRedactions) > 0 {
		fmt.Fprintf(w, "Warning: the recipient gets %s all the same in some records: %s grant(s) them too without withholding it, and a record granted by several policies keeps only the fields all of them withhold.\n",
			strings.Join(resp.VoidedRedactions, ", "), strings.Join(resp.OverridingPolicies, ", "))
	}
}

// liftedJSON is one of a preview's lifted_redactions in -o json.
type liftedJSON struct {
	Field      string   `json:"field"`
	WithheldBy []string `json:"withheld_by"`
}

// printLifted names each field that policies in force withhold from the recipient now and that
// it would get once the previewed policy, named name, is in force too. A field only an earlier
// version of it withholds is lifted because the new version replaces it, not because several
// policies grant the record (review L, L7).
func printLifted(w io.Writer, recipient, name string, lifted []*pb.LiftedRedaction) {
	for _, l := range lifted {
		why := "a record that several policies grant keeps back only what all of them withhold"
		if name != "" && !slices.ContainsFunc(l.WithheldBy, func(id string) bool { n, _, _ := policy.ParseID(id); return n != name }) {
			why = "this version replaces the one in force once approved"
		}
		fmt.Fprintf(w, "WARNING: %s, now withheld from %s by %s, would be sent: %s. Add it to this policy's redact to keep it back.\n",
			l.Field, recipient, strings.Join(l.WithheldBy, ", "), why)
	}
}

// previewedName is the name of the policy a preview is of: the stored id's, or the draft's.
func previewedName(req *pb.PreviewRequest) string {
	if req.Id != "" {
		if name, _, ok := policy.ParseID(req.Id); ok {
			return name
		}
		return req.Id
	}
	if parsed, err := policy.Parse(req.Source); err == nil {
		return parsed.Doc.Name
	}
	return ""
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func newPolicyExplainCmd() *cobra.Command {
	var (
		f                       clientFlags
		recordID, recipient, ph string
		purpose                 string
	)
	cmd := &cobra.Command{
		Use:   "explain",
		Short: "Explain why a record was or was not shared with a peer",
		Long: `Say whether one of this node's own records (--record) goes to one recipient (--recipient: a
peer's SPIFFE ID, or its name or trust domain for its node), and why. The first line gives the
decision: shared under which policies and without which fields, or NOT shared, and the phase it
was decided in; the second what the recipient holds of the record now, by this node's
disclosures; then each stored policy version's verdict: POLICY, GRANTS, WHY and REDACTS.
--phase decides as if the crisis were in that phase (default: its phase now); --purpose states
the purpose the peer would, for policies with accept_purposes (default: the one its node stated
last in its subscription, or none; the third line says which). For officers, admins and the
local socket. -o json gives allow, phase, policies, redacted, verdicts, holder, held, purpose and
purpose_stated.`,
		Example: `  knooppunt policy explain --record shelter-utrecht --recipient spiffe://ncc.crisis.test/node/r1`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.call(func(conn *grpc.ClientConn) error {
				c := pb.NewPolicyServiceClient(conn)
				resp, err := c.Explain(cmd.Context(), &pb.ExplainRequest{RecordId: recordID, Recipient: recipient, Phase: ph, Purpose: purpose})
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if f.output == "json" {
					type verdict struct {
						Policy string   `json:"policy"`
						Grants bool     `json:"grants"`
						Reason string   `json:"reason"`
						Redact []string `json:"redact"`
					}
					type holding struct {
						Version  int64      `json:"version"`
						Policies []string   `json:"policies"`
						At       *time.Time `json:"at"`
					}
					doc := struct {
						Allow    bool      `json:"allow"`
						Phase    string    `json:"phase"`
						Policies []string  `json:"policies"`
						Redacted []string  `json:"redacted"`
						Verdicts []verdict `json:"verdicts"`
						Holder   string    `json:"holder"`
						Held     *holding  `json:"held"`
						// The purpose it was decided for, and whether the peer's node stated it
						// (review AG, AG7).
						Purpose       string `json:"purpose"`
						PurposeStated bool   `json:"purpose_stated"`
					}{Allow: resp.Allow, Phase: resp.Phase, Policies: nonNilStrings(resp.Policies), Redacted: nonNilStrings(resp.Redacted), Verdicts: []verdict{}, Holder: resp.Holder,
						Purpose: resp.Purpose, PurposeStated: resp.PurposeStated}
					if h := resp.Held; h != nil {
						at := h.At.AsTime()
						doc.Held = &holding{h.Version, nonNilStrings(h.Policies), &at}
					}
					for _, v := range resp.Verdicts {
						doc.Verdicts = append(doc.Verdicts, verdict{v.PolicyId, v.Grants, v.Reason, nonNilStrings(v.Redact)})
					}
					return printJSON(out, doc)
				}
				verdict := "NOT shared"
				if resp.Allow {
					verdict = "shared under " + strings.Join(resp.Policies, ", ")
					if len(resp.Redacted) > 0 {
						verdict += ", without " + strings.Join(resp.Redacted, ", ")
					}
				}
				fmt.Fprintf(out, "%s → %s: %s (phase %s)\n", recordID, recipient, verdict, resp.Phase)
				fmt.Fprintln(out, holdingLine(resp))
				fmt.Fprintf(out, "decided for %s stating %s\n", recipient, statedPurposeText(resp.Purpose, resp.PurposeStated, resp.PurposeStatedAt))
				tw := newTable(out)
				fmt.Fprintln(tw, "POLICY\tGRANTS\tWHY\tREDACTS")
				granting := 0
				for _, v := range resp.Verdicts {
					redacts := strings.Join(v.Redact, ",")
					if v.Grants {
						granting++
						if redacts == "" {
							redacts = "nothing"
						}
					}
					fmt.Fprintf(tw, "%s\t%v\t%s\t%s\n", v.PolicyId, v.Grants, v.Reason, redacts)
				}
				if err := tw.Flush(); err != nil {
					return err
				}
				if granting > 1 {
					// A field goes out unless every granting policy withholds it.
					fmt.Fprintln(out, "Several policies grant it: only what all of them redact is withheld.")
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&recordID, "record", "", "record id (required)")
	cmd.Flags().StringVar(&recipient, "recipient", "", "the peer: its SPIFFE ID, or its name or trust domain for its node (required)")
	cmd.Flags().StringVar(&purpose, "purpose", "", "the purpose the peer would state, for policies with accept_purposes (default: the one its node stated last)")
	cmd.Flags().StringVar(&ph, "phase", "", "explain in this phase (default: the crisis's current phase)")
	cmd.MarkFlagRequired("record")
	cmd.MarkFlagRequired("recipient")
	f.register(cmd, true)
	f.fill(map[string]string{"record": "record_id", "recipient": "recipient", "purpose": "purpose", "phase": "phase"})
	return cmd
}

// holdingLine says what the recipient's holder holds of the record, by this node's disclosures,
// against what policy grants now: the answer to "why does the partner not have it?".
func holdingLine(resp *pb.ExplainResponse) string {
	h := resp.Held
	switch {
	case h == nil && resp.Allow:
		return fmt.Sprintf("%s holds no copy yet: its subscription brings it (peer show says whether it is open)", resp.Holder)
	case h == nil:
		return fmt.Sprintf("%s holds no copy", resp.Holder)
	}
	held := fmt.Sprintf("%s holds version %d, sent under %s at %s", resp.Holder, h.Version, strings.Join(h.Policies, ", "), stamp(h.At.AsTime()))
	if !resp.Allow {
		held += ": no longer granted, its retraction is on its way"
	}
	return held
}

// policyDiffSources reads each argument, a file or a stored policy, with the label its header
// gives it: a stored one by NAME@VERSION and state, so that a diff never leaves unsaid that it
// compared with a revoked version, say.
func policyDiffSources(cmd *cobra.Command, f *clientFlags, args []string) (srcs [2][]byte, labels [2]string, err error) {
	for i, a := range args {
		if b, err := os.ReadFile(a); err == nil {
			srcs[i], labels[i] = b, a
			continue
		}
		c, closeConn, err := f.policies()
		if err != nil {
			return srcs, labels, err
		}
		p, err := storedForDiff(cmd, c, a)
		closeConn()
		if status.Code(err) == codes.NotFound {
			return srcs, labels, fmt.Errorf("%s: neither a file nor a stored policy (NAME@VERSION, or NAME for the version in force; `policy list` shows them)", a)
		}
		if err != nil {
			return srcs, labels, callError(f, err)
		}
		srcs[i], labels[i] = p.Source, fmt.Sprintf("%s (%s)", p.Id, p.State)
	}
	return srcs, labels, nil
}

// storedForDiff is the stored policy id names: NAME@VERSION, or for NAME the version in force
// (approved), else the newest, which may be proposed, revoked or rejected.
func storedForDiff(cmd *cobra.Command, c pb.PolicyServiceClient, id string) (*pb.PolicyInfo, error) {
	if strings.Contains(id, "@") {
		return c.Get(cmd.Context(), &pb.GetPolicyRequest{Id: id})
	}
	list, err := c.List(cmd.Context(), &pb.ListPoliciesRequest{Name: id, State: policy.StateApproved})
	if err != nil {
		return nil, err
	}
	for _, p := range list.Policies {
		if p.Name == id {
			return p, nil
		}
	}
	return c.Get(cmd.Context(), &pb.GetPolicyRequest{Id: id})
}

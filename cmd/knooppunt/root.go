package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/knooppunt/knooppunt/node/record"
	"github.com/knooppunt/knooppunt/policy"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "knooppunt",
		Short: "A federated crisis-information node",
		Long: `Knooppunt keeps one crisis partner's records and exchanges the ones its security officers
approved with other partners' nodes.

Client commands talk to a node picked with --node ADDR, where ADDR is unix:///path/knooppunt.sock
or host:port. KNOOPPUNT_NODE sets the default. The unix socket is for local administration by
the user that runs the node. Over host:port every call is mutual TLS with your own X.509-SVID:
from files (--svid-cert, --svid-key, --bundle, or KNOOPPUNT_SVID_CERT, KNOOPPUNT_SVID_KEY,
KNOOPPUNT_BUNDLE) or from the SPIRE Workload API (--workload-api, or SPIFFE_ENDPOINT_SOCKET).`,
		Example: `  knooppunt serve --data-dir /var/lib/knooppunt
  export KNOOPPUNT_NODE=unix:///var/lib/knooppunt/knooppunt.sock
  knooppunt record list --crisis oekraine -o json`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
	}
	root.AddCommand(newServeCmd(), newRecordCmd(), newImportCmd(), newExportCmd(), newStatusCmd(), newHealthCmd(), newDemoCmd(), newCACmd(),
		newPolicyCmd(), newRuleCmd(), newAlertCmd(), newAssessmentCmd(), newPhaseCmd(), newExerciseCmd(), newAuditCmd(), newSearchCmd(), newPictureCmd(), newClusterCmd(), newBackupCmd(), newRestoreCmd(), newInitCmd(), newPeerCmd(), newWebhookCmd(), newExtractTextCmd())
	root.SetFlagErrorFunc(refuseFlags)
	refuseUnknownSubcommands(root)
	nameArgs(root)
	markRequired(root)
	completeClosedSets(root)
	return root
}

// closedSets are the values of the flags that take one of a few, by flag name, for the shell's
// completion (review Z, Z15).
var closedSets = func() map[string][]string {
	regions := []string{"NL"}
	for i := 1; i <= 25; i++ {
		regions = append(regions, fmt.Sprintf("VR%02d", i))
	}
	var classes []string
	for c := pb.Classification_PUBLIC; c <= pb.Classification_SECRET; c++ {
		classes = append(classes, record.ClassificationName(c))
	}
	return map[string][]string{
		"output":             {"table", "json"},
		"region":             regions,
		"classification":     classes,
		"max-classification": classes,
		"status":             {"test", "draft"},
		"consistency":        {"local", "strong"},
		"phase":              policy.Phases,
		"state":              policy.States,
	}
}()

// completeClosedSets has the shell complete the values of every flag of closedSets, and the
// phase that phase set takes; an -o that names a file (peer invite's) is left alone.
func completeClosedSets(c *cobra.Command) {
	for _, sub := range c.Commands() {
		completeClosedSets(sub)
	}
	for name, values := range closedSets {
		if c.Flags().Lookup(name) == nil || (name == "output" && c.Annotations[outputFormat] == "") {
			continue
		}
		c.RegisterFlagCompletionFunc(name, cobra.FixedCompletions(values, cobra.ShellCompDirectiveNoFileComp))
	}
	if c.CommandPath() == "knooppunt phase set" {
		c.ValidArgs = policy.Phases
	}
}

// markRequired says "(required)" in the help of every flag a command requires, as some said by
// hand and others did not (review Z, Z8).
func markRequired(c *cobra.Command) {
	for _, sub := range c.Commands() {
		markRequired(sub)
	}
	c.Flags().VisitAll(func(fl *pflag.Flag) {
		if req := fl.Annotations[cobra.BashCompOneRequiredFlag]; len(req) > 0 && req[0] == "true" && !strings.Contains(fl.Usage, "(required)") {
			fl.Usage += " (required)"
		}
	})
}

// nameArgs makes every command that takes arguments name, when one is missing or one too many
// is given, the arguments by the command's Use line: cobra says only "accepts 1 arg(s), received
// 0", and the person is not told to give an ID or a FILE.
func nameArgs(c *cobra.Command) {
	for _, sub := range c.Commands() {
		nameArgs(sub)
	}
	names := argNames(c.Use)
	if c.Args == nil || len(names) == 0 {
		return
	}
	check := c.Args
	c.Args = func(cmd *cobra.Command, args []string) error {
		err := check(cmd, args)
		if err == nil {
			return nil
		}
		usage := cmd.CommandPath() + strings.TrimPrefix(cmd.Use, cmd.Name())
		switch {
		case len(args) < len(names):
			return invalid(fmt.Errorf("give %s: %s", strings.Join(names[len(args):], " "), usage))
		case len(args) > len(names):
			extra := make([]string, len(args)-len(names))
			for i, a := range args[len(names):] {
				extra[i] = fmt.Sprintf("%q", a)
			}
			what := "one argument too many"
			if len(extra) > 1 {
				what = fmt.Sprintf("%d arguments too many", len(extra))
			}
			return invalid(fmt.Errorf("%s: %s: %s", strings.Join(extra, " "), what, usage))
		}
		return invalid(err)
	}
}

// argNames are the arguments a Use line names after the command: its words up to the first
// flag or optional part ("get ID SHA256 -o FILE": ID, SHA256).
func argNames(use string) []string {
	words := strings.Fields(use)
	var names []string
	for _, w := range words[min(1, len(words)):] {
		if strings.HasPrefix(w, "-") || strings.HasPrefix(w, "[") {
			break
		}
		names = append(names, w)
	}
	return names
}

// refuseUnknownSubcommands makes every group of commands (record, exercise, webhook, …) refuse
// a word that is none of its commands, with exit status 1: cobra would print the group's help
// and exit 0, so that a runbook's `knooppunt exercise stop x` seemed to succeed. Without
// arguments a group still prints its help.
func refuseUnknownSubcommands(c *cobra.Command) {
	for _, sub := range c.Commands() {
		refuseUnknownSubcommands(sub)
	}
	if c.HasParent() && c.HasSubCommands() && c.Run == nil && c.RunE == nil {
		c.SuggestionsMinimumDistance = 2 // as the root's, which cobra sets when it looks
		c.Args = func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return nil
			}
			return unknownSubcommand(cmd, args[0])
		}
		// A mistyped command with flags (`record lst --crisis x`) stops at the first flag, which
		// the group does not have: the word before it is what to mend, not the flag (review AL,
		// AL1). The flags the group does take are read before it, so a word seen there is one.
		// Its commands inherit this: on one of them (`record get ID --bogus`) a word before the
		// flag is an argument.
		group := c
		c.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
			if words := cmd.Flags().Args(); cmd == group && len(words) > 0 {
				return unknownSubcommand(cmd, words[0])
			}
			return refuseFlags(cmd, err)
		})
		c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	}
}

// unknownSubcommand refuses word, which is none of the group cmd's commands, with the commands
// it may have meant, as the root offers (review Z, Z14).
func unknownSubcommand(cmd *cobra.Command, word string) error {
	msg := fmt.Sprintf("unknown command %q for %q", word, cmd.CommandPath())
	if like := cmd.SuggestionsFor(word); len(like) > 0 {
		msg += ": did you mean " + strings.Join(like, " or ") + "?"
	}
	return errors.New(msg)
}

package main

import (
	"github.com/spf13/cobra"
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
	root.AddCommand(newServeCmd(), newRecordCmd(), newImportCmd(), newExportCmd(), newStatusCmd(), newDemoCmd(), newCACmd(),
		newPolicyCmd(), newRuleCmd(), newAlertCmd(), newAssessmentCmd(), newPhaseCmd(), newExerciseCmd(), newAuditCmd(), newSearchCmd(), newPictureCmd(), newClusterCmd(), newBackupCmd(), newRestoreCmd(), newInitCmd(), newPeerCmd(), newWebhookCmd())
	refuseUnknownSubcommands(root)
	return root
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
		c.Args = cobra.NoArgs
		c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	}
}

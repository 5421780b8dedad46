package main

import (
	"github.com/spf13/cobra"
)

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "knooppunt",
		Short: "A federated crisis-information node",
		Long: `Knooppunt keeps one crisis partner's records and, later, exchanges the approved ones with
other partners' nodes.

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
	return root
}

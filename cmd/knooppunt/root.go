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
or host:port. KNOOPPUNT_NODE sets the default.`,
		Example: `  knooppunt serve --data-dir /var/lib/knooppunt
  export KNOOPPUNT_NODE=unix:///var/lib/knooppunt/knooppunt.sock
  knooppunt record list --crisis oekraine -o json`,
		SilenceUsage:  true,
		SilenceErrors: false,
		Version:       version,
	}
	root.AddCommand(newServeCmd(), newRecordCmd(), newImportCmd(), newStatusCmd(), newDemoCmd())
	return root
}

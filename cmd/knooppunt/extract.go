package main

import (
	"github.com/spf13/cobra"

	"github.com/knooppunt/knooppunt/node/attach"
)

// newExtractTextCmd is the child a node runs to read one PDF's text (attach.ExtractIn): the PDF
// on standard input, its text on standard output. Hidden: people do not call it.
func newExtractTextCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "extract-text",
		Short:  "Read a PDF's text, for a node's full-text index (the node runs this)",
		Args:   cobra.NoArgs,
		Hidden: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return attach.ServeExtract(cmd.InOrStdin(), cmd.OutOrStdout())
		},
	}
}

package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/knooppunt/knooppunt/node/record"
	"github.com/knooppunt/knooppunt/node/record/importfile"
)

func newImportCmd() *cobra.Command {
	var (
		f        clientFlags
		format   string
		batch    int
		defaults record.JSON
		quiet    bool
	)
	cmd := &cobra.Command{
		Use:   "import FILE",
		Short: "Load records from a JSON Lines or CSV file",
		Long: `Load records in batches and print how many were accepted and, for each rejected row, why.

JSON Lines: one record per line, as "record get -o json" prints it:
  {"id":"utr-1","kind":"shelter.capacity","crisis":"oekraine","region":"VR09",
   "classification":"internal","body":{"municipality":"Utrecht","beds_total":120,"beds_free":14}}

CSV: a header row names the columns. id, kind, crisis, region, classification, valid_until and
labels (key=value;key=value) fill the record; body holds a whole JSON object; label.KEY sets one
label; every other column, or body.FIELD, becomes a body field (numbers and true/false are typed).
--kind, --crisis, --region and --classification fill what a row leaves empty.

The exit code is 0 when every row was stored, 2 when some were rejected.`,
		Example: `  knooppunt import shelters.csv --kind shelter.capacity --crisis oekraine --classification internal
  knooppunt import export.jsonl --batch 1000 -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.checkOutput(); err != nil {
				return err
			}
			if batch < 1 || batch > 10000 {
				return fmt.Errorf("--batch %d: use 1 to 10000", batch)
			}
			file, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer file.Close()
			if format == "" {
				if format = importfile.FormatOf(args[0]); format == "" {
					format = strings.TrimPrefix(strings.ToLower(filepath.Ext(args[0])), ".")
				}
			}
			fi, err := file.Stat()
			if err != nil {
				return err
			}
			bar := progressbar.NewOptions64(fi.Size(),
				progressbar.OptionSetWriter(cmd.ErrOrStderr()),
				progressbar.OptionSetVisibility(!quiet && f.output != "json"),
				progressbar.OptionSetDescription("importing"),
				progressbar.OptionShowBytes(true),
				progressbar.OptionThrottle(100*time.Millisecond),
				progressbar.OptionClearOnFinish())
			rows, err := importfile.Read(io.TeeReader(file, bar), format, defaults)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			c, closeConn, err := f.records()
			if err != nil {
				return err
			}
			defer closeConn()
			sum, err := importfile.Import(cmd.Context(), c, rows, batch, nil)
			bar.Finish()
			if err != nil {
				return callError(&f, err)
			}
			sum.File = args[0]
			if err := printSummary(cmd.OutOrStdout(), f.output, sum); err != nil {
				return err
			}
			if sum.Rejected > 0 {
				return exitError(2)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&format, "format", "", "jsonl or csv (default: from the file name)")
	fl.IntVar(&batch, "batch", 500, "records per write")
	fl.StringVar(&defaults.Kind, "kind", "", "kind for rows that name none")
	fl.StringVar(&defaults.Crisis, "crisis", "", "crisis for rows that name none")
	fl.StringVar(&defaults.Region, "region", "", "region for rows that name none")
	fl.StringVar(&defaults.Classification, "classification", "", "classification for rows that name none")
	fl.BoolVarP(&quiet, "quiet", "q", false, "no progress bar")
	f.register(cmd, true)
	return cmd
}

func printSummary(w io.Writer, format string, sum importfile.Summary) error {
	if sum.Rejections == nil {
		sum.Rejections = []importfile.Rejection{}
	}
	if format == "json" {
		return printJSON(w, sum)
	}
	fmt.Fprintf(w, "%s: %d accepted, %d rejected\n", sum.File, sum.Accepted, sum.Rejected)
	if sum.Rejected == 0 {
		return nil
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "LINE\tID\tCODE\tREASON")
	for _, r := range sum.Rejections {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", r.Line, r.ID, r.Code, r.Reason)
	}
	return tw.Flush()
}

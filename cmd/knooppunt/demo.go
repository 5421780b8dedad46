package main

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/knooppunt/knooppunt/node"
	"github.com/knooppunt/knooppunt/node/config"
	"github.com/knooppunt/knooppunt/node/record"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

//go:embed scenario/oekraine.jsonl
var oekraineScenario []byte

func newDemoCmd() *cobra.Command {
	var (
		dataDir string
		once    bool
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Start a demo node with the Ukraine refugee reception scenario",
		Long: `Start one node, load the Ukraine refugee reception scenario (shelter capacity for twelve
municipalities in VR09 Utrecht and VR19 Zeeland, a situation report and a Q&A), and list it.
The shelter figures are made up.

The demo then stays up and prints how to try commands against it; Ctrl-C stops it cleanly.
With --once it lists the records and exits 0.`,
		Example: `  knooppunt demo
  knooppunt demo --once`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dataDir == "" {
				dir, err := os.MkdirTemp("", "knooppunt-demo-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(dir)
				dataDir = dir
			}
			return runDemo(cmd.Context(), cmd.OutOrStdout(), dataDir, once)
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "keep the demo's data here (default: a temporary directory)")
	cmd.Flags().BoolVar(&once, "once", false, "print the records and exit")
	return cmd
}

func runDemo(ctx context.Context, out io.Writer, dataDir string, once bool) error {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if !once {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	cfg := config.Default()
	cfg.Org = "lcvs.crisis.test"
	cfg.Name = "lcvs"
	n, err := node.Start(ctx, node.Options{DataDir: dataDir, Config: cfg, Logger: log, Version: version})
	if err != nil {
		return err
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		n.Stop(stopCtx)
	}()

	sock, _ := filepath.Abs(n.SocketPath())
	f := clientFlags{node: "unix://" + sock, output: "table"}
	c, closeConn, err := f.records()
	if err != nil {
		return err
	}
	defer closeConn()

	rows, err := readJSONL(bytes.NewReader(oekraineScenario), record.JSON{})
	if err != nil {
		return err
	}
	sum, err := importRows(ctx, c, rows, 100)
	if err != nil {
		return callError(&f, err)
	}
	if sum.Rejected > 0 {
		return fmt.Errorf("demo scenario: %d records rejected: %+v", sum.Rejected, sum.Rejections)
	}
	resp, err := c.List(ctx, &pb.ListRequest{Crisis: "oekraine", PageSize: 1000})
	if err != nil {
		return callError(&f, err)
	}
	fmt.Fprintf(out, "Knooppunt demo: node %s (%s), crisis oekraine, %d records. Shelter figures are made up.\n\n", cfg.Name, cfg.Org, sum.Accepted)
	if err := printRecords(out, out, "table", resp.Records, resp.NextPageToken); err != nil {
		return err
	}
	if once {
		return nil
	}
	fmt.Fprintf(out, `
The node is running. In another terminal, try:

  export KNOOPPUNT_NODE=unix://%s
  knooppunt status
  knooppunt record list --kind shelter.capacity --region VR19
  knooppunt record get sitrep-oekraine-1 -o json
  knooppunt record watch --crisis oekraine
  knooppunt record put --kind signal --crisis oekraine --region VR09 --classification internal \
      --body '{"summary":"more arrivals expected in Utrecht"}'

(Build the command with "make build"; it lands in ~/.cache/knooppunt/bin/knooppunt.)
Press Ctrl-C to stop.
`, sock)
	select {
	case <-ctx.Done():
	case err := <-n.Failed():
		return err
	}
	fmt.Fprintln(out, "stopping")
	return nil
}

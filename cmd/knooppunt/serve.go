package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/knooppunt/knooppunt/node"
	"github.com/knooppunt/knooppunt/node/attach"
	"github.com/knooppunt/knooppunt/node/config"
)

func newServeCmd() *cobra.Command {
	var (
		dataDir, configFile, metricsAddr, logLevel string
		metricsSet                                 bool
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run a node",
		Long: `Run a node on the data directory. Its config is --config, or else DIR/node.yaml when the
data directory holds one (as knooppunt init writes it). With neither it runs one replica of the org
local.crisis.test with the built-in demo kinds. Its local socket is DIR/knooppunt.sock, usable only
by the user that runs the node.

SIGTERM or SIGINT stops it cleanly: calls in flight finish, queued writes commit, Raft closes.`,
		Example: `  knooppunt serve --data-dir ./knooppunt-data
  knooppunt serve --data-dir /var/lib/knooppunt --config /etc/knooppunt/node.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dataDir == "" {
				return errors.New("--data-dir: empty: name the node's data directory, such as --data-dir /var/lib/knooppunt, or leave the flag out for ./knooppunt-data")
			}
			metricsSet = cmd.Flags().Changed("metrics-addr")
			// The config that init writes into the data directory is the node's, when no other
			// is named: without it the node would run as the demo org in the org's own directory.
			if configFile == "" {
				if own := filepath.Join(dataDir, configName); isFile(own) {
					configFile = own
				}
			}
			cfg := config.Default()
			if configFile != "" {
				var err error
				if cfg, err = config.Load(configFile); err != nil {
					return err
				}
			}
			if metricsSet {
				cfg.MetricsAddr = metricsAddr
			}
			log, err := newLogger(os.Stderr, logLevel, cfg.Log.Format)
			if err != nil {
				return err
			}
			if configFile == "" {
				// A mistyped --data-dir would otherwise start a node of another org, quietly
				// (review AA, AA11).
				log.Warn("no config: --config names none and the data directory holds no "+configName+": this is a demo node of "+cfg.Org+"; for your organisation's node give --config, or the data directory init made",
					"data_dir", dataDir)
			}
			return serve(cmd.Context(), log, dataDir, cfg, configFile)
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "knooppunt-data", "directory for the database, the Raft log and the socket")
	cmd.Flags().StringVar(&configFile, "config", "", "node config file (YAML); none: DIR/node.yaml if there is one, else the demo defaults")
	cmd.Flags().StringVar(&metricsAddr, "metrics-addr", "", "serve /metrics on this address (overrides the config; empty: off)")
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}

// newLogger logs at level in format (log.format in the config): text, or json with the same
// attributes, one object a line, for a log collector.
func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "", "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log.format %q: use text or json", format)
}

func serve(ctx context.Context, log *slog.Logger, dataDir string, cfg *config.Config, configFile string) error {
	privateFiles()
	// PDFs are read in a child process of this binary (knooppunt extract-text): a hostile file
	// ends that process, not the node.
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("this program's own path, to read PDFs in a child process: %w", err)
	}
	extract := attach.ExtractIn(attach.ExtractTimeout, exe, "extract-text")
	n, err := node.Start(ctx, node.Options{DataDir: dataDir, Config: cfg, ConfigFile: configFile, Logger: log, Version: version, Extractor: extract,
		// A committed entry the database cannot take (a full disk): the replica stops, with what
		// to do and no stack trace, which read as a crash of the program (review AA, AA10).
		Stop: func(msg string) {
			fmt.Fprintln(os.Stderr, "knooppunt: "+msg)
			os.Exit(1)
		}})
	if err != nil {
		return err
	}
	var failed error
	select {
	case <-ctx.Done():
		// Which signal: a supervisor's log tells a stop (SIGTERM) from a Ctrl-C (review Z, Z19).
		log.Info("stopping", "reason", "signal", "signal", context.Cause(ctx).Error())
	case failed = <-n.Failed():
		log.Error("a server stopped", "err", failed)
	}
	stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Stop(stopCtx); err != nil {
		return err
	}
	return failed
}

// isFile says whether path names a regular file.
func isFile(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular()
}

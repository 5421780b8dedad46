package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/knooppunt/knooppunt/node"
)

func newHealthCmd() *cobra.Command {
	var (
		f       clientFlags
		live    bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "health",
		Short: "Check a node's health, for probes and supervisors",
		Long: `Check a node's health through the gRPC health service, and exit 0 when it serves, 1 when not.

Without --live it asks whether the replica serves: whether it knows a leader of its group, so
that a load balancer or a Kubernetes readiness probe sends clients to it. A replica cut off from
a majority of its group is NOT_SERVING here, and so is one that has known no leader since it
started (waiting to be joined, or of a group without a majority).

With --live it asks whether the node runs at all, whatever its group does: for a startup or
liveness probe. A survivor of a lost majority stays live, so that its local reads and backups stay
available for the recovery (docs/cluster.md); the node says NOT_SERVING here only once it has
begun a clean stop.

-o json prints one document, {"check", "status", "ok"}, whatever happens: a node that does not
answer at all is status UNREACHABLE, with its "error" as every command's -o json gives one on
standard error ({"code", "message"}), which says it there too. A replica that does not serve says
why on standard error, as {"error": {"code": "UNAVAILABLE", …}}.

The binary is its own probe: an image needs no other program for it.`,
		Example: `  knooppunt health --node unix:///var/lib/knooppunt/knooppunt.sock
  knooppunt health --live --timeout 2s --node unix:///var/lib/knooppunt/knooppunt.sock -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if timeout <= 0 {
				return invalid(fmt.Errorf("--timeout %s: give a duration above 0, such as 2s", timeout))
			}
			service, what := "", "serving"
			if live {
				service, what = node.LiveService, "live"
			}
			var st healthpb.HealthCheckResponse_ServingStatus
			err := f.call(func(conn *grpc.ClientConn) error {
				ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
				defer cancel()
				resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
				if err != nil {
					return err
				}
				st = resp.Status
				return nil
			})
			if err != nil {
				if f.output == "json" {
					// A probe's script reads one document whatever happened; stderr says why.
					printJSON(cmd.OutOrStdout(), map[string]any{"check": what, "status": "UNREACHABLE", "ok": false, "error": errorOf(err)})
				}
				return err
			}
			ok := st == healthpb.HealthCheckResponse_SERVING
			out := cmd.OutOrStdout()
			if f.output == "json" {
				if err := printJSON(out, map[string]any{"check": what, "status": st.String(), "ok": ok}); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(out, "%s: %s\n", what, st)
			}
			switch {
			case !ok && !live:
				return &codedError{codes.Unavailable, errors.New("the replica knows no leader of its group, or it is stopping: see `knooppunt status` and docs/cluster.md")}
			case !ok:
				return exitError(1) // stopping: the answer says all there is
			}
			return nil
		},
	}
	f.register(cmd, true)
	cmd.Flags().BoolVar(&live, "live", false, "ask whether the node runs, whatever its group does (for a liveness probe)")
	durationFlag(cmd.Flags(), &timeout, "timeout", 5*time.Second, "how long to wait for the answer")
	return cmd
}

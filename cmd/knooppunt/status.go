package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

func newStatusCmd() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:     "status",
		Short:   "Show what a node is and how it is doing",
		Example: `  knooppunt status --node unix:///var/lib/knooppunt/knooppunt.sock -o json`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.call(func(conn *grpc.ClientConn) error {
				st, err := pb.NewStatusServiceClient(conn).Status(cmd.Context(), &pb.StatusRequest{})
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if f.output == "json" {
					return printJSON(out, map[string]any{
						"node_name": st.NodeName, "org": st.Org, "version": st.Version,
						"raft_state": st.RaftState, "leader": st.Leader, "applied_index": st.AppliedIndex,
						"records": st.Records, "db_bytes": st.DbBytes, "last_seq": st.LastSeq,
						"kinds": st.Kinds, "started_at": st.StartedAt.AsTime(),
					})
				}
				tw := newTable(out)
				fmt.Fprintf(tw, "node\t%s\n", st.NodeName)
				fmt.Fprintf(tw, "org\t%s\n", st.Org)
				fmt.Fprintf(tw, "version\t%s\n", st.Version)
				fmt.Fprintf(tw, "raft\t%s (leader %s, applied index %d)\n", st.RaftState, st.Leader, st.AppliedIndex)
				fmt.Fprintf(tw, "records\t%d (change feed at %d)\n", st.Records, st.LastSeq)
				fmt.Fprintf(tw, "store\t%.1f MiB\n", float64(st.DbBytes)/(1<<20))
				fmt.Fprintf(tw, "kinds\t%v\n", st.Kinds)
				fmt.Fprintf(tw, "up since\t%s\n", st.StartedAt.AsTime().Local().Format(time.RFC3339))
				return tw.Flush()
			})
		},
	}
	f.register(cmd, true)
	return cmd
}

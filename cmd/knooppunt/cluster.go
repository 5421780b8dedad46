package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	"github.com/knooppunt/knooppunt/node"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

func newClusterCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "See and change the replicas of a node's Raft group",
		Long: `A node is one replica, or a Raft group of 3 or 5. These commands show the group and add or
remove replicas. They are for admins and the local socket; join and remove run on the leader, to
which any replica forwards them.`,
	}
	cmd.AddCommand(newClusterStatusCmd(), newClusterJoinCmd(), newClusterRemoveCmd())
	return cmd
}

func printCluster(w io.Writer, format string, st *pb.ClusterStatusResponse) error {
	if format == "json" {
		type replica struct {
			ID          string     `json:"id"`
			RaftAddress string     `json:"raft_address"`
			Suffrage    string     `json:"suffrage"`
			Leader      bool       `json:"leader"`
			Unreachable bool       `json:"unreachable"`
			LastContact *time.Time `json:"last_contact,omitempty"`
			// OlderRelease: the leader takes no writes until this replica runs its release.
			OlderRelease bool `json:"older_release"`
			// NoAPIAddress: the answering replica's raft.servers does not name this one.
			NoAPIAddress bool `json:"no_api_address"`
			// SnapshotRefused, on the leader: why the replica fails to restore its snapshots.
			SnapshotRefused string `json:"snapshot_refused,omitempty"`
		}
		doc := struct {
			Replica           string    `json:"replica"`
			State             string    `json:"state"`
			Leader            string    `json:"leader"`
			AppliedIndex      uint64    `json:"applied_index"`
			CommitIndex       uint64    `json:"commit_index"`
			LastSnapshotIndex uint64    `json:"last_snapshot_index"`
			ApplyLevel        uint32    `json:"apply_level"`
			SnapshotRefused   string    `json:"snapshot_refused,omitempty"`
			CatchingUp        bool      `json:"catching_up,omitempty"`
			Replicas          []replica `json:"replicas"`
		}{st.Replica, st.State, st.Leader, st.AppliedIndex, st.CommitIndex, st.LastSnapshotIndex, st.ApplyLevel, st.SnapshotRefused, st.CatchingUp, []replica{}}
		for _, r := range st.Replicas {
			doc.Replicas = append(doc.Replicas, replica{r.Id, r.RaftAddress, r.Suffrage, r.Leader, r.Unreachable, optionalTime(r.LastContact), r.OlderRelease, r.NoApiAddress, r.SnapshotRefused})
		}
		return printJSON(w, doc)
	}
	member := isMember(st)
	leader := "leader " + st.Leader
	switch {
	case !member:
		leader = node.NotMember
	case st.Leader == "":
		leader = "no leader known"
	}
	state := st.State
	if st.CatchingUp {
		state += ", CATCHING UP (started on an empty Raft directory, or on a log that lost entries: it asks for no vote until it holds all the leader committed)"
	}
	fmt.Fprintf(w, "replica %s is %s; %s; applied %d, committed %d, last snapshot %d\n\n",
		st.Replica, state, leader, st.AppliedIndex, st.CommitIndex, st.LastSnapshotIndex)
	if len(st.Replicas) == 0 {
		return nil // one waiting to be joined knows of no group
	}
	tw := newTable(w)
	leads := st.State == "Leader"
	header := "ID\tRAFT ADDRESS\tSUFFRAGE\tLEADER"
	if leads {
		header += "\tREACHABLE"
	}
	fmt.Fprintln(tw, header)
	for _, r := range st.Replicas {
		addr := r.RaftAddress
		if addr == "" {
			addr = "(none: runs alone, no raft.listen)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v", r.Id, addr, r.Suffrage, r.Leader)
		if leads {
			switch {
			case r.Leader:
				fmt.Fprint(tw, "\t-")
			case !r.Unreachable:
				fmt.Fprint(tw, "\tyes")
			case r.LastContact != nil:
				fmt.Fprintf(tw, "\tNO: last answered %s ago", age(r.LastContact))
			default:
				fmt.Fprint(tw, "\tNO: not answered since this replica leads")
			}
		}
		fmt.Fprintln(tw)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var older, unaddressed []string
	for _, r := range st.Replicas {
		if r.OlderRelease {
			older = append(older, r.Id)
		}
		if r.NoApiAddress {
			unaddressed = append(unaddressed, r.Id)
		}
	}
	if len(unaddressed) > 0 {
		if _, err := fmt.Fprintf(w, "\nNO API ADDRESS for %s in the raft.servers of %s: a write %s forwards while one of them leads fails; add them to raft.servers there (docs/cluster.md).\n",
			strings.Join(unaddressed, ", "), st.Replica, st.Replica); err != nil {
			return err
		}
	}
	// A replica that cannot restore the leader's snapshots serves what it held before (review AH,
	// AH2): said on a line of its own, by the leader for each (a follower's list names none), and
	// by the replica of itself.
	refused := func(who, whose, why string) error {
		_, err := fmt.Fprintf(w, "\nSNAPSHOT REFUSED: %s cannot restore %s leader's snapshots (%s): it takes in nothing more, and says NOT_SERVING. A snapshot of a newer release: upgrade it.\n", who, whose, why)
		return err
	}
	for _, r := range st.Replicas {
		if r.SnapshotRefused != "" {
			if err := refused(r.Id, "the", r.SnapshotRefused); err != nil {
				return err
			}
		}
	}
	if st.SnapshotRefused != "" {
		if err := refused("this replica, "+st.Replica+",", "its", st.SnapshotRefused); err != nil {
			return err
		}
	}
	if len(older) > 0 {
		// Said on its own line, whatever the table shows: the node takes no writes (review V, V2).
		runs, them := "run", "them"
		if len(older) == 1 {
			runs, them = "runs", "it"
		}
		if _, err := fmt.Fprintf(w, "\nWRITES REFUSED: %s %s an earlier knooppunt release than the leader, which applies log entries otherwise: upgrade %s (docs/cluster.md, Upgrades).\n",
			strings.Join(older, ", "), runs, them); err != nil {
			return err
		}
	}
	if !leads && member && len(st.Replicas) > 1 {
		ask := "ask " + st.Leader
		switch {
		case st.Leader == "" && st.CatchingUp:
			// It may wait for good: the replica that led it is gone (docs/cluster.md).
			ask = "no replica leads, and this one, catching up, asks for no vote: start the replica that led it, or the others; if none will come back, start the group again from a replica (docs/cluster.md, A majority is lost)"
		case st.Leader == "":
			ask = "no replica leads just now: ask again in a moment"
		}
		_, err := fmt.Fprintf(w, "\nOnly the leader knows which replicas it reaches: %s.\n", ask)
		return err
	}
	return nil
}

// isMember says whether the replica that answered is in its group's latest Raft configuration:
// one that was removed, or waits to be joined, is not, and no leader it could name would answer
// for it.
func isMember(st *pb.ClusterStatusResponse) bool {
	return slices.ContainsFunc(st.Replicas, func(r *pb.Replica) bool { return r.Id == st.Replica })
}

func newClusterStatusCmd() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the replicas and who leads",
		Long: `Show the node's Raft group as the replica asked sees it. The first line gives its id, its Raft
state, the leader (or "not a member of the group" when it is not in the latest configuration:
removed, or waiting to be joined), and its applied, committed and last snapshot indexes. The
table lists each replica: ID, RAFT ADDRESS, SUFFRAGE and LEADER, and REACHABLE when the replica
asked leads, since only the leader knows which it reaches; the leader also names, under WRITES
REFUSED, a replica that runs an earlier release than its own: upgrade it. For admins and the
local socket. -o json gives each field, with apply_level and each replica's last_contact and
older_release.`,
		Example: `  knooppunt cluster status -o json`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.call(func(conn *grpc.ClientConn) error {
				st, err := pb.NewClusterServiceClient(conn).Status(cmd.Context(), &pb.ClusterStatusRequest{})
				if err != nil {
					return err
				}
				return printCluster(cmd.OutOrStdout(), f.output, st)
			})
		},
	}
	f.register(cmd, true)
	return cmd
}

func newClusterJoinCmd() *cobra.Command {
	var (
		f        clientFlags
		id, addr string
	)
	cmd := &cobra.Command{
		Use:   "join",
		Short: "Add a replica to the group",
		Long: `Add a replica as a voter. Start the new replica first, with raft.bootstrap: false, its own
replica_id and raft.listen; it catches up from a snapshot and the log. The join is refused, and
nothing changes, when nothing answers at --raft-address, or when the group runs without
raft.listen: a voter that never answers would take away the group's majority.`,
		Example: `  knooppunt cluster join --id r4 --raft-address 10.0.0.4:7444 --node unix:///var/lib/knooppunt/knooppunt.sock`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.call(func(conn *grpc.ClientConn) error {
				st, err := pb.NewClusterServiceClient(conn).Join(cmd.Context(), &pb.JoinRequest{Id: id, RaftAddress: addr})
				if err != nil {
					return err
				}
				return printCluster(cmd.OutOrStdout(), f.output, st)
			})
		},
	}
	cmd.Flags().StringVar(&id, "id", "", "the new replica's id (required)")
	cmd.Flags().StringVar(&addr, "raft-address", "", "the new replica's Raft address (required)")
	cmd.MarkFlagRequired("id")
	cmd.MarkFlagRequired("raft-address")
	f.register(cmd, true)
	f.fill(map[string]string{"id": "id", "raft-address": "raft_address"})
	return cmd
}

func newClusterRemoveCmd() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "remove ID",
		Short: "Take a replica out of the group",
		Long: `Take a replica, by the id cluster status lists, out of the group; any replica sends the step to
the leader. The group's last voter cannot be removed. The removed replica stops taking part in
Raft: it refuses writes, its local reads go stale, and its status says it is not a member. Stop
its process, and empty its data directory before its host or id is used again; then take it out
of raft.servers in the other replicas' configs. The leader can be removed too: it hands the
lead to another voter first, which then removes it. It prints the group without the replica,
as cluster status does; -o json too.
For admins and the local socket; audited as cluster.remove.`,
		Example: `  knooppunt cluster remove r3`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.call(func(conn *grpc.ClientConn) error {
				st, err := pb.NewClusterServiceClient(conn).Remove(cmd.Context(), &pb.RemoveRequest{Id: args[0]})
				if err != nil {
					return err
				}
				return printRemoved(cmd.OutOrStdout(), f.output, args[0], st)
			})
		},
	}
	f.register(cmd, true)
	f.fillArg("ID", "id")
	return cmd
}

// printRemoved prints the group after replica id left it. When a leader removed itself (a leader
// of a release before leaders handed the lead on first), the answer is its own, from outside the
// group: that is said instead of its empty table.
func printRemoved(w io.Writer, format, id string, st *pb.ClusterStatusResponse) error {
	if st.Replica != id || format == "json" {
		return printCluster(w, format, st)
	}
	_, err := fmt.Fprintf(w, "%s led the group and is out of it now: the others elect a new leader among themselves within seconds (knooppunt cluster status, asked of one of them, shows it). Stop %s's process.\n", id, id)
	return err
}

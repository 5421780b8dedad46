package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/node"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

func newStatusCmd() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show what a node is and how it is doing",
		Long: `Show what a node is and how it is doing: its Raft state, records and store, and, as far as the
caller may see them, its peers with when each last delivered, its webhooks' queues and failures,
and the early-warning alerts that fire now. A part the caller's role may not read is left out, and
named under "not shown" ("not_visible" in -o json, where the lists are [] when empty).`,
		Example: `  knooppunt status --node unix:///var/lib/knooppunt/knooppunt.sock -o json`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.call(func(conn *grpc.ClientConn) error {
				st, err := pb.NewStatusServiceClient(conn).Status(cmd.Context(), &pb.StatusRequest{})
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				raft := raftLine(st, time.Now())
				ops := operations(cmd.Context(), conn)
				if f.output == "json" {
					doc := map[string]any{
						"node_name": st.NodeName, "org": st.Org, "version": st.Version,
						"raft_state": st.RaftState, "leader": st.Leader, "applied_index": st.AppliedIndex,
						"records": st.Records, "db_bytes": st.DbBytes, "disk_free_bytes": st.DiskFreeBytes, "disk_reserve_bytes": st.DiskReserveBytes, "last_seq": st.LastSeq,
						"kinds": nonNilStrings(st.Kinds), "started_at": st.StartedAt.AsTime(), "last_backup_at": optionalTime(st.LastBackupAt),
						"svid_id": st.SvidId, "svid_expires_at": optionalTime(st.SvidExpiresAt),
						"voters": st.Voters, "unreachable": nonNilStrings(st.Unreachable),
						"not_member": st.NotMember, "leader_seen_at": optionalTime(st.LeaderSeenAt),
					}
					if st.RaftLogError != "" {
						doc["raft_log_error"], doc["raft_log_error_at"] = st.RaftLogError, optionalTime(st.RaftLogErrorAt)
					}
					if st.SnapshotRefused != "" {
						doc["snapshot_refused"], doc["snapshot_refused_at"] = st.SnapshotRefused, optionalTime(st.SnapshotRefusedAt)
					}
					if st.SvidRenewalFailingSince != nil {
						doc["svid_renewal_failing_since"], doc["svid_renewal_error"] = optionalTime(st.SvidRenewalFailingSince), st.SvidRenewalError
					}
					if st.CatchingUp {
						doc["catching_up"] = true
					}
					if st.ConfigBroken != "" {
						doc["config_broken"], doc["config_broken_at"] = st.ConfigBroken, optionalTime(st.ConfigBrokenAt)
					}
					doc["restart_for"] = nonNilStrings(st.RestartFor)
					ops.addJSON(doc)
					if err := printJSON(out, doc); err != nil {
						return err
					}
					return ops.err()
				}
				tw := newTable(out)
				fmt.Fprintf(tw, "node\t%s\n", st.NodeName)
				fmt.Fprintf(tw, "org\t%s\n", st.Org)
				fmt.Fprintf(tw, "version\t%s\n", st.Version)
				fmt.Fprintf(tw, "raft\t%s\n", raft)
				// The node counts its live records of every mode together; firing is of actual alerts
				// alone, so the line says what it counts.
				fmt.Fprintf(tw, "records\t%d, of every mode: actual, exercise, test and draft (change feed at %d)\n", st.Records, st.LastSeq)
				fmt.Fprintf(tw, "store\t%s\n", storeLine(st))
				fmt.Fprintf(tw, "kinds\t%v\n", st.Kinds)
				fmt.Fprintf(tw, "up since\t%s\n", stamp(st.StartedAt.AsTime()))
				// What the next start meets, which the running node does not show (review AA, AA13).
				if st.ConfigBroken != "" {
					// Its first line: the YAML excerpt under it would break the table. A syntax
					// error's says only the file ("config FILE:"), and the next says what is wrong
					// (review AL, AL5).
					first, rest, _ := strings.Cut(st.ConfigBroken, "\n")
					if next, _, _ := strings.Cut(rest, "\n"); strings.HasSuffix(first, ":") && strings.TrimSpace(next) != "" {
						first += " " + strings.TrimSpace(next)
					}
					fmt.Fprintf(tw, "config\tTHE CONFIG FILE DOES NOT LOAD since %s: %s: the node runs on what it loaded before, and would not start with this file: mend it\n",
						stamp(st.ConfigBrokenAt.AsTime()), first)
				}
				if len(st.RestartFor) > 0 {
					fmt.Fprintf(tw, "config\tchanged %s: applies at the next start; the running node keeps the old values\n", strings.Join(st.RestartFor, ", "))
				}
				if st.SvidExpiresAt != nil {
					at := st.SvidExpiresAt.AsTime()
					left := "in " + roughly(time.Until(at))
					if time.Now().After(at) {
						left = fmt.Sprintf("EXPIRED %s ago: no new SVID came (with SPIRE, check the agent)", roughly(time.Since(at)))
					}
					fmt.Fprintf(tw, "identity\t%s, expires %s (%s)\n", st.SvidId, stamp(at), left)
				}
				// Said before the SVID expires, while there is time to mend it (review AK, AK1).
				if st.SvidRenewalFailingSince != nil {
					fmt.Fprintf(tw, "identity\tNOT RENEWED since %s: %s\n", stamp(st.SvidRenewalFailingSince.AsTime()), st.SvidRenewalError)
				}
				if st.LastBackupAt != nil {
					at := st.LastBackupAt.AsTime()
					fmt.Fprintf(tw, "last backup\t%s (%s ago, of this replica, kept by knooppunt backup)\n", stamp(at), roughly(time.Since(at)))
				} else {
					fmt.Fprintf(tw, "last backup\tnone of this replica kept (knooppunt backup)\n")
				}
				ops.print(tw)
				if err := tw.Flush(); err != nil {
					return err
				}
				return ops.err()
			})
		},
	}
	f.register(cmd, true)
	return cmd
}

// statusOps is what an operator on call asks of a node beyond its own state: do the peers
// deliver, do the webhooks, does an early warning fire. A part the caller's role may not read is
// in notVisible; one the node failed to give, in failed.
type statusOps struct {
	Peers      []peerStatus
	Webhooks   *webhookStatus
	Firing     []string
	notVisible []string
	failed     map[string]error
}

// statusParts are the parts of statusOps, in the order they are shown.
var statusParts = []string{"peers", "webhooks", "firing"}

type peerStatus struct {
	Name         string     `json:"name"`
	LastDelivery *time.Time `json:"last_delivery,omitempty"`
	Leaving      bool       `json:"leaving,omitempty"`
	// Subscription is open, connecting or down, as the answering replica runs it; empty on a
	// follower, which runs none.
	Subscription      string     `json:"subscription,omitempty"`
	SubscriptionSince *time.Time `json:"subscription_since,omitempty"`
	SubscriptionError string     `json:"subscription_error,omitempty"`
	text              string     // as the table says it
}

type webhookStatus struct {
	Count  int   `json:"count"`
	Queued int64 `json:"queued"`
	Failed int64 `json:"failed"`
}

// operations reads statusOps through the services the node offers its callers.
func operations(ctx context.Context, conn *grpc.ClientConn) statusOps {
	ops := statusOps{Peers: []peerStatus{}, Firing: []string{}, failed: map[string]error{}}
	// read says whether a part's call answered; if not, it notes why.
	read := func(part string, err error) bool {
		switch {
		case err == nil:
			return true
		case status.Code(err) == codes.PermissionDenied:
			ops.notVisible = append(ops.notVisible, part)
		default:
			ops.failed[part] = err
		}
		return false
	}
	if resp, err := pb.NewPeerServiceClient(conn).List(ctx, &pb.ListPeersRequest{}); read("peers", err) {
		for _, p := range resp.Peers {
			if !p.Active {
				continue
			}
			ps := peerStatus{Name: p.Name, Leaving: p.LeavingSince != nil, LastDelivery: optionalTime(p.ReceivedAt),
				Subscription: p.Subscription, SubscriptionSince: optionalTime(p.SubscriptionSince), SubscriptionError: p.SubscriptionError}
			ps.text = p.Name + ": "
			if p.Subscription != "" {
				ps.text += "subscription " + subscriptionText(p, true) + ", "
			}
			if p.ReceivedAt != nil {
				ps.text += "last delivery " + age(p.ReceivedAt) + " ago"
			} else {
				ps.text += "no delivery yet"
			}
			if ps.Leaving {
				ps.text += " (leaving)"
			}
			ops.Peers = append(ops.Peers, ps)
		}
	}
	if resp, err := pb.NewWebhookServiceClient(conn).List(ctx, &pb.ListWebhooksRequest{}); read("webhooks", err) {
		ops.Webhooks = &webhookStatus{Count: len(resp.Webhooks)}
		for _, w := range resp.Webhooks {
			ops.Webhooks.Queued += w.Queued
			ops.Webhooks.Failed += w.Failed
		}
	}
	if resp, err := pb.NewRecordServiceClient(conn).List(ctx, &pb.ListRequest{Kind: "alert", LabelSelector: "status=firing", PageSize: 100}); read("firing", err) {
		for _, r := range resp.Records {
			if rule := r.Labels["rule"]; rule != "" {
				ops.Firing = append(ops.Firing, rule+" in "+r.Region)
			}
		}
	}
	return ops
}

// shown says whether the caller could read the part.
func (ops statusOps) shown(part string) bool {
	return !slices.Contains(ops.notVisible, part) && ops.failed[part] == nil
}

// addJSON adds the parts to status's JSON document: lists are [] when empty, and a part the
// caller may not read, or the node failed to give, is null; not_visible names the first.
func (ops statusOps) addJSON(doc map[string]any) {
	parts := map[string]any{"peers": ops.Peers, "webhooks": ops.Webhooks, "firing": ops.Firing}
	for _, part := range statusParts {
		doc[part] = parts[part]
		if !ops.shown(part) {
			doc[part] = nil
		}
	}
	doc["not_visible"] = nonNilStrings(ops.notVisible)
}

// err is the parts the node failed to give, for the status command to end with.
func (ops statusOps) err() error {
	var errs []string
	for _, part := range statusParts {
		if err := ops.failed[part]; err != nil {
			errs = append(errs, fmt.Sprintf("%s: not read: %v", part, err))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return errors.New(strings.Join(errs, "; "))
}

// print adds the parts the caller could read to the status table, and names those it may not.
func (ops statusOps) print(w io.Writer) {
	if ops.shown("peers") {
		// One row a peer: a node with ten partners stays readable at a glance.
		fmt.Fprintf(w, "peers\t%d\n", len(ops.Peers))
		for _, p := range ops.Peers {
			fmt.Fprintf(w, "\t%s\n", p.text)
		}
	}
	if ops.shown("webhooks") {
		note := ""
		if ops.Webhooks.Failed > 0 {
			note = " (knooppunt webhook failures)"
		}
		fmt.Fprintf(w, "webhooks\t%d, %d queued, %d failed%s\n", ops.Webhooks.Count, ops.Webhooks.Queued, ops.Webhooks.Failed, note)
	}
	if ops.shown("firing") {
		fmt.Fprintf(w, "firing\t%d%s\n", len(ops.Firing), listed(ops.Firing))
	}
	if len(ops.notVisible) > 0 {
		fmt.Fprintf(w, "not shown\t%s: your role may not read them\n", strings.Join(ops.notVisible, ", "))
	}
}

// listed is ": a; b" for a list that is not empty.
func listed(parts []string) string {
	if len(parts) == 0 {
		return ""
	}
	return ": " + strings.Join(parts, "; ")
}

// optionalTime is a timestamp for JSON, nil when unset.
func optionalTime(ts *timestamppb.Timestamp) *time.Time {
	if ts == nil {
		return nil
	}
	t := ts.AsTime()
	return &t
}

// raftLine says, at now, how the replica's Raft group fares: who leads, and what a replica
// outside its group, one without a leader, or a leader missing replicas, means for the people
// relying on it.
func raftLine(st *pb.StatusResponse, now time.Time) string {
	if st.RaftState == "Shutdown" {
		return fmt.Sprintf("Shutdown (applied index %d): this replica is out of its group, removed with cluster remove (or stopping): writes are refused, and what it shows does not change; stop it, or start it again with an empty data directory and join it (cluster join)", st.AppliedIndex)
	}
	if st.NotMember {
		return fmt.Sprintf("%s (applied index %d), %s: writes are refused, and what it shows does not change; cluster status on a member shows the group", st.RaftState, st.AppliedIndex, node.NotMember)
	}
	if st.RaftLogError != "" {
		// Not the group's fault: this replica cannot write its own log (review H, F8).
		return fmt.Sprintf("%s, leader %s (applied index %d): THE RAFT LOG CANNOT BE WRITTEN since %s: %s: free space on the data directory's disk (or mend it); the replica takes writes again once it can, with no restart", st.RaftState, cmp.Or(st.Leader, "none"), st.AppliedIndex, stamp(st.RaftLogErrorAt.AsTime()), st.RaftLogError)
	}
	if st.SnapshotRefused != "" {
		// It knows the leader, and takes in nothing: what it serves falls behind (review AH, AH2).
		return fmt.Sprintf("%s, leader %s (applied index %d): THIS REPLICA CANNOT RESTORE ITS LEADER'S SNAPSHOT since %s: %s: it takes in nothing more, and serves what it held before; its health is NOT_SERVING. A snapshot of a newer release: upgrade this replica; else mend what the error names", st.RaftState, cmp.Or(st.Leader, "none"), st.AppliedIndex, stamp(st.SnapshotRefusedAt.AsTime()), st.SnapshotRefused)
	}
	if st.Leader == "" {
		// A replica removed while it was down or cut off does not know it, and says what one
		// of a group without a majority says: how long it has been without a leader tells the
		// operator which is likelier, and a member's cluster status which it is.
		since := "none since it started"
		if st.StartedAt != nil {
			since += " " + roughly(now.Sub(st.StartedAt.AsTime())) + " ago"
		}
		if st.LeaderSeenAt != nil {
			since = "none for " + roughly(now.Sub(st.LeaderSeenAt.AsTime()))
		}
		if st.CatchingUp {
			// Started empty, it must not be elected with part of the log (docs/cluster.md).
			return fmt.Sprintf("%s, NO LEADER, %s (applied index %d), CATCHING UP: this replica started on an empty Raft directory, or on a log that lost entries its database had applied, and cannot tell that it holds all the group committed, so it asks for no vote: start the replica that led it, or the others (cluster status on another member shows the group); if none will come back, start the group again from a replica (docs/cluster.md, A majority is lost): writes are refused, and what it shows does not change", st.RaftState, since, st.AppliedIndex)
		}
		return fmt.Sprintf("%s, NO LEADER, %s (applied index %d): this replica reaches no majority of its group, or it was removed while it was down or cut off, which it cannot know (cluster status on another member shows the group): writes are refused, and what it shows does not change", st.RaftState, since, st.AppliedIndex)
	}
	line := fmt.Sprintf("%s (leader %s, applied index %d)", st.RaftState, st.Leader, st.AppliedIndex)
	if st.CatchingUp {
		line += "; catching up: started on an empty Raft directory, or on a log that lost entries, it asks for no vote until it holds everything the leader committed"
	}
	if n := int(st.Voters); len(st.Unreachable) > 0 && n > 0 {
		reach := n - len(st.Unreachable)
		line += fmt.Sprintf("; %d of %d replicas reachable, not %s", reach, n, strings.Join(st.Unreachable, ", "))
		if reach-1 < n/2+1 {
			line += ": one more failure stops writes"
		}
	}
	return line
}

// roughly says a span as people read one: days from two days on (90 days, not 2159h58m54s),
// hours and minutes from an hour on, else to the second.
// storeLine is status's line of the database and its disk: what is free, and, below the
// reserve, that writes are refused.
func storeLine(st *pb.StatusResponse) string {
	disk := fmt.Sprintf("%s free on its disk", diskSize(st.DiskFreeBytes))
	if st.DiskFreeBytes < st.DiskReserveBytes {
		disk = fmt.Sprintf("ONLY %s FREE ON ITS DISK, under the reserve of %s (limits.disk_reserve_mib): as leader it refuses writes that add data; free space",
			diskSize(st.DiskFreeBytes), diskSize(st.DiskReserveBytes))
	}
	return fmt.Sprintf("%.1f MiB; %s", float64(st.DbBytes)/(1<<20), disk)
}

// diskSize is a number of bytes in GiB with one decimal from 1 GiB up, else in MiB: a disk
// nearly full read "0.0 GiB free" whatever was left (review H, F7).
func diskSize(b int64) string {
	if b >= 1<<30 {
		return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30))
	}
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}

func roughly(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%d days", int(d/(24*time.Hour)))
	case d >= time.Hour:
		return strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
	}
	return d.Round(time.Second).String()
}

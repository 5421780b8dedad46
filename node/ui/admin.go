package ui

import (
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/knooppunt/knooppunt/node/api"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// The administrators' page: the node's health, its Raft group, and its peers with their state.
// It reads StatusService, ClusterService and PeerService as the person; the role table lets
// only admins read the Raft group.

type adminView struct {
	Status *pb.StatusResponse
	// RaftState is this replica's Raft state, in the person's language; Replicas the group's.
	RaftState string
	// Leader is the group's leader, or why there is none now; Warning, when set, what that
	// means for this replica and where to look (raftWarning).
	Leader, Warning string
	Replicas        []replicaView
	Started         string
	DBMB            string
	Cluster         *pb.ClusterStatusResponse
	Peers           []adminPeer
	// What a host keeps an eye on (review W, L8): the replica's SVID and until when, the last
	// backup, the disk, and the policies waiting for an officer. Each *Warn says it needs care.
	SVID, SVIDExpires, LastBackup, Disk string
	SVIDWarn, BackupWarn, DiskWarn      bool
	// SVIDNotRenewed says since when the SPIRE Workload API has not renewed the SVID, and why
	// (svid_renewal_failing_since): said before the SVID ends (review AK, AK1).
	SVIDNotRenewed string
	// Waiting is how many policies wait for approval; -1 when they could not be counted.
	Waiting int
}

type replicaView struct {
	ID, Address, Suffrage string
	Leader                bool
	// Older: the leader takes no writes until this replica runs its release (older_release).
	Older bool
}

// svidWarnWithin is how soon before its SVID ends a replica's page warns: a renewal should have
// come long before (SPIRE renews at half its life, the dev CA's are issued for a year).
const svidWarnWithin = 7 * 24 * time.Hour

// word is a word the node reports (a Raft state, a vote) in the person's language, when the
// catalogue has it.
func word(r *request, prefix, w string) string {
	if k := prefix + strings.ToLower(w); r.L.Has(k) {
		return r.L.T(k)
	}
	return w
}

type adminPeer struct {
	Name, TrustDomain, OrgName, Source, Groups, Added string
	Active                                            bool
	Leaving                                           string
	// Subscription is how the leader's subscription to the peer fares (open, connecting, down),
	// since Since, with the last attempt's Error while down. Read from PeerService, not from a
	// search: a look at this page asks no partner, and no partner audits it (review W, L1).
	Subscription, Since, Error string
	// Cursor is where the subscription to the peer resumes; Received when it last delivered.
	Cursor   int64
	Received string
}

// admin shows the node's health, its Raft group and its peers.
func (s *Server) admin(w http.ResponseWriter, r *request) {
	if !r.Caller.Has(api.Admin) {
		s.failIn(w, r, http.StatusForbidden, r.L.T("error.admin_only", strings.Join(roleNames(r), ", ")))
		return
	}
	ctx := r.ctx()
	st, err := pb.NewStatusServiceClient(s.c.Conn).Status(ctx, &pb.StatusRequest{})
	if err != nil {
		s.failCall(w, r, err)
		return
	}
	v := &adminView{Status: st, DBMB: formatMB(r.L, st.DbBytes)}
	if st.StartedAt != nil {
		v.Started = local(st.StartedAt.AsTime()).Format("2006-01-02 15:04:05 MST")
	}
	if v.Cluster, err = pb.NewClusterServiceClient(s.c.Conn).Status(ctx, &pb.ClusterStatusRequest{}); err != nil {
		s.failCall(w, r, err)
		return
	}
	v.RaftState = word(r, "raft.", st.RaftState)
	v.Leader, v.Warning = raftWarning(r.L, st, time.Now())
	for _, rep := range v.Cluster.Replicas {
		v.Replicas = append(v.Replicas, replicaView{ID: rep.Id, Address: rep.RaftAddress, Suffrage: word(r, "raft.", rep.Suffrage), Leader: rep.Leader,
			Older: rep.OlderRelease})
	}
	now := time.Now()
	v.SVID = st.SvidId
	if st.SvidExpiresAt != nil {
		exp := st.SvidExpiresAt.AsTime()
		v.SVIDExpires, v.SVIDWarn = local(exp).Format("2006-01-02 15:04 MST"), exp.Sub(now) < svidWarnWithin
	}
	if st.SvidRenewalFailingSince != nil {
		v.SVIDNotRenewed = r.L.T("admin.svid_not_renewed", local(st.SvidRenewalFailingSince.AsTime()).Format("2006-01-02 15:04 MST"), st.SvidRenewalError)
	}
	if st.LastBackupAt != nil {
		v.LastBackup = local(st.LastBackupAt.AsTime()).Format("2006-01-02 15:04 MST")
		v.BackupWarn = now.Sub(st.LastBackupAt.AsTime()) > 7*24*time.Hour
	} else {
		v.BackupWarn = true
	}
	if st.DiskFreeBytes > 0 {
		v.Disk = r.L.T("admin.disk_free", formatMB(r.L, st.DiskFreeBytes), formatMB(r.L, st.DiskReserveBytes))
		v.DiskWarn = st.DiskFreeBytes < 2*st.DiskReserveBytes
	}
	v.Waiting = -1
	if ps, err := pb.NewPolicyServiceClient(s.c.Conn).List(ctx, &pb.ListPoliciesRequest{State: "proposed"}); err == nil {
		v.Waiting = len(ps.Policies)
	}
	peers, err := pb.NewPeerServiceClient(s.c.Conn).List(ctx, &pb.ListPeersRequest{})
	if err != nil {
		s.failCall(w, r, err)
		return
	}
	for _, p := range peers.Peers {
		ap := adminPeer{Name: p.Name, TrustDomain: p.TrustDomain, OrgName: p.OrgName, Source: p.Source, Groups: strings.Join(p.Groups, ", "), Active: p.Active,
			Cursor: p.Cursor}
		if p.ReceivedAt != nil {
			ap.Received = age(r.L, int64(time.Since(p.ReceivedAt.AsTime())/time.Second))
		}
		if p.AddedAt != nil {
			ap.Added = local(p.AddedAt.AsTime()).Format("2006-01-02 15:04 MST")
		}
		if p.LeavingSince != nil {
			ap.Leaving = local(p.LeavingSince.AsTime()).Format("2006-01-02 15:04 MST")
		}
		ap.Subscription, ap.Error = p.Subscription, p.SubscriptionError
		if p.SubscriptionSince != nil {
			ap.Since = local(p.SubscriptionSince.AsTime()).Format("2006-01-02 15:04 MST")
		}
		v.Peers = append(v.Peers, ap)
	}
	s.render(w, r.Request, http.StatusOK, "admin", s.newPage(r, "admin", r.L.T("admin.title"), v))
}

// formatMB shows a size in megabytes to one decimal, as people of the page's language write it.
func formatMB(l *Lang, b int64) string { return l.Number(math.Round(float64(b)/(1<<20)*10) / 10) }

// raftWarning says who leads this replica's group, and, when no one does for it, why that may
// be and where to look, as the CLI's status says it: a replica out of its group (removed, or
// waiting to be joined) says so; one without a leader says how long, and that it reaches no
// majority or was removed while down or cut off, which it cannot know.
func raftWarning(l *Lang, st *pb.StatusResponse, now time.Time) (leader, warning string) {
	switch {
	case st.RaftState == "Shutdown":
		return "–", l.T("admin.shutdown")
	case st.NotMember:
		return "–", l.T("admin.not_member")
	case st.Leader != "":
		return st.Leader, ""
	}
	switch {
	case st.LeaderSeenAt != nil:
		leader = l.T("admin.leader_none_seen", age(l, int64(now.Sub(st.LeaderSeenAt.AsTime())/time.Second)))
	case st.StartedAt != nil:
		leader = l.T("admin.leader_none_start", age(l, int64(now.Sub(st.StartedAt.AsTime())/time.Second)))
	default:
		leader = l.T("admin.leader_none")
	}
	return leader, l.T("admin.no_leader")
}

// Package cluster is the ClusterService, with which admins see and change the replicas of a
// node's Raft group and take backups, and the ReplicaService, with which followers hand commands
// to the leader and watch its subscriptions to the partners.
package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/node/api"
	"github.com/knooppunt/knooppunt/node/config"
	"github.com/knooppunt/knooppunt/node/db"
	"github.com/knooppunt/knooppunt/node/metrics"
	"github.com/knooppunt/knooppunt/node/netaddr"
	"github.com/knooppunt/knooppunt/node/record"
	"github.com/knooppunt/knooppunt/node/store"
	"github.com/knooppunt/knooppunt/policy"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// Service implements knooppunt.v1.ClusterService.
type Service struct {
	pb.UnsafeClusterServiceServer
	store   *store.Store
	db      *db.DB
	replica string
	log     *slog.Logger
	sent    sentBackups
	// current says why the replica is not current with its group, or nil when it is (see
	// SetCurrent).
	current func(context.Context) error
	// unaddressed are the replicas of servers that this replica's raft.servers gives no API
	// address (see SetUnaddressed).
	unaddressed func(servers []store.Server) []string
}

// SetUnaddressed gives the service the replicas of the group that this replica's raft.servers
// gives no API address, so that its status marks those to which it cannot forward a write.
// Call it before the service serves.
func (s *Service) SetUnaddressed(f func(servers []store.Server) []string) { s.unaddressed = f }

// SetCurrent gives the service the check of whether the replica is current with its group: a
// backup taken on a replica that is not says so, since its copy may be older than the group's.
// Call it before the service serves.
func (s *Service) SetCurrent(f func(context.Context) error) { s.current = f }

var _ pb.ClusterServiceServer = (*Service)(nil)

// New returns the service of the replica with the id, over its store and database. It sets
// knooppunt_backup_last_success_timestamp_seconds to the time of the replica's last backup that
// a client kept (LastBackupFile), if there is one.
func New(s *store.Store, d *db.DB, replica string, log *slog.Logger) *Service {
	svc := &Service{store: s, db: d, replica: replica, log: log}
	if at := LastBackup(d); !at.IsZero() {
		metrics.BackupLast.Set(float64(at.UnixMilli()) / 1e3)
	}
	return svc
}

// LastBackup is when the replica of the database made its last backup that a client kept
// (LastBackupFile), the zero time when there is none.
func LastBackup(d *db.DB) time.Time {
	info, err := os.Stat(filepath.Join(filepath.Dir(d.Path()), LastBackupFile))
	if err != nil {
		return time.Time{}
	}
	return info.ModTime()
}

// LastBackupFile, in the data directory, is written when a client says it kept a backup the
// replica streamed (BackupKept); its modification time is when the replica made that copy. It is
// the replica's last backup after a restart, when the metric would otherwise start at 0 and a
// group restarted as a whole would look as if its backups had stopped.
const LastBackupFile = "last-backup"

func (s *Service) lastBackupPath() string {
	return filepath.Join(filepath.Dir(s.db.Path()), LastBackupFile)
}

// AppliedIndex is the last log entry the replica applied, as its status and cluster status say
// it. Raft counts entries applied since the process started from the snapshot it knows; the
// database holds what was applied before, so a replica just restarted, with no leader yet to
// tell it what is committed, does not read as empty.
func AppliedIndex(s *store.Store, d *db.DB) uint64 {
	applied := s.AppliedIndex()
	if dbApplied, err := d.AppliedIndex(); err == nil && dbApplied > applied {
		applied = dbApplied
	}
	return applied
}

// RegisterService registers the service on s.
func RegisterService(s grpc.ServiceRegistrar, svc *Service) { pb.RegisterClusterServiceServer(s, svc) }

// Status reports the group as this replica sees it.
func (s *Service) Status(ctx context.Context, _ *pb.ClusterStatusRequest) (*pb.ClusterStatusResponse, error) {
	servers, err := s.store.Servers()
	if err != nil {
		return nil, api.Status(s.log, err)
	}
	stats := s.store.RaftStats()
	commit, _ := strconv.ParseUint(stats["commit_index"], 10, 64)
	snap, _ := strconv.ParseUint(stats["last_snapshot_index"], 10, 64)
	leader := s.store.Leader()
	applied := AppliedIndex(s.store, s.db)
	resp := &pb.ClusterStatusResponse{
		Replica: s.replica, State: s.store.State(), Leader: leader,
		AppliedIndex: applied, CommitIndex: max(commit, applied), LastSnapshotIndex: snap, ApplyLevel: s.store.Level(),
		CatchingUp: s.store.CatchingUp(),
	}
	if _, err := s.store.SnapshotRefused(); err != nil {
		resp.SnapshotRefused = err.Error()
	}
	older := s.store.OlderReplicas()
	var unaddressed []string
	if s.unaddressed != nil {
		unaddressed = s.unaddressed(servers)
	}
	for _, srv := range servers {
		addr := srv.Address
		if s.store.Alone() {
			addr = "" // the in-memory transport's address is the replica's id: no address at all
		}
		r := &pb.Replica{Id: srv.ID, RaftAddress: addr, Suffrage: srv.Suffrage, Leader: srv.ID == leader, Unreachable: srv.Unreachable,
			OlderRelease: slices.Contains(older, srv.ID), NoApiAddress: slices.Contains(unaddressed, srv.ID), SnapshotRefused: srv.SnapshotRefused}
		if srv.Unreachable && !srv.LastContact.IsZero() {
			r.LastContact = timestamppb.New(srv.LastContact)
		}
		resp.Replicas = append(resp.Replicas, r)
	}
	return resp, nil
}

// Forms are the checks of the requests' own fields that a follower makes before it forwards
// them to the leader (api.Forwarder.Forms).
var Forms = map[string]func(req any) error{
	pb.ClusterService_Join_FullMethodName: func(req any) error { return joinForm(req.(*pb.JoinRequest)) },
}

// joinForm checks a join's own fields.
func joinForm(req *pb.JoinRequest) error {
	if req.Id == "" {
		return api.Invalid("id", "missing: the new replica's id, such as r4")
	}
	// Before it joins the Raft configuration, where a malformed id panicked the leader's
	// metrics (review AF, AF1).
	if err := config.CheckReplicaID("id", req.Id); err != nil {
		_, msg, _ := strings.Cut(err.Error(), ": ")
		return api.Invalid("id", "%s", msg)
	}
	if req.RaftAddress == "" {
		return api.Invalid("raft_address", "missing: the new replica's raft.listen (or advertise) address")
	}
	if _, _, err := netaddr.Dial(req.RaftAddress); err != nil {
		return api.Invalid("raft_address", "%s: %v: use host:port, such as knooppunt-4.vr-utrecht.nl:7444", policy.Quote(req.RaftAddress), err)
	}
	return nil
}

// Join adds a voter; the forwarder has brought the call to the leader.
func (s *Service) Join(ctx context.Context, req *pb.JoinRequest) (*pb.ClusterStatusResponse, error) {
	if err := joinForm(req); err != nil {
		return nil, err
	}
	if s.store.Alone() {
		return nil, alone()
	}
	servers, err := s.store.Servers()
	if err != nil {
		return nil, api.Status(s.log, err)
	}
	for _, srv := range servers {
		if srv.Address == req.RaftAddress && srv.ID != req.Id {
			return nil, api.FieldStatus(codes.FailedPrecondition, "raft_address", fmt.Sprintf("%s is the Raft address of replica %s already: give the new replica's own raft.advertise; nothing was changed", req.RaftAddress, srv.ID))
		}
		// A replica of the group joined again at another address would be moved there: a typo
		// in the id would cut a running replica off. Its bare id (a replica that ran alone) is
		// no address, and may be given one.
		if srv.ID == req.Id && srv.Address != req.RaftAddress && srv.Address != srv.ID {
			return nil, api.FieldStatus(codes.FailedPrecondition, "id", fmt.Sprintf("replica %s is in the group at %s: to move it, remove it first (knooppunt cluster remove %s) and join it at its new address; nothing was changed", req.Id, srv.Address, req.Id))
		}
	}
	// A voter that never answers takes the group's majority away: a group of one that adds one
	// can no longer write, nor remove it. So the new replica must be running and reachable first.
	conn, err := (&net.Dialer{Timeout: joinProbeTimeout}).DialContext(ctx, "tcp", req.RaftAddress)
	if err != nil {
		return nil, api.FieldStatus(codes.FailedPrecondition, "raft_address", fmt.Sprintf("nothing answers at %s (%v): start the new replica first, waiting to be joined, and check the address and the firewall; nothing was changed", req.RaftAddress, err))
	}
	conn.Close()
	if err := s.store.AddVoter(req.Id, req.RaftAddress); err != nil {
		if errors.Is(err, store.ErrAlone) {
			return nil, alone()
		}
		return nil, api.Status(s.log, err)
	}
	s.log.Info("replica joined", "id", req.Id, "raft_address", req.RaftAddress)
	s.audit(ctx, db.AuditClusterJoin, req.Id, map[string]any{"raft_address": req.RaftAddress})
	return s.Status(ctx, nil)
}

// audit records in the audit log, through Raft, who changed the group or took a copy of the
// database. The change is made by then, so an entry that cannot be appended (a group without a
// leader, where a backup is most needed) does not undo or refuse it: the replica logs it instead.
func (s *Service) audit(ctx context.Context, action, subject string, detail map[string]any) {
	s.appendAudit(ctx, action, subject, detail, false)
}

// auditWhenLed is audit for a replica that was just deposed: the group elects its next leader
// within an election timeout or two, and this waits for one, up to auditTimeout, where audit
// gives up when the forward to a leader finds none.
func (s *Service) auditWhenLed(ctx context.Context, action, subject string, detail map[string]any) {
	s.appendAudit(ctx, action, subject, detail, true)
}

func (s *Service) appendAudit(ctx context.Context, action, subject string, detail map[string]any, wait bool) {
	caller, _ := api.CallerFrom(ctx)
	e := &pb.AuditEntry{At: timestamppb.Now(), Actor: caller.String(), Action: action, Subject: subject}
	b, err := json.Marshal(detail)
	if err != nil {
		panic(err) // strings and numbers
	}
	e.Detail = string(b)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), auditTimeout)
	defer cancel()
	c := &pb.Command{Cmd: &pb.Command_AppendAudit{AppendAudit: &pb.AppendAudit{Entries: []*pb.AuditEntry{e}}}}
	for {
		_, err := s.store.Apply(ctx, c)
		if err == nil {
			return
		}
		// Refused before it was proposed: no leader, or none reached.
		unled := errors.Is(err, store.ErrNotLeader) || status.Code(err) == codes.Unavailable
		if !wait || !unled || !sleepCtx(ctx, 100*time.Millisecond) {
			s.log.Warn("not audited: the audit log could not take the entry", "action", action, "subject", subject, "actor", e.Actor, "err", err)
			return
		}
	}
}

// sleepCtx waits d, and reports false when ctx ends first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// outcomeUnknown is the outcome an audit entry gives of a change whose leader was deposed while
// it was being committed: the next leader may have committed it, or not.
const outcomeUnknown = "unknown: the leader changed while it was being committed; cluster status tells whether it was made"

// auditTimeout bounds the wait for an audit entry of a change already made.
const auditTimeout = 5 * time.Second

func alone() error {
	return status.Error(codes.FailedPrecondition, "this replica runs alone, without raft.listen in its config: set raft.listen (and raft.advertise) and restart it before a replica joins; nothing was changed")
}

// joinProbeTimeout bounds the check that a joining replica's Raft address answers.
const joinProbeTimeout = 3 * time.Second

// Remove takes a replica out of the group.
func (s *Service) Remove(ctx context.Context, req *pb.RemoveRequest) (*pb.ClusterStatusResponse, error) {
	if req.Id == "" {
		return nil, api.Invalid("id", "missing: the replica to remove")
	}
	servers, err := s.store.Servers()
	if err != nil {
		return nil, api.Status(s.log, err)
	}
	voters, known, address := 0, false, ""
	for _, srv := range servers {
		if srv.ID == req.Id {
			known, address = true, srv.Address
		}
		if srv.Suffrage == "Voter" && srv.ID != req.Id {
			voters++
		}
	}
	// A replica of the group is removed whatever its id: an earlier release admitted ids that are
	// none (review AF, AF1), and removing it is how the group is rid of it. Any other id that is
	// not one is a mistake in the request, not a replica that might be missing (AF5).
	shown := req.Id
	if err := config.CheckReplicaID("id", req.Id); err != nil {
		if !known {
			_, msg, _ := strings.Cut(err.Error(), ": ")
			return nil, api.Invalid("id", "%s", msg)
		}
		shown = policy.Quote(req.Id)
	}
	switch {
	case !known:
		return nil, api.FieldStatus(codes.NotFound, "id", fmt.Sprintf("no replica %q is in the group: knooppunt cluster status lists them; nothing was changed", req.Id))
	case voters == 0:
		return nil, api.FieldStatus(codes.FailedPrecondition, "id", fmt.Sprintf("%s is the group's last voter: a group without one cannot work; nothing was changed", shown))
	}
	if req.Id == s.store.ReplicaID() {
		return nil, s.handLead(shown)
	}
	if err := s.store.RemoveServer(req.Id); err != nil {
		if errors.Is(err, store.ErrMaybeCommitted) {
			// Audited as a change that may have been made: the next leader may commit it, and a
			// remove sent again then finds nothing to remove, and audits nothing. The entry goes to
			// the next leader (store.Forwardable), once there is one.
			s.auditWhenLed(ctx, db.AuditClusterRemove, shown, map[string]any{"raft_address": address, "outcome": outcomeUnknown})
			// Not UNAVAILABLE, which clients take as safe to retry: the retry would find the
			// replica gone and say there is none.
			return nil, status.Errorf(codes.Aborted, "the leader changed while the removal of %s was being committed, so it may have been made: see knooppunt cluster status, and remove it again only if it is still listed", shown)
		}
		return nil, api.Status(s.log, err)
	}
	s.log.Info("replica removed", "id", shown)
	// The audit log's subject is text that every reader encodes: the id as shown.
	s.audit(ctx, db.AuditClusterRemove, shown, map[string]any{"raft_address": address})
	return s.Status(ctx, nil)
}

// handLead answers the leader's removal of itself. A leader that removes itself steps down as
// the removal commits: a follower that forwarded the call then ended it ABORTED, as the leader
// changed under it, and the audit entry found no leader to take it. So this leader hands the lead
// to another voter, did nothing else, and refuses with NOT_LEADER_EITHER: the call goes on to the
// new leader (api.Forwarder), which removes this replica as it removes a follower.
func (s *Service) handLead(shown string) error {
	if err := s.store.HandLead(); err != nil {
		if errors.Is(err, store.ErrNotLeader) {
			return api.Status(s.log, err)
		}
		return status.Errorf(codes.Unavailable, "%s leads, and could not hand the lead to another replica before its removal (%v): nothing was changed; retry shortly", shown, err)
	}
	s.log.Info("handed the lead to another replica before this one is removed", "id", shown)
	return api.ReasonStatus(codes.Unavailable, api.ReasonNotLeaderEither, fmt.Sprintf("%s led, and handed the lead to another replica so that it can be removed: nothing was changed; send the removal to the new leader", shown))
}

// backupChunk is the size of a Backup message's data.
const backupChunk = 1 << 20

// Backup copies the database beside it (store.CopyPath, db.Copy: writes go on) and streams the
// copy. A copy sent whole is not yet a backup taken: the client can still fail to write, check or
// keep it. So a sent copy is only remembered (sentBackups), by its SHA-256, until the client
// confirms with BackupKept; knooppunt_backups_total counts the copies that failed to go out as
// error, and BackupKept counts ok.
func (s *Service) Backup(_ *pb.BackupRequest, stream grpc.ServerStreamingServer[pb.BackupChunk]) error {
	if err := s.backup(stream); err != nil {
		metrics.Backups.WithLabelValues("error").Inc()
		return err
	}
	return nil
}

func (s *Service) backup(stream grpc.ServerStreamingServer[pb.BackupChunk]) error {
	ctx := stream.Context()
	path, err := store.CopyPath(s.db)
	if err != nil {
		return api.Status(s.log, err)
	}
	defer os.Remove(path)
	// Asked before the copy: a replica cut off from its group still gives its backup (a
	// survivor's data is where recovery starts), but says that it may be behind.
	var behind string
	if s.current != nil {
		if err := s.current(ctx); err != nil {
			behind = status.Convert(err).Message()
		}
	}
	madeAt := time.Now()
	applied, err := s.db.Copy(ctx, path)
	if err != nil {
		return api.Status(s.log, err)
	}
	f, err := os.Open(path)
	if err != nil {
		return api.Status(s.log, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return api.Status(s.log, err)
	}
	first := &pb.BackupChunk{Size: info.Size(), AppliedIndex: applied, Behind: behind}
	h := sha256.New()
	if err := sendChunks(io.TeeReader(f, h), backupChunk, first, stream.Send); err != nil {
		return api.Status(s.log, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	s.sent.add(sum, sentBackup{applied: applied, madeAt: madeAt}, time.Now())
	s.audit(ctx, db.AuditBackup, s.replica, map[string]any{"sha256": sum, "bytes": info.Size(), "applied_index": applied})
	s.log.Info("backup sent: it counts as taken once the client says it kept it", "applied_index", applied, "bytes", info.Size(), "sha256", sum, "behind", behind)
	return nil
}

// BackupKept records that the client kept a backup this replica sent: the replica's last backup
// is then that copy, in knooppunt_backup_last_success_timestamp_seconds and in LastBackupFile,
// unless it already has a later one. Saying it again of the same backup changes nothing.
func (s *Service) BackupKept(_ context.Context, req *pb.BackupKeptRequest) (*pb.BackupKeptResponse, error) {
	// As AttachmentService Download says it: a value that is no SHA-256 names no backup (AF5).
	if req.Sha256 == "" {
		return nil, api.Invalid("sha256", "missing: the SHA-256 of the backup file, as 64 lowercase hex digits")
	}
	if record.CheckSHA256("sha256", req.Sha256) != nil {
		return nil, api.Invalid("sha256", "%s is not a SHA-256: use 64 lowercase hex digits", policy.Quote(req.Sha256))
	}
	s.sent.mu.Lock()
	defer s.sent.mu.Unlock()
	b, ok := s.sent.get(req.Sha256, time.Now())
	if !ok {
		return nil, api.FieldStatus(codes.NotFound, "sha256", fmt.Sprintf("%q: this replica sent no backup of that SHA-256 in the last %s: say it to the replica that sent the backup, with the hash of the whole file", req.Sha256, sentBackupsKeep))
	}
	if req.AppliedIndex != b.applied {
		return nil, api.Invalid("applied_index", "%d: the backup of that SHA-256 holds the log up to entry %d", req.AppliedIndex, b.applied)
	}
	resp := &pb.BackupKeptResponse{TakenAt: timestamppb.New(b.madeAt)}
	if b.kept {
		return resp, nil
	}
	b.kept = true
	s.sent.byHash[req.Sha256] = b
	metrics.Backups.WithLabelValues("ok").Inc()
	s.log.Info("backup kept by the client", "applied_index", b.applied, "sha256", req.Sha256)
	if !b.madeAt.After(LastBackup(s.db)) {
		return resp, nil // a later backup was kept first
	}
	metrics.BackupLast.Set(float64(b.madeAt.UnixMilli()) / 1e3)
	// The file's modification time is what counts; its text is for a person who looks.
	path := s.lastBackupPath()
	err := os.WriteFile(path, []byte(b.madeAt.UTC().Format(time.RFC3339)+"\n"), 0o600)
	if err == nil {
		err = os.Chtimes(path, b.madeAt, b.madeAt)
	}
	if err != nil {
		s.log.Warn("backup kept, but its time is not kept for after a restart", "err", err)
	}
	return resp, nil
}

// sentBackupsKeep is how long a replica waits for the client to say it kept a backup: the client
// checks the whole file first, which takes a while for a large one.
const sentBackupsKeep = 24 * time.Hour

// sentBackupsMax bounds the backups a replica remembers as sent.
const sentBackupsMax = 16

// sentBackup is a backup the replica streamed whole.
type sentBackup struct {
	applied uint64
	madeAt  time.Time // when the copy was made
	sentAt  time.Time
	kept    bool // the client said it kept it
}

// sentBackups are the backups the replica sent in the last sentBackupsKeep, by their SHA-256, the
// latest sentBackupsMax of them: what BackupKept may confirm.
type sentBackups struct {
	mu     sync.Mutex
	byHash map[string]sentBackup
}

// add remembers a backup sent now. It takes mu.
func (b *sentBackups) add(sum string, sb sentBackup, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.byHash == nil {
		b.byHash = map[string]sentBackup{}
	}
	sb.sentAt = now
	b.byHash[sum] = sb
	b.expire(now)
	for len(b.byHash) > sentBackupsMax {
		oldest := ""
		for h, e := range b.byHash {
			if oldest == "" || e.sentAt.Before(b.byHash[oldest].sentAt) {
				oldest = h
			}
		}
		delete(b.byHash, oldest)
	}
}

// get is the backup of the SHA-256 sent in the last sentBackupsKeep. The caller holds mu.
func (b *sentBackups) get(sum string, now time.Time) (sentBackup, bool) {
	b.expire(now)
	sb, ok := b.byHash[sum]
	return sb, ok
}

func (b *sentBackups) expire(now time.Time) {
	for h, e := range b.byHash {
		if now.Sub(e.sentAt) > sentBackupsKeep {
			delete(b.byHash, h)
		}
	}
}

// sendChunks sends what r holds in messages of at most size bytes, the first of them first
// with its data added: first goes even when r is empty.
func sendChunks(r io.Reader, size int, first *pb.BackupChunk, send func(*pb.BackupChunk) error) error {
	buf := make([]byte, size)
	for c := first; ; c = new(pb.BackupChunk) {
		n, err := io.ReadFull(r, buf)
		if n > 0 || c == first {
			c.Data = buf[:n]
			if err := send(c); err != nil {
				return err
			}
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// ReplicaService implements knooppunt.v1.ReplicaService on the leader.
type ReplicaService struct {
	pb.UnsafeReplicaServiceServer
	store *store.Store
	log   *slog.Logger
	// partners is the replica's peerclient.Manager.Changed (see SetPartners); nil without.
	partners func() (changed <-chan struct{}, gen uint64)
	stop     chan struct{} // closed by Shutdown
	stopOnce sync.Once
}

var _ pb.ReplicaServiceServer = (*ReplicaService)(nil)

// NewReplicaService returns the service.
func NewReplicaService(s *store.Store, log *slog.Logger) *ReplicaService {
	return &ReplicaService{store: s, log: log, stop: make(chan struct{})}
}

// SetPartners gives the service the replica's subscriptions' changes (peerclient.Manager.Changed),
// which WatchPartners tells the followers. Call it before the service serves.
func (r *ReplicaService) SetPartners(changed func() (<-chan struct{}, uint64)) { r.partners = changed }

// Shutdown ends the WatchPartners streams, which never end by themselves: a stopping leader's
// graceful stop would wait for its followers' for its whole grace.
func (r *ReplicaService) Shutdown() { r.stopOnce.Do(func() { close(r.stop) }) }

// RegisterReplicaService registers the service on s.
func RegisterReplicaService(s grpc.ServiceRegistrar, svc *ReplicaService) {
	pb.RegisterReplicaServiceServer(s, svc)
}

// Apply commits a follower's command. Only commands whose answer is an error are accepted, and
// only in the shape the node's own code gives them (checkForwarded).
func (r *ReplicaService) Apply(ctx context.Context, req *pb.ApplyRequest) (*pb.ApplyResponse, error) {
	if req.GetCommand() == nil || !store.Forwardable(req.Command) {
		return nil, api.Invalid("command", "only audit entries, disclosures, witnessed heads and file chunks and steps are forwarded")
	}
	if err := checkForwarded(req.Command); err != nil {
		return nil, err
	}
	if !r.store.IsLeader() {
		return nil, api.Status(r.log, store.ErrNotLeader)
	}
	if _, err := r.store.Apply(ctx, req.Command); err != nil {
		return nil, api.Status(r.log, err)
	}
	return &pb.ApplyResponse{}, nil
}

// WatchPartners tells a follower the generation of the leader's subscriptions to the partners at
// once, and again at each change, until the follower goes, the replica stops, or it no longer
// leads (a follower also watches the leader anew when it learns of another: see peerclient).
// The stream is idle while nothing changes.
func (r *ReplicaService) WatchPartners(_ *pb.WatchPartnersRequest, stream grpc.ServerStreamingServer[pb.WatchPartnersResponse]) error {
	if r.partners == nil {
		return status.Error(codes.Unimplemented, "this node follows no partners")
	}
	for {
		if !r.store.IsLeader() {
			return api.Status(r.log, store.ErrNotLeader)
		}
		changed, gen := r.partners()
		if err := stream.Send(&pb.WatchPartnersResponse{Generation: gen}); err != nil {
			return err
		}
		select {
		case <-changed:
		case <-stream.Context().Done():
			return nil
		case <-r.stop:
			return status.Error(codes.Unavailable, "this replica stops")
		}
	}
}

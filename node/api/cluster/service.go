// Package cluster is the ClusterService, with which admins see and change the replicas of a
// node's Raft group and take backups, and the ReplicaService, with which followers hand commands
// to the leader.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/node/api"
	"github.com/knooppunt/knooppunt/node/db"
	"github.com/knooppunt/knooppunt/node/metrics"
	"github.com/knooppunt/knooppunt/node/store"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// Service implements knooppunt.v1.ClusterService.
type Service struct {
	pb.UnsafeClusterServiceServer
	store   *store.Store
	db      *db.DB
	replica string
	log     *slog.Logger
}

var _ pb.ClusterServiceServer = (*Service)(nil)

// New returns the service of the replica with the id, over its store and database. It sets
// knooppunt_backup_last_success_timestamp_seconds to the time of the replica's last whole backup
// (LastBackupFile), if it has taken one.
func New(s *store.Store, d *db.DB, replica string, log *slog.Logger) *Service {
	svc := &Service{store: s, db: d, replica: replica, log: log}
	if at := LastBackup(d); !at.IsZero() {
		metrics.BackupLast.Set(float64(at.UnixMilli()) / 1e3)
	}
	return svc
}

// LastBackup is when the replica of the database last streamed a whole backup (LastBackupFile),
// the zero time when it took none.
func LastBackup(d *db.DB) time.Time {
	info, err := os.Stat(filepath.Join(filepath.Dir(d.Path()), LastBackupFile))
	if err != nil {
		return time.Time{}
	}
	return info.ModTime()
}

// LastBackupFile, in the data directory, is written at each whole backup the replica streams. Its
// time is the replica's last backup after a restart, when the metric would otherwise start at 0
// and a group restarted as a whole would look as if its backups had stopped.
const LastBackupFile = "last-backup"

func (s *Service) lastBackupPath() string {
	return filepath.Join(filepath.Dir(s.db.Path()), LastBackupFile)
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
	// Raft counts entries applied since the process started from the snapshot it knows; the
	// database holds what was applied before, so a replica just restarted does not read as empty.
	applied := s.store.AppliedIndex()
	if dbApplied, err := s.db.AppliedIndex(); err == nil && dbApplied > applied {
		applied = dbApplied
	}
	resp := &pb.ClusterStatusResponse{
		Replica: s.replica, State: s.store.State(), Leader: leader,
		AppliedIndex: applied, CommitIndex: max(commit, applied), LastSnapshotIndex: snap,
	}
	for _, srv := range servers {
		addr := srv.Address
		if s.store.Alone() {
			addr = "" // the in-memory transport's address is the replica's id: no address at all
		}
		r := &pb.Replica{Id: srv.ID, RaftAddress: addr, Suffrage: srv.Suffrage, Leader: srv.ID == leader, Unreachable: srv.Unreachable}
		if srv.Unreachable && !srv.LastContact.IsZero() {
			r.LastContact = timestamppb.New(srv.LastContact)
		}
		resp.Replicas = append(resp.Replicas, r)
	}
	return resp, nil
}

// Join adds a voter; the forwarder has brought the call to the leader.
func (s *Service) Join(ctx context.Context, req *pb.JoinRequest) (*pb.ClusterStatusResponse, error) {
	if req.Id == "" {
		return nil, api.Invalid("id", "missing: the new replica's id, such as r4")
	}
	if req.RaftAddress == "" {
		return nil, api.Invalid("raft_address", "missing: the new replica's raft.listen (or advertise) address")
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
	return s.Status(ctx, nil)
}

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
	voters, known := 0, false
	for _, srv := range servers {
		known = known || srv.ID == req.Id
		if srv.Suffrage == "Voter" && srv.ID != req.Id {
			voters++
		}
	}
	switch {
	case !known:
		return nil, api.FieldStatus(codes.NotFound, "id", fmt.Sprintf("no replica %q is in the group: knooppunt cluster status lists them; nothing was changed", req.Id))
	case voters == 0:
		return nil, api.FieldStatus(codes.FailedPrecondition, "id", fmt.Sprintf("%s is the group's last voter: a group without one cannot work; nothing was changed", req.Id))
	}
	if err := s.store.RemoveServer(req.Id); err != nil {
		return nil, api.Status(s.log, err)
	}
	s.log.Info("replica removed", "id", req.Id)
	return s.Status(ctx, nil)
}

// backupChunk is the size of a Backup message's data.
const backupChunk = 1 << 20

// Backup copies the database beside it (store.CopyPath, db.Copy: writes go on) and streams the
// copy. It counts in knooppunt_backups_total, and a whole one sets
// knooppunt_backup_last_success_timestamp_seconds and writes LastBackupFile, for monitoring that
// backups are taken.
func (s *Service) Backup(_ *pb.BackupRequest, stream grpc.ServerStreamingServer[pb.BackupChunk]) (err error) {
	defer func() {
		if err != nil {
			metrics.Backups.WithLabelValues("error").Inc()
			return
		}
		metrics.Backups.WithLabelValues("ok").Inc()
		now := time.Now()
		metrics.BackupLast.Set(float64(now.UnixMilli()) / 1e3)
		// The file's modification time is what counts; its text is for a person who looks.
		if werr := os.WriteFile(s.lastBackupPath(), []byte(now.UTC().Format(time.RFC3339)+"\n"), 0o600); werr != nil {
			s.log.Warn("backup taken, but its time is not kept for after a restart", "err", werr)
		}
	}()
	return s.backup(stream)
}

func (s *Service) backup(stream grpc.ServerStreamingServer[pb.BackupChunk]) error {
	ctx := stream.Context()
	path, err := store.CopyPath(s.db)
	if err != nil {
		return api.Status(s.log, err)
	}
	defer os.Remove(path)
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
	first := &pb.BackupChunk{Size: info.Size(), AppliedIndex: applied}
	if err := sendChunks(f, backupChunk, first, stream.Send); err != nil {
		return api.Status(s.log, err)
	}
	s.log.Info("backup taken", "applied_index", applied, "bytes", info.Size())
	return nil
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
}

var _ pb.ReplicaServiceServer = (*ReplicaService)(nil)

// NewReplicaService returns the service.
func NewReplicaService(s *store.Store, log *slog.Logger) *ReplicaService {
	return &ReplicaService{store: s, log: log}
}

// RegisterReplicaService registers the service on s.
func RegisterReplicaService(s grpc.ServiceRegistrar, svc *ReplicaService) {
	pb.RegisterReplicaServiceServer(s, svc)
}

// Apply commits a follower's command. Only commands whose answer is an error are accepted.
func (r *ReplicaService) Apply(ctx context.Context, req *pb.ApplyRequest) (*pb.ApplyResponse, error) {
	if req.GetCommand() == nil || !store.Forwardable(req.Command) {
		return nil, api.Invalid("command", "only audit entries, disclosures, witnessed heads and file chunks and steps are forwarded")
	}
	if !r.store.IsLeader() {
		return nil, api.Status(r.log, store.ErrNotLeader)
	}
	if _, err := r.store.Apply(ctx, req.Command); err != nil {
		return nil, api.Status(r.log, err)
	}
	return &pb.ApplyResponse{}, nil
}

// Package nodestatus is the StatusService: what a node is, who leads its Raft group, and how much
// it holds.
package nodestatus

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/node/api"
	"github.com/knooppunt/knooppunt/node/api/cluster"
	"github.com/knooppunt/knooppunt/node/db"
	"github.com/knooppunt/knooppunt/node/store"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// Config wires the service.
type Config struct {
	Name, Org, Version string
	Kinds              []string
	Store              *store.Store
	DB                 *db.DB
	StartedAt          time.Time
	Logger             *slog.Logger
	// SVID, when set, gives the ID and expiry of the SVID the replica serves with.
	SVID func() (string, time.Time)
	// Renewal, when set, says since when the SPIRE Workload API has not renewed that SVID, and
	// why; the zero time while it does (and for an SVID from files).
	Renewal func() (time.Time, string)
	// Replica is this replica's id in its Raft group.
	Replica string
	// ConfigState, when set, says why the config file does not load and since when ("" when it
	// does), and which keys changed in it wait for a restart.
	ConfigState func() (broken string, since time.Time, restartFor []string)
}

// Service implements knooppunt.v1.StatusService.
type Service struct {
	pb.UnsafeStatusServiceServer
	c Config
}

var _ pb.StatusServiceServer = (*Service)(nil)

// New returns the service.
func New(c Config) *Service { return &Service{c: c} }

// RegisterService registers the service on s.
func RegisterService(s grpc.ServiceRegistrar, svc *Service) { pb.RegisterStatusServiceServer(s, svc) }

// Status reports on the node.
func (s *Service) Status(ctx context.Context, _ *pb.StatusRequest) (*pb.StatusResponse, error) {
	records, size, err := s.c.DB.Stats(ctx)
	if err != nil {
		return nil, api.Status(s.c.Logger, err)
	}
	seq, err := s.c.DB.LastSeq()
	if err != nil {
		return nil, api.Status(s.c.Logger, err)
	}
	resp := &pb.StatusResponse{
		NodeName:         s.c.Name,
		Org:              s.c.Org,
		Version:          s.c.Version,
		RaftState:        s.c.Store.State(),
		Leader:           s.c.Store.Leader(),
		AppliedIndex:     cluster.AppliedIndex(s.c.Store, s.c.DB),
		Records:          records,
		DbBytes:          size,
		LastSeq:          seq,
		Kinds:            s.c.Kinds,
		StartedAt:        timestamppb.New(s.c.StartedAt),
		LastBackupAt:     lastBackup(s.c.DB),
		DiskFreeBytes:    int64(s.c.DB.DiskFree()),
		DiskReserveBytes: int64(s.c.Store.Reserve()),
		CatchingUp:       s.c.Store.CatchingUp(),
	}
	if at := s.c.Store.LeaderSeen(); !at.IsZero() {
		resp.LeaderSeenAt = timestamppb.New(at)
	}
	if at, err := s.c.Store.LogWriteFailure(); err != nil {
		resp.RaftLogError, resp.RaftLogErrorAt = err.Error(), timestamppb.New(at)
	}
	if at, err := s.c.Store.SnapshotRefused(); err != nil {
		resp.SnapshotRefused, resp.SnapshotRefusedAt = err.Error(), timestamppb.New(at)
	}
	if servers, err := s.c.Store.Servers(); err == nil {
		resp.NotMember = !slices.ContainsFunc(servers, func(srv store.Server) bool { return srv.ID == s.c.Replica })
		for _, srv := range servers {
			if srv.Suffrage != "Voter" {
				continue
			}
			resp.Voters++
			if srv.Unreachable {
				what := srv.ID + " (never answered in this term)"
				if !srv.LastContact.IsZero() {
					what = fmt.Sprintf("%s (last answered %s ago)", srv.ID, time.Since(srv.LastContact).Round(time.Second))
				}
				resp.Unreachable = append(resp.Unreachable, what)
			}
		}
	}
	if s.c.ConfigState != nil {
		broken, since, later := s.c.ConfigState()
		if broken != "" {
			resp.ConfigBroken, resp.ConfigBrokenAt = broken, timestamppb.New(since)
		}
		resp.RestartFor = later
	}
	if s.c.SVID != nil {
		if id, notAfter := s.c.SVID(); id != "" {
			resp.SvidId, resp.SvidExpiresAt = id, timestamppb.New(notAfter)
		}
	}
	if s.c.Renewal != nil {
		if since, why := s.c.Renewal(); !since.IsZero() {
			resp.SvidRenewalFailingSince, resp.SvidRenewalError = timestamppb.New(since), why
		}
	}
	return resp, nil
}

// lastBackup is the replica's last whole backup, nil when it took none.
func lastBackup(d *db.DB) *timestamppb.Timestamp {
	if at := cluster.LastBackup(d); !at.IsZero() {
		return timestamppb.New(at)
	}
	return nil
}

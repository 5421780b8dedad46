// Package exercises is the ExerciseService: an exercise is started, its records are written with
// status EXERCISE and its name and read only in its mode, and closing it deletes every one of its
// records on this node. The deletions go out to peers as retractions through the normal sharing
// path; the audit entries stay. Starting and closing are Raft commands, so every replica agrees
// on which exercises are open.
package exercises

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/node/api"
	"github.com/knooppunt/knooppunt/node/db"
	"github.com/knooppunt/knooppunt/node/record"
	"github.com/knooppunt/knooppunt/node/store"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// Config wires the service.
type Config struct {
	Store *store.Store
	DB    *db.DB
	// Changed, when set, is called after an exercise started or closed: the subscriptions to
	// peers follow the open exercises.
	Changed func()
	// Partners, when set, says of each peer whether it takes part in an open exercise
	// (peerclient.Manager.ExercisePartners).
	Partners func(exercise string) []*pb.ExercisePartner
	Logger   *slog.Logger
}

// Service implements knooppunt.v1.ExerciseService.
type Service struct {
	pb.UnsafeExerciseServiceServer
	c Config
}

var _ pb.ExerciseServiceServer = (*Service)(nil)

// New returns the service.
func New(c Config) *Service { return &Service{c: c} }

// RegisterService registers the service on s.
func RegisterService(s grpc.ServiceRegistrar, svc *Service) { pb.RegisterExerciseServiceServer(s, svc) }

// List returns the open exercises, or all with closed.
func (s *Service) List(ctx context.Context, req *pb.ListExercisesRequest) (*pb.ListExercisesResponse, error) {
	rows, err := s.c.DB.Exercises(ctx, req.Closed)
	if err != nil {
		return nil, api.Status(s.c.Logger, err)
	}
	resp := &pb.ListExercisesResponse{}
	for _, e := range rows {
		info := Info(e)
		if s.c.Partners != nil && e.State == db.ExerciseOpen {
			info.Partners = s.c.Partners(e.Name)
		}
		resp.Exercises = append(resp.Exercises, info)
	}
	return resp, nil
}

// Start opens an exercise.
func (s *Service) Start(ctx context.Context, req *pb.ExerciseStepRequest) (*pb.ExerciseInfo, error) {
	return s.step(ctx, "start", req)
}

// Close deletes every record of an open exercise and closes it.
func (s *Service) Close(ctx context.Context, req *pb.ExerciseStepRequest) (*pb.ExerciseInfo, error) {
	return s.step(ctx, "close", req)
}

func (s *Service) step(ctx context.Context, action string, req *pb.ExerciseStepRequest) (*pb.ExerciseInfo, error) {
	if err := record.CheckExerciseName("name", req.Name); err != nil {
		return nil, api.Status(s.c.Logger, err)
	}
	if err := api.CheckReason(req.Reason, ""); err != nil {
		return nil, err
	}
	caller, _ := api.CallerFrom(ctx)
	step := &pb.ExerciseStep{Action: action, Name: req.Name, Actor: caller.String(), At: timestamppb.Now(), Reason: req.Reason, RetractCopies: true}
	v, err := s.c.Store.Apply(ctx, &pb.Command{Cmd: &pb.Command_ExerciseStep{ExerciseStep: step}})
	if err != nil {
		return nil, api.StatusAt(s.c.Logger, "name", err)
	}
	out, _ := v.(db.ExerciseOutcome)
	if out.Refusal != nil && errors.Is(out.Refusal, db.ErrExerciseUnknown) {
		// Closing a name that was never started: there is no such exercise to close.
		return nil, api.FieldStatus(codes.NotFound, "name", fmt.Sprintf("no exercise %q on this node: knooppunt exercise list --all shows them", req.Name))
	}
	if out.Refusal != nil && errors.Is(out.Refusal, db.ErrExerciseClosed) {
		// Closing again: what a write into it is told (start another) is beside the point.
		return nil, api.FieldStatus(codes.FailedPrecondition, "name", fmt.Sprintf("the exercise is closed: %s: it is closed already (knooppunt exercise list --all says when, and by whom)", req.Name))
	}
	if out.Refusal != nil {
		return nil, api.StatusAt(s.c.Logger, "name", out.Refusal)
	}
	if out.Exercise == nil {
		return nil, api.StatusAt(s.c.Logger, "name", db.ErrExerciseUnknown)
	}
	if s.c.Changed != nil {
		s.c.Changed()
	}
	return Info(out.Exercise), nil
}

// Info is an exercise as the API returns it.
func Info(e *db.ExerciseRow) *pb.ExerciseInfo {
	info := &pb.ExerciseInfo{Name: e.Name, State: e.State, StartedBy: e.StartedBy, StartedAt: timestamppb.New(e.StartedAt),
		ClosedBy: e.ClosedBy, Records: e.Records, Deleted: e.Deleted}
	if !e.ClosedAt.IsZero() {
		info.ClosedAt = timestamppb.New(e.ClosedAt)
	}
	return info
}

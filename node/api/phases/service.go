// Package phases is the PhaseService: officers set a crisis's phase (cold, lukewarm, warm), and
// policies limited to phases switch on and off with it.
package phases

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/node/api"
	"github.com/knooppunt/knooppunt/node/api/policies"
	"github.com/knooppunt/knooppunt/node/db"
	"github.com/knooppunt/knooppunt/node/record"
	"github.com/knooppunt/knooppunt/node/store"
	"github.com/knooppunt/knooppunt/policy"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// Config wires the service.
type Config struct {
	Store  *store.Store
	DB     *db.DB
	Logger *slog.Logger
}

// Service implements knooppunt.v1.PhaseService.
type Service struct {
	pb.UnsafePhaseServiceServer
	c Config
}

var _ pb.PhaseServiceServer = (*Service)(nil)

// New returns the service.
func New(c Config) *Service { return &Service{c: c} }

// RegisterService registers the service on s.
func RegisterService(s grpc.ServiceRegistrar, svc *Service) { pb.RegisterPhaseServiceServer(s, svc) }

// Set changes a crisis's phase, attributed to the calling officer.
func (s *Service) Set(ctx context.Context, req *pb.SetPhaseRequest) (*pb.PhaseInfo, error) {
	officer, err := policies.Officer(ctx)
	if err != nil {
		return nil, err
	}
	// In the words every other method refuses a crisis name with (review AF, AF9).
	if err := record.CheckCrisis("crisis", req.Crisis); err != nil {
		return nil, api.Status(s.c.Logger, err)
	}
	if policy.PhaseRank(req.Phase) < 0 {
		return nil, api.Invalid("phase", "%s is not a phase: use cold, lukewarm or warm", policy.Quote(req.Phase))
	}
	// A phase starts or stops every policy limited to phases, as a revocation does.
	if err := api.CheckReason(req.Reason, "say why the phase changes; the audit log keeps it with the step"); err != nil {
		return nil, err
	}
	if req.Exercise != "" {
		// An exercise keeps phases of its own, set only while it is open.
		if err := record.CheckExerciseName("exercise", req.Exercise); err != nil {
			return nil, api.Status(s.c.Logger, err)
		}
		e, err := s.c.DB.Exercise(ctx, req.Exercise)
		if errors.Is(err, db.ErrExerciseUnknown) {
			err = fmt.Errorf("%w: %s: start it first (knooppunt exercise list shows the open ones)", err, req.Exercise)
		}
		if err != nil {
			return nil, api.StatusAt(s.c.Logger, "exercise", err)
		}
		if e.State != db.ExerciseOpen {
			// Said here: the shared text of a closed exercise is of a write.
			return nil, api.FieldStatus(codes.FailedPrecondition, "exercise", fmt.Sprintf("the exercise is closed: %s: its phases stand as they were; set them in an open exercise", req.Exercise))
		}
	}
	step := &pb.PhaseStep{Crisis: req.Crisis, Phase: req.Phase, Officer: officer, Reason: req.Reason, At: timestamppb.Now(), Exercise: req.Exercise}
	if _, err := s.c.Store.Apply(ctx, &pb.Command{Cmd: &pb.Command_PhaseStep{PhaseStep: step}}); err != nil {
		return nil, api.Status(s.c.Logger, err)
	}
	return &pb.PhaseInfo{Crisis: step.Crisis, Phase: step.Phase, SetBy: officer, SetAt: step.At, Reason: step.Reason, Exercise: step.Exercise}, nil
}

// neverSet is the phase of a crisis whose phase was never set here.
func neverSet(crisis, exercise string) *pb.PhaseInfo {
	return &pb.PhaseInfo{Crisis: crisis, Phase: policy.PhaseCold, Reason: "never set: every crisis starts cold", Exercise: exercise}
}

// List returns the phases set in the mode of the exercise ("" the actual crisis); a crisis never
// set is cold.
func (s *Service) List(ctx context.Context, req *pb.ListPhasesRequest) (*pb.ListPhasesResponse, error) {
	if req.Exercise != "" {
		if err := record.CheckExerciseName("exercise", req.Exercise); err != nil {
			return nil, api.Status(s.c.Logger, err)
		}
	}
	if req.Crisis != "" {
		// As Set: a crisis no record can have was answered with a phase, cold, made up for it
		// (review AF, AF8).
		if err := record.CheckCrisis("crisis", req.Crisis); err != nil {
			return nil, api.Status(s.c.Logger, err)
		}
	}
	all, err := s.c.DB.Phases(ctx, req.Crisis)
	if err != nil {
		return nil, api.Status(s.c.Logger, err)
	}
	var list []db.Phase
	for _, p := range all {
		if p.Exercise == req.Exercise {
			list = append(list, p)
		}
	}
	resp := &pb.ListPhasesResponse{}
	for _, p := range list {
		resp.Phases = append(resp.Phases, &pb.PhaseInfo{Crisis: p.Crisis, Phase: p.Phase, SetBy: p.SetBy, SetAt: timestamppb.New(p.SetAt), Reason: strings.ToValidUTF8(p.Reason, "\uFFFD"), Exercise: p.Exercise})
	}
	if req.Crisis != "" && len(list) == 0 {
		resp.Phases = append(resp.Phases, neverSet(req.Crisis, req.Exercise))
	}
	if req.Known && req.Crisis == "" {
		mode := db.Actual
		if req.Exercise != "" {
			mode = db.Mode{Status: pb.Status_EXERCISE, Exercise: req.Exercise}
		}
		known, err := s.c.DB.Crises(ctx, mode)
		if err != nil {
			return nil, api.Status(s.c.Logger, err)
		}
		set := map[string]bool{}
		for _, p := range list {
			set[p.Crisis] = true
		}
		for _, c := range known {
			if !set[c] {
				resp.Phases = append(resp.Phases, neverSet(c, req.Exercise))
			}
		}
		slices.SortFunc(resp.Phases, func(a, b *pb.PhaseInfo) int { return strings.Compare(a.Crisis, b.Crisis) })
	}
	return resp, nil
}

// Switch is what a change of a crisis's phase does to the approved policies limited to phases:
// those that start and stop sharing records of the crisis (policy.PhaseSwitches), and the other
// crises in the phase it leaves that the node holds records of, which those that stop may still
// share.
type Switch struct {
	Start, Stop []string
	// StillFor are the other crises in the phase left.
	StillFor []string
}

// maxSwitchRecords bounds the crisis's records of each kind Switches reads: a policy that covers
// none of the first so many of each of its kinds is not named.
const maxSwitchRecords = 2000

// Switches asks the node over conn, as the CLI and the web interface do before and after a phase
// change, what setting crisis (within exercise, when set) from phase from to phase to does. A
// crisis none of the node's own live records names starts and stops nothing.
func Switches(ctx context.Context, conn grpc.ClientConnInterface, crisis, exercise, from, to string) (Switch, error) {
	var sw Switch
	pols, err := pb.NewPolicyServiceClient(conn).List(ctx, &pb.ListPoliciesRequest{State: policy.StateApproved})
	if err != nil {
		return sw, err
	}
	var mode *pb.Mode
	if exercise != "" {
		mode = &pb.Mode{Status: pb.Status_EXERCISE, Exercise: exercise}
	}
	// The records of the kinds that policies limited to phases share, each kind's first so many.
	var kinds []string
	for _, p := range pols.Policies {
		if parsed, err := policy.Parse(p.Source); err == nil && len(parsed.Doc.Phases) > 0 {
			for _, k := range parsed.Doc.Kinds {
				if !slices.Contains(kinds, k) {
					kinds = append(kinds, k)
				}
			}
		}
	}
	var records []*pb.Record
	for _, kind := range kinds {
		for token, n := "", 0; n < maxSwitchRecords; {
			page, err := pb.NewRecordServiceClient(conn).List(ctx, &pb.ListRequest{Crisis: crisis, Kind: kind, Mode: mode, PageSize: 1000, PageToken: token})
			if err != nil {
				return sw, err
			}
			records, n = append(records, page.Records...), n+len(page.Records)
			if token = page.NextPageToken; token == "" {
				break
			}
		}
	}
	sw.Start, sw.Stop = policy.PhaseSwitches(pols.Policies, records, from, to, time.Now())
	if len(sw.Stop) > 0 {
		known, err := pb.NewPhaseServiceClient(conn).List(ctx, &pb.ListPhasesRequest{Exercise: exercise, Known: true})
		if err != nil {
			return sw, err
		}
		for _, p := range known.Phases {
			if p.Crisis == crisis || p.Phase != from {
				continue
			}
			// A crisis of which the node holds no record of its own has nothing to share.
			some, err := pb.NewRecordServiceClient(conn).List(ctx, &pb.ListRequest{Crisis: p.Crisis, Mode: mode, PageSize: 1})
			if err != nil {
				return sw, err
			}
			if len(some.Records) > 0 {
				sw.StillFor = append(sw.StillFor, p.Crisis)
			}
		}
	}
	return sw, nil
}

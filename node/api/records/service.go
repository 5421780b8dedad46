// Package records is the RecordService: how an org's own users and apps put, get, list, delete
// and watch the records of their node. It checks every request before anything reaches the
// store, so bad input never touches stored data.
package records

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/node/api"
	"github.com/knooppunt/knooppunt/node/attach"
	"github.com/knooppunt/knooppunt/node/cap"
	"github.com/knooppunt/knooppunt/node/db"
	"github.com/knooppunt/knooppunt/node/metrics"
	"github.com/knooppunt/knooppunt/node/record"
	"github.com/knooppunt/knooppunt/node/store"
	"github.com/knooppunt/knooppunt/policy"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// Limits of one request.
const (
	MaxBatch        = 10000
	DefaultPageSize = 100
	MaxPageSize     = 1000
	watchPage       = 256
	// MaxPageBytes bounds the record bodies of one List page, well under the largest message a
	// client takes (node.MaxMessageBytes, 64 MiB; REST sends bodies in base64): a page of 1000
	// records of 256 KiB would be 100 MB. A page that ends early has a token for the rest.
	MaxPageBytes = 16 << 20
)

// cursorWait is how long Watch waits for its feed to reach a cursor past its end (a replica
// behind the one that gave it) before it refuses the cursor.
var cursorWait = 5 * time.Second

// Config wires the service.
type Config struct {
	Store   *store.Store
	DB      *db.DB
	Checker *record.Checker
	Logger  *slog.Logger
	// Retention is how far back Versions reads (config history.retention); nil: as far as the
	// history keeps.
	Retention func() time.Duration
}

// Service implements knooppunt.v1.RecordService.
type Service struct {
	pb.UnsafeRecordServiceServer
	store     *store.Store
	db        *db.DB
	checker   *record.Checker
	log       *slog.Logger
	retention func() time.Duration
	quit      chan struct{}
	once      sync.Once
}

var _ pb.RecordServiceServer = (*Service)(nil)

// New returns the service.
func New(c Config) *Service {
	return &Service{store: c.Store, db: c.DB, checker: c.Checker, log: c.Logger, retention: c.Retention, quit: make(chan struct{})}
}

// Shutdown ends every Watch stream with UNAVAILABLE, so that a graceful stop does not wait for
// watchers that never hang up.
func (s *Service) Shutdown() { s.once.Do(func() { close(s.quit) }) }

// RegisterService registers the service on s.
func RegisterService(s grpc.ServiceRegistrar, svc *Service) {
	pb.RegisterRecordServiceServer(s, svc)
}

func (s *Service) prepare(r *pb.Record) error {
	if err := s.checker.CheckPut(r); err != nil {
		return err
	}
	if err := s.checkFiles(r.Body); err != nil {
		return err
	}
	if r.Id == "" {
		id, err := uuid.NewV7()
		if err != nil {
			return err
		}
		r.Id = id.String()
	}
	if r.Kind == cap.Kind && !r.Tombstone {
		if err := cap.CheckRecord(r); err != nil {
			return &record.FieldError{Field: "record.body", Code: codes.InvalidArgument, Reason: "not an alert the feed and CAP export can write: " + err.Error()}
		}
	}
	return nil
}

// checkFiles checks that every file a body names is stored, as the upload answered it.
func (s *Service) checkFiles(body []byte) error {
	atts, err := record.Attachments(body)
	if err != nil {
		return err
	}
	for i, a := range atts {
		field := fmt.Sprintf("record.body.%s[%d]", record.AttachmentsField, i)
		f, err := s.db.FileInfo(context.Background(), a.SHA256)
		if errors.Is(err, db.ErrFileNotFound) {
			return &record.FieldError{Field: field + ".sha256", Code: codes.FailedPrecondition,
				Reason: fmt.Sprintf("no file %s is stored: upload it first (record put --attach, or AttachmentService.Upload)", a.SHA256)}
		}
		if err != nil {
			return err
		}
		if f.Origin != "" {
			// Originator control holds for files too: a partner's file, named by an own record,
			// would go out under this node's policies, and the partner's audit would never know.
			return &record.FieldError{Field: field + ".sha256", Code: codes.FailedPrecondition,
				Reason: fmt.Sprintf("file %s came from %s, a partner: a partner's file is never passed on, so this node's records may not name it", a.SHA256, f.Origin)}
		}
		if f.Size != a.Size {
			return &record.FieldError{Field: field + ".size", Code: codes.InvalidArgument, Reason: fmt.Sprintf("%d, but the file has %d bytes", a.Size, f.Size)}
		}
		if f.MediaType != a.MediaType {
			return &record.FieldError{Field: field + ".media_type", Code: codes.InvalidArgument, Reason: fmt.Sprintf("%q, but the file is %s", a.MediaType, f.MediaType)}
		}
		// The record's name is the one a reader's browser saves the file under: it must suit
		// the content as the upload's did.
		if err := attach.CheckName(field+".filename", a.Filename, f.MediaType); err != nil {
			return err
		}
	}
	return nil
}

// prepareAll prepares every record of a batch and returns each one's error. A large batch is
// checked on every core: with one writer, checking (the schema above all) is a fifth of a
// 1000-record batch's time, and the rest of the write path leaves the other cores idle meanwhile.
func (s *Service) prepareAll(recs []*pb.Record) []error {
	errs := make([]error, len(recs))
	parts := min(runtime.GOMAXPROCS(0), len(recs)/parallelCheck)
	if parts < 2 {
		for i, r := range recs {
			errs[i] = s.prepare(r)
		}
		return errs
	}
	var wg sync.WaitGroup
	for p := range parts {
		wg.Go(func() {
			for i := p; i < len(recs); i += parts {
				errs[i] = s.prepare(recs[i])
			}
		})
	}
	wg.Wait()
	return errs
}

// parallelCheck is how many records a batch needs per extra core before prepareAll uses it.
const parallelCheck = 64

func stored(r *pb.Record, res db.Result) *pb.PutResponse {
	return &pb.PutResponse{Id: r.Id, Version: res.Version, UpdatedAt: r.UpdatedAt, Seq: res.Seq}
}

// writer is whom the audit log names for a write of the caller's (see store.WriteAs): on the
// leader, the caller a follower forwarded for.
func writer(ctx context.Context) string {
	if c, ok := api.CallerFrom(ctx); ok {
		return c.String()
	}
	return ""
}

// Put creates or updates one record.
func (s *Service) Put(ctx context.Context, req *pb.PutRequest) (*pb.PutResponse, error) {
	r := req.GetRecord()
	if err := s.prepare(r); err != nil {
		return nil, api.Status(s.log, err)
	}
	res, err := s.store.WriteAs(ctx, writer(ctx), []*pb.Record{r})
	if err != nil {
		return nil, api.Status(s.log, err)
	}
	if res[0].Err != nil {
		return nil, api.WriteStatus(s.log, res[0].Err)
	}
	return stored(r, res[0]), nil
}

// PutBatch writes the valid records of a batch in one log entry and reports on each.
func (s *Service) PutBatch(ctx context.Context, req *pb.PutBatchRequest) (*pb.PutBatchResponse, error) {
	if len(req.Records) > MaxBatch {
		return nil, api.Invalid("records", "%d records is over the limit of %d per batch: split it", len(req.Records), MaxBatch)
	}
	results := make([]*pb.PutBatchResult, len(req.Records))
	errs := s.prepareAll(req.Records)
	var valid []*pb.Record
	var at []int
	for i, r := range req.Records {
		results[i] = &pb.PutBatchResult{Index: int32(i)}
		if err := errs[i]; err != nil {
			fail(results[i], api.Status(s.log, err))
			continue
		}
		valid = append(valid, r)
		at = append(at, i)
	}
	res, err := s.store.WriteAs(ctx, writer(ctx), valid)
	if err != nil {
		return nil, api.Status(s.log, err)
	}
	for j, r := range res {
		out := results[at[j]]
		if r.Err != nil {
			fail(out, api.WriteStatus(s.log, r.Err))
			continue
		}
		out.Stored = stored(valid[j], r)
	}
	return &pb.PutBatchResponse{Results: results}, nil
}

func fail(out *pb.PutBatchResult, err error) {
	st := grpcstatus.Convert(err)
	out.Code = int32(st.Code())
	out.Message = st.Message()
	out.Field, _ = api.Field(err)
	out.Reason = api.Reason(err)
	out.CurrentVersion, _ = api.CurrentVersion(err)
}

// Get returns one live record.
func (s *Service) Get(ctx context.Context, req *pb.GetRequest) (*pb.Record, error) {
	if err := record.CheckID("id", req.Id); err != nil {
		return nil, api.Status(s.log, err)
	}
	if err := api.CheckConsistency(req.Consistency); err != nil {
		return nil, err
	}
	r, err := s.liveIn(ctx, req.Id, req.Mode)
	if err != nil {
		return nil, err
	}
	api.AuditRead(ctx, s.store, s.log, s.checker.Origin, "Get", r)
	return r, nil
}

// liveIn is the live own record id of mode (nil: actual); a record of another mode does not
// exist in this one: NOT_FOUND.
func (s *Service) liveIn(ctx context.Context, id string, mode *pb.Mode) (*pb.Record, error) {
	if err := record.CheckMode("mode", mode); err != nil {
		return nil, api.Status(s.log, err)
	}
	r, err := s.db.Get(ctx, id)
	if err != nil {
		return nil, api.Status(s.log, err)
	}
	if !db.ModeFrom(mode).Holds(r) {
		return nil, api.Status(s.log, db.ErrNotFound)
	}
	return r, nil
}

// Versions returns the versions of one own or cached record that the history keeps, newest
// first, with the body's scalars of each. A record that the node does not hold in the mode is
// NOT_FOUND, as in Get.
func (s *Service) Versions(ctx context.Context, req *pb.VersionsRequest) (*pb.VersionsResponse, error) {
	if err := record.CheckID("id", req.Id); err != nil {
		return nil, api.Status(s.log, err)
	}
	origin := req.Origin
	if origin == s.checker.Origin {
		origin = ""
	}
	if origin != "" {
		if err := record.CheckOrigin("origin", origin); err != nil {
			return nil, api.Status(s.log, err)
		}
	}
	if err := record.CheckMode("mode", req.Mode); err != nil {
		return nil, api.Status(s.log, err)
	}
	var since time.Time
	if s.retention != nil {
		since = time.Now().Add(-s.retention())
	}
	vs, err := s.db.Versions(ctx, origin, req.Id, db.ModeFrom(req.Mode), since)
	if err != nil {
		return nil, api.Status(s.log, err)
	}
	if len(vs) > 0 {
		// The versions are read as the most confidential of them, own or a partner's: a record
		// declassified since handed out its secret versions' figures without a trace (review AG,
		// AG5). The history keeps each version's classification; the record's own counts too.
		top, err := s.db.VersionsClassification(ctx, origin, req.Id)
		if err != nil {
			return nil, api.Status(s.log, err)
		}
		if origin == "" {
			if r, err := s.db.Get(ctx, req.Id); err == nil {
				top = max(top, r.Classification)
			}
		}
		api.AuditRead(ctx, s.store, s.log, s.checker.Origin, "Versions", &pb.Record{Id: req.Id, Origin: origin, Classification: top})
	}
	out := &pb.VersionsResponse{Versions: make([]*pb.RecordVersion, 0, len(vs))}
	for _, v := range vs {
		m := make(map[string]any, len(v.Fields)+len(v.Values))
		for k, f := range v.Fields {
			m[k] = f
		}
		maps.Copy(m, v.Values)
		fields, err := structpb.NewStruct(m)
		if err != nil {
			return nil, api.Status(s.log, fmt.Errorf("records: version %d of %q: %w", v.Version, req.Id, err))
		}
		out.Versions = append(out.Versions, &pb.RecordVersion{Version: v.Version, UpdatedAt: timestamppb.New(v.At), Deleted: v.Tombstone, Fields: fields})
	}
	return out, nil
}

// List returns a page of live records matching the filters, in id order.
func (s *Service) List(ctx context.Context, req *pb.ListRequest) (*pb.ListResponse, error) {
	if err := api.CheckConsistency(req.Consistency); err != nil {
		return nil, err
	}
	if req.Region != "" {
		// A typo would list nothing, as if the region had no records.
		if err := record.CheckRegion("region", req.Region); err != nil {
			return nil, api.Status(s.log, err)
		}
	}
	if req.Crisis != "" {
		// So would a crisis name no record can have (Oekraïne, NOPE!).
		if err := record.CheckCrisis("crisis", req.Crisis); err != nil {
			return nil, api.Status(s.log, err)
		}
	}
	f := db.Filter{
		Kind: req.Kind, Crisis: req.Crisis, Region: req.Region,
		MaxClassification: req.MaxClassification, PageSize: int(req.PageSize), PageToken: req.PageToken,
		Mode: db.ModeFrom(req.Mode), Deleted: req.IncludeDeleted, MaxBytes: MaxPageBytes,
	}
	if err := record.CheckMode("mode", req.Mode); err != nil {
		return nil, api.Status(s.log, err)
	}
	if err := s.checkKind(req.Kind); err != nil {
		return nil, err
	}
	if err := record.CheckClassification("max_classification", req.MaxClassification, true); err != nil {
		return nil, api.Status(s.log, err)
	}
	labels, has, err := ParseSelector(req.LabelSelector)
	if err != nil {
		return nil, err
	}
	f.Labels, f.HasLabels = labels, has
	if req.UpdatedSince != nil {
		if err := record.CheckTime("updated_since", req.UpdatedSince); err != nil {
			return nil, api.Status(s.log, err)
		}
		f.UpdatedSince = req.UpdatedSince.AsTime()
	}
	switch {
	case req.PageSize < 0:
		return nil, api.Invalid("page_size", "%d is negative", req.PageSize)
	case req.PageSize == 0:
		f.PageSize = DefaultPageSize
	case req.PageSize > MaxPageSize:
		f.PageSize = MaxPageSize
	}
	recs, next, err := s.db.List(ctx, f)
	if err != nil {
		return nil, api.Status(s.log, err)
	}
	api.AuditRead(ctx, s.store, s.log, s.checker.Origin, "List", recs...)
	return &pb.ListResponse{Records: recs, NextPageToken: next}, nil
}

// ParseSelector parses a label selector of comma-separated key=value pairs, and keys alone,
// which keep the records that have the label whatever its value (has).
func ParseSelector(sel string) (labels map[string]string, has []string, err error) {
	if strings.TrimSpace(sel) == "" {
		return nil, nil, nil
	}
	labels = map[string]string{}
	keys := map[string]string{}
	for _, part := range strings.Split(sel, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if k == "" {
			return nil, nil, api.Invalid("label_selector", "%q is not key=value, or a key alone", part)
		}
		if !ok {
			has = append(has, k) // the label, whatever its value
			keys[k] = ""
			continue
		}
		labels[k] = v
		keys[k] = v
	}
	if err := record.CheckLabelSelector("label_selector", keys); err != nil {
		return nil, nil, api.Status(slog.Default(), err)
	}
	return labels, has, nil
}

// Delete writes a tombstone for a live record.
func (s *Service) Delete(ctx context.Context, req *pb.DeleteRequest) (*pb.PutResponse, error) {
	if err := record.CheckID("id", req.Id); err != nil {
		return nil, api.Status(s.log, err)
	}
	if req.Version < 0 {
		return nil, api.Invalid("version", "%d is negative", req.Version)
	}
	gone := func() error {
		return api.FieldStatus(codes.NotFound, "id", fmt.Sprintf("record not found: this node holds no live record %q in this mode: it was deleted already, or never was (`knooppunt record list` shows the live ones)", req.Id))
	}
	if req.Mode != nil {
		// A live record keeps its mode, so what is read here is what the tombstone ends.
		if _, err := s.liveIn(ctx, req.Id, req.Mode); grpcstatus.Code(err) == codes.NotFound {
			return nil, gone()
		} else if err != nil {
			return nil, err
		}
	}
	t := &pb.Record{Id: req.Id, Version: req.Version, Tombstone: true}
	res, err := s.store.WriteAs(ctx, writer(ctx), []*pb.Record{t})
	if err == nil {
		err = res[0].Err
	}
	if errors.Is(err, db.ErrNotFound) {
		return nil, gone()
	}
	if err != nil {
		return nil, api.Status(s.log, err)
	}
	return stored(t, res[0]), nil
}

// checkKind checks the kind a read filters on ("": every kind): one of this node's, the kinds
// its own records can have.
func (s *Service) checkKind(kind string) error {
	if kind != "" && s.checker.Kinds.Get(kind) == nil {
		return api.Invalid("kind", "unknown kind %s: use one of %s", policy.Quote(kind), strings.Join(s.checker.Kinds.Names(), ", "))
	}
	return nil
}

// Watch streams the changes after the cursor: those stored, then new ones as they commit.
func (s *Service) Watch(req *pb.WatchRequest, stream grpc.ServerStreamingServer[pb.Change]) error {
	if req.Cursor < 0 {
		return api.Invalid("cursor", "%d is negative: use 0 to start at the beginning", req.Cursor)
	}
	if err := s.checkKind(req.Kind); err != nil {
		return err
	}
	if req.Crisis != "" {
		// As List: a crisis name no record can have opened a watch that never delivered
		// (review AF, AF8).
		if err := record.CheckCrisis("crisis", req.Crisis); err != nil {
			return api.Status(s.log, err)
		}
	}
	if err := record.CheckMode("mode", req.Mode); err != nil {
		return api.Status(s.log, err)
	}
	mode := db.ModeFrom(req.Mode)
	// A cursor from before a restore from a backup, or past the feed's end, resumed silently
	// where the feed numbers other changes (review J, F9).
	if err := s.db.CheckCursor(stream.Context(), req.Cursor, cursorWait); err != nil {
		var ce *db.CursorError
		if errors.As(err, &ce) {
			return api.FieldStatus(codes.OutOfRange, "cursor", ce.Reason())
		}
		return api.Status(s.log, err)
	}
	metrics.WatchStreams.Inc()
	defer metrics.WatchStreams.Dec()
	ctx := stream.Context()
	cursor := req.Cursor
	for {
		changed := s.db.Changed()
		upTo, err := s.db.LastSeq()
		if err != nil {
			return api.Status(s.log, err)
		}
		for cursor < upTo {
			page, err := s.db.Changes(ctx, cursor, upTo, watchPage, mode, req.Kind, req.Crisis)
			if err != nil {
				return api.Status(s.log, err)
			}
			recs := make([]*pb.Record, len(page))
			for i, c := range page {
				recs[i] = c.Record
			}
			api.AuditRead(ctx, s.store, s.log, s.checker.Origin, "Watch", recs...)
			for _, c := range page {
				if err := stream.Send(&pb.Change{Seq: c.Seq, Record: c.Record}); err != nil {
					return err
				}
				cursor = c.Seq
			}
			if len(page) < watchPage {
				// Nothing else matches up to upTo; skip the changes the filter left out.
				cursor = upTo
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.quit:
			return grpcstatus.Error(codes.Unavailable, "the node is shutting down: watch again from your last cursor")
		case <-changed:
		}
	}
}

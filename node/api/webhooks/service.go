// Package webhooks is the WebhookService: the node's admins define outbound webhooks to their
// own systems, see their dead letters and send those again. Every step goes through Raft; the
// signing secret is made by the leader, kept in the log, and shown once, in Add's answer.
package webhooks

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/node/api"
	"github.com/knooppunt/knooppunt/node/config"
	"github.com/knooppunt/knooppunt/node/db"
	"github.com/knooppunt/knooppunt/node/record"
	"github.com/knooppunt/knooppunt/node/store"
	"github.com/knooppunt/knooppunt/node/webhook"
	"github.com/knooppunt/knooppunt/policy"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// Limits of a definition.
const (
	MaxURL     = 2048
	MaxFilters = 64
)

// Config wires the service.
type Config struct {
	Store *store.Store
	DB    *db.DB
	Kinds *record.Kinds
	// Settings and Peers read the running config: a URL is checked against both at Add.
	Settings func() config.Webhooks
	Peers    func() []config.Peer
	Logger   *slog.Logger
}

// Service implements knooppunt.v1.WebhookService.
type Service struct {
	pb.UnsafeWebhookServiceServer
	c Config
}

var _ pb.WebhookServiceServer = (*Service)(nil)

// New returns the service.
func New(c Config) *Service { return &Service{c: c} }

// RegisterService registers the service on s.
func RegisterService(s grpc.ServiceRegistrar, svc *Service) { pb.RegisterWebhookServiceServer(s, svc) }

func caller(ctx context.Context) string {
	c, _ := api.CallerFrom(ctx)
	return c.String()
}

// Add checks and stores a webhook, with a new id and secret.
func (s *Service) Add(ctx context.Context, req *pb.AddWebhookRequest) (*pb.AddWebhookResponse, error) {
	if req.Url == "" {
		return nil, api.Invalid("url", "give the URL of the receiver, such as https://hooks.example.nl/knooppunt")
	}
	if len(req.Url) > MaxURL {
		return nil, api.Invalid("url", "%d bytes, over the limit of %d", len(req.Url), MaxURL)
	}
	if err := webhook.CheckURL(req.Url, s.c.Settings().AllowPrivate, s.c.Peers()); err != nil {
		// The field is named once: "url: …", not "url: webhook: url: …".
		msg := strings.TrimPrefix(strings.TrimPrefix(err.Error(), webhook.ErrURL.Error()+": "), "webhook: ")
		return nil, api.Invalid("url", "%s", msg)
	}
	for _, f := range []struct {
		field string
		n     int
	}{{"kinds", len(req.Kinds)}, {"crises", len(req.Crises)}, {"regions", len(req.Regions)}} {
		if f.n > MaxFilters {
			return nil, api.Invalid(f.field, "%d, over the limit of %d", f.n, MaxFilters)
		}
	}
	for i, k := range req.Kinds {
		if s.c.Kinds.Get(k) == nil {
			return nil, api.Invalid(fmt.Sprintf("kinds[%d]", i), "%s is not a kind of this node: use one of %s", policy.Quote(k), strings.Join(s.c.Kinds.Names(), ", "))
		}
	}
	for i, c := range req.Crises {
		if err := record.CheckCrisis(fmt.Sprintf("crises[%d]", i), c); err != nil {
			return nil, api.Status(s.c.Logger, err)
		}
	}
	for i, r := range req.Regions {
		if err := record.CheckRegion(fmt.Sprintf("regions[%d]", i), r); err != nil {
			return nil, api.Status(s.c.Logger, err)
		}
	}
	// As a search filter that names a value twice is refused (review AF, AF8): each is well
	// formed by now, so short enough to quote.
	for _, f := range []struct {
		field, what string
		vals        []string
	}{{"kinds", "kind", req.Kinds}, {"crises", "crisis", req.Crises}, {"regions", "region", req.Regions}} {
		if err := api.Repeated(f.field, f.vals, f.what); err != nil {
			return nil, err
		}
	}
	if err := record.CheckClassification("max_classification", req.MaxClassification, true); err != nil {
		return nil, api.Status(s.c.Logger, err)
	}
	if req.Exercise != "" {
		if err := record.CheckExerciseName("exercise", req.Exercise); err != nil {
			return nil, api.Status(s.c.Logger, err)
		}
		// A misspelt exercise would deliver nothing, ever, without a word.
		if e, err := s.c.DB.Exercise(ctx, req.Exercise); errors.Is(err, db.ErrExerciseUnknown) {
			return nil, api.FieldStatus(codes.FailedPrecondition, "exercise", fmt.Sprintf("no exercise %s on this node: start it first (knooppunt exercise list --all shows them)", policy.Quote(req.Exercise)))
		} else if err != nil {
			return nil, api.Status(s.c.Logger, err)
		} else if e.State == db.ExerciseClosed {
			// Nor would a closed one: it takes no records any more (review Z, Z19).
			return nil, api.FieldStatus(codes.FailedPrecondition, "exercise", fmt.Sprintf("exercise %s is closed on this node: it takes no records, so a webhook of it would deliver nothing; start another", policy.Quote(req.Exercise)))
		}
	}
	crises := req.Crises
	if len(crises) > 0 && !slices.Contains(crises, db.AllCrises) {
		// The alerts of crisis all are in every crisis's picture (an early-warning rule's, a CAP
		// alert imported without one): a webhook of a crisis gets them too, and shows it.
		crises = append(slices.Clone(crises), db.AllCrises)
	}
	secret, err := webhook.NewSecret()
	if err != nil {
		return nil, api.Status(s.c.Logger, err)
	}
	id := make([]byte, 8)
	rand.Read(id)
	w := &pb.Webhook{
		Id: "wh_" + hex.EncodeToString(id), Url: req.Url, Kinds: dedup(req.Kinds), Crises: dedup(crises), Regions: dedup(req.Regions),
		Exercise: req.Exercise, MaxClassification: req.MaxClassification, Secret: secret.String(),
	}
	out, err := s.step(ctx, &pb.WebhookStep{Action: "add", Webhook: w, By: caller(ctx), At: timestamppb.Now(), Withdraws: true, ShownUrl: true})
	if err != nil {
		return nil, err
	}
	return &pb.AddWebhookResponse{Webhook: info(out.Webhook), Secret: secret.String()}, nil
}

func dedup(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return slices.Compact(s)
}

// List returns the webhooks, without their secrets.
func (s *Service) List(ctx context.Context, _ *pb.ListWebhooksRequest) (*pb.ListWebhooksResponse, error) {
	rows, err := s.c.DB.Webhooks(ctx)
	if err != nil {
		return nil, api.Status(s.c.Logger, err)
	}
	resp := &pb.ListWebhooksResponse{}
	for i := range rows {
		resp.Webhooks = append(resp.Webhooks, info(&rows[i]))
	}
	return resp, nil
}

// Remove deletes a webhook with its queue and dead letters.
func (s *Service) Remove(ctx context.Context, req *pb.RemoveWebhookRequest) (*pb.Webhook, error) {
	if req.Id == "" {
		return nil, api.Invalid("id", "give the id of the webhook to remove: see knooppunt webhook list")
	}
	if err := checkID("id", req.Id); err != nil {
		return nil, err
	}
	out, err := s.step(ctx, &pb.WebhookStep{Action: "remove", Webhook: &pb.Webhook{Id: req.Id}, By: caller(ctx), At: timestamppb.Now(), ShownUrl: true})
	if err != nil {
		return nil, err
	}
	return info(out.Webhook), nil
}

// Failures lists dead letters.
func (s *Service) Failures(ctx context.Context, req *pb.WebhookFailuresRequest) (*pb.WebhookFailuresResponse, error) {
	if req.Webhook != "" {
		if err := checkID("webhook", req.Webhook); err != nil {
			return nil, err
		}
		if _, err := s.c.DB.Webhook(ctx, req.Webhook); err != nil {
			return nil, s.notFound("webhook", req.Webhook, err)
		}
	}
	rows, err := s.c.DB.WebhookFailures(ctx, req.Webhook)
	if err != nil {
		return nil, api.Status(s.c.Logger, err)
	}
	resp := &pb.WebhookFailuresResponse{}
	for _, x := range rows {
		resp.Failures = append(resp.Failures, &pb.WebhookFailure{
			Webhook: x.Webhook, MessageId: x.Message, Event: x.Event, Origin: x.Origin, RecordId: x.RecordID,
			Version: x.Version, Attempts: x.Attempts, LastError: x.LastError,
			FirstAttemptAt: ts(x.FirstAttemptAt), FailedAt: ts(x.FailedAt),
		})
	}
	return resp, nil
}

// maxRetryIDs bounds the message ids one Retry names, which go into one Raft entry.
const maxRetryIDs = 10000

// Retry queues dead letters again.
func (s *Service) Retry(ctx context.Context, req *pb.RetryWebhookRequest) (*pb.RetryWebhookResponse, error) {
	if req.Webhook == "" {
		return nil, api.Invalid("webhook", "give the id of the webhook whose failures to send again: see knooppunt webhook failures")
	}
	if err := checkID("webhook", req.Webhook); err != nil {
		return nil, err
	}
	if len(req.MessageIds) > maxRetryIDs {
		return nil, api.Invalid("message_ids", "%d ids is over the limit of %d: give none to send every failure again", len(req.MessageIds), maxRetryIDs)
	}
	// Known before anything goes into the Raft log.
	if _, err := s.c.DB.Webhook(ctx, req.Webhook); err != nil {
		return nil, s.notFound("webhook", req.Webhook, err)
	}
	out, err := s.step(ctx, &pb.WebhookStep{Action: "retry", Webhook: &pb.Webhook{Id: req.Webhook}, MessageIds: req.MessageIds, By: caller(ctx), At: timestamppb.Now(), DropsSuperseded: true})
	if err != nil {
		return nil, err
	}
	resp := &pb.RetryWebhookResponse{Queued: out.Requeued, Superseded: out.Superseded}
	if given, done := int64(len(dedup(req.MessageIds))), out.Requeued+out.Superseded; given > 0 && done < given {
		return resp, api.FieldStatus(codes.NotFound, "message_ids",
			fmt.Sprintf("%d of the %d given are not failures of %s (queued again: %d, superseded: %d): see knooppunt webhook failures",
				given-done, given, req.Webhook, out.Requeued, out.Superseded))
	}
	return resp, nil
}

// Overlaps of Rotate: unset, and the longest.
const (
	DefaultOverlap = 24 * time.Hour
	MaxOverlap     = 30 * 24 * time.Hour
)

// Rotate gives a webhook a new secret and keeps signing with the old one for the overlap.
func (s *Service) Rotate(ctx context.Context, req *pb.RotateWebhookRequest) (*pb.AddWebhookResponse, error) {
	if req.Id == "" {
		return nil, api.Invalid("id", "give the id of the webhook whose secret to change: see knooppunt webhook list")
	}
	if err := checkID("id", req.Id); err != nil {
		return nil, err
	}
	overlap := DefaultOverlap
	if req.Overlap != nil {
		if err := record.CheckDuration("overlap", req.Overlap); err != nil {
			return nil, api.Status(s.c.Logger, err)
		}
		overlap = req.Overlap.AsDuration()
	}
	if overlap < 0 || overlap > MaxOverlap {
		return nil, api.Invalid("overlap", "%s: give 0 (a secret that leaked: the old one stops at once) up to %s", overlap, MaxOverlap)
	}
	// Known before anything goes into the Raft log.
	if _, err := s.c.DB.Webhook(ctx, req.Id); err != nil {
		return nil, s.notFound("id", req.Id, err)
	}
	secret, err := webhook.NewSecret()
	if err != nil {
		return nil, api.Status(s.c.Logger, err)
	}
	now := time.Now()
	step := &pb.WebhookStep{Action: "rotate", Webhook: &pb.Webhook{Id: req.Id, Secret: secret.String()}, By: caller(ctx), At: timestamppb.New(now)}
	if overlap > 0 {
		step.OldSecretUntil = timestamppb.New(now.Add(overlap))
	}
	out, err := s.step(ctx, step)
	if err != nil {
		return nil, err
	}
	return &pb.AddWebhookResponse{Webhook: info(out.Webhook), Secret: secret.String()}, nil
}

func (s *Service) step(ctx context.Context, step *pb.WebhookStep) (store.WebhookOutcome, error) {
	v, err := s.c.Store.Apply(ctx, &pb.Command{Cmd: &pb.Command_WebhookStep{WebhookStep: step}})
	if err != nil {
		return store.WebhookOutcome{}, api.Status(s.c.Logger, err)
	}
	out := v.(store.WebhookOutcome)
	if out.Refusal != nil {
		if errors.Is(out.Refusal, db.ErrNotFound) {
			return out, s.notFound("id", step.Webhook.Id, out.Refusal)
		}
		return out, api.FieldStatus(codes.AlreadyExists, "id", out.Refusal.Error())
	}
	return out, nil
}

// webhookID is what a webhook's id can be: Add makes wh_ and 16 hex digits; a name of that
// shape is looked up, anything else cannot be one.
var webhookID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// checkID refuses a value in field that cannot be a webhook's id as such, rather than looking it
// up and not finding it (review AF, AF5).
func checkID(field, id string) error {
	if !webhookID.MatchString(id) {
		return api.Invalid(field, "%s is not a webhook id, such as wh_0123456789abcdef: see knooppunt webhook list", policy.Quote(id))
	}
	return nil
}

func (s *Service) notFound(field, id string, err error) error {
	if errors.Is(err, db.ErrNotFound) {
		return api.FieldStatus(codes.NotFound, field, fmt.Sprintf("no webhook %s: see knooppunt webhook list", policy.Quote(id)))
	}
	return api.Status(s.c.Logger, fmt.Errorf("webhooks: %w", err))
}

func info(w *db.WebhookRow) *pb.Webhook {
	return &pb.Webhook{
		Id: w.ID, Url: w.URL, Kinds: w.Kinds, Crises: w.Crises, Regions: w.Regions, Exercise: w.Exercise, MaxClassification: w.MaxClassification,
		CreatedBy: w.CreatedBy, CreatedAt: ts(w.CreatedAt), Queued: w.Queued, Failed: w.Failed,
		Delivered: w.Delivered, LastDeliveredAt: ts(w.LastDeliveredAt), FailingSince: ts(w.FailingSince), LastError: w.LastError,
		OldSecretUntil: ts(w.OldSecretSigns(time.Now())),
	}
}

// ts is a time as a timestamp, or nil for the zero time (never happened).
func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// Package attachments is the AttachmentService: an org's own users upload files through Raft, a
// chunk per log entry, and download the files that the records their node holds name. It checks
// every upload (size, sniffed media type, name, hash) before the file counts as stored, and an
// upload that breaks off leaves nothing behind.
package attachments

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/knooppunt/knooppunt/node/api"
	"github.com/knooppunt/knooppunt/node/attach"
	"github.com/knooppunt/knooppunt/node/config"
	"github.com/knooppunt/knooppunt/node/db"
	"github.com/knooppunt/knooppunt/node/record"
	"github.com/knooppunt/knooppunt/node/store"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// Config wires the service.
type Config struct {
	Store  *store.Store
	DB     *db.DB
	Limits func() attach.Limits
	Logger *slog.Logger
	// Peers are the node's peers now: a record's origin may be named by a peer's name, as
	// search --origin and export take it.
	Peers func() []config.Peer
}

// Service implements knooppunt.v1.AttachmentService.
type Service struct {
	pb.UnsafeAttachmentServiceServer
	c Config
}

var _ pb.AttachmentServiceServer = (*Service)(nil)

// New returns the service.
func New(c Config) *Service { return &Service{c: c} }

// RegisterService registers the service on s.
func RegisterService(s grpc.ServiceRegistrar, svc *Service) {
	pb.RegisterAttachmentServiceServer(s, svc)
}

// Upload stores a file and answers with the attachment to name in a record.
func (s *Service) Upload(stream grpc.ClientStreamingServer[pb.UploadRequest, pb.Attachment]) error {
	ctx := stream.Context()
	first, err := stream.Recv()
	if errors.Is(err, io.EOF) {
		return api.Invalid("filename", "missing: the first message names the file")
	}
	if err != nil {
		return err
	}
	if err := record.CheckFilename("filename", first.Filename); err != nil {
		return api.Status(s.c.Logger, err)
	}
	// A name of spaces alone names no file a person can find again (review AF, AF8).
	if strings.TrimSpace(first.Filename) == "" {
		return api.Invalid("filename", "spaces only: name the file, such as handreiking.pdf")
	}
	if err := attach.CheckActive("filename", first.Filename); err != nil {
		return api.Status(s.c.Logger, err)
	}
	if first.Sha256 != "" {
		if err := record.CheckSHA256("sha256", first.Sha256); err != nil {
			return api.Status(s.c.Logger, err)
		}
	}
	limits := s.c.Limits()
	max := limits.MaxBytes
	if max <= 0 {
		max = attach.DefaultMaxBytes
	}
	switch {
	case first.Size < 0:
		return api.Invalid("size", "%d is negative: give the file's size, or 0 when it is not known", first.Size)
	case first.Size > max:
		return api.FieldStatus(codes.ResourceExhausted, "size", fmt.Sprintf("%d bytes is over this node's limit of %d bytes per file", first.Size, max))
	}
	w := attach.NewWriter(s.c.Store, s.c.DB, limits, "", "data")
	committed := false
	defer func() {
		if !committed {
			w.Abort(ctx)
		}
	}()
	msg := first
	for {
		if len(msg.Data) > 0 {
			if err := w.Write(ctx, first.Filename, msg.Data); err != nil {
				return api.Status(s.c.Logger, err)
			}
		}
		msg, err = stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err // the client broke off: the deferred Abort removes what was staged
		}
		// Named at the field the later message gave (review AF, AF9).
		switch {
		case msg.Filename != "":
			return api.Invalid("filename", "only the first message names the file; later ones carry data alone")
		case msg.Sha256 != "":
			return api.Invalid("sha256", "only the first message gives the file's SHA-256; later ones carry data alone")
		case msg.Size != 0:
			return api.Invalid("size", "only the first message gives the file's size; later ones carry data alone")
		}
	}
	if first.Size > 0 && w.Size() != first.Size {
		return api.Invalid("size", "the upload declared %d bytes but sent %d: it broke off; upload the file again", first.Size, w.Size())
	}
	att, err := w.Commit(ctx, first.Filename, first.Sha256)
	if err != nil {
		return api.Status(s.c.Logger, err)
	}
	committed = true
	return stream.SendAndClose(att)
}

// holds is whether the node holds the live record id of origin ("" for its own) in mode.
func (s *Service) holds(ctx context.Context, origin, id string, mode db.Mode) (bool, error) {
	if origin != "" {
		n, err := s.c.DB.ForeignCount(ctx, db.ForeignFilter{Origin: origin, IDs: []string{id}, Mode: mode})
		return n > 0, err
	}
	rec, err := s.c.DB.Get(ctx, id)
	if errors.Is(err, db.ErrNotFound) {
		return false, nil
	}
	return err == nil && mode.Holds(rec), err
}

// Download streams a file that a record the node holds names, in the request's mode as
// RecordService.Get reads: a record of another mode names no file. The attachment that comes
// first carries the name the record gives the file.
func (s *Service) Download(req *pb.DownloadRequest, stream grpc.ServerStreamingServer[pb.FileData]) error {
	ctx := stream.Context()
	origin, id := "", req.RecordId
	if o, rest, ok := strings.Cut(req.RecordId, "/"); ok {
		if err := record.CheckOrigin("record_id", o); err != nil {
			return api.Status(s.c.Logger, err)
		}
		origin, id = s.trustDomainOf(o), rest
	}
	if err := record.CheckID("record_id", id); err != nil {
		return api.Status(s.c.Logger, err)
	}
	if err := record.CheckSHA256("sha256", req.Sha256); err != nil {
		return api.Status(s.c.Logger, err)
	}
	if err := record.CheckMode("mode", req.Mode); err != nil {
		return api.Status(s.c.Logger, err)
	}
	att, stored, named, err := s.c.DB.Named(ctx, origin, id, req.Sha256, db.ModeFrom(req.Mode))
	if err != nil {
		return api.Status(s.c.Logger, err)
	}
	if !named {
		if held, err := s.holds(ctx, origin, id, db.ModeFrom(req.Mode)); err != nil {
			return api.Status(s.c.Logger, err)
		} else if !held {
			if origin != "" {
				return api.FieldStatus(codes.NotFound, "record_id", fmt.Sprintf("this node holds no record %s of %s in this mode: `search --origin %s` shows what the partner shares with it", id, origin, origin))
			}
			return api.FieldStatus(codes.NotFound, "record_id", fmt.Sprintf("there is no record %s in this mode: `record list` shows the node's records (with --exercise NAME for an exercise's)", id))
		}
		how := "record get " + id
		if origin != "" {
			how = fmt.Sprintf("search --origin %s --id %s -o json", origin, id)
		}
		return status.Errorf(codes.NotFound, "record %s names no file %s in this mode: list the record's attachments with %s (with --exercise NAME for an exercise's record)", req.RecordId, req.Sha256, how)
	}
	notYet := func() error {
		return status.Errorf(codes.Unavailable, "the file of %s has not been fetched from %s yet: try again shortly", req.RecordId, origin)
	}
	if !stored {
		if origin != "" {
			return notYet()
		}
		return api.Status(s.c.Logger, db.ErrFileNotFound)
	}
	// A file of a confidential record is read as the record is (review AD, AD2): an own record as
	// a Get of it, a partner's as a search of it.
	if origin == "" {
		if r, err := s.c.DB.Get(ctx, id); err == nil {
			api.AuditRead(ctx, s.c.Store, s.c.Logger, r.GetOrigin(), "Download", r)
		}
	} else if held, err := s.c.DB.ForeignList(ctx, db.ForeignFilter{Origin: origin, IDs: []string{id}, Mode: db.ModeFrom(req.Mode), Limit: 1}); err == nil && len(held) == 1 {
		api.AuditRead(ctx, s.c.Store, s.c.Logger, "", "Download", held[0].Record)
	}
	send := func(msg *pb.FileData) error {
		if msg.Attachment != nil {
			msg.Attachment.Filename = att.Filename
		}
		return stream.Send(msg)
	}
	return attach.Send(ctx, s.c.DB, req.Sha256, send, func(err error) error {
		if errors.Is(err, db.ErrFileNotFound) && origin != "" {
			return notYet()
		}
		return api.Status(s.c.Logger, err)
	})
}

// trustDomainOf is the trust domain of the origin named: a peer's name stands for its trust
// domain; anything else is taken as a trust domain.
func (s *Service) trustDomainOf(origin string) string {
	if s.c.Peers != nil {
		for _, p := range s.c.Peers() {
			if p.Name == origin {
				return p.TrustDomain
			}
		}
	}
	return origin
}

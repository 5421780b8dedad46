package peerclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/knooppunt/knooppunt/node/attach"
	"github.com/knooppunt/knooppunt/node/config"
	"github.com/knooppunt/knooppunt/node/db"
	"github.com/knooppunt/knooppunt/node/metrics"
	"github.com/knooppunt/knooppunt/node/record"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// Files travel apart from records. A subscription stores a peer's records as they come; the
// files they name are fetched afterwards, by hash, by one fetcher per peer, within the peer's
// byte budget (FileBytesPerSecond): a large file takes its time without holding up a single
// record. What a fetcher stores goes through Raft in chunks like an upload, and a file that
// fails is tried again after a wait that doubles with each failure (1 s to 5 min). A file this
// node would not take as an upload (over attachments.max_bytes, of a type it does not accept,
// named as a program or for another type) is refused as the record names it, before any of it
// is fetched, and not tried again until the limits change.

// Fetcher timing.
const (
	fetchPoll       = 2 * time.Second
	fetchBatch      = 16
	fetchRetryFirst = time.Second
	fetchRetryMax   = 5 * time.Minute
	fetchTimeout    = 10 * time.Minute
)

func (m *Manager) wakeFiles(peer string) {
	ch, _ := m.files.LoadOrStore(peer, make(chan struct{}, 1))
	select {
	case ch.(chan struct{}) <- struct{}{}:
	default:
	}
}

// fetchFiles fetches the files that p's cached records name and this node lacks, until ctx ends.
func (m *Manager) fetchFiles(ctx context.Context, p config.Peer) {
	ch, _ := m.files.LoadOrStore(p.Name, make(chan struct{}, 1))
	wake := ch.(chan struct{})
	budget := rate.NewLimiter(rate.Limit(m.c.FileBytesPerSecond), max(int(m.c.FileBytesPerSecond), attach.MaxPiece))
	// A file that failed waits before it is tried again, twice as long after each failure: a
	// replica of the peer that has not applied the grant yet answers NOT_FOUND for a moment,
	// a revoked grant for good (and the retraction follows).
	type retry struct {
		at   time.Time
		wait time.Duration
	}
	retries := map[string]retry{}
	// refused holds the files refused, each with the limits it was refused under and as what
	// the record named it: a file is tried again once either changes.
	refused := map[string]string{}
	log := m.c.Logger.With("peer", p.Name)
	for ctx.Err() == nil {
		// One pass over every missing file, a batch at a time: files that keep failing wait
		// their turn, and never keep the ones after them from being tried.
		progressed := false
		missing := map[string]bool{}
		limits := m.c.FileLimits()
		under := fmt.Sprint(limits.MaxBytes, limits.MediaTypes)
		as := func(f db.FileRef) string { return fmt.Sprint(under, f.Size, f.MediaType, f.Filename) }
		refuse := func(f db.FileRef, err error) {
			refused[f.SHA256] = as(f)
			metrics.FilesRefused.WithLabelValues(p.Name).Inc()
			log.Warn("a file this node does not take: not fetched", "record", f.RecordID, "sha256", f.SHA256, "err", err)
		}
		for after := ""; ctx.Err() == nil; {
			batch, err := m.c.DB.MissingFiles(ctx, p.TrustDomain, after, fetchBatch)
			if err != nil {
				if ctx.Err() == nil {
					log.Warn("files to fetch", "err", err)
				}
				break
			}
			for _, f := range batch {
				missing[f.SHA256] = true
				if r, ok := refused[f.SHA256]; ok && r == as(f) || time.Now().Before(retries[f.SHA256].at) {
					continue
				}
				if err := limits.CheckNamed(record.AttachmentsField, record.Attachment{SHA256: f.SHA256, Size: f.Size, MediaType: f.MediaType, Filename: f.Filename}); err != nil {
					refuse(f, err)
					continue
				}
				if err := m.fetchFile(ctx, p, f, limits, budget); err != nil {
					if ctx.Err() != nil {
						return
					}
					if fe := (*record.FieldError)(nil); errors.As(err, &fe) && (fe.Field == fetchField || fe.Field == "filename") {
						// The content is not what this node takes, and a hash's content
						// does not change: trying again would fetch the same.
						refuse(f, err)
						continue
					}
					r := retries[f.SHA256]
					r.wait = min(max(2*r.wait, fetchRetryFirst), fetchRetryMax)
					r.at = time.Now().Add(r.wait)
					retries[f.SHA256] = r
					log.Warn("could not fetch a file: will try again", "record", f.RecordID, "sha256", f.SHA256, "err", err, "in", r.wait)
					continue
				}
				delete(retries, f.SHA256)
				progressed = true
			}
			if len(batch) < fetchBatch {
				break
			}
			after = batch[len(batch)-1].SHA256
		}
		// A file no longer missing (fetched, or its record gone) keeps no wait.
		for sha := range retries {
			if !missing[sha] {
				delete(retries, sha)
			}
		}
		for sha := range refused {
			if !missing[sha] {
				delete(refused, sha)
			}
		}
		if progressed {
			continue
		}
		select {
		case <-ctx.Done():
		case <-wake:
		case <-time.After(fetchPoll):
		}
	}
}

// fetchField is the field a fetched file's content is blamed on.
const fetchField = "file"

// fetchFile fetches one file from p and stores it through Raft, checked against limits as an
// upload is, under the name the record gives it.
func (m *Manager) fetchFile(ctx context.Context, p config.Peer, f db.FileRef, limits attach.Limits, budget *rate.Limiter) error {
	conn, err := m.Conn(p)
	if err != nil {
		return err
	}
	fctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	stream, err := pb.NewFederationServiceClient(conn).FetchFile(fctx, &pb.FetchFileRequest{RecordId: f.RecordID, Sha256: f.SHA256, Purpose: m.c.Purpose})
	if err != nil {
		return err
	}
	w := attach.NewWriter(m.c.Store, m.c.DB, limits, p.TrustDomain, fetchField)
	w.Expect(f.MediaType)
	committed := false
	defer func() {
		if !committed {
			w.Abort(ctx)
		}
	}()
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if status.Code(err) == codes.NotFound {
				return fmt.Errorf("the peer no longer shares it: %w", err)
			}
			return err
		}
		if w.Size()+int64(len(msg.Data)) > f.Size {
			return fmt.Errorf("the peer sent more than the %d bytes the record names", f.Size)
		}
		if err := budget.WaitN(fctx, len(msg.Data)); err != nil {
			return err
		}
		if err := w.Write(fctx, f.Filename, msg.Data); err != nil {
			return err
		}
		metrics.FilesFetched.WithLabelValues(p.Name).Add(float64(len(msg.Data)))
	}
	if w.Size() != f.Size {
		return fmt.Errorf("the peer sent %d bytes, not the %d the record names", w.Size(), f.Size)
	}
	if _, err := w.Commit(fctx, f.Filename, f.SHA256); err != nil {
		return err
	}
	committed = true
	return nil
}

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
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// Files travel apart from records. A subscription stores a peer's records as they come; the
// files they name are fetched afterwards, by hash, by one fetcher per peer, within the peer's
// byte budget (FileBytesPerSecond): a large file takes its time without holding up a single
// record. What a fetcher stores goes through Raft in chunks like an upload, and a file that
// fails is tried again after a wait that doubles with each failure (1 s to 5 min).

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
	log := m.c.Logger.With("peer", p.Name)
	for ctx.Err() == nil {
		// One pass over every missing file, a batch at a time: files that keep failing wait
		// their turn, and never keep the ones after them from being tried.
		progressed := false
		missing := map[string]bool{}
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
				if time.Now().Before(retries[f.SHA256].at) {
					continue
				}
				if err := m.fetchFile(ctx, p, f, budget); err != nil {
					if ctx.Err() != nil {
						return
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

// fetchFile fetches one file from p and stores it through Raft.
func (m *Manager) fetchFile(ctx context.Context, p config.Peer, f db.FileRef, budget *rate.Limiter) error {
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
	limits := m.c.FileLimits()
	w := attach.NewWriter(m.c.Store, m.c.DB, limits, p.TrustDomain, "file")
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
		if err := w.Write(fctx, "", msg.Data); err != nil {
			return err
		}
		metrics.FilesFetched.WithLabelValues(p.Name).Add(float64(len(msg.Data)))
	}
	if w.Size() != f.Size {
		return fmt.Errorf("the peer sent %d bytes, not the %d the record names", w.Size(), f.Size)
	}
	if _, err := w.Commit(fctx, "file", f.SHA256); err != nil {
		return err
	}
	committed = true
	return nil
}

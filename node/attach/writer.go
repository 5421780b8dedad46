package attach

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/node/db"
	"github.com/knooppunt/knooppunt/node/record"
	"github.com/knooppunt/knooppunt/node/store"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// ChunkBytes is the content of one FileChunk entry: with its envelope, an entry stays under
// 1 MiB.
const ChunkBytes = 1<<20 - 4<<10

// inflight is how many chunk entries a writer has in the log at once: while some are being
// written and replicated, the next are being sent, and Raft batches them into fewer appends
// (and fsyncs). Eight measured about twice as fast as one and a little faster than sixteen
// (BenchmarkAttachmentUpload); it holds at most 8 MiB of a file in memory.
const inflight = 8

// Writer writes one file through Raft: its chunks staged under an upload id, then one commit
// that the FSM checks against the hash and size. Until Commit succeeds nothing is a file, and
// Abort (or a sweep, when the writer died) removes what was staged.
type Writer struct {
	st      *store.Store
	d       *db.DB
	limits  Limits
	origin  string
	field   string
	id      string
	seq     int64
	size    int64
	buf     []byte
	h       hash.Hash
	sniffed string
	pending []func() (any, error)
	started bool
	// want, when set, is the media type the content must sniff as.
	want string
}

// Expect makes the writer refuse content that does not sniff as mediaType: a file fetched from
// a peer must be what the record names.
func (w *Writer) Expect(mediaType string) { w.want = mediaType }

// NewWriter starts a file for origin ("" for an upload to this node, or the peer it is fetched
// from). field names the request field that bad content is blamed on.
func NewWriter(st *store.Store, d *db.DB, limits Limits, origin, field string) *Writer {
	return &Writer{st: st, d: d, limits: limits, origin: origin, field: field, id: uuid.NewString(), h: sha256.New()}
}

// Size is how many bytes were written so far.
func (w *Writer) Size() int64 { return w.size + int64(len(w.buf)) }

// Write takes more of the content. It refuses content over the size limit, and content whose
// sniffed type the limits refuse for filename, before any of it is stored.
func (w *Writer) Write(ctx context.Context, filename string, p []byte) error {
	if w.Size()+int64(len(p)) > w.limits.maxBytes() {
		return &record.FieldError{Field: w.field, Code: codes.ResourceExhausted,
			Reason: fmt.Sprintf("the file is over the limit of %d bytes", w.limits.maxBytes())}
	}
	w.buf = append(w.buf, p...)
	for len(w.buf) >= ChunkBytes {
		if err := w.flush(ctx, filename, w.buf[:ChunkBytes]); err != nil {
			return err
		}
		w.buf = append([]byte(nil), w.buf[ChunkBytes:]...)
	}
	return nil
}

// flush proposes one chunk; the first is sniffed and checked before anything is stored.
func (w *Writer) flush(ctx context.Context, filename string, chunk []byte) error {
	if !w.started {
		w.sniffed = Sniff(chunk[:min(len(chunk), SniffBytes)])
		if err := w.limits.Check(w.field, filename, w.sniffed); err != nil {
			return err
		}
		if w.want != "" && w.want != w.sniffed {
			return &record.FieldError{Field: w.field, Code: codes.InvalidArgument,
				Reason: fmt.Sprintf("the content is %s, not the %s the record names", w.sniffed, w.want)}
		}
		w.started = true
	}
	w.h.Write(chunk)
	c := &pb.Command{Cmd: &pb.Command_FileChunk{FileChunk: &pb.FileChunk{
		UploadId: w.id, Seq: w.seq, Data: append([]byte(nil), chunk...), At: timestamppb.Now()}}}
	w.seq++
	w.size += int64(len(chunk))
	w.pending = append(w.pending, w.st.ApplyAsync(ctx, c))
	if len(w.pending) >= inflight {
		return w.wait(1)
	}
	return nil
}

// wait waits for the oldest n chunk entries (all when n < 0).
func (w *Writer) wait(n int) error {
	if n < 0 || n > len(w.pending) {
		n = len(w.pending)
	}
	var first error
	for _, p := range w.pending[:n] {
		v, err := p()
		if err == nil {
			if refused, ok := v.(error); ok && refused != nil {
				err = refused
			}
		}
		if err != nil && first == nil {
			first = err
		}
	}
	w.pending = w.pending[n:]
	return first
}

// Commit stores the rest, checks the whole content against wantSHA (when given), and makes the
// upload a file. It returns the attachment to name in a record, after the file is in this
// replica's database.
func (w *Writer) Commit(ctx context.Context, filename, wantSHA string) (*pb.Attachment, error) {
	if err := record.CheckFilename("filename", filename); err != nil {
		return nil, err
	}
	if w.Size() == 0 {
		return nil, &record.FieldError{Field: w.field, Code: codes.InvalidArgument, Reason: "the file is empty: send its content"}
	}
	if len(w.buf) > 0 {
		if err := w.flush(ctx, filename, w.buf); err != nil {
			return nil, err
		}
		w.buf = nil
	}
	if err := w.wait(-1); err != nil {
		return nil, err
	}
	sum := hex.EncodeToString(w.h.Sum(nil))
	if wantSHA != "" && wantSHA != sum {
		return nil, &record.FieldError{Field: "sha256", Code: codes.InvalidArgument,
			Reason: fmt.Sprintf("the content has SHA-256 %s, not %s: the file changed or broke off on the way; upload it again", sum, wantSHA)}
	}
	step := &pb.FileStep{Action: "commit", UploadId: w.id, Sha256: sum, Size: w.size, MediaType: w.sniffed, Origin: w.origin, At: timestamppb.Now()}
	v, err := w.st.Apply(ctx, &pb.Command{Cmd: &pb.Command_FileStep{FileStep: step}})
	if err != nil {
		return nil, err
	}
	if refused, ok := v.(error); ok && refused != nil {
		return nil, refused
	}
	w.started = false // committed: nothing to abort
	if err := w.waitStored(ctx, sum); err != nil {
		return nil, err
	}
	return &pb.Attachment{Sha256: sum, Size: w.size, MediaType: w.sniffed, Filename: filename}, nil
}

// waitStored waits until this replica applied the commit: a follower forwarded it to the
// leader and gets no answer but that it was committed.
func (w *Writer) waitStored(ctx context.Context, sha string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := w.d.FileInfo(ctx, sha)
		if !errors.Is(err, db.ErrFileNotFound) {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: the file was committed but this replica has not applied it: retry the upload", store.ErrNotLeader)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Abort removes what was staged, if anything. It runs even when ctx is done (the writer's
// stream broke off), bounded by a few seconds; what it cannot remove, a sweep will.
func (w *Writer) Abort(ctx context.Context) {
	w.wait(-1)
	if !w.started {
		return
	}
	w.started = false
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	w.st.Apply(actx, &pb.Command{Cmd: &pb.Command_FileStep{FileStep: &pb.FileStep{Action: "abort", UploadId: w.id, At: timestamppb.Now()}}})
}

// Sweep removes staged uploads that no chunk reached for staleAfter, and uploaded files that no
// record named for as long. The leader calls it now and then; it proposes nothing when there is
// nothing to remove.
func Sweep(ctx context.Context, st *store.Store, d *db.DB, staleAfter time.Duration) error {
	now := time.Now()
	if due, err := d.Sweepable(ctx, now.Add(-staleAfter)); err != nil || !due {
		return err
	}
	_, err := st.Apply(ctx, &pb.Command{Cmd: &pb.Command_FileStep{FileStep: &pb.FileStep{
		Action: "sweep", At: timestamppb.New(now), StaleBefore: timestamppb.New(now.Add(-staleAfter))}}})
	return err
}

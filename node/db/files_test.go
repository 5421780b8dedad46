package db_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/node/db"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// fileSteps applies the FSM's file commands to d from index on, and returns the next index.
type fileSteps struct {
	t     *testing.T
	d     *db.DB
	index uint64
	at    time.Time
}

func (f *fileSteps) next() uint64 { f.index++; return f.index }

func (f *fileSteps) chunk(upload string, seq int64, data []byte) error {
	refused, err := f.d.ApplyFileChunk(f.next(), &pb.FileChunk{UploadId: upload, Seq: seq, Data: data, At: timestamppb.New(f.at)})
	if err != nil {
		f.t.Fatal(err)
	}
	return refused
}

func (f *fileSteps) step(s *pb.FileStep) error {
	s.At = timestamppb.New(f.at)
	refused, _, err := f.d.ApplyFileStep(f.next(), s)
	if err != nil {
		f.t.Fatal(err)
	}
	return refused
}

// upload stages data in chunks of n bytes and commits it as origin's.
func (f *fileSteps) upload(upload string, data []byte, n int, origin string) (string, error) {
	for seq := 0; seq*n < len(data); seq++ {
		if err := f.chunk(upload, int64(seq), data[seq*n:min(len(data), (seq+1)*n)]); err != nil {
			return "", err
		}
	}
	sum := sha256.Sum256(data)
	hash := hex.EncodeToString(sum[:])
	return hash, f.step(&pb.FileStep{Action: "commit", UploadId: upload, Sha256: hash, Size: int64(len(data)), MediaType: "application/pdf", Origin: origin})
}

func (f *fileSteps) staged() (uploads, chunks int64) {
	_, _, uploads, chunks, err := f.d.FileCounts(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	return uploads, chunks
}

func (f *fileSteps) read(hash string) ([]byte, error) {
	var out bytes.Buffer
	err := f.d.ReadFile(context.Background(), hash, func(b []byte) error { out.Write(b); return nil })
	return out.Bytes(), err
}

func naming(id string, hashes ...string) *pb.Record {
	var atts []map[string]any
	for _, h := range hashes {
		atts = append(atts, map[string]any{"sha256": h, "size": 10, "media_type": "application/pdf", "filename": "f.pdf"})
	}
	body, _ := json.Marshal(map[string]any{"title": id, "attachments": atts})
	return &pb.Record{Id: id, Origin: "lcvs.crisis.test", Kind: "guidance", Crisis: "c", Region: "NL", Classification: pb.Classification_PUBLIC, Body: body}
}

// TestFileSteps: chunks out of order or of an unknown upload are refused with nothing stored; a
// commit whose content does not match its hash or size is refused and its chunks go; the same
// content committed twice is stored once; an abort and a sweep remove what was staged; a file
// goes when no record names it: a peer's at once, an uploaded one at the sweep after it is stale.
func TestFileSteps(t *testing.T) {
	d := newDB(t)
	f := &fileSteps{t: t, d: d, at: time.Unix(1_800_000_000, 0)}
	data := []byte("%PDF-1.7 hello attachments, in chunks of seven bytes")

	if err := f.chunk("u0", 1, data[:7]); !errors.Is(err, db.ErrFileRefused) {
		t.Fatalf("chunk 1 of an unknown upload: %v", err)
	}
	if err := f.chunk("u1", 0, data[:7]); err != nil {
		t.Fatal(err)
	}
	if err := f.chunk("u1", 2, data[7:14]); !errors.Is(err, db.ErrFileRefused) {
		t.Fatalf("chunk 2 after chunk 0: %v", err)
	}
	if up, ch := f.staged(); up != 1 || ch != 1 {
		t.Fatalf("%d uploads, %d chunks staged after the refusals, want 1 and 1", up, ch)
	}
	// A commit whose hash is not the content's: refused, and the upload's chunks go.
	if err := f.chunk("u1", 1, data[7:]); err != nil {
		t.Fatal(err)
	}
	wrong := sha256.Sum256([]byte("other"))
	err := f.step(&pb.FileStep{Action: "commit", UploadId: "u1", Sha256: hex.EncodeToString(wrong[:]), Size: int64(len(data)), MediaType: "application/pdf"})
	if !errors.Is(err, db.ErrFileRefused) {
		t.Fatalf("a commit with the wrong hash: %v", err)
	}
	if up, ch := f.staged(); up != 0 || ch != 0 {
		t.Fatalf("%d uploads, %d chunks staged after a refused commit", up, ch)
	}
	// A commit whose size is not the content's.
	if err := f.chunk("u2", 0, data); err != nil {
		t.Fatal(err)
	}
	if err := f.step(&pb.FileStep{Action: "commit", UploadId: "u2", Size: 3}); !errors.Is(err, db.ErrFileRefused) {
		t.Fatalf("a commit with the wrong size: %v", err)
	}

	// The content in chunks of 7, and again in chunks of 5: one file.
	hash, err := f.upload("u3", data, 7, "")
	if err != nil {
		t.Fatal(err)
	}
	if again, err := f.upload("u4", data, 5, ""); err != nil || again != hash {
		t.Fatalf("the same content again: %s, %v", again, err)
	}
	if files, size, up, ch, _ := d.FileCounts(context.Background()); files != 1 || size != int64(len(data)) || up != 0 || ch != 0 {
		t.Fatalf("%d files of %d bytes, %d uploads and %d chunks staged; want 1 file of %d bytes, nothing staged", files, size, up, ch, len(data))
	}
	if got, err := f.read(hash); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back %q, %v", got, err)
	}

	// An abort, and a sweep of an upload no chunk reached since.
	f.chunk("u5", 0, data[:7])
	f.step(&pb.FileStep{Action: "abort", UploadId: "u5"})
	f.chunk("u6", 0, data[:7])
	f.at = f.at.Add(time.Hour)
	if due, err := d.Sweepable(context.Background(), f.at.Add(-time.Minute)); err != nil || !due {
		t.Fatalf("Sweepable with a stale upload and an unnamed file: %v, %v", due, err)
	}
	// The own file is named by a record, so the sweep leaves it.
	if _, err := d.Apply(f.next(), []*pb.Record{naming("g1", hash)}); err != nil {
		t.Fatal(err)
	}
	f.step(&pb.FileStep{Action: "sweep", StaleBefore: timestamppb.New(f.at.Add(-time.Minute))})
	if up, ch := f.staged(); up != 0 || ch != 0 {
		t.Fatalf("%d uploads, %d chunks staged after an abort and a sweep", up, ch)
	}
	if _, err := d.FileInfo(context.Background(), hash); err != nil {
		t.Fatalf("the named file after the sweep: %v", err)
	}
	// Deleted, the record names nothing: the next stale sweep removes the file.
	if _, err := d.Apply(f.next(), []*pb.Record{{Id: "g1", Tombstone: true, UpdatedAt: timestamppb.New(f.at)}}); err != nil {
		t.Fatal(err)
	}
	f.step(&pb.FileStep{Action: "sweep", StaleBefore: timestamppb.New(f.at.Add(-time.Minute))})
	if _, err := d.FileInfo(context.Background(), hash); !errors.Is(err, db.ErrFileNotFound) {
		t.Fatalf("the file no record names after a sweep: %v", err)
	}

	// A peer's file goes with the retraction of the last record that names it.
	peer := "lcvs.crisis.test"
	cache := func(upserts []*pb.Record, retract ...string) {
		c := &pb.CacheForeign{Peer: "lcvs", Origin: peer, Retractions: retract, At: timestamppb.New(f.at)}
		for _, r := range upserts {
			c.Upserts = append(c.Upserts, &pb.SharedRecord{Record: r})
		}
		if err := d.ApplyCacheForeign(f.next(), c); err != nil {
			t.Fatal(err)
		}
	}
	other := []byte("%PDF-1.7 a peer's file")
	sum := sha256.Sum256(other)
	peerHash := hex.EncodeToString(sum[:])
	cache([]*pb.Record{naming("p1", peerHash), naming("p2", peerHash)})
	missing, err := d.MissingFiles(context.Background(), peer, "", 10)
	if err != nil || len(missing) != 1 || missing[0].SHA256 != peerHash {
		t.Fatalf("missing files: %+v, %v", missing, err)
	}
	if after, err := d.MissingFiles(context.Background(), peer, peerHash, 10); err != nil || len(after) != 0 {
		t.Fatalf("missing files after the last: %+v, %v", after, err)
	}
	if _, err := f.upload("u7", other, 4, peer); err != nil {
		t.Fatal(err)
	}
	cache(nil, "p1")
	if _, err := d.FileInfo(context.Background(), peerHash); err != nil {
		t.Fatalf("the peer's file while p2 still names it: %v", err)
	}
	cache([]*pb.Record{naming("p2")}) // p2 again, its attachments redacted
	if _, err := d.FileInfo(context.Background(), peerHash); !errors.Is(err, db.ErrFileNotFound) {
		t.Fatalf("the peer's file once no record names it: %v", err)
	}
	if due, err := d.Sweepable(context.Background(), f.at); err != nil || due {
		t.Fatalf("Sweepable with nothing to sweep: %v, %v", due, err)
	}
}

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

// TestFileSourcesPerOrigin: a file is a peer's only while that peer's records name it (review 22
// M1, L2, L3, L1). Another peer's record that names the same hash neither finds it stored nor
// keeps it past the first peer's retraction; an own upload of the same bytes makes it this
// node's own; a fetch that ends after the retraction is not kept; an upload of content already
// stored is kept from the sweep as a new upload is; and a record names its file only in its own
// mode (M4).
func TestFileSourcesPerOrigin(t *testing.T) {
	d := newDB(t)
	ctx := context.Background()
	f := &fileSteps{t: t, d: d, at: time.Unix(1_800_000_000, 0)}
	cache := func(peer string, upserts []*pb.Record, retract ...string) {
		c := &pb.CacheForeign{Peer: peer, Origin: peer, Retractions: retract, At: timestamppb.New(f.at)}
		for _, r := range upserts {
			r.Origin = peer
			c.Upserts = append(c.Upserts, &pb.SharedRecord{Record: r})
		}
		if err := d.ApplyCacheForeign(f.next(), c); err != nil {
			t.Fatal(err)
		}
	}
	named := func(origin, id, hash string, m db.Mode) (stored, ok bool) {
		t.Helper()
		a, stored, ok, err := d.Named(ctx, origin, id, hash, m)
		if err != nil {
			t.Fatal(err)
		}
		if ok && a.Filename != "f.pdf" {
			t.Errorf("Named(%s/%s): filename %q, want the record's f.pdf", origin, id, a.Filename)
		}
		return stored, ok
	}
	const a, b = "ggdghor.crisis.test", "politie.crisis.test"
	content := []byte("%PDF-1.7 A's guidance, which B's record names too")
	sum := sha256.Sum256(content)
	hash := hex.EncodeToString(sum[:])

	// A's record names the file and A's copy is fetched; then B's record names the same hash.
	cache(a, []*pb.Record{naming("ra", hash)})
	if _, err := f.upload("ua", content, 8, a); err != nil {
		t.Fatal(err)
	}
	cache(b, []*pb.Record{naming("rb", hash)})
	if missing, err := d.MissingFiles(ctx, b, "", 10); err != nil || len(missing) != 1 || missing[0].Filename != "f.pdf" {
		t.Fatalf("B's missing files while only A's copy is stored: %+v, %v; want the file, to fetch from B", missing, err)
	}
	if stored, ok := named(b, "rb", hash, db.Actual); !ok || stored {
		t.Fatalf("B's record with only A's copy stored: named %v, stored %v; want named, not stored", ok, stored)
	}
	if stored, ok := named(a, "ra", hash, db.Actual); !ok || !stored {
		t.Fatalf("A's record: named %v, stored %v", ok, stored)
	}
	// A retracts: A's file goes, though B's record still names the hash.
	cache(a, nil, "ra")
	if _, err := d.FileInfo(ctx, hash); !errors.Is(err, db.ErrFileNotFound) {
		t.Fatalf("A's file after A's retraction, with B's record naming the hash: %v; want it gone", err)
	}

	// A fetch from B that ends after B's retraction is not kept.
	f.chunk("ub", 0, content)
	cache(b, nil, "rb")
	if err := f.step(&pb.FileStep{Action: "commit", UploadId: "ub", Sha256: hash, Size: int64(len(content)), MediaType: "application/pdf", Origin: b}); !errors.Is(err, db.ErrFileRefused) {
		t.Fatalf("a commit of B's file after B's retraction: %v; want refused", err)
	}
	if _, err := d.FileInfo(ctx, hash); !errors.Is(err, db.ErrFileNotFound) {
		t.Fatalf("B's file committed after the retraction: %v; want not stored", err)
	}
	if _, _, up, ch, _ := d.FileCounts(ctx); up != 0 || ch != 0 {
		t.Fatalf("%d uploads, %d chunks staged after the refused commit", up, ch)
	}

	// A's copy again; an own upload of the same bytes makes the file this node's own, and A's
	// retraction then leaves it.
	cache(a, []*pb.Record{naming("ra", hash)})
	if _, err := f.upload("ua2", content, 8, a); err != nil {
		t.Fatal(err)
	}
	if fi, err := d.FileInfo(ctx, hash); err != nil || fi.Origin != a {
		t.Fatalf("A's copy: %+v, %v", fi, err)
	}
	f.at = f.at.Add(time.Hour)
	if _, err := f.upload("own", content, 8, ""); err != nil {
		t.Fatal(err)
	}
	if fi, err := d.FileInfo(ctx, hash); err != nil || fi.Origin != "" {
		t.Fatalf("after an own upload of A's bytes: %+v, %v; want origin \"\"", fi, err)
	}
	cache(a, nil, "ra")
	// The own upload is an hour younger than A's copy: a sweep of what is older than half an
	// hour leaves it for its record to be put.
	f.step(&pb.FileStep{Action: "sweep", StaleBefore: timestamppb.New(f.at.Add(-30 * time.Minute))})
	if _, err := d.FileInfo(ctx, hash); err != nil {
		t.Fatalf("the own upload after A's retraction and a sweep of older files: %v", err)
	}

	// A test record names its file only in the test mode, as an exercise's only in its own.
	tr := naming("test-1", hash)
	tr.Status = pb.Status_TEST
	if res, err := d.Apply(f.next(), []*pb.Record{tr}); err != nil || res[0].Err != nil {
		t.Fatal(err, res[0].Err)
	}
	if _, ok := named("", "test-1", hash, db.Actual); ok {
		t.Errorf("a test record names its file in actual mode")
	}
	if stored, ok := named("", "test-1", hash, db.Mode{Status: pb.Status_TEST}); !ok || !stored {
		t.Errorf("the test record in its mode: named %v, stored %v", ok, stored)
	}
}

package cluster

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"testing"
	"testing/iotest"

	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestSendChunks: the Backup stream's messages together hold the file, in order, each at most a
// chunk; the first carries the size and the applied index, and an empty file still gets it.
func TestSendChunks(t *testing.T) {
	const size = 1000
	for _, n := range []int{0, 1, size - 1, size, size + 1, 2 * size, 2*size + 500} {
		data := make([]byte, n)
		rand.Read(data)
		var got []*pb.BackupChunk
		first := &pb.BackupChunk{Size: int64(n), AppliedIndex: 42}
		err := sendChunks(bytes.NewReader(data), size, first, func(c *pb.BackupChunk) error {
			got = append(got, &pb.BackupChunk{Data: bytes.Clone(c.Data), Size: c.Size, AppliedIndex: c.AppliedIndex})
			return nil
		})
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		want := max(1, (n+size-1)/size)
		if len(got) != want {
			t.Fatalf("%d bytes: %d messages, want %d", n, len(got), want)
		}
		if got[0].Size != int64(n) || got[0].AppliedIndex != 42 {
			t.Errorf("%d bytes: first message has size %d and applied index %d", n, got[0].Size, got[0].AppliedIndex)
		}
		var all []byte
		for i, c := range got {
			if len(c.Data) > size {
				t.Errorf("%d bytes: message %d holds %d bytes, more than a chunk", n, i, len(c.Data))
			}
			if i > 0 && (c.Size != 0 || c.AppliedIndex != 0) {
				t.Errorf("%d bytes: message %d repeats the size or the index", n, i)
			}
			all = append(all, c.Data...)
		}
		if !bytes.Equal(all, data) {
			t.Errorf("%d bytes: the messages hold %d bytes that differ from the file", n, len(all))
		}
	}
}

// TestSendChunksStopsAtAFailedSend: a send that fails (the client went) ends the stream with
// its error.
func TestSendChunksStopsAtAFailedSend(t *testing.T) {
	gone := errors.New("client gone")
	calls := 0
	err := sendChunks(bytes.NewReader(make([]byte, 5000)), 1000, &pb.BackupChunk{}, func(*pb.BackupChunk) error {
		calls++
		if calls == 2 {
			return gone
		}
		return nil
	})
	if !errors.Is(err, gone) || calls != 2 {
		t.Fatalf("err %v after %d sends, want %v after 2", err, calls, gone)
	}
}

// TestSendChunksStopsAtAReadError: a copy that cannot be read to its end ends the stream with
// the error, so that the client keeps no partial backup.
func TestSendChunksStopsAtAReadError(t *testing.T) {
	bad := errors.New("disk read error")
	r := io.MultiReader(bytes.NewReader(make([]byte, 1500)), iotest.ErrReader(bad))
	err := sendChunks(r, 1000, &pb.BackupChunk{}, func(*pb.BackupChunk) error { return nil })
	if !errors.Is(err, bad) {
		t.Fatalf("err %v, want %v", err, bad)
	}
}

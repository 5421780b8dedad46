package importfile_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/knooppunt/knooppunt/node/record"
	"github.com/knooppunt/knooppunt/node/record/importfile"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// batches answers every PutBatch OK and keeps the size of each request, as the client encodes
// it: what is tested is how Import cuts a file into batches, not the node.
type batches struct {
	pb.RecordServiceClient
	sizes, counts []int
}

func (b *batches) PutBatch(_ context.Context, req *pb.PutBatchRequest, _ ...grpc.CallOption) (*pb.PutBatchResponse, error) {
	b.sizes = append(b.sizes, proto.Size(req))
	b.counts = append(b.counts, len(req.Records))
	resp := &pb.PutBatchResponse{}
	for i := range req.Records {
		resp.Results = append(resp.Results, &pb.PutBatchResult{Index: int32(i)})
	}
	return resp, nil
}

// TestLargeRowsGoInSmallerBatches: 80 rows of 900 KiB each, each under a node's body limit, go
// in batches that stay under half the 64 MiB a gRPC message may hold, however many rows --batch
// allows; before, one batch of 80 (70 MiB) was refused by the client and nothing went in.
func TestLargeRowsGoInSmallerBatches(t *testing.T) {
	var lines []string
	for i := range 80 {
		lines = append(lines, fmt.Sprintf(`{"id":"r%d","kind":"sitrep","crisis":"c","region":"NL","classification":"internal","body":{"text":%q}}`, i, strings.Repeat("x", 900<<10)))
	}
	rows, err := importfile.Read(strings.NewReader(strings.Join(lines, "\n")), "jsonl", record.JSON{})
	if err != nil {
		t.Fatal(err)
	}
	b := &batches{}
	sum, err := importfile.Import(context.Background(), b, rows, 500, nil)
	if err != nil || sum.Accepted != 80 {
		t.Fatalf("import: %d accepted, %v; want all 80", sum.Accepted, err)
	}
	total := 0
	for i, size := range b.sizes {
		if size > 32<<20 {
			t.Errorf("batch %d of %d rows is %d bytes, over 32 MiB", i, b.counts[i], size)
		}
		total += b.counts[i]
	}
	if total != 80 || len(b.sizes) < 3 {
		t.Fatalf("batches of %v rows, want the 80 rows in at least three", b.counts)
	}
}

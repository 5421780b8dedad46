package federation_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/knooppunt/knooppunt/federation/fedtest"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestStopCutsAStalledQuery: a peer that opens a Query and stops reading it does not hold a
// stopping node for its whole grace: the node waits a few seconds for its peers' calls, then
// cuts them (review S, S3: 30 s). The bound checked is far from both.
func TestStopCutsAStalledQuery(t *testing.T) {
	f := fedtest.Start(t, fedtest.Options{Orgs: 2})
	a, b := f.Orgs[0], f.Orgs[1]
	a.Approve(t, policyDoc("qa-to-b", spiffeOf(b), "qa", "public", ""))
	rc := pb.NewRecordServiceClient(a.Local(t))
	answer := strings.Repeat("Zie de gemeente. ", 25)
	for i := 0; i < 3000; i += 1000 {
		var batch []*pb.Record
		for j := i; j < i+1000; j++ {
			batch = append(batch, &pb.Record{Id: fmt.Sprintf("q%04d", j), Kind: "qa", Crisis: "oekraine", Region: "NL", Classification: pb.Classification_PUBLIC,
				Body: fmt.Appendf(nil, `{"question":"Vraag %d?","answer":%q}`, j, answer)})
		}
		if _, err := rc.PutBatch(fedtest.Call(t), &pb.PutBatchRequest{Records: batch}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := pb.NewFederationServiceClient(asPeer(t, b, a)).Query(ctx, &pb.QueryRequest{Filter: &pb.Filter{Limit: 3000}, Purpose: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil { // the Query runs; then nothing more is read
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // a's Send blocks on the stream's window
	began := time.Now()
	a.Stop(t) // within 15 s, or fedtest forces it at 15 s
	if took := time.Since(began); took > 10*time.Second {
		t.Errorf("a took %v to stop with b's Query stalled, want its peers' grace of a few seconds", took)
	}
}

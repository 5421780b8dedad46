package search

import (
	"strings"
	"sync/atomic"
	"testing"

	"google.golang.org/protobuf/proto"

	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestShares: a source's share holds at least one record of the largest body a node writes
// however many sources are asked; a hit that does not fit is skipped and the source cut, while
// its smaller hits still go in, up to maxSkipped skipped; and all sources together never take
// more than MaxAnswerBytes (review21 M2: with 16 sources or more no large record could appear,
// and the first that did not fit ended its source's part).
func TestShares(t *testing.T) {
	hit := func(bytes int) *pb.SearchHit {
		return &pb.SearchHit{Record: &pb.Record{Id: "r", Body: []byte(strings.Repeat("x", bytes))}}
	}
	big, small := hit(3<<20), hit(1<<10)
	pool := new(atomic.Int64)
	pool.Store(MaxAnswerBytes)
	per := max(MaxAnswerBytes/25, minShare)
	sh := &share{pool: pool, bytes: per, left: per}
	if taken, _ := sh.take(big); !taken {
		t.Fatal("one record of the largest body does not fit a share of 25 sources")
	}
	if taken, more := sh.take(big); taken || !more || !sh.cut {
		t.Fatalf("a second large record: taken %v, more %v, cut %v; want skipped, the source cut and going on", taken, more, sh.cut)
	}
	if taken, _ := sh.take(small); !taken {
		t.Fatal("a small record after a skipped one does not go in")
	}
	for range maxSkipped - 2 {
		sh.take(big)
	}
	if _, more := sh.take(big); more {
		t.Fatalf("after %d skipped the source goes on", maxSkipped)
	}

	// Sources that each fill their share stop at the pool.
	pool.Store(MaxAnswerBytes)
	took := int64(0)
	for range 25 {
		sh := &share{pool: pool, bytes: per, left: per}
		for {
			taken, more := sh.take(big)
			if taken {
				took += int64(proto.Size(big))
			}
			if !more || sh.cut {
				break
			}
		}
	}
	if took > MaxAnswerBytes || took < MaxAnswerBytes-int64(minShare) {
		t.Fatalf("25 sources of large records took %d bytes, want up to %d and near it", took, MaxAnswerBytes)
	}
	// What a share gives back when the cache stands in returns to the pool.
	pool.Store(MaxAnswerBytes)
	sh = &share{pool: pool, bytes: per, left: per}
	sh.take(small)
	sh.take(big)
	sh.reset()
	if pool.Load() != MaxAnswerBytes || sh.left != per || sh.cut || sh.skipped != 0 {
		t.Fatalf("after reset: pool %d, left %d, cut %v, skipped %d; want all given back", pool.Load(), sh.left, sh.cut, sh.skipped)
	}
}

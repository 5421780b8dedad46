package peerserver

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/node/db"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestEachOwnVisitsEveryRecordOnce: with the next page read ahead while the current one is
// handled, a walk still sees every matching record once, in order, and stops where fn stops it
// or fails.
func TestEachOwnVisitsEveryRecordOnce(t *testing.T) {
	d, err := db.Open(filepath.Join(t.TempDir(), "knooppunt.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	const n = 1050
	var writes []*db.Write
	for i := range n {
		kind := "shelter.capacity"
		if i%10 == 0 {
			kind = "sitrep"
		}
		writes = append(writes, &pb.Record{Id: fmt.Sprintf("r%05d", i), Origin: "a.crisis.test", Kind: kind, Crisis: "c",
			Region: "VR01", Classification: pb.Classification_INTERNAL, Body: []byte(`{}`), UpdatedAt: timestamppb.Now()})
	}
	if _, err := d.Apply(1, writes); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	walk := func(f db.Filter, stopAt int, fail error) ([]string, error) {
		var seen []string
		err := eachOwn(ctx, d, f, func(r *pb.Record) (bool, error) {
			seen = append(seen, r.Id)
			if len(seen) == stopAt {
				return false, fail
			}
			return true, nil
		})
		return seen, err
	}

	seen, err := walk(db.Filter{Kind: "shelter.capacity", PageSize: 100}, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range n {
		if i%10 != 0 {
			want = append(want, fmt.Sprintf("r%05d", i))
		}
	}
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Fatalf("walked %d records, want %d in id order, each once", len(seen), len(want))
	}

	if seen, err := walk(db.Filter{PageSize: 100}, 250, nil); err != nil || len(seen) != 250 {
		t.Fatalf("a walk stopped at 250: %d records, %v", len(seen), err)
	}
	boom := errors.New("boom")
	if seen, err := walk(db.Filter{PageSize: 100}, 101, boom); !errors.Is(err, boom) || len(seen) != 101 {
		t.Fatalf("a walk that fails at 101: %d records, %v, want 101 and boom", len(seen), err)
	}
	// A page that cannot be read ends the walk with its error.
	d.Close()
	if _, err := walk(db.Filter{PageSize: 100}, 0, nil); !errors.Is(err, db.ErrClosed) {
		t.Fatalf("a walk of a closed database: %v, want ErrClosed", err)
	}
}

package records_test

import (
	"fmt"
	"slices"
	"testing"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// seen is what a test reads of a change (at seq) or a listed record (seq 0): its version, kind,
// crisis and region, whether it is a tombstone, and its body.
func seen(seq int64, r *pb.Record) string {
	return fmt.Sprintf("%d %s@v%d %s/%s/%s tombstone=%t %s", seq, r.Id, r.Version, r.Kind, r.Crisis, r.Region, r.Tombstone, r.Body)
}

// gone is how a record that left oekraine (a shelter of VR09 there) reads at seq and version.
func gone(seq int64, id string, version int64) string {
	return seen(seq, &pb.Record{Id: id, Version: version, Kind: "shelter.capacity", Crisis: "oekraine", Region: "VR09", Tombstone: true, Body: []byte("{}")})
}

// TestRecordsLeavingAFilter is review J's F5: a record moved to another crisis, and deleted
// after, reaches a Watch of its first crisis and a sync poll of it (updated_since with
// include_deleted) as a tombstone of the shape it left, live and from a cursor before; so does
// one that changed kind, or region, in a poll by kind or region. A record of the other crisis
// alone reaches neither.
func TestRecordsLeavingAFilter(t *testing.T) {
	n := startNode(t)
	c := client(t, n)
	since := timestamppb.Now()
	live, _ := watch(t, c, &pb.WatchRequest{Crisis: "oekraine"})
	next := func() string {
		t.Helper()
		ch := recv(t, live)
		return seen(ch.Seq, ch.Record)
	}

	p1 := put(t, c, shelter("mv1", 5))
	if got, want := next(), seen(p1.Seq, get(t, c, "mv1")); got != want {
		t.Fatalf("Watch sent %s, want %s", got, want)
	}
	moved := shelter("mv1", 5)
	moved.Crisis = "oekraine-2"
	p2 := put(t, c, moved)
	if got, want := next(), gone(p2.Seq, "mv1", 2); got != want {
		t.Fatalf("Watch of oekraine sent for mv1's move %s, want %s", got, want)
	}
	elsewhere := shelter("mv0", 1)
	elsewhere.Crisis = "oekraine-2"
	put(t, c, elsewhere) // never in oekraine: the watch sends nothing for it
	p3 := put(t, c, shelter("mv2", 3))
	mv2 := seen(p3.Seq, get(t, c, "mv2"))
	if got := next(); got != mv2 {
		t.Fatalf("Watch sent %s, want %s", got, mv2)
	}
	p4, err := c.Delete(callCtx(t), &pb.DeleteRequest{Id: "mv1"})
	if err != nil {
		t.Fatal(err)
	}
	deleted := gone(p4.Seq, "mv1", 3)
	if got := next(); got != deleted {
		t.Fatalf("Watch of oekraine sent for mv1's delete %s, want %s", got, deleted)
	}

	// A watcher that resumes at a cursor before the move gets the delete as well.
	resumed, _ := watch(t, c, &pb.WatchRequest{Crisis: "oekraine", Cursor: p1.Seq})
	var got []string
	for range 2 {
		ch := recv(t, resumed)
		got = append(got, seen(ch.Seq, ch.Record))
	}
	if want := []string{mv2, deleted}; !slices.Equal(got, want) {
		t.Fatalf("Watch from %d sent %v, want %v", p1.Seq, got, want)
	}

	// A record that changes kind, and one that changes region.
	put(t, c, shelter("ct1", 4))
	asSitrep := sitrep("ct1", "now a sitrep")
	asSitrep.Region = "VR09"
	put(t, c, asSitrep)
	ct2 := shelter("ct2", 2)
	put(t, c, ct2)
	ct2.Region = "VR10"
	put(t, c, ct2)

	poll := func(req *pb.ListRequest) []string {
		t.Helper()
		req.UpdatedSince, req.IncludeDeleted, req.PageSize = since, true, 1
		var out []string
		for {
			resp, err := c.List(callCtx(t), req)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range resp.Records {
				out = append(out, seen(0, r))
			}
			if resp.NextPageToken == "" {
				return out
			}
			req.PageToken = resp.NextPageToken
		}
	}
	now := func(id string) string { return seen(0, get(t, c, id)) }
	ct2Left := gone(0, "ct2", 2)
	mv1Left := seen(0, &pb.Record{Id: "mv1", Version: 3, Kind: "shelter.capacity", Crisis: "oekraine-2", Region: "VR09", Tombstone: true, Body: []byte("{}")})
	for _, tc := range []struct {
		name string
		req  *pb.ListRequest
		want []string
	}{
		{"crisis", &pb.ListRequest{Crisis: "oekraine"}, []string{now("mv2"), gone(0, "mv1", 3), now("ct1"), now("ct2")}},
		{"kind", &pb.ListRequest{Kind: "shelter.capacity", Crisis: "oekraine"}, []string{now("mv2"), gone(0, "mv1", 3), gone(0, "ct1", 2), now("ct2")}},
		// mv1 was deleted in VR09: its own tombstone, of oekraine-2.
		{"region", &pb.ListRequest{Region: "VR09"}, []string{now("mv0"), now("mv2"), mv1Left, now("ct1"), ct2Left}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := poll(tc.req); !slices.Equal(got, tc.want) {
				t.Fatalf("List %v since the start =\n%v, want\n%v", tc.req, got, tc.want)
			}
		})
	}
}

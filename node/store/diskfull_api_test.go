package store_test

import (
	"fmt"
	"os"
	"syscall"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/knooppunt/knooppunt/node/api"
	"github.com/knooppunt/knooppunt/node/store"
)

// TestAFullDiskIsResourceExhausted: the errors the store gives writers while the disk of its Raft
// log is full (see TestAFullDiskIsNamedAndOvercome) reach the client as RESOURCE_EXHAUSTED,
// saying what to do: the write that the log refused was INTERNAL, and those after it, on a
// replica that has no leader for as long as the disk is full, "not the leader: retry shortly"
// (review H, F8).
func TestAFullDiskIsResourceExhausted(t *testing.T) {
	full := &os.PathError{Op: "open", Path: "raft/wal/00000000000000000561-0000000000000001.wal", Err: syscall.ENOSPC}
	for _, err := range []error{
		fmt.Errorf("store: commit: the raft log cannot be written: store: repair the raft log's sealed last segment: cut entry 561: %w", full),
		fmt.Errorf("%w: its raft log cannot be written: %w", store.ErrNotLeader, full),
	} {
		got := api.Status(nil, err)
		st := status.Convert(got)
		if st.Code() != codes.ResourceExhausted || st.Message() != "the disk of the data directory is full: free space, the node takes writes again once it can" {
			t.Errorf("Status(%v) = %v %q, want RESOURCE_EXHAUSTED saying the disk is full", err, st.Code(), st.Message())
		}
		// With its reason, which REST answers with 503 and Retry-After (review X, X3).
		if r := api.Reason(got); r != api.ReasonDiskFull {
			t.Errorf("Status(%v) has the reason %q, want %s", err, r, api.ReasonDiskFull)
		}
	}
	if st := status.Convert(api.Status(nil, store.ErrNotLeader)); st.Code() != codes.Unavailable {
		t.Errorf("Status(ErrNotLeader) = %v, want UNAVAILABLE", st.Code())
	}
}

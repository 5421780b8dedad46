package federation_test

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/knooppunt/knooppunt/federation/fedtest"
	"github.com/knooppunt/knooppunt/node/api"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestALowDiskRefusesWrites: a node whose disk has less free than limits.disk_reserve_mib (here
// a reserve larger than any disk, on the real file system) refuses a record write with
// RESOURCE_EXHAUSTED and reason DISK_LOW, before it enters the log; a delete goes in, and reaches
// the partner; reads go on; status says so; what partners share and withdraw still comes in. A
// full database disk stopped a single replica, reads and all (review H, F1).
func TestALowDiskRefusesWrites(t *testing.T) {
	low := "" // the org whose disk is under its reserve
	f := fedtest.Start(t, fedtest.Options{Orgs: 2, Extra: func(name string) string {
		if name == low {
			return "limits:\n  disk_reserve_mib: 1073741824\n"
		}
		return ""
	}})
	a, b := f.Orgs[0], f.Orgs[1]
	const crisis = "vol"
	a.Approve(t, policyDoc("sitreps-to-b", spiffeOf(b), "sitrep", "internal", ""))
	a.Put(t, fedtest.Sitrep("r1", crisis, pb.Classification_INTERNAL, "voor"))
	a.Put(t, fedtest.Sitrep("r0", crisis, pb.Classification_INTERNAL, "blijft"))
	waitHeld(t, b, crisis, a.TD.Name(), map[string]int64{"r1": 1, "r0": 1}, "b holds r1 and r0")

	low = "a"
	f.WriteConfigs(t)
	a.Stop(t)
	a.Start(t)
	st, err := pb.NewStatusServiceClient(a.Local(t)).Status(fedtest.Call(t), &pb.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if st.DiskReserveBytes != 1<<50 || st.DiskFreeBytes >= st.DiskReserveBytes {
		t.Fatalf("status: %d bytes free of a reserve of %d, want a reserve of 1 PiB and less free", st.DiskFreeBytes, st.DiskReserveBytes)
	}
	_, err = pb.NewRecordServiceClient(a.Local(t)).Put(fedtest.Call(t), &pb.PutRequest{Record: fedtest.Sitrep("r2", crisis, pb.Classification_INTERNAL, "tijdens")})
	if status.Code(err) != codes.ResourceExhausted || api.Reason(err) != api.ReasonDiskLow || !strings.Contains(err.Error(), "limits.disk_reserve_mib") {
		t.Fatalf("a write under the reserve: %v, want RESOURCE_EXHAUSTED, DISK_LOW, naming limits.disk_reserve_mib", err)
	}
	if got := a.Held(t, crisis, a.TD.Name()); len(got) != 2 || got["r1"] != 1 {
		t.Errorf("a's own records of %s after the refusal: %v, want r1 and r0", crisis, got)
	}
	a.Delete(t, "r1")
	waitHeld(t, b, crisis, a.TD.Name(), map[string]int64{"r0": 1}, "b's copy of r1 retracted")

	// Now b's disk is low, and a's has room: what a shares and what it withdraws still reach b,
	// in one stream (review N, N1: a batch with both was refused whole, and the withdrawn record
	// stayed in b's picture and search).
	low = "b"
	f.WriteConfigs(t)
	a.Stop(t)
	a.Start(t)
	b.Stop(t)
	b.Start(t)
	a.Put(t, fedtest.Sitrep("r3", crisis, pb.Classification_INTERNAL, "nieuw"))
	a.Delete(t, "r0")
	waitHeld(t, b, crisis, a.TD.Name(), map[string]int64{"r3": 1}, "b's copy of r0 retracted on a low disk, and r3 stored")
}

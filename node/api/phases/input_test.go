package phases_test

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/knooppunt/knooppunt/federation/identity"
	"github.com/knooppunt/knooppunt/federation/identity/identitytest"
	"github.com/knooppunt/knooppunt/node/clustertest"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestPhaseCrisisRefused: List refuses a crisis no record can have, as Set does, rather than
// answering it with a made-up phase (review AF, AF8); both say so in the words every method uses
// for a crisis name (review AF, AF9).
func TestPhaseCrisisRefused(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Replicas: 1,
		Roles: []string{"{id: spiffe://" + clustertest.Org + "/user/officer-a, role: officer}"}})
	r := c.Leader(t, 10*time.Second, c.Replicas...)
	local := pb.NewPhaseServiceClient(r.Local(t))
	officer := pb.NewPhaseServiceClient(identitytest.Dial(t, r.API,
		identitytest.SVID(t, c.CA, "/user/officer-a", identity.SVIDOptions{}), identitytest.Bundle(c.CA), c.TD))
	const use = ": use 1 to 64 of a-z 0-9 . _ -, such as oekraine"

	for _, tc := range []struct {
		name, crisis, msg string
	}{
		{"invalid UTF-8", "oekra\xefne", `crisis: "oekra\xefne" is not a crisis name` + use},
		{"NUL", "oekraine\x00", `crisis: "oekraine\x00" is not a crisis name` + use},
		{"ESC", "\x1b[31m", `crisis: "\x1b[31m" is not a crisis name` + use},
		{"capitals", "Oekraine", `crisis: "Oekraine" is not a crisis name` + use},
		{"1 MiB", strings.Repeat("a", 1<<20), `crisis: "` + strings.Repeat("a", 80) + `…" is not a crisis name` + use},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := local.List(clustertest.Call(t), &pb.ListPhasesRequest{Crisis: tc.crisis})
			clustertest.WantRefused(t, err, codes.InvalidArgument, "crisis", tc.msg)
			_, err = officer.Set(clustertest.Call(t), &pb.SetPhaseRequest{Crisis: tc.crisis, Phase: "warm", Reason: "test"})
			clustertest.WantRefused(t, err, codes.InvalidArgument, "crisis", tc.msg)
		})
	}
	// A crisis name whose phase was never set is cold.
	resp, err := local.List(clustertest.Call(t), &pb.ListPhasesRequest{Crisis: "oekraine"})
	if err != nil || len(resp.Phases) != 1 || resp.Phases[0].Phase != "cold" {
		t.Fatalf("List of a crisis never set: %v, %v; want it cold", resp, err)
	}
}

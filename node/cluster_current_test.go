package node_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/knooppunt/knooppunt/federation/identity"
	"github.com/knooppunt/knooppunt/federation/identity/identitytest"
	"github.com/knooppunt/knooppunt/node/clustertest"
	"github.com/knooppunt/knooppunt/node/config"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// peerGroup is a group of three replicas with a peer, ncc, and its node's SVID, and officers
// who share guidance with ncc.
type peerGroup struct {
	c      *clustertest.Cluster
	ncc    *x509svid.SVID
	oa, ob pb.PolicyServiceClient
}

func startPeerGroup(t *testing.T) *peerGroup {
	ncc := identitytest.NewCA(t, "ncc.crisis.test")
	bf := filepath.Join(t.TempDir(), "ncc.pem")
	identitytest.WriteBundle(t, bf, ncc)
	c := clustertest.New(t, clustertest.Options{
		Peers: []config.Peer{{Name: "ncc", TrustDomain: "ncc.crisis.test", Addresses: []string{"127.0.0.1:1"}, BundleFile: bf}},
		Roles: []string{"{id: spiffe://" + clustertest.Org + "/user/officer-a, role: officer}", "{id: spiffe://" + clustertest.Org + "/user/officer-b, role: officer}"},
	})
	c.StartAll(t)
	leader := c.Leader(t, 15*time.Second, c.Replicas...)
	svid := func(path string) *x509svid.SVID { return identitytest.SVID(t, c.CA, path, identity.SVIDOptions{}) }
	return &peerGroup{c: c, ncc: identitytest.SVID(t, ncc, "/node/r1", identity.SVIDOptions{}),
		oa: pb.NewPolicyServiceClient(dialFollowing(t, c, leader.API, svid("/user/officer-a"))),
		ob: pb.NewPolicyServiceClient(dialFollowing(t, c, leader.API, svid("/user/officer-b")))}
}

// share approves a policy that shares guidance with ncc, and returns its id.
func (g *peerGroup) share(t *testing.T, name string) string {
	p := retryUnavailable(t, "propose", func() (*pb.PolicyInfo, error) {
		return g.oa.Propose(clustertest.Call(t), &pb.ProposeRequest{Source: []byte(
			"name: " + name + "\npurpose: test\nrecipients: [spiffe://ncc.crisis.test]\nkinds: [guidance]\nmax_classification: internal\n")})
	})
	retryUnavailable(t, "approve", func() (*pb.PolicyInfo, error) {
		return g.ob.Approve(clustertest.Call(t), &pb.PolicyStepRequest{Id: p.Id})
	})
	return p.Id
}

func (g *peerGroup) revoke(t *testing.T, id string) {
	retryUnavailable(t, "revoke", func() (*pb.PolicyInfo, error) {
		return g.oa.Revoke(clustertest.Call(t), &pb.PolicyStepRequest{Id: id, Reason: "niet meer"})
	})
}

// query is ncc's Query of guidance at addr: the ids it got, and how the stream ended.
func (g *peerGroup) query(t *testing.T, addr string) ([]string, error) {
	t.Helper()
	conn := identitytest.Dial(t, addr, g.ncc, identitytest.Bundle(g.c.CA), g.c.TD)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := pb.NewFederationServiceClient(conn).Query(ctx, &pb.QueryRequest{Filter: &pb.Filter{Kinds: []string{"guidance"}}})
	var ids []string
	for err == nil {
		var r *pb.SharedRecord
		if r, err = st.Recv(); err == nil {
			ids = append(ids, r.Record.Id)
		}
	}
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return ids, err
}

func guidance(id string) *pb.Record {
	return &pb.Record{Id: id, Kind: "guidance", Crisis: "x", Region: "NL", Classification: pb.Classification_INTERNAL,
		Body: []byte(`{"title":"` + id + `","text":"t"}`)}
}

// TestCutOffReplicaDisclosesNothing: a replica that missed an officer's revoke, and then has no
// leader (cut off from its group), gives a peer nothing: before, it went on deciding on the
// policy it held, for as long as it was cut off, and its disclosures, which it could not record,
// went unaudited (review B, H1).
func TestCutOffReplicaDisclosesNothing(t *testing.T) {
	g := startPeerGroup(t)
	leader := g.c.Leader(t, 15*time.Second, g.c.Replicas...)
	stale, third := others(g.c, leader)[0], others(g.c, leader)[1]
	leader.Put(t, guidance("g1"))
	leader.Put(t, guidance("g2"))
	id := g.share(t, "gids-naar-ncc")
	clustertest.Eventually(t, 10*time.Second, "the follower to be cut off shares", func() (bool, string) {
		ids, err := g.query(t, stale.API)
		return len(ids) == 2 && err == nil, fmt.Sprint(ids, err)
	})
	describe := func() (*pb.DescribeResponse, error) {
		conn := identitytest.Dial(t, stale.API, g.ncc, identitytest.Bundle(g.c.CA), g.c.TD)
		return pb.NewFederationServiceClient(conn).Describe(clustertest.Call(t), &pb.DescribeRequest{})
	}
	if d, err := describe(); err != nil || len(d.Kinds) != 1 {
		t.Fatalf("Describe before the cut: %v, %v", d, err)
	}
	stale.Stop(t)
	g.revoke(t, id)
	leader.Stop(t)
	third.Stop(t)
	stale.Start(t)
	ids, err := g.query(t, stale.API)
	if len(ids) > 0 || status.Code(err) != codes.Unavailable {
		t.Errorf("a replica cut off after missing the revoke gave %v, ending %v; want nothing, Unavailable", ids, err)
	}
	if d, err := describe(); status.Code(err) != codes.Unavailable {
		t.Errorf("Describe of a replica cut off after missing the revoke: %v, %v; want Unavailable", d, err)
	}
}

// TestFollowerDisclosesNothingAfterARevoke: a peer that asks a follower as fast as it can gets
// nothing once the officer's revoke was acknowledged: the follower first learns from its leader
// how far the group is, and applies that far (review B, M1: before, a Query begun up to 13 ms
// after the revoke returned got the record, in 8 rounds of 8).
func TestFollowerDisclosesNothingAfterARevoke(t *testing.T) {
	g := startPeerGroup(t)
	leader := g.c.Leader(t, 15*time.Second, g.c.Replicas...)
	follower := others(g.c, leader)[0]
	leader.Put(t, guidance("g1"))
	for round := range 4 {
		id := g.share(t, fmt.Sprintf("gids-naar-ncc-%d", round))
		clustertest.Eventually(t, 10*time.Second, "the follower shares", func() (bool, string) {
			ids, err := g.query(t, follower.API)
			return len(ids) == 1 && err == nil, fmt.Sprint(ids, err)
		})
		stop, late := make(chan struct{}), make(chan time.Duration, 1)
		var revoked time.Time
		ready := make(chan struct{})
		go func() {
			var worst time.Duration
			defer func() { late <- worst }()
			<-ready
			for {
				select {
				case <-stop:
					return
				default:
				}
				began := time.Now()
				if ids, _ := g.query(t, follower.API); len(ids) > 0 && began.After(revoked) {
					worst = max(worst, began.Sub(revoked))
				}
			}
		}()
		g.revoke(t, id)
		revoked = time.Now()
		close(ready)
		time.Sleep(200 * time.Millisecond)
		close(stop)
		if d := <-late; d > 0 {
			t.Errorf("round %d: the follower gave the record to a Query begun %v after the revoke was acknowledged", round, d)
		}
	}
}

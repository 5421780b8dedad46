package node_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/knooppunt/knooppunt/federation/fedtest"
	"github.com/knooppunt/knooppunt/federation/identity"
	"github.com/knooppunt/knooppunt/federation/identity/identitytest"
	"github.com/knooppunt/knooppunt/node/clustertest"
	"github.com/knooppunt/knooppunt/node/config"
	"github.com/knooppunt/knooppunt/node/db"
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

// TestQueryRecordsAcrossALeaderLoss: a peer's Query on a follower whose leader is lost in the
// middle of the stream ends OK once a new leader has recorded what went out, and every record
// the peer got is audited. Before, the stream ended in an error with records sent and never
// recorded: a peer that kept them was out of the source's sight.
func TestQueryRecordsAcrossALeaderLoss(t *testing.T) {
	g := startPeerGroup(t)
	// Records of about 1 KB, so that the first few fill the stream's flow-control window (held
	// at 64 KB below) and the first batch of disclosures (256) is recorded only after the leader
	// is gone.
	const n = 600
	text := strings.Repeat("water ", 170)
	recs := make([]*pb.Record, n)
	for i := range recs {
		recs[i] = guidance(fmt.Sprintf("g%04d", i))
		recs[i].Body = []byte(`{"title":"g","text":"` + text + `"}`)
	}
	for i := 0; i < n; i += 200 {
		// Written again whole when the group changed leader meanwhile: the records, not their
		// versions, count here.
		retryUnavailable(t, "put", func() (*pb.PutBatchResponse, error) {
			return g.c.Leader(t, 15*time.Second, g.c.Replicas...).Records(t).PutBatch(clustertest.Call(t), &pb.PutBatchRequest{Records: recs[i : i+200]})
		})
	}
	g.share(t, "gids-naar-ncc")
	leader := g.c.Leader(t, 15*time.Second, g.c.Replicas...)
	follower := others(g.c, leader)[0]
	clustertest.Eventually(t, 10*time.Second, "the follower shares every record", func() (bool, string) {
		ids, err := g.query(t, follower.API)
		return len(ids) == n && err == nil, fmt.Sprint(len(ids), err)
	})
	last, err := follower.Node.DB().AuditList(context.Background(), db.AuditFilter{Limit: 1, Newest: true})
	if err != nil || len(last) != 1 {
		t.Fatal(last, err)
	}

	// A fixed window: grpc's own grows it on loopback until the whole answer is on its way
	// before the first record is read.
	conn, err := grpc.NewClient(follower.API, grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10),
		grpc.WithTransportCredentials(identity.ClientCredentials(g.ncc, identitytest.Bundle(g.c.CA), identity.AuthorizeReplica(g.c.TD))))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := pb.NewFederationServiceClient(conn).Query(ctx, &pb.QueryRequest{Filter: &pb.Filter{Kinds: []string{"guidance"}}})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	r, err := st.Recv()
	if err != nil {
		t.Fatal(err)
	}
	got[r.Record.Id] = true
	leader.Kill(t) // no hand-over: the group elects a new leader after a heartbeat timeout
	for {
		if r, err = st.Recv(); err != nil {
			break
		}
		got[r.Record.Id] = true
	}
	if !errors.Is(err, io.EOF) || len(got) != n {
		t.Fatalf("the Query across the leader's loss ended %v after %d records, want OK after %d", err, len(got), n)
	}
	clustertest.Eventually(t, 10*time.Second, "every record the peer got audited", func() (bool, string) {
		entries, err := follower.Node.DB().AuditList(context.Background(), db.AuditFilter{Action: db.AuditDisclosure, AfterSeq: last[0].Seq, Limit: 10 * n})
		audited := map[string]bool{}
		for _, e := range entries {
			audited[e.Subject] = true
		}
		for id := range got {
			if !audited[id] {
				return false, fmt.Sprintf("%s not audited (%d of %d audited, %v)", id, len(audited), len(got), err)
			}
		}
		return true, ""
	})
}

// TestRemovedReplicaEndsSubscriptions: a peer's subscription open on a replica that the group
// then removes ends, and tells the peer nothing is up to date once the group has moved on:
// before, the removed replica, which applies nothing more, sent "caught up" heartbeats for as
// long as it ran, while the group revoked the policy and wrote more (review C, F2).
func TestRemovedReplicaEndsSubscriptions(t *testing.T) {
	g := startPeerGroup(t)
	leader := g.c.Leader(t, 15*time.Second, g.c.Replicas...)
	removed := others(g.c, leader)[0]
	leader.Put(t, guidance("g1"))
	id := g.share(t, "gids-naar-ncc")
	clustertest.Eventually(t, 10*time.Second, "the follower shares", func() (bool, string) {
		ids, err := g.query(t, removed.API)
		return len(ids) == 1 && err == nil, fmt.Sprint(ids, err)
	})
	conn := identitytest.Dial(t, removed.API, g.ncc, identitytest.Bundle(g.c.CA), g.c.TD)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := pb.NewFederationServiceClient(conn).Subscribe(ctx, &pb.SubscribeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	type event struct {
		at  time.Time
		e   *pb.FeedEvent
		err error
	}
	events := make(chan event, 100)
	go func() {
		for {
			e, err := st.Recv()
			events <- event{time.Now(), e, err}
			if err != nil {
				return
			}
		}
	}()
	for e := range events { // up to date: the first plain heartbeat
		if e.err != nil {
			t.Fatal(e.err)
		}
		if hb := e.e.GetHeartbeat(); hb != nil && !hb.Full && !hb.FullEnd {
			break
		}
	}
	retryUnavailable(t, "remove", func() (*pb.ClusterStatusResponse, error) {
		return pb.NewClusterServiceClient(g.c.Leader(t, 15*time.Second, g.c.Replicas...).Local(t)).Remove(clustertest.Call(t), &pb.RemoveRequest{Id: removed.ID})
	})
	g.revoke(t, id)
	revoked := time.Now()
	leader.Put(t, guidance("g2"))
	timeout := time.After(20 * time.Second)
	for {
		select {
		case e := <-events:
			if e.err != nil {
				if status.Code(e.err) != codes.Unavailable {
					t.Fatalf("the subscription on the removed replica ended %v, want Unavailable", e.err)
				}
				return
			}
			// A heartbeat decided on before the revoke may arrive just after it.
			if e.e.GetHeartbeat() != nil && e.at.After(revoked.Add(2*time.Second)) {
				t.Fatalf("the removed replica told the peer it is up to date %v after the group revoked the policy", e.at.Sub(revoked))
			}
		case <-timeout:
			t.Fatal("the subscription on the removed replica is still open 20 s after the group revoked the policy")
		}
	}
}

// TestPeerNodeMovesOffARemovedReplica: a peer's node connected to a replica that its group then
// removes goes to another replica of the group: its search is answered there, and its
// subscription follows the group, which revokes the policy. Before, grpc's pick_first kept it
// on the removed replica for as long as that replica ran, which answered every call
// UNAVAILABLE (and, before that, told the subscription it was up to date: review C, F2).
func TestPeerNodeMovesOffARemovedReplica(t *testing.T) {
	fed, peer, c := startWithPeerNode(t, "")
	td := clustertest.Org
	leader := c.Leader(t, 15*time.Second, c.Replicas...)
	removed := others(c, leader)[0]
	apis := []string{removed.API} // tried first
	for _, r := range c.Replicas {
		if r != removed {
			apis = append(apis, r.API)
		}
	}
	fed.AddPeers(t, config.Peer{Name: "kc", TrustDomain: td, Addresses: apis, BundleFile: c.BundleFile})

	leader.Put(t, guidance("g1"))
	svid := func(path string) *x509svid.SVID { return identitytest.SVID(t, c.CA, path, identity.SVIDOptions{}) }
	oa := pb.NewPolicyServiceClient(dialFollowing(t, c, leader.API, svid("/user/officer-a")))
	ob := pb.NewPolicyServiceClient(dialFollowing(t, c, leader.API, svid("/user/officer-b")))
	p := retryUnavailable(t, "propose", func() (*pb.PolicyInfo, error) {
		return oa.Propose(clustertest.Call(t), &pb.ProposeRequest{Source: []byte(
			"name: gids-naar-peer\npurpose: test\nrecipients: [spiffe://" + peer.TD.Name() + "]\nkinds: [guidance]\nmax_classification: internal\n")})
	})
	retryUnavailable(t, "approve", func() (*pb.PolicyInfo, error) {
		return ob.Approve(clustertest.Call(t), &pb.PolicyStepRequest{Id: p.Id})
	})
	fedtest.Eventually(t, 30*time.Second, "the peer holds g1", func() (bool, string) {
		held := peer.Held(t, "x", td)
		return held["g1"] > 0, fmt.Sprint(held)
	})

	retryUnavailable(t, "remove", func() (*pb.ClusterStatusResponse, error) {
		return pb.NewClusterServiceClient(c.Leader(t, 15*time.Second, c.Replicas...).Local(t)).Remove(clustertest.Call(t), &pb.RemoveRequest{Id: removed.ID})
	})
	leader.Put(t, guidance("g2"))
	resp, _ := peer.Search(t, &pb.SearchRequest{Filter: &pb.Filter{Crisis: "x"}, TimeoutMs: 10000})
	var found []string
	for _, h := range resp.Hits {
		if !h.FromCache {
			found = append(found, h.Record.Id)
		}
	}
	slices.Sort(found)
	if !slices.Equal(found, []string{"g1", "g2"}) {
		t.Errorf("the peer's search after the removal found %v answered (peers %v), want g1 and g2 from a replica of the group", found, resp.Peers)
	}

	retryUnavailable(t, "revoke", func() (*pb.PolicyInfo, error) {
		return oa.Revoke(clustertest.Call(t), &pb.PolicyStepRequest{Id: p.Id, Reason: "niet meer"})
	})
	fedtest.Eventually(t, 30*time.Second, "the peer's copies retracted", func() (bool, string) {
		held := peer.Held(t, "x", td)
		return len(held) == 0, fmt.Sprint(held)
	})
}

// startWithPeerNode starts a group of three replicas of clustertest.Org, with officers officer-a
// and officer-b, and a federation of one org, the group's peer; extra is added to the group's
// config. The peer does not have the group as a peer yet (fed.AddPeers).
func startWithPeerNode(t *testing.T, extra string) (*fedtest.Federation, *fedtest.Org, *clustertest.Cluster) {
	fed := fedtest.Start(t, fedtest.Options{Orgs: 1})
	peer := fed.Orgs[0]
	td := clustertest.Org
	c := clustertest.New(t, clustertest.Options{
		Peers: []config.Peer{{Name: peer.Name, TrustDomain: peer.TD.Name(), Addresses: []string{peer.Addr}, BundleFile: peer.BundleFile()}},
		Roles: []string{"{id: spiffe://" + td + "/user/officer-a, role: officer}", "{id: spiffe://" + td + "/user/officer-b, role: officer}"},
		Extra: extra,
	})
	c.StartAll(t)
	return fed, peer, c
}

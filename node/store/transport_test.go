package store_test

// The Raft transport between the replicas of one node, over real mutual TLS with replica SVIDs
// minted in-process.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/knooppunt/knooppunt/federation/identity"
	"github.com/knooppunt/knooppunt/federation/identity/identitytest"
	"github.com/knooppunt/knooppunt/node/db"
	"github.com/knooppunt/knooppunt/node/store"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

const td = "vr-utrecht.crisis.test"

type replica struct {
	id    string
	db    *db.DB
	trans *store.Transport
	s     *store.Store
	log   *identitytest.Log
}

// tlsReplicas starts n replicas of one node, each with its own replica SVID, over
// store.TLSTransport on loopback, bootstrapped as one group.
func tlsReplicas(t *testing.T, ca *identity.DevCA, n int) []*replica {
	t.Helper()
	return tlsReplicasNamed(t, ca, n, false)
}

// tlsReplicasNamed is tlsReplicas, with each replica advertised and listed by the name
// localhost:PORT when named, as a deployment names its replicas by DNS names.
func tlsReplicasNamed(t *testing.T, ca *identity.DevCA, n int, named bool) []*replica {
	t.Helper()
	bundle := identitytest.Bundle(ca)
	trustDomain := ca.TrustDomain
	rs := make([]*replica, n)
	var servers []raft.Server
	// The transports bind first, so that every replica can be given every address.
	for i := range rs {
		r := &replica{id: fmt.Sprintf("r%d", i+1), log: identitytest.NewLog()}
		svid := identitytest.SVID(t, ca, "/node/"+r.id, identity.SVIDOptions{})
		bind, advertise := "127.0.0.1:0", ""
		if named {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			port := l.Addr().(*net.TCPAddr).Port
			l.Close()
			bind, advertise = fmt.Sprintf("127.0.0.1:%d", port), fmt.Sprintf("localhost:%d", port)
		}
		tr, err := store.TLSTransport(bind, advertise,
			identity.ServerTLSFor(svid, bundle, identity.AuthorizeReplica(trustDomain), r.log.Logger),
			identity.ClientTLS(svid, bundle, identity.AuthorizeReplica(trustDomain)), r.log.Logger)
		if err != nil {
			t.Fatal(err)
		}
		r.trans = tr
		servers = append(servers, raft.Server{ID: raft.ServerID(r.id), Address: tr.LocalAddr(), Suffrage: raft.Voter})
		rs[i] = r
	}
	for _, r := range rs {
		dir := t.TempDir()
		d, err := db.Open(filepath.Join(dir, "knooppunt.db"))
		if err != nil {
			t.Fatal(err)
		}
		r.db = d
		s, err := store.Open(store.Config{
			Dir: filepath.Join(dir, "raft"), DB: d, ReplicaID: r.id, Transport: r.trans,
			Bootstrap: true, Servers: servers, ElectionTimeout: 200 * time.Millisecond, Logger: r.log.Logger,
		})
		if err != nil {
			r.trans.Close()
			t.Fatal(err)
		}
		r.s = s
		// Cleanups run last-in first-out: the store (and its transport) closes before its database.
		t.Cleanup(func() { d.Close() })
		t.Cleanup(func() { s.Close() })
	}
	return rs
}

// leaderOf waits until every replica knows the same leader, and returns it.
func leaderOf(t *testing.T, rs []*replica) *replica {
	t.Helper()
	var leader *replica
	identitytest.Eventually(t, 15*time.Second, "one leader that every replica knows", func() bool {
		id := rs[0].s.Leader()
		if id == "" {
			return false
		}
		for _, r := range rs {
			if r.s.Leader() != id {
				return false
			}
		}
		for _, r := range rs {
			if r.id == id && r.s.IsLeader() {
				leader = r
				return true
			}
		}
		return false
	})
	return leader
}

// writeOnLeader writes rec on the group's leader and returns it with the write's results.
// Leadership can move between finding the leader and writing to it (a loaded test machine misses
// a heartbeat); then the write is refused as a whole and goes to the new leader.
func writeOnLeader(t *testing.T, rs []*replica, rec *pb.Record) (*replica, []db.Result) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for {
		leader := leaderOf(t, rs)
		res, err := leader.s.Write(ctx, []*pb.Record{rec})
		if errors.Is(err, store.ErrNotLeader) && ctx.Err() == nil {
			continue
		}
		if err != nil || len(res) != 1 || res[0].Err != nil {
			t.Fatalf("Write on the leader %s: %v %+v", leader.id, err, res)
		}
		return leader, res
	}
}

// TestTLSTransportKeepsNames: replicas advertised by a host name are dialled by that name, and the
// group's configuration keeps naming them so once one leads: resolved to the IP it has now, it
// would keep dialling that IP after the name moved (a restarted pod), and never reach the
// replica again.
func TestTLSTransportKeepsNames(t *testing.T) {
	rs := tlsReplicasNamed(t, identitytest.NewCA(t, td), 3, true)
	leader, _ := writeOnLeader(t, rs, &pb.Record{Id: "genoemd", Origin: td, Kind: "shelter.capacity", Crisis: "oekraine", Region: "VR09",
		Classification: pb.Classification_INTERNAL, Body: []byte(`{"beds_free":1}`)})
	// A join runs the leader's own address check first, as becoming leader does; adding a voter
	// it has already, at the same address, changes nothing else.
	var other *replica
	for _, r := range rs {
		if r != leader {
			other = r
		}
	}
	if err := leader.s.AddVoter(other.id, string(other.trans.LocalAddr())); err != nil {
		t.Fatal(err)
	}
	servers, err := leader.s.Servers()
	if err != nil {
		t.Fatal(err)
	}
	for _, srv := range servers {
		if !strings.HasPrefix(string(srv.Address), "localhost:") {
			t.Errorf("the group names %s %q, want the name it was given", srv.ID, srv.Address)
		}
	}
	for _, r := range rs {
		identitytest.Eventually(t, 10*time.Second, r.id+" applies the write", func() bool {
			_, err := r.db.Get(context.Background(), "genoemd")
			return err == nil
		})
	}
}

// TestTLSTransportReplicates: three replicas with replica SVIDs elect a leader over mutual TLS,
// and a write on the leader is applied on every replica.
func TestTLSTransportReplicates(t *testing.T) {
	ca := identitytest.NewCA(t, td)
	rs := tlsReplicas(t, ca, 3)

	rec := &pb.Record{
		Id: "utrecht-jaarbeurs", Origin: td, Kind: "shelter.capacity", Crisis: "oekraine", Region: "VR09",
		Classification: pb.Classification_INTERNAL, Body: []byte(`{"beds_free":14}`),
	}
	_, res := writeOnLeader(t, rs, rec)
	for _, r := range rs {
		var (
			got *pb.Record
			err error
		)
		identitytest.Eventually(t, 10*time.Second, r.id+" applies the write", func() bool {
			got, err = r.db.Get(t.Context(), rec.Id)
			return err == nil
		})
		if string(got.Body) != string(rec.Body) || got.Version != res[0].Version {
			t.Errorf("%s holds %s v%d, want %s v%d", r.id, got.Body, got.Version, rec.Body, res[0].Version)
		}
	}
}

// TestTLSTransportRefusesNonReplicas: the Raft port trusts every message it receives, so only
// the node's own replicas may complete a handshake: a user of the org (even an admin), a replica
// of another org, and a certificate of another CA claiming the org's trust domain are all
// refused, and each refusal is logged with the SPIFFE ID the caller claimed.
func TestTLSTransportRefusesNonReplicas(t *testing.T) {
	ca := identitytest.NewCA(t, td)
	rs := tlsReplicas(t, ca, 1)
	leaderOf(t, rs)
	addr := string(rs[0].trans.LocalAddr())
	peerCA := identitytest.NewCA(t, "ncc.crisis.test")
	rogueCA := identitytest.NewCA(t, td)
	trustDomain := spiffeid.RequireTrustDomainFromString(td)

	for _, tc := range []struct {
		name   string
		svid   *x509svid.SVID
		reason string
	}{
		{"user", identitytest.SVID(t, ca, "/user/admin", identity.SVIDOptions{}),
			"spiffe://vr-utrecht.crisis.test/user/admin is not a replica of vr-utrecht.crisis.test (spiffe://vr-utrecht.crisis.test/node/...)"},
		{"another org's replica", identitytest.SVID(t, peerCA, "/node/r1", identity.SVIDOptions{}),
			`x509svid: could not get X509 bundle: x509bundle: no X.509 bundle found for trust domain: "ncc.crisis.test"`},
		{"another CA", identitytest.SVID(t, rogueCA, "/node/r2", identity.SVIDOptions{}),
			"x509: certificate signed by unknown authority"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The client trusts the replica, so a failure is the replica's refusal.
			cfg := identity.ClientTLS(tc.svid, identitytest.Bundle(ca), identity.AuthorizeReplica(trustDomain))
			err := dialRaft(addr, cfg)
			if err == nil || !strings.Contains(err.Error(), "remote error: tls: bad certificate") {
				t.Fatalf("dial the Raft port as %s: %v; want remote error: tls: bad certificate", tc.svid.ID, err)
			}
			rs[0].log.Wait(t, 5*time.Second, "handshake refused", identitytest.Refusal(tc.svid.ID.String(), tc.reason))
		})
	}

	// The control: a replica SVID gets through the same dial.
	r2 := identitytest.SVID(t, ca, "/node/r2", identity.SVIDOptions{})
	if err := dialRaft(addr, identity.ClientTLS(r2, identitytest.Bundle(ca), identity.AuthorizeReplica(trustDomain))); err != nil {
		t.Fatalf("a replica SVID is refused: %v", err)
	}
}

// dialRaft completes a TLS handshake with the Raft port and waits for the server to have
// judged the client: under TLS 1.3 the client's handshake ends before the server has checked
// the client's certificate, so a refusal shows on the next read. An accepted client is left
// waiting for a Raft message, so the read times out.
func dialRaft(addr string, cfg *tls.Config) error {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	_, err = c.Read(make([]byte, 1))
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return nil
	}
	if err == nil {
		return fmt.Errorf("the Raft port sent data to a client that sent nothing")
	}
	return err
}

// TestLeaderNamesItselfByName: a group that a release before this one wrote with the IP its
// replica's advertised name resolved to (as it did once the replica led) gets the name back
// when that replica leads: the IP would be dialled for good after the name moved.
func TestLeaderNamesItselfByName(t *testing.T) {
	ca := identitytest.NewCA(t, td)
	bundle := identitytest.Bundle(ca)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	ip, name := fmt.Sprintf("127.0.0.1:%d", port), fmt.Sprintf("localhost:%d", port)
	log := identitytest.NewLog()
	svid := identitytest.SVID(t, ca, "/node/r1", identity.SVIDOptions{})
	tr, err := store.TLSTransport(ip, name, identity.ServerTLSFor(svid, bundle, identity.AuthorizeReplica(ca.TrustDomain), log.Logger),
		identity.ClientTLS(svid, bundle, identity.AuthorizeReplica(ca.TrustDomain)), log.Logger)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	d, err := db.Open(filepath.Join(dir, "knooppunt.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	s, err := store.Open(store.Config{Dir: filepath.Join(dir, "raft"), DB: d, ReplicaID: "r1", Transport: tr, Bootstrap: true,
		Servers: []raft.Server{{ID: "r1", Address: raft.ServerAddress(ip), Suffrage: raft.Voter}}, ElectionTimeout: 100 * time.Millisecond, Logger: log.Logger})
	if err != nil {
		tr.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	identitytest.Eventually(t, 10*time.Second, "r1 names itself by its name in the group", func() bool {
		servers, err := s.Servers()
		return err == nil && len(servers) == 1 && servers[0].Address == name
	})
}

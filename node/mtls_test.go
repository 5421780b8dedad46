package node_test

// SPIFFE identities and mTLS for every connection, through real nodes: real handshakes with
// SVIDs minted in-process, the method→role table, refusals logged with the caller's SPIFFE ID and
// the reason, config reloads that take effect on open connections, SVID rotation under load,
// and peer bundles kept current through the SPIFFE Federation bundle endpoint.

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/knooppunt/knooppunt/federation/identity"
	"github.com/knooppunt/knooppunt/federation/identity/identitytest"
	"github.com/knooppunt/knooppunt/node"
	"github.com/knooppunt/knooppunt/node/api"
	"github.com/knooppunt/knooppunt/node/config"
	"github.com/knooppunt/knooppunt/node/db"
	"github.com/knooppunt/knooppunt/node/metrics"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// The orgs of these tests.
const (
	mtlsOwnTD       = "vr-utrecht.crisis.test" // the node under test
	mtlsPeerTD      = "ncc.crisis.test"        // a configured peer
	mtlsSPIREOnlyTD = "coa.crisis.test"        // known to SPIRE, not a peer
)

// mtlsOrg is one org's PKI: its CA, its trust bundle and its replica r1's SVID as files, in a
// short directory (the node's local socket lives under it too, and its path must fit in 108
// bytes).
type mtlsOrg struct {
	td     spiffeid.TrustDomain
	ca     *identity.DevCA
	dir    string
	bundle string // the org's bundle file
	cert   string // PREFIX of r1's SVID files
}

func newMTLSOrg(t *testing.T, td string) *mtlsOrg {
	t.Helper()
	dir, err := os.MkdirTemp("", "kp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	o := &mtlsOrg{td: spiffeid.RequireTrustDomainFromString(td), ca: identitytest.NewCA(t, td), dir: dir,
		bundle: filepath.Join(dir, "bundle.pem"), cert: filepath.Join(dir, "r1")}
	identitytest.WriteBundle(t, o.bundle, o.ca)
	identitytest.WriteSVID(t, o.ca, "/node/r1", o.cert, identity.SVIDOptions{})
	return o
}

// svid mints an SVID of the org for path.
func (o *mtlsOrg) svid(t *testing.T, path string) *x509svid.SVID {
	return identitytest.SVID(t, o.ca, path, identity.SVIDOptions{})
}

// filesIdentity is the identity block of the org's node with the files source.
func (o *mtlsOrg) filesIdentity() string {
	return fmt.Sprintf("identity: {source: files, cert_file: %s.crt, key_file: %s.key, bundle_file: %s}\n", o.cert, o.cert, o.bundle)
}

var mtlsNodes atomic.Int64

// mtlsNode is a running node of an org with its config file and a log to inspect.
type mtlsNode struct {
	*node.Node
	org        *mtlsOrg
	log        *identitytest.Log
	configFile string
	stopped    bool
}

// startMTLSNode starts the org's node, serving mTLS on a free loopback port, from a config file
// whose org, name and listen address are set here and whose identity, roles and peers are body.
// The file is watched every 50ms.
func startMTLSNode(t *testing.T, o *mtlsOrg, body string, opts ...func(*node.Options)) *mtlsNode {
	t.Helper()
	m := &mtlsNode{org: o, log: identitytest.NewLog(), configFile: filepath.Join(o.dir, "node.yaml")}
	// Gauges are registered by node name: every node gets a name of its own.
	// The file says all the node runs with, so that a reload finds nothing that needs a restart.
	head := fmt.Sprintf("name: mtls-%d\norg: %s\nlisten: 127.0.0.1:0\nmetrics_addr: \"\"\nraft: {election_timeout: 50ms}\n", mtlsNodes.Add(1), o.td)
	identitytest.WriteFile(t, m.configFile, []byte(head+body))
	cfg, err := config.Load(m.configFile)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	no := node.Options{DataDir: filepath.Join(o.dir, "data"), Config: cfg, ConfigFile: m.configFile,
		ReloadInterval: 50 * time.Millisecond, Logger: m.log.Logger, Version: "test"}
	for _, set := range opts {
		set(&no)
	}
	n, err := node.Start(ctx, no)
	if err != nil {
		t.Fatalf("node.Start: %v", err)
	}
	m.Node = n
	t.Cleanup(func() {
		if err := m.stop(); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return m
}

func (m *mtlsNode) stop() error {
	if m.stopped {
		return nil
	}
	m.stopped = true
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return m.Stop(ctx)
}

// reconfigure rewrites the node's config file with a new body and waits until the node has
// reloaded it.
func (m *mtlsNode) reconfigure(t *testing.T, body string) {
	t.Helper()
	data, err := os.ReadFile(m.configFile)
	if err != nil {
		t.Fatal(err)
	}
	head := strings.Join(strings.SplitAfterN(string(data), "\n", 6)[:5], "")
	before := m.log.Count("config reloaded", nil)
	identitytest.WriteFile(t, m.configFile, []byte(head+body))
	identitytest.Eventually(t, 10*time.Second, "the node reloads its config", func() bool {
		return m.log.Count("config reloaded", nil) > before
	})
}

// dial connects to the node over mTLS as svid, trusting the node's org.
func (m *mtlsNode) dial(t *testing.T, svid *x509svid.SVID) *grpc.ClientConn {
	return identitytest.Dial(t, m.Addr().String(), svid, identitytest.Bundle(m.org.ca), m.org.td)
}

// local connects to the node's local socket.
func (m *mtlsNode) local(t *testing.T) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+m.SocketPath(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// serverSerial completes a fresh handshake with addr and returns the serial number of the
// certificate the server presents.
func serverSerial(t *testing.T, addr string, client *x509svid.SVID, bundle x509bundle.Source, td spiffeid.TrustDomain) string {
	t.Helper()
	cfg := identity.ClientTLS(client, bundle, identity.AuthorizeReplica(td))
	cfg.NextProtos = []string{"h2"}
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		t.Fatalf("handshake with %s: %v", addr, err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

func mtlsCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mtlsRecord(id string) *pb.Record {
	return &pb.Record{
		Id: id, Kind: "shelter.capacity", Crisis: "oekraine", Region: "VR09",
		Classification: pb.Classification_INTERNAL,
		Body:           []byte(`{"municipality":"Utrecht","beds_total":100,"beds_free":14}`),
	}
}

// mtlsMetric reads a counter or gauge of the node's metrics registry for one label value.
func mtlsMetric(t *testing.T, name, label, value string) float64 {
	t.Helper()
	v, _ := metrics.Value(name, map[string]string{label: value})
	return v
}

// wantHandshakeRefused checks that the node refuses client at the TLS handshake. gRPC reports
// that as Unavailable, with a message that depends on timing (the alert, or a broken pipe when
// the client writes first), so the TLS error itself is checked on a bare handshake: under TLS
// 1.3 the client's side ends before the server has judged the client's certificate, and the
// refusal arrives as an alert on the first read.
func wantHandshakeRefused(t *testing.T, err error, addr string, client *x509svid.SVID, o *mtlsOrg) {
	t.Helper()
	if st := status.Convert(err); st.Code() != codes.Unavailable {
		t.Fatalf("call: %v; want Unavailable, the handshake refused", err)
	}
	cfg := identity.ClientTLS(client, identitytest.Bundle(o.ca), identity.AuthorizeReplica(o.td))
	cfg.NextProtos = []string{"h2"}
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err == nil {
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = c.Read(make([]byte, 1))
	}
	if err == nil || !strings.Contains(err.Error(), "remote error: tls: bad certificate") {
		t.Fatalf("bare handshake: %v; want remote error: tls: bad certificate", err)
	}
}

// TestMTLSAuthorization runs calls over real mTLS handshakes against a node whose SVID and
// bundles come from a (fake) SPIRE agent, and checks each outcome: the exact gRPC code and
// message, and that every refusal is logged with the caller's SPIFFE ID and the reason.
//
// The node's SPIRE federates with coa.crisis.test, but the node's config does not list it as a
// peer: SPIRE federation is set up per SPIRE server, Knooppunt peering per node, and the two
// need not agree. A coa SVID therefore verifies in the handshake, and it is the authorisation
// table that must refuse it, as "not a configured peer". This is the one real way to reach that
// refusal on a fresh connection: under the files source a node knows the bundles of its peers
// alone.
func TestMTLSAuthorization(t *testing.T) {
	own := newMTLSOrg(t, mtlsOwnTD)
	ncc := newMTLSOrg(t, mtlsPeerTD)
	coa := newMTLSOrg(t, mtlsSPIREOnlyTD)
	agent := identitytest.ServeWorkloadAPI(t, own.svid(t, "/node/r1"), identitytest.Bundle(own.ca), identitytest.Bundle(coa.ca))
	n := startMTLSNode(t, own, fmt.Sprintf(`identity: {source: workloadapi, workload_api: %q}
roles:
  - {id: spiffe://%[2]s/user/editor, role: editor}
  - {id: spiffe://%[2]s/user/reader, role: reader}
  - {prefix: spiffe://%[2]s/user/apps/, role: editor}
peers:
  - {name: ncc, trust_domain: %s, bundle_file: %s}
`, agent.Addr, mtlsOwnTD, mtlsPeerTD, ncc.bundle))

	put := func(conn *grpc.ClientConn) error {
		_, err := pb.NewRecordServiceClient(conn).Put(mtlsCtx(t), &pb.PutRequest{Record: mtlsRecord("jaarbeurs")})
		return err
	}
	list := func(conn *grpc.ClientConn) error {
		_, err := pb.NewRecordServiceClient(conn).List(mtlsCtx(t), &pb.ListRequest{})
		return err
	}
	describe := func(conn *grpc.ClientConn) error {
		_, err := pb.NewFederationServiceClient(conn).Describe(mtlsCtx(t), &pb.DescribeRequest{})
		return err
	}
	apply := func(conn *grpc.ClientConn) error {
		_, err := pb.NewReplicaServiceClient(conn).Apply(mtlsCtx(t), &pb.ApplyRequest{Command: &pb.Command{}})
		return err
	}
	unlisted := func(conn *grpc.ClientConn) error {
		return conn.Invoke(mtlsCtx(t), "/knooppunt.v1.RecordService/Nope", &pb.GetRequest{}, &pb.Record{})
	}
	past := time.Now().Add(-48 * time.Hour)
	future := time.Now().Add(time.Hour)
	rogue := identitytest.NewCA(t, mtlsOwnTD) // another CA claiming the node's trust domain

	for _, tc := range []struct {
		name   string
		client *x509svid.SVID
		call   func(*grpc.ClientConn) error
		code   codes.Code
		// msg is the exact status message of a call refused after the handshake; the refusal's
		// log record must carry it as the reason.
		msg string
		// handshake, when set, are stable parts of the reason logged for a refused handshake.
		handshake []string
	}{
		{name: "editor may Put", client: own.svid(t, "/user/editor"), call: put, code: codes.OK},
		{name: "an app under an editor prefix may Put", client: own.svid(t, "/user/apps/lcms"), call: put, code: codes.OK},
		{name: "reader may List", client: own.svid(t, "/user/reader"), call: list, code: codes.OK},
		{name: "reader may not Put", client: own.svid(t, "/user/reader"), call: put, code: codes.PermissionDenied,
			msg: "spiffe://vr-utrecht.crisis.test/user/reader may not call RecordService/Put: it needs the role editor or admin"},
		{name: "own ID without a role", client: own.svid(t, "/user/nobody"), call: list, code: codes.PermissionDenied,
			msg: "spiffe://vr-utrecht.crisis.test/user/nobody has no role on this node: an admin can give it one under roles in the node config"},
		{name: "a user is no replica", client: own.svid(t, "/user/editor"), call: apply, code: codes.PermissionDenied,
			msg: "spiffe://vr-utrecht.crisis.test/user/editor may not call ReplicaService/Apply: it needs the role replica"},
		{name: "a replica is no editor", client: own.svid(t, "/node/r1"), call: put, code: codes.PermissionDenied,
			msg: "spiffe://vr-utrecht.crisis.test/node/r1 may not call RecordService/Put: it needs the role editor or admin"},
		{name: "a node SVID of no replica is nothing", client: own.svid(t, "/node/r2"), call: apply, code: codes.PermissionDenied,
			msg: "spiffe://vr-utrecht.crisis.test/node/r2 is not a replica of this node's Raft group: only its voters and non-voters act as replicas"},
		{name: "peer may Describe", client: ncc.svid(t, "/node/r1"), call: describe, code: codes.OK},
		{name: "peer calls a local method", client: ncc.svid(t, "/node/r1"), call: list, code: codes.PermissionDenied,
			msg: "spiffe://ncc.crisis.test/node/r1 is a peer: peers may call only the FederationService"},
		{name: "peer calls the replica service", client: ncc.svid(t, "/node/r1"), call: apply, code: codes.PermissionDenied,
			msg: "spiffe://ncc.crisis.test/node/r1 is a peer: peers may call only the FederationService"},
		{name: "own user calls the federation service", client: own.svid(t, "/user/editor"), call: describe, code: codes.PermissionDenied,
			msg: "spiffe://vr-utrecht.crisis.test/user/editor may not call FederationService/Describe: it needs the role peer"},
		{name: "trust domain known to SPIRE but not a peer", client: coa.svid(t, "/node/r1"), call: describe, code: codes.PermissionDenied,
			msg: "trust domain coa.crisis.test is not a configured peer of this node"},
		{name: "unlisted method", client: own.svid(t, "/user/editor"), call: unlisted, code: codes.PermissionDenied,
			msg: "/knooppunt.v1.RecordService/Nope is not open to any caller"},
		{name: "CA not trusted", client: identitytest.SVID(t, rogue, "/user/editor", identity.SVIDOptions{}), call: list,
			code: codes.Unavailable, handshake: []string{"x509svid: could not verify leaf certificate: x509: certificate signed by unknown authority"}},
		{name: "SVID expired", client: identitytest.SVID(t, own.ca, "/user/editor", identity.SVIDOptions{NotBefore: past, TTL: time.Hour}), call: list,
			code: codes.Unavailable, handshake: []string{"x509: certificate has expired or is not yet valid", " is after "}},
		{name: "SVID not yet valid", client: identitytest.SVID(t, own.ca, "/user/editor", identity.SVIDOptions{NotBefore: future, TTL: time.Hour}), call: list,
			code: codes.Unavailable, handshake: []string{"x509: certificate has expired or is not yet valid", " is before "}},
		{name: "trust domain unknown", client: identitytest.SVID(t, identitytest.NewCA(t, "ggd.crisis.test"), "/node/r1", identity.SVIDOptions{}), call: describe,
			code: codes.Unavailable, handshake: []string{`x509svid: could not get X509 bundle: identity: no bundle for trust domain "ggd.crisis.test"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call(n.dial(t, tc.client))
			st := status.Convert(err)
			if tc.code == codes.OK {
				if err != nil {
					t.Fatalf("call: %v; want it to succeed", err)
				}
				return
			}
			if tc.handshake == nil {
				if st.Code() != tc.code || st.Message() != tc.msg {
					t.Fatalf("call: %v\nwant %s: %s", err, tc.code, tc.msg)
				}
				// A program tells every refusal of who the caller is apart by its reason.
				if why := api.Reason(err); why != api.ReasonRoleDenied {
					t.Errorf("refusal carries reason %q, want %s", why, api.ReasonRoleDenied)
				}
				e := n.log.Wait(t, 5*time.Second, "call refused", identitytest.Refusal(tc.client.ID.String(), tc.msg))
				if e.Str("reason") != tc.msg {
					t.Errorf("logged reason %q, want %q", e.Str("reason"), tc.msg)
				}
				return
			}
			wantHandshakeRefused(t, err, n.Addr().String(), tc.client, own)
			n.log.Wait(t, 5*time.Second, "handshake refused", identitytest.Refusal(tc.client.ID.String(), tc.handshake...))
		})
	}

	// A refused federation call is also in the audit log, under the caller's SPIFFE ID.
	identitytest.Eventually(t, 5*time.Second, "the refused federation call is audited", func() bool {
		resp, err := pb.NewAuditServiceClient(n.local(t)).List(mtlsCtx(t), &pb.ListAuditRequest{Action: db.AuditFederationDenied, Actor: "spiffe://coa.crisis.test/node/r1"})
		return err == nil && len(resp.Entries) > 0 && resp.Entries[0].Subject == "/knooppunt.v1.FederationService/Describe"
	})
	// So is each refused handshake, under the ID its certificate claims, marked unverified.
	for claimed, reason := range map[string]string{
		"spiffe://vr-utrecht.crisis.test/user/editor": "certificate signed by unknown authority",
		"spiffe://ggd.crisis.test/node/r1":            `no bundle for trust domain "ggd.crisis.test"`,
	} {
		identitytest.Eventually(t, 5*time.Second, "the refused handshake of "+claimed+" is audited", func() bool {
			resp, err := pb.NewAuditServiceClient(n.local(t)).List(mtlsCtx(t), &pb.ListAuditRequest{Action: db.AuditHandshakeRefused, Actor: claimed})
			if err != nil || len(resp.Entries) == 0 || resp.Entries[0].Subject != "handshake" {
				return false
			}
			var d struct {
				Reason   string `json:"reason"`
				Verified *bool  `json:"verified"`
			}
			return json.Unmarshal([]byte(resp.Entries[0].Detail), &d) == nil && strings.Contains(d.Reason, reason) && d.Verified != nil && !*d.Verified
		})
	}
}

// TestMTLSWorkloadAPIPicksSpiffeID: when the agent offers the node's process more than one SVID,
// and the first is not a replica's, identity.spiffe_id picks the replica's, and the node serves
// with it. Without the pick the node would take the first and refuse to start.
func TestMTLSWorkloadAPIPicksSpiffeID(t *testing.T) {
	own := newMTLSOrg(t, mtlsOwnTD)
	r1 := own.svid(t, "/node/r1")
	agent := identitytest.ServeWorkloadAPI(t, own.svid(t, "/user/editor"), identitytest.Bundle(own.ca))
	agent.AddSVID(t, r1)
	n := startMTLSNode(t, own, fmt.Sprintf("identity: {source: workloadapi, workload_api: %q, spiffe_id: %q}\n", agent.Addr, r1.ID))
	got := serverSerial(t, n.Addr().String(), own.svid(t, "/user/reader"), identitytest.Bundle(own.ca), own.td)
	if want := r1.Certificates[0].SerialNumber.String(); got != want {
		t.Fatalf("the node serves the certificate with serial %s, want %s, the SVID of %s", got, want, r1.ID)
	}
}

// TestSVIDExpiryIsSaid: status names the SVID the replica serves with and when it expires; a
// renewal is logged, and an SVID that expires with no new one is an ERROR that says what to
// check, as the handshakes it fails are refused by the other side, which would otherwise be the
// only one to say why.
func TestSVIDExpiryIsSaid(t *testing.T) {
	own := newMTLSOrg(t, mtlsOwnTD)
	n := startMTLSNode(t, own, own.filesIdentity()+"feed: {listen: \"127.0.0.1:0\"}\n")
	// The start names the addresses it listens on, as bound, and no empty one (review AA, AA14;
	// review AC, AC11: the feed's port 0 was printed as configured).
	n.log.Wait(t, 5*time.Second, "node serving", func(e identitytest.Entry) bool {
		_, ui := e["ui"]
		return e.Str("listen") == n.Addr().String() && e.Str("feed") == n.FeedAddr().String() && !ui
	})
	st, err := pb.NewStatusServiceClient(n.local(t)).Status(mtlsCtx(t), &pb.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if st.SvidId != "spiffe://"+mtlsOwnTD+"/node/r1" || st.SvidExpiresAt == nil || !st.SvidExpiresAt.AsTime().After(time.Now().Add(time.Hour)) {
		t.Fatalf("status: svid %q expiring %v; want the node's, well ahead", st.SvidId, st.SvidExpiresAt)
	}
	// Another replica's SVID written to its files is refused as at start, at ERROR (review AA, AA7).
	identitytest.WriteSVID(t, own.ca, "/node/r2", own.cert, identity.SVIDOptions{})
	n.log.Wait(t, 10*time.Second, "identity files changed to an SVID of another identity: keeping the last good one; issue this process its own SVID",
		func(e identitytest.Entry) bool { return e["level"] == "ERROR" })
	if again, err := pb.NewStatusServiceClient(n.local(t)).Status(mtlsCtx(t), &pb.StatusRequest{}); err != nil || again.SvidId != st.SvidId {
		t.Fatalf("status after another replica's SVID: %q, %v; want it to serve as %s still", again.GetSvidId(), err, st.SvidId)
	}
	short := identitytest.WriteSVID(t, own.ca, "/node/r1", own.cert, identity.SVIDOptions{TTL: 2 * time.Second})
	n.log.Wait(t, 10*time.Second, "this replica's SVID was renewed", func(e identitytest.Entry) bool { return e.Str("id") == st.SvidId })
	n.log.Wait(t, 15*time.Second, "this replica's SVID expired and no new one came: partners and the other replicas refuse its new connections. "+
		"With SPIRE, check that the agent runs and answers at identity.workload_api (its log says why it issues none); with identity files, issue new ones",
		func(e identitytest.Entry) bool { return e["level"] == "ERROR" })
	st, err = pb.NewStatusServiceClient(n.local(t)).Status(mtlsCtx(t), &pb.StatusRequest{})
	if err != nil || !st.SvidExpiresAt.AsTime().Equal(short.NotAfter) {
		t.Fatalf("status after the short SVID: %v, %v; want its expiry %v", st.GetSvidExpiresAt(), err, short.NotAfter)
	}
}

// TestSVIDRenewalFailureIsSaid: when the SPIRE agent stops renewing the replica's SVID (its
// entry deleted: every stream refused), the node says so at once, long before the SVID expires:
// a warning in the log, a NOT RENEWED reason in status, and a metric to alert on; once the agent
// renews it again, all three clear (review AK, AK1).
func TestSVIDRenewalFailureIsSaid(t *testing.T) {
	own := newMTLSOrg(t, mtlsOwnTD)
	agent := identitytest.ServeWorkloadAPI(t, own.svid(t, "/node/r1"), identitytest.Bundle(own.ca))
	n := startMTLSNode(t, own, fmt.Sprintf("identity: {source: workloadapi, workload_api: %q}\n", agent.Addr))
	statusNow := func() *pb.StatusResponse {
		st, err := pb.NewStatusServiceClient(n.local(t)).Status(mtlsCtx(t), &pb.StatusRequest{})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	failingSince := func(st *pb.StatusResponse) float64 {
		v, ok := metrics.Value("knooppunt_svid_renewal_failing_since_timestamp_seconds", map[string]string{"node": st.NodeName + "/r1"})
		if !ok {
			t.Fatalf("no knooppunt_svid_renewal_failing_since_timestamp_seconds of %s", st.NodeName)
		}
		return v
	}
	if st := statusNow(); st.SvidRenewalFailingSince != nil || failingSince(st) != 0 {
		t.Fatalf("a node its agent serves: renewal failing since %v (%q), metric %v", st.SvidRenewalFailingSince, st.SvidRenewalError, failingSince(st))
	}

	agent.Refuse(status.Error(codes.PermissionDenied, "no identity issued"))
	n.log.Wait(t, 10*time.Second, "the Workload API gives this replica no SVID now: the one it has is not renewed, and partners and replicas refuse it once it expires",
		func(e identitytest.Entry) bool {
			return e["level"] == "WARN" && strings.Contains(e.Str("why"), "issues this process no identity")
		})
	st := statusNow()
	if st.SvidRenewalFailingSince == nil || !strings.Contains(st.SvidRenewalError, "no identity issued") || failingSince(st) != float64(st.SvidRenewalFailingSince.AsTime().Unix()) {
		t.Errorf("status while the agent refuses: since %v, %q; metric %v", st.SvidRenewalFailingSince, st.SvidRenewalError, failingSince(st))
	}
	if st.SvidId == "" {
		t.Error("the replica lost its SVID while the agent refuses: it keeps it until it expires")
	}

	agent.Resume()
	n.log.Wait(t, 10*time.Second, "the Workload API renews this replica's SVID again", func(identitytest.Entry) bool { return true })
	if st := statusNow(); st.SvidRenewalFailingSince != nil || failingSince(st) != 0 {
		t.Errorf("status once the agent renews again: since %v (%q), metric %v", st.SvidRenewalFailingSince, st.SvidRenewalError, failingSince(st))
	}
}

// TestInviteFromTheReplicaThatServesTheBundleEndpoint: a partner pins the inviting replica's ID
// for the bundle endpoint the invitation names; a replica whose bundle_endpoint.url is served by
// another replica (r2, here a server with r2's SVID) refuses to invite, naming the one to run it on.
func TestInviteFromTheReplicaThatServesTheBundleEndpoint(t *testing.T) {
	own := newMTLSOrg(t, mtlsOwnTD)
	l, err := tls.Listen("tcp", "127.0.0.1:0", tlsconfig.TLSServerConfig(own.svid(t, "/node/r2")))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.NotFoundHandler()}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	n := startMTLSNode(t, own, own.filesIdentity()+fmt.Sprintf("advertise: [\"127.0.0.1:7443\"]\nbundle_endpoint: {listen: 127.0.0.1:0, url: \"https://%s\"}\n", l.Addr()))
	_, err = pb.NewPeerServiceClient(n.local(t)).Invite(mtlsCtx(t), &pb.InviteRequest{})
	want := "is served by spiffe://" + mtlsOwnTD + "/node/r2, not by this replica (spiffe://" + mtlsOwnTD + "/node/r1)"
	if st := status.Convert(err); st.Code() != codes.FailedPrecondition || !strings.Contains(st.Message(), want) {
		t.Fatalf("invite on r1 with r2's bundle endpoint: %v, want FailedPrecondition saying %q", err, want)
	}
}

// TestReplicaNeedsItsOwnSVID: a replica r2 whose SVID is r1's (a config copied from r1's, with
// its identity.spiffe_id) does not start: it would act as r1 in Raft, forwarded writes and the
// audit log. The error says which SVID it needs and what to set.
func TestReplicaNeedsItsOwnSVID(t *testing.T) {
	own := newMTLSOrg(t, mtlsOwnTD)
	r1 := own.svid(t, "/node/r1")
	agent := identitytest.ServeWorkloadAPI(t, r1, identitytest.Bundle(own.ca))
	cfgFile := filepath.Join(own.dir, "r2.yaml")
	identitytest.WriteFile(t, cfgFile, []byte(fmt.Sprintf("org: %s\nreplica_id: r2\nlisten: 127.0.0.1:0\nmetrics_addr: \"\"\nidentity: {source: workloadapi, workload_api: %q, spiffe_id: %q}\n",
		own.td, agent.Addr, r1.ID)))
	cfg, err := config.Load(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	n, err := node.Start(ctx, node.Options{DataDir: filepath.Join(own.dir, "r2"), Config: cfg, ConfigFile: cfgFile, Logger: identitytest.NewLog().Logger, Version: "test"})
	if err == nil {
		n.Stop(context.Background())
		t.Fatal("r2 started with r1's SVID")
	}
	if want := "names another replica than this one (replica_id r2): each replica needs its own, spiffe://" + own.td.Name() + "/node/r2: set identity.spiffe_id"; !strings.Contains(err.Error(), want) {
		t.Fatalf("r2 with r1's SVID: %v\nwant it to say %q", err, want)
	}
}

// TestWorkloadIdentityNamedInErrors: a node of the Workload API with no address for it anywhere
// says which setting to give, at once, rather than to register a SPIRE entry after a wait; one
// whose config sets no org, and so is of the default trust domain, is told that it set none
// (review AL, AL2).
func TestWorkloadIdentityNamedInErrors(t *testing.T) {
	own := newMTLSOrg(t, mtlsOwnTD)
	t.Setenv("SPIFFE_ENDPOINT_SOCKET", "")
	agent := identitytest.ServeWorkloadAPI(t, own.svid(t, "/node/r1"), identitytest.Bundle(own.ca))
	for _, tc := range []struct{ name, config, want string }{
		{"no address", "org: " + own.td.Name() + "\nidentity: {source: workloadapi}\n",
			"node: identity.workload_api: missing, and SPIFFE_ENDPOINT_SOCKET is not set either: give the SPIRE agent's socket"},
		{"no org", fmt.Sprintf("identity: {source: workloadapi, workload_api: %q}\n", agent.Addr),
			"is not of this org's trust domain " + config.DefaultOrg + " (" + config.DefaultOrg + " is the org of a config that sets none: set org to your trust domain)"},
	} {
		cfgFile := filepath.Join(own.dir, "node.yaml")
		identitytest.WriteFile(t, cfgFile, []byte("listen: 127.0.0.1:0\nmetrics_addr: \"\"\n"+tc.config))
		cfg, err := config.Load(cfgFile)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		start := time.Now()
		n, err := node.Start(ctx, node.Options{DataDir: filepath.Join(own.dir, "data-"+strings.ReplaceAll(tc.name, " ", "-")), Config: cfg, ConfigFile: cfgFile,
			Logger: identitytest.NewLog().Logger, Version: "test"})
		cancel()
		if err == nil {
			n.Stop(context.Background())
			t.Fatalf("%s: the node started", tc.name)
		}
		if !strings.Contains(err.Error(), tc.want) || time.Since(start) > 10*time.Second {
			t.Errorf("%s: %v (after %s)\nwant it to say %q at once", tc.name, err, time.Since(start).Round(time.Millisecond), tc.want)
		}
	}
}

// TestIdentityFilesNamedInErrors: a node whose identity files cannot serve does not start, and
// says which setting to mend: a bundle that does not verify its own SVID (it would refuse every
// replica, person and app), a certificate file that is not there.
func TestIdentityFilesNamedInErrors(t *testing.T) {
	own := newMTLSOrg(t, mtlsOwnTD)
	other := filepath.Join(own.dir, "other.pem")
	identitytest.WriteBundle(t, other, identitytest.NewCA(t, mtlsOwnTD))
	for _, tc := range []struct{ name, identity, want string }{
		{"another CA's bundle", strings.Replace(own.filesIdentity(), own.bundle, other, 1), "node: identity.bundle_file: bundle " + other + " does not verify the SVID spiffe://" + mtlsOwnTD + "/node/r1"},
		{"no certificate file", strings.Replace(own.filesIdentity(), own.cert+".crt", own.cert+"-gone.crt", 1), "node: identity.cert_file and key_file: SVID " + own.cert + "-gone.crt / " + own.cert + ".key: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfgFile := filepath.Join(own.dir, "node.yaml")
			identitytest.WriteFile(t, cfgFile, []byte(fmt.Sprintf("org: %s\nlisten: 127.0.0.1:0\nmetrics_addr: \"\"\n%s", own.td, tc.identity)))
			cfg, err := config.Load(cfgFile)
			if err != nil {
				t.Fatal(err)
			}
			n, err := node.Start(t.Context(), node.Options{DataDir: filepath.Join(own.dir, "data"), Config: cfg, ConfigFile: cfgFile, Logger: identitytest.NewLog().Logger, Version: "test"})
			if err == nil {
				n.Stop(context.Background())
				t.Fatal("the node started")
			}
			if !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("%v\nwant %s...", err, tc.want)
			}
		})
	}
}

// TestMTLSLocalSocket: the local socket carries no identity and has the role local: it may
// write and read records, but not take an officer's step.
func TestMTLSLocalSocket(t *testing.T) {
	own := newMTLSOrg(t, mtlsOwnTD)
	n := startMTLSNode(t, own, own.filesIdentity())
	conn := n.local(t)
	records := pb.NewRecordServiceClient(conn)
	if _, err := records.Put(mtlsCtx(t), &pb.PutRequest{Record: mtlsRecord("local-1")}); err != nil {
		t.Fatalf("Put on the local socket: %v", err)
	}
	resp, err := records.List(mtlsCtx(t), &pb.ListRequest{})
	if err != nil || len(resp.Records) != 1 || resp.Records[0].Id != "local-1" {
		t.Fatalf("List on the local socket: %v %v", resp, err)
	}
	_, err = pb.NewPhaseServiceClient(conn).Set(mtlsCtx(t), &pb.SetPhaseRequest{})
	want := "local socket may not call PhaseService/Set: it needs the role officer" + localHint
	if st := status.Convert(err); st.Code() != codes.PermissionDenied || st.Message() != want {
		t.Fatalf("Phase Set on the local socket: %v\nwant PermissionDenied: %s", err, want)
	}
	n.log.Wait(t, 5*time.Second, "call refused", identitytest.Refusal("local socket", want))
}

// TestMTLSReloadAppliesToOpenConnections: access follows the config file on connections that
// are already open. A peer removed from the config is refused on its next call over the very
// connection it already has, and a new connection fails the handshake because the peer's bundle
// is gone; a demoted user loses its role the same way; putting the peer back restores access.
func TestMTLSReloadAppliesToOpenConnections(t *testing.T) {
	own := newMTLSOrg(t, mtlsOwnTD)
	ncc := newMTLSOrg(t, mtlsPeerTD)
	roles := fmt.Sprintf("roles:\n  - {id: spiffe://%s/user/anna, role: editor}\n", mtlsOwnTD)
	peers := fmt.Sprintf("peers:\n  - {name: ncc, trust_domain: %s, bundle_file: %s}\n", mtlsPeerTD, ncc.bundle)
	n := startMTLSNode(t, own, own.filesIdentity()+roles+peers)

	peerSVID := ncc.svid(t, "/node/r1")
	peerConn := n.dial(t, peerSVID)
	federation := pb.NewFederationServiceClient(peerConn)
	if _, err := federation.Describe(mtlsCtx(t), &pb.DescribeRequest{}); err != nil {
		t.Fatalf("Describe by a configured peer: %v", err)
	}
	anna := n.dial(t, own.svid(t, "/user/anna"))
	records := pb.NewRecordServiceClient(anna)
	if _, err := records.Put(mtlsCtx(t), &pb.PutRequest{Record: mtlsRecord("before")}); err != nil {
		t.Fatalf("Put by an editor: %v", err)
	}

	n.reconfigure(t, own.filesIdentity()+fmt.Sprintf("roles:\n  - {id: spiffe://%s/user/anna, role: reader}\n", mtlsOwnTD))

	// The peer the file dropped first leaves (it holds nothing here, so that is over at the
	// leader's next check), then is refused on the connection it has open.
	want := "trust domain ncc.crisis.test is not a configured peer of this node"
	identitytest.Eventually(t, 10*time.Second, "the removed peer is refused on its open connection", func() bool {
		_, err := federation.Describe(mtlsCtx(t), &pb.DescribeRequest{})
		st := status.Convert(err)
		return st.Code() == codes.PermissionDenied && st.Message() == want
	})
	// While it leaves, the federation service may refuse it before the access rules do, which
	// log the caller: call until they do (a CI run met the first alone).
	identitytest.Eventually(t, 10*time.Second, "the refusal of the removed peer is logged with its SPIFFE ID", func() bool {
		federation.Describe(mtlsCtx(t), &pb.DescribeRequest{})
		return n.log.Count("call refused", identitytest.Refusal(peerSVID.ID.String(), want)) > 0
	})
	_, err := records.Put(mtlsCtx(t), &pb.PutRequest{Record: mtlsRecord("after")})
	want = "spiffe://vr-utrecht.crisis.test/user/anna may not call RecordService/Put: it needs the role editor or admin"
	if st := status.Convert(err); st.Code() != codes.PermissionDenied || st.Message() != want {
		t.Fatalf("Put on the open connection of a demoted editor: %v\nwant PermissionDenied: %s", err, want)
	}
	// A new connection of the removed peer does not get past the handshake.
	_, err = pb.NewFederationServiceClient(n.dial(t, peerSVID)).Describe(mtlsCtx(t), &pb.DescribeRequest{})
	wantHandshakeRefused(t, err, n.Addr().String(), peerSVID, own)
	n.log.Wait(t, 5*time.Second, "handshake refused", identitytest.Refusal(peerSVID.ID.String(), `no bundle for trust domain "ncc.crisis.test"`))

	n.reconfigure(t, own.filesIdentity()+roles+peers)
	if _, err := federation.Describe(mtlsCtx(t), &pb.DescribeRequest{}); err != nil {
		t.Fatalf("Describe after the peer is configured again: %v", err)
	}
	if _, err := pb.NewFederationServiceClient(n.dial(t, peerSVID)).Describe(mtlsCtx(t), &pb.DescribeRequest{}); err != nil {
		t.Fatalf("Describe on a new connection after the peer is configured again: %v", err)
	}
}

// TestMTLSSVIDRotationUnderLoad: the node's SVID files are re-issued while clients keep calling,
// on long-lived connections and on new ones; the node starts presenting the new certificate and
// not one call fails.
func TestMTLSSVIDRotationUnderLoad(t *testing.T) {
	own := newMTLSOrg(t, mtlsOwnTD)
	n := startMTLSNode(t, own, own.filesIdentity()+fmt.Sprintf("roles:\n  - {prefix: spiffe://%s/user/, role: reader}\n", mtlsOwnTD))
	if _, err := pb.NewRecordServiceClient(n.local(t)).Put(mtlsCtx(t), &pb.PutRequest{Record: mtlsRecord("steady")}); err != nil {
		t.Fatal(err)
	}
	reader := own.svid(t, "/user/reader")
	oldSerial := serverSerial(t, n.Addr().String(), reader, identitytest.Bundle(own.ca), own.td)

	var (
		calls, failed atomic.Int64
		firstErr      atomic.Value
		stop          = make(chan struct{})
		wg            sync.WaitGroup
	)
	get := func(conn *grpc.ClientConn) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := pb.NewRecordServiceClient(conn).Get(ctx, &pb.GetRequest{Id: "steady"}); err != nil {
			failed.Add(1)
			firstErr.CompareAndSwap(nil, err.Error())
		}
		calls.Add(1)
	}
	shared := n.dial(t, reader)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				get(shared)
			}
		}()
	}
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				// A new connection, so a new handshake, for every call.
				conn, err := grpc.NewClient(n.Addr().String(), grpc.WithTransportCredentials(
					identity.ClientCredentials(reader, identitytest.Bundle(own.ca), identity.AuthorizeReplica(own.td))))
				if err != nil {
					failed.Add(1)
					continue
				}
				get(conn)
				conn.Close()
			}
		}()
	}
	stopLoad := sync.OnceFunc(func() { close(stop); wg.Wait() })
	t.Cleanup(stopLoad)

	identitytest.Eventually(t, 10*time.Second, "load is running", func() bool { return calls.Load() >= 50 })
	rotated := identitytest.WriteSVID(t, own.ca, "/node/r1", own.cert, identity.SVIDOptions{})
	identitytest.Eventually(t, 10*time.Second, "the node presents the re-issued SVID", func() bool {
		return serverSerial(t, n.Addr().String(), reader, identitytest.Bundle(own.ca), own.td) == rotated.SerialNumber.String()
	})
	after := calls.Load()
	identitytest.Eventually(t, 10*time.Second, "load goes on after the rotation", func() bool { return calls.Load() >= after+50 })
	stopLoad()

	if rotated.SerialNumber.String() == oldSerial {
		t.Fatal("the re-issued SVID has the old serial")
	}
	if f := failed.Load(); f != 0 {
		t.Fatalf("%d of %d calls failed during the rotation; first: %v", f, calls.Load(), firstErr.Load())
	}
	t.Logf("%d calls, none failed", calls.Load())
}

// TestMTLSBundleEndpoint: a peer's org adds a CA and moves its SVIDs to it. The node learns the
// new bundle from the peer's SPIFFE Federation bundle endpoint, with no config change, and then
// accepts the peer's new SVIDs. When the endpoint goes away, the node keeps the last good bundle
// and counts the failed refreshes.
func TestMTLSBundleEndpoint(t *testing.T) {
	a := newMTLSOrg(t, mtlsPeerTD)
	b := newMTLSOrg(t, mtlsOwnTD)
	na := startMTLSNode(t, a, a.filesIdentity()+"bundle_endpoint: {listen: 127.0.0.1:0, refresh_hint: 100ms}\n")
	if na.BundleEndpointAddr() == "" {
		t.Fatal("node A serves no bundle endpoint")
	}
	// B got A's bundle at onboarding: a copy, which A's rotation does not touch.
	onboarding := filepath.Join(b.dir, "ncc-bundle.pem")
	identitytest.WriteBundle(t, onboarding, a.ca)
	nb := startMTLSNode(t, b, b.filesIdentity()+fmt.Sprintf(`peers:
  - {name: ncc, trust_domain: %s, bundle_file: %s, bundle_endpoint: "https://%s", endpoint_id: "spiffe://%s/node/r1"}
`, mtlsPeerTD, onboarding, na.BundleEndpointAddr(), mtlsPeerTD))
	updated := func(authorities string) func(identitytest.Entry) bool {
		return func(e identitytest.Entry) bool {
			return e.Str("peer_trust_domain") == mtlsPeerTD && e.Str("authorities") == authorities
		}
	}
	nb.log.Wait(t, 10*time.Second, "peer bundle updated", updated("1"))
	// peer show gives the fingerprint of the CAs in force only when they changed since the peer
	// was added (review O, O4: it showed the accepted one while the node trusted another CA).
	inForce := func() *pb.PeerInfo {
		t.Helper()
		p, err := pb.NewPeerServiceClient(nb.local(t)).Get(mtlsCtx(t), &pb.GetPeerRequest{Name: "ncc"})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	if p := inForce(); p.Fingerprint == "" || p.FingerprintInForce != "" {
		t.Fatalf("peer ncc with its onboarded bundle: fingerprint %q, in force %q; want the fingerprint alone", p.Fingerprint, p.FingerprintInForce)
	}

	describe := func(client *x509svid.SVID) error {
		_, err := pb.NewFederationServiceClient(nb.dial(t, client)).Describe(mtlsCtx(t), &pb.DescribeRequest{})
		return err
	}
	newCA := identitytest.NewCA(t, mtlsPeerTD)
	fromNewCA := identitytest.SVID(t, newCA, "/node/r1", identity.SVIDOptions{})
	fromOldCA := a.svid(t, "/node/r1")
	if err := describe(fromOldCA); err != nil {
		t.Fatalf("A's SVID of the onboarded CA: %v", err)
	}
	wantHandshakeRefused(t, describe(fromNewCA), nb.Addr().String(), fromNewCA, b)
	nb.log.Wait(t, 5*time.Second, "handshake refused", identitytest.Refusal(fromNewCA.ID.String(), "certificate signed by unknown authority"))

	// A's org publishes both CAs, then moves A's SVID to the new one.
	identitytest.WriteBundle(t, a.bundle, a.ca, newCA)
	// A change of the CAs is said at WARN, with how many came and went.
	nb.log.Wait(t, 10*time.Second, "peer bundle updated: its CAs changed; compare the fingerprint in force (knooppunt peer show) with the partner's",
		func(e identitytest.Entry) bool {
			return updated("2")(e) && e.Str("added") == "1" && e.Str("removed") == "0"
		})
	if p := inForce(); p.FingerprintInForce == "" || p.FingerprintInForce == p.Fingerprint {
		t.Fatalf("peer ncc after its endpoint added a CA: fingerprint %q, in force %q; want another in force", p.Fingerprint, p.FingerprintInForce)
	}
	if err := describe(fromNewCA); err != nil {
		t.Fatalf("A's SVID of the new CA after B fetched the new bundle: %v", err)
	}
	rotated := identitytest.WriteSVID(t, newCA, "/node/r1", a.cert, identity.SVIDOptions{})
	probe := b.svid(t, "/user/probe")
	identitytest.Eventually(t, 10*time.Second, "A's bundle endpoint presents the SVID of the new CA", func() bool {
		return serverSerial(t, na.BundleEndpointAddr(), probe, identitytest.Bundle(a.ca, newCA), a.td) == rotated.SerialNumber.String()
	})
	// B goes on fetching from the endpoint, now authenticated by the new CA, without errors.
	errorsBefore := mtlsMetric(t, "knooppunt_bundle_refresh_errors_total", "trust_domain", mtlsPeerTD)
	since := float64(time.Now().UnixNano()) / 1e9
	identitytest.Eventually(t, 10*time.Second, "B fetches A's bundle from the endpoint that presents the new SVID", func() bool {
		return mtlsMetric(t, "knooppunt_bundle_last_refresh_timestamp_seconds", "trust_domain", mtlsPeerTD) > since
	})
	if got := mtlsMetric(t, "knooppunt_bundle_refresh_errors_total", "trust_domain", mtlsPeerTD); got != errorsBefore {
		t.Fatalf("refresh errors went from %v to %v while the endpoint was up", errorsBefore, got)
	}

	// The endpoint goes away: B counts the failures and keeps the last good bundle.
	if err := na.stop(); err != nil {
		t.Fatal(err)
	}
	identitytest.Eventually(t, 10*time.Second, "knooppunt_bundle_refresh_errors_total rises", func() bool {
		return mtlsMetric(t, "knooppunt_bundle_refresh_errors_total", "trust_domain", mtlsPeerTD) > errorsBefore
	})
	nb.log.Wait(t, 5*time.Second, "peer bundle refresh failed: keeping the last good bundle", func(e identitytest.Entry) bool {
		return e.Str("peer_trust_domain") == mtlsPeerTD && e.Str("url") == "https://"+na.BundleEndpointAddr()
	})
	for _, svid := range []*x509svid.SVID{fromNewCA, fromOldCA} {
		if err := describe(svid); err != nil {
			t.Fatalf("A's SVID after the bundle endpoint went away: %v", err)
		}
	}
}

// TestPortTakenStopsTheStartBeforeTheSocket: a node whose mTLS or metrics port another process
// holds fails to start with an error that names the address, and it fails before its local
// socket serves, so that a readiness check on the socket never sees a node that peers or
// scrapes cannot reach. A regular file left at the socket's path tells the order apart: reached
// first, it would fail the start with "is not a socket".
func TestPortTakenStopsTheStartBeforeTheSocket(t *testing.T) {
	for _, key := range []string{"listen", "metrics_addr"} {
		t.Run(key, func(t *testing.T) {
			o := newMTLSOrg(t, "taken.crisis.test")
			taken, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer taken.Close()
			dataDir := filepath.Join(o.dir, "data")
			if err := os.MkdirAll(dataDir, 0o700); err != nil {
				t.Fatal(err)
			}
			identitytest.WriteFile(t, filepath.Join(dataDir, node.SocketName), []byte("not a socket"))
			body := fmt.Sprintf("name: taken-%s\norg: %s\n", key, o.td)
			if key == "listen" {
				body += fmt.Sprintf("listen: %s\n%s", taken.Addr(), o.filesIdentity())
			} else {
				body += fmt.Sprintf("metrics_addr: %s\n", taken.Addr())
			}
			cfgFile := filepath.Join(o.dir, "node.yaml")
			identitytest.WriteFile(t, cfgFile, []byte(body))
			cfg, err := config.Load(cfgFile)
			if err != nil {
				t.Fatal(err)
			}
			n, err := node.Start(t.Context(), node.Options{DataDir: dataDir, Config: cfg, Logger: identitytest.NewLog().Logger})
			if err == nil {
				n.Stop(t.Context())
				t.Fatal("a node started on a port another process holds")
			}
			if !strings.Contains(err.Error(), taken.Addr().String()) || strings.Contains(err.Error(), "not a socket") {
				t.Fatalf("error %q does not name the port that is taken, or the socket was reached first", err)
			}
		})
	}
}

// TestReloadSaysWhatNeedsARestart: a config file whose changes a running node cannot take
// (metrics_addr) is reloaded for what it can take, with a warning that names the keys that wait
// for a restart and knooppunt_config_restart_pending at 1; a file that does not load at all sets
// knooppunt_config_file_broken until a good one is back.
func TestReloadSaysWhatNeedsARestart(t *testing.T) {
	own := newMTLSOrg(t, mtlsOwnTD)
	n := startMTLSNode(t, own, own.filesIdentity())
	data, err := os.ReadFile(n.configFile)
	if err != nil {
		t.Fatal(err)
	}
	good := string(data)
	msg := "config reloaded, but some of its changes apply only after a restart: the running node keeps their old values"
	identitytest.WriteFile(t, n.configFile, []byte(strings.Replace(good, `metrics_addr: ""`, `metrics_addr: "127.0.0.1:1"`, 1)))
	identitytest.Eventually(t, 10*time.Second, "the node warns that metrics_addr waits for a restart", func() bool {
		return n.log.Count(msg, func(e identitytest.Entry) bool { return e.Str("restart_for") == "[metrics_addr]" }) == 1
	})
	if v := testutil.ToFloat64(metrics.ConfigRestartPending); v != 1 {
		t.Errorf("knooppunt_config_restart_pending is %g, want 1", v)
	}
	// Status says both, for the operator who runs it first (review AA, AA13).
	status := func() *pb.StatusResponse {
		t.Helper()
		st, err := pb.NewStatusServiceClient(n.local(t)).Status(mtlsCtx(t), &pb.StatusRequest{})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	if st := status(); !slices.Equal(st.RestartFor, []string{"metrics_addr"}) || st.ConfigBroken != "" {
		t.Errorf("status: restart_for %v, config_broken %q; want [metrics_addr] and none", st.RestartFor, st.ConfigBroken)
	}
	identitytest.WriteFile(t, n.configFile, []byte(good+"rol: typo\n"))
	identitytest.Eventually(t, 10*time.Second, "knooppunt_config_file_broken is 1", func() bool { return testutil.ToFloat64(metrics.ConfigBroken) == 1 })
	if st := status(); !strings.Contains(st.ConfigBroken, "rol") || st.ConfigBrokenAt == nil {
		t.Errorf("status of a broken file: config_broken %q at %v; want the error, naming rol", st.ConfigBroken, st.ConfigBrokenAt)
	}
	before := n.log.Count("config reloaded", nil)
	identitytest.WriteFile(t, n.configFile, []byte(good))
	identitytest.Eventually(t, 10*time.Second, "the node reloads the good file", func() bool { return n.log.Count("config reloaded", nil) > before })
	if b, p := testutil.ToFloat64(metrics.ConfigBroken), testutil.ToFloat64(metrics.ConfigRestartPending); b != 0 || p != 0 {
		t.Errorf("after the good file: broken %g, restart pending %g, want 0 and 0", b, p)
	}
	if st := status(); st.ConfigBroken != "" || len(st.RestartFor) != 0 {
		t.Errorf("status after the good file: config_broken %q, restart_for %v; want neither", st.ConfigBroken, st.RestartFor)
	}
}

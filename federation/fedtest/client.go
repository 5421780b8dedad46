package fedtest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3" // reading a node process's database, read-only
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/knooppunt/knooppunt/federation/identity"
	"github.com/knooppunt/knooppunt/federation/invite"
	"github.com/knooppunt/knooppunt/node/clustertest"
	"github.com/knooppunt/knooppunt/node/db"
	"github.com/knooppunt/knooppunt/node/metrics"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

type connEntry struct{ conn *grpc.ClientConn }

// A short reconnect backoff: test clients outlive node restarts and must not wait grpc's
// default second (and more) to notice the node is back.
var quickReconnect = grpc.WithConnectParams(grpc.ConnectParams{
	Backoff:           backoff.Config{BaseDelay: 10 * time.Millisecond, Multiplier: 1.5, MaxDelay: 100 * time.Millisecond},
	MinConnectTimeout: time.Second,
})

func (o *Org) conn(tb testing.TB, key string, dial func() (*grpc.ClientConn, error)) *grpc.ClientConn {
	tb.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	if e, ok := o.conns[key]; ok {
		return e.conn
	}
	c, err := dial()
	if err != nil {
		tb.Fatal(err)
	}
	o.conns[key] = &connEntry{conn: c}
	return c
}

func (o *Org) closeConns() {
	o.mu.Lock()
	defer o.mu.Unlock()
	for k, e := range o.conns {
		e.conn.Close()
		delete(o.conns, k)
	}
}

// Local is a connection to the org's node over its local socket (the Local role: it may write
// records and read everything, but take no officer step).
func (o *Org) Local(tb testing.TB) *grpc.ClientConn {
	return o.conn(tb, "local", func() (*grpc.ClientConn, error) {
		return grpc.NewClient("unix://"+o.SocketPath(), grpc.WithTransportCredentials(insecure.NewCredentials()), quickReconnect)
	})
}

// As is an mTLS connection to the org's node as svid, which must be of the org's trust domain;
// the node must present a replica SVID of the org.
func (o *Org) As(tb testing.TB, svid *x509svid.SVID) *grpc.ClientConn {
	return o.conn(tb, "as:"+svid.ID.String(), func() (*grpc.ClientConn, error) {
		return grpc.NewClient(o.Addr, grpc.WithTransportCredentials(
			identity.ClientCredentials(svid, o.Bundle(), identity.AuthorizeReplica(o.TD))), quickReconnect)
	})
}

// AcceptedBy makes by accept o as a peer through Raft, from an invitation o's replica signed with
// its bundle and address, valid for an hour, as `peer accept` takes it.
func (o *Org) AcceptedBy(tb testing.TB, by *Org) {
	tb.Helper()
	pem, err := o.Bundle().Marshal()
	if err != nil {
		tb.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	file, err := invite.Sign(invite.Invitation{Name: o.Name, TrustDomain: o.TD.Name(), Addresses: []string{o.Addr}, Bundle: string(pem),
		IssuedAt: now, ExpiresAt: now.Add(time.Hour)}, o.Replica)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := pb.NewPeerServiceClient(by.Local(tb)).Accept(Call(tb), &pb.AcceptRequest{Invitation: file, Name: o.Name}); err != nil {
		tb.Fatalf("%s accepts %s: %v", by.Name, o.Name, err)
	}
}

// Call is a context for one call: 10s, within the test.
func Call(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

var ready = grpc.WaitForReady(true)

// Put writes a record on the org's node.
func (o *Org) Put(tb testing.TB, r *pb.Record) *pb.PutResponse {
	tb.Helper()
	resp, err := pb.NewRecordServiceClient(o.Local(tb)).Put(Call(tb), &pb.PutRequest{Record: r}, ready)
	if err != nil {
		tb.Fatalf("%s: put %s: %v", o.Name, r.Id, err)
	}
	return resp
}

// Delete deletes a record on the org's node.
func (o *Org) Delete(tb testing.TB, id string) *pb.PutResponse {
	tb.Helper()
	resp, err := pb.NewRecordServiceClient(o.Local(tb)).Delete(Call(tb), &pb.DeleteRequest{Id: id}, ready)
	if err != nil {
		tb.Fatalf("%s: delete %s: %v", o.Name, id, err)
	}
	return resp
}

// Approve has the first officer propose the policy and the second approve it, each over mTLS
// with their own SVID, and returns the policy's id.
func (o *Org) Approve(tb testing.TB, src string) string {
	tb.Helper()
	p, err := pb.NewPolicyServiceClient(o.As(tb, o.Officers[0])).Propose(Call(tb), &pb.ProposeRequest{Source: []byte(src)}, ready)
	if err != nil {
		tb.Fatalf("%s: propose: %v", o.Name, err)
	}
	p, err = pb.NewPolicyServiceClient(o.As(tb, o.Officers[1])).Approve(Call(tb), &pb.PolicyStepRequest{Id: p.Id}, ready)
	if err != nil {
		tb.Fatalf("%s: approve %s: %v", o.Name, p.GetId(), err)
	}
	return p.Id
}

// Revoke has an officer revoke a policy, and returns what the node answered.
func (o *Org) Revoke(tb testing.TB, id string) *pb.PolicyInfo {
	tb.Helper()
	p, err := pb.NewPolicyServiceClient(o.As(tb, o.Officers[0])).Revoke(Call(tb), &pb.PolicyStepRequest{Id: id, Reason: "test"}, ready)
	if err != nil {
		tb.Fatalf("%s: revoke %s: %v", o.Name, id, err)
	}
	return p
}

// SetPhase has an officer set a crisis's phase.
func (o *Org) SetPhase(tb testing.TB, crisis, phase string) {
	tb.Helper()
	if _, err := pb.NewPhaseServiceClient(o.As(tb, o.Officers[0])).Set(Call(tb), &pb.SetPhaseRequest{Crisis: crisis, Phase: phase, Reason: "test"}, ready); err != nil {
		tb.Fatalf("%s: phase %s %s: %v", o.Name, crisis, phase, err)
	}
}

// Picture is the org's picture of a crisis, without asking the peers whether they answer now
// (skip_peer_check): tests wait on pictures, and each check would be a search that every peer
// audits. PictureResponse.peers is then empty.
func (o *Org) Picture(tb testing.TB, crisis string) *pb.PictureResponse {
	tb.Helper()
	p, err := pb.NewSearchServiceClient(o.Local(tb)).Picture(Call(tb), &pb.PictureRequest{Crisis: crisis, SkipPeerCheck: true}, ready)
	if err != nil {
		tb.Fatalf("%s: picture %s: %v", o.Name, crisis, err)
	}
	return p
}

// WaitCached waits, woken by each of the org's commits and without polling, until its cache
// holds origin's only record of crisis at version or later. Benchmarks time propagation with it.
func (o *Org) WaitCached(ctx context.Context, origin, crisis string, version int64) error {
	cache := o.Node.DB()
	for {
		changed := cache.Changed()
		got, err := cache.ForeignList(ctx, db.ForeignFilter{Origin: origin, Crisis: crisis})
		if err != nil {
			return err
		}
		if len(got) == 1 && got[0].Record.Version >= version {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("%s: version %d of %s's record not cached: %w", o.Name, version, origin, ctx.Err())
		}
	}
}

// PictureIn is the org's picture of a crisis in a mode (nil: actual), as Picture gives it: the
// peers are not asked.
func (o *Org) PictureIn(tb testing.TB, crisis string, mode *pb.Mode) *pb.PictureResponse {
	tb.Helper()
	p, err := pb.NewSearchServiceClient(o.Local(tb)).Picture(Call(tb), &pb.PictureRequest{Crisis: crisis, Mode: mode, SkipPeerCheck: true}, ready)
	if err != nil {
		tb.Fatalf("%s: picture %s in %v: %v", o.Name, crisis, mode, err)
	}
	return p
}

// Exercise starts (or, with close, closes) an exercise on the org's node.
func (o *Org) Exercise(tb testing.TB, name string, close bool) *pb.ExerciseInfo {
	tb.Helper()
	c := pb.NewExerciseServiceClient(o.Local(tb))
	step := c.Start
	if close {
		step = c.Close
	}
	e, err := step(Call(tb), &pb.ExerciseStepRequest{Name: name, Reason: "test"}, ready)
	if err != nil {
		tb.Fatalf("%s: exercise %s (close %v): %v", o.Name, name, close, err)
	}
	return e
}

// ExerciseMode is the mode of reads of an exercise's records.
func ExerciseMode(name string) *pb.Mode { return &pb.Mode{Status: pb.Status_EXERCISE, Exercise: name} }

// Held is what the org's picture of a crisis holds of origin's records: id → version.
func (o *Org) Held(tb testing.TB, crisis, origin string) map[string]int64 {
	tb.Helper()
	out := map[string]int64{}
	for _, e := range o.Picture(tb, crisis).Entries {
		if e.Record.Origin == origin {
			out[e.Record.Id] = e.Record.Version
		}
	}
	return out
}

// Search searches from the org's node and says how long the call took.
func (o *Org) Search(tb testing.TB, req *pb.SearchRequest) (*pb.SearchResponse, time.Duration) {
	tb.Helper()
	start := time.Now()
	resp, err := pb.NewSearchServiceClient(o.Local(tb)).Search(Call(tb), req, ready)
	took := time.Since(start)
	if err != nil {
		tb.Fatalf("%s: search: %v", o.Name, err)
	}
	return resp, took
}

// PeerState searches from the org's node and gives what the search says of the named peer.
func (o *Org) PeerState(tb testing.TB, req *pb.SearchRequest, peer string) *pb.PeerStatus {
	tb.Helper()
	resp, _ := o.Search(tb, req)
	for _, p := range resp.Peers {
		if p.Peer == peer {
			return p
		}
	}
	tb.Fatalf("%s: the search names no state of %s: %v", o.Name, peer, resp.Peers)
	return nil
}

// Audit lists the org's audit entries of one action.
func (o *Org) Audit(tb testing.TB, action string) []*pb.AuditEntry {
	tb.Helper()
	var out []*pb.AuditEntry
	var after int64
	for {
		resp, err := pb.NewAuditServiceClient(o.Local(tb)).List(Call(tb), &pb.ListAuditRequest{Action: action, AfterSeq: after, Limit: 1000}, ready)
		if err != nil {
			tb.Fatalf("%s: audit list: %v", o.Name, err)
		}
		out = append(out, resp.Entries...)
		if len(resp.Entries) < 1000 {
			return out
		}
		after = resp.Entries[len(resp.Entries)-1].Seq
	}
}

// LastSeq is the newest change-feed sequence number of the org's node.
func (o *Org) LastSeq(tb testing.TB) int64 {
	tb.Helper()
	st, err := pb.NewStatusServiceClient(o.Local(tb)).Status(Call(tb), &pb.StatusRequest{}, ready)
	if err != nil {
		tb.Fatalf("%s: status: %v", o.Name, err)
	}
	return st.LastSeq
}

// Peer is the org's PeerInfo of a peer, as `knooppunt peer show` reads it on the local socket.
func (o *Org) Peer(tb testing.TB, name string) *pb.PeerInfo {
	tb.Helper()
	p, err := pb.NewPeerServiceClient(o.Local(tb)).Get(context.Background(), &pb.GetPeerRequest{Name: name})
	if err != nil {
		tb.Fatalf("%s: peer %s: %v", o.Name, name, err)
	}
	return p
}

// Cursor is where the org's subscription to peer resumes: the cursor stored with what it
// delivered. In-process it is read through the node's database; for a process, from its
// database file, read-only.
func (o *Org) Cursor(tb testing.TB, peer string) int64 {
	tb.Helper()
	if o.Node != nil {
		c, _, err := o.Node.DB().PeerCursor(context.Background(), peer)
		if err != nil {
			tb.Fatalf("%s: cursor of %s: %v", o.Name, peer, err)
		}
		return c
	}
	h, err := sql.Open("sqlite3", "file:"+filepath.Join(o.DataDir(), "knooppunt.db")+"?mode=ro&_busy_timeout=5000")
	if err != nil {
		tb.Fatal(err)
	}
	defer h.Close()
	var c int64
	err = h.QueryRow(`SELECT cursor FROM peer_cursors WHERE peer = ? AND exercise = ''`, peer).Scan(&c)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		tb.Fatalf("%s: cursor of %s: %v", o.Name, peer, err)
	}
	return c
}

// Metric is the sum of the samples of a counter or gauge whose labels include labels, from the
// org's /metrics when it serves one, or else from this process's registry. Zero when absent.
func (o *Org) Metric(tb testing.TB, name string, labels map[string]string) float64 {
	tb.Helper()
	var sum float64
	match := func(have map[string]string) bool {
		for k, v := range labels {
			if have[k] != v {
				return false
			}
		}
		return true
	}
	if o.MetricsAddr == "" {
		fams, err := metrics.Registry.Gather()
		if err != nil {
			tb.Fatal(err)
		}
		for _, f := range fams {
			if f.GetName() != name {
				continue
			}
			for _, m := range f.GetMetric() {
				have := map[string]string{}
				for _, l := range m.GetLabel() {
					have[l.GetName()] = l.GetValue()
				}
				if match(have) {
					sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
				}
			}
		}
		return sum
	}
	resp, err := http.Get("http://" + o.MetricsAddr + "/metrics")
	if err != nil {
		tb.Fatalf("%s: metrics: %v", o.Name, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("%s: metrics: %v", o.Name, err)
	}
	// The text format: name{k="v",...} value. Label values in our metrics hold no quotes or commas.
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		series, value, ok := strings.Cut(line, " ")
		if i := strings.LastIndexByte(line, '}'); i > 0 {
			series, value, ok = line[:i+1], strings.TrimSpace(line[i+1:]), true
		}
		if !ok {
			continue
		}
		have := map[string]string{}
		if _, ls, found := strings.Cut(series, "{"); found {
			for _, kv := range strings.Split(strings.TrimSuffix(ls, "}"), ",") {
				if k, v, ok := strings.Cut(kv, "="); ok {
					have[k] = strings.Trim(v, `"`)
				}
			}
		}
		if !match(have) {
			continue
		}
		v, err := strconv.ParseFloat(strings.Fields(value)[0], 64)
		if err != nil {
			tb.Fatalf("%s: metrics line %q: %v", o.Name, line, err)
		}
		sum += v
	}
	return sum
}

// TextIndexed waits until the org's full-text index has taken in every record written so far:
// the index is kept behind the writes, and a benchmark that times reads right after a load would
// time the indexer's backlog with them.
func (o *Org) TextIndexed(tb testing.TB) {
	tb.Helper()
	Eventually(tb, time.Minute, o.Name+"'s full-text index takes every record in", func() (bool, string) {
		left, err := o.Node.DB().TextPending(context.Background())
		if err != nil {
			tb.Fatal(err)
		}
		return left == 0, fmt.Sprintf("%d records left", left)
	})
}

// Eventually waits, up to within, until cond holds, checking every 10ms. When it does not, the
// test fails with what and the last state cond described.
func Eventually(tb testing.TB, within time.Duration, what string, cond func() (bool, string)) {
	tb.Helper()
	clustertest.Eventually(tb, within, what, cond)
}

// Sitrep is a situation report of a crisis, region NL.
func Sitrep(id, crisis string, class pb.Classification, title string) *pb.Record {
	return &pb.Record{Id: id, Kind: "sitrep", Crisis: crisis, Region: "NL", Classification: class,
		Body: []byte(fmt.Sprintf(`{"title":%q,"summary":"fedtest"}`, title))}
}

// Describe renders id → version for failure messages, sorted.
func Describe(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s@%d ", k, m[k])
	}
	return "{" + strings.TrimSpace(b.String()) + "}"
}

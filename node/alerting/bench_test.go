package alerting_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knooppunt/knooppunt/federation/fedtest"
	"github.com/knooppunt/knooppunt/node"
	"github.com/knooppunt/knooppunt/node/alerting"
	"github.com/knooppunt/knooppunt/node/config"
	"github.com/knooppunt/knooppunt/node/record"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// Sizes of BenchmarkRulesAfterChange: the 25 peers, 10,000 cached records and 100 rules.
const (
	benchPeers   = 25
	benchCached  = 10000
	benchRules   = 100
	benchRegions = 25
)

// BenchmarkRulesAfterChange measures what the leader spends evaluating 100 stored rules after a
// change, on a node that caches 10,000 records of 25 peers for one crisis, against one Picture
// call for that crisis on the same node (the target: at most 1×). The rules are a quarter each
// of ratio of sums, delta of a sum over 24h, count over 6h, and a condition on a record's fields,
// none limited to regions, so each is evaluated in all 25 regions. An iteration writes one own
// record (the change), runs one evaluation of every rule (Evaluator.Tick, as the leader does),
// and, interleaved, one Picture call over the local socket. Metrics:
//
//	tick-ms     one evaluation of the 100 rules
//	picture-ms  one Picture call
//	x-picture   tick-ms ÷ picture-ms (target ≤ 1)
func BenchmarkRulesAfterChange(b *testing.B) {
	n, org, peers := startFederatedNode(b)
	ctx := context.Background()
	loadCache(b, n, peers)
	for i := range benchRules {
		var when string
		switch i % 4 {
		case 0:
			when = fmt.Sprintf(`ratio(sum("shelter.capacity", "beds_free"), sum("shelter.capacity", "beds_total")) < 0.0%d`, 1+i%9)
		case 1:
			when = fmt.Sprintf(`delta(sum("shelter.capacity", "beds_free"), duration("24h")) < -%d`, 100+i)
		case 2:
			when = fmt.Sprintf(`count("signal", duration("6h")) >= %d`, 50+i)
		default:
			when = fmt.Sprintf(`records("sitrep").filter(r, r.severity == "critical").size() >= %d`, 10+i)
		}
		src := fmt.Sprintf("name: rule-%03d\nseverity: minor\ncrisis: oekraine\nwhen: '%s'\n", i, when)
		if _, err := n.Store().Apply(ctx, &pb.Command{Cmd: &pb.Command_RuleStep{RuleStep: &pb.RuleStep{Name: fmt.Sprintf("rule-%03d", i),
			Source: []byte(src), By: "spiffe://bench.crisis.test/user/editor", At: timestamppb.Now(), Severity: "minor"}}}); err != nil {
			b.Fatal(err)
		}
	}
	kinds, err := record.NewKinds(record.DemoKinds())
	if err != nil {
		b.Fatal(err)
	}
	e := alerting.New(alerting.Config{Store: n.Store(), DB: n.DB(), Kinds: kinds, Org: org, Every: time.Second,
		Retention: func() time.Duration { return 90 * 24 * time.Hour }, Logger: slog.New(slog.DiscardHandler)})
	conn, err := grpc.NewClient("unix://"+n.SocketPath(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(node.MaxMessageBytes)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	search := pb.NewSearchServiceClient(conn)
	picture := func() {
		p, err := search.Picture(ctx, &pb.PictureRequest{Crisis: "oekraine", SkipPeerCheck: true})
		if err != nil {
			b.Fatal(err)
		}
		// The peers' copies are in the picture only as the copies of configured peers.
		if len(p.Sources) != benchPeers+1 {
			b.Fatalf("the picture has %d sources, want %d", len(p.Sources), benchPeers+1)
		}
	}
	at := time.Now().Truncate(time.Second)
	change := func(i int) {
		if _, err := n.Store().Write(ctx, []*pb.Record{{Id: "own-goes", Kind: "shelter.capacity", Crisis: "oekraine", Region: "VR19",
			Classification: pb.Classification_INTERNAL, Body: fmt.Appendf(nil, `{"municipality":"Goes","beds_total":100,"beds_free":%d}`, i%100)}}); err != nil {
			b.Fatal(err)
		}
	}
	// Warm up both: the first evaluation rebuilds every rule's state; the first Picture call
	// warms the read handle's pages.
	change(0)
	if err := e.Tick(ctx, at); err != nil {
		b.Fatal(err)
	}
	picture()

	var tick, pic time.Duration
	i := 0
	for b.Loop() {
		i++
		b.StopTimer()
		change(i)
		at = at.Add(time.Second)
		b.StartTimer()
		t0 := time.Now()
		if err := e.Tick(ctx, at); err != nil {
			b.Fatal(err)
		}
		tick += time.Since(t0)
		b.StopTimer()
		t0 = time.Now()
		picture()
		pic += time.Since(t0)
		b.StartTimer()
	}
	b.ReportMetric(float64(tick.Microseconds())/float64(i)/1000, "tick-ms")
	b.ReportMetric(float64(pic.Microseconds())/float64(i)/1000, "picture-ms")
	b.ReportMetric(float64(tick)/float64(pic), "x-picture")
}

// loadCache caches 10,000 records of the 25 peers through Raft, as their subscriptions would:
// shelter capacity, sitreps and signals, spread over 25 regions, over the last 48 hours.
func loadCache(b *testing.B, n *node.Node, peers []string) {
	ctx := context.Background()
	now := time.Now()
	per := benchCached / len(peers)
	for p, origin := range peers {
		c := &pb.CacheForeign{Peer: origin, Origin: origin, Cursor: int64(per), At: timestamppb.New(now)}
		for j := range per {
			region := fmt.Sprintf("VR%02d", 1+(p*per+j)%benchRegions)
			r := &pb.Record{Id: fmt.Sprintf("r%04d", j), Origin: origin, Crisis: "oekraine", Region: region, Classification: pb.Classification_INTERNAL,
				Version: 1, UpdatedAt: timestamppb.New(now.Add(-time.Duration(j%2880) * time.Minute))}
			switch j % 10 {
			case 0:
				r.Kind, r.Body = "sitrep", fmt.Appendf(nil, `{"title":"beeld %d","summary":"s","severity":%q}`, j, []string{"low", "medium", "high", "critical"}[j%4])
			case 1:
				r.Kind, r.Body = "signal", fmt.Appendf(nil, `{"summary":"signaal %d","confidence":0.5}`, j)
			default:
				r.Kind, r.Body = "shelter.capacity", fmt.Appendf(nil, `{"municipality":"m-%s-%d","beds_total":100,"beds_free":%d}`, origin, j, j%100)
			}
			c.Upserts = append(c.Upserts, &pb.SharedRecord{Record: r})
		}
		if _, err := n.Store().Apply(ctx, &pb.Command{Cmd: &pb.Command_CacheForeign{CacheForeign: c}}); err != nil {
			b.Fatal(err)
		}
	}
}

// startFederatedNode starts, in-process, the first org of a federation of 26 whose other 25 are
// its peers, for the picture to take their copies as a live source's; the peers do not run
// (the benchmark's Picture calls skip the peer check). It returns the node, its org and the
// peers' trust domains.
func startFederatedNode(b *testing.B) (n *node.Node, org string, peers []string) {
	f := fedtest.Prepare(b, fedtest.Options{Orgs: benchPeers + 1,
		// The node's own evaluator stays out of the way: the benchmark runs one of its own.
		Extra: func(string) string { return "rules:\n  every: 1000h\n" }})
	a := f.Orgs[0]
	a.Start(b)
	for _, o := range f.Orgs[1:] {
		peers = append(peers, o.TD.Name())
	}
	return a.Node, a.TD.Name(), peers
}

// startNode starts a single-replica node on a temporary directory, for the evaluator of a test
// or benchmark.
func startNode(b testing.TB) *node.Node {
	b.Helper()
	dir, err := os.MkdirTemp("", "kp-rules-bench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	cfg := config.Default()
	cfg.MetricsAddr = ""
	// The node's own evaluator stays out of the way: the benchmark or test runs one of its own.
	cfg.Rules.Every = 1000 * time.Hour
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, err := node.Start(ctx, node.Options{DataDir: dir, Config: cfg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		n.Stop(ctx)
	})
	return n
}

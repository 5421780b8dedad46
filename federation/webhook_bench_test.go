package federation_test

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/knooppunt/knooppunt/federation/fedtest"
	"github.com/knooppunt/knooppunt/node/webhook"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// BenchmarkWebhookDelivery measures, in one run and for the same changes, a webhook's delivery
// against propagation to a peer. Two full nodes, a → r, with a policy for sitrep; a has a
// webhook to a receiver on loopback that verifies each signature. One iteration is one Put of a
// new version at a; both clocks start at its commit (the record's updated_at). webhook-* stops
// when the receiver has the version, verified; the rest stops when r's cache shows it.
// ratio-p99 is webhook p99 ÷ propagation p99.
func BenchmarkWebhookDelivery(b *testing.B) {
	opts := benchOpts
	opts.Orgs = 2
	f := fedtest.Start(b, opts)
	a, r := f.Orgs[0], f.Orgs[1]
	a.Approve(b, policyDoc("to-r", spiffeOf(r), "sitrep", "internal", ""))

	type arrival struct {
		version int64
		at      time.Time
	}
	arrived := make(chan arrival, 1024)
	var secret webhook.Secret
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		if _, err := secret.Verify(req.Header, body, time.Now(), 0); err != nil {
			b.Errorf("delivery does not verify: %v", err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var ev webhook.Event
		var rec struct{ Version string }
		json.Unmarshal(body, &ev)
		json.Unmarshal(ev.Data.Record, &rec)
		v, _ := strconv.ParseInt(rec.Version, 10, 64)
		arrived <- arrival{v, time.Now()}
		w.WriteHeader(http.StatusNoContent)
	})}
	go srv.Serve(lis)
	b.Cleanup(func() { srv.Close() })
	resp, err := pb.NewWebhookServiceClient(a.Local(b)).Add(fedtest.Call(b), &pb.AddWebhookRequest{Url: "http://" + lis.Addr().String() + "/hook", Kinds: []string{"sitrep"}})
	if err != nil {
		b.Fatal(err)
	}
	if secret, err = webhook.ParseSecret(resp.Secret); err != nil {
		b.Fatal(err)
	}

	visible := cacheShows(r, a)
	delivered := func(version int64) time.Time {
		for {
			select {
			case got := <-arrived:
				if got.version == version {
					return got.at
				}
			case <-time.After(5 * time.Second):
				b.Fatalf("the webhook did not bring version %d", version)
			}
		}
	}
	put := a.Put(b, fedtest.Sitrep("p", "bench", pb.Classification_INTERNAL, "v"))
	delivered(put.Version)
	if err := visible(fedtest.Call(b), put.Version); err != nil {
		b.Fatal(err)
	}
	var peerLat, hookLat []time.Duration
	for b.Loop() {
		put := a.Put(b, fedtest.Sitrep("p", "bench", pb.Classification_INTERNAL, "v"))
		committed := put.UpdatedAt.AsTime()
		if err := visible(fedtest.Call(b), put.Version); err != nil {
			b.Fatal(err)
		}
		peerLat = append(peerLat, time.Since(committed))
		hookLat = append(hookLat, delivered(put.Version).Sub(committed))
	}
	peer := percentiles(b, peerLat, "")
	hook := percentiles(b, hookLat, "webhook-")
	if peer > 0 {
		b.ReportMetric(hook/peer, "ratio-p99")
	}
}

package ui_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/knooppunt/knooppunt/federation/fedtest"
	"github.com/knooppunt/knooppunt/node/db"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// The web interface's two figures in docs/performance.md, each a ratio measured in one run:
//
//   - BenchmarkPicturePage: the picture page's time (a GET on loopback, signed in) at p95, with 25
//     peers and 10,000 cached records, ÷ the SearchService.Picture call it wraps, over the local
//     socket, in the same run (target ≤ 5×);
//   - BenchmarkLiveEvent: a record's commit at its source to the event on an open picture stream
//     of the recipient's web interface, at p99, ÷ the same commit to the recipient's cache
//     (target ≤ 2×).

var uiBenchOpts = fedtest.Options{Heartbeat: 5 * time.Second, IdleTimeout: 20 * time.Second, Reevaluate: 30 * time.Second,
	PeerRequestsPerSecond: 1e6, SearchRate: rate.Inf}

// quantile is the q-quantile of samples, which it sorts.
func quantile(samples []time.Duration, q float64) time.Duration {
	slices.Sort(samples)
	i := int(q*float64(len(samples)) + 0.5)
	return samples[min(max(i-1, 0), len(samples)-1)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// uiFederation starts org "a" with a web interface and n peers, each sharing its records with a,
// and signs officer-a of a in.
func uiFederation(b *testing.B, n int) (*fedtest.Federation, *browser, string) {
	b.Helper()
	p := newProvider(b)
	secret := secretFile(b, fedtest.ShortDir(b))
	opts := uiBenchOpts
	opts.Orgs = n + 1
	opts.PeersOf = fedtest.Hub(n)
	opts.Extra = func(name string) string {
		if name != "a" {
			return ""
		}
		return fmt.Sprintf("ui:\n  listen: \"127.0.0.1:0\"\n  oidc:\n    issuer: %s\n    client_id: %s\n    client_secret_file: %s\n", p.issuer, testClientID, secret)
	}
	f := fedtest.Start(b, opts)
	base := "http://" + f.Orgs[0].Node.UIAddr().String()
	p.serve(b, base)
	br := newBrowser(b)
	p.signInAs("officer-a")
	if resp, page := br.get(b, base+"/"); resp.StatusCode != http.StatusOK {
		b.Fatalf("sign in: %d\n%s", resp.StatusCode, page)
	}
	a := f.Orgs[0]
	for _, o := range f.Orgs[1:] {
		o.Approve(b, fmt.Sprintf("name: to-a\npurpose: bench\nrecipients: [spiffe://%s]\nkinds: [shelter.capacity, sitrep]\nmax_classification: internal\n", a.TD.Name()))
	}
	return f, br, base
}

// BenchmarkPicturePage: 25 peers share 400 shelter records each (10,000 in a's cache); the
// picture page of a, and the Picture call it wraps, are timed in turns.
func BenchmarkPicturePage(b *testing.B) {
	const peers, each = 25, 400
	f, br, base := uiFederation(b, peers)
	a := f.Orgs[0]
	for i, o := range f.Orgs[1:] {
		recs := make([]*pb.Record, 0, each)
		for j := range each {
			recs = append(recs, &pb.Record{Id: fmt.Sprintf("s%d", j), Kind: "shelter.capacity", Crisis: "bench", Region: fmt.Sprintf("VR%02d", (i+j)%25+1),
				Classification: pb.Classification_INTERNAL, Body: fmt.Appendf(nil, `{"municipality":"Plaats %d-%d","beds_total":%d,"beds_free":%d}`, i, j, 50+j%7, j%11)})
		}
		if _, err := pb.NewRecordServiceClient(o.Local(b)).PutBatch(fedtest.Call(b), &pb.PutBatchRequest{Records: recs}); err != nil {
			b.Fatal(err)
		}
	}
	fedtest.Eventually(b, 120*time.Second, "a holds 10,000 cached records", func() (bool, string) {
		got, err := a.Node.DB().ForeignList(context.Background(), db.ForeignFilter{Crisis: "bench", Limit: 20000})
		return err == nil && len(got) == peers*each, fmt.Sprintf("%d held", len(got))
	})
	sc := pb.NewSearchServiceClient(a.Local(b))
	page := base + "/?crisis=bench"
	for range 3 {
		br.get(b, page)
		sc.Picture(fedtest.Call(b), &pb.PictureRequest{Crisis: "bench"})
	}
	var pageT, callT []time.Duration
	for b.Loop() {
		start := time.Now()
		resp, body := br.get(b, page)
		pageT = append(pageT, time.Since(start))
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Nederland (totaal)") {
			b.Fatalf("picture page: %d", resp.StatusCode)
		}
		start = time.Now()
		pic, err := sc.Picture(fedtest.Call(b), &pb.PictureRequest{Crisis: "bench"})
		callT = append(callT, time.Since(start))
		if err != nil || len(pic.Entries) != peers*each {
			b.Fatalf("Picture: %v, %d entries", err, len(pic.GetEntries()))
		}
	}
	p, c := quantile(pageT, 0.95), quantile(callT, 0.95)
	b.ReportMetric(ms(p), "page-p95-ms")
	b.ReportMetric(ms(c), "picture-p95-ms")
	b.ReportMetric(float64(p)/float64(c), "page/picture")
}

// BenchmarkLiveEvent: a changes a sitrep shared with its peer r, whose web interface has a's
// picture stream open; each change is timed from its commit to r's cache and to the event.
func BenchmarkLiveEvent(b *testing.B) {
	f, br, base := uiFederation(b, 1)
	// The stream is on a; the source is its peer.
	r, src := f.Orgs[0], f.Orgs[1]
	src.Put(b, fedtest.Sitrep("p", "bench", pb.Classification_INTERNAL, "v"))
	visible := func(ctx context.Context, version int64) error {
		return r.WaitCached(ctx, src.TD.Name(), "bench", version)
	}
	if err := visible(fedtest.Call(b), 1); err != nil {
		b.Fatal(err)
	}
	// The picture's stream, as the page's script opens it, with the digest of the page.
	_, page := br.get(b, base+"/?crisis=bench")
	i := strings.Index(page, `data-live="`)
	if i < 0 {
		b.Fatal("the picture page has no live stream")
	}
	live := page[i+len(`data-live="`):]
	live = strings.ReplaceAll(live[:strings.Index(live, `"`)], "&amp;", "&")
	j := strings.Index(page, `data-digest="`)
	digest := page[j+len(`data-digest="`):]
	live += "&sinds=" + digest[:strings.Index(digest, `"`)]
	ctx, cancel := context.WithCancel(b.Context())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+live, nil)
	stream := &http.Client{Jar: br.Jar}
	resp, err := stream.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		b.Fatalf("open the stream: %v %v", err, resp)
	}
	defer resp.Body.Close()
	events := make(chan time.Time, 1024)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if sc.Text() == "event: beeld" {
				events <- time.Now()
			}
		}
		close(events)
	}()
	var cacheLat, eventLat []time.Duration
	for b.Loop() {
		put := src.Put(b, fedtest.Sitrep("p", "bench", pb.Classification_INTERNAL, "v"))
		if err := visible(fedtest.Call(b), put.Version); err != nil {
			b.Fatal(err)
		}
		seen := time.Now()
		committed := put.UpdatedAt.AsTime()
		select {
		case at, ok := <-events:
			if !ok {
				b.Fatal("the stream ended")
			}
			cacheLat = append(cacheLat, seen.Sub(committed))
			eventLat = append(eventLat, at.Sub(committed))
		case <-time.After(10 * time.Second):
			b.Fatalf("no event for version %d", put.Version)
		}
		// The stream looks at most every 200 ms: the next change waits for it, as a person's
		// edits a few seconds apart would.
		time.Sleep(250 * time.Millisecond)
	}
	b.ReportMetric(ms(quantile(cacheLat, 0.5)), "cache-p50-ms")
	b.ReportMetric(ms(quantile(eventLat, 0.5)), "event-p50-ms")
	c, e := quantile(cacheLat, 0.99), quantile(eventLat, 0.99)
	b.ReportMetric(ms(c), "cache-p99-ms")
	b.ReportMetric(ms(e), "event-p99-ms")
	b.ReportMetric(float64(e)/float64(c), "event/cache")
}

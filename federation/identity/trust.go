package identity

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/federation"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/knooppunt/knooppunt/node/metrics"
)

var (
	bundleRefreshErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "knooppunt", Name: "bundle_refresh_errors_total",
		Help: "Failed fetches of a peer's trust bundle from its bundle endpoint; the last good bundle stays in use.",
	}, []string{"trust_domain"})
	bundleRefreshed = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "knooppunt", Name: "bundle_last_refresh_timestamp_seconds",
		Help: "When a peer's bundle was last fetched successfully.",
	}, []string{"trust_domain"})
)

func init() {
	metrics.Registry.MustRegister(bundleRefreshErrors, bundleRefreshed)
}

// TrustStore holds the bundles a node verifies others with: its own trust domain's, from its
// Source, and each peer's, set from the file handed over at onboarding and then kept current
// through the peer's bundle endpoint. A trust domain that is neither falls back to the Source,
// which under SPIRE also carries the bundles SPIRE federates with.
type TrustStore struct {
	own     Source
	mu      sync.RWMutex
	peers   map[spiffeid.TrustDomain]*x509bundle.Bundle
	fetches map[spiffeid.TrustDomain]BundleFetch
}

// BundleFetch is how the refresh of a peer's bundle from its bundle endpoint fares: the last
// fetch that succeeded, and, while the latest ones fail, since when and why; when the last fetch
// was tried, and when the next is due.
type BundleFetch struct {
	OK, FailingSince time.Time
	Err              string
	Last, Next       time.Time
	// InForce is the peer's bundle this replica trusts now: the last good one fetched, or the
	// one it was given (nil before either).
	InForce *x509bundle.Bundle
}

// NewTrustStore returns a store over the node's own Source.
func NewTrustStore(own Source) *TrustStore {
	return &TrustStore{own: own, peers: map[spiffeid.TrustDomain]*x509bundle.Bundle{}, fetches: map[spiffeid.TrustDomain]BundleFetch{}}
}

// Fetch says how the refresh of td's bundle fares; ok is false when none was tried.
func (t *TrustStore) Fetch(td spiffeid.TrustDomain) (f BundleFetch, ok bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	f, ok = t.fetches[td]
	f.InForce = t.peers[td]
	return f, ok
}

// noteFetch records the outcome of a fetch of td's bundle at now: err nil for one that succeeded.
func (t *TrustStore) noteFetch(td spiffeid.TrustDomain, now time.Time, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.fetches[td]
	f.Last = now
	if err == nil {
		f.OK, f.FailingSince, f.Err = now, time.Time{}, ""
	} else {
		if f.FailingSince.IsZero() {
			f.FailingSince = now
		}
		f.Err = err.Error()
	}
	t.fetches[td] = f
}

// noteNext records when the next fetch of td's bundle is due.
func (t *TrustStore) noteNext(td spiffeid.TrustDomain, next time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.fetches[td]
	f.Next = next
	t.fetches[td] = f
}

// GetX509BundleForTrustDomain implements x509bundle.Source.
func (t *TrustStore) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	t.mu.RLock()
	b, ok := t.peers[td]
	t.mu.RUnlock()
	if ok {
		return b, nil
	}
	b, err := t.own.GetX509BundleForTrustDomain(td)
	if err != nil {
		return nil, fmt.Errorf("%w %q", ErrNoBundle, td)
	}
	return b, nil
}

// SetPeerBundle sets a peer's bundle.
func (t *TrustStore) SetPeerBundle(b *x509bundle.Bundle) {
	t.mu.Lock()
	t.peers[b.TrustDomain()] = b
	t.mu.Unlock()
}

// RemovePeer forgets a peer's bundle, so its SVIDs no longer verify, and how its refresh fared,
// its metrics included: a removed peer's refresh time, frozen, would fire a stale-bundle alert
// until the next restart (review AI, AI1).
func (t *TrustStore) RemovePeer(td spiffeid.TrustDomain) {
	t.mu.Lock()
	delete(t.peers, td)
	delete(t.fetches, td)
	t.mu.Unlock()
	bundleRefreshed.DeleteLabelValues(td.String())
	bundleRefreshErrors.DeleteLabelValues(td.String())
}

// HasPeer reports whether a peer bundle is set for td.
func (t *TrustStore) HasPeer(td spiffeid.TrustDomain) bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	_, ok := t.peers[td]
	return ok
}

// BundleEndpoint serves the node's own trust bundle under the SPIFFE Federation bundle endpoint
// protocol, authenticated with the node's SVID (the https_spiffe profile).
type BundleEndpoint struct {
	srv *http.Server
	lis net.Listener
}

// ServeBundleEndpoint serves td's bundle from src on lis, announcing refreshHint to peers.
func ServeBundleEndpoint(lis net.Listener, td spiffeid.TrustDomain, src Source, refreshHint time.Duration, log *slog.Logger) (*BundleEndpoint, error) {
	h, err := federation.NewHandler(td, hintSource{src: src, hint: refreshHint})
	if err != nil {
		return nil, fmt.Errorf("identity: bundle endpoint: %w", err)
	}
	tlsCfg := tlsconfig.TLSServerConfig(src)
	tlsCfg.MinVersion = tls.VersionTLS12
	e := &BundleEndpoint{
		// Anyone may connect: a connection that idles, or reads its answer slowly, is closed.
		srv: &http.Server{Handler: h, TLSConfig: tlsCfg, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
			WriteTimeout: 10 * time.Second, IdleTimeout: time.Minute, MaxHeaderBytes: 16 << 10,
			ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)},
		lis: lis,
	}
	go func() {
		if err := e.srv.ServeTLS(lis, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("bundle endpoint stopped", "err", err)
		}
	}()
	return e, nil
}

// Addr is where the endpoint listens.
func (e *BundleEndpoint) Addr() string { return e.lis.Addr().String() }

// Close stops the endpoint.
func (e *BundleEndpoint) Close(ctx context.Context) error { return e.srv.Shutdown(ctx) }

// hintSource adapts a Source to spiffebundle.Source, adding the refresh hint.
type hintSource struct {
	src  Source
	hint time.Duration
}

func (h hintSource) GetBundleForTrustDomain(td spiffeid.TrustDomain) (*spiffebundle.Bundle, error) {
	xb, err := h.src.GetX509BundleForTrustDomain(td)
	if err != nil {
		return nil, err
	}
	b := spiffebundle.FromX509Bundle(xb)
	if h.hint > 0 {
		b.SetRefreshHint(h.hint)
	}
	return b, nil
}

// PeerEndpoint is where a peer serves its bundle.
type PeerEndpoint struct {
	TrustDomain spiffeid.TrustDomain
	// URL is the peer's bundle endpoint, such as https://ncc.example:8443.
	URL string
	// EndpointID is the SPIFFE ID the endpoint's server presents.
	EndpointID spiffeid.ID
	// DefaultRefresh applies when the peer gives no refresh hint. Default defaultRefresh.
	DefaultRefresh time.Duration
	// FetchTimeout bounds one fetch. Default 30 seconds.
	FetchTimeout time.Duration
}

const (
	// defaultRefresh is the wait between fetches when neither the peer nor PeerEndpoint gives one.
	defaultRefresh = 5 * time.Minute
	// firstRetry is the wait after a fetch that failed, doubling with each further failure in a
	// row up to the refresh: a miss while the peer's endpoint does not listen yet (partners
	// that start together) or restarts is made good in seconds, not after a whole refresh, and an
	// endpoint that stays down is soon tried no more often than a healthy one.
	firstRetry = 5 * time.Second
)

// maxBundleBytes bounds one fetch of a peer's bundle, as PeerEndpoint.FetchTimeout bounds its
// time: an endpoint that answers without end, or never, must neither fill the memory of every
// replica nor stop the refresh for good.
const maxBundleBytes = 1 << 20

// WatchPeerBundle keeps a peer's bundle in t current until ctx ends. The endpoint is
// authenticated with the bundle t already holds for the peer. A failed fetch is logged and
// counted, the last good bundle stays in use, and the next fetch comes sooner (NextRefresh). The
// loop is go-spiffe's federation.WatchBundle, with each fetch bounded in time (FetchTimeout) and
// size (maxBundleBytes).
func WatchPeerBundle(ctx context.Context, t *TrustStore, p PeerEndpoint, log *slog.Logger) {
	w := &peerWatcher{t: t, p: p, log: log.With("peer_trust_domain", p.TrustDomain.String())}
	client := &http.Client{
		Timeout:   cmp.Or(p.FetchTimeout, 30*time.Second),
		Transport: &http.Transport{TLSClientConfig: tlsconfig.TLSClientConfig(t, tlsconfig.AuthorizeID(p.EndpointID))},
	}
	defer client.CloseIdleConnections()
	latest := &spiffebundle.Bundle{}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		b, err := fetchBundle(ctx, client, p)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			w.OnError(err)
		case !latest.Equal(b):
			w.OnUpdate(b)
			latest = b
		}
		hint, _ := latest.RefreshHint()
		timer.Reset(w.NextRefresh(hint))
	}
}

// fetchBundle gets a peer's bundle from its endpoint, at most maxBundleBytes of it.
func fetchBundle(ctx context.Context, client *http.Client, p PeerEndpoint) (*spiffebundle.Bundle, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL, http.NoBody)
	if err != nil {
		return nil, fmt.Errorf("bundle endpoint %q: %w", p.URL, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("could not GET the bundle: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the bundle endpoint answered %s", resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBundleBytes+1))
	if err != nil {
		return nil, fmt.Errorf("could not read the bundle: %w", err)
	}
	if len(data) > maxBundleBytes {
		return nil, fmt.Errorf("the bundle endpoint sent more than %d bytes: no bundle is that large", maxBundleBytes)
	}
	return spiffebundle.Parse(p.TrustDomain, data)
}

type peerWatcher struct {
	t   *TrustStore
	p   PeerEndpoint
	log *slog.Logger
	// failed says the fetch that just ended failed; failures, kept by NextRefresh, how many in a
	// row have. The loop calls OnUpdate only when the bundle changed, but NextRefresh after every
	// fetch, so that is where a successful fetch of an unchanged bundle is seen. The watch loop
	// calls all three from one goroutine.
	failed   bool
	failures int
}

// NextRefresh says how long to wait for the next fetch, after one that just ended: the refresh
// (hint, else PeerEndpoint.DefaultRefresh, else defaultRefresh) after a success; after failures
// in a row, firstRetry doubled for each but the first, up to the refresh.
func (w *peerWatcher) NextRefresh(hint time.Duration) time.Duration {
	now := time.Now()
	if w.failed {
		w.failures++
	} else {
		w.failures = 0
		bundleRefreshed.WithLabelValues(w.p.TrustDomain.String()).SetToCurrentTime()
		w.t.noteFetch(w.p.TrustDomain, now, nil)
	}
	w.failed = false
	d := hint
	if d <= 0 {
		d = w.p.DefaultRefresh
	}
	if d <= 0 {
		d = defaultRefresh
	}
	if w.failures > 0 {
		retry := firstRetry
		for i := 1; i < w.failures && retry < d; i++ {
			retry *= 2
		}
		d = min(d, retry)
	}
	// Up to 10% early, so that many nodes do not refresh in step.
	d -= time.Duration(rand.Int64N(int64(d)/10 + 1))
	w.t.noteNext(w.p.TrustDomain, now.Add(d))
	return d
}

func (w *peerWatcher) OnUpdate(b *spiffebundle.Bundle) {
	xb := b.X509Bundle()
	if xb.Empty() {
		w.OnError(errors.New("bundle endpoint served a bundle with no X.509 authorities"))
		return
	}
	old, _ := w.t.Fetch(w.p.TrustDomain)
	w.t.SetPeerBundle(xb)
	bundleRefreshed.WithLabelValues(w.p.TrustDomain.String()).SetToCurrentTime()
	w.t.noteFetch(w.p.TrustDomain, time.Now(), nil)
	// Another set of CAs than the endpoint gave before is who this node trusts as the peer now:
	// said at WARN, with how many came and went, so that an admin compares the new fingerprint
	// (peer show) with the partner's. The first fetch of a run is compared with the bundle the
	// node started with, which a routine rotation since onboarding differs from at every start:
	// said at INFO (review Q, Q7).
	if added, removed := authoritiesDiff(old.InForce, xb); old.InForce != nil && added+removed > 0 && !old.OK.IsZero() {
		w.log.Warn("peer bundle updated: its CAs changed; compare the fingerprint in force (knooppunt peer show) with the partner's",
			"authorities", len(xb.X509Authorities()), "added", added, "removed", removed)
		return
	}
	w.log.Info("peer bundle updated", "authorities", len(xb.X509Authorities()))
}

// authoritiesDiff counts the CAs of next that before lacks, and those of before that next lacks.
func authoritiesDiff(before, next *x509bundle.Bundle) (added, removed int) {
	if before == nil {
		return len(next.X509Authorities()), 0
	}
	for _, c := range next.X509Authorities() {
		if !before.HasX509Authority(c) {
			added++
		}
	}
	for _, c := range before.X509Authorities() {
		if !next.HasX509Authority(c) {
			removed++
		}
	}
	return added, removed
}

func (w *peerWatcher) OnError(err error) {
	w.failed = true
	bundleRefreshErrors.WithLabelValues(w.p.TrustDomain.String()).Inc()
	w.t.noteFetch(w.p.TrustDomain, time.Now(), err)
	w.log.Warn("peer bundle refresh failed: keeping the last good bundle", "url", w.p.URL, "err", err)
}

// EndpointIDOf dials the bundle endpoint at rawURL and returns the SPIFFE ID its server presents,
// a member of td verified against bundles. A partner pins the ID an invitation names for the
// endpoint (the inviting replica's), so an invitation must come from the replica that serves
// it: EndpointIDOf lets a node check that before it signs.
func EndpointIDOf(ctx context.Context, rawURL string, bundles x509bundle.Source, td spiffeid.TrustDomain) (spiffeid.ID, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return spiffeid.ID{}, fmt.Errorf("%q is not an https URL", rawURL)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "443")
	}
	d := tls.Dialer{Config: tlsconfig.TLSClientConfig(bundles, tlsconfig.AuthorizeMemberOf(td))}
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return spiffeid.ID{}, err
	}
	defer conn.Close()
	certs := conn.(*tls.Conn).ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return spiffeid.ID{}, errors.New("the endpoint presented no certificate")
	}
	return x509svid.IDFromCert(certs[0])
}

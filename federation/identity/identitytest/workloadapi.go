package identitytest

import (
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// WorkloadAPI is a fake SPIRE agent: it serves the X.509 part of the SPIFFE Workload API on a
// unix socket, handing every caller the same SVID, its trust domain's bundle, and the bundles
// of the trust domains "SPIRE" federates with.
type WorkloadAPI struct {
	workload.UnimplementedSpiffeWorkloadAPIServer

	// Addr is the socket, as unix:///path, for identity.NewWorkloadSource and a node's
	// identity.workload_api.
	Addr string

	mu      sync.Mutex
	resp    *workload.X509SVIDResponse
	refuse  error // set: every X.509-SVID stream ends with it, as an agent's does
	changed chan struct{}
}

// Refuse ends every X.509-SVID stream with err, and the ones opened after it too, until Resume:
// as an agent does whose entry for the caller was deleted (PermissionDenied, "no identity
// issued").
func (w *WorkloadAPI) Refuse(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.refuse = err
	close(w.changed)
	w.changed = make(chan struct{})
}

// Resume serves the X.509-SVID streams again, after Refuse.
func (w *WorkloadAPI) Resume() { w.Refuse(nil) }

// ServeWorkloadAPI starts a fake Workload API that hands out svid, bundle (of the SVID's trust
// domain) and the federated bundles. It stops when the test ends.
func ServeWorkloadAPI(tb testing.TB, svid *x509svid.SVID, bundle *x509bundle.Bundle, federated ...*x509bundle.Bundle) *WorkloadAPI {
	tb.Helper()
	// A short directory: unix socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "kpwl")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "agent.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		tb.Fatal(err)
	}
	w := &WorkloadAPI{Addr: "unix://" + sock, changed: make(chan struct{})}
	w.Set(tb, svid, bundle, federated...)
	s := grpc.NewServer()
	workload.RegisterSpiffeWorkloadAPIServer(s, w)
	go s.Serve(lis)
	tb.Cleanup(s.Stop)
	return w
}

// Set replaces what the Workload API hands out, and pushes it to every open stream, as an
// agent does when SPIRE rotates an SVID or a bundle.
func (w *WorkloadAPI) Set(tb testing.TB, svid *x509svid.SVID, bundle *x509bundle.Bundle, federated ...*x509bundle.Bundle) {
	tb.Helper()
	// The Workload API carries DER: the chain concatenated, the key as PKCS#8.
	chain := derOf(svid.Certificates)
	keyDER, err := x509.MarshalPKCS8PrivateKey(svid.PrivateKey)
	if err != nil {
		tb.Fatal(err)
	}
	resp := &workload.X509SVIDResponse{
		Svids: []*workload.X509SVID{{
			SpiffeId: svid.ID.String(), X509Svid: chain, X509SvidKey: keyDER,
			Bundle: derOf(bundle.X509Authorities()),
		}},
		FederatedBundles: map[string][]byte{},
	}
	for _, b := range federated {
		resp.FederatedBundles[b.TrustDomain().IDString()] = derOf(b.X509Authorities())
	}
	w.mu.Lock()
	w.resp = resp
	close(w.changed)
	w.changed = make(chan struct{})
	w.mu.Unlock()
}

// AddSVID hands out svid as well, after the SVIDs already handed out, as an agent does for a
// caller that more than one registration entry matches.
func (w *WorkloadAPI) AddSVID(tb testing.TB, svid *x509svid.SVID) {
	tb.Helper()
	keyDER, err := x509.MarshalPKCS8PrivateKey(svid.PrivateKey)
	if err != nil {
		tb.Fatal(err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	resp := proto.Clone(w.resp).(*workload.X509SVIDResponse)
	resp.Svids = append(resp.Svids, &workload.X509SVID{
		SpiffeId: svid.ID.String(), X509Svid: derOf(svid.Certificates), X509SvidKey: keyDER, Bundle: resp.Svids[0].Bundle,
	})
	w.resp = resp
	close(w.changed)
	w.changed = make(chan struct{})
}

func derOf(certs []*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, c.Raw...)
	}
	return out
}

// FetchX509SVID implements the Workload API: the current response, then each change.
func (w *WorkloadAPI) FetchX509SVID(_ *workload.X509SVIDRequest, stream grpc.ServerStreamingServer[workload.X509SVIDResponse]) error {
	// A real agent refuses callers that do not send the security header.
	if md, _ := metadata.FromIncomingContext(stream.Context()); len(md.Get("workload.spiffe.io")) != 1 || md.Get("workload.spiffe.io")[0] != "true" {
		return status.Error(codes.InvalidArgument, "security header missing from request")
	}
	for {
		w.mu.Lock()
		resp, changed, refuse := w.resp, w.changed, w.refuse
		w.mu.Unlock()
		if refuse != nil {
			return refuse
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
		select {
		case <-changed:
		case <-stream.Context().Done():
			return nil
		}
	}
}

// FetchX509Bundles implements the Workload API: the bundles of the current response.
func (w *WorkloadAPI) FetchX509Bundles(_ *workload.X509BundlesRequest, stream grpc.ServerStreamingServer[workload.X509BundlesResponse]) error {
	for {
		w.mu.Lock()
		resp, changed := w.resp, w.changed
		w.mu.Unlock()
		out := &workload.X509BundlesResponse{Bundles: map[string][]byte{}}
		for _, s := range resp.Svids {
			id, err := spiffeid.FromString(s.SpiffeId)
			if err != nil {
				return err
			}
			out.Bundles[id.TrustDomain().IDString()] = s.Bundle
		}
		for td, b := range resp.FederatedBundles {
			out.Bundles[td] = b
		}
		if err := stream.Send(out); err != nil {
			return err
		}
		select {
		case <-changed:
		case <-stream.Context().Done():
			return nil
		}
	}
}

package federation_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/knooppunt/knooppunt/federation/fedtest"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestTracingSearchFanOut: four organisations record their traces in memory. Organisation a
// (propagate_to_peers off) searches: one trace holds its search and one span per peer, and no
// peer's spans join that trace, not even those of b and c, which would accept a trace context.
// c (propagate_to_peers on) searches: b, also on, joins c's trace, which shows the check can
// see a trace context cross; a and d, off, ignore the one c sends.
func TestTracingSearchFanOut(t *testing.T) {
	exporters := map[string]*tracetest.InMemoryExporter{}
	propagate := map[string]bool{"a": false, "b": true, "c": true, "d": false}
	for name := range propagate {
		exporters[name] = tracetest.NewInMemoryExporter()
	}
	f := fedtest.Start(t, fedtest.Options{
		Tracing: func(name string) trace.TracerProvider {
			return sdktrace.NewTracerProvider(sdktrace.WithSyncer(exporters[name]))
		},
		Extra: func(name string) string { return fmt.Sprintf("tracing:\n  propagate_to_peers: %v\n", propagate[name]) },
	})
	org := func(name string) *fedtest.Org {
		for _, o := range f.Orgs {
			if o.Name == name {
				return o
			}
		}
		t.Fatalf("no org %s", name)
		return nil
	}

	searchTrace := func(name string) trace.TraceID {
		t.Helper()
		// A search while connections to peers are still being made may find one unreachable.
		fedtest.Eventually(t, 10*time.Second, name+"'s search answered by every peer", func() (bool, string) {
			for _, e := range exporters {
				e.Reset()
			}
			resp, _ := org(name).Search(t, &pb.SearchRequest{Filter: &pb.Filter{Crisis: "oekraine"}})
			for _, p := range resp.Peers {
				if p.State != "answered" {
					return false, fmt.Sprintf("peer %s %s: %s", p.Peer, p.State, p.Error)
				}
			}
			return true, ""
		})
		spans := exporters[name].GetSpans()
		var search tracetest.SpanStub
		var peers []string
		for _, s := range spans {
			if s.Name == "knooppunt.search" {
				search = s
			}
		}
		if !search.SpanContext.IsValid() {
			t.Fatalf("%s: no knooppunt.search span among %d", name, len(spans))
		}
		id := search.SpanContext.TraceID()
		for _, s := range spans {
			if s.SpanContext.TraceID() != id {
				continue
			}
			if s.Name == "knooppunt.search.peer" {
				if s.Parent.SpanID() != search.SpanContext.SpanID() {
					t.Errorf("%s: a peer's span is not a child of the search", name)
				}
				for _, a := range s.Attributes {
					if a.Key == "knooppunt.peer" {
						peers = append(peers, a.Value.AsString())
					}
				}
			}
		}
		slices.Sort(peers)
		if want := len(f.Orgs) - 1; len(peers) != want || len(slices.Compact(slices.Clone(peers))) != want {
			t.Fatalf("%s: the search's trace has peer spans for %v: want one for each of its %d peers", name, peers, want)
		}
		return id
	}
	// queryServed is each FederationService/Query span name served.
	queryServed := func(name string) []tracetest.SpanStub {
		var out []tracetest.SpanStub
		for _, s := range exporters[name].GetSpans() {
			if s.Name == "knooppunt.v1.FederationService/Query" && s.SpanKind == trace.SpanKindServer {
				out = append(out, s)
			}
		}
		if len(out) == 0 {
			t.Fatalf("%s served no traced Query", name)
		}
		return out
	}

	aTrace := searchTrace("a")
	for _, peer := range []string{"b", "c", "d"} {
		for _, s := range queryServed(peer) {
			if s.SpanContext.TraceID() == aTrace || s.Parent.IsValid() {
				t.Errorf("%s's Query span is in a's trace (%v) or has a parent (%v): a's trace context left a", peer, s.SpanContext.TraceID() == aTrace, s.Parent.IsValid())
			}
		}
	}

	cTrace := searchTrace("c")
	for _, peer := range []string{"a", "d"} {
		for _, s := range queryServed(peer) {
			if s.SpanContext.TraceID() == cTrace || s.Parent.IsValid() {
				t.Errorf("%s took c's trace context though its config says off", peer)
			}
		}
	}
	for _, s := range queryServed("b") {
		if s.SpanContext.TraceID() != cTrace || !s.Parent.IsValid() || !s.Parent.IsRemote() {
			t.Errorf("b, on, did not join c's trace: the test cannot see a trace context cross")
		}
	}
}

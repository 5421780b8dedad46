// Package tracing is a node's OpenTelemetry tracing: the tracer provider that exports over OTLP
// to the configured collector, and the otelgrpc stats handlers of the node's gRPC servers and of
// its connections to peers.
//
// It owns one rule: a trace context crosses between organisations only when the config allows
// it (tracing.propagate_to_peers). Otherwise a call to a peer carries no traceparent, and a
// peer's traceparent is ignored, so that no partner learns this node's trace ids or sets them.
// Off (no tracing.endpoint), it installs nothing: no handler, no exporter, no cost.
package tracing

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffegrpc/grpccredentials"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/peer"

	"github.com/knooppunt/knooppunt/node/config"
)

// InstrumentationName names the tracers of the node's own spans.
const InstrumentationName = "github.com/knooppunt/knooppunt"

// Tracing is a node's tracing, on or off.
type Tracing struct {
	provider  trace.TracerProvider
	shutdown  func(context.Context) error
	on        bool
	propagate bool
	own       spiffeid.TrustDomain
}

// Off is tracing that records nothing.
func Off() *Tracing {
	return &Tracing{provider: noop.NewTracerProvider(), shutdown: func(context.Context) error { return nil }}
}

// Start sets up a node's tracing. With a provider given (tests) it records to that; otherwise
// to the OTLP collector of cfg.Endpoint, or nowhere when that is empty. own is the node's trust
// domain: callers of another trust domain are peers. The exporter's errors (a collector that is
// down) go to log, at most one a minute: the SDK would print them to standard error, outside
// the node's JSON log.
func Start(ctx context.Context, cfg config.Tracing, own spiffeid.TrustDomain, org, replica string, provider trace.TracerProvider, log *slog.Logger) (*Tracing, error) {
	t := &Tracing{on: true, propagate: cfg.PropagateToPeers, own: own, provider: provider, shutdown: func(context.Context) error { return nil }}
	if provider != nil {
		return t, nil
	}
	if cfg.Endpoint == "" {
		return Off(), nil
	}
	opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(cfg.Endpoint)}
	if cfg.Insecure {
		opts = append(opts, otlptracegrpc.WithDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())), otlptracegrpc.WithInsecure())
	}
	otel.SetErrorHandler(&errorLog{log: log, every: time.Minute})
	// The exporter connects lazily: a collector that is down loses spans, never the node.
	exp, err := otlptracegrpc.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	ratio := 1.0
	if cfg.SampleRatio != nil {
		ratio = *cfg.SampleRatio
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))),
		sdktrace.WithResource(resource.NewSchemaless(
			attribute.String("service.name", "knooppunt"),
			attribute.String("service.instance.id", org+"/"+replica),
			attribute.String("knooppunt.org", org),
		)),
	)
	t.provider, t.shutdown = tp, tp.Shutdown
	return t, nil
}

// errorLog writes the OpenTelemetry SDK's errors to the node's log, at most one each every,
// with how many it left out since the last.
type errorLog struct {
	log   *slog.Logger
	every time.Duration

	mu      sync.Mutex
	last    time.Time
	skipped int
}

func (e *errorLog) Handle(err error) {
	e.mu.Lock()
	now := time.Now()
	if now.Sub(e.last) < e.every {
		e.skipped++
		e.mu.Unlock()
		return
	}
	e.last = now
	skipped := e.skipped
	e.skipped = 0
	e.mu.Unlock()
	e.log.Warn("tracing: the OpenTelemetry SDK failed, as when the collector is down: spans are lost, the node goes on", "err", err, "errors_left_out", skipped)
}

// On reports whether tracing records anything.
func (t *Tracing) On() bool { return t.on }

// Tracer is the tracer of the node's own spans (a no-op one when off).
func (t *Tracing) Tracer() trace.Tracer { return t.provider.Tracer(InstrumentationName) }

// Shutdown flushes the spans not yet exported.
func (t *Tracing) Shutdown(ctx context.Context) error { return t.shutdown(ctx) }

// ServerOptions instrument a gRPC server of the node; none when off. A caller's trace context
// is taken from the node's own users and replicas, and from peers only when allowed.
func (t *Tracing) ServerOptions() []grpc.ServerOption {
	if !t.on {
		return nil
	}
	return []grpc.ServerOption{grpc.StatsHandler(otelgrpc.NewServerHandler(
		otelgrpc.WithTracerProvider(t.provider),
		otelgrpc.WithPropagators(callerGate{inner: propagation.TraceContext{}, allow: t.fromOwnOrg}),
	))}
}

// PeerDialOptions instrument the node's connections to peers: a span for every call, and a
// traceparent on it only when allowed. None when off.
func (t *Tracing) PeerDialOptions() []grpc.DialOption {
	if !t.on {
		return nil
	}
	var prop propagation.TextMapPropagator = propagation.NewCompositeTextMapPropagator() // injects nothing
	if t.propagate {
		prop = propagation.TraceContext{}
	}
	return []grpc.DialOption{grpc.WithStatsHandler(otelgrpc.NewClientHandler(
		otelgrpc.WithTracerProvider(t.provider),
		otelgrpc.WithPropagators(prop),
	))}
}

// fromOwnOrg reports whether the caller of a server call may set its trace context: the local
// socket (no TLS), an SVID of the node's own trust domain, or anyone when peers are allowed.
func (t *Tracing) fromOwnOrg(ctx context.Context) bool {
	if t.propagate {
		return true
	}
	p, ok := peer.FromContext(ctx)
	if !ok || p.AuthInfo == nil {
		return true
	}
	id, ok := grpccredentials.PeerIDFromPeer(p)
	return ok && t.TrustsCaller(id)
}

// TrustsCaller reports whether a caller who proved id may set the trace context of its call: one
// of the node's own trust domain, or anyone when peers are allowed (tracing.propagate_to_peers).
func (t *Tracing) TrustsCaller(id spiffeid.ID) bool {
	return t.propagate || (!t.own.IsZero() && id.TrustDomain() == t.own)
}

// callerGate extracts a trace context only from callers allow lets through; it never injects
// (a server answers with no trace context).
type callerGate struct {
	inner propagation.TextMapPropagator
	allow func(context.Context) bool
}

func (g callerGate) Inject(context.Context, propagation.TextMapCarrier) {}

func (g callerGate) Extract(ctx context.Context, c propagation.TextMapCarrier) context.Context {
	if !g.allow(ctx) {
		return ctx
	}
	return g.inner.Extract(ctx, c)
}

func (g callerGate) Fields() []string { return g.inner.Fields() }

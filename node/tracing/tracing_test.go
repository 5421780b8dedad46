package tracing_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/knooppunt/knooppunt/node/config"
	"github.com/knooppunt/knooppunt/node/tracing"
)

// TestOffInstallsNothing: with no endpoint, tracing adds no server or dial option and its
// tracer records nothing; with one (or a provider), both are instrumented.
func TestOffInstallsNothing(t *testing.T) {
	td := spiffeid.RequireTrustDomainFromString("a.crisis.test")
	off, err := tracing.Start(context.Background(), config.Tracing{}, td, "a.crisis.test", "r1", nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if off.On() || len(off.ServerOptions()) != 0 || len(off.PeerDialOptions()) != 0 {
		t.Fatalf("off: on %v, %d server options, %d dial options: want none", off.On(), len(off.ServerOptions()), len(off.PeerDialOptions()))
	}
	if _, span := off.Tracer().Start(context.Background(), "x"); span.IsRecording() || span.SpanContext().IsValid() {
		t.Fatal("off: a span records")
	}
	on, err := tracing.Start(context.Background(), config.Tracing{Endpoint: "127.0.0.1:4317", Insecure: true}, td, "a.crisis.test", "r1", nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer on.Shutdown(context.Background())
	if !on.On() || len(on.ServerOptions()) != 1 || len(on.PeerDialOptions()) != 1 {
		t.Fatal("on: want one server and one dial option")
	}
	mem, _ := tracing.Start(context.Background(), config.Tracing{}, td, "a.crisis.test", "r1", sdktrace.NewTracerProvider(), slog.New(slog.DiscardHandler))
	if _, span := mem.Tracer().Start(context.Background(), "x"); !mem.On() || !span.IsRecording() {
		t.Fatal("a given provider: want spans recorded")
	}
}

// TestTrustsCaller: a caller of the node's own trust domain may set its trace context; a peer's
// only with propagate_to_peers.
func TestTrustsCaller(t *testing.T) {
	td := spiffeid.RequireTrustDomainFromString("a.crisis.test")
	own, peer := spiffeid.RequireFromString("spiffe://a.crisis.test/user/rita"), spiffeid.RequireFromString("spiffe://b.crisis.test/node/r1")
	for _, propagate := range []bool{false, true} {
		tr, err := tracing.Start(context.Background(), config.Tracing{PropagateToPeers: propagate}, td, "a.crisis.test", "r1", sdktrace.NewTracerProvider(), slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		if !tr.TrustsCaller(own) || tr.TrustsCaller(peer) != propagate {
			t.Errorf("propagate_to_peers %v: own %v, peer %v", propagate, tr.TrustsCaller(own), tr.TrustsCaller(peer))
		}
	}
}

// TestExportErrorsGoToTheLog: with an exporter, the SDK's errors (a collector that is down) are
// lines of the node's own JSON log, at most one a minute, not text on standard error.
func TestExportErrorsGoToTheLog(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	td := spiffeid.RequireTrustDomainFromString("a.crisis.test")
	tr, err := tracing.Start(context.Background(), config.Tracing{Endpoint: "127.0.0.1:4317", Insecure: true}, td, "a.crisis.test", "r1", nil, log)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Shutdown(context.Background())
	otel.Handle(errors.New("traces export: connection refused"))
	otel.Handle(errors.New("traces export: connection refused again"))
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("%d log lines, want 1 (the second within a minute left out):\n%s", len(lines), buf.String())
	}
	var line struct{ Level, Msg, Err string }
	if err := json.Unmarshal([]byte(lines[0]), &line); err != nil {
		t.Fatalf("not a JSON log line: %v: %s", err, lines[0])
	}
	if line.Level != "WARN" || !strings.HasPrefix(line.Msg, "tracing: the OpenTelemetry SDK failed") || line.Err != "traces export: connection refused" {
		t.Errorf("log line %+v", line)
	}
}

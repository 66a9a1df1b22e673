package observe

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/go-logr/logr"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// MaxAttributeLength bounds every span attribute's value: a request's
// method (http.request.method_original) or user agent is the client's to
// choose, up to the server's header limit.
const MaxAttributeLength = 256

// RouteSpan puts the route template in the server span's url.path in place
// of the raw path that otelgin records: a path such as
// /internal/sessions/<sid> carries an identifier, and spans leave the
// process. It runs right after otelgin.
func RouteSpan() gin.HandlerFunc {
	return func(c *gin.Context) {
		if span := trace.SpanFromContext(c.Request.Context()); span.IsRecording() {
			span.SetAttributes(attribute.String(string(semconv.URLPathKey), Route(c)))
		}
		c.Next()
	}
}

// Tracing is a service's tracer provider and propagator.
type Tracing struct {
	Provider   *sdktrace.TracerProvider
	Propagator propagation.TextMapPropagator
}

// TracingConfig selects where spans go.
type TracingConfig struct {
	Service string
	// OTLPEndpoint is host:port of an OTLP/gRPC collector; empty keeps spans
	// in-process (they still give log lines their trace ids).
	OTLPEndpoint string
	// Insecure sends OTLP without TLS (a collector on the same host or pod).
	Insecure bool
	// Exporters are extra span exporters (tests register an in-memory one).
	Exporters []sdktrace.SpanExporter
	// Disabled turns tracing off (STRATA_TELEMETRY=off): nothing is
	// exported and every span is sampled out. Instrumentation still runs and
	// spans still get ids, so W3C trace context keeps propagating and log
	// lines keep their trace_id; only recording and export are skipped,
	// which is what costs.
	Disabled bool
	// Logger receives the SDK's own diagnostics (a failed export, an OTEL_*
	// variable it cannot parse) as JSON warn lines, instead of the SDK's
	// plain-text default on stderr. The SDK offers only a process-wide hook
	// (otel.SetLogger), so this sets it: a service calls NewTracing once.
	Logger *slog.Logger
}

// DefaultSampleRatio is the share of traces recorded when the environment
// names no sampler: parent-based, so a request whose caller sampled it (a
// traceparent with the sampled flag) is recorded in every service it
// crosses, and a trace is always whole or absent. Recording and exporting
// every span costs about a quarter of the throughput on a 2-CPU machine
// (docs/observability.md, "What telemetry costs"); a tenth of the traces
// is within the noise. The OpenTelemetry SDK's own variables override it:
// OTEL_TRACES_SAMPLER=parentbased_always_on records everything (the trace
// tests and a student following one request set it),
// OTEL_TRACES_SAMPLER=parentbased_traceidratio with OTEL_TRACES_SAMPLER_ARG
// another ratio.
const DefaultSampleRatio = 0.1

// NewTracing builds the provider. Shut it down to flush spans on exit.
func NewTracing(ctx context.Context, cfg TracingConfig) (*Tracing, error) {
	res, err := resource.Merge(resource.Default(), resource.NewWithAttributes(semconv.SchemaURL, semconv.ServiceName(cfg.Service)))
	if err != nil {
		return nil, fmt.Errorf("tracing resource: %w", err)
	}
	if cfg.Logger != nil {
		otel.SetLogger(logr.FromSlogHandler(sdkDiagnostics{cfg.Logger.Handler()}))
	}
	limits := sdktrace.NewSpanLimits()
	limits.AttributeValueLengthLimit = MaxAttributeLength
	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res), sdktrace.WithRawSpanLimits(limits)}
	if os.Getenv("OTEL_TRACES_SAMPLER") == "" {
		// Set, the SDK reads it (and _ARG) itself; an explicit WithSampler
		// would override it.
		opts = append(opts, sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(DefaultSampleRatio))))
	}
	if cfg.Disabled {
		return &Tracing{
			Provider:   sdktrace.NewTracerProvider(append(opts, sdktrace.WithSampler(sdktrace.NeverSample()))...),
			Propagator: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
		}, nil
	}
	if cfg.OTLPEndpoint != "" {
		eopts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(cfg.OTLPEndpoint)}
		if strings.Contains(cfg.OTLPEndpoint, "://") {
			eopts = []otlptracegrpc.Option{otlptracegrpc.WithEndpointURL(cfg.OTLPEndpoint)}
		}
		if cfg.Insecure {
			eopts = append(eopts, otlptracegrpc.WithInsecure())
		}
		exp, err := otlptracegrpc.New(ctx, eopts...)
		if err != nil {
			return nil, fmt.Errorf("otlp exporter: %w", err)
		}
		opts = append(opts, sdktrace.WithBatcher(exp))
	}
	for _, e := range cfg.Exporters {
		opts = append(opts, sdktrace.WithBatcher(e))
	}
	return &Tracing{
		Provider:   sdktrace.NewTracerProvider(opts...),
		Propagator: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
	}, nil
}

// Shutdown flushes and stops the provider.
func (t *Tracing) Shutdown(ctx context.Context) error { return t.Provider.Shutdown(ctx) }

// sdkDiagnostics writes the SDK's errors and warnings at warn level (an
// exporter that cannot reach the collector is degraded telemetry, not a
// failed request) and its info and debug (logr V(4) and up) at debug.
type sdkDiagnostics struct{ slog.Handler }

func sdkLevel(l slog.Level) slog.Level {
	if l > slog.LevelDebug {
		return slog.LevelWarn
	}
	return slog.LevelDebug
}

func (h sdkDiagnostics) Enabled(ctx context.Context, l slog.Level) bool {
	return h.Handler.Enabled(ctx, sdkLevel(l))
}

func (h sdkDiagnostics) Handle(ctx context.Context, r slog.Record) error {
	r.Level = sdkLevel(r.Level)
	return h.Handler.Handle(ctx, r)
}

func (h sdkDiagnostics) WithAttrs(as []slog.Attr) slog.Handler {
	return sdkDiagnostics{h.Handler.WithAttrs(as)}
}

func (h sdkDiagnostics) WithGroup(name string) slog.Handler {
	return sdkDiagnostics{h.Handler.WithGroup(name)}
}

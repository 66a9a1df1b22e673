package observe

import (
	"context"
	"fmt"
	"strings"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

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
}

// NewTracing builds the provider. Shut it down to flush spans on exit.
func NewTracing(ctx context.Context, cfg TracingConfig) (*Tracing, error) {
	res, err := resource.Merge(resource.Default(), resource.NewWithAttributes(semconv.SchemaURL, semconv.ServiceName(cfg.Service)))
	if err != nil {
		return nil, fmt.Errorf("tracing resource: %w", err)
	}
	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
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

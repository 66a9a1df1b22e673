// Package observe gives every service the same three signals:
//
//   - Logs: NewLogger writes JSON (log/slog) and stamps trace_id and span_id
//     on every record made with a context that carries a span.
//   - Metrics: NewRegistry is a Prometheus registry with the Go and process
//     collectors; RED is gin middleware (it needs the route template gin
//     matched) recording rate, errors and duration per route, and
//     MetricsHandler serves the registry as an http.Handler. Metrics are served on the internal (mTLS) listener only.
//   - Traces: NewTracing builds an OpenTelemetry tracer provider that
//     exports over OTLP when an endpoint is configured, and the W3C
//     propagator that carries trace context across every hop.
//
// STRATA_TELEMETRY=off (libs/server.Env) switches traces and logs down:
// TracingConfig.Disabled samples every span out and exports nothing, and
// NewQuietLogger keeps only errors and the lifecycle lines. Metrics stay:
// they are counters in memory, read only when Prometheus scrapes the
// internal listener. docs/observability.md has the measured cost.
//
// Nothing here is global: a service builds these in run() and hands them to
// the libraries that need them. The one exception is the OpenTelemetry
// SDK's diagnostic logger, which the SDK offers only process-wide
// (TracingConfig.Logger).
package observe

// Package observe gives every service the same three signals:
//
//   - Logs: NewLogger writes JSON (log/slog) and stamps trace_id and span_id
//     on every record made with a context that carries a span.
//   - Metrics: NewRegistry is a Prometheus registry with the Go and process
//     collectors; RED is gin middleware recording rate, errors and duration
//     per route. Metrics are served on the internal (mTLS) listener only.
//   - Traces: NewTracing builds an OpenTelemetry tracer provider that
//     exports over OTLP when an endpoint is configured, and the W3C
//     propagator that carries trace context across every hop.
//
// Nothing here is global: a service builds these in run() and hands them to
// the libraries that need them.
package observe

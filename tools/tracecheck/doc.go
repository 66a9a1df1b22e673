// Package tracecheck proves Strata's observability claims against the real
// system (four service processes over mTLS, real Postgres, Redis and
// Cassandra), as docs/observability.md describes them:
//
//   - one trace across every hop: a transfer's trace holds the ledger's
//     server and Postgres spans and the session check on both sides of the
//     mTLS hop, and the outbox relay's delivery to analytics (with
//     analytics' Cassandra write) is linked to it;
//   - what is never logged: passwords, tokens, Authorization values, keys
//     and query strings;
//   - what telemetry costs: throughput with traces, logs and metrics on
//     beside the same build with STRATA_TELEMETRY=off (STRATA_BENCH=1).
//
// Receiver is an in-process OTLP/gRPC trace receiver the services export
// to, so the tests read the spans exactly as a collector would get them.
package tracecheck

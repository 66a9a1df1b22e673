// Package server is the HTTP shape every Strata service shares: two
// listeners, one middleware chain, health and readiness, and graceful
// shutdown.
//
//   - Public listener (e.g. :8441): TLS 1.3 for clients. Business routes.
//   - Internal listener (public port + 1000): mutual TLS; only workloads of
//     the strata.local trust domain complete the handshake, and each route
//     group names the SPIFFE IDs allowed to call it (RequirePeers). /metrics
//     lives here, for prometheus and loadtest only.
//
// Both listeners answer /healthz (the process is alive) and /readyz (every
// dependency check passes) and are never load-shed. Every error is an RFC
// 9457 problem; a panic becomes a logged 500 with no details for the client.
//
// What needs only the request and the response is net/http: the shedder,
// the request id (RequestID), panic recovery and the body limit run in
// front of the gin engines, and RequirePeers, authn's and idempotency's
// middleware are func(http.Handler) http.Handler, which a route mounts with
// Adapt. gin keeps the router and the middleware that needs the route it
// matched (the server span, the RED metrics, the access log). A gin handler
// answers an error with Abort, or problem.Problem.Send when it just
// returns.
package server

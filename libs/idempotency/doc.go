// Package idempotency makes POST requests safe to retry, following the IETF
// httpapi draft "The Idempotency-Key HTTP Header Field": a client sends a
// unique key with a request; however often it retries, the server does the
// work at most once and answers every retry with the first response,
// byte for byte, marked `Idempotent-Replayed: true`.
//
// States of one (principal, key), and what a request carrying it gets:
//
//	absent     -> the request runs; its key is claimed in the same database
//	              transaction as its effects (unique constraint), so the key
//	              and the work commit together or not at all
//	in flight  -> 409 Conflict (another request with this key holds its
//	              transaction-scoped advisory lock right now)
//	completed  -> same fingerprint: the stored status and body, replayed
//	              different fingerprint (method, path, canonical body): 422
//
// A header that is missing or malformed is 400. A request that fails (any
// error, or a crash between claim and commit) rolls its transaction back,
// key included: the key stays retryable and nothing was done. Keys are
// scoped per principal, so one user's key is invisible to another, and are
// kept at least 24 hours before Reap deletes them in batches.
//
// The pieces: Middleware (net/http) validates the header and puts the Request
// (scope, key, fingerprint of method, path and body) in the context; the
// handler takes it once and passes it down as a Keyed value, with how to
// render the operation's result and the cipher for the stored body; the
// store, inside its own transaction, claims the key first (Claim, or
// QueueClaim in a pipelined batch) and records the response last
// (QueueComplete). The service's migrations create the idempotency_keys
// table.
// See docs/idempotency.md.
package idempotency

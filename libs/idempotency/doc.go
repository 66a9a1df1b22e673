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
// The pieces: Middleware (gin) validates the header, fingerprints the body
// and answers replays and mismatches from a completed key without touching
// the handler; the store, inside its own transaction, calls Claim (or
// QueueClaim in a pipelined batch) first and Complete (QueueComplete) last.
// Schema is the table it needs, to put in the service's migrations.
// See docs/idempotency.md.
package idempotency

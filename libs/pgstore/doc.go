// Package pgstore opens a service's Postgres pool the one way Strata allows:
// TLS with full verification (sslmode=verify-full), the workload's SVID as
// the client certificate (Postgres maps its CN to the service's role, so
// there is no password to leak), and the schema migrated at start.
//
// Migrations are plain SQL files embedded in the service binary and applied
// with goose under a Postgres advisory lock, so several replicas starting at
// once migrate exactly once. The TLS configuration reads the current
// certificate on every new connection, so rotation needs no restart.
package pgstore

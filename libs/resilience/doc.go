// Package resilience is the one place Strata wires failure handling, on
// failsafe-go: circuit breakers per dependency with their state exported as
// metrics and logged on every transition. Services compose these policies
// around every call that leaves the process (another service, Redis,
// Postgres, Cassandra) instead of hand-writing timeouts and retry loops.
package resilience

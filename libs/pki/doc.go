// Package pki issues Strata's development certificates: a private CA, X.509
// SVIDs for workloads (URI SAN spiffe://strata.local/<name>) and server
// certificates for the data stores. The `certs` command (tools/cmd/certs)
// is its command line; tests use it to mint throwaway CAs.
//
// Keys are ECDSA P-256 in PKCS#8 PEM, which Go, Postgres, Redis and
// Cassandra's PEM SSL factory all read. Files are replaced atomically, key
// first, so a process that reloads on change never pairs a new certificate
// with an old key for long.
package pki

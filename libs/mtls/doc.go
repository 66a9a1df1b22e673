// Package mtls is Strata's transport security: every workload holds an X.509
// SVID (spiffe://strata.local/<name>) issued by the project CA, and every hop
// is TLS 1.3.
//
// Source reads the SVID and the CA bundle from files and reloads them when
// the files change, so `make certs` rotates certificates under running
// processes: the next handshake presents the new certificate, no restart.
// Source satisfies go-spiffe's x509svid.Source and x509bundle.Source, and the
// tls.Config constructors here are thin wrappers over go-spiffe's tlsconfig:
//
//   - PublicServerConfig: the public listener (server-authenticated TLS).
//   - InternalServerConfig: the internal listener; a client certificate from
//     the trust domain is required at the handshake, and which SPIFFE IDs may
//     call which route group is decided per route (see server.RequirePeers).
//   - ClientConfig: service-to-service calls, pinned to the callee's ID.
//   - StoreConfig: connections to Postgres, Redis and Cassandra, verifying the
//     server's host name against the CA and presenting the workload's SVID.
package mtls

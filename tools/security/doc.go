// Package security is Strata's negative security suite: it boots the real
// system (the four service binaries over mTLS, on the native stack's
// Postgres, Redis and Cassandra), signs users in through the OpenID Connect
// code flow, and attacks the running services from outside the way an
// attacker would: other users' object ids, forged and misused tokens,
// clients without or with the wrong certificate, oversized and malformed
// bodies, injection characters in ids, a request flood. Every subtest is
// named after the OWASP ASVS 5.0 requirement or API Security Top 10 2023
// risk it checks, and every case has a positive control, so it fails when
// the defence it names is missing. See docs/security-testing.md.
//
// The suite lives only in its test file; tools/security.sh runs it together
// with the fuzz targets for a bounded time each.
package security

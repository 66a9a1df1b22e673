// Package stack holds the tests of the native data stack's security claims
// (deploy/native): every store refuses plaintext and unauthenticated
// clients, and accepts a workload over TLS with its SVID.
package stack

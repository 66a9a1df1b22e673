// Package testenv is the integration-test harness: it brings up the
// project's native data stack (deploy/native/stack.sh, real Postgres, Redis
// and Cassandra over TLS) once per test binary, boots a service's real run
// function on port 0, and builds TLS and mTLS clients from the stack's
// certificates. Nothing here fakes a store.
package testenv

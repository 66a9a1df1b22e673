#!/usr/bin/env bash
# demo.sh — what `make demo` runs after `make run`: show the system serving.
# It probes every service over TLS and mTLS with the loadtest workload's
# certificate and prints where to look next.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT/loadtest"
go run ./cmd/strata-load -certs "${STRATA_STACK_DIR:-$ROOT/.stack}/certs" probe
cat <<TXT

Strata is up. Logs: .stack/logs/<service>.log (JSON). Stop everything: make stop.
TXT

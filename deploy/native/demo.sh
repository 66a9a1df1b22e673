#!/usr/bin/env bash
# demo.sh — what `make demo` runs after `make run`: seed load-test users,
# drive the system past saturation with the ramp scenario (arrival rate
# stepped from 0.5x to 10x of the measured capacity, by clients that
# throttle themselves adaptively, -throttle) and print where the HTML
# report is. STRATA_DEMO_DURATION (default 60s) sets the ramp's length.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STACK_DIR=${STRATA_STACK_DIR:-$ROOT/.stack}
USERS=${STRATA_DEMO_USERS:-40}

bash "$ROOT/deploy/native/services.sh" seed "$USERS"
cat <<TXT

Open the console: https://127.0.0.1:$((${STRATA_SERVICE_PORT_BASE:-8441} + 4))
(the dev CA signs its certificate: trust $STACK_DIR/certs/ca.pem or accept the warning).
Sign in as alice, bob, carol, dave or admin with the demo password; as admin,
the Operator page shows limits, 429s and breakers move during the ramp below.

TXT
cd "$ROOT/loadtest"
go build -o "$ROOT/bin/strata-load" ./cmd/strata-load
"$ROOT/bin/strata-load" -certs "$STACK_DIR/certs" probe
"$ROOT/bin/strata-load" -certs "$STACK_DIR/certs" -out "$ROOT/out" -users "$USERS" \
  -duration "${STRATA_DEMO_DURATION:-60s}" -throttle ramp
cat <<TXT

The system is still running: logs in .stack/logs/<service>.log (JSON lines),
metrics on each internal port (mTLS). Other scenarios: bin/strata-load list.
The console: https://127.0.0.1:$((${STRATA_SERVICE_PORT_BASE:-8441} + 4)) (docs/console.md).
Stop everything with: make stop
TXT

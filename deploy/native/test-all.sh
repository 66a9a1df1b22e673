#!/usr/bin/env bash
# test-all.sh — what `make test` runs: start the native stack if it is not
# up, run every workspace module's tests with the race detector, and stop
# the servers this run started (a stack that was already up stays up).
#
# A root `go test ./...` would miss the workspace's other modules, so this
# loops over every module listed in go.work. Packages run one at a time
# (-p 1): integration tests stop and restart shared servers on purpose.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STACK="$ROOT/deploy/native/stack.sh"
cd "$ROOT"

started=()
for s in postgres redis cassandra; do
  bash "$STACK" pid "$s" >/dev/null 2>&1 || started+=("$s")
done
# The HA topology's tests (tools/stack, loadtest/internal/chaos) start and
# stop their own servers from deploy/native/ha.env; whatever of it a failed
# test leaves running is stopped here, unless it was up before (make run-ha).
ha() { (source "$ROOT/deploy/native/ha.env" && bash "$ROOT/deploy/native/ha.sh" "$@"); }
# Free space, printed first and last: a full disk fails builds and servers
# in ways that look like test failures.
disk() { df -Ph "$ROOT" "${TMPDIR:-/tmp}" | awk -v at="$1" 'NR>1 && !seen[$6]++ {print "[test] disk at " at ": " $4 " free on " $6}' >&2; }
disk start
ha_was_up=$(ha status 2>/dev/null | grep -c ' running ' || true)
cleanup() {
  if ((${#started[@]})); then
    echo "[test] stopping what this run started: ${started[*]}" >&2
    bash "$STACK" down "${started[@]}" || true
  fi
  if ((ha_was_up == 0)) && ha status 2>/dev/null | grep -q ' running '; then
    echo "[test] stopping the HA topology the tests left running" >&2
    ha down >/dev/null 2>&1 || true
  fi
  # Service binaries the test processes built (libs/testenv/build.go): one
  # directory per process, removed once that process is gone.
  for d in "${TMPDIR:-/tmp}"/strata-bin-*; do
    [[ -d $d ]] && ! kill -0 "${d##*-}" 2>/dev/null && rm -rf "$d"
  done
  disk end
}
trap cleanup EXIT

bash "$STACK" up

modules=$(go work edit -json | sed -n 's/.*"DiskPath": "\(.*\)".*/\1/p')
failed=()
for m in $modules; do
  echo "[test] module $m" >&2
  if ! (cd "$m" && go test -race -count=1 -p 1 -timeout 20m ${GOTESTFLAGS:-} ./...); then
    failed+=("$m")
  fi
done
# The fuzz targets, briefly (make security runs them longer).
if ! STRATA_FUZZ_ONLY=1 FUZZTIME=${FUZZTIME:-3s} bash "$ROOT/tools/security.sh"; then
  failed+=("fuzz")
fi
if ((${#failed[@]})); then
  echo "[test] FAILED modules: ${failed[*]}" >&2
  exit 1
fi
echo "[test] all modules passed" >&2

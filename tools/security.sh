#!/usr/bin/env bash
# security.sh — what `make security` runs: the negative security suite
# (tools/security: attacks on the real system over the native stack), then
# every fuzz target in the repository for a bounded time each.
# See docs/security-testing.md.
#
#   tools/security.sh                 full form: each fuzz target for 10 s
#   FUZZTIME=3s tools/security.sh     the short form
#   STRATA_FUZZ_ONLY=1 FUZZTIME=3s tools/security.sh   fuzz targets only (make
#                                     test runs the suite as a module test)
#
# The native stack is started if it is down (stack.sh up, via the test).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FUZZTIME=${FUZZTIME:-10s}
LOG=$(mktemp -t strata-security.XXXXXX)
trap 'rm -f "$LOG"' EXIT
cd "$ROOT"

if [[ -z ${STRATA_FUZZ_ONLY:-} ]]; then
echo "[security] negative suite: go test -run TestSecurity ./security/ (in tools)" >&2
set +e
(cd tools && go test -count=1 -timeout 15m -v -run '^TestSecurity$' ./security/) >"$LOG" 2>&1
status=$?
set -e
# One line per case (its ASVS / API Top 10 id is in the name), then failures.
grep -E -- '--- (PASS|FAIL|SKIP)' "$LOG" | sed -E 's/^ *--- //' || true
if ((status != 0)); then
  grep -vE -- '^=== RUN|--- PASS' "$LOG" | tail -60 >&2
  echo "[security] negative suite FAILED" >&2
  exit 1
fi
echo "[security] negative suite passed: $(grep -c -- '--- PASS' "$LOG") cases" >&2
fi

# The provider's browser surface (SSO cookie, login CSRF, lockout, code
# races, redirect variants, forced logout, audiences): services/auth's
# TestAttacks, against auth and a real session service.
if [[ -z ${STRATA_FUZZ_ONLY:-} ]]; then
echo "[security] provider attacks: go test -run TestAttacks . (in services/auth)" >&2
set +e
(cd services/auth && go test -count=1 -timeout 10m -v -run '^TestAttacks$' .) >"$LOG" 2>&1
status=$?
set -e
grep -E -- '--- (PASS|FAIL|SKIP)' "$LOG" | sed -E 's/^ *--- //' || true
if ((status != 0)); then
  grep -vE -- '^=== RUN|--- PASS' "$LOG" | tail -60 >&2
  echo "[security] provider attacks FAILED" >&2
  exit 1
fi
echo "[security] provider attacks passed: $(grep -c -- '--- PASS' "$LOG") cases" >&2
fi

# Fuzz targets: every `func FuzzX` in a _test.go file, run from its module.
if [[ -z ${STRATA_FUZZ_ONLY:-} ]]; then
# Denial of service: invented methods must not mint metric series; stalled
# request bodies must not hold the shedder's permits (ledger, auth).
echo "[security] denial of service: the metric-label and stalled-body tests" >&2
for spec in "libs ./observe/ ^TestInventedMethodsMintNoSeries$" \
  "services/ledger . ^TestStalledTransferBodiesDoNotShedOthers$" \
  "services/auth . ^TestStalledLoginBodiesDoNotShedOthers$"; do
  read -r dir pkg run <<<"$spec"
  set +e
  (cd "$dir" && go test -count=1 -timeout 10m -v -run "$run" "$pkg") >"$LOG" 2>&1
  status=$?
  set -e
  grep -E -- '--- (PASS|FAIL|SKIP)|(held|answered|series|MiB|refused)' "$LOG" | sed -E 's/^ *//' | head -20 || true
  if ((status != 0)) || ! grep -q -- '--- PASS' "$LOG"; then
    tail -40 "$LOG" >&2
    echo "[security] denial of service FAILED ($dir $run)" >&2
    exit 1
  fi
done
echo "[security] denial of service passed" >&2
fi

targets=$(grep -rln --include='*_test.go' '^func Fuzz' --exclude-dir=.stack --exclude-dir=node_modules . | sort)
for file in $targets; do
  dir=$(dirname "$file")
  mod=$dir
  while [[ ! -f $mod/go.mod ]]; do mod=$(dirname "$mod"); done
  pkg=./${dir#"$mod"}
  pkg=${pkg%/}
  [[ $pkg == . || $pkg == ./ ]] && pkg=.
  pkg=${pkg/#.\/\//./}
  for fn in $(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$file"); do
    echo "[security] fuzz $fn in $mod ($pkg) for $FUZZTIME" >&2
    (cd "$mod" && go test -run '^$' -fuzz "^$fn\$" -fuzztime "$FUZZTIME" "$pkg") ||
      { echo "[security] fuzz target $fn FAILED (the failing input is under $mod/$pkg/testdata/fuzz/$fn)" >&2; exit 1; }
  done
done
echo "[security] all passed" >&2

#!/usr/bin/env bash
# screenshots.sh — `make screenshots`: the pictures in docs/img that show a
# running Strata, made by tests in headless Chromium, never drawn by hand.
#
#   console-*.png       the console's browser test (services/console, TestConsole)
#   trace-transfer.png  one transfer's trace, exported by the real services to
#                       an in-process OTLP receiver (tools/tracecheck, TestTelemetry)
#   report.png          the newest load-test report under out/ (make demo
#                       writes one), or the report test's own when there is none
#
# Each test writes its pictures under out/; this script runs them and copies
# the pictures into docs/img.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
IMG=$ROOT/docs/img
mkdir -p "$IMG" "$ROOT/out"
log() { echo "[screenshots] $*" >&2; }

log "console (TestConsole)"
(cd "$ROOT/services/console" && go test -count=1 -run '^TestConsole$' . >&2)
cp "$ROOT"/out/console/*.png "$IMG/"

log "a transfer's trace (TestTelemetry)"
(cd "$ROOT/tools" && go test -count=1 -run '^TestTelemetry$' ./tracecheck >&2)
cp "$ROOT/out/trace/transfer.png" "$IMG/trace-transfer.png"

report=$(ls -t "$ROOT"/out/*.html 2>/dev/null | head -n 1 || true)
if [[ -n $report ]]; then
  log "the report $report"
  [[ -x /usr/bin/chromium ]] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
  profile=$(mktemp -d)
  trap 'rm -rf "$profile"' EXIT
  /usr/bin/chromium --headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update \
    --disable-sync --no-first-run --user-data-dir="$profile" --hide-scrollbars --window-size=1100,2200 \
    --screenshot="$IMG/report.png" "file://$report" >/dev/null 2>&1
else
  log "no report under out/ (make demo writes one): the report test's"
  (cd "$ROOT/loadtest" && STRATA_KEEP_SCREENSHOT="$IMG/report.png" go test -count=1 -run '^TestReportRendersInChromium$' ./internal/report >&2)
fi
ls -l "$IMG"/*.png >&2

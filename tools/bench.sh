#!/usr/bin/env bash
# bench.sh — `make bench`: every side-by-side benchmark of the services in
# one run, and one summary table of their ratios.
#
#   tools/bench.sh            run them all (ROUNDS=2: everything twice, medians)
#
# It runs, each in its own module with STRATA_BENCH=1:
#   services/ledger      TestBenchmarkAgainstPgbench   service transfers/s vs pgbench tpcb-like
#   services/session     TestBenchCacheAside           cache hit vs Postgres only vs redis-benchmark
#   services/session     BenchmarkGet (internal/session) the read path without HTTP, Redis hit vs Postgres
#   services/analytics   TestIngestBenchmark           service events/s vs raw gocql
#   services/auth        -bench .                      JWT verification ns/op, token issuance tokens/s
#   loadtest             TestCacheTakesLoadOffPostgres ledger transfers/s beside session reads, cache on vs off
#   services/ledger      TestOverloadGoals             ledger CPU per 429 vs per served read, goodput under a flood
#   tools/tracecheck     a STRATA_BENCH-gated test, when one exists: observability on vs off
# and reads the `BENCH <name> <value> <unit>` lines they print (go test
# -bench lines and tracecheck's on/off table rows are converted to the same
# form; its ratio here is of the median runs' req/s). Full logs go to
# $STRATA_BENCH_LOG (default out/bench-<time>/). The data stack is brought
# up first (deploy/native/stack.sh up, honouring STRATA_STACK_DIR and the
# port variables). Each benchmark already alternates or sequences its two
# sides in one process; ROUNDS>1 repeats the whole set so the two sides of
# every comparison are measured round after round, and reports the median
# ratio with its range. The machine is shared: treat ratios as indicative.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROUNDS=${ROUNDS:-1}
LOG_DIR=${STRATA_BENCH_LOG:-$ROOT/out/bench-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$LOG_DIR"
FIGURES=$LOG_DIR/figures.txt # "<round> <name> <value> <unit>"
: >"$FIGURES"
export STRATA_BENCH=1

log() { printf '[bench] %s\n' "$*" >&2; }

bash "$ROOT/deploy/native/stack.sh" up >"$LOG_DIR/stack-up.log" 2>&1 || {
  log "stack.sh up failed; see $LOG_DIR/stack-up.log"
  exit 1
}

# gobench_lines: turn `go test -bench` result lines into BENCH lines, one
# per reported metric: "BENCH BenchmarkX/sub.<unit> <value> <unit>".
gobench_lines() {
  awk '/^Benchmark/ { n = $1; sub(/-[0-9]+$/, "", n); for (i = 3; i < NF; i += 2) print "BENCH", n "." $(i + 1), $i, $(i + 1) }'
}

# tracecheck_lines: TestTelemetryOverhead prints a markdown table with one
# row per mode, "| on | <req/s> | ..."; its on and off rows become BENCH lines.
tracecheck_lines() {
  awk '/^\| (on|off) \| [0-9]/ { print "BENCH", "observability." $2, $4, "req/s" }'
}

# run ROUND LABEL DIR ARGS...: go test ARGS in DIR, log, collect BENCH lines.
run() {
  local round=$1 label=$2 dir=$3
  shift 3
  local out="$LOG_DIR/$label.r$round.log" rc
  log "round $round: $label ($dir: go test $*)"
  (cd "$ROOT/$dir" && go test -count=1 "$@") >"$out" 2>&1
  rc=$?
  { grep -E '^BENCH ' "$out"; gobench_lines <"$out"; tracecheck_lines <"$out"; } | awk -v r="$round" '{ print r, $2, $3, $4 }' >>"$FIGURES"
  if ((rc != 0)); then
    log "  $label exited $rc (figures it printed are still used); see $out"
    printf '%s %s\n' "$label" "$rc" >>"$LOG_DIR/failed.txt"
  fi
}

# tracecheck_test: the STRATA_BENCH-gated test of tools/tracecheck, if any.
tracecheck_test() {
  local f
  f=$(grep -l 'STRATA_BENCH' "$ROOT"/tools/tracecheck/*_test.go 2>/dev/null | head -1) || true
  [[ -n $f ]] || return 1
  grep -ohE '^func (Test[A-Za-z0-9_]*)\(t \*testing\.T\)' "$f" | sed -E 's/^func (Test[A-Za-z0-9_]*).*/\1/' |
    while read -r name; do
      if awk -v n="$name" '$0 ~ "^func " n "\\(" { on = 1 } on && /STRATA_BENCH/ { found = 1; exit } on && /^}/ { exit } END { exit !found }' "$f"; then
        echo "$name"
        break
      fi
    done
}

TRACE_TEST=$(tracecheck_test || true)
for ((r = 1; r <= ROUNDS; r++)); do
  run "$r" ledger services/ledger -run '^TestBenchmarkAgainstPgbench$' -v -timeout 15m .
  run "$r" session services/session -run '^TestBenchCacheAside$' -v -timeout 15m .
  run "$r" session-get services/session -run '^$' -bench '^BenchmarkGet$' -benchtime 3s -timeout 15m ./internal/session
  run "$r" analytics services/analytics -run '^TestIngestBenchmark$' -v -timeout 15m .
  run "$r" auth services/auth -run '^$' -bench . -benchtime 2s -timeout 15m .
  run "$r" cache-load loadtest -run '^TestCacheTakesLoadOffPostgres$' -v -timeout 15m ./internal/tradeoffs
  run "$r" overload services/ledger -run '^TestOverloadGoals$' -v -timeout 15m .
  if [[ -n $TRACE_TEST ]]; then
    run "$r" tracecheck tools/tracecheck -run "^${TRACE_TEST}\$" -v -timeout 15m .
  fi
done

# The summary. For each comparison: median over rounds of the service-side
# and baseline figures, median ratio (with range when ROUNDS > 1), goal.
FAILED=$(awk '{ printf "%s ", $1 }' "$LOG_DIR/failed.txt" 2>/dev/null || true)
awk -v rounds="$ROUNDS" -v trace="$TRACE_TEST" -v failed=" $FAILED" '
  { v[$1, $2] = $3; u[$2] = $4; seen[$2] = 1 }
  function median(a, n,    i, j, t) {
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  function fig(name, unit) { return sprintf("%s %s", fmtnum(med[name]), unit == "" ? u[name] : unit) }
  function fmtnum(x) { return x >= 100 ? sprintf("%.0f", x) : sprintf("%.2f", x) }
  # row(comparison, service-label, svc-name, base-label, base-name, goal, goal-min, invert, bench, direct)
  # ratio = svc/base (invert: base/svc, for ns/op where smaller is better),
  # or the ratio line the benchmark prints itself (direct): the
  # ledger benchmark alternates both sides in rounds and reports the median
  # of the per-round ratios, which is steadier than a ratio of medians.
  function row(cmp, sl, s, bl, b, goal, gmin, inv, bench, direct,    i, n, rs, lo, hi, x, ratio, met, rr) {
    n = 0
    for (i = 1; i <= rounds; i++) if (direct != "" && ((i, direct) in v)) {
      rs[++n] = v[i, direct]
    } else if (((i, s) in v) && ((i, b) in v) && v[i, s] > 0 && v[i, b] > 0) {
      rs[++n] = inv ? v[i, b] / v[i, s] : v[i, s] / v[i, b]
    }
    if (n == 0) { printf "| %s | %s | %s | n/a | %s | n/a |\n", cmp, sl ": " (s in seen ? fig(s) : "n/a"), bl ": " (b in seen ? fig(b) : "n/a"), goal; return }
    lo = hi = rs[1]; for (i = 2; i <= n; i++) { if (rs[i] < lo) lo = rs[i]; if (rs[i] > hi) hi = rs[i] }
    ratio = median(rs, n)
    rr = sprintf("%.2fx", ratio); if (n > 1) rr = rr sprintf(" (%.2f-%.2f)", lo, hi)
    met = gmin == "" ? "-" : (ratio >= gmin + 0 ? "yes" : "NO")
    if (index(failed, " " bench " ")) met = met " (benchmark failed, see its log)"
    printf "| %s | %s | %s | %s | %s | %s |\n", cmp, sl ": " fig(s), bl ": " fig(b), rr, goal, met
  }
  END {
    for (k in seen) { n = 0; for (i = 1; i <= rounds; i++) if ((i, k) in v) a[++n] = v[i, k]; if (n) med[k] = median(a, n); delete a }
    print ""
    print "| comparison | service | baseline | ratio | goal | met |"
    print "|---|---|---|---|---|---|"
    row("ledger vs pgbench (same Postgres, same clients; all on all CPUs)", "service", "ledger.service", "pgbench tpcb-like", "ledger.pgbench", ">= 0.50x", 0.5, 0, "ledger", "ledger.ratio")
    row("ledger vs pgbench (Postgres on CPU 0, clients on the others)", "service", "ledger.service_split", "pgbench tpcb-like", "ledger.pgbench_split", ">= 0.50x", 0.5, 0, "ledger", "ledger.ratio_split")
    row("session: cache hit vs Postgres only (HTTP)", "cache hit", "session.cache_hit", "cache disabled", "session.postgres_only", ">= 5x", 5, 0, "session")
    row("session vs redis-benchmark", "cache hit (HTTPS, JWT)", "session.cache_hit", "redis-benchmark GET", "session.redis_benchmark", ">= 0.15x", 0.15, 0, "session")
    row("session read path, no HTTP (BenchmarkGet)", "Redis hit", "BenchmarkGet/redis_hit.reads/s", "Postgres only", "BenchmarkGet/postgres_only.reads/s", "-", "", 0, "session-get")
    row("what the cache buys: ledger transfers/s beside 600 session reads/s", "cache on", "cache_load.on.transfers_beside_reads", "cache off", "cache_load.off.transfers_beside_reads", "- (> 1x: the cache leaves Postgres to the ledger)", "", 0, "cache-load")
    row("what the cache buys: Postgres CPU per session read", "cache off", "cache_load.off.postgres_cpu_per_read", "cache on", "cache_load.on.postgres_cpu_per_read", "- (CPU saved per read)", "", 0, "cache-load")
    row("overload: ledger CPU per 429 vs per served GET /v1/accounts", "per 429", "overload.cpu_per_429", "per served", "overload.cpu_per_served", "<= 0.10x (lower is better)", "", 0, "overload")
    row("overload: flood at 2.5x, goodput vs closed-loop capacity", "goodput", "overload.flood_goodput", "capacity", "overload.closed_loop_capacity", ">= 0.70x", 0.7, 0, "overload")
    row("analytics vs raw gocql (same rows)", "service", "analytics.service", "raw gocql", "analytics.raw_gocql", ">= 0.50x", 0.5, 0, "analytics")
    row("auth JWT verify: cached vs full ES256", "cached", "BenchmarkJWTVerifyES256/cached.ns/op", "full verify", "BenchmarkJWTVerifyES256/full.ns/op", "- (speed-up)", "", 1, "auth")
    if ("BenchmarkTokenIssuance/client_credentials.tokens/s" in seen)
      printf "| auth token issuance (client credentials, mTLS) | %s | - | - | - | - |\n", fig("BenchmarkTokenIssuance/client_credentials.tokens/s")
    else
      print "| auth token issuance (client credentials, mTLS) | n/a | - | - | - | - |"
    if (trace == "") print "| observability on vs off | n/a (no STRATA_BENCH benchmark in tools/tracecheck yet) | n/a | n/a | >= 0.90x | n/a |"
    else row("observability on vs off (" trace ")", "on", "observability.on", "off", "observability.off", ">= 0.90x", 0.9, 0, "tracecheck")
  }' "$FIGURES" | tee "$LOG_DIR/summary.md"

printf '\n%s round(s) on %s, %s cores, %s; logs and figures in %s\n' "$ROUNDS" "$(hostname)" "$(nproc)" "$(go env GOVERSION)" "$LOG_DIR"
if [[ -s $LOG_DIR/failed.txt ]]; then
  printf 'benchmarks that exited non-zero: %s\n' "$(tr '\n' ' ' <"$LOG_DIR/failed.txt")"
  exit 1
fi

#!/usr/bin/env bash
# services.sh — build and run Strata's four services natively, in the
# background, against the native stack (stack.sh).
#
#   services.sh start    build into bin/, start each service not yet running,
#                        wait until every /readyz answers 200
#   services.sh stop     SIGTERM each service (graceful drain), then SIGKILL
#   services.sh status   one line per service
#   services.sh env NAME the environment NAME runs with
#   services.sh seed N   create N load-test users (load-000001...) in auth
#
# Logs: .stack/logs/<service>.log (JSON lines). Pids: .stack/run/<service>.pid.
# Ports (loopback): auth 8441, ledger 8442, analytics 8443, session 8444;
# each internal mTLS listener is public + 1000.
set -euo pipefail

NATIVE_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$NATIVE_DIR/../.." && pwd)
STACK_DIR=${STRATA_STACK_DIR:-$REPO_ROOT/.stack}
CERTS=$STACK_DIR/certs
LOG_DIR=$STACK_DIR/logs
RUN_DIR=$STACK_DIR/run
BIN_DIR=$REPO_ROOT/bin
SERVICES=(session auth ledger analytics) # start order: auth keeps its sessions in session
declare -A PORT=([auth]=8441 [ledger]=8442 [analytics]=8443 [session]=8444)

log() { printf '[services] %s\n' "$*" >&2; }
die() { printf '[services] error: %s\n' "$*" >&2; exit 1; }

pg_url() { # role/database
  printf 'postgres://%s@127.0.0.1:%s/%s?sslmode=verify-full' "$1" "${STRATA_PG_PORT:-15432}" "$1"
}

# service_env NAME: the variables NAME reads (see each main.go's settings).
service_env() {
  local n=$1
  echo "STRATA_ENV=${STRATA_ENV:-dev}"
  echo "STRATA_TLS_CA=$CERTS/ca.pem"
  echo "STRATA_TLS_CERT=$CERTS/$n.pem"
  echo "STRATA_TLS_KEY=$CERTS/$n-key.pem"
  echo "STRATA_PUBLIC_ADDR=127.0.0.1:${PORT[$n]}"
  echo "STRATA_INTERNAL_ADDR=127.0.0.1:$((PORT[$n] + 1000))"
  if [[ -n ${OTEL_EXPORTER_OTLP_ENDPOINT:-} ]]; then echo "OTEL_EXPORTER_OTLP_ENDPOINT=$OTEL_EXPORTER_OTLP_ENDPOINT"; fi
  case $n in
  auth)
    echo "STRATA_PG_URL=$(pg_url auth)"
    echo "STRATA_AUTH_KEK_FILE=$STACK_DIR/auth/kek"
    if [[ -n ${STRATA_DEMO_PASSWORD:-} ]]; then echo "STRATA_DEMO_PASSWORD=$STRATA_DEMO_PASSWORD"; fi
    ;;
  ledger)
    echo "STRATA_PG_URL=$(pg_url ledger)"
    echo "STRATA_KMS_KEYSET=$STACK_DIR/kms/ledger-keyset.json"
    ;;
  session)
    echo "STRATA_PG_URL=$(pg_url session)"
    echo "STRATA_REDIS_ADDR=127.0.0.1:${STRATA_REDIS_PORT:-16379}"
    ;;
  analytics)
    echo "STRATA_CASSANDRA_HOSTS=127.0.0.1"
    echo "STRATA_CASSANDRA_PORT=${STRATA_CASSANDRA_PORT:-19042}"
    ;;
  esac
}

running() { # NAME: is its pid alive?
  local f=$RUN_DIR/$1.pid
  [[ -f $f ]] && kill -0 "$(cat "$f")" 2>/dev/null
}

ready() { # NAME: does its public /readyz answer 200?
  curl -fsS --max-time 2 --cacert "$CERTS/ca.pem" "https://127.0.0.1:${PORT[$1]}/readyz" >/dev/null 2>&1
}

build() {
  mkdir -p "$BIN_DIR"
  local n
  for n in "${SERVICES[@]}"; do
    (cd "$REPO_ROOT/services/$n" && go build -o "$BIN_DIR/$n" .) || die "build $n failed"
  done
}

start() {
  mkdir -p "$LOG_DIR" "$RUN_DIR"
  build
  local n
  for n in "${SERVICES[@]}"; do
    if running "$n"; then
      log "$n already running (pid $(cat "$RUN_DIR/$n.pid"))"
      continue
    fi
    log "starting $n on 127.0.0.1:${PORT[$n]} (internal $((PORT[$n] + 1000)))"
    # env -i: the service sees exactly the variables listed by service_env.
    mapfile -t vars < <(service_env "$n")
    setsid env -i PATH="$PATH" "${vars[@]}" "$BIN_DIR/$n" >"$LOG_DIR/$n.log" 2>&1 < /dev/null &
    echo $! >"$RUN_DIR/$n.pid"
  done
  for n in "${SERVICES[@]}"; do
    local deadline=$((SECONDS + ${STRATA_SERVICE_TIMEOUT:-90}))
    until ready "$n"; do
      if ! running "$n"; then
        tail -n 20 "$LOG_DIR/$n.log" >&2 || true
        die "$n exited; log: $LOG_DIR/$n.log"
      fi
      ((SECONDS < deadline)) || die "$n not ready in time; log: $LOG_DIR/$n.log"
      sleep 0.3
    done
    log "$n ready"
  done
}

stop() {
  local n pid i
  for ((i = ${#SERVICES[@]} - 1; i >= 0; i--)); do
    n=${SERVICES[i]}
    running "$n" || { rm -f "$RUN_DIR/$n.pid"; continue; }
    pid=$(cat "$RUN_DIR/$n.pid")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$RUN_DIR/$n.pid"
    log "$n stopped"
  done
}

status() {
  local n
  for n in "${SERVICES[@]}"; do
    if running "$n"; then
      printf '%-10s running  pid %s  https://127.0.0.1:%s\n' "$n" "$(cat "$RUN_DIR/$n.pid")" "${PORT[$n]}"
    else
      printf '%-10s stopped\n' "$n"
    fi
  done
}

# seed N: load-test users for strata-load (idempotent: existing ones are kept).
seed() {
  mapfile -t vars < <(service_env auth)
  env -i PATH="$PATH" "${vars[@]}" "$BIN_DIR/auth" seed -users "${1:-50}" >>"$LOG_DIR/auth-seed.log" 2>&1 ||
    die "auth seed failed; log: $LOG_DIR/auth-seed.log"
  tail -n 1 "$LOG_DIR/auth-seed.log" >&2
}

case ${1:-} in
start) start ;;
seed) seed "${2:-50}" ;;
stop) stop ;;
status) status ;;
env) [[ -n ${2:-} && -n ${PORT[${2}]:-} ]] || die "usage: services.sh env NAME"; service_env "$2" ;;
*) sed -n '/^#   services.sh/s/^#   //p' "${BASH_SOURCE[0]}" >&2; exit 2 ;;
esac

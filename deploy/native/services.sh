#!/usr/bin/env bash
# services.sh — build and run Strata's four services and the web console
# natively, in the background, against the native stack (stack.sh).
#
#   services.sh start          build into bin/, start every replica not yet
#                              running, wait until every /readyz answers 200
#   services.sh stop [NAME]    SIGTERM (graceful drain), then SIGKILL: every
#                              replica, or one (ledger-b)
#   services.sh kill NAME      SIGKILL one replica at once (drills: ledger-b);
#                              `start` brings it back
#   services.sh status         one line per replica
#   services.sh env NAME       the environment NAME (ledger, ledger-b) runs with
#   services.sh seed N         create N load-test users (load-000001...) in auth
#
# Replicas: STRATA_SERVICE_REPLICAS (1) of each service. Replica r (0-based,
# named a, b, ...) of a service listens on STRATA_SERVICE_PORT_BASE (8441)
# + the service's offset (auth 0, ledger 1, analytics 2, session 3,
# console 4) + 10*r; each internal mTLS listener is public + 1000. With one
# replica that is auth 8441, ledger 8442, analytics 8443, session 8444,
# console 8445, and the files are
# .stack/logs/<service>.log and .stack/run/<service>.pid as they always
# were; with several, <service>-a.log, <service>-b.pid and so on. Every
# service gets the internal URLs of all replicas of its dependencies
# (comma-separated), which its client balances with health-based ejection.
# The issuer stays one URL, auth replica a's public one.
#
# STRATA_HA=1 (deploy/native/ha.env) also points the services at the HA
# stores: a multi-host Postgres URL that follows the primary, Redis through
# Sentinel, the three-node Cassandra ring at replication factor 3.
set -euo pipefail

NATIVE_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$NATIVE_DIR/../.." && pwd)
STACK_DIR=${STRATA_STACK_DIR:-$REPO_ROOT/.stack}
CERTS=$STACK_DIR/certs
LOG_DIR=$STACK_DIR/logs
RUN_DIR=$STACK_DIR/run
BIN_DIR=$REPO_ROOT/bin
SERVICES=(session auth ledger analytics console) # start order: auth keeps its sessions in session
declare -A OFFSET=([auth]=0 [ledger]=1 [analytics]=2 [session]=3 [console]=4)
REPLICAS=${STRATA_SERVICE_REPLICAS:-1}
PORT_BASE=${STRATA_SERVICE_PORT_BASE:-8441}
LETTERS=(a b c d e f g h i)

log() { printf '[services] %s\n' "$*" >&2; }
die() { printf '[services] error: %s\n' "$*" >&2; exit 1; }

[[ $REPLICAS =~ ^[1-9]$ ]] || die "STRATA_SERVICE_REPLICAS must be 1..9, not '$REPLICAS'"
[[ $PORT_BASE =~ ^[0-9]+$ ]] || die "STRATA_SERVICE_PORT_BASE must be a port number, not '$PORT_BASE'"

# instance SERVICE R: the name of replica R (pid and log files, kill/stop).
instance() {
  if ((REPLICAS == 1)); then printf '%s' "$1"; else printf '%s-%s' "$1" "${LETTERS[$2]}"; fi
}

# instances: every configured replica's name, in start order.
instances() {
  local n r
  for n in "${SERVICES[@]}"; do
    for ((r = 0; r < REPLICAS; r++)); do instance "$n" "$r"; echo; done
  done
}

# parse NAME: sets SVC and REP from "ledger" (replica a) or "ledger-b";
# returns 1 for a name that is neither.
parse() {
  local name=$1 i
  SVC=$name REP=0
  if [[ $name == *-? ]]; then
    SVC=${name%-?} REP=-1
    for i in "${!LETTERS[@]}"; do if [[ ${LETTERS[$i]} == "${name##*-}" ]]; then REP=$i; fi; done
  fi
  [[ -n ${OFFSET[$SVC]:-} ]] && ((REP >= 0))
}

# canonical NAME: the configured replica's name for NAME ("ledger" is
# "ledger-a" when there are several); dies on an unknown name.
canonical() {
  parse "$1" || die "unknown replica '$1' (auth, ledger, analytics, session; ledger-b with replicas)"
  ((REP < REPLICAS)) || die "'$1': no such replica (STRATA_SERVICE_REPLICAS=$REPLICAS)"
  instance "$SVC" "$REP"
}

port() { echo $((PORT_BASE + OFFSET[$1] + 10 * $2)); } # SERVICE R: public port

# urls SERVICE [PATH]: the internal URLs of all of SERVICE's replicas.
urls() {
  local r out=""
  for ((r = 0; r < REPLICAS; r++)); do
    out+="${out:+,}https://127.0.0.1:$(($(port "$1" "$r") + 1000))${2:-}"
  done
  printf '%s' "$out"
}

pg_url() { # role/database
  if [[ ${STRATA_HA:-0} == 1 ]]; then
    # Both nodes; libpq-style target_session_attrs picks the one that takes
    # writes, so a promoted replica is found after a failover.
    printf 'postgres://%s@127.0.0.1:%s,127.0.0.1:%s/%s?sslmode=verify-full&target_session_attrs=read-write' \
      "$1" "${STRATA_PG_PORT:-15432}" "${STRATA_PG_REPLICA_PORT:?STRATA_HA=1 needs STRATA_PG_REPLICA_PORT}" "$1"
  else
    printf 'postgres://%s@127.0.0.1:%s/%s?sslmode=verify-full' "$1" "${STRATA_PG_PORT:-15432}" "$1"
  fi
}

sentinels() { # 127.0.0.1:26381,127.0.0.1:26382,...
  local p out="" ports=${STRATA_SENTINEL_PORTS:?STRATA_HA=1 needs STRATA_SENTINEL_PORTS}
  for p in ${ports//,/ }; do out+="${out:+,}127.0.0.1:$p"; done
  printf '%s' "$out"
}

# service_env NAME: the variables NAME (a service or one replica) reads
# (see each main.go's settings).
service_env() {
  parse "$1" || die "unknown service '$1'"
  local n=$SVC p
  p=$(port "$n" "$REP")
  echo "STRATA_ENV=${STRATA_ENV:-dev}"
  echo "STRATA_TLS_CA=$CERTS/ca.pem"
  echo "STRATA_TLS_CERT=$CERTS/$n.pem"
  echo "STRATA_TLS_KEY=$CERTS/$n-key.pem"
  echo "STRATA_PUBLIC_ADDR=127.0.0.1:$p"
  echo "STRATA_INTERNAL_ADDR=127.0.0.1:$((p + 1000))"
  if [[ -n ${OTEL_EXPORTER_OTLP_ENDPOINT:-} ]]; then echo "OTEL_EXPORTER_OTLP_ENDPOINT=$OTEL_EXPORTER_OTLP_ENDPOINT"; fi
  # One issuer for every replica: the "iss" of every token, and the URL
  # users sign in at.
  echo "STRATA_AUTH_ISSUER=https://localhost:$(port auth 0)"
  if [[ $n != auth ]]; then echo "STRATA_AUTH_JWKS_URL=$(urls auth /.well-known/jwks.json)"; fi
  case $n in
  auth)
    echo "STRATA_PG_URL=$(pg_url auth)"
    echo "STRATA_SESSION_URL=$(urls session)"
    echo "STRATA_AUTH_KEK_FILE=$STACK_DIR/auth/kek"
    echo "STRATA_CONSOLE_URL=https://127.0.0.1:$(port console 0)"
    if [[ -n ${STRATA_DEMO_PASSWORD:-} ]]; then echo "STRATA_DEMO_PASSWORD=$STRATA_DEMO_PASSWORD"; fi
    ;;
  ledger)
    echo "STRATA_PG_URL=$(pg_url ledger)"
    echo "STRATA_SESSION_URL=$(urls session)"
    echo "STRATA_ANALYTICS_URL=$(urls analytics)"
    echo "STRATA_AUTH_TOKEN_URL=$(urls auth /oauth2/token)"
    echo "STRATA_KMS_KEYSET=$STACK_DIR/kms/ledger-keyset.json"
    ;;
  session)
    echo "STRATA_PG_URL=$(pg_url session)"
    if [[ ${STRATA_HA:-0} == 1 ]]; then
      echo "STRATA_REDIS_SENTINELS=$(sentinels)"
      echo "STRATA_REDIS_MASTER_NAME=${STRATA_REDIS_MASTER_NAME:-strata}"
    else
      echo "STRATA_REDIS_ADDR=127.0.0.1:${STRATA_REDIS_PORT:-16379}"
    fi
    echo "STRATA_REDIS_USERNAME=session"
    echo "STRATA_REDIS_PASSWORD_FILE=$CERTS/redis-session.password"
    ;;
  analytics)
    if [[ ${STRATA_HA:-0} == 1 ]]; then
      echo "STRATA_CASSANDRA_HOSTS=${STRATA_CASSANDRA_NODES:?STRATA_HA=1 needs STRATA_CASSANDRA_NODES}"
      echo "STRATA_CASSANDRA_REPLICATION={'class': 'NetworkTopologyStrategy', 'datacenter1': 3}"
      echo "STRATA_CASSANDRA_LOCAL_DC=datacenter1"
    else
      echo "STRATA_CASSANDRA_HOSTS=127.0.0.1"
    fi
    echo "STRATA_CASSANDRA_PORT=${STRATA_CASSANDRA_PORT:-19042}"
    echo "STRATA_CASSANDRA_USERNAME=analytics"
    echo "STRATA_SESSION_URL=$(urls session)"
    echo "STRATA_CASSANDRA_PASSWORD_FILE=$CERTS/cassandra-analytics.password"
    ;;
  console)
    # Sessions live in the console's memory: people use replica a, the
    # one registered at the provider.
    echo "STRATA_CONSOLE_URL=https://127.0.0.1:$(port console 0)"
    echo "STRATA_AUTH_TOKEN_URL=https://127.0.0.1:$(($(port auth 0) + 1000))/oauth2/token"
    echo "STRATA_LEDGER_PUBLIC_URL=https://127.0.0.1:$(port ledger 0)"
    echo "STRATA_ANALYTICS_PUBLIC_URL=https://127.0.0.1:$(port analytics 0)"
    echo "STRATA_SESSION_PUBLIC_URL=https://127.0.0.1:$(port session 0)"
    local m
    for m in auth ledger analytics session; do echo "STRATA_${m^^}_INTERNAL_URL=$(urls "$m")"; done
    # The operator view's load runs (dev): the binary `build` makes.
    echo "STRATA_CONSOLE_LOAD_BIN=$BIN_DIR/strata-load"
    echo "STRATA_CONSOLE_LOAD_CERTS=$CERTS"
    echo "STRATA_CONSOLE_LOAD_OUT=$REPO_ROOT/out"
    ;;
  esac
}

pidfile() { echo "$RUN_DIR/$1.pid"; } # NAME

running() { # NAME: is its pid alive?
  local f
  f=$(pidfile "$1")
  [[ -f $f ]] && kill -0 "$(cat "$f")" 2>/dev/null
}

ready() { # NAME: does its public /readyz answer 200?
  parse "$1"
  curl -fsS --max-time 2 --cacert "$CERTS/ca.pem" "https://127.0.0.1:$(port "$SVC" "$REP")/readyz" >/dev/null 2>&1
}

build() {
  mkdir -p "$BIN_DIR"
  local n
  for n in "${SERVICES[@]}"; do
    (cd "$REPO_ROOT/services/$n" && go build -o "$BIN_DIR/$n" .) || die "build $n failed"
  done
  # The load tool, which the console's operator view can start.
  (cd "$REPO_ROOT/loadtest" && go build -o "$BIN_DIR/strata-load" ./cmd/strata-load) || die "build strata-load failed"
}

start() {
  mkdir -p "$LOG_DIR" "$RUN_DIR"
  build
  local i vars
  mapfile -t names < <(instances)
  for i in "${names[@]}"; do
    if running "$i"; then
      log "$i already running (pid $(cat "$(pidfile "$i")"))"
      continue
    fi
    parse "$i"
    log "starting $i on 127.0.0.1:$(port "$SVC" "$REP") (internal $(($(port "$SVC" "$REP") + 1000)))"
    # env -i: the service sees exactly the variables listed by service_env.
    mapfile -t vars < <(service_env "$i")
    setsid env -i PATH="$PATH" "${vars[@]}" "$BIN_DIR/$SVC" >"$LOG_DIR/$i.log" 2>&1 </dev/null &
    echo $! >"$(pidfile "$i")"
  done
  for i in "${names[@]}"; do
    local deadline=$((SECONDS + ${STRATA_SERVICE_TIMEOUT:-90}))
    until ready "$i"; do
      if ! running "$i"; then
        tail -n 20 "$LOG_DIR/$i.log" >&2 || true
        die "$i exited; log: $LOG_DIR/$i.log"
      fi
      ((SECONDS < deadline)) || die "$i not ready in time; log: $LOG_DIR/$i.log"
      sleep 0.3
    done
    log "$i ready"
  done
}

# known: the configured replicas and any other with a pid file (started
# with another replica count), in start order.
known() {
  local n r f
  for n in "${SERVICES[@]}"; do
    {
      for ((r = 0; r < REPLICAS; r++)); do instance "$n" "$r"; echo; done
      for f in "$RUN_DIR/$n.pid" "$RUN_DIR/$n"-?.pid; do
        if [[ -f $f ]]; then basename "$f" .pid; fi
      done
    } | sort -u
  done
}

stop_one() { # NAME SIGNAL: TERM drains, then KILL; KILL at once
  local name=$1 sig=$2 pid f
  f=$(pidfile "$name")
  if ! running "$name"; then
    rm -f "$f"
    return 0
  fi
  pid=$(cat "$f")
  if [[ $sig == TERM ]]; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$f"
  if [[ $sig == TERM ]]; then log "$name stopped"; else log "$name killed (pid $pid)"; fi
}

stop() {
  local i
  mapfile -t names < <(known)
  for ((i = ${#names[@]} - 1; i >= 0; i--)); do stop_one "${names[i]}" TERM; done
}

status() {
  local i
  for i in $(known); do
    if running "$i" && parse "$i"; then
      printf '%-12s running  pid %s  https://127.0.0.1:%s\n' "$i" "$(cat "$(pidfile "$i")")" "$(port "$SVC" "$REP")"
    elif running "$i"; then
      printf '%-12s running  pid %s\n' "$i" "$(cat "$(pidfile "$i")")"
    else
      printf '%-12s stopped\n' "$i"
    fi
  done
}

# seed N: load-test users for strata-load (idempotent: existing ones are kept).
seed() {
  mapfile -t vars < <(service_env "$(instance auth 0)")
  env -i PATH="$PATH" "${vars[@]}" "$BIN_DIR/auth" seed -users "${1:-50}" >>"$LOG_DIR/auth-seed.log" 2>&1 ||
    die "auth seed failed; log: $LOG_DIR/auth-seed.log"
  tail -n 1 "$LOG_DIR/auth-seed.log" >&2
}

case ${1:-} in
start) start ;;
seed) seed "${2:-50}" ;;
stop)
  if [[ -n ${2:-} ]]; then
    name=$(canonical "$2")
    stop_one "$name" TERM
  else
    stop
  fi
  ;;
kill)
  [[ -n ${2:-} ]] || die "usage: services.sh kill NAME (e.g. ledger-b)"
  name=$(canonical "$2")
  running "$name" || die "$name is not running"
  stop_one "$name" KILL
  ;;
status) status ;;
env)
  [[ -n ${2:-} ]] || die "usage: services.sh env NAME"
  name=$(canonical "$2")
  service_env "$name"
  ;;
*) sed -n '/^#   services.sh/s/^#   //p' "${BASH_SOURCE[0]}" >&2; exit 2 ;;
esac

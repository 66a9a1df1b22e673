#!/usr/bin/env bash
# stack.sh — Strata's native data stack: PostgreSQL 15, Redis 7 and
# Cassandra 5.0 as plain local processes (no Docker), each TLS-only with
# client certificates from the project CA, on the project's own loopback
# ports. Used by `make demo`, integration tests and CI.
#
#   stack.sh up [postgres|redis|cassandra ...]   install what is missing, start
#                                                what is not running, wait until
#                                                ready (default: all three)
#   stack.sh down [NAME ...]                     stop (default: all)
#   stack.sh start NAME | stop NAME              one server
#   stack.sh status                              one line per server
#   stack.sh pid NAME                            the server's pid (exit 1 if down)
#   stack.sh env                                 `export` lines for clients
#   stack.sh failover postgres|redis             HA topology: promote the
#                                                replica, print the time taken
#                                                (lib/postgres.sh, lib/redis.sh)
#   stack.sh reset postgres                      HA topology: stop both nodes,
#                                                delete their data and state
#
# Everything lives under ${STRATA_STACK_DIR:-<repo>/.stack}: certs/,
# logs/<name>.log, run/<name>.pid and each server's data directory.
# Ports: STRATA_PG_PORT (15432), STRATA_REDIS_PORT (16379),
# STRATA_CASSANDRA_PORT (19042), STRATA_CASSANDRA_STORAGE_PORT (17000);
# more knobs in lib/*.sh and README.md.
#
# up/down/start/stop hold an exclusive flock on $STACK_DIR/stack.lock, so
# concurrent callers (parallel test processes) run one after another; a
# second `up` then finds everything running and returns at once.
set -euo pipefail

NATIVE_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$NATIVE_DIR/../.." && pwd)
STACK_DIR=${STRATA_STACK_DIR:-$REPO_ROOT/.stack}
CERTS_DIR=$STACK_DIR/certs
LOG_DIR=$STACK_DIR/logs
RUN_DIR=$STACK_DIR/run
LOCK_TIMEOUT=${STRATA_STACK_LOCK_TIMEOUT:-900}
SERVERS=(postgres redis cassandra) # start order; stopped in reverse
# STRATA_HA=1 (deploy/native/ha.env): the high-availability topology, with a
# Postgres streaming replica, a Redis replica watched by Sentinel and a
# three-node Cassandra ring. Each NAME's functions are NAME_start etc.,
# with "-" spelled "_" (postgres-replica -> postgres_replica_start).
if [[ ${STRATA_HA:-0} == 1 ]]; then
  SERVERS=(postgres postgres-replica redis redis-replica sentinel cassandra cassandra2 cassandra3)
fi

# shellcheck source=lib/common.sh
source "$NATIVE_DIR/lib/common.sh"
# shellcheck source=lib/postgres.sh
source "$NATIVE_DIR/lib/postgres.sh"
# shellcheck source=lib/redis.sh
source "$NATIVE_DIR/lib/redis.sh"
# shellcheck source=lib/cassandra.sh
source "$NATIVE_DIR/lib/cassandra.sh"
# fn NAME SUFFIX: the function implementing SUFFIX for server NAME.
fn() { printf '%s_%s' "${1//-/_}" "$2"; }

usage() {
  sed -n '/^#   stack.sh/s/^#   //p' "${BASH_SOURCE[0]}" >&2
  exit 2
}

# select_servers NAME...: validate names; no names means all. Sets SELECTED
# in start order.
select_servers() {
  local s n
  SELECTED=()
  for n in "$@"; do
    case " ${SERVERS[*]} " in
    *" $n "*) ;;
    *) die "unknown server '$n' (expected: ${SERVERS[*]})" ;;
    esac
  done
  for s in "${SERVERS[@]}"; do
    if (($# == 0)) || [[ " $* " == *" $s "* ]]; then
      SELECTED+=("$s")
    fi
  done
}

# lock: serialize state-changing commands across processes. The lock is
# released when this script exits; servers are started with 9>&- so they
# never hold it.
lock() {
  mkdir -p "$STACK_DIR" "$LOG_DIR" "$RUN_DIR"
  exec 9>>"$STACK_DIR/stack.lock"
  if ! flock -n 9; then
    log "waiting for another stack.sh (lock $STACK_DIR/stack.lock)"
    flock -w "$LOCK_TIMEOUT" 9 || die "could not get $STACK_DIR/stack.lock within ${LOCK_TIMEOUT}s"
  fi
}

# cmd_up NAME...: bring the selected servers up. Installs first (so a
# failed download stops us before anything starts), then starts everything
# that is down at once, then waits for each and applies its bootstrap
# (roles/databases, keyspace) once per start.
cmd_up() {
  local s t0=$SECONDS
  local -a started=()
  select_servers "$@"
  lock
  command -v flock >/dev/null || die "flock (util-linux) is required"
  ensure_certs
  for s in "${SELECTED[@]}"; do
    if ! "$(fn "$s" running)"; then
      "$(fn "$s" install)"
      rm -f "$RUN_DIR/$s.bootstrapped"
      "$(fn "$s" start)"
      started+=("$s")
    fi
  done
  if [[ " ${SELECTED[*]} " == *" cassandra"* ]]; then
    ensure_cql_tool
  fi
  for s in "${SELECTED[@]}"; do
    "$(fn "$s" wait)"
    if [[ ! -e $RUN_DIR/$s.bootstrapped ]]; then
      "$(fn "$s" bootstrap)"
      touch "$RUN_DIR/$s.bootstrapped"
    fi
  done
  if ((${#started[@]})); then
    log "up: started ${started[*]} in $((SECONDS - t0))s; all of ${SELECTED[*]} ready"
  fi
}

cmd_down() {
  local i s
  select_servers "$@"
  lock
  for ((i = ${#SELECTED[@]} - 1; i >= 0; i--)); do
    s=${SELECTED[i]}
    "$(fn "$s" stop)"
    rm -f "$RUN_DIR/$s.bootstrapped"
  done
}

cmd_status() {
  local s
  for s in "${SERVERS[@]}"; do "$(fn "$s" status)"; done
}

cmd_pid() {
  (($# == 1)) || usage
  select_servers "$1"
  "$(fn "$1" pid)" || { log "$1 is not running"; exit 1; }
}

cmd_env() {
  echo "# Strata native stack ($STACK_DIR); eval \"\$(deploy/native/stack.sh env)\""
  echo "export STRATA_STACK_DIR=$(printf %q "$STACK_DIR")"
  echo "export STRATA_CERTS_DIR=$(printf %q "$CERTS_DIR")"
  echo "export STRATA_CA_CERT=$(printf %q "$CERTS_DIR/ca.pem")"
  local s
  for s in "${SERVERS[@]}"; do
    if declare -F "$(fn "$s" env)" >/dev/null; then "$(fn "$s" env)"; fi
  done
}

# cmd_failover NAME: the HA topology's scripted failover of one store.
cmd_failover() {
  (($# == 1)) || usage
  [[ $1 == postgres || $1 == redis ]] || die "failover: expected postgres or redis, got '$1'"
  lock
  "$1_failover"
}

cmd_reset() {
  if (($# != 1)) || [[ $1 != postgres ]]; then usage; fi
  lock
  postgres_reset
}

main() {
  local cmd=${1:-}
  (($#)) && shift
  case $cmd in
  up) cmd_up "$@" ;;
  down) cmd_down "$@" ;;
  start) (($# == 1)) || usage; cmd_up "$1" ;;
  stop) (($# == 1)) || usage; cmd_down "$1" ;;
  status) cmd_status ;;
  pid) cmd_pid "$@" ;;
  env) cmd_env ;;
  failover) cmd_failover "$@" ;;
  reset) cmd_reset "$@" ;;
  -h | --help | help) usage ;;
  *) usage ;;
  esac
}

main "$@"

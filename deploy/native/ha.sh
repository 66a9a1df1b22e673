#!/usr/bin/env bash
# ha.sh — Strata's high-availability topology, natively (`make run-ha`):
# no single point of failure among the processes of one machine. Settings
# and ports in ha.env; what each layer does when a node dies in
# docs/high-availability.md.
#
#   ha.sh up                  Postgres primary + streaming replica, Redis master +
#                             replica + three Sentinels, a three-node Cassandra
#                             ring (127.0.0.1-3), then two replicas of each service
#   ha.sh down                stop the services, then the stores
#   ha.sh status              one line per server and per replica
#   ha.sh env                 `export` lines for tools (eval "$(ha.sh env)")
#   ha.sh failover postgres   promote the replica, fence the old primary
#   ha.sh failover redis      the Sentinels elect the replica
#   ha.sh stack ARGS...       stack.sh with ha.env (stop cassandra2, start ...)
#   ha.sh services ARGS...    services.sh with ha.env (kill ledger-b, start ...)
set -euo pipefail

NATIVE_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$NATIVE_DIR/../.." && pwd)
# shellcheck source=ha.env
source "$NATIVE_DIR/ha.env"

stack() { bash "$NATIVE_DIR/stack.sh" "$@"; }
services() { bash "$NATIVE_DIR/services.sh" "$@"; }

# certs_fresh: renew the workload certificates (24 h) when one expires
# within the hour, as `make run` does for the single-node stack.
certs_fresh() {
  if ! openssl x509 -checkend 3600 -noout -in "$STRATA_STACK_DIR/certs/ledger.pem" >/dev/null 2>&1; then
    (cd "$REPO_ROOT/tools" && go run ./cmd/certs -dir "$STRATA_STACK_DIR/certs") >&2
  fi
}

case ${1:-} in
up)
  t0=$SECONDS
  stack up
  certs_fresh
  services start
  services status
  echo "[ha] up in $((SECONDS - t0)) s; stores and services: $0 status" >&2
  ;;
down)
  services stop
  stack down
  ;;
status)
  stack status
  services status
  ;;
env)
  stack env
  echo "export STRATA_HA=1"
  ;;
failover)
  [[ ${2:-} == postgres || ${2:-} == redis ]] || { echo "usage: ha.sh failover postgres|redis" >&2; exit 2; }
  stack failover "$2"
  ;;
stack) shift; stack "$@" ;;
services) shift; services "$@" ;;
*)
  sed -n '/^#   ha.sh/s/^#   //p' "${BASH_SOURCE[0]}" >&2
  exit 2
  ;;
esac

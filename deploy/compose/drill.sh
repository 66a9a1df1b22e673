#!/usr/bin/env bash
# drill.sh — the faults of the HA drills on the compose profile ha: the
# verbs of deploy/native/stack.sh and services.sh that `strata-load chaos
# -ha -compose` uses (loadtest/internal/chaos/ha.go), acting on containers
# instead of processes. Run from the repository root, against a system
# brought up with
#   docker compose --env-file deploy/compose/ha.env --profile ha up -d --wait
# COMPOSE_FILE and COMPOSE_PROJECT_NAME, when set, select another project
# (make compose-test HA=1 uses its CI override).
#
#   drill.sh stop NAME...          docker compose stop: the member is down
#   drill.sh start NAME...         start it again and wait until healthy
#   drill.sh up NAME...            bring a store pair back after a failover
#   drill.sh failover postgres     stop and fence the primary, promote the replica
#   drill.sh failover redis        freeze the master; the Sentinels elect the replica
#   drill.sh kill NAME             SIGKILL a service's container (a crash)
#   drill.sh services              start every service container that is not running
set -euo pipefail
cd "$(dirname "$0")/../.."
DOCKER=${DOCKER:-docker}
compose() { $DOCKER compose --env-file deploy/compose/ha.env --profile ha "$@"; }
# sentinel_master: the host the Sentinels currently name as master.
sentinel_master() {
  compose exec -T sentinel-1 redis-cli --tls --cacert /run/strata/certs/ca.pem --cert /run/strata/certs/redis.pem \
    --key /run/strata/certs/redis-key.pem -p 26379 sentinel get-master-addr-by-name strata | head -n 1
}
# primary_promoted: the streaming replica has become the writable node.
primary_promoted() {
  compose exec -T -u postgres postgres-replica psql -qtAc "SELECT NOT pg_is_in_recovery()" 2>/dev/null | grep -q t
}
# wait_healthy NAME: until the container's healthcheck passes (60 s).
wait_healthy() {
  local t0=$SECONDS
  until [[ $(compose ps --format '{{.Health}}' "$1") == healthy ]]; do
    ((SECONDS - t0 < 60)) || die "$1 not healthy 60 s after it thawed"
    sleep 1
  done
}
die() {
  echo "drill.sh: $*" >&2
  exit 1
}

case ${1:-} in
stop)
  shift
  compose stop "$@"
  ;;
start)
  shift
  compose up -d --wait --no-build --no-deps "$@"
  ;;
up)
  shift
  for name in "$@"; do
    # After a failover the old Postgres primary stays fenced: started again
    # it would be a second writable primary (split brain). Natively stack.sh
    # rebuilds it as a replica of the new primary; in compose that is the
    # operator's step (docs/high-availability.md), so the pair runs on with
    # the promoted replica alone.
    if [[ $name == postgres ]] && primary_promoted; then
      echo "drill.sh: postgres stays fenced; postgres-replica is the primary now" >&2
      continue
    fi
    # A frozen Redis thaws; Sentinel then makes it a replica of the new
    # master. Its healthcheck failed while it was frozen, so `up --wait`
    # would report it unhealthy at once: wait for the next passing check.
    if [[ $(compose ps --status paused --format '{{.Service}}' "$name" 2>/dev/null) == "$name" ]]; then
      compose unpause "$name"
      wait_healthy "$name"
      continue
    fi
    compose up -d --wait --no-build --no-deps "$name"
  done
  ;;
failover)
  case ${2:-} in
  postgres) bash deploy/compose/failover.sh postgres ;;
  redis)
    # The master freezes (docker compose pause): it answers nothing, as a
    # hung host would. Stopping the container would also take its DNS name
    # away, and Sentinel 7.0 cannot resolve a master it is told by name,
    # so a stopped master is not what this drill can show; a restart
    # (restart: unless-stopped) brings the name back within seconds.
    old=$(sentinel_master)
    [[ -n $old ]] || die "the Sentinels name no master"
    t0=$(date +%s%N)
    compose pause "$old"
    while ((($(date +%s%N) - t0) < 15000000000)); do
      now=$(sentinel_master)
      if [[ -n $now && $now != "$old" ]]; then
        echo "the Sentinels promoted $now in $((($(date +%s%N) - t0) / 1000000)) ms"
        exit 0
      fi
      sleep 0.1
    done
    die "the Sentinels did not elect a new master within 15 s of freezing $old"
    ;;
  *) die "usage: drill.sh failover postgres|redis" ;;
  esac
  ;;
kill)
  [[ -n ${2:-} ]] || die "usage: drill.sh kill NAME"
  compose kill -s KILL "$2"
  ;;
services)
  mapfile -t all < <(compose config --services)
  svcs=()
  for s in "${all[@]}"; do
    case $s in auth* | ledger* | analytics* | session* | console) svcs+=("$s") ;; esac
  done
  compose up -d --wait --no-build --no-deps "${svcs[@]}"
  ;;
*)
  sed -n '/^#   drill.sh/s/^#   //p' "$0" >&2
  exit 2
  ;;
esac

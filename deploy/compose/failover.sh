#!/usr/bin/env bash
# failover.sh — the scripted failovers of the compose profile ha
# (docs/high-availability.md). Run from the repository root.
#
#   deploy/compose/failover.sh postgres   stop the primary, promote the replica;
#                                         the services' multi-host URL
#                                         (target_session_attrs=read-write)
#                                         finds it on their next connection
#   deploy/compose/failover.sh redis      ask the Sentinels to fail over now
#
# The old Postgres primary stays stopped: started again it would be a second
# writable primary (split brain). Rebuild it as a replica of the new one
# (pg_basebackup into an emptied volume) before starting it.
set -euo pipefail
compose=("${DOCKER:-docker}" compose --env-file deploy/compose/ha.env --profile ha)
case ${1:-} in
postgres)
  t0=$(date +%s.%N)
  "${compose[@]}" stop postgres
  "${compose[@]}" exec -T -u postgres postgres-replica pg_ctl promote -w -D /var/lib/postgresql/data
  until "${compose[@]}" exec -T -u postgres postgres-replica \
    psql -qtAc "SELECT NOT pg_is_in_recovery()" | grep -q t; do sleep 0.2; done
  echo "postgres-replica promoted in $(echo "$(date +%s.%N) - $t0" | bc) s"
  ;;
redis)
  "${compose[@]}" exec -T sentinel-1 redis-cli --tls --cacert /run/strata/certs/ca.pem \
    --cert /run/strata/certs/redis.pem --key /run/strata/certs/redis-key.pem -p 26379 \
    sentinel failover strata
  ;;
*)
  sed -n '/^#   deploy/s/^#   //p' "$0" >&2
  exit 2
  ;;
esac

#!/bin/sh
# roles.sh — the compose Cassandra's roles, the same as the native stack's
# (deploy/native/lib/cassandra.sh): admin (superuser) replaces the default
# cassandra/cassandra, which is then disabled; analytics may log in and
# create keyspaces (it owns what it creates). No other workload has a role,
# so no other certificate can read or drop the analytics keyspace. Run in
# the background by the container's entrypoint; idempotent.
set -u
pw() { tr -d '\n' <"$1"; }
cq() { cqlsh --cqlshrc=/etc/strata/cqlshrc --ssl "$@" localhost 9042; }
probe="SELECT release_version FROM system.local"

until cq -e "$probe" >/dev/null 2>&1 || cq -u cassandra -p cassandra -e "$probe" >/dev/null 2>&1; do
  sleep 5
done
if ! cq -e "$probe" >/dev/null 2>&1; then
  cq -u cassandra -p cassandra -e "CREATE ROLE IF NOT EXISTS admin WITH SUPERUSER = true AND LOGIN = true AND PASSWORD = '$(pw /run/strata/certs/cassandra-admin.password)'" ||
    { echo "roles.sh: creating the admin role failed" >&2; exit 1; }
fi
cq -e "ALTER ROLE cassandra WITH SUPERUSER = false AND LOGIN = false" >/dev/null 2>&1 || true
cq -e "CREATE ROLE IF NOT EXISTS analytics WITH LOGIN = true AND PASSWORD = '$(pw /run/strata/certs/cassandra-analytics.password)'; GRANT CREATE ON ALL KEYSPACES TO analytics" ||
  { echo "roles.sh: creating the analytics role failed" >&2; exit 1; }
echo "roles.sh: roles admin and analytics ready"

# The last node of the profile ha's ring (STRATA_CASSANDRA_AUTH_RF=3 on
# cassandra3): system_auth starts with one replica, so a login, or the
# authorizer's check of a role, fails with "Cannot achieve consistency
# level" whenever the one node holding that role's row is down. Replicate
# it to every node once all have joined (the ring refuses the change while
# a node is still joining), then write the roles again so that each row
# reaches its new replicas (no nodetool repair needed).
if [ -n "${STRATA_CASSANDRA_AUTH_RF:-}" ]; then
  until cq -e "ALTER KEYSPACE system_auth WITH replication = {'class': 'SimpleStrategy', 'replication_factor': $STRATA_CASSANDRA_AUTH_RF}" >/dev/null 2>&1; do
    sleep 5
  done
  # Until then a login reads admin's row from two of three replicas, of
  # which only one may hold it yet: a login can fail with "Bad
  # credentials" (one in three), so try again; the first that gets in
  # writes the rows to all three.
  tries=0
  until cq -e "ALTER ROLE admin WITH PASSWORD = '$(pw /run/strata/certs/cassandra-admin.password)';
ALTER ROLE analytics WITH PASSWORD = '$(pw /run/strata/certs/cassandra-analytics.password)';
ALTER ROLE cassandra WITH SUPERUSER = false AND LOGIN = false;
GRANT CREATE ON ALL KEYSPACES TO analytics" >/dev/null 2>&1; do
    tries=$((tries + 1))
    [ "$tries" -lt 30 ] || { echo "roles.sh: writing the roles to their new replicas failed" >&2; exit 1; }
    sleep 2
  done
  # analytics owns the keyspaces it created before this: grant them again.
  for ks in $(cq -e "SELECT keyspace_name FROM system_schema.keyspaces" | sed -n 's/^ *\([a-z][a-z0-9_]*\) *$/\1/p'); do
    case $ks in system* | keyspace_name) continue ;; esac
    cq -e "GRANT ALL PERMISSIONS ON KEYSPACE \"$ks\" TO analytics" ||
      { echo "roles.sh: granting $ks to analytics again failed" >&2; exit 1; }
  done
  echo "roles.sh: system_auth on $STRATA_CASSANDRA_AUTH_RF replicas"
fi

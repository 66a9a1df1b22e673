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

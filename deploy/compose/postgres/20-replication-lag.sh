#!/bin/sh
# Init script of the compose Postgres (/docker-entrypoint-initdb.d, run once
# by the image's entrypoint as the superuser over the Unix socket, after
# bootstrap.sql): strata_ha.replication_lag() in every service database, as
# the native stack does (deploy/native/postgres/replication_lag.sql), so the
# services' strata_pg_replication_* metrics can read the standbys' lag.
set -e
for db in auth session ledger; do
  psql -v ON_ERROR_STOP=1 --username postgres --no-password --no-psqlrc --quiet \
    --dbname "$db" -v owner="$db" -f /etc/strata/replication_lag.sql
done

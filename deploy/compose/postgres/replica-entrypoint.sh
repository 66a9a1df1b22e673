#!/usr/bin/env bash
# Entrypoint of the compose postgres-replica (profile ha). On first start
# (empty data directory) it clones the primary with pg_basebackup as the
# replication role, over TLS with that role's client certificate, and
# writes standby.signal and primary_conninfo (-R); then it runs the image's
# own entrypoint, which finds an initialised cluster and starts it as a hot
# standby. deploy/compose/failover.sh promotes it.
set -euo pipefail
certs=/run/strata/certs
: "${PGDATA:=/var/lib/postgresql/data}"
if [[ ! -s $PGDATA/PG_VERSION ]]; then
  install -d -o postgres -g postgres -m 0700 "$PGDATA"
  conn="host=${STRATA_PRIMARY_HOST:-postgres} port=5432 user=replicator sslmode=verify-full"
  conn+=" sslrootcert=$certs/ca.pem sslcert=$certs/replicator.pem sslkey=$certs/replicator-key.pem"
  until gosu postgres pg_basebackup -d "$conn application_name=postgres-replica" -D "$PGDATA" \
    -R -X stream --checkpoint=fast; do
    echo "replica: the primary is not ready for a base backup yet; retrying" >&2
    rm -rf "${PGDATA:?}"/*
    sleep 2
  done
fi
exec docker-entrypoint.sh "$@"

#!/usr/bin/env bash
# The part of the official postgres image's entrypoint that Strata relies
# on: as root, own PGDATA and drop to the postgres user; on an empty data
# directory, initdb (POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB,
# POSTGRES_INITDB_ARGS, POSTGRES_HOST_AUTH_METHOD), then run
# /docker-entrypoint-initdb.d/*.sql and *.sh against a server listening on
# the Unix socket only, as the official image does.
set -Eeuo pipefail

if [[ ${1:0:1} == - ]]; then set -- postgres "$@"; fi

if [[ $1 == postgres && $(id -u) == 0 ]]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown -R postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 700 "$PGDATA"
  exec gosu postgres "$BASH_SOURCE" "$@"
fi

if [[ $1 == postgres && ! -s $PGDATA/PG_VERSION ]]; then
  : "${POSTGRES_USER:=postgres}" "${POSTGRES_DB:=$POSTGRES_USER}"
  if [[ -z ${POSTGRES_PASSWORD:-} && ${POSTGRES_HOST_AUTH_METHOD:-} != trust ]]; then
    echo >&2 'error: database is uninitialized and superuser password is not specified (POSTGRES_PASSWORD, or POSTGRES_HOST_AUTH_METHOD=trust)'
    exit 1
  fi
  pwfile=()
  if [[ -n ${POSTGRES_PASSWORD:-} ]]; then
    printf '%s\n' "$POSTGRES_PASSWORD" >/tmp/pgpw
    pwfile=(--pwfile=/tmp/pgpw)
  fi
  # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a word list, as upstream
  initdb --username="$POSTGRES_USER" "${pwfile[@]}" ${POSTGRES_INITDB_ARGS:-} >/dev/null
  rm -f /tmp/pgpw
  auth=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}
  printf '\nhost all all all %s\n' "$auth" >>"$PGDATA/pg_hba.conf"
  # As upstream, the temporary server gets the command's own settings
  # (ssl, hba_file ...) and listens on the Unix socket only.
  args=("${@:2}" -c "listen_addresses=" -p "${PGPORT:-5432}")
  pg_ctl -D "$PGDATA" -o "$(printf '%q ' "${args[@]}")" -w start >/dev/null
  psql=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc)
  if [[ $POSTGRES_DB != postgres ]]; then
    "${psql[@]}" --dbname postgres --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";' >/dev/null
  fi
  for f in /docker-entrypoint-initdb.d/*; do
    case $f in
      *.sh) echo "$0: running $f"; if [[ -x $f ]]; then "$f"; else . "$f"; fi ;;
      *.sql) echo "$0: running $f"; "${psql[@]}" --dbname "$POSTGRES_DB" -f "$f" >/dev/null ;;
      *) [[ -e $f ]] && echo "$0: ignoring $f" ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  echo 'PostgreSQL init process complete; ready for start up.'
fi

exec "$@"

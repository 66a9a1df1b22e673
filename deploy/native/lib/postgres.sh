# shellcheck shell=bash
# PostgreSQL 15 for the native stack: one cluster under $STACK_DIR/postgres,
# run as the postgres OS user, TLS-only on 127.0.0.1:$PG_PORT with client
# certificate authentication. Sourced by stack.sh.

PG_PORT=${STRATA_PG_PORT:-15432}
PG_BIN=${STRATA_PG_BIN:-/usr/lib/postgresql/15/bin}
PG_HOME=$STACK_DIR/postgres
PG_DATA=$PG_HOME/data
PG_SOCKET_DIR=$PG_HOME/socket
PG_START_TIMEOUT=${STRATA_PG_START_TIMEOUT:-60}
PG_STOP_TIMEOUT=${STRATA_PG_STOP_TIMEOUT:-30}
PG_DATABASES=(auth session ledger auth_test session_test ledger_test)

# as_postgres CMD...: run CMD as the postgres OS user from a directory it
# can read (initdb and psql complain about an unreadable working directory).
as_postgres() { (cd / && runuser -u postgres -- "$@"); }

postgres_install() {
  if [[ ! -x $PG_BIN/postgres ]] || ! command -v psql >/dev/null; then
    apt_install postgresql-15 postgresql-client-15
  fi
  [[ -x $PG_BIN/postgres ]] || die "postgres not found in $PG_BIN after install"
  id postgres >/dev/null 2>&1 || die "OS user postgres is missing (it comes with the postgresql-common package)"
}

postgres_pid() {
  local pid=""
  [[ -s $PG_DATA/postmaster.pid ]] && pid=$(head -n 1 "$PG_DATA/postmaster.pid" 2>/dev/null | tr -dc '0-9')
  [[ -n $pid ]] || pid=$(read_pid postgres)
  pid_alive "$pid" postgres && echo "$pid"
}

postgres_running() { [[ -n $(postgres_pid) ]]; }

# postgres_ready: pg_isready as the superuser over the Unix socket (peer
# auth, so no "rejected" noise in the log every probe), and the TCP port open.
postgres_ready() {
  as_postgres "$PG_BIN/pg_isready" -q -h "$PG_SOCKET_DIR" -p "$PG_PORT" -U postgres -d postgres -t 2 &&
    port_in_use "$PG_PORT"
}

# postgres_init: create the cluster once. A half-made data directory (no
# PG_VERSION) from an interrupted run is removed and made again.
postgres_init() {
  make_traversable "$STACK_DIR"
  mkdir -p "$PG_HOME"
  chmod 0755 "$PG_HOME"
  if [[ -d $PG_DATA && ! -s $PG_DATA/PG_VERSION ]]; then
    warn "removing incomplete PostgreSQL data directory $PG_DATA"
    rm -rf "$PG_DATA"
  fi
  if [[ ! -d $PG_DATA ]]; then
    log "postgres: initdb $PG_DATA"
    install -d -o postgres -g postgres -m 0700 "$PG_DATA"
    as_postgres "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --encoding=UTF8 --no-locale \
      --auth-local=peer --auth-host=reject >>"$LOG_DIR/postgres.log" 2>&1 ||
      fail_server postgres "initdb failed"
    printf "\n# Strata's native stack (deploy/native/postgres/strata.conf)\ninclude 'strata.conf'\n" \
      >>"$PG_DATA/postgresql.conf"
  fi
  install -d -o postgres -g postgres -m 0750 "$PG_SOCKET_DIR"
}

# postgres_configure: (re)install config, hba and TLS material into the data
# directory, owned by postgres, so port and certificate changes apply.
postgres_configure() {
  local tmp
  tmp=$(mktemp)
  render "$NATIVE_DIR/postgres/strata.conf" "$tmp" "PORT=$PG_PORT" "SOCKET_DIR=$PG_SOCKET_DIR"
  install -o postgres -g postgres -m 0600 "$tmp" "$PG_DATA/strata.conf"
  rm -f "$tmp"
  install -o postgres -g postgres -m 0600 "$NATIVE_DIR/postgres/pg_hba.conf" "$PG_DATA/pg_hba.conf"
  install -o postgres -g postgres -m 0644 "$CERTS_DIR/postgres.pem" "$PG_DATA/server.pem"
  install -o postgres -g postgres -m 0600 "$CERTS_DIR/postgres-key.pem" "$PG_DATA/server-key.pem"
  install -o postgres -g postgres -m 0644 "$CERTS_DIR/ca.pem" "$PG_DATA/ca.pem"
}

postgres_start() {
  postgres_install
  postgres_init
  postgres_configure
  if port_in_use "$PG_PORT"; then
    fail_server postgres "port $PG_PORT on 127.0.0.1 is already in use by another process"
  fi
  rotate_log postgres
  chown postgres:postgres "$LOG_DIR/postgres.log"
  log "postgres: starting on 127.0.0.1:$PG_PORT"
  # pg_ctl detaches the postmaster; -W: we wait ourselves (pg_isready).
  # 9>&-: the server must not inherit the stack lock.
  as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$LOG_DIR/postgres.log" -W -s start 9>&- ||
    fail_server postgres "pg_ctl start failed"
}

# postgres_wait: wait for pg_isready, then record the pid and apply the
# roles/databases bootstrap.
postgres_wait() {
  local start=$SECONDS
  until postgres_ready; do
    if ((SECONDS - start >= PG_START_TIMEOUT)); then
      fail_server postgres "not ready after ${PG_START_TIMEOUT}s (pg_isready -h $PG_SOCKET_DIR -p $PG_PORT)"
    fi
    # The postmaster writes its pid file at once; once that is gone, it died.
    if ((SECONDS - start >= 3)) && ! postgres_running; then
      fail_server postgres "the server exited during startup"
    fi
    sleep 0.3
  done
  postgres_pid >"$RUN_DIR/postgres.pid"
}

postgres_bootstrap() {
  as_postgres "$PG_BIN/psql" -X -q -h "$PG_SOCKET_DIR" -p "$PG_PORT" -d postgres \
    -f - <"$NATIVE_DIR/postgres/bootstrap.sql" >>"$LOG_DIR/postgres.log" 2>&1 ||
    fail_server postgres "creating roles and databases failed (bootstrap.sql)"
}

# postgres_stop: fast shutdown (SIGINT: roll back open transactions and
# disconnect clients). SIGTERM would be a "smart" shutdown that waits for
# every client to leave. Then SIGQUIT (immediate), then SIGKILL.
postgres_stop() {
  local pid
  pid=$(postgres_pid) || true
  if [[ -n $pid ]]; then
    stop_pid postgres "$pid" postgres "$PG_STOP_TIMEOUT" INT QUIT
  fi
  rm -f "$RUN_DIR/postgres.pid"
}

postgres_status() {
  local pid
  pid=$(postgres_pid) || true
  if [[ -z $pid ]]; then
    echo "postgres   stopped"
  elif postgres_ready; then
    echo "postgres   running  pid $pid  127.0.0.1:$PG_PORT (TLS, client cert)  data $PG_DATA"
  else
    echo "postgres   starting-or-unresponsive  pid $pid  127.0.0.1:$PG_PORT"
  fi
}

postgres_env() {
  local db dsn upper
  echo "export STRATA_PG_HOST=127.0.0.1"
  echo "export STRATA_PG_PORT=$PG_PORT"
  echo "export STRATA_PG_SOCKET_DIR=$(printf %q "$PG_SOCKET_DIR")"
  for db in "${PG_DATABASES[@]}"; do
    local role=${db%_test}
    dsn="postgres://$role@127.0.0.1:$PG_PORT/$db?sslmode=verify-full&sslrootcert=$CERTS_DIR/ca.pem&sslcert=$CERTS_DIR/$role.pem&sslkey=$CERTS_DIR/$role-key.pem"
    upper=$(tr '[:lower:]' '[:upper:]' <<<"$db")
    echo "export STRATA_${upper}_DSN=$(printf %q "$dsn")"
  done
}

# shellcheck shell=bash
# PostgreSQL 15 for the native stack, run as the postgres OS user, TLS-only
# with client certificate authentication. Sourced by stack.sh.
#
# Single node (default): one cluster "postgres" under $STACK_DIR/postgres on
# 127.0.0.1:$PG_PORT.
#
# High availability (STRATA_HA=1, ha.env): two nodes of one cluster,
#   postgres          $STACK_DIR/postgres/data          127.0.0.1:$PG_PORT
#   postgres-replica  $STACK_DIR/postgres-replica/data  127.0.0.1:$PG_REPLICA_PORT
# The node names are fixed (data directory and port); which one is the
# primary is state, kept in $STACK_DIR/postgres-ha/primary (missing: the
# node "postgres"). The other node is a hot standby streaming WAL over TLS
# as the role "replicator" (client certificate CN=replicator, pg_hba.conf).
#
# State machine of a node N (P = the recorded primary):
#
#   N == P    start: initdb if it has no data (only the node "postgres" may
#             be created empty; a promoted node whose data is gone is an
#             error: `stack.sh reset postgres`), then start read-write.
#   N != P    start as a standby. Its data directory is (re)built with
#             `pg_basebackup -R` from P (started first if it is down) when
#             it has no data, is FENCED, is not a standby, or was cloned
#             from another node; otherwise it resumes streaming.
#   failover  `stack.sh failover postgres`: fence P (fast shutdown, whose
#             last WAL the walsender still ships; SIGKILL if it hangs),
#             write standby.signal into P's data directory and a FENCED
#             marker beside it, wait until the standby has received P's
#             shutdown checkpoint, promote it, record it as P, and wait
#             until it accepts writes.
#   FENCED    the old primary never returns as a second writable primary:
#             standby.signal makes even a hand-run `pg_ctl start` read-only,
#             and the next `stack.sh up` replaces its data with a fresh
#             clone of the new primary (a diverged timeline cannot rejoin).
#   reset     `stack.sh reset postgres`: stop both nodes, delete both data
#             directories and the state: the next `up` starts from scratch.
#
# Replication is asynchronous: a planned failover loses nothing (the fenced
# primary's shutdown checkpoint must reach the standby before promotion);
# if the primary crashes instead, commits of its last moments may be lost.

PG_PORT=${STRATA_PG_PORT:-15432}
PG_REPLICA_PORT=${STRATA_PG_REPLICA_PORT:-25433}
PG_BIN=${STRATA_PG_BIN:-/usr/lib/postgresql/15/bin}
PG_HOME=$STACK_DIR/postgres
PG_SOCKET_DIR=$PG_HOME/socket
PG_START_TIMEOUT=${STRATA_PG_START_TIMEOUT:-60}
PG_STOP_TIMEOUT=${STRATA_PG_STOP_TIMEOUT:-30}
PG_DATABASES=(auth session ledger auth_test session_test ledger_test)
PG_HA_DIR=$STACK_DIR/postgres-ha
PG_REPLICATION_ROLE=replicator

# as_postgres CMD...: run CMD as the postgres OS user from a directory it
# can read (initdb and psql complain about an unreadable working directory).
as_postgres() { (cd / && runuser -u postgres -- "$@"); }

# pg_node NAME: set N_PORT, N_HOME, N_DATA and N_SOCK for node NAME.
pg_node() {
  case $1 in
  postgres) N_PORT=$PG_PORT N_HOME=$PG_HOME ;;
  postgres-replica) N_PORT=$PG_REPLICA_PORT N_HOME=$STACK_DIR/postgres-replica ;;
  *) die "unknown postgres node '$1'" ;;
  esac
  N_DATA=$N_HOME/data
  N_SOCK=$N_HOME/socket
}

# pg_primary: the node that is (or should be) the writable primary.
pg_primary() {
  local p=""
  if [[ ${STRATA_HA:-0} == 1 && -s $PG_HA_DIR/primary ]]; then p=$(<"$PG_HA_DIR/primary"); fi
  echo "${p:-postgres}"
}

# pg_other NAME: the other node of the HA pair.
pg_other() { if [[ $1 == postgres ]]; then echo postgres-replica; else echo postgres; fi; }

# pg_psql NAME ARGS...: psql as the superuser over node NAME's Unix socket.
pg_psql() {
  local N_PORT N_HOME N_DATA N_SOCK
  pg_node "$1"
  shift
  as_postgres "$PG_BIN/psql" -X -q -h "$N_SOCK" -p "$N_PORT" -d postgres "$@"
}

# pg_query NAME SQL: one value, unaligned, no headers; fails on error.
pg_query() { pg_psql "$1" -At -v ON_ERROR_STOP=1 -c "$2"; }

postgres_install() {
  if [[ ! -x $PG_BIN/postgres ]] || ! command -v psql >/dev/null; then
    apt_install postgresql-15 postgresql-client-15
  fi
  [[ -x $PG_BIN/postgres ]] || die "postgres not found in $PG_BIN after install"
  id postgres >/dev/null 2>&1 || die "OS user postgres is missing (it comes with the postgresql-common package)"
}

pg_node_pid() {
  local N_PORT N_HOME N_DATA N_SOCK pid=""
  pg_node "$1"
  [[ -s $N_DATA/postmaster.pid ]] && pid=$(head -n 1 "$N_DATA/postmaster.pid" 2>/dev/null | tr -dc '0-9')
  [[ -n $pid ]] || pid=$(read_pid "$1")
  pid_alive "$pid" postgres && echo "$pid"
}

pg_node_running() { [[ -n $(pg_node_pid "$1") ]]; }

# pg_node_ready NAME: pg_isready as the superuser over the Unix socket (peer
# auth, so no "rejected" noise in the log every probe), and the TCP port open.
pg_node_ready() {
  local N_PORT N_HOME N_DATA N_SOCK
  pg_node "$1"
  as_postgres "$PG_BIN/pg_isready" -q -h "$N_SOCK" -p "$N_PORT" -U postgres -d postgres -t 2 &&
    port_in_use "$N_PORT"
}

# pg_node_dirs NAME: the node's home and socket directory, reachable by the
# postgres user. A half-made data directory (no PG_VERSION) from an
# interrupted run is removed.
pg_node_dirs() {
  make_traversable "$STACK_DIR"
  mkdir -p "$N_HOME"
  chmod 0755 "$N_HOME"
  if [[ -d $N_DATA && ! -s $N_DATA/PG_VERSION ]]; then
    warn "removing incomplete PostgreSQL data directory $N_DATA"
    rm -rf "$N_DATA"
  fi
  install -d -o postgres -g postgres -m 0750 "$N_SOCK"
  # The replication client certificate, readable by the postgres user only.
  install -d -o postgres -g postgres -m 0700 "$N_HOME/tls"
  install -o postgres -g postgres -m 0644 "$CERTS_DIR/ca.pem" "$N_HOME/tls/ca.pem"
  install -o postgres -g postgres -m 0644 "$CERTS_DIR/$PG_REPLICATION_ROLE.pem" "$N_HOME/tls/$PG_REPLICATION_ROLE.pem"
  install -o postgres -g postgres -m 0600 "$CERTS_DIR/$PG_REPLICATION_ROLE-key.pem" "$N_HOME/tls/$PG_REPLICATION_ROLE-key.pem"
}

# pg_node_initdb NAME: create the cluster once (the first primary).
pg_node_initdb() {
  [[ -d $N_DATA ]] && return 0
  log "$1: initdb $N_DATA"
  install -d -o postgres -g postgres -m 0700 "$N_DATA"
  as_postgres "$PG_BIN/initdb" -D "$N_DATA" -U postgres --encoding=UTF8 --no-locale \
    --auth-local=peer --auth-host=reject >>"$LOG_DIR/$1.log" 2>&1 ||
    fail_server "$1" "initdb failed"
  printf "\n# Strata's native stack (deploy/native/postgres/strata.conf)\ninclude 'strata.conf'\n" \
    >>"$N_DATA/postgresql.conf"
}

# pg_clear_stale_locks NAME: remove the lock files of a postmaster that is
# not running. A SIGKILLed postmaster whose pid lingers as a zombie (not yet
# reaped by init) still looks alive to PostgreSQL, which would refuse to
# start ("lock file postmaster.pid already exists").
pg_clear_stale_locks() {
  pg_node_running "$1" && return 0
  rm -f "$N_DATA/postmaster.pid" "$N_SOCK/.s.PGSQL.$N_PORT.lock"
}

# pg_node_needs_clone NAME PRIMARY: true when standby NAME cannot resume
# streaming from PRIMARY with the data it has.
pg_node_needs_clone() {
  [[ ! -d $N_DATA || -e $N_HOME/FENCED || ! -e $N_DATA/standby.signal ]] && return 0
  [[ $(cat "$N_HOME/following" 2>/dev/null) != "$2" ]]
}

# pg_node_clone NAME PRIMARY: replace NAME's data with a base backup of the
# running PRIMARY, streamed over TLS as the replication role; -R writes
# standby.signal and primary_conninfo.
pg_node_clone() {
  local name=$1 primary=$2 t0=$SECONDS pport conninfo
  pport=$(pg_node "$primary" && echo "$N_PORT")
  log "$name: cloning from $primary (127.0.0.1:$pport) with pg_basebackup"
  rm -rf "$N_DATA"
  install -d -o postgres -g postgres -m 0700 "$N_DATA"
  conninfo="host=127.0.0.1 port=$pport user=$PG_REPLICATION_ROLE application_name=$name sslmode=verify-full"
  conninfo+=" sslrootcert=$N_HOME/tls/ca.pem sslcert=$N_HOME/tls/$PG_REPLICATION_ROLE.pem sslkey=$N_HOME/tls/$PG_REPLICATION_ROLE-key.pem"
  if ! as_postgres "$PG_BIN/pg_basebackup" -D "$N_DATA" -R -X stream -c fast -d "$conninfo" \
    >>"$LOG_DIR/$name.log" 2>&1; then
    rm -rf "$N_DATA"
    fail_server "$name" "pg_basebackup from $primary failed"
  fi
  echo "$primary" >"$N_HOME/following"
  rm -f "$N_HOME/FENCED"
  log "$name: cloned in $((SECONDS - t0))s"
}

# pg_node_configure NAME: (re)install config, hba and TLS material into the
# data directory, owned by postgres, so port and certificate changes apply.
pg_node_configure() {
  local tmp
  tmp=$(mktemp)
  render "$NATIVE_DIR/postgres/strata.conf" "$tmp" "PORT=$N_PORT" "SOCKET_DIR=$N_SOCK" "NAME=$1"
  install -o postgres -g postgres -m 0600 "$tmp" "$N_DATA/strata.conf"
  rm -f "$tmp"
  install -o postgres -g postgres -m 0600 "$NATIVE_DIR/postgres/pg_hba.conf" "$N_DATA/pg_hba.conf"
  install -o postgres -g postgres -m 0644 "$CERTS_DIR/postgres.pem" "$N_DATA/server.pem"
  install -o postgres -g postgres -m 0600 "$CERTS_DIR/postgres-key.pem" "$N_DATA/server-key.pem"
  install -o postgres -g postgres -m 0644 "$CERTS_DIR/ca.pem" "$N_DATA/ca.pem"
}

# pg_node_start NAME: start node NAME in the role the state gives it (see
# the state machine above); does not wait for readiness.
pg_node_start() {
  local name=$1 primary N_PORT N_HOME N_DATA N_SOCK
  primary=$(pg_primary)
  postgres_install
  pg_node "$name"
  pg_node_dirs
  rotate_log "$name"
  chown postgres:postgres "$LOG_DIR/$name.log"
  if [[ $name == "$primary" ]]; then
    if [[ -e $N_HOME/FENCED ]]; then
      fail_server "$name" "recorded as primary but fenced ($N_HOME/FENCED); \`stack.sh reset postgres\` starts over"
    fi
    if [[ $name != postgres && ! -d $N_DATA ]]; then
      fail_server "$name" "the promoted primary has no data directory; \`stack.sh reset postgres\` starts over"
    fi
    pg_node_initdb "$name"
    rm -f "$N_DATA/standby.signal" # a leftover from a clone of a node that was promoted later
  elif pg_node_needs_clone "$name" "$primary"; then
    if ! pg_node_running "$primary"; then
      log "$name: the primary $primary is down; starting it first"
      (pg_node_start "$primary")
    fi
    pg_node_wait "$primary"
    pg_node_bootstrap "$primary"
    touch "$RUN_DIR/$primary.bootstrapped"
    pg_node "$name"
    pg_node_clone "$name" "$primary"
  fi
  pg_node_configure "$name"
  pg_clear_stale_locks "$name"
  if port_in_use "$N_PORT"; then
    fail_server "$name" "port $N_PORT on 127.0.0.1 is already in use by another process"
  fi
  log "$name: starting on 127.0.0.1:$N_PORT$([[ $name != "$primary" ]] && echo " as a standby of $primary")"
  # pg_ctl detaches the postmaster; -W: we wait ourselves (pg_isready).
  # 9>&-: the server must not inherit the stack lock.
  as_postgres "$PG_BIN/pg_ctl" -D "$N_DATA" -l "$LOG_DIR/$name.log" -W -s start 9>&- ||
    fail_server "$name" "pg_ctl start failed"
}

# pg_node_wait NAME: wait for pg_isready, then record the pid.
pg_node_wait() {
  local name=$1 start=$SECONDS
  until pg_node_ready "$name"; do
    if ((SECONDS - start >= PG_START_TIMEOUT)); then
      fail_server "$name" "not ready after ${PG_START_TIMEOUT}s (pg_isready on port $(pg_node "$name" && echo "$N_PORT"))"
    fi
    # The postmaster writes its pid file at once; once that is gone, it died.
    if ((SECONDS - start >= 3)) && ! pg_node_running "$name"; then
      fail_server "$name" "the server exited during startup"
    fi
    sleep 0.3
  done
  pg_node_pid "$name" >"$RUN_DIR/$name.pid"
}

# pg_node_bootstrap NAME: roles, databases and the replication-lag view on
# the primary; a standby receives them through replication.
pg_node_bootstrap() {
  local name=$1 db
  [[ $name == "$(pg_primary)" ]] || return 0
  pg_psql "$name" -f - <"$NATIVE_DIR/postgres/bootstrap.sql" >>"$LOG_DIR/$name.log" 2>&1 ||
    fail_server "$name" "creating roles and databases failed (bootstrap.sql)"
  for db in "${PG_DATABASES[@]}"; do
    pg_psql "$name" -d "$db" -v owner="${db%_test}" -f - <"$NATIVE_DIR/postgres/replication_lag.sql" \
      >>"$LOG_DIR/$name.log" 2>&1 || fail_server "$name" "replication_lag.sql in $db failed"
  done
}

# pg_node_stop NAME: fast shutdown (SIGINT: roll back open transactions and
# disconnect clients). SIGTERM would be a "smart" shutdown that waits for
# every client to leave. Then SIGQUIT (immediate), then SIGKILL.
pg_node_stop() {
  local pid
  pid=$(pg_node_pid "$1") || true
  if [[ -n $pid ]]; then
    stop_pid "$1" "$pid" postgres "$PG_STOP_TIMEOUT" INT QUIT
  fi
  rm -f "$RUN_DIR/$1.pid"
}

pg_node_status() {
  local name=$1 pid role=primary w=10 N_PORT N_HOME N_DATA N_SOCK
  [[ ${STRATA_HA:-0} == 1 ]] && w=17
  pg_node "$name"
  pid=$(pg_node_pid "$name") || true
  [[ $name == "$(pg_primary)" ]] || role=standby
  [[ -e $N_HOME/FENCED ]] && role="fenced (rebuilt as a standby on the next up)"
  if [[ -z $pid ]]; then
    printf '%-*s stopped%s\n' "$w" "$name" "$([[ ${STRATA_HA:-0} == 1 ]] && echo "  ($role)")"
  elif pg_node_ready "$name"; then
    if [[ ${STRATA_HA:-0} == 1 ]]; then
      [[ $(pg_query "$name" "SELECT pg_is_in_recovery()" 2>/dev/null) == t ]] && role=standby || role=primary
      role=" $role "
    else
      role="  "
    fi
    printf '%-*s running%spid %s  127.0.0.1:%s (TLS, client cert)  data %s\n' "$w" "$name" "$role" "$pid" "$N_PORT" "$N_DATA"
  else
    printf '%-*s starting-or-unresponsive  pid %s  127.0.0.1:%s\n' "$w" "$name" "$pid" "$N_PORT"
  fi
}

# ---------------------------------------------------- stack.sh functions --

postgres_pid() { pg_node_pid postgres; }
postgres_running() { pg_node_running postgres; }
postgres_ready() { pg_node_ready postgres; }
postgres_start() { pg_node_start postgres; }
postgres_wait() { pg_node_wait postgres; }
postgres_bootstrap() { pg_node_bootstrap postgres; }
postgres_stop() { pg_node_stop postgres; }
postgres_status() { pg_node_status postgres; }

postgres_replica_install() { postgres_install; }
postgres_replica_pid() { pg_node_pid postgres-replica; }
postgres_replica_running() { pg_node_running postgres-replica; }
postgres_replica_start() { pg_node_start postgres-replica; }
postgres_replica_wait() { pg_node_wait postgres-replica; }
postgres_replica_bootstrap() { pg_node_bootstrap postgres-replica; }
postgres_replica_stop() { pg_node_stop postgres-replica; }
postgres_replica_status() { pg_node_status postgres-replica; }

# pg_hosts: the host list of a client URL; in the HA topology both nodes,
# so a client with target_session_attrs=read-write finds the primary.
pg_hosts() {
  if [[ ${STRATA_HA:-0} == 1 ]]; then
    echo "127.0.0.1:$PG_PORT,127.0.0.1:$PG_REPLICA_PORT"
  else
    echo "127.0.0.1:$PG_PORT"
  fi
}

postgres_env() {
  local db dsn upper extra=""
  [[ ${STRATA_HA:-0} == 1 ]] && extra="&target_session_attrs=read-write"
  echo "export STRATA_PG_HOST=127.0.0.1"
  echo "export STRATA_PG_PORT=$PG_PORT"
  echo "export STRATA_PG_SOCKET_DIR=$(printf %q "$PG_SOCKET_DIR")"
  for db in "${PG_DATABASES[@]}"; do
    local role=${db%_test}
    dsn="postgres://$role@$(pg_hosts)/$db?sslmode=verify-full$extra&sslrootcert=$CERTS_DIR/ca.pem&sslcert=$CERTS_DIR/$role.pem&sslkey=$CERTS_DIR/$role-key.pem"
    upper=$(tr '[:lower:]' '[:upper:]' <<<"$db")
    echo "export STRATA_${upper}_DSN=$(printf %q "$dsn")"
  done
}

postgres_replica_env() { echo "export STRATA_PG_REPLICA_PORT=$PG_REPLICA_PORT"; }

# --------------------------------------------------------------- failover --

# pg_lsn_ge A B: true if LSN A >= LSN B (X/Y hexadecimal halves).
pg_lsn_ge() {
  local a=$1 b=$2
  (( (16#${a%/*} << 32 | 16#${a#*/}) >= (16#${b%/*} << 32 | 16#${b#*/}) ))
}

# pg_fence NAME: stop NAME (if it runs) and make sure it can only come back
# read-only: standby.signal in its data directory, FENCED beside it.
pg_fence() {
  local name=$1 N_PORT N_HOME N_DATA N_SOCK
  pg_node "$name"
  pg_node_stop "$name"
  rm -f "$RUN_DIR/$name.bootstrapped"
  pg_clear_stale_locks "$name"
  if [[ -d $N_DATA ]]; then
    install -o postgres -g postgres -m 0600 /dev/null "$N_DATA/standby.signal"
  fi
  date -u +"fenced %Y-%m-%dT%H:%M:%SZ by stack.sh failover postgres" >"$N_HOME/FENCED"
}

# postgres_failover: promote the standby; see the state machine above.
# Prints one line to stdout: the promoted node and the time taken.
postgres_failover() {
  [[ ${STRATA_HA:-0} == 1 ]] || die "failover postgres needs the HA topology (source deploy/native/ha.env)"
  local old new t0 ckpt="" recv i took N_PORT N_HOME N_DATA N_SOCK
  old=$(pg_primary)
  new=$(pg_other "$old")
  pg_node_running "$new" || die "failover postgres: the standby $new is not running"
  [[ $(pg_query "$new" "SELECT pg_is_in_recovery()") == t ]] ||
    die "failover postgres: $new is not in recovery (not a standby); the state says the primary is $old"
  t0=$EPOCHREALTIME
  pg_node "$old"
  if pg_node_running "$old"; then
    log "failover postgres: fencing $old (fast shutdown)"
    pg_fence "$old"
    if as_postgres "$PG_BIN/pg_controldata" "$N_DATA" 2>/dev/null | grep -q 'cluster state: *shut down$'; then
      ckpt=$(as_postgres "$PG_BIN/pg_controldata" "$N_DATA" | sed -n 's/^Latest checkpoint location: *//p')
    fi
  else
    warn "failover postgres: $old is not running (crashed?); fencing it; commits it had not shipped are lost"
    pg_fence "$old"
  fi
  if [[ -n $ckpt ]]; then
    # The standby must have received the old primary's shutdown checkpoint:
    # then every transaction the old primary acknowledged is on it.
    for ((i = 0; i < 100; i++)); do
      recv=$(pg_query "$new" "SELECT pg_last_wal_receive_lsn()")
      [[ -n $recv ]] && pg_lsn_ge "$recv" "$ckpt" && break
      sleep 0.1
    done
    if [[ -n $recv ]] && pg_lsn_ge "$recv" "$ckpt"; then
      log "failover postgres: $new has received $old's WAL up to its shutdown checkpoint $ckpt"
    else
      warn "failover postgres: $new received WAL up to ${recv:-nothing}, short of $old's checkpoint $ckpt; promoting anyway"
    fi
  fi
  log "failover postgres: promoting $new"
  [[ $(pg_query "$new" "SELECT pg_promote(true, 60)") == t ]] || die "failover postgres: pg_promote on $new failed"
  mkdir -p "$PG_HA_DIR"
  echo "$new" >"$PG_HA_DIR/primary.tmp" && mv -f "$PG_HA_DIR/primary.tmp" "$PG_HA_DIR/primary"
  pg_node "$new"
  rm -f "$N_HOME/following"
  # Writable: out of recovery and able to assign a transaction id.
  for ((i = 0; i < 300; i++)); do
    pg_query "$new" "SELECT pg_is_in_recovery() = false AND txid_current() > 0" 2>/dev/null | grep -qx t && break
    sleep 0.1
  done
  ((i < 300)) || die "failover postgres: $new does not accept writes 30s after promotion"
  took=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }')
  log "failover postgres: $old fenced; \`stack.sh up\` rebuilds it as a standby of $new"
  echo "failover postgres: $new (127.0.0.1:$N_PORT) accepts writes after ${took}s"
}

# postgres_reset: stop both nodes and delete their data and the HA state.
postgres_reset() {
  local n N_PORT N_HOME N_DATA N_SOCK
  for n in postgres-replica postgres; do
    pg_node_stop "$n"
    rm -f "$RUN_DIR/$n.bootstrapped"
    pg_node "$n"
    rm -rf "$N_DATA" "$N_HOME/FENCED" "$N_HOME/following"
  done
  rm -rf "$PG_HA_DIR"
  log "reset postgres: both nodes stopped, data deleted"
}

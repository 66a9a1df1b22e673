# shellcheck shell=bash
# Redis 7 for the native stack: TLS only (no plaintext port), client
# certificates required, no persistence. Sourced by stack.sh.
#
# Single node (default): "redis" on 127.0.0.1:$REDIS_PORT.
#
# High availability (STRATA_HA=1, ha.env):
#   redis          127.0.0.1:$REDIS_PORT           $STACK_DIR/redis
#   redis-replica  127.0.0.1:$REDIS_REPLICA_PORT   $STACK_DIR/redis-replica
#   sentinel       three Sentinels on $STRATA_SENTINEL_PORTS (26381-26383),
#                  one server of stack.sh, quorum 2, master name
#                  $REDIS_MASTER_NAME, in $STACK_DIR/sentinel
# Which node is the master is Sentinel's state, not a fixed name: a node
# starts as a replica of the master the Sentinels name (a live Sentinel, else
# the master recorded in their config files, else "redis"), so a restarted
# old master comes back as a replica. Replication and Sentinel connections
# are TLS with the redis certificate as client certificate
# (tls-replication yes). Sentinel rewrites its config file (the current
# master, the other Sentinels, the replicas): the files persist across
# restarts; each node gets an empty, writable config file for the
# CONFIG REWRITE that Sentinel sends when it reconfigures a node.
#
# `stack.sh failover redis` asks the Sentinels for a failover (SENTINEL
# FAILOVER) and waits until they name the promoted replica as master.

REDIS_PORT=${STRATA_REDIS_PORT:-16379}
REDIS_REPLICA_PORT=${STRATA_REDIS_REPLICA_PORT:-26380}
REDIS_HOME=$STACK_DIR/redis
REDIS_START_TIMEOUT=${STRATA_REDIS_START_TIMEOUT:-30}
REDIS_STOP_TIMEOUT=${STRATA_REDIS_STOP_TIMEOUT:-10}
REDIS_MASTER_NAME=${STRATA_REDIS_MASTER_NAME:-strata}
IFS=, read -r -a SENTINEL_PORTS <<<"${STRATA_SENTINEL_PORTS:-26381,26382,26383}"
SENTINEL_HOME=$STACK_DIR/sentinel
SENTINEL_QUORUM=${STRATA_SENTINEL_QUORUM:-2}
SENTINEL_DOWN_AFTER_MS=${STRATA_SENTINEL_DOWN_AFTER_MS:-2000}
SENTINEL_FAILOVER_TIMEOUT_MS=${STRATA_SENTINEL_FAILOVER_TIMEOUT_MS:-10000}

redis_install() {
  command -v redis-server >/dev/null && command -v redis-cli >/dev/null && return 0
  apt_install redis-server redis-tools
  redis_disable_system_service
}

# redis_disable_system_service: the Debian package registers its own
# redis-server service on port 6379. apt_install keeps maintainer scripts
# from starting it; this also disables it for the next boot and stops it if
# it runs anyway. It never touches our instance (different pid file).
redis_disable_system_service() {
  local pid
  if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null; then
    systemctl disable --now redis-server.service >/dev/null 2>&1 || true
  fi
  pid=$(cat /run/redis/redis-server.pid 2>/dev/null || true)
  if pid_alive "$pid" redis-server; then
    log "stopping the Debian redis-server service on port 6379"
    service redis-server stop >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
  fi
}

# rd_cli PORT ARGS...: redis-cli over mutual TLS with the redis certificate
# (it is also a client certificate of the project CA), at most 5 s. A Redis
# node is asked as the ACL user admin (password through REDISCLI_AUTH, never
# on the command line); a Sentinel has no users.
rd_cli() {
  local port=$1 p
  shift
  local -a cli=(timeout 5 redis-cli --tls --cacert "$CERTS_DIR/ca.pem" --cert "$CERTS_DIR/redis.pem"
    --key "$CERTS_DIR/redis-key.pem" -h 127.0.0.1 -p "$port" --no-auth-warning)
  for p in "${SENTINEL_PORTS[@]}"; do
    if [[ $p == "$port" ]]; then
      "${cli[@]}" "$@"
      return
    fi
  done
  REDISCLI_AUTH=$(redis_password admin) "${cli[@]}" --user admin "$@"
}

# redis_password USER: the ACL user's password (tools/cmd/certs makes one per
# user in certs/redis-USER.password).
redis_password() { tr -d '\n' <"$CERTS_DIR/redis-$1.password"; }

# redis_acl FILE: the ACL users. A client certificate from the project CA
# only opens the TLS connection; every command then needs a user:
#   default  off: no command without AUTH.
#   admin    the stack scripts, replication and Sentinel: everything.
#   session  the session service, the cache's only user: its own
#            session:* keys, reads and writes, nothing dangerous or
#            administrative; no other workload (the ledger, the load tool)
#            has a Redis user, so their certificates cannot write a session.
# Passwords are stored as SHA-256 (#...), as Redis compares them.
redis_acl() {
  local f=$1 admin session
  admin=$(redis_password admin | sha256sum | cut -d' ' -f1)
  session=$(redis_password session | sha256sum | cut -d' ' -f1)
  (
    umask 077
    cat >"$f.tmp" <<ACL
user default off
user admin on #$admin ~* &* +@all
user session on #$session ~session:* resetchannels -@all +@read +@write +@connection -@dangerous -@admin
ACL
  )
  mv -f "$f.tmp" "$f"
}

redis_cli() { rd_cli "$REDIS_PORT" "$@"; }

# rd_node NAME: set R_PORT and R_HOME for Redis node NAME.
rd_node() {
  case $1 in
  redis) R_PORT=$REDIS_PORT R_HOME=$REDIS_HOME ;;
  redis-replica) R_PORT=$REDIS_REPLICA_PORT R_HOME=$STACK_DIR/redis-replica ;;
  *) die "unknown redis node '$1'" ;;
  esac
}

rd_node_pid() {
  local pid
  pid=$(read_pid "$1")
  pid_alive "$pid" redis-server && echo "$pid"
}

rd_node_running() { [[ -n $(rd_node_pid "$1") ]]; }

rd_node_ready() {
  local R_PORT R_HOME
  rd_node "$1"
  [[ $(rd_cli "$R_PORT" ping 2>/dev/null) == PONG ]]
}

# rd_role PORT: "master" or "slave" as the node on PORT reports it.
rd_role() { rd_cli "$1" role 2>/dev/null | head -n 1; }

# sentinel_master_port: the port of the master the Sentinels name: asked
# of a live Sentinel, else read from their config files, else REDIS_PORT.
sentinel_master_port() {
  local p addr f
  for p in "${SENTINEL_PORTS[@]}"; do
    addr=$(rd_cli "$p" sentinel get-master-addr-by-name "$REDIS_MASTER_NAME" 2>/dev/null | sed -n 2p)
    if [[ $addr =~ ^[0-9]+$ ]]; then
      echo "$addr"
      return 0
    fi
  done
  for f in "$SENTINEL_HOME"/sentinel-*.conf; do
    [[ -s $f ]] || continue
    addr=$(awk -v m="$REDIS_MASTER_NAME" '$1 == "sentinel" && $2 == "monitor" && $3 == m { print $5; exit }' "$f")
    if [[ $addr =~ ^[0-9]+$ ]]; then
      echo "$addr"
      return 0
    fi
  done
  echo "$REDIS_PORT"
}

rd_node_start() {
  local name=$1 R_PORT R_HOME master
  local -a ha=()
  rd_node "$name"
  redis_install
  mkdir -p "$R_HOME"
  if port_in_use "$R_PORT"; then
    fail_server "$name" "port $R_PORT on 127.0.0.1 is already in use by another process"
  fi
  rotate_log "$name"
  redis_acl "$R_HOME/users.acl"
  if [[ ${STRATA_HA:-0} == 1 ]]; then
    # A fresh config file each start: only Sentinel's CONFIG REWRITE
    # writes to it; the command line below decides the role. A replica
    # authenticates to its master as admin (kept out of the command line).
    (umask 077 && printf 'masteruser admin\nmasterauth %s\n' "$(redis_password admin)" >"$R_HOME/redis.conf")
    ha=("$R_HOME/redis.conf")
    master=$(sentinel_master_port)
    if [[ $master != "$R_PORT" ]]; then
      log "$name: starting on 127.0.0.1:$R_PORT as a replica of 127.0.0.1:$master (TLS only)"
      ha+=(--replicaof 127.0.0.1 "$master")
    else
      log "$name: starting on 127.0.0.1:$R_PORT as the master (TLS only)"
    fi
    ha+=(--tls-replication yes --replica-announce-ip 127.0.0.1 --repl-diskless-sync yes
      --repl-diskless-sync-delay 0)
  else
    log "$name: starting on 127.0.0.1:$R_PORT (TLS only)"
  fi
  # --port 0 closes the plaintext port; the TLS port requires a client
  # certificate signed by the project CA. No RDB/AOF: a test cache.
  # setsid: own session, so a test runner's Ctrl-C does not reach it.
  # 9>&-: the server must not inherit the stack lock.
  setsid redis-server \
    "${ha[@]:0:1}" \
    --port 0 \
    --tls-port "$R_PORT" \
    --bind 127.0.0.1 \
    --protected-mode yes \
    --tls-cert-file "$CERTS_DIR/redis.pem" \
    --tls-key-file "$CERTS_DIR/redis-key.pem" \
    --tls-ca-cert-file "$CERTS_DIR/ca.pem" \
    --tls-auth-clients yes \
    --aclfile "$R_HOME/users.acl" \
    --tls-protocols "TLSv1.2 TLSv1.3" \
    --dir "$R_HOME" \
    --save "" \
    --appendonly no \
    --daemonize no \
    --supervised no \
    --logfile "" \
    --loglevel notice \
    "${ha[@]:1}" \
    </dev/null >>"$LOG_DIR/$name.log" 2>&1 9>&- &
  echo $! >"$RUN_DIR/$name.pid"
}

# rd_node_wait NAME: PONG; a replica also needs its link to the master up.
rd_node_wait() {
  local name=$1 start=$SECONDS R_PORT R_HOME
  rd_node "$name"
  until rd_node_ready "$name"; do
    rd_node_running "$name" || fail_server "$name" "the server exited during startup"
    if ((SECONDS - start >= REDIS_START_TIMEOUT)); then
      fail_server "$name" "no PONG after ${REDIS_START_TIMEOUT}s (redis-cli --tls -p $R_PORT ping)"
    fi
    sleep 0.2
  done
  [[ ${STRATA_HA:-0} == 1 && $(rd_role "$R_PORT") == slave ]] || return 0
  until rd_cli "$R_PORT" info replication 2>/dev/null | grep -q '^master_link_status:up'; do
    if ((SECONDS - start >= REDIS_START_TIMEOUT)); then
      fail_server "$name" "replication link to the master not up after ${REDIS_START_TIMEOUT}s"
    fi
    sleep 0.2
  done
}

rd_node_stop() {
  local pid
  pid=$(rd_node_pid "$1") || true
  [[ -n $pid ]] && stop_pid "$1" "$pid" redis-server "$REDIS_STOP_TIMEOUT"
  rm -f "$RUN_DIR/$1.pid"
}

rd_node_status() {
  local name=$1 pid w=10 role="" R_PORT R_HOME
  rd_node "$name"
  [[ ${STRATA_HA:-0} == 1 ]] && w=17
  pid=$(rd_node_pid "$name") || true
  if [[ -z $pid ]]; then
    printf '%-*s stopped\n' "$w" "$name"
  elif rd_node_ready "$name"; then
    [[ ${STRATA_HA:-0} == 1 ]] && role=" $(rd_role "$R_PORT" | sed 's/slave/replica/')"
    printf '%-*s running%s  pid %s  127.0.0.1:%s (TLS only, client cert)\n' "$w" "$name" "$role" "$pid" "$R_PORT"
  else
    printf '%-*s starting-or-unresponsive  pid %s  127.0.0.1:%s\n' "$w" "$name" "$pid" "$R_PORT"
  fi
}

# ---------------------------------------------------- stack.sh functions --

redis_pid() { rd_node_pid redis; }
redis_running() { rd_node_running redis; }
redis_ready() { rd_node_ready redis; }
redis_start() { rd_node_start redis; }
redis_wait() { rd_node_wait redis; }
redis_bootstrap() { :; }
redis_stop() { rd_node_stop redis; }
redis_status() { rd_node_status redis; }

redis_env() {
  echo "export STRATA_REDIS_HOST=127.0.0.1"
  echo "export STRATA_REDIS_PORT=$REDIS_PORT"
  echo "export STRATA_REDIS_ADDR=127.0.0.1:$REDIS_PORT"
  echo "export STRATA_REDIS_URL=rediss://127.0.0.1:$REDIS_PORT/0"
  echo "export STRATA_REDIS_USERNAME=session"
  echo "export STRATA_REDIS_PASSWORD_FILE=$(printf %q "$CERTS_DIR/redis-session.password")"
}

redis_replica_install() { redis_install; }
redis_replica_pid() { rd_node_pid redis-replica; }
redis_replica_running() { rd_node_running redis-replica; }
redis_replica_start() { rd_node_start redis-replica; }
redis_replica_wait() { rd_node_wait redis-replica; }
redis_replica_bootstrap() { :; }
redis_replica_stop() { rd_node_stop redis-replica; }
redis_replica_status() { rd_node_status redis-replica; }
redis_replica_env() { echo "export STRATA_REDIS_REPLICA_PORT=$REDIS_REPLICA_PORT"; }

# ---------------------------------------------------------------- sentinel --

sentinel_install() { redis_install; }

# sentinel_each_pid: "N PID" for each running Sentinel (N = 1, 2, 3).
sentinel_each_pid() {
  local i pid
  for i in "${!SENTINEL_PORTS[@]}"; do
    pid=$(read_pid "sentinel-$((i + 1))")
    pid_alive "$pid" redis-server && echo "$((i + 1)) $pid"
  done
  return 0
}

# sentinel_pid: the pids of the running Sentinels, one a line (exit 1 if none).
sentinel_pid() {
  local out
  out=$(sentinel_each_pid | awk '{ print $2 }')
  [[ -n $out ]] && echo "$out"
}

sentinel_running() { [[ $(sentinel_each_pid | wc -l) -eq ${#SENTINEL_PORTS[@]} ]]; }

# sentinel_conf N PORT: write sentinel-N.conf unless it exists (Sentinel
# keeps its state there: the current master, the other Sentinels, the
# replicas). A new file monitors the master the other Sentinels name.
sentinel_conf() {
  local n=$1 port=$2 f="$SENTINEL_HOME/sentinel-$1.conf"
  [[ -s $f ]] && return 0
  cat >"$f.tmp" <<CONF
# Sentinel $n of Strata's native HA stack (deploy/native/lib/redis.sh).
# Sentinel rewrites this file; delete it to start from the defaults.
port 0
tls-port $port
bind 127.0.0.1
tls-cert-file "$CERTS_DIR/redis.pem"
tls-key-file "$CERTS_DIR/redis-key.pem"
tls-ca-cert-file "$CERTS_DIR/ca.pem"
tls-auth-clients yes
tls-replication yes
tls-protocols "TLSv1.2 TLSv1.3"
daemonize no
logfile ""
dir "$SENTINEL_HOME"
sentinel announce-ip 127.0.0.1
sentinel announce-port $port
sentinel resolve-hostnames no
sentinel monitor $REDIS_MASTER_NAME 127.0.0.1 $(sentinel_master_port) $SENTINEL_QUORUM
sentinel auth-user $REDIS_MASTER_NAME admin
sentinel auth-pass $REDIS_MASTER_NAME $(redis_password admin)
sentinel down-after-milliseconds $REDIS_MASTER_NAME $SENTINEL_DOWN_AFTER_MS
sentinel failover-timeout $REDIS_MASTER_NAME $SENTINEL_FAILOVER_TIMEOUT_MS
sentinel parallel-syncs $REDIS_MASTER_NAME 1
CONF
  mv -f "$f.tmp" "$f"
}

sentinel_start() {
  local i n port pid
  redis_install
  mkdir -p "$SENTINEL_HOME"
  for i in "${!SENTINEL_PORTS[@]}"; do
    n=$((i + 1)) port=${SENTINEL_PORTS[i]}
    pid=$(read_pid "sentinel-$n")
    pid_alive "$pid" redis-server && continue
    if port_in_use "$port"; then
      fail_server "sentinel-$n" "port $port on 127.0.0.1 is already in use by another process"
    fi
    sentinel_conf "$n" "$port"
    rotate_log "sentinel-$n"
    log "sentinel-$n: starting on 127.0.0.1:$port (TLS only), watching $REDIS_MASTER_NAME"
    setsid redis-server "$SENTINEL_HOME/sentinel-$n.conf" --sentinel \
      </dev/null >>"$LOG_DIR/sentinel-$n.log" 2>&1 9>&- &
    echo $! >"$RUN_DIR/sentinel-$n.pid"
  done
}

# sentinel_wait: every Sentinel answers and knows the master and the other
# Sentinels, so a quorum can agree on a failover from now on.
sentinel_wait() {
  local i port start=$SECONDS others=$((${#SENTINEL_PORTS[@]} - 1)) info
  for i in "${!SENTINEL_PORTS[@]}"; do
    port=${SENTINEL_PORTS[i]}
    until info=$(rd_cli "$port" sentinel master "$REDIS_MASTER_NAME" 2>/dev/null) &&
      [[ $(sed -n '/^num-other-sentinels$/{n;p}' <<<"$info") -ge $others ]]; do
      pid_alive "$(read_pid "sentinel-$((i + 1))")" redis-server ||
        fail_server "sentinel-$((i + 1))" "the Sentinel exited during startup"
      if ((SECONDS - start >= REDIS_START_TIMEOUT)); then
        fail_server "sentinel-$((i + 1))" "does not know $REDIS_MASTER_NAME and $others other Sentinels after ${REDIS_START_TIMEOUT}s"
      fi
      sleep 0.3
    done
  done
}

sentinel_bootstrap() { :; }

sentinel_stop() {
  local n pid
  while read -r n pid; do
    [[ -n $pid ]] && stop_pid "sentinel-$n" "$pid" redis-server "$REDIS_STOP_TIMEOUT"
    rm -f "$RUN_DIR/sentinel-$n.pid"
  done < <(sentinel_each_pid)
}

sentinel_status() {
  local i port pid
  for i in "${!SENTINEL_PORTS[@]}"; do
    port=${SENTINEL_PORTS[i]}
    pid=$(read_pid "sentinel-$((i + 1))")
    if pid_alive "$pid" redis-server; then
      printf '%-17s running pid %s  127.0.0.1:%s (TLS only)  master %s at 127.0.0.1:%s\n' "sentinel-$((i + 1))" "$pid" "$port" \
        "$REDIS_MASTER_NAME" "$(rd_cli "$port" sentinel get-master-addr-by-name "$REDIS_MASTER_NAME" 2>/dev/null | sed -n 2p)"
    else
      printf '%-17s stopped\n' "sentinel-$((i + 1))"
    fi
  done
}

sentinel_env() {
  local IFS=, addrs=() p
  for p in "${SENTINEL_PORTS[@]}"; do addrs+=("127.0.0.1:$p"); done
  echo "export STRATA_REDIS_SENTINELS=${addrs[*]}"
  echo "export STRATA_REDIS_MASTER_NAME=$REDIS_MASTER_NAME"
}

# redis_failover: SENTINEL FAILOVER, then wait until the Sentinels name a
# new master that reports itself as master. Prints one line to stdout.
redis_failover() {
  [[ ${STRATA_HA:-0} == 1 ]] || die "failover redis needs the HA topology (source deploy/native/ha.env)"
  local old new="" t0 took i p port=""
  for p in "${SENTINEL_PORTS[@]}"; do
    [[ $(rd_cli "$p" ping 2>/dev/null) == PONG ]] && port=$p && break
  done
  [[ -n $port ]] || die "failover redis: no Sentinel answers on ${SENTINEL_PORTS[*]}"
  old=$(sentinel_master_port)
  t0=$EPOCHREALTIME
  log "failover redis: asking sentinel 127.0.0.1:$port to fail over $REDIS_MASTER_NAME (master 127.0.0.1:$old)"
  [[ $(rd_cli "$port" sentinel failover "$REDIS_MASTER_NAME") == OK ]] ||
    die "failover redis: SENTINEL FAILOVER refused (no healthy replica?)"
  for ((i = 0; i < 300; i++)); do
    new=$(rd_cli "$port" sentinel get-master-addr-by-name "$REDIS_MASTER_NAME" 2>/dev/null | sed -n 2p)
    [[ -n $new && $new != "$old" && $(rd_role "$new") == master ]] && break
    sleep 0.1
  done
  ((i < 300)) || die "failover redis: no new master 30s after SENTINEL FAILOVER"
  took=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }')
  # Sentinel converts the old master only after it has reported itself as
  # master for a while (~10 s); meanwhile it would accept writes no client
  # of the Sentinels sees. Demote it now, as Sentinel will.
  if [[ $(rd_role "$old") == master ]]; then
    rd_cli "$old" replicaof 127.0.0.1 "$new" >/dev/null 2>&1 || true
  fi
  log "failover redis: 127.0.0.1:$old is now a replica of 127.0.0.1:$new"
  echo "failover redis: 127.0.0.1:$new is the master after ${took}s"
}

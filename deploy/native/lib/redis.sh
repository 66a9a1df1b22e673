# shellcheck shell=bash
# Redis 7 for the native stack: TLS only (no plaintext port) on
# 127.0.0.1:$REDIS_PORT, client certificates required, no persistence.
# Sourced by stack.sh.

REDIS_PORT=${STRATA_REDIS_PORT:-16379}
REDIS_HOME=$STACK_DIR/redis
REDIS_START_TIMEOUT=${STRATA_REDIS_START_TIMEOUT:-30}
REDIS_STOP_TIMEOUT=${STRATA_REDIS_STOP_TIMEOUT:-10}

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

redis_pid() {
  local pid
  pid=$(read_pid redis)
  pid_alive "$pid" redis-server && echo "$pid"
}

redis_running() { [[ -n $(redis_pid) ]]; }

# redis_cli ARGS...: redis-cli over mutual TLS with the redis certificate
# (it is also a client certificate of the project CA), at most 5 s.
redis_cli() {
  timeout 5 redis-cli --tls --cacert "$CERTS_DIR/ca.pem" --cert "$CERTS_DIR/redis.pem" \
    --key "$CERTS_DIR/redis-key.pem" -h 127.0.0.1 -p "$REDIS_PORT" "$@"
}

redis_ready() { [[ $(redis_cli ping 2>/dev/null) == PONG ]]; }

redis_start() {
  redis_install
  mkdir -p "$REDIS_HOME"
  if port_in_use "$REDIS_PORT"; then
    fail_server redis "port $REDIS_PORT on 127.0.0.1 is already in use by another process"
  fi
  rotate_log redis
  log "redis: starting on 127.0.0.1:$REDIS_PORT (TLS only)"
  # --port 0 closes the plaintext port; the TLS port requires a client
  # certificate signed by the project CA. No RDB/AOF: a test cache.
  # setsid: own session, so a test runner's Ctrl-C does not reach it.
  # 9>&-: the server must not inherit the stack lock.
  setsid redis-server \
    --port 0 \
    --tls-port "$REDIS_PORT" \
    --bind 127.0.0.1 \
    --protected-mode yes \
    --tls-cert-file "$CERTS_DIR/redis.pem" \
    --tls-key-file "$CERTS_DIR/redis-key.pem" \
    --tls-ca-cert-file "$CERTS_DIR/ca.pem" \
    --tls-auth-clients yes \
    --tls-protocols "TLSv1.2 TLSv1.3" \
    --dir "$REDIS_HOME" \
    --save "" \
    --appendonly no \
    --daemonize no \
    --supervised no \
    --logfile "" \
    --loglevel notice \
    </dev/null >>"$LOG_DIR/redis.log" 2>&1 9>&- &
  echo $! >"$RUN_DIR/redis.pid"
}

redis_wait() {
  local start=$SECONDS
  until redis_ready; do
    redis_running || fail_server redis "the server exited during startup"
    if ((SECONDS - start >= REDIS_START_TIMEOUT)); then
      fail_server redis "no PONG after ${REDIS_START_TIMEOUT}s (redis-cli --tls -p $REDIS_PORT ping)"
    fi
    sleep 0.2
  done
}

redis_bootstrap() { :; }

redis_stop() {
  local pid
  pid=$(redis_pid) || true
  [[ -n $pid ]] && stop_pid redis "$pid" redis-server "$REDIS_STOP_TIMEOUT"
  rm -f "$RUN_DIR/redis.pid"
}

redis_status() {
  local pid
  pid=$(redis_pid) || true
  if [[ -z $pid ]]; then
    echo "redis      stopped"
  elif redis_ready; then
    echo "redis      running  pid $pid  127.0.0.1:$REDIS_PORT (TLS only, client cert)"
  else
    echo "redis      starting-or-unresponsive  pid $pid  127.0.0.1:$REDIS_PORT"
  fi
}

redis_env() {
  echo "export STRATA_REDIS_HOST=127.0.0.1"
  echo "export STRATA_REDIS_PORT=$REDIS_PORT"
  echo "export STRATA_REDIS_ADDR=127.0.0.1:$REDIS_PORT"
  echo "export STRATA_REDIS_URL=rediss://127.0.0.1:$REDIS_PORT/0"
}

# shellcheck shell=bash
# Apache Cassandra 5.0 for the native stack: the jars come from Maven
# Central (cassandra/pom.xml), the node runs as a plain JVM on OpenJDK 17,
# CQL on 127.0.0.1:$CASSANDRA_PORT with mandatory mutual TLS.
# Sourced by stack.sh.

CASSANDRA_PORT=${STRATA_CASSANDRA_PORT:-19042}
CASSANDRA_STORAGE_PORT=${STRATA_CASSANDRA_STORAGE_PORT:-17000}
# JMX is off unless a port is given (local-only JMX, for nodetool).
CASSANDRA_JMX_PORT=${STRATA_CASSANDRA_JMX_PORT:-}
CASSANDRA_LISTEN=${STRATA_CASSANDRA_LISTEN:-127.0.0.1}
CASSANDRA_HEAP=${STRATA_CASSANDRA_HEAP:-1G}
CASSANDRA_START_TIMEOUT=${STRATA_CASSANDRA_START_TIMEOUT:-180}
CASSANDRA_STOP_TIMEOUT=${STRATA_CASSANDRA_STOP_TIMEOUT:-30}
CASSANDRA_HOME=$STACK_DIR/cassandra
CASSANDRA_LIB=$CASSANDRA_HOME/lib
CASSANDRA_CONF=$CASSANDRA_HOME/conf
CASSANDRA_POM=$NATIVE_DIR/cassandra/pom.xml
# Cassandra 5.0 runs on Java 11 or 17 only; never the machine's default java.
CASSANDRA_JAVA_HOME=${STRATA_CASSANDRA_JAVA_HOME:-/usr/lib/jvm/java-17-openjdk-$(dpkg --print-architecture 2>/dev/null || echo amd64)}
CASSANDRA_VERSION=${STRATA_CASSANDRA_VERSION:-$(sed -n 's:.*<cassandra.version>\(.*\)</cassandra.version>.*:\1:p' "$CASSANDRA_POM")}
CASSANDRA_READY_LINE="Starting listening for CQL clients"

cassandra_install() {
  [[ -x $CASSANDRA_JAVA_HOME/bin/java ]] || apt_install openjdk-17-jre-headless
  [[ -x $CASSANDRA_JAVA_HOME/bin/java ]] || die "no Java 17 at $CASSANDRA_JAVA_HOME (set STRATA_CASSANDRA_JAVA_HOME)"
  cassandra_fetch_jars
  ensure_cql_tool
}

# cassandra_fetch_jars: copy cassandra-all and its runtime dependencies
# (about 100 jars) into .stack/cassandra/lib. Skipped when the marker file
# says the folder is complete for this version and this pom.
cassandra_fetch_jars() {
  local marker=$CASSANDRA_LIB/.complete want tmp flog=$LOG_DIR/cassandra-fetch.log
  want="cassandra-all $CASSANDRA_VERSION pom $(sha256sum "$CASSANDRA_POM" | cut -c1-16)"
  [[ -f $marker && $(<"$marker") == "$want" ]] && return 0
  command -v mvn >/dev/null || apt_install maven
  log "cassandra: fetching cassandra-all $CASSANDRA_VERSION and its dependencies from Maven Central"
  tmp=$CASSANDRA_HOME/lib.tmp
  rm -rf "$tmp"
  mkdir -p "$tmp"
  # The "[ERROR] ... systemPath ... jmc5.path" line from cassandra-parent is
  # noise; failures show in the exit status. JAVA_HOME pins Maven to 17 too.
  # STRATA_MAVEN_REPO: another local repository (e.g. an empty one to time a
  # cold fetch); default is Maven's own (~/.m2/repository).
  if ! JAVA_HOME=$CASSANDRA_JAVA_HOME timeout 900 mvn -B -q -Dstyle.color=never -f "$CASSANDRA_POM" \
    ${STRATA_MAVEN_REPO:+"-Dmaven.repo.local=$STRATA_MAVEN_REPO"} \
    -Dcassandra.version="$CASSANDRA_VERSION" \
    org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$tmp" </dev/null >"$flog" 2>&1; then
    tail -n 30 "$flog" >&2
    die "cassandra: fetching jars failed; Maven's output is in $flog"
  fi
  [[ -f $tmp/cassandra-all-$CASSANDRA_VERSION.jar ]] ||
    die "cassandra: cassandra-all-$CASSANDRA_VERSION.jar missing after the fetch (see $flog)"
  rm -rf "$CASSANDRA_LIB"
  mv "$tmp" "$CASSANDRA_LIB"
  printf '%s\n' "$want" >"$marker"
  log "cassandra: $(find "$CASSANDRA_LIB" -name '*.jar' | wc -l) jars in $CASSANDRA_LIB"
}

cassandra_pid() {
  local pid
  pid=$(read_pid cassandra)
  pid_alive "$pid" org.apache.cassandra.service.CassandraDaemon && echo "$pid"
}

cassandra_running() { [[ -n $(cassandra_pid) ]]; }

# cassandra_ready: a real CQL round trip over mutual TLS.
cassandra_ready() {
  [[ -x ${CQL:-} ]] || ensure_cql_tool
  "$CQL" -q -host "$CASSANDRA_LISTEN" -port "$CASSANDRA_PORT" -timeout 5s \
    -ca "$CERTS_DIR/ca.pem" -cert "$CERTS_DIR/cassandra.pem" -key "$CERTS_DIR/cassandra-key.pem" \
    </dev/null >/dev/null 2>&1
}

# cassandra_configure: render cassandra.yaml and logback.xml, and assemble
# the PEM "keystore" (private key + certificate) and "truststore" (CA).
cassandra_configure() {
  local d
  for d in data commitlog saved_caches hints cdc_raw triggers tmp conf; do
    mkdir -p "$CASSANDRA_HOME/$d"
  done
  (umask 077 && cat "$CERTS_DIR/cassandra-key.pem" "$CERTS_DIR/cassandra.pem" >"$CASSANDRA_CONF/keystore.pem.tmp")
  mv -f "$CASSANDRA_CONF/keystore.pem.tmp" "$CASSANDRA_CONF/keystore.pem"
  install -m 0644 "$CERTS_DIR/ca.pem" "$CASSANDRA_CONF/truststore.pem"
  render "$NATIVE_DIR/cassandra/cassandra.yaml" "$CASSANDRA_CONF/cassandra.yaml" \
    "HOME=$CASSANDRA_HOME" "LISTEN_ADDRESS=$CASSANDRA_LISTEN" \
    "STORAGE_PORT=$CASSANDRA_STORAGE_PORT" "NATIVE_PORT=$CASSANDRA_PORT" \
    "KEYSTORE=$CASSANDRA_CONF/keystore.pem" "TRUSTSTORE=$CASSANDRA_CONF/truststore.pem"
  render "$NATIVE_DIR/cassandra/logback.xml" "$CASSANDRA_CONF/logback.xml" \
    "LOG_FILE=$LOG_DIR/cassandra.log"
}

cassandra_start() {
  local -a jvm=() line
  local port jamm
  cassandra_install
  cassandra_configure
  for port in "$CASSANDRA_PORT" "$CASSANDRA_STORAGE_PORT" ${CASSANDRA_JMX_PORT:+"$CASSANDRA_JMX_PORT"}; do
    if port_in_use "$port"; then
      fail_server cassandra "port $port on 127.0.0.1 is already in use by another process"
    fi
  done
  # Flags from cassandra/jvm17.options, one per line ("--add-opens x" is two words).
  while read -r -a line; do
    [[ ${#line[@]} -eq 0 || ${line[0]} == \#* ]] && continue
    jvm+=("${line[@]}")
  done <"$NATIVE_DIR/cassandra/jvm17.options"
  jvm+=(
    "-Xms$CASSANDRA_HEAP" "-Xmx$CASSANDRA_HEAP"
    "-XX:HeapDumpPath=$CASSANDRA_HOME"
    "-Dcassandra.config=file://$CASSANDRA_CONF/cassandra.yaml"
    "-Dlogback.configurationFile=file://$CASSANDRA_CONF/logback.xml"
    "-Dcassandra.logdir=$LOG_DIR"
    "-Dcassandra.storagedir=$CASSANDRA_HOME"
    "-Dcassandra.triggers_dir=$CASSANDRA_HOME/triggers"
    "-Djna.tmpdir=$CASSANDRA_HOME/tmp"
    "-Djava.io.tmpdir=$CASSANDRA_HOME/tmp"
  )
  [[ -n $CASSANDRA_JMX_PORT ]] && jvm+=("-Dcassandra.jmx.local.port=$CASSANDRA_JMX_PORT")
  # jamm measures object sizes for memtable accounting; optional in 5.0.
  jamm=$(find "$CASSANDRA_LIB" -maxdepth 1 -name 'jamm-*.jar' -print -quit)
  [[ -n $jamm ]] && jvm+=("-javaagent:$jamm")

  rotate_log cassandra
  log "cassandra: starting $CASSANDRA_VERSION on $CASSANDRA_LISTEN:$CASSANDRA_PORT (heap $CASSANDRA_HEAP)"
  # stdout/stderr (JVM warnings, crashes) go to the same log as logback.
  # setsid: own session; 9>&-: the JVM must not inherit the stack lock.
  (cd "$CASSANDRA_HOME" && exec setsid "$CASSANDRA_JAVA_HOME/bin/java" "${jvm[@]}" \
    -cp "$CASSANDRA_LIB/*" org.apache.cassandra.service.CassandraDaemon \
    </dev/null >>"$LOG_DIR/cassandra.log" 2>&1 9>&-) &
  echo $! >"$RUN_DIR/cassandra.pid"
}

cassandra_wait() {
  local start=$SECONDS
  until grep -q "$CASSANDRA_READY_LINE" "$LOG_DIR/cassandra.log" 2>/dev/null; do
    cassandra_running || fail_server cassandra "the JVM exited during startup"
    if ((SECONDS - start >= CASSANDRA_START_TIMEOUT)); then
      fail_server cassandra "no \"$CASSANDRA_READY_LINE\" in the log after ${CASSANDRA_START_TIMEOUT}s"
    fi
    sleep 0.5
  done
  # The transport is up; prove a TLS client gets through (and wait if not yet).
  wait_until 30 cassandra_ready || fail_server cassandra "CQL over TLS does not answer (cql probe)"
}

# cassandra_bootstrap: the analytics keyspace (one replica: one node).
cassandra_bootstrap() {
  "$CQL" -q -wait 60s -host "$CASSANDRA_LISTEN" -port "$CASSANDRA_PORT" \
    -ca "$CERTS_DIR/ca.pem" -cert "$CERTS_DIR/cassandra.pem" -key "$CERTS_DIR/cassandra-key.pem" \
    "CREATE KEYSPACE IF NOT EXISTS analytics WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}" \
    </dev/null >>"$LOG_DIR/cassandra.log" 2>&1 ||
    fail_server cassandra "creating keyspace analytics failed"
}

cassandra_stop() {
  local pid
  pid=$(cassandra_pid) || true
  [[ -n $pid ]] && stop_pid cassandra "$pid" org.apache.cassandra.service.CassandraDaemon "$CASSANDRA_STOP_TIMEOUT"
  rm -f "$RUN_DIR/cassandra.pid"
}

cassandra_status() {
  local pid state
  pid=$(cassandra_pid) || true
  if [[ -z $pid ]]; then
    echo "cassandra  stopped"
    return
  fi
  state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)
  if [[ $state == T ]]; then
    echo "cassandra  paused (SIGSTOP)  pid $pid  $CASSANDRA_LISTEN:$CASSANDRA_PORT"
  elif [[ -x $STACK_DIR/bin/cql ]] && CQL=$STACK_DIR/bin/cql cassandra_ready; then
    echo "cassandra  running  pid $pid  $CASSANDRA_LISTEN:$CASSANDRA_PORT (TLS only, client cert)  $CASSANDRA_VERSION"
  else
    echo "cassandra  starting-or-unresponsive  pid $pid  $CASSANDRA_LISTEN:$CASSANDRA_PORT"
  fi
}

cassandra_env() {
  echo "export STRATA_CASSANDRA_HOST=$CASSANDRA_LISTEN"
  echo "export STRATA_CASSANDRA_PORT=$CASSANDRA_PORT"
  echo "export STRATA_CASSANDRA_KEYSPACE=analytics"
  echo "export STRATA_CASSANDRA_CA=$(printf %q "$CERTS_DIR/ca.pem")"
  echo "export STRATA_CASSANDRA_CERT=$(printf %q "$CERTS_DIR/analytics.pem")"
  echo "export STRATA_CASSANDRA_KEY=$(printf %q "$CERTS_DIR/analytics-key.pem")"
}

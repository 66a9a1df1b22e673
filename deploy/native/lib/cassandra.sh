# shellcheck shell=bash
# Apache Cassandra 5.0 for the native stack: the jars come from Maven
# Central (cassandra/pom.xml), each node runs as a plain JVM on OpenJDK 17,
# CQL on $CASSANDRA_PORT with mandatory mutual TLS.
# Sourced by stack.sh.
#
# Single node (default): server "cassandra" on 127.0.0.1, home
# $STACK_DIR/cassandra, log logs/cassandra.log.
#
# Ring (STRATA_HA=1, deploy/native/ha.env): servers cassandra, cassandra2
# and cassandra3 on the addresses of STRATA_CASSANDRA_NODES (127.0.0.1,
# 127.0.0.2, 127.0.0.3), all with the same CQL and storage ports. Node N
# has its own home (data, commitlog, hints, conf) in $STACK_DIR/cassandra
# (node 1) or $STACK_DIR/cassandraN, its own log logs/cassandraN.log and
# pid file run/cassandraN.pid; the jars in $STACK_DIR/cassandra/lib are
# shared. Node 1 is the seed. Internode traffic is mutual TLS with the
# cassandra certificate (its IP SANs cover 127.0.0.1-3) and endpoint
# verification. The functions below take the node index; cassandra_*,
# cassandra2_* and cassandra3_* are thin wrappers that stack.sh calls.

CASSANDRA_PORT=${STRATA_CASSANDRA_PORT:-19042}
CASSANDRA_STORAGE_PORT=${STRATA_CASSANDRA_STORAGE_PORT:-17000}
# JMX is off unless a port is given (local-only JMX, for nodetool; node 1 only).
CASSANDRA_JMX_PORT=${STRATA_CASSANDRA_JMX_PORT:-}
CASSANDRA_LISTEN=${STRATA_CASSANDRA_LISTEN:-127.0.0.1}
CASSANDRA_HA=0
[[ ${STRATA_HA:-0} == 1 ]] && CASSANDRA_HA=1
# Node addresses of the ring; node N listens on CASSANDRA_NODES[N-1].
IFS=, read -r -a CASSANDRA_NODES <<<"${STRATA_CASSANDRA_NODES:-127.0.0.1,127.0.0.2,127.0.0.3}"
if ((CASSANDRA_HA)); then
  CASSANDRA_LISTEN=${CASSANDRA_NODES[0]}
  # Three JVMs on a small machine: 768 MiB of heap each.
  CASSANDRA_HEAP=${STRATA_CASSANDRA_HEAP:-768M}
else
  CASSANDRA_HEAP=${STRATA_CASSANDRA_HEAP:-1G}
fi
CASSANDRA_START_TIMEOUT=${STRATA_CASSANDRA_START_TIMEOUT:-180}
CASSANDRA_STOP_TIMEOUT=${STRATA_CASSANDRA_STOP_TIMEOUT:-30}
CASSANDRA_HOME=$STACK_DIR/cassandra
CASSANDRA_LIB=$CASSANDRA_HOME/lib
CASSANDRA_POM=$NATIVE_DIR/cassandra/pom.xml
# Cassandra 5.0 runs on Java 11 or 17 only; never the machine's default java.
CASSANDRA_JAVA_HOME=${STRATA_CASSANDRA_JAVA_HOME:-/usr/lib/jvm/java-17-openjdk-$(dpkg --print-architecture 2>/dev/null || echo amd64)}
CASSANDRA_VERSION=${STRATA_CASSANDRA_VERSION:-$(sed -n 's:.*<cassandra.version>\(.*\)</cassandra.version>.*:\1:p' "$CASSANDRA_POM")}
CASSANDRA_READY_LINE="Starting listening for CQL clients"
# The ring's keyspaces: three replicas in the SimpleSnitch's one data
# center. NetworkTopologyStrategy (not SimpleStrategy) so LOCAL_QUORUM
# counts replicas in a named data center, as in production, and a second
# data center can be added later by an ALTER KEYSPACE.
CASSANDRA_HA_REPLICATION="{'class': 'NetworkTopologyStrategy', 'datacenter1': 3}"

# ------------------------------------------------------ per-node naming --

# cassandra_node_name N: the server's name (cassandra, cassandra2, ...),
# also the name of its log and pid files.
cassandra_node_name() { if (($1 == 1)); then echo cassandra; else echo "cassandra$1"; fi; }
cassandra_node_home() { if (($1 == 1)); then echo "$CASSANDRA_HOME"; else echo "$STACK_DIR/cassandra$1"; fi; }
cassandra_node_addr() {
  if (($1 == 1)); then
    echo "$CASSANDRA_LISTEN"
  else
    ((CASSANDRA_HA)) || die "cassandra$1 exists in the HA topology only (STRATA_HA=1, deploy/native/ha.env)"
    [[ -n ${CASSANDRA_NODES[$1 - 1]:-} ]] || die "no address for cassandra$1 in STRATA_CASSANDRA_NODES"
    echo "${CASSANDRA_NODES[$1 - 1]}"
  fi
}

# cassandra_node_token N: node N's single token. One token per node, spread
# evenly over Murmur3's range (-2^63 + (N-1) * ~2^64/3): with num_tokens 1
# nothing is random, so every run builds the same ring, and with replication
# factor 3 on three nodes each node holds every row anyway. The single node
# keeps token 0 as before.
cassandra_node_token() {
  if ((!CASSANDRA_HA)); then
    echo 0
  else
    local n=${#CASSANDRA_NODES[@]}
    # shellcheck disable=SC2017 # (2^63-1)/n*2: 2^64/n does not fit in bash's int64
    echo $((-9223372036854775807 - 1 + ($1 - 1) * (9223372036854775807 / n * 2)))
  fi
}

# ------------------------------------------------------------- install --

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

# ---------------------------------------------------------- node N --

cassandra_node_pid() {
  local pid
  pid=$(read_pid "$(cassandra_node_name "$1")")
  pid_alive "$pid" org.apache.cassandra.service.CassandraDaemon && echo "$pid"
}

cassandra_node_running() { [[ -n $(cassandra_node_pid "$1") ]]; }

# cassandra_cql N ROLE ARGS...: the cql tool against node N over mutual TLS
# with the cassandra certificate, logged in as ROLE (admin or analytics,
# whose passwords tools/cmd/certs keeps in certs/cassandra-ROLE.password;
# "cassandra" is the default superuser of a node whose roles are not set up
# yet, with its well-known password).
cassandra_cql() {
  local n=$1 role=$2
  local -a login=(-user "$role" -password-file "$CERTS_DIR/cassandra-$role.password")
  shift 2
  [[ -x ${CQL:-} ]] || ensure_cql_tool
  [[ $role == cassandra ]] && login=(-user cassandra -password cassandra)
  "$CQL" -host "$(cassandra_node_addr "$n")" -port "$CASSANDRA_PORT" \
    -ca "$CERTS_DIR/ca.pem" -cert "$CERTS_DIR/cassandra.pem" -key "$CERTS_DIR/cassandra-key.pem" "${login[@]}" "$@"
}

# cassandra_node_ready N: a real CQL round trip over mutual TLS to node N,
# as admin, or as the default superuser before the roles exist.
# In the ring, system_auth has three replicas and a login reads the role
# at a quorum: a node that starts before the others (every restart of the
# ring) answers the login with "Cannot achieve consistency level" until a
# second node is up. That answer came over mutual TLS from the node's CQL
# transport, which is what this probe is for; the next node's start makes
# the quorum.
cassandra_node_ready() {
  local out
  out=$(cassandra_cql "$1" admin -q -timeout 5s </dev/null 2>&1) && return 0
  ((CASSANDRA_HA)) && grep -q 'Cannot achieve consistency level' <<<"$out" && return 0
  cassandra_cql "$1" cassandra -q -timeout 5s </dev/null >/dev/null 2>&1
}

# cassandra_node_configure N: render node N's cassandra.yaml and
# logback.xml, and assemble the PEM "keystore" (private key + certificate)
# and "truststore" (CA).
cassandra_node_configure() {
  local n=$1 home conf addr d seeds bootstrap=true internode
  home=$(cassandra_node_home "$n")
  conf=$home/conf
  addr=$(cassandra_node_addr "$n")
  for d in data commitlog saved_caches hints cdc_raw triggers tmp conf; do
    mkdir -p "$home/$d"
  done
  (umask 077 && cat "$CERTS_DIR/cassandra-key.pem" "$CERTS_DIR/cassandra.pem" >"$conf/keystore.pem.tmp")
  mv -f "$conf/keystore.pem.tmp" "$conf/keystore.pem"
  install -m 0644 "$CERTS_DIR/ca.pem" "$conf/truststore.pem"
  if ((CASSANDRA_HA)); then
    seeds="${CASSANDRA_NODES[0]}:$CASSANDRA_STORAGE_PORT"
    # The ring starts empty (no data to stream), so the other nodes join
    # with their configured token without bootstrap streaming and without
    # its 30 s ring delay; the ring delay exists to learn pending ranges of
    # a cluster already in use. auto_bootstrap only matters on a node's very
    # first start. A node whose data is wiped while the ring holds data must
    # rejoin with STRATA_CASSANDRA_AUTO_BOOTSTRAP=true (it then streams its
    # replicas) or be repaired, or it would answer ONE reads with nothing.
    ((n == 1)) || bootstrap=${STRATA_CASSANDRA_AUTO_BOOTSTRAP:-false}
    # Internode mutual TLS: every node presents the cassandra certificate
    # and requires the peer's, and checks the peer's IP against its SANs.
    internode="server_encryption_options:
  internode_encryption: all
  optional: false
  require_client_auth: true
  require_endpoint_verification: true
  ssl_context_factory:
    class_name: org.apache.cassandra.security.PEMBasedSslContextFactory
  keystore: $conf/keystore.pem
  truststore: $conf/truststore.pem
  accepted_protocols: [TLSv1.2, TLSv1.3]"
  else
    seeds="$addr:$CASSANDRA_STORAGE_PORT"
    internode="# A single node has no internode traffic to protect.
server_encryption_options:
  internode_encryption: none"
  fi
  render "$NATIVE_DIR/cassandra/cassandra.yaml" "$conf/cassandra.yaml" \
    "HOME=$home" "LISTEN_ADDRESS=$addr" "SEEDS=$seeds" \
    "INITIAL_TOKEN=$(cassandra_node_token "$n")" "AUTO_BOOTSTRAP=$bootstrap" \
    "STORAGE_PORT=$CASSANDRA_STORAGE_PORT" "NATIVE_PORT=$CASSANDRA_PORT" \
    "KEYSTORE=$conf/keystore.pem" "TRUSTSTORE=$conf/truststore.pem" \
    "SERVER_ENCRYPTION=$internode"
  render "$NATIVE_DIR/cassandra/logback.xml" "$conf/logback.xml" \
    "LOG_FILE=$LOG_DIR/$(cassandra_node_name "$n").log"
}

cassandra_node_start() {
  local n=$1 name home addr prev
  local -a jvm=() line
  local port jamm
  name=$(cassandra_node_name "$n")
  home=$(cassandra_node_home "$n")
  addr=$(cassandra_node_addr "$n")
  # One node joins the ring at a time: Cassandra 5.0's gossip membership
  # lets only one node change the token ring at once (concurrent joins race
  # for the same pending ranges), and on two cores three JVMs starting
  # together are no faster than one after another. So node N waits until
  # node N-1, when it runs, serves CQL, which it does only once it is a
  # NORMAL member of the ring. (A node that restarts alone skips the wait
  # when its predecessor is down: it rejoins through the other nodes.)
  if ((n > 1)); then
    prev=$((n - 1))
    if cassandra_node_running "$prev"; then
      cassandra_node_wait "$prev"
    fi
  fi
  cassandra_node_configure "$n"
  for port in "$CASSANDRA_PORT" "$CASSANDRA_STORAGE_PORT"; do
    if (exec 3<>"/dev/tcp/$addr/$port") 2>/dev/null; then
      fail_server "$name" "port $port on $addr is already in use by another process"
    fi
  done
  if ((n == 1)) && [[ -n $CASSANDRA_JMX_PORT ]] && port_in_use "$CASSANDRA_JMX_PORT"; then
    fail_server "$name" "port $CASSANDRA_JMX_PORT on 127.0.0.1 is already in use by another process"
  fi
  # Flags from cassandra/jvm17.options, one per line ("--add-opens x" is two words).
  while read -r -a line; do
    [[ ${#line[@]} -eq 0 || ${line[0]} == \#* ]] && continue
    jvm+=("${line[@]}")
  done <"$NATIVE_DIR/cassandra/jvm17.options"
  jvm+=(
    "-Xms$CASSANDRA_HEAP" "-Xmx$CASSANDRA_HEAP"
    "-XX:HeapDumpPath=$home"
    "-Dcassandra.config=file://$home/conf/cassandra.yaml"
    "-Dlogback.configurationFile=file://$home/conf/logback.xml"
    "-Dcassandra.logdir=$LOG_DIR"
    "-Dcassandra.storagedir=$home"
    "-Dcassandra.triggers_dir=$home/triggers"
    "-Djna.tmpdir=$home/tmp"
    "-Djava.io.tmpdir=$home/tmp"
    # The default superuser exists at once, not 10 s after start, so the
    # bootstrap can replace it without waiting.
    "-Dcassandra.superuser_setup_delay_ms=0"
  )
  ((n == 1)) && [[ -n $CASSANDRA_JMX_PORT ]] && jvm+=("-Dcassandra.jmx.local.port=$CASSANDRA_JMX_PORT")
  # jamm measures object sizes for memtable accounting; optional in 5.0.
  jamm=$(find "$CASSANDRA_LIB" -maxdepth 1 -name 'jamm-*.jar' -print -quit)
  [[ -n $jamm ]] && jvm+=("-javaagent:$jamm")

  rotate_log "$name"
  log "$name: starting $CASSANDRA_VERSION on $addr:$CASSANDRA_PORT (heap $CASSANDRA_HEAP)"
  # stdout/stderr (JVM warnings, crashes) go to the same log as logback.
  # setsid: own session; 9>&-: the JVM must not inherit the stack lock.
  (cd "$home" && exec setsid "$CASSANDRA_JAVA_HOME/bin/java" "${jvm[@]}" \
    -cp "$CASSANDRA_LIB/*" org.apache.cassandra.service.CassandraDaemon \
    </dev/null >>"$LOG_DIR/$name.log" 2>&1 9>&-) &
  echo $! >"$RUN_DIR/$name.pid"
}

cassandra_node_wait() {
  local n=$1 name start=$SECONDS
  name=$(cassandra_node_name "$n")
  until grep -q "$CASSANDRA_READY_LINE" "$LOG_DIR/$name.log" 2>/dev/null; do
    cassandra_node_running "$n" || fail_server "$name" "the JVM exited during startup"
    if ((SECONDS - start >= CASSANDRA_START_TIMEOUT)); then
      fail_server "$name" "no \"$CASSANDRA_READY_LINE\" in the log after ${CASSANDRA_START_TIMEOUT}s"
    fi
    sleep 0.5
  done
  # The transport is up; prove a TLS client gets through (and wait if not yet).
  wait_until 30 cassandra_node_ready "$n" || fail_server "$name" "CQL over TLS does not answer (cql probe)"
}

# cassandra_node_bootstrap N: the roles and the keyspaces. One node:
# analytics with one replica. Ring: analytics and analytics_test (the
# services' tests) with three replicas, and system_auth replicated to every
# node, created through node 1 once it is up; nodes 2 and 3 get the schema
# when they join (IF NOT EXISTS makes it safe to repeat).
#
# Roles: admin (superuser, the operator's) replaces the default superuser
# cassandra/cassandra, which is then disabled; analytics may log in, create
# keyspaces (it owns, and so may drop, what it creates) and has every
# permission on the keyspaces that exist already. No other role exists, so
# no other workload's certificate can do anything, least of all drop a
# keyspace.
# cassandra_auth_settled N: a login as admin either works or fails for a
# reason other than a missing quorum (a new ring, where admin does not exist
# yet). Until then the other nodes of a restarted ring are still starting.
cassandra_auth_settled() {
  local out
  out=$(cassandra_cql "$1" admin -q -timeout 5s </dev/null 2>&1) && return 0
  ! grep -q 'Cannot achieve consistency level' <<<"$out"
}

# cassandra_schema N CQL: run CQL on node N as admin, output to its log.
cassandra_schema() {
  cassandra_cql "$1" admin -q -wait 60s "$2" </dev/null >>"$LOG_DIR/$(cassandra_node_name "$1").log" 2>&1
}

cassandra_node_bootstrap() {
  local n=$1 name stmt ks grants=""
  name=$(cassandra_node_name "$n")
  if ((CASSANDRA_HA)); then
    ((n == 1)) || return 0
    wait_until 120 cassandra_auth_settled "$n" ||
      fail_server "$name" "no quorum of system_auth's replicas: are cassandra2 and cassandra3 starting?"
    stmt="ALTER KEYSPACE system_auth WITH replication = $CASSANDRA_HA_REPLICATION;
CREATE KEYSPACE IF NOT EXISTS analytics WITH replication = $CASSANDRA_HA_REPLICATION;
CREATE KEYSPACE IF NOT EXISTS analytics_test WITH replication = $CASSANDRA_HA_REPLICATION"
  else
    stmt="CREATE KEYSPACE IF NOT EXISTS analytics WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}"
  fi
  if ! cassandra_cql "$n" admin -q -timeout 10s </dev/null >/dev/null 2>&1; then
    cassandra_cql "$n" cassandra -q -wait 60s \
      "CREATE ROLE IF NOT EXISTS admin WITH SUPERUSER = true AND LOGIN = true AND PASSWORD = '$(tr -d '\n' <"$CERTS_DIR/cassandra-admin.password")'" \
      </dev/null >>"$LOG_DIR/$name.log" 2>&1 || fail_server "$name" "creating the admin role failed"
  fi
  cassandra_cql "$n" admin -q -wait 60s "ALTER ROLE cassandra WITH SUPERUSER = false AND LOGIN = false" \
    </dev/null >>"$LOG_DIR/$name.log" 2>&1 || true # gone already, or never there
  # Every statement is idempotent, and a ring that is still forming refuses
  # to alter system_auth's replication until every node is in normal state:
  # repeat until it takes.
  wait_until 120 cassandra_schema "$n" "$stmt;
CREATE ROLE IF NOT EXISTS analytics WITH LOGIN = true AND PASSWORD = '$(tr -d '\n' <"$CERTS_DIR/cassandra-analytics.password")';
GRANT CREATE ON ALL KEYSPACES TO analytics" ||
    fail_server "$name" "creating the keyspaces and the analytics role failed"
  # A role kept from before new password files were made: set the new one.
  if ! cassandra_cql "$n" analytics -q -timeout 10s </dev/null >/dev/null 2>&1; then
    cassandra_cql "$n" admin -q "ALTER ROLE analytics WITH PASSWORD = '$(tr -d '\n' <"$CERTS_DIR/cassandra-analytics.password")'" \
      </dev/null >>"$LOG_DIR/$name.log" 2>&1 || fail_server "$name" "setting the analytics role's password failed"
  fi
  # Keyspaces created before there were roles (an older stack) belong to
  # nobody: give them to analytics.
  while read -r ks; do
    [[ -z $ks || $ks == keyspace_name || $ks == system* ]] && continue
    grants+="GRANT ALL PERMISSIONS ON KEYSPACE \"$ks\" TO analytics;"
  done < <(cassandra_cql "$n" admin -q "SELECT keyspace_name FROM system_schema.keyspaces" </dev/null 2>>"$LOG_DIR/$name.log")
  cassandra_cql "$n" admin -q "$grants" </dev/null >>"$LOG_DIR/$name.log" 2>&1 ||
    fail_server "$name" "granting the keyspaces to analytics failed"
}

cassandra_node_stop() {
  local n=$1 pid name
  name=$(cassandra_node_name "$n")
  pid=$(cassandra_node_pid "$n") || true
  [[ -n $pid ]] && stop_pid "$name" "$pid" org.apache.cassandra.service.CassandraDaemon "$CASSANDRA_STOP_TIMEOUT"
  rm -f "$RUN_DIR/$name.pid"
}

cassandra_node_status() {
  local n=$1 pid state name addr
  name=$(cassandra_node_name "$n")
  addr=$(cassandra_node_addr "$n")
  pid=$(cassandra_node_pid "$n") || true
  if [[ -z $pid ]]; then
    echo "$name  stopped"
    return
  fi
  state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)
  if [[ $state == T ]]; then
    echo "$name  paused (SIGSTOP)  pid $pid  $addr:$CASSANDRA_PORT"
  elif [[ -x $STACK_DIR/bin/cql ]] && CQL=$STACK_DIR/bin/cql cassandra_node_ready "$n"; then
    echo "$name  running  pid $pid  $addr:$CASSANDRA_PORT (TLS only, client cert)  $CASSANDRA_VERSION"
  else
    echo "$name  starting-or-unresponsive  pid $pid  $addr:$CASSANDRA_PORT"
  fi
}

# ------------------------------------------- the servers stack.sh knows --

cassandra_pid() { cassandra_node_pid 1; }
cassandra_running() { cassandra_node_running 1; }
cassandra_ready() { cassandra_node_ready 1; }
cassandra_configure() { cassandra_node_configure 1; }
cassandra_start() { cassandra_install; cassandra_node_start 1; }
cassandra_wait() { cassandra_node_wait 1; }
cassandra_bootstrap() { cassandra_node_bootstrap 1; }
cassandra_stop() { cassandra_node_stop 1; }
cassandra_status() { cassandra_node_status 1; }

# cassandra2_* and cassandra3_*: the same functions for nodes 2 and 3.
for _n in 2 3; do
  for _f in pid running wait bootstrap stop status; do
    eval "cassandra${_n}_${_f}() { cassandra_node_${_f} ${_n}; }"
  done
  eval "cassandra${_n}_install() { cassandra_install; }"
  eval "cassandra${_n}_start() { cassandra_install; cassandra_node_start ${_n}; }"
done
unset _n _f

# cassandra_env: what clients need. The ring adds the host list and the
# replication the analytics service creates its keyspace with.
cassandra_env() {
  echo "export STRATA_CASSANDRA_HOST=$CASSANDRA_LISTEN"
  echo "export STRATA_CASSANDRA_PORT=$CASSANDRA_PORT"
  echo "export STRATA_CASSANDRA_KEYSPACE=analytics"
  echo "export STRATA_CASSANDRA_CA=$(printf %q "$CERTS_DIR/ca.pem")"
  echo "export STRATA_CASSANDRA_CERT=$(printf %q "$CERTS_DIR/analytics.pem")"
  echo "export STRATA_CASSANDRA_KEY=$(printf %q "$CERTS_DIR/analytics-key.pem")"
  echo "export STRATA_CASSANDRA_USERNAME=analytics"
  echo "export STRATA_CASSANDRA_PASSWORD_FILE=$(printf %q "$CERTS_DIR/cassandra-analytics.password")"
  if ((CASSANDRA_HA)); then
    echo "export STRATA_CASSANDRA_HOSTS=$(IFS=,; echo "${CASSANDRA_NODES[*]}")"
    echo "export STRATA_CASSANDRA_REPLICATION=$(printf %q "$CASSANDRA_HA_REPLICATION")"
    echo "export STRATA_CASSANDRA_CONSISTENCY=LOCAL_QUORUM"
  fi
}

# shellcheck shell=bash
# Helpers shared by stack.sh and the per-server files in this folder.
# Sourced, never run: expects REPO_ROOT and STACK_DIR to be set.

# ---------------------------------------------------------------- messages --

log()  { printf '[stack] %s\n' "$*" >&2; }
warn() { printf '[stack] warning: %s\n' "$*" >&2; }
die()  { printf '[stack] error: %s\n' "$*" >&2; exit 1; }

# fail_server NAME MESSAGE: report a server that did not come up, with the
# path and the tail of its log, and exit non-zero.
fail_server() {
  local name=$1 msg=$2 logf="$LOG_DIR/$1.log"
  {
    printf '[stack] error: %s failed: %s\n' "$name" "$msg"
    printf '[stack] log: %s\n' "$logf"
    if [[ -s $logf ]]; then
      printf '[stack] ---- last 30 lines of %s ----\n' "$logf"
      tail -n 30 "$logf"
      printf '[stack] ---- end of %s ----\n' "$logf"
    fi
  } >&2
  exit 1
}

# ------------------------------------------------------------------ files --

# render TEMPLATE DEST KEY=VALUE...: copy TEMPLATE to DEST replacing every
# @@KEY@@ with VALUE. Pure bash, so paths with any character are safe.
render() {
  local src=$1 dst=$2 text kv
  shift 2
  text=$(<"$src")
  for kv in "$@"; do
    text=${text//"@@${kv%%=*}@@"/"${kv#*=}"}
  done
  if [[ $text == *@@*@@* ]]; then
    die "render $src: unreplaced placeholder: $(grep -o '@@[A-Z_]*@@' <<<"$text" | head -1)"
  fi
  printf '%s\n' "$text" >"$dst.tmp.$$"
  mv -f "$dst.tmp.$$" "$dst"
}

# rotate_log NAME: keep the previous run's log as NAME.log.1 and start an
# empty one, so readiness checks and failure reports see this run only.
rotate_log() {
  local f="$LOG_DIR/$1.log"
  [[ -e $f ]] && mv -f "$f" "$f.1"
  : >"$f"
}

# make_traversable DIR: give "others" search (x) permission on DIR and each
# ancestor, so a non-root server user (postgres) can reach files below it.
# Only adds the x bit where it is missing; never grants read or write.
make_traversable() {
  local d
  d=$(realpath -m "$1")
  while [[ $d != / ]]; do
    if [[ -d $d ]] && [[ $(stat -c %A "$d") != ?????????[xt] ]]; then
      chmod o+x "$d"
    fi
    d=$(dirname "$d")
  done
}

# --------------------------------------------------------------- processes --

# pid_alive PID PATTERN: true if PID exists (running or stopped) and its
# command line matches PATTERN (guards against a recycled pid).
pid_alive() {
  local pid=$1 pattern=$2 cmd
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [[ -r /proc/$pid/cmdline ]] || return 1
  # Zombies (state Z) have exited already.
  [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) != Z ]] || return 1
  cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ $cmd == *$pattern* ]]
}

# read_pid NAME: print the pid recorded in run/NAME.pid (empty if none).
read_pid() {
  local f="$RUN_DIR/$1.pid"
  if [[ -s $f ]]; then tr -dc '0-9' <"$f"; fi
}

# stop_pid NAME PID PATTERN GRACE [SIGNAL] [SECOND_SIGNAL]: send SIGNAL
# (default TERM) and wait up to GRACE seconds; if SECOND_SIGNAL is given,
# send it and wait 5 more seconds; then SIGKILL. A stopped (SIGSTOPped)
# process is continued first, or it would never act on the signal.
stop_pid() {
  local name=$1 pid=$2 pattern=$3 grace=$4 sig=${5:-TERM} sig2=${6:-} i
  pid_alive "$pid" "$pattern" || return 0
  log "stopping $name (pid $pid, SIG$sig)"
  kill -"$sig" "$pid" 2>/dev/null || true
  kill -CONT "$pid" 2>/dev/null || true
  for ((i = 0; i < grace * 10; i++)); do
    pid_alive "$pid" "$pattern" || return 0
    sleep 0.1
  done
  if [[ -n $sig2 ]]; then
    warn "$name did not stop within ${grace}s; sending SIG$sig2"
    kill -"$sig2" "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
      pid_alive "$pid" "$pattern" || return 0
      sleep 0.1
    done
  fi
  warn "$name did not stop; sending SIGKILL to $pid"
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    pid_alive "$pid" "$pattern" || return 0
    sleep 0.1
  done
  die "$name (pid $pid) survived SIGKILL"
}

# wait_until TIMEOUT_SECONDS COMMAND...: run COMMAND every 0.5 s until it
# succeeds (return 0) or the timeout passes (return 1).
wait_until() {
  local timeout=$1 deadline
  shift
  deadline=$((SECONDS + timeout))
  until "$@"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.5
  done
}

# port_in_use PORT: true if something listens on 127.0.0.1:PORT (TCP).
port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# ------------------------------------------------------------------ install --

APT_UPDATED=0

# apt_install PACKAGE...: install Debian packages non-interactively. Runs
# `apt-get update` once per invocation first. While installing, a temporary
# policy-rc.d (if the machine has none) forbids maintainer scripts to start
# services, so a package never leaves its own postgres/redis running on the
# default ports. The stack runs its own instances on the project's ports.
apt_install() {
  [[ $(id -u) -eq 0 ]] || die "installing $* needs root (apt-get); install it by hand"
  local policy=/usr/sbin/policy-rc.d own_policy=0 rc=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\n# temporary, from strata deploy/native/stack.sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    own_policy=1
  fi
  if ((APT_UPDATED == 0)); then
    log "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null >&2 || rc=$?
    APT_UPDATED=1
  fi
  if ((rc == 0)); then
    log "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" </dev/null >&2 || rc=$?
  fi
  ((own_policy)) && rm -f "$policy"
  ((rc == 0)) || die "apt-get install $* failed (exit $rc)"
}

# --------------------------------------------------------------------- certs --

# ensure_certs: create the CA and leaf certificates with the project's certs
# tool when any file the stack needs is missing.
ensure_certs() {
  local f missing=0
  for f in ca postgres redis cassandra analytics auth ledger session replicator; do
    [[ -s $CERTS_DIR/$f.pem ]] || missing=1
  done
  [[ -s $CERTS_DIR/ca-key.pem ]] || missing=1
  # Store certificates come from the store CA; Redis and Cassandra want
  # each user's password (a stack made before either gets them now).
  [[ -s $CERTS_DIR/store-ca.pem ]] || missing=1
  for f in redis-admin redis-session cassandra-admin cassandra-analytics; do
    [[ -s $CERTS_DIR/$f.password ]] || missing=1
  done
  if ((!missing)); then
    # A workload added since the certificates were made gets its own leaf;
    # the others are left as they are.
    for f in console; do
      [[ -s $CERTS_DIR/$f.pem ]] && continue
      log "creating the $f certificate in $CERTS_DIR"
      (cd "$REPO_ROOT/tools" && go run ./cmd/certs -dir "$CERTS_DIR" -only "$f") >&2 ||
        die "certificate tool failed: cd $REPO_ROOT/tools && go run ./cmd/certs -dir $CERTS_DIR -only $f"
    done
    return 0
  fi
  command -v go >/dev/null || die "certificates missing in $CERTS_DIR and no Go toolchain to create them"
  log "creating certificates in $CERTS_DIR"
  (cd "$REPO_ROOT/tools" && go run ./cmd/certs -dir "$CERTS_DIR") >&2 ||
    die "certificate tool failed: cd $REPO_ROOT/tools && go run ./cmd/certs -dir $CERTS_DIR"
}

# ensure_cql_tool: build tools/cmd/cql into $STACK_DIR/bin/cql when missing
# or older than its sources. Prints nothing; sets CQL to its path.
ensure_cql_tool() {
  CQL=$STACK_DIR/bin/cql
  local src="$REPO_ROOT/tools" newer
  if [[ -x $CQL ]]; then
    newer=$(find "$src/cmd/cql" "$src/go.mod" "$src/go.sum" -newer "$CQL" -print -quit 2>/dev/null)
    [[ -z $newer ]] && return 0
  fi
  command -v go >/dev/null || die "the Go toolchain is needed to build tools/cmd/cql"
  log "building tools/cmd/cql"
  mkdir -p "$STACK_DIR/bin"
  (cd "$src" && go build -o "$CQL.tmp" ./cmd/cql) >&2 || die "go build ./cmd/cql failed"
  mv -f "$CQL.tmp" "$CQL"
}

#!/usr/bin/env bash
# make compose-test: docker-compose.yml brought up for real and driven end
# to end from the host, then taken down.
#
#  1. the engine: Debian's docker.io, dockerd started in the background when
#     none runs (data root outside the clone, so images and build cache
#     stay for the next run), Compose v2 built once from the Go module proxy;
#  2. the stand-ins of the third-party images under their official names
#     (deploy/ci/images; no registry is reachable), each built once;
#  3. Strata's own images from their real Dockerfiles (deploy/docker);
#  4. `docker compose up -d --wait` of the default topology with the CI
#     override deploy/ci/compose.ci.yml (no pulls, no Grafana, host ports
#     +10000); prints the time to healthy and the memory in use;
#  5. `strata-load smoke` from the host: OIDC sign-in, a transfer with an
#     Idempotency-Key and its replay, the transfer in analytics' activity, a
#     session revoked, an overload shed with 429s, the transfer's trace in
#     Jaeger and each service's series in Prometheus;
#  6. no ERROR or FATAL line in any container's log;
#  7. with STRATA_COMPOSE_HA=1 (make compose-test HA=1): the same on the
#     profile ha (deploy/compose/ha.env), then the HA drills under load, each
#     stopping one member of a layer in its container (a Cassandra node, the
#     second replica of every service, the Postgres primary, the Redis
#     master; deploy/compose/drill.sh): nothing acknowledged may be lost;
#  8. `docker compose down -v`.
#
# Variables: STRATA_CI_CACHE, STRATA_DOCKER_DATA_ROOT (lib.sh),
# STRATA_COMPOSE_KEEP=1 leaves the system up after the check,
# STRATA_COMPOSE_HA=1 the HA topology and its drills.
set -euo pipefail
T0=$(date +%s%N)
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
cd "$REPO"

export COMPOSE_FILE=$REPO/docker-compose.yml:$CI_DIR/compose.ci.yml
export COMPOSE_PROJECT_NAME=strata-ci
HA=${STRATA_COMPOSE_HA:-0}
topology="default topology"
if [[ $HA == 1 ]]; then
  # drill.sh and failover.sh name the env file and profile themselves.
  export COMPOSE_PROFILES=ha COMPOSE_ENV_FILES=$REPO/deploy/compose/ha.env
  topology="profile ha"
fi
export DOCKER
compose() { $DOCKER compose "$@"; }
WORK=$(mktemp -d)

cleanup() {
  local rc=$?
  if [[ $rc != 0 && ${UP:-0} == 1 ]]; then
    echo "--- compose-test failed; containers and their last log lines:" >&2
    compose ps -a >&2 || true
    for s in $(compose ps -a --format '{{.Service}}' 2>/dev/null); do
      echo "--- $s" >&2
      compose logs --no-color --tail 15 "$s" >&2 || true
    done
  fi
  if [[ ${UP:-0} == 1 && ${STRATA_COMPOSE_KEEP:-0} != 1 ]]; then
    step "docker compose down -v"
    compose down -v --remove-orphans >/dev/null 2>&1 || true
  fi
  [[ ${STRATA_COMPOSE_KEEP:-0} == 1 ]] || stop_engine
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT

ensure_engine
ensure_standins

# Leftovers of an interrupted run would hold the old volumes (and CA).
compose down -v --remove-orphans >/dev/null 2>&1 || true

step "build Strata's images (deploy/docker/*.Dockerfile)"
mapfile -t own < <(compose config --format json | python3 -c '
import json, sys
for name, s in json.load(sys.stdin)["services"].items():
    if "build" in s: print(name)')
compose --progress quiet build "${own[@]}"

step "docker compose up -d --wait ($topology)"
UP=1
t_up=$(date +%s%N)
# The ring of the profile ha joins one node at a time.
compose up -d --wait --wait-timeout $((HA == 1 ? 900 : 600)) --quiet-pull --no-build
healthy=$(elapsed "$t_up")
step "every container healthy after ${healthy}s"

mem=$($DOCKER stats --no-stream --format '{{.Name}} {{.MemUsage}}' $(compose ps -q))
echo "$mem" | sed 's/^/           /'
total=$(echo "$mem" | awk '{
  v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[A-Za-z]+$/, "", v)
  f = (u == "GiB") ? 1024 : (u == "KiB") ? 1/1024 : (u == "B") ? 1/1048576 : 1
  s += v * f } END { printf "%.0f", s }')
step "memory in use: ${total} MiB in $(echo "$mem" | wc -l) containers"

step "the load generator's certificate (volume certs-loadtest)"
mkdir -p "$WORK/certs"
$DOCKER run --rm --network none -v "${COMPOSE_PROJECT_NAME}_certs-loadtest:/c:ro" debian:bookworm tar -C /c -c . |
  tar -C "$WORK/certs" -x
(cd loadtest && go build -o "$WORK/strata-load" ./cmd/strata-load)

load=("$WORK/strata-load" -certs "$WORK/certs" -password "${STRATA_DEMO_PASSWORD:-strata-demo}"
  -auth https://localhost:18441 -ledger https://localhost:18442
  -analytics https://localhost:18443 -session https://localhost:18444)
step "drive it from the host (strata-load smoke)"
"${load[@]}" smoke -jaeger http://127.0.0.1:26686 -prometheus http://127.0.0.1:19090

# What the run did not show as a failed step may still be in the logs: a
# store refusing a healthcheck, a service logging an error.
step "no errors in the containers' logs"
errors=$(compose logs --no-color 2>&1 |
  grep -E '"level":"(ERROR|error|fatal|panic)"| (ERROR|FATAL|PANIC):  |\| (ERROR|FATAL) |'$'\t''error'$'\t' || true)
if [[ -n $errors ]]; then
  echo "$errors" | cut -c1-300 | sort | uniq -c | sort -rn | head -20
  die "$(echo "$errors" | wc -l) error lines in the logs"
fi

if [[ $HA == 1 ]]; then
  # The drills log errors on purpose (a store stops under load): the log
  # check above ran before them.
  step "system_auth replicated to the three Cassandra nodes"
  for _ in $(seq 1 60); do
    compose logs cassandra3 2>/dev/null | grep -q 'system_auth on 3 replicas' && break
    sleep 2
  done
  compose logs cassandra3 | grep -q 'system_auth on 3 replicas' || die "cassandra3 did not replicate system_auth"
  step "the HA drills in containers (strata-load chaos -ha -compose)"
  compose exec -T auth /usr/local/bin/auth seed -users 20
  "${load[@]}" -users 20 chaos -ha -compose -rate "${STRATA_COMPOSE_RATE:-50}"
fi

step "compose-test passed ($topology): healthy after ${healthy}s, ${total} MiB in use"

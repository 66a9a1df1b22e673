# shellcheck shell=bash
# Helpers of deploy/ci/compose-test.sh: the container engine, Compose v2 and
# the stand-in images of the third-party services, all cached outside the
# clone so that later runs on the same machine reuse them.
#
#   STRATA_CI_CACHE          binaries, Go-built stand-ins, Cassandra jars (~/.cache/strata)
#   STRATA_DOCKER_DATA_ROOT  dockerd's data root when this script starts it (/var/lib/strata-docker)

CI_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$CI_DIR/../.." && pwd)
CACHE=${STRATA_CI_CACHE:-$HOME/.cache/strata}
DATA_ROOT=${STRATA_DOCKER_DATA_ROOT:-/var/lib/strata-docker}
COMPOSE_VERSION=v2.40.3
# The Dockerfile frontend named by the `# syntax=` line of deploy/docker/*.
BUILDKIT_VERSION=v0.14.1
JAEGER_VERSION=v1.73.0
OTELCOL_VERSION=v0.135.0
GO_VERSION=1.26.8
mkdir -p "$CACHE/bin"

T0=${T0:-$(date +%s%N)}
# elapsed [SINCE]: seconds since SINCE (date +%s%N; default the start), one decimal.
elapsed() {
  local d=$((($(date +%s%N) - ${1:-$T0}) / 100000000))
  printf '%d.%d' $((d / 10)) $((d % 10))
}
# step NAME: a timestamped line for each step of the run.
step() { printf '[%7ss] == %s\n' "$(elapsed)" "$*"; }
die() {
  echo "compose-test: $*" >&2
  exit 1
}
# The Debian CLI (20.10) builds with the daemon's BuildKit without the buildx
# plugin; a newer CLI earlier in PATH would need buildx for BuildKit.
DOCKER=/usr/bin/docker

# ensure_engine: docker.io installed and a daemon answering; starts dockerd
# in the background (no systemd here) when none runs, with its data root
# outside the clone so images and build cache survive the clone.
ensure_engine() {
  if ! command -v dockerd >/dev/null || [[ ! -x $DOCKER ]]; then
    step "install docker.io"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
  fi
  if $DOCKER info >/dev/null 2>&1; then
    return
  fi
  step "start dockerd (data root $DATA_ROOT)"
  mkdir -p "$DATA_ROOT"
  setsid dockerd --data-root "$DATA_ROOT" --pidfile "$CACHE/dockerd.pid" >"$CACHE/dockerd.log" 2>&1 </dev/null &
  STARTED_DOCKERD=1
  for _ in $(seq 1 100); do
    $DOCKER info >/dev/null 2>&1 && return
    sleep 0.2
  done
  tail -n 20 "$CACHE/dockerd.log" >&2
  die "dockerd did not start"
}

stop_engine() {
  if [[ ${STARTED_DOCKERD:-0} == 1 && -s $CACHE/dockerd.pid ]]; then
    step "stop dockerd"
    kill "$(cat "$CACHE/dockerd.pid")" 2>/dev/null || true
    for _ in $(seq 1 50); do
      [[ -e $CACHE/dockerd.pid ]] || break
      sleep 0.2
    done
  fi
}

# go_build_module MODULE@VERSION PACKAGE OUT [LDFLAGS]: builds a command of
# a module from the Go module proxy as the main module (Compose's and
# Jaeger's go.mod carry exclude/replace directives, which `go install
# pkg@version` refuses), once; the binary is cached under $CACHE/bin.
go_build_module() {
  local mod=$1 pkg=$2 out=$3 ldflags=${4:-}
  [[ -x $out ]] && return
  local dir src
  dir=$(go mod download -json "$mod" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  [[ -d $dir ]] || die "go mod download $mod failed"
  src=$(mktemp -d "$CACHE/src.XXXXXX")
  cp -r "$dir/." "$src" && chmod -R u+w "$src"
  (cd "$src" && CGO_ENABLED=0 GOFLAGS=-mod=mod GOWORK=off go build -trimpath -ldflags "-s -w $ldflags" -o "$out.tmp" "$pkg") ||
    die "build of $mod $pkg failed"
  mv "$out.tmp" "$out"
  rm -rf "$src"
}

# ensure_compose: the Compose v2 CLI plugin (Debian 12 has only v1).
ensure_compose() {
  if $DOCKER compose version 2>/dev/null | grep -q 'v2\.'; then
    return
  fi
  [[ -x $CACHE/bin/docker-compose-$COMPOSE_VERSION ]] || step "build Compose $COMPOSE_VERSION from the Go module proxy"
  go_build_module "github.com/docker/compose/v2@$COMPOSE_VERSION" ./cmd "$CACHE/bin/docker-compose-$COMPOSE_VERSION" \
    "-X github.com/docker/compose/v2/internal.Version=$COMPOSE_VERSION"
  local plugins=${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins
  mkdir -p "$plugins"
  ln -sf "$CACHE/bin/docker-compose-$COMPOSE_VERSION" "$plugins/docker-compose"
  $DOCKER compose version >/dev/null || die "docker compose does not run"
}

# base_id: the Debian base's image id; images built on it are rebuilt
# when it changes.
base_id() { $DOCKER image inspect -f '{{.Id}}' debian:bookworm 2>/dev/null || true; }

# fixture_hash DIR [EXTRA...]: what a stand-in image is built from; the
# image is rebuilt only when it changes.
fixture_hash() {
  { tar -C "$1" -c --sort=name --mtime=@0 --owner=0 --group=0 . ; shift; printf '%s\n' "$@"; } | sha256sum | cut -c1-16
}

# have_image IMAGE HASH: the image exists and was built from HASH.
have_image() {
  [[ $($DOCKER image inspect -f '{{index .Config.Labels "org.strata.ci.fixture"}}' "$1" 2>/dev/null) == "$2" ]]
}

# build_image IMAGE CONTEXT [HASH]: builds a stand-in under its official
# name, tagged with what it was built from (HASH, or the context's hash).
build_image() {
  local image=$1 ctx=$2 hash=${3:-}
  [[ -n $hash ]] || hash=$(fixture_hash "$ctx" "$(base_id)")
  if have_image "$image" "$hash"; then
    step "stand-in $image: cached"
    return
  fi
  step "stand-in $image: build"
  DOCKER_BUILDKIT=1 $DOCKER build -q --label "org.strata.ci.fixture=$hash" -t "$image" "$ctx" >/dev/null ||
    die "build of $image failed"
}

# ensure_debian: debian:bookworm, the base of every other stand-in, from
# debootstrap (a minimal Debian with the updates and security suites; the
# root file system is kept in $CACHE). The machine's own additional CA
# certificates (/usr/local/share/ca-certificates) go in too, so that builds
# behind a TLS-inspecting proxy still reach the Go module proxy and PyPI.
ensure_debian() {
  local tar=$CACHE/debian-bookworm-minbase.tar hash root cas=()
  shopt -s nullglob
  cas=(/usr/local/share/ca-certificates/*.crt)
  shopt -u nullglob
  hash=$( { echo "debootstrap minbase bookworm v2"; [[ ${#cas[@]} == 0 ]] || cat "${cas[@]}"; } | sha256sum | cut -c1-16)
  if have_image debian:bookworm "$hash"; then
    step "stand-in debian:bookworm: cached"
    return
  fi
  if [[ ! -s $tar ]]; then
    step "stand-in debian:bookworm: debootstrap"
    command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
    root=$(mktemp -d "$CACHE/rootfs.XXXXXX")
    debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >"$CACHE/debootstrap.log" 2>&1 ||
      die "debootstrap failed ($CACHE/debootstrap.log)"
    cat >"$root/etc/apt/sources.list" <<'SOURCES'
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
SOURCES
    # As the official image: no recommends, no suggests.
    printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' >"$root/etc/apt/apt.conf.d/90strata"
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb "$root"/var/log/* "$root"/dev/*
    tar -C "$root" -cf "$tar.tmp" . && mv "$tar.tmp" "$tar"
    rm -rf "$root"
  fi
  step "stand-in debian:bookworm: import"
  local stream=$CACHE/debian-import.tar
  cp "$tar" "$stream"
  if [[ ${#cas[@]} -gt 0 ]]; then
    tar -C / -rf "$stream" "${cas[@]#/}"
  fi
  $DOCKER import -c 'CMD ["bash"]' -c "LABEL org.strata.ci.fixture=$hash" \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' "$stream" debian:bookworm >/dev/null
  rm -f "$stream"
}

# ensure_golang: golang:$GO_VERSION-bookworm, the build stage of Strata's
# Dockerfiles, from the host's own Go toolchain of that version.
ensure_golang() {
  local goroot ctx
  goroot=$(GOTOOLCHAIN=go$GO_VERSION go env GOROOT) || die "no Go $GO_VERSION toolchain"
  local hash
  hash=$(fixture_hash "$CI_DIR/images/golang" "$GO_VERSION" "$(base_id)")
  if have_image "golang:$GO_VERSION-bookworm" "$hash"; then
    step "stand-in golang:$GO_VERSION-bookworm: cached"
    return
  fi
  ctx=$(mktemp -d "$CACHE/ctx.XXXXXX")
  cp "$CI_DIR/images/golang/Dockerfile" "$ctx/"
  cp -r "$goroot" "$ctx/go"
  rm -rf "$ctx/go/pkg/tool/"*/{cover,vet}.test "$ctx/go/test" "$ctx/go/api" "$ctx/go/doc"
  build_image "golang:$GO_VERSION-bookworm" "$ctx" "$hash"
  rm -rf "$ctx"
}

# go_standin IMAGE DIR BINARY BUILD...: a stand-in whose program is built
# from the Go module proxy on the host (BUILD is the command that writes the
# binary to the path it is given as its last argument, once per version;
# cached in $CACHE/bin), then put into an image from DIR's Dockerfile.
go_standin() {
  local image=$1 dir=$2 bin=$3 version=$4
  shift 4
  local hash cached=$CACHE/bin/$bin-$version ctx
  hash=$(fixture_hash "$dir" "$version" "$(base_id)")
  if have_image "$image" "$hash"; then
    step "stand-in $image: cached"
    return
  fi
  if [[ ! -x $cached ]]; then
    step "stand-in $image: go build $bin $version"
    "$@" "$cached"
  fi
  ctx=$(mktemp -d "$CACHE/ctx.XXXXXX")
  cp -r "$dir/." "$ctx/"
  cp "$cached" "$ctx/$bin"
  build_image "$image" "$ctx" "$hash"
  rm -rf "$ctx"
}

build_frontend() {
  go_build_module "github.com/moby/buildkit@$BUILDKIT_VERSION" ./frontend/dockerfile/cmd/dockerfile-frontend "$1"
}
build_jaeger() {
  go_build_module "github.com/jaegertracing/jaeger@$JAEGER_VERSION" ./cmd/all-in-one "$1"
}
# The collector: ocb generates a main package with the manifest's
# components and builds it.
build_otelcol() {
  local out=$1 work
  work=$(mktemp -d "$CACHE/ocb.XXXXXX")
  GOBIN=$CACHE/bin go install "go.opentelemetry.io/collector/cmd/builder@$OTELCOL_VERSION"
  sed "/^dist:/a\\  output_path: $work/dist" "$CI_DIR/images/otelcol/manifest.yaml" >"$work/manifest.yaml"
  (cd "$work" && CGO_ENABLED=0 GOWORK=off "$CACHE/bin/builder" --config manifest.yaml >"$work/ocb.log" 2>&1) || {
    tail -n 30 "$work/ocb.log" >&2
    die "ocb failed"
  }
  mv "$work/dist/otelcol-contrib" "$out"
  rm -rf "$work"
}

# go_binaries: every program built from the Go module proxy (Compose, the
# Dockerfile frontend, the collector, Jaeger), each only when not cached.
# Run in the background while the Debian-based stand-ins build: those wait
# on the network and dpkg, these on the CPU.
go_binaries() {
  local c=$CACHE/bin
  [[ -x $c/docker-compose-$COMPOSE_VERSION ]] || go_build_module "github.com/docker/compose/v2@$COMPOSE_VERSION" ./cmd \
    "$c/docker-compose-$COMPOSE_VERSION" "-X github.com/docker/compose/v2/internal.Version=$COMPOSE_VERSION"
  [[ -x $c/dockerfile-frontend-$BUILDKIT_VERSION ]] || build_frontend "$c/dockerfile-frontend-$BUILDKIT_VERSION"
  [[ -x $c/otelcol-contrib-$OTELCOL_VERSION ]] || build_otelcol "$c/otelcol-contrib-$OTELCOL_VERSION"
  [[ -x $c/all-in-one-linux-$JAEGER_VERSION ]] || build_jaeger "$c/all-in-one-linux-$JAEGER_VERSION"
}

ensure_standins() {
  local go_pid
  if [[ ! -x $CACHE/bin/docker-compose-$COMPOSE_VERSION || ! -x $CACHE/bin/dockerfile-frontend-$BUILDKIT_VERSION ||
    ! -x $CACHE/bin/otelcol-contrib-$OTELCOL_VERSION || ! -x $CACHE/bin/all-in-one-linux-$JAEGER_VERSION ]]; then
    step "Go-built programs: Compose, BuildKit's Dockerfile frontend, the collector, Jaeger (background)"
    go_binaries >"$CACHE/go-binaries.log" 2>&1 &
    go_pid=$!
  fi
  ensure_debian
  ensure_golang
  build_image "postgres:15.14-bookworm" "$CI_DIR/images/postgres"
  build_image "redis:7.4.5-bookworm" "$CI_DIR/images/redis"
  build_image "prom/prometheus:v3.5.0" "$CI_DIR/images/prometheus"
  ensure_cassandra
  if [[ -n ${go_pid:-} ]]; then
    step "wait for the Go-built programs"
    wait "$go_pid" || {
      tail -n 30 "$CACHE/go-binaries.log" >&2
      die "building the Go programs failed ($CACHE/go-binaries.log)"
    }
  fi
  ensure_compose
  go_standin docker/dockerfile:1.7 "$CI_DIR/images/dockerfile" dockerfile-frontend "$BUILDKIT_VERSION" build_frontend
  go_standin otel/opentelemetry-collector-contrib:0.135.0 "$CI_DIR/images/otelcol" otelcol-contrib "$OTELCOL_VERSION" build_otelcol
  go_standin jaegertracing/all-in-one:1.73.0 "$CI_DIR/images/jaeger" all-in-one-linux "$JAEGER_VERSION" build_jaeger
  # Stand-ins replaced by a rebuild would otherwise pile up in the data root.
  $DOCKER image prune -f --filter label=org.strata.ci.fixture >/dev/null
}

# ensure_cassandra: cassandra:5.0.9 from the jars of the native stack's pom
# (Maven Central, cached under $CACHE), the native stack's JVM flags and the
# compose cassandra.yaml as the image's default configuration.
ensure_cassandra() {
  local pom=$REPO/deploy/native/cassandra/pom.xml opts=$REPO/deploy/native/cassandra/jvm17.options
  local yaml=$REPO/deploy/compose/cassandra/cassandra.yaml ver lib hash ctx
  ver=$(sed -n 's:.*<cassandra.version>\(.*\)</cassandra.version>.*:\1:p' "$pom")
  lib=$CACHE/cassandra-$ver/lib
  hash=$(fixture_hash "$CI_DIR/images/cassandra" "$ver" "$(cat "$opts" "$yaml" | sha256sum)" "$(base_id)")
  if have_image cassandra:5.0.9 "$hash"; then
    step "stand-in cassandra:5.0.9: cached"
    return
  fi
  if [[ ! -f $lib/.complete ]]; then
    step "stand-in cassandra:5.0.9: fetch cassandra-all $ver and its dependencies (Maven Central)"
    command -v mvn >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq maven openjdk-17-jdk-headless >/dev/null
    local jh=/usr/lib/jvm/java-17-openjdk-amd64
    rm -rf "$lib.tmp" && mkdir -p "$lib.tmp"
    (if [[ -d $jh ]]; then export JAVA_HOME=$jh; fi
      mvn -B -q -Dstyle.color=never -f "$pom" -Dcassandra.version="$ver" \
        org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$lib.tmp" </dev/null >"$CACHE/cassandra-fetch.log" 2>&1) ||
      die "Maven fetch failed ($CACHE/cassandra-fetch.log)"
    [[ -f $lib.tmp/cassandra-all-$ver.jar ]] || die "cassandra-all-$ver.jar missing ($CACHE/cassandra-fetch.log)"
    rm -rf "$lib" && mv "$lib.tmp" "$lib" && touch "$lib/.complete"
  fi
  ctx=$(mktemp -d "$CACHE/ctx.XXXXXX")
  cp -r "$CI_DIR/images/cassandra/." "$ctx/"
  cp -r "$lib" "$ctx/lib" && rm -f "$ctx/lib/.complete"
  cp "$opts" "$ctx/conf/jvm17-server.options"
  cp "$yaml" "$ctx/conf/cassandra.yaml"
  build_image cassandra:5.0.9 "$ctx" "$hash"
  rm -rf "$ctx"
}

# syntax=docker/dockerfile:1.7
# The web console: a static Go binary on an empty base image, run as a
# non-root user. Build from the repository root:
#   docker build -f deploy/docker/console.Dockerfile -t strata/console .
# (docker compose does this; see docs/deployment.md). Checked by
# tools/deploycheck/dockerfile_test.go.

FROM golang:1.26.8-bookworm AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOWORK=off GOFLAGS=-trimpath
# Module files first, so dependency downloads are cached across source edits.
COPY libs/go.mod libs/go.sum libs/
COPY services/console/go.mod services/console/go.sum services/console/
RUN --mount=type=cache,target=/go/pkg/mod \
    cd services/console && go mod download
COPY libs/ libs/
COPY services/console/ services/console/
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    cd services/console && go build -ldflags="-s -w" -o /out/console . \
    && mkdir -p /out/data

# Nothing but the binary: no shell, no package manager, no curl. The
# service needs no system CA roots (it trusts only the project CA, mounted
# at run time) and writes only to mounted volumes.
FROM scratch
COPY --from=build /out/console /usr/local/bin/console
# The one writable place (a volume in compose): owned by the service user so
# an empty named volume mounted here inherits that owner.
COPY --from=build --chown=65532:65532 /out/data /var/lib/strata/console
USER 65532:65532
# public TLS, internal mTLS (public + 1000)
EXPOSE 8445 9445
# The binary probes its own /readyz over TLS with the mounted CA.
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s --retries=5 \
    CMD ["/usr/local/bin/console", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/console"]

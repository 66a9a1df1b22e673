# syntax=docker/dockerfile:1.7
# The one-shot `certs` job of docker-compose.yml: issues the development CA
# and every leaf, and lays out one read-only directory per container
# (tools/deploycheck/cmd/compose-certs). Build from the repository root:
#   docker build -f deploy/docker/certs.Dockerfile -t strata/certs .

FROM golang:1.26.8-bookworm AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOWORK=off GOFLAGS=-trimpath
COPY libs/ libs/
COPY tools/ tools/
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    cd tools && go build -ldflags="-s -w" -o /out/compose-certs ./deploycheck/cmd/compose-certs

FROM scratch
COPY --from=build /out/compose-certs /usr/local/bin/compose-certs
# The job hands each key to the user its container runs as (postgres 999,
# prometheus 65534, services 65532), which takes CAP_CHOWN: it is the one
# image that runs as root. Compose drops every other capability, and the
# job exits once the files are written. The service images run as 65532.
USER 0:0
ENTRYPOINT ["/usr/local/bin/compose-certs"]
CMD ["-ca", "/var/lib/strata/ca", "-out", "/run/strata/certs"]

# syntax=docker/dockerfile:1.7
# The load generator (loadtest/cmd/strata-load) for the compose `loadtest`
# profile. Build from the repository root:
#   docker build -f deploy/docker/loadtest.Dockerfile -t strata/loadtest .

FROM golang:1.26.8-bookworm AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOWORK=off GOFLAGS=-trimpath
COPY libs/go.mod libs/go.sum libs/
COPY loadtest/go.mod loadtest/go.sum loadtest/
RUN --mount=type=cache,target=/go/pkg/mod \
    cd loadtest && go mod download
COPY libs/ libs/
COPY loadtest/ loadtest/
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    cd loadtest && go build -ldflags="-s -w" -o /out/strata-load ./cmd/strata-load

FROM scratch
COPY --from=build /out/strata-load /usr/local/bin/strata-load
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/strata-load"]

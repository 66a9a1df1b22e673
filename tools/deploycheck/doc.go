// Package deploycheck holds the tests that validate Strata's container and
// Kubernetes artifacts without a container engine, and the certificate
// layout the compose `certs` job writes.
//
// The build machines have no Docker daemon and no registry, so instead of
// running `docker compose up` the tests load docker-compose.yml with
// compose-spec/compose-go (the loader docker compose itself uses), parse
// every Dockerfile with BuildKit's parser, run promtool on the Prometheus
// configuration, scrape the real services' /metrics for every series a
// Grafana dashboard queries, and decode the Kubernetes manifests strictly
// into k8s.io/api types after building them with kustomize (krusty).
// docs/deployment.md explains what each test guards.
package deploycheck

package httpapi

import (
	"io"
	"log/slog"
	"net/http"
	"testing"

	"github.com/strata-ref/strata/libs/observe"
	"github.com/strata-ref/strata/libs/openapi/openapitest"
	"github.com/strata-ref/strata/libs/resilience"
	"github.com/strata-ref/strata/libs/server"
	"github.com/strata-ref/strata/services/auth/api"
)

// newEngines mounts the routes as main.go does (kit.NewServer, Register),
// without the dependencies: the handlers are never called. The OpenID
// Connect endpoints (internal/oidc) are left out: their contract is the
// OIDC and OAuth specifications and the discovery document.
func newEngines() *server.Server {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	kit := &server.Kit{Name: "auth", Logger: log, Registry: observe.NewRegistry(), Faults: resilience.NewFaults("dev")}
	srv := kit.NewServer(server.Env{})
	New(nil, nil, nil, log).Register(srv.Public, func(h http.Handler) http.Handler { return h })
	return srv
}

// TestOpenAPIRoutes fails when a registered route is missing from
// api/openapi.yaml or a documented operation is not registered.
func TestOpenAPIRoutes(t *testing.T) {
	srv := newEngines()
	openapitest.CheckRoutes(t, api.Document, srv.Public, srv.Internal)
}

func TestOpenAPIServed(t *testing.T) {
	openapitest.CheckServed(t, api.Document, newEngines().Public)
}

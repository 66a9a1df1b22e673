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
	"github.com/strata-ref/strata/services/analytics/api"
)

// newEngines mounts the routes as main.go does (kit.NewServer, Register),
// without the dependencies: the handlers are never called.
func newEngines() *server.Server {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	kit := &server.Kit{Name: "analytics", Logger: log, Registry: observe.NewRegistry(), Faults: resilience.NewFaults("dev")}
	srv := kit.NewServer(server.Env{})
	a := New(nil, func(h http.Handler) http.Handler { return h }, log)
	a.RegisterPublic(srv.Public)
	a.RegisterInternal(srv.Internal)
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

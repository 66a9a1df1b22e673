package httpapi

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"

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
	New(nil, nil, nil, log).Register(srv.Public, func(*gin.Context) {})
	return srv
}

// TestOpenAPIRoutes fails when a registered route is missing from
// api/openapi.yaml or a documented operation is not registered.
func TestOpenAPIRoutes(t *testing.T) {
	srv := newEngines()
	openapitest.CheckRoutes(t, api.Document, srv.Public, srv.Internal)
}

func TestOpenAPIServed(t *testing.T) {
	srv := newEngines()
	rec := httptest.NewRecorder()
	srv.Public.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/openapi.json", nil))
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" || rec.Body.String() != string(api.Document.JSON()) {
		t.Fatalf("GET /openapi.json: %d %q, %d bytes", rec.Code, rec.Header().Get("Content-Type"), rec.Body.Len())
	}
}

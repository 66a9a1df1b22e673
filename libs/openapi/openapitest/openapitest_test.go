package openapitest

import (
	"slices"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/strata-ref/strata/libs/openapi"
)

const doc = `openapi: 3.1.0
info: {title: t, version: "1"}
paths:
  /v1/things/{id}:
    get:
      parameters: [{name: id, in: path, required: true, schema: {type: string}}]
      responses: {"200": {description: ok}}
  /internal/things:
    x-strata-listener: internal
    post:
      responses: {"201": {description: created}}
  /healthz:
    x-strata-listener: both
    get:
      responses: {"200": {description: ok}}
`

// TestDiffFindsBothDirections: a route the document lacks and an operation
// no engine registers are both reported, on the listener they belong to.
func TestDiffFindsBothDirections(t *testing.T) {
	gin.SetMode(gin.ReleaseMode)
	ops := Operations(Load(t, openapi.MustLoad([]byte(doc))))
	if want := []string{"GET /healthz", "GET /v1/things/{id}"}; !slices.Equal(ops["public"], want) {
		t.Fatalf("public operations %v, want %v", ops["public"], want)
	}
	if want := []string{"GET /healthz", "POST /internal/things"}; !slices.Equal(ops["internal"], want) {
		t.Fatalf("internal operations %v, want %v", ops["internal"], want)
	}
	pub, in := gin.New(), gin.New()
	noop := func(*gin.Context) {}
	pub.GET("/v1/things/:id", noop)
	pub.GET("/healthz", noop)
	pub.DELETE("/v1/things/:id", noop) // not documented
	in.GET("/healthz", noop)           // POST /internal/things is not registered
	undocumented, _ := Diff(ops["public"], Routes(pub.Routes()))
	if !slices.Equal(undocumented, []string{"DELETE /v1/things/{id}"}) {
		t.Fatalf("undocumented %v", undocumented)
	}
	_, unregistered := Diff(ops["internal"], Routes(in.Routes()))
	if !slices.Equal(unregistered, []string{"POST /internal/things"}) {
		t.Fatalf("unregistered %v", unregistered)
	}
}

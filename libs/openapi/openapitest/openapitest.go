// Package openapitest checks a service against its OpenAPI document in
// tests: the document is valid OpenAPI 3.1 (kin-openapi), and the routes
// the service registers on its gin engines are exactly the documented
// operations, on the listener the document names.
package openapitest

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/gin-gonic/gin"

	"github.com/strata-ref/strata/libs/openapi"
)

// Listener is the path item extension naming where its operations are
// served: "public" (the default), "internal" or "both".
const Listener = "x-strata-listener"

// Load parses the document with kin-openapi and validates it.
func Load(t testing.TB, d *openapi.Document) *openapi3.T {
	t.Helper()
	doc, err := Parse(d)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// Parse parses and validates the document.
func Parse(d *openapi.Document) (*openapi3.T, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(d.JSON())
	if err != nil {
		return nil, fmt.Errorf("openapi: load: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("openapi: invalid document: %w", err)
	}
	return doc, nil
}

var ginParam = regexp.MustCompile(`[:*]([A-Za-z0-9_]+)`)

// Operations lists the documented operations as "METHOD /path/{param}",
// per listener ("public", "internal").
func Operations(doc *openapi3.T) map[string][]string {
	out := map[string][]string{}
	for path, item := range doc.Paths.Map() {
		where := "public"
		if v, ok := item.Extensions[Listener].(string); ok {
			where = v
		}
		for method := range item.Operations() {
			op := method + " " + path
			switch where {
			case "both":
				out["public"] = append(out["public"], op)
				out["internal"] = append(out["internal"], op)
			default:
				out[where] = append(out[where], op)
			}
		}
	}
	for _, ops := range out {
		slices.Sort(ops)
	}
	return out
}

// Routes lists gin's routes in the document's notation.
func Routes(routes gin.RoutesInfo) []string {
	out := make([]string, 0, len(routes))
	for _, r := range routes {
		out = append(out, r.Method+" "+ginParam.ReplaceAllString(r.Path, "{$1}"))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Diff returns the registered routes missing from the documented ones and
// the documented ones not registered.
func Diff(documented, registered []string) (undocumented, unregistered []string) {
	for _, r := range registered {
		if !slices.Contains(documented, r) {
			undocumented = append(undocumented, r)
		}
	}
	for _, d := range documented {
		if !slices.Contains(registered, d) {
			unregistered = append(unregistered, d)
		}
	}
	return undocumented, unregistered
}

// CheckRoutes fails t unless the routes of each listener's engine are
// exactly the document's operations for that listener. exempt names
// registered routes ("METHOD /path/{p}") that are specified elsewhere
// (the OpenID Connect endpoints, whose contract is the OIDC and OAuth
// specifications and the discovery document).
func CheckRoutes(t testing.TB, d *openapi.Document, public, internal *gin.Engine, exempt ...string) {
	t.Helper()
	ops := Operations(Load(t, d))
	for _, l := range []struct {
		name   string
		engine *gin.Engine
	}{{"public", public}, {"internal", internal}} {
		registered := slices.DeleteFunc(Routes(l.engine.Routes()), func(r string) bool { return slices.Contains(exempt, r) })
		undocumented, unregistered := Diff(ops[l.name], registered)
		if len(undocumented) > 0 {
			t.Errorf("%s listener: routes missing from the OpenAPI document:\n  %s", l.name, strings.Join(undocumented, "\n  "))
		}
		if len(unregistered) > 0 {
			t.Errorf("%s listener: documented operations not registered:\n  %s", l.name, strings.Join(unregistered, "\n  "))
		}
	}
}

// CheckServed fails t unless public answers GET /openapi.json with the
// document, as JSON, without a token.
func CheckServed(t testing.TB, d *openapi.Document, public http.Handler) {
	t.Helper()
	rec := httptest.NewRecorder()
	public.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/openapi.json", nil))
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" || rec.Body.String() != string(d.JSON()) {
		t.Fatalf("GET /openapi.json: %d %q, %d bytes", rec.Code, rec.Header().Get("Content-Type"), rec.Body.Len())
	}
}

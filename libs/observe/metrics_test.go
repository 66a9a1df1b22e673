package observe_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/contrib/instrumentation/github.com/gin-gonic/gin/otelgin"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/strata-ref/strata/libs/observe"
)

// Go's server accepts any token as a method; before the method label came
// from a fixed set, each invented method minted a new histogram series.
func TestInventedMethodsMintNoSeries(t *testing.T) {
	gin.SetMode(gin.ReleaseMode)
	reg := prometheus.NewRegistry()
	e := gin.New()
	e.HandleMethodNotAllowed = true
	e.Use(observe.RED(reg, "public"))
	e.GET("/v1/accounts/:id", func(c *gin.Context) { c.Status(http.StatusOK) })
	serve := func(method, path string) {
		e.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(method, path, nil))
	}
	serve(http.MethodGet, "/v1/accounts/a1")
	serve("BREW", "/v1/accounts/a1") // 405: one _OTHER series
	serve("BREW", "/nowhere")        // 404: one unmatched series
	before := testutil.CollectAndCount(reg)
	for i := range 120 {
		serve(fmt.Sprintf("M%d%s", i, strings.Repeat("X", i)), "/v1/accounts/a1")
		serve(fmt.Sprintf("N%d", i), fmt.Sprintf("/scan/%d", i))
		serve(http.MethodGet, fmt.Sprintf("/v1/accounts/a%d", i))
	}
	if after := testutil.CollectAndCount(reg); after != before {
		t.Fatalf("120 invented methods and paths grew the series from %d to %d", before, after)
	}
	got, err := testutil.GatherAndCount(reg, "http_server_request_duration_seconds")
	if err != nil || got != 3 {
		t.Fatalf("series %d (%v); want GET 200, _OTHER 405 and _OTHER unmatched 404", got, err)
	}
}

func TestMethodSet(t *testing.T) {
	for m, want := range map[string]string{"GET": "GET", "POST": "POST", "PUT": "PUT", "DELETE": "DELETE", "PATCH": "PATCH",
		"HEAD": "HEAD", "OPTIONS": "OPTIONS", "get": "_OTHER", "CONNECT": "_OTHER", "TRACE": "_OTHER", "BREW": "_OTHER", "": "_OTHER"} {
		if got := observe.Method(m); got != want {
			t.Errorf("Method(%q) = %q, want %q", m, got, want)
		}
	}
}

// The server span carries the route template, never the raw path: a path
// such as /internal/sessions/<sid> holds an identifier.
func TestSpanCarriesRouteTemplate(t *testing.T) {
	gin.SetMode(gin.ReleaseMode)
	exp := tracetest.NewInMemoryExporter()
	t.Setenv("OTEL_TRACES_SAMPLER", "always_on")
	tr, err := observe.NewTracing(context.Background(), observe.TracingConfig{Service: "session", Exporters: []sdktrace.SpanExporter{exp}})
	if err != nil {
		t.Fatal(err)
	}
	e := gin.New()
	e.Use(otelgin.Middleware("session", otelgin.WithTracerProvider(tr.Provider), otelgin.WithPropagators(tr.Propagator)), observe.RouteSpan())
	e.GET("/internal/sessions/:sid", func(c *gin.Context) { c.Status(http.StatusOK) })
	const sid = "s3cr3t-session-id-4242"
	e.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/internal/sessions/"+sid, nil))
	e.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("X"+strings.Repeat("M", 4000), "/internal/sessions/"+sid, nil))
	if err := tr.Provider.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans := exp.GetSpans()
	if len(spans) != 2 {
		t.Fatalf("%d spans, want 2", len(spans))
	}
	for _, s := range spans {
		path := ""
		for _, a := range s.Attributes {
			v := a.Value.String()
			if strings.Contains(v, sid) {
				t.Errorf("span %q attribute %s holds the sid: %s", s.Name, a.Key, v)
			}
			if len(v) > observe.MaxAttributeLength {
				t.Errorf("span attribute %s is %d bytes long", a.Key, len(v))
			}
			if a.Key == "url.path" {
				path = v
			}
		}
		if path != "/internal/sessions/:sid" && path != "unmatched" {
			t.Errorf("span %q url.path = %q, want the route template", s.Name, path)
		}
	}
}

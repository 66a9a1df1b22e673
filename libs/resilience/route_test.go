package resilience_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/strata-ref/strata/libs/resilience"
)

// A call's client span carries its route template, never the path: the
// session service's /internal/sessions/<sid> holds an identifier, and
// spans leave the process.
func TestClientSpanCarriesTheRouteNotThePath(t *testing.T) {
	d := newDependency(t, func(w http.ResponseWriter, _ *http.Request, _ int64) { w.WriteHeader(http.StatusOK) })
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithSampler(sdktrace.AlwaysSample()))
	c := client(t, d, resilience.ClientConfig{TracerProvider: tp})
	const sid = "s3cr3t-session-id-4242"
	for _, ctx := range []context.Context{resilience.WithRoute(context.Background(), "/internal/sessions/:sid"), context.Background()} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "/internal/sessions/"+sid+"?q="+sid, nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	spans := exp.GetSpans()
	if len(spans) != 2 {
		t.Fatalf("%d spans, want 2", len(spans))
	}
	for i, s := range spans {
		full := ""
		for _, a := range s.Attributes {
			if strings.Contains(a.Value.String(), sid) {
				t.Errorf("span %d attribute %s holds the sid: %s", i, a.Key, a.Value.String())
			}
			if a.Key == "url.full" {
				full = a.Value.String()
			}
		}
		if want := d.srv.URL + []string{"/internal/sessions/:sid", ""}[i]; full != want {
			t.Errorf("span %d url.full = %q, want %q", i, full, want)
		}
	}
}

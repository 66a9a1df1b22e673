package resilience

import (
	"context"
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

type routeKey struct{}

// WithRoute names the route template of the call made with ctx
// ("/internal/sessions/:sid"): its client span carries the template, not
// the path, which may hold an identifier.
func WithRoute(ctx context.Context, template string) context.Context {
	return context.WithValue(ctx, routeKey{}, template)
}

// routeSpan runs inside otelhttp's transport and rewrites the client
// span's url.full, which otelhttp fills with the whole URL: the scheme and
// host stay, the path becomes the call's route template (WithRoute), and
// without one the path and query are left out. Spans leave the process.
type routeSpan struct{ next http.RoundTripper }

func (t routeSpan) RoundTrip(req *http.Request) (*http.Response, error) {
	if span := trace.SpanFromContext(req.Context()); span.IsRecording() {
		tmpl, _ := req.Context().Value(routeKey{}).(string)
		attrs := []attribute.KeyValue{semconv.URLFull(req.URL.Scheme + "://" + req.URL.Host + tmpl)}
		if tmpl != "" {
			attrs = append(attrs, semconv.URLTemplate(tmpl))
		}
		span.SetAttributes(attrs...)
	}
	return t.next.RoundTrip(req)
}

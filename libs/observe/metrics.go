package observe

import (
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewRegistry returns a registry with the Go runtime and process collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// MetricsHandler serves reg in the Prometheus text format.
func MetricsHandler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}

// Method maps a request method onto the fixed set a metric label or a log
// line may carry: the methods Strata's routes use, and "_OTHER" for any
// other token (as OpenTelemetry's HTTP semantic conventions do). Go's
// server accepts any RFC 9110 token as a method, so a raw method label
// lets one client mint a new series per request.
func Method(m string) string {
	switch m {
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodHead, http.MethodOptions:
		return m
	}
	return "_OTHER"
}

// Route, RED and RouteSpan are gin middleware, unlike the rest of the
// request path's (libs/server): they need the route template the router
// matched, which only gin knows (c.FullPath()).

// Route is the route template gin matched ("/internal/sessions/:sid"), or
// "unmatched": never the raw path, which may carry identifiers and grows
// without bound under path scans.
func Route(c *gin.Context) string {
	if r := c.FullPath(); r != "" {
		return r
	}
	return "unmatched"
}

// RED records, per listener, route template, method (from a fixed set) and
// status code, the request count (rate and errors) and the duration
// histogram. Every label has a bounded set of values.
func RED(reg prometheus.Registerer, listener string) gin.HandlerFunc {
	dur := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:        "http_server_request_duration_seconds",
		Help:        "Duration of HTTP requests served, by route template, method and status code.",
		ConstLabels: prometheus.Labels{"listener": listener},
		Buckets:     []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"route", "method", "code"})
	reg.MustRegister(dur)
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		dur.WithLabelValues(Route(c), Method(c.Request.Method), strconv.Itoa(c.Writer.Status())).Observe(time.Since(start).Seconds())
	}
}

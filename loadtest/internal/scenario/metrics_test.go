package scenario

import (
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// TestScrapeReadsTheExpositionFormat serves a real client_golang registry
// (the services' own library) and reads it back through the Sampler: the
// gauges by name and labels, and the shedding histograms bucket by bucket.
func TestScrapeReadsTheExpositionFormat(t *testing.T) {
	reg := prometheus.NewRegistry()
	breaker := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "strata_breaker_state"}, []string{"dependency"})
	breaker.WithLabelValues("postgres").Set(2)
	breaker.WithLabelValues("session").Set(0)
	limit := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "strata_limiter_limit"}, []string{"listener"})
	limit.WithLabelValues("public").Set(12)
	limit.WithLabelValues("internal").Set(99)
	shed := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "strata_shed_decision_seconds", Buckets: []float64{0.001, 0.01}}, []string{"listener"})
	shed.WithLabelValues("public").Observe(0.0005)
	shed.WithLabelValues("public").Observe(0.005)
	shed.WithLabelValues("public").Observe(5)
	shed.WithLabelValues("internal").Observe(0.0005)
	reg.MustRegister(breaker, limit, shed, collectors.NewGoCollector())
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()

	svc := Service{Name: "ledger", Internal: srv.URL}
	s := &Sampler{services: []Service{svc}, clients: map[string]*http.Client{"ledger": srv.Client()}}
	got, err := s.scrape(context.Background(), svc)
	if err != nil {
		t.Fatal(err)
	}
	if got["breaker postgres"] != 2 || got["breaker session"] != 0 || got["limit"] != 12 || got["goroutines"] < 1 {
		t.Fatalf("scraped %v", got)
	}
	if v, err := s.Gauge(context.Background(), "ledger", "strata_limiter_limit", "listener", "internal"); err != nil || v != 99 {
		t.Fatalf("Gauge: %v, %v; want 99", v, err)
	}
	if _, err := s.Gauge(context.Background(), "ledger", "strata_limiter_limit", "listener", "nope"); err == nil {
		t.Fatal("Gauge found a series that is not there")
	}
	d, _ := s.serverDurations(context.Background())
	want := durations{0.001: 1, 0.01: 2, math.Inf(1): 3} // the internal listener's not counted
	if len(d) != len(want) {
		t.Fatalf("buckets %v, want %v", d, want)
	}
	for le, n := range want {
		if d[le] != n {
			t.Fatalf("buckets %v, want %v", d, want)
		}
	}
}

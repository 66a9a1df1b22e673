package server

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkRejection is the cost of one 429 in the shedding middleware
// while the limiter and its queue are full: it must stay far below a
// served request's.
func BenchmarkRejection(b *testing.B) {
	gin.SetMode(gin.ReleaseMode)
	s := newShedder(ShedConfig{MinLimit: 1, MaxLimit: 1, InitialLimit: 1, MaxWait: time.Hour}, "public", prometheus.NewRegistry(),
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	permit, err := s.limiter.AcquirePermitWithMaxWait(context.Background(), 0)
	if err != nil {
		b.Fatal(err)
	}
	defer permit.Drop()
	// Fill the queue (twice the limit) with waiters that leave at the end.
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if p, err := s.limiter.AcquirePermitWithMaxWait(ctx, time.Hour); err == nil {
				p.Drop()
			}
		}()
	}
	defer func() { cancel(); wg.Wait() }()
	for s.limiter.Queued() < 2 {
		time.Sleep(time.Millisecond)
	}
	e := gin.New()
	e.Use(s.middleware())
	e.GET("/v1/x", func(c *gin.Context) { c.Status(200) })
	req := httptest.NewRequest(http.MethodGet, "/v1/x", nil)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		e.ServeHTTP(w, req)
		if w.Code != http.StatusTooManyRequests {
			b.Fatalf("status %d", w.Code)
		}
	}
}

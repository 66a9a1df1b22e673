package server_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptrace"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/strata-ref/strata/libs/server"
)

func TestOverloadIsShedWith429(t *testing.T) {
	dir, _ := issue(t, "ledger")
	srv := server.New(server.Config{
		Name: "ledger", PublicAddr: "127.0.0.1:0", InternalAddr: "127.0.0.1:0",
		TLS: source(t, dir, "ledger"), Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)),
		Shed: server.ShedConfig{MinLimit: 1, MaxLimit: 2, InitialLimit: 2, MaxWait: 20 * time.Millisecond},
	})
	srv.Public.GET("/v1/slow", func(c *gin.Context) {
		time.Sleep(300 * time.Millisecond)
		c.JSON(200, gin.H{"ok": true})
	})
	srv.Public.GET("/openapi.json", func(c *gin.Context) { c.JSON(200, gin.H{"openapi": "3.1.0"}) })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	var addr string
	for addr == "" {
		if a, _ := srv.Addrs(); a != nil {
			addr = a.String()
		}
		time.Sleep(5 * time.Millisecond)
	}
	h := &harness{dir: dir}
	client := h.publicClient(t)

	var mu sync.Mutex
	codes := map[int]int{}
	var worst429 time.Duration
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The 429's time runs from when the request was written, not
			// from the start: twenty TLS handshakes at once on a loaded
			// machine may take longer than the handler, and they are not
			// what this test measures.
			var (
				wmu   sync.Mutex
				wrote time.Time
			)
			trace := &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { wmu.Lock(); wrote = time.Now(); wmu.Unlock() }}
			req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodGet, "https://"+addr+"/v1/slow", nil)
			resp, err := client.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			mu.Lock()
			defer mu.Unlock()
			codes[resp.StatusCode]++
			if resp.StatusCode == 429 {
				wmu.Lock()
				worst429 = max(worst429, time.Since(wrote))
				wmu.Unlock()
				if resp.Header.Get("Retry-After") != "1" || resp.Header.Get("Content-Type") != "application/problem+json" {
					t.Errorf("429 without Retry-After or problem+json: %v", resp.Header)
				}
			}
		}()
	}
	// While the flood is on, health, readiness and the contract still answer.
	time.Sleep(50 * time.Millisecond)
	for _, p := range []string{"/healthz", "/readyz", "/openapi.json"} {
		resp, err := client.Get("https://" + addr + p)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s during overload: %v %v", p, resp, err)
		}
		resp.Body.Close()
	}
	wg.Wait()
	if codes[200] == 0 || codes[429] == 0 || codes[200]+codes[429] != 20 {
		t.Fatalf("status codes %v; want some served and the rest shed", codes)
	}
	// A rejection is cheap: it never waits for the slow handler (300 ms);
	// at most MaxWait (20 ms) in the queue, and scheduling on a busy machine.
	if worst429 > 250*time.Millisecond {
		t.Fatalf("slowest 429 took %s", worst429)
	}
}

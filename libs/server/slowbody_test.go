package server_test

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/strata-ref/strata/libs/server"
)

// startShed boots a server whose public listener admits at most two
// requests at once and waits bodyTimeout for a body.
func startShed(t *testing.T, bodyTimeout time.Duration) (*harness, string) {
	t.Helper()
	dir, _ := issue(t, "ledger")
	srv := server.New(server.Config{
		Name: "ledger", PublicAddr: "127.0.0.1:0", InternalAddr: "127.0.0.1:0",
		TLS: source(t, dir, "ledger"), Logger: slog.New(slog.DiscardHandler),
		Shed: server.ShedConfig{MinLimit: 2, MaxLimit: 2, InitialLimit: 2, MaxWait: 20 * time.Millisecond, BodyTimeout: bodyTimeout},
	})
	srv.Public.POST("/v1/transfers", func(c *gin.Context) {
		var body struct {
			Amount int `json:"amount"`
		}
		if !server.DecodeJSON(c.Writer, c.Request, &body) {
			return
		}
		c.JSON(201, body)
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	for {
		if a, _ := srv.Addrs(); a != nil {
			return &harness{dir: dir}, a.String()
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Clients that send the headers of a POST and never its body hold no
// permit: with the limit at 2, forty of them (over HTTP/1.1 connections
// and over one HTTP/2 connection's streams) do not make the service
// refuse anyone else, and each is cut with a 408 once the body deadline
// passes. Before, the permit was taken before the body was read, and the
// stalled requests held every permit for as long as they stayed open.
func TestStalledBodiesHoldNoPermit(t *testing.T) {
	const bodyTimeout = 1500 * time.Millisecond
	h, addr := startShed(t, bodyTimeout)
	base := h.publicClient(t)
	for _, proto := range []string{"HTTP/1.1", "HTTP/2.0"} {
		t.Run(proto, func(t *testing.T) {
			tr := base.Transport.(*http.Transport).Clone()
			tr.ForceAttemptHTTP2 = proto == "HTTP/2.0"
			if !tr.ForceAttemptHTTP2 {
				tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
			}
			stalled := &http.Client{Transport: tr, Timeout: 10 * time.Second}
			type cut struct {
				status int
				after  time.Duration
				proto  string
				err    error
			}
			cuts := make(chan cut, 40)
			var writers []*io.PipeWriter
			var wg sync.WaitGroup
			for range 20 {
				pr, pw := io.Pipe()
				writers = append(writers, pw)
				req, _ := http.NewRequest(http.MethodPost, "https://"+addr+"/v1/transfers", pr)
				req.ContentLength = 100
				req.Header.Set("Content-Type", "application/json")
				wg.Add(1)
				go func() {
					defer wg.Done()
					start := time.Now()
					resp, err := stalled.Do(req)
					if err != nil {
						cuts <- cut{err: err, after: time.Since(start)}
						return
					}
					resp.Body.Close()
					cuts <- cut{status: resp.StatusCode, after: time.Since(start), proto: resp.Proto}
				}()
			}
			defer func() {
				for _, w := range writers {
					w.Close()
				}
			}()
			time.Sleep(300 * time.Millisecond) // the headers are in; the bodies never come
			legit := h.publicClient(t)
			for i := range 10 {
				resp, err := legit.Post("https://"+addr+"/v1/transfers", "application/json", strings.NewReader(`{"amount":1}`))
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					t.Fatalf("request %d beside the stalled bodies: %d, want 201", i, resp.StatusCode)
				}
				if i == 0 && (resp.Header.Get("Strict-Transport-Security") == "" || resp.Header.Get("Cache-Control") != "no-store") {
					t.Errorf("public API answer without HSTS or no-store: %v", resp.Header)
				}
			}
			wg.Wait()
			close(cuts)
			for c := range cuts {
				if c.err != nil {
					t.Errorf("stalled request: %v after %s; want a 408", c.err, c.after)
					continue
				}
				if c.status != http.StatusRequestTimeout || c.after > bodyTimeout+2*time.Second || c.proto != proto {
					t.Errorf("stalled request: %d (%s) after %s; want 408 over %s within the %s body deadline", c.status, c.proto, c.after, proto, bodyTimeout)
				}
			}
		})
	}
}

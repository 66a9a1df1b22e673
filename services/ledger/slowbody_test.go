package main

import (
	"crypto/tls"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/strata-ref/strata/libs/server"
	"github.com/strata-ref/strata/libs/testenv"
)

// A signed-in customer opens 300 connections that send the headers of
// POST /v1/transfers and never the body. The service keeps serving
// everyone else (no 429), and cuts each stalled request with a 408 once
// the body deadline passes. Before bodies were read ahead of the limiter,
// each stalled request held a permit and the ledger refused everyone for
// as long as the connections stayed open.
func TestStalledTransferBodiesDoNotShedOthers(t *testing.T) {
	h := newHarness(t)
	alice := h.user(t, "alice", "eu", "customer")
	bob := h.user(t, "bob", "eu", "customer")
	carol := h.user(t, "carol", "eu", "teller")
	a := h.openAccount(t, alice, "EUR", "A")
	b := h.openAccount(t, bob, "EUR", "B")
	h.deposit(t, carol, a, 1_000)

	tr := testenv.HTTPTransport(h.client).Clone()
	tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{} // one HTTP/1.1 connection each
	stalled := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	defer tr.CloseIdleConnections()
	const n = 300
	type cut struct {
		status int
		after  time.Duration
		err    error
	}
	cuts := make(chan cut, n)
	var writers []*io.PipeWriter
	defer func() {
		for _, w := range writers {
			w.Close()
		}
	}()
	var wg sync.WaitGroup
	for range n {
		pr, pw := io.Pipe()
		writers = append(writers, pw)
		req, _ := http.NewRequest(http.MethodPost, "https://"+h.public+"/v1/transfers", pr)
		req.ContentLength = 200
		req.Header.Set("Authorization", "Bearer "+alice.token)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", key())
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
			cuts <- cut{status: resp.StatusCode, after: time.Since(start)}
		}()
	}
	time.Sleep(time.Second) // the connections are open and their headers sent
	for i := range 20 {
		if r := h.call(t, bob, "GET", "/v1/accounts/"+b, "", nil); r.status != http.StatusOK {
			t.Fatalf("read %d beside %d stalled bodies: %d %s", i, n, r.status, r.body)
		}
	}
	r := h.call(t, alice, "POST", "/v1/transfers", key(), map[string]any{"from_account_id": a, "to_account_id": b,
		"amount": 100, "currency": "EUR"})
	if r.status != http.StatusCreated {
		t.Fatalf("transfer beside %d stalled bodies: %d %s", n, r.status, r.body)
	}
	if r.header.Get("Cache-Control") != "no-store" || r.header.Get("Strict-Transport-Security") == "" {
		t.Errorf("account data without no-store or HSTS: %v", r.header)
	}
	wg.Wait()
	close(cuts)
	limit := server.ReadTimeout // the body deadline (5 s) and a loaded machine's slack, below the listener's
	for c := range cuts {
		if c.err != nil || c.status != http.StatusRequestTimeout || c.after > limit {
			t.Fatalf("stalled transfer: %d %v after %s; want 408 within %s", c.status, c.err, c.after, limit)
		}
	}
}

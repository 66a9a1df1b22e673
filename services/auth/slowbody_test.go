package main

import (
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-ref/strata/libs/server"
	"github.com/strata-ref/strata/libs/testenv"
)

// 300 connections send the headers of POST /login and POST /oauth2/token,
// without signing in, and never the body. Sign-in keeps working for
// everyone else (no 429), and each stalled request is cut with a 408 once
// the body deadline passes. Before bodies were read ahead of the limiter,
// each stalled request held one of the limiter's permits and auth
// refused every sign-in for as long as the connections stayed open.
func TestStalledLoginBodiesDoNotShedOthers(t *testing.T) {
	h := start(t)
	tr := testenv.HTTPTransport(h.st.PublicClient(t)).Clone()
	tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{} // one HTTP/1.1 connection each
	defer tr.CloseIdleConnections()
	stalled := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	const n = 300
	type cut struct {
		path   string
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
	for i := range n {
		path := "/login?authRequestID=anything"
		if i%2 == 1 {
			path = "/oauth2/token"
		}
		pr, pw := io.Pipe()
		writers = append(writers, pw)
		req, _ := http.NewRequest(http.MethodPost, h.issuer+path, pr)
		req.ContentLength = 200
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			resp, err := stalled.Do(req)
			if err != nil {
				cuts <- cut{path: path, err: err, after: time.Since(start)}
				return
			}
			resp.Body.Close()
			cuts <- cut{path: path, status: resp.StatusCode, after: time.Since(start)}
		}()
	}
	time.Sleep(time.Second) // the connections are open and their headers sent
	// A whole sign-in: the login form POST and the code redeemed at the
	// token endpoint, beside the stalled requests on both.
	if tok := h.login(t, h.browser(t), "alice"); tok.AccessToken == "" {
		t.Fatal("no access token")
	}
	wg.Wait()
	close(cuts)
	for c := range cuts {
		if c.err != nil || c.status != http.StatusRequestTimeout || c.after > server.ReadTimeout {
			t.Fatalf("stalled %s: %d %v after %s; want 408 within %s", strings.SplitN(c.path, "?", 2)[0], c.status, c.err, c.after, server.ReadTimeout)
		}
	}
}

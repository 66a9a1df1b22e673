package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-ref/strata/libs/testenv"
)

// TestBenchCacheAside measures, in one run on one machine, the session read
// path through the service (TLS, JWT validation, cache-aside) with the cache
// on and off, beside raw redis-benchmark GETs at the same concurrency.
// Run with STRATA_BENCH=1 (make bench); it prints a table.
func TestBenchCacheAside(t *testing.T) {
	if os.Getenv("STRATA_BENCH") == "" {
		t.Skip("benchmark: set STRATA_BENCH=1")
	}
	const conc = 32
	dur := 5 * time.Second
	if d, err := time.ParseDuration(os.Getenv("STRATA_BENCH_DURATION")); err == nil {
		dur = d
	}
	st, env, iss := testEnv(t)

	measure := func(extra map[string]string) float64 {
		e := map[string]string{}
		for k, v := range env {
			e[k] = v
		}
		for k, v := range extra {
			e[k] = v
		}
		svc := testenv.StartService(t, run, e)
		user := "bench-" + strconv.FormatInt(time.Now().UnixNano(), 36)
		sids := make([]string, 64)
		for i := range sids {
			sids[i] = createSession(t, st, svc, user)
		}
		tok := userToken(t, iss, user, sids[0])
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: testenv.HTTPTransport(st.PublicClient(t)).TLSClientConfig,
			MaxIdleConnsPerHost: conc}}
		get := func(sid string) error {
			req, _ := http.NewRequest(http.MethodGet, "https://"+svc.Public+"/v1/sessions/"+sid, nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := client.Do(req)
			if err != nil {
				return err
			}
			io.Copy(io.Discard, resp.Body) // drained, so the connection is reused
			resp.Body.Close()
			if resp.StatusCode != 200 {
				return fmt.Errorf("status %d", resp.StatusCode)
			}
			return nil
		}
		for _, sid := range sids { // warm connections and the cache
			if err := get(sid); err != nil {
				t.Fatal(err)
			}
		}
		var n atomic.Int64
		ctx, cancel := context.WithTimeout(context.Background(), dur)
		defer cancel()
		var wg sync.WaitGroup
		for w := range conc {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; ctx.Err() == nil; i++ {
					if err := get(sids[i%len(sids)]); err != nil {
						t.Error(err)
						return
					}
					n.Add(1)
				}
			}()
		}
		wg.Wait()
		_ = svc.Stop()
		return float64(n.Load()) / dur.Seconds()
	}
	hit := measure(nil)
	pgOnly := measure(map[string]string{"STRATA_SESSION_CACHE_DISABLED": "true"})

	f := st.Files("session")
	// redis-benchmark's GETs use key:__rand_int__, outside the session
	// user's keys: it runs as the admin user.
	out, err := exec.Command("redis-benchmark", "-h", "127.0.0.1", "-p", strconv.Itoa(st.RedisPort), "--tls",
		"--cacert", f.CA, "--cert", f.Cert, "--key", f.Key, "--user", "admin", "-a", st.Password(t, "redis", "admin"),
		"-t", "get", "-c", strconv.Itoa(conc),
		"-n", strconv.Itoa(int(hit*dur.Seconds()*3)+100000), "-q").CombinedOutput()
	if err != nil {
		t.Fatalf("redis-benchmark: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`GET: ([0-9.]+) requests per second`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("redis-benchmark output: %s", out)
	}
	raw, _ := strconv.ParseFloat(string(m[1]), 64)

	verdict := func(ok bool) string {
		if ok {
			return "goal met"
		}
		return "GOAL MISSED"
	}
	fmt.Printf("\nsession read path, %d concurrent clients, %s each, one machine\n", conc, dur)
	fmt.Printf("%-52s %12s\n", "path", "requests/s")
	fmt.Printf("%-52s %12.0f\n", "GET /v1/sessions/{sid}, cache hit (TLS, JWT)", hit)
	fmt.Printf("%-52s %12.0f\n", "GET /v1/sessions/{sid}, cache disabled (Postgres)", pgOnly)
	fmt.Printf("%-52s %12.0f\n", "redis-benchmark -t get (TLS), raw Redis", raw)
	fmt.Printf("cache hit / Postgres only = %.2fx (goal >= 5x: %s)\n", hit/pgOnly, verdict(hit/pgOnly >= 5))
	fmt.Printf("cache hit / raw Redis     = %.2fx (goal >= 0.15x: %s)\n", hit/raw, verdict(hit/raw >= 0.15))
	// Machine-readable lines for tools/bench.sh (make bench).
	fmt.Printf("BENCH session.cache_hit %.0f req/s\nBENCH session.postgres_only %.0f req/s\nBENCH session.redis_benchmark %.0f req/s\n", hit, pgOnly, raw)
}

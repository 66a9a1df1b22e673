package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/strata-ref/strata/libs/authn"
	"github.com/strata-ref/strata/libs/authn/authntest"
	"github.com/strata-ref/strata/libs/mtls"
	"github.com/strata-ref/strata/libs/testenv"
)

// TestOverloadGoals (STRATA_BENCH=1) measures what a refusal costs the
// ledger and how the ledger holds up under a client that does not back
// off, and prints each figure beside its goal. The ledger runs as its own
// process (its CPU is read from /proc/<pid>/stat; Postgres and the load
// generator are not in it), serving GET /v1/accounts, the cheapest
// authenticated read (a token check and one indexed query).
//
//  1. Closed loop: 32 clients, each sending its next request when the last
//     answered, for 5 s: the capacity C and the service's CPU per served
//     request.
//  2. Open loop at 0.7x C, then 4x C, then 0.7x C again, from clients that
//     do not retry: the p99 of admitted requests inside the service (from
//     admission by the limiter to the response written,
//     strata_admitted_duration_seconds), the p99 of the time to decide a
//     429 (strata_shed_decision_seconds), and how soon nothing is shed
//     once the overload ends.
//  3. Flood: 2.5x C for 10 s, no retry, no throttling: goodput, and the
//     resident memory's peak.
//
// The CPU per 429 and per served request are fitted over every phase's
// ledger CPU, served and shed counts (least squares, CPU = a x served +
// b x shed). STRATA_BENCH_PIN=1 runs the generator on CPU 0 and the ledger
// on CPU 1 (taskset). The machine is shared with the generator and Postgres
// (and whatever else runs): the figures are indicative, not a timed test's
// pass or fail. docs/backpressure.md has measured runs.
func TestOverloadGoals(t *testing.T) {
	if os.Getenv("STRATA_BENCH") == "" {
		t.Skip("set STRATA_BENCH=1 to run the benchmark")
	}
	st := testenv.StartStack(t, "postgres")
	iss := authntest.NewIssuer(t)
	env := st.Env("ledger")
	env["STRATA_PG_URL"] = st.PGURL("ledger", "ledger_test")
	env["STRATA_KMS_KEYSET"] = filepath.Join(t.TempDir(), "keyset.json")
	env["STRATA_LEDGER_RELAY_DISABLED"] = "true"
	env["STRATA_AUTH_ISSUER"] = authntest.IssuerURL
	env["STRATA_AUTH_JWKS_URL"] = testenv.ServeJWKS(t, st, iss)
	p := testenv.StartProcess(t, st, "ledger", env)
	pid := p.Cmd.Process.Pid
	if os.Getenv("STRATA_BENCH_PIN") != "" {
		// The generator (this process) on CPU 0, the ledger on CPU 1:
		// each phase's figures are then the ledger's, not what is left to
		// it beside the generator. Postgres (shared) is left where it is.
		for _, c := range [][]string{{"-a", "-p", "-c", "1", strconv.Itoa(pid)}, {"-a", "-p", "-c", "0", strconv.Itoa(os.Getpid())}} {
			if out, err := exec.Command("taskset", c...).CombinedOutput(); err != nil {
				t.Fatalf("taskset %v: %v %s", c, err, out)
			}
		}
	}

	tok := iss.Token(t, authn.Claims{Claims: jwt.Claims{Subject: "bench-reader", Audience: jwt.Audience{"ledger"},
		Expiry: jwt.NewNumericDate(time.Now().Add(time.Hour))}, SessionID: "sid-bench", Roles: []string{"customer"}, Region: "eu"})
	client := st.PublicClient(t)
	tr := testenv.HTTPTransport(client).Clone()
	tr.ForceAttemptHTTP2, tr.MaxConnsPerHost, tr.MaxIdleConnsPerHost = true, 8, 8
	client = &http.Client{Transport: tr, Timeout: 10 * time.Second}
	url := "https://" + p.Public + "/v1/accounts"
	get := func(ctx context.Context) int {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := client.Do(req)
		if err != nil {
			return 0
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get(context.Background()); code != http.StatusOK {
		t.Fatalf("GET /v1/accounts: %d", code)
	}
	metrics := st.InternalClient(t, "prometheus", mtls.ID("ledger"))
	scrape := func() hist2 { return scrapeShedding(t, metrics, "https://"+p.Internal+"/metrics") }

	closedLoop(get, 32, 2*time.Second) // warm the pool, the JWKS cache, the connections
	cpu0 := procCPU(t, pid)
	served, elapsed := closedLoop(get, 32, 5*time.Second)
	cpuPerServed := (procCPU(t, pid) - cpu0) / float64(served)
	capacity := float64(served) / elapsed.Seconds()
	t.Logf("closed loop: %d served in %s: %.0f/s, %.0f µs of ledger CPU each", served, elapsed.Round(time.Millisecond), capacity, cpuPerServed*1e6)

	// Every phase's ledger CPU, served and shed: CPU = a x served + b x
	// shed, fitted over the phases, gives the CPU of each (least squares).
	var fit [][3]float64
	fit = append(fit, [3]float64{float64(served), 0, cpuPerServed * float64(served)})
	phase := func(label string, factor float64, d time.Duration) (openResult, hist2) {
		before := scrape()
		c0 := procCPU(t, pid)
		r := openLoop(get, factor*capacity, d, func() float64 { return procRSS(t, pid) })
		cpu := procCPU(t, pid) - c0
		h := scrape().minus(before)
		fit = append(fit, [3]float64{float64(r.served), float64(r.shed), cpu})
		t.Logf("%-10s %5.0f/s offered: %6d served, %6d shed, %6d not sent (generator at 4096 in flight), %d errors; ledger %.2f cores; "+
			"admitted p99 %.2f ms, 429 decision p99 %.3f ms, RSS peak %.0f MiB",
			label, factor*capacity, r.served, r.shed, r.dropped, r.other, cpu/d.Seconds(), h.admitted.quantile(0.99), h.decision.quantile(0.99), r.rssPeak)
		return r, h
	}
	_, light := phase("0.7x", 0.7, 8*time.Second)
	heavyRun, heavy := phase("4x", 4, 8*time.Second)
	after, _ := phase("0.7x after", 0.7, 10*time.Second)
	recovered := -1
	for i, n := range after.shedPerSecond[:len(after.shedPerSecond)-1] { // whole seconds only
		if n == 0 {
			recovered = i
			break
		}
	}
	flood, floodHist := phase("2.5x flood", 2.5, 10*time.Second)
	goodput := float64(flood.served) / 10
	perServed, cpuPer429 := leastSquares(fit)
	t.Logf("fitted over the phases: %.0f µs of ledger CPU per served request, %.0f µs per 429 (closed loop alone: %.0f µs per served)",
		perServed*1e6, cpuPer429*1e6, cpuPerServed*1e6)
	cpuPerServed = perServed

	decision := math.Max(heavy.decision.quantile(0.99), floodHist.decision.quantile(0.99))
	rows := []struct {
		figure, measured, goal string
		met                    bool
	}{
		{"CPU per 429 vs per served GET /v1/accounts (ledger process)",
			fmt.Sprintf("%.0f µs vs %.0f µs (%.3fx)", cpuPer429*1e6, cpuPerServed*1e6, cpuPer429/cpuPerServed), "<= 0.1x", cpuPer429 <= 0.1*cpuPerServed},
		{"flood at 2.5x: goodput / closed-loop capacity",
			fmt.Sprintf("%.0f/s of %.0f/s (%.2fx); %d shed, %d not sent", goodput, capacity, goodput/capacity, flood.shed, flood.dropped), ">= 0.7x", goodput >= 0.7*capacity},
		{"flood: no crash, memory bounded",
			fmt.Sprintf("%d transport errors or 5xx; RSS peak %.0f MiB", flood.other, flood.rssPeak), "0, < 256 MiB", flood.other == 0 && flood.rssPeak < 256 && flood.rssPeak > 0},
		{"admitted p99 inside the service, 4x vs 0.7x",
			fmt.Sprintf("%.2f ms vs %.2f ms (%.1fx)", heavy.admitted.quantile(0.99), light.admitted.quantile(0.99),
				heavy.admitted.quantile(0.99)/light.admitted.quantile(0.99)), "<= 2x", heavy.admitted.quantile(0.99) <= 2*light.admitted.quantile(0.99)},
		{"p99 time to decide a 429 (4x and flood)", fmt.Sprintf("%.3f ms over %.0f + %.0f 429s", decision, heavy.decision.count(), floodHist.decision.count()),
			"<= 1 ms", decision <= 1},
		{"recovery after the overload (first second without 429 at 0.7x)", recoveryText(recovered, light.decision.count()), "<= 30 s", recovered >= 0 && recovered <= 30},
	}
	fmt.Printf("\nOverload goals, ledger GET /v1/accounts (closed-loop capacity %.0f/s; 4x step %d served, %d shed):\n\n", capacity, heavyRun.served, heavyRun.shed)
	fmt.Printf("| figure | measured | goal | met |\n|---|---|---|---|\n")
	for _, r := range rows {
		met := "no"
		if r.met {
			met = "yes"
		}
		fmt.Printf("| %s | %s | %s | %s |\n", r.figure, r.measured, r.goal, met)
	}
	fmt.Printf("BENCH overload.cpu_per_429 %.1f us\nBENCH overload.cpu_per_served %.1f us\nBENCH overload.flood_goodput %.0f req/s\nBENCH overload.closed_loop_capacity %.0f req/s\n",
		cpuPer429*1e6, cpuPerServed*1e6, goodput, capacity)
}

func recoveryText(second int, shedBefore float64) string {
	if second < 0 {
		return fmt.Sprintf("not within the 10 s step (%.0f shed at 0.7x before the overload)", shedBefore)
	}
	return fmt.Sprintf("%d s", second)
}

// closedLoop runs workers clients back to back for d and returns what was
// served (200) and the time it took.
func closedLoop(get func(context.Context) int, workers int, d time.Duration) (int64, time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var served atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if get(ctx) == http.StatusOK {
					served.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return served.Load(), time.Since(start)
}

type openResult struct {
	served, shed, other int
	dropped             int // not sent: the generator had 4096 in flight
	shedPerSecond       []int
	rssPeak             float64
}

// openLoop sends at rate for d whatever the answers (the n-th request is
// due at n/rate), never retrying, and samples rss every 200 ms.
func openLoop(get func(context.Context) int, rate float64, d time.Duration, rss func() float64) openResult {
	var (
		mu  sync.Mutex
		res = openResult{shedPerSecond: make([]int, int(d/time.Second)+1)}
		wg  sync.WaitGroup
	)
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tk := time.NewTicker(200 * time.Millisecond)
		defer tk.Stop()
		for {
			v := rss()
			mu.Lock()
			res.rssPeak = math.Max(res.rssPeak, v)
			mu.Unlock()
			select {
			case <-stop:
				return
			case <-tk.C:
			}
		}
	}()
	start := time.Now()
	interval := time.Duration(float64(time.Second) / rate)
	var inflight atomic.Int64
	for n := 0; ; n++ {
		due := start.Add(time.Duration(n) * interval)
		if due.Sub(start) >= d {
			break
		}
		time.Sleep(time.Until(due))
		if inflight.Load() >= 4096 {
			mu.Lock()
			res.dropped++
			mu.Unlock()
			continue
		}
		inflight.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer inflight.Add(-1)
			code := get(context.Background())
			mu.Lock()
			defer mu.Unlock()
			switch code {
			case http.StatusOK:
				res.served++
			case http.StatusTooManyRequests:
				res.shed++
				res.shedPerSecond[int(due.Sub(start)/time.Second)]++
			default:
				res.other++
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-sampled
	return res
}

// leastSquares fits cpu = a x served + b x shed over rows of (served,
// shed, cpu), without an intercept.
func leastSquares(rows [][3]float64) (a, b float64) {
	var sxx, sxy, syy, sxz, syz float64
	for _, r := range rows {
		x, y, z := r[0], r[1], r[2]
		sxx, sxy, syy, sxz, syz = sxx+x*x, sxy+x*y, syy+y*y, sxz+x*z, syz+y*z
	}
	det := sxx*syy - sxy*sxy
	if det == 0 {
		return 0, 0
	}
	return (sxz*syy - syz*sxy) / det, (syz*sxx - sxz*sxy) / det
}

// procCPU is the user plus system CPU time of process pid, in seconds.
func procCPU(t *testing.T, pid int) float64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command name, which is in parentheses: state is
	// field 3, utime 14 and stime 15 (proc(5)); USER_HZ is 100 on Linux.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100
}

// procRSS is the resident memory of process pid in MiB (0 once it exited).
func procRSS(t *testing.T, pid int) float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb / 1024
		}
	}
	return 0
}

// buckets is a histogram's cumulative counts by upper bound (seconds).
type buckets map[float64]float64

type hist2 struct{ admitted, decision buckets }

func (h hist2) minus(b hist2) hist2 {
	sub := func(x, y buckets) buckets {
		out := buckets{}
		for le, n := range x {
			out[le] = n - y[le]
		}
		return out
	}
	return hist2{sub(h.admitted, b.admitted), sub(h.decision, b.decision)}
}

func (b buckets) count() float64 { return b[math.Inf(1)] }

// quantile in ms, interpolated within the bucket it falls in.
func (b buckets) quantile(q float64) float64 {
	bounds := make([]float64, 0, len(b))
	for le := range b {
		bounds = append(bounds, le)
	}
	sort.Float64s(bounds)
	total := b.count()
	if total <= 0 {
		return 0
	}
	rank, prevBound, prevCount := q*total, 0.0, 0.0
	for _, le := range bounds {
		if b[le] >= rank {
			if math.IsInf(le, 1) {
				return prevBound * 1000
			}
			return (prevBound + (rank-prevCount)/math.Max(b[le]-prevCount, 1)*(le-prevBound)) * 1000
		}
		prevBound, prevCount = le, b[le]
	}
	return prevBound * 1000
}

// scrapeShedding reads the public listener's shedding histograms.
func scrapeShedding(t *testing.T, c *http.Client, url string) hist2 {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	h := hist2{buckets{}, buckets{}}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		into := h.admitted
		labels, ok := strings.CutPrefix(line, "strata_admitted_duration_seconds_bucket{")
		if !ok {
			into = h.decision
			labels, ok = strings.CutPrefix(line, "strata_shed_decision_seconds_bucket{")
		}
		if !ok || !strings.Contains(labels, `listener="public"`) {
			continue
		}
		_, rest, _ := strings.Cut(labels, `le="`)
		le, _, _ := strings.Cut(rest, `"`)
		bound, err1 := strconv.ParseFloat(le, 64)
		n, err2 := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err1 == nil && err2 == nil {
			into[bound] = n
		}
	}
	return h
}

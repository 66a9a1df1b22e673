package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestBenchmarkAgainstPgbench (STRATA_BENCH=1) prints, in one run, the
// ledger's transfers/s through the service (TLS, JWT validation, policy
// engine, Idempotency-Key, envelope-encrypted memo, double entry, outbox)
// beside pgbench's tpcb-like transactions/s on the same Postgres with the
// same number of clients, and the hot-account figure (one account in every
// transfer). See docs/ledger.md for measured numbers.
//
// The machine is shared, so its load drifts within a run: the two sides
// alternate in STRATA_BENCH_ROUNDS rounds (default 3; service first, then
// pgbench first, ...) and each round's ratio is taken from two neighbouring
// measurements. The ratio reported is the median of the rounds, with their
// spread.
func TestBenchmarkAgainstPgbench(t *testing.T) {
	if os.Getenv("STRATA_BENCH") == "" {
		t.Skip("set STRATA_BENCH=1 to run the benchmark")
	}
	clients := envInt("STRATA_BENCH_CLIENTS", 8)
	dur := time.Duration(envInt("STRATA_BENCH_SECONDS", 10)) * time.Second
	rounds := envInt("STRATA_BENCH_ROUNDS", 3)
	h := newHarness(t)
	carol := h.user(t, "carol", "eu", "teller")
	const n = 200
	users := make([]user, n)
	ids := make([]string, n)
	for i := range n {
		users[i] = h.user(t, fmt.Sprintf("bench%d", i), "eu", "customer")
		ids[i] = h.openAccount(t, users[i], "EUR", "bench")
		h.deposit(t, carol, ids[i], 1_000_000_000)
	}
	run := func(hot bool) float64 {
		var done atomic.Int64
		var failed atomic.Int64
		stop := time.Now().Add(dur)
		var wg sync.WaitGroup
		for w := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
				for time.Now().Before(stop) {
					from, to := rng.IntN(n), rng.IntN(n)
					if hot {
						to = 0
					}
					if from == to {
						continue
					}
					r := h.call(t, users[from], "POST", "/v1/transfers", key(), map[string]any{"from_account_id": ids[from],
						"to_account_id": ids[to], "amount": 1, "currency": "EUR", "memo": "bench"})
					if r.status == 201 {
						done.Add(1)
					} else {
						failed.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		if failed.Load() > 0 {
			t.Errorf("%d transfers failed", failed.Load())
		}
		return float64(done.Load()) / dur.Seconds()
	}
	pg := newPgbench(t, h, clients)
	var svc, bench, ratios []float64
	for r := range rounds {
		var s, p float64
		if r%2 == 0 {
			s = run(false)
			p = pg.run(t, dur)
		} else {
			p = pg.run(t, dur)
			s = run(false)
		}
		svc, bench, ratios = append(svc, s), append(bench, p), append(ratios, s/p)
		fmt.Printf("round %d: service %.0f transfers/s, pgbench %.0f tps, ratio %.2f\n", r+1, s, p, s/p)
	}
	hotTPS := run(true)
	checkInvariants(t, h)
	uniform, pgTPS, ratio := median(svc), median(bench), median(ratios)

	fmt.Printf("\n%-44s %10s\n", fmt.Sprintf("ledger benchmark, %d clients, %d rounds of %s", clients, rounds, dur), "per second")
	fmt.Printf("%-44s %10.0f\n", "service transfers/s (uniform, 200 accounts)", uniform)
	fmt.Printf("%-44s %10.0f\n", "pgbench -b tpcb-like -M prepared tps", pgTPS)
	fmt.Printf("%-44s %10.2f  (rounds %.2f-%.2f)\n", "ratio service / pgbench (median)", ratio, slices.Min(ratios), slices.Max(ratios))
	fmt.Printf("%-44s %10.0f\n", "service transfers/s (hot account)", hotTPS)
	// Machine-readable lines for tools/bench.sh (make bench).
	fmt.Printf("BENCH ledger.service %.0f transfers/s\nBENCH ledger.pgbench %.0f tps\nBENCH ledger.ratio %.2f x\nBENCH ledger.hot_account %.0f transfers/s\n",
		uniform, pgTPS, ratio, hotTPS)
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

var tpsLine = regexp.MustCompile(`tps = ([0-9.]+)`)

// pgbenchRunner runs the standard TPC-B-like script on the ledger's test
// database (its own pgbench_* tables, created once and dropped at the end
// of the test), over TLS with the ledger's certificate, as the same role.
type pgbenchRunner struct {
	cmd     func(args ...string) string
	clients int
}

func newPgbench(t *testing.T, h *harness, clients int) *pgbenchRunner {
	bin := os.Getenv("STRATA_PGBENCH")
	if bin == "" {
		bin = "/usr/lib/postgresql/15/bin/pgbench"
	}
	f := h.st.Files("ledger")
	env := append(os.Environ(), "PGSSLMODE=verify-full", "PGSSLROOTCERT="+f.CA, "PGSSLCERT="+f.Cert, "PGSSLKEY="+f.Key,
		"PGHOST=127.0.0.1", "PGPORT="+strconv.Itoa(h.st.PGPort), "PGUSER=ledger", "PGDATABASE=ledger_test")
	cmd := func(args ...string) string {
		c := exec.Command(bin, args...)
		c.Env = env
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("pgbench %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	cmd("-i", "-q", "-s", strconv.Itoa(max(clients, 10)))
	t.Cleanup(func() { cmd("-i", "-I", "d") }) // drop the pgbench tables again
	return &pgbenchRunner{cmd: cmd, clients: clients}
}

func (p *pgbenchRunner) run(t *testing.T, dur time.Duration) float64 {
	out := p.cmd("-b", "tpcb-like", "-M", "prepared", "-n", "-c", strconv.Itoa(p.clients), "-j", strconv.Itoa(p.clients),
		"-T", strconv.Itoa(int(dur.Seconds())))
	m := tpsLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no tps in pgbench output:\n%s", out)
	}
	tps, _ := strconv.ParseFloat(m[1], 64)
	return tps
}

package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"regexp"
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
func TestBenchmarkAgainstPgbench(t *testing.T) {
	if os.Getenv("STRATA_BENCH") == "" {
		t.Skip("set STRATA_BENCH=1 to run the benchmark")
	}
	clients := envInt("STRATA_BENCH_CLIENTS", 8)
	dur := time.Duration(envInt("STRATA_BENCH_SECONDS", 10)) * time.Second
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
	uniform := run(false)
	hotTPS := run(true)
	checkInvariants(t, h)
	pg := pgbench(t, h, clients, dur)

	fmt.Printf("\n%-44s %10s\n", fmt.Sprintf("ledger benchmark, %d clients, %s each", clients, dur), "per second")
	fmt.Printf("%-44s %10.0f\n", "service transfers/s (uniform, 200 accounts)", uniform)
	fmt.Printf("%-44s %10.0f\n", "pgbench -b tpcb-like -M prepared tps", pg)
	fmt.Printf("%-44s %10.2f\n", "ratio service / pgbench", uniform/pg)
	fmt.Printf("%-44s %10.0f\n", "service transfers/s (hot account)", hotTPS)
	// Machine-readable lines for tools/bench.sh (make bench).
	fmt.Printf("BENCH ledger.service %.0f transfers/s\nBENCH ledger.pgbench %.0f tps\nBENCH ledger.hot_account %.0f transfers/s\n", uniform, pg, hotTPS)
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

var tpsLine = regexp.MustCompile(`tps = ([0-9.]+)`)

// pgbench runs the standard TPC-B-like script on the ledger's test
// database (its own pgbench_* tables), over TLS with the ledger's
// certificate, as the same role.
func pgbench(t *testing.T, h *harness, clients int, dur time.Duration) float64 {
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
	defer cmd("-i", "-I", "d") // drop the pgbench tables again
	out := cmd("-b", "tpcb-like", "-M", "prepared", "-n", "-c", strconv.Itoa(clients), "-j", strconv.Itoa(clients),
		"-T", strconv.Itoa(int(dur.Seconds())))
	m := tpsLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no tps in pgbench output:\n%s", out)
	}
	tps, _ := strconv.ParseFloat(m[1], 64)
	return tps
}

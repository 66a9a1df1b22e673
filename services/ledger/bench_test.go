package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
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
	// The harness runs no relay: leave no backlog of undelivered events in
	// the shared test database for the next system test's relay to drain.
	t.Cleanup(func() { h.exec(t, `TRUNCATE outbox`) })
	carol := h.user(t, "carol", "eu", "teller")
	const n = 200
	users := make([]user, n)
	ids := make([]string, n)
	for i := range n {
		users[i] = h.user(t, fmt.Sprintf("bench%d", i), "eu", "customer")
		ids[i] = h.openAccount(t, users[i], "EUR", "bench")
		h.deposit(t, carol, ids[i], 1_000_000_000)
	}
	pgCPU := postgresCPU(h)
	var svcCPU, benchCPU []float64 // ms of CPU per transfer / per transaction
	var svcPG, benchPG []float64   // of which Postgres
	run := func(hot bool) float64 {
		cpu0, pg0 := selfCPU(), pgCPU()
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
		if !hot {
			pgUsed := pgCPU() - pg0
			used := selfCPU() - cpu0 + pgUsed
			svcCPU = append(svcCPU, float64(used)/float64(time.Millisecond)/float64(max(done.Load(), 1)))
			svcPG = append(svcPG, float64(pgUsed)/float64(time.Millisecond)/float64(max(done.Load(), 1)))
		}
		return float64(done.Load()) / dur.Seconds()
	}
	pg := newPgbench(t, h, clients)
	var svc, bench, ratios []float64
	for r := range rounds {
		var s, p float64
		runPg := func() float64 {
			pg0 := pgCPU()
			tps, client := pg.run(t, dur)
			pgUsed := pgCPU() - pg0
			benchCPU = append(benchCPU, float64(client+pgUsed)/float64(time.Millisecond)/(tps*dur.Seconds()))
			benchPG = append(benchPG, float64(pgUsed)/float64(time.Millisecond)/(tps*dur.Seconds()))
			return tps
		}
		if r%2 == 0 {
			s = run(false)
			p = runPg()
		} else {
			p = runPg()
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
	// CPU per operation: what the 2-CPU machine spends, whatever else it
	// runs meanwhile (throughput swings with the neighbours' load; this
	// much less). Service: this process (HTTP client and server) and
	// Postgres; pgbench: its process and Postgres.
	if svcCPU[0] > 0 {
		fmt.Printf("%-44s %10.2f  (Postgres %.2f)\n", "CPU ms per transfer (service + Postgres)", median(svcCPU), median(svcPG))
		fmt.Printf("%-44s %10.2f  (Postgres %.2f)\n", "CPU ms per pgbench transaction (+ Postgres)", median(benchCPU), median(benchPG))
		fmt.Printf("BENCH ledger.cpu_per_transfer %.2f ms\nBENCH ledger.cpu_per_pgbench_tx %.2f ms\n", median(svcCPU), median(benchCPU))
	}
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
	cmd     func(args ...string) (string, time.Duration)
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
	cmd := func(args ...string) (string, time.Duration) {
		c := exec.Command(bin, args...)
		c.Env = env
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("pgbench %v: %v\n%s", args, err, out)
		}
		return string(out), c.ProcessState.UserTime() + c.ProcessState.SystemTime()
	}
	cmd("-i", "-q", "-s", strconv.Itoa(max(clients, 10)))
	t.Cleanup(func() { cmd("-i", "-I", "d") }) // drop the pgbench tables again
	return &pgbenchRunner{cmd: cmd, clients: clients}
}

func (p *pgbenchRunner) run(t *testing.T, dur time.Duration) (tps float64, cpu time.Duration) {
	out, cpu := p.cmd("-b", "tpcb-like", "-M", "prepared", "-n", "-c", strconv.Itoa(p.clients), "-j", strconv.Itoa(p.clients),
		"-T", strconv.Itoa(int(dur.Seconds())))
	m := tpsLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no tps in pgbench output:\n%s", out)
	}
	tps, _ = strconv.ParseFloat(m[1], 64)
	return tps, cpu
}

// selfCPU is this process's CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// postgresCPU returns a function reading the CPU time of the stack's
// Postgres so far: the postmaster, its live children and the children it
// has reaped (a pgbench run's backends exit with it). Linux only; on other
// systems it reads 0 and the CPU lines are left out.
func postgresCPU(h *harness) func() time.Duration {
	const tick = 10 * time.Millisecond // USER_HZ is 100 on Linux
	raw, err := os.ReadFile(filepath.Join(h.st.Dir, "postgres", "data", "postmaster.pid"))
	if err != nil {
		return func() time.Duration { return 0 }
	}
	pm := strings.TrimSpace(strings.SplitN(string(raw), "\n", 2)[0])
	// fields after the command's closing parenthesis: state is [0], ppid [1],
	// utime [11], stime [12], cutime [13], cstime [14].
	stat := func(pid string) []string {
		b, err := os.ReadFile("/proc/" + pid + "/stat")
		if i := strings.LastIndexByte(string(b), ')'); err == nil && i > 0 {
			return strings.Fields(string(b)[i+1:])
		}
		return nil
	}
	ticks := func(f []string, idx ...int) (n int64) {
		for _, i := range idx {
			v, _ := strconv.ParseInt(f[i], 10, 64)
			n += v
		}
		return n
	}
	return func() time.Duration {
		f := stat(pm)
		if len(f) < 15 {
			return 0
		}
		n := ticks(f, 11, 12, 13, 14)
		procs, _ := os.ReadDir("/proc")
		for _, d := range procs {
			if c := stat(d.Name()); len(c) >= 15 && c[1] == pm {
				n += ticks(c, 11, 12)
			}
		}
		return time.Duration(n) * tick
	}
}

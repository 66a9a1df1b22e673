package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
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
//
// Two placements, both printed (STRATA_BENCH_PLACEMENT=shared or split runs
// one):
//   - shared: Postgres and the clients (pgbench, or the HTTP client and the
//     service) on all CPUs. The service's Go work (TLS at both ends, JSON,
//     policy decisions, encryption, about half of a transfer's CPU) then
//     competes with Postgres for the same two cores, which pgbench's client
//     (a fifth of its CPU) barely does.
//   - split: Postgres on CPU 0, the clients on the others (taskset). This is
//     the shape of a deployment, where the service tier runs on its own
//     machines and scales out, and the database is what all transfers
//     share; the ratio then compares what each side asks of Postgres.
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
	type result struct {
		placement             string
		uniform, pgTPS, ratio float64
		ratios                []float64
		hot                   float64
		cpu, pgCPUShare       float64 // ms per transfer, of which Postgres
		benchCPU, benchPGCPU  float64 // ms per pgbench transaction, of which Postgres
	}
	measure := func(placement string) result {
		svcCPU, benchCPU, svcPG, benchPG = nil, nil, nil, nil
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
			fmt.Printf("%s, round %d: service %.0f transfers/s, pgbench %.0f tps, ratio %.2f\n", placement, r+1, s, p, s/p)
		}
		return result{placement: placement, uniform: median(svc), pgTPS: median(bench), ratio: median(ratios), ratios: ratios,
			hot: run(true), cpu: median(svcCPU), pgCPUShare: median(svcPG), benchCPU: median(benchCPU), benchPGCPU: median(benchPG)}
	}
	var results []result
	placement := os.Getenv("STRATA_BENCH_PLACEMENT")
	if placement == "" || placement == "shared" {
		results = append(results, measure("shared"))
	}
	if placement == "" || placement == "split" {
		if restore, err := splitCPUs(h); err != nil {
			fmt.Printf("split placement skipped: %v\n", err)
		} else {
			func() {
				defer restore() // also when a failing round ends the test
				results = append(results, measure("split"))
			}()
		}
	}
	checkInvariants(t, h)

	for _, r := range results {
		where := map[string]string{"shared": "Postgres and clients on all CPUs", "split": "Postgres on CPU 0, clients on the others"}[r.placement]
		fmt.Printf("\n%-44s %10s\n", fmt.Sprintf("ledger benchmark, %d clients, %d rounds of %s", clients, rounds, dur), "per second")
		fmt.Printf("%-44s %s\n", "placement: "+r.placement, where)
		fmt.Printf("%-44s %10.0f\n", "service transfers/s (uniform, 200 accounts)", r.uniform)
		fmt.Printf("%-44s %10.0f\n", "pgbench -b tpcb-like -M prepared tps", r.pgTPS)
		fmt.Printf("%-44s %10.2f  (rounds %.2f-%.2f)\n", "ratio service / pgbench (median)", r.ratio, slices.Min(r.ratios), slices.Max(r.ratios))
		fmt.Printf("%-44s %10.0f\n", "service transfers/s (hot account)", r.hot)
		// CPU per operation: what the machine spends, whatever else it runs
		// meanwhile (throughput swings with the neighbours' load; this much
		// less). Service: this process (HTTP client and server) and
		// Postgres; pgbench: its process and Postgres.
		if r.cpu > 0 {
			fmt.Printf("%-44s %10.2f  (Postgres %.2f)\n", "CPU ms per transfer (service + Postgres)", r.cpu, r.pgCPUShare)
			fmt.Printf("%-44s %10.2f  (Postgres %.2f)\n", "CPU ms per pgbench transaction (+ Postgres)", r.benchCPU, r.benchPGCPU)
		}
		// Machine-readable lines for tools/bench.sh (make bench); the shared
		// placement keeps the plain names.
		sfx := ""
		if r.placement == "split" {
			sfx = "_split"
		}
		fmt.Printf("BENCH ledger.service%s %.0f transfers/s\nBENCH ledger.pgbench%s %.0f tps\nBENCH ledger.ratio%s %.2f x\nBENCH ledger.hot_account%s %.0f transfers/s\n",
			sfx, r.uniform, sfx, r.pgTPS, sfx, r.ratio, sfx, r.hot)
		if r.cpu > 0 {
			fmt.Printf("BENCH ledger.cpu_per_transfer%s %.2f ms\nBENCH ledger.cpu_per_pgbench_tx%s %.2f ms\n", sfx, r.cpu, sfx, r.benchCPU)
		}
	}
}

// splitCPUs pins the stack's Postgres (the postmaster, so every backend it
// forks from now on, and the backends already running) to CPU 0 and this
// process (and so the pgbench it starts) to the other CPUs, with taskset.
// restore gives everyone every CPU back.
func splitCPUs(h *harness) (restore func(), err error) {
	n := runtime.NumCPU()
	if n < 2 {
		return nil, fmt.Errorf("%d CPU", n)
	}
	if _, err := exec.LookPath("taskset"); err != nil {
		return nil, err
	}
	pids := postgresPIDs(h)
	if len(pids) == 0 {
		return nil, fmt.Errorf("no Postgres process found")
	}
	all := fmt.Sprintf("0-%d", n-1)
	pin := func(cpus string, pids ...string) error {
		for _, pid := range pids {
			if out, err := exec.Command("taskset", "-a", "-cp", cpus, pid).CombinedOutput(); err != nil {
				return fmt.Errorf("taskset %s %s: %v: %s", cpus, pid, err, out)
			}
		}
		return nil
	}
	self := strconv.Itoa(os.Getpid())
	restore = func() {
		_ = pin(all, self)
		_ = pin(all, postgresPIDs(h)...)
	}
	if err := pin("0", pids...); err != nil {
		restore()
		return nil, err
	}
	if err := pin(fmt.Sprintf("1-%d", n-1), self); err != nil {
		restore()
		return nil, err
	}
	return restore, nil
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
	return func() time.Duration {
		pids := postgresPIDs(h)
		if len(pids) == 0 {
			return 0
		}
		// fields after the command's closing parenthesis: utime [11],
		// stime [12], cutime [13], cstime [14].
		n := ticks(procStat(pids[0]), 11, 12, 13, 14)
		for _, pid := range pids[1:] {
			n += ticks(procStat(pid), 11, 12)
		}
		return time.Duration(n) * tick
	}
}

// postgresPIDs lists the stack's postmaster first, then its live children.
func postgresPIDs(h *harness) []string {
	raw, err := os.ReadFile(filepath.Join(h.st.Dir, "postgres", "data", "postmaster.pid"))
	if err != nil {
		return nil
	}
	pm := strings.TrimSpace(strings.SplitN(string(raw), "\n", 2)[0])
	if len(procStat(pm)) < 15 {
		return nil
	}
	out := []string{pm}
	procs, _ := os.ReadDir("/proc")
	for _, d := range procs {
		if c := procStat(d.Name()); len(c) >= 15 && c[1] == pm { // [1] is the parent's pid
			out = append(out, d.Name())
		}
	}
	return out
}

// procStat is /proc/PID/stat's fields after the command's closing
// parenthesis (state is [0]), nil when the process is gone.
func procStat(pid string) []string {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if i := strings.LastIndexByte(string(b), ')'); err == nil && i > 0 {
		return strings.Fields(string(b)[i+1:])
	}
	return nil
}

func ticks(f []string, idx ...int) (n int64) {
	for _, i := range idx {
		if i < len(f) {
			v, _ := strconv.ParseInt(f[i], 10, 64)
			n += v
		}
	}
	return n
}

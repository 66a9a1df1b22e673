package tradeoffs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-ref/strata/loadtest/internal/scenario"
	"github.com/strata-ref/strata/loadtest/internal/strata"
)

// What a cache buys. On one machine a Redis hit is not faster than a
// Postgres primary-key read (both are a loopback round trip), so latency is
// not the reason caches exist. The reason is the load a cache takes off the
// database that other work shares: CacheLoad runs session reads at a fixed
// rate beside a closed loop of ledger transfers on the same Postgres server
// and measures the transfers/s and Postgres's CPU per session read. Run it
// once with the session cache on and once with it off (the session service's
// STRATA_SESSION_CACHE_DISABLED) to compare.

// CacheLoadConfig sets one measurement.
type CacheLoadConfig struct {
	API      *strata.API
	Password string
	Users    int           // load users for the transfers (seeded as load-000001...)
	Workers  int           // closed-loop transfer workers
	ReadRate float64       // session reads per second, open loop
	Duration time.Duration // each phase
	// PostgresPID is the postmaster's pid: its CPU and its backends' is
	// what "Postgres's CPU" means here.
	PostgresPID int
	Log         io.Writer
}

// CacheLoadResult is one mode's figures.
type CacheLoadResult struct {
	TransfersAlone     float64 // transfers/s with no session reads
	TransfersWithReads float64 // transfers/s while the reads run
	Reads              Latency // the session reads of the read-only phase
	// PostgresCPUPerRead is Postgres's CPU time per session read in the
	// read-only phase, above its idle CPU.
	PostgresCPUPerRead time.Duration
	// PostgresCores is the Postgres CPU in use (in cores) in each phase.
	IdleCores, ReadCores, TransferCores, BothCores float64
}

// CacheLoad measures one mode: idle, reads alone, transfers alone, both.
func CacheLoad(ctx context.Context, cfg CacheLoadConfig) (CacheLoadResult, error) {
	var res CacheLoadResult
	logf := func(format string, a ...any) {
		if cfg.Log != nil {
			fmt.Fprintf(cfg.Log, "[cache-load] "+format+"\n", a...)
		}
	}
	pop, err := scenario.Prepare(ctx, cfg.API, cfg.Password, cfg.Users, logf)
	if err != nil {
		return res, err
	}
	// The reader's hot set: sessions of one user, read by their ids.
	m := &measurer{cfg: Config{Password: cfg.Password}, api: cfg.API, pop: pop, logf: logf}
	name := fmt.Sprintf("load-%06d", cfg.Users+1)
	reader, err := cfg.API.Login(ctx, name, cfg.Password)
	if err != nil {
		return res, err
	}
	sids, err := m.sessions(ctx, name, 16)
	if err != nil {
		return res, err
	}
	var refusals sync.Map // status (or error) -> *atomic.Int64, for the log
	read := func(ctx context.Context) bool {
		sid := sids[rand.IntN(len(sids))]
		r := cfg.API.Do(ctx, reader.Tokens.AccessToken, http.MethodGet, cfg.API.E.Session+"/v1/sessions/"+sid, nil, "")
		if r.Err == nil && r.Status == http.StatusOK {
			return true
		}
		why := strconv.Itoa(r.Status)
		if r.Err != nil {
			why = r.Err.Error()
		}
		n, _ := refusals.LoadOrStore(why, new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
		return false
	}
	defer refusals.Range(func(k, v any) bool {
		logf("session reads that failed: %d x %v", v.(*atomic.Int64).Load(), k)
		return true
	})
	users := pop.Users
	transfer := func(ctx context.Context) (bool, bool) {
		from, to := users[rand.IntN(len(users))], users[rand.IntN(len(users))]
		for to == from {
			to = users[rand.IntN(len(users))]
		}
		r := cfg.API.Do(ctx, from.Tokens.AccessToken, http.MethodPost, cfg.API.E.Ledger+"/v1/transfers",
			strata.TransferBody(from.Account.ID, to.Account.ID, 1), strata.NewKey())
		return r.Err == nil && r.Status == http.StatusCreated, true
	}
	for range 3 { // warm connections (and, with the cache on, the cache)
		for range sids {
			read(ctx)
		}
		transfer(ctx)
	}

	cores := func(phase func()) (float64, time.Duration, error) {
		before, err := PostgresCPU(cfg.PostgresPID)
		if err != nil {
			return 0, 0, err
		}
		start := time.Now()
		phase()
		after, err := PostgresCPU(cfg.PostgresPID)
		if err != nil {
			return 0, 0, err
		}
		used := after - before
		return used.Seconds() / time.Since(start).Seconds(), used, nil
	}
	d := cfg.Duration
	logf("idle for %s", d)
	if res.IdleCores, _, err = cores(func() { sleepCtx(ctx, d) }); err != nil {
		return res, err
	}
	logf("session reads alone at %.0f/s for %s", cfg.ReadRate, d)
	var used time.Duration
	if res.ReadCores, used, err = cores(func() {
		res.Reads = latencies(ctx, cfg.ReadRate, d, []op{{"read", read}})["read"]
	}); err != nil {
		return res, err
	}
	if res.Reads.OK == 0 {
		return res, errors.New("cache load: no session read succeeded")
	}
	above := used - time.Duration(res.IdleCores*d.Seconds()*float64(time.Second))
	res.PostgresCPUPerRead = max(above, 0) / time.Duration(res.Reads.OK)
	logf("transfers alone, %d workers, %s", cfg.Workers, d)
	if res.TransferCores, _, err = cores(func() {
		res.TransfersAlone = saturate(ctx, cfg.Workers, d, transfer).PerSec
	}); err != nil {
		return res, err
	}
	logf("transfers beside session reads at %.0f/s, %s", cfg.ReadRate, d)
	if res.BothCores, _, err = cores(func() {
		done := make(chan struct{})
		go func() {
			defer close(done)
			latencies(ctx, cfg.ReadRate, d, []op{{"read", read}})
		}()
		res.TransfersWithReads = saturate(ctx, cfg.Workers, d, transfer).PerSec
		<-done
	}); err != nil {
		return res, err
	}
	return res, ctx.Err()
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// clockTick is Linux's USER_HZ, the unit of /proc/<pid>/stat's CPU times
// (100 on every architecture Go supports on Linux).
const clockTick = 10 * time.Millisecond

// PostgresCPU is the CPU time (user + system) used so far by the postmaster
// pid and every process it started: its live backends and, through the
// postmaster's cutime/cstime, those that have exited.
func PostgresCPU(pid int) (time.Duration, error) {
	stat := func(p string) (ppid int, self, children int64, err error) {
		b, err := os.ReadFile(filepath.Join("/proc", p, "stat"))
		if err != nil {
			return 0, 0, 0, err
		}
		// The command name is in parentheses and may hold spaces.
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		if len(f) < 15 {
			return 0, 0, 0, fmt.Errorf("/proc/%s/stat: %d fields", p, len(f))
		}
		num := func(i int) int64 { n, _ := strconv.ParseInt(f[i], 10, 64); return n }
		// f[0] is field 3 (state): ppid is field 4, utime..cstime 14..17.
		return int(num(1)), num(11) + num(12), num(13) + num(14), nil
	}
	_, self, children, err := stat(strconv.Itoa(pid))
	if err != nil {
		return 0, fmt.Errorf("postgres pid %d: %w", pid, err)
	}
	ticks := self + children
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		ppid, t, _, err := stat(e.Name())
		if err == nil && ppid == pid {
			ticks += t
		}
	}
	return time.Duration(ticks) * clockTick, nil
}

// CacheLoadMarkdown renders the two modes side by side.
func CacheLoadMarkdown(on, off CacheLoadResult, readRate float64, workers int, d time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| session cache | transfers/s alone | transfers/s beside %.0f session reads/s | ratio | Postgres CPU per session read | Postgres cores: idle, reads, transfers, both | session read p50 / p99 |\n", readRate)
	b.WriteString("|---|---|---|---|---|---|---|\n")
	for _, m := range []struct {
		name string
		r    CacheLoadResult
	}{{"on (Redis, then Postgres on a miss)", on}, {"off (every read from Postgres)", off}} {
		ratio := 0.0
		if m.r.TransfersAlone > 0 {
			ratio = m.r.TransfersWithReads / m.r.TransfersAlone
		}
		fmt.Fprintf(&b, "| %s | %.0f | %.0f | %.2fx | %.0f µs | %.2f, %.2f, %.2f, %.2f | %.1f / %.1f ms |\n", m.name,
			m.r.TransfersAlone, m.r.TransfersWithReads, ratio, float64(m.r.PostgresCPUPerRead.Microseconds()),
			m.r.IdleCores, m.r.ReadCores, m.r.TransferCores, m.r.BothCores, m.r.Reads.P50, m.r.Reads.P99)
	}
	fmt.Fprintf(&b, "\n%d closed-loop transfer workers, %s per phase, one machine (the services, the load and Postgres share its cores).\n", workers, d)
	return b.String()
}

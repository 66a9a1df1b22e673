package tradeoffs_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/strata-ref/strata/libs/testenv"
	"github.com/strata-ref/strata/loadtest/internal/strata"
	"github.com/strata-ref/strata/loadtest/internal/tradeoffs"
)

// TestCacheTakesLoadOffPostgres measures what the session cache buys:
// transfers/s of the ledger beside a fixed rate of session reads on the same
// Postgres server, and Postgres's CPU per session read, with the cache on and
// off (docs/cache-aside.md). A benchmark: run with STRATA_BENCH=1 (make
// bench); STRATA_BENCH_DURATION sets each phase (default 8 s).
func TestCacheTakesLoadOffPostgres(t *testing.T) {
	if os.Getenv("STRATA_BENCH") == "" {
		t.Skip("benchmark: set STRATA_BENCH=1 (make bench)")
	}
	d := 8 * time.Second
	if v, err := time.ParseDuration(os.Getenv("STRATA_BENCH_DURATION")); err == nil {
		d = v
	}
	const users, workers, rate = 8, 8, 600.0
	st := testenv.StartStack(t)
	pidFile, err := os.ReadFile(filepath.Join(st.Dir, "postgres", "data", "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(pidFile), "\n", 2)[0]))
	if err != nil {
		t.Fatalf("postmaster.pid: %v", err)
	}

	measure := func(disabled bool) tradeoffs.CacheLoadResult {
		sys := testenv.StartSystem(t, st, map[string]map[string]string{
			"session": {"STRATA_SESSION_CACHE_DISABLED": strconv.FormatBool(disabled)}})
		defer func() {
			for _, p := range []*testenv.Process{sys.Ledger, sys.Analytics, sys.Auth, sys.Session} {
				p.Kill()
			}
		}()
		if out, err := sys.Auth.Seed(t, users+1); err != nil {
			t.Fatalf("seed: %v\n%s", err, out)
		}
		src := st.Source(t, "loadtest")
		api := strata.New(strata.Endpoints{Auth: sys.Issuer, Ledger: testenv.URL(sys.Ledger.Public),
			Analytics: testenv.URL(sys.Analytics.Public), Session: testenv.URL(sys.Session.Public)},
			&tls.Config{RootCAs: src.Roots(), MinVersion: tls.VersionTLS13}, 64)
		var log bytes.Buffer
		res, err := tradeoffs.CacheLoad(context.Background(), tradeoffs.CacheLoadConfig{API: api, Password: "strata-demo",
			Users: users, Workers: workers, ReadRate: rate, Duration: d, PostgresPID: pid, Log: &log})
		t.Logf("cache disabled=%v:\n%s", disabled, log.String())
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	on := measure(false)
	off := measure(true)
	t.Log("\n" + tradeoffs.CacheLoadMarkdown(on, off, rate, workers, d))
	for _, m := range []struct {
		name string
		r    tradeoffs.CacheLoadResult
	}{{"on", on}, {"off", off}} {
		fmt.Printf("BENCH cache_load.%s.transfers_alone %.1f transfers/s\n", m.name, m.r.TransfersAlone)
		fmt.Printf("BENCH cache_load.%s.transfers_beside_reads %.1f transfers/s\n", m.name, m.r.TransfersWithReads)
		fmt.Printf("BENCH cache_load.%s.postgres_cpu_per_read %.1f µs\n", m.name, float64(m.r.PostgresCPUPerRead.Nanoseconds())/1000)
		if m.r.TransfersAlone <= 0 || m.r.TransfersWithReads <= 0 || m.r.Reads.OK == 0 {
			t.Errorf("cache %s: implausible figures %+v", m.name, m.r)
		}
		if m.r.Reads.Failed > m.r.Reads.OK/20 { // a few 429s on a saturated machine are the shedder's work
			t.Errorf("cache %s: %d of %d session reads failed", m.name, m.r.Reads.Failed, m.r.Reads.OK+m.r.Reads.Failed)
		}
	}
	// The point of the measurement: with the cache off, every read costs
	// Postgres CPU that the cache would have saved.
	if off.PostgresCPUPerRead <= on.PostgresCPUPerRead {
		t.Errorf("Postgres CPU per session read with the cache off (%s) is not above the cache's (%s)",
			off.PostgresCPUPerRead, on.PostgresCPUPerRead)
	}
}

package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"github.com/google/uuid"

	"github.com/strata-ref/strata/libs/testenv"
	"github.com/strata-ref/strata/services/analytics/internal/analytics"
	"github.com/strata-ref/strata/services/analytics/internal/cassandra"
)

// TestIngestBenchmark measures ingestion through the service (HTTPS, token
// validation, strict JSON, validation, ownership check, breaker, grouped
// writes) against the benchmark writing the same rows itself with raw
// gocql, at the same concurrency, and prints events/s and latency
// percentiles for both. Opt in with STRATA_BENCH=1; tune with
// STRATA_BENCH_CONCURRENCY (16), STRATA_BENCH_BATCH (50 events per
// request) and STRATA_BENCH_DURATION (10s). It fails below the goal of
// half the raw throughput.
func TestIngestBenchmark(t *testing.T) {
	if os.Getenv("STRATA_BENCH") != "1" {
		t.Skip("set STRATA_BENCH=1 to run the ingestion benchmark")
	}
	conc := benchInt("STRATA_BENCH_CONCURRENCY", 16)
	batch := benchInt("STRATA_BENCH_BATCH", 50)
	dur, err := time.ParseDuration(cmp(os.Getenv("STRATA_BENCH_DURATION"), "10s"))
	if err != nil {
		t.Fatal(err)
	}
	h := start(t, nil)

	// 256 accounts owned by one user, announced by the ledger.
	owner := randID("bench")
	accounts := make([]string, 256)
	var opens []map[string]any
	for i := range accounts {
		accounts[i] = randID("bench-acc")
		opens = append(opens, opened(accounts[i], owner, time.Now()))
	}
	mustStatus(t, h.postLedger(opens...), 202)
	tok := h.token(owner, []string{"customer"}, "")
	// A load generator keeps one connection per worker; the default of two
	// idle connections would make most requests pay a new TLS handshake.
	testenv.HTTPTransport(h.public).MaxIdleConnsPerHost = conc

	// The raw side: the benchmark's own gocql session, same cluster settings.
	raw, err := cassandra.Open(context.Background(), cassandra.Config{Hosts: []string{"127.0.0.1"}, Port: h.st.CassandraPort,
		Keyspace: testKeyspace, Replication: "{'class': 'SimpleStrategy', 'replication_factor': 1}",
		Consistency: gocql.LocalQuorum, Timeout: 2 * time.Second, TLS: h.st.Source(t, "analytics")})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()

	newBatch := func(r *rand.Rand) []analytics.ClientEvent {
		evs := make([]analytics.ClientEvent, batch)
		now := time.Now().UTC()
		for i := range evs {
			evs[i] = analytics.ClientEvent{EventID: uuid.NewString(), Type: "account.viewed", OccurredAt: now,
				AccountID: accounts[r.IntN(len(accounts))], Attributes: map[string]string{"screen": "overview"}}
		}
		return evs
	}
	viaService := func(r *rand.Rand) error {
		resp := h.do(h.public, "POST", h.pub("/v1/events"), tok, map[string]any{"events": newBatch(r)})
		if resp.status != 202 {
			return fmt.Errorf("status %d: %s", resp.status, resp.body)
		}
		return nil
	}
	// The same rows the service writes for a batch: one activity row per
	// event and one day-index row per account and day, all concurrently.
	const (
		insertEvent = `INSERT INTO events_by_account_day (account_id, day, occurred_at, event_id, type, transfer_id, amount, currency, counterparty, direction, attributes)
		               VALUES (?, ?, ?, ?, ?, '', 0, '', '', '', ?)`
		insertDay = `INSERT INTO account_days (account_id, day) VALUES (?, ?)`
	)
	viaGocql := func(r *rand.Rand) error {
		evs := newBatch(r)
		var wg sync.WaitGroup
		errs := make(chan error, 2*len(evs))
		exec := func(q string, args ...any) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := raw.Query(q, args...).Consistency(gocql.LocalQuorum).Idempotent(true).Exec(); err != nil {
					errs <- err
				}
			}()
		}
		days := map[string]bool{}
		for _, e := range evs {
			id, _ := gocql.ParseUUID(e.EventID)
			day := analytics.Day(e.OccurredAt)
			exec(insertEvent, e.AccountID, day, e.OccurredAt, id, e.Type, e.Attributes)
			if k := e.AccountID + day.String(); !days[k] {
				days[k] = true
				exec(insertDay, e.AccountID, day)
			}
		}
		wg.Wait()
		close(errs)
		return <-errs
	}

	// run drives conc workers calling fn for d, adding to r.
	run := func(r *result, d time.Duration, fn func(*rand.Rand) error) {
		var mu sync.Mutex
		var events, failures atomic.Int64
		deadline := time.Now().Add(d)
		var wg sync.WaitGroup
		t0 := time.Now()
		for w := range conc {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rnd := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
				for time.Now().Before(deadline) {
					s := time.Now()
					err := fn(rnd)
					us := time.Since(s).Microseconds()
					if err != nil {
						failures.Add(1)
						mu.Lock()
						if r.firstErr == "" {
							r.firstErr = err.Error()
						}
						mu.Unlock()
						continue
					}
					events.Add(int64(batch))
					mu.Lock()
					_ = r.hist.RecordValue(us)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		r.elapsed += time.Since(t0)
		r.events += events.Load()
		r.failures += failures.Load()
	}
	newResult := func(name string) *result {
		return &result{name: name, hist: hdrhistogram.New(1, int64(30*time.Second/time.Microsecond), 3)}
	}

	// Warm both paths (connections, prepared statements, the JIT), then
	// alternate them in rounds so neither gains from running later (a
	// warmer JVM, a finished compaction).
	run(newResult("warm-up"), 2*time.Second, viaService)
	run(newResult("warm-up"), 2*time.Second, viaGocql)
	svc, rawRes := newResult("service (HTTPS POST /v1/events)"), newResult("raw gocql, same rows")
	const rounds = 2
	for range rounds {
		run(svc, dur/rounds, viaService)
		run(rawRes, dur/rounds, viaGocql)
	}
	for _, r := range []*result{svc, rawRes} {
		if r.firstErr != "" {
			t.Logf("%s: %d failed requests, first: %s", r.name, r.failures, r.firstErr)
		}
	}

	ratio := svc.eventsPerSec() / rawRes.eventsPerSec()
	var b strings.Builder
	fmt.Fprintf(&b, "\ningestion benchmark: %d concurrent workers, %d events per request/batch, %s per path, 1 Cassandra node, GOMAXPROCS=%s\n",
		conc, batch, dur, cmp(os.Getenv("GOMAXPROCS"), "all cores"))
	fmt.Fprintf(&b, "%-34s %12s %10s %10s %10s %8s\n", "path", "events/s", "requests", "p50", "p99", "failed")
	for _, r := range []*result{svc, rawRes} {
		fmt.Fprintf(&b, "%-34s %12.0f %10d %10s %10s %8d\n", r.name, r.eventsPerSec(), r.hist.TotalCount(),
			r.quantile(50), r.quantile(99), r.failures)
	}
	fmt.Fprintf(&b, "service / raw = %.2f (goal >= 0.50)\n", ratio)
	// Machine-readable lines for tools/bench.sh (make bench).
	fmt.Fprintf(&b, "BENCH analytics.service %.0f events/s\nBENCH analytics.raw_gocql %.0f events/s\n", svc.eventsPerSec(), rawRes.eventsPerSec())
	fmt.Print(b.String())
	t.Log(b.String())
	if svc.failures > 0 || rawRes.failures > 0 {
		t.Errorf("failed requests: service %d, raw %d", svc.failures, rawRes.failures)
	}
	if ratio < 0.5 {
		t.Errorf("service ingests %.2fx raw gocql; the goal is at least 0.5x", ratio)
	}
}

type result struct {
	name     string
	hist     *hdrhistogram.Histogram // request latency, microseconds
	events   int64
	failures int64
	elapsed  time.Duration
	firstErr string
}

func (r *result) eventsPerSec() float64 { return float64(r.events) / r.elapsed.Seconds() }

func (r *result) quantile(q float64) time.Duration {
	return (time.Duration(r.hist.ValueAtQuantile(q)) * time.Microsecond).Round(10 * time.Microsecond)
}

func benchInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

func cmp(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

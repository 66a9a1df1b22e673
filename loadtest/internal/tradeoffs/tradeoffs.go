// Package tradeoffs measures the database trade-off table (relational,
// wide-column, in-memory; docs/tradeoffs.md) instead of asserting it. For each store it drives the service
// that owns it through its public API, with real tokens from the OIDC login
// flow, and measures:
//
//   - write and read latency (p50/p99) at a modest fixed arrival rate
//     (open model, loadtest/internal/engine), writes and reads interleaved;
//   - maximum throughput: N callers in a closed loop for a few seconds;
//   - consistency probes: read-your-write on the ledger (Postgres) and on
//     analytics (Cassandra), the stale-read window of the session cache
//     (Redis) after a revoke, and Cassandra ONE against LOCAL_QUORUM when a
//     second analytics instance with other levels is given.
//
// Postgres is measured through ledger (POST /v1/transfers, GET
// /v1/accounts/{id}), Cassandra through analytics (POST /v1/events, GET
// /v1/accounts/{id}/activity) and Redis through session (GET
// /v1/sessions/{sid} served by cache-aside; DELETE /v1/sessions/{sid}, a
// Postgres write plus a cache delete, since sessions are created by auth at
// login). strata-tradeoffs runs it against `make run`; the package's test
// boots the system itself. Markdown and WriteDoc render docs/tradeoffs.md.
package tradeoffs

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/strata-ref/strata/loadtest/internal/scenario"
	"github.com/strata-ref/strata/loadtest/internal/strata"
)

// Analytics is one analytics instance and the consistency levels it runs
// with (its STRATA_CASSANDRA_CONSISTENCY_INGEST / _ACTIVITY).
type Analytics struct {
	URL   string // public base URL
	Level string // "LOCAL_QUORUM (default)", "ONE", ...
}

// Config is one measurement.
type Config struct {
	API      *strata.API
	Password string // of admin and the load users
	// Users is how many seeded load users (load-000001...) sign in and get a
	// funded account; user Users+1 owns the sessions the Redis probes revoke.
	// So `auth seed -users Users+1` must have run.
	Users int
	// Rate is the fixed arrival rate (requests/s, writes and reads together)
	// of the latency phase, which lasts Duration per store.
	Rate     float64
	Duration time.Duration
	// Workers callers in a closed loop for MaxDuration per operation give
	// the maximum throughput.
	Workers     int
	MaxDuration time.Duration
	// Probes read-your-write probes per store; StaleProbes revokes watched
	// by StaleReaders concurrent readers for StaleWatch after each 204.
	Probes, StaleProbes, StaleReaders int
	StaleWatch                        time.Duration
	// Batch events per POST /v1/events in the write measurements [10].
	Batch int
	// Analytics lists further analytics instances (other consistency
	// levels) measured beside API.E.Analytics, which runs Level.
	Level        string
	AltAnalytics []Analytics
	Log          io.Writer // progress lines
}

// Row is one store's measured line.
type Row struct {
	Store, Through  string
	Write, Read     Latency
	WriteOp, ReadOp string // what a write and a read are
	// MaxWrites and MaxReads are closed-loop requests/s; WriteUnit scales a
	// write request to items (events per batch), 1 otherwise.
	MaxWrites, MaxReads Throughput
	WriteUnit           int
	Probes              []Probe
}

// Probe is one consistency probe's result.
type Probe struct {
	Name   string
	Result string // human-readable
	// Rate is the success share for a read-your-write probe (0..1), -1 when
	// the probe is not a rate.
	Rate float64
	// Max and P99 are the stale-read window's, for the cache probe.
	Max, P99 time.Duration
}

// Result is the whole measurement.
type Result struct {
	Started time.Time
	Elapsed time.Duration
	Machine string
	Command string
	Config  Config
	Rows    []Row
	// Ring is the Cassandra ring's ONE/QUORUM/ALL measurement, when run
	// (MeasureRing, on the HA topology).
	Ring     *RingResult
	Warnings []string
}

// Run prepares the population and measures the three stores in turn.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Batch == 0 {
		cfg.Batch = 10
	}
	if cfg.Level == "" {
		cfg.Level = "LOCAL_QUORUM (default)"
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	res := &Result{Started: time.Now(), Machine: Machine(), Config: cfg}
	logf := func(f string, a ...any) { fmt.Fprintf(cfg.Log, f+"\n", a...) }
	pop, err := scenario.Prepare(ctx, cfg.API, cfg.Password, cfg.Users, logf)
	if err != nil {
		return nil, err
	}
	if len(pop.Users) < 2 {
		return nil, fmt.Errorf("need at least 2 users, have %d", len(pop.Users))
	}
	m := &measurer{cfg: cfg, api: cfg.API, pop: pop, logf: logf}

	pg, err := m.ledger(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres via ledger: %w", err)
	}
	cass, err := m.analytics(ctx)
	if err != nil {
		return nil, fmt.Errorf("cassandra via analytics: %w", err)
	}
	redis, err := m.session(ctx)
	if err != nil {
		return nil, fmt.Errorf("redis via session: %w", err)
	}
	res.Rows = append(append([]Row{pg}, cass...), redis)
	for _, r := range res.Rows {
		for _, l := range []struct {
			what string
			l    Latency
		}{{"write", r.Write}, {"read", r.Read}} {
			if l.l.Failed > 0 {
				res.Warnings = append(res.Warnings, fmt.Sprintf("%s: %d of %d %ss in the latency phase failed", r.Through, l.l.Failed, l.l.Failed+l.l.OK, l.what))
			}
		}
		if r.MaxWrites.Failed+r.MaxReads.Failed > 0 {
			res.Warnings = append(res.Warnings, fmt.Sprintf("%s: %d write(s) and %d read(s) refused or failed at saturation (429 from the limiter counts)",
				r.Through, r.MaxWrites.Failed, r.MaxReads.Failed))
		}
	}
	res.Elapsed = time.Since(res.Started)
	return res, nil
}

type measurer struct {
	cfg  Config
	api  *strata.API
	pop  *scenario.Population
	logf func(string, ...any)
}

// Package operator is the console's live view of the running system: once
// a second it reads every service's Prometheus metrics from its internal
// (mTLS) listener, as the console's own workload identity
// (spiffe://strata.local/console, on each service's metrics allow-list),
// parses them with prometheus/common/expfmt, and turns two successive
// readings into rates: requests per second by outcome, latency quantiles
// of the last second, the adaptive limiter, breakers, outbox, cache and
// Cassandra errors.
package operator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// Doer is one resilient client to a service's internal listener.
type Doer interface {
	Do(*http.Request) (*http.Response, error)
}

// Target is one process whose metrics are read: a service replica over
// mTLS (Client and URL), or the console itself (Gather).
type Target struct {
	Service string // "ledger"
	URL     string // internal base URL, shown beside a replica
	Client  Doer
	Gather  func() ([]*dto.MetricFamily, error)
}

// Breaker is one dependency's circuit breaker state.
type Breaker struct {
	Dependency string
	State      string // closed, half-open, open
}

// CassandraErrors are failed analytics store operations per consistency level.
type CassandraErrors struct {
	Consistency string
	PerSecond   float64
	Total       float64
}

// Row is one process in the view.
type Row struct {
	Service, URL string
	Err          string // the metrics could not be read
	// Requests per second on the public listener, by outcome.
	OK, ClientErr, Shed, ServerErr float64
	// P50 and P99 of the last interval's public requests, in ms (NaN: none).
	P50, P99                 float64
	Limit, InFlight, Queued  float64
	Breakers                 []Breaker
	HasOutbox                bool
	OutboxPending, OutboxLag float64
	HasCache                 bool
	CacheHitRatio            float64 // of the last interval (NaN: no lookups)
	Cassandra                []CassandraErrors
}

// Snapshot is one reading of every target.
type Snapshot struct {
	At   time.Time
	Rows []Row
}

// reading is one target's parsed metrics at a time.
type reading struct {
	at       time.Time
	families map[string]*dto.MetricFamily
}

// Scraper reads the targets once a second while someone watches.
type Scraper struct {
	targets []Target
	now     func() time.Time

	mu        sync.Mutex
	prev      map[int]reading
	snap      Snapshot
	watchedAt time.Time
	changed   chan struct{} // closed and replaced at each new snapshot
}

// New returns a scraper of targets.
func New(targets []Target) *Scraper {
	return &Scraper{targets: targets, now: time.Now, prev: map[int]reading{}, changed: make(chan struct{})}
}

// Run scrapes every second until ctx ends; it idles while nobody has
// watched for 10 s.
func (s *Scraper) Run(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.mu.Lock()
		idle := s.now().Sub(s.watchedAt) > 10*time.Second
		s.mu.Unlock()
		if !idle {
			s.scrape(ctx)
		}
	}
}

// Watch returns the latest snapshot and a channel closed when the next one
// is ready; calling it keeps the scraper running.
func (s *Scraper) Watch() (Snapshot, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.watchedAt = s.now()
	return s.snap, s.changed
}

func (s *Scraper) scrape(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 900*time.Millisecond)
	defer cancel()
	readings := make([]reading, len(s.targets))
	errs := make([]error, len(s.targets))
	var wg sync.WaitGroup
	for i, t := range s.targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			readings[i], errs[i] = s.read(ctx, t)
		}()
	}
	wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	snap := Snapshot{At: s.now()}
	for i, t := range s.targets {
		row := Row{Service: t.Service, URL: t.URL}
		if errs[i] != nil {
			row.Err = errs[i].Error()
			delete(s.prev, i)
			snap.Rows = append(snap.Rows, row)
			continue
		}
		prev, ok := s.prev[i]
		s.prev[i] = readings[i]
		summarize(&row, readings[i], prev, ok)
		snap.Rows = append(snap.Rows, row)
	}
	s.snap = snap
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *Scraper) read(ctx context.Context, t Target) (reading, error) {
	at := s.now()
	if t.Gather != nil {
		fams, err := t.Gather()
		if err != nil {
			return reading{}, err
		}
		m := make(map[string]*dto.MetricFamily, len(fams))
		for _, f := range fams {
			m[f.GetName()] = f
		}
		return reading{at: at, families: m}, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.URL+"/metrics", nil)
	if err != nil {
		return reading{}, err
	}
	req.Header.Set("Accept", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
	resp, err := t.Client.Do(req)
	if err != nil {
		return reading{}, shortErr(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return reading{}, fmt.Errorf("/metrics answered %d", resp.StatusCode)
	}
	dec := expfmt.NewDecoder(resp.Body, expfmt.ResponseFormat(resp.Header))
	m := map[string]*dto.MetricFamily{}
	for {
		var f dto.MetricFamily
		if err := dec.Decode(&f); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return reading{}, fmt.Errorf("parse metrics: %w", err)
		}
		m[f.GetName()] = &f
	}
	return reading{at: at, families: m}, nil
}

func shortErr(err error) error {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	return fmt.Errorf("unreachable: %s", s)
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// series returns the metrics of family name whose labels match want.
func series(r reading, name string, want map[string]string) []*dto.Metric {
	f, ok := r.families[name]
	if !ok {
		return nil
	}
	var out []*dto.Metric
	for _, m := range f.GetMetric() {
		match := true
		for k, v := range want {
			if label(m, k) != v {
				match = false
				break
			}
		}
		if match {
			out = append(out, m)
		}
	}
	return out
}

func value(m *dto.Metric) float64 {
	switch {
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	case m.GetUntyped() != nil:
		return m.GetUntyped().GetValue()
	case m.GetHistogram() != nil:
		return float64(m.GetHistogram().GetSampleCount())
	}
	return 0
}

// sum adds the series' values, per group.
func sum(ms []*dto.Metric, group func(*dto.Metric) string) map[string]float64 {
	out := map[string]float64{}
	for _, m := range ms {
		out[group(m)] += value(m)
	}
	return out
}

// buckets adds histogram buckets by upper bound.
func buckets(ms []*dto.Metric) (map[float64]float64, float64) {
	out := map[float64]float64{}
	var count float64
	for _, m := range ms {
		h := m.GetHistogram()
		if h == nil {
			continue
		}
		count += float64(h.GetSampleCount())
		for _, b := range h.GetBucket() {
			out[b.GetUpperBound()] += float64(b.GetCumulativeCount())
		}
	}
	return out, count
}

// quantile estimates q from cumulative bucket counts (linear within a
// bucket, as Prometheus's histogram_quantile does).
func quantile(q float64, cum map[float64]float64, count float64) float64 {
	if count <= 0 {
		return math.NaN()
	}
	bounds := make([]float64, 0, len(cum))
	for b := range cum {
		bounds = append(bounds, b)
	}
	sort.Float64s(bounds)
	rank := q * count
	lower, lowerCount := 0.0, 0.0
	for _, b := range bounds {
		c := cum[b]
		if c >= rank {
			if math.IsInf(b, 1) {
				return lower
			}
			if c == lowerCount {
				return b
			}
			return lower + (b-lower)*(rank-lowerCount)/(c-lowerCount)
		}
		lower, lowerCount = b, c
	}
	return lower
}

var breakerStates = map[float64]string{0: "closed", 1: "half-open", 2: "open"}

// summarize fills row from the current reading and, for rates, the
// previous one.
func summarize(row *Row, cur, prev reading, havePrev bool) {
	dt := cur.at.Sub(prev.at).Seconds()
	rate := func(name string, want map[string]string, group func(*dto.Metric) string) map[string]float64 {
		out := map[string]float64{}
		if !havePrev || dt <= 0 {
			return out
		}
		now, before := sum(series(cur, name, want), group), sum(series(prev, name, want), group)
		for k, v := range now {
			if d := v - before[k]; d > 0 {
				out[k] = d / dt
			}
		}
		return out
	}
	public := map[string]string{"listener": "public"}
	byClass := rate("http_server_request_duration_seconds", public, func(m *dto.Metric) string {
		c := label(m, "code")
		switch {
		case c == "429":
			return "429"
		case strings.HasPrefix(c, "5"):
			return "5xx"
		case strings.HasPrefix(c, "4"):
			return "4xx"
		}
		return "2xx"
	})
	shed := rate("strata_shed_total", public, func(*dto.Metric) string { return "" })
	row.OK, row.ClientErr, row.ServerErr = byClass["2xx"], byClass["4xx"], byClass["5xx"]
	row.Shed = byClass["429"] + shed[""] // shedding answers before the router, outside the RED histogram

	row.P50, row.P99 = math.NaN(), math.NaN()
	if havePrev {
		now, n := buckets(series(cur, "http_server_request_duration_seconds", public))
		before, nb := buckets(series(prev, "http_server_request_duration_seconds", public))
		for b := range now {
			now[b] -= before[b]
		}
		row.P50, row.P99 = quantile(0.5, now, n-nb)*1000, quantile(0.99, now, n-nb)*1000
	}

	gauge := func(name string) float64 {
		v := 0.0
		for _, m := range series(cur, name, public) {
			v += value(m)
		}
		return v
	}
	row.Limit, row.InFlight, row.Queued = gauge("strata_limiter_limit"), gauge("strata_limiter_inflight"), gauge("strata_limiter_queued")

	for _, m := range series(cur, "strata_breaker_state", nil) {
		dep := label(m, "dependency")
		if strings.HasSuffix(dep, "-internal") {
			continue // the operator view's own metrics readers, not a dependency of the service
		}
		row.Breakers = append(row.Breakers, Breaker{Dependency: dep, State: breakerStates[value(m)]})
	}
	slices.SortFunc(row.Breakers, func(a, b Breaker) int { return strings.Compare(a.Dependency, b.Dependency) })

	if ms := series(cur, "strata_outbox_pending", nil); len(ms) > 0 {
		row.HasOutbox = true
		for _, m := range ms {
			row.OutboxPending += value(m)
		}
		for _, m := range series(cur, "strata_outbox_lag_seconds", nil) {
			row.OutboxLag = max(row.OutboxLag, value(m))
		}
	}

	if ms := series(cur, "strata_session_cache_requests_total", nil); len(ms) > 0 {
		row.HasCache = true
		hits := func(r reading) (h, total float64) {
			for _, m := range series(r, "strata_session_cache_requests_total", nil) {
				v := value(m)
				total += v
				if res := label(m, "result"); res == "hit" || res == "negative_hit" {
					h += v
				}
			}
			return h, total
		}
		h, n := hits(cur)
		row.CacheHitRatio = math.NaN()
		if havePrev {
			hp, np := hits(prev)
			if n-np > 0 {
				row.CacheHitRatio = (h - hp) / (n - np)
			}
		}
	}

	if ms := series(cur, "strata_cassandra_operation_duration_seconds", map[string]string{"outcome": "error"}); len(ms) > 0 {
		totals := sum(ms, func(m *dto.Metric) string { return label(m, "consistency") })
		rates := rate("strata_cassandra_operation_duration_seconds", map[string]string{"outcome": "error"},
			func(m *dto.Metric) string { return label(m, "consistency") })
		for cl, total := range totals {
			row.Cassandra = append(row.Cassandra, CassandraErrors{Consistency: cl, Total: total, PerSecond: rates[cl]})
		}
		slices.SortFunc(row.Cassandra, func(a, b CassandraErrors) int { return strings.Compare(a.Consistency, b.Consistency) })
	}
}

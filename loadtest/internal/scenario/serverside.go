package scenario

import (
	"context"
	"math"
	"sort"

	dto "github.com/prometheus/client_model/go"
)

// Inside is latency as the services measured it, from each public
// listener's shedder: for a 429, the time to decide it
// (strata_shed_decision_seconds: from reaching the limiter to the answer
// written, the limiter's queue included); for an admitted request, from
// its admission to its response written (strata_admitted_duration_seconds).
// Beside the generator's figures it tells time spent in the services' own
// code from time spent before it (TLS, HTTP/2 framing, a wait for a CPU).
type Inside struct {
	ShedP99, ServedP99 float64 // ms, over every service's public listener
	Shed, Served       float64 // counts
}

// durations is the cumulative bucket counts of a histogram, by upper bound.
type durations map[float64]float64

// serverDurations scrapes every service's public shedding histograms,
// summed over services: the time to decide each 429, and the time from
// admission to response of each admitted request.
func (s *Sampler) serverDurations(ctx context.Context) (shed, admitted durations) {
	shed, admitted = durations{}, durations{}
	for _, svc := range s.services {
		fams, err := s.families(ctx, svc)
		if err != nil {
			continue // a service that does not answer adds nothing
		}
		shed.add(fams["strata_shed_decision_seconds"], "listener", "public")
		admitted.add(fams["strata_admitted_duration_seconds"], "listener", "public")
	}
	return shed, admitted
}

// add sums the cumulative buckets of the histograms of f that carry
// labels into d.
func (d durations) add(f *dto.MetricFamily, labels ...string) {
	for _, m := range f.GetMetric() {
		if !hasLabels(m, labels...) || m.GetHistogram() == nil {
			continue
		}
		h := m.GetHistogram()
		inf := false
		for _, b := range h.GetBucket() {
			d[b.GetUpperBound()] += float64(b.GetCumulativeCount())
			inf = inf || math.IsInf(b.GetUpperBound(), 1)
		}
		if !inf {
			d[math.Inf(1)] += float64(h.GetSampleCount())
		}
	}
}

// minus is d - before, bucket by bucket (the run's own requests).
func (d durations) minus(before durations) durations {
	out := durations{}
	for le, n := range d {
		out[le] = n - before[le]
	}
	return out
}

// quantile is the q-th quantile in ms (upper bound of the bucket it falls
// in, as Prometheus's histogram_quantile would interpolate within it) and
// the count.
func (d durations) quantile(q float64) (ms, count float64) {
	bounds := make([]float64, 0, len(d))
	for le := range d {
		bounds = append(bounds, le)
	}
	sort.Float64s(bounds)
	if len(bounds) == 0 {
		return 0, 0
	}
	total := d[bounds[len(bounds)-1]] // +Inf
	if total <= 0 {
		return 0, 0
	}
	rank, prevBound, prevCount := q*total, 0.0, 0.0
	for _, le := range bounds {
		if d[le] >= rank {
			if math.IsInf(le, 1) {
				return prevBound * 1000, total
			}
			frac := (rank - prevCount) / max(d[le]-prevCount, 1)
			return (prevBound + frac*(le-prevBound)) * 1000, total
		}
		prevBound, prevCount = le, d[le]
	}
	return prevBound * 1000, total
}

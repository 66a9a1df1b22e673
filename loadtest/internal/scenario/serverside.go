package scenario

import (
	"context"
	"math"
	"sort"
	"strconv"
	"strings"
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
		_ = s.metrics(ctx, svc, func(line string) bool { // a service that does not answer adds nothing
			into := shed
			labels, ok := strings.CutPrefix(line, "strata_shed_decision_seconds_bucket{")
			if !ok {
				into = admitted
				labels, ok = strings.CutPrefix(line, "strata_admitted_duration_seconds_bucket{")
			}
			if !ok || !strings.Contains(labels, `listener="public"`) {
				return true
			}
			bound, err1 := strconv.ParseFloat(between(labels, `le="`, `"`), 64)
			n, err2 := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			if err1 != nil || err2 != nil {
				return true
			}
			into[bound] += n
			return true
		})
	}
	return shed, admitted
}

func between(s, start, end string) string {
	_, rest, ok := strings.Cut(s, start)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, end)
	return v
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

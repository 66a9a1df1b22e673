package scenario

import (
	"fmt"
	"sort"
	"strings"

	"github.com/strata-ref/strata/loadtest/internal/engine"
	"github.com/strata-ref/strata/loadtest/internal/report"
)

// Goals are each scenario's pass/fail claims about degradation, checked on
// the run's own figures; capacity is the rate the schedule was built on,
// throttled whether the clients throttled themselves.
func Goals(name string, s engine.Summary, capacity float64, throttled bool) []report.Check {
	var out []report.Check
	add := func(goal string, ok bool, format string, args ...any) {
		out = append(out, report.Check{Name: goal, OK: ok, Detail: fmt.Sprintf(format, args...)})
	}
	peak := 0.0
	for _, st := range s.Steps {
		peak = max(peak, st.Goodput)
	}
	step := func(label string) (engine.StepSummary, bool) {
		for _, st := range s.Steps {
			if st.Label == label {
				return st, true
			}
		}
		return engine.StepSummary{}, false
	}
	kind := func(k, outcome string) int64 { return s.ByKind[k][outcome] }

	switch name {
	case "ramp":
		top := s.Steps[len(s.Steps)-1]
		add("overload is shed with 429", s.Shed+s.Throttled > 0, "%d requests shed, %d refused locally", s.Shed, s.Throttled)
		add("no 5xx or transport errors beyond planned 503s", s.Failed == 0, "%d failed, %d unavailable (503)", s.Failed, s.Unavailable)
		if throttled {
			add("throttling clients: goodput at 10x >= 0.95x peak", top.Goodput >= 0.95*peak,
				"top %.0f/s, peak %.0f/s (%.2fx); of %.0f/s offered at the top, %.0f/s shed (429) and %.0f/s refused locally",
				top.Goodput, peak, top.Goodput/peak, top.OfferedRate, top.ShedRate, top.ThrottledRate)
		} else {
			add("goodput at the top step >= 0.8x peak", top.Goodput >= 0.8*peak, "top %.0f/s, peak %.0f/s (%.2fx)", top.Goodput, peak, top.Goodput/peak)
		}
	case "flood":
		st := s.Steps[0]
		add("flood at 2.5x: goodput >= 0.7x closed-loop capacity", st.Goodput >= 0.7*capacity,
			"goodput %.0f/s of a closed-loop capacity of %.0f/s (%.2fx); %.0f/s shed", st.Goodput, capacity, st.Goodput/capacity, st.ShedRate)
		add("no crash: no transport errors or 5xx", s.Failed == 0 && s.Unavailable == 0, "%d failed, %d unavailable", s.Failed, s.Unavailable)
		if ok, detail, sampled := boundedMemory(s); sampled {
			add(fmt.Sprintf("bounded memory: every service under %d MiB", ServiceMemoryLimitMiB), ok, "%s", detail)
		}
	case "overload":
		base, _ := step("0.7x")
		at4, ok4 := step("4.0x")
		if ok4 {
			add("goodput at 4x >= 0.9x peak", at4.Goodput >= 0.9*peak, "4x %.0f/s, peak %.0f/s (%.2fx)", at4.Goodput, peak, at4.Goodput/peak)
			add("p99 of admitted requests at 4x <= 2x p99 at 0.7x", at4.P99 <= 2*base.P99, "%.1f ms vs %.1f ms (%.2fx)", at4.P99, base.P99, at4.P99/base.P99)
		}
		add("p99 of 429s <= 0.1x p99 of served", s.ShedP99 <= 0.1*s.P99, "%.1f ms vs %.1f ms", s.ShedP99, s.P99)
		add("no crash: no transport errors or unplanned 5xx", s.Failed == 0, "%d failed", s.Failed)
		if ok, detail, sampled := boundedMemory(s); sampled {
			add(fmt.Sprintf("bounded memory: every service under %d MiB at every step, goroutines back after", ServiceMemoryLimitMiB), ok, "%s", detail)
		}
		add("recovers within 30 s after the overload", recovered(s, "0.7x after") <= 30,
			"clean (no 429, served >= 95%% of offered) %d s into the last step", recovered(s, "0.7x after"))
	case "breaker":
		add("ledger transfers keep succeeding while analytics is down", kind("transfer", engine.Failed)+kind("transfer", engine.Unavailable) == 0,
			"transfers: %v", s.ByKind["transfer"])
	case "cache":
		add("sessions keep being served while Redis is down", kind("session", engine.Failed)+kind("session", engine.Unavailable) == 0,
			"session checks: %v", s.ByKind["session"])
	default:
		add("no 5xx or transport errors", s.Failed == 0 && s.Unavailable == 0, "%d failed, %d unavailable", s.Failed, s.Unavailable)
	}
	return out
}

// recovered is the first second of the named step that was clean, counted
// from the step's start (999 if none was).
func recovered(s engine.Summary, label string) int {
	first := -1
	for _, sec := range s.Seconds {
		if !strings.EqualFold(sec.Step, label) {
			continue
		}
		if first < 0 {
			first = sec.T
		}
		if sec.Shed == 0 && sec.Offered > 0 && float64(sec.Served) >= 0.95*float64(sec.Offered) {
			return sec.T - first
		}
	}
	return 999
}

// ServiceMemoryLimitMiB is the memory limit every Strata service runs
// under in docker-compose.yml (x-service-defaults): the overload scenario's
// bound on each service's resident memory, 10x included.
const ServiceMemoryLimitMiB = 256

// boundedMemory checks, per service, that resident memory stayed under
// ServiceMemoryLimitMiB through every step (what the limiter admits and the
// HTTP/2 stream limit lets wait is bounded, whatever the offered load), and
// that once the overload is over the goroutines came back to within 2x
// (plus 50) of the 0.7x step's: requests that were shed or queued left
// nothing behind. sampled is false when the run has no memory samples
// (metrics unreachable).
func boundedMemory(s engine.Summary) (ok bool, detail string, sampled bool) {
	peak := map[string]map[string]float64{} // step -> gauge -> max
	last := map[string]map[string]float64{} // step -> gauge -> last sample
	top := map[string]float64{}             // gauge -> max over the run
	for _, sec := range s.Seconds {
		if peak[sec.Step] == nil {
			peak[sec.Step], last[sec.Step] = map[string]float64{}, map[string]float64{}
		}
		for k, v := range sec.Gauges {
			if strings.HasSuffix(k, " rss") || strings.HasSuffix(k, " goroutines") {
				peak[sec.Step][k] = max(peak[sec.Step][k], v)
				last[sec.Step][k] = v
				top[k] = max(top[k], v)
			}
		}
	}
	var parts []string
	ok = true
	for k, most := range top {
		svc, isRSS := strings.CutSuffix(k, " rss")
		if !isRSS {
			continue
		}
		sampled = true
		g0, gEnd := last["0.7x"][svc+" goroutines"], last["0.7x after"][svc+" goroutines"]
		leaked := g0 > 0 && gEnd > 2*g0+50
		ok = ok && most < ServiceMemoryLimitMiB && !leaked
		parts = append(parts, fmt.Sprintf("%s RSS %.0f/%.0f/%.0f MiB at 0.7x/4x/10x (max %.0f), goroutines %.0f -> %.0f",
			svc, peak["0.7x"][k], peak["4.0x"][k], peak["10.0x"][k], most, g0, gEnd))
	}
	sort.Strings(parts)
	return ok, strings.Join(parts, "; "), sampled
}

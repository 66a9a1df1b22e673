package scenario

import (
	"context"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/strata-ref/strata/loadtest/internal/engine"
)

// Fault is an action taken mid-run (stop Redis, freeze Cassandra) and its
// undo; both return an error only when the action itself failed.
type Fault struct {
	Name          string
	Inject, Clear func(ctx context.Context) error
}

// Spec describes one scenario.
type Spec struct {
	Name  string
	Doc   string
	Mix   Mix
	Steps func(capacity float64, d time.Duration) []engine.Step
	// Fault, when set, is injected at 1/3 of the run and cleared at 2/3.
	Fault func(env *Env) *Fault
	// Flood: the client does not cooperate. It ignores Retry-After (no
	// retry, no pause), never throttles itself (-throttle has no effect),
	// and the capacity its rate is a multiple of is measured closed-loop
	// (ClosedLoop), not by the open-model calibration.
	Flood bool
}

// Env is what scenarios act on besides the API: the stack script and the
// services' fault toggles.
type Env struct {
	// Stack runs deploy/native/stack.sh with args (stop redis, pid cassandra ...).
	Stack func(ctx context.Context, args ...string) (string, error)
	// SetFault sets a fault toggle on a service's internal listener.
	SetFault func(ctx context.Context, service, dependency string, latency time.Duration, errorRate float64) error
}

func steady(factor float64) func(float64, time.Duration) []engine.Step {
	return func(c float64, d time.Duration) []engine.Step {
		return []engine.Step{{Rate: c * factor, Duration: d, Label: fmt.Sprintf("%.1fx capacity", factor)}}
	}
}

// Ramp steps the arrival rate from 0.5x to 10x of the measured capacity.
func Ramp(c float64, d time.Duration) []engine.Step {
	factors := []float64{0.5, 1, 2, 4, 7, 10}
	per := d / time.Duration(len(factors))
	var out []engine.Step
	for _, f := range factors {
		out = append(out, engine.Step{Rate: c * f, Duration: per, Label: fmt.Sprintf("%.1fx", f)})
	}
	return out
}

// Overload holds 0.7x, 2x, 4x and 10x of capacity, then 0.7x again to
// watch the limiter recover.
func Overload(c float64, d time.Duration) []engine.Step {
	factors := []float64{0.7, 2, 4, 10, 0.7}
	per := d / time.Duration(len(factors))
	var out []engine.Step
	for i, f := range factors {
		label := fmt.Sprintf("%.1fx", f)
		if i == len(factors)-1 {
			label = "0.7x after"
		}
		out = append(out, engine.Step{Rate: c * f, Duration: per, Label: label})
	}
	return out
}

// Specs are the scenarios, each a command of strata-load.
var Specs = map[string]Spec{
	"baseline": {Name: "baseline", Doc: "steady traffic at half the measured capacity", Mix: DefaultMix, Steps: steady(0.5)},
	"ramp":     {Name: "ramp", Doc: "arrival rate stepped from 0.5x to 10x of measured capacity", Mix: DefaultMix, Steps: Ramp},
	"overload": {Name: "overload", Doc: "0.7x, 2x, 4x, 10x of capacity, then back to 0.7x", Mix: DefaultMix, Steps: Overload},
	"breaker": {Name: "breaker", Doc: "Cassandra frozen (SIGSTOP) for the middle third: ledger keeps serving, analytics catches up",
		Mix: DefaultMix, Steps: steady(0.5), Fault: func(env *Env) *Fault {
			return &Fault{Name: "cassandra frozen",
				Inject: func(ctx context.Context) error { return signal(ctx, env, syscall.SIGSTOP) },
				Clear:  func(ctx context.Context) error { return signal(ctx, env, syscall.SIGCONT) }}
		}},
	"cache": {Name: "cache", Doc: "Redis stopped for the middle third: sessions keep being served from Postgres",
		Mix: Mix{Transfer: 0.2, Read: 0.2, Session: 0.6}, Steps: steady(0.5), Fault: func(env *Env) *Fault {
			return &Fault{Name: "redis stopped",
				Inject: func(ctx context.Context) error { _, err := env.Stack(ctx, "stop", "redis"); return err },
				Clear:  func(ctx context.Context) error { _, err := env.Stack(ctx, "start", "redis"); return err }}
		}},
	"retry-storm": {Name: "retry-storm", Doc: "every transfer sent three times at once with one Idempotency-Key",
		Mix: Mix{Transfer: 1, Copies: 3}, Steps: steady(0.3)},
	"flood": {Name: "flood", Doc: "GET /v1/accounts at 2.5x its closed-loop capacity from a client that ignores Retry-After and does not throttle",
		Mix: Mix{List: 1}, Steps: steady(2.5), Flood: true},
	"hot-account": {Name: "hot-account", Doc: "every transfer credits the same account", Mix: Mix{Transfer: 1, HotAccount: true}, Steps: steady(0.5)},
}

// signal freezes (SIGSTOP) or thaws (SIGCONT) the Cassandra JVM: a hung
// dependency, worse than a dead one, since connections stay open.
func signal(ctx context.Context, env *Env, sig syscall.Signal) error {
	out, err := env.Stack(ctx, "pid", "cassandra")
	if err != nil {
		return err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		return fmt.Errorf("cassandra pid %q: %w", out, err)
	}
	return syscall.Kill(pid, sig)
}

// ClosedLoopWorkers is how many clients ClosedLoop runs: the services'
// initial concurrency limit, so the measurement is not itself an overload.
const ClosedLoopWorkers = 32

// ClosedLoop measures capacity the closed way: workers clients each send
// the next request as soon as the last one answered, for d; the result is
// what was served per second.
func ClosedLoop(ctx context.Context, target engine.Target, workers int, d time.Duration) float64 {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var served atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if r := target(ctx); engine.Classify(r) == engine.Served {
					served.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return math.Round(float64(served.Load()) / time.Since(start).Seconds())
}

// Calibrate finds the rate the system serves the mix cleanly: it steps the rate up
// (2 s per step) until goodput falls behind the offered rate, anything is
// shed or fails, or p99 passes a second (a queue is building), and returns
// the last rate served cleanly. Latency alone is a noisy signal on a shared
// machine; falling behind is not.
func Calibrate(ctx context.Context, p *Population, m Mix, acked *Acked, start, max float64, w io.Writer) float64 {
	best := start
	for rate := start; rate <= max; rate *= 1.5 {
		sum := engine.Run(ctx, engine.Config{Steps: []engine.Step{{Rate: rate, Duration: 2 * time.Second}}, Target: p.Target(m, acked)})
		st := sum.Steps[0]
		fmt.Fprintf(w, "calibrate %6.0f/s: goodput %6.0f/s p99 %6.1f ms shed %d failed %d\n", rate, st.Goodput, st.P99, sum.Shed, sum.Failed)
		if st.Goodput < 0.95*rate || st.P99 > 1000 || sum.Shed > 0 || sum.Failed > 0 {
			break
		}
		best = rate
	}
	return math.Round(best)
}

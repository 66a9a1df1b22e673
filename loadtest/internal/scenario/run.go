package scenario

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/strata-ref/strata/libs/mtls"
	"github.com/strata-ref/strata/libs/resilience"
	"github.com/strata-ref/strata/loadtest/internal/engine"
	"github.com/strata-ref/strata/loadtest/internal/report"
	"github.com/strata-ref/strata/loadtest/internal/strata"
)

// Options configure a scenario run.
type Options struct {
	Endpoints strata.Endpoints
	Services  []Service    // internal listeners, for metrics
	TLS       *mtls.Source // the loadtest workload's SVID (and the CA)
	Env       *Env         // faults
	Password  string       // of admin and the load users
	Users     int
	Duration  time.Duration
	Capacity  float64 // 0: calibrate first
	MaxRate   float64
	// ConnsPerHost caps the generator's connections to each service [8].
	// HTTP/2 carries up to the server's stream limit (100) per connection;
	// without a cap, every request that finds the connections full dials
	// its own, and under overload the generator and the services spend
	// their CPU on TLS handshakes instead of requests.
	ConnsPerHost int
	// MaxInFlight caps the generator's requests in flight [4096]; arrivals
	// past it are counted as dropped.
	MaxInFlight int
	Bound       time.Duration // eventual-consistency bound for analytics
	// Throttle makes the generator's clients throttle themselves
	// adaptively per service (Population.Throttle), as the services'
	// outbound clients do; not in a Flood scenario.
	Throttle  bool
	ReportDir string
	Out       io.Writer // live lines and the summary
}

// Outcome is what a run produced.
type Outcome struct {
	Summary  engine.Summary
	Checks   []report.Check
	Capacity float64
	Report   string // path of the HTML report
}

// Failed counts failed checks.
func (o Outcome) Failed() int {
	n := 0
	for _, c := range o.Checks {
		if !c.OK {
			n++
		}
	}
	return n
}

// Execute prepares users, calibrates (unless Capacity is set), runs the
// schedule with its fault, checks invariants and goals, and writes the
// report.
func Execute(ctx context.Context, spec Spec, o Options) (Outcome, error) {
	started := time.Now()
	w := &lockedWriter{w: o.Out} // the fault goroutine and the engine both print
	logf := func(f string, a ...any) { fmt.Fprintf(w, f+"\n", a...) }
	api := strata.New(o.Endpoints, &tls.Config{RootCAs: o.TLS.Roots(), MinVersion: tls.VersionTLS13}, 512)
	if t, ok := api.HTTP.Transport.(*http.Transport); ok {
		if o.ConnsPerHost == 0 {
			o.ConnsPerHost = 8
		}
		t.MaxConnsPerHost = o.ConnsPerHost
	}
	pop, err := Prepare(ctx, api, o.Password, o.Users, logf)
	if err != nil {
		return Outcome{}, err
	}
	acked := &Acked{}
	capacity := o.Capacity
	switch {
	case capacity == 0 && spec.Flood:
		capacity = ClosedLoop(ctx, pop.Target(spec.Mix, acked), ClosedLoopWorkers, 5*time.Second)
		logf("closed-loop capacity (%d clients, 5 s): %.0f/s", ClosedLoopWorkers, capacity)
	case capacity == 0:
		capacity = Calibrate(ctx, pop, spec.Mix, acked, 20, max(o.MaxRate, 40), w)
	}
	throttled := o.Throttle && !spec.Flood
	if throttled {
		pop.Throttle = NewThrottles()
		logf("clients throttle themselves adaptively (K=%d, %s of history)", resilience.K, ThrottleWindow)
	}
	steps := spec.Steps(capacity, o.Duration)
	logf("scenario %s: %s; capacity %.0f/s; %d step(s) over %s", spec.Name, spec.Doc, capacity, len(steps), o.Duration)

	var (
		notesMu sync.Mutex
		notes   []string
	)
	note := func(f string, a ...any) {
		notesMu.Lock()
		notes = append(notes, fmt.Sprintf(f, a...))
		notesMu.Unlock()
	}
	faultDone := make(chan struct{})
	if spec.Fault != nil {
		f := spec.Fault(o.Env)
		go func() {
			defer close(faultDone)
			sleep(ctx, o.Duration/3)
			if err := f.Inject(ctx); err != nil {
				note("Fault %q could not be injected: %v", f.Name, err)
				return
			}
			at := time.Since(started)
			logf(">>> fault injected: %s", f.Name)
			sleep(ctx, o.Duration/3)
			if err := f.Clear(context.WithoutCancel(ctx)); err != nil {
				note("Fault %q could not be cleared: %v", f.Name, err)
			}
			logf("<<< fault cleared: %s", f.Name)
			note("Fault %q injected %s after the start and cleared %s later.", f.Name, at.Round(time.Second), (o.Duration / 3).Round(time.Second))
		}()
	} else {
		close(faultDone)
	}
	sampler := NewSampler(o.TLS, o.Services)
	shed0, served0 := sampler.serverDurations(ctx)
	sum := engine.Run(ctx, engine.Config{Steps: steps, Target: pop.Target(spec.Mix, acked), RetryOn429: !spec.Flood, MaxInFlight: o.MaxInFlight,
		Sample: sampler.Sample, OnSecond: func(s engine.Second) { fmt.Fprintln(w, Live(s)) }})
	<-faultDone

	fmt.Fprintf(w, "\nsummary: offered %d, served %d, shed %d, refused locally %d, unavailable %d, failed %d, dropped %d, retried %d; p50 %.1f ms, p99 %.1f ms, 429 p99 %.1f ms (from due time)\n",
		sum.Offered, sum.Served, sum.Shed, sum.Throttled, sum.Unavailable, sum.Failed, sum.Dropped, sum.Retried, sum.P50, sum.P99, sum.ShedP99)
	fmt.Fprintf(w, "from send time: p99 %.1f ms, 429 p99 %.1f ms; generator lag p99 %.1f ms\n", sum.P99Sent, sum.ShedP99Sent, sum.LagP99)
	fmt.Fprintf(w, "%-12s %10s %10s %10s %10s %9s %9s %10s | %9s %10s %9s | %9s %9s\n", "step", "offered/s", "goodput/s", "shed/s", "local/s", "p50 ms", "p99 ms", "429 p99",
		"sent p99", "sent 429", "lag p99", "gen CPU", "mach busy")
	for _, s := range sum.Steps {
		fmt.Fprintf(w, "%-12s %10.0f %10.0f %10.0f %10.0f %9.1f %9.1f %10.1f | %9.1f %10.1f %9.1f | %9.2f %8.0f%%\n", s.Label, s.OfferedRate, s.Goodput, s.ShedRate, s.ThrottledRate,
			s.P50, s.P99, s.ShedP99, s.SentP99, s.ShedSentP99, s.LagP99, s.GeneratorCPU, 100*s.MachineBusy)
	}
	fmt.Fprintln(w, "(local/s: requests the clients refused themselves, adaptive throttling; never sent)")
	fmt.Fprintln(w, "(gen CPU: the generator's own CPU in cores; mach busy: all CPUs of the machine, the system and the generator together)")
	shed1, served1 := sampler.serverDurations(context.WithoutCancel(ctx))
	if shedP99, nShed := shed1.minus(shed0).quantile(0.99); nShed > 0 {
		servedP99, nServed := served1.minus(served0).quantile(0.99)
		line := fmt.Sprintf("inside the services (their shedders' histograms): time to decide a 429 p99 %.1f ms over %.0f, admitted requests from admission to response p99 %.1f ms over %.0f; "+
			"the generator saw 429 p99 %.1f ms, 2xx p99 %.1f ms: the difference waited before the services' code ran (TLS, HTTP/2, a free CPU)",
			shedP99, nShed, servedP99, nServed, sum.ShedP99, sum.P99)
		fmt.Fprintln(w, line)
		note("%s.", strings.ToUpper(line[:1])+line[1:])
	}
	kinds := make([]string, 0, len(sum.ByKind))
	for k := range sum.ByKind {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		fmt.Fprintf(w, "  %-9s %v\n", k, sum.ByKind[k])
	}
	sum.WriteFailures(w, "  ", 5)

	out := Outcome{Summary: sum, Capacity: capacity}
	out.Checks = append(Check(context.WithoutCancel(ctx), pop, acked, o.Bound), Goals(spec.Name, sum, capacity, throttled)...)
	fmt.Fprintln(w, "\ninvariants and goals:")
	for _, c := range out.Checks {
		mark := "ok  "
		if !c.OK {
			mark = "FAIL"
		}
		fmt.Fprintf(w, "  %s %s: %s\n", mark, c.Name, c.Detail)
	}

	if err := os.MkdirAll(o.ReportDir, 0o755); err != nil {
		return out, err
	}
	out.Report = filepath.Join(o.ReportDir, fmt.Sprintf("%s-%s.html", spec.Name, started.Format("20060102-150405")))
	f, err := os.Create(out.Report)
	if err != nil {
		return out, err
	}
	defer f.Close()
	host, _ := os.Hostname()
	notesMu.Lock()
	defer notesMu.Unlock()
	err = report.Render(f, report.Data{Title: "Strata load test: " + spec.Name, Scenario: spec.Name + " (" + spec.Doc + ")",
		Started: started.Format(time.RFC3339), Machine: fmt.Sprintf("%s, %d cores, %s", host, runtime.NumCPU(), runtime.Version()),
		Summary: sum, Checks: out.Checks, Notes: notes})
	return out, err
}

// Live is the line printed for each second.
func Live(s engine.Second) string {
	var b strings.Builder
	fmt.Fprintf(&b, "t=%3ds %-10s offered %5d/s served %5d 429 %4d local %4d 503 %4d err %3d drop %4d p50 %6.1fms p99 %7.1fms 429p99 %6.1fms lag %6.1fms",
		s.T, s.Step, s.Offered, s.Served, s.Shed, s.Throttled, s.Unavailable, s.Failed, s.Dropped, s.P50, s.P99, s.ShedP99, s.LagP99)
	keys := make([]string, 0, len(s.Gauges))
	for k := range s.Gauges {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := s.Gauges[k]
		switch {
		case strings.Contains(k, "breaker") && v != 0: // only non-closed breakers are news
			fmt.Fprintf(&b, " [%s=%s]", k, map[float64]string{1: "half-open", 2: "OPEN"}[v])
		case strings.HasSuffix(k, " limit"), strings.HasSuffix(k, " queued") && v != 0:
			fmt.Fprintf(&b, " %s=%.0f", strings.ReplaceAll(k, " ", "-"), v)
		}
	}
	return b.String()
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Package engine is Strata's open-model load generator. Arrivals follow a
// schedule of constant rates, fixed in advance: the n-th request of a step
// is due at start + n/rate whether or not earlier ones have answered. A
// closed-model tool (N users in a loop) slows down when the server does and
// so hides stalls ("coordinated omission"); here a stall shows up as
// latency, measured from when the request was due, not when it was sent.
//
// Every second becomes a Second: what was offered, served, shed (429),
// refused as unavailable (503), refused by the client itself (throttled),
// failed, and the latency percentiles from
// HDR histograms, so the report can draw the system degrading.
package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// Step is one constant arrival rate held for a duration.
type Step struct {
	Rate     float64 // requests per second
	Duration time.Duration
	Label    string // e.g. "2.0x capacity"
}

// Result is what one request ended with.
type Result struct {
	Status     int           // HTTP status, 0 for a transport error
	Err        error         // transport error, if any
	RetryAfter time.Duration // from a 429 or 503, if sent
	Kind       string        // which traffic class (transfer, read, ...)
	// Detail says what went wrong, for a failure (the problem's title and
	// detail, or the transport error); kept in Summary.Failures.
	Detail string
	// Throttled: the client refused the request itself (adaptive
	// throttling) and never sent it.
	Throttled bool
}

// RetryWait is how long a client of the load tool waits before sending a
// 429 again: the Retry-After hint, kept within 0.1-2 s so that a missing
// hint does not resend at once and a long one does not stall the run.
func RetryWait(hint time.Duration) time.Duration {
	return min(max(hint, 100*time.Millisecond), 2*time.Second)
}

// Target sends one request. It must honour ctx.
type Target func(ctx context.Context) Result

// Outcome classes.
const (
	Served      = "served"      // 2xx, 3xx and expected 4xx (404 on a probe, 409/422 by design)
	Shed        = "shed"        // 429
	Unavailable = "unavailable" // 503
	Failed      = "failed"      // other 5xx and transport errors
	Throttled   = "throttled"   // refused by the client itself, never sent
)

// Classify maps a result to its outcome class.
func Classify(r Result) string {
	switch {
	case r.Throttled:
		return Throttled
	case r.Err != nil || r.Status == 0:
		return Failed
	case r.Status == 429:
		return Shed
	case r.Status == 503:
		return Unavailable
	case r.Status >= 500:
		return Failed
	default:
		return Served
	}
}

// Second is one second of a run.
type Second struct {
	T           int     `json:"t"`
	Step        string  `json:"step"`
	OfferedRate float64 `json:"offered_rate"` // scheduled arrivals per second
	Offered     int64   `json:"offered"`
	Served      int64   `json:"served"`
	Shed        int64   `json:"shed"`
	Unavailable int64   `json:"unavailable"`
	Failed      int64   `json:"failed"`
	Throttled   int64   `json:"throttled"` // refused by the client itself, never sent
	Dropped     int64   `json:"dropped"`   // the generator itself was at MaxInFlight
	Retried     int64   `json:"retried"`   // retries after Retry-After
	P50         float64 `json:"p50_ms"`    // served latency percentiles (ms)
	P90         float64 `json:"p90_ms"`
	P99         float64 `json:"p99_ms"`
	ShedP99     float64 `json:"shed_p99_ms"` // how fast a 429 arrives
	// The same two p99s measured from when the request was actually sent,
	// and the p99 of the generator's own lag (sent minus due). Due-time
	// figures are what users see; sent-time ones isolate the service from
	// a generator that fell behind on a shared machine.
	SentP99     float64 `json:"sent_p99_ms"`
	ShedSentP99 float64 `json:"shed_sent_p99_ms"`
	LagP99      float64 `json:"lag_p99_ms"`
	// Gauges sampled from the services (breaker states, limits), by name.
	Gauges map[string]float64 `json:"gauges,omitempty"`
}

// Config is one run.
type Config struct {
	Steps  []Step
	Target Target
	// MaxInFlight caps concurrent requests of the generator itself [4096];
	// arrivals beyond it are counted as Dropped, never silently delayed.
	MaxInFlight int
	// RetryOn429 retries a shed request once after its Retry-After (RetryWait:
	// 0.1-2 s), as a well-behaved client does. Retries are not offered load.
	RetryOn429 bool
	// Sample is called once per second for gauges (e.g. breaker states).
	Sample func(ctx context.Context) map[string]float64
	// OnSecond receives each second as it closes (the live line).
	OnSecond func(Second)
}

// Summary is the whole run.
type Summary struct {
	Seconds []Second `json:"seconds"`
	// Per step: offered rate, goodput and latency of served requests.
	Steps []StepSummary `json:"steps"`
	// Whole run.
	Offered, Served, Shed, Unavailable, Failed, Dropped, Retried int64
	Throttled                                                    int64
	P50, P99, ShedP99                                            float64
	// From the send time, and the generator's lag (see Second).
	P99Sent, ShedP99Sent, LagP99 float64
	// ByKind counts outcomes per traffic class.
	ByKind map[string]map[string]int64 `json:"by_kind"`
	// Failures are the first MaxFailures failed or unavailable requests,
	// so a report can say what clients saw, not only how many.
	Failures []Failure `json:"failures,omitempty"`
}

// MaxFailures bounds Summary.Failures.
const MaxFailures = 20

// Failure is one failed request: when it was due (seconds since the run
// started), its traffic class, status (0: no answer) and detail.
type Failure struct {
	T      float64 `json:"t"`
	Kind   string  `json:"kind"`
	Status int     `json:"status"`
	Detail string  `json:"detail"`
}

// WriteFailures prints up to n of the kept failures, one per line after
// indent ("client saw at 12.3s event: 503: ..."), and how many more were kept.
func (s Summary) WriteFailures(w io.Writer, indent string, n int) {
	for i, f := range s.Failures {
		if i == n {
			fmt.Fprintf(w, "%s(%d more kept in the summary)\n", indent, len(s.Failures)-n)
			return
		}
		fmt.Fprintf(w, "%sclient saw %s\n", indent, f)
	}
}

func (f Failure) String() string {
	status := "no answer"
	if f.Status != 0 {
		status = fmt.Sprint(f.Status)
	}
	return fmt.Sprintf("at %.1fs %s: %s: %s", f.T, f.Kind, status, f.Detail)
}

// StepSummary is one step of the schedule.
type StepSummary struct {
	Label       string  `json:"label"`
	OfferedRate float64 `json:"offered_rate"`
	Goodput     float64 `json:"goodput"` // served per second
	ShedRate    float64 `json:"shed_rate"`
	// ThrottledRate is what the client refused itself, per second.
	ThrottledRate float64 `json:"throttled_rate"`
	P50           float64 `json:"p50_ms"`
	P99           float64 `json:"p99_ms"`
	ShedP99       float64 `json:"shed_p99_ms"`
	SentP99       float64 `json:"sent_p99_ms"`
	ShedSentP99   float64 `json:"shed_sent_p99_ms"`
	LagP99        float64 `json:"lag_p99_ms"`
	Failed        int64   `json:"failed"`
	// GeneratorCPU is the CPU this process used during the step, in cores;
	// MachineBusy the share of all the machine's CPUs that were busy (0-1).
	// On one machine, the generator competes with the system it loads.
	// Both 0 where the operating system does not tell (Linux does).
	GeneratorCPU float64 `json:"generator_cpu_cores,omitempty"`
	MachineBusy  float64 `json:"machine_busy,omitempty"`
}

// stats are the outcomes and latencies of a set of requests: one second,
// one step or the whole run.
type stats struct {
	served, shed, unavailable, failed int64
	throttled                         int64 // refused by the client itself, never sent
	// Latency from when the request was due: what a user sees.
	servedDue, shedDue *hdr.Histogram
	// Latency from when it was actually sent: the service alone.
	servedSent, shedSent *hdr.Histogram
	// lag is how late the generator sent requests (sent minus due).
	lag *hdr.Histogram
}

func newStats() stats {
	return stats{servedDue: newHist(), shedDue: newHist(), servedSent: newHist(), shedSent: newHist(), lag: newHist()}
}

// newHist tracks 1 µs to 60 s with 3 significant digits.
func newHist() *hdr.Histogram { return hdr.New(1, 60_000_000, 3) }

// add counts one request by its outcome class.
func (s *stats) add(outcome string, t timing) {
	_ = s.lag.RecordValue(micros(t.lag))
	switch outcome {
	case Served:
		s.served++
		_ = s.servedDue.RecordValue(micros(t.due))
		_ = s.servedSent.RecordValue(micros(t.sent))
	case Shed:
		s.shed++
		_ = s.shedDue.RecordValue(micros(t.due))
		_ = s.shedSent.RecordValue(micros(t.sent))
	case Unavailable:
		s.unavailable++
	case Throttled:
		s.throttled++
	default:
		s.failed++
	}
}

// window is one second of the run: the requests due in it, however late
// they finish.
type window struct {
	mu                        sync.Mutex
	step                      int // the step the window opened in
	offered, dropped, retried int64
	stats
}

func newWindow(step int) *window { return &window{step: step, stats: newStats()} }

func (w *window) count(n *int64) {
	w.mu.Lock()
	*n++
	w.mu.Unlock()
}

func (w *window) add(outcome string, t timing) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stats.add(outcome, t)
}

// second reports the window as the t-th second of a step.
func (w *window) second(t int, st Step) Second {
	w.mu.Lock()
	defer w.mu.Unlock()
	return Second{T: t, Step: st.Label, OfferedRate: st.Rate, Offered: w.offered, Served: w.served, Shed: w.shed,
		Unavailable: w.unavailable, Failed: w.failed, Throttled: w.throttled, Dropped: w.dropped, Retried: w.retried,
		P50: ms(w.servedDue, 50), P90: ms(w.servedDue, 90), P99: ms(w.servedDue, 99), ShedP99: ms(w.shedDue, 99),
		SentP99: ms(w.servedSent, 99), ShedSentP99: ms(w.shedSent, 99), LagP99: ms(w.lag, 99)}
}

// timing is one request's latency from its due time and from its send
// time, and how late the generator sent it.
type timing struct {
	due, sent, lag time.Duration
	at             time.Time // when the request was due
}

func micros(d time.Duration) int64 { return max(d.Microseconds(), 1) }

func ms(h *hdr.Histogram, q float64) float64 {
	if h.TotalCount() == 0 {
		return 0
	}
	return float64(h.ValueAtQuantile(q)) / 1000
}

// recorder keeps what the run's requests ended with: per second (in their
// windows), per step, for the whole run, per traffic class, and the first
// failures.
type recorder struct {
	start time.Time

	mu       sync.Mutex
	steps    []stats
	total    stats
	byKind   map[string]map[string]int64
	failures []Failure
}

func newRecorder(start time.Time, steps int) *recorder {
	r := &recorder{start: start, steps: make([]stats, steps), total: newStats(), byKind: map[string]map[string]int64{}}
	for i := range r.steps {
		r.steps[i] = newStats()
	}
	return r
}

// record counts one completed request in the second and the step it was
// due in.
func (r *recorder) record(w *window, step int, res Result, t timing) {
	o := Classify(res)
	w.add(o, t)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byKind[res.Kind] == nil {
		r.byKind[res.Kind] = map[string]int64{}
	}
	r.byKind[res.Kind][o]++
	if (o == Failed || o == Unavailable) && len(r.failures) < MaxFailures {
		detail := res.Detail
		if detail == "" && res.Err != nil {
			detail = res.Err.Error()
		}
		r.failures = append(r.failures, Failure{T: t.at.Sub(r.start).Seconds(), Kind: res.Kind, Status: res.Status, Detail: detail})
	}
	r.steps[step].add(o, t)
	r.total.add(o, t)
}

// summary adds up the run once every request has finished.
func (r *recorder) summary(steps []Step, seconds []Second, cpu []cpuUse) Summary {
	r.mu.Lock()
	defer r.mu.Unlock()
	sum := Summary{Seconds: seconds, ByKind: r.byKind, Failures: r.failures}
	for _, s := range seconds {
		sum.Offered += s.Offered
		sum.Served += s.Served
		sum.Shed += s.Shed
		sum.Unavailable += s.Unavailable
		sum.Failed += s.Failed
		sum.Throttled += s.Throttled
		sum.Dropped += s.Dropped
		sum.Retried += s.Retried
	}
	t := &r.total
	sum.P50, sum.P99, sum.ShedP99 = ms(t.servedDue, 50), ms(t.servedDue, 99), ms(t.shedDue, 99)
	sum.P99Sent, sum.ShedP99Sent, sum.LagP99 = ms(t.servedSent, 99), ms(t.shedSent, 99), ms(t.lag, 99)
	for i, st := range steps {
		secs, s := st.Duration.Seconds(), &r.steps[i]
		sum.Steps = append(sum.Steps, StepSummary{Label: st.Label, OfferedRate: st.Rate,
			Goodput: float64(s.served) / secs, ShedRate: float64(s.shed) / secs, ThrottledRate: float64(s.throttled) / secs,
			P50: ms(s.servedDue, 50), P99: ms(s.servedDue, 99), ShedP99: ms(s.shedDue, 99),
			SentP99: ms(s.servedSent, 99), ShedSentP99: ms(s.shedSent, 99), LagP99: ms(s.lag, 99),
			Failed: s.failed, GeneratorCPU: cpu[i].selfCores, MachineBusy: cpu[i].busy})
	}
	return sum
}

// secondsLog reports each closed second once the requests due in it had
// 1 s to answer, so its latency percentiles are mostly complete when
// printed; the Summary's seconds are taken again at the end, once every
// request due in them (slow ones, retries after Retry-After) has finished.
type secondsLog struct {
	steps    []Step
	gauges   func() map[string]float64
	onSecond func(Second)

	pending []closedSecond // closed, not yet reported
	done    []closedSecond // reported
	seconds []Second
}

type closedSecond struct {
	w     *window
	t     int
	ready time.Time // when to report it
}

func (l *secondsLog) close(w *window, t int, ready time.Time) {
	l.pending = append(l.pending, closedSecond{w: w, t: t, ready: ready})
}

// flush reports the pending seconds that are ready at now (all of them
// when all is set).
func (l *secondsLog) flush(now time.Time, all bool) {
	for len(l.pending) > 0 && (all || now.After(l.pending[0].ready)) {
		c := l.pending[0]
		l.pending = l.pending[1:]
		s := c.w.second(c.t, l.steps[c.w.step])
		s.Gauges = l.gauges()
		l.seconds = append(l.seconds, s)
		l.done = append(l.done, c)
		if l.onSecond != nil {
			l.onSecond(s)
		}
	}
}

// final reports every second again, complete, with the gauges sampled live.
func (l *secondsLog) final() []Second {
	l.flush(time.Time{}, true)
	for i, c := range l.done {
		g := l.seconds[i].Gauges
		l.seconds[i] = c.w.second(c.t, l.steps[c.w.step])
		l.seconds[i].Gauges = g
	}
	return l.seconds
}

// sampleGauges calls sample once a second until stop is called; latest
// returns the last sample.
func sampleGauges(ctx context.Context, sample func(context.Context) map[string]float64) (latest func() map[string]float64, stop func()) {
	var (
		mu     sync.Mutex
		gauges map[string]float64
	)
	latest = func() map[string]float64 {
		mu.Lock()
		defer mu.Unlock()
		return gauges
	}
	if sample == nil {
		return latest, func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			g := sample(ctx)
			mu.Lock()
			gauges = g
			mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return latest, func() { cancel(); <-done }
}

// scheduler sends each request when it is due, whatever the earlier ones
// are doing, and hands what they end with to the recorder.
type scheduler struct {
	ctx      context.Context
	cfg      Config
	rec      *recorder
	log      *secondsLog
	inflight atomic.Int64
	wg       sync.WaitGroup

	sec      int       // the second the current window covers
	secStart time.Time // when it began
	current  *window
}

// Run executes the schedule and returns the summary once every request has
// finished (in-flight ones are given until ctx ends).
func Run(ctx context.Context, cfg Config) Summary {
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = 4096
	}
	start := time.Now()
	latest, stopSampling := sampleGauges(ctx, cfg.Sample)
	s := &scheduler{ctx: ctx, cfg: cfg, rec: newRecorder(start, len(cfg.Steps)),
		log:      &secondsLog{steps: cfg.Steps, gauges: latest, onSecond: cfg.OnSecond},
		secStart: start, current: newWindow(0)}
	cpu := make([]cpuUse, len(cfg.Steps))
	stepStart := start
	for i, st := range cfg.Steps {
		before := readCPU()
		s.runStep(i, st, stepStart)
		stepStart = stepStart.Add(st.Duration)
		cpu[i] = readCPU().since(before)
	}
	s.log.close(s.current, s.sec, time.Time{})
	s.wg.Wait()
	stopSampling()
	return s.rec.summary(cfg.Steps, s.log.final(), cpu)
}

// runStep sends step i's arrivals, the n-th due at start + n/rate, until
// the step's duration is over or ctx ends.
func (s *scheduler) runStep(i int, st Step, start time.Time) {
	interval := time.Duration(float64(time.Second) / st.Rate)
	end := start.Add(st.Duration)
	for n := int64(0); s.ctx.Err() == nil; n++ {
		due := start.Add(time.Duration(n) * interval)
		if !due.Before(end) {
			return
		}
		for !due.Before(s.secStart.Add(time.Second)) { // the second closed
			s.log.close(s.current, s.sec, s.secStart.Add(2*time.Second))
			s.current = newWindow(i)
			s.sec++
			s.secStart = s.secStart.Add(time.Second)
		}
		s.log.flush(time.Now(), false)
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		s.current.count(&s.current.offered)
		if s.inflight.Load() >= int64(s.cfg.MaxInFlight) {
			s.current.count(&s.current.dropped)
			continue
		}
		s.inflight.Add(1)
		s.wg.Add(1)
		go s.send(s.current, i, due, false)
	}
}

// send makes one request due at due and records it; a shed one is retried
// once after its Retry-After when the config asks for it.
func (s *scheduler) send(w *window, step int, due time.Time, retry bool) {
	defer s.wg.Done()
	defer s.inflight.Add(-1)
	sent := time.Now()
	r := s.cfg.Target(s.ctx)
	done := time.Now()
	t := timing{due: done.Sub(due), sent: done.Sub(sent), lag: sent.Sub(due), at: due}
	if errors.Is(r.Err, context.Canceled) && s.ctx.Err() != nil {
		return // the run ended; not the server's fault
	}
	s.rec.record(w, step, r, t)
	if !s.cfg.RetryOn429 || retry || r.Status != 429 || s.ctx.Err() != nil {
		return
	}
	select {
	case <-s.ctx.Done():
		return
	case <-time.After(RetryWait(r.RetryAfter)):
	}
	w.count(&w.retried)
	s.wg.Add(1)
	s.inflight.Add(1)
	s.send(w, step, time.Now(), true)
}

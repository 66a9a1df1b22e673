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

type window struct {
	mu                                                         sync.Mutex
	offered, served, shed, unavailable, failed, dropped, retry int64
	throttled                                                  int64
	lat, shedLat, sentLat, shedSentLat, lag                    *hdr.Histogram
	step                                                       int // the step the window opened in
}

func newWindow(step int) *window {
	return &window{lat: newHist(), shedLat: newHist(), sentLat: newHist(), shedSentLat: newHist(), lag: newHist(), step: step}
}

// newHist tracks 1 µs to 60 s with 3 significant digits.
func newHist() *hdr.Histogram { return hdr.New(1, 60_000_000, 3) }

func (w *window) record(outcome string, t timing) {
	w.mu.Lock()
	defer w.mu.Unlock()
	_ = w.lag.RecordValue(micros(t.lag))
	switch outcome {
	case Served:
		w.served++
		_ = w.lat.RecordValue(micros(t.due))
		_ = w.sentLat.RecordValue(micros(t.sent))
	case Shed:
		w.shed++
		_ = w.shedLat.RecordValue(micros(t.due))
		_ = w.shedSentLat.RecordValue(micros(t.sent))
	case Unavailable:
		w.unavailable++
	case Throttled:
		w.throttled++
	default:
		w.failed++
	}
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

// Run executes the schedule and returns the summary once every request has
// finished (in-flight ones are given until ctx ends).
func Run(ctx context.Context, cfg Config) Summary {
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = 4096
	}
	var (
		inflight atomic.Int64
		wg       sync.WaitGroup
		mu       sync.Mutex
		current  *window
		stepHist = map[int][5]*hdr.Histogram{} // served, shed (from due); served, shed (from send); lag
		stepCnt  = map[int]*[4]int64{}         // served, shed, failed, throttled
		byKind   = map[string]map[string]int64{}
		failures []Failure
		runStart = time.Now()
		total    = [5]*hdr.Histogram{newHist(), newHist(), newHist(), newHist(), newHist()}
	)
	// finish records one completed request in the second it was due.
	finish := func(w *window, step int, r Result, t timing) {
		o := Classify(r)
		w.record(o, t)
		mu.Lock()
		defer mu.Unlock()
		if byKind[r.Kind] == nil {
			byKind[r.Kind] = map[string]int64{}
		}
		byKind[r.Kind][o]++
		if (o == Failed || o == Unavailable) && len(failures) < MaxFailures {
			detail := r.Detail
			if detail == "" && r.Err != nil {
				detail = r.Err.Error()
			}
			failures = append(failures, Failure{T: t.at.Sub(runStart).Seconds(), Kind: r.Kind, Status: r.Status, Detail: detail})
		}
		h := stepHist[step]
		c := stepCnt[step]
		_ = h[4].RecordValue(micros(t.lag))
		_ = total[4].RecordValue(micros(t.lag))
		switch o {
		case Served:
			_ = h[0].RecordValue(micros(t.due))
			_ = total[0].RecordValue(micros(t.due))
			_ = h[2].RecordValue(micros(t.sent))
			_ = total[2].RecordValue(micros(t.sent))
			c[0]++
		case Shed:
			_ = h[1].RecordValue(micros(t.due))
			_ = total[1].RecordValue(micros(t.due))
			_ = h[3].RecordValue(micros(t.sent))
			_ = total[3].RecordValue(micros(t.sent))
			c[1]++
		case Failed:
			c[2]++
		case Throttled:
			c[3]++
		}
	}
	var send func(w *window, step int, due time.Time, retry bool)
	send = func(w *window, step int, due time.Time, retry bool) {
		defer wg.Done()
		defer inflight.Add(-1)
		sent := time.Now()
		r := cfg.Target(ctx)
		done := time.Now()
		t := timing{due: done.Sub(due), sent: done.Sub(sent), lag: sent.Sub(due), at: due}
		if cfg.RetryOn429 && !retry && r.Status == 429 && ctx.Err() == nil {
			finish(w, step, r, t)
			select {
			case <-ctx.Done():
				return
			case <-time.After(RetryWait(r.RetryAfter)):
			}
			w.mu.Lock()
			w.retry++
			w.mu.Unlock()
			wg.Add(1)
			inflight.Add(1)
			send(w, step, time.Now(), true)
			return
		}
		if errors.Is(r.Err, context.Canceled) && ctx.Err() != nil {
			return // the run ended; not the server's fault
		}
		finish(w, step, r, t)
	}

	var seconds []Second
	var gauges map[string]float64
	sampleDone := make(chan struct{})
	sampleCtx, stopSample := context.WithCancel(ctx)
	var gaugeMu sync.Mutex
	go func() {
		defer close(sampleDone)
		if cfg.Sample == nil {
			return
		}
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			g := cfg.Sample(sampleCtx)
			gaugeMu.Lock()
			gauges = g
			gaugeMu.Unlock()
			select {
			case <-sampleCtx.Done():
				return
			case <-t.C:
			}
		}
	}()

	type closed struct {
		w     *window
		t     int
		ready time.Time
	}
	var pending, all []closed
	snapshot := func(c closed) Second {
		c.w.mu.Lock()
		defer c.w.mu.Unlock()
		st := cfg.Steps[c.w.step]
		return Second{T: c.t, Step: st.Label, OfferedRate: st.Rate, Offered: c.w.offered, Served: c.w.served, Shed: c.w.shed,
			Unavailable: c.w.unavailable, Failed: c.w.failed, Throttled: c.w.throttled, Dropped: c.w.dropped, Retried: c.w.retry,
			P50: ms(c.w.lat, 50), P90: ms(c.w.lat, 90), P99: ms(c.w.lat, 99), ShedP99: ms(c.w.shedLat, 99),
			SentP99: ms(c.w.sentLat, 99), ShedSentP99: ms(c.w.shedSentLat, 99), LagP99: ms(c.w.lag, 99)}
	}
	emit := func(c closed) {
		s := snapshot(c)
		gaugeMu.Lock()
		s.Gauges = gauges
		gaugeMu.Unlock()
		seconds = append(seconds, s)
		all = append(all, c)
		if cfg.OnSecond != nil {
			cfg.OnSecond(s)
		}
	}
	// A second is reported once the requests due in it had 1 s to answer,
	// so its latency percentiles are mostly complete when printed; the
	// Summary's seconds are taken again at the end, once every request due
	// in them (slow ones, retries after Retry-After) has finished.
	flush := func(now time.Time, all bool) {
		for len(pending) > 0 && (all || now.After(pending[0].ready)) {
			emit(pending[0])
			pending = pending[1:]
		}
	}

	sec := 0
	secStart := runStart
	stepStart := runStart
	current = newWindow(0)
	for si := range cfg.Steps { // before any request goroutine reads them
		stepHist[si] = [5]*hdr.Histogram{newHist(), newHist(), newHist(), newHist(), newHist()}
		stepCnt[si] = &[4]int64{}
	}
	stepUse := make([]cpuUse, len(cfg.Steps))
	for si, st := range cfg.Steps {
		use0 := readCPU()
		interval := time.Duration(float64(time.Second) / st.Rate)
		n := int64(0)
		end := stepStart.Add(st.Duration)
		for ctx.Err() == nil {
			due := stepStart.Add(time.Duration(n) * interval)
			if !due.Before(end) {
				break
			}
			for !due.Before(secStart.Add(time.Second)) { // the second closed
				pending = append(pending, closed{w: current, t: sec, ready: secStart.Add(2 * time.Second)})
				current = newWindow(si)
				sec++
				secStart = secStart.Add(time.Second)
			}
			flush(time.Now(), false)
			if d := time.Until(due); d > 0 {
				time.Sleep(d)
			}
			current.mu.Lock()
			current.offered++
			current.mu.Unlock()
			if inflight.Load() >= int64(cfg.MaxInFlight) {
				current.mu.Lock()
				current.dropped++
				current.mu.Unlock()
			} else {
				inflight.Add(1)
				wg.Add(1)
				go send(current, si, due, false)
			}
			n++
		}
		stepStart = end
		stepUse[si] = readCPU().since(use0)
	}
	pending = append(pending, closed{w: current, t: sec})
	wg.Wait()
	stopSample()
	<-sampleDone
	flush(time.Now(), true)
	for i, c := range all { // complete now; keep the gauges sampled live
		g := seconds[i].Gauges
		seconds[i] = snapshot(c)
		seconds[i].Gauges = g
	}

	sum := Summary{Seconds: seconds, ByKind: byKind, Failures: failures}
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
	sum.P50, sum.P99, sum.ShedP99 = ms(total[0], 50), ms(total[0], 99), ms(total[1], 99)
	sum.P99Sent, sum.ShedP99Sent, sum.LagP99 = ms(total[2], 99), ms(total[3], 99), ms(total[4], 99)
	for si, st := range cfg.Steps {
		secs := st.Duration.Seconds()
		h, c := stepHist[si], stepCnt[si]
		if h[0] == nil {
			continue
		}
		sum.Steps = append(sum.Steps, StepSummary{Label: st.Label, OfferedRate: st.Rate, Goodput: float64(c[0]) / secs,
			ShedRate: float64(c[1]) / secs, ThrottledRate: float64(c[3]) / secs, P50: ms(h[0], 50), P99: ms(h[0], 99), ShedP99: ms(h[1], 99),
			SentP99: ms(h[2], 99), ShedSentP99: ms(h[3], 99), LagP99: ms(h[4], 99), Failed: c[2],
			GeneratorCPU: stepUse[si].selfCores, MachineBusy: stepUse[si].busy})
	}
	return sum
}

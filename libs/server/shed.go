package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/failsafe-go/failsafe-go/adaptivelimiter"
	"github.com/failsafe-go/failsafe-go/priority"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-ref/strata/libs/problem"
)

// ShedConfig tunes server-side load shedding. Zero fields take the defaults.
type ShedConfig struct {
	// The adaptive concurrency limit moves between MinLimit [4] and
	// MaxLimit [256], starting at InitialLimit [32]: it grows while latency
	// stays at its baseline and shrinks when latency rises with it (queueing
	// inside the service), so it settles near what the machine can serve.
	MinLimit, MaxLimit, InitialLimit uint
	// MaxWait bounds how long a request may queue for a permit [20 ms];
	// past it the request is shed. The queue itself is bounded at 1-2x the
	// limit, where rejections start gradually. Both are short on purpose:
	// a queued request's latency is its wait plus its service time, so a
	// long queue turns overload into latency for the requests admitted,
	// and a request that times out in it gets its 429 only after MaxWait.
	MaxWait time.Duration
	// RetryAfter is the hint sent with every 429 [1 s].
	RetryAfter time.Duration
	// BodyTimeout bounds how long a request's body may take to arrive,
	// from when the limiter sees the request [5 s]; past it the request is
	// answered 408 and its connection closed.
	BodyTimeout time.Duration
}

// Shedder is the adaptive limiter in front of a listener's business routes.
// It runs before token verification and any I/O, so a rejected request
// costs microseconds. Health, readiness and metrics are never shed.
type Shedder struct {
	cfg      ShedConfig
	limiter  adaptivelimiter.PriorityLimiter[any]
	prio     priority.Prioritizer
	priority func(*http.Request) priority.Priority
	maxBody  int64
	log      *slog.Logger
	// One counter per reason, resolved once: a refusal does no label lookup.
	shedLimit, shedTimeout             prometheus.Counter
	tooLarge, bodyTimeout, bodyAborted prometheus.Counter
	decide, admitted                   prometheus.Observer
	// retryAfter is the Retry-After header value, computed once.
	retryAfter []string
}

// rejection is the body of every 429, encoded once: a rejection must cost
// as little as possible, since under overload most requests get one. It
// carries no request id: shedding runs before the id is minted.
var rejection = encode(http.StatusTooManyRequests, "the service is at capacity; retry after the indicated delay")

// The bodies of the other refusals made before the router.
var (
	tooLargeBody = encode(http.StatusRequestEntityTooLarge, "the request body is larger than this service accepts")
	slowBody     = encode(http.StatusRequestTimeout, "the request body did not arrive in time")
)

func encode(status int, detail string) []byte {
	b, err := json.Marshal(problem.New(status, detail))
	if err != nil {
		panic(err)
	}
	return append(b, '\n')
}

var (
	problemType = []string{problem.ContentType}
	noStore     = []string{"no-store"}
	closeConn   = []string{"close"}
)

func newShedder(cfg ShedConfig, maxBody int64, listener string, reg prometheus.Registerer, log *slog.Logger) *Shedder {
	if maxBody == 0 {
		maxBody = 1 << 20
	}
	if cfg.BodyTimeout == 0 {
		cfg.BodyTimeout = 5 * time.Second
	}
	if cfg.MinLimit == 0 {
		cfg.MinLimit = 4
	}
	if cfg.MaxLimit == 0 {
		cfg.MaxLimit = 256
	}
	if cfg.InitialLimit == 0 {
		cfg.InitialLimit = 32
	}
	if cfg.MaxWait == 0 {
		cfg.MaxWait = 20 * time.Millisecond
	}
	if cfg.RetryAfter == 0 {
		cfg.RetryAfter = time.Second
	}
	prio := adaptivelimiter.NewPrioritizerBuilder().Build()
	limiter := adaptivelimiter.NewBuilder[any]().
		WithLimits(cfg.MinLimit, cfg.MaxLimit, cfg.InitialLimit).
		WithQueueing(1, 2).
		WithMaxWaitTime(cfg.MaxWait).
		BuildPrioritized(prio)
	labels := prometheus.Labels{"listener": listener}
	shed := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name:        "strata_shed_total",
		Help:        "Requests rejected with 429 by the adaptive limiter, by reason (limit, queue_timeout).",
		ConstLabels: labels,
	}, []string{"reason"})
	body := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name:        "strata_body_refused_total",
		Help:        "Requests whose body was refused before the router, by reason (too_large: 413, timeout: 408, aborted: the client left).",
		ConstLabels: labels,
	}, []string{"reason"})
	decide := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:        "strata_shed_decision_seconds",
		Help:        "Time from a request reaching the limiter (its body read) to its 429 written.",
		ConstLabels: labels,
		Buckets:     []float64{1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, .001, .0025, .005, .01, .025, .05, .1},
	})
	admitted := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:        "strata_admitted_duration_seconds",
		Help:        "Time from a request's admission by the limiter to its response written.",
		ConstLabels: labels,
		Buckets:     []float64{.0005, .001, .002, .003, .005, .0075, .01, .015, .02, .03, .05, .075, .1, .15, .2, .3, .5, .75, 1, 2.5, 5},
	})
	s := &Shedder{cfg: cfg, limiter: limiter, prio: prio, log: log, maxBody: maxBody,
		retryAfter: []string{strconv.Itoa(int((cfg.RetryAfter + time.Second - 1) / time.Second))},
		priority:   func(*http.Request) priority.Priority { return priority.Medium },
		shedLimit:  shed.WithLabelValues("limit"), shedTimeout: shed.WithLabelValues("queue_timeout"),
		tooLarge: body.WithLabelValues("too_large"), bodyTimeout: body.WithLabelValues("timeout"),
		bodyAborted: body.WithLabelValues("aborted"), decide: decide, admitted: admitted,
	}
	gauge := func(name, help string, fn func() int) prometheus.GaugeFunc {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: prometheus.Labels{"listener": listener}},
			func() float64 { return float64(fn()) })
	}
	reg.MustRegister(shed, body, decide, admitted,
		gauge("strata_limiter_limit", "Current adaptive concurrency limit.", limiter.Limit),
		gauge("strata_limiter_inflight", "Requests holding a permit.", limiter.Inflight),
		gauge("strata_limiter_queued", "Requests waiting for a permit.", limiter.Queued),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "strata_limiter_rejection_threshold",
			Help: "Priority level below which requests are shed (0-499; 0: nothing is shed).", ConstLabels: prometheus.Labels{"listener": listener}},
			func() float64 { return float64(prio.RejectionThreshold()) }),
	)
	return s
}

// neverShed are the operational endpoints: an overloaded service must still
// say whether it is alive and be observable, and publish its contract.
var neverShed = map[string]bool{"/healthz": true, "/readyz": true, "/metrics": true, "/openapi.json": true}

// Handler puts shedding in front of next (the listener's router), as the
// first thing a request meets after TLS and HTTP/2: before gin, the
// request id, tracing, the RED metrics and the access log, so a refusal
// costs a map lookup, the limiter's check, a counter and a prebuilt
// answer.
//
// A request with a body is read whole first (at most MaxBodyBytes, within
// BodyTimeout) and only then takes a permit: a client that sends headers
// and stalls its body holds a connection until the deadline cuts it, never
// a permit, so it cannot make the service refuse others. A full limiter
// refuses it before its body is read.
func (s *Shedder) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if neverShed[r.URL.Path] {
			next.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		ctx := s.priority(r).AddTo(r.Context())
		if !s.limiter.CanAcquirePermit(ctx) {
			s.reject(w, s.shedLimit, start)
			return
		}
		if hasBody(r) {
			if !s.readBody(w, r) {
				return
			}
			start = time.Now()
		}
		permit, err := s.limiter.AcquirePermitWithMaxWait(ctx, s.cfg.MaxWait)
		if err != nil {
			if errors.Is(err, context.Canceled) {
				return // the client left; nothing to answer
			}
			// failsafe-go answers ErrExceeded both for a full queue (at
			// once) and for a wait past MaxWait: the time spent tells them
			// apart.
			c := s.shedLimit
			if time.Since(start) >= s.cfg.MaxWait {
				c = s.shedTimeout
			}
			s.reject(w, c, start)
			return
		}
		admitted := time.Now()
		next.ServeHTTP(w, r.WithContext(ctx))
		if r.Context().Err() != nil || isStream(w) {
			// A cancelled request, or a stream (server-sent events) that
			// lasts as long as it was meant to, says nothing about capacity.
			permit.Drop()
			return
		}
		s.admitted.Observe(time.Since(admitted).Seconds())
		permit.Record()
	})
}

func isStream(w http.ResponseWriter) bool {
	ct := w.Header()["Content-Type"]
	return len(ct) == 1 && strings.HasPrefix(ct[0], "text/event-stream")
}

func hasBody(r *http.Request) bool {
	return r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0
}

// readBody replaces r.Body with the whole body, read within BodyTimeout and
// capped at MaxBodyBytes. On failure it answers 413 or 408 (an HTTP/1.1
// connection then closes) and reports false.
func (s *Shedder) readBody(w http.ResponseWriter, r *http.Request) bool {
	if r.ContentLength > s.maxBody {
		s.refuse(w, s.tooLarge, http.StatusRequestEntityTooLarge, tooLargeBody)
		return false
	}
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(s.cfg.BodyTimeout))
	size := s.maxBody + 1
	if r.ContentLength > 0 {
		size = r.ContentLength
	}
	buf := bytes.NewBuffer(make([]byte, 0, min(size, 64<<10)))
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, s.maxBody))
	r.Body.Close()
	if err != nil {
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			s.refuse(w, s.tooLarge, http.StatusRequestEntityTooLarge, tooLargeBody)
		case errors.Is(err, os.ErrDeadlineExceeded):
			if r.ProtoMajor == 1 {
				// The connection's read side is spent. (Over HTTP/2 the
				// stream alone ends: "Connection: close" would make the
				// server drain the whole connection, other streams too.)
				w.Header()["Connection"] = closeConn
			}
			s.refuse(w, s.bodyTimeout, http.StatusRequestTimeout, slowBody)
		default:
			// The client went away or broke the stream: nobody to answer.
			s.bodyAborted.Inc()
		}
		return false
	}
	_ = rc.SetReadDeadline(time.Time{})
	r.Body = io.NopCloser(bytes.NewReader(buf.Bytes()))
	return true
}

// reject answers 429 with the precomputed problem body: no encoding and no
// allocation beyond what the header map needs. start is when the decision
// began; the time to decide is observed.
func (s *Shedder) reject(w http.ResponseWriter, reason prometheus.Counter, start time.Time) {
	h := w.Header()
	h["Retry-After"] = s.retryAfter
	h["Content-Type"] = problemType
	h["Cache-Control"] = noStore
	w.WriteHeader(http.StatusTooManyRequests)
	_, _ = w.Write(rejection)
	reason.Inc()
	s.decide.Observe(time.Since(start).Seconds())
}

func (s *Shedder) refuse(w http.ResponseWriter, reason prometheus.Counter, status int, body []byte) {
	h := w.Header()
	h["Content-Type"] = problemType
	h["Cache-Control"] = noStore
	w.WriteHeader(status)
	_, _ = w.Write(body)
	reason.Inc()
}

// Prioritize sets how requests rank when shedding: lower priorities are
// shed first (e.g. analytics reads) and critical ones last (ledger writes).
func (s *Server) Prioritize(fn func(*http.Request) priority.Priority) {
	s.shedder.priority = fn
}

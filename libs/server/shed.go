package server

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/failsafe-go/failsafe-go/adaptivelimiter"
	"github.com/failsafe-go/failsafe-go/priority"
	"github.com/gin-gonic/gin"
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
}

// Shedder is the adaptive limiter in front of a listener's business routes.
// It runs before token verification and any I/O, so a rejected request
// costs microseconds. Health, readiness and metrics are never shed.
type Shedder struct {
	cfg      ShedConfig
	limiter  adaptivelimiter.PriorityLimiter[any]
	prio     priority.Prioritizer
	priority func(*http.Request) priority.Priority
	shed     *prometheus.CounterVec
	log      *slog.Logger
	// retryAfter is the Retry-After header value, computed once.
	retryAfter []string
}

// rejection is the body of every 429, encoded once: a rejection must cost
// as little as possible, since under overload most requests get one. The
// request id travels in the X-Request-ID header, set before shedding.
var rejection = func() []byte {
	b, err := json.Marshal(problem.New(http.StatusTooManyRequests, "the service is at capacity; retry after the indicated delay"))
	if err != nil {
		panic(err)
	}
	return append(b, '\n')
}()

var (
	problemType = []string{problem.ContentType}
	noStore     = []string{"no-store"}
)

func newShedder(cfg ShedConfig, listener string, reg prometheus.Registerer, log *slog.Logger) *Shedder {
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
	s := &Shedder{cfg: cfg, limiter: limiter, prio: prio, log: log,
		retryAfter: []string{strconv.Itoa(int((cfg.RetryAfter + time.Second - 1) / time.Second))},
		priority:   func(*http.Request) priority.Priority { return priority.Medium },
		shed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "strata_shed_total",
			Help:        "Requests rejected with 429 by the adaptive limiter, by reason (limit, queue_timeout).",
			ConstLabels: prometheus.Labels{"listener": listener},
		}, []string{"reason"}),
	}
	gauge := func(name, help string, fn func() int) prometheus.GaugeFunc {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: prometheus.Labels{"listener": listener}},
			func() float64 { return float64(fn()) })
	}
	reg.MustRegister(s.shed,
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

func (s *Shedder) middleware() gin.HandlerFunc {
	return func(c *gin.Context) {
		if neverShed[c.Request.URL.Path] {
			c.Next()
			return
		}
		ctx := s.priority(c.Request).AddTo(c.Request.Context())
		start := time.Now()
		permit, err := s.limiter.AcquirePermitWithMaxWait(ctx, s.cfg.MaxWait)
		if err != nil {
			if errors.Is(err, context.Canceled) {
				c.Abort() // the client left; nothing to answer
				return
			}
			// failsafe-go answers ErrExceeded both for a full queue (at
			// once) and for a wait past MaxWait: the time spent tells them
			// apart.
			reason := "limit"
			if time.Since(start) >= s.cfg.MaxWait {
				reason = "queue_timeout"
			}
			s.shed.WithLabelValues(reason).Inc()
			s.reject(c)
			return
		}
		c.Next()
		if c.Request.Context().Err() != nil {
			permit.Drop() // a cancelled request says nothing about capacity
			return
		}
		permit.Record()
	}
}

// reject answers 429 with the precomputed problem body: no encoding and
// no per-request allocation beyond what the header map needs.
func (s *Shedder) reject(c *gin.Context) {
	h := c.Writer.Header()
	h["Retry-After"] = s.retryAfter
	h["Content-Type"] = problemType
	h["Cache-Control"] = noStore
	c.Writer.WriteHeader(http.StatusTooManyRequests)
	_, _ = c.Writer.Write(rejection)
	c.Abort()
}

// Prioritize sets how requests rank when shedding: lower priorities are
// shed first (e.g. analytics reads) and critical ones last (ledger writes).
func (s *Server) Prioritize(fn func(*http.Request) priority.Priority) {
	s.shedder.priority = fn
}

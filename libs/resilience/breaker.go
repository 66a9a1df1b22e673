package resilience

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// Metrics are the resilience series of one service, shared by all its
// breakers and fallbacks.
type Metrics struct {
	state       *prometheus.GaugeVec
	transitions *prometheus.CounterVec
	fallbacks   *prometheus.CounterVec
	calls       *prometheus.CounterVec
	latency     *prometheus.HistogramVec
	retries     *prometheus.CounterVec
	endpointUp  *prometheus.GaugeVec
	ejections   *prometheus.CounterVec
	// throttleRate is each outbound client's local refusal probability.
	throttleRate *prometheus.GaugeVec
}

// NewMetrics registers the resilience series on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "strata_breaker_state",
			Help: "Circuit breaker state per dependency: 0 closed, 1 half-open, 2 open.",
		}, []string{"dependency"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_breaker_transitions_total",
			Help: "Circuit breaker state changes per dependency and new state.",
		}, []string{"dependency", "state"}),
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_fallbacks_total",
			Help: "Fallbacks taken, per call site.",
		}, []string{"call_site"}),
	}
	m.calls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "strata_client_requests_total",
		Help: "Outbound service calls per dependency and outcome (2xx, 4xx, 5xx, shed, throttled, timeout, breaker_open, error, deadline); throttled calls were refused locally and never sent.",
	}, []string{"dependency", "outcome"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "strata_client_request_duration_seconds",
		Help:    "Outbound service call latency per dependency, retries included.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	}, []string{"dependency"})
	m.retries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "strata_client_retries_total",
		Help: "Retries of outbound calls per dependency.",
	}, []string{"dependency"})
	m.endpointUp = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "strata_endpoint_up",
		Help: "Replica of a dependency in rotation (1) or ejected after failures (0), per dependency and endpoint.",
	}, []string{"dependency", "endpoint"})
	m.ejections = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "strata_endpoint_ejections_total",
		Help: "Ejections of a dependency's replica from the rotation, per dependency and endpoint.",
	}, []string{"dependency", "endpoint"})
	m.throttleRate = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "strata_client_throttle_rejection_rate",
		Help: "Probability with which the outbound client refuses a call locally (adaptive throttling), per dependency.",
	}, []string{"dependency"})
	reg.MustRegister(m.state, m.transitions, m.fallbacks, m.calls, m.latency, m.retries, m.endpointUp, m.ejections, m.throttleRate)
	return m
}

// Fallback counts one fallback taken at callSite.
func (m *Metrics) Fallback(callSite string) { m.fallbacks.WithLabelValues(callSite).Inc() }

// BreakerConfig tunes one breaker. Zero fields take the defaults in brackets.
type BreakerConfig struct {
	Dependency string // label and log name: "redis", "analytics"
	// Open when at least FailureRate [0.5] of at least MinExecutions [10]
	// calls within Period [10 s] failed (time-based failure rate).
	FailureRate   float64
	MinExecutions uint
	Period        time.Duration
	// Delay [5 s] in open before one trial call is let through (half-open).
	Delay time.Duration
	// SuccessThreshold [3] trial successes close it again.
	SuccessThreshold uint
	// IsFailure decides which errors count (default: any error except the
	// caller's own cancellation and rejections by a limiter or bulkhead,
	// which say nothing about the dependency's health).
	IsFailure func(error) bool
}

// ErrRejected marks an error as load shedding (limiter, bulkhead): it must
// never trip a breaker.
var ErrRejected = errors.New("rejected by a limiter")

// DefaultIsFailure is the default failure classification.
func DefaultIsFailure(err error) bool {
	return err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, ErrRejected)
}

// NewBreaker builds a breaker whose state is exported, logged and recorded as
// a span event on the call that changed it.
func NewBreaker[R any](cfg BreakerConfig, m *Metrics, log *slog.Logger) circuitbreaker.CircuitBreaker[R] {
	if cfg.IsFailure == nil {
		cfg.IsFailure = DefaultIsFailure
	}
	isFailure := cfg.IsFailure
	return newBreaker(cfg, func(_ R, err error) bool { return isFailure(err) }, m, log)
}

func newBreaker[R any](cfg BreakerConfig, handle func(R, error) bool, m *Metrics, log *slog.Logger) circuitbreaker.CircuitBreaker[R] {
	if cfg.FailureRate == 0 {
		cfg.FailureRate = 0.5
	}
	if cfg.MinExecutions == 0 {
		cfg.MinExecutions = 10
	}
	if cfg.Period == 0 {
		cfg.Period = 10 * time.Second
	}
	if cfg.Delay == 0 {
		cfg.Delay = 5 * time.Second
	}
	if cfg.SuccessThreshold == 0 {
		cfg.SuccessThreshold = 3
	}
	m.state.WithLabelValues(cfg.Dependency).Set(0)
	return circuitbreaker.NewBuilder[R]().
		HandleIf(handle).
		WithFailureRateThreshold(cfg.FailureRate, cfg.MinExecutions, cfg.Period).
		WithDelay(cfg.Delay).
		WithSuccessThreshold(cfg.SuccessThreshold).
		OnStateChanged(func(e circuitbreaker.StateChangedEvent) {
			state := e.NewState.String()
			m.state.WithLabelValues(cfg.Dependency).Set(stateValue(e.NewState))
			m.transitions.WithLabelValues(cfg.Dependency, state).Inc()
			ctx := e.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			trace.SpanFromContext(ctx).AddEvent("breaker."+state, trace.WithAttributes(attribute.String("dependency", cfg.Dependency)))
			log.WarnContext(ctx, "circuit breaker changed state", "dependency", cfg.Dependency,
				"from", e.OldState.String(), "to", state)
		}).
		Build()
}

func stateValue(s circuitbreaker.State) float64 {
	switch s {
	case circuitbreaker.HalfOpenState:
		return 1
	case circuitbreaker.OpenState:
		return 2
	default:
		return 0
	}
}

// StateGauge exposes the state series of dependency (for tests and dashboards' docs).
func (m *Metrics) StateGauge(dependency string) prometheus.Gauge {
	return m.state.WithLabelValues(dependency)
}

// EndpointUp exposes the strata_endpoint_up series of one replica.
func (m *Metrics) EndpointUp(dependency, endpoint string) prometheus.Gauge {
	return m.endpointUp.WithLabelValues(dependency, endpoint)
}

// FallbackCounter exposes the fallback series of callSite.
func (m *Metrics) FallbackCounter(callSite string) prometheus.Counter {
	return m.fallbacks.WithLabelValues(callSite)
}

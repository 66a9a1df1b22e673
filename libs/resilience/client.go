package resilience

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/budget"
	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/failsafe-go/failsafe-go/failsafehttp"
	"github.com/failsafe-go/failsafe-go/retrypolicy"
	"github.com/failsafe-go/failsafe-go/timeout"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// ClientConfig configures the outbound client for one dependency.
type ClientConfig struct {
	Dependency string // "session", "analytics": metric label and breaker name
	// BaseURL is the dependency's base URL, or a comma-separated list of its
	// replicas' ("https://127.0.0.1:9544,https://127.0.0.1:9554"): calls
	// are balanced over the healthy ones (balancer.go). Each is
	// scheme://host:port.
	BaseURL string
	// Ejection tunes when a failing replica leaves the rotation and for how long.
	Ejection EjectionConfig
	// Probe, when set and there are several replicas, also checks each
	// replica's GET /readyz at this interval (active health checking): a
	// replica that is not ready is ejected before a call fails on it, and
	// an ejected one returns as soon as it is ready again. The probes run
	// until ProbeContext ends [the process's life].
	Probe        time.Duration
	ProbeContext context.Context
	TLS          *tls.Config // mTLS, pinned to the callee's SPIFFE ID (mtls.Source.ClientConfig)
	// Timeout caps one attempt [1 s]. Each attempt also ends 10 % before the
	// caller's own deadline, so the caller always has time to fall back.
	Timeout time.Duration
	// MaxRetries for idempotent requests [2]; backoff 50 ms doubling to
	// 1 s with jitter, or the server's Retry-After when longer.
	MaxRetries int
	// RetryBudget caps retries at this fraction of in-flight calls [0.2], so
	// a struggling dependency never sees a retry storm.
	RetryBudget float64
	Breaker     BreakerConfig
	// Tracing: spans for each call and W3C trace context on the wire.
	TracerProvider trace.TracerProvider
	Propagator     propagation.TextMapPropagator
	// Faults, when set, lets a teacher inject latency or errors (dev only).
	Faults *Faults
	// ThrottleWindow is the history of the adaptive client-side throttle
	// (throttle.go) [1 min]: once the callee has refused (429) more than
	// half of the calls in it, and at least ThrottleMinRequests [20] were
	// made, calls are refused locally with ErrThrottled, without being sent.
	ThrottleWindow      time.Duration
	ThrottleMinRequests uint
}

// Client is the one way a Strata service calls another: mTLS, trace
// context, a per-attempt timeout derived from the caller's deadline, a
// circuit breaker per dependency, and retries only for requests that are
// safe to repeat (idempotent methods, or any method carrying an
// Idempotency-Key). The policy order, outermost first, is
// Retry(CircuitBreaker(Timeout(call))): every attempt is judged by the
// breaker, and an open breaker ends the retries at once.
//
// With several replicas, each attempt goes to one healthy replica
// (round-robin), a retry goes to another one than the attempt before, and
// a connection refused by a replica is sent to the next one at once.
// Health is per replica (strata_endpoint_up); the breaker stays per
// dependency and judges attempts after that failover, so one dead replica
// of two does not open it.
type Client struct {
	cfg     ClientConfig
	bases   []string
	lb      *balancer // nil without a BaseURL (absolute URLs only)
	err     error     // a malformed BaseURL, returned by every Do
	http    *http.Client
	retry   retrypolicy.RetryPolicy[*http.Response]
	breaker circuitbreaker.CircuitBreaker[*http.Response]
	// throttle refuses calls locally while the callee sheds most of them.
	throttle *Throttle
	m        *Metrics
}

// ErrOpen is returned while the dependency's breaker is open.
var ErrOpen = circuitbreaker.ErrOpen

// NewClient builds the client; its breaker is exported as
// strata_breaker_state{dependency}.
func NewClient(cfg ClientConfig, m *Metrics, log *slog.Logger) *Client {
	if cfg.Timeout == 0 {
		cfg.Timeout = time.Second
	}
	if cfg.MaxRetries == 0 {
		cfg.MaxRetries = 2
	}
	if cfg.RetryBudget == 0 {
		cfg.RetryBudget = 0.2
	}
	if cfg.ThrottleWindow == 0 {
		cfg.ThrottleWindow = time.Minute
	}
	if cfg.ThrottleMinRequests == 0 {
		cfg.ThrottleMinRequests = 20
	}
	cfg.Breaker.Dependency = cfg.Dependency
	if cfg.Breaker.IsFailure == nil {
		cfg.Breaker.IsFailure = DefaultIsFailure
	}
	isFailure := cfg.Breaker.IsFailure
	bc := cfg.Breaker
	base := &http.Transport{TLSClientConfig: cfg.TLS, MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second,
		ForceAttemptHTTP2: true}
	var transport http.RoundTripper = base
	if cfg.Faults != nil {
		transport = cfg.Faults.wrap(cfg.Dependency, transport)
	}
	opts := []otelhttp.Option{}
	if cfg.TracerProvider != nil {
		opts = append(opts, otelhttp.WithTracerProvider(cfg.TracerProvider))
	}
	if cfg.Propagator != nil {
		opts = append(opts, otelhttp.WithPropagators(cfg.Propagator))
	}
	transport = otelhttp.NewTransport(routeSpan{transport}, opts...)
	bases := SplitURLs(cfg.BaseURL)
	var lb *balancer
	var lbErr error
	if len(bases) > 0 {
		if lb, lbErr = newBalancer(cfg.Dependency, bases, cfg.Ejection, m, log); lbErr == nil {
			// Outside otelhttp, so each replica tried gets its own client span.
			transport = lbTransport{b: lb, next: transport}
			if cfg.Probe > 0 && len(bases) > 1 {
				// Straight on the transport: no spans, no injected faults.
				go lb.probe(cfg.ProbeContext, &http.Client{Transport: base}, cfg.Probe)
			}
		}
	}

	breaker := newHTTPBreaker(bc, isFailure, m, log)
	retryBudget := budget.NewBuilder().WithMaxRate(cfg.RetryBudget).WithMinConcurrency(1).Build()
	dep := cfg.Dependency
	retry := failsafehttp.NewRetryPolicyBuilder().
		AbortOnErrors(context.Canceled, context.DeadlineExceeded, circuitbreaker.ErrOpen, budget.ErrExceeded).
		WithMaxRetries(cfg.MaxRetries).
		WithBackoff(50*time.Millisecond, time.Second).
		WithJitterFactor(0.25).
		WithDelayFunc(retryAfterDelay).
		WithBudget(retryBudget).
		ReturnLastFailure(). // the caller sees the last response, not "retries exceeded"
		OnRetry(func(failsafe.ExecutionEvent[*http.Response]) { m.retries.WithLabelValues(dep).Inc() }).
		Build()
	return &Client{cfg: cfg, bases: bases, lb: lb, err: lbErr, http: &http.Client{Transport: transport}, retry: retry, breaker: breaker,
		throttle: NewThrottle(cfg.ThrottleWindow, cfg.ThrottleMinRequests), m: m}
}

// newHTTPBreaker judges responses as well as errors: a 5xx (other than 501)
// is a failure; a 429 is load shedding by the callee and says nothing about
// its health, so it is not.
func newHTTPBreaker(cfg BreakerConfig, isFailure func(error) bool, m *Metrics, log *slog.Logger) circuitbreaker.CircuitBreaker[*http.Response] {
	cfg.IsFailure = isFailure
	return newBreaker(cfg, func(resp *http.Response, err error) bool {
		if err != nil {
			return isFailure(err)
		}
		return resp != nil && resp.StatusCode >= 500 && resp.StatusCode != http.StatusNotImplemented
	}, m, log)
}

// retryAfterDelay honours Retry-After (seconds or HTTP-date) on 429 and
// 503; otherwise the backoff applies. The policy's jitter (±25 %) applies
// to this delay too, so it is stretched by a third: even the earliest
// jittered retry comes no sooner than the server asked.
func retryAfterDelay(exec failsafe.ExecutionAttempt[*http.Response]) time.Duration {
	resp := exec.LastResult()
	if resp == nil || (resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable) {
		return -1
	}
	if d, ok := RetryAfter(resp.Header, time.Now()); ok {
		return d + d/3
	}
	return -1
}

// Retryable reports whether req may be sent more than once.
func Retryable(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete:
		return true
	}
	return req.Header.Get("Idempotency-Key") != ""
}

// Do sends req (a path relative to BaseURL is resolved against it, and
// balanced over its replicas). The caller owns resp.Body. A 4xx or 5xx is
// a response, not an error; errors are transport failures, timeouts,
// ErrOpen and context ends.
func (c *Client) Do(req *http.Request) (*http.Response, error) {
	if c.err != nil {
		return nil, c.err
	}
	if req.URL.Host == "" {
		base := ""
		if len(c.bases) > 0 {
			base = c.bases[0] // the balancer rewrites it to the replica it picks
		}
		u, err := req.URL.Parse(base + req.URL.String())
		if err != nil {
			return nil, err
		}
		req.URL = u
	}
	if c.lb != nil && c.lb.owns(req.URL) {
		if err := bufferBody(req); err != nil {
			return nil, err
		}
		req = req.WithContext(context.WithValue(req.Context(), callKey{},
			&callState{caller: req.Context(), tried: map[*endpoint]bool{}}))
	}
	attempt := c.cfg.Timeout
	if dl, ok := req.Context().Deadline(); ok {
		left := time.Until(dl)
		attempt = min(attempt, left-left/10)
		if attempt <= 0 {
			c.m.calls.WithLabelValues(c.cfg.Dependency, "deadline").Inc()
			return nil, fmt.Errorf("%s: %w", c.cfg.Dependency, context.DeadlineExceeded)
		}
	}
	// Adaptive throttling: while the callee sheds most calls, refuse some
	// here, at no cost to it, instead of sending them to be refused there.
	allowed := c.throttle.Allow()
	c.m.throttleRate.WithLabelValues(c.cfg.Dependency).Set(c.throttle.RejectionRate())
	if !allowed {
		c.m.calls.WithLabelValues(c.cfg.Dependency, "throttled").Inc()
		return nil, fmt.Errorf("%s: %w", c.cfg.Dependency, ErrThrottled)
	}
	policies := []failsafe.Policy[*http.Response]{c.breaker, timeout.New[*http.Response](attempt)}
	if Retryable(req) {
		policies = append([]failsafe.Policy[*http.Response]{c.retry}, policies...)
	}
	start := time.Now()
	resp, err := failsafehttp.NewRequestWithExecutor(req, c.http, failsafe.With(policies...).WithContext(req.Context())).Do()
	c.m.latency.WithLabelValues(c.cfg.Dependency).Observe(time.Since(start).Seconds())
	c.m.calls.WithLabelValues(c.cfg.Dependency, outcome(resp, err)).Inc()
	if err == nil {
		c.throttle.Record(resp.StatusCode != http.StatusTooManyRequests)
	}
	if err != nil {
		// The method, not the path: a path may carry an identifier
		// (/internal/sessions/<sid>) and this error is logged.
		return nil, fmt.Errorf("%s %s: %w", c.cfg.Dependency, req.Method, err)
	}
	return resp, nil
}

func outcome(resp *http.Response, err error) string {
	switch {
	case errors.Is(err, circuitbreaker.ErrOpen):
		return "breaker_open"
	case errors.Is(err, timeout.ErrExceeded), errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case err != nil:
		return "error"
	case resp.StatusCode == http.StatusTooManyRequests:
		return "shed"
	case resp.StatusCode >= 500:
		return "5xx"
	default:
		return strconv.Itoa(resp.StatusCode/100) + "xx"
	}
}

// State is the breaker's state, for readiness details and tests.
func (c *Client) State() circuitbreaker.State { return c.breaker.State() }

// Fallback runs call; when it fails, it counts a fallback at callSite and
// returns what fallback makes of the error. Every call site names its
// fallback, so a student can find what happens when a dependency is down.
func Fallback[T any](m *Metrics, callSite string, call func() (T, error), fallback func(error) (T, error)) (T, error) {
	v, err := call()
	if err == nil {
		return v, nil
	}
	m.Fallback(callSite)
	return fallback(err)
}

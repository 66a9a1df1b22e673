package resilience

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// EjectionConfig tunes passive health checking of a dependency's replicas.
// Zero fields take the defaults in brackets.
type EjectionConfig struct {
	// Failures [3] consecutive failed calls (5xx other than 501, timeouts,
	// transport errors) eject an endpoint. A refused connection (a dial
	// error) ejects it at once: the replica is not there.
	Failures int
	// BaseEjection [1 s] is the first ejection's length; each further
	// consecutive ejection doubles it, up to MaxEjection [30 s]. A success
	// resets both counts.
	BaseEjection time.Duration
	MaxEjection  time.Duration
}

func (c *EjectionConfig) defaults() {
	if c.Failures == 0 {
		c.Failures = 3
	}
	if c.BaseEjection == 0 {
		c.BaseEjection = time.Second
	}
	if c.MaxEjection == 0 {
		c.MaxEjection = 30 * time.Second
	}
}

// SplitURLs parses a comma-separated list of base URLs ("https://a:1,
// https://b:2"), trimming blanks and trailing slashes.
func SplitURLs(list string) []string {
	var out []string
	for _, u := range strings.Split(list, ",") {
		if u = strings.TrimRight(strings.TrimSpace(u), "/"); u != "" {
			out = append(out, u)
		}
	}
	return out
}

// endpoint is one replica of a dependency and its passive health.
type endpoint struct {
	scheme, host string // "https", "127.0.0.1:9444"
	label        string // metric label: host:port

	mu        sync.Mutex
	failures  int       // consecutive failed calls
	ejections int       // consecutive ejections, for the back-off
	until     time.Time // ejected until then
}

// balancer spreads the calls to one dependency round-robin over its
// healthy replicas and ejects the ones that fail (outlier detection). It
// never leaves a dependency without endpoints: when every replica is
// ejected, the one whose ejection ends first is tried anyway, and the
// dependency's circuit breaker decides whether calls go out at all.
type balancer struct {
	dep  string
	eps  []*endpoint
	next atomic.Uint64
	cfg  EjectionConfig
	m    *Metrics
	log  *slog.Logger
}

func newBalancer(dep string, bases []string, cfg EjectionConfig, m *Metrics, log *slog.Logger) (*balancer, error) {
	cfg.defaults()
	b := &balancer{dep: dep, cfg: cfg, m: m, log: log}
	for _, base := range bases {
		u, err := url.Parse(base)
		if err != nil || u.Scheme == "" || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return nil, fmt.Errorf("%s: base URL %q must be scheme://host:port", dep, base)
		}
		b.eps = append(b.eps, &endpoint{scheme: u.Scheme, host: u.Host, label: u.Host})
		m.endpointUp.WithLabelValues(dep, u.Host).Set(1)
	}
	return b, nil
}

// owns reports whether u points at one of the replicas (the client
// resolves relative paths against the first one).
func (b *balancer) owns(u *url.URL) bool {
	for _, e := range b.eps {
		if e.scheme == u.Scheme && e.host == u.Host {
			return true
		}
	}
	return false
}

// pick returns the next endpoint for a call that has already tried the
// endpoints in tried: round-robin over the healthy ones not yet tried;
// if every one was tried, over all healthy ones; if none is healthy, the
// one whose ejection ends first.
func (b *balancer) pick(tried map[*endpoint]bool, now time.Time) *endpoint {
	n := len(b.eps)
	if n == 1 {
		return b.eps[0]
	}
	start := int(b.next.Add(1) % uint64(n))
	candidates := make([]*endpoint, 0, n)
	for i := range n {
		if e := b.eps[(start+i)%n]; !tried[e] {
			candidates = append(candidates, e)
		}
	}
	if len(candidates) == 0 {
		for i := range n {
			candidates = append(candidates, b.eps[(start+i)%n])
		}
	}
	var soonest *endpoint
	var soonestUntil time.Time
	for _, e := range candidates {
		e.mu.Lock()
		until := e.until
		e.mu.Unlock()
		if !now.Before(until) {
			return e
		}
		if soonest == nil || until.Before(soonestUntil) {
			soonest, soonestUntil = e, until
		}
	}
	return soonest
}

// succeeded clears the endpoint's failures and ends its ejection history.
func (b *balancer) succeeded(e *endpoint) {
	e.mu.Lock()
	back := e.ejections > 0
	e.failures, e.ejections, e.until = 0, 0, time.Time{}
	e.mu.Unlock()
	if back {
		b.m.endpointUp.WithLabelValues(b.dep, e.label).Set(1)
		b.log.Info("endpoint back in rotation", "dependency", b.dep, "endpoint", e.label)
	}
}

// failed counts a failure; hard (a refused connection) ejects at once.
func (b *balancer) failed(e *endpoint, hard bool, now time.Time, cause error) {
	e.mu.Lock()
	if now.Before(e.until) { // already out: concurrent calls saw the same failure
		e.mu.Unlock()
		return
	}
	e.failures++
	if !hard && e.failures < b.cfg.Failures {
		e.mu.Unlock()
		return
	}
	e.failures = 0
	e.ejections++
	d := b.cfg.BaseEjection << min(e.ejections-1, 16)
	d = min(d, b.cfg.MaxEjection)
	e.until = now.Add(d)
	e.mu.Unlock()
	b.m.endpointUp.WithLabelValues(b.dep, e.label).Set(0)
	b.m.ejections.WithLabelValues(b.dep, e.label).Inc()
	b.log.Warn("endpoint ejected", "dependency", b.dep, "endpoint", e.label, "for", d, "err", cause)
}

// probe checks every replica's /readyz each interval until ctx ends.
func (b *balancer) probe(ctx context.Context, c *http.Client, interval time.Duration) {
	if ctx == nil {
		ctx = context.Background()
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, e := range b.eps {
			b.check(ctx, c, e, min(interval, time.Second))
		}
	}
}

// check probes one replica: not ready ejects it (unless it already is),
// ready ends its ejection at once.
func (b *balancer) check(ctx context.Context, c *http.Client, e *endpoint, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.scheme+"://"+e.host+"/readyz", nil)
	if err != nil {
		return
	}
	resp, err := c.Do(req)
	if err == nil {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
	}
	switch {
	case ctx.Err() != nil && errors.Is(err, context.Canceled):
		return // shutting down
	case err == nil && resp.StatusCode == http.StatusOK:
		e.mu.Lock()
		ejected := e.ejections > 0
		e.mu.Unlock()
		if ejected {
			b.succeeded(e)
		}
	case err != nil:
		b.failed(e, true, time.Now(), fmt.Errorf("readiness probe: %w", err))
	default:
		b.failed(e, true, time.Now(), fmt.Errorf("readiness probe: status %d", resp.StatusCode))
	}
}

// callKey carries a call's callState through failsafe's attempts.
type callKey struct{}

// callState is one Client.Do call: the caller's context (whose end is not
// an endpoint's fault) and the endpoints its attempts have tried, so a
// retry goes to another replica.
type callState struct {
	caller context.Context
	mu     sync.Mutex
	tried  map[*endpoint]bool
}

// lbTransport rewrites each attempt of a balanced call to one replica and
// feeds the outcome back into that replica's health.
type lbTransport struct {
	b    *balancer
	next http.RoundTripper
}

func (t lbTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	st, _ := req.Context().Value(callKey{}).(*callState)
	if st == nil || !t.b.owns(req.URL) {
		return t.next.RoundTrip(req)
	}
	body := req.Body
	for {
		st.mu.Lock()
		e := t.b.pick(st.tried, time.Now())
		st.tried[e] = true
		failover := len(st.tried) < len(t.b.eps)
		st.mu.Unlock()

		r := req.Clone(req.Context())
		r.URL.Scheme, r.URL.Host, r.Host = e.scheme, e.host, ""
		r.Body = body
		resp, err := t.next.RoundTrip(r)
		if err != nil {
			err = fmt.Errorf("replica %s: %w", e.label, err)
		}
		if st.caller.Err() != nil {
			return resp, err // the caller gave up: says nothing about the replica
		}
		switch {
		case err != nil && isDialError(err):
			t.b.failed(e, true, time.Now(), err)
			// A dial error means no connection was made, so the request
			// never reached any server: sending it to another replica
			// cannot apply it twice, and this holds for a POST without an
			// Idempotency-Key as much as for a GET. That is the only error
			// failed over here. A reset, an EOF or a timeout after the
			// connection was up may come after the server received the
			// request and acted on it; those go back to the retry policy,
			// which repeats only requests that are safe to repeat.
			// (Requests on a pooled connection that the server had closed
			// before anything was written are already re-sent by
			// net/http itself.)
			if !failover {
				return nil, err
			}
			if body, err = replayBody(req); err != nil {
				return nil, err
			}
			continue
		case err != nil:
			t.b.failed(e, false, time.Now(), err)
		case resp.StatusCode >= 500 && resp.StatusCode != http.StatusNotImplemented:
			t.b.failed(e, false, time.Now(), fmt.Errorf("status %d", resp.StatusCode))
		default: // 2xx-4xx, 429 included: the replica is alive and answering
			t.b.succeeded(e)
		}
		return resp, err
	}
}

// replayBody returns a fresh copy of req's body for another replica.
func replayBody(req *http.Request) (io.ReadCloser, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return req.Body, nil
	}
	if req.GetBody == nil {
		return nil, errors.New("request body cannot be replayed on another replica")
	}
	return req.GetBody()
}

// bufferBody makes req's body replayable (GetBody) when it is not yet;
// service-to-service bodies are small JSON documents.
func bufferBody(req *http.Request) error {
	if req.Body == nil || req.Body == http.NoBody || req.GetBody != nil {
		return nil
	}
	b, err := io.ReadAll(req.Body)
	req.Body.Close()
	if err != nil {
		return err
	}
	req.Body = io.NopCloser(bytes.NewReader(b))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	return nil
}

// isDialError reports a failure to connect: refused, unreachable, dial
// timeout. Nothing was sent.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// Rotation is the balancer on its own, for a caller that sends its
// requests itself (the load generator): round-robin over the replicas that
// are not ejected, ejection with back-off, and nothing else (no breaker,
// retry budget or probes, which would hide the system's errors from a
// load test).
type Rotation struct{ b *balancer }

// NewRotation balances over bases (scheme://host:port) with cfg's ejection.
func NewRotation(bases []string, cfg EjectionConfig) (*Rotation, error) {
	b, err := newBalancer("rotation", bases, cfg, NewMetrics(prometheus.NewRegistry()), slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err
	}
	return &Rotation{b: b}, nil
}

// Len is the number of replicas.
func (r *Rotation) Len() int { return len(r.b.eps) }

// Pick is the index of the replica to send to next, given those already
// tried (by index): as the balancer picks; an index already tried means
// every replica was.
func (r *Rotation) Pick(tried []bool) int {
	seen := map[*endpoint]bool{}
	for i, t := range tried {
		if t {
			seen[r.b.eps[i]] = true
		}
	}
	return slices.Index(r.b.eps, r.b.pick(seen, time.Now()))
}

// URL is replica i's base URL.
func (r *Rotation) URL(i int) string { return r.b.eps[i].scheme + "://" + r.b.eps[i].host }

// Failed counts a failure of replica i; hard (a refused connection) ejects it at once.
func (r *Rotation) Failed(i int, hard bool, cause error) {
	r.b.failed(r.b.eps[i], hard, time.Now(), cause)
}

// Succeeded ends replica i's failures and ejection.
func (r *Rotation) Succeeded(i int) { r.b.succeeded(r.b.eps[i]) }

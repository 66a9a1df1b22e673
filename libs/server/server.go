package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/contrib/instrumentation/github.com/gin-gonic/gin/otelgin"

	"github.com/strata-ref/strata/libs/mtls"
	"github.com/strata-ref/strata/libs/observe"
	"github.com/strata-ref/strata/libs/problem"
)

// Check is one readiness probe: a named dependency and how to ping it.
type Check struct {
	Name string
	Ping func(context.Context) error
}

// Config is what a service hands to New.
type Config struct {
	Name         string // service name: "ledger"
	PublicAddr   string // "127.0.0.1:8442"; port 0 picks a free port
	InternalAddr string // "127.0.0.1:9442"
	TLS          *mtls.Source
	Logger       *slog.Logger
	Registry     *prometheus.Registry
	Tracing      *observe.Tracing
	Checks       []Check
	// MaxBodyBytes caps every request body (default 1 MiB).
	MaxBodyBytes int64
	// ShutdownTimeout bounds the graceful drain (default 10 s).
	ShutdownTimeout time.Duration
	// MetricsPeers may scrape /metrics (default prometheus, loadtest and
	// console, whose operator view reads every service's metrics).
	MetricsPeers []string
	// Shed tunes the public listener's adaptive limiter.
	Shed ShedConfig
}

// Server holds the two gin engines; a service adds its routes, then calls
// Run, which serves each behind the net/http middleware (handler).
type Server struct {
	cfg      Config
	Public   *gin.Engine
	Internal *gin.Engine

	shedder *Shedder

	mu    sync.Mutex
	addrs [2]net.Addr
}

// New builds both engines with the shared middleware chain and the health,
// readiness and metrics routes.
func New(cfg Config) *Server {
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = 10 * time.Second
	}
	if cfg.MetricsPeers == nil {
		cfg.MetricsPeers = []string{"prometheus", "loadtest", "console"}
	}
	if cfg.Registry == nil {
		cfg.Registry = observe.NewRegistry()
	}
	gin.SetMode(gin.ReleaseMode)
	s := &Server{cfg: cfg, shedder: newShedder(cfg.Shed, cfg.MaxBodyBytes, "public", cfg.Registry, cfg.Logger)}
	s.Public, s.Internal = newEngine(cfg, "public"), newEngine(cfg, "internal")
	for _, e := range []*gin.Engine{s.Public, s.Internal} {
		e.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
		e.GET("/readyz", s.ready)
	}
	s.Internal.GET("/metrics", Adapt(RequirePeers(cfg.MetricsPeers...)), gin.WrapH(observe.MetricsHandler(cfg.Registry)))
	return s
}

// newEngine builds one listener's engine: the router and the middleware
// that needs the route template it matched (c.FullPath()), which only gin
// knows: the server span's url.path, the RED metrics and the access log.
// The rest runs in front of the engine as net/http middleware (handler).
func newEngine(cfg Config, listener string) *gin.Engine {
	e := gin.New()
	e.ContextWithFallback = true // c.Request.Context() carries the span; handlers use it downward
	e.HandleMethodNotAllowed = true
	if cfg.Tracing != nil {
		e.Use(otelgin.Middleware(cfg.Name,
			otelgin.WithTracerProvider(cfg.Tracing.Provider),
			otelgin.WithPropagators(cfg.Tracing.Propagator)), observe.RouteSpan())
	}
	if cfg.Registry != nil {
		e.Use(observe.RED(cfg.Registry, listener))
	}
	e.Use(accessLog(cfg.Logger, listener))
	e.NoRoute(func(c *gin.Context) { Abort(c, problem.New(http.StatusNotFound, "no such resource")) })
	e.NoMethod(func(c *gin.Context) {
		Abort(c, problem.New(http.StatusMethodNotAllowed, "method not allowed here"))
	})
	return e
}

// handler is what a listener serves: the request id, panic recovery and the
// body limit, in that order, in front of the engine. A request the body
// limit refuses by its Content-Length never reaches the router, so it has
// no access log line or RED sample (the public listener's shedder refuses
// those first anyway, and counts them in strata_body_refused_total).
func (s *Server) handler(engine *gin.Engine) http.Handler {
	return chain(engine, requestID, recovery(s.cfg.Logger), limitBody(s.cfg.MaxBodyBytes))
}

func accessLog(log *slog.Logger, listener string) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		// The route template, never the path: a path may carry identifiers
		// (/internal/sessions/<sid>) and its query string codes and tokens.
		// The method comes from a fixed set, as in the metrics.
		attrs := make([]slog.Attr, 0, 8)
		attrs = append(attrs, slog.String("listener", listener), slog.String("method", observe.Method(c.Request.Method)),
			slog.String("route", observe.Route(c)), slog.Int("status", c.Writer.Status()),
			slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
			slog.String("request_id", RequestID(c.Request.Context())))
		if id, ok := mtls.PeerID(c.Request); ok {
			attrs = append(attrs, slog.String("peer", id.String()))
		}
		level := slog.LevelInfo
		switch status := c.Writer.Status(); {
		case status >= 500:
			level = slog.LevelError
		case status == http.StatusTooManyRequests:
			// Under overload a line per shed request would make the
			// overload worse; strata_shed_total counts them instead.
			level = slog.LevelDebug
		}
		// Typed attributes (LogAttrs): one line per request, no boxing.
		log.LogAttrs(c.Request.Context(), level, "request", attrs...)
	}
}

func (s *Server) ready(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
	defer cancel()
	results := make(map[string]string, len(s.cfg.Checks))
	failed := false
	for _, chk := range s.cfg.Checks {
		if err := chk.Ping(ctx); err != nil {
			s.cfg.Logger.WarnContext(ctx, "readiness check failed", "check", chk.Name, "err", err)
			results[chk.Name] = "unavailable"
			failed = true
			continue
		}
		results[chk.Name] = "ok"
	}
	if failed {
		c.Header("Retry-After", "1")
		c.Header("Content-Type", problem.ContentType)
		c.JSON(http.StatusServiceUnavailable, gin.H{"type": "about:blank", "title": "Service Unavailable", "status": 503,
			"detail": "a dependency is unavailable", "checks": results})
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready", "checks": results})
}

// Listener limits. Every read and write has a deadline, so a client that
// stalls cannot hold a connection (and its goroutine and buffers) for
// long: the headers must arrive within ReadHeaderTimeout, the whole
// request within ReadTimeout (the public listener reads bodies under the
// shorter ShedConfig.BodyTimeout), the response be written within
// WriteTimeout. No route streams, so none needs longer. One HTTP/2
// connection carries at most MaxConcurrentStreams requests at once: its
// client cannot queue unbounded work behind a single handshake.
const (
	ReadHeaderTimeout    = 5 * time.Second
	ReadTimeout          = 15 * time.Second
	WriteTimeout         = 30 * time.Second
	IdleTimeout          = 2 * time.Minute
	MaxHeaderBytes       = 64 << 10
	MaxConcurrentStreams = 100
)

func (s *Server) httpServer(h http.Handler, tlsConf *tls.Config, errLog *log.Logger) *http.Server {
	return &http.Server{Handler: h, TLSConfig: tlsConf, ErrorLog: errLog,
		ReadHeaderTimeout: ReadHeaderTimeout, ReadTimeout: ReadTimeout, WriteTimeout: WriteTimeout, IdleTimeout: IdleTimeout,
		MaxHeaderBytes: MaxHeaderBytes, HTTP2: &http.HTTP2Config{MaxConcurrentStreams: MaxConcurrentStreams}}
}

var (
	hsts = []string{"max-age=31536000"}
)

// publicHeaders marks every public answer HTTPS-only for browsers (HSTS:
// the listener speaks nothing but TLS), and the API's answers (/v1/...,
// which carry accounts, balances, activity and sessions) as not to be
// stored by any cache; a handler may still set its own Cache-Control.
func publicHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["Strict-Transport-Security"] = hsts
		if strings.HasPrefix(r.URL.Path, "/v1/") {
			h["Cache-Control"] = noStore
		}
		next.ServeHTTP(w, r)
	})
}

// Addrs returns the bound public and internal addresses once Run listens.
func (s *Server) Addrs() (public, internal net.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addrs[0], s.addrs[1]
}

// Run serves both listeners until ctx ends, then drains in-flight requests
// for at most ShutdownTimeout. It returns the first listener error.
func (s *Server) Run(ctx context.Context) error {
	lnPub, err := net.Listen("tcp", s.cfg.PublicAddr)
	if err != nil {
		return fmt.Errorf("listen public %s: %w", s.cfg.PublicAddr, err)
	}
	lnInt, err := net.Listen("tcp", s.cfg.InternalAddr)
	if err != nil {
		lnPub.Close()
		return fmt.Errorf("listen internal %s: %w", s.cfg.InternalAddr, err)
	}
	s.mu.Lock()
	s.addrs = [2]net.Addr{lnPub.Addr(), lnInt.Addr()}
	s.mu.Unlock()

	errLog := slog.NewLogLogger(s.cfg.Logger.Handler(), slog.LevelWarn)
	servers := []*http.Server{
		s.httpServer(publicHeaders(s.shedder.Handler(s.handler(s.Public))), s.cfg.TLS.PublicServerConfig(), errLog),
		s.httpServer(s.handler(s.Internal), s.cfg.TLS.InternalServerConfig(), errLog),
	}
	listeners := []net.Listener{lnPub, lnInt}
	errc := make(chan error, 2)
	for i, srv := range servers {
		go func() {
			// ServeTLS (certificates come from TLSConfig) also offers HTTP/2,
			// so callers multiplex requests over few connections instead of
			// paying a TLS handshake per concurrent request.
			if err := srv.ServeTLS(listeners[i], "", ""); !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
	}
	s.cfg.Logger.Info("listening", "public", lnPub.Addr().String(), "internal", lnInt.Addr().String())

	calibrate := s.shedder.prio.ScheduleCalibrations(ctx, time.Second)
	defer calibrate()

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	for _, srv := range servers {
		if err := srv.Shutdown(sctx); err != nil && runErr == nil {
			runErr = fmt.Errorf("shutdown: %w", err)
		}
	}
	s.cfg.Logger.Info("stopped")
	return runErr
}

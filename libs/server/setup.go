package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-ref/strata/libs/config"
	"github.com/strata-ref/strata/libs/mtls"
	"github.com/strata-ref/strata/libs/observe"
	"github.com/strata-ref/strata/libs/resilience"
)

// Env is the configuration every service shares; a service embeds it in its
// own config struct.
type Env struct {
	// Env is "dev" or "production" and nothing else (unset refuses to
	// start); production refuses dev-only features.
	Env          config.Environment `env:"STRATA_ENV,required"`
	PublicAddr   string             `env:"STRATA_PUBLIC_ADDR"`
	InternalAddr string             `env:"STRATA_INTERNAL_ADDR"`
	TLSCA        string             `env:"STRATA_TLS_CA,required"`
	TLSCert      string             `env:"STRATA_TLS_CERT,required"`
	TLSKey       string             `env:"STRATA_TLS_KEY,required"`
	LogLevel     slog.Level         `env:"STRATA_LOG_LEVEL" envDefault:"info"`
	// OTLPEndpoint is the collector (host:port or URL); empty: no export.
	OTLPEndpoint string `env:"OTEL_EXPORTER_OTLP_ENDPOINT"`
	OTLPInsecure bool   `env:"OTEL_EXPORTER_OTLP_INSECURE"`
	// OTLPCertificate is the CA file that verifies the collector when the
	// endpoint is https. The OpenTelemetry SDK reads this standard variable
	// itself; it is declared here so `config-vars` lists it.
	OTLPCertificate string `env:"OTEL_EXPORTER_OTLP_CERTIFICATE"`
	// Telemetry "off" samples every span out (nothing exported) and logs
	// only errors and the lifecycle lines (observe.NewQuietLogger); metrics
	// stay. It exists to measure what telemetry costs (docs/observability.md).
	Telemetry string `env:"STRATA_TELEMETRY" envDefault:"on"`
}

// Defaults returns the listener defaults for a service whose public port is
// port; the internal (mTLS) port is always public + 1000.
func Defaults(port int) map[string]string {
	return map[string]string{
		"STRATA_PUBLIC_ADDR":   "127.0.0.1:" + strconv.Itoa(port),
		"STRATA_INTERNAL_ADDR": "127.0.0.1:" + strconv.Itoa(port+1000),
	}
}

// Kit is what every service builds first: its logger, metrics registry,
// tracer provider, certificate source, resilience metrics and (in dev) the
// fault toggles.
type Kit struct {
	Name       string
	Env        config.Environment
	Logger     *slog.Logger
	Registry   *prometheus.Registry
	Tracing    *observe.Tracing
	TLS        *mtls.Source
	Resilience *resilience.Metrics
	Faults     *resilience.Faults // nil unless STRATA_ENV=dev
}

// Setup builds the Kit. Certificate rotation is logged through the kit's
// logger. Call Shutdown when run returns.
func Setup(ctx context.Context, name string, env Env, stdout io.Writer) (*Kit, error) {
	if env.Telemetry != "" && env.Telemetry != "on" && env.Telemetry != "off" { // "" (a zero Env) is on
		return nil, fmt.Errorf("config: STRATA_TELEMETRY must be on or off, not %q", env.Telemetry)
	}
	if err := checkOTLP(env); err != nil {
		return nil, err
	}
	off := env.Telemetry == "off"
	logger := observe.NewLogger(stdout, name, env.LogLevel)
	if off {
		logger = observe.NewQuietLogger(stdout, name)
	}
	src, err := mtls.NewSource(mtls.Files{CA: env.TLSCA, Cert: env.TLSCert, Key: env.TLSKey})
	if err != nil {
		return nil, err
	}
	src.OnReload(func(err error) {
		if err != nil {
			logger.Warn("certificate reload failed; keeping the previous one", "err", err)
			return
		}
		svid, _ := src.GetX509SVID()
		logger.Info("certificate reloaded", "spiffe_id", svid.ID.String(), "not_after", svid.Certificates[0].NotAfter)
	})
	tracing, err := observe.NewTracing(ctx, observe.TracingConfig{Service: name, OTLPEndpoint: env.OTLPEndpoint, Insecure: env.OTLPInsecure,
		Disabled: off, Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	reg := observe.NewRegistry()
	return &Kit{Name: name, Env: env.Env, Logger: logger, Registry: reg, Tracing: tracing, TLS: src,
		Resilience: resilience.NewMetrics(reg), Faults: resilience.NewFaults(string(env.Env))}, nil
}

// Client returns the resilient mTLS client for calls to dependency (a
// Strata workload name), at baseURL, pinned to its SPIFFE ID, traced, and
// subject to the fault toggles. baseURL is one URL or a comma-separated
// list of the dependency's replicas, balanced with health-based ejection
// (resilience.ClientConfig.BaseURL), whose /readyz is also probed every
// 2 s. Zero fields of cfg take the defaults.
func (k *Kit) Client(dependency, baseURL string, cfg resilience.ClientConfig) *resilience.Client {
	cfg.Dependency, cfg.BaseURL = dependency, baseURL
	if cfg.Probe == 0 {
		cfg.Probe = 2 * time.Second
	}
	if cfg.TLS == nil {
		cfg.TLS = k.TLS.ClientConfig(mtls.ID(dependency))
	}
	cfg.TracerProvider, cfg.Propagator, cfg.Faults = k.Tracing.Provider, k.Tracing.Propagator, k.Faults
	return resilience.NewClient(cfg, k.Resilience, k.Logger)
}

// NewServer builds the service's Server from the kit. In dev, the fault
// toggles are mounted on the internal listener for the loadtest workload
// and the console (the operator's tools); elsewhere that route answers 403.
func (k *Kit) NewServer(env Env, checks ...Check) *Server {
	s := New(Config{Name: k.Name, PublicAddr: env.PublicAddr, InternalAddr: env.InternalAddr, TLS: k.TLS,
		Logger: k.Logger, Registry: k.Registry, Tracing: k.Tracing, Checks: checks})
	faults, peers := gin.WrapH(k.Faults.Handler()), Adapt(RequirePeers("loadtest", "console"))
	s.Internal.GET(resilience.FaultsPath, peers, faults)
	s.Internal.PUT(resilience.FaultsPath+"/:dependency", peers, faults)
	return s
}

// Shutdown flushes telemetry.
func (k *Kit) Shutdown(ctx context.Context) error { return k.Tracing.Shutdown(ctx) }

// checkOTLP refuses plaintext OTLP in production unless the collector is on
// the loopback interface (a sidecar in the same pod): spans carry request
// routes, user ids and timing, and cross the network to the collector.
func checkOTLP(env Env) error {
	if env.Env.IsDev() || env.OTLPEndpoint == "" {
		return nil
	}
	host, plaintext := env.OTLPEndpoint, env.OTLPInsecure
	if u, err := url.Parse(env.OTLPEndpoint); err == nil && strings.Contains(env.OTLPEndpoint, "://") {
		host, plaintext = u.Hostname(), plaintext || u.Scheme == "http"
	} else if h, _, err := net.SplitHostPort(env.OTLPEndpoint); err == nil {
		host = h
	}
	if !plaintext || host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("config: OTEL_EXPORTER_OTLP_ENDPOINT %s is plaintext; production sends spans over TLS (https:// and no OTEL_EXPORTER_OTLP_INSECURE) unless the collector is on loopback", env.OTLPEndpoint)
}

package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-ref/strata/libs/mtls"
	"github.com/strata-ref/strata/libs/observe"
)

// Env is the configuration every service shares; a service embeds it in its
// own config struct.
type Env struct {
	// Env is "dev" or "production"; production refuses dev-only features.
	Env          string     `env:"STRATA_ENV" envDefault:"dev"`
	PublicAddr   string     `env:"STRATA_PUBLIC_ADDR"`
	InternalAddr string     `env:"STRATA_INTERNAL_ADDR"`
	TLSCA        string     `env:"STRATA_TLS_CA,required"`
	TLSCert      string     `env:"STRATA_TLS_CERT,required"`
	TLSKey       string     `env:"STRATA_TLS_KEY,required"`
	LogLevel     slog.Level `env:"STRATA_LOG_LEVEL" envDefault:"info"`
	// OTLPEndpoint is the collector (host:port or URL); empty: no export.
	OTLPEndpoint string `env:"OTEL_EXPORTER_OTLP_ENDPOINT"`
	OTLPInsecure bool   `env:"OTEL_EXPORTER_OTLP_INSECURE"`
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
// tracer provider and certificate source.
type Kit struct {
	Name     string
	Logger   *slog.Logger
	Registry *prometheus.Registry
	Tracing  *observe.Tracing
	TLS      *mtls.Source
}

// Setup builds the Kit. Certificate rotation is logged through the kit's
// logger. Call Shutdown when run returns.
func Setup(ctx context.Context, name string, env Env, stdout io.Writer) (*Kit, error) {
	logger := observe.NewLogger(stdout, name, env.LogLevel)
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
	tracing, err := observe.NewTracing(ctx, observe.TracingConfig{Service: name, OTLPEndpoint: env.OTLPEndpoint, Insecure: env.OTLPInsecure})
	if err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	return &Kit{Name: name, Logger: logger, Registry: observe.NewRegistry(), Tracing: tracing, TLS: src}, nil
}

// NewServer builds the service's Server from the kit.
func (k *Kit) NewServer(env Env, checks ...Check) *Server {
	return New(Config{Name: k.Name, PublicAddr: env.PublicAddr, InternalAddr: env.InternalAddr, TLS: k.TLS,
		Logger: k.Logger, Registry: k.Registry, Tracing: k.Tracing, Checks: checks})
}

// Shutdown flushes telemetry.
func (k *Kit) Shutdown(ctx context.Context) error { return k.Tracing.Shutdown(ctx) }

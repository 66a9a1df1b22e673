package authn

import (
	"log/slog"
	"time"

	"github.com/strata-ref/strata/libs/mtls"
	"github.com/strata-ref/strata/libs/resilience"
)

// Settings are the variables a resource service reads to trust the auth
// service; embed it in the service's settings struct.
type Settings struct {
	Issuer string `env:"STRATA_AUTH_ISSUER" envDefault:"https://localhost:8441"`
	// JWKSURL is on auth's internal (mTLS) listener.
	JWKSURL string `env:"STRATA_AUTH_JWKS_URL" envDefault:"https://127.0.0.1:9441/.well-known/jwks.json"`
}

// NewServiceValidator builds the validator of a resource service named
// audience: keys come from auth's JWKS over mTLS (pinned to auth's SPIFFE
// ID) through the resilience client, so a down auth service opens a breaker
// instead of stalling requests; cached keys keep validating meanwhile.
func NewServiceValidator(s Settings, audience string, src *mtls.Source, m *resilience.Metrics, log *slog.Logger) (*Validator, error) {
	client := resilience.NewClient(resilience.ClientConfig{Dependency: "auth-jwks", TLS: src.ClientConfig(mtls.ID("auth")),
		Timeout: 2 * time.Second}, m, log)
	return NewValidator(Config{Issuer: s.Issuer, Audience: audience, Keys: NewJWKS(s.JWKSURL, client, 30*time.Second)})
}

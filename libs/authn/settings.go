package authn

import "time"

// Settings are the variables a resource service reads to trust the auth
// service; embed it in the service's settings struct.
type Settings struct {
	Issuer string `env:"STRATA_AUTH_ISSUER" envDefault:"https://localhost:8441"`
	// JWKSURL is on auth's internal (mTLS) listener; with several auth
	// replicas, a comma-separated list of their JWKS URLs.
	JWKSURL string `env:"STRATA_AUTH_JWKS_URL" envDefault:"https://127.0.0.1:9441/.well-known/jwks.json"`
}

// NewServiceValidator builds the validator of a resource service named
// audience. auth is the service's resilient mTLS client for the auth service
// (kit.Client("auth", ...)), so a down auth service opens a breaker instead
// of stalling requests, while cached keys keep validating meanwhile.
func NewServiceValidator(s Settings, audience string, auth Doer) (*Validator, error) {
	return NewValidator(Config{Issuer: s.Issuer, Audience: audience, Keys: NewJWKS(s.JWKSURL, auth, 30*time.Second)})
}

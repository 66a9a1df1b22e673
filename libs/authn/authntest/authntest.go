// Package authntest mints access tokens for tests of components that sit
// behind authn (the signing and validation code is the real one; only the
// key lives in memory instead of the auth service).
package authntest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/strata-ref/strata/libs/authn"
)

// IssuerURL is the issuer of test tokens.
const IssuerURL = "https://auth.test"

// Issuer signs ES256 access tokens and serves its public key.
type Issuer struct {
	Private jose.JSONWebKey
	Public  jose.JSONWebKey
}

// NewIssuer makes a fresh signing key.
func NewIssuer(t testing.TB) *Issuer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	priv := jose.JSONWebKey{Key: k, KeyID: hex.EncodeToString(id[:]), Algorithm: string(jose.ES256), Use: "sig"}
	return &Issuer{Private: priv, Public: priv.Public()}
}

// Token signs c, filling iss, iat, nbf, exp (5 minutes) and jti when unset.
func (i *Issuer) Token(t testing.TB, c authn.Claims) string {
	t.Helper()
	now := time.Now()
	if c.Issuer == "" {
		c.Issuer = IssuerURL
	}
	if c.IssuedAt == nil {
		c.IssuedAt = jwt.NewNumericDate(now)
	}
	if c.NotBefore == nil {
		c.NotBefore = jwt.NewNumericDate(now)
	}
	if c.Expiry == nil {
		c.Expiry = jwt.NewNumericDate(now.Add(5 * time.Minute))
	}
	if c.ID == "" {
		var b [12]byte
		_, _ = rand.Read(b[:])
		c.ID = hex.EncodeToString(b[:])
	}
	tok, err := authn.Sign(i.Private, c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// Key implements authn.KeySource.
func (i *Issuer) Key(_ context.Context, kid string) (*jose.JSONWebKey, error) {
	if kid != i.Public.KeyID {
		return nil, authn.ErrUnknownKey
	}
	k := i.Public
	return &k, nil
}

// Validator returns a validator for audience that trusts this issuer.
func (i *Issuer) Validator(t testing.TB, audience string) *authn.Validator {
	t.Helper()
	v, err := authn.NewValidator(authn.Config{Issuer: IssuerURL, Audience: audience, Keys: i})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// JWKS returns the public key set as the auth service publishes it.
func (i *Issuer) JWKS() jose.JSONWebKeySet {
	return jose.JSONWebKeySet{Keys: []jose.JSONWebKey{i.Public}}
}

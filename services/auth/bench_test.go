package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net/url"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/strata-ref/strata/libs/authn"
	"github.com/strata-ref/strata/libs/mtls"
)

type staticKey struct{ k jose.JSONWebKey }

func (s staticKey) Key(context.Context, string) (*jose.JSONWebKey, error) { return &s.k, nil }

// BenchmarkJWTVerifyES256 is what every resource service pays per request
// for the stateless check: libs/authn validating one of our ES256 access
// tokens (key already cached).
//
//	go test -run '^$' -bench JWTVerify .
func BenchmarkJWTVerifyES256(b *testing.B) {
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	key := jose.JSONWebKey{Key: priv, KeyID: "k1", Algorithm: "ES256", Use: "sig"}
	now := time.Now()
	tok, err := authn.Sign(key, authn.Claims{Claims: jwt.Claims{Issuer: "https://127.0.0.1:8441", Subject: "alice", Audience: jwt.Audience{"ledger"},
		Expiry: jwt.NewNumericDate(now.Add(10 * time.Minute)), IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now), ID: "j"},
		SessionID: "s", Roles: []string{"customer"}, Region: "eu"})
	if err != nil {
		b.Fatal(err)
	}
	cfg := authn.Config{Issuer: "https://127.0.0.1:8441", Audience: "ledger", Keys: staticKey{key.Public()}}
	ctx := context.Background()
	// full: a token the validator has not seen (parse, ECDSA P-256 verify,
	// claims); cached: the same token again (libs/authn keeps verified
	// tokens until they expire).
	b.Run("full", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			v, _ := authn.NewValidator(cfg)
			if _, err := v.Validate(ctx, tok); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cached", func(b *testing.B) {
		v, _ := authn.NewValidator(cfg)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.Validate(ctx, tok); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkTokenIssuance measures access tokens issued per second by the
// running service: client credentials over the internal mTLS listener
// (each one authenticates the client, saves the token record in Postgres
// and signs an ES256 JWT).
//
//	go test -run '^$' -bench TokenIssuance .
func BenchmarkTokenIssuance(b *testing.B) {
	h := start(b) // once: sub-benchmarks run repeatedly against the same service
	endpoint := "https://" + h.svc.Internal + "/oauth2/token"
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {"loadtest"}}.Encode()
	b.Run("client_credentials", func(b *testing.B) {
		b.SetParallelism(4)
		began := time.Now()
		b.RunParallel(func(pb *testing.PB) {
			c := h.st.InternalClient(b, "loadtest", mtls.ID("auth"))
			for pb.Next() {
				status, tr := postTokenRaw(b, c, endpoint, form)
				if status != 200 || tr.AccessToken == "" {
					b.Errorf("status %d", status)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/time.Since(began).Seconds(), "tokens/s")
	})
}

package authn_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/strata-ref/strata/libs/authn"
	"github.com/strata-ref/strata/libs/authn/authntest"
)

// jwksServer publishes iss's keys and counts fetches.
func jwksServer(t *testing.T, iss *authntest.Issuer) (*httptest.Server, *atomic.Int64) {
	var fetches atomic.Int64
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		_ = json.NewEncoder(w).Encode(iss.JWKS())
	}))
	t.Cleanup(srv.Close)
	return srv, &fetches
}

// protected serves GET /thing behind the middleware for audience "ledger".
func protected(t *testing.T, keys authn.KeySource) *httptest.Server {
	v, err := authn.NewValidator(authn.Config{Issuer: authntest.IssuerURL, Audience: "ledger", Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /thing", v.Middleware(slog.New(slog.NewJSONHandler(io.Discard, nil)))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := authn.FromContext(r.Context())
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"sub": p.Subject, "sid": p.SessionID, "act": p.Actor})
	})))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func call(t *testing.T, url string, headers ...string) (int, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url+"/thing", nil)
	for _, h := range headers {
		req.Header.Add("Authorization", h)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header
}

func b64(v any) string {
	var b []byte
	switch x := v.(type) {
	case []byte:
		b = x
	case string:
		b = []byte(x)
	default:
		b, _ = json.Marshal(v)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func claims(mod func(*authn.Claims)) authn.Claims {
	now := time.Now()
	c := authn.Claims{Claims: jwt.Claims{Issuer: authntest.IssuerURL, Subject: "alice", Audience: jwt.Audience{"ledger"},
		Expiry: jwt.NewNumericDate(now.Add(5 * time.Minute)), IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now)},
		SessionID: "sid-1", Roles: []string{"customer"}, Region: "eu"}
	if mod != nil {
		mod(&c)
	}
	return c
}

// signWith signs payload with any key and header, bypassing authn.Sign.
func signWith(t *testing.T, alg jose.SignatureAlgorithm, key any, kid, typ string, extra map[jose.HeaderKey]any, c authn.Claims) string {
	opts := (&jose.SignerOptions{}).WithType(jose.ContentType(typ)).WithHeader("kid", kid)
	for k, v := range extra {
		opts = opts.WithHeader(k, v)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(s).Claims(c).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestNegativeMatrix(t *testing.T) {
	iss := authntest.NewIssuer(t)
	srv := protected(t, iss)
	kid := iss.Public.KeyID
	attacker, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	pubJSON, _ := json.Marshal(iss.Public)
	hs256 := func() string { // HMAC keyed with the issuer's public key: the classic confusion
		h := b64(map[string]string{"alg": "HS256", "typ": "at+jwt", "kid": kid})
		p := b64(claims(nil))
		m := hmac.New(sha256.New, pubJSON)
		m.Write([]byte(h + "." + p))
		return h + "." + p + "." + b64(m.Sum(nil))
	}()
	valid := iss.Token(t, claims(nil))
	parts := strings.Split(valid, ".")
	attackerJWK := jose.JSONWebKey{Key: attacker.Public(), KeyID: "evil", Algorithm: "ES256"}

	v := iss.Validator(t, "ledger")
	cases := []struct {
		name  string
		token string
	}{
		{"alg none", b64(map[string]string{"alg": "none", "typ": "at+jwt", "kid": kid}) + "." + b64(claims(nil)) + "."},
		{"HS256 signed with the public key", hs256},
		{"algorithm not allowed (ES384)", signWith(t, jose.ES384, p384, kid, "at+jwt", nil, claims(nil))},
		{"exp missing", signWith(t, jose.ES256, iss.Private.Key, kid, "at+jwt", nil, claims(func(c *authn.Claims) { c.Expiry = nil }))},
		{"exp past", iss.Token(t, claims(func(c *authn.Claims) { c.Expiry = jwt.NewNumericDate(time.Now().Add(-2 * time.Minute)) }))},
		{"nbf in the future", iss.Token(t, claims(func(c *authn.Claims) { c.NotBefore = jwt.NewNumericDate(time.Now().Add(2 * time.Minute)) }))},
		{"wrong iss", iss.Token(t, claims(func(c *authn.Claims) { c.Issuer = "https://evil.test" }))},
		{"wrong aud", iss.Token(t, claims(func(c *authn.Claims) { c.Audience = jwt.Audience{"analytics"} }))},
		{"missing aud", iss.Token(t, claims(func(c *authn.Claims) { c.Audience = nil }))},
		{"typ JWT (an ID token)", signWith(t, jose.ES256, iss.Private.Key, kid, "JWT", nil, claims(nil))},
		{"no typ", func() string {
			s, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: iss.Private}, nil)
			tok, _ := jwt.Signed(s).Claims(claims(nil)).Serialize()
			return tok
		}()},
		{"signed by another key, same kid", signWith(t, jose.ES256, attacker, kid, "at+jwt", nil, claims(nil))},
		{"embedded jwk header is not trusted", signWith(t, jose.ES256, attacker, "evil", "at+jwt", map[jose.HeaderKey]any{"jwk": attackerJWK}, claims(nil))},
		{"jku and x5u are ignored", signWith(t, jose.ES256, attacker, "evil", "at+jwt", map[jose.HeaderKey]any{"jku": "https://evil.test/jwks", "x5u": "https://evil.test/cert"}, claims(nil))},
		{"tampered payload", parts[0] + "." + b64(claims(func(c *authn.Claims) { c.Subject = "mallory" })) + "." + parts[2]},
		{"1 MB token", parts[0] + "." + strings.Repeat("A", 1<<20) + "." + parts[2]},
		{"garbage", "not.a.jwt"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := v.Validate(context.Background(), tc.token)
			t.Log("refused:", err)
			code, h := call(t, srv.URL, "Bearer "+tc.token)
			if code != 401 || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
				t.Fatalf("status %d, challenge %q", code, h.Get("WWW-Authenticate"))
			}
		})
	}
	t.Run("valid token passes", func(t *testing.T) {
		if code, _ := call(t, srv.URL, "Bearer "+valid); code != 200 {
			t.Fatalf("status %d", code)
		}
	})
	for name, hdrs := range map[string][]string{
		"no header":          nil,
		"Basic scheme":       {"Basic YWxpY2U6cHc="},
		"empty bearer":       {"Bearer "},
		"two headers":        {"Bearer " + valid, "Bearer " + valid},
		"token with a space": {"Bearer " + valid + " x"},
	} {
		t.Run(name, func(t *testing.T) {
			if code, _ := call(t, srv.URL, hdrs...); code != 401 {
				t.Fatalf("status %d", code)
			}
		})
	}
}

func TestLeewayIsBounded(t *testing.T) {
	iss := authntest.NewIssuer(t)
	v, err := authn.NewValidator(authn.Config{Issuer: authntest.IssuerURL, Audience: "ledger", Keys: iss, Leeway: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	tok := iss.Token(t, claims(func(c *authn.Claims) { c.Expiry = jwt.NewNumericDate(time.Now().Add(-61 * time.Second)) }))
	if _, err := v.Validate(context.Background(), tok); !errors.Is(err, authn.ErrInvalidToken) {
		t.Fatalf("token expired 61 s ago accepted with a 1 h leeway request: %v", err)
	}
	tok = iss.Token(t, claims(func(c *authn.Claims) { c.Expiry = jwt.NewNumericDate(time.Now().Add(-20 * time.Second)) }))
	if _, err := v.Validate(context.Background(), tok); err != nil {
		t.Fatalf("token expired 20 s ago refused: %v", err)
	}
}

func TestUnknownKidRefreshesJWKSOnce(t *testing.T) {
	iss := authntest.NewIssuer(t)
	jwksSrv, fetches := jwksServer(t, iss)
	jwks := authn.NewJWKS(jwksSrv.URL, jwksSrv.Client(), time.Minute)
	srv := protected(t, jwks)

	if code, _ := call(t, srv.URL, "Bearer "+iss.Token(t, claims(nil))); code != 200 {
		t.Fatalf("valid token: %d", code)
	}
	if fetches.Load() != 1 {
		t.Fatalf("fetches = %d after first token", fetches.Load())
	}
	stranger := authntest.NewIssuer(t)
	for range 5 {
		if code, _ := call(t, srv.URL, "Bearer "+stranger.Token(t, claims(nil))); code != 401 {
			t.Fatalf("unknown kid: %d", code)
		}
	}
	// The first token's fetch was within the interval: unknown kids cause no
	// further fetches until it passes.
	if fetches.Load() != 1 {
		t.Fatalf("fetches = %d; unknown kids must not hammer the issuer", fetches.Load())
	}
}

func TestRotatedKeyIsPickedUp(t *testing.T) {
	old := authntest.NewIssuer(t)
	next := authntest.NewIssuer(t)
	current := old
	var fetches atomic.Int64
	jwksSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{old.Public}}
		if current == next {
			set.Keys = append(set.Keys, next.Public) // published before it signs
		}
		_ = json.NewEncoder(w).Encode(set)
	}))
	t.Cleanup(jwksSrv.Close)
	jwks := authn.NewJWKS(jwksSrv.URL, jwksSrv.Client(), time.Nanosecond)
	srv := protected(t, jwks)
	if code, _ := call(t, srv.URL, "Bearer "+old.Token(t, claims(nil))); code != 200 {
		t.Fatal(code)
	}
	current = next
	if code, _ := call(t, srv.URL, "Bearer "+next.Token(t, claims(nil))); code != 200 {
		t.Fatalf("token from the rotated key: %d", code)
	}
	if code, _ := call(t, srv.URL, "Bearer "+old.Token(t, claims(nil))); code != 200 {
		t.Fatalf("token from the old key while still published: %d", code)
	}
}

func TestHugeTokenUsesBoundedMemory(t *testing.T) {
	iss := authntest.NewIssuer(t)
	v := iss.Validator(t, "ledger")
	huge := strings.Repeat("A", 1<<20)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 10 {
		if _, err := v.Validate(context.Background(), huge); err == nil {
			t.Fatal("accepted")
		}
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<10 {
		t.Fatalf("10 validations of a 1 MB token allocated %d bytes", grew)
	}
}

func TestPrincipalCarriesClaims(t *testing.T) {
	iss := authntest.NewIssuer(t)
	v := iss.Validator(t, "analytics")
	tok := iss.Token(t, claims(func(c *authn.Claims) {
		c.Audience = jwt.Audience{"analytics"}
		c.Act = &authn.Actor{Sub: "spiffe://strata.local/ledger"}
		c.Scope = "events:write activity:read"
	}))
	p, err := v.Validate(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if p.Subject != "alice" || p.SessionID != "sid-1" || p.Actor != "spiffe://strata.local/ledger" || !p.HasRole("customer") ||
		!p.HasScope("activity:read") || p.Region != "eu" || p.Token != tok {
		t.Fatalf("principal = %+v", p)
	}
	if strings.Contains(p.String(), tok) {
		t.Fatal("String() leaks the token")
	}
}

func TestCachedTokenStillExpires(t *testing.T) {
	iss := authntest.NewIssuer(t)
	now := time.Now()
	v, err := authn.NewValidator(authn.Config{Issuer: authntest.IssuerURL, Audience: "ledger", Keys: iss, Leeway: time.Second,
		Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	tok := iss.Token(t, claims(func(c *authn.Claims) { c.Expiry = jwt.NewNumericDate(now.Add(time.Minute)) }))
	for range 2 { // the second validation is served from the cache
		if _, err := v.Validate(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
	}
	now = now.Add(2 * time.Minute)
	if _, err := v.Validate(context.Background(), tok); !errors.Is(err, authn.ErrInvalidToken) {
		t.Fatalf("expired token served from the cache: %v", err)
	}
}

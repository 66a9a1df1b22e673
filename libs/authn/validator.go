package authn

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// MaxTokenBytes bounds the size of a token accepted for parsing.
const MaxTokenBytes = 8 << 10

// MaxLeeway is the most clock skew RFC 8725-minded validation tolerates.
const MaxLeeway = 60 * time.Second

// Algorithms is the allowlist of JWS algorithms.
var Algorithms = []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA}

// ErrInvalidToken is wrapped by every validation failure; the message
// after it is for logs, never for the client.
var ErrInvalidToken = errors.New("invalid access token")

// KeySource finds a verification key by key id. JWKS implements it.
type KeySource interface {
	Key(ctx context.Context, kid string) (*jose.JSONWebKey, error)
}

// Config configures a Validator.
type Config struct {
	Issuer   string // exact "iss"
	Audience string // this service's name; "aud" must include it
	Keys     KeySource
	Leeway   time.Duration // clock skew allowance, capped at MaxLeeway [30 s]
	Now      func() time.Time
}

// Validator validates access tokens for one audience.
type Validator struct {
	cfg   Config
	cache verified
}

// NewValidator checks cfg and returns a Validator.
func NewValidator(cfg Config) (*Validator, error) {
	if cfg.Issuer == "" || cfg.Audience == "" || cfg.Keys == nil {
		return nil, errors.New("authn: issuer, audience and keys are required")
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = 30 * time.Second
	}
	cfg.Leeway = min(cfg.Leeway, MaxLeeway)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Validator{cfg: cfg, cache: verified{m: map[[32]byte]verifiedToken{}}}, nil
}

// Run keeps the validator's keys fresh in the background until ctx ends,
// when its key source refreshes on a schedule (a JWKS does); otherwise it
// returns at once. Services start it beside their listeners.
func (v *Validator) Run(ctx context.Context) {
	if r, ok := v.cfg.Keys.(interface{ Run(context.Context) }); ok {
		r.Run(ctx)
	}
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidToken, fmt.Sprintf(format, args...))
}

// Validate returns the principal of a valid token.
func (v *Validator) Validate(ctx context.Context, raw string) (Principal, error) {
	if len(raw) > MaxTokenBytes {
		return Principal{}, invalid("token of %d bytes", len(raw))
	}
	key := sha256.Sum256([]byte(raw))
	if e, ok := v.cache.get(key); ok {
		// A token is immutable: once its signature and claims checked out,
		// only time, or its key leaving the issuer's set, can make it invalid.
		if v.cfg.Now().After(e.p.ExpiresAt.Add(v.cfg.Leeway)) {
			return Principal{}, invalid("claims: token is expired (exp)")
		}
		if _, err := v.cfg.Keys.Key(ctx, e.kid); err != nil {
			v.cache.drop(key)
			return Principal{}, invalid("key %q: %v", e.kid, err)
		}
		return e.p, nil
	}
	p, kid, err := v.validate(ctx, raw)
	if err == nil {
		v.cache.put(key, verifiedToken{p: p, kid: kid})
	}
	return p, err
}

// validate verifies raw and returns its principal and the kid that signed it.
func (v *Validator) validate(ctx context.Context, raw string) (Principal, string, error) {
	tok, err := jwt.ParseSigned(raw, Algorithms)
	if err != nil {
		return Principal{}, "", invalid("parse: %v", err)
	}
	if len(tok.Headers) != 1 {
		return Principal{}, "", invalid("expected one signature")
	}
	h := tok.Headers[0]
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); !isAccessTokenType(typ) {
		return Principal{}, "", invalid("typ %q is not %s", typ, TokenType)
	}
	if h.KeyID == "" {
		return Principal{}, "", invalid("no kid")
	}
	key, err := v.cfg.Keys.Key(ctx, h.KeyID)
	if err != nil {
		return Principal{}, "", invalid("key %q: %v", h.KeyID, err)
	}
	if key.Algorithm != "" && key.Algorithm != h.Algorithm {
		return Principal{}, "", invalid("alg %s does not match key %q (%s)", h.Algorithm, h.KeyID, key.Algorithm)
	}
	var c Claims
	// Only the key from our JWKS verifies; a jwk/jku/x5u/x5c header is ignored.
	if err := tok.Claims(key.Key, &c); err != nil {
		return Principal{}, "", invalid("signature: %v", err)
	}
	if c.Expiry == nil {
		return Principal{}, "", invalid("no exp")
	}
	err = c.Claims.ValidateWithLeeway(jwt.Expected{Issuer: v.cfg.Issuer, AnyAudience: jwt.Audience{v.cfg.Audience}, Time: v.cfg.Now()}, v.cfg.Leeway)
	if err != nil {
		return Principal{}, "", invalid("claims: %v", err)
	}
	if len(c.Audience) == 0 {
		return Principal{}, "", invalid("no aud")
	}
	if c.Subject == "" {
		return Principal{}, "", invalid("no sub")
	}
	return principalFrom(c, raw), h.KeyID, nil
}

func isAccessTokenType(typ string) bool {
	t := strings.ToLower(typ)
	return t == TokenType || t == "application/"+TokenType
}

// verified caches the principals of tokens whose signature was verified, so
// a client reusing its token pays for ECDSA verification once, not on every
// request. Each entry remembers its kid, so a key removed from the issuer's
// set takes its cached tokens with it. It is bounded; when full, an
// arbitrary entry is evicted.
type verified struct {
	mu sync.RWMutex
	m  map[[32]byte]verifiedToken
}

type verifiedToken struct {
	p   Principal
	kid string
}

const verifiedMax = 10000

func (c *verified) get(k [32]byte) (verifiedToken, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, ok := c.m[k]
	return e, ok
}

func (c *verified) put(k [32]byte, e verifiedToken) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= verifiedMax {
		for old := range c.m {
			delete(c.m, old)
			break
		}
	}
	c.m[k] = e
}

func (c *verified) drop(k [32]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, k)
}

package session

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"regexp"
	"time"

	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/failsafe-go/failsafe-go/timeout"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/singleflight"

	"github.com/strata-ref/strata/libs/resilience"
)

// Config tunes the cache-aside service. Zero fields take the defaults.
type Config struct {
	TTL          time.Duration // cache entry lifetime [5 min], never past the session's expiry
	Jitter       float64       // ± fraction of TTL [0.1], so entries written together do not expire together
	NegativeTTL  time.Duration // lifetime of "no such session" entries [5 s]
	CacheTimeout time.Duration // one Redis call [100 ms]; slower is a failure
	StoreTimeout time.Duration // one Postgres call [2 s]
	// SecondDelete is when a revoke deletes the cache key again, closing the
	// race with a reader that loaded the session just before the revoke
	// committed [1 s]; see docs/cache-aside.md.
	SecondDelete time.Duration
	Now          func() time.Time
	// Faults inject latency or errors into the "redis" and "postgres" calls
	// (teaching toggles, dev only; nil in production).
	Faults *resilience.Faults
}

func (c *Config) defaults() {
	if c.TTL == 0 {
		c.TTL = 5 * time.Minute
	}
	if c.Jitter == 0 {
		c.Jitter = 0.1
	}
	if c.NegativeTTL == 0 {
		c.NegativeTTL = 5 * time.Second
	}
	if c.CacheTimeout == 0 {
		c.CacheTimeout = 100 * time.Millisecond
	}
	if c.StoreTimeout == 0 {
		c.StoreTimeout = 2 * time.Second
	}
	if c.SecondDelete == 0 {
		c.SecondDelete = time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Observer receives the cache outcomes worth a metric.
type Observer interface {
	CacheResult(result string) // hit, miss, negative_hit, bypass, error
	Collapsed()                // a miss that shared another caller's database read
}

// Service serves sessions cache-aside: Redis first, Postgres on a miss, and
// writes to Postgres followed by deleting the Redis key.
type Service struct {
	store Store
	cache Cache
	cfg   Config
	obs   Observer
	log   *slog.Logger
	res   *resilience.Metrics

	cacheCalls failsafe.Executor[any] // timeout inside a breaker, for Redis
	storeCalls failsafe.Executor[any] // timeout inside a breaker, for Postgres
	cacheCB    circuitbreaker.CircuitBreaker[any]
	flight     singleflight.Group
	// retry holds keys whose invalidation failed; Run deletes them once the
	// cache answers again, so Redis never keeps serving a revoked session.
	retry chan string
}

// NewService wires the cache-aside service.
func NewService(store Store, cache Cache, cfg Config, obs Observer, res *resilience.Metrics, log *slog.Logger) *Service {
	cfg.defaults()
	cacheCB := resilience.NewBreaker[any](resilience.BreakerConfig{Dependency: "redis", MinExecutions: 5, Delay: 2 * time.Second}, res, log)
	storeCB := resilience.NewBreaker[any](resilience.BreakerConfig{Dependency: "postgres",
		IsFailure: func(err error) bool { return resilience.DefaultIsFailure(err) && !errors.Is(err, ErrNotFound) }}, res, log)
	return &Service{
		store: store, cache: cache, cfg: cfg, obs: obs, log: log, res: res,
		cacheCalls: failsafe.With[any](cacheCB, timeout.New[any](cfg.CacheTimeout)),
		storeCalls: failsafe.With[any](storeCB, timeout.New[any](cfg.StoreTimeout)),
		cacheCB:    cacheCB,
		retry:      make(chan string, 4096),
	}
}

var sidPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)

// Get is the read path. 1) Redis; a hit returns. 2) On a miss, one Postgres
// read per sid however many callers miss at once (singleflight). 3) Write
// the result back with a TTL: the session, or a short negative entry so a
// flood of unknown sids never reaches Postgres. If Redis is down or slow its
// breaker opens and reads go straight to Postgres.
func (s *Service) Get(ctx context.Context, sid string) (Session, error) {
	if !sidPattern.MatchString(sid) {
		return Session{}, ErrNotFound
	}
	if e, found, ok := s.cacheGet(ctx, sid); ok && found {
		return s.fromEntry(e, true)
	} else if ok {
		s.obs.CacheResult("miss")
	}
	v, err, shared := s.flight.Do(sid, func() (any, error) {
		// Detached from the first caller's cancellation: others wait on it.
		ctx := context.WithoutCancel(ctx)
		// Look again: a flight that finished between our miss and now has
		// filled the cache, and a second database read would be wasted.
		if e, found, ok := s.cacheGet(ctx, sid); ok && found {
			return s.fromEntry(e, false)
		}
		return s.load(ctx, sid)
	})
	if shared {
		s.obs.Collapsed()
	}
	if err != nil {
		return Session{}, err
	}
	return v.(Session), nil
}

func (s *Service) fromEntry(e Entry, count bool) (Session, error) {
	switch {
	case e.Negative:
		if count {
			s.obs.CacheResult("negative_hit")
		}
		return Session{}, ErrNotFound
	case count:
		s.obs.CacheResult("hit")
	}
	if !e.Session.Alive(s.cfg.Now()) {
		return Session{}, ErrNotFound // the entry outlived the session by less than its TTL
	}
	return e.Session, nil
}

// load reads Postgres and fills the cache.
func (s *Service) load(ctx context.Context, sid string) (Session, error) {
	v, err := s.storeCalls.WithContext(ctx).GetWithExecution(func(e failsafe.Execution[any]) (any, error) {
		if err := s.cfg.Faults.Inject(e.Context(), "postgres"); err != nil {
			return nil, err
		}
		return s.store.Get(e.Context(), sid)
	})
	switch {
	case errors.Is(err, ErrNotFound):
		s.cacheSet(ctx, sid, Entry{Negative: true}, s.cfg.NegativeTTL)
		return Session{}, ErrNotFound
	case err != nil:
		s.log.WarnContext(ctx, "session store read failed", "err", err)
		return Session{}, fmt.Errorf("get session: %w", ErrUnavailable)
	}
	sess := v.(Session)
	ttl := s.jittered(s.cfg.TTL)
	if left := sess.ExpiresAt.Sub(s.cfg.Now()); left < ttl {
		ttl = left
	}
	if ttl > 0 {
		s.cacheSet(ctx, sid, Entry{Session: sess}, ttl)
	}
	return sess, nil
}

// Create writes Postgres, then deletes the key (a negative entry for a
// guessed sid must not hide the new session).
func (s *Service) Create(ctx context.Context, n New) (Session, error) {
	now := s.cfg.Now().UTC()
	if n.UserID == "" || len(n.UserID) > 128 || len(n.FamilyID) > 128 || !n.ExpiresAt.After(now) {
		return Session{}, ErrInvalid
	}
	if n.AuthTime.IsZero() {
		n.AuthTime = now
	}
	sess := Session{SID: NewSID(), UserID: n.UserID, FamilyID: n.FamilyID, AuthTime: n.AuthTime.UTC(),
		CreatedAt: now, LastSeenAt: now, ExpiresAt: n.ExpiresAt.UTC()}
	if err := s.write(ctx, func(ctx context.Context) error { return s.store.Create(ctx, sess) }); err != nil {
		return Session{}, fmt.Errorf("create session: %w", err)
	}
	s.invalidate(ctx, sess.SID)
	return sess, nil
}

// Touch extends a live session (sliding expiry), then deletes the key.
func (s *Service) Touch(ctx context.Context, sid string, expires time.Time) (Session, error) {
	if !sidPattern.MatchString(sid) {
		return Session{}, ErrNotFound
	}
	now := s.cfg.Now().UTC()
	if !expires.After(now) {
		return Session{}, ErrInvalid
	}
	var out Session
	err := s.write(ctx, func(ctx context.Context) error {
		var err error
		out, err = s.store.Touch(ctx, sid, now, expires.UTC())
		return err
	})
	if err != nil {
		return Session{}, fmt.Errorf("touch session: %w", err)
	}
	s.invalidate(ctx, sid)
	return out, nil
}

// Revoke ends a session: Postgres first, then the key is deleted now and
// once more after SecondDelete (see docs/cache-aside.md for the race).
func (s *Service) Revoke(ctx context.Context, sid string) error {
	if !sidPattern.MatchString(sid) {
		return ErrNotFound
	}
	if err := s.write(ctx, func(ctx context.Context) error { return s.store.Revoke(ctx, sid, s.cfg.Now().UTC()) }); err != nil {
		return fmt.Errorf("revoke session: %w", err)
	}
	s.invalidate(ctx, sid)
	detached := trace.ContextWithSpanContext(context.Background(), trace.SpanContextFromContext(ctx))
	time.AfterFunc(s.cfg.SecondDelete, func() { s.invalidate(detached, sid) })
	return nil
}

// List returns a user's live sessions from the source of truth.
func (s *Service) List(ctx context.Context, userID string) ([]Session, error) {
	v, err := s.storeCalls.WithContext(ctx).GetWithExecution(func(e failsafe.Execution[any]) (any, error) {
		return s.store.ListByUser(e.Context(), userID)
	})
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", ErrUnavailable)
	}
	return v.([]Session), nil
}

// write runs a Postgres write behind the store breaker; a failure other than
// not-found is ErrUnavailable (503 + Retry-After at the edge).
func (s *Service) write(ctx context.Context, fn func(context.Context) error) error {
	err := s.storeCalls.WithContext(ctx).RunWithExecution(func(e failsafe.Execution[any]) error { return fn(e.Context()) })
	switch {
	case err == nil, errors.Is(err, ErrNotFound):
		return err
	default:
		s.log.WarnContext(ctx, "session store write failed", "err", err)
		return ErrUnavailable
	}
}

// cacheGet reads Redis through its breaker; ok=false means the cache could
// not answer and the caller falls back to Postgres.
func (s *Service) cacheGet(ctx context.Context, sid string) (e Entry, found, ok bool) {
	type result struct {
		e     Entry
		found bool
	}
	v, err := s.cacheCalls.WithContext(ctx).GetWithExecution(func(ex failsafe.Execution[any]) (any, error) {
		if err := s.cfg.Faults.Inject(ex.Context(), "redis"); err != nil {
			return nil, err
		}
		e, found, err := s.cache.Get(ex.Context(), sid)
		return result{e, found}, err
	})
	if err != nil {
		s.bypassed(ctx, "session.cache_read", err)
		return Entry{}, false, false
	}
	r := v.(result)
	return r.e, r.found, true
}

func (s *Service) cacheSet(ctx context.Context, sid string, e Entry, ttl time.Duration) {
	err := s.cacheCalls.WithContext(ctx).RunWithExecution(func(ex failsafe.Execution[any]) error {
		return s.cache.Set(ex.Context(), sid, e, ttl)
	})
	if err != nil {
		s.bypassed(ctx, "session.cache_fill", err)
	}
}

// invalidate deletes the key; if Redis cannot be reached the key is queued
// and Run deletes it when Redis is back.
func (s *Service) invalidate(ctx context.Context, sid string) {
	err := s.cacheCalls.WithContext(ctx).RunWithExecution(func(ex failsafe.Execution[any]) error {
		return s.cache.Delete(ex.Context(), sid)
	})
	if err == nil {
		return
	}
	s.bypassed(ctx, "session.cache_invalidate", err)
	select {
	case s.retry <- sid:
	default:
		// Queue full: the entry's TTL is then the bound (docs/cache-aside.md).
		s.log.ErrorContext(ctx, "invalidation queue full; cache entry expires by TTL", "ttl", s.cfg.TTL)
	}
}

func (s *Service) bypassed(ctx context.Context, site string, err error) {
	s.obs.CacheResult("bypass")
	s.res.Fallback(site)
	if errors.Is(err, circuitbreaker.ErrOpen) {
		return // logged once, when the breaker opened
	}
	s.log.WarnContext(ctx, "cache call failed; serving from Postgres", "call_site", site, "err", err)
}

// Run retries failed invalidations until ctx ends.
func (s *Service) Run(ctx context.Context) {
	var pending []string
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case sid := <-s.retry:
			pending = append(pending, sid)
		case <-tick.C:
			kept := pending[:0]
			for _, sid := range pending {
				if err := s.cache.Delete(ctx, sid); err != nil {
					kept = append(kept, sid)
				}
			}
			pending = kept
		}
	}
}

// CacheState reports the Redis breaker state, for readiness detail and tests.
func (s *Service) CacheState() circuitbreaker.State { return s.cacheCB.State() }

func (s *Service) jittered(d time.Duration) time.Duration {
	f := 1 + s.cfg.Jitter*(2*mrand.Float64()-1)
	return time.Duration(float64(d) * f)
}

// NewSID returns a new session id: 256 random bits, base64url (43 chars).
func NewSID() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

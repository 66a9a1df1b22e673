package identity

import (
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// ThrottleConfig bounds failed sign-ins. Each failure takes a token from the
// account's bucket and from the source address's bucket; a sign-in is
// refused before the password is even checked while either is empty.
// Successful sign-ins cost nothing, so a load test signing in thousands of
// users from one address is not throttled, while guessing is.
type ThrottleConfig struct {
	AccountBurst  int           // failures allowed at once per account [5]
	AccountRefill time.Duration // one more failure allowed per [12s]
	AddressBurst  int           // failures allowed at once per address [30]
	AddressRefill time.Duration // [1s]
}

// Throttle keeps the per-account and per-address buckets in memory. One
// replica's view is enough for a teaching system; a fleet would keep them in
// Redis or Postgres.
type Throttle struct {
	cfg ThrottleConfig
	now func() time.Time

	mu       sync.Mutex
	accounts map[string]*bucket
	addrs    map[string]*bucket
	swept    time.Time
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

// NewThrottle applies defaults to cfg.
func NewThrottle(cfg ThrottleConfig, now func() time.Time) *Throttle {
	if cfg.AccountBurst == 0 {
		cfg.AccountBurst = 5
	}
	if cfg.AccountRefill == 0 {
		cfg.AccountRefill = 12 * time.Second
	}
	if cfg.AddressBurst == 0 {
		cfg.AddressBurst = 30
	}
	if cfg.AddressRefill == 0 {
		cfg.AddressRefill = time.Second
	}
	if now == nil {
		now = time.Now
	}
	return &Throttle{cfg: cfg, now: now, accounts: map[string]*bucket{}, addrs: map[string]*bucket{}}
}

// key normalises the submitted username: the bucket exists whether or not
// the user does, so throttling reveals nothing about existence.
func key(username string) string { return strings.ToLower(strings.TrimSpace(username)) }

// Allowed reports whether a sign-in for username from addr may be tried now,
// and if not, how long until it may.
func (t *Throttle) Allowed(username, addr string) (bool, time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	var wait time.Duration
	for _, b := range []*bucket{t.get(t.accounts, key(username), t.cfg.AccountBurst, t.cfg.AccountRefill, now),
		t.get(t.addrs, addr, t.cfg.AddressBurst, t.cfg.AddressRefill, now)} {
		if b.lim.TokensAt(now) < 1 {
			r := b.lim.ReserveN(now, 1)
			wait = max(wait, r.DelayFrom(now))
			r.CancelAt(now)
		}
	}
	return wait == 0, wait
}

// Failed records a failed sign-in.
func (t *Throttle) Failed(username, addr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	t.get(t.accounts, key(username), t.cfg.AccountBurst, t.cfg.AccountRefill, now).lim.AllowN(now, 1)
	t.get(t.addrs, addr, t.cfg.AddressBurst, t.cfg.AddressRefill, now).lim.AllowN(now, 1)
	t.sweep(now)
}

func (t *Throttle) get(m map[string]*bucket, k string, burst int, refill time.Duration, now time.Time) *bucket {
	b, ok := m[k]
	if !ok {
		b = &bucket{lim: rate.NewLimiter(rate.Every(refill), burst)}
		m[k] = b
	}
	b.seen = now
	return b
}

// sweep forgets buckets idle long enough to be full again, so memory stays
// bounded by the attack rate rather than growing forever.
func (t *Throttle) sweep(now time.Time) {
	if now.Sub(t.swept) < time.Minute {
		return
	}
	t.swept = now
	for _, m := range []map[string]*bucket{t.accounts, t.addrs} {
		for k, b := range m {
			if now.Sub(b.seen) > 10*time.Minute {
				delete(m, k)
			}
		}
	}
}

package identity

import (
	"context"
	"math"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// ThrottleConfig slows down password guessing without ever refusing a
// correct password:
//
//   - per account, a progressive delay: after AccountFree failures (which
//     decay, one every AccountDecay), each sign-in for that name waits
//     BaseDelay, doubling with every further failure up to MaxDelay, and
//     is then checked. The right password still signs in; a guesser gets
//     one answer per delay. A hard refusal here would let anyone keep a
//     chosen user out with a few bad attempts a minute.
//   - per client address (the socket peer, or the client a trusted proxy
//     names; see the oidc package's clientAddr), a token bucket that
//     refuses before any hashing: it protects the argon2id slots, and only
//     ever refuses the address that spent it.
//
// Successful sign-ins cost nothing, so a load test signing in thousands of
// users from one address is not throttled, while guessing is.
type ThrottleConfig struct {
	AccountFree   int           // failures per account before sign-ins are delayed [5]
	AccountDecay  time.Duration // one failure forgotten every [12s]
	BaseDelay     time.Duration // first delay [500ms], doubling per further failure
	MaxDelay      time.Duration // [4s]
	AddressBurst  int           // failures allowed at once per address [30]
	AddressRefill time.Duration // one more every [1s]
	// MaxEntries bounds each map (accounts, addresses) [100000]: about
	// 200 bytes an entry. When full, expired entries go first, then
	// arbitrary ones.
	MaxEntries int
	SweepEvery time.Duration // how often Run drops idle entries [1m]
}

// Throttle keeps the per-account and per-address state in memory. One
// replica's view is enough for a teaching system; a fleet would keep it in
// Redis or Postgres.
type Throttle struct {
	cfg ThrottleConfig
	now func() time.Time

	mu       sync.Mutex
	accounts map[string]*account
	addrs    map[string]*addrBucket
	swept    time.Time // last sweep by makeRoom
}

type account struct {
	failures float64 // decayed at read
	at       time.Time
}

type addrBucket struct {
	lim  *rate.Limiter
	seen time.Time
}

// NewThrottle applies defaults to cfg.
func NewThrottle(cfg ThrottleConfig, now func() time.Time) *Throttle {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if cfg.AccountFree == 0 {
		cfg.AccountFree = 5
	}
	def(&cfg.AccountDecay, 12*time.Second)
	def(&cfg.BaseDelay, 500*time.Millisecond)
	def(&cfg.MaxDelay, 4*time.Second)
	if cfg.AddressBurst == 0 {
		cfg.AddressBurst = 30
	}
	def(&cfg.AddressRefill, time.Second)
	if cfg.MaxEntries == 0 {
		cfg.MaxEntries = 100_000
	}
	def(&cfg.SweepEvery, time.Minute)
	if now == nil {
		now = time.Now
	}
	return &Throttle{cfg: cfg, now: now, accounts: map[string]*account{}, addrs: map[string]*addrBucket{}}
}

// key normalises the submitted username: the state exists whether or not
// the user does, so throttling reveals nothing about existence.
func key(username string) string { return strings.ToLower(strings.TrimSpace(username)) }

// ValidUsername reports whether name (normalised) can be a username at
// all: 2-63 characters of a-z 0-9 . _ -. Anything else is refused before it
// reaches the throttle's maps or the database.
func ValidUsername(name string) bool { return len(name) <= 63 && usernameRE.MatchString(name) }

func (a *account) decayed(now time.Time, every time.Duration) float64 {
	return max(0, a.failures-float64(now.Sub(a.at))/float64(every))
}

// AccountDelay is how long a sign-in for username waits before its
// password is checked.
func (t *Throttle) AccountDelay(username string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	a, ok := t.accounts[key(username)]
	if !ok {
		return 0
	}
	n := int(math.Ceil(a.decayed(t.now(), t.cfg.AccountDecay)))
	if n < t.cfg.AccountFree {
		return 0
	}
	d := t.cfg.BaseDelay << min(n-t.cfg.AccountFree, 16)
	return min(d, t.cfg.MaxDelay)
}

// AddressAllowed reports whether a sign-in from addr may be checked now,
// and if not, how long until it may.
func (t *Throttle) AddressAllowed(addr string) (bool, time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	b, ok := t.addrs[addr]
	if !ok {
		return true, 0
	}
	now := t.now()
	if b.lim.TokensAt(now) >= 1 {
		return true, 0
	}
	r := b.lim.ReserveN(now, 1)
	wait := r.DelayFrom(now)
	r.CancelAt(now)
	return false, wait
}

// Failed records a failed sign-in for username (if it can be a username)
// from addr.
func (t *Throttle) Failed(username, addr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if name := key(username); ValidUsername(name) {
		a, ok := t.accounts[name]
		if !ok {
			t.makeRoom(now)
			a = &account{}
			t.accounts[name] = a
		}
		a.failures = a.decayed(now, t.cfg.AccountDecay) + 1
		a.at = now
	}
	b, ok := t.addrs[addr]
	if !ok {
		t.makeRoom(now)
		b = &addrBucket{lim: rate.NewLimiter(rate.Every(t.cfg.AddressRefill), t.cfg.AddressBurst)}
		t.addrs[addr] = b
	}
	b.lim.AllowN(now, 1)
	b.seen = now
}

// Succeeded forgets the account's failures: its owner is back.
func (t *Throttle) Succeeded(username string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.accounts, key(username))
}

// Len is the number of accounts and addresses held (tests, metrics).
func (t *Throttle) Len() (accounts, addrs int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.accounts), len(t.addrs)
}

// Run sweeps idle entries every SweepEvery until ctx ends, so memory
// follows the current attack rate even when no failure comes in.
func (t *Throttle) Run(ctx context.Context) {
	tick := time.NewTicker(t.cfg.SweepEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			t.Sweep()
		}
	}
}

// Sweep drops the entries that hold nothing any more: accounts whose
// failures have decayed to zero, addresses whose bucket is full again.
func (t *Throttle) Sweep() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sweep(t.now())
}

func (t *Throttle) sweep(now time.Time) {
	for k, a := range t.accounts {
		if a.decayed(now, t.cfg.AccountDecay) == 0 {
			delete(t.accounts, k)
		}
	}
	refill := time.Duration(t.cfg.AddressBurst) * t.cfg.AddressRefill
	for k, b := range t.addrs {
		if now.Sub(b.seen) > refill {
			delete(t.addrs, k)
		}
	}
}

// makeRoom keeps both maps under MaxEntries before an insert: idle entries
// go first (at most one sweep a second: a sweep walks the whole map); if
// the maps are still full, arbitrary ones (Go's map order is random), so an
// attacker who floods names loses their own entries too.
func (t *Throttle) makeRoom(now time.Time) {
	if len(t.accounts) < t.cfg.MaxEntries && len(t.addrs) < t.cfg.MaxEntries {
		return
	}
	if now.Sub(t.swept) >= time.Second {
		t.swept = now
		t.sweep(now)
	}
	for k := range t.accounts {
		if len(t.accounts) < t.cfg.MaxEntries {
			break
		}
		delete(t.accounts, k)
	}
	for k := range t.addrs {
		if len(t.addrs) < t.cfg.MaxEntries {
			break
		}
		delete(t.addrs, k)
	}
}

package identity

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"
)

// Authenticator checks a username and password.
type Authenticator struct {
	store    Store
	throttle *Throttle
	// slots bounds the argon2id computations running at once: each holds
	// DefaultParams.Memory (19 MiB) and a CPU for tens of milliseconds, so
	// a burst of sign-ins (or of guesses) would otherwise turn into a heap
	// of 19 MiB times the burst and get the process killed at its memory
	// limit. More at once than there are CPUs gains nothing.
	slots chan struct{}

	dummyOnce sync.Once
	dummy     string
}

// NewAuthenticator returns an Authenticator over store.
func NewAuthenticator(store Store, throttle *Throttle) *Authenticator {
	return &Authenticator{store: store, throttle: throttle, slots: make(chan struct{}, max(2, runtime.GOMAXPROCS(0)))}
}

// MaxHashWait bounds how long a sign-in waits for a hashing slot before it
// is refused with ErrBusy.
const MaxHashWait = 2 * time.Second

// verify runs VerifyPassword in one of the slots, or gives ErrBusy when
// none frees up within MaxHashWait (or ctx ends first).
func (a *Authenticator) verify(ctx context.Context, password, hash string) (bool, error) {
	t := time.NewTimer(MaxHashWait)
	defer t.Stop()
	select {
	case a.slots <- struct{}{}:
	case <-t.C:
		return false, ErrBusy
	case <-ctx.Done():
		return false, ErrBusy
	}
	defer func() { <-a.slots }()
	return VerifyPassword(password, hash)
}

// dummyHash is a real argon2id hash of a random password: verifying against
// it costs what verifying a real user's password costs, so the response
// time does not tell an attacker whether the user exists.
func (a *Authenticator) dummyHash() string {
	a.dummyOnce.Do(func() {
		h, err := HashPassword("no user has this password", DefaultParams)
		if err != nil {
			panic(err) // crypto/rand failed: nothing sensible is left to do
		}
		a.dummy = h
	})
	return a.dummy
}

// Warm computes the dummy hash ahead of the first sign-in.
func (a *Authenticator) Warm() { a.dummyHash() }

// Login returns the user whose credentials these are. Unknown user, wrong
// password and disabled account all give ErrBadCredentials after the same
// work. An address that failed too often gets ErrThrottled (with the
// wait) before any hashing; an account that failed too often is only
// slowed down (the wait happens here, then the password is checked: the
// right one still signs in). ErrBusy (with a wait) means too many
// sign-ins are being checked at once.
func (a *Authenticator) Login(ctx context.Context, username, password, addr string) (User, time.Duration, error) {
	if ok, wait := a.throttle.AddressAllowed(addr); !ok {
		return User{}, wait, ErrThrottled
	}
	name := key(username)
	if !ValidUsername(name) { // cannot exist: no lookup, no hashing, no account state
		a.throttle.Failed(name, addr)
		return User{}, 0, ErrBadCredentials
	}
	if d := a.throttle.AccountDelay(name); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return User{}, time.Second, ErrBusy
		}
	}
	u, err := a.store.UserByUsername(ctx, name)
	hash := u.PasswordHash
	if errors.Is(err, ErrNotFound) {
		hash = a.dummyHash()
	} else if err != nil {
		return User{}, 0, fmt.Errorf("login: %w", err)
	}
	ok, verr := a.verify(ctx, password, hash)
	if errors.Is(verr, ErrBusy) {
		return User{}, time.Second, ErrBusy // not a failed attempt: nothing was checked
	}
	if err != nil || verr != nil || !ok || u.Disabled {
		a.throttle.Failed(name, addr)
		return User{}, 0, ErrBadCredentials
	}
	a.throttle.Succeeded(name)
	return u, 0, nil
}

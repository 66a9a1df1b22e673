package identity

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Authenticator checks a username and password.
type Authenticator struct {
	store    Store
	throttle *Throttle

	dummyOnce sync.Once
	dummy     string
}

// NewAuthenticator returns an Authenticator over store.
func NewAuthenticator(store Store, throttle *Throttle) *Authenticator {
	return &Authenticator{store: store, throttle: throttle}
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
// work; too many failures give ErrThrottled (with the wait) before any.
func (a *Authenticator) Login(ctx context.Context, username, password, addr string) (User, time.Duration, error) {
	if ok, wait := a.throttle.Allowed(username, addr); !ok {
		return User{}, wait, ErrThrottled
	}
	u, err := a.store.UserByUsername(ctx, key(username))
	hash := u.PasswordHash
	if errors.Is(err, ErrNotFound) {
		hash = a.dummyHash()
	} else if err != nil {
		return User{}, 0, fmt.Errorf("login: %w", err)
	}
	ok, verr := VerifyPassword(password, hash)
	if err != nil || verr != nil || !ok || u.Disabled {
		a.throttle.Failed(username, addr)
		return User{}, 0, ErrBadCredentials
	}
	return u, 0, nil
}

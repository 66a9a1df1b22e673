package identity

import (
	"context"
	"errors"
	"testing"
	"time"
)

// users is the one Store method Login needs; the rest stay nil.
type users struct {
	Store
	byName map[string]User
}

func (u users) UserByUsername(_ context.Context, name string) (User, error) {
	if x, ok := u.byName[name]; ok {
		return x, nil
	}
	return User{}, ErrNotFound
}

// A sign-in waits for a hashing slot; when none frees up it is refused as
// busy (retry later), which is not a failed attempt against the account.
func TestLoginWaitsForAHashingSlot(t *testing.T) {
	hash, err := HashPassword("correct horse", DefaultParams)
	if err != nil {
		t.Fatal(err)
	}
	a := NewAuthenticator(users{byName: map[string]User{"ada": {ID: "u1", Username: "ada", PasswordHash: hash}}},
		NewThrottle(ThrottleConfig{AccountFree: 1}, nil))
	for range cap(a.slots) { // every slot taken
		a.slots <- struct{}{}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, wait, err := a.Login(ctx, "ada", "correct horse", "192.0.2.1")
	if !errors.Is(err, ErrBusy) || wait <= 0 {
		t.Fatalf("with every slot taken: %v (wait %v), want ErrBusy with a wait", err, wait)
	}
	if d := time.Since(start); d > MaxHashWait {
		t.Fatalf("refused after %v, past the %v bound", d, MaxHashWait)
	}
	// A slot frees up while the next sign-in waits: it goes through. Two
	// busy refusals in a row did not spend the account's one free failure
	// (AccountFree 1).
	_, _, _ = a.Login(ctx, "ada", "correct horse", "192.0.2.1")
	go func() { time.Sleep(20 * time.Millisecond); <-a.slots }()
	u, _, err := a.Login(context.Background(), "ada", "correct horse", "192.0.2.1")
	if err != nil || u.ID != "u1" {
		t.Fatalf("after a slot freed: %v, %+v", err, u)
	}
}

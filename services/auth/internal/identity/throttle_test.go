package identity

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Failures slow an account down, progressively and up to a bound; they
// never refuse it, and they decay.
func TestAccountDelayIsProgressiveAndBounded(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	th := NewThrottle(ThrottleConfig{}, c.now)
	var delays []time.Duration
	for range 10 {
		th.Failed("alice", "192.0.2.1")
		delays = append(delays, th.AccountDelay("Alice "))
	}
	want := []time.Duration{0, 0, 0, 0, 500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second, 4 * time.Second}
	if fmt.Sprint(delays) != fmt.Sprint(want) {
		t.Fatalf("delays %v, want %v", delays, want)
	}
	if d := th.AccountDelay("bob"); d != 0 {
		t.Fatalf("another account is delayed %v", d)
	}
	c.add(10 * 12 * time.Second)
	if d := th.AccountDelay("alice"); d != 0 {
		t.Fatalf("after the failures decayed: %v", d)
	}
}

// The attack that used to lock a user out: many bad attempts for alice.
// Her correct password still signs her in, after at most MaxDelay.
func TestCorrectPasswordSignsInAfterManyFailures(t *testing.T) {
	hash, err := HashPassword("correct horse", Params{Memory: 64, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16})
	if err != nil {
		t.Fatal(err)
	}
	th := NewThrottle(ThrottleConfig{BaseDelay: 10 * time.Millisecond, MaxDelay: 40 * time.Millisecond}, nil)
	a := NewAuthenticator(users{byName: map[string]User{"alice": {ID: "u1", Username: "alice", PasswordHash: hash}}}, th)
	a.dummyOnce.Do(func() { a.dummy = hash })
	ctx := context.Background()
	for i := range 50 {
		// From many addresses, so that no address bucket runs dry.
		if _, _, err := a.Login(ctx, "alice", "guess", fmt.Sprintf("198.51.100.%d", i)); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("guess %d: %v", i, err)
		}
	}
	began := time.Now()
	u, _, err := a.Login(ctx, "alice", "correct horse", "192.0.2.7")
	if err != nil || u.ID != "u1" {
		t.Fatalf("alice after 50 failures: %v", err)
	}
	if d := time.Since(began); d < 40*time.Millisecond {
		t.Fatalf("no delay after 50 failures (%v)", d)
	}
	if d := th.AccountDelay("alice"); d != 0 {
		t.Fatalf("a success did not clear the delay: %v", d)
	}
}

// An address that failed too often is refused before any hashing; another
// address is not.
func TestAddressBucket(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	th := NewThrottle(ThrottleConfig{AddressBurst: 3}, c.now)
	for i := range 3 {
		th.Failed(fmt.Sprintf("user%d", i), "203.0.113.9")
	}
	if ok, wait := th.AddressAllowed("203.0.113.9"); ok || wait <= 0 {
		t.Fatalf("spent address allowed (%v)", wait)
	}
	if ok, _ := th.AddressAllowed("203.0.113.10"); !ok {
		t.Fatal("another address refused")
	}
	c.add(time.Second)
	if ok, _ := th.AddressAllowed("203.0.113.9"); !ok {
		t.Fatal("the bucket did not refill")
	}
}

// The maps stay bounded under any number of distinct names and
// addresses, names that cannot be usernames never enter, and the timer
// sweep empties them once the failures have decayed.
func TestThrottleMapsStayBounded(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	th := NewThrottle(ThrottleConfig{MaxEntries: 1000, SweepEvery: 5 * time.Millisecond}, c.now)
	for i := range 20_000 {
		th.Failed(fmt.Sprintf("name-%d", i), fmt.Sprintf("10.%d.%d.%d", i>>16, i>>8&255, i&255))
	}
	if acc, addr := th.Len(); acc > 1000 || addr > 1000 {
		t.Fatalf("maps hold %d accounts and %d addresses, bound 1000", acc, addr)
	}
	long := strings.Repeat("a", 1<<20)
	th.Failed(long, "10.0.0.1")
	if d := th.AccountDelay(long); d != 0 {
		t.Fatal("a 1 MiB name has throttle state")
	}
	th.mu.Lock()
	_, held := th.accounts[long]
	th.mu.Unlock()
	if held {
		t.Fatal("a 1 MiB name was stored")
	}
	// No failure arrives any more; the timer alone empties the maps.
	c.add(time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { th.Run(ctx); close(done) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if acc, addr := th.Len(); acc == 0 && addr == 0 {
			break
		}
		if time.Now().After(deadline) {
			acc, addr := th.Len()
			t.Fatalf("after the sweep: %d accounts, %d addresses", acc, addr)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
}

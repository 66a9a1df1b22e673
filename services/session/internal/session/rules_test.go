package session

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-ref/strata/libs/resilience"
)

// The cache-aside rules of docs/cache-aside.md against in-memory fakes of
// Store and Cache: each case runs in microseconds. The same rules run
// against real Postgres and Redis in cacheaside_test.go.

var errDown = errors.New("connection refused")

// memStore is the source of truth in memory; down makes every call fail.
type memStore struct {
	mu       sync.Mutex
	sessions map[string]Session
	reads    int
	down     bool
	gate     chan struct{} // when set, Get waits on it (to hold a flight open)
}

func (m *memStore) call() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return errDown
	}
	return nil
}

func (m *memStore) Create(_ context.Context, s Session) error {
	if err := m.call(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sessions[s.SID] = s
	return nil
}

func (m *memStore) Get(_ context.Context, sid string) (Session, error) {
	if m.gate != nil {
		<-m.gate
	}
	if err := m.call(); err != nil {
		return Session{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reads++
	s, ok := m.sessions[sid]
	if !ok {
		return Session{}, ErrNotFound
	}
	return s, nil
}

func (m *memStore) Touch(_ context.Context, sid string, seen, expires time.Time) (Session, error) {
	if err := m.call(); err != nil {
		return Session{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.sessions[sid]
	if !ok {
		return Session{}, ErrNotFound
	}
	s.LastSeenAt, s.ExpiresAt = seen, expires
	m.sessions[sid] = s
	return s, nil
}

func (m *memStore) Revoke(_ context.Context, sid string, _ time.Time) error {
	if err := m.call(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.sessions[sid]; !ok {
		return ErrNotFound
	}
	delete(m.sessions, sid)
	return nil
}

func (m *memStore) ListByUser(context.Context, string) ([]Session, error) { return nil, m.call() }

// memCache is the cache in memory, remembering each entry's TTL.
type memCache struct {
	mu      sync.Mutex
	entries map[string]Entry
	ttls    map[string]time.Duration
	deletes int
	down    bool
}

func (m *memCache) Get(_ context.Context, sid string) (Entry, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return Entry{}, false, errDown
	}
	e, ok := m.entries[sid]
	return e, ok, nil
}

func (m *memCache) Set(_ context.Context, sid string, e Entry, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return errDown
	}
	m.entries[sid], m.ttls[sid] = e, ttl
	return nil
}

func (m *memCache) Delete(_ context.Context, sid string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return errDown
	}
	m.deletes++
	delete(m.entries, sid)
	delete(m.ttls, sid)
	return nil
}

// put writes an entry as a racing reader's fill would, under the lock the
// service's own calls take.
func (m *memCache) put(sid string, e Entry) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.entries[sid] = e
}

func (m *memCache) get(sid string) (Entry, time.Duration, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.entries[sid]
	return e, m.ttls[sid], ok
}

func (m *memCache) setDown(down bool) { m.mu.Lock(); m.down = down; m.mu.Unlock() }

type tally struct {
	mu sync.Mutex
	m  map[string]int
}

func (c *tally) CacheResult(r string) { c.mu.Lock(); c.m[r]++; c.mu.Unlock() }
func (c *tally) Collapsed()           { c.CacheResult("collapsed") }
func (c *tally) n(r string) int       { c.mu.Lock(); defer c.mu.Unlock(); return c.m[r] }

var now = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

type rig struct {
	svc   *Service
	store *memStore
	cache *memCache
	obs   *tally
}

func newRig(cfg Config) *rig {
	r := &rig{store: &memStore{sessions: map[string]Session{}}, cache: &memCache{entries: map[string]Entry{}, ttls: map[string]time.Duration{}},
		obs: &tally{m: map[string]int{}}}
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return now }
	}
	r.svc = NewService(r.store, r.cache, cfg, r.obs, resilience.NewMetrics(prometheus.NewRegistry()), slog.New(slog.DiscardHandler))
	return r
}

func sid(c byte) string { return strings.Repeat(string(c), 43) }

func live(id string, left time.Duration) Session {
	return Session{SID: id, UserID: "alice", CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(left)}
}

// TestReadPath: a hit never reaches the store; a miss reads it once and
// fills the cache for TTL ± jitter, never past the session's expiry; an
// unknown sid is cached as a negative entry; a malformed one reaches
// neither store; a cache that cannot answer is bypassed; a store that
// cannot answer is 503.
func TestReadPath(t *testing.T) {
	a, b := sid('a'), sid('b')
	for _, tc := range []struct {
		name       string
		sid        string
		stored     *Session
		cached     *Entry
		cacheDown  bool
		storeDown  bool
		want       error
		reads      int
		result     string        // the Observer's count for this read
		ttlMin     time.Duration // the entry written back (0: none)
		ttlMax     time.Duration
		negativeIn bool
	}{
		{name: "hit: the store is not read", sid: a, cached: &Entry{Session: live(a, time.Hour)}, stored: ptr(live(a, time.Hour)), reads: 0, result: "hit"},
		{name: "miss: one store read, cached for TTL ± 10 %", sid: a, stored: ptr(live(a, time.Hour)), reads: 1, result: "miss", ttlMin: 270 * time.Second, ttlMax: 330 * time.Second},
		{name: "never cached past the session's own expiry", sid: a, stored: ptr(live(a, time.Minute)), reads: 1, result: "miss", ttlMin: time.Minute, ttlMax: time.Minute},
		{name: "unknown sid: a negative entry for NegativeTTL", sid: b, want: ErrNotFound, reads: 1, result: "miss", ttlMin: 5 * time.Second, ttlMax: 5 * time.Second, negativeIn: true},
		{name: "negative hit: 404 without a store read", sid: b, cached: &Entry{Negative: true}, want: ErrNotFound, reads: 0, result: "negative_hit"},
		{name: "a cached session that expired meanwhile is gone", sid: a, cached: &Entry{Session: live(a, -time.Second)}, want: ErrNotFound, reads: 0, result: "hit"},
		{name: "malformed sid: neither store is asked", sid: "short", stored: ptr(live("short", time.Hour)), want: ErrNotFound, reads: 0},
		{name: "cache down: served from the store (bypass)", sid: a, stored: ptr(live(a, time.Hour)), cacheDown: true, reads: 1, result: "bypass"},
		{name: "store down on a miss: unavailable (503)", sid: a, storeDown: true, want: ErrUnavailable, reads: 0, result: "miss"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(Config{})
			if tc.stored != nil {
				r.store.sessions[tc.stored.SID] = *tc.stored
			}
			if tc.cached != nil {
				r.cache.entries[tc.sid] = *tc.cached
			}
			r.cache.down, r.store.down = tc.cacheDown, tc.storeDown
			s, err := r.svc.Get(context.Background(), tc.sid)
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			if tc.want == nil && s.SID != tc.sid {
				t.Fatalf("session %q, want %q", s.SID, tc.sid)
			}
			if r.store.reads != tc.reads {
				t.Errorf("%d store reads, want %d", r.store.reads, tc.reads)
			}
			if tc.result != "" && r.obs.n(tc.result) == 0 {
				t.Errorf("observer: %v, want %q counted", r.obs.m, tc.result)
			}
			if tc.ttlMax > 0 {
				e, ttl, ok := r.cache.get(tc.sid)
				if !ok || ttl < tc.ttlMin || ttl > tc.ttlMax || e.Negative != tc.negativeIn {
					t.Errorf("written back: %+v for %s (present %v), want negative=%v for %s-%s", e, ttl, ok, tc.negativeIn, tc.ttlMin, tc.ttlMax)
				}
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// TestConcurrentMissesShareOneRead: 32 readers miss the same sid at once;
// the store is read once.
func TestConcurrentMissesShareOneRead(t *testing.T) {
	r := newRig(Config{})
	a := sid('a')
	r.store.sessions[a] = live(a, time.Hour)
	r.store.gate = make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for range 32 {
		wg.Go(func() {
			_, err := r.svc.Get(context.Background(), a)
			errs <- err
		})
	}
	time.Sleep(20 * time.Millisecond) // let every reader join the flight
	close(r.store.gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if r.store.reads != 1 {
		t.Fatalf("%d store reads for 32 concurrent misses, want 1", r.store.reads)
	}
}

// TestWritePath: create, touch and revoke write the store first, then
// delete the key (never update it); a write the store refuses deletes
// nothing and is 503; validation comes before either store.
func TestWritePath(t *testing.T) {
	a := sid('a')
	for _, tc := range []struct {
		name      string
		do        func(*Service) error
		storeDown bool
		want      error
		deletes   int
	}{
		{"create deletes the new sid's key (a guessed negative entry)", func(s *Service) error {
			_, err := s.Create(context.Background(), New{UserID: "alice", ExpiresAt: now.Add(time.Hour)})
			return err
		}, false, nil, 1},
		{"touch deletes the key", func(s *Service) error {
			_, err := s.Touch(context.Background(), a, now.Add(2*time.Hour))
			return err
		}, false, nil, 1},
		{"revoke deletes the key", func(s *Service) error { return s.Revoke(context.Background(), a) }, false, nil, 1},
		{"revoke of an unknown session: 404, nothing deleted", func(s *Service) error { return s.Revoke(context.Background(), sid('z')) }, false, ErrNotFound, 0},
		{"store down: 503 and the cache is left alone", func(s *Service) error { return s.Revoke(context.Background(), a) }, true, ErrUnavailable, 0},
		{"create without a user: invalid", func(s *Service) error {
			_, err := s.Create(context.Background(), New{ExpiresAt: now.Add(time.Hour)})
			return err
		}, false, ErrInvalid, 0},
		{"create already expired: invalid", func(s *Service) error {
			_, err := s.Create(context.Background(), New{UserID: "alice", ExpiresAt: now})
			return err
		}, false, ErrInvalid, 0},
		{"touch into the past: invalid", func(s *Service) error {
			_, err := s.Touch(context.Background(), a, now.Add(-time.Second))
			return err
		}, false, ErrInvalid, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(Config{SecondDelete: time.Hour}) // the second delete is TestRevokeDeletesTwice's
			r.store.sessions[a] = live(a, time.Hour)
			r.cache.put(a, Entry{Session: live(a, time.Hour)})
			r.store.down = tc.storeDown
			if err := tc.do(r.svc); !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			if r.cache.deletes != tc.deletes {
				t.Errorf("%d cache deletes, want %d", r.cache.deletes, tc.deletes)
			}
			if _, _, cached := r.cache.get(a); tc.want != nil && !cached {
				t.Errorf("a refused write touched the cache")
			}
		})
	}
}

// TestRevokeDeletesTwice: the key is deleted again SecondDelete after a
// revoke, so a reader that loaded the session just before the revoke
// committed and wrote it back just after the first delete is undone.
func TestRevokeDeletesTwice(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(Config{})
		a := sid('a')
		r.store.sessions[a] = live(a, time.Hour)
		if err := r.svc.Revoke(context.Background(), a); err != nil {
			t.Fatal(err)
		}
		// The racing reader's fill lands after the first delete.
		r.cache.put(a, Entry{Session: live(a, time.Hour)})
		time.Sleep(time.Second + time.Millisecond)
		synctest.Wait()
		if _, _, ok := r.cache.get(a); ok {
			t.Fatal("the revoked session is still cached after SecondDelete")
		}
	})
}

// TestInvalidationQueuedWhileCacheDown: a write while the cache cannot be
// reached queues the key; Run deletes it once the cache answers again, so
// the cache never serves a revoked session after it comes back.
func TestInvalidationQueuedWhileCacheDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(Config{SecondDelete: time.Hour})
		a := sid('a')
		r.store.sessions[a] = live(a, time.Hour)
		r.cache.put(a, Entry{Session: live(a, time.Hour)})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go r.svc.Run(ctx)
		r.cache.setDown(true)
		if err := r.svc.Revoke(context.Background(), a); err != nil {
			t.Fatal(err)
		}
		r.cache.setDown(false)
		time.Sleep(time.Second)
		synctest.Wait()
		if _, _, ok := r.cache.get(a); ok {
			t.Fatal("the revoked session is cached again once the cache is back")
		}
		cancel()
	})
}

package session_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/prometheus/client_golang/prometheus"
	goredis "github.com/redis/go-redis/v9"

	"github.com/strata-ref/strata/libs/pgstore"
	"github.com/strata-ref/strata/libs/resilience"
	"github.com/strata-ref/strata/libs/testenv"
	"github.com/strata-ref/strata/services/session/internal/postgres"
	"github.com/strata-ref/strata/services/session/internal/redis"
	"github.com/strata-ref/strata/services/session/internal/session"
)

// countingStore counts reads that reach Postgres; the store itself is real.
type countingStore struct {
	session.Store
	gets atomic.Int64
}

func (c *countingStore) Get(ctx context.Context, sid string) (session.Session, error) {
	c.gets.Add(1)
	return c.Store.Get(ctx, sid)
}

type counts struct {
	mu sync.Mutex
	m  map[string]int
}

func (c *counts) CacheResult(r string) { c.mu.Lock(); c.m[r]++; c.mu.Unlock() }
func (c *counts) Collapsed()           { c.CacheResult("collapsed") }
func (c *counts) get(r string) int     { c.mu.Lock(); defer c.mu.Unlock(); return c.m[r] }

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

type fixture struct {
	stack *testenv.Stack
	svc   *session.Service
	store *countingStore
	rdb   *goredis.Client
	obs   *counts
	clock *clock
}

func setup(t testing.TB, cfg session.Config) *fixture {
	t.Helper()
	st := testenv.StartStack(t, "postgres", "redis")
	ctx := context.Background()
	src := st.Source(t, "session")
	pool, err := pgstore.Open(ctx, pgstore.Config{URL: st.PGURL("session", "session_test"), TLS: src, Migrations: postgres.Migrations()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	rdb := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:" + strconv.Itoa(st.RedisPort), TLSConfig: src.StoreConfig("127.0.0.1"),
		Username: "session", Password: st.Password(t, "redis", "session"),
		DialTimeout: 300 * time.Millisecond, ReadTimeout: 300 * time.Millisecond, MaxRetries: -1, PoolSize: 64})
	t.Cleanup(func() { rdb.Close() })
	clk := &clock{t: time.Now().UTC().Truncate(time.Microsecond)}
	cfg.Now = clk.Now
	f := &fixture{stack: st, store: &countingStore{Store: postgres.New(pool, clk.Now)}, rdb: rdb, obs: &counts{m: map[string]int{}}, clock: clk}
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	f.svc = session.NewService(f.store, redis.New(rdb), cfg, f.obs, resilience.NewMetrics(prometheus.NewRegistry()), log)
	runCtx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	go f.svc.Run(runCtx)
	return f
}

func (f *fixture) create(t testing.TB) session.Session {
	t.Helper()
	s, err := f.svc.Create(context.Background(), session.New{UserID: "user-" + session.NewSID()[:8], FamilyID: "fam", ExpiresAt: f.clock.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestHitAndMissPaths(t *testing.T) {
	f := setup(t, session.Config{})
	ctx := context.Background()
	s := f.create(t)

	got, err := f.svc.Get(ctx, s.SID)
	if err != nil || got.UserID != s.UserID {
		t.Fatalf("first get = %+v, %v", got, err)
	}
	if f.obs.get("miss") != 1 || f.store.gets.Load() != 1 {
		t.Fatalf("first read: misses %d, db reads %d; want 1, 1", f.obs.get("miss"), f.store.gets.Load())
	}
	ttl := f.rdb.TTL(ctx, "session:"+s.SID).Val()
	if ttl < 4*time.Minute || ttl > 6*time.Minute {
		t.Fatalf("cache TTL = %s, want 5m ± 10%%", ttl)
	}
	for range 5 {
		if _, err := f.svc.Get(ctx, s.SID); err != nil {
			t.Fatal(err)
		}
	}
	if f.obs.get("hit") != 5 || f.store.gets.Load() != 1 {
		t.Fatalf("hits %d, db reads %d; want 5, 1", f.obs.get("hit"), f.store.gets.Load())
	}
}

func TestConcurrentMissesCostOneQuery(t *testing.T) {
	f := setup(t, session.Config{})
	s := f.create(t)
	const n = 64
	// Open the pool's connections first: the test is about collapsing
	// misses, not about TLS handshakes racing the 100 ms cache timeout.
	var warm sync.WaitGroup
	for range n {
		warm.Add(1)
		go func() { defer warm.Done(); f.rdb.Ping(context.Background()) }()
	}
	warm.Wait()
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if _, err := f.svc.Get(context.Background(), s.SID); err != nil {
				errs <- err
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := f.store.gets.Load(); got != 1 {
		t.Fatalf("%d concurrent misses cost %d database reads, want 1 (cache results %v)", n, got, f.obs.m)
	}
}

func TestRevokeInvalidates(t *testing.T) {
	f := setup(t, session.Config{})
	ctx := context.Background()
	s := f.create(t)
	if _, err := f.svc.Get(ctx, s.SID); err != nil { // now cached
		t.Fatal(err)
	}
	if err := f.svc.Revoke(ctx, s.SID); err != nil {
		t.Fatal(err)
	}
	if f.rdb.Exists(ctx, "session:"+s.SID).Val() != 0 {
		// a negative entry is fine, a cached session is not
		if v := f.rdb.Get(ctx, "session:"+s.SID).Val(); v != "-" {
			t.Fatalf("cache still holds %q after revoke", v)
		}
	}
	if _, err := f.svc.Get(ctx, s.SID); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("get after revoke: %v", err)
	}
	if err := f.svc.Revoke(ctx, session.NewSID()); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("revoking an unknown sid: %v", err)
	}
}

func TestExpiredSessionIsGone(t *testing.T) {
	f := setup(t, session.Config{})
	ctx := context.Background()
	s := f.create(t)
	if _, err := f.svc.Get(ctx, s.SID); err != nil { // cached
		t.Fatal(err)
	}
	f.clock.Advance(time.Hour + time.Second)
	if _, err := f.svc.Get(ctx, s.SID); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("cached read of an expired session: %v", err)
	}
	f.rdb.Del(ctx, "session:"+s.SID)
	if _, err := f.svc.Get(ctx, s.SID); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("database read of an expired session: %v", err)
	}
}

func TestNegativeCaching(t *testing.T) {
	f := setup(t, session.Config{})
	ctx := context.Background()
	bogus := session.NewSID()
	for range 20 {
		if _, err := f.svc.Get(ctx, bogus); !errors.Is(err, session.ErrNotFound) {
			t.Fatal(err)
		}
	}
	if got := f.store.gets.Load(); got != 1 {
		t.Fatalf("20 reads of an unknown sid cost %d database reads, want 1", got)
	}
	if f.obs.get("negative_hit") != 19 {
		t.Fatalf("negative hits = %d", f.obs.get("negative_hit"))
	}
	// Malformed ids never reach either store.
	if _, err := f.svc.Get(ctx, "'; DROP TABLE sessions; --"); !errors.Is(err, session.ErrNotFound) || f.store.gets.Load() != 1 {
		t.Fatalf("malformed sid: %v, db reads %d", err, f.store.gets.Load())
	}
}

func TestRedisDownServesFromPostgres(t *testing.T) {
	f := setup(t, session.Config{})
	ctx := context.Background()
	s := f.create(t)
	f.stack.MustScript(t, "stop", "redis")
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			f.stack.MustScript(t, "start", "redis")
		}
	})
	var worst time.Duration
	for range 30 {
		start := time.Now()
		got, err := f.svc.Get(ctx, s.SID)
		if err != nil || got.SID != s.SID {
			t.Fatalf("read with Redis down: %+v, %v", got, err)
		}
		worst = max(worst, time.Since(start))
	}
	if f.svc.CacheState() != circuitbreaker.OpenState {
		t.Fatalf("redis breaker is %s with Redis down", f.svc.CacheState())
	}
	if worst > time.Second {
		t.Fatalf("slowest read with Redis down took %s", worst)
	}
	// A revoke while Redis is down must still win once Redis is back.
	s2 := f.create(t)
	if err := f.svc.Revoke(ctx, s2.SID); err != nil {
		t.Fatal(err)
	}
	f.stack.MustScript(t, "start", "redis")
	restarted = true
	deadline := time.Now().Add(15 * time.Second)
	for f.svc.CacheState() != circuitbreaker.ClosedState {
		if time.Now().After(deadline) {
			t.Fatalf("breaker still %s after Redis came back", f.svc.CacheState())
		}
		_, _ = f.svc.Get(ctx, s.SID)
		time.Sleep(100 * time.Millisecond)
	}
	hits := f.obs.get("hit")
	for range 3 {
		if _, err := f.svc.Get(ctx, s.SID); err != nil {
			t.Fatal(err)
		}
	}
	if f.obs.get("hit") <= hits {
		t.Fatal("cache did not warm after Redis returned")
	}
	if _, err := f.svc.Get(ctx, s2.SID); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("session revoked during the outage: %v", err)
	}
}

func TestPostgresDownCachedReadsContinue(t *testing.T) {
	f := setup(t, session.Config{StoreTimeout: 500 * time.Millisecond})
	ctx := context.Background()
	s := f.create(t)
	if _, err := f.svc.Get(ctx, s.SID); err != nil { // cached
		t.Fatal(err)
	}
	f.stack.MustScript(t, "stop", "postgres")
	t.Cleanup(func() { f.stack.MustScript(t, "start", "postgres") })
	for range 10 {
		if got, err := f.svc.Get(ctx, s.SID); err != nil || got.SID != s.SID {
			t.Fatalf("cached read with Postgres down: %v", err)
		}
	}
	if _, err := f.svc.Create(ctx, session.New{UserID: "u", ExpiresAt: f.clock.Now().Add(time.Hour)}); !errors.Is(err, session.ErrUnavailable) {
		t.Fatalf("create with Postgres down: %v", err)
	}
	if err := f.svc.Revoke(ctx, s.SID); !errors.Is(err, session.ErrUnavailable) {
		t.Fatalf("revoke with Postgres down: %v", err)
	}
	// The failed revoke must not have touched the cache: Redis never holds
	// what Postgres does not, and Postgres still holds the live session.
	if got, err := f.svc.Get(ctx, s.SID); err != nil || got.SID != s.SID {
		t.Fatalf("read after failed revoke: %v", err)
	}
}

// BenchmarkGet compares the read path alone (no HTTP): a cache hit in Redis
// against a read that always goes to Postgres, both over TLS, 32 goroutines.
func BenchmarkGet(b *testing.B) {
	for _, tc := range []struct {
		name  string
		cache bool
	}{{"redis_hit", true}, {"postgres_only", false}} {
		b.Run(tc.name, func(b *testing.B) {
			f := setup(b, session.Config{})
			if !tc.cache {
				f.svc = session.NewService(f.store, missCache{}, session.Config{}, f.obs, resilience.NewMetrics(prometheus.NewRegistry()),
					slog.New(slog.NewJSONHandler(io.Discard, nil)))
			}
			sids := make([]string, 64)
			for i := range sids {
				sids[i] = f.create(b).SID
				if _, err := f.svc.Get(context.Background(), sids[i]); err != nil {
					b.Fatal(err)
				}
			}
			b.SetParallelism(16) // 16 x GOMAXPROCS(2) = 32 goroutines
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					if _, err := f.svc.Get(context.Background(), sids[i%len(sids)]); err != nil {
						b.Error(err)
						return
					}
					i++
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reads/s")
		})
	}
}

type missCache struct{}

func (missCache) Get(context.Context, string) (session.Entry, bool, error) {
	return session.Entry{}, false, nil
}
func (missCache) Set(context.Context, string, session.Entry, time.Duration) error { return nil }
func (missCache) Delete(context.Context, string) error                            { return nil }

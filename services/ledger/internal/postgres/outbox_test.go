package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/strata-ref/strata/libs/pgstore"
	"github.com/strata-ref/strata/libs/testenv"
	"github.com/strata-ref/strata/services/ledger/internal/ledger"
	"github.com/strata-ref/strata/services/ledger/internal/postgres"
)

// The test's own schema and lock key, so a ledger running on ledger_test
// meanwhile neither drains these events nor holds this lock.
const (
	schema  = "relay_lock_test"
	testKey = postgres.RelayLockKey + 1
)

// replica is one ledger replica's relay: its own pool, lock and sink.
type replica struct {
	name    string
	pool    *pgxpool.Pool
	relay   *ledger.Relay
	leading atomic.Bool
	mu      sync.Mutex
	got     []int // payload numbers delivered
	cancel  context.CancelFunc
	done    chan struct{}
}

func (r *replica) Deliver(_ context.Context, events []json.RawMessage) error {
	time.Sleep(2 * time.Millisecond) // a call to analytics takes time
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range events {
		var p struct{ N int }
		if err := json.Unmarshal(e, &p); err != nil {
			return err
		}
		r.got = append(r.got, p.N)
	}
	return nil
}

func (r *replica) delivered() int { r.mu.Lock(); defer r.mu.Unlock(); return len(r.got) }

func (r *replica) Delivered(int)            {}
func (r *replica) Failed()                  {}
func (r *replica) Lag(int64, time.Duration) {}
func (r *replica) Leading(on bool)          { r.leading.Store(on) }
func (r *replica) start(ctx context.Context, t *testing.T) {
	ctx, r.cancel = context.WithCancel(ctx)
	r.done = make(chan struct{})
	go func() { defer close(r.done); r.relay.Run(ctx) }()
	t.Cleanup(func() { r.stop() })
}
func (r *replica) stop() { r.cancel(); <-r.done }

// relaySchema starts Postgres and makes the relay tests' own schema; it
// returns the stack, the ledger_test URL and an admin pool on it.
func relaySchema(t *testing.T) (*testenv.Stack, string, *pgxpool.Pool) {
	st := testenv.StartStack(t, "postgres")
	base := st.PGURL("ledger", "ledger_test")
	admin := openPool(t, st, base, false)
	if _, err := admin.Exec(context.Background(), `CREATE SCHEMA IF NOT EXISTS `+schema); err != nil {
		t.Fatal(err)
	}
	return st, base, admin
}

func openPool(t *testing.T, st *testenv.Stack, url string, migrate bool) *pgxpool.Pool {
	t.Helper()
	cfg := pgstore.Config{URL: url, TLS: st.Source(t, "ledger"), MaxConns: 4}
	if migrate {
		cfg.Migrations = postgres.Migrations()
	}
	pool, err := pgstore.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func newReplica(t *testing.T, st *testenv.Stack, url, name string) *replica {
	r := &replica{name: name, pool: openPool(t, st, url, false)}
	store := postgres.New(r.pool)
	lock := store.RelayLock()
	lock.Key, lock.Retry, lock.Check = testKey, 50*time.Millisecond, 100*time.Millisecond
	r.relay = &ledger.Relay{Outbox: store, Sink: r, Observer: r, Leader: lock, Batch: 10, Lease: 2 * time.Second,
		Idle: 10 * time.Millisecond, MaxDelay: 200 * time.Millisecond, Log: slog.New(slog.NewJSONHandler(io.Discard, nil))}
	return r
}

// TestOneRelayLeadsAndAnotherTakesOver runs two relays, as two ledger
// replicas would, on the real database: only the holder of the advisory
// lock delivers; when its lock connection is killed, and later when the
// new leader's process ends, the other one takes over, and every event is
// delivered exactly once across them.
func TestOneRelayLeadsAndAnotherTakesOver(t *testing.T) {
	st, base, admin := relaySchema(t)
	ctx := context.Background()
	url := base + "&search_path=" + schema
	db := openPool(t, st, url, true)
	if _, err := db.Exec(ctx, `TRUNCATE outbox`); err != nil {
		t.Fatal(err)
	}
	next := 0
	insert := func(n int) {
		t.Helper()
		_, err := db.Exec(ctx, `INSERT INTO outbox (event_id, type, payload)
			SELECT gen_random_uuid(), 'test', jsonb_build_object('n', i) FROM generate_series($1::int, $2::int) AS i`, next+1, next+n)
		if err != nil {
			t.Fatal(err)
		}
		next += n
	}
	pending := func() int64 {
		var n int64
		if err := db.QueryRow(ctx, `SELECT count(*) FROM outbox`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting until %s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	a, b := newReplica(t, st, url, "a"), newReplica(t, st, url, "b")
	a.start(ctx, t)
	waitFor("a leads", a.leading.Load)
	b.start(ctx, t)
	insert(200)
	waitFor("the outbox is drained", func() bool { return pending() == 0 })
	if a.delivered() != 200 || b.delivered() != 0 || b.leading.Load() {
		t.Fatalf("with a leading: a delivered %d, b delivered %d (leading %v); want 200 and 0", a.delivered(), b.delivered(), b.leading.Load())
	}

	// Kill the leader's lock connection: Postgres drops its lock, b takes
	// over, and a stops relaying (its claims ran on that connection).
	insert(100)
	var killed int
	err := admin.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_locks
		WHERE locktype = 'advisory' AND objsubid = 1 AND granted AND ((classid::bigint << 32) | objid::bigint) = $1`, testKey).Scan(&killed)
	if err != nil || killed != 1 {
		t.Fatalf("terminate the lock holder: %d backends, %v", killed, err)
	}
	insert(100)
	waitFor("b leads", b.leading.Load)
	waitFor("the outbox is drained after the takeover", func() bool { return pending() == 0 })
	if a.leading.Load() {
		t.Fatal("a still believes it leads after losing its lock connection")
	}
	fromB := b.delivered()
	if fromB == 0 {
		t.Fatal("b delivered nothing after taking over")
	}

	// The new leader's process ends: a takes the lead back.
	b.stop()
	insert(100)
	waitFor("a leads again", a.leading.Load)
	waitFor("the outbox is drained after b stopped", func() bool { return pending() == 0 })
	if b.delivered() != fromB {
		t.Fatal("b delivered after it stopped")
	}

	seen := map[int]string{}
	for _, r := range []*replica{a, b} {
		for _, n := range r.got {
			if prev, dup := seen[n]; dup {
				t.Fatalf("event %d delivered twice (by %s and %s)", n, prev, r.name)
			}
			seen[n] = r.name
		}
	}
	if len(seen) != next {
		t.Fatalf("%d of %d events delivered", len(seen), next)
	}
}

// A term's outbox stops claiming as soon as its connection is gone, before
// any watchdog notices: the claim itself runs on the lock's connection.
func TestLostLeadershipCannotClaim(t *testing.T) {
	st, base, admin := relaySchema(t)
	ctx := context.Background()
	pool := openPool(t, st, base+"&search_path="+schema, true)
	lock := postgres.New(pool).RelayLock()
	lock.Key, lock.Check = testKey+1, time.Hour // no pings: only the claim can notice
	term, err := lock.Lead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer term.Release()
	if _, err := term.Outbox.ClaimEvents(ctx, 1, time.Second); err != nil {
		t.Fatalf("claim while leading: %v", err)
	}
	other := postgres.New(pool).RelayLock()
	other.Key = testKey + 1
	waitCtx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := other.Lead(waitCtx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a second replica took a held lock: %v", err)
	}
	if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_locks
		WHERE locktype = 'advisory' AND objsubid = 1 AND ((classid::bigint << 32) | objid::bigint) = $1`, testKey+1); err != nil {
		t.Fatal(err)
	}
	if _, err := term.Outbox.ClaimEvents(ctx, 1, time.Second); !errors.Is(err, ledger.ErrNotLeader) {
		t.Fatalf("claim after the lock's connection was killed: %v, want ErrNotLeader", err)
	}
	select {
	case <-term.Lost:
	default:
		t.Fatal("Lost not closed after a failed claim")
	}
	term2, err := other.Lead(ctx)
	if err != nil {
		t.Fatalf("the lock was not free after its holder's connection died: %v", err)
	}
	term2.Release()
}

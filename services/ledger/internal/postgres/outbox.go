package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/strata-ref/strata/services/ledger/internal/ledger"
)

var _ ledger.Outbox = (*Store)(nil)

// ClaimEvents leases up to limit due events for lease: they are not handed
// to another relay until it passes. The lease is a timestamp, not a held
// lock, so no transaction stays open while analytics is called.
func (s *Store) ClaimEvents(ctx context.Context, limit int, lease time.Duration) ([]ledger.OutboxEvent, error) {
	return claimEvents(ctx, s.pool, limit, lease)
}

// querier is a pool or a single connection.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func claimEvents(ctx context.Context, db querier, limit int, lease time.Duration) ([]ledger.OutboxEvent, error) {
	const q = `UPDATE outbox SET available_at = now() + $2::interval, attempts = attempts + 1
	           WHERE id IN (SELECT id FROM outbox WHERE available_at <= now() ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
	           RETURNING id, payload, attempts, traceparent`
	rows, err := db.Query(ctx, q, limit, lease)
	if err != nil {
		return nil, translate("claim outbox", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ledger.OutboxEvent, error) {
		var e ledger.OutboxEvent
		err := r.Scan(&e.ID, &e.Payload, &e.Attempts, &e.TraceParent)
		return e, err
	})
	return out, translate("claim outbox", err)
}

// DeleteEvents removes delivered events.
func (s *Store) DeleteEvents(ctx context.Context, ids []int64) error {
	const q = `DELETE FROM outbox WHERE id = ANY($1)`
	_, err := s.pool.Exec(ctx, q, ids)
	return translate("delete outbox", err)
}

// RetryEventsAfter makes undelivered events due again after delay.
func (s *Store) RetryEventsAfter(ctx context.Context, ids []int64, delay time.Duration) error {
	const q = `UPDATE outbox SET available_at = now() + $2::interval WHERE id = ANY($1)`
	_, err := s.pool.Exec(ctx, q, ids, delay)
	return translate("reschedule outbox", err)
}

// OutboxStats reports how many events wait and the age of the oldest.
func (s *Store) OutboxStats(ctx context.Context) (pending int64, oldest time.Duration, err error) {
	const q = `SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 FROM outbox`
	var secs float64
	err = s.pool.QueryRow(ctx, q).Scan(&pending, &secs)
	return pending, time.Duration(secs * float64(time.Second)), translate("outbox stats", err)
}

// StaleKeys lists records whose data key is wrapped by a KEK other than
// primary: what the rewrap command moves.
func (s *Store) StaleKeys(ctx context.Context, primary string, limit int) ([]ledger.WrappedKey, error) {
	const q = `(SELECT 'accounts', id::text, name_dek, name_kek FROM accounts WHERE name_kek IS NOT NULL AND name_kek <> $1 LIMIT $2)
	           UNION ALL
	           (SELECT 'transfers', id::text, memo_dek, memo_kek FROM transfers WHERE memo_kek IS NOT NULL AND memo_kek <> $1 LIMIT $2)`
	rows, err := s.pool.Query(ctx, q, primary, limit)
	if err != nil {
		return nil, translate("stale keys", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ledger.WrappedKey, error) {
		var k ledger.WrappedKey
		err := r.Scan(&k.Table, &k.RowID, &k.Wrapped, &k.KEKID)
		return k, err
	})
	return out, translate("stale keys", err)
}

// UpdateKey stores a rewrapped data key, if the row still has the old one.
func (s *Store) UpdateKey(ctx context.Context, k ledger.WrappedKey, oldKEK string) error {
	const qa = `UPDATE accounts SET name_dek = $2, name_kek = $3 WHERE id = $1 AND name_kek = $4`
	const qt = `UPDATE transfers SET memo_dek = $2, memo_kek = $3 WHERE id = $1 AND memo_kek = $4`
	q := qa
	if k.Table == "transfers" {
		q = qt
	}
	_, err := s.pool.Exec(ctx, q, k.RowID, k.Wrapped, k.KEKID, oldKEK)
	return translate("update key", err)
}

// RelayLockKey is the advisory lock of the outbox relay's leadership: any
// constant of the ledger's database that nothing else locks (goose's
// migration lock is another).
const RelayLockKey int64 = 0x4c65646752656c79 // "LedgRely"

// RelayLock elects the one active outbox relay among the ledger's
// replicas with a session-level advisory lock (pg_try_advisory_lock) held
// on a dedicated connection, taken out of the pool: whoever holds the lock
// relays. Postgres releases the lock when that session ends, so a leader
// that crashes, is partitioned away or whose connection is killed frees it
// for another replica; the leader notices the same loss through its claims
// and a ping every Check, and stops relaying. Claims run on the lock's
// connection, so a claim succeeds only while the session holding the lock
// is alive.
type RelayLock struct {
	store *Store
	Key   int64         // [RelayLockKey]
	Retry time.Duration // between attempts to take the lock [1 s]
	Check time.Duration // between pings of the held lock's connection [1 s]
}

// RelayLock returns the leadership lock of the relay on the store's database.
func (s *Store) RelayLock() *RelayLock {
	return &RelayLock{store: s, Key: RelayLockKey}
}

var _ ledger.Leader = (*RelayLock)(nil)

// Lead blocks until this replica holds the lock or ctx ends. It polls
// pg_try_advisory_lock every Retry on one connection (never a blocking
// pg_advisory_lock, so a waiting replica notices its own connection's
// failure and ctx's end); an error on that connection is returned, and
// the caller backs off and calls again.
func (l *RelayLock) Lead(ctx context.Context) (*ledger.Term, error) {
	if l.Key == 0 {
		l.Key = RelayLockKey
	}
	if l.Retry == 0 {
		l.Retry = time.Second
	}
	if l.Check == 0 {
		l.Check = time.Second
	}
	pc, err := l.store.pool.Acquire(ctx)
	if err != nil {
		return nil, translate("relay lock connection", err)
	}
	// Hijacked: the connection leaves the pool, which never hands it to
	// another query nor recycles it under the lock.
	conn := pc.Hijack()
	tick := time.NewTicker(l.Retry)
	defer tick.Stop()
	for {
		var ok bool
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := conn.QueryRow(qctx, `SELECT pg_try_advisory_lock($1)`, l.Key).Scan(&ok)
		cancel()
		if err != nil {
			conn.Close(context.Background())
			return nil, translate("relay lock", err)
		}
		if ok {
			return l.hold(conn), nil
		}
		select {
		case <-ctx.Done():
			conn.Close(context.Background())
			return nil, ctx.Err()
		case <-tick.C:
		}
	}
}

// heldLock is the connection holding the lock, shared by the claims and
// the pings.
type heldLock struct {
	key      int64
	mu       sync.Mutex
	conn     *pgx.Conn
	lost     chan struct{}
	lostOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
}

func (l *RelayLock) hold(conn *pgx.Conn) *ledger.Term {
	h := &heldLock{key: l.Key, conn: conn, lost: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	go h.watch(l.Check)
	var release sync.Once
	return &ledger.Term{Lost: h.lost, Outbox: &leaderOutbox{Store: l.store, h: h},
		Release: func() { release.Do(h.release) }}
}

// watch pings the lock's connection every check: a failed ping means the
// session (and with it the lock) may be gone.
func (h *heldLock) watch(check time.Duration) {
	defer close(h.done)
	t := time.NewTicker(check)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-h.lost:
			return
		case <-t.C:
			if err := h.exec(`SELECT 1`); err != nil {
				return
			}
		}
	}
}

// exec runs q on the lock's connection; any error ends the leadership.
func (h *heldLock) exec(q string, args ...any) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.isLost() {
		return ledger.ErrNotLeader
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := h.conn.Exec(ctx, q, args...); err != nil {
		h.loseLocked()
		return fmt.Errorf("%w: %v", ledger.ErrNotLeader, err)
	}
	return nil
}

func (h *heldLock) isLost() bool {
	select {
	case <-h.lost:
		return true
	default:
		return false
	}
}

// loseLocked marks the leadership lost and closes the connection (which
// ends the session, so Postgres releases the lock if it still held it).
// h.mu is held.
func (h *heldLock) loseLocked() {
	h.lostOnce.Do(func() {
		close(h.lost)
		h.conn.Close(context.Background())
	})
}

// release unlocks and closes the connection: the next replica may lead.
func (h *heldLock) release() {
	close(h.stop)
	<-h.done
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.isLost() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, _ = h.conn.Exec(ctx, `SELECT pg_advisory_unlock($1)`, h.key)
		cancel()
	}
	h.lostOnce.Do(func() {
		close(h.lost)
		h.conn.Close(context.Background())
	})
}

// leaderOutbox claims on the lock's connection: a claim succeeds only
// while the session holding the lock lives. Deletes, reschedules and
// stats go through the pool (they touch only rows this relay claimed).
type leaderOutbox struct {
	*Store
	h *heldLock
}

func (o *leaderOutbox) ClaimEvents(ctx context.Context, limit int, lease time.Duration) ([]ledger.OutboxEvent, error) {
	o.h.mu.Lock()
	defer o.h.mu.Unlock()
	if o.h.isLost() {
		return nil, ledger.ErrNotLeader
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	events, err := claimEvents(ctx, o.h.conn, limit, lease)
	if err != nil && !errors.Is(ctx.Err(), context.Canceled) {
		o.h.loseLocked()
		return nil, fmt.Errorf("%w: %v", ledger.ErrNotLeader, err)
	}
	return events, err
}

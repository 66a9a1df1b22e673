package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/strata-ref/strata/services/ledger/internal/ledger"
)

var _ ledger.Outbox = (*Store)(nil)

// ClaimEvents leases up to limit due events for lease: they are not handed
// to another relay until it passes. The lease is a timestamp, not a held
// lock, so no transaction stays open while analytics is called.
func (s *Store) ClaimEvents(ctx context.Context, limit int, lease time.Duration) ([]ledger.OutboxEvent, error) {
	const q = `UPDATE outbox SET available_at = now() + $2::interval, attempts = attempts + 1
	           WHERE id IN (SELECT id FROM outbox WHERE available_at <= now() ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
	           RETURNING id, payload, attempts, traceparent`
	rows, err := s.pool.Query(ctx, q, limit, lease)
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

package idempotency

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Schema is the table the package needs; put it in the service's migrations.
const Schema = `
CREATE TABLE idempotency_keys (
    scope        text        NOT NULL,
    key          text        NOT NULL,
    fingerprint  bytea       NOT NULL,
    status       integer     NOT NULL,
    content_type text        NOT NULL,
    body         bytea       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
`

// Querier is what Lookup and Reap need: a pool, a connection or a tx.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// The advisory lock is what tells "in flight" apart: it is held by the
// transaction that is doing the work and released at its commit or
// rollback, and pg_try_advisory_xact_lock never waits. Its 64-bit key is a
// hash of scope and key (a collision costs a spurious 409, never a double
// execution: the primary key is the guarantee).
const (
	qLock = `SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0))`
	// A separate statement, so in READ COMMITTED its snapshot is taken after
	// the lock was granted and sees a key committed just before.
	qLookup = `SELECT fingerprint, status, content_type, body FROM idempotency_keys WHERE scope = $1 AND key = $2`
	qInsert = `INSERT INTO idempotency_keys (scope, key, fingerprint, status, content_type, body) VALUES ($1, $2, $3, $4, $5, $6)`
)

// LockKey is the text whose hash names the key's advisory lock. A store
// that pipelines its own row locks behind QueueClaim adds
// `AND pg_try_advisory_xact_lock(hashtextextended($n, 0))` with LockKey to
// them: true again for the transaction that holds the key (advisory locks
// are re-entrant), false for a request that found it in flight, which then
// locks no rows and cannot queue behind the very request it conflicts with.
func (r *Request) LockKey() string {
	return fmt.Sprintf("idempotency:%d:%s:%s", len(r.Scope), r.Scope, r.Key)
}

// QueueClaim queues the claim's two statements on b (pipelined with the
// transaction's first reads); call Claimed after the batch has run.
func (r *Request) QueueClaim(b *pgx.Batch) {
	r.claimed = true
	b.Queue(qLock, r.LockKey()).QueryRow(func(row pgx.Row) error { return row.Scan(&r.lock) })
	b.Queue(qLookup, r.Scope, r.Key).QueryRow(func(row pgx.Row) error {
		r.found = true
		err := row.Scan(&r.storedF, &r.stored.Status, &r.stored.ContentType, &r.stored.Body)
		if errors.Is(err, pgx.ErrNoRows) {
			r.found = false
			return nil
		}
		return err
	})
}

// Claimed interprets a queued claim: nil means this transaction owns the key
// and must Complete it; otherwise ErrInFlight, ErrMismatch or *Replay, and
// the caller rolls back.
func (r *Request) Claimed(ctx context.Context) error {
	switch {
	case !r.claimed:
		return errors.New("idempotency: claim was not queued")
	case !r.lock:
		return ErrInFlight
	case r.found:
		if !bytes.Equal(r.storedF, r.Fingerprint) {
			return ErrMismatch
		}
		resp, err := r.open(ctx, r.stored)
		if err != nil {
			return err
		}
		return &Replay{Response: resp}
	default:
		return nil
	}
}

func (r *Request) open(ctx context.Context, resp Response) (Response, error) {
	if r.Cipher == nil {
		return resp, nil
	}
	body, err := r.Cipher.Open(ctx, r.Scope, r.Key, resp.Body)
	if err != nil {
		return Response{}, fmt.Errorf("open stored response: %w", err)
	}
	resp.Body = body
	return resp, nil
}

// Claim runs the claim in tx without batching.
func (r *Request) Claim(ctx context.Context, tx pgx.Tx) error {
	b := &pgx.Batch{}
	r.QueueClaim(b)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("claim idempotency key: %w", err)
	}
	return r.Claimed(ctx)
}

// QueueComplete renders result, records it as the key's response and
// queues the insert that claims the key on b. The insert is the unique
// constraint that guarantees one execution per key.
func (r *Request) QueueComplete(ctx context.Context, b *pgx.Batch, result any) error {
	resp, err := r.Render(result)
	if err != nil {
		return fmt.Errorf("render idempotent response: %w", err)
	}
	r.Result = resp
	stored := resp.Body
	if r.Cipher != nil {
		if stored, err = r.Cipher.Seal(ctx, r.Scope, r.Key, resp.Body); err != nil {
			return fmt.Errorf("seal stored response: %w", err)
		}
	}
	b.Queue(qInsert, r.Scope, r.Key, r.Fingerprint, resp.Status, resp.ContentType, stored)
	return nil
}

// Complete is QueueComplete run in tx at once.
func (r *Request) Complete(ctx context.Context, tx pgx.Tx, result any) error {
	b := &pgx.Batch{}
	if err := r.QueueComplete(ctx, b, result); err != nil {
		return err
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("complete idempotency key: %w", err)
	}
	return nil
}

// IsKeyTaken reports whether err is the primary-key violation of a key
// committed by another transaction after this one looked: rerun the
// transaction, and its claim will find the completed key.
func IsKeyTaken(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && pg.Code == "23505" && pg.ConstraintName == "idempotency_keys_pkey"
}

// Lookup reads a completed key outside any transaction: the fast path for
// replays, which then never reach the handler. found=false means run the
// request (the transaction's claim decides the races).
func Lookup(ctx context.Context, db Querier, r *Request) (Response, bool, error) {
	var fp []byte
	var resp Response
	err := db.QueryRow(ctx, qLookup, r.Scope, r.Key).Scan(&fp, &resp.Status, &resp.ContentType, &resp.Body)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return Response{}, false, nil
	case err != nil:
		return Response{}, false, fmt.Errorf("look up idempotency key: %w", err)
	}
	if !bytes.Equal(fp, r.Fingerprint) {
		return Response{}, true, ErrMismatch
	}
	resp, err = r.open(ctx, resp)
	return resp, true, err
}

// Reap deletes keys created before cutoff, batch rows per statement so it
// never holds many locks or bloats one transaction, and returns the count.
func Reap(ctx context.Context, db Querier, cutoff time.Time, batch int) (int64, error) {
	if batch <= 0 {
		batch = 1000
	}
	const q = `DELETE FROM idempotency_keys WHERE ctid IN (
	             SELECT ctid FROM idempotency_keys WHERE created_at < $1 LIMIT $2)`
	var total int64
	for {
		tag, err := db.Exec(ctx, q, cutoff, batch)
		if err != nil {
			return total, fmt.Errorf("reap idempotency keys: %w", err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < int64(batch) {
			return total, nil
		}
		if err := ctx.Err(); err != nil {
			return total, err
		}
	}
}

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

// Querier is what Reap needs: a pool, a connection or a tx.
type Querier interface {
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
func (r Request) LockKey() string {
	return fmt.Sprintf("idempotency:%d:%s:%s", len(r.Scope), r.Scope, r.Key)
}

// Keyed is what a store needs to make an operation with result T
// idempotent, passed to it by the handler: the request (scope, key,
// fingerprint), how to render the result as the response to store, and
// the cipher that seals the stored body. The store claims the key first
// (QueueClaim or Claim) and records the response last (QueueComplete), in
// the transaction that does the work.
type Keyed[T any] struct {
	Request
	// Render turns the operation's result into the response to store. It
	// runs inside the transaction; the handler sends Render of the result
	// the operation returns, the same bytes.
	Render func(T) (Response, error)
	// Cipher, when set, seals the stored response body (it may hold fields
	// that are encrypted at rest elsewhere) and opens it for a replay.
	Cipher Cipher
}

// Claim is one transaction's claim of a key, queued on a batch: what the
// lock and the lookup found, read by Err once the batch has run.
type Claim struct {
	req     Request
	cipher  Cipher
	lock    bool
	found   bool
	stored  Response
	storedF []byte
}

// QueueClaim queues the claim's two statements on b (pipelined with the
// transaction's first reads); call Err on the claim after the batch ran.
func (k Keyed[T]) QueueClaim(b *pgx.Batch) *Claim {
	c := &Claim{req: k.Request, cipher: k.Cipher}
	b.Queue(qLock, k.LockKey()).QueryRow(func(row pgx.Row) error { return row.Scan(&c.lock) })
	b.Queue(qLookup, k.Scope, k.Key).QueryRow(func(row pgx.Row) error {
		c.found = true
		err := row.Scan(&c.storedF, &c.stored.Status, &c.stored.ContentType, &c.stored.Body)
		if errors.Is(err, pgx.ErrNoRows) {
			c.found = false
			return nil
		}
		return err
	})
	return c
}

// Err interprets the claim: nil means this transaction owns the key and
// must complete it; otherwise ErrInFlight, ErrMismatch or *Replay, and the
// caller rolls back.
func (c *Claim) Err(ctx context.Context) error {
	switch {
	case !c.lock:
		return ErrInFlight
	case c.found:
		if !bytes.Equal(c.storedF, c.req.Fingerprint) {
			return ErrMismatch
		}
		resp := c.stored
		if c.cipher != nil {
			body, err := c.cipher.Open(ctx, c.req.Scope, c.req.Key, resp.Body)
			if err != nil {
				return fmt.Errorf("open stored response: %w", err)
			}
			resp.Body = body
		}
		return &Replay{Response: resp}
	default:
		return nil
	}
}

// Claim runs the claim in tx without batching.
func (k Keyed[T]) Claim(ctx context.Context, tx pgx.Tx) error {
	b := &pgx.Batch{}
	c := k.QueueClaim(b)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("claim idempotency key: %w", err)
	}
	return c.Err(ctx)
}

// QueueComplete renders result, seals it and queues on b the insert that
// records it as the key's response. The insert is the unique constraint
// that guarantees one execution per key.
func (k Keyed[T]) QueueComplete(ctx context.Context, b *pgx.Batch, result T) error {
	resp, err := k.Render(result)
	if err != nil {
		return fmt.Errorf("render idempotent response: %w", err)
	}
	stored := resp.Body
	if k.Cipher != nil {
		if stored, err = k.Cipher.Seal(ctx, k.Scope, k.Key, resp.Body); err != nil {
			return fmt.Errorf("seal stored response: %w", err)
		}
	}
	b.Queue(qInsert, k.Scope, k.Key, k.Fingerprint, resp.Status, resp.ContentType, stored)
	return nil
}

// IsKeyTaken reports whether err is the primary-key violation of a key
// committed by another transaction after this one looked: rerun the
// transaction, and its claim will find the completed key.
func IsKeyTaken(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && pg.Code == "23505" && pg.ConstraintName == "idempotency_keys_pkey"
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

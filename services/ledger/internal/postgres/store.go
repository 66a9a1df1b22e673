// Package postgres is the ledger's Store on a pgx pool: accounts, the
// double-entry Post, the outbox and the idempotency keys, all in the
// ledger database. SQL is visible as constants; driver errors become the
// domain's errors here and nowhere else.
//
// Isolation: READ COMMITTED, with the two accounts of a transfer locked by
// one SELECT ... ORDER BY id FOR UPDATE. Locks are always taken in id
// order, so A->B and B->A wait for each other instead of deadlocking, and
// the balance read under the lock is the balance written. SERIALIZABLE
// would give the same result but abort and retry every conflicting pair,
// which a hot account turns into a retry storm. See docs/ledger.md.
package postgres

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/strata-ref/strata/libs/idempotency"
	"github.com/strata-ref/strata/libs/pgstore"
	"github.com/strata-ref/strata/services/ledger/internal/ledger"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrations is the embedded schema, applied by pgstore.Open at start.
func Migrations() fs.FS {
	sub, _ := fs.Sub(migrations, "migrations")
	return sub
}

// MaxAttempts bounds how often a transaction that lost a serialization or
// deadlock race (40001, 40P01) is run again.
const MaxAttempts = 5

// Store implements ledger.Store.
type Store struct {
	pool *pgxpool.Pool
	// BeforeCommit, when set, runs after every write of a Post and before
	// its commit: the tests' crash point (a failure here must leave no
	// transfer and a retryable key).
	BeforeCommit func(ctx context.Context) error
}

var _ ledger.Store = (*Store)(nil)

// New returns a Store on pool.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

const accountCols = `id::text, owner, kind, currency, balance, region, name_ct, name_dek, coalesce(name_kek, ''), created_at`

func scanAccount(row pgx.Row) (ledger.AccountRecord, error) {
	var a ledger.AccountRecord
	err := row.Scan(&a.ID, &a.Owner, &a.Kind, &a.Currency, &a.Balance, &a.Region,
		&a.Name.Ciphertext, &a.Name.WrappedKey, &a.Name.KEKID, &a.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return a, ledger.ErrNotFound
	}
	return a, err
}

// CreateAccount implements ledger.Store.
func (s *Store) CreateAccount(ctx context.Context, a ledger.Account, name ledger.Sealed, key *idempotency.Keyed[ledger.Account]) error {
	const q = `INSERT INTO accounts (id, owner, kind, currency, balance, region, name_ct, name_dek, name_kek, created_at)
	           VALUES ($1, $2, 'customer', $3, 0, $4, $5, $6, $7, $8)`
	return s.inTx(ctx, func(tx pgx.Tx) error {
		if key != nil {
			if err := key.Claim(ctx, tx); err != nil {
				return err
			}
		}
		b := &pgx.Batch{}
		b.Queue(q, a.ID, a.Owner, a.Currency, a.Region, name.Ciphertext, name.WrappedKey, name.KEKID, a.CreatedAt)
		if key != nil {
			if err := key.QueueComplete(ctx, b, a); err != nil {
				return err
			}
		}
		return tx.SendBatch(ctx, b).Close()
	})
}

// Account implements ledger.Store.
func (s *Store) Account(ctx context.Context, id string) (ledger.AccountRecord, error) {
	const q = `SELECT ` + accountCols + ` FROM accounts WHERE id = $1`
	a, err := scanAccount(s.pool.QueryRow(ctx, q, id))
	return a, translate("get account", err)
}

// AccountsByOwner implements ledger.Store.
func (s *Store) AccountsByOwner(ctx context.Context, owner string) ([]ledger.AccountRecord, error) {
	const q = `SELECT ` + accountCols + ` FROM accounts WHERE owner = $1 AND kind = 'customer' ORDER BY created_at, id LIMIT 1000`
	rows, err := s.pool.Query(ctx, q, owner)
	if err != nil {
		return nil, translate("list accounts", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ledger.AccountRecord, error) { return scanAccount(r) })
	return out, translate("list accounts", err)
}

// Post implements ledger.Store. Two round trips: one pipelined batch that
// opens the transaction (BEGIN rides in it), claims the idempotency key and
// locks both accounts in id order; then, after the domain's decision, one
// batch with every write and the COMMIT. No lock is held while the client or
// any other service is waited for, and the account locks are held for one
// round trip plus the commit. (With BeforeCommit set, the tests' crash
// point, the COMMIT goes on its own after the hook.)
func (s *Store) Post(ctx context.Context, p ledger.Posting, key *idempotency.Keyed[ledger.Transfer], decide func(from, to ledger.Account) (ledger.Transfer, error)) (ledger.Transfer, error) {
	// Both rows in one statement, ordered by id: the lock order is the
	// same for every transaction, whichever way the money flows.
	// $2 is the idempotency key's lock (idempotency.Request.LockKey): a
	// request whose key is in flight locks no account, so it answers 409 at
	// once instead of queueing behind the request it duplicates. Nor does a
	// request whose key is already completed ($4, $5: scope and key): it is
	// a replay, answered from the claim's lookup, and waits for no transfer
	// on its accounts. (Same snapshot rule as the claim: this statement
	// starts after the advisory lock was granted, so it sees a key
	// committed before.)
	// The two ids are two parameters, not an array: Postgres then plans the
	// prepared statement once (a generic plan, estimated at two rows like a
	// custom one) instead of planning it again on every call, which cost
	// about a tenth of Postgres's CPU per transfer.
	const qLock = `SELECT ` + accountCols + ` FROM accounts
	               WHERE id IN ($1::uuid, $3::uuid) AND ($2 = '' OR (pg_try_advisory_xact_lock(hashtextextended($2, 0))
	                 AND NOT EXISTS (SELECT 1 FROM idempotency_keys WHERE scope = $4 AND key = $5)))
	               ORDER BY id FOR UPDATE`
	const qLockDeposit = `SELECT ` + accountCols + ` FROM accounts
	                      WHERE (id = $1 OR (kind = 'settlement' AND currency = $3))
	                        AND ($2 = '' OR (pg_try_advisory_xact_lock(hashtextextended($2, 0))
	                          AND NOT EXISTS (SELECT 1 FROM idempotency_keys WHERE scope = $4 AND key = $5)))
	                      ORDER BY id FOR UPDATE`
	// Every write of the transfer in one statement of data-modifying CTEs:
	// both balances, the transfer, its two postings and the outbox event.
	// Each part runs exactly once and to completion whether or not another
	// reads it, all with the same snapshot; the foreign keys (postings to
	// their transfer, both to the accounts) are checked at the statement's
	// end, when every row is in. One statement instead of four is less work
	// for Postgres per transfer (see docs/ledger.md, "Throughput").
	const qWrite = `WITH balances AS (
	                  UPDATE accounts SET balance = balance + d.delta
	                  FROM (VALUES ($1::uuid, $2::bigint), ($3::uuid, $4::bigint)) AS d(id, delta)
	                  WHERE accounts.id = d.id),
	                transfer AS (
	                  INSERT INTO transfers (id, kind, from_account_id, to_account_id, amount, currency, memo_ct, memo_dek, memo_kek, created_at)
	                  VALUES ($5, $6, $1, $3, $4, $7, $8, $9, nullif($10, ''), $11)),
	                postings AS (
	                  INSERT INTO postings (transfer_id, account_id, amount, currency, balance_after, created_at)
	                  VALUES ($5, $1, $2, $7, $12, $11), ($5, $3, $4, $7, $13, $11))
	                INSERT INTO outbox (event_id, type, payload, traceparent) VALUES ($14, $15, $16, $17)`

	var out ledger.Transfer
	err := s.inPipelinedTx(ctx, func(tx *pipelinedTx) error {
		b := tx.Begin()
		var claim *idempotency.Claim
		var lockKey, scope, name string
		if key != nil {
			claim = key.QueueClaim(b)
			lockKey, scope, name = key.LockKey(), key.Scope, key.Key
		}
		var locked []ledger.Account
		collect := func(rows pgx.Rows) error {
			for rows.Next() {
				a, err := scanAccount(rows)
				if err != nil {
					return err
				}
				locked = append(locked, a.Account)
			}
			return rows.Err()
		}
		if p.From == "" {
			b.Queue(qLockDeposit, binaryUUID(p.To), lockKey, p.Currency, scope, name).Query(collect)
		} else {
			b.Queue(qLock, binaryUUID(p.From), lockKey, binaryUUID(p.To), scope, name).Query(collect)
		}
		if err := tx.Send(ctx, b); err != nil {
			return err
		}
		if claim != nil {
			if err := claim.Err(ctx); err != nil {
				return err
			}
		}
		from, to, ok := pick(locked, p)
		if !ok {
			return ledger.ErrNotFound
		}
		t, err := decide(from, to)
		if err != nil {
			return err
		}
		eventID := uuid.New()
		ev, err := json.Marshal(ledger.TransferPosted{EventID: eventID.String(), Type: ledger.EventTransferPosted,
			OccurredAt: t.CreatedAt, TransferID: t.ID, FromAccountID: from.ID, ToAccountID: to.ID,
			Amount: t.Amount, Currency: t.Currency, FromOwner: from.Owner, ToOwner: to.Owner})
		if err != nil {
			return err
		}

		w := &pgx.Batch{}
		w.Queue(qWrite, binaryUUID(from.ID), -t.Amount, binaryUUID(to.ID), t.Amount, binaryUUID(t.ID), t.Kind, t.Currency, p.Memo.Ciphertext, p.Memo.WrappedKey, p.Memo.KEKID,
			t.CreatedAt, from.Balance-t.Amount, to.Balance+t.Amount, eventID, ledger.EventTransferPosted, ev, ledger.TraceParent(ctx))
		if key != nil {
			if err := key.QueueComplete(ctx, w, t); err != nil {
				return err
			}
		}
		if s.BeforeCommit != nil {
			if err := tx.Send(ctx, w); err != nil {
				return err
			}
			if err := s.BeforeCommit(ctx); err != nil {
				return err
			}
			w = &pgx.Batch{}
		}
		if err := tx.Commit(ctx, w); err != nil {
			return err
		}
		out = t
		return nil
	})
	return out, err
}

// binaryUUID returns id as a uuid.UUID, which pgx sends in binary: a Go
// string always goes as text, and Postgres would parse it again on every
// call. An id that is not a UUID stays a string, for Postgres to refuse
// (22P02, "not found").
func binaryUUID(id string) any {
	if u, err := uuid.Parse(id); err == nil {
		return u
	}
	return id
}

// pick finds the posting's two accounts among the locked rows.
func pick(locked []ledger.Account, p ledger.Posting) (from, to ledger.Account, ok bool) {
	var haveFrom, haveTo bool
	for _, a := range locked {
		switch {
		case a.ID == p.To:
			to, haveTo = a, true
		case p.From == "" && a.Kind == ledger.KindSettlement, a.ID == p.From:
			from, haveFrom = a, true
		}
	}
	return from, to, haveFrom && haveTo
}

const transferCols = `id::text, kind, from_account_id::text, to_account_id::text, amount, currency, memo_ct, memo_dek, coalesce(memo_kek, ''), created_at`

// Transfer implements ledger.Store.
func (s *Store) Transfer(ctx context.Context, id string) (ledger.TransferRecord, error) {
	const q = `SELECT ` + transferCols + ` FROM transfers WHERE id = $1`
	var t ledger.TransferRecord
	err := s.pool.QueryRow(ctx, q, id).Scan(&t.ID, &t.Kind, &t.FromAccountID, &t.ToAccountID, &t.Amount, &t.Currency,
		&t.Memo.Ciphertext, &t.Memo.WrappedKey, &t.Memo.KEKID, &t.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return t, ledger.ErrNotFound
	}
	return t, translate("get transfer", err)
}

// Entries implements ledger.Store.
func (s *Store) Entries(ctx context.Context, accountID string, before int64, limit int) ([]ledger.Entry, error) {
	const q = `SELECT id, transfer_id::text, account_id::text, amount, currency, balance_after, created_at
	           FROM postings WHERE account_id = $1 AND ($2::bigint = 0 OR id < $2) ORDER BY id DESC LIMIT $3`
	rows, err := s.pool.Query(ctx, q, accountID, before, limit)
	if err != nil {
		return nil, translate("list entries", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ledger.Entry, error) {
		var e ledger.Entry
		err := r.Scan(&e.ID, &e.TransferID, &e.AccountID, &e.Amount, &e.Currency, &e.BalanceAfter, &e.CreatedAt)
		return e, err
	})
	return out, translate("list entries", err)
}

// inTx runs fn in a READ COMMITTED transaction, again (at most MaxAttempts
// times, with a short jittered pause) when it lost a serialization or
// deadlock race or found its idempotency key committed by another request
// meanwhile (the rerun then replays that request's response).
func (s *Store) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return retryTx(ctx, func() error {
		return pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, fn)
	})
}

// retryTx runs one transaction attempt up to MaxAttempts times while it
// fails for a retryable reason, pausing a little longer, with jitter, each
// time.
func retryTx(ctx context.Context, attempt func() error) error {
	for n := 1; ; n++ {
		err := attempt()
		if err == nil || n == MaxAttempts || !retryable(err) {
			return translate("transaction", err)
		}
		pause := time.Duration(n) * time.Duration(1+rand.IntN(5)) * time.Millisecond
		select {
		case <-ctx.Done():
			return translate("transaction", ctx.Err())
		case <-time.After(pause):
		}
	}
}

// pipelinedTx is a READ COMMITTED transaction on one pooled connection
// whose BEGIN is queued in front of its first batch and whose COMMIT
// behind its last, so neither costs a round trip of its own (pgx's Begin
// and Commit each wait for the server). A batch runs as one pipeline with
// one Sync: after an error Postgres skips the rest of it, COMMIT included,
// and the transaction stays open and aborted until the ROLLBACK that
// inPipelinedTx sends.
type pipelinedTx struct {
	conn *pgxpool.Conn
	open bool // BEGIN was sent and no COMMIT succeeded
	sent int  // batches that ran
}

const (
	qBegin  = `BEGIN ISOLATION LEVEL READ COMMITTED`
	qCommit = `COMMIT`
)

// Begin returns the first batch, with BEGIN queued.
func (t *pipelinedTx) Begin() *pgx.Batch {
	b := &pgx.Batch{}
	b.Queue(qBegin)
	t.open = true
	return b
}

// Send runs b inside the transaction.
func (t *pipelinedTx) Send(ctx context.Context, b *pgx.Batch) error {
	if err := t.conn.SendBatch(ctx, b).Close(); err != nil {
		return err
	}
	t.sent++
	return nil
}

// Commit runs b with COMMIT queued behind it.
func (t *pipelinedTx) Commit(ctx context.Context, b *pgx.Batch) error {
	var status pgconn.CommandTag
	b.Queue(qCommit).Exec(func(tag pgconn.CommandTag) error { status = tag; return nil })
	if err := t.Send(ctx, b); err != nil {
		return err
	}
	// COMMIT of a transaction that failed unnoticed answers ROLLBACK.
	if status.String() != "COMMIT" {
		return fmt.Errorf("commit: server answered %q", status.String())
	}
	t.open = false
	return nil
}

// inPipelinedTx is inTx for a pipelinedTx: fn runs with a connection of
// its own, the transaction is rolled back when fn fails, and runs again
// under the same rules as inTx.
func (s *Store) inPipelinedTx(ctx context.Context, fn func(*pipelinedTx) error) error {
	return retryTx(ctx, func() error { return s.runPipelined(ctx, fn) })
}

func (s *Store) runPipelined(ctx context.Context, fn func(*pipelinedTx) error) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// Release destroys a connection that is still in a transaction or
	// broken, so a failed ROLLBACK leaks nothing into the pool.
	defer conn.Release()
	tx := &pipelinedTx{conn: conn}
	err = fn(tx)
	if err != nil && tx.sent == 0 && pgstore.ConnLost(ctx, s.pool, conn) {
		// The first batch found its connection dead: Postgres restarted
		// (or dropped it) since the pool last used it, and pgxpool pings
		// only connections idle for over a second. Nothing of the
		// transaction can have committed, so it runs again (ConnLost has
		// reset the pool: the other dead connections go at once).
		return fmt.Errorf("%w: %v", errConnLost, err)
	}
	if err != nil && tx.open {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, rerr := conn.Exec(rctx, "ROLLBACK"); rerr != nil {
			_ = conn.Conn().Close(rctx) // never hand out a connection in an unknown state
		}
	}
	return err
}

// errConnLost marks a transaction attempt whose connection was found dead
// before anything of it could commit.
var errConnLost = errors.New("connection lost before the transaction's first answer")

func retryable(err error) bool {
	if errors.Is(err, errConnLost) {
		return true
	}
	var pg *pgconn.PgError
	if errors.As(err, &pg) && (pg.Code == "40001" || pg.Code == "40P01") {
		return true
	}
	return idempotency.IsKeyTaken(err)
}

// translate maps driver errors to the domain's; domain and idempotency
// errors pass through unchanged.
func translate(op string, err error) error {
	if err == nil {
		return nil
	}
	var pg *pgconn.PgError
	switch {
	case errors.As(err, &pg) && pg.ConstraintName == "customer_balance_not_negative":
		return fmt.Errorf("%s: %w", op, ledger.ErrInsufficientFunds)
	case errors.As(err, &pg) && pg.Code == "22P02": // invalid uuid text
		return fmt.Errorf("%s: %w", op, ledger.ErrNotFound)
	case errors.As(err, &pg) && pg.Code == "40001", errors.As(err, &pg) && pg.Code == "40P01":
		return fmt.Errorf("%s: retries exhausted: %w", op, ledger.ErrUnavailable)
	case pgstore.ServerGone(err):
		return fmt.Errorf("%s: %v: %w", op, err, ledger.ErrUnavailable)
	case errors.As(err, &pg):
		return fmt.Errorf("%s: %w", op, err)
	case pgconn.Timeout(err), isConnError(err), errors.Is(err, errConnLost):
		return fmt.Errorf("%s: %v: %w", op, err, ledger.ErrUnavailable)
	default:
		return err
	}
}

func isConnError(err error) bool {
	var ce *pgconn.ConnectError
	return errors.As(err, &ce) || pgconn.SafeToRetry(err) || errors.Is(err, context.DeadlineExceeded)
}

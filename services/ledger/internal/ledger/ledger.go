// Package ledger is the domain of the ledger service: accounts, double-entry
// transfers and deposits, and the rules that guard them (who may move what,
// currencies, no customer balance below zero).
//
// Money moves only through Post: one transfer, two postings that sum to
// zero, both balance updates and the transfer.posted outbox event, all in
// one database transaction that the Store owns. The domain's rules run
// inside that transaction on the locked rows, through the decide callback.
// Sensitive fields (account name, memo) reach the Store only sealed by the
// envelope package. An idempotent request's key (idempotency.Keyed) is
// passed to the Store with the operation, which claims and completes it in
// the same transaction. This package imports no gin and no pgx.
// See docs/ledger.md.
package ledger

import (
	"context"
	"errors"
	"time"

	"github.com/strata-ref/strata/libs/idempotency"
)

// Kinds of account. The settlement account (one per currency) is the
// bank's side of every deposit and the only account that may go negative.
const (
	KindCustomer   = "customer"
	KindSettlement = "settlement"
)

// Kinds of transfer.
const (
	TransferKind = "transfer"
	DepositKind  = "deposit"
)

// Account is one ledger account. Balance is in minor units of Currency.
type Account struct {
	ID        string
	Owner     string // user id (sub); "bank" for settlement accounts
	Name      string
	Currency  string
	Balance   int64
	Region    string // the owner's region claim when the account was opened
	Kind      string
	CreatedAt time.Time
}

// Transfer is one posted movement of money between two accounts.
type Transfer struct {
	ID            string
	FromAccountID string
	ToAccountID   string
	Amount        int64
	Currency      string
	Memo          string
	Kind          string
	CreatedAt     time.Time
}

// Entry is one posting: one side of a transfer on one account.
type Entry struct {
	ID           int64
	TransferID   string
	AccountID    string
	Amount       int64 // signed: negative leaves the account
	Currency     string
	BalanceAfter int64
	CreatedAt    time.Time
}

// TransferPosted is the outbox event, in the analytics ingestion contract's
// shape (POST /internal/events).
type TransferPosted struct {
	EventID       string    `json:"event_id"`
	Type          string    `json:"type"`
	OccurredAt    time.Time `json:"occurred_at"`
	TransferID    string    `json:"transfer_id"`
	FromAccountID string    `json:"from_account_id"`
	ToAccountID   string    `json:"to_account_id"`
	Amount        int64     `json:"amount"`
	Currency      string    `json:"currency"`
	FromOwner     string    `json:"from_owner"`
	ToOwner       string    `json:"to_owner"`
}

// EventTransferPosted is TransferPosted's type.
const EventTransferPosted = "transfer.posted"

var (
	// ErrNotFound: no such resource, or one the caller may not see (404).
	ErrNotFound = errors.New("not found")
	// ErrForbidden: the caller may see the resource but not do this (403).
	ErrForbidden = errors.New("forbidden")
	// ErrInsufficientFunds: the debit would take a customer balance below
	// zero (422).
	ErrInsufficientFunds = errors.New("insufficient funds")
	// ErrCurrencyMismatch: the accounts or the request disagree on the
	// currency (422).
	ErrCurrencyMismatch = errors.New("currency mismatch")
	// ErrSessionEnded: the token's session was revoked or expired (401).
	ErrSessionEnded = errors.New("session is no longer active")
	// ErrUnavailable: a dependency (database, KMS, session service) cannot
	// be reached; nothing was written (503).
	ErrUnavailable = errors.New("dependency unavailable")
	// ErrIntegrity: stored data failed authentication (a ciphertext moved
	// to another row, a tampered wrapped key) (500, logged loudly).
	ErrIntegrity = errors.New("stored data failed integrity check")
)

// InvalidError is a request that breaks a validation rule (400).
type InvalidError struct{ Reason string }

func (e *InvalidError) Error() string { return "invalid request: " + e.Reason }

func invalid(reason string) error { return &InvalidError{Reason: reason} }

// Sealed is an encrypted field with its record's wrapped data key.
type Sealed struct {
	Ciphertext []byte
	WrappedKey []byte
	KEKID      string
}

// AccountRecord is an account as stored: the name sealed.
type AccountRecord struct {
	Account // Name empty
	Name    Sealed
}

// TransferRecord is a transfer as stored: the memo sealed (empty Sealed for
// no memo).
type TransferRecord struct {
	Transfer // Memo empty
	Memo     Sealed
}

// Posting asks the Store to move Amount from From to To. From empty means
// the settlement account of Currency (a deposit).
type Posting struct {
	ID        string
	From, To  string
	Amount    int64
	Currency  string
	Kind      string
	Memo      Sealed
	CreatedAt time.Time
}

// Store is the ledger's persistence (Postgres).
type Store interface {
	// CreateAccount inserts a customer account. a carries the plaintext for
	// the response; only name is stored. A non-nil key is claimed and
	// completed with a's response in the same transaction.
	CreateAccount(ctx context.Context, a Account, name Sealed, key *idempotency.Keyed[Account]) error
	Account(ctx context.Context, id string) (AccountRecord, error)
	AccountsByOwner(ctx context.Context, owner string) ([]AccountRecord, error)
	// Post runs one double-entry transfer in one transaction: it locks both
	// accounts in a deterministic order, calls decide with the locked rows
	// (decide applies the rules and returns the transfer to record, or an
	// error that rolls everything back), then writes the transfer, both
	// postings, both balances and the transfer.posted outbox event. A
	// non-nil key is claimed in the same transaction before the locks and
	// completed with the transfer's response before the commit.
	// Serialization failures and deadlocks are retried a bounded number of
	// times.
	Post(ctx context.Context, p Posting, key *idempotency.Keyed[Transfer], decide func(from, to Account) (Transfer, error)) (Transfer, error)
	Transfer(ctx context.Context, id string) (TransferRecord, error)
	// Entries lists an account's postings, newest first, with id < before
	// (0: from the newest).
	Entries(ctx context.Context, accountID string, before int64, limit int) ([]Entry, error)
}

// Sessions answers whether a token's session is still alive: nil, or
// ErrSessionEnded, or ErrUnavailable.
type Sessions interface {
	Alive(ctx context.Context, sid string) error
}

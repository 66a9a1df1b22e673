// Package analytics is the domain of the analytics service: account
// activity events (what happened to an account, newest first) and
// per-day transfer totals for auditors, ingested at a high write rate from
// two sources: clients (POST /v1/events) and the ledger's outbox relay
// (POST /internal/events, mTLS).
//
// The store is Cassandra (internal/cassandra): eventually consistent,
// written idempotently (the event id is part of every primary key), so an
// event delivered twice is stored once. This package declares the Store it
// needs, validates every event before a byte is written, and wraps every
// store call in a timeout inside a circuit breaker; it knows nothing of
// gocql or gin. See docs/analytics.md.
package analytics

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Event types. The ledger's types arrive only on the internal, mTLS-only
// route; clients may post only the ClientTypes, so a customer can never
// forge a posted transfer into anyone's activity.
const (
	TypeTransferPosted = "transfer.posted"
	TypeAccountOpened  = "account.opened"
)

// ClientTypes are the event types POST /v1/events accepts.
var ClientTypes = []string{"account.viewed", "statement.downloaded", "transfer.viewed"}

// LedgerTypes are the event types POST /internal/events accepts.
var LedgerTypes = []string{TypeTransferPosted, TypeAccountOpened}

// Roles that matter here.
const (
	RoleAdmin   = "admin"
	RoleAuditor = "auditor"
)

// Event is one row of an account's activity.
type Event struct {
	EventID      string            `json:"event_id"`
	Type         string            `json:"type"`
	OccurredAt   time.Time         `json:"occurred_at"`
	AccountID    string            `json:"account_id"`
	TransferID   string            `json:"transfer_id,omitempty"`
	Amount       int64             `json:"amount,omitempty"` // minor units, always positive; Direction says which way
	Currency     string            `json:"currency,omitempty"`
	Counterparty string            `json:"counterparty,omitempty"` // the other account of a transfer
	Direction    string            `json:"direction,omitempty"`    // "debit" or "credit" for transfers
	Attributes   map[string]string `json:"attributes,omitempty"`
}

// Row is an event as written for one account; Owner, when set, records who
// owns the account (learnt from the ledger, never from a client).
type Row struct {
	Event
	Owner string
}

// Rollup is one posted transfer in the auditors' per-day totals. Keyed by
// transfer id, so writing it twice changes nothing.
type Rollup struct {
	Day        time.Time
	TransferID string
	Amount     int64
	Currency   string
	OccurredAt time.Time
}

// Write is everything one ingestion call stores.
type Write struct {
	Rows    []Row
	Rollups []Rollup
}

// Position is where an activity read resumes: a day partition and the
// store's paging state inside it. The zero Position starts at the newest day.
type Position struct {
	Day   time.Time
	State []byte
}

// IsZero reports whether p is the start (or, as a next position, the end).
func (p Position) IsZero() bool { return p.Day.IsZero() }

// Totals sums posted transfers in one currency.
type Totals struct {
	Currency string `json:"currency"`
	Count    int64  `json:"count"`
	Amount   int64  `json:"amount"`
}

// DayTotals is one day of transfer totals, one entry per currency.
type DayTotals struct {
	Day    string   `json:"day"` // YYYY-MM-DD, UTC
	Totals []Totals `json:"totals"`
}

// Stats answers GET /v1/stats/transfers.
type Stats struct {
	From   string      `json:"from"`
	To     string      `json:"to"`
	Days   []DayTotals `json:"days"`
	Totals []Totals    `json:"totals"`
}

// Page is one page of an account's activity.
type Page struct {
	Events   []Event `json:"events"`
	NextPage string  `json:"next_page"` // opaque cursor; empty on the last page
}

// Caller is the authenticated principal of a request, as this domain needs it.
type Caller struct {
	Subject string
	Roles   []string
	// SessionID is the token's SSO session; writes check it is still alive.
	SessionID string
}

// Sessions answers whether a user's session is still alive before a write
// (authn.SessionCheck): nil, or an error wrapping authn.ErrSessionEnded
// (401) or authn.ErrSessionUnknown (503; the write fails closed).
type Sessions interface {
	Alive(ctx context.Context, sid string) error
}

// HasRole reports whether c holds any of roles.
func (c Caller) HasRole(roles ...string) bool {
	return slices.ContainsFunc(roles, func(r string) bool { return slices.Contains(c.Roles, r) })
}

var (
	// ErrInvalid: the request is malformed (a *ValidationError says where).
	ErrInvalid = errors.New("invalid request")
	// ErrNotFound: no such account for this caller (unknown or not theirs).
	ErrNotFound = errors.New("not found")
	// ErrUnknownAccount: a client event names an account the caller does
	// not own (or analytics has not heard of yet).
	ErrUnknownAccount = errors.New("unknown account")
	// ErrForbidden: the caller's role may not use this operation.
	ErrForbidden = errors.New("forbidden")
	// ErrUnavailable: Cassandra cannot be reached or is overloaded; retry later.
	ErrUnavailable = errors.New("event store unavailable")
)

// ValidationError names the offending event and field; it is safe to show
// to the client and wraps ErrInvalid.
type ValidationError struct {
	Index  int // -1 for the request as a whole
	Field  string
	Reason string
}

func (e *ValidationError) Error() string {
	if e.Index < 0 {
		return fmt.Sprintf("%s: %s", e.Field, e.Reason)
	}
	return fmt.Sprintf("events[%d].%s: %s", e.Index, e.Field, e.Reason)
}

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *ValidationError) Unwrap() error { return ErrInvalid }

// Store is the event store (Cassandra). Writes are idempotent: appending
// the same Write twice leaves the same rows.
type Store interface {
	// Append stores rows, the per-account day index and rollups.
	Append(ctx context.Context, w Write) error
	// Owner returns the account's owner, ErrNotFound if unknown.
	Owner(ctx context.Context, accountID string) (string, error)
	// TypesAt returns, by event id, the type of each row already stored
	// under one of rows' keys (account, day, occurred_at, event_id).
	TypesAt(ctx context.Context, rows []Row) (map[string]string, error)
	// Activity returns up to limit events from at onwards (newest first)
	// and where the next page starts (zero: no more).
	Activity(ctx context.Context, accountID string, at Position, limit int) ([]Event, Position, error)
	// TransferTotals sums the posted transfers of one UTC day by currency.
	TransferTotals(ctx context.Context, day time.Time) ([]Totals, error)
}

// Day is the UTC calendar day of t, the time component of every partition key.
func Day(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

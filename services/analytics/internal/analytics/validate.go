package analytics

import (
	"regexp"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Limits bound what one request may carry. They keep one request's write
// fan-out, and one row's size, small and predictable.
const (
	MaxClientBatch    = 500
	MaxLedgerBatch    = 1000
	MaxAttributes     = 16
	MaxAttributeValue = 256
	// MaxAmount is 10^15 minor units per event, so a day's sum of a
	// realistic volume cannot overflow int64.
	MaxAmount = 1_000_000_000_000_000
	// Clock bounds on occurred_at: a little future skew, and how late an
	// event may arrive. The ledger's outbox may hold events through a long
	// analytics outage, so it gets a much longer window than clients.
	MaxFutureSkew = 5 * time.Minute
	MaxClientAge  = 7 * 24 * time.Hour
	MaxLedgerAge  = 30 * 24 * time.Hour
)

var (
	idPattern       = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	ownerPattern    = regexp.MustCompile(`^[A-Za-z0-9@._:-]{1,128}$`)
	currencyPattern = regexp.MustCompile(`^[A-Z]{3}$`)
	attrKeyPattern  = regexp.MustCompile(`^[a-z][a-z0-9_.]{0,31}$`)
	dayLayout       = "2006-01-02"
)

// ClientEvent is one event in POST /v1/events.
type ClientEvent struct {
	EventID    string            `json:"event_id"`
	Type       string            `json:"type"`
	OccurredAt time.Time         `json:"occurred_at"`
	AccountID  string            `json:"account_id"`
	TransferID string            `json:"transfer_id,omitempty"`
	Amount     int64             `json:"amount,omitempty"`
	Currency   string            `json:"currency,omitempty"`
	Attributes map[string]string `json:"attributes,omitempty"`
}

// LedgerEvent is one event in POST /internal/events, written by the
// ledger's outbox relay. transfer.posted uses the transfer fields;
// account.opened uses account_id, owner and currency.
type LedgerEvent struct {
	EventID       string    `json:"event_id"`
	Type          string    `json:"type"`
	OccurredAt    time.Time `json:"occurred_at"`
	TransferID    string    `json:"transfer_id,omitempty"`
	FromAccountID string    `json:"from_account_id,omitempty"`
	ToAccountID   string    `json:"to_account_id,omitempty"`
	Amount        int64     `json:"amount,omitempty"`
	Currency      string    `json:"currency,omitempty"`
	FromOwner     string    `json:"from_owner,omitempty"`
	ToOwner       string    `json:"to_owner,omitempty"`
	AccountID     string    `json:"account_id,omitempty"`
	Owner         string    `json:"owner,omitempty"`
}

func bad(i int, field, reason string) error {
	return &ValidationError{Index: i, Field: field, Reason: reason}
}

// canonicalUUID accepts only the 36-character form and returns it lowercased.
func canonicalUUID(s string) (string, bool) {
	if len(s) != 36 {
		return "", false
	}
	u, err := uuid.Parse(s)
	if err != nil {
		return "", false
	}
	return u.String(), true
}

func checkTime(i int, t, now time.Time, maxAge time.Duration) error {
	switch {
	case t.IsZero():
		return bad(i, "occurred_at", "required (RFC 3339)")
	case t.After(now.Add(MaxFutureSkew)):
		return bad(i, "occurred_at", "more than 5 minutes in the future")
	case t.Before(now.Add(-maxAge)):
		return bad(i, "occurred_at", "older than "+maxAge.String())
	}
	return nil
}

func checkMoney(i int, amount int64, currency string, required bool) error {
	switch {
	case amount < 0 || amount > MaxAmount:
		return bad(i, "amount", "must be between 0 and 10^15 minor units")
	case required && amount == 0:
		return bad(i, "amount", "must be positive")
	case (amount > 0 || required) && !currencyPattern.MatchString(currency):
		return bad(i, "currency", "must be an ISO 4217 code")
	case amount == 0 && currency != "" && !currencyPattern.MatchString(currency):
		return bad(i, "currency", "must be an ISO 4217 code")
	}
	return nil
}

func checkBatch(n, max int) error {
	switch {
	case n == 0:
		return bad(-1, "events", "at least one event is required")
	case n > max:
		return bad(-1, "events", "at most "+strconv.Itoa(max)+" events per request")
	}
	return nil
}

// PlanClient validates a client batch and returns the rows it writes. The
// caller's ownership of each account is checked separately (it needs the
// store).
func PlanClient(evs []ClientEvent, now time.Time) (Write, error) {
	if err := checkBatch(len(evs), MaxClientBatch); err != nil {
		return Write{}, err
	}
	w := Write{Rows: make([]Row, 0, len(evs))}
	seen := make(map[string]bool, len(evs))
	for i, e := range evs {
		id, ok := canonicalUUID(e.EventID)
		if !ok {
			return Write{}, bad(i, "event_id", "must be a UUID")
		}
		if !slices.Contains(ClientTypes, e.Type) {
			return Write{}, bad(i, "type", "unknown event type")
		}
		if err := checkTime(i, e.OccurredAt, now, MaxClientAge); err != nil {
			return Write{}, err
		}
		if !idPattern.MatchString(e.AccountID) {
			return Write{}, bad(i, "account_id", "must be 1-64 of [A-Za-z0-9_-]")
		}
		if e.TransferID != "" && !idPattern.MatchString(e.TransferID) {
			return Write{}, bad(i, "transfer_id", "must be 1-64 of [A-Za-z0-9_-]")
		}
		if err := checkMoney(i, e.Amount, e.Currency, false); err != nil {
			return Write{}, err
		}
		if len(e.Attributes) > MaxAttributes {
			return Write{}, bad(i, "attributes", "at most 16 entries")
		}
		for k, v := range e.Attributes {
			if !attrKeyPattern.MatchString(k) {
				return Write{}, bad(i, "attributes", "keys must match [a-z][a-z0-9_.]{0,31}")
			}
			if len(v) > MaxAttributeValue || !utf8.ValidString(v) {
				return Write{}, bad(i, "attributes", "values must be UTF-8 of at most 256 bytes")
			}
		}
		if seen[id] {
			continue // a retried event inside one batch: stored once anyway
		}
		seen[id] = true
		w.Rows = append(w.Rows, Row{Event: Event{EventID: id, Type: e.Type, OccurredAt: e.OccurredAt.UTC().Truncate(time.Millisecond),
			AccountID: e.AccountID, TransferID: e.TransferID, Amount: e.Amount, Currency: e.Currency, Attributes: e.Attributes}})
	}
	return w, nil
}

// PlanLedger validates a ledger batch. A posted transfer becomes one row
// per account (debit for the payer, credit for the payee, each carrying its
// owner) and one rollup row for the auditors.
func PlanLedger(evs []LedgerEvent, now time.Time) (Write, error) {
	if err := checkBatch(len(evs), MaxLedgerBatch); err != nil {
		return Write{}, err
	}
	w := Write{Rows: make([]Row, 0, 2*len(evs))}
	seen := make(map[string]bool, len(evs))
	for i, e := range evs {
		id, ok := canonicalUUID(e.EventID)
		if !ok {
			return Write{}, bad(i, "event_id", "must be a UUID")
		}
		if err := checkTime(i, e.OccurredAt, now, MaxLedgerAge); err != nil {
			return Write{}, err
		}
		at := e.OccurredAt.UTC().Truncate(time.Millisecond)
		switch e.Type {
		case TypeTransferPosted:
			for _, f := range []struct{ name, v string }{{"transfer_id", e.TransferID}, {"from_account_id", e.FromAccountID}, {"to_account_id", e.ToAccountID}} {
				if !idPattern.MatchString(f.v) {
					return Write{}, bad(i, f.name, "must be 1-64 of [A-Za-z0-9_-]")
				}
			}
			if e.FromAccountID == e.ToAccountID {
				return Write{}, bad(i, "to_account_id", "must differ from from_account_id")
			}
			if !ownerPattern.MatchString(e.FromOwner) {
				return Write{}, bad(i, "from_owner", "must be a user id")
			}
			if !ownerPattern.MatchString(e.ToOwner) {
				return Write{}, bad(i, "to_owner", "must be a user id")
			}
			if err := checkMoney(i, e.Amount, e.Currency, true); err != nil {
				return Write{}, err
			}
			if e.AccountID != "" || e.Owner != "" {
				return Write{}, bad(i, "account_id", "not used by transfer.posted")
			}
			if seen[id] {
				continue
			}
			seen[id] = true
			base := Event{EventID: id, Type: e.Type, OccurredAt: at, TransferID: e.TransferID, Amount: e.Amount, Currency: e.Currency}
			debit, credit := base, base
			debit.AccountID, debit.Counterparty, debit.Direction = e.FromAccountID, e.ToAccountID, "debit"
			credit.AccountID, credit.Counterparty, credit.Direction = e.ToAccountID, e.FromAccountID, "credit"
			w.Rows = append(w.Rows, Row{Event: debit, Owner: e.FromOwner}, Row{Event: credit, Owner: e.ToOwner})
			w.Rollups = append(w.Rollups, Rollup{Day: Day(at), TransferID: e.TransferID, Amount: e.Amount, Currency: e.Currency, OccurredAt: at})
		case TypeAccountOpened:
			if !idPattern.MatchString(e.AccountID) {
				return Write{}, bad(i, "account_id", "must be 1-64 of [A-Za-z0-9_-]")
			}
			if !ownerPattern.MatchString(e.Owner) {
				return Write{}, bad(i, "owner", "must be a user id")
			}
			if e.Currency != "" && !currencyPattern.MatchString(e.Currency) {
				return Write{}, bad(i, "currency", "must be an ISO 4217 code")
			}
			if e.TransferID != "" || e.FromAccountID != "" || e.ToAccountID != "" || e.Amount != 0 || e.FromOwner != "" || e.ToOwner != "" {
				return Write{}, bad(i, "type", "account.opened carries only account_id, owner and currency")
			}
			if seen[id] {
				continue
			}
			seen[id] = true
			w.Rows = append(w.Rows, Row{Event: Event{EventID: id, Type: e.Type, OccurredAt: at, AccountID: e.AccountID, Currency: e.Currency}, Owner: e.Owner})
		default:
			return Write{}, bad(i, "type", "unknown event type")
		}
	}
	return w, nil
}

// ParseDay parses a YYYY-MM-DD query parameter as a UTC day.
func ParseDay(s string) (time.Time, bool) {
	t, err := time.Parse(dayLayout, s)
	return t, err == nil
}

package ledger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/strata-ref/strata/libs/authn"
	"github.com/strata-ref/strata/libs/crypto/envelope"
	"github.com/strata-ref/strata/libs/idempotency"
)

// Limits on what a request may carry.
const (
	MaxAmount     = int64(1e15) // minor units; far beyond any real transfer, far below int64 overflow
	MaxNameLength = 200
	MaxMemoLength = 500
)

// Currencies the ledger keeps (ISO 4217); each has a settlement account.
var Currencies = map[string]bool{"EUR": true, "USD": true, "GBP": true, "CHF": true, "JPY": true}

// Tables and columns named in the encryption's associated data.
const (
	accountsTable  = "accounts"
	transfersTable = "transfers"
	nameColumn     = "name"
	memoColumn     = "memo"
)

var idPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// Service is the ledger's use cases, each on behalf of an authenticated
// principal.
type Service struct {
	store    Store
	seal     *envelope.Envelope
	authz    Authorizer
	sessions Sessions
	now      func() time.Time
	log      *slog.Logger
}

// Config wires a Service.
type Config struct {
	Store      Store
	Envelope   *envelope.Envelope
	Authorizer Authorizer
	Sessions   Sessions
	Now        func() time.Time
	Logger     *slog.Logger
}

// NewService returns the ledger service.
func NewService(cfg Config) *Service {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Service{store: cfg.Store, seal: cfg.Envelope, authz: cfg.Authorizer, sessions: cfg.Sessions, now: cfg.Now, log: cfg.Logger}
}

// OpenAccount opens an account in the caller's name and region. A non-nil
// key makes it idempotent: the store claims it with the account's insert.
func (s *Service) OpenAccount(ctx context.Context, p authn.Principal, currency, name string, key *idempotency.Keyed[Account]) (Account, error) {
	if !Currencies[currency] {
		return Account{}, invalid("currency must be one of the supported ISO 4217 codes")
	}
	if name == "" || len(name) > MaxNameLength || !utf8.ValidString(name) {
		return Account{}, invalid(fmt.Sprintf("name must be 1-%d bytes of UTF-8", MaxNameLength))
	}
	a := Account{ID: newID(), Owner: p.Subject, Name: name, Currency: currency, Region: p.Region,
		Kind: KindCustomer, CreatedAt: s.now().UTC().Truncate(time.Microsecond)}
	if !s.authz.Allowed(ctx, p, ActionOpen, resourceOf(a), s.now()) {
		return Account{}, ErrForbidden
	}
	if err := s.alive(ctx, p); err != nil {
		return Account{}, err
	}
	sealed, err := s.sealField(ctx, accountsTable, a.ID, nameColumn, name)
	if err != nil {
		return Account{}, err
	}
	if err := s.store.CreateAccount(ctx, a, sealed, key); err != nil {
		return Account{}, fmt.Errorf("open account: %w", err)
	}
	return a, nil
}

// Account returns one account the caller may read.
func (s *Service) Account(ctx context.Context, p authn.Principal, id string) (Account, error) {
	if !idPattern.MatchString(id) {
		return Account{}, ErrNotFound
	}
	rec, err := s.store.Account(ctx, id)
	if err != nil {
		return Account{}, err
	}
	if !s.authz.Allowed(ctx, p, ActionRead, resourceOf(rec.Account), s.now()) {
		return Account{}, ErrNotFound
	}
	return s.openAccount(ctx, rec)
}

// Accounts lists the caller's own accounts.
func (s *Service) Accounts(ctx context.Context, p authn.Principal) ([]Account, error) {
	recs, err := s.store.AccountsByOwner(ctx, p.Subject)
	if err != nil {
		return nil, err
	}
	out := make([]Account, 0, len(recs))
	for _, rec := range recs {
		a, err := s.openAccount(ctx, rec)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// TransferRequest is what a customer asks to move.
type TransferRequest struct {
	From, To string
	Amount   int64
	Currency string
	Memo     string
}

// Transfer moves money between two accounts; the caller must own From. A
// non-nil key makes it idempotent: the store claims it in the transfer's
// transaction.
func (s *Service) Transfer(ctx context.Context, p authn.Principal, in TransferRequest, key *idempotency.Keyed[Transfer]) (Transfer, error) {
	if err := validMove(in.Amount, in.Currency); err != nil {
		return Transfer{}, err
	}
	if !idPattern.MatchString(in.From) || !idPattern.MatchString(in.To) {
		return Transfer{}, ErrNotFound
	}
	if in.From == in.To {
		return Transfer{}, invalid("from_account_id and to_account_id must differ")
	}
	if len(in.Memo) > MaxMemoLength || !utf8.ValidString(in.Memo) {
		return Transfer{}, invalid(fmt.Sprintf("memo must be at most %d bytes of UTF-8", MaxMemoLength))
	}
	if err := s.alive(ctx, p); err != nil {
		return Transfer{}, err
	}
	id := newID()
	var memo Sealed
	if in.Memo != "" {
		var err error
		if memo, err = s.sealField(ctx, transfersTable, id, memoColumn, in.Memo); err != nil {
			return Transfer{}, err
		}
	}
	now := s.now()
	posting := Posting{ID: id, From: in.From, To: in.To, Amount: in.Amount, Currency: in.Currency, Kind: TransferKind,
		Memo: memo, CreatedAt: now.UTC().Truncate(time.Microsecond)}
	return s.store.Post(ctx, posting, key, func(from, to Account) (Transfer, error) {
		switch {
		case !s.authz.Allowed(ctx, p, ActionRead, resourceOf(from), now):
			return Transfer{}, ErrNotFound
		case !s.authz.Allowed(ctx, p, ActionTransfer, resourceOf(from), now):
			return Transfer{}, ErrForbidden
		case to.Kind != KindCustomer:
			return Transfer{}, ErrNotFound
		}
		return posted(posting, from, to, in.Memo)
	})
}

// Deposit brings money in from the bank's settlement account (key as for
// Transfer).
func (s *Service) Deposit(ctx context.Context, p authn.Principal, accountID string, amount int64, currency string, key *idempotency.Keyed[Transfer]) (Transfer, error) {
	if err := validMove(amount, currency); err != nil {
		return Transfer{}, err
	}
	if !idPattern.MatchString(accountID) {
		return Transfer{}, ErrNotFound
	}
	if !p.HasRole("teller") && !p.HasRole("admin") {
		return Transfer{}, ErrForbidden // RBAC first: no row is locked for a caller who can never deposit
	}
	if err := s.alive(ctx, p); err != nil {
		return Transfer{}, err
	}
	now := s.now()
	posting := Posting{ID: newID(), To: accountID, Amount: amount, Currency: currency, Kind: DepositKind,
		CreatedAt: now.UTC().Truncate(time.Microsecond)}
	return s.store.Post(ctx, posting, key, func(from, to Account) (Transfer, error) {
		switch {
		case to.Kind != KindCustomer, !s.authz.Allowed(ctx, p, ActionRead, resourceOf(to), now):
			return Transfer{}, ErrNotFound
		case !s.authz.Allowed(ctx, p, ActionDeposit, resourceOf(to), now):
			return Transfer{}, ErrForbidden
		}
		return posted(posting, from, to, "")
	})
}

// posted is the rule every posting obeys, applied to the locked rows.
func posted(p Posting, from, to Account, memo string) (Transfer, error) {
	if from.Currency != p.Currency || to.Currency != p.Currency {
		return Transfer{}, ErrCurrencyMismatch
	}
	if from.Kind != KindSettlement && from.Balance < p.Amount {
		return Transfer{}, ErrInsufficientFunds
	}
	return Transfer{ID: p.ID, FromAccountID: from.ID, ToAccountID: to.ID, Amount: p.Amount, Currency: p.Currency,
		Memo: memo, Kind: p.Kind, CreatedAt: p.CreatedAt}, nil
}

// GetTransfer returns a transfer the caller may read (a party to it, or an
// auditor or admin).
func (s *Service) GetTransfer(ctx context.Context, p authn.Principal, id string) (Transfer, error) {
	if !idPattern.MatchString(id) {
		return Transfer{}, ErrNotFound
	}
	rec, err := s.store.Transfer(ctx, id)
	if err != nil {
		return Transfer{}, err
	}
	if !s.mayReadEither(ctx, p, rec.FromAccountID, rec.ToAccountID) {
		return Transfer{}, ErrNotFound
	}
	t := rec.Transfer
	if rec.Memo.Ciphertext != nil {
		if t.Memo, err = s.openField(ctx, transfersTable, t.ID, memoColumn, rec.Memo); err != nil {
			return Transfer{}, err
		}
	}
	return t, nil
}

func (s *Service) mayReadEither(ctx context.Context, p authn.Principal, ids ...string) bool {
	for _, id := range ids {
		a, err := s.store.Account(ctx, id)
		if err == nil && s.authz.Allowed(ctx, p, ActionRead, resourceOf(a.Account), s.now()) {
			return true
		}
	}
	return false
}

// PageSize is how many entries one page holds.
const PageSize = 100

// Entries returns a page of an account's postings, newest first, and the
// cursor of the next page (0: none).
func (s *Service) Entries(ctx context.Context, p authn.Principal, accountID string, before int64) ([]Entry, int64, error) {
	if _, err := s.Account(ctx, p, accountID); err != nil {
		return nil, 0, err
	}
	es, err := s.store.Entries(ctx, accountID, before, PageSize+1)
	if err != nil {
		return nil, 0, err
	}
	var next int64
	if len(es) > PageSize {
		es = es[:PageSize]
		next = es[PageSize-1].ID
	}
	return es, next, nil
}

func validMove(amount int64, currency string) error {
	if amount <= 0 || amount > MaxAmount {
		return invalid(fmt.Sprintf("amount must be a positive integer in minor units, at most %d", MaxAmount))
	}
	if !Currencies[currency] {
		return invalid("currency must be one of the supported ISO 4217 codes")
	}
	return nil
}

// alive is the stateful half of authentication for writes: the token's
// session must still exist. Fail closed: if the session service cannot
// answer, the write is refused (503), never let through.
func (s *Service) alive(ctx context.Context, p authn.Principal) error {
	if p.SessionID == "" {
		return ErrSessionEnded
	}
	if s.sessions == nil {
		return nil
	}
	return s.sessions.Alive(ctx, p.SessionID)
}

func (s *Service) sealField(ctx context.Context, table, rowID, column, plaintext string) (Sealed, error) {
	dk, err := s.seal.NewDataKey(ctx, table, rowID)
	if err != nil {
		s.log.WarnContext(ctx, "kms refused a data key; nothing written", "err", err)
		return Sealed{}, fmt.Errorf("seal %s.%s: %w", table, column, ErrUnavailable)
	}
	return Sealed{Ciphertext: dk.Seal(column, []byte(plaintext)), WrappedKey: dk.Wrapped, KEKID: dk.KEKID}, nil
}

func (s *Service) openField(ctx context.Context, table, rowID, column string, sealed Sealed) (string, error) {
	dk, err := s.seal.OpenDataKey(ctx, table, rowID, sealed.WrappedKey, sealed.KEKID)
	if err == nil {
		var pt []byte
		if pt, err = dk.Open(column, sealed.Ciphertext); err == nil {
			return string(pt), nil
		}
	}
	if errors.Is(err, envelope.ErrDecrypt) {
		s.log.ErrorContext(ctx, "stored ciphertext failed authentication", "table", table, "column", column, "row", rowID)
		return "", fmt.Errorf("open %s.%s %s: %w", table, column, rowID, ErrIntegrity)
	}
	return "", fmt.Errorf("open %s.%s: %w", table, column, ErrUnavailable)
}

func (s *Service) openAccount(ctx context.Context, rec AccountRecord) (Account, error) {
	a := rec.Account
	if rec.Kind == KindSettlement {
		a.Name = a.Currency + " settlement"
		return a, nil
	}
	name, err := s.openField(ctx, accountsTable, a.ID, nameColumn, rec.Name)
	if err != nil {
		return Account{}, err
	}
	a.Name = name
	return a, nil
}

func resourceOf(a Account) Resource {
	return Resource{Type: "Account", ID: a.ID, Owner: a.Owner, Region: a.Region}
}

// newID is a UUIDv7: time-ordered, so new rows land at the right edge of
// the primary-key index.
func newID() string { return uuid.Must(uuid.NewV7()).String() }

package ledger_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-ref/strata/libs/authn"
	"github.com/strata-ref/strata/libs/crypto/envelope"
	"github.com/strata-ref/strata/libs/idempotency"
	"github.com/strata-ref/strata/services/ledger/internal/ledger"
)

// The domain's rules (docs/ledger.md) against an in-memory Store: each runs
// in microseconds. The same rules run end to end against Postgres in
// services/ledger/ledger_test.go.

// memStore is an in-memory ledger.Store. Post follows the real one's
// contract: find the two accounts (the currency's settlement account for
// a deposit), let decide rule on them, and apply both legs or nothing.
type memStore struct {
	accounts  map[string]ledger.AccountRecord
	transfers map[string]ledger.TransferRecord
	entries   []ledger.Entry
	posts     int // calls of Post, allowed or not
	keys      []idempotency.Request
}

var _ ledger.Store = (*memStore)(nil)

func newMemStore(accounts ...ledger.Account) *memStore {
	s := &memStore{accounts: map[string]ledger.AccountRecord{}, transfers: map[string]ledger.TransferRecord{}}
	for _, a := range accounts {
		s.accounts[a.ID] = ledger.AccountRecord{Account: a}
	}
	return s
}

func (s *memStore) CreateAccount(_ context.Context, a ledger.Account, name ledger.Sealed, key *idempotency.Keyed[ledger.Account]) error {
	rec := ledger.AccountRecord{Account: a, Name: name}
	rec.Account.Name = "" // only the sealed name is stored
	s.accounts[a.ID] = rec
	if key != nil {
		s.keys = append(s.keys, key.Request)
	}
	return nil
}

func (s *memStore) Account(_ context.Context, id string) (ledger.AccountRecord, error) {
	a, ok := s.accounts[id]
	if !ok {
		return a, ledger.ErrNotFound
	}
	return a, nil
}

func (s *memStore) AccountsByOwner(_ context.Context, owner string) ([]ledger.AccountRecord, error) {
	var out []ledger.AccountRecord
	for _, a := range s.accounts {
		if a.Owner == owner && a.Kind == ledger.KindCustomer {
			out = append(out, a)
		}
	}
	return out, nil
}

func (s *memStore) Post(_ context.Context, p ledger.Posting, key *idempotency.Keyed[ledger.Transfer], decide func(from, to ledger.Account) (ledger.Transfer, error)) (ledger.Transfer, error) {
	s.posts++
	if key != nil {
		s.keys = append(s.keys, key.Request)
	}
	var from, to ledger.AccountRecord
	var haveFrom, haveTo bool
	for _, a := range s.accounts {
		switch {
		case a.ID == p.To:
			to, haveTo = a, true
		case p.From == "" && a.Kind == ledger.KindSettlement && a.Currency == p.Currency, a.ID == p.From:
			from, haveFrom = a, true
		}
	}
	if !haveFrom || !haveTo {
		return ledger.Transfer{}, ledger.ErrNotFound
	}
	t, err := decide(from.Account, to.Account)
	if err != nil {
		return ledger.Transfer{}, err
	}
	from.Balance -= t.Amount
	to.Balance += t.Amount
	s.accounts[from.ID], s.accounts[to.ID] = from, to
	s.transfers[t.ID] = ledger.TransferRecord{Transfer: t, Memo: p.Memo}
	s.entries = append(s.entries,
		ledger.Entry{ID: int64(len(s.entries) + 1), TransferID: t.ID, AccountID: from.ID, Amount: -t.Amount, Currency: t.Currency, BalanceAfter: from.Balance},
		ledger.Entry{ID: int64(len(s.entries) + 2), TransferID: t.ID, AccountID: to.ID, Amount: t.Amount, Currency: t.Currency, BalanceAfter: to.Balance})
	return t, nil
}

func (s *memStore) Transfer(_ context.Context, id string) (ledger.TransferRecord, error) {
	t, ok := s.transfers[id]
	if !ok {
		return t, ledger.ErrNotFound
	}
	return t, nil
}

func (s *memStore) Entries(_ context.Context, accountID string, before int64, limit int) ([]ledger.Entry, error) {
	var out []ledger.Entry
	for _, e := range slices.Backward(s.entries) {
		if e.AccountID == accountID && (before == 0 || e.ID < before) && len(out) < limit {
			out = append(out, e)
		}
	}
	return out, nil
}

// sessions answers Alive from a fixed error per session id (nil: alive).
type sessions map[string]error

func (s sessions) Alive(_ context.Context, sid string) error { return s[sid] }

// ownerPolicy is the policy's shape without Cedar: everyone may read and
// move money from their own accounts, auditors read everything, tellers
// and admins deposit anywhere and read what they deposit to.
var ownerPolicy = ledger.AuthorizerFunc(func(_ context.Context, p authn.Principal, action string, r ledger.Resource, _ time.Time) bool {
	own := r.Owner == p.Subject
	switch action {
	case ledger.ActionOpen:
		return p.HasRole("customer")
	case ledger.ActionRead:
		return own || p.HasRole("auditor") || p.HasRole("teller") || p.HasRole("admin")
	case ledger.ActionTransfer:
		return own && p.HasRole("customer")
	case ledger.ActionDeposit:
		return p.HasRole("teller") || p.HasRole("admin")
	}
	return false
})

const (
	aliceEUR = "00000000-0000-7000-8000-00000000000a"
	aliceUSD = "00000000-0000-7000-8000-00000000000b"
	bobEUR   = "00000000-0000-7000-8000-00000000000c"
	settEUR  = "00000000-0000-7000-8000-0000000000e0"
	settUSD  = "00000000-0000-7000-8000-0000000000e1"
	nobody   = "00000000-0000-7000-8000-0000000000ff"
)

var (
	alice   = authn.Principal{Subject: "alice", SessionID: "s-alice", Roles: []string{"customer"}, Region: "eu"}
	bob     = authn.Principal{Subject: "bob", SessionID: "s-bob", Roles: []string{"customer"}, Region: "eu"}
	carol   = authn.Principal{Subject: "carol", SessionID: "s-carol", Roles: []string{"teller"}, Region: "eu"}
	audrey  = authn.Principal{Subject: "audrey", SessionID: "s-audrey", Roles: []string{"auditor"}, Region: "eu"}
	revoked = authn.Principal{Subject: "alice", SessionID: "s-revoked", Roles: []string{"customer"}, Region: "eu"}
	cut     = authn.Principal{Subject: "alice", SessionID: "s-cut", Roles: []string{"customer"}, Region: "eu"}
	noSID   = authn.Principal{Subject: "alice", Roles: []string{"customer"}, Region: "eu"}
)

type fixture struct {
	svc   *ledger.Service
	store *memStore
}

// testEnvelope is one local keyset for the package's tests: creating a
// keyset takes longer than every rule checked with it.
var testEnvelope struct {
	once sync.Once
	dir  string
	env  *envelope.Envelope
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if testEnvelope.dir != "" {
		os.RemoveAll(testEnvelope.dir)
	}
	os.Exit(code)
}

func sharedEnvelope(t testing.TB) *envelope.Envelope {
	t.Helper()
	testEnvelope.once.Do(func() {
		dir, err := os.MkdirTemp("", "ledger-keyset")
		if err != nil {
			testEnvelope.err = err
			return
		}
		testEnvelope.dir = dir
		kms, err := envelope.OpenLocal(filepath.Join(dir, "keyset.json"), true)
		testEnvelope.env, testEnvelope.err = envelope.New(kms), err
	})
	if testEnvelope.err != nil {
		t.Fatal(testEnvelope.err)
	}
	return testEnvelope.env
}

func newFixture(t testing.TB) fixture {
	t.Helper()
	store := newMemStore(
		ledger.Account{ID: aliceEUR, Owner: "alice", Currency: "EUR", Balance: 1000, Region: "eu", Kind: ledger.KindCustomer},
		ledger.Account{ID: aliceUSD, Owner: "alice", Currency: "USD", Balance: 1000, Region: "eu", Kind: ledger.KindCustomer},
		ledger.Account{ID: bobEUR, Owner: "bob", Currency: "EUR", Balance: 0, Region: "eu", Kind: ledger.KindCustomer},
		ledger.Account{ID: settEUR, Owner: "bank", Currency: "EUR", Balance: -1000, Kind: ledger.KindSettlement},
		ledger.Account{ID: settUSD, Owner: "bank", Currency: "USD", Balance: -1000, Kind: ledger.KindSettlement},
	)
	env := sharedEnvelope(t)
	for id, rec := range store.accounts {
		if rec.Kind != ledger.KindCustomer {
			continue
		}
		// Sealed as the service seals a name: its own data key, bound to
		// the table and row, the column in the associated data.
		dk, err := env.NewDataKey(context.Background(), "accounts", id)
		if err != nil {
			t.Fatal(err)
		}
		rec.Name = ledger.Sealed{Ciphertext: dk.Seal("name", []byte("seeded")), WrappedKey: dk.Wrapped, KEKID: dk.KEKID}
		store.accounts[id] = rec
	}
	svc := ledger.NewService(ledger.Config{Store: store, Envelope: env, Authorizer: ownerPolicy, Logger: slog.New(slog.DiscardHandler),
		Sessions: sessions{"s-revoked": ledger.ErrSessionEnded, "s-cut": ledger.ErrUnavailable},
		Now:      func() time.Time { return time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC) }})
	return fixture{svc: svc, store: store}
}

// sum is the sum of every balance, settlement accounts included.
func (f fixture) sum() int64 {
	var n int64
	for _, a := range f.store.accounts {
		n += a.Balance
	}
	return n
}

// want describes an outcome: the error (nil, a sentinel or an
// *InvalidError) and whether money moved.
func checkErr(t *testing.T, err, want error) {
	t.Helper()
	var inv *ledger.InvalidError
	switch {
	case want == nil && err != nil:
		t.Fatalf("error %v, want none", err)
	case errors.As(want, &inv):
		if !errors.As(err, &inv) {
			t.Fatalf("error %v, want an invalid request (400)", err)
		}
	case !errors.Is(err, want):
		t.Fatalf("error %v, want %v", err, want)
	}
}

var errInvalid error = &ledger.InvalidError{}

func TestTransferRules(t *testing.T) {
	for _, tc := range []struct {
		name  string
		p     authn.Principal
		in    ledger.TransferRequest
		want  error
		posts int // calls reaching the store
	}{
		{"a customer moves money from her own account", alice, ledger.TransferRequest{From: aliceEUR, To: bobEUR, Amount: 300, Currency: "EUR", Memo: "rent"}, nil, 1},
		{"the whole balance may go", alice, ledger.TransferRequest{From: aliceEUR, To: bobEUR, Amount: 1000, Currency: "EUR"}, nil, 1},
		{"no customer balance below zero (422)", alice, ledger.TransferRequest{From: aliceEUR, To: bobEUR, Amount: 1001, Currency: "EUR"}, ledger.ErrInsufficientFunds, 1},
		{"the accounts' currency must match the request's (422)", alice, ledger.TransferRequest{From: aliceUSD, To: bobEUR, Amount: 1, Currency: "USD"}, ledger.ErrCurrencyMismatch, 1},
		{"zero is not an amount (400)", alice, ledger.TransferRequest{From: aliceEUR, To: bobEUR, Amount: 0, Currency: "EUR"}, errInvalid, 0},
		{"negative amounts are refused (400)", alice, ledger.TransferRequest{From: aliceEUR, To: bobEUR, Amount: -5, Currency: "EUR"}, errInvalid, 0},
		{"beyond MaxAmount (400)", alice, ledger.TransferRequest{From: aliceEUR, To: bobEUR, Amount: ledger.MaxAmount + 1, Currency: "EUR"}, errInvalid, 0},
		{"an unknown currency (400)", alice, ledger.TransferRequest{From: aliceEUR, To: bobEUR, Amount: 1, Currency: "XXX"}, errInvalid, 0},
		{"to itself (400)", alice, ledger.TransferRequest{From: aliceEUR, To: aliceEUR, Amount: 1, Currency: "EUR"}, errInvalid, 0},
		{"a memo past MaxMemoLength (400)", alice, ledger.TransferRequest{From: aliceEUR, To: bobEUR, Amount: 1, Currency: "EUR", Memo: strings.Repeat("m", ledger.MaxMemoLength+1)}, errInvalid, 0},
		{"a memo that is not UTF-8 (400)", alice, ledger.TransferRequest{From: aliceEUR, To: bobEUR, Amount: 1, Currency: "EUR", Memo: "\xff"}, errInvalid, 0},
		{"an id that is not a UUID is not found (404)", alice, ledger.TransferRequest{From: "42", To: bobEUR, Amount: 1, Currency: "EUR"}, ledger.ErrNotFound, 0},
		{"an account that does not exist (404)", alice, ledger.TransferRequest{From: aliceEUR, To: nobody, Amount: 1, Currency: "EUR"}, ledger.ErrNotFound, 1},
		{"someone else's account is not found, not forbidden (404)", bob, ledger.TransferRequest{From: aliceEUR, To: bobEUR, Amount: 1, Currency: "EUR"}, ledger.ErrNotFound, 1},
		{"auditors may read but move nothing (403)", audrey, ledger.TransferRequest{From: aliceEUR, To: bobEUR, Amount: 1, Currency: "EUR"}, ledger.ErrForbidden, 1},
		{"no transfer into a settlement account (404)", alice, ledger.TransferRequest{From: aliceEUR, To: settEUR, Amount: 1, Currency: "EUR"}, ledger.ErrNotFound, 1},
		{"a token without a session writes nothing (401)", noSID, ledger.TransferRequest{From: aliceEUR, To: bobEUR, Amount: 1, Currency: "EUR"}, ledger.ErrSessionEnded, 0},
		{"a revoked session writes nothing (401)", revoked, ledger.TransferRequest{From: aliceEUR, To: bobEUR, Amount: 1, Currency: "EUR"}, ledger.ErrSessionEnded, 0},
		{"fail closed: session service unreachable (503)", cut, ledger.TransferRequest{From: aliceEUR, To: bobEUR, Amount: 1, Currency: "EUR"}, ledger.ErrUnavailable, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			before := map[string]int64{aliceEUR: f.store.accounts[aliceEUR].Balance, bobEUR: f.store.accounts[bobEUR].Balance}
			key := &idempotency.Keyed[ledger.Transfer]{Request: idempotency.Request{Scope: tc.p.Subject, Key: "k"}}
			tr, err := f.svc.Transfer(context.Background(), tc.p, tc.in, key)
			checkErr(t, err, tc.want)
			if f.store.posts != tc.posts {
				t.Errorf("%d calls reached the store, want %d", f.store.posts, tc.posts)
			}
			if f.sum() != 0 {
				t.Errorf("balances sum to %d, want 0", f.sum())
			}
			if tc.want != nil {
				if len(f.store.transfers) != 0 || f.store.accounts[aliceEUR].Balance != before[aliceEUR] {
					t.Errorf("a refused transfer moved money")
				}
				return
			}
			if tr.Amount != tc.in.Amount || tr.FromAccountID != tc.in.From || tr.Kind != ledger.TransferKind || tr.Memo != tc.in.Memo {
				t.Errorf("transfer %+v does not match the request %+v", tr, tc.in)
			}
			if got := f.store.accounts[aliceEUR].Balance; got != before[aliceEUR]-tc.in.Amount {
				t.Errorf("source balance %d, want %d", got, before[aliceEUR]-tc.in.Amount)
			}
			if got := f.store.accounts[bobEUR].Balance; got != before[bobEUR]+tc.in.Amount {
				t.Errorf("target balance %d, want %d", got, before[bobEUR]+tc.in.Amount)
			}
			if len(f.store.keys) != 1 || f.store.keys[0].Key != "k" {
				t.Errorf("the idempotency key did not reach the store with the posting: %v", f.store.keys)
			}
			if rec := f.store.transfers[tr.ID]; tc.in.Memo != "" && (rec.Memo.Ciphertext == nil || strings.Contains(string(rec.Memo.Ciphertext), tc.in.Memo)) {
				t.Errorf("the memo reached the store in clear or not at all: %q", rec.Memo.Ciphertext)
			}
		})
	}
}

func TestDepositRules(t *testing.T) {
	admin := authn.Principal{Subject: "root", SessionID: "s-root", Roles: []string{"admin"}}
	for _, tc := range []struct {
		name     string
		p        authn.Principal
		account  string
		amount   int64
		currency string
		want     error
		posts    int
	}{
		{"a teller deposits from the settlement account", carol, aliceEUR, 500, "EUR", nil, 1},
		{"so does an admin", admin, bobEUR, 500, "EUR", nil, 1},
		{"the settlement account may go negative", carol, bobEUR, ledger.MaxAmount, "EUR", nil, 1},
		{"a customer deposits nothing, and locks no row (403)", alice, aliceEUR, 500, "EUR", ledger.ErrForbidden, 0},
		{"an auditor deposits nothing (403)", audrey, aliceEUR, 500, "EUR", ledger.ErrForbidden, 0},
		{"into a settlement account: not found (404)", carol, settEUR, 500, "EUR", ledger.ErrNotFound, 1},
		{"the account's currency must match (422)", carol, aliceUSD, 500, "EUR", ledger.ErrCurrencyMismatch, 1},
		{"an account that does not exist (404)", carol, nobody, 500, "EUR", ledger.ErrNotFound, 1},
		{"zero (400)", carol, aliceEUR, 0, "EUR", errInvalid, 0},
		{"an unknown currency (400)", carol, aliceEUR, 1, "EUR!", errInvalid, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			before := f.store.accounts[tc.account].Balance
			tr, err := f.svc.Deposit(context.Background(), tc.p, tc.account, tc.amount, tc.currency, nil)
			checkErr(t, err, tc.want)
			if f.store.posts != tc.posts {
				t.Errorf("%d calls reached the store, want %d", f.store.posts, tc.posts)
			}
			if f.sum() != 0 {
				t.Errorf("balances sum to %d, want 0", f.sum())
			}
			if tc.want == nil {
				if tr.Kind != ledger.DepositKind || tr.ToAccountID != tc.account {
					t.Errorf("deposit %+v", tr)
				}
				if got := f.store.accounts[tc.account].Balance; got != before+tc.amount {
					t.Errorf("balance %d, want %d", got, before+tc.amount)
				}
			}
		})
	}
}

func TestOpenAccountRules(t *testing.T) {
	for _, tc := range []struct {
		name, currency, accountName string
		p                           authn.Principal
		want                        error
	}{
		{"a customer opens an account in her name and region", "EUR", "Holidays", alice, nil},
		{"an unknown currency (400)", "XYZ", "Holidays", alice, errInvalid},
		{"an empty name (400)", "EUR", "", alice, errInvalid},
		{"a name past MaxNameLength (400)", "EUR", strings.Repeat("n", ledger.MaxNameLength+1), alice, errInvalid},
		{"a name that is not UTF-8 (400)", "EUR", "\xc3", alice, errInvalid},
		{"the policy decides who opens accounts (403)", "EUR", "Till", carol, ledger.ErrForbidden},
		{"a revoked session opens nothing (401)", "EUR", "Holidays", revoked, ledger.ErrSessionEnded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			n := len(f.store.accounts)
			a, err := f.svc.OpenAccount(context.Background(), tc.p, tc.currency, tc.accountName, nil)
			checkErr(t, err, tc.want)
			if tc.want != nil {
				if len(f.store.accounts) != n {
					t.Errorf("a refused account was stored")
				}
				return
			}
			rec := f.store.accounts[a.ID]
			if a.Owner != tc.p.Subject || a.Region != tc.p.Region || a.Kind != ledger.KindCustomer || a.Balance != 0 || a.Name != tc.accountName {
				t.Errorf("account %+v", a)
			}
			if rec.Name.Ciphertext == nil || strings.Contains(string(rec.Name.Ciphertext), tc.accountName) {
				t.Errorf("the name reached the store in clear or not at all")
			}
			// Read back through the service: the name opens again.
			got, err := f.svc.Account(context.Background(), tc.p, a.ID)
			if err != nil || got.Name != tc.accountName {
				t.Errorf("read back %+v, %v", got, err)
			}
		})
	}
}

func TestReadRules(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	tr, err := f.svc.Transfer(ctx, alice, ledger.TransferRequest{From: aliceEUR, To: bobEUR, Amount: 5, Currency: "EUR", Memo: "lunch"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	stranger := authn.Principal{Subject: "eve", SessionID: "s-eve", Roles: []string{"customer"}}
	for _, tc := range []struct {
		name string
		p    authn.Principal
		id   string
		want error
	}{
		{"the sender reads her transfer, memo opened", alice, tr.ID, nil},
		{"so does the receiver", bob, tr.ID, nil},
		{"and an auditor", audrey, tr.ID, nil},
		{"a stranger gets 404, not 403", stranger, tr.ID, ledger.ErrNotFound},
		{"an id that is not a UUID (404)", alice, "x", ledger.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := f.svc.GetTransfer(ctx, tc.p, tc.id)
			checkErr(t, err, tc.want)
			if tc.want == nil && got.Memo != "lunch" {
				t.Errorf("memo %q, want lunch", got.Memo)
			}
		})
	}
	if _, err := f.svc.Account(ctx, stranger, aliceEUR); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("a stranger reads alice's account: %v, want ErrNotFound", err)
	}
	accts, err := f.svc.Accounts(ctx, alice)
	if err != nil || len(accts) != 2 {
		t.Errorf("alice's accounts: %d, %v; want her 2", len(accts), err)
	}
}

// TestEntriesPages: a page holds PageSize entries, newest first, and the
// cursor of the next page is the last id shown; the last page has none.
func TestEntriesPages(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	n := ledger.PageSize + 5
	for range n {
		if _, err := f.svc.Deposit(ctx, carol, bobEUR, 1, "EUR", nil); err != nil {
			t.Fatal(err)
		}
	}
	page, next, err := f.svc.Entries(ctx, bob, bobEUR, 0)
	if err != nil || len(page) != ledger.PageSize || next != page[len(page)-1].ID {
		t.Fatalf("first page: %d entries, next %d, %v", len(page), next, err)
	}
	if page[0].ID < page[1].ID {
		t.Fatalf("not newest first: %d then %d", page[0].ID, page[1].ID)
	}
	rest, next, err := f.svc.Entries(ctx, bob, bobEUR, next)
	if err != nil || len(rest) != n-ledger.PageSize || next != 0 {
		t.Fatalf("last page: %d entries, next %d, %v; want %d and no cursor", len(rest), next, err, n-ledger.PageSize)
	}
	if _, _, err := f.svc.Entries(ctx, alice, bobEUR, 0); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("alice lists bob's entries: %v, want ErrNotFound", err)
	}
}

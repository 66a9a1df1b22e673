package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/strata-ref/strata/libs/testenv"
	"github.com/strata-ref/strata/services/ledger/internal/ledger"
	"github.com/strata-ref/strata/services/ledger/internal/postgres"
)

// TestPostRunsAgainOnAConnectionFoundDead kills the pool's connections on
// the server, as a Postgres restart does, and posts at once: the first
// transfer finds its connection dead before anything of it ran, the pool is
// reset and the transfer runs again on a new connection. No transfer fails
// and none is posted twice.
func TestPostRunsAgainOnAConnectionFoundDead(t *testing.T) {
	st, base, admin := relaySchema(t)
	ctx := context.Background()
	pool := openPool(t, st, base+"&search_path="+schema, true)
	store := postgres.New(pool)
	now := time.Now().UTC().Truncate(time.Microsecond)
	sealed := ledger.Sealed{Ciphertext: []byte{1}, WrappedKey: []byte{2}, KEKID: "test"}
	from, to := uuid.NewString(), uuid.NewString()
	for _, id := range []string{from, to} {
		if err := store.CreateAccount(ctx, ledger.Account{ID: id, Owner: "conn-test", Currency: "EUR", Region: "eu", CreatedAt: now}, sealed, nil); err != nil {
			t.Fatal(err)
		}
	}
	post := func(p ledger.Posting) error {
		_, err := store.Post(ctx, p, nil, func(f, to ledger.Account) (ledger.Transfer, error) {
			return ledger.Transfer{ID: p.ID, FromAccountID: f.ID, ToAccountID: to.ID, Amount: p.Amount, Currency: p.Currency,
				Kind: p.Kind, CreatedAt: p.CreatedAt}, nil
		})
		return err
	}
	if err := post(ledger.Posting{ID: uuid.NewString(), To: from, Amount: 1000, Currency: "EUR", Kind: ledger.DepositKind, CreatedAt: now}); err != nil {
		t.Fatal(err)
	}

	testenv.TerminateBackends(t, pool, admin) // as a Postgres restart does

	const transfers = 8
	for i := range transfers {
		if err := post(ledger.Posting{ID: uuid.NewString(), From: from, To: to, Amount: 10, Currency: "EUR", Kind: ledger.TransferKind, CreatedAt: now}); err != nil {
			t.Fatalf("transfer %d after the connections died: %v", i+1, err)
		}
	}
	var balance int64
	if err := admin.QueryRow(ctx, `SELECT balance FROM `+schema+`.accounts WHERE id = $1`, to).Scan(&balance); err != nil || balance != 10*transfers {
		t.Fatalf("balance %d, %v: want %d (each transfer exactly once)", balance, err, 10*transfers)
	}
}

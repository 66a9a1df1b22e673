package postgres

import (
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/strata-ref/strata/services/ledger/internal/ledger"
)

// TestTranslateServerGoingAway: while a primary shuts down for a failover,
// every new connection is refused with FATAL 57P03 ("the database system is
// shutting down"), inside pgx's connect error. That is a store briefly
// unavailable (503 with Retry-After), not an internal error (500).
func TestTranslateServerGoingAway(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"shutting down", &pgconn.PgError{Severity: "FATAL", Code: "57P03", Message: "the database system is shutting down"}, ledger.ErrUnavailable},
		{"shutting down, wrapped", fmt.Errorf("failed to connect: %w", &pgconn.PgError{Severity: "FATAL", Code: "57P03"}), ledger.ErrUnavailable},
		{"terminated by an administrator", &pgconn.PgError{Severity: "FATAL", Code: "57P01"}, ledger.ErrUnavailable},
		{"crash", &pgconn.PgError{Severity: "FATAL", Code: "57P02"}, ledger.ErrUnavailable},
		{"serialization, retries exhausted", &pgconn.PgError{Code: "40001"}, ledger.ErrUnavailable},
		{"overdraft", &pgconn.PgError{Code: "23514", ConstraintName: "customer_balance_not_negative"}, ledger.ErrInsufficientFunds},
	} {
		if got := translate("op", tc.err); !errors.Is(got, tc.want) {
			t.Errorf("%s: translate(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
	if got := translate("op", &pgconn.PgError{Code: "42P01"}); errors.Is(got, ledger.ErrUnavailable) {
		t.Errorf("a missing table is a bug, not an outage: %v", got)
	}
}

package pgstore

import (
	"context"
	"testing"

	"github.com/strata-ref/strata/libs/testenv"
)

// TestServerGoneResetsThePool terminates every backend of a pool on the
// server, as a restart does, then runs queries one after another: the first
// one meets the dead connection's FATAL and resets the pool, and the others
// run on new connections. Without the reset each idle connection would fail
// one query.
func TestServerGoneResetsThePool(t *testing.T) {
	st := testenv.StartStack(t, "postgres")
	ctx := context.Background()
	const conns = 4
	pool, err := Open(ctx, Config{URL: st.PGURL("ledger", "ledger_test"), TLS: st.Source(t, "ledger"), MaxConns: conns})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	admin, err := Open(ctx, Config{URL: st.PGURL("ledger", "ledger_test"), TLS: st.Source(t, "ledger"), MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()

	testenv.TerminateBackends(t, pool, admin)

	failed := 0
	for range 2 * conns {
		var one int
		if err := pool.QueryRow(ctx, `SELECT 1`).Scan(&one); err != nil {
			failed++
			t.Logf("query after the backends ended: %v", err)
		}
	}
	if failed > 1 {
		t.Errorf("%d queries failed after the pool's backends ended; want at most the one that found out", failed)
	}
}

package pgstore

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

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

	held := make([]*pgxpool.Conn, 0, conns)
	pids := make([]uint32, 0, conns)
	for range conns {
		c, err := pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		pids = append(pids, c.Conn().PgConn().PID())
	}
	for _, c := range held {
		c.Release()
	}
	if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid`, pids); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "the backends to end", func() bool {
		var n int
		return admin.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1::int[])`, pids).Scan(&n) == nil && n == 0
	})

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

package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// TerminateBackends ends on the server, through admin (another pool on a
// role allowed to), every connection pool holds, as a Postgres restart
// does, and waits until they are gone. The pool is left full of
// connections that learn they are dead only when next used.
func TerminateBackends(t testing.TB, pool, admin *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	var held []*pgxpool.Conn
	var pids []uint32
	for range pool.Config().MaxConns {
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
	WaitFor(t, 10*time.Second, "the backends to end", func() bool {
		var n int
		return admin.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1::int[])`, pids).Scan(&n) == nil && n == 0
	})
}

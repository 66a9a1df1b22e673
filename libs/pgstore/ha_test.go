package pgstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-ref/strata/libs/testenv"
)

// PGWritePauseBound is the longest a failover may stop writes through the
// multi-host URL: fencing the primary, promotion, and the pool finding the
// new primary.
const PGWritePauseBound = 10 * time.Second

func serverPort(ctx context.Context, t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var port int
	if err := pool.QueryRow(ctx, "SELECT inet_server_port()").Scan(&port); err != nil {
		t.Fatal(err)
	}
	return port
}

// TestFailoverOverMultiHostURL: a pool on the HA topology's multi-host URL
// (target_session_attrs=read-write) across `stack.sh failover postgres`:
// the lag metric names the standby; writes pause for a bounded time and
// then go to the promoted node; no acknowledged row is lost; the old
// primary is fenced and comes back as a read-only standby.
func TestFailoverOverMultiHostURL(t *testing.T) {
	h := testenv.StartHAStack(t, "postgres", "postgres-replica")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	src := h.Source(t, "ledger")
	open := func(hosts, extra string) *pgxpool.Pool {
		t.Helper()
		pool, err := Open(ctx, Config{URL: "postgres://ledger@" + hosts + "/ledger_test?sslmode=verify-full" + extra,
			TLS: src, StartTimeout: 20 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		return pool
	}
	reg := prometheus.NewPedanticRegistry()
	pool, err := Open(ctx, Config{URL: fmt.Sprintf("postgres://ledger@127.0.0.1:%d,127.0.0.1:%d/ledger_test?sslmode=verify-full&target_session_attrs=read-write", h.PGPort, h.PGReplicaPort),
		TLS: src, StartTimeout: 20 * time.Second, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	oldPort := serverPort(ctx, t, pool)
	standbyPort := h.PGPort + h.PGReplicaPort - oldPort
	oldNode, standbyNode := h.PGNode(oldPort), h.PGNode(standbyPort)
	t.Logf("primary %s (:%d), standby %s (:%d)", oldNode, oldPort, standbyNode, standbyPort)

	const table = "ha_failover_probe"
	if _, err := pool.Exec(ctx, "DROP TABLE IF EXISTS "+table+"; CREATE TABLE "+table+" (id bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = pool.Exec(ctx, "DROP TABLE IF EXISTS "+table)
	})

	// A row written on the primary appears on the hot standby.
	if _, err := pool.Exec(ctx, "INSERT INTO "+table+" (id) VALUES (0)"); err != nil {
		t.Fatal(err)
	}
	standby := open(fmt.Sprintf("127.0.0.1:%d", standbyPort), "")
	testenv.WaitFor(t, 10*time.Second, "the row to reach the standby", func() bool {
		var n int
		return standby.QueryRow(ctx, "SELECT count(*) FROM "+table+" WHERE id = 0").Scan(&n) == nil && n == 1
	})
	var inRecovery bool
	if err := standby.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil || !inRecovery {
		t.Fatalf("standby in recovery = %v, %v", inRecovery, err)
	}
	standby.Close()

	// The pool's metrics name the standby, streaming, with its lag.
	testenv.WaitFor(t, 10*time.Second, "the lag metric of the standby", func() bool {
		got := gauges(t, reg)
		secs, ok1 := got["strata_pg_replication_lag_seconds{"+standbyNode+"}"]
		_, ok2 := got["strata_pg_replication_lag_bytes{"+standbyNode+"}"]
		if got["strata_pg_replication_up"] == 1 && got["strata_pg_replicas_streaming"] == 1 && ok1 && ok2 && secs < 5 {
			t.Logf("replication metrics: %v", got)
			return true
		}
		return false
	})

	// Writes through the multi-host URL, every 10 ms, across the failover.
	var (
		mu     sync.Mutex
		acked  []testenv.Ack
		failed int
		lastEr error
	)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for id := int64(1); ; id++ {
			select {
			case <-stop:
				return
			default:
			}
			wctx, wcancel := context.WithTimeout(ctx, time.Second)
			_, err := pool.Exec(wctx, "INSERT INTO "+table+" (id) VALUES ($1)", id)
			wcancel()
			mu.Lock()
			if err == nil {
				acked = append(acked, testenv.Ack{ID: id, At: time.Now()})
			} else {
				failed++
				lastEr = err
			}
			mu.Unlock()
			time.Sleep(10 * time.Millisecond)
		}
	}()
	time.Sleep(time.Second)
	out, err := h.Script("failover", "postgres")
	t.Logf("stack.sh failover postgres:\n%s", out)
	if err != nil {
		close(stop)
		<-done
		t.Fatalf("failover: %v", err)
	}
	failoverDone := time.Now()
	// Keep writing until writes have succeeded for a second after the failover.
	testenv.WaitFor(t, 30*time.Second, "writes to succeed on the promoted node", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) > 0 && acked[len(acked)-1].At.After(failoverDone) &&
			time.Since(testenv.FirstAfter(acked, failoverDone)) > time.Second
	})
	close(stop)
	<-done

	mu.Lock()
	pause := testenv.LongestPause(acked)
	t.Logf("postgres failover: %d writes acknowledged, %d failed (last: %v); longest write pause %s",
		len(acked), failed, lastEr, pause.Round(time.Millisecond))
	fmt.Printf("postgres failover: write pause %s (bound %s)\n", pause.Round(time.Millisecond), PGWritePauseBound)
	if pause > PGWritePauseBound {
		t.Errorf("writes paused %s, over the bound %s", pause, PGWritePauseBound)
	}
	ids := make([]int64, len(acked))
	for i, a := range acked {
		ids[i] = a.ID
	}
	mu.Unlock()

	// The pool now writes to the promoted node, and every acknowledged
	// row is there.
	newPort := serverPort(ctx, t, pool)
	if newPort != standbyPort {
		t.Fatalf("writes go to :%d after the failover, want the promoted standby :%d", newPort, standbyPort)
	}
	rows, err := pool.Query(ctx, "SELECT id FROM "+table+" WHERE id = ANY($1)", ids)
	if err != nil {
		t.Fatal(err)
	}
	found := map[int64]bool{}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		found[id] = true
	}
	rows.Close()
	var lost []int64
	for _, id := range ids {
		if !found[id] {
			lost = append(lost, id)
		}
	}
	sort.Slice(lost, func(i, j int) bool { return lost[i] < lost[j] })
	if len(lost) > 0 {
		t.Errorf("%d acknowledged rows lost by the failover: %v", len(lost), lost[:min(len(lost), 20)])
	}

	// The old primary is fenced: down, with standby.signal, so even a
	// hand-run pg_ctl start would be read-only.
	if _, err := h.Script("pid", oldNode); err == nil {
		t.Errorf("%s still runs after the failover", oldNode)
	}
	oldHome := filepath.Join(h.Dir, oldNode)
	for _, f := range []string{"data/standby.signal", "FENCED"} {
		if _, err := os.Stat(filepath.Join(oldHome, f)); err != nil {
			t.Errorf("fence marker: %v", err)
		}
	}

	// `up` brings it back as a standby of the new primary, never writable.
	if out, err := h.Script("up", "postgres", "postgres-replica"); err != nil {
		t.Fatalf("stack.sh up after the failover: %v\n%s", err, out)
	}
	old := open(fmt.Sprintf("127.0.0.1:%d", oldPort), "")
	_, err = old.Exec(ctx, "INSERT INTO "+table+" (id) VALUES (-1)")
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "25006" { // read_only_sql_transaction
		t.Errorf("write on the old primary: %v, want SQLSTATE 25006 (read-only standby)", err)
	}
	if _, err := pool.Exec(ctx, "INSERT INTO "+table+" (id) VALUES (-2)"); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "the rebuilt standby to replicate the new primary", func() bool {
		var n int
		return old.QueryRow(ctx, "SELECT count(*) FROM "+table+" WHERE id = -2").Scan(&n) == nil && n == 1
	})
	testenv.WaitFor(t, 10*time.Second, "the lag metric of the rebuilt standby", func() bool {
		got := gauges(t, reg)
		_, ok := got["strata_pg_replication_lag_seconds{"+oldNode+"}"]
		return ok && got["strata_pg_replicas_streaming"] == 1
	})
}

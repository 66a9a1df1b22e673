package stack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/strata-ref/strata/libs/testenv"
)

// exec runs sql on a fresh connection to url (a multi-host URL finds the
// writable node anew each time) and returns the port that served it.
func execOn(ctx context.Context, url, sql string, args ...any) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		return 0, err
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(ctx, sql, args...); err != nil {
		return 0, err
	}
	var port int
	err = c.QueryRow(ctx, "SELECT inet_server_port()").Scan(&port)
	return port, err
}

// TestPostgresFailoverAfterCrash: the primary is killed (SIGKILL), not
// shut down; `stack.sh failover postgres` fences it anyway and promotes the
// standby. Clients on the multi-host URL (plain pgx, TLS files per host)
// resume writing on the promoted node; rows the standby had replayed before
// the crash survive (replication is asynchronous: commits of the primary's
// last moments may not). The fenced data directory, started by hand, is
// read-only, and `stack.sh up` rebuilds it as a standby of the new primary.
// The planned failover through pgstore: libs/pgstore/ha_test.go.
func TestPostgresFailoverAfterCrash(t *testing.T) {
	h := testenv.StartHAStack(t, "postgres", "postgres-replica")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	f := h.Files("ledger")
	url := func(hosts, extra string) string {
		return fmt.Sprintf("postgres://ledger@%s/ledger_test?sslmode=verify-full&sslrootcert=%s&sslcert=%s&sslkey=%s&connect_timeout=2%s",
			hosts, f.CA, f.Cert, f.Key, extra)
	}
	primary := url(fmt.Sprintf("127.0.0.1:%d,127.0.0.1:%d", h.PGPort, h.PGReplicaPort), "&target_session_attrs=read-write")
	const table = "ha_crash_probe"
	oldPort, err := execOn(ctx, primary, "DROP TABLE IF EXISTS "+table+"; CREATE TABLE "+table+" (id bigint PRIMARY KEY)")
	if err != nil {
		t.Fatal(err)
	}
	standbyPort := h.PGPort + h.PGReplicaPort - oldPort
	oldNode := h.PGNode(oldPort)
	t.Logf("primary %s (:%d), standby :%d", oldNode, oldPort, standbyPort)

	t.Cleanup(func() { _, _ = execOn(context.Background(), primary, "DROP TABLE IF EXISTS "+table) })
	const rows = 200
	if _, err := execOn(ctx, primary, "INSERT INTO "+table+" SELECT generate_series(1, $1)", rows); err != nil {
		t.Fatal(err)
	}
	standby, err := pgx.Connect(ctx, url(fmt.Sprintf("127.0.0.1:%d", standbyPort), ""))
	if err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "the standby to replay the rows", func() bool {
		var n int
		return standby.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n) == nil && n == rows
	})
	standby.Close(ctx)

	out, err := h.Script("pid", oldNode)
	pid, perr := strconv.Atoi(lastLine(string(out)))
	if err != nil || perr != nil {
		t.Fatalf("stack.sh pid %s: %v %v\n%s", oldNode, err, perr, out)
	}
	killed := time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	out, err = h.Script("failover", "postgres")
	t.Logf("stack.sh failover postgres:\n%s", out)
	if err != nil {
		t.Fatalf("failover after a crash: %v", err)
	}
	var got int
	testenv.WaitFor(t, 20*time.Second, "a write on the promoted node", func() bool {
		got, err = execOn(ctx, primary, "INSERT INTO "+table+" VALUES ($1)", rows+1)
		return err == nil
	})
	pause := time.Since(killed)
	t.Logf("postgres crash: writes back %s after the kill (failover run right after it)", pause.Round(time.Millisecond))
	fmt.Printf("postgres crash failover: writes back %s after SIGKILL\n", pause.Round(time.Millisecond))
	if got != standbyPort {
		t.Fatalf("writes go to :%d, want the promoted standby :%d", got, standbyPort)
	}
	promoted, err := pgx.Connect(ctx, primary)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	err = promoted.QueryRow(ctx, "SELECT count(*) FROM "+table+" WHERE id <= $1", rows).Scan(&n)
	promoted.Close(ctx)
	if err != nil || n != rows {
		t.Fatalf("%d of %d replicated rows on the promoted node (%v)", n, rows, err)
	}

	// Fenced: the old data directory holds standby.signal, so even started
	// by hand (outside stack.sh) it is a read-only standby, never a second
	// writable primary.
	data := filepath.Join(h.Dir, oldNode, "data")
	for _, p := range []string{filepath.Join(data, "standby.signal"), filepath.Join(h.Dir, oldNode, "FENCED")} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("fence marker: %v", err)
		}
	}
	pgCtl := func(args ...string) {
		t.Helper()
		cmd := exec.Command("runuser", append([]string{"-u", "postgres", "--", "/usr/lib/postgresql/15/bin/pg_ctl", "-D", data}, args...)...)
		cmd.Dir = "/"
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("pg_ctl %v: %v\n%s", args, err, out)
		}
	}
	pgCtl("-l", filepath.Join(data, "fenced-start.log"), "-w", "-t", "60", "start") // postgres may write there
	stopped := false
	defer func() {
		if !stopped {
			pgCtl("-m", "fast", "-w", "stop")
		}
	}()
	fenced, err := pgx.Connect(ctx, url(fmt.Sprintf("127.0.0.1:%d", oldPort), ""))
	if err != nil {
		t.Fatal(err)
	}
	_, err = fenced.Exec(ctx, "INSERT INTO "+table+" VALUES (-1)")
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "25006" {
		t.Errorf("write on the fenced old primary, started by hand: %v, want SQLSTATE 25006 (read-only)", err)
	}
	// The multi-host URL skips it: it is not read-write.
	if got, err := execOn(ctx, primary, "SELECT 1"); err != nil || got != standbyPort {
		t.Errorf("with the fenced node up, writes go to :%d (%v)", got, err)
	}
	fenced.Close(ctx)
	pgCtl("-m", "fast", "-w", "stop")
	stopped = true

	// `up` rebuilds it from the new primary and it streams again.
	if out, err := h.Script("up", "postgres", "postgres-replica"); err != nil {
		t.Fatalf("stack.sh up after the failover: %v\n%s", err, out)
	}
	if _, err := execOn(ctx, primary, "INSERT INTO "+table+" VALUES (-2)"); err != nil {
		t.Fatal(err)
	}
	rebuilt, err := pgx.Connect(ctx, url(fmt.Sprintf("127.0.0.1:%d", oldPort), ""))
	if err != nil {
		t.Fatal(err)
	}
	defer rebuilt.Close(ctx)
	testenv.WaitFor(t, 10*time.Second, "the rebuilt standby to replicate the new primary", func() bool {
		var n int
		return rebuilt.QueryRow(ctx, "SELECT count(*) FROM "+table+" WHERE id = -2").Scan(&n) == nil && n == 1
	})
}

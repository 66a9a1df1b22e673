package pgstore

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/strata-ref/strata/libs/testenv"
)

// failedStatements records every statement the server refused.
type failedStatements struct {
	mu   sync.Mutex
	errs []string
}

func (f *failedStatements) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	return ctx
}

func (f *failedStatements) TraceQueryEnd(_ context.Context, _ *pgx.Conn, d pgx.TraceQueryEndData) {
	if d.Err != nil {
		f.mu.Lock()
		f.errs = append(f.errs, d.Err.Error())
		f.mu.Unlock()
	}
}

// TestMigrateConcurrently starts replicas that migrate one fresh schema at
// the same moment, as the replicas of a service do on their first start.
// Exactly one applies the migrations and no statement fails on the server:
// a lost race on goose's version table is retried by goose, but Postgres
// logs it as an ERROR in the middle of a healthy start.
func TestMigrateConcurrently(t *testing.T) {
	st := testenv.StartStack(t, "postgres")
	ctx := context.Background()
	schema := fmt.Sprintf("migrate_%d", time.Now().UnixNano())
	cfg := Config{URL: st.PGURL("ledger", "ledger_test"), TLS: st.Source(t, "ledger"), MaxConns: 4}
	admin, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec(ctx, `CREATE SCHEMA `+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = admin.Exec(context.Background(), `DROP SCHEMA `+schema+` CASCADE`) })

	migrations := fstest.MapFS{"00001_accounts.sql": {Data: []byte(
		"-- +goose Up\nCREATE TABLE accounts (id bigint PRIMARY KEY);\n-- +goose Down\nDROP TABLE accounts;\n")}}
	const replicas = 6
	failed := &failedStatements{}
	pools := make([]*pgxpool.Pool, replicas)
	for i := range pools {
		pc, err := PoolConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		pc.ConnConfig.RuntimeParams["search_path"] = schema
		pc.ConnConfig.Tracer = failed
		if pools[i], err = pgxpool.NewWithConfig(ctx, pc); err != nil {
			t.Fatal(err)
		}
		defer pools[i].Close()
		if err := pools[i].Ping(ctx); err != nil {
			t.Fatal(err)
		}
	}
	start := make(chan struct{})
	errs := make([]error, replicas)
	var wg sync.WaitGroup
	for i, p := range pools {
		wg.Go(func() {
			<-start
			errs[i] = Migrate(ctx, p, migrations)
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("replica %d: %v", i, err)
		}
	}
	if len(failed.errs) > 0 {
		t.Errorf("%d statements failed on the server while %d replicas migrated at once:\n%v", len(failed.errs), replicas, failed.errs)
	}
	var applied int
	if err := admin.QueryRow(ctx, `SELECT count(*) FROM `+schema+`.goose_db_version WHERE version_id = 1`).Scan(&applied); err != nil {
		t.Fatal(err)
	}
	if applied != 1 {
		t.Errorf("migration 1 recorded %d times, want once", applied)
	}
}

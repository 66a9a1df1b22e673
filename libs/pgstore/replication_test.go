package pgstore

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/strata-ref/strata/libs/testenv"
)

// On the single-node stack the collector reads the primary's replication
// state through strata_ha.replication_lag() (bootstrap of stack.sh) with the
// service role's own privileges, and reports no standby. The HA topology's
// standby and its lag are tested in tools/stack (ha_postgres_test.go).
func TestReplicationCollectorSingleNode(t *testing.T) {
	st := testenv.StartStack(t, "postgres")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reg := prometheus.NewPedanticRegistry()
	pool, err := Open(ctx, Config{URL: st.PGURL("ledger", "ledger_test"), TLS: st.Source(t, "ledger"), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	want := `
# HELP strata_pg_replicas_streaming Standbys streaming WAL from the primary this service writes to.
# TYPE strata_pg_replicas_streaming gauge
strata_pg_replicas_streaming 0
# HELP strata_pg_replication_up 1 if the primary's replication state could be read at this scrape, else 0.
# TYPE strata_pg_replication_up gauge
strata_pg_replication_up 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "strata_pg_replication_up", "strata_pg_replicas_streaming"); err != nil {
		t.Fatalf("%v (is strata_ha.replication_lag() installed and granted?)", err)
	}
	if n, err := testutil.GatherAndCount(reg, "strata_pg_replication_lag_seconds"); err != nil || n != 0 {
		t.Errorf("lag series on a single node: %d, %v", n, err)
	}
	// A second pool on the same registry is refused, not silently merged.
	if _, err := Open(ctx, Config{URL: st.PGURL("ledger", "ledger_test"), TLS: st.Source(t, "ledger"), Registerer: reg}); err == nil {
		t.Error("a second replication collector registered on one registry")
	}
}

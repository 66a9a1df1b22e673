package pgstore

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-ref/strata/libs/testenv"
)

// gauges gathers reg into "name{application_name}" -> value.
func gauges(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += "{" + l.GetValue() + "}"
			}
			out[key] = m.GetGauge().GetValue()
		}
	}
	return out
}

// On the single-node stack the collector reads the primary's replication
// state through strata_ha.replication_lag() (bootstrap of stack.sh) with the
// service role's own privileges, and reports no standby. The HA topology's
// standby and its lag: ha_test.go.
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
	got := gauges(t, reg)
	if got["strata_pg_replication_up"] != 1 {
		t.Fatalf("strata_pg_replication_up = %v, want 1 (is strata_ha.replication_lag() installed and granted?); all: %v", got["strata_pg_replication_up"], got)
	}
	if v, ok := got["strata_pg_replicas_streaming"]; !ok || v != 0 || len(got) != 2 {
		t.Errorf("single node: %v, want up=1 and replicas_streaming=0 only", got)
	}
	// A second pool on the same registry is refused, not silently merged.
	if _, err := Open(ctx, Config{URL: st.PGURL("ledger", "ledger_test"), TLS: st.Source(t, "ledger"), Registerer: reg}); err == nil {
		t.Error("a second replication collector registered on one registry")
	}
}

package pgstore

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// ReplicationQueryTimeout bounds the lag query of one scrape.
const ReplicationQueryTimeout = time.Second

// replicationCollector reads, at scrape time, how far each streaming
// standby is behind the primary the pool writes to.
type replicationCollector struct {
	pool                      *pgxpool.Pool
	up, replicas, secs, bytes *prometheus.Desc
}

// NewReplicationCollector reports the standbys of the pool's primary:
//
//	strata_pg_replication_up                      1 if the lag could be read
//	strata_pg_replicas_streaming                  standbys streaming now
//	strata_pg_replication_lag_seconds{application_name}
//	strata_pg_replication_lag_bytes{application_name}
//
// It calls strata_ha.replication_lag() (deploy/native/postgres/
// replication_lag.sql), a SECURITY DEFINER view of pg_stat_replication,
// so the service role needs no monitoring privileges. Seconds are the
// standby's replay lag (0 once an idle standby has caught up); bytes are
// the WAL the primary has written that the standby has not replayed yet.
func NewReplicationCollector(pool *pgxpool.Pool) prometheus.Collector {
	label := []string{"application_name"}
	return &replicationCollector{
		pool: pool,
		up: prometheus.NewDesc("strata_pg_replication_up",
			"1 if the primary's replication state could be read at this scrape, else 0.", nil, nil),
		replicas: prometheus.NewDesc("strata_pg_replicas_streaming",
			"Standbys streaming WAL from the primary this service writes to.", nil, nil),
		secs: prometheus.NewDesc("strata_pg_replication_lag_seconds",
			"How long ago the standby replayed WAL that the primary had already flushed (replay lag).", label, nil),
		bytes: prometheus.NewDesc("strata_pg_replication_lag_bytes",
			"WAL written by the primary and not yet replayed by the standby.", label, nil),
	}
}

func (c *replicationCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.up
	ch <- c.replicas
	ch <- c.secs
	ch <- c.bytes
}

// Standby is one streaming standby as the primary sees it.
type Standby struct {
	Name       string   // application_name (the standby's node name)
	State      string   // streaming, catchup, startup, ...
	LagBytes   *float64 // WAL not yet replayed; nil while unknown
	LagSeconds float64  // replay lag; 0 once an idle standby has caught up
}

// Standbys reads the standbys of the primary pool is connected to, through
// strata_ha.replication_lag() (what the collector reports).
func Standbys(ctx context.Context, pool *pgxpool.Pool) ([]Standby, error) {
	rows, err := pool.Query(ctx, `SELECT application_name, state, lag_bytes::float8, replay_lag_seconds FROM strata_ha.replication_lag()`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var all []Standby
	for rows.Next() {
		var s Standby
		if err := rows.Scan(&s.Name, &s.State, &s.LagBytes, &s.LagSeconds); err != nil {
			return nil, err
		}
		all = append(all, s)
	}
	return all, rows.Err()
}

func (c *replicationCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), ReplicationQueryTimeout)
	defer cancel()
	all, err := Standbys(ctx, c.pool)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	streaming := 0
	seen := map[string]bool{}
	for _, s := range all {
		if s.State == "streaming" {
			streaming++
		}
		if seen[s.Name] { // two standbys with one name: report the first
			continue
		}
		seen[s.Name] = true
		ch <- prometheus.MustNewConstMetric(c.secs, prometheus.GaugeValue, s.LagSeconds, s.Name)
		if s.LagBytes != nil {
			ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, *s.LagBytes, s.Name)
		}
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	ch <- prometheus.MustNewConstMetric(c.replicas, prometheus.GaugeValue, float64(streaming))
}

package main

import (
	"strconv"
	"testing"

	"github.com/strata-ref/strata/libs/testenv"
)

func TestBoot(t *testing.T) {
	st := testenv.StartStack(t, "cassandra")
	env := st.Env("analytics")
	env["STRATA_CASSANDRA_HOSTS"] = "127.0.0.1"
	env["STRATA_CASSANDRA_PORT"] = strconv.Itoa(st.CassandraPort)
	env["STRATA_CASSANDRA_KEYSPACE"] = "analytics_test"
	testenv.CheckBoot(t, st, "analytics", run, env)
}

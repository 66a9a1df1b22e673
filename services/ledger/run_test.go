package main

import (
	"testing"

	"github.com/strata-ref/strata/libs/testenv"
)

func TestBoot(t *testing.T) {
	st := testenv.StartStack(t, "postgres")
	env := st.Env("ledger")
	env["STRATA_PG_URL"] = st.PGURL("ledger", "ledger_test")
	testenv.CheckBoot(t, st, "ledger", run, env)
}

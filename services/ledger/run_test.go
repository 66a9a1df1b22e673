package main

import (
	"path/filepath"
	"testing"

	"github.com/strata-ref/strata/libs/testenv"
)

func TestBoot(t *testing.T) {
	st := testenv.StartStack(t, "postgres")
	env := st.Env("ledger")
	env["STRATA_PG_URL"] = st.PGURL("ledger", "ledger_test")
	env["STRATA_KMS_KEYSET"] = filepath.Join(t.TempDir(), "keyset.json")
	env["STRATA_LEDGER_RELAY_DISABLED"] = "true"
	testenv.CheckBoot(t, st, "ledger", run, env)
}

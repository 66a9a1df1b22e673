package main

import (
	"testing"

	"github.com/strata-ref/strata/libs/testenv"
)

func TestBoot(t *testing.T) {
	st := testenv.StartStack(t, "postgres")
	env := st.Env("auth")
	env["STRATA_PG_URL"] = st.PGURL("auth", "auth_test")
	testenv.CheckBoot(t, st, "auth", run, env)
}

package main

import (
	"strconv"
	"testing"

	"github.com/strata-ref/strata/libs/testenv"
)

func testEnv(t *testing.T) (*testenv.Stack, map[string]string) {
	st := testenv.StartStack(t, "postgres", "redis")
	env := st.Env("session")
	env["STRATA_PG_URL"] = st.PGURL("session", "session_test")
	env["STRATA_REDIS_ADDR"] = "127.0.0.1:" + strconv.Itoa(st.RedisPort)
	return st, env
}

func TestBoot(t *testing.T) {
	st, env := testEnv(t)
	testenv.CheckBoot(t, st, "session", run, env)
}

package main

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/strata-ref/strata/libs/pgstore"
	"github.com/strata-ref/strata/libs/testenv"
	"github.com/strata-ref/strata/services/auth/internal/identity"
	"github.com/strata-ref/strata/services/auth/internal/postgres"
)

// Seeding resets a demo user's password and roles, but an operator who
// disabled the user (the demo admin, say) must find it still disabled
// after the next start.
func TestSeedKeepsDisabledUsersDisabled(t *testing.T) {
	st := testenv.StartStack(t, "postgres")
	pool, err := pgstore.Open(t.Context(), pgstore.Config{URL: st.PGURL("auth", "auth_test"), TLS: st.Source(t, "auth"),
		Migrations: postgres.Migrations()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	store := postgres.New(pool, nil)
	ctx := context.Background()
	in := identity.NewUserInput{Username: "seeded-" + uuid.NewString()[:8], Password: "strata-demo", Roles: []string{"admin"}}
	u, err := identity.NewUser(uuid.NewString(), in, time.Now().UTC())
	if err != nil {
		t.Fatal(err)
	}
	id, err := store.UpsertUser(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.SetDisabled(ctx, id, true); err != nil {
		t.Fatal(err)
	}
	if _, err := store.UpsertUser(ctx, u); err != nil { // the next start's seeding
		t.Fatal(err)
	}
	got, err := store.UserByID(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Disabled {
		t.Fatal("seeding re-enabled a disabled user")
	}
}

// `auth seed` outside dev would create admin/alice/... in production.
func TestSeedRefusedOutsideDev(t *testing.T) {
	st := testenv.StartStack(t, "postgres")
	env := st.Env("auth")
	env["STRATA_PG_URL"] = st.PGURL("auth", "auth_test")
	env["STRATA_ENV"] = "production"
	env["STRATA_DEMO_PASSWORD"] = "not-the-default-1"
	err := run(t.Context(), []string{"seed"}, func(k string) string { return env[k] }, os.Stderr)
	if err == nil || !strings.Contains(err.Error(), "STRATA_ENV=dev") {
		t.Fatalf("auth seed in production = %v; want a refusal", err)
	}
}

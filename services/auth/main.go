// Command auth runs Strata's auth service: OpenID Connect provider and policy owner: users, clients, signing keys. See docs/authentication.md.
package main

import (
	"context"
	"io"

	"github.com/strata-ref/strata/libs/config"
	"github.com/strata-ref/strata/libs/pgstore"
	"github.com/strata-ref/strata/libs/server"
)

// Port is the auth service's public port; internal is Port+1000.
const Port = 8441

type settings struct {
	server.Env
	PGURL string `env:"STRATA_PG_URL,required"`
}

func main() { server.Main("auth", run) }

func run(ctx context.Context, _ []string, getenv func(string) string, stdout io.Writer) error {
	var cfg settings
	if err := config.Load(getenv, &cfg, server.Defaults(Port)); err != nil {
		return err
	}
	kit, err := server.Setup(ctx, "auth", cfg.Env, stdout)
	if err != nil {
		return err
	}
	defer kit.Shutdown(context.Background())
	kit.Logger.Info("config", config.Attrs(&cfg)...)

	pool, err := pgstore.Open(ctx, pgstore.Config{URL: cfg.PGURL, TLS: kit.TLS})
	if err != nil {
		return err
	}
	defer pool.Close()

	srv := kit.NewServer(cfg.Env, server.Check{Name: "postgres", Ping: pool.Ping})
	return srv.Run(ctx)
}

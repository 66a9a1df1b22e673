// Command auth runs Strata's auth service: the OpenID Connect provider
// (internal/oidc) with its users, clients and signing keys in Postgres
// (internal/postgres), and the admin API (internal/httpapi).
// See docs/authentication.md.
//
//	auth                 serve (also: auth serve)
//	auth seed [-users N] create the demo users and clients, and N load-test users
//	auth rotate-keys     one signing-key rotation step
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/strata-ref/strata/libs/authn"
	"github.com/strata-ref/strata/libs/config"
	"github.com/strata-ref/strata/libs/mtls"
	"github.com/strata-ref/strata/libs/pgstore"
	"github.com/strata-ref/strata/libs/resilience"
	"github.com/strata-ref/strata/libs/server"
	"github.com/strata-ref/strata/services/auth/internal/httpapi"
	"github.com/strata-ref/strata/services/auth/internal/identity"
	"github.com/strata-ref/strata/services/auth/internal/keys"
	"github.com/strata-ref/strata/services/auth/internal/oidc"
	"github.com/strata-ref/strata/services/auth/internal/postgres"
)

// Port is the auth service's public port; internal is Port+1000.
const Port = 8441

// defaultDemoPassword is refused in production.
const defaultDemoPassword = "strata-demo"

type settings struct {
	server.Env
	PGURL  string `env:"STRATA_PG_URL,required"`
	Issuer string `env:"STRATA_AUTH_ISSUER" envDefault:"https://localhost:8441"`
	// SessionURL is the session service's internal (mTLS) listener, or a
	// comma-separated list of its replicas' (balanced, failing ones ejected).
	SessionURL string `env:"STRATA_SESSION_URL" envDefault:"https://127.0.0.1:9444"`
	// KEKFile holds the key-encryption key of the signing keys; default
	// .stack/auth/kek beside the certificates (created in dev only).
	KEKFile        string        `env:"STRATA_AUTH_KEK_FILE"`
	DemoPassword   config.Secret `env:"STRATA_DEMO_PASSWORD" envDefault:"strata-demo"`
	AccessTokenTTL time.Duration `env:"STRATA_AUTH_ACCESS_TOKEN_TTL" envDefault:"10m"`
	SessionTTL     time.Duration `env:"STRATA_AUTH_SESSION_TTL" envDefault:"8h"`
	// ConsoleURL is the web console's public origin: its redirect URIs
	// are registered under it.
	ConsoleURL string `env:"STRATA_CONSOLE_URL" envDefault:"https://127.0.0.1:8445"`
	// TrustedProxies are the reverse proxies (addresses or CIDR prefixes,
	// comma-separated) whose X-Forwarded-For names the client that sign-in
	// throttling counts; none by default (the socket peer is the client).
	TrustedProxies []string `env:"STRATA_AUTH_TRUSTED_PROXIES" envSeparator:","`
	// ReapEvery is how often expired authorization requests, code
	// tombstones, token records and empty families are deleted.
	ReapEvery time.Duration `env:"STRATA_AUTH_REAP_EVERY" envDefault:"1m"`
}

func main() { server.Main("auth", run) }

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	var cfg settings
	if len(args) > 0 && args[0] == config.VarsCommand {
		return config.PrintVars(stdout, &cfg)
	}
	if err := config.Load(getenv, &cfg, server.Defaults(Port)); err != nil {
		return err
	}
	cmd := "serve"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve", "seed", "rotate-keys":
	default:
		return fmt.Errorf("unknown command %q (serve, seed, rotate-keys)", cmd)
	}
	if cmd == "seed" && !cfg.Env.Env.IsDev() {
		return errors.New("config: auth seed creates demo users, which exist only with STRATA_ENV=dev")
	}
	kit, err := server.Setup(ctx, "auth", cfg.Env, stdout)
	if err != nil {
		return err
	}
	defer kit.Shutdown(context.Background())
	// zitadel/oidc logs only through slog.Default: route it into the
	// service's JSON logger, whose redaction drops the state and the query
	// strings its error lines carry (docs/observability.md).
	slog.SetDefault(kit.Logger)
	kit.Logger.Info("config", config.Attrs(&cfg)...)

	pool, err := pgstore.Open(ctx, pgstore.Config{URL: cfg.PGURL, TLS: kit.TLS, Migrations: postgres.Migrations(),
		TracerProvider: kit.Tracing.Provider, Registerer: kit.Registry})
	if err != nil {
		return err
	}
	defer pool.Close()
	store := postgres.New(pool, nil)
	if err := registerClients(ctx, store, consoleClient(cfg.ConsoleURL), cfg.Env.Env == "dev"); err != nil {
		return err
	}
	km, err := openKeys(ctx, cfg, store)
	if err != nil {
		return err
	}

	switch cmd {
	case "seed":
		return seed(ctx, cfg, store, args, stdout)
	case "rotate-keys":
		if err := km.Rotate(ctx); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "rotated: signing with %s; published %d keys\n", km.Signing(ctx).KeyID, len(km.Published(ctx)))
		return nil
	}
	return serve(ctx, cfg, kit, pool, store, km)
}

func serve(ctx context.Context, cfg settings, kit *server.Kit, pool *pgxpool.Pool, store *postgres.Store, km *keys.Manager) error {
	if cfg.Env.Env.IsDev() {
		if err := seedDemo(ctx, cfg, store); err != nil {
			return err
		}
	}
	proxies, err := oidc.ParseTrustedProxies(cfg.TrustedProxies)
	if err != nil {
		return fmt.Errorf("config: STRATA_AUTH_TRUSTED_PROXIES: %w", err)
	}
	sessions := oidc.NewSessionClient(kit.Client("session", cfg.SessionURL, resilience.ClientConfig{Timeout: 2 * time.Second}))
	throttle := identity.NewThrottle(identity.ThrottleConfig{}, nil)
	go throttle.Run(ctx)
	go reap(ctx, store, cfg.ReapEvery, kit.Logger)
	auth := identity.NewAuthenticator(store, throttle)
	auth.Warm()
	provider, err := oidc.New(oidc.Config{Issuer: cfg.Issuer, AccessTokenTTL: cfg.AccessTokenTTL, SessionTTL: cfg.SessionTTL,
		TrustedProxies: proxies},
		oidc.Deps{Identities: store, Tokens: store, Keys: km, Sessions: sessions, Auth: auth, Log: kit.Logger})
	if err != nil {
		return err
	}
	validator, err := authn.NewValidator(authn.Config{Issuer: cfg.Issuer, Audience: "auth", Keys: km})
	if err != nil {
		return err
	}
	alive := func(ctx context.Context, sid string) (bool, error) {
		_, ok, err := sessions.Get(ctx, sid)
		if errors.Is(err, oidc.ErrSessionsUnavailable) {
			return false, fmt.Errorf("%w: %v", identity.ErrUnavailable, err)
		}
		return ok, err
	}

	srv := kit.NewServer(cfg.Env, server.Check{Name: "postgres", Ping: pool.Ping})
	provider.RegisterPublic(srv.Public)
	provider.RegisterInternal(srv.Internal)
	httpapi.New(store, alive, provider.EndUserSessions, kit.Logger).Register(srv.Public, validator.Middleware(kit.Logger))
	return srv.Run(ctx)
}

// reap deletes expired rows every interval until ctx ends: every
// unauthenticated /oauth2/authorize stores a request, and every token a
// record, so without it the tables grow with traffic forever. Families
// are kept 48 h after their last token (refresh tokens live 24 h, SSO
// sessions 8 h).
func reap(ctx context.Context, store *postgres.Store, every time.Duration, log *slog.Logger) {
	if every <= 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := store.Reap(ctx, 48*time.Hour)
		switch {
		case err != nil && ctx.Err() == nil:
			log.WarnContext(ctx, "reaping expired rows failed", "err", err)
		case n != (identity.Reaped{}):
			log.InfoContext(ctx, "reaped expired rows", "auth_requests", n.AuthRequests, "access_tokens", n.AccessTokens,
				"refresh_tokens", n.RefreshTokens, "families", n.Families)
		}
	}
}

func openKeys(ctx context.Context, cfg settings, store *postgres.Store) (*keys.Manager, error) {
	path := cfg.KEKFile
	if path == "" {
		if !cfg.Env.Env.IsDev() {
			return nil, errors.New("config: STRATA_AUTH_KEK_FILE is required in production")
		}
		path = filepath.Join(filepath.Dir(filepath.Dir(cfg.TLSCA)), "auth", "kek")
	}
	kek, err := keys.LoadKEK(path, cfg.Env.Env.IsDev())
	if err != nil {
		return nil, err
	}
	// Retired keys stay published for the longest token lifetime (access
	// and ID tokens, 15 min at most) plus validators' leeway.
	return keys.NewManager(ctx, store, kek, keys.Config{MaxTokenLifetime: 16 * time.Minute})
}

// clients are Strata's OAuth clients (docs/authentication.md): configuration,
// so they are (re)registered at every start.
var clients = []identity.Client{
	{
		ID: "strata-cli", Kind: identity.PublicClient, AuthMethod: identity.AuthNone,
		RedirectURIs:           []string{"http://127.0.0.1:8765/callback"},
		PostLogoutRedirectURIs: []string{"http://127.0.0.1:8765/logged-out"},
		GrantTypes:             []string{"authorization_code", "refresh_token"},
		Audiences:              []string{"ledger", "analytics", "session", "auth"},
	},
	{
		ID: "ledger", Kind: identity.ServiceClient, AuthMethod: identity.AuthTLSClient, SPIFFEID: mtls.ID("ledger").String(),
		GrantTypes:        []string{"client_credentials", "urn:ietf:params:oauth:grant-type:token-exchange"},
		Audiences:         []string{"analytics", "session"},
		ExchangeAudiences: []string{"analytics"},
	},
	{
		ID: "loadtest", Kind: identity.ServiceClient, AuthMethod: identity.AuthTLSClient, SPIFFEID: mtls.ID("loadtest").String(),
		GrantTypes: []string{"client_credentials"},
		Audiences:  []string{"ledger", "analytics", "session"},
	},
}

// consoleClient is the web console: a confidential client (a backend for
// frontend) that authenticates at the token endpoint with its mTLS
// certificate and uses the code flow with PKCE for people.
func consoleClient(origin string) identity.Client {
	origin = strings.TrimSuffix(origin, "/")
	return identity.Client{
		ID: "strata-console", Kind: identity.ServiceClient, AuthMethod: identity.AuthTLSClient, SPIFFEID: mtls.ID("console").String(),
		RedirectURIs:           []string{origin + "/callback"},
		PostLogoutRedirectURIs: []string{origin + "/signed-out"},
		GrantTypes:             []string{"authorization_code", "refresh_token"},
		Audiences:              []string{"ledger", "analytics", "session", "auth"},
	}
}

// devConsoleOrigins is how many console origins dev keeps registered.
const devConsoleOrigins = 32

// registerClients upserts the clients. In dev the console's redirect URIs
// are added to those already registered (the newest devConsoleOrigins):
// test systems booted side by side on free ports share one database, and
// each console must keep its own redirect URI while another auth starts.
func registerClients(ctx context.Context, store *postgres.Store, console identity.Client, dev bool) error {
	if old, err := store.ClientByID(ctx, console.ID); dev && err == nil {
		keep := func(registered, added []string) []string {
			out := slices.DeleteFunc(slices.Clone(registered), func(u string) bool { return slices.Contains(added, u) })
			out = append(out, added...)
			return out[max(0, len(out)-devConsoleOrigins):]
		}
		console.RedirectURIs = keep(old.RedirectURIs, console.RedirectURIs)
		console.PostLogoutRedirectURIs = keep(old.PostLogoutRedirectURIs, console.PostLogoutRedirectURIs)
	}
	for _, c := range append(slices.Clone(clients), console) {
		if err := store.UpsertClient(ctx, c); err != nil {
			return err
		}
	}
	return nil
}

// demoUsers are the demo accounts of docs/authentication.md, one per role.
var demoUsers = []identity.NewUserInput{
	{Username: "alice", Roles: []string{"customer"}, Region: "eu"},
	{Username: "bob", Roles: []string{"customer"}, Region: "us"},
	{Username: "carol", Roles: []string{"teller"}, Region: "eu"},
	{Username: "dave", Roles: []string{"auditor"}},
	{Username: "admin", Roles: []string{"admin"}},
}

func demoPassword(cfg settings) (string, error) {
	pw := cfg.DemoPassword.Reveal()
	if !cfg.Env.Env.IsDev() && pw == defaultDemoPassword {
		return "", errors.New("config: STRATA_DEMO_PASSWORD must not be the default in production")
	}
	return pw, nil
}

// seedDemo creates the demo users or resets them to the configured password
// (dev only). A demo user an operator disabled stays disabled.
func seedDemo(ctx context.Context, cfg settings, store *postgres.Store) error {
	pw, err := demoPassword(cfg)
	if err != nil {
		return err
	}
	for _, in := range demoUsers {
		in.Password = pw
		u, err := identity.NewUser(uuid.NewString(), in, time.Now().UTC())
		if err != nil {
			return fmt.Errorf("demo user %s: %w", in.Username, err)
		}
		if _, err := store.UpsertUser(ctx, u); err != nil {
			return err
		}
	}
	return nil
}

// seed is `auth seed [-users N]`: the demo users, and N load-test users
// (load-000001 ...) with the demo password. One argon2id hash is computed
// and shared by the load-test users: a load test needs thousands of users
// in seconds, not thousands of 20 ms hashes; they are throwaway accounts
// (never do this for real ones: a shared salt shows equal passwords).
func seed(ctx context.Context, cfg settings, store *postgres.Store, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("seed", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	n := fs.Int("users", 0, "load-test users to create")
	prefix := fs.String("prefix", "load-", "username prefix of load-test users")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	if err := seedDemo(ctx, cfg, store); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "seeded demo users %d and clients %d\n", len(demoUsers), len(clients)+1)
	if *n <= 0 {
		return nil
	}
	pw, err := demoPassword(cfg)
	if err != nil {
		return err
	}
	hash, err := identity.HashPassword(pw, identity.DefaultParams)
	if err != nil {
		return err
	}
	start := time.Now()
	const batch = 10000
	regions := []string{"eu", "us"}
	for i := 0; i < *n; i += batch {
		users := make([]identity.User, 0, min(batch, *n-i))
		for j := i; j < min(i+batch, *n); j++ {
			users = append(users, identity.User{ID: uuid.NewString(), Username: fmt.Sprintf("%s%06d", *prefix, j+1),
				PasswordHash: hash, Roles: []string{"customer"}, Region: regions[j%2]})
		}
		if err := store.BulkCreateUsers(ctx, users); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "seeded %d load-test users (%s000001..) in %s\n", *n, *prefix, time.Since(start).Round(time.Millisecond))
	return nil
}

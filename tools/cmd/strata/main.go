// Command strata is Strata's command line for people: sign in with the
// loopback authorization code flow and PKCE (RFC 8252, client strata-cli),
// then call the ledger, analytics and session APIs, or print an access
// token for curl.
//
//	strata login                      print a URL to open, wait for the sign-in
//	strata token                      an access token (refreshed when needed)
//	strata accounts                   your accounts
//	strata open-account --currency EUR --name savings
//	strata transfer --from ID --to ID --amount 1250 --currency EUR [--memo ..] [--idempotency-key K]
//	strata activity --account ID [--limit N] [--page CURSOR]
//	strata sessions                   your sessions
//	strata sessions revoke SID        end one
//	strata logout                     forget the stored tokens
//
// Every command takes --output table|json. Bad usage exits 2; a refusal by
// a service prints its problem detail (and the Retry-After wait) and exits
// 1. Tokens are stored with mode 0600 in <user config dir>/strata.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := (&app{getenv: os.Getenv, configDir: os.UserConfigDir, stdout: os.Stdout, stderr: os.Stderr}).run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

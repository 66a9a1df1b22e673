package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-ref/strata/libs/oidclogin"
	"github.com/strata-ref/strata/libs/testenv"
)

// cli runs commands the way a person does, against one system and one
// config directory.
type cli struct {
	t      *testing.T
	env    map[string]string
	config string
	signIn func(url string) // plays the person's browser during login
}

type result struct {
	code           int
	stdout, stderr string
}

func (c *cli) run(args ...string) result {
	c.t.Helper()
	var out, errb bytes.Buffer
	a := &app{getenv: func(k string) string { return c.env[k] }, configDir: func() (string, error) { return c.config, nil },
		stdout: &out, stderr: &errb, opened: c.signIn}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code := a.run(ctx, args)
	return result{code, out.String(), errb.String()}
}

// must runs a command that has to succeed.
func (c *cli) must(args ...string) string {
	c.t.Helper()
	r := c.run(args...)
	if r.code != 0 {
		c.t.Fatalf("strata %s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

func (c *cli) json(v any, args ...string) {
	c.t.Helper()
	out := c.must(append(args, "--output", "json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		c.t.Fatalf("strata %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// TestCommandLine signs a person in through the loopback flow and uses
// every command against the real system (four services, mTLS, the real
// stores), including the refusals a person meets.
func TestCommandLine(t *testing.T) {
	st := testenv.StartStack(t)
	sys := testenv.StartSystem(t, st, nil)
	if out, err := sys.Auth.Seed(t, 0); err != nil {
		t.Fatalf("seed: %v\n%s", err, out)
	}
	password := "strata-demo"
	browser := st.PublicClient(t)
	c := &cli{t: t, config: t.TempDir(), env: map[string]string{
		"STRATA_ISSUER": sys.Issuer, "STRATA_LEDGER_URL": testenv.URL(sys.Ledger.Public),
		"STRATA_ANALYTICS_URL": testenv.URL(sys.Analytics.Public), "STRATA_SESSION_URL": testenv.URL(sys.Session.Public),
		"STRATA_CA_FILE": filepath.Join(st.Certs, "ca.pem")}}
	// The person opens the printed URL, signs in as alice, and the
	// browser follows the redirect to the command's loopback listener.
	c.signIn = func(u string) {
		loc, err := oidclogin.SignIn(context.Background(), browser, u, "alice", password)
		if err != nil {
			t.Errorf("sign in: %v", err)
			return
		}
		resp, err := http.Get(loc.String())
		if err != nil {
			t.Errorf("redirect to the command: %v", err)
			return
		}
		resp.Body.Close()
	}

	t.Run("bad input is a usage error, exit 2", func(t *testing.T) {
		for _, args := range [][]string{{}, {"frobnicate"}, {"transfer", "--from", "a", "--to", "b", "--amount", "12.50", "--currency", "EUR"},
			{"transfer", "--to", "b", "--amount", "1", "--currency", "EUR"}, {"accounts", "--output", "yaml"}, {"activity"},
			{"sessions", "revoke"}, {"accounts", "--no-such-flag"}} {
			if r := c.run(args...); r.code != 2 || !strings.Contains(r.stderr, "Usage: strata") {
				t.Errorf("strata %q: exit %d, stderr %q; want 2 and the usage", args, r.code, r.stderr)
			}
		}
	})

	t.Run("before login, commands say to sign in", func(t *testing.T) {
		if r := c.run("accounts"); r.code != 1 || !strings.Contains(r.stderr, "strata login") {
			t.Fatalf("exit %d, %q", r.code, r.stderr)
		}
	})

	r := c.run("login")
	if r.code != 0 || !strings.Contains(r.stderr, sys.Issuer+"/oauth2/authorize?") || !strings.Contains(r.stdout, "Signed in as") {
		t.Fatalf("login: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	t.Run("tokens are stored 0600 in a 0700 directory", func(t *testing.T) {
		for path, want := range map[string]os.FileMode{filepath.Join(c.config, "strata"): 0o700, filepath.Join(c.config, "strata", "tokens.json"): 0o600} {
			fi, err := os.Stat(path)
			if err != nil || fi.Mode().Perm() != want {
				t.Fatalf("%s: %v %v, want %v", path, fi.Mode().Perm(), err, want)
			}
		}
	})
	tok := strings.TrimSpace(c.must("token"))
	if strings.Count(tok, ".") != 2 {
		t.Fatalf("token: %q", tok)
	}

	var a, b struct{ ID, Currency string }
	c.json(&a, "open-account", "--currency", "EUR", "--name", "main")
	c.json(&b, "open-account", "--currency", "EUR", "--name", "savings")
	var list struct{ Accounts []struct{ ID string } }
	c.json(&list, "accounts")
	if len(list.Accounts) < 2 {
		t.Fatalf("accounts: %+v", list)
	}
	if out := c.must("accounts"); !strings.Contains(out, a.ID) || !strings.Contains(out, "savings") {
		t.Fatalf("accounts table:\n%s", out)
	}

	t.Run("a refusal prints the service's problem detail, exit 1", func(t *testing.T) {
		r := c.run("transfer", "--from", a.ID, "--to", b.ID, "--amount", "100", "--currency", "EUR")
		if r.code != 1 || !strings.Contains(r.stderr, "ledger refused the request: 422") || !strings.Contains(r.stderr, "insufficient funds") {
			t.Fatalf("exit %d, %q", r.code, r.stderr)
		}
	})

	// An admin deposits into alice's account (tellers only in business hours).
	admin, err := (&oidclogin.Client{Issuer: sys.Issuer, ClientID: clientID, RedirectURI: "http://127.0.0.1:8765/callback", HTTP: browser}).Login(context.Background(), "admin", password)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, testenv.URL(sys.Ledger.Public)+"/v1/deposits",
		strings.NewReader(`{"account_id":"`+a.ID+`","amount":10000,"currency":"EUR"}`))
	req.Header.Set("Authorization", "Bearer "+admin.AccessToken)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", newKey())
	resp, err := browser.Do(req)
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("deposit: %v %v", resp, err)
	}
	resp.Body.Close()

	t.Run("transfer with an idempotency key is done once", func(t *testing.T) {
		var first, again struct{ ID string }
		c.json(&first, "transfer", "--from", a.ID, "--to", b.ID, "--amount", "2500", "--currency", "EUR", "--memo", "rent", "--idempotency-key", "cli-test-"+a.ID)
		c.json(&again, "transfer", "--from", a.ID, "--to", b.ID, "--amount", "2500", "--currency", "EUR", "--memo", "rent", "--idempotency-key", "cli-test-"+a.ID)
		if first.ID == "" || again.ID != first.ID {
			t.Fatalf("first %q, again %q", first.ID, again.ID)
		}
		var acct struct {
			Accounts []struct {
				ID      string
				Balance int64
			}
		}
		c.json(&acct, "accounts")
		for _, x := range acct.Accounts {
			if x.ID == a.ID && x.Balance != 7500 {
				t.Fatalf("balance %d after one transfer of 2500 out of 10000", x.Balance)
			}
		}
	})

	t.Run("activity shows the transfer", func(t *testing.T) {
		testenv.WaitFor(t, 20*time.Second, "the transfer in analytics", func() bool {
			out := c.run("activity", "--account", a.ID)
			return out.code == 0 && strings.Contains(out.stdout, "transfer.posted") && strings.Contains(out.stdout, b.ID)
		})
	})

	t.Run("sessions, and a revoked session's token is refused", func(t *testing.T) {
		out := c.must("sessions")
		if !strings.Contains(out, "(this one)") {
			t.Fatalf("sessions:\n%s", out)
		}
		var ss struct{ Sessions []struct{ SID string } }
		c.json(&ss, "sessions")
		sid := peek(tok).SID
		// Signing out revokes the refresh token: the stored pair is gone
		// and the provider refuses the refresh token from then on.
		all, err := (&app{configDir: func() (string, error) { return c.config, nil }}).loadTokens()
		if err != nil {
			t.Fatal(err)
		}
		refresh := all[sys.Issuer].RefreshToken
		c.must("logout")
		if r := c.run("accounts"); r.code != 1 || !strings.Contains(r.stderr, "strata login") {
			t.Fatalf("after logout: exit %d, %q", r.code, r.stderr)
		}
		if _, err := (&oidclogin.Client{Issuer: sys.Issuer, ClientID: clientID, HTTP: browser}).Refresh(context.Background(), refresh); err == nil {
			t.Fatal("the refresh token still works after logout")
		}
		// The access token stays valid until it expires, unless its session
		// is ended: store it back to use it once more.
		if err := (&app{configDir: func() (string, error) { return c.config, nil }}).saveTokens(map[string]stored{sys.Issuer: {AccessToken: tok, ExpiresAt: time.Now().Add(5 * time.Minute)}}); err != nil {
			t.Fatal(err)
		}
		c.must("sessions", "revoke", sid)
		r := c.run("transfer", "--from", a.ID, "--to", b.ID, "--amount", "1", "--currency", "EUR")
		if r.code != 1 || !strings.Contains(r.stderr, "401") || !strings.Contains(r.stderr, "strata login") {
			t.Fatalf("after revoke: exit %d, %q", r.code, r.stderr)
		}
	})
}

// TestRefusalShowsRetryAfter: an overloaded service's 429 tells the person
// how long to wait, and a write tells them how to retry it safely.
func TestRefusalShowsRetryAfter(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "3")
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = w.Write([]byte(`{"type":"about:blank","title":"Too Many Requests","status":429,"detail":"the service is at capacity; retry after the indicated delay","request_id":"r-123456789"}`))
	}))
	defer srv.Close()
	a := &app{cfg: settings{ledger: srv.URL}}
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body := new(bytes.Buffer)
	_, _ = body.ReadFrom(resp.Body)
	resp.Body.Close()
	err = keyHint(a.refused(srv.URL, resp, body.Bytes()), "k-1")
	for _, want := range []string{"ledger refused the request: 429 Too Many Requests", "at capacity", "retry after 3 s", "request id r-123456789", "--idempotency-key k-1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q lacks %q", err, want)
		}
	}
}

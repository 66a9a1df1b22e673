package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"html"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/strata-ref/strata/libs/oidclogin"
)

// clientID is the public OAuth client for scripts and people (PKCE, any
// loopback port: RFC 8252 section 7.3).
const clientID = "strata-cli"

// stored is what the token file keeps per issuer.
type stored struct {
	AccessToken  string    `json:"access_token"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	ExpiresAt    time.Time `json:"expires_at"`
}

// tokenFile is <user config dir>/strata/tokens.json (mode 0600, its
// directory 0700).
func (a *app) tokenFile() (string, error) {
	dir, err := a.configDir()
	if err != nil {
		return "", fmt.Errorf("no user config directory: %w", err)
	}
	return filepath.Join(dir, "strata", "tokens.json"), nil
}

func (a *app) loadTokens() (map[string]stored, error) {
	path, err := a.tokenFile()
	if err != nil {
		return nil, err
	}
	all := map[string]stored{}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return all, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &all); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return all, nil
}

// saveTokens writes the file whole through a temporary file created 0600,
// so the tokens are never readable by others, not even for a moment.
func (a *app) saveTokens(all map[string]stored) error {
	path, err := a.tokenFile()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	b, err := json.MarshalIndent(all, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".tokens-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

func (a *app) oidc(hc *http.Client, redirect string) *oidclogin.Client {
	return &oidclogin.Client{Issuer: strings.TrimRight(a.cfg.issuer, "/"), ClientID: clientID, RedirectURI: redirect, HTTP: hc}
}

func (a *app) keep(t oidclogin.Tokens) (stored, error) {
	s := stored{AccessToken: t.AccessToken, RefreshToken: t.RefreshToken, ExpiresAt: time.Now().Add(time.Duration(t.ExpiresIn) * time.Second)}
	all, err := a.loadTokens()
	if err != nil {
		return s, err
	}
	all[a.cfg.issuer] = s
	return s, a.saveTokens(all)
}

// login runs the authorization code flow with PKCE through the person's
// browser: it listens on a loopback port, prints the URL to open, and
// redeems the code the provider redirects back with.
func (a *app) login(fs *flag.FlagSet) func(context.Context, []string) error {
	port := fs.Int("port", 0, "loopback port for the redirect (0: any free port)")
	timeout := fs.Duration("timeout", 5*time.Minute, "how long to wait for the sign-in")
	return func(ctx context.Context, args []string) error {
		if len(args) != 0 {
			return usagef("login: unexpected arguments %q", args)
		}
		if *port < 0 || *port > 65535 {
			return usagef("login: --port must be 0-65535")
		}
		hc, err := a.httpClient()
		if err != nil {
			return err
		}
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(*port))
		if err != nil {
			return fmt.Errorf("listen for the redirect: %w", err)
		}
		defer ln.Close()
		redirect := fmt.Sprintf("http://127.0.0.1:%d/callback", ln.Addr().(*net.TCPAddr).Port)
		client := a.oidc(hc, redirect)
		p, state := oidclogin.NewPKCE(), oidclogin.NewState()
		codes := make(chan string, 1)
		fails := make(chan error, 1)
		srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/callback" {
				http.NotFound(w, r)
				return
			}
			code, err := oidclogin.Code(r.URL, state)
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			if err != nil {
				w.WriteHeader(http.StatusBadRequest)
				fmt.Fprintf(w, "<!doctype html><title>Strata</title><p>Sign-in failed: %s</p>", html.EscapeString(err.Error()))
				select {
				case fails <- err:
				default:
				}
				return
			}
			fmt.Fprint(w, "<!doctype html><title>Strata</title><p>Signed in. You can close this tab and return to the terminal.</p>")
			select {
			case codes <- code:
			default:
			}
		})}
		go func() { _ = srv.Serve(ln) }()
		defer srv.Close()

		u := client.AuthorizeURL(state, p)
		fmt.Fprintf(a.stderr, "Open this URL in a browser to sign in:\n\n  %s\n\nWaiting for the sign-in (Ctrl-C to cancel)...\n", u)
		if a.opened != nil {
			go a.opened(u)
		}
		ctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		var code string
		select {
		case code = <-codes:
		case err := <-fails:
			return err
		case <-ctx.Done():
			return fmt.Errorf("no sign-in within %s", *timeout)
		}
		t, err := client.Redeem(ctx, code, p)
		if err != nil {
			return err
		}
		s, err := a.keep(t)
		if err != nil {
			return err
		}
		claims := peek(s.AccessToken)
		if a.cfg.output == "json" {
			return printJSON(a.stdout, map[string]any{"subject": claims.Subject, "expires_at": s.ExpiresAt.UTC()})
		}
		fmt.Fprintf(a.stdout, "Signed in as %s; the access token expires at %s and is refreshed as needed.\n",
			claims.Subject, s.ExpiresAt.Local().Format(time.Kitchen))
		return nil
	}
}

// claims are the parts of an access token shown to the person; the
// services verify the token, the command only displays it.
type claims struct {
	Subject string `json:"sub"`
	SID     string `json:"sid"`
}

func peek(jwt string) claims {
	var c claims
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return c
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err == nil {
		_ = json.Unmarshal(b, &c)
	}
	return c
}

// accessToken returns a stored access token, refreshed (and the pair
// stored again) when it expires within 30 seconds.
func (a *app) accessToken(ctx context.Context) (string, error) {
	all, err := a.loadTokens()
	if err != nil {
		return "", err
	}
	s, ok := all[a.cfg.issuer]
	if !ok {
		return "", fmt.Errorf("not signed in to %s: run `strata login`", a.cfg.issuer)
	}
	if time.Until(s.ExpiresAt) > 30*time.Second {
		return s.AccessToken, nil
	}
	if s.RefreshToken == "" {
		return "", errors.New("the access token has expired: run `strata login`")
	}
	hc, err := a.httpClient()
	if err != nil {
		return "", err
	}
	t, err := a.oidc(hc, "").Refresh(ctx, s.RefreshToken)
	if err != nil {
		return "", fmt.Errorf("the sign-in has expired (%v): run `strata login`", err)
	}
	if s, err = a.keep(t); err != nil {
		return "", err
	}
	return s.AccessToken, nil
}

func (a *app) token(fs *flag.FlagSet) func(context.Context, []string) error {
	return func(ctx context.Context, args []string) error {
		if len(args) != 0 {
			return usagef("token: unexpected arguments %q", args)
		}
		tok, err := a.accessToken(ctx)
		if err != nil {
			return err
		}
		if a.cfg.output == "json" {
			return printJSON(a.stdout, map[string]string{"access_token": tok})
		}
		fmt.Fprintln(a.stdout, tok)
		return nil
	}
}

func (a *app) logout(fs *flag.FlagSet) func(context.Context, []string) error {
	return func(ctx context.Context, args []string) error {
		if len(args) != 0 {
			return usagef("logout: unexpected arguments %q", args)
		}
		all, err := a.loadTokens()
		if err != nil {
			return err
		}
		s, ok := all[a.cfg.issuer]
		delete(all, a.cfg.issuer)
		if err := a.saveTokens(all); err != nil {
			return err
		}
		if ok && s.RefreshToken != "" {
			// The refresh token would outlive the file: the provider
			// revokes it (RFC 7009), and with it its family.
			if err := a.revoke(ctx, s.RefreshToken); err != nil {
				fmt.Fprintf(a.stderr, "The stored tokens are gone, but the provider did not revoke the refresh token: %v\n", err)
				return nil
			}
		}
		fmt.Fprintln(a.stderr, "Signed out: the stored tokens are gone and the refresh token is revoked.")
		return nil
	}
}

// revoke asks the provider to revoke a token (RFC 7009, public client).
func (a *app) revoke(ctx context.Context, token string) error {
	hc, err := a.httpClient()
	if err != nil {
		return err
	}
	form := url.Values{"token": {token}, "token_type_hint": {"refresh_token"}, "client_id": {clientID}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(a.cfg.issuer, "/")+"/oauth2/revoke", strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("revocation endpoint answered %d", resp.StatusCode)
	}
	return nil
}

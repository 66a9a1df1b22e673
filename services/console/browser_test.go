package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/strata-ref/strata/libs/testenv"
)

// system boots the four services and the console as processes against the
// native stack, on free ports.
func system(t *testing.T, consoleEnv map[string]string) *testenv.System {
	t.Helper()
	st := testenv.StartStack(t)
	sys := testenv.StartSystem(t, st, nil)
	// The load tool the operator view starts, and users for it.
	bin := filepath.Join(t.TempDir(), "strata-load")
	build := exec.Command("go", "build", "-o", bin, "./cmd/strata-load")
	build.Dir = filepath.Join(st.Root, "loadtest")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build strata-load: %v\n%s", err, out)
	}
	if out, err := sys.Auth.Seed(t, 10); err != nil {
		t.Fatalf("seed: %v\n%s", err, out)
	}
	env := map[string]string{"STRATA_CONSOLE_LOAD_BIN": bin, "STRATA_CONSOLE_LOAD_CERTS": st.Certs,
		"STRATA_CONSOLE_LOAD_OUT": t.TempDir(), "STRATA_CONSOLE_LOAD_USERS": "10", "STRATA_CONSOLE_LOAD_DURATION": "20s"}
	for k, v := range consoleEnv {
		env[k] = v
	}
	sys.StartConsole(t, env)
	return sys
}

// browser is one headless Chromium profile (its own cookies), closed when
// the test ends.
func browser(t *testing.T) context.Context {
	t.Helper()
	exe := testenv.Chromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe),
		chromedp.Flag("headless", true), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.NoFirstRun,
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1100, 900),
		// The dev CA is not in the system store; the pages are what is tested.
		chromedp.Flag("ignore-certificate-errors", true))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	bctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	if err := chromedp.Do(bctx); err != nil {
		t.Fatal(err)
	}
	return bctx
}

// do runs browser actions with a deadline and fails the test with the
// console's log on error.
func do(t *testing.T, sys *testenv.System, bctx context.Context, d time.Duration, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(bctx, d)
	defer cancel()
	err := chromedp.Do(ctx, steps...)
	if err != nil && networkChanged(bctx) && len(steps) > 1 {
		// Chromium aborts a load with ERR_NETWORK_CHANGED when an address
		// is added on the machine (other tests add loopback addresses):
		// run the steps, which start with a navigation, once more.
		t.Logf("retrying after a network error page: %v", err)
		ctx2, cancel2 := context.WithTimeout(bctx, d)
		defer cancel2()
		err = chromedp.Do(ctx2, steps...)
	}
	if err != nil {
		fail(t, sys, bctx, err)
	}
}

// networkChanged reports whether the tab shows Chromium's network error page.
func networkChanged(bctx context.Context) bool {
	ctx, cancel := context.WithTimeout(bctx, 5*time.Second)
	defer cancel()
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	return strings.HasPrefix(loc, "chrome-error://")
}

// get runs one action that returns a value.
func get[T any](t *testing.T, sys *testenv.System, bctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(bctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		fail(t, sys, bctx, err)
	}
	return v
}

func fail(t *testing.T, sys *testenv.System, bctx context.Context, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(bctx, 5*time.Second)
	defer cancel()
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	page, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	t.Fatalf("browser at %s: %v\npage:\n%s\nconsole log:\n%s", loc, err, tail(page, 2000), tail(sys.Console.Logs(), 4000))
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// signIn opens the console and signs in through the provider's form (or
// through SSO, when the browser already has a session at the provider).
func signIn(t *testing.T, sys *testenv.System, bctx context.Context, user string) {
	t.Helper()
	do(t, sys, bctx, 30*time.Second,
		chromedp.Navigate(testenv.URL(sys.Console.Public)+"/"),
		chromedp.WaitVisible(chromedp.CSS(`#whoami, input[name="username"]`)),
	)
	if !evalBool(t, sys, bctx, `!!document.getElementById('whoami')`) {
		// Other test runs share auth's test database and may change a demo
		// user (the admin API tests do): reset the demo users first.
		if out, err := sys.Auth.Seed(t, 0); err != nil {
			t.Fatalf("reseed demo users: %v\n%s", err, out)
		}
		enableDemoUser(t, sys, user)
		do(t, sys, bctx, 30*time.Second,
			chromedp.SendKeys(chromedp.CSS(`input[name="username"]`), user),
			chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), "strata-demo"),
			chromedp.Click(chromedp.CSS(`#submit`)),
			chromedp.WaitVisible(chromedp.CSS(`#whoami`)),
		)
	}
	if who := text(t, sys, bctx, "#whoami"); who != user {
		t.Fatalf("signed in as %q, want %q", who, user)
	}
}

// enableDemoUser re-enables a demo user in auth's test database: seeding
// never re-enables a user an operator disabled, and other test runs that
// share the database disable users through the admin API.
func enableDemoUser(t *testing.T, sys *testenv.System, user string) {
	t.Helper()
	// The store certificates come from the store CA, an intermediate under
	// the root: psql is given both.
	roots := filepath.Join(t.TempDir(), "roots.pem")
	var pem []byte
	for _, f := range []string{"ca.pem", "store-ca.pem"} {
		b, err := os.ReadFile(filepath.Join(sys.Stack.Certs, f))
		if err == nil {
			pem = append(pem, b...)
		}
	}
	if err := os.WriteFile(roots, pem, 0o600); err != nil {
		t.Fatal(err)
	}
	f := sys.Stack.Files("auth")
	conn := fmt.Sprintf("host=127.0.0.1 port=%d user=auth dbname=auth_test sslmode=verify-full sslrootcert=%s sslcert=%s sslkey=%s",
		sys.Stack.PGPort, roots, f.Cert, f.Key)
	cmd := exec.Command("psql", conn, "-v", "ON_ERROR_STOP=1", "-qc", "UPDATE users SET disabled = false WHERE username = '"+user+"' AND disabled")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("re-enable %s: %v\n%s", user, err, out)
	}
}

// text returns the visible text of the first element matching sel.
func text(t *testing.T, sys *testenv.System, bctx context.Context, sel string) string {
	t.Helper()
	return strings.TrimSpace(get(t, sys, bctx, chromedp.Text(chromedp.CSS(sel))))
}

// screenshot saves the page under out/console/ for the docs.
func screenshot(t *testing.T, sys *testenv.System, bctx context.Context, name string) {
	t.Helper()
	png := get(t, sys, bctx, chromedp.FullScreenshot(100))
	dir := filepath.Join(sys.Stack.Root, "out", "console")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestSignInShowsNameAndAccounts: GET / leads through the provider's login
// form and back to a page with the person's name and accounts; the browser
// holds only the opaque __Host- cookie, and the cookie is HttpOnly, Secure
// and SameSite=Lax.
func testSignIn(t *testing.T, sys *testenv.System) {
	bctx := browser(t)
	signIn(t, sys, bctx, "alice")
	if got := text(t, sys, bctx, "#whoami"); got != "alice" {
		t.Fatalf("signed in as %q", got)
	}
	// A new account appears in the list with a zero balance.
	do(t, sys, bctx, 15*time.Second,
		chromedp.SetValue(chromedp.CSS(`#name`), "Holidays"),
		chromedp.Click(chromedp.CSS(`#open`)),
		chromedp.WaitVisible(chromedp.CSS(`#flash`)),
	)
	if f := text(t, sys, bctx, "#flash"); !strings.Contains(f, "Opened account Holidays") {
		t.Fatalf("flash %q", f)
	}
	if acc := text(t, sys, bctx, "#accounts"); !strings.Contains(acc, "Holidays") || !strings.Contains(acc, "0.00 EUR") {
		t.Fatalf("accounts table %q", acc)
	}
	screenshot(t, sys, bctx, "accounts")

	// Nothing a script could read: document.cookie is empty, and the one
	// cookie the console sets is HttpOnly, Secure, SameSite=Lax, host-only.
	jsCookies := get(t, sys, bctx, chromedp.Evaluate[string](`document.cookie`))
	if jsCookies != "" {
		t.Fatalf("document.cookie = %q", jsCookies)
	}
	cookies, err := allCookies(bctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, c := range cookies {
		if c.Name != "__Host-strata_console" {
			continue
		}
		found = true
		if !c.HTTPOnly || !c.Secure || c.SameSite != "Lax" || c.Path != "/" || len(c.Value) < 40 || strings.Count(c.Value, ".") == 2 {
			t.Fatalf("session cookie %+v", *c)
		}
	}
	if !found {
		t.Fatalf("no session cookie among %d", len(cookies))
	}
}

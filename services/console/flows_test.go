package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/strata-ref/strata/libs/testenv"
)

// TestConsole boots the system and the console once and walks through
// what a person does in a browser.
func TestConsole(t *testing.T) {
	sys := system(t, nil)
	t.Run("sign_in_shows_name_and_accounts", func(t *testing.T) { testSignIn(t, sys) })
	t.Run("transfer_submitted_twice_posts_once", func(t *testing.T) { testTransferTwice(t, sys) })
	t.Run("teller_refusal_in_words", func(t *testing.T) { testTellerRefusal(t, sys) })
	t.Run("auditor_reads_and_cannot_write", func(t *testing.T) { testAuditor(t, sys) })
	t.Run("sso_console_then_cli", func(t *testing.T) { testSSOConsoleThenCLI(t, sys) })
	t.Run("sso_cli_then_console", func(t *testing.T) { testSSOCLIThenConsole(t, sys) })
	t.Run("operator_breaker_opens_and_closes", func(t *testing.T) { testOperatorBreaker(t, sys) })
	t.Run("csrf_token_and_local_redirects_only", func(t *testing.T) { testCSRFAndRedirect(t, sys) })
	t.Run("revoke_another_session", func(t *testing.T) { testRevokeSession(t, sys) })
	t.Run("load_run_streams_and_stops", func(t *testing.T) { testLoadRun(t, sys) })
	t.Run("sign_out_ends_the_sso_session", func(t *testing.T) { testSignOut(t, sys) })
	// Last: it replaces the console with one outside dev.
	t.Run("outside_dev_no_faults_or_load", func(t *testing.T) { testOutsideDev(t, sys) })
}

// openAccount opens an account on the home page and returns its id (the
// newest row).
func openAccount(t *testing.T, sys *testenv.System, bctx context.Context, name, currency string) string {
	t.Helper()
	do(t, sys, bctx, 15*time.Second,
		chromedp.Navigate(testenv.URL(sys.Console.Public)+"/"),
		chromedp.WaitVisible(chromedp.CSS(`#name`)),
		chromedp.SetValue(chromedp.CSS(`#name`), name),
		chromedp.SetValue(chromedp.CSS(`#currency`), currency),
		chromedp.Click(chromedp.CSS(`#open`)),
		chromedp.WaitVisible(chromedp.CSS(`#flash`)),
	)
	f := text(t, sys, bctx, "#flash")
	i, j := strings.LastIndex(f, "("), strings.LastIndex(f, ")")
	if !strings.Contains(f, "Opened account") || i < 0 || j < i {
		t.Fatalf("open account: %q", f)
	}
	return f[i+1 : j]
}

func signOut(t *testing.T, sys *testenv.System, bctx context.Context) {
	t.Helper()
	do(t, sys, bctx, 15*time.Second,
		chromedp.Navigate(testenv.URL(sys.Console.Public)+"/"),
		chromedp.WaitVisible(chromedp.CSS(`#signout`)),
		chromedp.Click(chromedp.CSS(`#signout`)),
		chromedp.WaitVisible(chromedp.CSS(`#signed-out`)),
	)
}

func deposit(t *testing.T, sys *testenv.System, bctx context.Context, account, amount, currency string) string {
	t.Helper()
	do(t, sys, bctx, 15*time.Second,
		chromedp.Navigate(testenv.URL(sys.Console.Public)+"/teller"),
		chromedp.WaitVisible(chromedp.CSS(`#account`)),
		chromedp.SetValue(chromedp.CSS(`#account`), account),
		chromedp.SetValue(chromedp.CSS(`#amount`), amount),
		chromedp.SetValue(chromedp.CSS(`#currency`), currency),
		chromedp.Click(chromedp.CSS(`#deposit`)),
		chromedp.WaitVisible(chromedp.CSS(`#flash`)),
	)
	return text(t, sys, bctx, "#flash")
}

// accounts remembered between the subtests.
var aliceAccount, bobAccount string

// testTransferTwice: the transfer form is posted twice with the key minted
// when it was drawn (a double submit); the ledger moves the money once and
// the page says the second answer was a replay.
func testTransferTwice(t *testing.T, sys *testenv.System) {
	bctx := browser(t)
	signIn(t, sys, bctx, "bob")
	bobAccount = openAccount(t, sys, bctx, "Bob's euros", "EUR")
	signOut(t, sys, bctx)
	signIn(t, sys, bctx, "alice")
	aliceAccount = openAccount(t, sys, bctx, "Alice's euros", "EUR")
	signOut(t, sys, bctx)
	signIn(t, sys, bctx, "admin")
	if f := deposit(t, sys, bctx, aliceAccount, "100.00", "EUR"); !strings.Contains(f, "Deposited 100.00 EUR") {
		t.Fatalf("admin deposit: %q", f)
	}
	signOut(t, sys, bctx)

	signIn(t, sys, bctx, "alice")
	do(t, sys, bctx, 15*time.Second,
		chromedp.Navigate(testenv.URL(sys.Console.Public)+"/transfer"),
		chromedp.WaitVisible(chromedp.CSS(`#to`)),
		chromedp.SetValue(chromedp.CSS(`#from`), aliceAccount),
		chromedp.SetValue(chromedp.CSS(`#to`), bobAccount),
		chromedp.SetValue(chromedp.CSS(`#amount`), "12.50"),
		chromedp.SetValue(chromedp.CSS(`#memo`), "lunch"),
	)
	// The first submission: the very form's data, posted by the page
	// itself (as a first click whose answer the person never saw).
	first := get(t, sys, bctx, chromedp.Evaluate[int](`(async () => {
		const r = await fetch('/transfer', {method: 'POST', body: new URLSearchParams(new FormData(document.getElementById('transfer-form')))});
		return r.status; })()`, chromedp.EvalAwaitPromise))
	if first != http.StatusOK {
		t.Fatalf("first submission answered %d", first)
	}
	// The second: the person presses Send on the same form.
	do(t, sys, bctx, 15*time.Second,
		chromedp.Click(chromedp.CSS(`#send`)),
		chromedp.WaitVisible(chromedp.CSS(`#see-activity`)),
	)
	if f := text(t, sys, bctx, "#flash"); !strings.Contains(f, "already submitted") || !strings.Contains(f, "Idempotent-Replayed") {
		t.Fatalf("second submission: %q", f)
	}
	screenshot(t, sys, bctx, "transfer-replayed")
	// Money moved once: 100.00 - 12.50.
	// (Read from the transfer form's account list: other runs sharing the
	// test database leave alice with many accounts.)
	do(t, sys, bctx, 30*time.Second, chromedp.Navigate(testenv.URL(sys.Console.Public)+"/transfer"), chromedp.WaitVisible(chromedp.CSS(`#from`)))
	if acc := get(t, sys, bctx, chromedp.Evaluate[string](`document.querySelector('#from option[value="`+aliceAccount+`"]').textContent`)); !strings.Contains(acc, "87.50 EUR") {
		t.Fatalf("alice's account after a double submit: %q", acc)
	}
	// The activity feed shows the transfer, and how long it took to get there.
	do(t, sys, bctx, 10*time.Second, chromedp.Navigate(testenv.URL(sys.Console.Public)+"/activity?account="+aliceAccount))
	// The page reloads itself until the transfer is in the feed.
	deadline := time.Now().Add(25 * time.Second)
	// Mid-reload there is no body yet: read it as empty, not as an error.
	page := chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`)
	for !strings.Contains(get(t, sys, bctx, page), "appeared here") {
		if time.Now().After(deadline) {
			t.Fatalf("the transfer did not appear in the activity feed:\n%s", get(t, sys, bctx, page))
		}
		time.Sleep(200 * time.Millisecond)
	}
	screenshot(t, sys, bctx, "activity")
	t.Logf("activity: %s", text(t, sys, bctx, "#events tbody"))
}

// testTellerRefusal: carol (teller, eu) cannot deposit into bob's us
// account; the page gives the Cedar decision in words.
func testTellerRefusal(t *testing.T, sys *testenv.System) {
	if bobAccount == "" {
		t.Skip("needs the transfer subtest's accounts")
	}
	bctx := browser(t)
	signIn(t, sys, bctx, "bob")
	usAccount := openAccount(t, sys, bctx, "Bob's dollars", "USD")
	signOut(t, sys, bctx)
	signIn(t, sys, bctx, "carol")
	f := deposit(t, sys, bctx, usAccount, "10.00", "USD")
	if !strings.Contains(f, "404") {
		t.Fatalf("carol's deposit into a us account: %q", f)
	}
	d := text(t, sys, bctx, "#decision")
	for _, want := range []string{"Cedar decision: deny", "your region is eu", "teller-reads-accounts-in-region"} {
		if !strings.Contains(d, want) {
			t.Fatalf("decision %q lacks %q", d, want)
		}
	}
	screenshot(t, sys, bctx, "teller-refused")
}

// testAuditor: dave sees the statistics and is refused a write.
func testAuditor(t *testing.T, sys *testenv.System) {
	bctx := browser(t)
	signIn(t, sys, bctx, "dave")
	do(t, sys, bctx, 15*time.Second,
		chromedp.Navigate(testenv.URL(sys.Console.Public)+"/auditor"),
		chromedp.WaitVisible(chromedp.CSS(`#try-write`)),
	)
	if f := text(t, sys, bctx, "main"); strings.Contains(f, "Loading the statistics") {
		t.Fatalf("auditor page: %q", f)
	}
	do(t, sys, bctx, 15*time.Second, chromedp.Click(chromedp.CSS(`#try-write`)), chromedp.WaitVisible(chromedp.CSS(`#decision`)))
	if f := text(t, sys, bctx, "#flash"); !strings.Contains(f, "403") {
		t.Fatalf("auditor write: %q", f)
	}
	screenshot(t, sys, bctx, "auditor")
}

// cliApp is the strata-cli "native app" (testenv.NativeApp).
func cliApp(t *testing.T) (redirect string, got chan url.Values) { return testenv.NativeApp(t) }

// cliAuthorize is strata-cli's authorization request (code + PKCE S256).
func cliAuthorize(sys *testenv.System, redirect string) string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	verifier := base64.RawURLEncoding.EncodeToString(b[:])
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{"client_id": {"strata-cli"}, "redirect_uri": {redirect}, "response_type": {"code"}, "scope": {"openid profile"},
		"state": {"cli-state"}, "code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}}
	return sys.Issuer + "/oauth2/authorize?" + q.Encode()
}

// testSSOConsoleThenCLI: signed in on the console, the CLI's authorization
// completes without the password form.
func testSSOConsoleThenCLI(t *testing.T, sys *testenv.System) {
	bctx := browser(t)
	signIn(t, sys, bctx, "alice")
	redirect, got := cliApp(t)
	do(t, sys, bctx, 15*time.Second, chromedp.Navigate(cliAuthorize(sys, redirect)), chromedp.WaitVisible(chromedp.ID(testenv.NativeAppDone)))
	if q := <-got; q.Get("code") == "" || q.Get("state") != "cli-state" {
		t.Fatalf("cli redirect %v", q)
	}
}

// testSSOCLIThenConsole: signed in through the CLI's authorization, the
// console signs the person in without the password form.
func testSSOCLIThenConsole(t *testing.T, sys *testenv.System) {
	bctx := browser(t)
	redirect, got := cliApp(t)
	do(t, sys, bctx, 20*time.Second,
		chromedp.Navigate(cliAuthorize(sys, redirect)),
		chromedp.WaitVisible(chromedp.CSS(`input[name="username"]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name="username"]`), "bob"),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), "strata-demo"),
		chromedp.Click(chromedp.CSS(`#submit`)),
		chromedp.WaitVisible(chromedp.ID(testenv.NativeAppDone)),
	)
	<-got
	do(t, sys, bctx, 15*time.Second,
		chromedp.Navigate(testenv.URL(sys.Console.Public)+"/"),
		chromedp.WaitVisible(chromedp.CSS(`#whoami`)),
	)
	if who := text(t, sys, bctx, "#whoami"); who != "bob" {
		t.Fatalf("console signed in %q", who)
	}
}

// testSignOut: sign-out ends the console session and the provider's SSO
// session: the console asks for the password again, and the old session
// cookie no longer opens a page.
func testSignOut(t *testing.T, sys *testenv.System) {
	bctx := browser(t)
	signIn(t, sys, bctx, "alice")
	signOut(t, sys, bctx)
	screenshot(t, sys, bctx, "signed-out")
	do(t, sys, bctx, 15*time.Second,
		chromedp.Navigate(testenv.URL(sys.Console.Public)+"/"),
		chromedp.WaitVisible(chromedp.CSS(`input[name="password"]`)),
	)
	// The CLI's authorization asks for the password too.
	redirect, _ := cliApp(t)
	do(t, sys, bctx, 15*time.Second,
		chromedp.Navigate(cliAuthorize(sys, redirect)),
		chromedp.WaitVisible(chromedp.CSS(`input[name="password"]`)),
	)
}

// testOperatorBreaker: the admin sets a fault toggle (the console's calls
// to the ledger fail); while pages call the ledger, the operator view,
// updated by server-sent events without a reload, shows the console's
// ledger breaker open within 5 s; after the fault is cleared it closes.
func testOperatorBreaker(t *testing.T, sys *testenv.System) {
	bctx := browser(t)
	signIn(t, sys, bctx, "admin")
	do(t, sys, bctx, 15*time.Second,
		chromedp.Navigate(testenv.URL(sys.Console.Public)+"/admin"),
		chromedp.WaitVisible(chromedp.CSS(`#fault-form`)),
	)
	// Every service is read over mTLS, the limiter is shown.
	waitFor(t, sys, bctx, 10*time.Second, `["auth","ledger","analytics","session","console"].every(s =>
		document.querySelector('tr[data-service="' + s + '"] td.limit'))`)
	screenshot(t, sys, bctx, "operator")

	// A second tab of the same browser (same session) makes the calls.
	traffic, cancel := chromedp.NewContext(bctx)
	defer cancel()
	if err := chromedp.Do(traffic); err != nil { // opens the tab; no timeout on its first use
		t.Fatal(err)
	}
	load := func() {
		ctx, cancel := context.WithTimeout(traffic, 10*time.Second)
		defer cancel()
		_ = chromedp.Do(ctx, chromedp.Navigate(testenv.URL(sys.Console.Public)+"/"))
	}

	do(t, sys, bctx, 10*time.Second,
		chromedp.SetValue(chromedp.CSS(`#f-service`), "console"),
		chromedp.SetValue(chromedp.CSS(`#f-dependency`), "ledger"),
		chromedp.SetValue(chromedp.CSS(`#f-rate`), "1"),
		chromedp.Click(chromedp.CSS(`#fault-set`)),
		chromedp.WaitVisible(chromedp.CSS(`#flash`)),
	)
	set := time.Now()
	if f := text(t, sys, bctx, "#flash"); !strings.Contains(f, "Fault set") {
		t.Fatalf("fault: %q", f)
	}
	open := `!!document.querySelector('tr[data-service="console"] .breaker[data-dependency="ledger"][data-state="open"]')`
	// Page loads call the ledger until the breaker has seen enough failed
	// calls to open (its minimum number of calls in its window), within the
	// 5 s the operator view promises.
	for time.Since(set) < 4*time.Second && !evalBool(t, sys, bctx, open) {
		load()
	}
	waitFor(t, sys, bctx, max(5*time.Second-time.Since(set), 100*time.Millisecond), open)
	if took := time.Since(set); took > 5*time.Second {
		t.Fatalf("the breaker was shown open %s after the fault was set", took)
	}
	t.Logf("breaker shown open %s after the fault was set", time.Since(set).Round(10*time.Millisecond))
	screenshot(t, sys, bctx, "operator-breaker-open")

	do(t, sys, bctx, 10*time.Second,
		dropFlash(),
		chromedp.Click(chromedp.CSS(`#fault-clear`)),
		chromedp.WaitVisible(chromedp.CSS(`#flash`)),
	)
	cleared := time.Now()
	closed := `!!document.querySelector('tr[data-service="console"] .breaker[data-dependency="ledger"][data-state="closed"]')`
	deadline := time.Now().Add(20 * time.Second)
	for !evalBool(t, sys, bctx, closed) {
		if time.Now().After(deadline) {
			t.Fatalf("the breaker did not close after the fault was cleared:\n%s", text(t, sys, bctx, "#services"))
		}
		load()
		time.Sleep(300 * time.Millisecond)
	}
	t.Logf("breaker shown closed %s after the fault was cleared (it stays open 5 s, then needs 3 good calls)", time.Since(cleared).Round(10*time.Millisecond))
}

func evalBool(t *testing.T, sys *testenv.System, bctx context.Context, expr string) bool {
	t.Helper()
	return get(t, sys, bctx, chromedp.Evaluate[bool](expr))
}

// waitFor polls a JavaScript condition on the page until it holds.
func waitFor(t *testing.T, sys *testenv.System, bctx context.Context, d time.Duration, expr string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !evalBool(t, sys, bctx, expr) {
		if time.Now().After(deadline) {
			t.Fatalf("after %s, still not %s; page:\n%s", d, expr, text(t, sys, bctx, "main"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// testRevokeSession: alice signed in from two browsers revokes the other
// session on the sessions page; the other browser's console session ends.
func testRevokeSession(t *testing.T, sys *testenv.System) {
	other := browser(t)
	signIn(t, sys, other, "alice")
	bctx := browser(t)
	signIn(t, sys, bctx, "alice")
	// The other browser's session, as its own sessions page marks it.
	do(t, sys, other, 15*time.Second,
		chromedp.Navigate(testenv.URL(sys.Console.Public)+"/sessions"),
		chromedp.WaitVisible(chromedp.CSS(`#sessions .current`)),
	)
	sid := get(t, sys, other, chromedp.Evaluate[string](
		`document.querySelector('#sessions .current').closest('tr').querySelector('input[name=sid]').value`))
	do(t, sys, bctx, 15*time.Second,
		chromedp.Navigate(testenv.URL(sys.Console.Public)+"/sessions"),
		chromedp.WaitVisible(chromedp.CSS(`#sessions`)),
	)
	revoked := get(t, sys, bctx, chromedp.Evaluate[bool](`(() => {
		const input = [...document.querySelectorAll('#sessions input[name=sid]')].find(i => i.value === '`+sid+`');
		if (!input || input.closest('tr').querySelector('.current')) return false;
		input.form.querySelector('button.revoke').click();
		return true; })()`))
	if !revoked {
		t.Fatalf("the other browser's session %.8s is not listed as another session:\n%s", sid, text(t, sys, bctx, "#sessions"))
	}
	do(t, sys, bctx, 15*time.Second, chromedp.WaitVisible(chromedp.CSS(`#flash`)))
	if f := text(t, sys, bctx, "#flash"); !strings.Contains(f, "Session revoked") {
		t.Fatalf("revoke: %q", f)
	}
	screenshot(t, sys, bctx, "sessions")
	// The other browser's console session used the revoked SSO session:
	// it is gone, and signing in again asks for the password.
	do(t, sys, other, 15*time.Second,
		chromedp.Navigate(testenv.URL(sys.Console.Public)+"/"),
		chromedp.WaitVisible(chromedp.CSS(`input[name="password"]`)),
	)
}

// testLoadRun: the admin starts a strata-load scenario from the operator
// page; its output streams to the page and Stop ends the child process.
func testLoadRun(t *testing.T, sys *testenv.System) {
	bctx := browser(t)
	signIn(t, sys, bctx, "admin")
	do(t, sys, bctx, 15*time.Second,
		chromedp.Navigate(testenv.URL(sys.Console.Public)+"/admin"),
		chromedp.WaitVisible(chromedp.CSS(`#load-start`)),
		chromedp.SetValue(chromedp.CSS(`#scenario`), "baseline"),
		chromedp.Click(chromedp.CSS(`#load-start`)),
		chromedp.WaitVisible(chromedp.CSS(`#flash`)),
	)
	if f := text(t, sys, bctx, "#flash"); !strings.Contains(f, "Load run started: baseline") {
		t.Fatalf("start: %q", f)
	}
	// The tool's output arrives by server-sent events, without a reload
	// (one run at a time is tested in internal/operator).
	waitFor(t, sys, bctx, 30*time.Second, `(document.getElementById('load-log') || {textContent: ''}).textContent.trim() !== ''`)
	screenshot(t, sys, bctx, "operator-load")
	// Stop it (if the short run has not finished already).
	do(t, sys, bctx, 15*time.Second, dropFlash(), chromedp.Click(chromedp.CSS(`#load-stop`)), chromedp.WaitVisible(chromedp.CSS(`#flash`)))
	if f := strings.ToLower(text(t, sys, bctx, "#flash")); !strings.Contains(f, "stopping") && !strings.Contains(f, "no load run is going") {
		t.Fatalf("stop: %q", f)
	}
	waitFor(t, sys, bctx, 20*time.Second, `/baseline: (finished|ended)/.test(document.getElementById('load-state').textContent)`)
	t.Logf("load run: %s\n%s", text(t, sys, bctx, "#load-state"), tail(text(t, sys, bctx, "#load-log"), 600))
}

// testOutsideDev: a console with STRATA_ENV=production offers no fault
// toggles or load runs, and refuses the requests.
func testOutsideDev(t *testing.T, sys *testenv.System) {
	if err := sys.Console.Stop(); err != nil {
		t.Fatal(err)
	}
	sys.StartConsole(t, map[string]string{"STRATA_ENV": "production"})
	bctx := browser(t)
	signIn(t, sys, bctx, "admin")
	do(t, sys, bctx, 15*time.Second,
		chromedp.Navigate(testenv.URL(sys.Console.Public)+"/admin"),
		chromedp.WaitVisible(chromedp.CSS(`#services`)),
	)
	if evalBool(t, sys, bctx, `!!document.getElementById('fault-form') || !!document.getElementById('load-start')`) {
		t.Fatal("a production console offers fault toggles or load runs")
	}
	// The requests themselves, with a valid CSRF token, are refused.
	for _, path := range []string{"/admin/faults", "/admin/load/start"} {
		status := get(t, sys, bctx, chromedp.Evaluate[int](`(async () => {
			const csrf = document.querySelector('input[name=csrf]').value;
			const r = await fetch('`+path+`', {method: 'POST', body: new URLSearchParams({csrf, service: 'console', dependency: 'ledger', error_rate: '1', scenario: 'baseline'})});
			return r.status; })()`, chromedp.EvalAwaitPromise))
		if status != http.StatusForbidden {
			t.Fatalf("POST %s on a production console answered %d", path, status)
		}
	}
}

// dropFlash removes the page's outcome line, so that waiting for it after
// a click waits for the next page's.
func dropFlash() chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Evaluate[bool](`(() => { const f = document.getElementById('flash'); if (f) f.remove(); return true; })()`)(ctx, tg)
		return err
	})
}

// testCSRFAndRedirect: a POST with the session cookie but without the
// form's CSRF token is refused and changes nothing; after sign-in the
// console returns only to its own pages (no open redirect).
func testCSRFAndRedirect(t *testing.T, sys *testenv.System) {
	bctx := browser(t)
	signIn(t, sys, bctx, "alice")
	post := func(body string) int {
		t.Helper()
		return get(t, sys, bctx, chromedp.Evaluate[int](`(async () => {
			const r = await fetch('/accounts', {method: 'POST', body: new URLSearchParams(`+body+`)});
			return r.status; })()`, chromedp.EvalAwaitPromise))
	}
	if st := post(`{name: 'Forged', currency: 'EUR', idempotency_key: 'forged-1'}`); st != http.StatusForbidden {
		t.Fatalf("POST without a CSRF token answered %d", st)
	}
	if st := post(`{name: 'Forged', currency: 'EUR', idempotency_key: 'forged-2', csrf: 'not-the-token'}`); st != http.StatusForbidden {
		t.Fatalf("POST with a wrong CSRF token answered %d", st)
	}
	do(t, sys, bctx, 10*time.Second, chromedp.Navigate(testenv.URL(sys.Console.Public)+"/"), chromedp.WaitVisible(chromedp.CSS(`#whoami`)))
	if strings.Contains(text(t, sys, bctx, "main"), "Forged") {
		t.Fatal("a forged POST opened an account")
	}
	// A sign-in asked to return elsewhere returns to the console's home.
	for _, to := range []string{"https://evil.example/", "//evil.example/", "/\\evil.example/"} {
		do(t, sys, bctx, 15*time.Second,
			chromedp.Navigate(testenv.URL(sys.Console.Public)+"/login?return_to="+url.QueryEscape(to)),
			chromedp.WaitVisible(chromedp.CSS(`#whoami`)),
		)
		if loc := get(t, sys, bctx, chromedp.Location()); !strings.HasPrefix(loc, testenv.URL(sys.Console.Public)+"/") {
			t.Fatalf("return_to %q ended at %s", to, loc)
		}
	}
}

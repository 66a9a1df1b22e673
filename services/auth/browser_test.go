package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/strata-ref/strata/libs/testenv"
)

// TestLoginPageInBrowser signs in through the real page in headless
// Chromium and checks the redirect to the app carries a code.
func TestLoginPageInBrowser(t *testing.T) {
	h := start(t)
	exe := testenv.Chromium(t)

	// The "native app": a loopback listener on a port of its own.
	redirect, got := testenv.NativeApp(t)

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe),
		chromedp.Flag("headless", true), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.NoFirstRun,
		chromedp.UserDataDir(t.TempDir()),
		// The dev CA is not in the system store; the page is what is tested here.
		chromedp.Flag("ignore-certificate-errors", true))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	bctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	bctx, cancel = context.WithTimeout(bctx, 30*time.Second)
	defer cancel()

	p := newPKCE()
	err := chromedp.Do(bctx,
		chromedp.Navigate(authorizeURL(h.issuer, "strata-cli", redirect, "browser-state", p, nil)),
		chromedp.WaitVisible(chromedp.CSS(`input[name="username"]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name="username"]`), "alice"),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), "strata-demo"),
		chromedp.Click(chromedp.ID("submit")),
		chromedp.WaitVisible(chromedp.ID(testenv.NativeAppDone)),
	)
	if err != nil {
		t.Fatalf("browser: %v\n%s", err, h.svc.Logs())
	}
	loc, err := chromedp.Run(bctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(loc, redirect+"?") {
		t.Fatalf("browser ended at %s", loc)
	}
	q := <-got
	if q.Get("code") == "" || q.Get("state") != "browser-state" {
		t.Fatalf("redirect query %v", q)
	}
	// The code it carries is good for tokens.
	h.redeem(t, h.st.PublicClient(t), "strata-cli", redirect, q.Get("code"), p)
}

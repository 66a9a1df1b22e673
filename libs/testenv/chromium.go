package testenv

import (
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"sync"
	"testing"
)

var chromiumMu sync.Mutex

// Chromium returns Debian's headless-capable chromium, installing the
// package when it is missing: browser tests must run, never skip.
func Chromium(t testing.TB) string {
	t.Helper()
	const path = "/usr/bin/chromium"
	chromiumMu.Lock()
	defer chromiumMu.Unlock()
	if _, err := os.Stat(path); err == nil {
		return path
	}
	t.Log("installing Debian's chromium package")
	cmd := exec.Command("bash", "-c", "apt-get install -y chromium || (apt-get update && apt-get install -y chromium)")
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("install chromium: %v\n%s", err, out)
	}
	return path
}

// ChromiumFlags are the flags a sandboxed, offline machine needs: no
// background networking (its connections are refused here), no GPU.
func ChromiumFlags(userDataDir string) []string {
	return []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--user-data-dir=" + userDataDir}
}

// NativeAppDone is the id of the element the page of NativeApp shows.
const NativeAppDone = "app-done"

// NativeApp is a public OAuth client's "native app" for browser tests: a
// loopback listener on a port of its own (RFC 8252 lets the client pick any
// port on 127.0.0.1) that records the query of the redirect it receives and
// answers with a page holding the element NativeAppDone.
func NativeApp(t testing.TB) (redirect string, got chan url.Values) {
	t.Helper()
	got = make(chan url.Values, 1)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	app := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case got <- r.URL.Query():
		default:
		}
		_, _ = w.Write([]byte("<html><body><p id=" + NativeAppDone + ">signed in</p></body></html>"))
	})}
	go app.Serve(ln)
	t.Cleanup(func() { app.Close() })
	return "http://" + ln.Addr().String() + "/callback", got
}

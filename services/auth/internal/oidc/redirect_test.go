package oidc

import "testing"

// RFC 8252 section 7.3: only the port of a loopback redirect may vary.
func TestRedirectAllowed(t *testing.T) {
	reg := []string{"http://127.0.0.1:8765/callback", "https://app.example/cb"}
	for uri, want := range map[string]bool{
		"http://127.0.0.1:8765/callback":       true,
		"http://127.0.0.1:51234/callback":      true,
		"https://app.example/cb":               true,
		"http://127.0.0.1/callback":            false, // no port
		"http://localhost:51234/callback":      false,
		"https://127.0.0.1:51234/callback":     false,
		"http://127.0.0.2:51234/callback":      false,
		"http://[::1]:51234/callback":          false,
		"http://127.0.0.1:51234/other":         false,
		"http://127.0.0.1:51234/callback?x=1":  false,
		"http://u@127.0.0.1:51234/callback":    false,
		"http://127.0.0.1:0/callback":          false,
		"http://127.0.0.1:x/callback":          false,
		"https://app.example:444/cb":           false, // not loopback: exact only
		"http://127.0.0.1:51234/callback#frag": false,
	} {
		if got := redirectAllowed(reg, uri); got != want {
			t.Errorf("%s: %v, want %v", uri, got, want)
		}
	}
}

package oidc

import "testing"

func TestClientAddr(t *testing.T) {
	trusted, err := ParseTrustedProxies([]string{"10.0.0.0/8", "192.0.2.1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, peer string
		xff        []string
		want       string
	}{
		{"no proxy: the peer", "203.0.113.5", nil, "203.0.113.5"},
		{"untrusted peer: the header is ignored", "203.0.113.5", []string{"198.51.100.1"}, "203.0.113.5"},
		{"through the ingress", "10.1.2.3", []string{"198.51.100.1"}, "198.51.100.1"},
		{"client-written entries are skipped", "10.1.2.3", []string{"6.6.6.6, 198.51.100.1"}, "198.51.100.1"},
		{"two trusted hops", "10.1.2.3", []string{"198.51.100.1, 192.0.2.1"}, "198.51.100.1"},
		{"two header lines", "10.1.2.3", []string{"6.6.6.6", "198.51.100.1"}, "198.51.100.1"},
		{"trusted peer without the header", "10.1.2.3", nil, "10.1.2.3"},
		{"garbage hop", "10.1.2.3", []string{"not-an-ip"}, "10.1.2.3"},
		{"IPv4-mapped peer", "::ffff:203.0.113.5", nil, "203.0.113.5"},
	} {
		if got := clientAddr(c.peer, c.xff, trusted); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
	if _, err := ParseTrustedProxies([]string{"example.com"}); err == nil {
		t.Error("a host name was accepted as a trusted proxy")
	}
}

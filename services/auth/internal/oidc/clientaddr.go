package oidc

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// ParseTrustedProxies parses a list of IP addresses and CIDR prefixes (the
// reverse proxies or ingress controllers in front of the public listener).
func ParseTrustedProxies(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q is neither an address nor a CIDR prefix", s)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

// clientAddr is the address a sign-in is throttled under. It is the
// socket peer, unless the peer is a trusted proxy: then X-Forwarded-For
// is read from the right (each proxy appends the address it received the
// request from), skipping trusted proxies, and the first address that is
// not one is the client. Entries left of it were written by the client
// and prove nothing. Without trusted proxies the header is ignored, so a
// client cannot choose its own bucket; with them, every user behind the
// ingress is not one bucket.
func clientAddr(peer string, xff []string, trusted []netip.Prefix) string {
	remote, err := netip.ParseAddr(peer)
	if err != nil {
		return peer
	}
	remote = remote.Unmap()
	isTrusted := func(a netip.Addr) bool {
		return slices.ContainsFunc(trusted, func(p netip.Prefix) bool { return p.Contains(a) })
	}
	if !isTrusted(remote) {
		return remote.String()
	}
	var hops []string
	for _, h := range xff {
		hops = append(hops, strings.Split(h, ",")...)
	}
	client := remote
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break // a garbled hop: trust nothing left of it
		}
		client = a.Unmap()
		if !isTrusted(client) {
			break
		}
	}
	return client.String()
}

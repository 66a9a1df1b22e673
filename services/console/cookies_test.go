package main

import (
	"context"

	"github.com/chromedp/cdproto/storage"
	"github.com/chromedp/chromedp"
)

// networkCookie is what the tests check of a browser cookie.
type networkCookie struct {
	Name, Value, Path, SameSite string
	HTTPOnly, Secure            bool
}

// allCookies returns every cookie the browser holds.
func allCookies(ctx context.Context) ([]*networkCookie, error) {
	res, err := chromedp.Call(ctx, storage.GetCookies, storage.GetCookiesParams{})
	if err != nil {
		return nil, err
	}
	cs := res.Cookies
	out := make([]*networkCookie, 0, len(cs))
	for _, c := range cs {
		out = append(out, &networkCookie{Name: c.Name, Value: c.Value, Path: c.Path, SameSite: c.SameSite.String(),
			HTTPOnly: c.HTTPOnly, Secure: c.Secure})
	}
	return out, nil
}

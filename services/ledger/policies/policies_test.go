package policies_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/strata-ref/strata/libs/authn"
	"github.com/strata-ref/strata/libs/authz"
	"github.com/strata-ref/strata/services/ledger/policies"
)

func engine(t *testing.T) *authz.Engine {
	e, err := authz.Load(policies.FS, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// berlin returns an instant at hh:mm:ss in Europe/Berlin (region eu) on a
// winter day (UTC+1), so the boundaries are exact.
func berlin(hh, mm, ss int) time.Time {
	loc, _ := time.LoadLocation("Europe/Berlin")
	return time.Date(2026, 1, 14, hh, mm, ss, 0, loc)
}

func TestPolicies(t *testing.T) {
	e := engine(t)
	acctEU := authz.Resource{Type: "Account", ID: "a-eu", Owner: "alice", Region: "eu"}
	acctUS := authz.Resource{Type: "Account", ID: "a-us", Owner: "bob", Region: "us"}
	carol := authn.Principal{Subject: "carol", Roles: []string{"teller"}, Region: "eu"}
	alice := authn.Principal{Subject: "alice", Roles: []string{"customer"}, Region: "eu"}
	bob := authn.Principal{Subject: "bob", Roles: []string{"customer"}, Region: "us"}
	dave := authn.Principal{Subject: "dave", Roles: []string{"auditor"}}
	admin := authn.Principal{Subject: "admin", Roles: []string{"admin"}, Region: "eu"}
	tellerOwner := authn.Principal{Subject: "alice", Roles: []string{"teller", "customer"}, Region: "eu"}
	noon := berlin(12, 0, 0)

	cases := []struct {
		name     string
		who      authn.Principal
		action   string
		res      authz.Resource
		at       time.Time
		allow    bool
		policies string
	}{
		// The ABAC rule (teller, own region, after 9 AM) at its boundaries, in the region's time zone.
		{"teller eu 08:59:59", carol, "deposit", acctEU, berlin(8, 59, 59), false, ""},
		{"teller eu 09:00:00", carol, "deposit", acctEU, berlin(9, 0, 0), true, "teller-deposits-in-region-during-business-hours"},
		{"teller eu 16:59:59", carol, "deposit", acctEU, berlin(16, 59, 59), true, "teller-deposits-in-region-during-business-hours"},
		{"teller eu 17:00:00", carol, "deposit", acctEU, berlin(17, 0, 0), false, ""},
		{"teller eu, us account, noon in Berlin", carol, "deposit", acctUS, noon, false, ""},
		// The account's region sets the clock: 09:00 in New York is 15:00 in Berlin.
		{"teller us 09:00 New York", authn.Principal{Subject: "ted", Roles: []string{"teller"}, Region: "us"}, "deposit", acctUS, berlin(15, 0, 0), true, "teller-deposits-in-region-during-business-hours"},
		{"teller us 08:59 New York", authn.Principal{Subject: "ted", Roles: []string{"teller"}, Region: "us"}, "deposit", acctUS, berlin(14, 59, 0), false, ""},
		{"teller reads in region", carol, "read_account", acctEU, noon, true, "teller-reads-accounts-in-region"},
		{"teller cannot transfer", carol, "transfer", acctEU, noon, false, ""},
		// A teller created without a region matches no account, in
		// particular not the accounts of region-less customers.
		{"teller without region reads region-less account", authn.Principal{Subject: "tom", Roles: []string{"teller"}}, "read_account",
			authz.Resource{Type: "Account", ID: "a-none", Owner: "zed"}, noon, false, ""},
		{"teller without region deposits to region-less account", authn.Principal{Subject: "tom", Roles: []string{"teller"}}, "deposit",
			authz.Resource{Type: "Account", ID: "a-none", Owner: "zed"}, noon, false, ""},
		// Ownership.
		{"customer reads own", alice, "read_account", acctEU, noon, true, "customer-uses-own-account"},
		{"customer transfers from own", alice, "transfer", acctEU, noon, true, "customer-uses-own-account"},
		{"customer reads another's", bob, "read_account", acctEU, noon, false, ""},
		{"customer transfers from another's", bob, "transfer", acctEU, noon, false, ""},
		{"customer cannot deposit", alice, "deposit", acctUS, noon, false, ""},
		{"customer opens account", alice, "create_account", authz.Resource{Type: "Account", ID: "new"}, noon, true, "customer-opens-account"},
		// Auditors only read.
		{"auditor reads account", dave, "read_account", acctEU, noon, true, "auditor-reads-accounts"},
		{"auditor transfers", dave, "transfer", acctEU, noon, false, ""},
		{"auditor deposits", dave, "deposit", acctEU, noon, false, ""},
		// Admin, at any hour.
		{"admin deposits at 03:00", admin, "deposit", acctEU, berlin(3, 0, 0), true, "admin-reads-and-deposits"},
		// A forbid overrides a permit: a teller who owns the account.
		{"teller deposits into own account", tellerOwner, "deposit", acctEU, noon, false, "no-deposit-into-own-account"},
		// Deny by default.
		{"unknown action", admin, "delete_everything", acctEU, noon, false, ""},
		{"no roles", authn.Principal{Subject: "x", Region: "eu"}, "read_account", acctEU, noon, false, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := e.Decide(context.Background(), authz.Request{Principal: tc.who, Action: tc.action, Resource: tc.res, Now: tc.at})
			got := ""
			if len(d.Policies) > 0 {
				got = d.Policies[0]
			}
			if d.Allowed != tc.allow || got != tc.policies || len(d.Errors) > 0 {
				t.Fatalf("allowed=%v policies=%v errors=%v; want allowed=%v by %q", d.Allowed, d.Policies, d.Errors, tc.allow, tc.policies)
			}
		})
	}
}

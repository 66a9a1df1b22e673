package scenario

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/strata-ref/strata/loadtest/internal/report"
	"github.com/strata-ref/strata/loadtest/internal/strata"
)

// InitialBalance is what Prepare deposits into every load account.
const InitialBalance = 1_000_000

// Check runs the invariant checks after a scenario. A violation is a
// failed check; the command exits non-zero on any.
//
//  1. In-doubt transfers are resolved by repeating each with its
//     Idempotency-Key: the ledger either replays the first outcome or
//     performs it now, so afterwards every transfer has one known outcome.
//  2. Every acknowledged transfer is readable by id, with its amount.
//  3. Balances reconcile exactly: each account holds its deposit plus what
//     it received minus what it sent, over the acknowledged transfers. A
//     lost transfer or a duplicate breaks this for two accounts.
//  4. Money is conserved: the population's total is unchanged, and no
//     customer balance is negative.
//  5. Eventual consistency: every acknowledged transfer appears, as
//     transfer.posted, in both accounts' analytics activity within bound.
func Check(ctx context.Context, p *Population, acked *Acked, bound time.Duration) []report.Check {
	var checks []report.Check
	add := func(name string, ok bool, format string, args ...any) {
		checks = append(checks, report.Check{Name: name, OK: ok, Detail: fmt.Sprintf(format, args...)})
	}

	// 1. Resolve in-doubt transfers.
	resolved, refused, stuck := 0, 0, 0
	for _, d := range acked.inDoubt {
		var r strata.Response
		for attempt := 0; attempt < 20; attempt++ {
			r = p.API.Do(ctx, d.User.Tokens.AccessToken, http.MethodPost, p.API.E.Ledger+"/v1/transfers", d.Body, d.Key)
			if r.Err == nil && r.Status < 500 && r.Status != http.StatusTooManyRequests && r.Status != http.StatusConflict {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		switch {
		case r.Status == http.StatusCreated:
			var t strata.Transfer
			if r.Decode(http.StatusCreated, &t) == nil {
				acked.Add(t)
				resolved++
			}
		case r.Err == nil && r.Status >= 400 && r.Status < 500:
			refused++
		default:
			stuck++
		}
	}
	add("in-doubt transfers resolved by their Idempotency-Key", stuck == 0,
		"%d in doubt: %d had committed or committed now, %d refused, %d still unresolved", len(acked.inDoubt), resolved, refused, stuck)

	all := acked.All()
	owner := map[string]*strata.User{}
	for _, u := range p.Users {
		owner[u.Account.ID] = u
	}

	// 2. Every acknowledged transfer exists, once, as acknowledged.
	missing := parallel(all, 16, func(t strata.Transfer) bool {
		var got strata.Transfer
		// A 429 says the ledger is busy (sixteen readers at once, after a
		// drill), not that the transfer is missing: retry after the hint.
		r := p.API.DoPatient(ctx, 9, owner[t.FromAccountID].Tokens.AccessToken, http.MethodGet, p.API.E.Ledger+"/v1/transfers/"+t.ID, nil, "")
		return r.Decode(http.StatusOK, &got) != nil || got.Amount != t.Amount || got.FromAccountID != t.FromAccountID
	})
	add("every acknowledged transfer is present", missing == 0, "%d acknowledged, %d missing or different", len(all), missing)

	// 3 and 4. Balances.
	expected := map[string]int64{}
	for _, u := range p.Users {
		expected[u.Account.ID] = InitialBalance
	}
	for _, t := range all {
		expected[t.FromAccountID] -= t.Amount
		expected[t.ToAccountID] += t.Amount
	}
	var mu sync.Mutex
	var total int64
	negative, wrong, unread := 0, 0, 0
	parallel(p.Users, 16, func(u *strata.User) bool {
		acc, err := p.API.GetAccount(ctx, u, u.Account.ID)
		for attempt := 0; err != nil && attempt < 5; attempt++ { // e.g. shed with 429 while the ledger is busy
			time.Sleep(500 * time.Millisecond)
			acc, err = p.API.GetAccount(ctx, u, u.Account.ID)
		}
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err != nil:
			unread++
		case acc.Balance != expected[acc.ID]:
			wrong++
		}
		if acc.Balance < 0 {
			negative++
		}
		total += acc.Balance
		return false
	})
	add("balances reconcile with acknowledged transfers (no loss, no duplicate)", wrong == 0 && unread == 0,
		"%d accounts: %d differ from deposits + received - sent, %d unreadable", len(p.Users), wrong, unread)
	want := int64(len(p.Users)) * InitialBalance
	add("money is conserved and no customer balance is negative", total == want && negative == 0,
		"total %d (want %d), %d negative", total, want, negative)

	// 5. Analytics holds every transfer, in both accounts, within bound.
	deadline := time.Now().Add(bound)
	start := time.Now()
	var absent int
	for {
		seen := activity(ctx, p)
		absent = 0
		for _, t := range all {
			if !seen[t.FromAccountID][t.ID] || !seen[t.ToAccountID][t.ID] {
				absent++
			}
		}
		if absent == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	add(fmt.Sprintf("analytics holds every transfer in both accounts within %s", bound), absent == 0,
		"%d of %d transfers absent after %s", absent, len(all), time.Since(start).Round(100*time.Millisecond))
	return checks
}

// activity reads every load account's analytics activity: account ->
// transfer ids of its transfer.posted events.
func activity(ctx context.Context, p *Population) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	var mu sync.Mutex
	parallel(p.Users, 8, func(u *strata.User) bool {
		ids := map[string]bool{}
		next := ""
		for page := 0; page < 200; page++ {
			url := p.API.E.Analytics + "/v1/accounts/" + u.Account.ID + "/activity?limit=100"
			if next != "" {
				url += "&page=" + next
			}
			r := p.API.Do(ctx, u.Tokens.AccessToken, http.MethodGet, url, nil, "")
			var body struct {
				Events []struct {
					Type       string `json:"type"`
					TransferID string `json:"transfer_id"`
				} `json:"events"`
				NextPage string `json:"next_page"`
			}
			if r.Err != nil || r.Status != http.StatusOK || json.Unmarshal(r.Body, &body) != nil {
				break
			}
			for _, e := range body.Events {
				if e.Type == "transfer.posted" {
					ids[e.TransferID] = true
				}
			}
			if body.NextPage == "" {
				break
			}
			next = body.NextPage
		}
		mu.Lock()
		out[u.Account.ID] = ids
		mu.Unlock()
		return false
	})
	return out
}

// parallel runs fn over items with n workers and counts true results.
func parallel[T any](items []T, n int, fn func(T) bool) int {
	var mu sync.Mutex
	count := 0
	ch := make(chan T)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range ch {
				if fn(it) {
					mu.Lock()
					count++
					mu.Unlock()
				}
			}
		}()
	}
	for _, it := range items {
		ch <- it
	}
	close(ch)
	wg.Wait()
	return count
}

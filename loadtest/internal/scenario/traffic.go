// Package scenario drives Strata with realistic traffic and checks, after
// every run, that nothing was lost or duplicated.
package scenario

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/strata-ref/strata/libs/resilience"
	"github.com/strata-ref/strata/loadtest/internal/engine"
	"github.com/strata-ref/strata/loadtest/internal/strata"
)

// Population is the signed-in users, each with a funded account.
type Population struct {
	API   *strata.API
	Admin *strata.User
	Users []*strata.User
	// Throttle, when set, throttles the requests to each service (by name)
	// adaptively, as libs/resilience's outbound client does: while a
	// service sheds most of them, a share is refused here and never sent
	// (engine.Throttled).
	Throttle map[string]*resilience.Throttle
}

// ThrottleWindow is the load tool's adaptive throttling history: shorter
// than the services' minute, since a scenario's steps last seconds.
const ThrottleWindow = 10 * time.Second

// NewThrottles returns one throttle per service the traffic reaches.
func NewThrottles() map[string]*resilience.Throttle {
	return map[string]*resilience.Throttle{"ledger": resilience.NewThrottle(ThrottleWindow, 20),
		"analytics": resilience.NewThrottle(ThrottleWindow, 20), "session": resilience.NewThrottle(ThrottleWindow, 20)}
}

// Prepare signs in the admin and n load-test users (seeded by `auth seed
// -users n`, named load-000001...), opens an account for each and funds it.
func Prepare(ctx context.Context, api *strata.API, password string, n int, log func(string, ...any)) (*Population, error) {
	admin, err := api.Login(ctx, "admin", password)
	if err != nil {
		return nil, err
	}
	p := &Population{API: api, Admin: admin, Users: make([]*strata.User, n)}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 8) // logins hash passwords: keep auth responsive
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			u, err := api.Login(ctx, fmt.Sprintf("load-%06d", i+1), password)
			if err == nil {
				err = api.OpenAccount(ctx, u)
			}
			if err == nil {
				err = api.Deposit(ctx, admin, u.Account.ID, 1_000_000)
			}
			if err != nil {
				errs <- fmt.Errorf("prepare user %d: %w", i+1, err)
				return
			}
			p.Users[i] = u
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	log("prepared %d users with funded accounts", n)
	return p, nil
}

// Mix is the share of each traffic class (they need not sum to 1).
type Mix struct {
	// List is GET /v1/accounts, the cheapest authenticated read; Read is
	// GET /v1/accounts/{id}.
	Transfer, Read, Event, Session, List float64
	// Copies sends every transfer this many times with one key (retry-storm).
	Copies int
	// HotAccount sends every transfer to the first user's account.
	HotAccount bool
}

// DefaultMix is a plausible banking app: reads dominate, a third are
// payments, and the app reports views to analytics.
var DefaultMix = Mix{Transfer: 0.35, Read: 0.35, Event: 0.15, Session: 0.15}

// OneService is the traffic of DefaultMix that goes to one service: a
// scenario run with it measures that service's capacity and how that
// service degrades past it, the others serving only what it calls (the
// ledger asks session about the session and feeds analytics). Auth is not
// in it: its public traffic is sign-ins, argon2id by design.
var OneService = map[string]Mix{
	"ledger":    {Transfer: 0.5, Read: 0.5},
	"analytics": {Event: 1},
	"session":   {Session: 1},
}

// Only is spec with its traffic narrowed to the named service (OneService).
func Only(spec Spec, service string) (Spec, error) {
	m, ok := OneService[service]
	if !ok {
		return spec, fmt.Errorf("no one-service traffic for %q (one of %s)", service, strings.Join(slices.Sorted(maps.Keys(OneService)), ", "))
	}
	m.Copies, m.HotAccount = spec.Mix.Copies, spec.Mix.HotAccount
	spec.Mix = m
	spec.Doc += ", " + service + " traffic only"
	return spec, nil
}

// Acked collects the transfers the ledger acknowledged (201), and those
// whose outcome the client could not know (a timeout, a 5xx): the invariant
// check resolves the latter by repeating them with the same Idempotency-Key.
type Acked struct {
	mu      sync.Mutex
	ids     map[string]strata.Transfer
	inDoubt []InDoubt
}

// InDoubt is a transfer sent without a definite answer.
type InDoubt struct {
	User *strata.User
	Body map[string]any
	Key  string
}

func (a *Acked) doubt(d InDoubt) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.inDoubt = append(a.inDoubt, d)
}

// Add records one acknowledged transfer.
func (a *Acked) Add(t strata.Transfer) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ids == nil {
		a.ids = map[string]strata.Transfer{}
	}
	a.ids[t.ID] = t
}

// All returns the acknowledged transfers.
func (a *Acked) All() []strata.Transfer {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]strata.Transfer, 0, len(a.ids))
	for _, t := range a.ids {
		out = append(out, t)
	}
	return out
}

// Target returns the engine target for the mix.
func (p *Population) Target(m Mix, acked *Acked) engine.Target {
	total := m.Transfer + m.Read + m.Event + m.Session + m.List
	return func(ctx context.Context) engine.Result {
		u := p.Users[rand.IntN(len(p.Users))]
		x := rand.Float64() * total
		kind, service := "session", "session"
		switch {
		case x < m.Transfer:
			kind, service = "transfer", "ledger"
		case x < m.Transfer+m.Read:
			kind, service = "read", "ledger"
		case x < m.Transfer+m.Read+m.Event:
			kind, service = "event", "analytics"
		case x < m.Transfer+m.Read+m.Event+m.List:
			kind, service = "list", "ledger"
		}
		th := p.Throttle[service]
		if th != nil && !th.Allow() {
			return engine.Result{Kind: kind, Throttled: true}
		}
		r := p.send(ctx, u, kind, m, acked)
		if th != nil && r.Err == nil && r.Status != 0 {
			th.Record(r.Status != http.StatusTooManyRequests)
		}
		return r
	}
}

func (p *Population) send(ctx context.Context, u *strata.User, kind string, m Mix, acked *Acked) engine.Result {
	switch kind {
	case "transfer":
		return p.transfer(ctx, u, m, acked)
	case "read":
		return result("read", p.API.Do(ctx, u.Tokens.AccessToken, http.MethodGet, p.API.E.Ledger+"/v1/accounts/"+u.Account.ID, nil, ""))
	case "list":
		return result("list", p.API.Do(ctx, u.Tokens.AccessToken, http.MethodGet, p.API.E.Ledger+"/v1/accounts", nil, ""))
	case "event":
		ev := map[string]any{"event_id": uuid.NewString(), "type": "account.viewed", "occurred_at": time.Now().UTC().Format(time.RFC3339Nano),
			"account_id": u.Account.ID}
		return result("event", p.API.Do(ctx, u.Tokens.AccessToken, http.MethodPost, p.API.E.Analytics+"/v1/events",
			map[string]any{"events": []any{ev}}, strata.NewKey()))
	default:
		return result("session", p.API.Do(ctx, u.Tokens.AccessToken, http.MethodGet, p.API.E.Session+"/v1/sessions", nil, ""))
	}
}

func (p *Population) transfer(ctx context.Context, u *strata.User, m Mix, acked *Acked) engine.Result {
	to := p.Users[rand.IntN(len(p.Users))]
	if m.HotAccount {
		to = p.Users[0]
	}
	for to == u {
		to = p.Users[rand.IntN(len(p.Users))]
	}
	body := strata.TransferBody(u.Account.ID, to.Account.ID, 1+rand.Int64N(100))
	key := strata.NewKey()
	copies := max(m.Copies, 1)
	results := make(chan strata.Response, copies)
	for range copies { // a retry storm: the same request, same key, at once
		go func() {
			results <- p.API.Do(ctx, u.Tokens.AccessToken, http.MethodPost, p.API.E.Ledger+"/v1/transfers", body, key)
		}()
	}
	var best strata.Response
	for range copies {
		r := <-results
		if r.Status == http.StatusCreated {
			var t strata.Transfer
			if r.Decode(http.StatusCreated, &t) == nil {
				acked.Add(t)
			}
		}
		if best.Status == 0 || r.Status == http.StatusCreated {
			best = r
		}
	}
	// No answer, or a 5xx: the transfer may or may not have committed.
	// (A 429 is shed before any work; a 4xx is a definite refusal.)
	if best.Status != http.StatusCreated && (best.Err != nil || best.Status >= 500) {
		acked.doubt(InDoubt{User: u, Body: body, Key: key})
	}
	return result("transfer", best)
}

func result(kind string, r strata.Response) engine.Result {
	res := engine.Result{Status: r.Status, Err: r.Err, RetryAfter: r.RetryAfter, Kind: kind}
	if engine.Classify(res) != engine.Served && res.Status != http.StatusTooManyRequests {
		res.Detail = r.Detail()
	}
	return res
}
